"""The Optimizer on a model v2 checkpoint: ask/tell, predictions in user units, pending trials, persistence."""

import math

import numpy as np
import pytest
from flax import nnx

from conftest import acquisition_of
from optformer import SearchConfig, checkpoint
from optformer import search_space as ss
from optformer.optimizer import Optimizer
from optformer.model.network import PFNConfig, create_model
from optformer.acquisition_search import local_moves, uniform_points
from optformer.model.inference import PFNEngine


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
  assert opt.candidates == "search" and not opt.backend.capabilities.policy
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
  with pytest.raises(ValueError, match="needs a model with a policy"):
    Optimizer(ss.SearchSpace([ss.Float("x", 0, 1)]), model=v2_dir, candidates="policy")


@pytest.mark.parametrize("acquisition", ["ei", "pi", "ucb"])
def test_every_acquisition_suggests_new_configurations_that_maximize_it(v2_dir, space, acquisition):
  opt = Optimizer(space, "maximize", model=v2_dir, num_candidates=16, acquisition=acquisition, seed=5,
                  search=SearchConfig(num_random=64))
  rng = np.random.default_rng(6)
  others = [space.sample(rng) for _ in range(200)]
  for i in range(4):
    s = opt.ask()
    space.validate(s)
    assert dict(s) not in [t.params for t in opt.trials]
    if i >= 1:  # With a scale: the suggestion ranks above 90 % of uniform points under its own acquisition.
      opt.remove_pending(s)
      acq = acquisition_of(opt.predict([dict(s)] + others), acquisition)
      assert acq[0] >= np.quantile(acq[1:], 0.9) and np.ptp(acq[1:]) > 0, (acquisition, i)
    opt.tell(s, float(s["units"]))
  assert Optimizer.from_json(opt.to_json()).acquisition == acquisition
  with pytest.raises(ValueError, match="acquisition"):
    Optimizer(space, model=v2_dir, acquisition="thompson")


def test_v2_acquisitions_are_the_documented_formulas(v2_dir, space):
  """EI and PI of v2 in z units times p(feasible | x) (Gardner et al. 2014), UCB of clipped z: what ask ranks by."""
  opt = Optimizer(space, "minimize", model=v2_dir, seed=0)
  rng = np.random.default_rng(3)
  for i in range(7):
    c = space.sample(rng)
    opt.tell(c, None if i == 2 else float((math.log10(c["lr"]) + 3) ** 2))
  queries = [space.sample(rng) for _ in range(64)]
  context, best = opt._model_context()
  posterior = opt.backend.condition(context)
  dist = opt.predict(queries)
  log_feasible = np.log(dist.p_feasible)
  assert np.ptp(log_feasible) > 1e-4  # p(feasible) varies, so dropping it changes the ranking.
  units = space.to_units(queries)
  np.testing.assert_allclose(posterior.acquisition(units, best, "ei"), dist.log_expected_improvement_z() + log_feasible,
                             rtol=1e-6)
  np.testing.assert_allclose(posterior.acquisition(units, best, "pi"),
                             np.log(dist.probability_of_improvement()) + log_feasible, rtol=1e-6)
  np.testing.assert_allclose(posterior.acquisition(units, best, "ucb", 2.0), dist.upper_confidence_bound_z(2.0))


# -- The shipped model (checkpoints/optformer-v2, the default): what it prefers, on 2-D problems ----------------

SQUARE = ss.SearchSpace([ss.Float("x", 0.0, 1.0), ss.Float("y", 0.0, 1.0)])
GRID = [{"x": a, "y": b} for a in (0.0, 1 / 3, 2 / 3, 1.0) for b in (0.0, 1 / 3, 2 / 3, 1.0)]  # 16 trials.


def _bowl(s, at=(0.45, 0.55)):
  return (s["x"] - at[0]) ** 2 + (s["y"] - at[1]) ** 2


@pytest.mark.parametrize("acquisition, goal", [("ei", "minimize"), ("ei", "maximize"), ("pi", "minimize"),
                                               ("ucb", "minimize")])
def test_v2_prefers_the_region_the_context_says_is_good(acquisition, goal):
  """A 4 x 4 grid of a bowl whose minimum (0.45, 0.55) lies between grid points: the next suggestion under each
  acquisition beats every told trial (a uniform point does with probability 0.09)."""
  sign = 1.0 if goal == "minimize" else -1.0
  opt = Optimizer(SQUARE, goal, acquisition=acquisition, seed=0)
  for c in GRID:
    opt.tell(c, sign * _bowl(c))
  s = opt.ask()
  assert _bowl(s) < min(_bowl(c) for c in GRID), (acquisition, goal, s)


