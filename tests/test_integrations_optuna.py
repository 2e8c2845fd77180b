"""Optuna integration: distribution round trips, bad input, and OptFormerSampler in Optuna studies."""

import copy
import io
import json
import math
import pickle
import threading
import warnings

import pytest

optuna = pytest.importorskip("optuna")
joblib = pytest.importorskip("joblib")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

import optformer
from optformer import context as context_lib
from optformer.integrations import optuna as oi
from optformer.search_space import Categorical, Condition, Discrete, Float, Int

# (optuna distribution, optformer parameter): optuna -> optformer -> optuna is exact for all of these.
EXACT_CASES = [
    (FloatDistribution(0.0, 1.0), Float("p", 0.0, 1.0)),
    (FloatDistribution(1e-5, 1e-1, log=True), Float("p", 1e-5, 1e-1, log=True)),
    (IntDistribution(-3, 7), Int("p", -3, 7)),
    (IntDistribution(1, 1024, log=True), Int("p", 1, 1024, log=True)),
    (IntDistribution(2, 10, step=2), Discrete("p", (2, 4, 6, 8, 10))),
    (IntDistribution(0, 9, step=3), Discrete("p", (0, 3, 6, 9))),
    (FloatDistribution(0.1, 0.4, step=0.1), Discrete("p", (0.1, 0.2, 0.3, 0.4))),
    (FloatDistribution(-1.0, 1.0, step=0.5), Discrete("p", (-1.0, -0.5, 0.0, 0.5, 1.0))),
    (CategoricalDistribution(("a", "b", "c")), Categorical("p", ("a", "b", "c"))),
    (CategoricalDistribution((None, True, 3, 2.5, "x")), Categorical("p", (None, True, 3, 2.5, "x"))),
]


@pytest.mark.parametrize("dist, param", EXACT_CASES)
def test_optuna_to_optformer_to_optuna_is_exact(dist, param):
  space = oi.from_distributions({"p": dist})
  assert space.parameters == (param,)
  assert oi.to_distributions(space) == {"p": dist}


# (optformer parameter, its optuna distribution, what comes back): the lossy direction.
DISCRETE_CASES = [
    (Discrete("p", (1, 2, 3)), IntDistribution(1, 3), Int("p", 1, 3)),
    (Discrete("p", (16, 32, 64)), CategoricalDistribution((16, 32, 64)), Categorical("p", (16, 32, 64))),
    (Discrete("p", (0.0, 0.25, 1.0)), CategoricalDistribution((0.0, 0.25, 1.0)), Categorical("p", (0.0, 0.25, 1.0))),
    (Discrete("p", (0.5, 1.0, 1.5)), FloatDistribution(0.5, 1.5, step=0.5), Discrete("p", (0.5, 1.0, 1.5))),
    (Discrete("p", (1e-3, 2e-3, 3e-3)), FloatDistribution(1e-3, 3e-3, step=1e-3), Discrete("p", (1e-3, 2e-3, 3e-3))),
    # Uneven at a tiny scale: an absolute tolerance had called it the grid 1e-15, 2e-15, 3e-15.
    (Discrete("p", (1e-15, 2.5e-15, 3e-15)), CategoricalDistribution((1e-15, 2.5e-15, 3e-15)),
     Categorical("p", (1e-15, 2.5e-15, 3e-15))),
    (Discrete("p", (1e-15, 2e-15, 3e-15)), FloatDistribution(1e-15, 3e-15, step=1e-15), Discrete("p", (1e-15, 2e-15, 3e-15))),
]


@pytest.mark.parametrize("param, dist, back", DISCRETE_CASES)
def test_discrete_maps_to_a_stepped_distribution_when_evenly_spaced_else_categorical(param, dist, back):
  dists = oi.to_distributions(optformer.SearchSpace([param]))
  assert dists == {"p": dist}
  assert oi.from_distributions(dists).parameters == (back,)
  # Every level of the Discrete is a valid value of its distribution.
  for v in param.values:
    assert dists["p"]._contains(dists["p"].to_internal_repr(v))


