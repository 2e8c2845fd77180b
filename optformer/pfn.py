"""Model v2: an order-free in-context surrogate (a prior-data fitted network).

Shape letters (batch first): B studies, N trials (context and queries,
padded), C context positions at inference, M queries, D parameter slots,
E model width, H heads, K head width, G slot hidden width, Y bars.

One position per trial (PFNs, Müller et al., ICLR 2022): its embedding is
  * the x part: sum over the trial's active parameter slots d of
    gelu(A v_d + c_d), projected to E. v_d are Fourier features of the unit
    value (float/int) or a learned embedding of the category, or a learned
    "inactive" vector (conditional parameter switched off); c_d embeds the
    slot's identity (a slot id, random in training), kind and number of
    levels. No weight depends on the number of slots, so a model serves up
    to `num_slot_ids` parameters and is invariant to their order;
  * the y part: features of the context objective z (optformer.ynorm), a
    learned "infeasible" vector, or a learned "query" vector (y unknown).
Attention: every position attends to a learned global token and to the
context positions only, never to queries: a query's prediction depends on
the context and on itself alone, and no positional encoding exists, so it
does not depend on the order of the context or on other queries.
Head: logits over Y bars of a full-support bar distribution in z units
(optformer.bar) plus one "infeasible" class, so p(feasible | x) = 1 - p_Y.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

NEG_INF = -1e9
KIND_CATEGORICAL = 3  # = search_space.KIND_CATEGORICAL = data_gen.prior.KIND_CATEGORICAL.


@dataclasses.dataclass(frozen=True)
class PFNConfig:
  """Architecture of model v2; saved next to every checkpoint (with the bar borders)."""

  d_model: int = 128  # E: width of the backbone (ablation: docs/model_v2.md).
  num_heads: int = 4  # H: attention heads.
  num_layers: int = 4  # Transformer blocks.
  mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * E.
  d_slot: int = 64  # G: hidden width of the per-slot encoder (summed over slots).
  num_fourier: int = 16  # Frequencies of the value features.
  max_frequency: float = 64.0  # Highest of them, in half-periods per unit interval.
  num_slot_ids: int = 64  # Most parameters a search space may have.
  max_categories: int = 64  # Most choices of a categorical parameter.
  borders: tuple = ()  # Y + 1 bar borders in z units (set from prior samples, see training.pfn_data).
  max_context: int = 256  # Longest context the inference buckets allow.

  @classmethod
  def tiny(cls, borders=None) -> "PFNConfig":
    b = tuple(np.linspace(-3, 3, 33).tolist()) if borders is None else tuple(borders)
    return cls(d_model=32, num_heads=2, num_layers=2, mlp_ratio=2, d_slot=32, num_fourier=4, num_slot_ids=8,
               max_categories=8, borders=b, max_context=64)

  @property
  def num_bins(self) -> int:
    return len(self.borders) - 1

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["borders"] = list(self.borders)
    return d

  @classmethod
  def from_dict(cls, d: dict) -> "PFNConfig":
    d = dict(d)
    d["borders"] = tuple(float(v) for v in d.get("borders", ()))
    return cls(**d)


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


def fourier_features(u, num: int, max_frequency: float):
  """[..., 2 num + 1] features of u in [0, 1]: u, sin/cos(pi f_k u), f_k log-spaced in [1, max_frequency]."""
  freqs = jnp.pi * jnp.geomspace(1.0, max_frequency, num)
  ang = u[..., None] * freqs
  return jnp.concatenate([u[..., None], jnp.sin(ang), jnp.cos(ang)], axis=-1)


def z_features(z):
  """[..., 9] bounded features of an unbounded normalized objective z."""
  zs = [jnp.tanh(z / s) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
  c = jnp.clip(z, -10.0, 10.0) / 10.0
  return jnp.stack(zs + [c, c * c, jnp.sin(2.0 * z / 3.0) * 0.5, jnp.cos(2.0 * z / 3.0) * 0.5], axis=-1)


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

  def __call__(self, x_BxSxE, src_BxCxE, key_mask_BxC):
    """x attends to src (keys where key_mask); returns the block's output for x, [B, S, E]."""
    b, s, e = x_BxSxE.shape
    c, k = src_BxCxE.shape[1], e // self.h
    q = self.q(self.ln1(x_BxSxE)).reshape(b, s, self.h, k)
    kv = self.kv(self.ln1(src_BxCxE)).reshape(b, c, 2, self.h, k)  # [B, C, 2, H, K]
    logits_BxHxSxC = jnp.einsum("bshk,bchk->bhsc", q, kv[:, :, 0]) / math.sqrt(k)
    logits_BxHxSxC = jnp.where(key_mask_BxC[:, None, None, :], logits_BxHxSxC, NEG_INF)
    w = jax.nn.softmax(logits_BxHxSxC, axis=-1)
    o = jnp.einsum("bhsc,bchk->bshk", w, kv[:, :, 1]).reshape(b, s, e)
    x = x_BxSxE + self.out(o)
    return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.ln2(x))))


