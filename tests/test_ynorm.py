"""The v2 y pipeline: context-only fit, invertible monotone map, affine equivariance, heavy tails."""

import numpy as np
import pytest
import scipy.stats

from optformer.model import ynorm
from optformer.model.ynorm import YTransform


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 1.7, 2.0])
def test_yeo_johnson_matches_scipy_and_inverts(lam):
  u = np.random.default_rng(0).normal(size=500) * 3
  v = ynorm.yeo_johnson(u, lam)
  np.testing.assert_allclose(v, scipy.stats.yeojohnson(u, lam), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(ynorm.yeo_johnson_inverse(v, lam), u, atol=1e-9)
  h = 1e-6
  num = np.log((ynorm.yeo_johnson(u + h, lam) - ynorm.yeo_johnson(u - h, lam)) / (2 * h))
  np.testing.assert_allclose(ynorm.yeo_johnson_log_derivative(u, lam), num, atol=1e-5)


def test_fitted_lambda_matches_scipy_maximum_likelihood():
  y = np.random.default_rng(1).gamma(2.0, size=80)
  t = YTransform.fit(y)
  q25, q75 = np.percentile(y, [25, 75])
  u = (y - np.median(y)) / ((q75 - q25) / 1.349)  # The robust first standardization.
  assert t.power
  assert t.lam == pytest.approx(scipy.stats.yeojohnson_normmax(u), abs=1e-4)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 30])
def test_z_is_invariant_under_positive_affine_maps(n):
  rng = np.random.default_rng(n)
  y, q = rng.normal(size=n), rng.normal(size=7) * 3
  t = YTransform.fit(y)
  for a, b in [(3.0, 7.0), (1e-3, -1e4), (250.0, 1e6)]:
    if n >= 2:
      np.testing.assert_allclose(YTransform.fit(a * y + b).apply(a * q + b), t.apply(q), atol=1e-6)
    else:  # No scale in one value: shift-equivariant, one user unit per z unit.
      np.testing.assert_allclose(YTransform.fit(y + b).apply(q + b), t.apply(q), atol=1e-6)


def test_a_single_value_uses_unit_scale_around_the_value():
  for y in ([4.2], [1004.2], [0.0, 0.0]):  # One trial as in training; a tie at 0 has no magnitude either.
    t = YTransform.fit(y)
    assert t.apply([y[0]])[0] == pytest.approx(0.0)
    assert t.apply([y[0] + 1.0])[0] == pytest.approx(1.0)


@pytest.mark.parametrize("value", [1.0, -3.0, 1e6, 1e-6, 1e-300, 1e300])
def test_a_tie_gets_a_scale_relative_to_its_magnitude(value):
  t = YTransform.fit([value] * 5)
  assert t.apply([value])[0] == 0.0
  assert t.scale == pytest.approx(max(ynorm.TIE_RELATIVE_SCALE * abs(value), np.finfo(float).tiny), rel=1e-12)
  assert t.invert([1.0])[0] > value and np.isfinite(t.invert([10.0])[0])
  assert (t.low, t.high) == (value, value)


@pytest.mark.parametrize("power", [False, True])
def test_tiny_and_huge_objectives_get_the_z_of_objectives_of_one(power):
  y = np.array([2.0] * 8 + [0.5, 1.2, 3.1, 4.0])  # The IQR is 0: the plain std, whose squares of 1e-170 underflow.
  z = YTransform.fit(y, power=power).apply(y)
  for a in (1e-170, 1e-300, 1e150):
    t = YTransform.fit(a * y, power=power)
    assert t.scale > 0
    np.testing.assert_allclose(t.apply(a * y), z, atol=1e-7)
    np.testing.assert_allclose(t.invert(z) / a, y, rtol=1e-7)  # lambda is searched to ~1e-8.


def test_map_is_increasing_and_inverts_with_a_consistent_jacobian():
  y = np.random.default_rng(2).standard_t(2, size=40)
  t = YTransform.fit(y)
  grid = np.linspace(y.min() - 5, y.max() + 5, 501)
  z = t.apply(grid)
  assert np.all(np.diff(z) > 0)
  np.testing.assert_allclose(t.invert(z), grid, atol=1e-8)
  h = 1e-6
  num = np.log((t.apply(grid + h) - t.apply(grid - h)) / (2 * h))
  np.testing.assert_allclose(t.log_derivative(grid), num, atol=1e-4)


def test_one_outlier_does_not_squeeze_the_other_values():
  rng = np.random.default_rng(3)
  y = rng.normal(size=50)
  y[0] = -1000.0  # One failed-looking trial.
  t = YTransform.fit(y)
  z = t.apply(y)
  assert t.power and np.ptp(z[1:]) > 3.0  # The other 49 values spread over several z units ...
  assert -10.0 < z[0] < z[1:].min()  # ... and the outlier stays in range, still the worst.
  plain = YTransform.fit(y, power=False).apply(y)
  assert plain[0] < -100.0  # Without the power transform it lands far in the tail.


def test_infeasible_values_are_ignored_and_infinite_values_refused():
  t = YTransform.fit([1.0, np.nan, 3.0])
  assert t.loc == pytest.approx(2.0)
  with pytest.raises(ValueError, match="finite"):
    YTransform.fit([1.0, np.inf])


def test_overflowing_span_gives_a_finite_map():
  t = YTransform.fit([1.7e308, -1e308])
  z = t.apply([1.7e308, -1e308, 0.0])
  assert np.all(np.isfinite(z)) and z[0] > z[2] > z[1]


def test_outliers_of_1e150_keep_a_finite_second_standardization():
  y = np.array([1e150, -1e150, 3.0, 4.0, 5.0, 6.0])  # Squares of the standardized outliers overflowed: z was all 0.
  t = YTransform.fit(y)
  z = t.apply(y)
  assert np.isfinite(t.scale2) and np.all(np.isfinite(z))
  assert z[0] > 1.0 > np.max(np.abs(z[2:])) and z[1] < -1.0  # The middle four fall within float64's resolution.
  np.testing.assert_allclose(t.invert(z[:2]), y[:2], rtol=1e-6)


def test_batch_fit_equals_row_fits_on_the_masked_context():
  rng = np.random.default_rng(4)
  y = rng.normal(size=(5, 20)) * rng.uniform(0.1, 10, size=(5, 1))
  mask = rng.uniform(size=(5, 20)) < 0.6
  fields = ynorm.fit_batch(y, mask)
  z = ynorm.apply_batch(fields, y)
  for i in range(5):
    t = YTransform.fit(np.where(mask[i], y[i], np.nan))
    np.testing.assert_allclose(z[i], t.apply(y[i]), atol=1e-9)
    np.testing.assert_allclose(ynorm.log_derivative_batch(fields, y)[i], t.log_derivative(y[i]), atol=1e-9)
