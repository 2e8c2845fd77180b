"""Output warping: a monotone map of the context's objectives before the model reads them, for the acquisition.

Why: the model's y map (optformer/model/ynorm.py) standardizes by the median and IQR of the whole context, so on
an objective whose good region is a near-flat plateau and whose bad region is far away (regularized linear
models in eval/sklearn_tasks.py) the differences among the best trials are tiny in z, and near-tied top values
share one of the model's bars (optformer/model/bar.py): expected improvement cannot rank them (issue 21, item 2;
docs/output_warping.md). A warp that squeezes the bad half and spreads the good one gives the model's resolution
to the values that matter. OSS Vizier's GP-bandit warps its labels so by default (the half-rank and log warps of
its output warper pipeline, vizier/pyvizier/converters/output_warpers.py, "create_default_warper"); the formulas
below follow the ones there.

On the feasible values y_1..y_n (larger is better; NaN, an infeasible trial, stays NaN):

  * "half_rank": values at or above the median m stay; a value below it becomes a Gaussian quantile of its rank
    at the good half's scale:

        y' = m + s * Phi^-1(0.5 (r - 0.5) / d)       for y < m,

    with r the value's rank among the distinct values (1 = the smallest), k the number of distinct values below
    m, d = k + 0.5 when m is one of the values (k otherwise), Phi^-1 the standard normal quantile function, and
    s = sqrt(mean over the distinct values u >= m of (u - m)^2), the root-mean-square distance of the good half
    from the median (of all the distinct values when that is 0: m is the largest value). The quantile is below
    0.5, so y' < m; the far-off bad values land within a few s of the median whatever their distance.
  * "half_rank+log": the half-rank warp, then Vizier's log warp

        y'' = 0.5 - log(1 + (c - 1) (max y' - y') / (max y' - min y')) / log(c),   c = 1.5,

    which maps the range to [-0.5, 0.5], best to 0.5, and stretches the values near the best c = 1.5 times as
    much as those near the worst (its slope falls from (c - 1) / log(c) to (c - 1) / (c log(c)) per range).
  * "none": the identity.

Properties (tests/test_output_warping.py): strictly increasing on the feasible values, so the best trial stays the
best, ties stay tied and EI's incumbent is the warped best; invariant under y -> a y + b (a > 0) after the model's
own standardization ("half_rank" is equivariant: warp(a y + b) = a warp(y) + b; "half_rank+log" is invariant).
Contexts with fewer than two distinct feasible values are returned as they are (the model's y map has its own
rules for one value and for ties).

The warp is an option of the acquisition only (`SearchConfig.output_warping`): `Optimizer.predict` and the
Surrogate predict in user units from the unwarped values.
"""

from __future__ import annotations

import numpy as np

WARPINGS = ("none", "half_rank", "half_rank+log")  # SearchConfig.output_warping's values.
LOG_WARP_OFFSET = 1.5  # c of the log warp (Vizier's default).


def half_rank(y) -> np.ndarray:
  """The half-rank warp (module docstring) of objectives y float [n] (larger is better; NaN kept), float64 [n].

  Raises:
    ValueError: an infinite value in y.
  """
  from scipy import stats  # Here, not at the top: `import optformer` stays light (docs/cold_start.md).

  y = _checked(y)
  ok = ~np.isnan(y)
  distinct = np.unique(y[ok])
  if len(distinct) < 2:
    return y
  m = float(np.median(y[ok]))
  good = distinct[distinct >= m]
  s = np.sqrt(np.mean((good - m) ** 2))
  if s == 0:  # The median is the largest value: the spread of all distinct values instead.
    s = np.sqrt(np.mean((distinct - m) ** 2))
  k = int(np.searchsorted(distinct, m, side="left"))  # Distinct values below the median.
  d = k + 0.5 * bool(np.any(distinct == m))
  bad = ok & (y < m)
  rank = np.searchsorted(distinct, y[bad], side="left") + 1  # 1 = the smallest distinct value.
  out = y.copy()
  out[bad] = m + s * stats.norm.ppf(0.5 * (rank - 0.5) / d)
  return out


def log_warp(y, offset: float = LOG_WARP_OFFSET) -> np.ndarray:
  """Vizier's log warp (module docstring) of objectives y float [n] (NaN kept), float64 [n] in [-0.5, 0.5].

  Raises:
    ValueError: an infinite value in y, or offset <= 1.
  """
  if not offset > 1:
    raise ValueError(f"The log warp's offset must be > 1, got {offset!r}.")
  y = _checked(y)
  ok = ~np.isnan(y)
  if len(np.unique(y[ok])) < 2:
    return y
  hi, lo = y[ok].max(), y[ok].min()
  out = y.copy()
  out[ok] = 0.5 - np.log1p((offset - 1) * (hi - y[ok]) / (hi - lo)) / np.log(offset)
  return out


def warp(y, warping: str) -> np.ndarray:
  """Objectives y float [n] (larger is better; NaN = infeasible, kept) under `warping`, one of WARPINGS.

  Raises:
    ValueError: an unknown warping, or an infinite value in y.
  """
  if warping not in WARPINGS:
    raise ValueError(f"output_warping must be one of {list(WARPINGS)}, got {warping!r}.")
  if warping == "none":
    return _checked(y)
  out = half_rank(y)
  return log_warp(out) if warping == "half_rank+log" else out


def _checked(y) -> np.ndarray:
  """float64 [n] copy of y; ValueError for an infinite value."""
  y = np.array(y, np.float64).reshape(-1)
  if np.any(np.isinf(y)):
    raise ValueError(f"Objectives must be finite or NaN (infeasible), got {y[np.isinf(y)][:3]}.")
  return y
