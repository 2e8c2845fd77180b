"""Surrogate metrics (pure functions against Monte Carlo and known cases) and a tiny end-to-end run."""

import dataclasses
import json
import math

import numpy as np
import pytest
from flax import nnx

from optformer.data_gen.prior import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL
from optformer.eval import surrogate_eval as se
from optformer import checkpoint
from optformer.model.network import PFNConfig, create_model


def _mc_crps(samples_NxS, y_N):
  """Monte Carlo CRPS = E|X - y| - E|X - X'| / 2 (Gneiting & Raftery 2007, eq. 20); X' a permutation."""
  rng = np.random.default_rng(1)
  other = rng.permuted(samples_NxS, axis=1)
  return np.mean(np.abs(samples_NxS - y_N[:, None]), 1) - 0.5 * np.mean(np.abs(samples_NxS - other), 1)


def test_gaussian_crps_matches_monte_carlo():
  rng = np.random.default_rng(0)
  mean, std, y = np.array([0.0, 1.5, -2.0]), np.array([1.0, 0.3, 2.5]), np.array([0.3, 3.0, -2.1])
  samples = mean[:, None] + std[:, None] * rng.standard_normal((3, 200_000))
  np.testing.assert_allclose(se.gaussian_crps(mean, std, y), _mc_crps(samples, y), rtol=0.02)
  # At the mean, CRPS = std (sqrt(2) - 1) / sqrt(pi) (closed form of eq. 21 at w = 0).
  np.testing.assert_allclose(se.gaussian_crps(0.0, 2.0, 0.0), 2.0 * (math.sqrt(2) - 1) / math.sqrt(math.pi))


def test_quantile_crps_matches_monte_carlo_and_the_gaussian():
  """The model's CRPS from K quantile midpoints: the exact CRPS of that sample, near the Gaussian's for fine K."""
  rng = np.random.default_rng(0)
  samples, y = rng.standard_normal((3, 400)) * [[1.0], [0.5], [2.0]], np.array([0.3, -1.0, 4.0])
  np.testing.assert_allclose(se.quantile_crps(samples, y), _mc_crps(np.repeat(samples, 50, 1), y), rtol=0.02)
  import scipy.stats

  k = 2000
  mids = scipy.stats.norm.ppf((np.arange(k) + 0.5) / k)[None].repeat(3, 0)
  np.testing.assert_allclose(se.quantile_crps(mids, y), se.gaussian_crps(0.0, 1.0, y), rtol=2e-3)


def test_gaussian_nll_known_case():
  np.testing.assert_allclose(se.gaussian_nll(1.0, 2.0, 3.0), 0.5 * math.log(2 * math.pi * 4.0) + 0.5)


def test_a_calibrated_gaussian_has_near_zero_calibration_error():
  rng = np.random.default_rng(0)
  mean, std = rng.normal(size=20_000), rng.uniform(0.5, 2.0, size=20_000)
  y = mean + std * rng.standard_normal(20_000)
  pit = 0.5 * (1 + np.vectorize(math.erf)((y - mean) / (std * math.sqrt(2))))
  coverage = se.central_coverage(pit)
  assert se.calibration_error(coverage) < 0.01
  np.testing.assert_allclose(coverage, se.COVERAGE_LEVELS, atol=0.015)
  # Overconfident (std / 3): every interval covers too little.
  pit_over = 0.5 * (1 + np.vectorize(math.erf)(3 * (y - mean) / (std * math.sqrt(2))))
  over = se.central_coverage(pit_over)
  assert np.all(over < np.array(se.COVERAGE_LEVELS)) and se.calibration_error(over) > 0.2


def test_spearman_of_identical_and_reversed_rankings():
  a, b = np.array([0.1, 0.5, 0.3, 2.0]), np.array([1.0, 2.0, 1.5, 9.0])  # Same order, different values.
  assert se.mean_spearman([a, a], [b, b])[:2] == pytest.approx((1.0, 0.0))
  assert se.mean_spearman([a], [-b])[0] == pytest.approx(-1.0)
  # A constant prediction has no ranking: skipped and not counted.
  assert se.mean_spearman([a, np.ones(4)], [b, b])[2] == 1
  assert math.isnan(se.mean_spearman([np.ones(4)], [b])[0])


