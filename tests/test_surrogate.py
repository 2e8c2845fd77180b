"""Surrogate, the scikit-learn-style regressor, on a tiny random-init model: shapes, units, input forms, errors."""

import math
import warnings

import numpy as np
import pytest

import optformer
from conftest import max_context, max_params
from optformer.search_space import Float, Int, SearchSpace
from optformer.surrogate import NotFittedError


def _objective(config):
  return (math.log10(config["learning_rate"]) + 3) ** 2 + config["units"] / 10 + (config["optimizer"] == "sgd")


@pytest.fixture(scope="module")
def data(mixed_space):
  """(X train: 6 dicts, y float [6], X query: 5 dicts) in mixed_space."""
  rng = np.random.default_rng(0)
  X = [mixed_space.sample(rng) for _ in range(6)]
  y = np.array([100.0 + 10.0 * _objective(c) for c in X])
  return X, y, [mixed_space.sample(rng) for _ in range(5)]


def _rows(space, configs, dtype=object):
  return np.array([[c[n] for n in space.names] for c in configs], dtype=dtype)


def _fit(space, model, X, y, **kw):
  return optformer.Surrogate(space, model=model, **kw).fit(X, y)


def test_fit_returns_self_and_predict_has_sklearn_shapes_and_dtypes(mixed_space, model, data):
  X, y, Q = data
  s = optformer.Surrogate(mixed_space, model=model)
  assert s.fit(X, y) is s
  assert s.X_train_ == [mixed_space.validate(c) for c in X] and s.n_features_in_ == 4
  np.testing.assert_array_equal(s.y_train_, y)
  mean = s.predict(Q)
  assert mean.shape == (5,) and mean.dtype == np.float64 and np.isfinite(mean).all()
  mean2, std = s.predict(Q, return_std=True)
  np.testing.assert_array_equal(mean, mean2)
  assert std.shape == (5,) and std.dtype == np.float64 and np.all(std > 0)
  empty_mean, empty_std = s.predict([], return_std=True)
  assert empty_mean.shape == empty_std.shape == (0,)


def test_dict_rows_and_array_inputs_agree(mixed_space, model, data):
  X, y, Q = data
  by_dict = _fit(mixed_space, model, X, y).predict(Q, return_std=True)
  for to_rows in (lambda c: _rows(mixed_space, c), lambda c: _rows(mixed_space, c).tolist()):
    by_rows = _fit(mixed_space, model, to_rows(X), list(y)).predict(to_rows(Q), return_std=True)
    np.testing.assert_array_equal(by_rows, by_dict)
  # An all-numeric space takes a plain float array, ints included as floats.
  space = SearchSpace([Float("x", -1.0, 1.0), Int("k", 1, 9)])
  rng = np.random.default_rng(1)
  configs = [space.sample(rng) for _ in range(5)]
  y2 = rng.normal(size=5)
  a = _fit(space, model, configs, y2).predict(configs)
  b = _fit(space, model, _rows(space, configs, np.float64), y2).predict(_rows(space, configs, np.float64))
  np.testing.assert_array_equal(a, b)


def test_predictions_are_in_objective_units(mixed_space, model, data):
  X, y, Q = data
  base_mean, base_std = _fit(mixed_space, model, X, y).predict(Q, return_std=True)
  for shift, scale in ((-1000.0, 1.0), (0.0, 0.001), (37.0, 250.0)):
    mean, std = _fit(mixed_space, model, X, shift + scale * y).predict(Q, return_std=True)
    np.testing.assert_allclose(mean, shift + scale * base_mean, rtol=1e-6, atol=1e-9 * abs(shift))
    np.testing.assert_allclose(std, scale * base_std, rtol=1e-6)


