"""The objective ("y") pipeline of model v2: one module for training and inference.

A query's normalization is fitted on exactly its context (the trials the
model sees with their objectives), never on the query itself, in training as
at inference. Objectives are oriented "larger is better" before they get here
(a minimized objective is negated by the caller).

Fitting on the feasible context values y_1..y_n (float64):

  1. standardize robustly: u = (y - median) / (IQR / 1.349) (mean and std
     when the IQR is 0), so one far-off trial does not set the scale;
  2. if n >= `min_power_points` distinct values: Yeo-Johnson power transform
     (Yeo & Johnson, Biometrika 2000, eq. 2.1) with lambda fitted by maximum
     likelihood on u (golden-section search over LAMBDA_RANGE, `_normmax`),
     so one very bad (or very good) trial cannot squeeze all others
     into a few bins; PFNs4BO (Müller et al., ICML 2023) power-transforms y
     the same way at test time;
  3. standardize again: z = (yj(u) - m2) / s2.

The map y -> z is strictly increasing, so quantiles and CDFs map exactly,
and densities pick up the Jacobian: log p_y(y) = log p_z(z(y)) + log z'(y).

Equivariance: every step after the first standardization sees the same
numbers for y and a y + b (a > 0), so z is invariant and predictions in user
units are equivariant. The first standardization keeps its squares in range
(the plain std is taken in units of the half-range), so objectives of 1e-170
or 1e300 get the same z as objectives of 1.

Without spread there is no scale in the data, and the scale is a choice:
  * one trial: z = y - y_1, one user unit per z unit, as in training (the
    prior's units; the model's input is z = 0 whatever the scale);
  * two or more trials, all equal (a tie): scale = TIE_RELATIVE_SCALE |y|
    (one user unit when y = 0; floored at the smallest normal float). A tie
    is the limit of contexts whose spread shrinks to zero, and their
    predictive spread shrinks with it (as a Gaussian process's fitted
    amplitude does on constant data); the floor keeps the distribution
    proper and resolvable in float64, and is relative, so ties at 1e-6, 1
    and 1e6 are predicted alike (equivariant under scaling, not under
    shifts). Training contexts do not tie (the prior's observation noise
    is continuous), so this choice does not reach training.
  * no feasible value: z = y.
`low` and `high` record the feasible context's range (the predictive's
support is bounded from it, `inference.support_z`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

LAMBDA_RANGE = (0.0, 2.0)  # Search interval of the fitted lambda: both sides stay unbounded, so the map inverts everywhere.
TIE_RELATIVE_SCALE = math.sqrt(np.finfo(np.float64).eps)  # Scale of a tied context per unit of |y| (1.5e-8; see above).


def yeo_johnson(u, lam: float) -> np.ndarray:
  """Yeo-Johnson transform of u float [...] (Yeo & Johnson 2000, eq. 2.1)."""
  u = np.asarray(u, np.float64)
  pos = u >= 0
  out = np.empty_like(u)
  up, un = u[pos], u[~pos]
  out[pos] = np.log1p(up) if abs(lam) < 1e-8 else np.expm1(lam * np.log1p(up)) / lam
  out[~pos] = -np.log1p(-un) if abs(lam - 2) < 1e-8 else -np.expm1((2 - lam) * np.log1p(-un)) / (2 - lam)
  return out


def yeo_johnson_inverse(v, lam) -> np.ndarray:
  """Inverse of `yeo_johnson`, float64 [...]; lam a float or an array that broadcasts against v.

  yj^-1(v) = (1 + lam v)^(1 / lam) - 1 for v >= 0 (exp(v) - 1 at lam = 0), mirrored with 2 - lam below 0.
  """
  v = np.asarray(v, np.float64)
  lam = np.asarray(lam, np.float64)
  a = np.abs(v)

  def branch(l):  # ((1 + l a)^(1 / l) - 1), exp(a) - 1 at l = 0.
    small = np.abs(l) < 1e-8
    return np.where(small, np.expm1(a), np.expm1(np.log1p(np.maximum(l * a, -1 + 1e-300)) / np.where(small, 1.0, l)))

  with np.errstate(all="ignore"):
    return np.where(v >= 0, branch(lam), -branch(2.0 - lam))


def yeo_johnson_log_derivative(u, lam: float) -> np.ndarray:
  """log d yj(u) / du, float [...]: (lam - 1) log(1 + u) for u >= 0, (1 - lam) log(1 - u) else."""
  u = np.asarray(u, np.float64)
  return np.where(u >= 0, (lam - 1) * np.log1p(np.abs(u)), (1 - lam) * np.log1p(np.abs(u)))


@dataclasses.dataclass(frozen=True)
class YTransform:
  """The fitted map y (user units, larger is better) -> z (the model's units).

  z = (yj((y - loc) / scale, lam) - loc2) / scale2, with yj the identity when
  `power` is False. All methods take and return float64 arrays of any shape.
  """

  loc: float
  scale: float  # > 0.
  lam: float = 1.0
  power: bool = False
  loc2: float = 0.0
  scale2: float = 1.0  # > 0.
  low: float = -math.inf  # Smallest feasible context value (user units, larger is better); -inf: unknown.
  high: float = math.inf  # Largest; inf: unknown.

  @classmethod
  def fit(cls, y, min_power_points: int = 4, power: bool = True) -> "YTransform":
    """Fits the map on context objectives y float [n] (NaN entries, infeasible trials, are ignored).

    Raises:
      ValueError: an infinite value in y.
    """
    y = np.asarray(y, np.float64).reshape(1, -1)
    if y.size == 0:  # An empty context (the policy decodes from it): the identity map, as for all-infeasible.
      y = np.full((1, 1), np.nan)
    if np.any(np.isinf(y)):
      raise ValueError(f"Objectives must be finite or NaN (infeasible), got {y[np.isinf(y)][:3]}.")
    fields = fit_batch(np.nan_to_num(y), ~np.isnan(y), min_power_points=min_power_points, power=power)
    return cls(**{k: (bool(v[0]) if k == "power" else float(v[0])) for k, v in fields.items()})

  def apply(self, y) -> np.ndarray:
    """z of y (NaN stays NaN)."""
    u = (np.asarray(y, np.float64) - self.loc) / self.scale
    v = yeo_johnson(u, self.lam) if self.power else u
    return (v - self.loc2) / self.scale2

  def invert(self, z) -> np.ndarray:
    """y of z (the inverse of `apply`)."""
    return self.invert_standardized(z) * self.scale + self.loc

  def invert_standardized(self, z) -> np.ndarray:
    """u = (y - loc) / scale of z: `invert` before its last affine step (values of order 1 near the context)."""
    v = np.asarray(z, np.float64) * self.scale2 + self.loc2
    return yeo_johnson_inverse(v, self.lam) if self.power else v

  def log_derivative(self, y) -> np.ndarray:
    """log dz/dy at y: add it to log p_z(z(y)) to get the log density in user units."""
    u = (np.asarray(y, np.float64) - self.loc) / self.scale
    d = yeo_johnson_log_derivative(u, self.lam) if self.power else np.zeros_like(u)
    return d - math.log(self.scale) - math.log(self.scale2)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def fit_batch(y_BxN, mask_BxN, min_power_points: int = 4, power: bool = True) -> dict[str, np.ndarray]:
  """Fits B transforms at once: the fields of `YTransform` as arrays [B] (training and inference).

  Args:
    y_BxN: float [B, N] finite objectives (entries outside the mask are ignored).
    mask_BxN: bool [B, N], the context's feasible trials of each row.

  Returns:
    loc, scale, lam, power, loc2, scale2 (see `YTransform`; scale of a tied row as in the module
    docstring), and low, high: each row's feasible range (-inf, inf without a feasible value).
  """
  y = np.asarray(y_BxN, np.float64)
  m = np.asarray(mask_BxN, bool)
  n = m.sum(1)
  big = np.finfo(np.float64).max
  lo = np.where(m, y, big).min(1, initial=big)
  hi = np.where(m, y, -big).max(1, initial=-big)
  spread = (n > 0) & (hi > lo)
  with np.errstate(all="ignore"):
    masked = np.where(m, y, np.nan)
    median = np.where(n > 0, np.nanmedian(np.where(n[:, None] > 0, masked, 0.0), axis=1), 0.0)
    q25, q75 = np.nanpercentile(np.where(n[:, None] > 0, masked, 0.0), [25, 75], axis=1)
    mean_, std_, _ = _mean_std(y, m)
    iqr = (q75 - q25) / 1.349  # The std of a normal distribution from its interquartile range.
    robust = np.isfinite(iqr) & (iqr > 0)
    mean, std = np.where(robust, median, mean_), np.where(robust, iqr, std_)
    overflow = spread & ~(np.isfinite(std) & np.isfinite(mean) & (std > 0))
    mean = np.where(overflow, 0.5 * lo + 0.5 * hi, mean)
    std = np.where(overflow, 0.5 * hi - 0.5 * lo, std)
  loc = np.where(spread, mean, np.where(n > 0, lo, 0.0))
  tie = (n >= 2) & ~spread & (lo != 0)
  tie_scale = np.maximum(TIE_RELATIVE_SCALE * np.abs(np.where(tie, lo, 1.0)), np.finfo(np.float64).tiny)
  scale = np.where(spread, std, np.where(tie, tie_scale, 1.0))
  u = np.where(m, (y - loc[:, None]) / scale[:, None], 0.0)
  distinct = np.array([len(np.unique(u[i, m[i]])) for i in range(len(u))]) if len(u) else np.zeros(0, int)
  use = spread & (distinct >= min_power_points) & power
  lam = np.where(use, np.clip(_normmax(u, m & use[:, None]), *LAMBDA_RANGE), 1.0)
  v = _yj_rows(u, lam)
  loc2, scale2, _ = _mean_std(v, m)
  use &= (scale2 > 0) & np.isfinite(scale2)
  return dict(loc=loc, scale=scale, lam=np.where(use, lam, 1.0), power=use,
              loc2=np.where(use, loc2, 0.0), scale2=np.where(use, scale2, 1.0),
              low=np.where(n > 0, lo, -np.inf), high=np.where(n > 0, hi, np.inf))


def apply_batch(fields: dict, y_BxN) -> np.ndarray:
  """z float64 [B, N] of y float [B, N] under B transforms from `fit_batch`."""
  u = (np.asarray(y_BxN, np.float64) - fields["loc"][:, None]) / fields["scale"][:, None]
  v = np.where(fields["power"][:, None], _yj_rows(u, fields["lam"]), u)
  return (v - fields["loc2"][:, None]) / fields["scale2"][:, None]


def invert_batch(fields: dict, z_BxK) -> np.ndarray:
  """y float64 [B, K] of z float [B, K] under B transforms from `fit_batch` (the inverse of `apply_batch`).

  z far outside the context's range may map to +-inf (float64 overflow of the power transform's inverse).
  """
  v = np.asarray(z_BxK, np.float64) * fields["scale2"][:, None] + fields["loc2"][:, None]
  u = np.where(fields["power"][:, None], yeo_johnson_inverse(v, np.asarray(fields["lam"], np.float64)[:, None]), v)
  return u * fields["scale"][:, None] + fields["loc"][:, None]


def _yj_rows(u_BxN, lam_B) -> np.ndarray:
  """Yeo-Johnson of each row with its own lambda."""
  u = np.asarray(u_BxN, np.float64)
  lam = np.asarray(lam_B, np.float64)[:, None]
  a = np.log1p(np.abs(u))
  with np.errstate(all="ignore"):
    pos = np.where(np.abs(lam) < 1e-8, a, np.expm1(lam * a) / np.where(np.abs(lam) < 1e-8, 1.0, lam))
    l2 = 2.0 - lam
    neg = -np.where(np.abs(l2) < 1e-8, a, np.expm1(l2 * a) / np.where(np.abs(l2) < 1e-8, 1.0, l2))
  return np.where(u >= 0, pos, neg)


def _mean_std(v_BxN, mask_BxN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(mean, std, log std) float [B] of each row's masked values, taken in units of the row's largest |v|, so
  the squares of 1e-170 do not underflow nor those of 1e200 overflow (std 0 gives log std -inf; a row with an
  infinite value gives mean and std NaN, log std inf). Rows without a masked value give 0, 0, -inf."""
  m = np.asarray(mask_BxN, bool)
  n = np.maximum(m.sum(1), 1)
  with np.errstate(all="ignore"):
    c = np.max(np.where(m, np.abs(v_BxN), 0.0), axis=1, initial=0.0)
    c = np.where(c > 0, c, 1.0)
    w = np.where(m, v_BxN / c[:, None], 0.0)
    mean = w.sum(1) / n
    var = np.where(m, (w - mean[:, None]) ** 2, 0.0).sum(1) / n
    finite = np.isfinite(c)
    log_std = np.where(finite, np.log(c) + 0.5 * np.log(var), np.inf)
    return np.where(finite, c * mean, np.nan), np.where(finite, c * np.sqrt(var), np.nan), log_std


