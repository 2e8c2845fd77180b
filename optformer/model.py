"""The transformer: one trial-level backbone, a surrogate head and a policy head.

Shape letters (batch first, used in names like `x_BxTxD`):
  B batch of studies, T history trials (padded), M query trials, S sequence
  positions (1 + T + M), D parameter slots (D_max), Q value bins
  (num_x_bins), Y objective bins (num_y_bins), E model width, H heads,
  K head width (E / H), F slot width.

Sequence: [ALGO] + T history positions + M query positions (tokenizer.py).
Masking (the invariants tests check):
  * a history position i sees ALGO and history positions j <= i (causal);
  * a query position sees ALGO, the first `query_context` history positions
    and itself, never another query, so M candidates are scored against one
    history in one pass and a query's prediction does not depend on others.
No positional encoding: order enters only through the causal mask.

Heads:
  * surrogate: logits over the Y objective bins at each query position: a
    Riemann ("bar") distribution over the normalized objective (Müller et
    al., "Transformers Can Do Bayesian Inference", ICLR 2022, Sec. 4.1).
  * policy: the next trial's value tokens, decoded slot by slot by a small
    causal transformer over the D slots, conditioned on the state after the
    history (OptFormer, Chen et al. 2022, behaviour cloning with an
    algorithm prompt); invalid tokens are masked to -1e9 before softmax.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from optformer import search_space as ss
from optformer.tokenizer import TokenizerConfig

NEG_INF = -1e9


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of the model; saved next to every checkpoint."""

  tokenizer: TokenizerConfig = TokenizerConfig()
  d_model: int = 192  # E: width of the backbone.
  num_heads: int = 4  # H: attention heads (E divisible by H).
  num_layers: int = 4  # Transformer blocks of the backbone.
  mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * E.
  d_slot: int = 32  # F: width of one parameter slot's embedding.
  num_fourier: int = 32  # Frequencies of the value/objective embeddings.
  max_frequency: float = 64.0  # Highest of them, in half-periods per unit interval.
  decoder_layers: int = 1  # Blocks of the slot-by-slot policy decoder.
  algorithms: tuple = ("random", "sobol", "gp_ucb")  # Behaviour-algorithm prompts, by id (data_gen.ALGORITHMS).
  max_trials: int = 64  # Longest history the model was trained on (context).

  @classmethod
  def tiny(cls) -> "ModelConfig":
    return cls(
        tokenizer=TokenizerConfig.tiny(), d_model=32, num_heads=2, num_layers=2, mlp_ratio=2,
        d_slot=8, num_fourier=4, decoder_layers=1, max_trials=16,
    )

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "ModelConfig":
    d = dict(d)
    tok = TokenizerConfig(**d.pop("tokenizer"))
    d.setdefault("max_frequency", 1024.0)  # Configs saved before the field existed used 2^10.
    return cls(tokenizer=tok, algorithms=tuple(d.pop("algorithms", cls.algorithms)), **d)


class Batch(NamedTuple):
  """Tokenized studies (training: teacher-forced trajectories).

  x: int32 [B, T, D] value tokens (PAD in unused slots).
  y: int32 [B, T] objective tokens (PAD for absent trials).
  trial_mask: bool [B, T] real (not padded) trials.
  kinds: int32 [B, D] search_space.KIND_* per slot.
  num_values: int32 [B, D] levels/categories per slot (0 for floats).
  valid: bool [B, D, Q] value tokens each slot may take.
  algorithm: int32 [B] behaviour-algorithm id (the prompt).
  """

  x: jax.Array
  y: jax.Array
  trial_mask: jax.Array
  kinds: jax.Array
  num_values: jax.Array
  valid: jax.Array
  algorithm: jax.Array


def fourier_features(u, num: int, max_frequency: float):
  """[..., 2 num + 1] features of u in [0, 1]: u, sin/cos(pi f_k u), f_k log-spaced in [1, max_frequency]."""
  freqs = jnp.pi * jnp.geomspace(1.0, max_frequency, num)
  ang = u[..., None] * freqs
  return jnp.concatenate([u[..., None], jnp.sin(ang), jnp.cos(ang)], axis=-1)


