"""Conditional search spaces on the other public surfaces: Surrogate (dict rows and NaN array rows), the CLI's files
(space.json "condition", empty trials.csv cells), and the explanations (PDP, Shapley games)."""

import json
import math

import numpy as np
import pytest

import optformer
from optformer import cli, explain
from optformer.study_files import InputError, load_space
from optformer.trials_csv import read_configs, read_trials
from test_conditional_optimizer import objective, svm_space

CONFIGS = [
    {"kernel": "linear", "C": 0.1}, {"kernel": "rbf", "C": 10.0, "gamma": 0.05},
    {"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 3}, {"kernel": "rbf", "C": 100.0, "gamma": 0.5},
    {"kernel": "linear", "C": 3.0}, {"kernel": "poly", "C": 0.01, "gamma": 0.001, "degree": 5},
]
QUERIES = [{"kernel": "linear", "C": 1.0}, {"kernel": "poly", "C": 1.0, "gamma": 0.03, "degree": 2}]


def _row(c):
  """An array row in space order, NaN for inactive parameters."""
  return [c.get(n, math.nan) for n in svm_space().names]


# -- Surrogate -----------------------------------------------------------------------


def test_surrogate_fits_dict_rows_and_nan_rows_alike_and_matches_the_optimizer(tiny_v2_model):
  y = [objective(c) for c in CONFIGS]
  by_dict = optformer.Surrogate(svm_space(), model=tiny_v2_model).fit(CONFIGS, y)
  by_row = optformer.Surrogate(svm_space(), model=tiny_v2_model).fit(np.array([_row(c) for c in CONFIGS], object), y)
  assert by_row.X_train_ == CONFIGS
  mean, std = by_dict.predict(QUERIES, return_std=True)
  np.testing.assert_allclose(by_row.predict([_row(c) for c in QUERIES]), mean, rtol=1e-6)
  opt = optformer.Optimizer(svm_space(), model=tiny_v2_model)
  for c, v in zip(CONFIGS, y):
    opt.tell(c, v)
  np.testing.assert_allclose(opt.predict(QUERIES).mean, mean, rtol=1e-6)  # The same context and masks.
  assert np.all(std > 0)


@pytest.mark.parametrize("row, match", [
    (["linear", 1.0, 0.01, math.nan], r"X\[0\]: Parameter 'gamma' is inactive.*NaN or None"),
    (["rbf", 1.0, math.nan, math.nan], r"X\[0\]: Missing active parameter\(s\) \['gamma'\].*NaN or None"),
    (["rbf", 1.0, 0.01, None, 7], r"X\[0\] has 5 values"),
])
def test_surrogate_array_rows_name_the_cell_at_fault(tiny_v2_model, row, match):
  sur = optformer.Surrogate(svm_space(), model=tiny_v2_model)
  with pytest.raises(ValueError, match=match):
    sur.fit([row], [1.0])


# -- CLI -----------------------------------------------------------------------------

TRIALS = """kernel,C,gamma,degree,objective
linear,0.1,,,1.5
rbf,10,0.05,,0.5
poly,1,0.1,3,2.0
rbf,100,0.5,,
linear,3,,,0.9
"""


def _write(tmp_path, trials=TRIALS, space=None):
  (tmp_path / "space.json").write_text(json.dumps(space or svm_space().to_json()))
  (tmp_path / "trials.csv").write_text(trials)
  return tmp_path


def test_space_json_with_conditions_loads(tmp_path):
  assert load_space(_write(tmp_path) / "space.json") == svm_space()


@pytest.mark.parametrize("condition, match", [
    ({"parent": "kern", "values": ["rbf"]}, r"space.json:\d+: field 'condition': parameter #2 \('gamma'\): condition "
                                            r"parent 'kern' is not in the search space"),
    ({"parent": "kernel", "values": ["sigmoid"]}, r"field 'condition': parameter #2 .*'sigmoid' is not a value"),
    ({"parent": "kernel", "value": ["rbf"]}, r"field 'condition'.*a condition has the fields"),
    ({"parent": "gamma", "greater_than": 0.1}, r"field 'condition': parameter #2 \('gamma'\): its condition names "
                                               "itself"),
])
def test_space_json_tree_errors_are_input_errors(tmp_path, condition, match):
  items = svm_space().to_json()
  items[2]["condition"] = condition
  with pytest.raises(InputError, match=match):
    load_space(_write(tmp_path, space=items) / "space.json")


def test_trials_csv_reads_empty_cells_as_inactive(tmp_path):
  d = _write(tmp_path)
  rows = read_trials(d / "trials.csv", svm_space(), history=True)
  assert [row.params for row in rows][:3] == CONFIGS[:3]
  assert math.isnan(rows[3][2])  # An empty objective: infeasible.


@pytest.mark.parametrize("line, match", [
    ("linear,0.1,0.01,,1.0", r"trials.csv:2: field 'gamma': Parameter 'gamma' is inactive .*leave its cell empty"),
    ("poly,0.1,0.01,,1.0", r"trials.csv:2: field 'degree': Missing active parameter\(s\) \['degree'\]"),
    ("rbf,0.1,7,,1.0", r"trials.csv:2: field 'gamma': .*outside"),
])
def test_trials_csv_tree_errors_name_the_line_and_parameter(tmp_path, line, match):
  d = _write(tmp_path, trials="kernel,C,gamma,degree,objective\n" + line + "\n")
  with pytest.raises(InputError, match=match):
    read_trials(d / "trials.csv", svm_space(), history=True)


def test_configs_json_leaves_inactive_parameters_out(tmp_path):
  (tmp_path / "c.json").write_text(json.dumps(QUERIES))
  assert read_configs(tmp_path / "c.json", svm_space()) == QUERIES
  (tmp_path / "bad.json").write_text(json.dumps([{"kernel": "rbf", "C": 1.0}]))
  with pytest.raises(InputError, match=r"bad.json:1: field 'gamma': configuration #0: Missing active"):
    read_configs(tmp_path / "bad.json", svm_space())


def test_cli_suggest_and_predict_on_a_conditional_space(tmp_path, capsys, tiny_v2_dir):
  d = _write(tmp_path)
  (d / "c.json").write_text(json.dumps(QUERIES))
  common = ["--space", str(d / "space.json"), "--history", str(d / "trials.csv"), "--checkpoint", str(tiny_v2_dir)]
  assert cli.main(["suggest", *common, "-n", "3", "--seed", "0"]) == 0
  suggestions = json.loads(capsys.readouterr().out)
  assert len(suggestions) == 3
  for s in suggestions:
    assert svm_space().validate(s) == s  # Exactly the active parameters.
  assert cli.main(["predict", *common, "--configs", str(d / "c.json")]) == 0
  out = json.loads(capsys.readouterr().out)
  assert [o["config"] for o in out] == QUERIES
  opt = optformer.Optimizer(svm_space(), model=str(tiny_v2_dir))
  for row in read_trials(d / "trials.csv", svm_space(), history=True):
    opt.tell(row.params, row.value)
  np.testing.assert_allclose([o["mean"] for o in out], opt.predict(QUERIES).mean, rtol=1e-6)
  (d / "trials.csv").write_text("kernel,C,gamma,degree,objective\nlinear,0.1,0.5,,1.0\n")
  assert cli.main(["suggest", *common]) == 2
  assert "field 'gamma'" in capsys.readouterr().err


# -- Explanations --------------------------------------------------------------------


@pytest.fixture(scope="module")
def svm_opt(tiny_v2_model):
  opt = optformer.Optimizer(svm_space(), model=tiny_v2_model, seed=0)
  for c in CONFIGS:
    opt.tell(c, objective(c))
  return opt


def test_complete_drops_switched_off_parameters_and_centres_switched_on_ones():
  space = svm_space()
  done = explain.study.complete(space, {"kernel": "linear", "C": 1.0, "gamma": 0.1, "degree": 3})
  assert done == {"kernel": "linear", "C": 1.0}
  done = explain.study.complete(space, {"kernel": "poly", "C": 1.0})
  assert done == {"kernel": "poly", "C": 1.0, "gamma": space["gamma"].from_unit(0.5), "degree": 4}
  assert space.validate(done) == done


def test_pdp_of_a_child_averages_where_it_is_active(svm_opt):
  pd = explain.partial_dependence(svm_opt, "gamma", grid=5)
  active = np.array([c["kernel"] != "linear" for c in CONFIGS])
  assert np.isnan(pd.ice[~active]).all() and not np.isnan(pd.ice[active]).any()
  np.testing.assert_allclose(pd.mean, pd.ice[active].mean(axis=0))
  direct = svm_opt.predict([{**c, "gamma": g} for c in np.array(CONFIGS)[active] for g in [0.0001]]).mean
  np.testing.assert_allclose(pd.ice[active][:, 0], direct, rtol=1e-6)  # Each ICE point is the model's prediction.
  assert json.dumps(pd.to_json(), allow_nan=False)  # NaN written as null.


def test_pdp_of_a_pair_is_nan_where_the_child_is_switched_off(svm_opt):
  pd = explain.partial_dependence(svm_opt, ("kernel", "degree"), grid=(3, 4))
  kernels = list(pd.grid[0])
  assert np.isnan(pd.mean[kernels.index("linear")]).all() and np.isnan(pd.mean[kernels.index("rbf")]).all()
  assert not np.isnan(pd.mean[kernels.index("poly")]).any()


def test_importance_games_and_variance_on_a_conditional_space(svm_opt):
  for game in ("ablation", "tunability"):
    imp = explain.importance(svm_opt, game, num_samples=4)
    assert set(imp.values) == set(svm_opt.space.names)
    assert np.all(np.isfinite(list(imp.values.values())))
    # Efficiency: the Shapley values sum to v(all) - v(none).
    assert sum(imp.values.values()) == pytest.approx(imp.coalition_values[-1] - imp.coalition_values[0], abs=1e-9)
  ref = {"kernel": "linear", "C": 1.0}
  imp = explain.importance(svm_opt, "ablation", reference=ref)
  assert imp.target["kernel"] == "rbf"  # The incumbent: CONFIGS[1].
  assert imp.values["degree"] == 0  # Inactive on both sides (linear, rbf): it never changes a coalition.
  # gamma is switched on only with kernel (the reference is linear): without kernel it changes no coalition.
  v, bit = imp.coalition_values, {n: 1 << i for i, n in enumerate(svm_opt.space.names)}
  for mask in range(len(v)):
    if not mask & bit["kernel"]:
      assert v[mask | bit["gamma"]] == v[mask]
  assert any(v[m | bit["gamma"]] != v[m] for m in range(len(v)) if m & bit["kernel"])  # 0.01 -> 0.05 with it.
  var = explain.variance_importance(svm_opt, grid=4)
  assert all(0.0 <= v <= 1.0 for v in var.values.values())


def test_explain_study_writes_json_without_nan(svm_opt):
  out = explain.explain_study(svm_opt)
  text = json.dumps(out, allow_nan=False)  # What `optformer explain` writes.
  assert set(out["partial_dependence"]) == set(svm_opt.space.names)
  assert "null" in text  # The PDP of gamma and degree over the linear configurations.
