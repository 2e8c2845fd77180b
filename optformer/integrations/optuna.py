"""Optuna integration: search-space conversion and an Optuna sampler.

Search spaces (`to_distributions` / `from_distributions`), one parameter at a
time:

| optformer                     | Optuna                                        |
| ----------------------------- | --------------------------------------------- |
| Float(low, high, log)         | FloatDistribution(low, high, log)             |
| Int(low, high, log)           | IntDistribution(low, high, log)  (step 1)     |
| Discrete, evenly spaced ints  | IntDistribution(low, high, step)              |
| Discrete, evenly spaced floats| FloatDistribution(low, high, step)            |
| Discrete, other levels        | CategoricalDistribution(levels) (order lost)  |
| Categorical(choices)          | CategoricalDistribution(choices)              |

Going back, IntDistribution with step 1 becomes Int; IntDistribution with
step > 1 and FloatDistribution with a step become Discrete over their exact
grid (at most `MAX_GRID_LEVELS` levels, else ValueError). So Optuna ->
optformer -> Optuna is exact; optformer -> Optuna -> optformer is exact
except that a Discrete of consecutive ints comes back as the equivalent Int,
and a Discrete with uneven levels comes back as an (unordered) Categorical,
because Optuna has no ordered distribution over arbitrary numbers.

`suggest_params(trial, space)` suggests a whole optformer SearchSpace on an
Optuna trial (so any Optuna sampler can tune it), and `OptFormerSampler` is
an Optuna sampler backed by `optformer.Optimizer` (see its docstring for how
the joint space, the fallback and each trial state are handled).
"""

from __future__ import annotations

import decimal
import math
import threading
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import intersection_search_space
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optformer import search_space as ss
from optformer.optimizer import Optimizer

# A stepped distribution with more grid points than this is rejected (a Discrete
# of that many levels is slow to build and to tokenize; drop the step instead).
MAX_GRID_LEVELS = 10_000


# -- Search spaces ---------------------------------------------------------------


def _float_grid(name: str, low: float, high: float, step: float) -> tuple[float, ...]:
  """The levels low, low + step, ..., high, computed in decimal so 0.1 steps stay 0.1, 0.2, ..."""
  lo, st = decimal.Decimal(str(low)), decimal.Decimal(str(step))
  n = int((decimal.Decimal(str(high)) - lo) / st) + 1
  if n > MAX_GRID_LEVELS:
    raise ValueError(
        f"Parameter {name!r}: FloatDistribution(low={low}, high={high}, step={step}) has {n} grid points; "
        f"at most {MAX_GRID_LEVELS} are supported. Use step=None for a continuous parameter."
    )
  return tuple(float(lo + i * st) for i in range(n))


def _distribution_to_parameter(name: str, dist: BaseDistribution) -> ss.Parameter:
  if not isinstance(dist, BaseDistribution):
    raise TypeError(f"Parameter {name!r}: expected an optuna distribution, got {dist!r}.")
  if dist.single():
    raise ValueError(
        f"Parameter {name!r}: {dist!r} holds a single value; a search-space parameter needs at least 2."
    )
  if isinstance(dist, FloatDistribution):
    if dist.step is None:
      return ss.Float(name, dist.low, dist.high, log=dist.log)
    return ss.Discrete(name, _float_grid(name, dist.low, dist.high, dist.step))
  if isinstance(dist, IntDistribution):
    if dist.step == 1:
      return ss.Int(name, dist.low, dist.high, log=dist.log)
    n = (dist.high - dist.low) // dist.step + 1
    if n > MAX_GRID_LEVELS:
      raise ValueError(
          f"Parameter {name!r}: {dist!r} has {n} grid points; at most {MAX_GRID_LEVELS} are supported."
      )
    return ss.Discrete(name, tuple(range(dist.low, dist.high + 1, dist.step)))
  if isinstance(dist, CategoricalDistribution):
    return ss.Categorical(name, dist.choices)
  raise ValueError(
      f"Parameter {name!r}: unsupported distribution {dist!r}; expected FloatDistribution, "
      "IntDistribution or CategoricalDistribution."
  )


def from_distributions(dists: Mapping[str, BaseDistribution]) -> ss.SearchSpace:
  """The optformer SearchSpace of Optuna distributions, in the mapping's order.

  Args:
    dists: parameter name -> FloatDistribution, IntDistribution or
      CategoricalDistribution (what `optuna.Trial.suggest_*` records).

  Returns:
    A SearchSpace (see the module docstring for the mapping).

  Raises:
    ValueError: an empty mapping; a distribution with a single value (low ==
      high, one choice); a stepped distribution with more than
      MAX_GRID_LEVELS grid points; an unknown distribution class.
    TypeError: a value that is not an optuna distribution.
  """
  if not dists:
    raise ValueError("Cannot build a search space from an empty mapping of distributions.")
  return ss.SearchSpace([_distribution_to_parameter(name, d) for name, d in dists.items()])