def _normmax(u_BxN, mask_BxN, iterations: int = 40) -> np.ndarray:
  """float [B]: the Yeo-Johnson lambda in LAMBDA_RANGE maximizing the normal log-likelihood of each row.

  Profile log-likelihood (Yeo & Johnson 2000, Sec. 3):
  l(lam) = -n/2 log var(yj(u, lam)) + (lam - 1) sum sign(u) log(1 + |u|),
  maximized by golden-section search (vectorized over rows; l is unimodal
  in practice on this interval).
  """
  m = np.asarray(mask_BxN, bool)
  n = np.maximum(m.sum(1), 1)
  jac = np.where(m, np.sign(u_BxN) * np.log1p(np.abs(u_BxN)), 0.0).sum(1)

  def llf(lam):  # -n/2 log var as -n log std, overflow-free (`_mean_std`); a variance of 0 counts as 1e-300.
    log_std = _mean_std(_yj_rows(u_BxN, lam), m)[2]
    return -n * np.maximum(log_std, 0.5 * math.log(1e-300)) + (lam - 1.0) * jac

  g = (math.sqrt(5.0) - 1.0) / 2.0
  a = np.full(len(n), LAMBDA_RANGE[0])
  b = np.full(len(n), LAMBDA_RANGE[1])
  c, d = b - g * (b - a), a + g * (b - a)
  fc, fd = llf(c), llf(d)
  for _ in range(iterations):
    left = fc > fd
    b = np.where(left, d, b)
    a = np.where(left, a, c)
    c_new = np.where(left, b - g * (b - a), d)
    d_new = np.where(left, c, a + g * (b - a))
    f_new = llf(np.where(left, c_new, d_new))
    fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
    c, d = c_new, d_new
  return 0.5 * (a + b)


def log_derivative_batch(fields: dict, y_BxN) -> np.ndarray:
  """log dz/dy float64 [B, N] under B transforms from `fit_batch` (the user-units Jacobian)."""
  u = (np.asarray(y_BxN, np.float64) - fields["loc"][:, None]) / fields["scale"][:, None]
  lam = fields["lam"][:, None]
  d = np.where(u >= 0, (lam - 1) * np.log1p(np.abs(u)), (1 - lam) * np.log1p(np.abs(u)))
  d = np.where(fields["power"][:, None], d, 0.0)
  return d - np.log(fields["scale"])[:, None] - np.log(fields["scale2"])[:, None]