def test_order_of_parameters_is_kept(mixed_space):
  dists = oi.to_distributions(mixed_space)
  assert list(dists) == mixed_space.names
  assert oi.from_distributions(dists).names == mixed_space.names


@pytest.mark.parametrize(
    "dists, error, match",
    [
        ({}, ValueError, "empty"),
        ({"p": FloatDistribution(1.0, 1.0)}, ValueError, "'p'.*single value"),
        ({"p": CategoricalDistribution(("only",))}, ValueError, "'p'.*single value"),
        ({"p": IntDistribution(3, 3, step=2)}, ValueError, "'p'.*single value"),
        ({"p": FloatDistribution(0.0, 1.0, step=1e-6)}, ValueError, "'p'.*1000001 grid points"),
        ({"p": IntDistribution(0, 10**6, step=2)}, ValueError, "'p'.*500001 grid points"),
        ({"p": (0.0, 1.0)}, TypeError, "'p'.*optuna distribution"),
    ],
)
def test_from_distributions_rejects_bad_input(dists, error, match):
  with pytest.raises(error, match=match):
    oi.from_distributions(dists)


def test_to_distributions_rejects_a_non_space():
  with pytest.raises(TypeError, match="SearchSpace"):
    oi.to_distributions({"p": Float("p", 0.0, 1.0)})


def test_suggest_params_suggests_every_parameter_of_a_space(mixed_space):
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  for _ in range(5):
    trial = study.ask()
    params = oi.suggest_params(trial, mixed_space)
    assert mixed_space.validate(params) == params and list(params) == mixed_space.names
    assert trial.distributions == oi.to_distributions(mixed_space)


# -- OptFormerSampler ------------------------------------------------------------------
# On a tiny random-init model (8 parameter slots). tests/test_optuna_sampler_suite.py runs Optuna's own sampler tests and the shipped model.

optuna.logging.set_verbosity(optuna.logging.WARNING)
NUM_CANDIDATES = 8


@pytest.fixture
def recorded(monkeypatch):
  """The Optimizers the sampler builds (the probe, then one per relative sample), each with `asked`: its suggestions."""
  made = []

  class Recording(optformer.Optimizer):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      self.asked = []
      made.append(self)

    def ask(self, n=None):
      out = super().ask(n)
      self.asked.extend([out] if n is None else out)
      return out

  monkeypatch.setattr(oi, "Optimizer", Recording)
  return made


def _sampler(model, seed=0, **kw):
  return oi.OptFormerSampler(seed=seed, model=model, num_candidates=kw.pop("num_candidates", NUM_CANDIDATES), **kw)


def _every_kind(trial):
  """An objective suggesting one parameter of every Optuna kind, then 3 floats: 10 > tiny v2's 8 slots."""
  x = trial.suggest_float("a_x", -2.0, 2.0)
  lr = trial.suggest_float("b_lr", 1e-4, 1e-1, log=True)
  n = trial.suggest_int("c_n", 1, 32, log=True)
  c = trial.suggest_categorical("d_c", ["relu", "tanh", None])
  k = trial.suggest_int("e_k", 0, 10, step=2)
  q = trial.suggest_float("f_q", 0.0, 1.0, step=0.25)
  m = trial.suggest_int("g_m", -3, 3)
  h = sum(trial.suggest_float(f"h_{i}", 0.0, 1.0) for i in range(3))
  return x**2 + abs(math.log10(lr) + 2) + n / 32 + (c == "tanh") + k / 10 + q + abs(m) + h


EVERY_KIND_JOINT = ["a_x", "b_lr", "c_n", "d_c", "e_k", "f_q", "g_m", "h_0"]  # The first 8 names.


