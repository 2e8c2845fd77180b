"""Constraints and several objectives in ask/tell: Optimizer.tell(constraints=), goal=[...], the Pareto front,
per-objective predictions, the study file, and the multi-objective acquisition (optformer/multi_objective.py).

On the tiny random-init model v2 (conftest's tiny_v2_model): these check plumbing and invariants, not quality
(eval/constrained.py and eval/multi_objective.py measure that on the shipped model)."""

import math

import numpy as np
import pytest

import optformer
from optformer import multi_objective
from optformer import search_space as ss
from optformer.study import dominated

SPACE = ss.SearchSpace([ss.Float("x", 0.0, 1.0), ss.Float("y", 0.0, 1.0)])


def _configs(n, seed=0):
  return [{"x": float(a), "y": float(b)} for a, b in np.random.default_rng(seed).random((n, 2))]


# -- Constraints --------------------------------------------------------------------------------------------


def test_a_violated_constraint_is_infeasible_keeps_its_value_and_is_never_best(tiny_v2_model):
  opt = optformer.Optimizer(SPACE, model=tiny_v2_model, seed=0)
  a, b, c = _configs(3)
  bad = opt.tell(a, 0.1, constraints=[-1.0, 0.5])  # The best value, but one constraint is violated.
  good = opt.tell(b, 0.7, constraints=[0.0, -2.0])  # 0 is feasible, as in Optuna.
  plain = opt.tell(c, 0.9)
  assert bad.infeasible and bad.value == 0.1 and bad.constraints == (-1.0, 0.5)
  assert not good.infeasible and good.constraints == (0.0, -2.0) and not plain.infeasible and plain.constraints is None
  assert opt.best == (b, 0.7)
  # The model reads the violating trial as infeasible (NaN), the others with their values (larger is better).
  context, best = opt._model_context()
  assert np.isnan(context.y[0]) and context.y[1:].tolist() == [-0.7, -0.9] and best == -0.7
  assert all(t.infeasible for t in [opt.tell(_configs(1, 5)[0], 0.0, constraints=[1e-9])])


def test_each_constraint_is_modelled_from_its_told_values(tiny_v2_model):
  # Designer.constraint_log_feasible: sum_j log P(c_j(x) <= 0), each c_j predicted from its own context, as an
  # Optimizer told c_j as its objective predicts it.
  opt = optformer.Optimizer(SPACE, model=tiny_v2_model, seed=0)
  assert opt.designer.constraint_log_feasible(opt.study)(np.zeros((3, 2))) == 0.0
  rng = np.random.default_rng(0)
  per_constraint = [optformer.Optimizer(SPACE, model=tiny_v2_model) for _ in range(2)]
  for i, config in enumerate(_configs(8)):
    c = [config["x"] - 0.5, rng.normal()]
    opt.tell(config, None if i == 2 else config["y"], constraints=c)  # A crash still tells its constraints.
    for j, single in enumerate(per_constraint):
      single.tell(config, c[j])
  queries = _configs(6, seed=4)
  got = opt.designer.constraint_log_feasible(opt.study)(SPACE.to_units(queries))
  want = sum(np.log(single.predict(queries).probability_of_improvement(0.0)) for single in per_constraint)
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "constraints, error, match",
    [("c", TypeError, "sequence of real numbers"), (1.0, TypeError, "sequence of real numbers"),
     ([0.0, "1"], TypeError, "real numbers"), ([math.nan], ValueError, "finite"), ([-math.inf], ValueError, "finite"),
     ([True], TypeError, "real numbers")],
)
def test_bad_constraints_raise_and_record_nothing(tiny_v2_model, constraints, error, match):
  opt = optformer.Optimizer(SPACE, model=tiny_v2_model, seed=0)
  s = opt.ask()
  with pytest.raises(error, match=match):
    opt.tell(s, 1.0, constraints=constraints)
  assert opt.trials == [] and [p.number for p in opt.pending] == [s.number]


