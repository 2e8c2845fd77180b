"""Define-by-run conditional Optuna studies through OptFormerSampler: the union of the parameters as a conditional
search space whose conditions are read off the trials (optformer/integrations/optuna_conditions.py)."""

import math
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

import optformer
from optformer.integrations import optuna as oi
from optformer.integrations import optuna_conditions as oc
from optformer.search_space import Categorical, Condition, Float, Int, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

TRUE_SPACE = SearchSpace([
    Categorical("classifier", ["svc", "rf"]),
    Float("svc_c", 1e-3, 1e3, log=True, condition=("classifier", ["svc"])),
    Int("rf_depth", 1, 16, condition=("classifier", ["rf"])),
])


def objective(trial):
  classifier = trial.suggest_categorical("classifier", ["svc", "rf"])
  if classifier == "svc":
    return math.log10(trial.suggest_float("svc_c", 1e-3, 1e3, log=True)) ** 2
  return abs(trial.suggest_int("rf_depth", 1, 16) - 6) / 4 + 0.5


@pytest.fixture
def asked(monkeypatch):
  """The relative samples: (trial's Optimizer space, suggestion, the Optimizer) per ask."""
  out = []

  class Recording(optformer.Optimizer):
    def ask(self, n=None):
      s = super().ask(n)
      out.append((self.space, dict(s), self))
      return s

  monkeypatch.setattr(oi, "Optimizer", Recording)
  return out


def test_a_conditional_objective_runs_with_no_fallback_after_the_startup_trials(tiny_v2_model, asked, monkeypatch):
  sampler = oi.OptFormerSampler(seed=0, model=tiny_v2_model, num_candidates=16, n_startup_trials=2)
  fallback, calls = sampler._independent_sampler.sample_independent, []
  monkeypatch.setattr(sampler._independent_sampler, "sample_independent",
                      lambda study, trial, name, dist: calls.append((trial.number, name)) or fallback(study, trial, name, dist))
  study = optuna.create_study(sampler=sampler)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # A fallback warning (or any other) fails the test,
    warnings.filterwarnings("ignore", message="The study has")  # but the tiny model's 16-trial context.
    study.optimize(objective, n_trials=30)
  assert len(study.trials) == 30 and all(t.state == TrialState.COMPLETE for t in study.trials)
  for t in study.trials:
    assert TRUE_SPACE.validate(t.params) == t.params  # Every trial holds exactly its branch's parameters.
  # The fallback samples only the startup trials and parameters that no completed trial held yet.
  for number, name in calls:
    assert number < 2 or not any(name in t.params for t in study.trials[:number]), (number, name)
  assert {s["classifier"] for _, s, _ in asked} == {"svc", "rf"}
  space, _, _ = asked[-1]
  assert sorted(space, key=lambda p: p.name) == sorted(TRUE_SPACE, key=lambda p: p.name)  # The objective's tree.
  sampled = [t.number for t in study.trials if t.number >= 2]
  assert len(asked) == len(sampled)
  assert [s for _, s, _ in asked] == [study.trials[n].params for n in sampled]  # The model chose every value.


def _trial(params, value=1.0):
  dists = {
      "k": CategoricalDistribution(["a", "b", "c"]), "n": IntDistribution(1, 4),
      "x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0), "z": FloatDistribution(0.0, 1.0),
      "w": FloatDistribution(0.0, 1.0),
  }
  return create_trial(params=params, distributions={n: dists[n] for n in params}, value=value)


def test_conditions_read_off_the_trials():
  trials = [
      _trial({"k": "a", "n": 1, "x": 0.1}), _trial({"k": "b", "n": 3, "x": 0.2, "y": 0.5, "z": 0.1}),
      _trial({"k": "a", "n": 4, "x": 0.3, "z": 0.2, "w": 0.3}), _trial({"k": "b", "n": 2, "x": 0.1, "y": 0.9}),
  ]
  space = oc.conditional_space(trials, oc.union_distributions(trials))
  assert space.names == ["k", "n", "w", "x", "y", "z"]
  assert space["k"].condition is None and space["x"].condition is None
  assert space["y"].condition == Condition("k", ["b", "c"])  # A Categorical parent first; c, not seen yet, may hold y.
  assert space["z"].condition == Condition("n", greater_than=2)  # An ordered split: unseen levels follow it.
  assert space["w"].condition == Condition("n", greater_than=3)  # Not k (held with "a" and missing with "a").
  for t in trials:
    assert oc.params_in(space, t.params) == space.validate(t.params)


def test_parameters_no_value_explains_are_left_out():
  trials = [_trial({"k": "a", "x": 0.1}), _trial({"k": "a", "x": 0.2, "y": 0.3}), _trial({"k": "b", "x": 0.3})]
  space = oc.conditional_space(trials, oc.union_distributions(trials))
  assert space.names == ["k", "x"]  # y: held once with k="a", and missing once with k="a"; x is a Float.



def test_suggest_params_suggests_only_the_active_branch():
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  study.optimize(lambda t: len(oi.suggest_params(t, TRUE_SPACE)), n_trials=12)
  for t in study.trials:
    assert TRUE_SPACE.validate(t.params) == t.params
  assert {t.params["classifier"] for t in study.trials} == {"svc", "rf"}