def test_gp_inputs_drop_unused_slots_and_one_hot_categoricals():
  x = np.array([[0.25, 2.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
  kinds = np.array([KIND_FLOAT, KIND_CATEGORICAL, KIND_ORDINAL, 0])
  out = se.gp_inputs(x, kinds, np.array([0, 3, 5, 0]))
  np.testing.assert_array_equal(out, [[0.25, 0, 0, 1, 0.5], [1.0, 1, 0, 0, 0.0]])


@pytest.fixture(scope="module")
def tiny_result(tiny_v2_model):
  return se.evaluate(tiny_v2_model, num_tasks=3, context_sizes=(3, 8), num_queries=5, gp_restarts=0)


def test_evaluate_end_to_end_structure(tiny_result):
  res = tiny_result
  assert res["methods"] == list(se.METHODS) and set(res["by_context_size"]) == {"3", "8"}
  assert (res["num_tasks"], res["num_queries"], res["context_sizes"]) == (3, 5, [3, 8]) and res["seconds"] > 0
  for row in res["by_context_size"].values():
    assert 0.0 <= row["fraction_outside_model_support"] <= 1.0
    assert row["model_nll"] == row["model"]["nll"] and row["gp_nll"] == row["exact_gp"]["nll"]
    for m in se.METHODS:
      r = row[m]
      assert np.isfinite([r["nll"], r["crps"], r["calibration_error"]]).all() and r["crps"] > 0
      assert row["fraction_outside_model_support"] == 1.0 or np.isfinite(r["nll_inside_support"])
      assert len(r["coverage"]) == 9 and all(0.0 <= c <= 1.0 for c in r["coverage"])
      assert np.all(np.diff(r["coverage"]) >= 0)  # a wider central interval covers at least as much
      assert r["calibration_error"] == pytest.approx(se.calibration_error(r["coverage"]))
      assert r["spearman_tasks"] == 0 or -1.0 <= r["spearman"] <= 1.0
  json.dumps(res)  # JSON-able.


def test_evaluate_scores_each_method_on_its_own_predictions(tiny_v2_model, tiny_result):
  # Each method's row depends on that method alone: run alone, it is the same; another model changes only the model's.
  alone = se.evaluate(tiny_v2_model, num_tasks=3, context_sizes=(3, 8), num_queries=5, gp_restarts=0, methods=("exact_gp",))
  other = se.evaluate(create_model(tiny_v2_model.config, seed=1), num_tasks=3, context_sizes=(3, 8), num_queries=5,
                      gp_restarts=0, methods=("model", "exact_gp"))
  own = lambda r: {k: v for k, v in r.items() if k != "nll_inside_support"}  # "inside" is the model's support
  for n, row in tiny_result["by_context_size"].items():
    assert own(alone["by_context_size"][n]["exact_gp"]) == own(row["exact_gp"])
    assert own(other["by_context_size"][n]["exact_gp"]) == own(row["exact_gp"])
    assert other["by_context_size"][n]["model"]["nll"] != row["model"]["nll"]


def test_the_exact_gp_is_calibrated_and_ranks_the_noiseless_objective(tiny_v2_model):
  """The GP with the prior's own hyperparameters is the Bayes predictor of the prior's noisy y: its central
  intervals cover what they claim and its mean ranks the noiseless f (a wrong target, std or PIT would not)."""
  res = se.evaluate(tiny_v2_model, num_tasks=12, context_sizes=(8,), num_queries=20, gp_restarts=0, methods=("exact_gp",))
  r = res["by_context_size"]["8"]["exact_gp"]
  assert r["calibration_error"] < 0.08, r["coverage"]
  assert r["spearman_tasks"] == 12 and r["spearman"] > 0.3


def test_evaluate_rejects_bad_arguments(tiny_v2_model):
  with pytest.raises(ValueError, match="context sizes"):
    se.evaluate(tiny_v2_model, num_tasks=1, context_sizes=(1000,))
  with pytest.raises(ValueError, match="Unknown methods"):
    se.evaluate(tiny_v2_model, num_tasks=1, methods=("model", "oracle"))


def test_cli_writes_json_and_figure(tmp_path):
  cfg = dataclasses.replace(PFNConfig.tiny(), max_context=16)
  model_dir = checkpoint.save(tmp_path / "m", cfg, nnx.to_pure_dict(nnx.state(create_model(cfg))))
  out, fig = tmp_path / "s.json", tmp_path / "s.png"
  argv = ["--checkpoint", str(model_dir), "--tasks", "2", "--contexts", "4", "--queries", "3", "--gp-restarts", "0",
          "--out", str(out), "--figure", str(fig)]
  assert se.main(argv) == 0
  assert json.loads(out.read_text())["by_context_size"]["4"]["ml2_gp"]["crps"] > 0
  assert fig.stat().st_size > 1000