def test_constraints_survive_save_and_load_and_older_files_keep_loading(tiny_v2_model, tmp_path):
  opt = optformer.Optimizer(SPACE, model=tiny_v2_model, seed=0)
  for i, config in enumerate(_configs(4)):
    opt.tell(config, float(i), constraints=[config["x"] - 0.5])
  opt.tell(_configs(1, 9)[0], math.nan)
  opt.save(tmp_path / "study.json")
  loaded = optformer.Optimizer.load(tmp_path / "study.json", model=tiny_v2_model)
  assert loaded.trials == opt.trials and loaded.best == opt.best
  assert dict(loaded.ask()) == dict(opt.ask())
  data = opt.to_json()
  for t in data["trials"]:  # A study file written before constraints existed: no "constraints" field.
    t.pop("constraints", None)
  old = optformer.Optimizer.from_json(data, model=tiny_v2_model)
  assert [t.value for t in old.trials[:4]] == [0.0, 1.0, 2.0, 3.0] and not any(t.infeasible for t in old.trials[:4])
  assert "constraints" not in optformer.Optimizer(SPACE, model=tiny_v2_model).to_json()["trials"]
  data["trials"][0]["constraints"] = ["x"]
  with pytest.raises(ValueError, match=r"trials\[0\]\.constraints"):
    optformer.Optimizer.from_json(data, model=tiny_v2_model)


# -- Several objectives ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("goal", [["minimize"], [], ["minimize", "up"], "min", None])
def test_bad_goals_raise(tiny_v2_model, goal):
  with pytest.raises(ValueError, match="goal must be 'minimize' or 'maximize', or a list"):
    optformer.Optimizer(SPACE, goal=goal, model=tiny_v2_model)


def test_best_is_the_pareto_front_of_the_feasible_trials(tiny_v2_model):
  opt = optformer.Optimizer(SPACE, goal=["minimize", "maximize"], model=tiny_v2_model, seed=0)
  rng = np.random.default_rng(1)
  values = rng.random((12, 2)).round(1)  # Ties included.
  for i, (config, v) in enumerate(zip(_configs(12), values)):
    opt.tell(config, list(v), constraints=[1.0] if i == 3 else None)
  opt.tell(_configs(1, 7)[0], [-5.0, math.nan])  # An objective that is not finite: infeasible, never on the front.
  feasible = [t for t in opt.trials if not t.infeasible]
  # Brute force: a feasible trial is on the front unless another is no worse in both and better in one.
  beats = lambda u, v: u[0] <= v[0] and u[1] >= v[1] and (u[0] < v[0] or u[1] > v[1])
  want = [(t.params, t.value) for t in feasible if not any(beats(o.value, t.value) for o in feasible)]
  assert opt.best == want and all(isinstance(v, tuple) and len(v) == 2 for _, v in opt.best)
  assert opt.trials[3].infeasible and opt.trials[3].value == tuple(values[3])
  assert opt.trials[-1].infeasible and math.isnan(opt.trials[-1].value[1])


@pytest.mark.parametrize("value", [1.0, [1.0], [1.0, 2.0, 3.0], "ab", {"a": 1, "b": 2}])
def test_a_value_per_objective_is_required(tiny_v2_model, value):
  opt = optformer.Optimizer(SPACE, goal=["minimize", "minimize"], model=tiny_v2_model)
  with pytest.raises(TypeError, match="2 objectives; expected a sequence of 2 numbers"):
    opt.tell(_configs(1)[0], value)
  assert opt.trials == []


def test_each_objective_is_predicted_from_its_own_context(tiny_v2_model):
  goals = ["minimize", "maximize"]
  opt = optformer.Optimizer(SPACE, goal=goals, model=tiny_v2_model, seed=0)
  singles = [optformer.Optimizer(SPACE, goal=g, model=tiny_v2_model, seed=0) for g in goals]
  for i, config in enumerate(_configs(6)):
    v = [config["x"] + config["y"], config["x"] * config["y"]]
    opt.tell(config, None if i == 2 else v)
    for k, single in enumerate(singles):
      single.tell(config, None if i == 2 else v[k])
  pending = opt.ask()
  for single in singles:
    single.add_pending(dict(pending))  # Fantasized with each objective's own predicted mean.
  queries = _configs(5, seed=3)
  got = opt.predict(queries)
  assert len(got) == 2
  for k, single in enumerate(singles):
    want = single.predict(queries)
    np.testing.assert_allclose(got[k].mean, want.mean, rtol=1e-6)
    np.testing.assert_allclose(got[k].expected_improvement(), want.expected_improvement(), rtol=1e-6)