def attention_mask(hist_valid_BxT, query_context_BxM):
  """bool [B, S, S] mask, S = 1 + T + M, as described in the module docstring.

  Args:
    hist_valid_BxT: bool [B, T], which history positions hold a real trial.
    query_context_BxM: int [B, M], how many leading history trials each
      query sees (training: its own index; inference: the history length).
  """
  b, t = hist_valid_BxT.shape
  m = query_context_BxM.shape[1]
  j_T = jnp.arange(t)
  bos_col_S = jnp.zeros(1 + t + m, bool).at[0].set(True)
  # History rows: ALGO + causal over valid history.
  hist_hist_BxTxT = (j_T[None, :] <= j_T[:, None])[None] & hist_valid_BxT[:, None, :]
  hist_rows = jnp.concatenate(
      [jnp.ones((b, t, 1), bool), hist_hist_BxTxT, jnp.zeros((b, t, m), bool)], axis=-1
  )  # [B, T, S]
  q_hist_BxMxT = (j_T[None, None, :] < query_context_BxM[:, :, None]) & hist_valid_BxT[:, None, :]
  q_rows = jnp.concatenate(
      [jnp.ones((b, m, 1), bool), q_hist_BxMxT, jnp.broadcast_to(jnp.eye(m, dtype=bool), (b, m, m))], axis=-1
  )  # [B, M, S]
  bos_rows = jnp.broadcast_to(bos_col_S, (b, 1, 1 + t + m))
  return jnp.concatenate([bos_rows, hist_rows, q_rows], axis=1)


class Attention(nnx.Module):
  def __init__(self, e: int, h: int, rngs: nnx.Rngs):
    self.h = h
    self.qkv = nnx.Linear(e, 3 * e, rngs=rngs)
    self.out = nnx.Linear(e, e, rngs=rngs)

  def __call__(self, x_BxSxE, mask_BxSxS):
    b, s, e = x_BxSxE.shape
    k_dim = e // self.h
    qkv = self.qkv(x_BxSxE).reshape(b, s, 3, self.h, k_dim)  # [B, S, 3, H, K]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits_BxHxSxS = jnp.einsum("bqhk,bshk->bhqs", q, k) / math.sqrt(k_dim)
    logits_BxHxSxS = jnp.where(mask_BxSxS[:, None], logits_BxHxSxS, NEG_INF)
    w = jax.nn.softmax(logits_BxHxSxS, axis=-1)
    o_BxSxHxK = jnp.einsum("bhqs,bshk->bqhk", w, v)
    return self.out(o_BxSxHxK.reshape(b, s, e))

  def keys_values(self, x_BxSxE):
    """(keys, values), each [B, S, H, K]: what positions x offer to later attention (the inference cache)."""
    b, s, e = x_BxSxE.shape
    kv = self.qkv(x_BxSxE).reshape(b, s, 3, self.h, e // self.h)
    return kv[:, :, 1], kv[:, :, 2]

  def attend_cached(self, x_BxMxE, keys_BxSxHxK, values_BxSxHxK, mask_BxS):
    """Attention of M queries to S cached positions (where mask) and to themselves, never to each other.

    Equals `__call__` on the concatenated sequence under `attention_mask`'s
    query rows, at O(M S) instead of O((S + M)^2).
    """
    b, m, e = x_BxMxE.shape
    k_dim = e // self.h
    qkv = self.qkv(x_BxMxE).reshape(b, m, 3, self.h, k_dim)
    q, k_self, v_self = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, M, H, K]
    logits_BxHxMxS = jnp.einsum("bqhk,bshk->bhqs", q, keys_BxSxHxK) / math.sqrt(k_dim)
    logits_BxHxMxS = jnp.where(mask_BxS[:, None, None, :], logits_BxHxMxS, NEG_INF)
    self_BxHxMx1 = jnp.einsum("bqhk,bqhk->bhq", q, k_self)[..., None] / math.sqrt(k_dim)
    w = jax.nn.softmax(jnp.concatenate([logits_BxHxMxS, self_BxHxMx1], axis=-1), axis=-1)
    o_BxMxHxK = jnp.einsum("bhqs,bshk->bqhk", w[..., :-1], values_BxSxHxK)
    o_BxMxHxK = o_BxMxHxK + jnp.transpose(w[..., -1], (0, 2, 1))[..., None] * v_self
    return self.out(o_BxMxHxK.reshape(b, m, e))