def _stepped_distribution(values: tuple) -> BaseDistribution | None:
  """A stepped Int/FloatDistribution whose grid is exactly `values` (sorted), or None if uneven."""
  lo, hi, n = values[0], values[-1], len(values)
  if all(isinstance(v, int) for v in values):
    step = values[1] - lo
    return IntDistribution(lo, hi, step=step) if values == tuple(range(lo, hi + 1, step)) else None
  step = float(f"{(hi - lo) / (n - 1):.12g}")  # Rounded so that decimal steps (0.1) stay exact.
  dist = FloatDistribution(lo, hi, step=step)
  grid = _float_grid("", dist.low, dist.high, dist.step) if n <= MAX_GRID_LEVELS else ()
  same = len(grid) == n and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(grid, values))
  return dist if same else None


def _parameter_to_distribution(p: ss.Parameter) -> BaseDistribution:
  if isinstance(p, ss.Float):
    return FloatDistribution(p.low, p.high, log=p.log)
  if isinstance(p, ss.Int):
    return IntDistribution(p.low, p.high, log=p.log)
  if isinstance(p, ss.Discrete):
    return _stepped_distribution(p.values) or CategoricalDistribution(p.values)
  return CategoricalDistribution(p.choices)


def to_distributions(space: ss.SearchSpace) -> dict[str, BaseDistribution]:
  """Optuna distributions of an optformer SearchSpace: name -> distribution, in the space's order.

  Discrete levels that are evenly spaced become a stepped Int/FloatDistribution
  (ordered); other Discrete levels become a CategoricalDistribution of the
  numbers, so Optuna's samplers treat them as unordered (see module docstring).

  Raises:
    TypeError: `space` is not an optformer.SearchSpace.
  """
  if not isinstance(space, ss.SearchSpace):
    raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
  return {p.name: _parameter_to_distribution(p) for p in space}