def test_minimizing_y_mirrors_maximizing_minus_y(mixed_space, model, data):
  X, y, Q = data
  lo = _fit(mixed_space, model, X, y, goal="minimize").predict_distribution(Q)
  hi = _fit(mixed_space, model, X, -y, goal="maximize").predict_distribution(Q)
  np.testing.assert_allclose(lo.mean, -hi.mean, rtol=1e-6)
  np.testing.assert_allclose(lo.std, hi.std, rtol=1e-6)
  np.testing.assert_allclose(lo.expected_improvement(), hi.expected_improvement(), rtol=1e-6, atol=1e-9)


def test_same_code_path_as_the_optimizer(mixed_space, model, data):
  """A Surrogate fitted on a study's trials predicts exactly what the study's Optimizer predicts."""
  X, y, Q = data
  opt = optformer.Optimizer(mixed_space, "maximize", model=model)
  for c, v in zip(X, y):
    opt.tell(c, v)
  want = opt.predict(Q)
  got = _fit(mixed_space, model, X, y, goal="maximize").predict_distribution(Q)
  np.testing.assert_array_equal(got.z.probs, want.z.probs)
  np.testing.assert_array_equal(got.p_feasible, want.p_feasible)
  np.testing.assert_array_equal(got.mean, want.mean)


def test_distribution_methods_agree_with_mean_and_std(mixed_space, model, data):
  X, y, Q = data
  s = _fit(mixed_space, model, X, y)
  dist = s.predict_distribution(Q)
  mean, std = s.predict(Q, return_std=True)
  assert isinstance(dist, optformer.model.inference.PFNPredictive) and len(dist) == 5 and dist.goal == "minimize"
  np.testing.assert_allclose(dist.mean, mean)
  np.testing.assert_allclose(dist.std, std)
  q = np.stack([dist.quantile(p) for p in (0.05, 0.5, 0.95)])
  assert np.all(q[0] < q[1]) and np.all(q[1] < q[2])
  assert np.all((q[0] < mean) & (mean < q[2]))
  for p, row in zip((0.05, 0.5, 0.95), q):
    np.testing.assert_allclose(dist.cdf(row), p, atol=1e-9)
  assert np.all(dist.pdf(mean) > 0) and np.isfinite(dist.log_prob(mean)).all()
  # Improvement defaults to the best y in the goal's direction (min for "minimize").
  ei, pi = dist.expected_improvement(), dist.probability_of_improvement()
  np.testing.assert_allclose(ei, dist.expected_improvement(y.min()))
  np.testing.assert_allclose(pi, dist.cdf(y.min()))
  assert np.all(ei >= 0) and np.all((pi >= 0) & (pi <= 1))
  np.testing.assert_allclose(dist.upper_confidence_bound(4.0), mean - 2.0 * std)


def test_a_query_prediction_does_not_depend_on_the_other_queries(mixed_space, model, data):
  X, y, Q = data
  s = _fit(mixed_space, model, X, y)
  np.testing.assert_allclose(s.predict(Q[:1] + Q[1:3])[0], s.predict(Q[:1] + Q[3:])[0], rtol=1e-6)


def test_sample_y_draws_from_the_bars(mixed_space, model, data):
  X, y, Q = data
  s = _fit(mixed_space, model, X, y)
  dist = s.predict_distribution(Q[:2])
  draws = s.sample_y(Q[:2], n_samples=5000, random_state=0)
  assert draws.shape == (2, 5000) and draws.dtype == np.float64
  np.testing.assert_array_equal(draws, s.sample_y(Q[:2], n_samples=5000, random_state=0))
  np.testing.assert_allclose(draws.mean(axis=1), dist.mean, atol=4 * dist.std.max() / np.sqrt(5000))
  np.testing.assert_allclose(draws.std(axis=1), dist.std, rtol=0.05)
  np.testing.assert_allclose(np.median(draws, axis=1), dist.quantile(0.5), atol=0.05 * dist.std.max())
  with pytest.raises(ValueError, match="n_samples"):
    s.sample_y(Q, n_samples=0)


