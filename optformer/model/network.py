"""Model v2: an order-free in-context surrogate (a prior-data fitted network).

Shape letters (batch first): B studies, N trials (context and queries,
padded), C context positions at inference, M queries, D parameter slots,
E model width, H heads, K head width, G slot hidden width, Y bars.

One position per trial (PFNs, Müller et al., ICLR 2022): its embedding is
  * the x part: sum over the trial's active parameter slots d of
    gelu(A v_d + c_d), projected to E. v_d are Fourier features of the unit
    value (float/int; or, `PFNConfig.value_input="tokens"`, a learned
    embedding of its bin among V = policy_tokens, the numeric-token
    ablation) or a learned embedding of the category, or a learned
    "inactive" vector (conditional parameter switched off); c_d embeds the
    slot's identity (a slot id, random in training), kind and number of
    levels. No weight depends on the number of slots, so a model serves up
    to `num_slot_ids` parameters and is invariant to their order;
  * the y part: features of the context objective z (optformer.model.ynorm), a
    learned "infeasible" vector, or a learned "query" vector (y unknown).
Attention: every position attends to a learned global token and to the
context positions only, never to queries: a query's prediction depends on
the context and on itself alone, and no positional encoding exists, so it
does not depend on the order of the context or on other queries.
Distance bias (`PFNConfig.distance_bias`, ours): each head's logit of a
context trial c gets -sum_d lam_{l,h,d} delta_d(query, c), delta_d the
squared unit distance of slot d (categorical: mismatch; 1 where exactly one
side is inactive). The weights lam >= 0 come from the context alone: a
shared MLP of slot d's empirical variogram of z at a few lag scales
(`slot_variogram`), so attention can weight relevant parameters like a GP
kernel with automatic relevance determination does, for any number of
parameters and in any order.
Head: logits over Y bars of a full-support bar distribution in z units
(optformer.model.bar) plus one "infeasible" class, so p(feasible | x) = 1 - p_Y.
Policy head (`PFNConfig.policy_tokens` = V > 0; decoding in optformer.model.policy):
a policy row is a query whose x part holds the slots decoded so far (their
value, or inactive) and a learned "undecoded" vector for the rest, and whose
y part is a learned "policy" vector; its final state h gives the next-token
logits of every slot d at once, MLP(h + proj(slot embedding of d)) over V
tokens, tokens a slot cannot take (`token_mask`) at NEG_INF. An undecoded
slot adds nothing to the distance bias. With `policy_copy`, the head's input
also holds a copy pointer: COPY_HEADS attention heads from the row's final
state over the context's final states, each averaging the context's
per-slot value vectors (gelu(A v_d + c_d) above), so "a value near the
best trial's" is one attention away.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optformer.model.config import PFNConfig  # Defined without JAX (checkpoint.read_config reads it); re-exported.
from optformer.model.features import (VARIOGRAM_SCALES, fourier_features, pair_distance_by_slot, slot_variogram,
                                      z_features)
from optformer.search_space import KIND_CATEGORICAL, KIND_ORDINAL

NEG_INF = -1e9
COPY_HEADS = 4  # Attention heads of the policy head's copy pointer (PFNConfig.policy_copy).


class PolicyRows(NamedTuple):
  """Partly decoded configurations, R per study, whose next tokens the policy head predicts."""

  x: jax.Array  # float32 [B, R, D] unit-form values of the decoded slots (ignored elsewhere).
  active: jax.Array  # bool [B, R, D] decoded and active (decoded & ~active: decoded as inactive).
  decoded: jax.Array  # bool [B, R, D] the slot's value (or inactivity) is known.


def token_mask(kinds_BxD, num_values_BxD, num_tokens: int):
  """bool [B, D, V]: the tokens slot d may take (optformer.model.policy): all V for a float or an ordinal of more
  than V levels, the first L for L <= V levels, the first K of K categories; none for unused slots."""
  v = jnp.arange(num_tokens)
  n = num_values_BxD[..., None]
  limited = (kinds_BxD[..., None] == KIND_CATEGORICAL) | ((kinds_BxD[..., None] == KIND_ORDINAL) & (n <= num_tokens))
  return (kinds_BxD[..., None] > 0) & jnp.where(limited, v < n, True)


def value_tokens(x, kinds, num_values, num_tokens: int):
  """int32 tokens (x's shape [..., D]) of unit-form values: the bin floor(u V) of a float or an ordinal of more
  than V levels (clipped to V - 1), the level index of an ordinal of L <= V levels, the category index (values
  off the grid snap to the nearest valid level or category: the prior's perturbed points hold categories like 1.07)."""
  n = num_values.astype(jnp.float32)
  top = jnp.maximum(n - 1.0, 0.0)
  level = jnp.clip(jnp.round(x * jnp.maximum(n - 1.0, 1.0)), 0, top)
  bins = jnp.clip(jnp.floor(x * num_tokens), 0, num_tokens - 1)
  category = jnp.clip(jnp.round(x), 0, top)
  tok = jnp.where(kinds == KIND_CATEGORICAL, category, jnp.where((kinds == KIND_ORDINAL) & (n <= num_tokens), level, bins))
  return tok.astype(jnp.int32)


class SurrogateBatch(NamedTuple):
  """Studies as the model reads them (training: context and queries of examples)."""

  x: jax.Array  # float32 [B, N, D] unit-form values (category index as a float).
  active: jax.Array  # bool [B, N, D] slot used and active in this trial.
  kinds: jax.Array  # int32 [B, D] search_space.KIND_* (0 unused).
  num_values: jax.Array  # int32 [B, D] levels / categories, 0 for floats.
  slot_ids: jax.Array  # int32 [B, D] distinct ids in [0, num_slot_ids).
  z: jax.Array  # float32 [B, N] normalized objective of context trials (ignored elsewhere).
  feasible: jax.Array  # bool [B, N] context trial was feasible (ignored elsewhere).
  context: jax.Array  # bool [B, N] position is a context trial.
  valid: jax.Array  # bool [B, N] position holds a real trial (False: padding).


class Block(nnx.Module):
  """Pre-LayerNorm transformer block whose queries attend to a separate key/value source."""

  def __init__(self, e: int, h: int, mlp_ratio: int, rngs: nnx.Rngs):
    self.h = h
    self.ln1 = nnx.LayerNorm(e, rngs=rngs)
    self.q = nnx.Linear(e, e, rngs=rngs)
    self.kv = nnx.Linear(e, 2 * e, rngs=rngs)
    self.out = nnx.Linear(e, e, rngs=rngs)
    self.ln2 = nnx.LayerNorm(e, rngs=rngs)
    self.mlp_in = nnx.Linear(e, mlp_ratio * e, rngs=rngs)
    self.mlp_out = nnx.Linear(mlp_ratio * e, e, rngs=rngs)

  def __call__(self, x_BxSxE, src_BxCxE, key_mask_BxC, bias_BxHxSxC=None):
    """x attends to src (keys where key_mask, logits plus bias); returns the block's output for x, [B, S, E]."""
    b, s, e = x_BxSxE.shape
    c, k = src_BxCxE.shape[1], e // self.h
    q = self.q(self.ln1(x_BxSxE)).reshape(b, s, self.h, k)
    kv = self.kv(self.ln1(src_BxCxE)).reshape(b, c, 2, self.h, k)  # [B, C, 2, H, K]
    # softmax(q k / sqrt(K) + bias, keys where key_mask) v; fused kernels where the backend has them (cuDNN).
    o = jax.nn.dot_product_attention(q, kv[:, :, 0], kv[:, :, 1], bias=bias_BxHxSxC,
                                     mask=key_mask_BxC[:, None, None, :])  # [B, S, H, K]
    x = x_BxSxE + self.out(o.reshape(b, s, e))
    return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.ln2(x))))