def _check_inside(study):
  for t in study.trials:
    for name, value in t.params.items():
      dist = t.distributions[name]
      assert dist._contains(dist.to_internal_repr(value)), (name, value, dist)


def _relative_samples(recorded):
  """The suggestions of the Optimizers that sample_relative built (the probe asks nothing)."""
  return [dict(s) for opt in recorded for s in opt.asked]


def test_sampled_values_lie_inside_their_distributions(tiny_v2_model, recorded):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  with pytest.warns(UserWarning, match="model takes 8"):
    study.optimize(_every_kind, n_trials=5)
  _check_inside(study)
  assert all(t.state == TrialState.COMPLETE for t in study.trials)
  # Trials 1-4 take the joint space's values (the first 8 names) from the model's suggestions, not the fallback.
  assert _relative_samples(recorded) == [{k: t.params[k] for k in EVERY_KIND_JOINT} for t in study.trials[1:]]


def test_joint_space_is_sampled_by_the_optimizer_and_the_rest_by_the_fallback(tiny_v2_model, recorded, monkeypatch):
  sampler = _sampler(tiny_v2_model)
  independent = []
  fallback = sampler._independent_sampler.sample_independent
  monkeypatch.setattr(
      sampler._independent_sampler, "sample_independent",
      lambda study, trial, name, dist: independent.append((trial.number, name)) or fallback(study, trial, name, dist),
  )
  study = optuna.create_study(sampler=sampler)
  with pytest.warns(UserWarning, match=r"Parameters \['h_1', 'h_2'\] are sampled by RandomSampler"):
    study.optimize(_every_kind, n_trials=3)
  # Trial 0 has no completed trial, so no joint space; afterwards the first 8 names (sorted) are joint.
  assert sorted(n for t, n in independent if t == 0) == EVERY_KIND_JOINT + ["h_1", "h_2"]
  assert sorted(n for t, n in independent if t > 0) == ["h_1", "h_1", "h_2", "h_2"]
  opt = recorded[-1]
  assert opt.space.names == EVERY_KIND_JOINT and len(opt.trials) == 2


def test_same_seed_gives_the_same_study_and_another_seed_another(tiny_v2_model):
  def run(seed):
    study = optuna.create_study(sampler=_sampler(tiny_v2_model, seed=seed))
    study.optimize(lambda t: t.suggest_float("x", -1.0, 1.0) ** 2 + t.suggest_int("n", 0, 9), n_trials=5)
    return [t.params for t in study.trials]

  assert run(3) == run(3)
  assert run(3) != run(4)


def test_trial_seeds_differ_per_trial_and_survive_reseed_rng(tiny_v2_model):
  sampler = _sampler(tiny_v2_model)
  seeds = [sampler.trial_seed(n) for n in range(100)]
  assert len(set(seeds)) == 100 and seeds != [_sampler(tiny_v2_model, seed=1).trial_seed(n) for n in range(100)]
  sampler.reseed_rng()
  assert [sampler.trial_seed(n) for n in range(100)] == seeds


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_goal_follows_the_study_direction(tiny_v2_model, recorded, direction):
  study = optuna.create_study(direction=direction, sampler=_sampler(tiny_v2_model))
  study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
  assert recorded[-1].goal == direction
  assert [t.value for t in recorded[-1].trials] == [t.value for t in study.trials[:2]]


def test_failed_trials_are_told_as_infeasible(tiny_v2_model, recorded):
  def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number % 2:
      raise RuntimeError("diverged")
    return x

  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  study.optimize(objective, n_trials=5, catch=(RuntimeError,))
  assert [t.state for t in study.trials].count(TrialState.FAIL) == 2
  assert [t.infeasible for t in recorded[-1].trials] == [False, True, False, True]