def test_a_history_longer_than_the_context_warns_and_still_predicts(mixed_space, model):
  n = max_context(model) + 4
  rng = np.random.default_rng(2)
  X = [mixed_space.sample(rng) for _ in range(n)]
  y = rng.normal(size=n)
  with warnings.catch_warnings(record=True) as caught:  # At fit, as scikit-learn warns about its input.
    warnings.simplefilter("always")
    s = _fit(mixed_space, model, X, y)
  assert sum("context" in str(w.message) for w in caught) == 1
  mean = s.predict(X[:3])
  assert np.isfinite(mean).all() and len(s.X_train_) == n
  # The rows the model reads: the best half (minimizing: the smallest y) and the most recent ones.
  kept = s._posterior.context.y
  assert len(kept) == max_context(model) and -kept.max() == y.min()


def test_refit_replaces_the_context_and_a_failed_fit_keeps_the_old_one(mixed_space, model, data):
  X, y, Q = data
  s = _fit(mixed_space, model, X, y)
  before = s.predict(Q)
  with pytest.raises(ValueError, match="not finite"):
    s.fit(X, np.where(np.arange(6) == 2, np.nan, y))
  np.testing.assert_array_equal(s.predict(Q), before)
  s.fit(X[:3], y[:3])
  assert len(s.X_train_) == 3
  np.testing.assert_array_equal(s.predict(Q), _fit(mixed_space, model, X[:3], y[:3]).predict(Q))


def test_predict_before_fit_raises_not_fitted(mixed_space, model, data):
  s = optformer.Surrogate(mixed_space, model=model)
  for call in (s.predict, s.predict_distribution, s.sample_y):
    with pytest.raises(NotFittedError, match="fit"):
      call(data[2])
  assert issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_y_raises_naming_the_row(mixed_space, model, data, bad):
  X, y, _ = data
  with pytest.raises(ValueError, match=r"y\[4\] = .* not finite.*Optimizer"):
    _fit(mixed_space, model, X, np.where(np.arange(6) == 4, bad, y))


def _bad_inputs(space, X, y):
  first = dict(X[0])
  rows = _rows(space, X)
  return [
      ("wrong width", rows[:, :3], y, ValueError, r"X\[0\] has 3 values; the search space has 4 parameters"),
      ("wrong width list", [list(r) + [1] for r in rows], y, ValueError, "has 5 values"),
      ("unknown parameter", [{**first, "momentum": 0.9}] + X[1:], y, ValueError, r"X\[0\]: Unknown parameter.*'momentum'"),
      ("missing parameter", [{k: v for k, v in first.items() if k != "units"}] + X[1:], y, ValueError, r"X\[0\]: Missing.*'units'"),
      ("out of range", X[:5] + [{**first, "units": 400}], y, ValueError, r"X\[5\]: .*400"),
      ("unknown category", X[:5] + [{**first, "optimizer": "lion"}], y, ValueError, r"X\[5\]: .*'lion'"),
      ("wrong type", X[:5] + [{**first, "units": 4.5}], y, TypeError, r"X\[5\]: .*4.5"),
      ("X longer than y", X, y[:5], ValueError, "X has 6 rows but y has 5"),
      ("y longer than X", X[:5], y, ValueError, "X has 5 rows but y has 6"),
      ("empty", [], [], ValueError, "at least one trial"),
      ("1-D array", rows[0], y[:1], ValueError, "2-D"),
      ("1-D list", [0.1, 0.2], y[:2], ValueError, "2-D"),
      ("single dict", first, y[:1], TypeError, "wrap it in a list"),
      ("string array", rows.astype(str), y, TypeError, "array of strings"),
      ("mixed forms", [first, list(rows[1])], y[:2], TypeError, "mixes dicts and rows"),
      ("2-D y", X, np.stack([y, y], 1), ValueError, "1-D"),
      ("string y", X, [str(v) for v in y], TypeError, "numbers"),
      ("boolean y", X, y > np.median(y), TypeError, "got booleans"),  # Optimizer.tell refuses True too
      ("huge y", X, np.where(np.arange(len(y)) == 2, 1e151, y), ValueError, r"y\[2\] = 1e\+151 is beyond"),
  ]


