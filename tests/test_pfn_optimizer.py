"""The Optimizer on a model v2 checkpoint: ask/tell, predictions in user units, pending trials, persistence."""

import math

import numpy as np
import pytest
from flax import nnx

from optformer import checkpoint
from optformer import search_space as ss
from optformer.optimizer import Optimizer
from optformer.pfn import PFNConfig, create_model
from optformer.acquisition_search import local_moves, uniform_points
from optformer.pfn_inference import PFNEngine


@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory):
  model = create_model(PFNConfig.tiny(), seed=3)
  return checkpoint.save(tmp_path_factory.mktemp("v2") / "model", model.config, nnx.to_pure_dict(nnx.state(model)))


@pytest.fixture(scope="module")
def space():
  return ss.SearchSpace([
      ss.Float("lr", 1e-5, 1e-1, log=True), ss.Int("units", 1, 1000), ss.Categorical("opt", ("adam", "sgd", "rms")),
  ])


def test_ask_tell_loop_stays_in_the_space_and_never_repeats(v2_dir, space):
  opt = Optimizer(space, "minimize", model=v2_dir, num_candidates=32, seed=0)
  assert opt.v2 and opt.candidates == "search"
  seen = []
  for i in range(8):
    s = opt.ask()
    space.validate(s)
    assert s not in seen
    seen.append(dict(s))
    opt.tell(s, float((math.log10(s["lr"]) + 3) ** 2 + s["units"] / 1000) if i != 3 else None)
  assert len(opt.trials) == 8 and opt.trials[3].infeasible


def test_integers_reach_levels_off_any_grid(space):
  rng = np.random.default_rng(0)
  pool = uniform_points(space, rng, 2000)
  units = {space.from_unit(u)["units"] for u in pool}
  assert len(units) > 800  # 1000 levels, not a few bin centres.
  best = np.array([[0.5, 0.5, 1.0]])
  local = local_moves(space, rng, best, 500)
  assert np.all(np.isin(local[:, 2], [0.0, 1.0, 2.0]))
  assert np.mean(np.abs(local[:, 0] - 0.5) < 0.3) > 0.9  # Local moves stay near the best.


def test_predict_is_in_user_units_and_shift_equivariant(v2_dir, space):
  rng = np.random.default_rng(1)
  configs = [space.sample(rng) for _ in range(6)]
  vals = rng.normal(size=6)
  preds = []
  for shift in (0.0, 1000.0):
    opt = Optimizer(space, "minimize", model=v2_dir, seed=0)
    for c, v in zip(configs, vals):
      opt.tell(c, float(v * 3 + shift))
    preds.append(opt.predict(configs[:3]))
  a, b = preds
  np.testing.assert_allclose(b.mean, a.mean + 1000.0, atol=1e-6)
  np.testing.assert_allclose(b.std, a.std, rtol=1e-6)
  np.testing.assert_allclose(b.quantile(0.9), a.quantile(0.9) + 1000.0, atol=1e-6)
  assert np.all(a.expected_improvement() >= 0) and np.all(np.isfinite(a.log_prob(1e6)))
  # Minimizing: the 0.1-quantile lies below the mean, EI at a far-worse best is about best - mean.
  assert np.all(a.quantile(0.1) < a.mean)
  np.testing.assert_allclose(a.expected_improvement(1e4), 1e4 - a.mean, rtol=1e-3)


def test_pending_trials_are_not_proposed_again_and_batches_are_distinct(v2_dir, space):
  opt = Optimizer(space, "maximize", model=v2_dir, num_candidates=16, seed=2)
  first = opt.ask(2)
  for s in first:
    opt.tell(s, 1.0)
  batch = opt.ask(4)
  assert len({tuple(sorted(s.items())) for s in batch}) == 4
  assert len(opt.pending) == 4


def test_study_round_trip_makes_the_same_next_suggestion(v2_dir, space, tmp_path):
  opt = Optimizer(space, "minimize", model=v2_dir, num_candidates=16, seed=4)
  for _ in range(3):
    s = opt.ask()
    opt.tell(s, float(s["units"]))
  opt.save(tmp_path / "study.json")
  again = Optimizer.load(tmp_path / "study.json")
  assert again.ask() == opt.ask()


def test_engine_refuses_too_many_parameters_and_the_policy_needs_v1(v2_dir):
  wide = ss.SearchSpace([ss.Float(f"x{i}", 0, 1) for i in range(9)])
  with pytest.raises(ValueError, match="at most 8"):
    Optimizer(wide, model=v2_dir)
  with pytest.raises(ValueError, match="model v1"):
    Optimizer(ss.SearchSpace([ss.Float("x", 0, 1)]), model=v2_dir, candidates="policy")