def suggest_params(trial: optuna.trial.BaseTrial, space: ss.SearchSpace) -> dict[str, Any]:
  """Suggests every parameter of `space` on an Optuna trial (define-by-run) and returns the configuration.

  Each parameter is suggested with its `to_distributions` distribution
  (`suggest_float`, `suggest_int` or `suggest_categorical`), so any Optuna
  sampler can tune an optformer SearchSpace; the result validates in `space`.

  Raises:
    TypeError: `space` is not an optformer.SearchSpace.
  """
  out = {}
  for name, dist in to_distributions(space).items():
    if isinstance(dist, FloatDistribution):
      out[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    elif isinstance(dist, IntDistribution):
      out[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    else:
      out[name] = trial.suggest_categorical(name, dist.choices)
  return space.validate(out)


# -- Sampler ---------------------------------------------------------------------

_FINISHED_OR_PENDING = (
    TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING,
)


def _params_in(space: ss.SearchSpace, params: Mapping[str, Any]) -> dict[str, Any] | None:
  """`params` restricted to `space` and validated, or None if one is missing or outside it."""
  try:
    return space.validate({name: params[name] for name in space.names})
  except (KeyError, TypeError, ValueError):
    return None


def _last_intermediate_value(trial: FrozenTrial) -> float | None:
  if not trial.intermediate_values:
    return None
  return trial.intermediate_values[max(trial.intermediate_values)]


class OptFormerSampler(BaseSampler):
  """An Optuna sampler that asks `optformer.Optimizer` for each trial (zero-shot, no fitting).

  Relative sampling covers the *joint search space*: the parameters that
  every COMPLETE trial so far suggested with the same distribution (Optuna's
  intersection search space, as TPESampler(multivariate=True) and GPSampler
  use), minus single-valued distributions, distributions that
  `from_distributions` rejects, and, beyond the model's `max_params` (8 for
  the shipped model), the parameters after the first `max_params` in name
  order (a UserWarning says so once). Every other parameter is sampled by
  `independent_sampler`: all of the first trial's (Optuna learns the space
  from completed trials, so nothing is joint before one completes),
  conditional (define-by-run) parameters that not every trial has, and a
  parameter whose distribution changed between trials (a changed range drops
  it from the joint space; a changed kind or categorical choices is an error
  of Optuna's own, for every sampler).

  For each trial a fresh Optimizer over the joint space is given the study's
  history, restricted to trials that have every joint parameter inside the
  joint space:

  * COMPLETE: told with its value.
  * FAIL: told as infeasible (`tell(params, None)`), so the optimizer steers
    away from it and does not propose it again.
  * PRUNED: told with its last intermediate value, a pessimistic estimate of
    its final objective when `trial.report` reports the objective at a lower
    budget (the usual use); a pruned trial that reported nothing is told as
    infeasible.
  * RUNNING and WAITING (other than the trial being sampled; enqueued
    parameters included): registered as *pending* (`add_pending`), so they
    are fantasized in the context and not proposed again. This holds for
    `n_jobs > 1` and for several processes sharing an RDB storage.

  Args:
    seed: makes the suggestions reproducible: trial number t is sampled with
      a seed derived from (seed, t), so the same history gives the same
      suggestion whatever the order in which workers ask. None: random.
    model: an OptFormer, a checkpoint directory, or None for the shipped one.
    num_candidates: candidates of the Optimizer's "policy" and "random" modes (the default
      "search" uses the acquisition search of `search=`, see optformer.Optimizer).
    independent_sampler: the fallback for parameters outside the joint space;
      default `optuna.samplers.RandomSampler(seed)`.
    warn_independent_sampling: warn (UserWarning, once per parameter name) when
      a parameter is sampled by the fallback once the study has a completed trial.
    **optimizer_kwargs: passed to `optformer.Optimizer` (temperature,
      algorithm, candidates).

  Raises:
    ValueError / TypeError: at construction, bad Optimizer options (checked
      by building one); in a study, a multi-objective study (ValueError).
    optformer.CheckpointError: a missing or corrupt checkpoint.
  """

  def __init__(
      self, *, seed: int | None = None, model=None, num_candidates: int = 128,
      independent_sampler: BaseSampler | None = None, warn_independent_sampling: bool = True, **optimizer_kwargs,
  ):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
      raise ValueError(f"seed must be a non-negative int or None, got {seed!r}.")
    if "seed" in optimizer_kwargs or "goal" in optimizer_kwargs:
      raise TypeError("OptFormerSampler sets the Optimizer's seed and goal itself; pass `seed` to the sampler.")
    probe = Optimizer(
        ss.SearchSpace([ss.Float("x", 0.0, 1.0)]), model=model, num_candidates=num_candidates, **optimizer_kwargs
    )
    self._max_params = probe.surrogate.max_params
    self._model, self._num_candidates, self._optimizer_kwargs = model, num_candidates, optimizer_kwargs
    self._seed = int(np.random.SeedSequence(seed).entropy) % 2**63 if seed is None else int(seed)
    self._independent_sampler = independent_sampler or optuna.samplers.RandomSampler(seed=seed)
    self._warn_independent_sampling = warn_independent_sampling
    self._warned: set[str] = set()  # Keys of the warnings given.
    self._dropped: set[str] = set()  # Joint parameters left to the fallback (model too small, unsupported).
    self._lock = threading.Lock()
    # Threads of one process (n_jobs > 1) sample one at a time, and each sees what the others were
    # given: a RUNNING trial's parameters reach the storage only as its objective suggests them.
    self._sampling = threading.Lock()
    self._issued: dict[tuple[str, int], dict] = {}  # (study name, trial number) -> its suggestion, while running.

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

  def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
    """The joint search space (sorted by name) that `sample_relative` covers; see the class docstring.

    Raises:
      ValueError: a multi-objective study.
    """
    if len(study.directions) > 1:
      raise ValueError(
          f"OptFormerSampler supports single-objective studies only; study {study.study_name!r} has "
          f"{len(study.directions)} objectives ({[d.name for d in study.directions]})."
      )
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    joint = {}
    for name, dist in sorted(intersection_search_space(completed).items()):
      if dist.single():
        continue
      try:
        _distribution_to_parameter(name, dist)
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
    return joint

  def sample_relative(
      self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
  ) -> dict[str, Any]:
    """One configuration of the joint space from `optformer.Optimizer.ask`, given the study's history."""
    if not search_space:
      return {}
    with self._sampling:
      out = self._sample_relative(study, trial, search_space)
      self._issued[(study.study_name, trial.number)] = out
      return out

  def _sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
    space = from_distributions(search_space)
    goal = "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"
    opt = Optimizer(  # The sampler warns about truncation once per study itself, not once per trial.
        space, goal, model=self._model, num_candidates=self._num_candidates, seed=self.trial_seed(trial.number),
        **{**self._optimizer_kwargs, "warn_truncation": False},
    )
    # Fresh from the storage: RUNNING trials of other workers change between calls.
    history, pending = [], []
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
      if t.state == TrialState.COMPLETE:
        history.append((params, t.value))
      elif t.state == TrialState.FAIL:
        history.append((params, None))
      elif t.state == TrialState.PRUNED:
        history.append((params, _last_intermediate_value(t)))
      else:
        pending.append(params)
    for params, value in history:  # All tells before any pending: tell matches pending trials by value.
      opt.tell(params, value)
    for params in pending:
      opt.add_pending(params)
    limit = opt.engine.config.max_trials
    if len(history) + len(pending) > limit:
      self._warn_once(
          "truncation", f"The study has {len(history) + len(pending)} trials; the model's context holds {limit}. "
          f"It sees the best {limit // 2} and the most recent ones.",
      )
    return dict(opt.ask())

  def sample_independent(
      self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
  ) -> Any:
    """A value from `independent_sampler` for a parameter outside the joint search space."""
    warn = self._warn_independent_sampling and param_name not in self._dropped
    if warn and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
      self._warn_once(
          f"independent:{param_name}",
          f"Parameter {param_name!r} in trial {trial.number} is outside the joint search space (conditional, "
          f"dynamic or unsupported); it is sampled by {type(self._independent_sampler).__name__}.",
      )
    return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)

  def before_trial(self, study: Study, trial: FrozenTrial) -> None:
    self._independent_sampler.before_trial(study, trial)

  def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
    self._independent_sampler.after_trial(study, trial, state, values)