@pytest.mark.parametrize("case", range(19))
def test_bad_fit_input_raises_a_clear_error(mixed_space, model, data, case):
  X, y, _ = data
  cases = _bad_inputs(mixed_space, X, y)
  assert len(cases) == 19
  _, bad_X, bad_y, error, match = cases[case]
  s = optformer.Surrogate(mixed_space, model=model)
  with pytest.raises(error, match=match):
    s.fit(bad_X, bad_y)
  with pytest.raises(NotFittedError):
    s.predict(X)


def test_bad_predict_input_raises_a_clear_error(mixed_space, model, data):
  X, y, Q = data
  s = _fit(mixed_space, model, X, y)
  with pytest.raises(ValueError, match=r"X\[0\] has 3 values"):
    s.predict(_rows(mixed_space, Q)[:, :3])
  with pytest.raises(ValueError, match=r"X\[1\]: Unknown parameter.*'momentum'"):
    s.predict([Q[0], {**Q[1], "momentum": 0.9}])


def test_y_as_a_column_vector_is_accepted(mixed_space, model, data):
  X, y, Q = data
  np.testing.assert_array_equal(_fit(mixed_space, model, X, y[:, None]).predict(Q), _fit(mixed_space, model, X, y).predict(Q))


def test_constructor_errors(mixed_space, model):
  with pytest.raises(ValueError, match="goal"):
    optformer.Surrogate(mixed_space, model=model, goal="max")
  d = max_params(model)
  with pytest.raises(ValueError, match=f"{d + 1} parameters"):
    optformer.Surrogate(SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(d + 1)]), model=model)
  with pytest.raises(TypeError, match="SearchSpace"):
    optformer.Surrogate([Float("x", 0.0, 1.0)], model=model)


class _Frame:
  """A stand-in for a pandas DataFrame: named columns, converts to an array."""

  def __init__(self, columns, rows):
    self.columns, self._rows = columns, rows

  def __array__(self, dtype=None, copy=None):
    return np.array(self._rows, dtype=object)


def test_a_data_frame_must_have_the_space_columns_in_order(mixed_space, model, data):
  X, y, Q = data
  rows = _rows(mixed_space, X)
  s = _fit(mixed_space, model, _Frame(mixed_space.names, rows), y)
  np.testing.assert_array_equal(s.predict(Q), _fit(mixed_space, model, X, y).predict(Q))
  swapped = mixed_space.names[1::-1] + mixed_space.names[2:]
  with pytest.raises(ValueError, match=r"X has columns \['units', 'learning_rate'.*in that order"):
    s.predict(_Frame(swapped, rows[:, [1, 0, 2, 3]]))


# -- scikit-learn's estimator API -----------------------------------------------------------------------------


def test_clone_and_set_params_follow_scikit_learns_estimator_api(mixed_space, model, data):
  from sklearn.base import clone

  X, y, _ = data
  s = _fit(mixed_space, model, X, y, goal="maximize")
  c = clone(s)  # get_params(deep=False), a deep copy of each, then the constructor; checks each is kept as given.
  assert s.get_params() == {"space": mixed_space, "goal": "maximize", "model": model}
  assert c is not s and {k: v for k, v in c.get_params().items() if k != "model"} == {
      "space": mixed_space, "goal": "maximize"}
  assert type(c.get_params()["model"]) is type(model)  # An in-memory model is copied; a checkpoint path would not be.
  with pytest.raises(NotFittedError):
    c.predict(X)
  assert s.set_params(goal="minimize") is s and s.goal == "minimize" and s.get_params()["goal"] == "minimize"
  with pytest.raises(NotFittedError):  # The fit belonged to the old arguments.
    s.predict(X)
  s.fit(X, y)
  for bad, match in (({"goal": "up"}, "goal"), ({"kernel": "rbf"}, r"Invalid parameter\(s\) \['kernel'\]")):
    with pytest.raises(ValueError, match=match):
      s.set_params(**bad)
    assert s.goal == "minimize" and s.predict(X).shape == (len(X),)  # Nothing changed.


