"""Optuna integration: an Optuna sampler backed by `optformer.Optimizer`, and search-space conversion.

`to_distributions` / `from_distributions` / `suggest_params` (optformer/integrations/optuna_space.py, re-exported
here) convert search spaces; `OptFormerSampler` is an Optuna sampler backed by `optformer.Optimizer` (see its
docstring for how the joint space, the fallback and each trial state are handled).
"""

from __future__ import annotations

import inspect
import math
import threading
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers._base import _process_constraints_after_trial  # What Optuna's own samplers call.
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optformer import optimizer as optimizer_lib
from optformer import search_space as ss
from optformer.context import truncation_warning
from optformer.model import check_categories
from optformer.optimizer import MAX_ABS_OBJECTIVE, Optimizer

from optformer.integrations.optuna_conditions import conditional_space, params_in, union_distributions
from optformer.integrations.optuna_space import (  # Re-exported: the search-space half of the integration.
    MAX_GRID_LEVELS, _distribution_to_parameter, from_distributions, suggest_params, to_distributions,
)


# -- Sampler ---------------------------------------------------------------------

_FINISHED_OR_PENDING = (
    TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING,
)
# Optimizer options the sampler sets itself (besides the space and the per-trial seed), and where each comes from.
_SET_BY_SAMPLER = {
    "goal": "the study's direction(s) (optuna.create_study(direction=... or directions=[...]))",
    "warn_truncation": "the sampler warns once per study when the history outgrows the model's context",
}
# The sampler's own keyword arguments.
_OWN_OPTIONS = ("seed", "model", "num_candidates", "independent_sampler", "n_startup_trials",
                "deterministic_objective", "warn_independent_sampling", "constraints_func")
# Keyword arguments of Optuna's own samplers that OptFormerSampler does not take, and what to do instead.
_OPTUNA_ALTERNATIVES = {
    "multivariate": "the model always samples the joint search space together (as multivariate=True)",
    "group": "the joint search space, conditional parameters included, is sampled together",
    "constant_liar": "RUNNING and WAITING trials are always pending: fantasized, and never proposed again",
    "consider_prior": "pass prior= (optformer.priors beliefs) for a prior over good parameter values",
    "prior_weight": "pass prior_beta= (the weight of prior=)",
    "n_ei_candidates": "pass num_candidates= or search= (optformer.SearchConfig) for the acquisition search",
}


_params_in = params_in  # `params` restricted to a (conditional) space and validated, or None.


def _last_intermediate_value(trial: FrozenTrial) -> float | None:
  if not trial.intermediate_values:
    return None
  return trial.intermediate_values[max(trial.intermediate_values)]


def _constraints(trial: FrozenTrial) -> list[float] | None:
  """The trial's constraint values (`Trial.set_constraint`, or `constraints_func`'s), None if it has none;
  +-inf clipped to +-1e300 (only the sign matters: feasible when all are <= 0)."""
  values = list(trial.constraints.values())
  return [float(np.clip(c, -1e300, 1e300)) for c in values] if values else None


def _optimizer_options() -> set[str]:
  """The keyword arguments of optformer.Optimizer that a sampler may pass through."""
  params = inspect.signature(optimizer_lib.Optimizer.__init__).parameters
  return {name for name, p in params.items() if p.kind == p.KEYWORD_ONLY} - set(_SET_BY_SAMPLER) - set(_OWN_OPTIONS)


def _check_options(options: Mapping[str, Any]) -> None:
  """TypeError naming OptFormerSampler for a keyword it does not take (an Optuna sampler's, or unknown)."""
  allowed = _optimizer_options()
  for name in options:
    if name in allowed:
      continue
    if name in _SET_BY_SAMPLER:
      raise TypeError(f"OptFormerSampler sets the Optimizer's {name} itself, from {_SET_BY_SAMPLER[name]}; "
                      f"got {name}={options[name]!r}.")
    if name in _OPTUNA_ALTERNATIVES:
      raise TypeError(f"OptFormerSampler does not take {name}= (an Optuna sampler's option): "
                      f"{_OPTUNA_ALTERNATIVES[name]}.")
    raise TypeError(
        f"OptFormerSampler got an unexpected keyword argument {name!r}; it takes {list(_OWN_OPTIONS)} and the "
        f"optformer.Optimizer options {sorted(allowed)}."
    )