class Block(nnx.Module):
  """Pre-LayerNorm transformer block."""

  def __init__(self, e: int, h: int, mlp_ratio: int, rngs: nnx.Rngs):
    self.ln1 = nnx.LayerNorm(e, rngs=rngs)
    self.attn = Attention(e, h, rngs)
    self.ln2 = nnx.LayerNorm(e, rngs=rngs)
    self.mlp_in = nnx.Linear(e, mlp_ratio * e, rngs=rngs)
    self.mlp_out = nnx.Linear(mlp_ratio * e, e, rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attn(self.ln1(x), mask)
    return self._mlp(x)

  def _mlp(self, x):
    return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.ln2(x))))

  def keys_values(self, x_BxSxE):
    """This block's attention cache of positions whose block input is x."""
    return self.attn.keys_values(self.ln1(x_BxSxE))

  def cached(self, x_BxMxE, keys, values, mask_BxS):
    """The block on M queries that see cached positions (`Attention.attend_cached`) and themselves."""
    return self._mlp(x_BxMxE + self.attn.attend_cached(self.ln1(x_BxMxE), keys, values, mask_BxS))


class OptFormer(nnx.Module):
  """Surrogate p(y | x, history) and policy p(x_next | history) in one network."""

  def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
    self.config = config
    c, tok = config, config.tokenizer
    e, f, d = c.d_model, c.d_slot, tok.max_params
    n_four = 2 * c.num_fourier + 1
    self.slot_id = nnx.Embed(d, f, rngs=rngs)
    self.kind_emb = nnx.Embed(4, f, rngs=rngs)
    self.levels_proj = nnx.Linear(1, f, rngs=rngs)
    self.num_value_proj = nnx.Linear(n_four, f, rngs=rngs)
    self.cat_emb = nnx.Embed(tok.num_x_bins, f, rngs=rngs)
    self.trial_proj = nnx.Linear(d * f, e, rngs=rngs)
    self.y_proj = nnx.Linear(n_four, e, rngs=rngs)
    self.y_missing = nnx.Param(jax.random.normal(rngs.params(), (e,)) * 0.02)
    self.algo_emb = nnx.Embed(len(c.algorithms), e, rngs=rngs)
    self.blocks = nnx.List([Block(e, c.num_heads, c.mlp_ratio, rngs) for _ in range(c.num_layers)])
    self.ln_f = nnx.LayerNorm(e, rngs=rngs)
    self.y_head = nnx.Linear(e, tok.num_y_bins, rngs=rngs)
    # Policy decoder over slots.
    self.dec_state = nnx.Linear(e, e, rngs=rngs)
    self.dec_slot = nnx.Linear(f, e, rngs=rngs)
    self.dec_prev = nnx.Linear(f, e, rngs=rngs)
    self.dec_start = nnx.Param(jax.random.normal(rngs.params(), (e,)) * 0.02)
    self.dec_blocks = nnx.List([Block(e, c.num_heads, c.mlp_ratio, rngs) for _ in range(c.decoder_layers)])
    self.dec_ln = nnx.LayerNorm(e, rngs=rngs)
    self.x_head = nnx.Linear(e, tok.num_x_bins, rngs=rngs)

  # -- Embeddings ------------------------------------------------------------

  def slot_features(self, kinds_BxD, num_values_BxD):
    """[B, D, F]: which slot, its kind, and how many levels it has."""
    d = kinds_BxD.shape[-1]
    q = self.config.tokenizer.num_x_bins
    lv = jnp.log1p(num_values_BxD.astype(jnp.float32))[..., None] / math.log1p(q)
    return self.slot_id(jnp.arange(d)) + self.kind_emb(kinds_BxD) + self.levels_proj(lv)

  def value_embedding(self, x_BxNxD, kinds_BxD):
    """[B, N, D, F] embedding of value tokens; zero in unused slots."""
    q = self.config.tokenizer.num_x_bins
    u = (jnp.clip(x_BxNxD, 0, q - 1).astype(jnp.float32) + 0.5) / q
    numeric = self.num_value_proj(fourier_features(u, self.config.num_fourier, self.config.max_frequency))
    categorical = self.cat_emb(jnp.clip(x_BxNxD, 0, q - 1))
    k = kinds_BxD[:, None, :, None]
    emb = jnp.where(k == ss.KIND_CATEGORICAL, categorical, numeric)
    return jnp.where(k == ss.KIND_UNUSED, 0.0, emb)

  def embed_trials(self, x_BxNxD, y_BxN, slot_BxDxF, kinds_BxD):
    """[B, N, E]: one vector per trial (x row and y token)."""
    b, n, d = x_BxNxD.shape
    tok = self.config.tokenizer
    v = self.value_embedding(x_BxNxD, kinds_BxD) + slot_BxDxF[:, None]  # [B, N, D, F]
    h = self.trial_proj(v.reshape(b, n, -1))
    yu = (jnp.clip(y_BxN, 0, tok.num_y_bins - 1).astype(jnp.float32) + 0.5) / tok.num_y_bins
    y_emb = self.y_proj(fourier_features(yu, self.config.num_fourier, self.config.max_frequency))
    y_emb = jnp.where((y_BxN == tok.y_missing)[..., None], self.y_missing[...], y_emb)
    y_emb = jnp.where((y_BxN == tok.y_pad)[..., None], 0.0, y_emb)
    return h + y_emb

  # -- Backbone --------------------------------------------------------------

  def encode(self, hist_x, hist_y, hist_valid, query_x, query_context, kinds, num_values, algorithm):
    """Runs the backbone.

    Args:
      hist_x: int [B, T, D]; hist_y: int [B, T]; hist_valid: bool [B, T].
      query_x: int [B, M, D]; query_context: int [B, M] (see attention_mask).
      kinds, num_values: int [B, D]; algorithm: int [B].

    Returns:
      (states [B, 1 + T, E], queries [B, M, E]): states[:, n] is the state
      after the first n history trials (n = 0: the prompt alone).
    """
    t = hist_x.shape[1]
    slot = self.slot_features(kinds, num_values)
    missing = jnp.full(query_x.shape[:2], self.config.tokenizer.y_missing, jnp.int32)
    h = jnp.concatenate(
        [
            self.algo_emb(algorithm)[:, None],
            self.embed_trials(hist_x, hist_y, slot, kinds),
            self.embed_trials(query_x, missing, slot, kinds),
        ],
        axis=1,
    )  # [B, S, E]
    mask = attention_mask(hist_valid, query_context)
    for blk in self.blocks:
      h = blk(h, mask)
    h = self.ln_f(h)
    return h[:, : 1 + t], h[:, 1 + t :]

  def encode_history(self, hist_x, hist_y, hist_valid, kinds, num_values, algorithm):
    """The history alone, for inference: `encode`'s states and every block's attention cache.

    History positions never see queries, so these equal `encode`'s; queries
    scored later with `score_cached` equal `encode`'s queries at
    query_context = n, at O(M T) per layer.

    Args: as `encode` (without queries).

    Returns:
      (states [B, 1 + T, E], keys [L, B, 1 + T, H, K], values [L, B, 1 + T, H, K]).
    """
    slot = self.slot_features(kinds, num_values)
    h = jnp.concatenate([self.algo_emb(algorithm)[:, None], self.embed_trials(hist_x, hist_y, slot, kinds)], axis=1)
    mask = attention_mask(hist_valid, jnp.zeros((hist_x.shape[0], 0), jnp.int32))
    keys, values = [], []
    for blk in self.blocks:
      k, v = blk.keys_values(h)
      keys.append(k)
      values.append(v)
      h = blk(h, mask)
    return self.ln_f(h), jnp.stack(keys), jnp.stack(values)

  def score_cached(self, keys, values, key_mask_BxS, query_x, kinds, num_values):
    """[B, M, Y] objective-bin logits of queries against a cached history (`encode_history`).

    key_mask_BxS: bool [B, 1 + T], the prompt and the history trials each
    query sees (True at 0, then hist_valid & index < n).
    """
    slot = self.slot_features(kinds, num_values)
    missing = jnp.full(query_x.shape[:2], self.config.tokenizer.y_missing, jnp.int32)
    h = self.embed_trials(query_x, missing, slot, kinds)
    for l, blk in enumerate(self.blocks):
      h = blk.cached(h, keys[l], values[l], key_mask_BxS)
    return self.y_logits(self.ln_f(h))

  def y_logits(self, queries_BxMxE):
    """[B, M, Y] logits of the objective-bin distribution."""
    return self.y_head(queries_BxMxE)

  # -- Policy ----------------------------------------------------------------

  def policy_hidden(self, state_BxNxE, x_BxNxD, kinds_BxD, num_values_BxD):
    """[B, N, D, E] the policy decoder's output per slot, before `x_head` (see `policy_logits`)."""
    b, n, d = x_BxNxD.shape
    slot = self.slot_features(kinds_BxD, num_values_BxD)  # [B, D, F]
    prev = self.dec_prev(self.value_embedding(x_BxNxD, kinds_BxD) + slot[:, None])  # [B, N, D, E]
    prev = jnp.concatenate(
        [jnp.broadcast_to(self.dec_start[...], (b, n, 1, prev.shape[-1])), prev[:, :, :-1]], axis=2
    )
    h = self.dec_state(state_BxNxE)[:, :, None] + self.dec_slot(slot)[:, None] + prev  # [B, N, D, E]
    h = h.reshape(b * n, d, -1)
    causal = jnp.broadcast_to(jnp.tril(jnp.ones((d, d), bool)), (b * n, d, d))
    for blk in self.dec_blocks:
      h = blk(h, causal)
    return self.dec_ln(h).reshape(b, n, d, -1)

  def policy_decode_step(self, state_ME, tokens_MxD, kinds_D, num_values_D, j, cache_k, cache_v):
    """One step of incremental decoding: slot j's hidden state [M, E], as `policy_hidden(...)[:, 0, j]`.

    Slot j's decoder input needs only the token of slot j - 1; the keys and
    values of slots < j come from the cache (float [L_dec, M, D, H, K] each,
    written at j and returned), so a step costs one slot, not D.
    """
    m, d = tokens_MxD.shape
    slot_DxF = self.slot_features(kinds_D[None], num_values_D[None])[0]
    prev_emb = self.value_embedding(tokens_MxD[:, None], kinds_D[None])[:, 0] + slot_DxF[None]  # [M, D, F]
    prev_ME = jnp.where(j == 0, self.dec_start[...][None], self.dec_prev(prev_emb[:, jnp.maximum(j - 1, 0)]))
    x = self.dec_state(state_ME) + self.dec_slot(slot_DxF[j])[None] + prev_ME
    seen_D = jnp.arange(d) <= j
    for l, blk in enumerate(self.dec_blocks):
      h, k_dim = blk.attn.h, x.shape[-1] // blk.attn.h
      qkv = blk.attn.qkv(blk.ln1(x)).reshape(m, 3, h, k_dim)
      cache_k = cache_k.at[l, :, j].set(qkv[:, 1])
      cache_v = cache_v.at[l, :, j].set(qkv[:, 2])
      logits_MxHxD = jnp.einsum("mhk,mdhk->mhd", qkv[:, 0], cache_k[l]) / math.sqrt(k_dim)
      w = jax.nn.softmax(jnp.where(seen_D[None, None], logits_MxHxD, NEG_INF), axis=-1)
      x = blk._mlp(x + blk.attn.out(jnp.einsum("mhd,mdhk->mhk", w, cache_v[l]).reshape(m, -1)))
    return self.dec_ln(x), cache_k, cache_v

  def policy_logits(self, state_BxNxE, x_BxNxD, kinds_BxD, num_values_BxD, valid_BxDxQ):
    """[B, N, D, Q] masked logits of each slot's token given earlier slots.

    Teacher forcing: slot j sees the state and the tokens of slots < j in
    x_BxNxD (causal over slots); later slots' tokens are ignored.
    """
    logits = self.x_head(self.policy_hidden(state_BxNxE, x_BxNxD, kinds_BxD, num_values_BxD))
    return jnp.where(valid_BxDxQ[:, None], logits, NEG_INF)

  # -- Training forward ------------------------------------------------------

  def __call__(self, batch: Batch, policy_index_BxP=None):
    """Teacher-forced training pass over whole trajectories.

    Query t is trial t with its y hidden; it sees history trials < t. The
    policy predicts trial t from the state after trials < t.

    Args:
      batch: a Batch with T trials per study.
      policy_index_BxP: int [B, P] trials whose value tokens the policy
        predicts (a random subset saves decoder compute); None: all T.

    Returns:
      y_logits float [B, T, Y] for every trial's objective, and
      x_logits float [B, P, D, Q] for the chosen trials' value tokens.
    """
    b, t, _ = batch.x.shape
    query_context = jnp.broadcast_to(jnp.arange(t), (b, t))
    states, queries = self.encode(
        batch.x, batch.y, batch.trial_mask, batch.x, query_context, batch.kinds, batch.num_values, batch.algorithm
    )
    if policy_index_BxP is None:
      policy_index_BxP = jnp.broadcast_to(jnp.arange(t), (b, t))
    take = lambda a: jnp.take_along_axis(a, policy_index_BxP.reshape(b, -1, *([1] * (a.ndim - 2))), axis=1)
    x_logits = self.policy_logits(take(states), take(batch.x), batch.kinds, batch.num_values, batch.valid)
    return self.y_logits(queries), x_logits


def create_model(config: ModelConfig, seed: int = 0) -> OptFormer:
  return OptFormer(config, nnx.Rngs(params=seed))