class PFNSurrogate(nnx.Module):
  """p(y | x, context) as a full-support bar distribution with an infeasible class."""

  def __init__(self, config: PFNConfig, rngs: nnx.Rngs):
    if config.num_bins < 3:
      raise ValueError(f"PFNConfig needs >= 4 borders (3 bars), got {len(config.borders)}.")
    self.config = c = config
    e, g = c.d_model, c.d_slot
    n_four = 2 * c.num_fourier + 1
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

  # -- Embedding -------------------------------------------------------------

  def embed_x(self, x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD):
    """[B, N, E]: the x part of each trial's embedding."""
    c = self.config
    lv = jnp.log1p(num_values_BxD.astype(jnp.float32))[..., None] / math.log1p(1000.0)
    slot_BxDxG = self.slot_emb(slot_ids_BxD) + self.kind_emb(kinds_BxD) + self.levels_proj(lv)
    numeric = self.value_proj(fourier_features(jnp.clip(x_BxNxD, 0.0, 1.0), c.num_fourier, c.max_frequency))
    cat_idx = jnp.clip(jnp.round(x_BxNxD).astype(jnp.int32), 0, c.max_categories - 1)
    is_cat = (kinds_BxD == KIND_CATEGORICAL)[:, None, :, None]
    # One-hot matmul, not a gather: the gather's gradient is a scatter, very slow on CPU.
    categorical = jax.nn.one_hot(cat_idx, c.max_categories, dtype=numeric.dtype) @ self.category_emb.embedding[...]
    v = jnp.where(is_cat, categorical, numeric)  # [B, N, D, G]
    used = (kinds_BxD > 0)[:, None, :, None]
    v = jnp.where(active_BxNxD[..., None], v, self.inactive[...])
    h = jax.nn.gelu(v + slot_BxDxG[:, None]) * used
    return self.slot_out(jnp.sum(h, axis=2))  # [B, N, E]

  def embed_y(self, z_BxN, feasible_BxN, context_BxN):
    """[B, N, E]: the y part (context objective, infeasible, or query)."""
    y = self.y_proj(z_features(jnp.where(context_BxN & feasible_BxN, z_BxN, 0.0)))
    y = jnp.where(feasible_BxN[..., None], y, self.y_infeasible[...])
    return jnp.where(context_BxN[..., None], y, self.y_query[...])

  def embed(self, batch: SurrogateBatch):
    """[B, N, E] trial embeddings."""
    hx = self.embed_x(batch.x, batch.active, batch.kinds, batch.num_values, batch.slot_ids)
    return hx + self.embed_y(batch.z, batch.feasible, batch.context)

  # -- Forward ---------------------------------------------------------------

  def __call__(self, batch: SurrogateBatch):
    """float [B, N, Y + 1] logits at every position (context positions too; the loss uses queries)."""
    h = self.embed(batch)
    b = h.shape[0]
    g = jnp.broadcast_to(self.global_token[...], (b, 1, h.shape[-1]))
    key_mask = jnp.concatenate([jnp.ones((b, 1), bool), batch.context & batch.valid], axis=1)
    h = jnp.concatenate([g, h], axis=1)  # [B, 1 + N, E]
    for blk in self.blocks:
      h = blk(h, h, key_mask)
    return self.head(self.ln_f(h[:, 1:]))

  def encode_context(self, ctx: SurrogateBatch):
    """Per-layer inputs of the context, [L, B, 1 + C, E], and its key mask [B, 1 + C] (inference cache).

    The context's states do not depend on any query, so candidates are
    scored against one encoding (`score_queries`).
    """
    h = self.embed(ctx)
    b = h.shape[0]
    key_mask = jnp.concatenate([jnp.ones((b, 1), bool), ctx.context & ctx.valid], axis=1)
    h = jnp.concatenate([jnp.broadcast_to(self.global_token[...], (b, 1, h.shape[-1])), h], axis=1)
    states = []
    for blk in self.blocks:
      states.append(h)
      h = blk(h, h, key_mask)
    return jnp.stack(states), key_mask

  def score_queries(self, states_LxBxCxE, key_mask_BxC, queries: SurrogateBatch):
    """float [B, M, Y + 1] logits of M queries against an encoded context."""
    h = self.embed(queries)
    for l, blk in enumerate(self.blocks):
      h = blk(h, states_LxBxCxE[l], key_mask_BxC)
    return self.head(self.ln_f(h))


def create_model(config: PFNConfig, seed: int = 0) -> PFNSurrogate:
  return PFNSurrogate(config, nnx.Rngs(params=seed))
