"""The ask/tell optimizer on a tiny random-init model: types, seeding,
bad input, long histories, predict, and that ask() maximizes the acquisition."""

import math
import warnings

import numpy as np
import pytest

import optformer
from conftest import acquisition_of, max_context, max_params
from optformer.search_space import Categorical, Discrete, Float, Int, SearchSpace

NUM_CANDIDATES = 16


def _opt(space, model, goal="minimize", seed=0, **kw):
  return optformer.Optimizer(space, goal, model=model, seed=seed, num_candidates=NUM_CANDIDATES, **kw)


def _objective(config):
  """A deterministic toy objective of `mixed_space` configurations."""
  return (math.log10(config["learning_rate"]) + 3) ** 2 + config["units"] / 10 + (config["optimizer"] == "sgd")


def _check_in_space(space, config):
  assert set(config) == set(space.names)
  assert space.validate(config) == config
  for p in space:
    v = config[p.name]
    if isinstance(p, Float):
      assert type(v) is float
    elif isinstance(p, Int):
      assert type(v) is int
    elif isinstance(p, Discrete):
      assert any(type(v) is type(c) and v == c for c in p.values)
    else:
      assert any(type(v) is type(c) and v == c for c in p.choices)
def test_ask_returns_configurations_inside_the_space(mixed_space, model):
  opt = _opt(mixed_space, model)
  for _ in range(4):  # empty history first, then a growing one
    config = opt.ask()
    _check_in_space(mixed_space, config)
    opt.tell(config, _objective(config))
  assert len(opt.trials) == 4


def test_same_seed_and_history_give_the_same_suggestion(mixed_space, model):
  rng = np.random.default_rng(0)
  history = [mixed_space.sample(rng) for _ in range(3)]
  suggestions = []
  for _ in range(2):
    opt = _opt(mixed_space, model, seed=123)
    for config in history:
      opt.tell(config, _objective(config))
    suggestions.append([opt.ask(), opt.ask()])
  assert suggestions[0] == suggestions[1]


def test_ask_prefers_configurations_not_yet_evaluated(model):
  space = SearchSpace([Categorical("c", ("a", "b", "c", "d"))])
  opt = _opt(space, model, goal="maximize")
  for c, v in (("c", -100.0), ("a", 0.0), ("b", 1.0)):
    opt.tell({"c": c}, v)
  suggestion = opt.ask()
  assert suggestion == {"c": "d"}
  opt.remove_pending(suggestion)
  # Still true once the history outgrows the context and the (worst, oldest) "c" trial leaves it.
  for i in range(max_context(model)):
    opt.tell({"c": "ab"[i % 2]}, float(i))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(3):
      suggestion = opt.ask()
      assert suggestion == {"c": "d"}
      opt.remove_pending(suggestion)


@pytest.mark.parametrize("kind", ["ei", "pi", "ucb"])
def test_each_suggestion_maximizes_the_acquisition_over_a_fresh_pool(mixed_space, model, kind):
  """ask() returns the argmax of its acquisition over a pool of 64 uniform points: its acquisition lies above the
  90th percentile of 200 other uniform points' (a uniform pick passes with probability 0.1 per ask, so a search
  that returns a random or the worst candidate, or ranks by a constant, fails)."""
  opt = _opt(mixed_space, model, goal="maximize", acquisition=kind, search=optformer.SearchConfig(num_random=64))
  rng = np.random.default_rng(5)
  for _ in range(5):
    c = mixed_space.sample(rng)
    opt.tell(c, _objective(c))
  others = [mixed_space.sample(rng) for _ in range(200)]
  for _ in range(3):
    s = opt.ask()
    opt.remove_pending(s)  # Score it against the context ask saw (no fantasy of itself).
    acq = acquisition_of(opt.predict([dict(s)] + others), kind)
    assert acq[0] >= np.quantile(acq[1:], 0.9), (kind, acq[0], np.quantile(acq[1:], [0.5, 0.9, 1.0]))
    assert np.ptp(acq[1:]) > 0  # The landscape is not flat (the check above means something).
    opt.tell(s, _objective(s))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"learning_rate": 1e-3, "units": 4, "batch_size": 32, "optimizer": "adam", "momentum": 0.9}, ValueError, "'momentum'"),
        ({"learning_rate": 1e-3, "units": 4, "batch_size": 32}, ValueError, "'optimizer'"),
        ({"learning_rate": 1.0, "units": 4, "batch_size": 32, "optimizer": "adam"}, ValueError, "1.0"),
        ({"learning_rate": 1e-3, "units": 400, "batch_size": 32, "optimizer": "adam"}, ValueError, "400"),
        ({"learning_rate": 1e-3, "units": 4, "batch_size": 48, "optimizer": "adam"}, ValueError, "48"),
        ({"learning_rate": 1e-3, "units": 4, "batch_size": 32, "optimizer": "lion"}, ValueError, "'lion'"),
        ({"learning_rate": 1e-3, "units": 4.5, "batch_size": 32, "optimizer": "adam"}, TypeError, "4.5"),
    ],
)
def test_tell_with_bad_params_raises_and_records_nothing(mixed_space, model, params, error, match):
  opt = _opt(mixed_space, model)
  with pytest.raises(error, match=match):
    opt.tell(params, 1.0)
  assert opt.trials == []