def test_pruned_trials_are_told_their_last_intermediate_value_or_infeasible(tiny_v2_model, recorded):
  def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 1:
      trial.report(5.0, step=1)
      trial.report(3.0, step=2)
      raise optuna.TrialPruned()
    if trial.number == 2:
      raise optuna.TrialPruned()  # Nothing reported.
    return x

  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  study.optimize(objective, n_trials=4)
  told = recorded[-1].trials
  assert [t.value for t in told[:2]] == [study.trials[0].value, 3.0]
  assert told[2].infeasible


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_an_objective_beyond_the_models_scale_is_told_as_infeasible_and_the_study_goes_on(
    tiny_v2_model, recorded, direction
):
  # Optimizer.tell refuses |y| > 1e150 (MAX_ABS_OBJECTIVE); the sampler must not make every later trial raise.
  def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 1:
      return -1e200 if direction == "maximize" else 1e200
    if trial.number == 2:
      trial.report(3e151, step=1)  # A pruned trial's last intermediate value, also beyond the scale.
      raise optuna.TrialPruned()
    return x

  study = optuna.create_study(direction=direction, sampler=_sampler(tiny_v2_model))
  with pytest.warns(UserWarning) as caught:
    study.optimize(objective, n_trials=6)
  assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 5
  told = recorded[-1].trials
  assert [t.infeasible for t in told] == [False, True, True, False, False]
  assert [t.value for t in told[3:]] == [t.value for t in study.trials[3:5]]
  huge = [str(w.message) for w in caught if "beyond +-1e+150" in str(w.message)]
  assert len(huge) == 2 and huge[0].startswith("Trial 1's objective") and "infeasible" in huge[0]


CHOICES = ["a", "b", "c", "d"]


def test_running_and_waiting_trials_are_pending_and_not_proposed_again(tiny_v2_model, recorded):
  sampler = _sampler(tiny_v2_model)
  study = optuna.create_study(sampler=sampler)
  dist = {"c": CategoricalDistribution(CHOICES)}
  study.enqueue_trial({"c": "a"})
  study.tell(study.ask(dist), 1.0)
  running = study.ask(dist)  # RUNNING, sampled with trial 0 in the context.
  current = study.ask(dist)  # RUNNING: the trial being sampled below.
  waiting = next(c for c in CHOICES if c not in ("a", running.params["c"]))
  study.enqueue_trial({"c": waiting})  # WAITING.
  joint = sampler.infer_relative_search_space(study, study.trials[current.number])
  params = sampler.sample_relative(study, study.trials[current.number], joint)
  opt = recorded[-1]
  assert [t.params for t in opt.trials] == [{"c": "a"}]
  assert sorted(p["c"] for p in opt.pending) == sorted([running.params["c"], waiting, params["c"]])
  assert {"a", running.params["c"], waiting, params["c"]} == set(CHOICES)


def test_a_completed_trial_does_not_complete_a_running_trial_with_the_same_params(tiny_v2_model, recorded):
  sampler = _sampler(tiny_v2_model)
  study = optuna.create_study(sampler=sampler)
  dist = {"c": CategoricalDistribution(CHOICES)}
  study.enqueue_trial({"c": "a"})
  study.ask(dist)  # Trial 0 stays RUNNING with c = "a".
  study.add_trial(optuna.trial.create_trial(params={"c": "a"}, distributions=dist, value=1.0))
  current = study.ask(dist)
  sampler.sample_relative(study, study.trials[current.number], dist)
  assert [t.params for t in recorded[-1].trials] == [{"c": "a"}]
  assert {"c": "a"} in [dict(p) for p in recorded[-1].pending]


def test_a_history_longer_than_the_context_warns_once(tiny_v2_model):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  dist = {"x": FloatDistribution(0.0, 1.0)}
  limit = tiny_v2_model.config.max_context
  for i in range(limit + 1):
    study.add_trial(optuna.trial.create_trial(params={"x": i / (limit + 1)}, distributions=dist, value=float(i)))
  with pytest.warns(UserWarning) as caught:
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
  assert [str(w.message) for w in caught] == [context_lib.truncation_warning(limit + 1, limit)]
  assert f"the model's context holds {limit}." in str(caught[0].message)