class PFNSurrogate(nnx.Module):
  """p(y | x, context) as a full-support bar distribution with an infeasible class."""

  def __init__(self, config: PFNConfig, rngs: nnx.Rngs):
    if config.num_bins < 3:
      raise ValueError(f"PFNConfig needs >= 4 borders (3 bars), got {len(config.borders)}.")
    self.config = c = config
    e, g = c.d_model, c.d_slot
    n_four = 2 * c.num_fourier + 1
    if c.value_input == "tokens":  # The numeric-token ablation: a float/int value is its bin's embedding.
      self.value_token_emb = nnx.Embed(c.policy_tokens, g, rngs=rngs)
    else:
      self.value_proj = nnx.Linear(n_four, g, rngs=rngs)
    self.category_emb = nnx.Embed(c.max_categories, g, rngs=rngs)
    self.inactive = nnx.Param(jax.random.normal(rngs.params(), (g,)) * 0.5)
    self.slot_emb = nnx.Embed(c.num_slot_ids, g, rngs=rngs)
    self.kind_emb = nnx.Embed(4, g, rngs=rngs)
    self.levels_proj = nnx.Linear(1, g, rngs=rngs)
    self.slot_out = nnx.Linear(g, e, rngs=rngs)
    self.y_proj = nnx.Linear(9, e, rngs=rngs)
    self.y_infeasible = nnx.Param(jax.random.normal(rngs.params(), (e,)) * 0.5)
    self.y_query = nnx.Param(jax.random.normal(rngs.params(), (e,)) * 0.5)
    self.global_token = nnx.Param(jax.random.normal(rngs.params(), (e,)) * 0.02)
    self.blocks = nnx.List([Block(e, c.num_heads, c.mlp_ratio, rngs) for _ in range(c.num_layers)])
    self.ln_f = nnx.LayerNorm(e, rngs=rngs)
    self.head = nnx.Linear(e, c.num_bins + 1, rngs=rngs)
    if c.distance_bias:  # Variogram features, kind one-hot, log levels -> a weight per layer and head.
      self.ard_in = nnx.Linear(2 * len(VARIOGRAM_SCALES) + 5, c.d_ard, rngs=rngs)
      self.ard_out = nnx.Linear(c.d_ard, c.num_layers * c.num_heads, rngs=rngs,
                                kernel_init=nnx.initializers.zeros, bias_init=nnx.initializers.zeros)
    if c.policy_tokens > 0:
      self.undecoded = nnx.Param(jax.random.normal(rngs.params(), (g,)) * 0.5)
      self.y_policy = nnx.Param(jax.random.normal(rngs.params(), (e,)) * 0.5)
      self.policy_slot = nnx.Linear(g, e, rngs=rngs)
      self.policy_hidden = nnx.Linear(e, e, rngs=rngs)
      self.policy_out = nnx.Linear(e, c.policy_tokens, rngs=rngs)
    if c.policy_copy:
      self.copy_q = nnx.Linear(e, e, rngs=rngs)
      self.copy_k = nnx.Linear(e, e, rngs=rngs)
      self.copy_out = nnx.Linear(COPY_HEADS * g, e, rngs=rngs)

  # -- Embedding -------------------------------------------------------------

  def slot_embedding(self, kinds_BxD, num_values_BxD, slot_ids_BxD):
    """[B, D, G]: each slot's identity, kind and number of levels."""
    lv = jnp.log1p(num_values_BxD.astype(jnp.float32))[..., None] / math.log1p(1000.0)
    return self.slot_emb(slot_ids_BxD) + self.kind_emb(kinds_BxD) + self.levels_proj(lv)

  def embed_x(self, x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD=None):
    """[B, N, E]: the x part of each trial's embedding (policy rows: `decoded`, the slots known so far)."""
    h = self._slot_values(x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD)
    used = (kinds_BxD > 0)[:, None, :, None]
    # Sum over the used slots, [B, N, G] -> E: a masked sum XLA fuses with the GELU (an einsum with the mask
    # was a matmul over a transposed copy of [B, N, D, G]; docs/throughput.md).
    return self.slot_out(jnp.sum(jnp.where(used, h, 0.0), axis=2))

  def slot_values(self, x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD=None):
    """[B, N, D, G]: each trial's per-slot vectors gelu(A v_d + c_d) (0 on unused slots)."""
    h = self._slot_values(x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD)
    return jnp.where((kinds_BxD > 0)[:, None, :, None], h, 0.0)

  def _slot_values(self, x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD=None):
    """slot_values before unused slots are zeroed.

    The value of an active float/int slot (its Fourier features, or token one-hot, times A plus a bias), of an
    active categorical slot (its category's embedding) and of an inactive slot (the learned inactive vector)
    are one matmul: [features * numeric, one-hot * categorical, inactive, numeric] @ [A; category table; inactive;
    bias of A] (the bias as a column: adding it after the product materialized a [B, N, D, G] mask).
    (Two products and two selects over [B, N, D, G] cost 10 % more of the v2 train step; docs/throughput.md.)
    """
    c = self.config
    slot_BxDxG = self.slot_embedding(kinds_BxD, num_values_BxD, slot_ids_BxD)
    is_cat = (kinds_BxD == KIND_CATEGORICAL)[:, None, :]  # [B, 1, D]
    numeric, categorical = active_BxNxD & ~is_cat, active_BxNxD & is_cat  # [B, N, D]
    if c.value_input == "tokens":  # The numeric-token ablation: a float/int value is its bin's embedding.
      bins = jnp.clip(jnp.floor(x_BxNxD * c.policy_tokens), 0, c.policy_tokens - 1).astype(jnp.int32)
      feats = jax.nn.one_hot(bins, c.policy_tokens, dtype=jnp.float32)
      table, bias = self.value_token_emb.embedding[...], None
    else:
      feats = fourier_features(jnp.clip(x_BxNxD, 0.0, 1.0), c.num_fourier, c.max_frequency)
      table, bias = self.value_proj.kernel[...], self.value_proj.bias[...]
    cat_idx = jnp.clip(jnp.round(x_BxNxD).astype(jnp.int32), 0, c.max_categories - 1)
    # One-hot matmul, not a gather: the gather's gradient is a scatter, very slow on CPU.
    one_hot = jax.nn.one_hot(cat_idx, c.max_categories, dtype=feats.dtype)
    cols = [jnp.where(numeric[..., None], feats, 0.0), jnp.where(categorical[..., None], one_hot, 0.0),
            (~active_BxNxD)[..., None].astype(feats.dtype)]
    rows = [table, self.category_emb.embedding[...], self.inactive[...][None]]
    if bias is not None:  # A float/int value's bias as one more input column (1 where numeric) and weight row.
      cols, rows = cols + [numeric[..., None].astype(feats.dtype)], rows + [bias[None]]
    v = jnp.concatenate(cols, axis=-1) @ jnp.concatenate(rows, axis=0)  # [B, N, D, G]
    if decoded_BxNxD is not None:
      v = jnp.where(decoded_BxNxD[..., None], v, self.undecoded[...])
    return jax.nn.gelu(v + slot_BxDxG[:, None])

  def embed_y(self, z_BxN, feasible_BxN, context_BxN):
    """[B, N, E]: the y part (context objective, infeasible, or query)."""
    y = self.y_proj(z_features(jnp.where(context_BxN & feasible_BxN, z_BxN, 0.0)))
    y = jnp.where(feasible_BxN[..., None], y, self.y_infeasible[...])
    return jnp.where(context_BxN[..., None], y, self.y_query[...])

  def embed(self, batch: SurrogateBatch):
    """[B, N, E] trial embeddings."""
    hx = self.embed_x(batch.x, batch.active, batch.kinds, batch.num_values, batch.slot_ids)
    return hx + self.embed_y(batch.z, batch.feasible, batch.context)

  # -- Distance bias ---------------------------------------------------------

  def relevance(self, batch: SurrogateBatch):
    """float [L, B, H, D] > 0: per layer, head and slot, the distance weights lam of the context (an unused
    slot's weight has no effect: its pair distance is 0)."""
    c = self.config
    known = batch.context & batch.valid & batch.feasible
    feats = slot_variogram(batch.x, batch.active, batch.kinds, batch.z, known)  # [B, D, 2 S]
    lv = jnp.log1p(batch.num_values.astype(jnp.float32))[..., None] / math.log1p(1000.0)
    desc = jnp.concatenate([feats, jax.nn.one_hot(batch.kinds, 4, dtype=feats.dtype), lv], axis=-1)
    # Log-parametrized (start at 1, multiplicative steps): a GP's 1 / (2 l^2) spans 0.1 to 1000 on the unit cube.
    lam = jnp.exp(jnp.clip(self.ard_out(jax.nn.gelu(self.ard_in(desc))), -8.0, 7.0))  # [B, D, L H]
    b, d = batch.kinds.shape
    return lam.reshape(b, d, c.num_layers, c.num_heads).transpose(2, 0, 3, 1)

  def _biases(self, lam_LxBxHxD, xq, aq, xc, ac, kinds, with_global_query: bool, known_q=None):
    """Per-layer logit biases, a list of L arrays [B, H, S, 1 + C] (0 for the global token; a zero row first for
    it as a query).

    known_q: bool [B, S, D], the query slots that count (policy rows: the decoded ones); default all.
    One product over the slot axis for all layers, in the slot-major layout (`pair_distance_by_slot`);
    each layer's slice is padded on its own, so XLA fuses the pad into that layer's attention instead of
    copying all L layers' biases (docs/throughput.md).
    """
    delta = pair_distance_by_slot(xq, aq, xc, ac, kinds)  # [B, D, S, C]
    if known_q is not None:
      delta = delta * jnp.swapaxes(known_q, 1, 2)[..., None]
    l, b, h, d = lam_LxBxHxD.shape
    s, c = delta.shape[2:]
    lam_BxKxD = lam_LxBxHxD.transpose(1, 0, 2, 3).reshape(b, l * h, d)
    bias = _slot_product(lam_BxKxD, delta.reshape(b, d, s * c)).reshape(b, l, h, s, c)
    pad = [(0, 0)] * 2 + [(1 if with_global_query else 0, 0), (1, 0)]
    return [jnp.pad(-bias[:, i], pad) for i in range(l)]

  # -- Forward ---------------------------------------------------------------

  def _inputs(self, batch: SurrogateBatch):
    """The backbone's input [B, 1 + N, E] (global token first), key mask [B, 1 + N], the distance weights
    [L, B, H, D] (zeros without distance bias) and the per-layer logit biases (None without)."""
    h = self.embed(batch)
    b = h.shape[0]
    key_mask = jnp.concatenate([jnp.ones((b, 1), bool), batch.context & batch.valid], axis=1)
    h = jnp.concatenate([jnp.broadcast_to(self.global_token[...], (b, 1, h.shape[-1])), h], axis=1)
    c = self.config
    if not c.distance_bias:
      return h, key_mask, jnp.zeros((c.num_layers, b, c.num_heads, batch.kinds.shape[1])), [None] * len(self.blocks)
    lam = self.relevance(batch)
    return h, key_mask, lam, self._biases(lam, batch.x, batch.active, batch.x, batch.active, batch.kinds, True)

  def __call__(self, batch: SurrogateBatch):
    """float [B, N, Y + 1] logits at every position (context positions too; the loss uses queries)."""
    h, key_mask, _, biases = self._inputs(batch)
    for blk, bias in zip(self.blocks, biases):
      h = blk(h, h, key_mask, bias)
    return self.head(self.ln_f(h[:, 1:]))

  def with_policy(self, batch: SurrogateBatch, rows: PolicyRows):
    """(bar logits float [B, N, Y + 1] as `__call__`, policy logits float [B, R, D, V] of R policy rows).

    The rows are queries of the batch's context (one pass; they change nothing else).
    """
    h, key_mask, lam, biases = self._inputs(batch)
    n1 = h.shape[1]
    h = jnp.concatenate([h, self._embed_policy(rows, batch.kinds, batch.num_values, batch.slot_ids)], 1)
    if self.config.distance_bias:
      rb = self._biases(lam, rows.x, rows.active, batch.x, batch.active, batch.kinds, False, rows.decoded)
      biases = [jnp.concatenate([b, r], axis=2) for b, r in zip(biases, rb)]  # L x [B, H, 1 + N + R, 1 + N]
    for blk, bias in zip(self.blocks, biases):
      h = blk(h, h[:, :n1], key_mask, bias)
    h = self.ln_f(h)
    copy = None
    if self.config.policy_copy:
      copy = (h[:, 1:n1], self.slot_values(batch.x, batch.active, batch.kinds, batch.num_values, batch.slot_ids),
              key_mask[:, 1:])
    return self.head(h[:, 1:n1]), self._policy_head(h[:, n1:], batch.kinds, batch.num_values, batch.slot_ids, copy)

  def encode_context(self, ctx: SurrogateBatch) -> "EncodedContext":
    """The context's per-layer inputs and what queries need beside them (inference cache).

    The context's states do not depend on any query, so candidates are
    scored against one encoding (`score_queries`).
    """
    h, key_mask, lam, biases = self._inputs(ctx)
    states = []
    for blk, bias in zip(self.blocks, biases):
      states.append(h)
      h = blk(h, h, key_mask, bias)
    if not self.config.policy_copy:
      return EncodedContext(jnp.stack(states), key_mask, ctx.x, ctx.active, lam)
    values = self.slot_values(ctx.x, ctx.active, ctx.kinds, ctx.num_values, ctx.slot_ids)
    return EncodedContext(jnp.stack(states), key_mask, ctx.x, ctx.active, lam, self.ln_f(h[:, 1:]), values)

  def score_queries(self, enc: "EncodedContext", queries: SurrogateBatch):
    """float [B, M, Y + 1] logits of M queries against an encoded context."""
    h = self.embed(queries)
    biases = [None] * len(self.blocks)
    if self.config.distance_bias:
      biases = self._biases(enc.relevance, queries.x, queries.active, enc.x, enc.active, queries.kinds, False)
    for l, (blk, bias) in enumerate(zip(self.blocks, biases)):
      h = blk(h, enc.states[l], enc.key_mask, bias)
    return self.head(self.ln_f(h))

  def policy_logits(self, enc: "EncodedContext", rows: PolicyRows, kinds_BxD, num_values_BxD, slot_ids_BxD):
    """float [B, R, D, V] next-token logits of every slot of R policy rows against an encoded context;
    tokens a slot cannot take (`token_mask`) are NEG_INF.

    Raises:
      ValueError: the model has no policy head (policy_tokens = 0).
    """
    h = self._embed_policy(rows, kinds_BxD, num_values_BxD, slot_ids_BxD)
    biases = [None] * len(self.blocks)
    if self.config.distance_bias:
      biases = self._biases(enc.relevance, rows.x, rows.active, enc.x, enc.active, kinds_BxD, False, rows.decoded)
    for l, (blk, bias) in enumerate(zip(self.blocks, biases)):
      h = blk(h, enc.states[l], enc.key_mask, bias)
    copy = (enc.final, enc.slot_values, enc.key_mask[:, 1:]) if self.config.policy_copy else None
    return self._policy_head(self.ln_f(h), kinds_BxD, num_values_BxD, slot_ids_BxD, copy)

  def _embed_policy(self, rows: PolicyRows, kinds_BxD, num_values_BxD, slot_ids_BxD):
    """[B, R, E]: policy rows' embeddings (decoded slots, the undecoded vector elsewhere; the policy y part)."""
    if self.config.policy_tokens <= 0:
      raise ValueError("This model has no policy head (PFNConfig.policy_tokens = 0).")
    hx = self.embed_x(rows.x, rows.active & rows.decoded, kinds_BxD, num_values_BxD, slot_ids_BxD, rows.decoded)
    return hx + self.y_policy[...]

  def _policy_head(self, h_BxRxE, kinds_BxD, num_values_BxD, slot_ids_BxD, copy=None):
    """float [B, R, D, V] masked next-token logits from the rows' final (normalized) states.

    copy (policy_copy): the context's final states [B, C, E], per-slot values [B, C, D, G], key mask [B, C].
    """
    slot_BxDxE = self.policy_slot(self.slot_embedding(kinds_BxD, num_values_BxD, slot_ids_BxD))
    inp = h_BxRxE[:, :, None, :] + slot_BxDxE[:, None]  # [B, R, D, E]
    if copy is not None:
      keys_BxCxE, values_BxCxDxG, mask_BxC = copy
      b, r, e = h_BxRxE.shape
      k = e // COPY_HEADS
      q = self.copy_q(h_BxRxE).reshape(b, r, COPY_HEADS, k)
      kk = self.copy_k(keys_BxCxE).reshape(b, -1, COPY_HEADS, k)
      logits = jnp.einsum("brhk,bchk->brhc", q, kk) / math.sqrt(k)
      w = jax.nn.softmax(jnp.where(mask_BxC[:, None, None, :], logits, NEG_INF), axis=-1)  # [B, R, H, C]
      copied = jnp.einsum("brhc,bcdg->brdhg", w, values_BxCxDxG)
      inp = inp + self.copy_out(copied.reshape(copied.shape[:3] + (-1,)))  # [B, R, D, E]
    hid = jax.nn.gelu(self.policy_hidden(inp))  # [B, R, D, E]
    logits = self.policy_out(hid)
    mask = token_mask(kinds_BxD, num_values_BxD, self.config.policy_tokens)[:, None]  # [B, 1, D, V]
    return jnp.where(mask, logits, NEG_INF)