class OptFormerSampler(BaseSampler):
  """An Optuna sampler that asks `optformer.Optimizer` for each trial (zero-shot, no fitting).

  Relative sampling covers the *joint search space*: the parameters that
  some COMPLETE trial so far suggested, always with the same distribution
  (the union, not Optuna's intersection), as a conditional search space:
  a parameter that only some trials hold (define-by-run branches) is
  conditional on the Categorical, Int or Discrete parameter whose values
  decide when it is held, read off the trials
  (optformer/integrations/optuna_conditions.py), so each trial's active
  parameters are the ones it holds and a sample holds the parameters of the
  branch it picks. A Categorical parent's level that no COMPLETE trial took
  yet has an unknown branch: a sample that picks it holds the parent's
  children too, so an objective that asks for one there gets the model's
  value, not the fallback's (one it does not ask for goes unused, and the
  completed trial shows the level's branch from then on). Left out: single-valued distributions, distributions that
  `from_distributions` rejects, categoricals with more choices than the model
  reads (`max_categories`, 64 for the shipped model), parameters held by
  only some trials with no parameter deciding when (and the children of a
  parameter left out), and, beyond the model's `max_params` (64 for
  the shipped model), the parameters after the first `max_params` in name
  order (a UserWarning says so once). Every other parameter is sampled by
  `independent_sampler`: all of the first `n_startup_trials` trials'
  (at least the first trial's: Optuna learns the space from completed
  trials, so nothing is joint before one completes), a parameter that no
  COMPLETE trial holds yet (a branch not taken so far; no warning), the
  parameters left out above, and a parameter whose
  distribution changed between trials (a changed range drops it from the
  joint space; a changed kind or categorical choices is an error of
  Optuna's own, for every sampler).

  For each trial a fresh Optimizer over the joint space is given the study's
  history, restricted to trials whose joint parameters form a configuration
  of the joint space (the active ones inside it, no inactive one held):

  * COMPLETE: told with its value (its values, in a multi-objective study)
    and its constraints (`Trial.set_constraint`, Optuna 5, or those of
    `constraints_func`): a trial that violates one is told as infeasible,
    and the acquisition is weighted by the predicted probability of
    feasibility (constrained EI, see `optformer.Optimizer`). A value beyond +-1e150
    (`optformer.optimizer.MAX_ABS_OBJECTIVE`, which `Optimizer.tell`
    refuses) is told as infeasible, with a UserWarning once per trial: the
    study goes on.
  * FAIL: told as infeasible (`tell(params, None)`), so the optimizer steers
    away from it and does not propose it again.
  * PRUNED: told with its last intermediate value (and its constraints), a
    pessimistic estimate of its final objective when `trial.report` reports the objective at a lower
    budget (the usual use); a pruned trial that reported nothing, or a value
    beyond +-1e150, is told as infeasible.
  * RUNNING and WAITING (other than the trial being sampled; enqueued
    parameters included): registered as *pending* (`add_pending`), so they
    are fantasized in the context and not proposed again. This holds for
    `n_jobs > 1` and for several processes sharing an RDB storage.

  Multi-objective studies (`optuna.create_study(directions=[...])`): the
  Optimizer is given the study's directions as its goals, so each objective
  has its own context and suggestions maximize the expected hypervolume
  improvement (`optformer.Optimizer`).

  The model's context holds `max_context` trials (256 for the shipped
  model); a longer history is truncated for the model to the best half and
  the most recent trials, with a UserWarning once.

  The sampler pickles and deep-copies (locks are rebuilt; the model is kept
  as given, a path or model object), so `joblib.dump(study)` and Optuna's
  process-based workers work; the same seed gives the same suggestions in
  another process.

  Args:
    seed: makes the suggestions reproducible: trial number t is sampled with
      a seed derived from (seed, t), so the same history gives the same
      suggestion whatever the order in which workers ask. None: random.
    model: a PFNSurrogate, a checkpoint directory, or None for
      the shipped model.
    num_candidates: candidates of the Optimizer's "random" mode (and prior
      samples with `prior=`); the default "search" uses the acquisition
      search of `search=`, see optformer.Optimizer.
    independent_sampler: the fallback for parameters outside the joint space
      and for the startup trials; default `optuna.samplers.RandomSampler(seed)`.
    n_startup_trials: COMPLETE trials before the model samples (int >= 0;
      as GPSampler's, whose default is 10). Default 1: the model samples from
      the second trial on (0 and 1 behave alike, since the first trial has no
      joint space).
    deterministic_objective: the objective gives the same value for the same
      configuration (as GPSampler's). The model infers the noise level from
      the context and has no noise variance to fix; with True, a
      configuration evaluated more than once (enqueued twice, say) is told to
      the model once, with its first value, so repeats do not take context
      rows. Either way a configuration already told or pending is not
      proposed again while a fresh one exists.
    warn_independent_sampling: warn (UserWarning, once per parameter name) when
      a parameter is sampled by the fallback once the startup trials are done.
    constraints_func: None, or FrozenTrial -> sequence of floats (feasible
      when all are <= 0), called after each COMPLETE or PRUNED trial and
      stored on it as Optuna's own samplers do (Optuna 5 deprecates it in
      favour of `Trial.set_constraint`, which is read without it).
    **optimizer_kwargs: passed to `optformer.Optimizer` (acquisition,
      ucb_beta, search, prior, prior_beta, candidates, temperature,
      compilation_cache). Other keywords raise TypeError; those
      of Optuna's samplers (multivariate, constant_liar, ...) with a message
      saying what to use instead.

  Raises:
    ValueError / TypeError: at construction, bad options (Optimizer options
      are checked by building one; a constraints_func that is not callable).
    optformer.CheckpointError: a missing or corrupt checkpoint.
  """

  def __init__(
      self, *, seed: int | None = None, model=None, num_candidates: int = 128,
      independent_sampler: BaseSampler | None = None, n_startup_trials: int = 1,
      deterministic_objective: bool = False, warn_independent_sampling: bool = True, constraints_func=None,
      **optimizer_kwargs,
  ):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
      raise ValueError(f"seed must be a non-negative int or None, got {seed!r}.")
    is_int = isinstance(n_startup_trials, (int, np.integer)) and not isinstance(n_startup_trials, bool)
    if not is_int or n_startup_trials < 0:
      raise ValueError(f"n_startup_trials must be a non-negative int, got {n_startup_trials!r}.")
    if not isinstance(deterministic_objective, (bool, np.bool_)):
      raise TypeError(f"deterministic_objective must be True or False, got {deterministic_objective!r}.")
    if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
      raise TypeError(f"independent_sampler must be an optuna sampler or None, got {independent_sampler!r}.")
    if constraints_func is not None and not callable(constraints_func):
      raise TypeError(f"constraints_func must be a callable FrozenTrial -> sequence of floats or None, got "
                      f"{constraints_func!r}.")
    _check_options(optimizer_kwargs)
    probe = Optimizer(
        ss.SearchSpace([ss.Float("x", 0.0, 1.0)]), model=model, num_candidates=num_candidates, **optimizer_kwargs
    )
    caps = probe.backend.capabilities
    self._max_params, self._max_categories = caps.max_params, caps.max_categories
    self._model, self._num_candidates, self._optimizer_kwargs = model, num_candidates, optimizer_kwargs
    self._seed = int(np.random.SeedSequence(seed).entropy) % 2**63 if seed is None else int(seed)
    self._independent_sampler = independent_sampler or optuna.samplers.RandomSampler(seed=seed)
    self._n_startup_trials = int(n_startup_trials)
    self._deterministic = bool(deterministic_objective)
    self._warn_independent_sampling = warn_independent_sampling
    self._constraints_func = constraints_func
    self._warned: set[str] = set()  # Keys of the warnings given.
    self._dropped: set[str] = set()  # Joint parameters left to the fallback (model too small, unsupported).
    self._issued: dict[tuple[str, int], dict] = {}  # (study name, trial number) -> its suggestion, while running.
    self._make_locks()

  def _make_locks(self) -> None:
    self._lock = threading.Lock()
    # Threads of one process (n_jobs > 1) sample one at a time, and each sees what the others were
    # given: a RUNNING trial's parameters reach the storage only as its objective suggests them.
    self._sampling = threading.Lock()

  def __getstate__(self) -> dict:
    """The picklable state: no locks, and no in-flight suggestions (they belong to this process's threads)."""
    state = dict(self.__dict__)
    del state["_lock"], state["_sampling"]
    state["_issued"] = {}
    return state

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state)
    self._make_locks()

  def reseed_rng(self) -> None:
    """Reseeds the fallback sampler (Optuna calls this per thread when `n_jobs != 1`).

    The Optimizer's per-trial seeds are kept: they already differ between
    trials (and so between threads and workers), and keeping them keeps a
    trial's suggestion a function of (seed, trial number, history).
    """
    self._independent_sampler.reseed_rng()

  def trial_seed(self, number: int) -> int:
    """The Optimizer seed for trial `number`: derived from the sampler's seed and the number."""
    return int(np.random.SeedSequence([self._seed, number]).generate_state(1)[0])

  def _warn_once(self, key: str, message: str) -> None:
    with self._lock:
      if key in self._warned:
        return
      self._warned.add(key)
    warnings.warn(message, stacklevel=3)

  def _started(self, study: Study) -> bool:
    """Whether the study has its n_startup_trials COMPLETE trials."""
    if self._n_startup_trials == 0:
      return True
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= self._n_startup_trials

  def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
    """The joint search space (sorted by name) that `sample_relative` covers; see the class docstring."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    joint = {}
    for name, dist in union_distributions(completed).items():
      if dist.single():
        continue
      try:
        check_categories(_distribution_to_parameter(name, dist), self._max_categories)
      except ValueError as e:
        self._dropped.add(name)
        self._warn_once(f"unsupported:{name}", f"{e} It is sampled by {type(self._independent_sampler).__name__}.")
        continue
      joint[name] = dist
    if len(joint) > self._max_params:
      rest = list(joint)[self._max_params:]
      self._dropped.update(rest)
      self._warn_once(
          "too_many", f"The joint search space has {len(joint)} parameters; the model takes {self._max_params}. "
          f"Parameters {rest} are sampled by {type(self._independent_sampler).__name__}.",
      )
      joint = {name: joint[name] for name in list(joint)[: self._max_params]}
    space = conditional_space(completed, joint) if joint else None  # Unexplained parameters and orphans: left out.
    return {name: joint[name] for name in space.names} if space is not None else {}

  def sample_relative(
      self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
  ) -> dict[str, Any]:
    """One configuration of the joint space from `optformer.Optimizer.ask`, given the study's history.

    Returns {} (all parameters to `independent_sampler`) for an empty space
    and during the `n_startup_trials`.
    """
    if not search_space or not self._started(study):
      return {}
    with self._sampling:
      out = self._sample_relative(study, trial, search_space)
      self._issued[(study.study_name, trial.number)] = out
      return out

  def _told_value(self, study: Study, trial: FrozenTrial, value) -> float | list | None:
    """`value` (a float, or a list of them in a multi-objective study) as the Optimizer is told it: None
    (infeasible) beyond +-MAX_ABS_OBJECTIVE, with one warning per trial."""
    if isinstance(value, (list, tuple)):
      told = [self._told_value(study, trial, v) for v in value]
      return None if any(v is None for v in told) else told
    if value is None or not math.isfinite(value) or abs(value) <= MAX_ABS_OBJECTIVE:
      return value
    self._warn_once(
        f"huge:{study.study_name}:{trial.number}",
        f"Trial {trial.number}'s objective {value!r} is beyond +-{MAX_ABS_OBJECTIVE:g}, more than the model's "
        "objective scale can hold; OptFormerSampler tells it to the model as infeasible. Rescale the objective "
        "(e.g. take its logarithm) to have it used as a value.",
    )
    return None

  def _sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
    space = conditional_space(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), search_space)
    if space is None:
      return {}
    goals = ["maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in study.directions]
    goal = goals[0] if len(goals) == 1 else goals
    opt = Optimizer(  # The sampler warns about truncation once per study itself, not once per trial.
        space, goal, model=self._model, num_candidates=self._num_candidates, seed=self.trial_seed(trial.number),
        warn_truncation=False, **self._optimizer_kwargs,
    )
    # Fresh from the storage: RUNNING trials of other workers change between calls.
    history, pending, told = [], [], set()
    for t in study.get_trials(deepcopy=False, states=_FINISHED_OR_PENDING):
      fixed = t.system_attrs.get("fixed_params", {}) if t.state == TrialState.WAITING else {}
      params = None if t.number == trial.number else _params_in(space, {**t.params, **fixed})
      key = (study.study_name, t.number)
      if t.state != TrialState.RUNNING:
        self._issued.pop(key, None)
      elif params is None and t.number != trial.number:
        params = self._issued.get(key)  # Given to another thread, not yet in the storage.
      if params is None:
        continue
      if t.state in (TrialState.RUNNING, TrialState.WAITING):
        pending.append(params)
        continue
      if self._deterministic:  # A repeat of a told configuration adds nothing when the objective is deterministic.
        seen = tuple((n, type(v), v) for n, v in params.items())
        if seen in told:
          continue
        told.add(seen)
      if t.state == TrialState.COMPLETE:
        history.append((params, self._told_value(study, t, t.values if len(goals) > 1 else t.value), _constraints(t)))
      elif t.state == TrialState.FAIL:
        history.append((params, None, None))
      else:  # PRUNED (Optuna prunes single-objective studies only; a value-less one is infeasible)
        history.append((params, self._told_value(study, t, _last_intermediate_value(t)), _constraints(t)))
    for params, value, constraints in history:  # All tells before any pending: tell matches pending trials by value.
      opt.tell(params, value, constraints)
    for params in pending:
      opt.add_pending(params)
    limit = opt.backend.capabilities.max_context
    if len(history) + len(pending) > limit:
      self._warn_once("truncation", truncation_warning(len(history) + len(pending), limit))
    return dict(opt.ask())

  def sample_independent(
      self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
  ) -> Any:
    """A value from `independent_sampler` for a parameter outside the joint search space."""
    warn = self._warn_independent_sampling and param_name not in self._dropped
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if warn else []
    held = any(param_name in t.params for t in completed)  # A parameter no trial holds yet: nothing to model.
    if warn and held and self._started(study):
      self._warn_once(
          f"independent:{param_name}",
          f"Parameter {param_name!r} in trial {trial.number} is outside the joint search space (conditional, "
          f"dynamic or unsupported); it is sampled by {type(self._independent_sampler).__name__}.",
      )
    return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)

  def before_trial(self, study: Study, trial: FrozenTrial) -> None:
    self._independent_sampler.before_trial(study, trial)

  def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
    """Stores `constraints_func`'s values on a COMPLETE or PRUNED trial (as Optuna's samplers do), then lets the
    fallback sampler see the trial."""
    if self._constraints_func is not None:
      _process_constraints_after_trial(self._constraints_func, study, trial, state)
    self._independent_sampler.after_trial(study, trial, state, values)