def test_score_is_r2_of_the_predicted_mean(mixed_space, model, data):
  from sklearn.metrics import r2_score

  X, y, Q = data
  s = _fit(mixed_space, model, X, y)
  yq = np.array([100.0 + 10.0 * _objective(c) for c in Q])
  w = np.arange(1.0, len(Q) + 1)
  assert s.score(Q, yq) == pytest.approx(r2_score(yq, s.predict(Q)), abs=1e-12)
  assert s.score(Q, yq, sample_weight=w) == pytest.approx(r2_score(yq, s.predict(Q), sample_weight=w), abs=1e-12)
  assert s.score(Q, np.full(len(Q), 3.0)) == 0.0  # Constant y, inexact predictions (r2_score's convention).
  with pytest.raises(ValueError, match="sample_weight has 2 values"):
    s.score(Q, yq, sample_weight=[1.0, 2.0])
  with pytest.raises(ValueError, match="must match"):
    s.score(Q, yq[:-1])


def test_cross_val_score_and_grid_search_run_on_it(mixed_space, tiny_v2_model):
  from sklearn.model_selection import GridSearchCV, cross_val_score

  rng = np.random.default_rng(1)
  X = _rows(mixed_space, [mixed_space.sample(rng) for _ in range(12)])
  y = np.array([_objective(dict(zip(mixed_space.names, row))) for row in X])
  s = optformer.Surrogate(mixed_space, model=tiny_v2_model)
  scores = cross_val_score(s, X, y, cv=3)
  assert scores.shape == (3,) and np.all(np.isfinite(scores))
  search = GridSearchCV(s, {"goal": ["minimize", "maximize"]}, cv=3).fit(X, y)
  assert search.best_params_["goal"] in ("minimize", "maximize") and search.best_estimator_.X_train_


def test_infeasible_trials_enter_the_context_as_the_optimizer_records_them(mixed_space, model, data):
  """fit(..., infeasible=mask) predicts exactly what an Optimizer told NaN for those trials predicts, p_feasible too."""
  X, y, Q = data
  mask = np.arange(len(y)) % 3 == 0
  opt = optformer.Optimizer(mixed_space, "minimize", model=model)
  for c, v, bad in zip(X, y, mask):
    opt.tell(c, None if bad else v)
  want = opt.predict(Q)
  got = optformer.Surrogate(mixed_space, model=model).fit(X, np.where(mask, np.nan, y), infeasible=mask)
  dist = got.predict_distribution(Q)
  np.testing.assert_array_equal(dist.p_feasible, want.p_feasible)
  np.testing.assert_array_equal(dist.mean, want.mean)
  assert dist.best == want.best  # The best feasible y.
  plain = optformer.Surrogate(mixed_space, model=model).fit(X, y).predict_distribution(Q)
  assert not np.array_equal(plain.p_feasible, dist.p_feasible)  # The infeasible rows are read.
  with pytest.raises(ValueError, match="at least one feasible trial"):
    optformer.Surrogate(mixed_space, model=model).fit(X, y, infeasible=np.ones(len(y), bool))
  with pytest.raises(ValueError, match="infeasible must be None or bool"):
    optformer.Surrogate(mixed_space, model=model).fit(X, y, infeasible=mask[:-1])
  with pytest.raises(ValueError, match="not finite"):
    optformer.Surrogate(mixed_space, model=model).fit(X, np.where(mask, np.nan, y))