@pytest.mark.parametrize("value", ["1.0", True, [1.0]])
def test_tell_with_a_non_numeric_objective_raises_type_error(mixed_space, model, value):
  opt = _opt(mixed_space, model)
  with pytest.raises(TypeError, match="objective"):
    opt.tell(mixed_space.sample(np.random.default_rng(0)), value)
  assert opt.trials == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, np.float32("nan")])
@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_non_finite_objective_is_infeasible_ignored_by_best_and_marked(mixed_space, model, bad, goal):
  opt = _opt(mixed_space, model, goal=goal)
  rng = np.random.default_rng(0)
  configs = [mixed_space.sample(rng) for _ in range(3)]
  opt.tell(configs[0], 3.0)
  trial = opt.tell(configs[1], bad)
  opt.tell(configs[2], 1.0)
  assert trial.infeasible and math.isnan(trial.value)
  assert len(opt.trials) == 3 and [t.infeasible for t in opt.trials] == [False, True, False]
  best_config, best_value = opt.best
  assert (best_config, best_value) == ((configs[2], 1.0) if goal == "minimize" else (configs[0], 3.0))
  context, _ = opt._model_context()
  assert np.isnan(context.y[1]) and np.isfinite(context.y[[0, 2]]).all()  # The context marks it infeasible ...
  # ... the model reads it as infeasible; predictions and suggestions stay finite and valid.
  assert np.isfinite(opt.predict(configs).mean).all()
  _check_in_space(mixed_space, opt.ask())


def test_best_for_minimize_and_maximize(mixed_space, model):
  rng = np.random.default_rng(0)
  configs = [mixed_space.sample(rng) for _ in range(5)]
  values = [2.0, -1.0, 7.5, 0.0, -0.5]
  for goal, want in (("minimize", 1), ("maximize", 2)):
    opt = _opt(mixed_space, model, goal=goal)
    with pytest.raises(ValueError, match="No feasible trial"):
      opt.best
    for c, v in zip(configs, values):
      opt.tell(c, v)
    assert opt.best == (configs[want], values[want])


def test_only_infeasible_trials_leave_best_and_predict_undefined(mixed_space, model):
  opt = _opt(mixed_space, model)
  config = mixed_space.sample(np.random.default_rng(0))
  opt.tell(config, None)
  with pytest.raises(ValueError, match="No feasible trial"):
    opt.best
  with pytest.raises(ValueError, match="at least one feasible trial"):
    opt.predict([config])
  _check_in_space(mixed_space, opt.ask())  # No scale yet: a fresh uniform sample.


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(goal="max"), ValueError, "goal"),
        (dict(num_candidates=0), ValueError, "num_candidates"),
        (dict(temperature=0.0), ValueError, "temperature"),
        (dict(temperature=math.nan), ValueError, "temperature"),
        (dict(acquisition="thompson"), ValueError, "acquisition"),
        (dict(ucb_beta=0.0), ValueError, "ucb_beta"),
        # The tiny model has no policy (the `policy` capability): both ways of asking for policy samples say so.
        (dict(candidates="policy"), ValueError, "candidates='policy' needs a model with a policy"),
        (dict(search=optformer.SearchConfig(num_policy=4)), ValueError, "num_policy=4 asks for policy samples"),
    ],
)
def test_constructor_argument_errors(mixed_space, model, kw, error, match):
  with pytest.raises(error, match=match):
    optformer.Optimizer(mixed_space, model=model, **kw)


