"""The PFN's fixed features (no parameters): Fourier features of unit values, bounded features of the
objective z, per-slot pair distances of trials and the context's per-slot variograms (docs/model_v2.md,
"Distance-biased attention"). Shapes as in optformer/model/network.py.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

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


def pair_distance_by_slot(xa_BxSxD, act_BxSxD, xb_BxCxD, act_BxCxD, kinds_BxD):
  """float [B, D, S, C]: `pair_distance` with the slot axis second (the same values).

  The distance bias contracts the slot axis with per-layer, per-head weights; in this layout that
  product and its gradient are matmuls over contiguous [S C] rows, and the [B, D, S, C] array is
  written in its natural order (`pair_distance`'s layout made XLA compute it twice, once transposed,
  which cost 10 % of the v2 train step; docs/throughput.md).
  """
  xa, aa, xb, ab = (_slot_major(v.astype(jnp.float32)) for v in (xa_BxSxD, act_BxSxD, xb_BxCxD, act_BxCxD))
  xa, aa, xb, ab = xa[..., :, None], aa[..., :, None], xb[..., None, :], ab[..., None, :]
  diff = xa - xb
  cat = (kinds_BxD == KIND_CATEGORICAL)[:, :, None, None]
  d = jnp.where(cat, (jnp.abs(diff) > 0.5).astype(diff.dtype), jnp.square(jnp.clip(diff, -1.0, 1.0)))
  # With a = 1 (active) or 0: d where both are active, 1 where exactly one is, 0 where neither (exact in floats).
  both = aa * ab
  d = both * d + (aa + ab - 2.0 * both)
  return d * (kinds_BxD > 0).astype(d.dtype)[:, :, None, None]


def _slot_major(v_BxNxD):
  """float [B, D, N]: v transposed, as a product with the identity (exact for finite values: every sum has one
  nonzero term). A plain transpose is fused into `pair_distance_by_slot`'s loop, which then reads every one of
  its B D S C elements with a stride; a product is not fused, so the loop reads this small copy in order."""
  return jnp.einsum("bnd,nm->bdm", v_BxNxD, jnp.eye(v_BxNxD.shape[1], dtype=v_BxNxD.dtype))


def slot_variogram(x_BxNxD, active_BxNxD, kinds_BxD, z_BxN, known_BxN):
  """float [B, D, 2 S] per-slot features of the known trials (context, feasible, valid).

  For each lag scale s of VARIOGRAM_SCALES: the mean of (z_c - z_c')^2
  over pairs of known trials both active in the slot, weighted by
  exp(-delta / (2 s^2)) (delta: `pair_distance`), over the unweighted mean
  of all pairs (near 1: the slot does not explain z at that scale; near 0:
  it does), clipped to [0, 4]; and log1p of the weights' sum over 8 (how
  many pairs inform it). The empirical semivariogram (Matheron 1963) as a
  relevance estimate for the model to read; no gradient flows through it.

  Computed over unordered pairs (c < c', half the ordered ones: the sums are
  symmetric), a few studies at a time (`_VARIOGRAM_CHUNK`: the [B, P, D]
  pair arrays of a whole training batch overflow the CPU's cache and made
  this 8x slower), with one exp for the scales 0.4, 0.2, 0.1 and 0.05
  (each weight the previous one to the 4th power). Equal to the direct
  formula to float32 rounding (tests/test_pfn.py).
  """
  b = x_BxNxD.shape[0]
  c = math.gcd(b, _VARIOGRAM_CHUNK)
  chunk = lambda v: v.reshape((b // c, c) + v.shape[1:])
  sums = jax.lax.map(lambda a: _variogram_sums(*a), tuple(map(chunk, (x_BxNxD, active_BxNxD, kinds_BxD, z_BxN, known_BxN))))
  pairs_B, dz2_B, sw_BxDxS, num_BxDxS = (v.reshape((b,) + v.shape[2:]) for v in sums)
  total = dz2_B / jnp.maximum(pairs_B, 1.0)  # [B] mean (z_c - z_c')^2 over all known pairs.
  ratio = jnp.clip(num_BxDxS / jnp.maximum(sw_BxDxS, 1e-3) / jnp.maximum(total, 1e-6)[:, None, None], 0.0, 4.0)
  feats = jnp.stack([ratio, jnp.log1p(sw_BxDxS) / 8.0], axis=-1)  # [B, D, S, 2]
  return jax.lax.stop_gradient(feats.reshape(feats.shape[:2] + (-1,)))


_VARIOGRAM_CHUNK = 4  # Studies per pass of slot_variogram's loop.


def _variogram_sums(x_BxNxD, active_BxNxD, kinds_BxD, z_BxN, known_BxN):
  """slot_variogram's sums over ordered pairs of known trials (c != c'): pair count [B], sum of (z_c - z_c')^2
  [B], and per slot and scale the weights' sum and the weighted sum of (z_c - z_c')^2 [B, D, S]."""
  i, j = np.triu_indices(x_BxNxD.shape[1], 1)  # The P = N (N - 1) / 2 unordered pairs.
  pair_BxP = known_BxN[:, i] & known_BxN[:, j]
  dz2_BxP = jnp.square(z_BxN[:, i] - z_BxN[:, j]) * pair_BxP
  xa, xb, aa, ab = x_BxNxD[:, i], x_BxNxD[:, j], active_BxNxD[:, i], active_BxNxD[:, j]  # [B, P, D]
  diff = xa - xb
  cat = (kinds_BxD == KIND_CATEGORICAL)[:, None, :]
  delta = jnp.where(cat, (jnp.abs(diff) > 0.5).astype(diff.dtype), jnp.square(jnp.clip(diff, -1.0, 1.0)))
  both = aa & ab & pair_BxP[..., None] & (kinds_BxD > 0)[:, None, :]  # [B, P, D]
  sw, num, w = {}, {}, None
  for s in sorted(VARIOGRAM_SCALES, reverse=True):
    if w is not None and math.isclose(prev / s, 2.0):  # exp(-a / (2 (s/2)^2)) = exp(-a / (2 s^2))^4.
      w = jnp.square(jnp.square(w))
    else:
      w = jnp.exp(-delta / (2.0 * s * s))
    prev, wm = s, jnp.where(both, w, 0.0)
    sw[s], num[s] = 2.0 * jnp.sum(wm, 1), 2.0 * jnp.sum(wm * dz2_BxP[..., None], 1)  # [B, D]
  stack = lambda d: jnp.stack([d[s] for s in VARIOGRAM_SCALES], axis=-1)  # [B, D, S]
  return 2.0 * jnp.sum(pair_BxP, 1), 2.0 * jnp.sum(dz2_BxP, 1), stack(sw), stack(num)


def z_features(z):
  """[..., 9] bounded features of an unbounded normalized objective z."""
  zs = [jnp.tanh(z / s) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
  c = jnp.clip(z, -10.0, 10.0) / 10.0
  return jnp.stack(zs + [c, c * c, jnp.sin(2.0 * z / 3.0) * 0.5, jnp.cos(2.0 * z / 3.0) * 0.5], axis=-1)
