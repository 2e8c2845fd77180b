"""The surrogate's predictive distribution: a histogram over objective bins.

The model outputs probabilities p_b over Y bins [e_b, e_{b+1}); within a bin
the density is uniform (the "Riemann" or bar distribution of PFNs, Müller
et al., ICLR 2022, Sec. 4.1). Everything below is exact for that density:

  mean        = sum_b p_b (e_b + e_{b+1}) / 2
  variance    = sum_b p_b (c_b^2 + w_b^2 / 12) - mean^2,   c_b centre, w_b width
  cdf(y)      = sum_{b: e_{b+1} <= y} p_b + p_b' (y - e_b') / w_b'   (y in bin b')
  EI(best)    = E[max(Y - best, 0)] (maximize) or E[max(best - Y, 0)] (minimize),
                per bin p_b / w_b * integral of the improvement over the bin
                (Jones et al. 1998 define EI; the integral is elementary).
  PI(best)    = P(Y improves on best).
  UCB(beta)   = mean + sqrt(beta) std (maximize), mean - sqrt(beta) std (minimize).

Values are in the study's objective units (the normalization is undone), so
for `goal="minimize"` "improvement" means a smaller value.
"""

from __future__ import annotations

import numpy as np


class RiemannDistribution:
  """N predictive distributions over the same bins.

  Args:
    probs: float [N, Y] bin probabilities, rows summing to 1.
    edges: float [Y + 1] strictly increasing bin edges (objective units).
    goal: "minimize" or "maximize": the direction of improvement.

  Raises:
    ValueError: on mismatched shapes, non-increasing edges or a bad goal.
  """

  def __init__(self, probs, edges, goal: str = "maximize"):
    probs = np.asarray(probs, np.float64)
    edges = np.asarray(edges, np.float64)
    if probs.ndim != 2 or edges.shape != (probs.shape[1] + 1,):
      raise ValueError(f"probs must be [N, Y] and edges [Y + 1]; got {probs.shape} and {edges.shape}.")
    if not np.all(np.diff(edges) > 0):
      raise ValueError("edges must be strictly increasing.")
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    self.probs = probs / probs.sum(axis=1, keepdims=True)
    self.edges, self.goal = edges, goal

  def __len__(self) -> int:
    return self.probs.shape[0]

  @property
  def centers(self) -> np.ndarray:
    return 0.5 * (self.edges[1:] + self.edges[:-1])

  @property
  def widths(self) -> np.ndarray:
    return np.diff(self.edges)

  @property
  def mean(self) -> np.ndarray:
    """float [N]."""
    return self.probs @ self.centers

  @property
  def variance(self) -> np.ndarray:
    """float [N]."""
    second = self.probs @ (self.centers**2 + self.widths**2 / 12.0)
    return np.maximum(second - self.mean**2, 0.0)

  @property
  def std(self) -> np.ndarray:
    """float [N]."""
    return np.sqrt(self.variance)

  def cdf(self, y) -> np.ndarray:
    """float [N]: P(Y <= y) for a scalar y or per-row y float [N]."""
    y = np.broadcast_to(np.asarray(y, np.float64), (len(self),))
    frac = np.clip((y[:, None] - self.edges[None, :-1]) / self.widths[None, :], 0.0, 1.0)  # [N, Y]
    return np.clip(np.sum(self.probs * frac, axis=1), 0.0, 1.0)

  def pdf(self, y) -> np.ndarray:
    """float [N] density at y (0 outside the edges)."""
    y = np.broadcast_to(np.asarray(y, np.float64), (len(self),))
    b = np.searchsorted(self.edges, y, side="right") - 1
    inside = (b >= 0) & (b < len(self.widths))
    b = np.clip(b, 0, len(self.widths) - 1)
    return np.where(inside, self.probs[np.arange(len(self)), b] / self.widths[b], 0.0)

  def log_prob(self, y) -> np.ndarray:
    """float [N] log density at y (-inf outside the edges)."""
    with np.errstate(divide="ignore"):
      return np.log(self.pdf(y))

  def quantile(self, q: float) -> np.ndarray:
    """float [N]: the q-quantile, q in [0, 1] (linear within a bin).

    Raises:
      ValueError: q outside [0, 1].
    """
    if not 0.0 <= q <= 1.0:
      raise ValueError(f"quantile level must be in [0, 1], got {q!r}.")
    cum = np.cumsum(self.probs, axis=1)  # [N, Y]
    b = np.minimum((cum < q).sum(axis=1), self.probs.shape[1] - 1)
    rows = np.arange(len(self))
    before = np.where(b > 0, cum[rows, b - 1], 0.0)
    p_b = np.maximum(self.probs[rows, b], 1e-300)
    frac = np.clip((q - before) / p_b, 0.0, 1.0)
    return self.edges[b] + frac * self.widths[b]

  def expected_improvement(self, best: float) -> np.ndarray:
    """float [N] >= 0: expected improvement over `best` in the goal's direction."""
    a, b, c = self.edges[:-1], self.edges[1:], float(best)
    if self.goal == "maximize":
      m = np.clip(c, a, b)
      integral = ((b - c) ** 2 - (m - c) ** 2) / 2.0 * (c < b)
    else:
      m = np.clip(c, a, b)
      integral = ((c - a) ** 2 - (c - m) ** 2) / 2.0 * (c > a)
    return self.probs @ (integral / self.widths)

  def probability_of_improvement(self, best: float) -> np.ndarray:
    """float [N] in [0, 1]: P(Y > best) (maximize) or P(Y < best) (minimize)."""
    below = self.cdf(best)
    return 1.0 - below if self.goal == "maximize" else below

  def upper_confidence_bound(self, beta: float = 4.0) -> np.ndarray:
    """float [N]: optimistic value mean +/- sqrt(beta) std (Srinivas et al. 2010)."""
    sign = 1.0 if self.goal == "maximize" else -1.0
    return self.mean + sign * np.sqrt(beta) * self.std

  def __repr__(self) -> str:
    return f"RiemannDistribution(n={len(self)}, bins={self.probs.shape[1]}, goal={self.goal!r})"