def test_the_retired_prompt_argument_is_gone(mixed_space, model):
  """Model v1's behaviour-algorithm prompt (`algorithm=`) left with it; study files that store one still load
  (tests/test_study.py)."""
  with pytest.raises(TypeError, match="algorithm"):
    optformer.Optimizer(mixed_space, model=model, algorithm="random")
  with pytest.raises(TypeError, match="algorithm"):
    optformer.Surrogate(mixed_space, model=model, algorithm="random")


def test_a_categorical_with_more_choices_than_the_model_reads_is_refused(tiny_v2_model):
  limit = tiny_v2_model.config.max_categories  # Index `limit` and above would share the last category embedding.
  fits = SearchSpace([Categorical("c", [f"c{i}" for i in range(limit)])])
  optformer.Optimizer(fits, model=tiny_v2_model)
  space = SearchSpace([Float("x", 0.0, 1.0), Categorical("c", [f"c{i}" for i in range(limit + 1)])])
  for build in (optformer.Optimizer, optformer.Surrogate):
    with pytest.raises(ValueError, match=f"'c' has {limit + 1} choices.*at most {limit}"):
      build(space, model=tiny_v2_model)


def test_space_with_more_parameters_than_the_model_supports_raises(model):
  d = max_params(model)
  space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(d + 1)])
  with pytest.raises(ValueError, match=f"{d + 1} parameters"):
    optformer.Optimizer(space, model=model)
  with pytest.raises(TypeError, match="SearchSpace"):
    optformer.Optimizer([Float("x", 0.0, 1.0)], model=model)


