"""The trust region of the acquisition search: candidates near the trials told so far, in a region that grows.

Early in a study the surrogate's acquisition is least reliable far from every trial, and expected improvement
maximized over the whole box then lands on its corners (on BBOB, model v2 put most coordinates of trials 2-10 at the
bounds). OSS Vizier's GP-bandit designer restricts its acquisition optimization to a trust region around the
trials; this module is the same rule for `acquisition_search.search` (`SearchConfig.trust_region`). Source, read
for the facts, not copied: google/vizier, `vizier/_src/algorithms/designers/gp/acquisitions.py`, class
`TrustRegion` and its use in `GPBanditAcquisitionBuilder.build` (Song et al., "The Vizier Gaussian Process Bandit
Algorithm", 2024, describe the designer).

The region is the union of L-infinity balls in unit space, one around each trusted (told) trial, of radius

  r(n, D) = r_min + (0.5 - r_min) * n / (f * (D + 1))

with n the number of told trials, D the number of parameters of the search space, r_min = `min_radius` (Vizier:
0.2) and f = `dimension_factor` (Vizier: 5). The region is switched off once r >= 0.5, i.e. from
n >= f * (D + 1) trials on (Vizier does the same). Distances (`distance`), per parameter, in unit space:

  * Float: |u - t|;
  * Int and Discrete: max(0, |u - t| - g / 2), g the widest gap between adjacent levels in unit space, so a level
    that a value inside the ball snaps to counts as inside;
  * Categorical: never counted (Vizier caps one-hot distances at the radius: a category change never leaves
    the region);
  * a parameter inactive in the candidate or in the trial (conditional spaces): not counted.

A row's distance is the largest per-parameter distance to a trial, minimized over the trials; it is in the region
when that is <= r. Vizier scores rows outside the region as -1e12 - distance; here they are mapped into it instead
(`restrict`), so that the pool keeps its size whatever the dimension.
"""

from __future__ import annotations

import numpy as np

from optformer import search_space as ss

OFF_RADIUS = 0.5  # From this radius on the region is off (Vizier's rule): every row counts as inside.


def radius(num_trials: int, num_parameters: int, min_radius: float = 0.2, dimension_factor: float = 5.0) -> float:
  """The trust radius (unit space, L-infinity) after `num_trials` told trials in a space of `num_parameters`:
  r = min_radius + (0.5 - min_radius) * num_trials / (dimension_factor * (num_parameters + 1)), growing linearly
  from min_radius; a value >= OFF_RADIUS (0.5) means the region is off.

  Raises:
    ValueError: num_trials < 0, num_parameters < 1, min_radius outside (0, 0.5] or dimension_factor <= 0.
  """
  if num_trials < 0 or num_parameters < 1:
    raise ValueError(f"radius needs num_trials >= 0 and num_parameters >= 1, got {num_trials} and {num_parameters}.")
  if not 0 < min_radius <= OFF_RADIUS or not dimension_factor > 0:
    raise ValueError(f"radius needs min_radius in (0, 0.5] and dimension_factor > 0, got {min_radius!r} and "
                     f"{dimension_factor!r}.")
  return min_radius + (OFF_RADIUS - min_radius) * num_trials / (dimension_factor * (num_parameters + 1))


def _half_gaps(space: ss.SearchSpace) -> np.ndarray:
  """float64 [D]: half the widest gap between adjacent levels in unit space (Int, Discrete); 0 for a Float; inf
  for a Categorical (never counted)."""
  out = np.zeros(len(space))
  for j, p in enumerate(space):
    if p.kind == ss.KIND_CATEGORICAL:
      out[j] = np.inf
    elif isinstance(p, ss.Int):  # The widest gap is the first (log scale) or every one (linear): low to low + 1.
      out[j] = 0.5 * p.to_unit(p.low + 1)
    elif p.kind == ss.KIND_ORDINAL:  # Discrete: levels equally spaced by index.
      out[j] = 0.5 * p.level_units()[1]
  return out


def _coordinate_distances(space: ss.SearchSpace, trusted_NxD: np.ndarray, units_MxD: np.ndarray) -> np.ndarray:
  """float64 [M, N, D]: per-parameter distances of each row to each trial (0 where a parameter does not count)."""
  half_gap = _half_gaps(space)
  counted = np.isfinite(half_gap)[None, None] & space.unit_active_mask(units_MxD)[:, None] & \
      space.unit_active_mask(trusted_NxD)[None]
  gap = np.where(np.isfinite(half_gap), half_gap, 0.0)
  d = np.maximum(np.abs(units_MxD[:, None] - trusted_NxD[None]) - gap, 0.0)  # [M, N, D]
  return np.where(counted, d, 0.0)


def distance(space: ss.SearchSpace, trusted_NxD, units_MxD) -> np.ndarray:
  """float64 [M]: each unit row's L-infinity distance to the nearest trusted row (module docstring: which parameters
  count and how); +inf for every row when there is no trusted row.

  Raises:
    ValueError: rows whose width is not the space's number of parameters.
  """
  trusted, units = (np.asarray(a, np.float64).reshape(-1, len(space)) for a in (trusted_NxD, units_MxD))
  if not len(trusted):
    return np.full(len(units), np.inf)
  if not len(units):
    return np.zeros(0)
  return _coordinate_distances(space, trusted, units).max(axis=2).min(axis=1)


def restrict(space: ss.SearchSpace, units_MxD, trusted_NxD, trust_radius: float) -> np.ndarray:
  """float64 [M', D], M' <= M: the unit rows mapped into the trust region of radius `trust_radius` around the
  trusted rows.

  Rows inside are kept unchanged. In a row outside, each counted parameter farther than the radius from the row's
  nearest trusted row t (by `distance`) is mapped affinely from [0, 1] onto [max(0, t - r), min(1, t + r)]
  (so a uniform coordinate stays uniform on the ball's extent), then the row is snapped to a configuration
  (`SearchSpace.snap`). Two passes (a parent's move may switch children on); rows still outside, and forbidden
  rows, are dropped. With no trusted row, or trust_radius >= OFF_RADIUS, the rows come back as they are.
  """
  units = np.asarray(units_MxD, np.float64).reshape(-1, len(space))
  trusted = np.asarray(trusted_NxD, np.float64).reshape(-1, len(space))
  if not len(trusted) or trust_radius >= OFF_RADIUS or not len(units):
    return units
  for _ in range(2):
    per = _coordinate_distances(space, trusted, units)  # [M, N, D]
    nearest = np.argmin(per.max(axis=2), axis=1)  # [M]
    far = per[np.arange(len(units)), nearest] > trust_radius  # [M, D]
    if not far.any():
      break
    t = trusted[nearest]
    lo, hi = np.maximum(t - trust_radius, 0.0), np.minimum(t + trust_radius, 1.0)
    units = space.snap(np.where(far, lo + np.clip(units, 0.0, 1.0) * (hi - lo), units))
  units = units[distance(space, trusted, units) <= trust_radius + 1e-12]
  return units[~space.unit_forbidden(units)] if space.forbidden else units