def test_v2_ei_weighs_p_feasible_and_avoids_the_infeasible_region():
  """The grid's left half (x < 0.5) failed (infeasible); the bowl's minimum (0.3, 0.5) lies there. EI alone
  extrapolates into it; EI times p(feasible) (the default) suggests the feasible side's best, near (0.5, 0.5)."""
  at = (0.3, 0.5)
  grid = [{"x": a, "y": b} for a in (0.125, 0.375, 0.625, 0.875) for b in (0.125, 0.375, 0.625, 0.875)]
  for seed in (0, 1):
    opt = Optimizer(SQUARE, seed=seed)
    for c in grid:
      opt.tell(c, _bowl(c, at) if c["x"] > 0.5 else None)
    s = opt.ask()
    assert s["x"] > 0.45 and abs(s["y"] - 0.5) < 0.2, (seed, s)
    opt.remove_pending(s)
    dist = opt.predict([dict(s), {"x": 0.1, "y": 0.5}])
    assert dist.p_feasible[0] > 0.6 and dist.p_feasible[1] < 0.3, dist.p_feasible  # The boundary: 0.78 here.


def test_v2_beats_random_search_on_a_quadratic_without_a_prior():
  """The default Optimizer(space), no prior, 12 trials of a 2-D bowl (minimum (0.7, 0.2)), minimizing f (seeds 0, 1)
  and maximizing -f (seeds 2, 3): the mean best f is under a quarter of random search's at the same budget (0.025,
  by Monte Carlo), and every study beats random search's mean. Measured here: 0.001-0.007 per study; a random
  search meets the bound with probability about 0.002."""
  at = (0.7, 0.2)
  budget, best = 12, []
  for goal, seed in (("minimize", 0), ("minimize", 1), ("maximize", 2), ("maximize", 3)):
    sign = 1.0 if goal == "minimize" else -1.0
    opt = Optimizer(SQUARE, goal, seed=seed)
    values = []
    for _ in range(budget):
      s = opt.ask()
      values.append(_bowl(s, at))
      opt.tell(s, sign * values[-1])
    best.append(min(values))
    assert opt.best[1] == sign * min(values)
  u = np.random.default_rng(0).random((20000, budget, 2))
  random_best = ((u[..., 0] - at[0]) ** 2 + (u[..., 1] - at[1]) ** 2).min(1).mean()
  assert np.mean(best) < 0.25 * random_best and max(best) < random_best, (best, random_best)


def test_surrogate_on_a_v2_model_predicts_and_samples_in_y_units(v2_dir, space):
  from optformer import Surrogate

  rng = np.random.default_rng(7)
  X = [space.sample(rng) for _ in range(10)]
  y = rng.normal(size=10) * 5 + 100
  sur = Surrogate(space, model=v2_dir).fit(X, y)
  mean, std = sur.predict(X[:4], return_std=True)
  # y units: a random-init model's z lies in its bars' range [-3, 3] (tails beyond), i.e. y's centre +- 3 scales.
  assert mean.shape == (4,) and np.all(std > 0) and np.all(np.abs(mean - np.median(y)) < 4 * y.std())
  assert np.all(std < 4 * y.std())
  draws = sur.sample_y(X[:4], n_samples=2000, random_state=0)
  assert draws.shape == (4, 2000) and np.all(np.isfinite(draws))
  np.testing.assert_allclose(draws.mean(1), mean, atol=4 * std.max() / np.sqrt(2000))  # 4 standard errors.
  np.testing.assert_allclose(draws.std(1), std, rtol=0.1)


def test_moments_under_the_power_transform_ignore_far_outer_bars():
  from optformer.model.inference import Z_LIMIT, PFNPredictive
  from optformer.model.ynorm import YTransform

  borders = np.array([-6500.0, -2400.0, *np.linspace(-3.0, 3.0, 13), 400.0])  # Far outer bars, as trained.
  t = YTransform.fit(np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2]))
  assert t.power
  probs = np.full((1, len(borders) - 1), 0.9 / (len(borders) - 3))
  probs[0, 0], probs[0, -1] = 0.05, 0.05  # 5 % in each far bar.
  d = PFNPredictive(probs, np.ones(1), borders, t, "maximize")
  bounds = sorted(t.invert(np.array([-Z_LIMIT, Z_LIMIT])))
  assert bounds[0] <= d.mean[0] <= bounds[1] and np.isfinite(d.std[0])
  assert np.isfinite(d.expected_improvement(1.0)[0])
  # Quantiles inside the clip are the model's own. (Whether a far-tail quantile lies beyond the clip or at the
  # support's end is pfn_inference's choice, under revision for issue 18 item 4; not asserted here.)
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
