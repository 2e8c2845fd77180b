"""The full-support bar distribution: closed forms against Monte Carlo, finite density everywhere."""

import numpy as np
import pytest

from optformer import bar
from optformer.bar import BarDistribution

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