def test_history_longer_than_the_context_still_suggests_and_warns_once(mixed_space, model):
  limit = max_context(model)
  n = limit + 5
  opt = _opt(mixed_space, model, goal="maximize")
  rng = np.random.default_rng(0)
  configs = [mixed_space.sample(rng) for _ in range(n)]
  values = rng.permutation(n).astype(float)
  for c, v in zip(configs, values):
    opt.tell(c, v)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(2):
      _check_in_space(mixed_space, opt.ask())
    dist = opt.predict(configs[:2])
  assert len([w for w in caught if "context" in str(w.message)]) == 1
  assert np.isfinite(dist.mean).all()
  assert len(opt.trials) == n and [t.params for t in opt.trials] == configs
  assert opt.best[1] == n - 1
  # The context holds the best half and the most recent trials, in their original order.
  for p in opt.pending:
    opt.remove_pending(p)
  (x, y), _ = opt._model_context()
  assert len(y) == limit
  kept = set(np.argsort(-values)[: limit // 2].tolist())
  for i in reversed(range(n)):
    if len(kept) < limit:
      kept.add(i)
  np.testing.assert_array_equal(y, values[sorted(kept)])
  # The model reads exactly those rows: the prediction is that of a study told only them.
  short = _opt(mixed_space, model, goal="maximize")
  for i in sorted(kept):
    short.tell(configs[i], float(values[i]))
  np.testing.assert_allclose(short.predict(configs[:2]).mean, opt.predict(configs[:2]).mean, rtol=1e-6)


def test_truncation_warning_can_be_left_to_the_caller(mixed_space, model):
  opt = _opt(mixed_space, model, warn_truncation=False)
  rng = np.random.default_rng(0)
  for i in range(max_context(model) + 1):
    opt.tell(mixed_space.sample(rng), float(i))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    opt.ask()
  assert not [w for w in caught if "context" in str(w.message)]


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_predict_returns_a_distribution_in_objective_units(mixed_space, model, goal):
  opt = _opt(mixed_space, model, goal=goal)
  rng = np.random.default_rng(0)
  history = [mixed_space.sample(rng) for _ in range(6)]
  for c in history:
    opt.tell(c, 100.0 + 10.0 * _objective(c))
  queries = [mixed_space.sample(rng) for _ in range(5)]
  dist = opt.predict(queries)
  assert len(dist) == 5 and dist.goal == goal
  assert np.isfinite(dist.mean).all() and np.all(dist.std > 0)
  q = np.stack([dist.quantile(p) for p in (0.1, 0.5, 0.9)])
  assert np.all(q[0] <= q[1]) and np.all(q[1] <= q[2])
  np.testing.assert_allclose(dist.cdf(q[1]), 0.5, atol=1e-6)
  ei = dist.expected_improvement()
  assert np.all(ei >= 0) and np.isfinite(ei).all()
  np.testing.assert_allclose(ei, dist.expected_improvement(opt.best[1]))
  pi = dist.probability_of_improvement()
  np.testing.assert_allclose(pi, dist.cdf(opt.best[1]) if goal == "minimize" else 1.0 - dist.cdf(opt.best[1]), atol=1e-9)
  values = [t.value for t in opt.trials]
  # Objective units: the predictions lie near the told values (100 + 10 f, f in about [0, 20]), not in z units.
  assert np.all(np.abs(dist.quantile(0.5) - np.median(values)) < 3 * np.ptp(values))
  assert isinstance(dist, optformer.model.inference.PFNPredictive) and np.all((dist.p_feasible >= 0) & (dist.p_feasible <= 1))
  with pytest.raises(ValueError, match="'optimizer'"):
    opt.predict([{**queries[0], "optimizer": "lion"}])


def test_minimizing_f_mirrors_maximizing_minus_f(mixed_space, model):
  """The maximize path: maximizing -f predicts the mirror image of minimizing f and makes the same suggestions."""
  rng = np.random.default_rng(1)
  history = [mixed_space.sample(rng) for _ in range(5)]
  queries = [mixed_space.sample(rng) for _ in range(4)]
  dists, asked = {}, {}
  for goal, sign in (("minimize", 1.0), ("maximize", -1.0)):
    opt = _opt(mixed_space, model, goal=goal, seed=7, search=optformer.SearchConfig(num_random=64))
    for c in history:
      opt.tell(c, sign * _objective(c))
    dists[goal] = opt.predict(queries)
    asked[goal] = opt.ask(2)
  lo, hi = dists["minimize"], dists["maximize"]
  np.testing.assert_allclose(lo.mean, -hi.mean, rtol=1e-6)
  np.testing.assert_allclose(lo.std, hi.std, rtol=1e-6)
  np.testing.assert_allclose(lo.expected_improvement(), hi.expected_improvement(), rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(lo.probability_of_improvement(), hi.probability_of_improvement(), rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(lo.quantile(0.2), -hi.quantile(0.8), rtol=1e-6)
  assert asked["minimize"] == asked["maximize"]


@pytest.mark.parametrize("scale, shift", [(1e-3, 5.0), (250.0, -1e4)])
def test_an_affine_change_of_the_objective_changes_nothing_but_its_units(mixed_space, model, scale, shift):
  """Scale equivariance: y -> a y + b (a > 0) gives the same suggestions and predictions a m + b, a s."""
  rng = np.random.default_rng(2)
  history = [mixed_space.sample(rng) for _ in range(6)]
  queries = [mixed_space.sample(rng) for _ in range(4)]
  dists, asked = [], []
  for a, b in ((1.0, 0.0), (scale, shift)):
    opt = _opt(mixed_space, model, seed=3, search=optformer.SearchConfig(num_random=64))
    for c in history:
      opt.tell(c, a * _objective(c) + b)
    dists.append(opt.predict(queries))
    asked.append(opt.ask(2))
  base, moved = dists
  np.testing.assert_allclose(moved.mean, scale * base.mean + shift, rtol=1e-6, atol=1e-9 * abs(shift))
  np.testing.assert_allclose(moved.std, scale * base.std, rtol=1e-5)
  np.testing.assert_allclose(moved.quantile(0.3), scale * base.quantile(0.3) + shift, rtol=1e-6, atol=1e-9 * abs(shift))
  np.testing.assert_allclose(moved.expected_improvement(), scale * base.expected_improvement(), rtol=1e-5, atol=1e-12)
  assert asked[0] == asked[1]


def test_a_candidate_a_few_bits_off_a_told_trial_is_not_fresh(model):
  """Log-scale units of one configuration may differ in the last bits (to_unit vs snap): still the same trial."""
  space = SearchSpace([Float("lr", 1e-5, 1e-1, log=True), Float("x", 0.0, 1.0)])
  opt = _opt(space, model)
  told = space.to_unit({"lr": 3e-4, "x": 0.25})
  off = np.nextafter(told, told + 1.0)
  assert (off != told).all()
  keys = opt.backend.fresh_keys
  assert keys(told[None]) == keys(off[None])
  assert keys(told[None]) != keys((told + 1e-6)[None])  # A real move is a new configuration.
  assert keys(np.zeros((1, 2))) == keys(-np.zeros((1, 2)))
