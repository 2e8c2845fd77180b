"""Full-support bar distribution: model v2's predictive distribution in z units.

The surrogate outputs probabilities p_b over Y bars between borders
e_0 < ... < e_Y (z units, see `optformer.model.ynorm`). Inner bars (1 .. Y-2)
have a uniform density p_b / w_b. The two outer bars are half-normal tails
(PFNs' `FullSupportBarDistribution`, Müller et al., ICLR 2022, Sec. 4.1 and
the PFNs repository): the left bar's mass p_0 is spread over (-inf, e_1] as
p_0 HN(e_1 - z; s_0), the right one's over [e_{Y-1}, inf) as
p_{Y-1} HN(z - e_{Y-1}; s_{Y-1}), with each scale chosen so that half of the
tail's mass lies within its bar's width: s = w / (sqrt(2) erfinv(1/2)).
The density is positive everywhere, so no value has zero likelihood and
expected improvement can exceed the top border.

Expectations of any f(clip(Z, lo, hi)) (moments in user units, EI of an
inverse-transformed value) are per-bar vectors shared by all rows
(`BarDistribution.expectations`), so N rows cost one [N, Y] @ [Y] product.

Closed forms (Y' ~ the distribution, c = best, maximizing):
  inner bar:  E[max(Y' - c, 0)] over [a, b] = ((b - c)^2 - (max(c, a) - c)^2) / (2 w)  for c < b;
  right tail: E[max(e + X - c, 0)], X ~ HN(s): for c <= e, (e - c) + s sqrt(2/pi);
              for c > e, with t = c - e: s sqrt(2/pi) exp(-t^2 / 2 s^2) - 2 t (1 - Phi(t / s));
  left tail:  E[max(e - X - c, 0)], with d = e - c > 0 (else 0):
              d (2 Phi(d / s) - 1) - s sqrt(2/pi) + 2 s phi(d / s).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfinv, ndtr, ndtri

HALF_MASS = math.sqrt(2.0) * float(erfinv(0.5))  # P(HN(s) < w) = 1/2 <=> s = w / HALF_MASS.
TAIL_QUADRATURE = 4096  # Midpoints in a half-normal tail's probability for its expectations (`expectations`).
BAR_QUADRATURE = 16  # Gauss-Legendre nodes per piece of an inner bar (exact for polynomials of degree <= 31).
SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(BAR_QUADRATURE)  # Nodes and weights on [-1, 1].


def borders_from_samples(z, num_bins: int) -> np.ndarray:
  """float64 [num_bins + 1] strictly increasing borders at equal-mass quantiles of samples z.

  Raises:
    ValueError: fewer than 2 bins or fewer distinct samples than bins.
  """
  if num_bins < 3:
    raise ValueError(f"num_bins must be >= 3 (two tails and one inner bar), got {num_bins}.")
  z = np.sort(np.asarray(z, np.float64).reshape(-1))
  z = z[np.isfinite(z)]
  if len(np.unique(z)) < num_bins:
    raise ValueError(f"Need at least {num_bins} distinct samples for {num_bins} bins, got {len(np.unique(z))}.")
  e = np.quantile(z, np.linspace(0.0, 1.0, num_bins + 1))
  # Ties at dense quantiles: spread them so borders strictly increase.
  for i in range(1, len(e)):
    if e[i] <= e[i - 1]:
      e[i] = np.nextafter(e[i - 1], np.inf) + 1e-9 * max(1.0, abs(e[i - 1]))
  return e


def bin_index(z, borders) -> np.ndarray:
  """int32 [...]: the bar holding each z (values beyond the outer borders go to the tails)."""
  borders = np.asarray(borders, np.float64)
  return np.clip(np.searchsorted(borders, z, side="right") - 1, 0, len(borders) - 2).astype(np.int32)


class BarDistribution:
  """N predictive distributions over the same bars, in z units.

  Args:
    probs: float [N, Y] bar probabilities (rows are renormalized).
    borders: float [Y + 1] strictly increasing bar borders, Y >= 3.

  Raises:
    ValueError: mismatched shapes or non-increasing borders.
  """

  def __init__(self, probs, borders):
    probs = np.asarray(probs, np.float64)
    borders = np.asarray(borders, np.float64)
    if probs.ndim != 2 or borders.shape != (probs.shape[1] + 1,) or probs.shape[1] < 3:
      raise ValueError(f"probs must be [N, Y >= 3] and borders [Y + 1]; got {probs.shape} and {borders.shape}.")
    if not np.all(np.diff(borders) > 0):
      raise ValueError("borders must be strictly increasing.")
    self.probs = probs / probs.sum(axis=1, keepdims=True)
    self.borders = borders
    w = np.diff(borders)
    self.widths = w
    self.tail_scales = (w[0] / HALF_MASS, w[-1] / HALF_MASS)  # Left, right.

  def __len__(self) -> int:
    return self.probs.shape[0]

  # -- Density and CDF -------------------------------------------------------

  def log_prob(self, z) -> np.ndarray:
    """float [N]: log density at z (scalar or float [N]); finite everywhere."""
    z = np.broadcast_to(np.asarray(z, np.float64), (len(self),))
    e, w = self.borders, self.widths
    b = bin_index(z, e)
    p = self.probs[np.arange(len(self)), b]
    sl, sr = self.tail_scales
    with np.errstate(divide="ignore"):
      inner = np.log(p) - np.log(w[b])
      left = np.log(p) + _log_half_normal(np.maximum(e[1] - z, 0.0), sl)
      right = np.log(p) + _log_half_normal(np.maximum(z - e[-2], 0.0), sr)
    return np.where(b == 0, left, np.where(b == len(w) - 1, right, inner))

  def pdf(self, z) -> np.ndarray:
    """float [N] > 0: density at z."""
    return np.exp(self.log_prob(z))

  def cdf(self, z) -> np.ndarray:
    """float [N]: P(Z <= z)."""
    z = np.broadcast_to(np.asarray(z, np.float64), (len(self),))
    e, w = self.borders, self.widths
    frac = np.clip((z[:, None] - e[None, :-1]) / w[None, :], 0.0, 1.0)  # [N, Y]
    sl, sr = self.tail_scales
    # Tails: P(HN >= e1 - z) for the left, P(HN <= z - e_{Y-1}) for the right.
    frac[:, 0] = 2.0 * ndtr(-np.maximum(e[1] - z, 0.0) / sl)
    frac[:, -1] = 2.0 * ndtr(np.maximum(z - e[-2], 0.0) / sr) - 1.0
    return np.clip(np.sum(self.probs * frac, axis=1), 0.0, 1.0)

  def quantile(self, q) -> np.ndarray:
    """float [N]: the q-quantile, q in (0, 1) scalar or float [N].

    Raises:
      ValueError: q outside (0, 1).
    """
    q = np.broadcast_to(np.asarray(q, np.float64), (len(self),))
    if np.any((q <= 0) | (q >= 1)):
      raise ValueError(f"quantile levels must be in (0, 1), got {q[(q <= 0) | (q >= 1)][:3]}.")
    from scipy.special import ndtri

    cum = np.cumsum(self.probs, axis=1)
    rows = np.arange(len(self))
    b = np.minimum((cum < q[:, None]).sum(axis=1), self.probs.shape[1] - 1)
    before = np.where(b > 0, cum[rows, np.maximum(b - 1, 0)], 0.0)
    p_b = np.maximum(self.probs[rows, b], 1e-300)
    frac = np.clip((q - before) / p_b, 1e-12, 1 - 1e-12)
    e, w = self.borders, self.widths
    sl, sr = self.tail_scales
    inner = e[b] + frac * w[b]
    left = e[1] - sl * ndtri(1.0 - frac / 2.0)  # P(HN >= d) = frac.
    right = e[-2] + sr * ndtri(0.5 + frac / 2.0)  # P(HN <= d) = frac.
    return np.where(b == 0, left, np.where(b == len(w) - 1, right, inner))

  # -- Moments and acquisition ----------------------------------------------

  def _bar_means(self) -> tuple[np.ndarray, np.ndarray]:
    """(mean float [Y], second moment float [Y]) of each bar's own density."""
    e, w = self.borders, self.widths
    c = 0.5 * (e[1:] + e[:-1])
    m1, m2 = c.copy(), c**2 + w**2 / 12.0
    sl, sr = self.tail_scales
    hn1, hn2 = lambda s: s * SQRT_2_PI, lambda s: s * s  # E[X], E[X^2] of HN(s).
    m1[0], m2[0] = e[1] - hn1(sl), e[1] ** 2 - 2 * e[1] * hn1(sl) + hn2(sl)
    m1[-1], m2[-1] = e[-2] + hn1(sr), e[-2] ** 2 + 2 * e[-2] * hn1(sr) + hn2(sr)
    return m1, m2

  @property
  def mean(self) -> np.ndarray:
    """float [N]."""
    return self.probs @ self._bar_means()[0]

  @property
  def variance(self) -> np.ndarray:
    """float [N] >= 0."""
    m1, m2 = self._bar_means()
    return np.maximum(self.probs @ m2 - (self.probs @ m1) ** 2, 0.0)

  @property
  def std(self) -> np.ndarray:
    return np.sqrt(self.variance)

  def expected_improvement(self, best, cap: float = math.inf) -> np.ndarray:
    """float [N] >= 0: E[max(min(Z, cap) - best, 0)] (maximizing; Jones et al. 1998), exact for this density.

    With the default cap (inf) this is the plain EI. A finite cap counts every improvement beyond
    `cap` as `cap - best` (the EI of min(Z, cap); 0 where best >= cap): the outer bars reach far
    (z of thousands) and carry mass no model drives to zero, and uncapped that mass alone can rank a
    known-bad point first.
    """
    return self.probs @ self._bar_improvement(float(best), float(cap))

  def log_expected_improvement(self, best, cap: float = math.inf) -> np.ndarray:
    """float [N]: log EI (as `expected_improvement`), finite (floored at log(1e-300)) for ranking far below the best."""
    return np.log(np.maximum(self.expected_improvement(best, cap), 1e-300))

  def probability_of_improvement(self, best) -> np.ndarray:
    """float [N] in [0, 1]: P(Z > best)."""
    return 1.0 - self.cdf(best)

  def upper_confidence_bound(self, beta: float = 4.0) -> np.ndarray:
    """float [N]: mean + sqrt(beta) std (Srinivas et al. 2010)."""
    return self.mean + math.sqrt(beta) * self.std

  def improvement_per_bar(self, best: float, cap: float = math.inf) -> np.ndarray:
    """float [Y] >= 0: E[max(min(Z, cap) - best, 0)] under each bar's own normalized density (the v_j of
    `expected_improvement` = probs @ v; optformer/model/ascent.py differentiates through the probs)."""
    return self._bar_improvement(float(best), float(cap))

  def _bar_improvement(self, c: float, cap: float = math.inf) -> np.ndarray:
    """float [Y]: E[max(min(Z, cap) - c, 0)] under each bar's own normalized density."""
    e, w = self.borders, self.widths
    if cap <= c:
      return np.zeros_like(w)
    a, b = e[:-1], e[1:]
    lo, hi = np.clip(c, a, b), np.clip(cap, a, b)
    # On [lo, hi] the improvement is z - c; above hi (z > cap) it is cap - c.
    out = ((hi - c) ** 2 - (lo - c) ** 2) / (2.0 * w) + ((cap - c) * (b - hi) / w if cap < math.inf else 0.0)
    sl, sr = self.tail_scales
    capped = lambda tail, edge, scale: tail(edge, scale, c) - (tail(edge, scale, cap) if cap < math.inf else 0.0)
    # min(Z, cap) - c = (Z - c) - max(Z - cap, 0) where cap > c, for the half-normal tails too.
    out[-1] = capped(_right_tail_ei, e[-2], sr)
    out[0] = capped(_left_tail_ei, e[1], sl)
    return out

  def clipped_moments(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) float [N] of clip(Z, lo, hi), lo < hi finite (`expectations` of z - lo and (z - lo)^2)."""
    m1 = self.probs @ self.expectations(lambda z: z - lo, lo, hi)
    m2 = self.probs @ self.expectations(lambda z: (z - lo) ** 2, lo, hi)
    return lo + m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0))

  def expectations(self, f, lo: float, hi: float, knot: float | None = None) -> np.ndarray:
    """float [Y]: E[f(clip(Z, lo, hi))] under each bar's own normalized density, lo < hi finite.

    Every row shares the bars, so an expectation of N rows is then one product, `probs @ expectations(...)`:
    O(N Y) after O(Y) evaluations of f, instead of quantile passes over all rows.

    Args:
      f: vectorized float64 [...] -> float64 [...], finite and smooth on [lo, hi] except at `knot`
        (e.g. the kink of an improvement max(g(z) - c, 0) at g(z) = c).
      lo, hi: the censoring interval: the mass of each bar below lo counts as f(lo), above hi as f(hi).
      knot: None, or a z where f may kink; the integration pieces split there.

    Inner bars (uniform density): BAR_QUADRATURE-point Gauss-Legendre on each piece of the bar inside
    [lo, hi], exact for polynomials of degree < 2 BAR_QUADRATURE. Half-normal tails: TAIL_QUADRATURE
    midpoints of the tail's probability on each piece (z = edge -+ s ndtri(S / 2) at survival level S).
    """
    e, w = self.borders, self.widths
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
      raise ValueError(f"expectations needs finite lo < hi, got lo={lo}, hi={hi}.")
    a, b = e[:-1], e[1:]
    p, q = np.clip(lo, a, b), np.clip(hi, a, b)  # [Y]: each bar's piece inside [lo, hi].
    k = q if knot is None else np.clip(float(knot), p, q)
    out = ((p - a) * f(np.float64(lo)) + (b - q) * f(np.float64(hi))) / w  # Censored mass at the ends.
    for u, v in ((p, k), (k, q)):
      z = 0.5 * (u + v)[:, None] + 0.5 * (v - u)[:, None] * _GL_X[None, :]  # [Y, BAR_QUADRATURE]
      out = out + 0.5 * (v - u) * (f(np.clip(z, lo, hi)) @ _GL_W) / w  # Empty pieces lie outside: f stays finite.
    sl, sr = self.tail_scales
    out[0] = _tail_expectation(f, e[1], -1.0, sl, lo, hi, knot)
    out[-1] = _tail_expectation(f, e[-2], 1.0, sr, lo, hi, knot)
    return out


def _tail_expectation(f, edge: float, side: float, s: float, lo: float, hi: float, knot) -> float:
  """E[f(clip(Z, lo, hi))] for Z = edge + side X, X ~ HN(s) (side -1: the left tail, +1: the right one)."""
  surv = lambda z: 2.0 * float(ndtr(-max(side * (z - edge), 0.0) / s))  # P(side (Z - edge) > side (z - edge)).
  p_lo = 1.0 - surv(lo) if side > 0 else surv(lo)  # P(Z < lo).
  p_hi = surv(hi) if side > 0 else 1.0 - surv(hi)  # P(Z > hi).
  out = p_lo * float(f(np.float64(lo))) + p_hi * float(f(np.float64(hi)))
  zl, zh = (max(lo, edge), hi) if side > 0 else (lo, min(hi, edge))
  if zl >= zh:  # No part of the tail inside [lo, hi].
    return out
  cuts = [zl, zh] if knot is None or not zl < knot < zh else [zl, float(knot), zh]
  mid = (np.arange(TAIL_QUADRATURE) + 0.5) / TAIL_QUADRATURE
  for u, v in zip(cuts[:-1], cuts[1:]):
    s_u, s_v = surv(u), surv(v)  # Survival levels of the piece's ends.
    levels = min(s_u, s_v) + abs(s_u - s_v) * mid
    z = edge - side * s * ndtri(levels / 2.0)  # side (z - edge) = -s ndtri(S / 2) >= 0.
    out += abs(s_u - s_v) * float(np.mean(f(z)))
  return out


def _log_half_normal(d, s):
  """log density of HN(s) at d >= 0."""
  return 0.5 * math.log(2.0 / math.pi) - math.log(s) - 0.5 * (d / s) ** 2


def _right_tail_ei(e: float, s: float, c: float) -> float:
  """E[max(e + X - c, 0)], X ~ HN(s)."""
  if c <= e:
    return (e - c) + s * SQRT_2_PI
  t = c - e
  return s * SQRT_2_PI * math.exp(-0.5 * (t / s) ** 2) - 2.0 * t * float(ndtr(-t / s))


def _left_tail_ei(e: float, s: float, c: float) -> float:
  """E[max(e - X - c, 0)], X ~ HN(s): the half-normal's partial expectation below d = e - c."""
  d = e - c
  if d <= 0:
    return 0.0
  # E[(d - X) 1{X < d}] with density 2 phi(x / s) / s on x >= 0.
  phi = math.exp(-0.5 * (d / s) ** 2) / math.sqrt(2 * math.pi)
  return d * (2.0 * float(ndtr(d / s)) - 1.0) - s * SQRT_2_PI + 2.0 * s * phi