def test_multi_objective_asks_are_fresh_and_a_resumed_study_asks_the_same(tiny_v2_model):
  opt = optformer.Optimizer(SPACE, goal=["minimize", "maximize"], model=tiny_v2_model, seed=0)
  for _ in range(5):
    s = opt.ask()
    opt.tell(s, [s["x"], s["y"] - s["x"] ** 2])
  batch = opt.ask(2)
  keys = {tuple(sorted(c.items())) for c in [t.params for t in opt.trials] + [dict(s) for s in batch]}
  assert len(keys) == 7 and all(SPACE.validate(s) == dict(s) for s in batch)
  resumed = optformer.Optimizer.from_json(opt.to_json(), model=tiny_v2_model)
  assert resumed.goal == ["minimize", "maximize"] and resumed.trials == opt.trials
  assert dict(resumed.ask()) == dict(opt.ask())


# -- The multi-objective acquisition ---------------------------------------------------------------------------


def test_dominated_matches_brute_force():
  losses = np.random.default_rng(0).integers(0, 4, (30, 3)).astype(float)
  want = [any(np.all(o <= l) and np.any(o < l) for o in losses) for l in losses]
  assert dominated(losses).tolist() == want


def test_hypervolume_improvement_matches_optunas_hypervolume():
  hv = pytest.importorskip("optuna._hypervolume").compute_hypervolume
  rng = np.random.default_rng(0)
  reference = np.array([1.1, 1.2])
  for _ in range(5):
    front = rng.random((8, 2))
    front = front[~dominated(front)]
    points = rng.random((20, 2)) * 1.3 - 0.1
    got = multi_objective.hypervolume_improvement_2d(points, front, reference)
    want = [hv(np.vstack([front, p[None]]), reference) - hv(front, reference) if np.all(p < reference) else 0.0
            for p in points]
    np.testing.assert_allclose(got, want, atol=1e-12)


class _Predictive:
  """A stand-in for PFNPredictive: normal objectives (larger is better) with given means, std 0.05."""

  def __init__(self, mean, p_feasible):
    self.mean, self.p_feasible = np.asarray(mean, float), np.asarray(p_feasible, float)

  def quantile(self, q):
    from scipy.stats import norm

    return self.mean + 0.05 * norm.ppf(q)


class _Posterior:
  def __init__(self, column, p_feasible):
    self.column, self.p_feasible = column, p_feasible

  def predict(self, units, active=None):
    return _Predictive(np.asarray(units)[:, self.column], self.p_feasible)


@pytest.mark.parametrize("method", multi_objective.METHODS)
def test_the_score_prefers_candidates_that_extend_the_front_and_weighs_p_feasible(method):
  # Two objectives to maximize whose predicted means are the candidate's two coordinates; front (0.5, 0.5).
  losses = -np.array([[0.5, 0.5], [0.2, 0.3], [0.0, 0.0], [1.0, 1.0]])[:2]
  units = np.array([[0.9, 0.9], [0.6, 0.55], [0.3, 0.3], [0.1, 0.1]])
  score = multi_objective.scorer([_Posterior(0, 1.0), _Posterior(1, 1.0)], losses, np.random.default_rng(0), method)
  s = score(units)
  assert s[0] > s[1] > s[2] > s[3]  # Dominating the front most, less, then dominated and farther away.
  half = multi_objective.scorer([_Posterior(0, 0.5), _Posterior(1, 0.5)], losses, np.random.default_rng(0), method)
  np.testing.assert_allclose(half(units), s + np.log(0.5))
  with pytest.raises(ValueError, match="method must be one of"):
    multi_objective.scorer([_Posterior(0, 1.0)], losses, np.random.default_rng(0), "nsga")


def test_explanations_refuse_a_multi_objective_study(tiny_v2_model):
  from optformer.explain.study import as_study

  opt = optformer.Optimizer(SPACE, goal=["minimize", "maximize"], model=tiny_v2_model)
  for config in _configs(3):
    opt.tell(config, [config["x"], config["y"]])
  with pytest.raises(ValueError, match="Explanations take one objective; this study has 2"):
    as_study(opt)