def test_workers_sharing_an_rdb_storage_see_each_others_running_trials(tiny_v2_model, tmp_path):
  storage = f"sqlite:///{tmp_path / 'study.db'}"
  dist = {"c": CategoricalDistribution(CHOICES)}
  worker_a = optuna.create_study(study_name="shared", storage=storage, sampler=_sampler(tiny_v2_model))
  worker_b = optuna.load_study(study_name="shared", storage=storage, sampler=_sampler(tiny_v2_model))
  worker_a.enqueue_trial({"c": "a"})
  worker_a.tell(worker_a.ask(dist), 0.0)
  asked = [worker_a.ask(dist), worker_b.ask(dist), worker_a.ask(dist)]  # All three stay RUNNING.
  assert sorted(t.params["c"] for t in asked) == ["b", "c", "d"]


def test_parallel_threads(tiny_v2_model, recorded):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  study.optimize(lambda t: t.suggest_float("x", -1.0, 1.0) ** 2 + t.suggest_int("n", 0, 9), n_trials=6, n_jobs=2)
  assert len(study.trials) == 6 and all(t.state == TrialState.COMPLETE for t in study.trials)
  _check_inside(study)
  # Every trial that starts after one has completed (all but at most the first two) is the model's suggestion.
  suggested = _relative_samples(recorded)
  params = [t.params for t in study.trials]
  assert len(suggested) >= 4 and all(s in params for s in suggested)
  assert len({json.dumps(s, sort_keys=True) for s in suggested}) == len(suggested)  # pending trials are not repeated


def test_a_suggestion_not_yet_in_the_storage_is_pending_for_the_next_thread(tiny_v2_model, recorded):
  # Thread 1's trial is RUNNING with no parameters stored yet (its objective has not suggested
  # them) when thread 2 samples: thread 2 must still see thread 1's suggestion as pending.
  sampler = _sampler(tiny_v2_model)
  study = optuna.create_study(sampler=sampler)
  dists = {"n": optuna.distributions.IntDistribution(0, 9), "x": optuna.distributions.FloatDistribution(-1.0, 1.0)}
  for v in (-0.5, 0.5):
    study.add_trial(optuna.trial.create_trial(params={"n": 3, "x": v}, distributions=dists, value=v * v))
  first, second = study.ask(), study.ask()  # Both RUNNING, no parameters in the storage.
  frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
  a = sampler.sample_relative(study, frozen[first.number], dists)
  b = sampler.sample_relative(study, frozen[second.number], dists)
  # Each Optimizer's pending trials: those it was told of, then its own suggestion.
  assert [dict(p) for p in recorded[-2].pending] == [a]
  assert [dict(p) for p in recorded[-1].pending] == [a, b] and a != b
  first.suggest_int("n", 0, 9), first.suggest_float("x", -1.0, 1.0)
  study.tell(first, 0.1)
  sampler.sample_relative(study, frozen[second.number], dists)  # Thread 1's trial is finished: forgotten.
  assert (study.study_name, first.number) not in sampler._issued


def test_enqueued_trials_are_evaluated_as_given_and_told(tiny_v2_model, recorded):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  study.enqueue_trial({"x": 0.25, "n": 7})
  study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) + t.suggest_int("n", 0, 9), n_trials=3)
  assert study.trials[0].params == {"x": 0.25, "n": 7}
  assert recorded[-1].trials[0].params == {"x": 0.25, "n": 7}


