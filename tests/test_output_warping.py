"""Output warping (optformer/output_warping.py): the warps' invariants, and the option's path through the Optimizer."""

import math
import statistics

import numpy as np
import pytest

import optformer
from optformer import SearchConfig
from optformer import output_warping as ow
from optformer.model import ynorm

WARPS = ("half_rank", "half_rank+log")


def _plateau_values(rng, n=12):
  """A plateau context: most values within 1e-3 of each other, a few far-off bad ones, one tie, one NaN."""
  y = 1.0 - 1e-3 * rng.random(n)
  y[: n // 4] = -rng.uniform(10, 100, n // 4)
  y[-1] = y[-2]  # A tie.
  y[3] = np.nan  # An infeasible trial.
  return y


@pytest.mark.parametrize("warping", WARPS)
def test_warp_is_strictly_increasing_keeps_ties_nans_and_the_best(warping):
  rng = np.random.default_rng(0)
  for _ in range(20):
    y = _plateau_values(rng, int(rng.integers(5, 30)))
    w = ow.warp(y, warping)
    ok = ~np.isnan(y)
    np.testing.assert_array_equal(np.isnan(w), ~ok)
    dy, dw = np.subtract.outer(y[ok], y[ok]), np.subtract.outer(w[ok], w[ok])
    np.testing.assert_array_equal(np.sign(dw), np.sign(dy))  # Order and ties, pair by pair.
    assert np.nanargmax(w) == np.nanargmax(y)


@pytest.mark.parametrize("warping", WARPS)
def test_warp_is_invariant_under_affine_maps_after_standardization(warping):
  y = _plateau_values(np.random.default_rng(1))
  standardized = lambda v: (v - np.nanmean(v)) / np.nanstd(v)
  for a, b in ((1e-6, 3.0), (2.5, -7.0), (1e6, 1e9)):
    np.testing.assert_allclose(standardized(ow.warp(a * y + b, warping)), standardized(ow.warp(y, warping)),
                               atol=1e-6)
  np.testing.assert_allclose(ow.half_rank(3.0 * y - 2.0), 3.0 * ow.half_rank(y) - 2.0)  # Equivariant.


def test_half_rank_by_hand():
  y = np.array([4.0, 0.0, 3.0, 1.0, 2.0])
  m, s = 2.0, math.sqrt((0 + 1 + 4) / 3)  # Median; RMS distance of the distinct values >= m from it.
  d = 2 + 0.5  # Two distinct values below m, and m is a value.
  phi_inv = statistics.NormalDist().inv_cdf
  expected = [4.0, m + s * phi_inv(0.5 * 0.5 / d), 3.0, m + s * phi_inv(0.5 * 1.5 / d), 2.0]
  np.testing.assert_allclose(ow.half_rank(y), expected)
  # An even count: the median 1.5 is no value, so d = k; s from the good half {2, 3}.
  y = np.array([0.0, 1.0, 2.0, 3.0])
  s = math.sqrt((0.25 + 2.25) / 2)
  np.testing.assert_allclose(ow.half_rank(y), [1.5 + s * phi_inv(0.25 / 2), 1.5 + s * phi_inv(0.75 / 2), 2.0, 3.0])
  # The median is the largest value: s from all distinct values.
  y = np.array([0.0, 5.0, 5.0, 5.0])
  np.testing.assert_allclose(ow.half_rank(y)[0], 5.0 + math.sqrt(25 / 2) * phi_inv(0.25 / 1.5))


def test_half_rank_brings_far_bad_values_near_the_good_half():
  y = np.array([1.0, 1.001, 1.002, 1.003, 1.004, -1e6, -1e3])
  w = ow.half_rank(y)
  good = y[y >= np.median(y)]
  s = math.sqrt(np.mean((good - np.median(y)) ** 2))
  assert w.min() > np.median(y) - 4 * s  # Within a few s of the median however far they were.
  up = y >= np.median(y)
  np.testing.assert_array_equal(w[up], y[up])  # The median and above are untouched.


def test_log_warp_maps_the_range_to_half_units_and_stretches_the_top():
  y = np.linspace(0.0, 1.0, 101)
  w = ow.log_warp(y)
  assert w[0] == pytest.approx(-0.5) and w[-1] == pytest.approx(0.5)
  slope = np.diff(w) / np.diff(y)
  assert slope[-1] / slope[0] == pytest.approx(ow.LOG_WARP_OFFSET, rel=0.02)
  with pytest.raises(ValueError, match="offset"):
    ow.log_warp(y, offset=1.0)


@pytest.mark.parametrize("warping", ("none",) + WARPS)
def test_degenerate_contexts_are_returned_as_they_are(warping):
  for y in ([], [3.0], [2.0, 2.0, 2.0], [np.nan, np.nan], [np.nan, 5.0], [1.0, 1.0, np.nan]):
    np.testing.assert_array_equal(ow.warp(y, warping), np.asarray(y, np.float64))
  w = ow.warp([0.0, 1.0], warping)  # Two trials: still in order.
  assert w[1] > w[0]


def test_bad_input_raises():
  with pytest.raises(ValueError, match="output_warping"):
    ow.warp([1.0, 2.0], "rank")
  with pytest.raises(ValueError, match="finite or NaN"):
    ow.warp([1.0, np.inf], "half_rank")


def test_warps_widen_the_gap_of_the_top_values_in_the_models_units():
  """The point of the warp: on a plateau with far-off bad values the top two values lie further apart in z."""
  y = np.array([-50.0, -30.0, -80.0, -45.0, 0.990, 0.994, 0.997, 0.998, 0.9985, 0.999])
  gap = {}
  for warping in ("none",) + WARPS:
    z = ynorm.YTransform.fit(ow.warp(y, warping)).apply(ow.warp(y, warping))
    top = np.sort(z)[-2:]
    gap[warping] = top[1] - top[0]
  assert gap["half_rank"] > 3 * gap["none"] and gap["half_rank+log"] > 3 * gap["none"], gap


# -- The option through the Optimizer -------------------------------------------


def _plateau(params):
  """Minimized: a near-flat region for a < 0.8 (most of the space) and far worse values beyond."""
  a, b = params["a"], params["b"]
  return 1.0 + 1e-3 * (a - 0.2) ** 2 + 1e-4 * b if a < 0.8 else 100.0 + 1e3 * a


def _space():
  return optformer.SearchSpace([optformer.Float("a", 0.0, 1.0), optformer.Float("b", 0.0, 1.0)])


def _study(model, warping, n=8, seed=0):
  opt = optformer.Optimizer(_space(), "minimize", model=model, seed=seed, search=SearchConfig(
      num_random=64, output_warping=warping))
  rng = np.random.default_rng(5)
  for _ in range(n):
    p = {"a": float(rng.random()), "b": float(rng.random())}
    opt.tell(p, _plateau(p))
  return opt


def test_search_config_checks_and_round_trips_output_warping():
  for warping in ow.WARPINGS:
    cfg = SearchConfig(output_warping=warping)
    assert SearchConfig.from_json(cfg.to_json()) == cfg
  assert SearchConfig().output_warping == "none"
  with pytest.raises(ValueError, match="output_warping"):
    SearchConfig(output_warping="log")
  old = SearchConfig().to_json()
  del old["output_warping"]  # A study saved before the option existed reads as "none".
  assert SearchConfig.from_json(old).output_warping == "none"


@pytest.mark.parametrize("warping", WARPS)
def test_acquisition_reads_warped_objectives_and_predictions_do_not(model, warping):
  plain, warped = _study(model, "none"), _study(model, warping)
  context, best = warped.designer.context(warped.study, warped=True)
  y = np.array([-t.value for t in warped.study.trials])  # The model's direction: larger is better.
  np.testing.assert_allclose(context.y, ow.warp(y, warping))
  assert best == pytest.approx(np.max(ow.warp(y, warping)))
  np.testing.assert_allclose(warped.designer.context(warped.study)[0].y, y)  # Unwarped for predictions.
  queries = [{"a": 0.1, "b": 0.5}, {"a": 0.9, "b": 0.5}]
  np.testing.assert_allclose(warped.predict(queries).mean, plain.predict(queries).mean)
  units = np.random.default_rng(2).random((32, 2))  # The acquisition the search ranks by differs.
  scores = [o.designer.condition(c).acquisition(units, b) for o in (warped, plain)
            for c, b in [o.designer.context(o.study, warped=True)]]
  assert not np.allclose(scores[0], scores[1])


@pytest.mark.slow
def test_warping_changes_the_shipped_models_suggestions_on_a_plateau():
  suggestions = {}
  for warping in ("none",) + WARPS:
    opt = _study(None, warping, n=10)
    suggestions[warping] = [dict(s) for s in opt.ask(2)]
  assert suggestions["half_rank"] != suggestions["none"] and suggestions["half_rank+log"] != suggestions["none"]


def test_warped_study_is_saved_restored_and_suggests_the_same(model, tmp_path):
  opt = _study(model, "half_rank+log")
  opt.ask()  # A pending trial: its fantasy is in warped units too.
  opt.save(tmp_path / "study.json")
  back = optformer.Optimizer.load(tmp_path / "study.json", model=model)
  assert back.search.output_warping == "half_rank+log"
  assert dict(back.ask()) == dict(opt.ask())


def test_warping_keeps_infeasible_trials_constraints_and_batches_working(model):
  opt = _study(model, "half_rank")
  opt.tell({"a": 0.3, "b": 0.3}, float("nan"))
  opt.tell({"a": 0.4, "b": 0.1}, 1.0, constraints=[0.5])  # Infeasible by its constraint.
  opt.tell({"a": 0.35, "b": 0.2}, 1.0001, constraints=[-0.5])
  context, best = opt.designer.context(opt.study, warped=True)
  assert np.isnan(context.y[-3]) and np.isnan(context.y[-2]) and np.isfinite(context.y[-1])
  assert best == np.nanmax(context.y)
  batch = opt.ask(3)
  assert len({tuple(sorted(p.items())) for p in batch}) == 3
  assert all(_space().validate(dict(p)) == dict(p) for p in batch)


def test_warping_is_refused_with_several_objectives(model):
  with pytest.raises(ValueError, match="output_warping"):
    optformer.Optimizer(_space(), ["minimize", "maximize"], model=model,
                        search=SearchConfig(output_warping="half_rank"))
  optformer.Optimizer(_space(), ["minimize", "maximize"], model=model)  # "none" is fine.


def test_benchmark_variant_names_reach_the_option(model):
  from optformer.eval import optimizers

  assert optimizers.split_variant("optformer:output_warping=half_rank+log") == (
      "optformer", {"output_warping": "half_rank+log"})
  opt = optimizers.make("optformer:output_warping=half_rank", _space(), "minimize", 0, model=model)
  assert opt.search.output_warping == "half_rank"