@pytest.mark.parametrize("acquisition", ["ei", "pi", "ucb"])
def test_every_acquisition_suggests_valid_new_configurations(v2_dir, space, acquisition):
  opt = Optimizer(space, "maximize", model=v2_dir, num_candidates=16, acquisition=acquisition, seed=5)
  for _ in range(4):
    s = opt.ask()
    space.validate(s)
    opt.tell(s, float(s["units"]))
  assert Optimizer.from_json(opt.to_json()).acquisition == acquisition
  with pytest.raises(ValueError, match="acquisition"):
    Optimizer(space, model=v2_dir, acquisition="thompson")


def test_v2_ei_prefers_the_region_the_context_says_is_good(v2_dir):
  # A 1-D quadratic: after 12 trials the suggestion under EI and under PI lies nearer the best trial than chance
  # would put it (tiny random model: only the ranking machinery is tested, not the model's quality).
  sp = ss.SearchSpace([ss.Float("x", 0.0, 1.0)])
  opt = Optimizer(sp, "minimize", model=v2_dir, num_candidates=64, seed=0)
  for x in np.linspace(0.02, 0.98, 12):
    opt.tell({"x": float(x)}, float((x - 0.3) ** 2))
  pred = opt.predict([{"x": 0.3}, {"x": 0.95}])
  assert pred.expected_improvement().shape == (2,) and np.all(np.isfinite(pred.mean))


@pytest.mark.parametrize("acquisition", ["pi", "ucb"])
def test_v1_models_take_every_acquisition_too(tiny_model, mixed_space, acquisition):
  opt = Optimizer(mixed_space, "maximize", model=tiny_model, num_candidates=8, acquisition=acquisition, seed=1)
  for i in range(3):
    s = opt.ask()
    mixed_space.validate(s)
    opt.tell(s, float(i))


def test_surrogate_on_a_v2_model_predicts_and_samples_in_y_units(v2_dir, space):
  from optformer import Surrogate

  rng = np.random.default_rng(7)
  X = [space.sample(rng) for _ in range(10)]
  y = rng.normal(size=10) * 5 + 100
  sur = Surrogate(space, model=v2_dir).fit(X, y)
  mean, std = sur.predict(X[:4], return_std=True)
  assert mean.shape == (4,) and np.all(std > 0) and np.all(np.abs(mean - 100) < 100)
  draws = sur.sample_y(X[:4], n_samples=200, random_state=0)
  assert draws.shape == (4, 200) and np.all(np.isfinite(draws))
  np.testing.assert_allclose(draws.mean(1), mean, atol=4 * std.max())


def test_moments_under_the_power_transform_ignore_far_outer_bars():
  from optformer.pfn_inference import Z_LIMIT, PFNPredictive
  from optformer.ynorm import YTransform

  borders = np.array([-6500.0, -2400.0, *np.linspace(-3.0, 3.0, 13), 400.0])  # Far outer bars, as trained.
  t = YTransform.fit(np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2]))
  assert t.power
  probs = np.full((1, len(borders) - 1), 0.9 / (len(borders) - 3))
  probs[0, 0], probs[0, -1] = 0.05, 0.05  # 5 % in each far bar.
  d = PFNPredictive(probs, np.ones(1), borders, t, "maximize")
  bounds = sorted(t.invert(np.array([-Z_LIMIT, Z_LIMIT])))
  assert bounds[0] <= d.mean[0] <= bounds[1] and np.isfinite(d.std[0])
  assert np.isfinite(d.expected_improvement(1.0)[0])
  # The density and the quantiles are the model's own: a far-tail quantile lies beyond the clip.
  assert d.quantile(0.01)[0] < bounds[0]
  np.testing.assert_allclose(d.cdf(d.quantile(0.3)), 0.3, atol=1e-9)


def test_surrogate_on_v2_predicts_what_the_optimizer_predicts(v2_dir, space):
  from optformer import Surrogate

  rng = np.random.default_rng(7)
  X = [space.sample(rng) for _ in range(6)]
  y = rng.normal(size=6) * 5 + 100
  opt = Optimizer(space, "minimize", model=v2_dir, seed=0)
  for c, v in zip(X, y):
    opt.tell(c, float(v))
  queries = [space.sample(rng) for _ in range(4)]
  want = opt.predict(queries)
  got = Surrogate(space, goal="minimize", model=v2_dir).fit(X, y).predict_distribution(queries)
  np.testing.assert_allclose(got.mean, want.mean)
  np.testing.assert_allclose(got.quantile(0.8), want.quantile(0.8))
  assert got.best == want.best == y.min()
