"""The PFN's fixed features (no parameters): Fourier features of unit values, bounded features of the
objective z, per-slot pair distances of trials and the context's per-slot variograms (docs/model_v2.md,
"Distance-biased attention"). Shapes as in optformer/model/network.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optformer.search_space import KIND_CATEGORICAL


def fourier_features(u, num: int, max_frequency: float):
  """[..., 2 num + 1] features of u in [0, 1]: u, sin/cos(pi f_k u), f_k log-spaced in [1, max_frequency]."""
  freqs = jnp.pi * jnp.geomspace(1.0, max_frequency, num)
  ang = u[..., None] * freqs
  return jnp.concatenate([u[..., None], jnp.sin(ang), jnp.cos(ang)], axis=-1)


VARIOGRAM_SCALES = (0.02, 0.05, 0.1, 0.2, 0.4)  # Lag scales (unit-interval distance) of slot_variogram.


def pair_distance(xa_BxSxD, act_BxSxD, xb_BxCxD, act_BxCxD, kinds_BxD):
  """float [B, S, C, D] per-slot distance of trial pairs: squared unit difference (float/int), mismatch
  (categorical); 1 where exactly one of the two is inactive, 0 where both are; 0 on unused slots."""
  diff = xa_BxSxD[:, :, None, :] - xb_BxCxD[:, None, :, :]
  cat = (kinds_BxD == KIND_CATEGORICAL)[:, None, None, :]
  both = act_BxSxD[:, :, None, :] & act_BxCxD[:, None, :, :]
  one = act_BxSxD[:, :, None, :] ^ act_BxCxD[:, None, :, :]
  d = jnp.where(cat, (jnp.abs(diff) > 0.5).astype(diff.dtype), jnp.square(jnp.clip(diff, -1.0, 1.0)))
  d = jnp.where(both, d, one.astype(d.dtype))
  return d * (kinds_BxD > 0)[:, None, None, :]


def slot_variogram(x_BxNxD, active_BxNxD, kinds_BxD, z_BxN, known_BxN):
  """float [B, D, 2 S] per-slot features of the known trials (context, feasible, valid).

  For each lag scale s of VARIOGRAM_SCALES: the mean of (z_c - z_c')^2
  over pairs of known trials both active in the slot, weighted by
  exp(-delta / (2 s^2)) (delta: `pair_distance`), over the unweighted mean
  of all pairs (near 1: the slot does not explain z at that scale; near 0:
  it does), clipped to [0, 4]; and log1p of the weights' sum over 8 (how
  many pairs inform it). The empirical semivariogram (Matheron 1963) as a
  relevance estimate for the model to read; no gradient flows through it.
  """
  n = x_BxNxD.shape[1]
  pair = known_BxN[:, :, None] & known_BxN[:, None, :] & ~jnp.eye(n, dtype=bool)[None]  # [B, N, N]
  dz2 = jnp.square(z_BxN[:, :, None] - z_BxN[:, None, :]) * pair
  total = jnp.sum(dz2, (1, 2)) / jnp.maximum(jnp.sum(pair, (1, 2)), 1.0)  # [B]
  delta = pair_distance(x_BxNxD, active_BxNxD, x_BxNxD, active_BxNxD, kinds_BxD)  # [B, N, N, D]
  both = (active_BxNxD[:, :, None, :] & active_BxNxD[:, None, :, :]) & pair[..., None] & (kinds_BxD > 0)[:, None, None]
  feats = []
  for s in VARIOGRAM_SCALES:
    w = jnp.exp(-delta / (2.0 * s * s)) * both
    sw = jnp.sum(w, (1, 2))  # [B, D]
    gamma = jnp.einsum("bnmd,bnm->bd", w, dz2) / jnp.maximum(sw, 1e-3)
    feats += [jnp.clip(gamma / jnp.maximum(total, 1e-6)[:, None], 0.0, 4.0), jnp.log1p(sw) / 8.0]
  return jax.lax.stop_gradient(jnp.stack(feats, axis=-1))


def z_features(z):
  """[..., 9] bounded features of an unbounded normalized objective z."""
  zs = [jnp.tanh(z / s) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
  c = jnp.clip(z, -10.0, 10.0) / 10.0
  return jnp.stack(zs + [c, c * c, jnp.sin(2.0 * z / 3.0) * 0.5, jnp.cos(2.0 * z / 3.0) * 0.5], axis=-1)
