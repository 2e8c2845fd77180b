"""What every explanation reads: a study's space, goal, observed trials and a batched predictive mean and variance.

`as_study(obj)` accepts an `optformer.Optimizer`, a fitted `optformer.Surrogate`
or an `optuna.Study` (its COMPLETE trials over the union of their parameters,
converted with `optformer.integrations.optuna`), and returns a
`StudyView`; an Optuna study's define-by-run branches become a conditional
space, as `OptFormerSampler` models them
(optformer/integrations/optuna_conditions.py). `StudyView.predict` scores any number of configurations in
fixed chunks of `CHUNK` queries (the last chunk padded by repeating a
configuration), so one explanation compiles the model once per history
bucket and not once per query count, and it scores each distinct
configuration once.

Conditional search spaces: an explanation builds configurations by setting
some parameters of another configuration; `complete` turns the result into a
valid configuration by one rule, the same for every explanation: a
parameter that the new values switch off is dropped, and one that they
switch on, which the configuration lacks, takes the value at the centre of
its unit range (`from_unit(INACTIVE_UNIT)`: the geometric middle of a log
range, the middle level or category).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from optformer import search_space as ss
from optformer.optimizer import Optimizer
from optformer.surrogate import Surrogate

CHUNK = 1024  # Queries per model call (a multiple of the engine's query padding, 256).
MIN_TRIALS = 2  # Explanations need at least this many feasible trials.


@dataclasses.dataclass
class StudyView:
  """A study as the explanations see it.

  Attributes:
    space: the SearchSpace.
    goal: "minimize" or "maximize".
    configs: the n feasible observed configurations (validated dicts), in trial order.
    values: float64 [n], their objectives in objective units.
    score: configs -> (mean float64 [m], variance float64 [m]) of the model's
      predictive distribution, in objective units (squared for the variance).
  """

  space: ss.SearchSpace
  goal: str
  configs: list[dict[str, Any]]
  values: np.ndarray
  score: Callable[[Sequence[Mapping[str, Any]]], tuple[np.ndarray, np.ndarray]]

  @property
  def sign(self) -> float:
    """+1 for "maximize", -1 for "minimize": sign * objective is larger-is-better."""
    return 1.0 if self.goal == "maximize" else -1.0

  @property
  def incumbent(self) -> dict[str, Any]:
    """The best observed configuration in the goal's direction (the first of ties)."""
    return self.configs[int(np.argmax(self.sign * self.values))]

  def predict(self, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(mean float64 [m], variance float64 [m]) at m configurations, in chunks of CHUNK distinct ones."""
    key = lambda c: tuple((type(c[n]).__name__, c[n]) if n in c else None for n in self.space.names)
    index: dict[tuple, int] = {}
    unique: list[Mapping[str, Any]] = []
    where_M = np.empty(len(configs), np.int64)
    for i, c in enumerate(configs):
      k = key(c)
      if k not in index:
        index[k] = len(unique)
        unique.append(c)
      where_M[i] = index[k]
    mean_U, var_U = np.empty(len(unique)), np.empty(len(unique))
    for s in range(0, len(unique), CHUNK):
      chunk = list(unique[s:s + CHUNK])
      m = len(chunk)
      mean, var = self.score(chunk + [chunk[-1]] * (CHUNK - m))  # One compiled query shape.
      mean_U[s:s + m], var_U[s:s + m] = mean[:m], var[:m]
    return mean_U[where_M], var_U[where_M]


def complete(space: ss.SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
  """The valid configuration of `params` in a conditional space (module docstring): its active parameters, in
  space order, the ones it lacks at the centre of their unit range. `params` itself without conditions.

  Values are not validated here (the caller built them from valid ones).
  """
  if not space.is_conditional:
    return dict(params)
  out = {}
  for j in space.topological_order():  # Parents first, so each activity reads decided ancestors.
    p = space.parameters[j]
    if space.is_active(p.name, out):
      out[p.name] = params[p.name] if p.name in params else p.from_unit(ss.INACTIVE_UNIT)
  return {n: out[n] for n in space.names if n in out}


def _view(space, goal: str, configs, values, predict) -> StudyView:
  """The StudyView of a study's feasible trials (configs, values), scored by `predict(configs)`'s mean and std."""

  def score(queries):
    dist = predict(queries)
    return np.asarray(dist.mean, np.float64), np.asarray(dist.std, np.float64) ** 2

  return StudyView(space, goal, [dict(c) for c in configs], np.array(values, np.float64), score)


def _from_optimizer(opt: Optimizer) -> StudyView:
  if opt.study.num_objectives > 1:
    raise ValueError(f"Explanations take one objective; this study has {opt.study.num_objectives} ({opt.goal}). "
                     "Explain each objective through optformer.Surrogate fitted on its values.")
  feasible = [t for t in opt.trials if not t.infeasible]
  configs, values = [t.params for t in feasible], [t.value for t in feasible]
  return _view(opt.space, opt.goal, configs, values, opt.predict)


def _from_surrogate(sur: Surrogate) -> StudyView:
  if getattr(sur, "_posterior", None) is None:
    raise ValueError("The Surrogate is not fitted; call fit(X, y) before explaining it.")
  feasible = np.isfinite(sur.y_train_)  # fit(..., infeasible=mask) stores NaN for those trials.
  configs = [c for c, ok in zip(sur.X_train_, feasible) if ok]
  return _view(sur.space, sur.goal, configs, sur.y_train_[feasible], sur.predict_distribution)


def _from_optuna(study) -> StudyView:
  from optuna.study import StudyDirection
  from optuna.trial import TrialState

  from optformer.integrations import optuna as optuna_lib
  from optformer.integrations import optuna_conditions

  if len(study.directions) > 1:
    raise ValueError(f"Explanations need a single-objective study; study {study.study_name!r} has "
                     f"{len(study.directions)} objectives.")
  completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.value is not None and math.isfinite(t.value)]
  if len(completed) < MIN_TRIALS:
    raise ValueError(f"The study has {len(completed)} completed trial(s) with a finite value; explanations need "
                     f"at least {MIN_TRIALS}.")
  dists = {n: d for n, d in optuna_conditions.union_distributions(completed).items() if not d.single()}
  space = optuna_conditions.conditional_space(completed, dists) if dists else None  # As the sampler models it.
  if space is None:
    raise ValueError("The study's completed trials share no parameter with more than one value; nothing to explain.")
  goal = "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"
  opt = Optimizer(space, goal, warn_truncation=False)
  for t in completed:
    params = optuna_lib._params_in(space, t.params)
    if params is not None:
      opt.tell(params, t.value)
  return _from_optimizer(opt)


def as_study(study: Any) -> StudyView:
  """The StudyView of an Optimizer, a fitted Surrogate or an optuna.Study (a StudyView passes through).

  Raises:
    ValueError: a study with fewer than MIN_TRIALS (2) feasible trials, an
      unfitted Surrogate, a multi-objective study (Optimizer or Optuna).
    TypeError: any other object.
  """
  if isinstance(study, StudyView):
    view = study
  elif isinstance(study, Optimizer):
    view = _from_optimizer(study)
  elif isinstance(study, Surrogate):
    view = _from_surrogate(study)
  elif type(study).__module__.startswith("optuna") and hasattr(study, "get_trials"):
    view = _from_optuna(study)
  else:
    raise TypeError(f"study must be an optformer.Optimizer, a fitted optformer.Surrogate or an optuna.Study, "
                    f"got {type(study).__name__}.")
  if len(view.configs) < MIN_TRIALS:
    raise ValueError(f"The study has {len(view.configs)} feasible trial(s); explanations need at least {MIN_TRIALS}.")
  return view


def check_param(view: StudyView, name: Any) -> str:
  """`name` if it is a parameter of the study's space; ValueError naming it and the space's parameters otherwise."""
  if not isinstance(name, str) or name not in view.space.names:
    raise ValueError(f"Unknown parameter {name!r}; expected one of the search space's parameters {view.space.names}.")
  return name
