"""The full-support bar distribution: closed forms against Monte Carlo, finite density everywhere."""

import numpy as np
import pytest

from optformer.model import bar
from optformer.model.bar import BarDistribution

BORDERS = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])


@pytest.fixture(scope="module")
def dist_and_samples():
  rng = np.random.default_rng(0)
  p = rng.dirichlet(np.ones(5), size=1)
  d = BarDistribution(p, BORDERS)
  n = 400_000
  b = rng.choice(5, size=n, p=p[0])
  w = np.diff(BORDERS)
  z = BORDERS[b] + rng.uniform(size=n) * w[b]
  sl, sr = d.tail_scales
  z = np.where(b == 0, BORDERS[1] - np.abs(rng.normal(size=n)) * sl, z)
  z = np.where(b == 4, BORDERS[4] + np.abs(rng.normal(size=n)) * sr, z)
  return d, z


def test_moments_cdf_quantiles_and_ei_match_monte_carlo(dist_and_samples):
  d, s = dist_and_samples
  se = s.std() / np.sqrt(len(s))
  assert d.mean[0] == pytest.approx(s.mean(), abs=5 * se)
  assert d.std[0] == pytest.approx(s.std(), rel=0.01)
  for c in (-3.0, -1.5, 0.2, 1.5, 2.5):
    assert d.expected_improvement(c)[0] == pytest.approx(np.maximum(s - c, 0).mean(), rel=0.02, abs=1e-3)
    assert d.cdf(c)[0] == pytest.approx((s <= c).mean(), abs=3e-3)
    assert d.probability_of_improvement(c)[0] == pytest.approx((s > c).mean(), abs=3e-3)
  for q in (0.01, 0.3, 0.9, 0.999):
    assert d.quantile(q)[0] == pytest.approx(np.quantile(s, q), abs=0.05)


def test_density_is_positive_everywhere_and_integrates_to_one(dist_and_samples):
  d, _ = dist_and_samples
  z = np.linspace(-30, 30, 60001)
  pdf = np.array([d.pdf(v)[0] for v in z[::10]])
  assert np.all(pdf > 0)
  assert np.trapezoid(pdf, z[::10]) == pytest.approx(1.0, abs=2e-3)
  assert np.isfinite(d.log_prob(1e6)[0]) and np.isfinite(d.log_prob(-1e6)[0])


def test_ei_exceeds_the_top_border_and_decreases_with_the_best(dist_and_samples):
  d, _ = dist_and_samples
  assert d.expected_improvement(BORDERS[-1] + 1.0)[0] > 0
  ei = [d.expected_improvement(c)[0] for c in np.linspace(-5, 5, 41)]
  assert np.all(np.diff(ei) < 0)


@pytest.mark.parametrize("cap", [-2.5, -1.5, 0.25, 0.7, 1.0, 1.8, 3.0])
def test_capped_ei_is_the_ei_of_min_z_cap(dist_and_samples, cap):
  d, s = dist_and_samples
  for c in (-3.0, -1.5, 0.2, 1.5, 2.5):
    want = np.maximum(np.minimum(s, cap) - c, 0).mean()
    assert d.expected_improvement(c, cap)[0] == pytest.approx(want, rel=0.02, abs=1e-3), (c, cap)
  assert d.expected_improvement(cap + 0.1, cap)[0] == 0.0
  np.testing.assert_array_equal(d.expected_improvement(0.2, np.inf), d.expected_improvement(0.2))


@pytest.mark.parametrize("lo, hi", [(-10.0, 10.0), (-1.5, 0.7), (0.2, 3.0), (-3.0, -1.2)])
def test_clipped_moments_match_monte_carlo(dist_and_samples, lo, hi):
  d, s = dist_and_samples
  c = np.clip(s, lo, hi)
  mean, std = d.clipped_moments(lo, hi)
  assert mean[0] == pytest.approx(c.mean(), abs=5 * c.std() / np.sqrt(len(c)) + 1e-9)
  assert std[0] == pytest.approx(c.std(), rel=0.01, abs=1e-6)


@pytest.mark.parametrize("lo, hi", [(-10.0, 10.0), (-1.5, 0.7), (0.2, 3.0), (-3.0, -1.2), (-0.6, -0.4)])
def test_expectations_of_censored_z_match_monte_carlo(dist_and_samples, lo, hi):
  d, s = dist_and_samples
  c = np.clip(s, lo, hi)
  funcs = [(lambda z: z, None), (lambda z: z**2, None), (lambda z: np.exp(2.0 * z), None),
           (lambda z: np.maximum(np.expm1(z) - 0.3, 0.0), np.log1p(0.3))]  # A kink at the knot.
  for f, knot in funcs:
    want, se = f(c).mean(), f(c).std() / np.sqrt(len(c))
    got = (d.probs @ d.expectations(f, lo, hi, knot))[0]
    assert got == pytest.approx(want, abs=5 * se + 1e-9), (lo, hi, knot)


def test_expectations_are_exact_for_polynomials_on_the_uniform_bars():
  d = BarDistribution(np.ones((1, 5)) / 5, BORDERS)
  ex = d.expectations(lambda z: z**3, -1.7, 0.8, knot=0.3)
  # E[clip(Z)^3] on bar [0, 0.5] (inside, split at the knot) and on bar [0.5, 1] (censored at 0.8): closed forms.
  assert ex[2] == pytest.approx(0.5**3 / 4, rel=1e-12)
  assert ex[3] == pytest.approx(((0.8**4 - 0.5**4) / 4 + 0.2 * 0.8**3) / 0.5, rel=1e-12)
  with pytest.raises(ValueError, match="lo < hi"):
    d.expectations(lambda z: z, 1.0, 1.0)


def test_a_little_mass_in_a_far_outer_bar_does_not_rank_a_bad_point_first():
  borders = np.array([-6500.0, -3.0, -1.0, 0.0, 1.0, 3.0, 430.0])
  bad = np.array([1e-3, 0.6, 0.3, 0.0989, 1e-4, 1e-3])  # Surely below the best (1.0), 0.1 % beyond z = 3.
  good = np.array([0.0, 0.0, 0.2, 0.4, 0.4, 0.0])  # Half-way likely to beat it by up to 2.
  d = BarDistribution(np.stack([bad, good]), borders)
  assert d.expected_improvement(1.0)[0] > d.expected_improvement(1.0)[1]  # Uncapped: the far bar decides.
  capped = d.expected_improvement(1.0, cap=10.0)
  assert capped[1] > 5 * capped[0]
  assert np.all(np.diff(d.log_expected_improvement(1.0, cap=10.0)) > 0)


def test_borders_from_samples_are_equal_mass_and_strictly_increasing():
  z = np.random.default_rng(1).normal(size=20000)
  e = bar.borders_from_samples(z, 10)
  assert len(e) == 11 and np.all(np.diff(e) > 0)
  counts = np.bincount(bar.bin_index(z, e), minlength=10)
  assert counts.min() > 0.09 * len(z)
  with pytest.raises(ValueError, match="distinct"):
    bar.borders_from_samples(np.ones(100), 10)


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="probs"):
    BarDistribution(np.ones((2, 4)), BORDERS)
  with pytest.raises(ValueError, match="increasing"):
    BarDistribution(np.ones((2, 5)), BORDERS[::-1])