def test_conditional_parameters_join_the_joint_space_with_their_conditions(tiny_v2_model, recorded):
  def objective(trial):
    model = trial.suggest_categorical("model", ["svm", "tree"])
    if model == "svm":
      return math.log10(trial.suggest_float("svm_c", 1e-3, 1e3, log=True)) ** 2
    return trial.suggest_int("tree_depth", 1, 8) / 8

  study = optuna.create_study(sampler=_sampler(tiny_v2_model, warn_independent_sampling=False))
  study.enqueue_trial({"model": "svm"})
  study.enqueue_trial({"model": "tree"})
  study.optimize(objective, n_trials=6)
  _check_inside(study)
  space = recorded[-1].space  # optformer/integrations/optuna_conditions.py reads the branches off the trials.
  assert space.names == ["model", "svm_c", "tree_depth"]
  assert space["svm_c"].condition == Condition("model", ["svm"])
  assert space["tree_depth"].condition == Condition("model", ["tree"])


def test_a_parameter_whose_range_changes_leaves_the_joint_space(tiny_v2_model, recorded):
  def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0 + trial.number)  # A dynamic range.
    return x + y

  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  with pytest.warns(UserWarning, match="'y' in trial 2 is outside the joint search space"):
    study.optimize(objective, n_trials=4)
  _check_inside(study)
  assert [opt.space.names for opt in recorded[1:]] == [["x", "y"], ["x"], ["x"]]


def test_n_startup_trials_are_sampled_by_the_fallback(tiny_v2_model, recorded):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model, n_startup_trials=3))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # No fallback warning during the startup trials.
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) + t.suggest_int("n", 0, 9), n_trials=5)
  # Trials 3 and 4 are the model's; the first Optimizer sees the 3 startup trials.
  assert _relative_samples(recorded) == [t.params for t in study.trials[3:]]
  assert len(recorded[1].trials) == 3
  with pytest.raises(ValueError, match="n_startup_trials must be a non-negative int, got -1"):
    _sampler(tiny_v2_model, n_startup_trials=-1)


@pytest.mark.parametrize("deterministic", [False, True])
def test_deterministic_objective_tells_a_repeated_configuration_once(tiny_v2_model, recorded, deterministic):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model, deterministic_objective=deterministic))
  for _ in range(2):
    study.enqueue_trial({"x": 0.5, "n": 2})
  study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) + t.suggest_int("n", 0, 9), n_trials=4)
  told = [t.params for t in recorded[-1].trials]
  assert told[0] == {"x": 0.5, "n": 2} and len(told) == (2 if deterministic else 3)
  assert told.count({"x": 0.5, "n": 2}) == (1 if deterministic else 2)
  with pytest.raises(TypeError, match="deterministic_objective must be True or False, got 'yes'"):
    _sampler(tiny_v2_model, deterministic_objective="yes")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"multivariate": True}, "does not take multivariate=.*joint search space together"),
        ({"constant_liar": True}, "does not take constant_liar=.*always pending"),
        ({"n_ei_candidates": 24}, "does not take n_ei_candidates=.*num_candidates= or search="),
        ({"goal": "maximize"}, r"sets the Optimizer's goal itself, from the study's direction"),
        ({"warn_truncation": False}, "sets the Optimizer's warn_truncation itself"),
        ({"n_trials": 3}, r"got an unexpected keyword argument 'n_trials'; it takes \['seed', 'model'.*'acquisition'"),
    ],
)
def test_keywords_it_does_not_take_raise_a_type_error_naming_the_sampler(tiny_v2_model, kwargs, match):
  with pytest.raises(TypeError, match="^OptFormerSampler " + match) as caught:
    _sampler(tiny_v2_model, **kwargs)
  assert "__init__" not in str(caught.value)