@jax.custom_vjp
def _slot_product(lam_BxKxD, delta_BxDxX):
  """float [B, K, X] = lam @ delta per study: the distance bias's sum over slots of K = L H weights times the pair
  distances (X pairs). No gradient flows to delta (data); lam's gradient is delta @ g^T with g transposed first,
  so XLA transposes the [B, K, X] gradient where the layers' gradients are gathered into it, instead of
  recomputing the pair distances in a transposed layout (docs/throughput.md)."""
  return jnp.einsum("bkd,bdx->bkx", lam_BxKxD, delta_BxDxX)


def _slot_product_fwd(lam_BxKxD, delta_BxDxX):
  return _slot_product(lam_BxKxD, delta_BxDxX), delta_BxDxX


def _slot_product_bwd(delta_BxDxX, g_BxKxX):
  g_BxXxK = jnp.swapaxes(g_BxKxX, 1, 2)
  return jnp.swapaxes(jnp.einsum("bdx,bxk->bdk", delta_BxDxX, g_BxXxK), 1, 2), jnp.zeros_like(delta_BxDxX)


_slot_product.defvjp(_slot_product_fwd, _slot_product_bwd)


class EncodedContext(NamedTuple):
  """A context as `PFNSurrogate.score_queries` reads it (from `encode_context`)."""

  states: jax.Array  # float [L, B, 1 + C, E] per-layer inputs (global token first).
  key_mask: jax.Array  # bool [B, 1 + C] keys a query may attend to.
  x: jax.Array  # float [B, C, D] the context's unit values (distance bias).
  active: jax.Array  # bool [B, C, D].
  relevance: jax.Array  # float [L, B, H, D] distance weights (zeros without distance bias).
  final: jax.Array | None = None  # float [B, C, E] the context's final states (policy_copy only).
  slot_values: jax.Array | None = None  # float [B, C, D, G] the context's per-slot vectors (policy_copy only).


def create_model(config: PFNConfig, seed: int = 0) -> PFNSurrogate:
  return PFNSurrogate(config, nnx.Rngs(params=seed))
