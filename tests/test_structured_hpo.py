"""eval/structured_tasks.py and eval/structured_hpo.py: the define-by-run tasks, the metrics, and one study per
kind (conditional, constrained, bi-objective) through the same runner, on cheap analytic toys and the tiny model."""

import json
import math

import numpy as np
import optuna
import pytest

from optformer.eval import structured_hpo, structured_tasks
from optformer.eval.structured_tasks import StructuredTask


# -- The scikit-learn tasks (each fit here takes 0.01-0.3 s) --------------------------------------------------


def test_conditional_task_suggests_only_the_active_branch_and_uses_its_parameters():
  obj = structured_tasks.conditional_objective
  linear = lambda c: obj(optuna.trial.FixedTrial({"classifier": "svc", "svc_C": c, "svc_kernel": "linear"}))
  weak, strong = linear(1e-3), linear(1.0)
  assert 0.0 <= strong < 0.1 < weak <= 1.0  # C reaches the SVC: a tiny C underfits the digits.
  assert linear(1.0) == strong  # Deterministic.
  with pytest.raises(ValueError, match="svc_gamma"):  # The poly kernel's branch also asks gamma and degree.
    obj(optuna.trial.FixedTrial({"classifier": "svc", "svc_C": 1.0, "svc_kernel": "poly"}))
  lr = obj(optuna.trial.FixedTrial({"classifier": "logistic_regression", "lr_C": 1.0}))
  assert 0.0 <= lr < 0.1 and lr != strong


def test_constrained_task_counts_the_forest_nodes_against_the_budget():
  def evaluate(**params):
    trial = optuna.trial.FixedTrial({"min_samples_leaf": 1, "criterion": "gini", **params})
    return structured_tasks.constrained_objective(trial), trial.user_attrs

  stump_error, stump = evaluate(n_estimators=1, max_depth=1, max_features=0.1)
  forest_error, forest = evaluate(n_estimators=30, max_depth=32, max_features=0.1)
  assert stump["nodes"] == 3 and stump["constraint"] == pytest.approx(3 / structured_tasks.NODE_BUDGET - 1)
  assert forest["nodes"] > structured_tasks.NODE_BUDGET and forest["constraint"] > 0  # Infeasible,
  assert forest_error < 0.1 < stump_error  # and far more accurate: the constraint binds at the optimum.
  assert structured_tasks.constraint_of(optuna.trial.create_trial(value=0.0, user_attrs=forest)) == [forest["constraint"]]


def test_biobjective_task_returns_the_error_and_the_log_number_of_weights():
  assert structured_tasks.mlp_weights(2, 2) == 65 * 2 + 3 * 2 + 3 * 10
  assert math.log10(structured_tasks.mlp_weights(128, 128)) < structured_tasks.MAX_LOG10_WEIGHTS
  error, size = structured_tasks.biobjective_objective(optuna.trial.FixedTrial(
      {"hidden_1": 4, "hidden_2": 3, "alpha": 1e-4, "learning_rate_init": 1e-2}))
  assert 0.0 <= error <= 1.0 and size == pytest.approx(math.log10(65 * 4 + 5 * 3 + 4 * 10))


# -- Metrics on hand-made records ------------------------------------------------------------------------------


def _study(method, values, constraints=None, seed=0):
  trials = [{"params": {}, "values": v} for v in values]
  for t, c in zip(trials, constraints or []):
    t["constraint"] = c
  return {"method": method, "seed": seed, "trials": trials, "seconds_per_trial": 0.1}


def test_hypervolume_skips_infeasible_failed_and_out_of_reference_trials():
  s = _study("m", [[0.5, 0.5], [0.25, 0.75], None, [1.5, 0.1], [0.1, 0.1]], [-1, -1, -1, -1, 2.0])
  assert structured_hpo.hypervolume(s, 5, (1.0, 1.0)) == pytest.approx(0.5 * 0.5 + 0.25 * 0.25)
  assert structured_hpo.hypervolume(s, 1, (1.0, 1.0)) == pytest.approx(0.25)
  assert structured_hpo.hypervolume(_study("m", [None]), 1, (1.0, 1.0)) == 0.0


def test_best_feasible_and_feasible_share_read_the_constraints():
  values = [[float(i)] for i in range(40, 0, -1)]  # Decreasing: the last trial is the best,
  constraints = [(-1.0 if i % 4 == 0 else 1.0) for i in range(40)]  # but only every 4th trial is feasible.
  s = _study("m", values, constraints)
  assert structured_hpo.best_feasible(s, 40) == 4.0 and structured_hpo.best_feasible(s, 1) == 40.0
  assert structured_hpo.feasible_share(s) == pytest.approx(0.25)
  assert math.isnan(structured_hpo.best_feasible(_study("m", [[1.0]], [1.0]), 1))