def test_optimizer_options_pass_through_and_bad_ones_fail_at_construction(tiny_v2_model, recorded):
  study = optuna.create_study(sampler=_sampler(tiny_v2_model, acquisition="ucb", ucb_beta=2.0, candidates="random"))
  study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
  opt = recorded[-1]
  assert (opt.acquisition, opt.ucb_beta, opt.candidates, opt.num_candidates) == ("ucb", 2.0, "random", NUM_CANDIDATES)
  with pytest.raises(ValueError, match="candidates='policy' needs a model with a policy"):
    _sampler(tiny_v2_model, candidates="policy")
  with pytest.raises(ValueError, match="num_candidates must be >= 1, got 0"):
    _sampler(tiny_v2_model, num_candidates=0)
  with pytest.raises(ValueError, match="seed must be a non-negative int or None, got -1"):
    _sampler(tiny_v2_model, seed=-1)
  with pytest.raises(TypeError, match="independent_sampler must be an optuna sampler"):
    _sampler(tiny_v2_model, independent_sampler="random")


def test_a_pickled_or_copied_sampler_holds_no_lock_and_continues_the_study_alike(tiny_v2_model):
  objective = lambda t: t.suggest_float("x", -1.0, 1.0) ** 2 + t.suggest_int("n", 0, 9)
  study = optuna.create_study(sampler=_sampler(tiny_v2_model))
  study.optimize(objective, n_trials=3)
  state = study.sampler.__getstate__()
  assert not any(isinstance(v, type(threading.Lock())) for v in state.values())
  buffer = io.BytesIO()
  joblib.dump(study, buffer)
  copies = [joblib.load(io.BytesIO(buffer.getvalue())), copy.deepcopy(study)]
  copies.append(optuna.create_study(sampler=pickle.loads(pickle.dumps(study.sampler))))
  for t in study.trials:
    copies[-1].add_trial(t)
  for s in [study, *copies]:
    s.optimize(objective, n_trials=2)
  # The same seed, trial numbers and history: the same suggestions in every copy.
  assert [[t.params for t in s.trials[3:]] for s in copies] == [[t.params for t in study.trials[3:]]] * 3


# -- eval/optuna_compare ----------------------------------------------------------------


def test_optuna_compare_runs_each_sampler_in_an_optuna_study_and_tabulates_the_best(tiny_v2_model):
  from optformer.eval import optuna_compare

  class Quadratic:  # The Task protocol of eval.sklearn_tasks, without a model fit.
    name, goal = "quadratic", "minimize"
    space = optformer.SearchSpace([Float("x", -1.0, 1.0), Int("n", 0, 4)])

    def __call__(self, params):
      return params["x"] ** 2 + params["n"]

  samplers = optuna_compare.make_samplers(tiny_v2_model, num_candidates=NUM_CANDIDATES)
  assert list(samplers) == ["OptFormerSampler", "TPESampler(multivariate)"]
  results = {name: [optuna_compare.run_study(Quadratic(), make(seed), 3) for seed in (0, 1)]
             for name, make in samplers.items()}
  for seeds in results.values():
    for rows in seeds:
      assert [r["value"] for r in rows] == [Quadratic()(r["params"]) for r in rows]
      assert all(0 <= r["sampler_seconds"] <= r["total_seconds"] for r in rows)
  summary = optuna_compare.summarize(results, "minimize", (1, 3))
  best = min(r["value"] for r in results["OptFormerSampler"][0])
  assert summary["OptFormerSampler"]["best_at"][3][0] == pytest.approx(
      (best + min(r["value"] for r in results["OptFormerSampler"][1])) / 2)
  table = optuna_compare.format_table(summary, (1, 3)).splitlines()
  assert table[0].startswith("| sampler | best @ 1 | best @ 3 |") and len(table) == 4


def test_a_categorical_with_more_choices_than_the_model_reads_goes_to_the_fallback(tiny_v2_model):
  limit = tiny_v2_model.config.max_categories
  sampler = oi.OptFormerSampler(seed=0, model=tiny_v2_model, warn_independent_sampling=False)
  study = optuna.create_study(sampler=sampler)
  study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) + len(t.suggest_categorical("c", [str(i) for i in
                 range(limit + 1)])), n_trials=4)
  assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
  joint = sampler.infer_relative_search_space(study, study.trials[-1])
  assert set(joint) == {"x"}  # The model's part; "c" is the fallback's.
