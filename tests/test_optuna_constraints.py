"""OptFormerSampler with constraints (Trial.set_constraint, constraints_func) and multi-objective studies.

On the tiny random-init model v2 (conftest's tiny_v2_model): the Optimizer the sampler builds is recorded, so the
tests check what it is told (constraints, infeasible trials, one value per objective)."""

import warnings

import pytest

optuna = pytest.importorskip("optuna")

import optformer
from optformer.integrations import optuna as oi

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def recorded(monkeypatch):
  """The Optimizers the sampler builds (the probe, then one per relative sample)."""
  made = []

  class Recording(optformer.Optimizer):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      made.append(self)

  monkeypatch.setattr(oi, "Optimizer", Recording)
  return made


def _sampler(model, **kw):
  return oi.OptFormerSampler(seed=0, model=model, num_candidates=8, **kw)


def _xy(trial):
  return trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)


def _check_told(study, opt):
  """The last Optimizer was told every earlier trial with its value and its constraints."""
  told = {tuple(sorted(t.params.items())): t for t in opt.trials}
  for t in study.trials[:-1]:
    got = told[tuple(sorted(t.params.items()))]
    constraints = list(t.constraints.values())
    assert got.value == (tuple(t.values) if len(t.values) > 1 else t.value)
    assert got.constraints == (tuple(constraints) if constraints else None)
    assert got.infeasible == any(c > 0 for c in constraints)


def test_set_constraint_is_told_and_a_violation_is_infeasible(tiny_v2_model, recorded):
  def objective(trial):
    x, y = _xy(trial)
    trial.set_constraint("budget", x + y - 1.0)
    trial.set_constraint("x", x - 0.8)
    return x - y

  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    study.optimize(objective, n_trials=6)
  _check_told(study, recorded[-1])
  assert len(recorded[-1].trials) == 5 and any(t.infeasible for t in recorded[-1].trials)


def test_constraints_func_is_stored_on_each_trial_and_told(tiny_v2_model, recorded):
  sampler = _sampler(tiny_v2_model, constraints_func=lambda t: [t.params["x"] - 0.5])
  study = optuna.create_study(sampler=sampler)
  study.optimize(lambda t: sum(_xy(t)), n_trials=5)
  assert [t.constraints for t in study.trials] == [{"0": t.params["x"] - 0.5} for t in study.trials]
  _check_told(study, recorded[-1])
  with pytest.raises(TypeError, match="constraints_func must be a callable"):
    _sampler(tiny_v2_model, constraints_func=[0.0])


def test_a_multi_objective_study_is_sampled_by_the_model(tiny_v2_model, recorded):
  study = optuna.create_study(directions=["minimize", "maximize"], sampler=_sampler(tiny_v2_model))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) ** 2, t.params["x"] - t.suggest_int("n", 0, 3)),
                   n_trials=5)
  assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
  opts = recorded[1:]  # The probe, then one Optimizer per relative sample (trials 1-4).
  assert len(opts) == 4 and all(opt.goal == ["minimize", "maximize"] for opt in opts)
  _check_told(study, opts[-1])
  assert [dict(t.params) for t in study.trials[1:]] == [opt.pending[0] for opt in opts]


def test_a_failed_trial_of_a_multi_objective_study_is_infeasible(tiny_v2_model, recorded):
  def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 1:
      raise RuntimeError("crashed")
    return x, 1 - x

  study = optuna.create_study(directions=["minimize", "minimize"], sampler=_sampler(tiny_v2_model))
  study.optimize(objective, n_trials=4, catch=(RuntimeError,))
  trials = recorded[-1].trials
  assert [t.infeasible for t in trials] == [False, True, False]
  assert len(recorded[-1].best) >= 1