def test_regret_is_measured_from_the_best_study_of_every_method_and_seed(monkeypatch):
  monkeypatch.setitem(structured_hpo.TASKS, "toy", StructuredTask("toy", lambda t: 0.0))
  studies = [_study("a", [[3.0], [1.0]], seed=0), _study("a", [[2.0], [2.0]], seed=1), _study("b", [[0.5], [4.0]])]
  results = {"task": {"name": "toy"}, "trials_per_study": 2, "studies": studies}
  summary = structured_hpo.summarize(results)
  assert summary["a"]["best@2"][:2] == pytest.approx((1.5, 0.5))
  assert summary["a"]["regret@2"][0] == pytest.approx(1.0) and summary["b"]["regret@2"][0] == 0.0
  assert "b" in structured_hpo.table(results).splitlines()[-1]


# -- Studies through the runner, on analytic toys ---------------------------------------------------------------


def _toy_conditional(trial):
  branch = trial.suggest_categorical("branch", ["a", "b"])
  if branch == "a":
    return (trial.suggest_float("x_a", 0.0, 1.0) - 0.3) ** 2
  return 0.1 + (trial.suggest_float("x_b", 0.0, 1.0) - 0.6) ** 2 + 0.1 * trial.suggest_int("k_b", 0, 3)


def _toy_constrained(trial):
  x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
  trial.set_user_attr("constraint", x + y - 1.0)
  return (x - 0.7) ** 2 + (y - 0.7) ** 2


def _toy_biobjective(trial):
  x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
  return x, (1.0 + y) * (1.0 - math.sqrt(x))


TOYS = {
    "toy_conditional": StructuredTask("toy_conditional", _toy_conditional),
    "toy_constrained": StructuredTask("toy_constrained", _toy_constrained,
                                      constraints_func=structured_tasks.constraint_of),
    "toy_biobjective": StructuredTask("toy_biobjective", _toy_biobjective, ("minimize", "minimize"),
                                      reference=(1.1, 2.1)),
}


@pytest.fixture
def toys(monkeypatch):
  for name, task in TOYS.items():
    monkeypatch.setitem(structured_hpo.TASKS, name, task)


def test_conditional_study_counts_the_fallback_gp_takes_and_optformer_does_not(toys, tiny_v2_dir):
  ours = structured_hpo.run_study(TOYS["toy_conditional"], "optformer", 0, 8, tiny_v2_dir)
  assert len(ours["trials"]) == 8 and all(len(t["values"]) == 1 for t in ours["trials"])
  assert ours["fallback"]["calls"] >= 2  # The first trial's parameters, at least,
  assert ours["fallback"]["held"] == 0, ours["fallback"]  # and no parameter a trial already held.
  gp = structured_hpo.run_study(TOYS["toy_conditional"], "gp", 0, 14, None)
  assert gp["fallback"]["held"] >= 4  # GPSampler's intersection space leaves every branch parameter to random.
  assert {p for _, p in gp["fallback"]["held_calls"]} <= {"x_a", "x_b", "k_b"}


def test_constrained_and_biobjective_studies_are_recorded_and_resumed(toys, tiny_v2_dir, tmp_path):
  out = tmp_path / "constrained.json"
  results = structured_hpo.run("toy_constrained", 6, [0], ["optformer", "random"], tiny_v2_dir, out, log=lambda s: 0)
  assert json.loads(out.read_text()) == json.loads(json.dumps(results))
  for study in results["studies"]:
    for t in study["trials"]:
      assert t["constraint"] == pytest.approx(t["params"]["x"] + t["params"]["y"] - 1.0)
  again = structured_hpo.run("toy_constrained", 6, [0, 1], ["random"], tiny_v2_dir, out, log=lambda s: 0)
  assert [(s["method"], s["seed"]) for s in again["studies"]] == [("optformer", 0), ("random", 0), ("random", 1)]
  with pytest.raises(ValueError, match="toy_constrained"):
    structured_hpo.run("toy_constrained", 7, [0], ["random"], None, out)
  bi = structured_hpo.run("toy_biobjective", 6, [0], ["optformer", "nsga2"], tiny_v2_dir, None, log=lambda s: 0)
  summary = structured_hpo.summarize(bi)
  for method in ("optformer", "nsga2"):
    assert 0.0 < summary[method]["hv@6"][0] <= 1.1 * 2.1


def test_unknown_task_or_method_is_refused():
  with pytest.raises(ValueError, match="'nope'"):
    structured_hpo.run("nope", 2, [0], ["random"])
  with pytest.raises(ValueError, match="'smac'"):
    structured_hpo.run("conditional", 2, [0], ["smac"])


def test_results_of_separate_runs_pool_and_other_tasks_do_not():
  a = {"task": {"name": "conditional"}, "trials_per_study": 2, "studies": [_study("m", [[1.0]], seed=0)]}
  b = {"task": {"name": "conditional"}, "trials_per_study": 2,
       "studies": [_study("m", [[9.0]], seed=0), _study("m", [[2.0]], seed=1)]}
  merged = structured_hpo.merge([a, b])
  assert [(s["seed"], s["trials"][0]["values"]) for s in merged["studies"]] == [(0, [1.0]), (1, [2.0])]
  with pytest.raises(ValueError, match="constrained"):
    structured_hpo.merge([a, {**b, "task": {"name": "constrained"}}])