def _study_of(trials):
  study = optuna.create_study()
  study.add_trials(trials)
  return study


def test_the_history_skips_trials_whose_parameters_the_conditions_do_not_produce(tiny_v2_model, asked):
  dists = {"classifier": CategoricalDistribution(["svc", "rf"]), "svc_c": FloatDistribution(1e-3, 1e3, log=True),
           "rf_depth": IntDistribution(1, 16)}
  make = lambda params, state=TrialState.COMPLETE, value=1.0: create_trial(
      params=params, distributions={n: dists[n] for n in params}, state=state,
      value=value if state == TrialState.COMPLETE else None)
  study = _study_of([
      make({"classifier": "svc", "svc_c": 1.0}), make({"classifier": "rf", "rf_depth": 3}, value=0.5),
      make({"classifier": "svc", "svc_c": 10.0}, value=2.0),
      make({"classifier": "svc"}, state=TrialState.FAIL),  # Failed before suggesting svc_c: not a configuration.
      make({"classifier": "rf", "rf_depth": 9}, state=TrialState.FAIL),  # A configuration: told as infeasible.
  ])
  sampler = oi.OptFormerSampler(seed=0, model=tiny_v2_model, num_candidates=16)
  study.sampler = sampler
  study.optimize(objective, n_trials=1)
  space, suggestion, opt = asked[-1]
  assert space["svc_c"].condition == Condition("classifier", ["svc"])
  assert [(t.params, t.infeasible) for t in opt.trials] == [
      ({"classifier": "svc", "svc_c": 1.0}, False), ({"classifier": "rf", "rf_depth": 3}, False),
      ({"classifier": "svc", "svc_c": 10.0}, False), ({"classifier": "rf", "rf_depth": 9}, True)]
  assert TRUE_SPACE.validate(suggestion) == suggestion


def test_explanations_of_a_conditional_optuna_study_read_the_same_space():
  trials = [create_trial(params=p, distributions={n: {"classifier": CategoricalDistribution(["svc", "rf"]),
                                                       "svc_c": FloatDistribution(1e-3, 1e3, log=True),
                                                       "rf_depth": IntDistribution(1, 16)}[n] for n in p}, value=v)
            for p, v in [({"classifier": "svc", "svc_c": 1.0}, 1.0), ({"classifier": "rf", "rf_depth": 4}, 0.5),
                         ({"classifier": "rf", "rf_depth": 12}, 0.7)]]
  view = optformer.explain.study.as_study(_study_of(trials))
  assert sorted(view.space, key=lambda p: p.name) == sorted(TRUE_SPACE, key=lambda p: p.name)
  assert view.configs == [t.params for t in trials]


def _new_level_objective(trial):
  """x exists under k in {a, c, e}; the other levels have no child."""
  k = trial.suggest_categorical("k", ["a", "b", "c", "d", "e", "f"])
  if k in ("a", "c", "e"):
    return (trial.suggest_float("x", 0.0, 1.0) - 0.3) ** 2
  return 0.5


def test_a_new_parent_level_gets_its_child_from_the_model_not_the_fallback(tiny_v2_model, asked, monkeypatch):
  class Steered(oi.Optimizer):  # A prior toward the levels c..f, so the model picks levels no trial took yet.
    def __init__(self, space, *args, **kwargs):
      if "k" in space.names:
        kwargs.update(prior={"k": optformer.priors.Weights({"a": 1, "b": 1, "c": 50, "d": 50, "e": 50, "f": 50})},
                      prior_beta=20.0)
      super().__init__(space, *args, **kwargs)

  monkeypatch.setattr(oi, "Optimizer", Steered)
  sampler = oi.OptFormerSampler(seed=0, model=tiny_v2_model, num_candidates=16, n_startup_trials=2)
  fallback, calls = sampler._independent_sampler.sample_independent, []
  monkeypatch.setattr(sampler._independent_sampler, "sample_independent",
                      lambda study, trial, name, dist: calls.append((trial.number, name)) or fallback(study, trial, name, dist))
  study = optuna.create_study(sampler=sampler)
  study.enqueue_trial({"k": "a", "x": 0.9})  # The startup trials see only a (with x) and b (without).
  study.enqueue_trial({"k": "b"})
  study.optimize(_new_level_objective, n_trials=10)
  assert [name for number, name in calls if number >= 2] == []  # x was held before: never the fallback's.
  # The path is exercised: a sampled trial picked a level with x that no earlier trial had taken.
  new = [t for t in study.trials[2:] if t.params["k"] not in {u.params["k"] for u in study.trials[:t.number]}]
  assert any("x" in t.params for t in new)
  space, _, _ = asked[-1]  # The condition learned from the trials: the levels seen with x, and those not seen yet.
  seen = {t.params["k"] for t in study.trials}
  assert set(space["x"].condition.values) == {"a", "c", "e"} | ({"a", "b", "c", "d", "e", "f"} - seen)
  for t in study.trials[2:]:  # Each sampled trial holds x exactly when its level has it.
    assert ("x" in t.params) == (t.params["k"] in ("a", "c", "e"))
