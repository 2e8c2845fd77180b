"""The study: a search space's trials, pending trials and their numbering, validated on entry.

`Study` is the trial store behind `optformer.Optimizer` (the designer, optformer/designer.py, reads it; the study
file, optformer/study_json.py, writes and reads it). It knows nothing of the model.

  * A trial is completed (`Trial`: params, value, infeasible, number, constraints) or pending (asked or added, not
    yet told).
  * One objective (goal "minimize" or "maximize": a trial's value is a float) or several (a list of goals: a
    trial's value is a tuple of floats, one per objective; `best` is then the Pareto front).
  * Numbers count from 0 in ask/tell order and are never reused; `Suggestion` carries its number and its study's id.
  * NaN, +-inf or None objectives are infeasible trials; objectives beyond +-1e150 (`MAX_ABS_OBJECTIVE`) are
    refused before anything is recorded.
  * Constraints (floats, feasible when all are <= 0, as Optuna's): a trial that violates one is infeasible and
    keeps its value in the record; the model reads it as infeasible and it never counts for `best`.
  * Telling a suggestion twice, or a suggestion of another study, raises ValueError; a plain dict completes the
    oldest pending trial with equal values, or is recorded as a new trial.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Any, Mapping, Sequence

import numpy as np

from optformer import search_space as ss

# Objectives beyond +-1e150 are refused: the study's arithmetic in objective units (the span, the bins of the
# predictive distribution, its variance, which squares them) would overflow float64 and break later calls.
MAX_ABS_OBJECTIVE = 1e150


@dataclasses.dataclass(frozen=True)
class Trial:
  """A completed evaluation.

  params: the configuration. value: the objective (float), or a tuple of floats with several objectives; NaN
  where an objective was not finite (NaN, +-inf or None). infeasible: an objective was not finite or a
  constraint was violated (> 0). number: counts trials from 0 in ask/tell order. constraints: the constraint
  values told (floats, feasible when all are <= 0), or None.
  """

  params: dict
  value: float | tuple
  infeasible: bool = False
  number: int = -1
  constraints: tuple | None = None

  @property
  def values(self) -> tuple:
    """The objectives as a tuple of floats (one element with a single objective)."""
    return self.value if isinstance(self.value, tuple) else (self.value,)


class Suggestion(dict):
  """A configuration returned by `Optimizer.ask`: a plain dict name -> value that also carries its trial `number`.

  `study` is the `Optimizer.study_id` of the study that made it (kept by
  save/load, so a resumed study accepts the suggestions of the original);
  another study's `tell` refuses it. None: a suggestion of any study.
  """

  def __init__(self, params: Mapping[str, Any], number: int, study: str | None = None):
    super().__init__(params)
    self.number = number
    self.study = study

  def __repr__(self) -> str:
    return f"Suggestion({dict(self)!r}, number={self.number})"

  def __reduce__(self):
    return (Suggestion, (dict(self), self.number, self.study))


def as_objective(value: Any) -> tuple[float, bool]:
  """(float value, infeasible) of an objective; raises TypeError (not a number) or ValueError (|value| > 1e150)."""
  if value is None:
    return math.nan, True
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"The objective must be a real number (or None/NaN for infeasible), got {value!r}.")
  big_int = isinstance(value, (int, np.integer)) and abs(int(value)) > MAX_ABS_OBJECTIVE  # float() may overflow
  v = math.inf if big_int else float(value)
  if big_int or (math.isfinite(v) and abs(v) > MAX_ABS_OBJECTIVE):
    raise ValueError(
        f"The objective {value!r} is beyond +-{MAX_ABS_OBJECTIVE:g}: the study's objective scale would overflow "
        "float64. Rescale the objective (e.g. take its logarithm), or pass NaN for a failed evaluation."
    )
  return v, not math.isfinite(v)


def as_objectives(value: Any, num_objectives: int) -> tuple[float | tuple, bool]:
  """(value, infeasible) of a told objective: a float for one objective, a tuple of `num_objectives` floats for
  several (NaN where not finite). Raises TypeError (not a number, or not a sequence of that length with several
  objectives) or ValueError (|value| > 1e150)."""
  if num_objectives == 1:
    v, infeasible = as_objective(value)
    return (math.nan if infeasible else v), infeasible
  if value is None:
    return (math.nan,) * num_objectives, True
  if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or len(value) != num_objectives:
    raise TypeError(f"The study has {num_objectives} objectives; expected a sequence of {num_objectives} numbers "
                    f"(or None for an infeasible trial), got {value!r}.")
  pairs = [as_objective(v) for v in value]
  return tuple(math.nan if bad else v for v, bad in pairs), any(bad for _, bad in pairs)


def as_constraints(constraints: Any) -> tuple | None:
  """A tuple of floats of told constraint values, or None. Raises TypeError (not a sequence of real numbers) or
  ValueError (a NaN or infinite value: Optuna refuses NaN too, and the study file holds finite numbers only)."""
  if constraints is None:
    return None
  if isinstance(constraints, (str, bytes, Mapping)) or not hasattr(constraints, "__iter__"):
    raise TypeError(f"constraints must be a sequence of real numbers (feasible when all are <= 0) or None, got "
                    f"{constraints!r}.")
  out = []
  for c in constraints:
    if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)):
      raise TypeError(f"constraints must be real numbers (feasible when all are <= 0), got {c!r} in {constraints!r}.")
    if not math.isfinite(float(c)):
      raise ValueError(f"constraints must be finite (feasible when all are <= 0), got {c!r} in {constraints!r}.")
    out.append(float(c))
  return tuple(out)


def violates(constraints: tuple | None) -> bool:
  """Whether any constraint value is > 0."""
  return constraints is not None and any(c > 0.0 for c in constraints)


def dominated(losses) -> np.ndarray:
  """bool [n]: whether each row of float [n, K] losses (smaller is better) is dominated by another row (no worse
  in every objective, better in one). Equal rows do not dominate each other."""
  l = np.asarray(losses, np.float64)
  no_worse = (l[None, :, :] <= l[:, None, :]).all(axis=2)  # [i, j]: row j is no worse than row i everywhere.
  better = (l[None, :, :] < l[:, None, :]).any(axis=2)
  return (no_worse & better).any(axis=1)


class Study:
  """Trials and pending trials of one search space and goal.

  Args:
    space: the SearchSpace every configuration is validated against.
    goal: "minimize" or "maximize", or a sequence of them (one per objective, at least two) for several
      objectives.

  Attributes:
    trials: completed trials, in tell order.
    pending: trial number -> validated params of the pending trials, in ask order.
    next_number: the number the next new trial gets.
    study_id: marks this study's suggestions (`Suggestion.study`).
    goals: tuple of "minimize" / "maximize", one per objective.
  """

  def __init__(self, space: ss.SearchSpace, goal: str | Sequence[str]):
    goals = (goal,) if isinstance(goal, str) else tuple(goal) if isinstance(goal, (list, tuple)) else (goal,)
    bad = [g for g in goals if g not in ("minimize", "maximize")]
    if bad or not goals or (not isinstance(goal, str) and len(goals) < 2):
      raise ValueError(f"goal must be 'minimize' or 'maximize', or a list of them (one per objective, at least two), "
                       f"got {goal!r}.")
    self.space, self.goals = space, goals
    self.goal = goals[0] if isinstance(goal, str) else list(goals)
    self.trials: list[Trial] = []
    self.pending: dict[int, dict] = {}
    self.next_number = 0
    self.study_id = uuid.uuid4().hex
    self._units: dict[int, tuple[tuple, np.ndarray]] = {}  # trial number -> (key(params), unit form); see `unit`

  @property
  def num_objectives(self) -> int:
    return len(self.goals)

  def tell(self, params: Mapping[str, Any], value: Any, constraints: Sequence[float] | None = None) -> Trial:
    """Records a completed trial and returns it (see `Optimizer.tell`). Raises ValueError / TypeError for params
    not in the space, a bad objective or constraints, a suggestion told twice or of another study; nothing is
    recorded then."""
    valid = self.space.validate(params)
    trial = self.trial(valid, value, constraints, -1)
    number = self._match_pending(params, valid)
    if number is None:
      number = self._new_number()
    else:
      del self.pending[number]
    trial = dataclasses.replace(trial, number=number)
    self.trials.append(trial)
    return trial

  def trial(self, params: dict, value: Any, constraints: Any, number: int) -> Trial:
    """A Trial of validated params with its value and constraints checked (`as_objectives`, `as_constraints`)."""
    v, bad = as_objectives(value, self.num_objectives)
    cons = as_constraints(constraints)
    return Trial(params=params, value=v, infeasible=bad or violates(cons), number=number, constraints=cons)

  def _match_pending(self, params, valid) -> int | None:
    if isinstance(params, Suggestion):
      if params.study is not None and params.study != self.study_id:
        raise ValueError(
            f"Suggestion {params.number} ({dict(params)!r}) comes from another study (Optimizer); tell it to the "
            "optimizer that asked it, or pass dict(suggestion) to record the configuration here."
        )
      if params.number in self.pending:
        return params.number
      if any(t.number == params.number for t in self.trials):
        raise ValueError(f"Trial {params.number} ({dict(params)!r}) was already told; tell each suggestion once.")
    return next((n for n, p in self.pending.items() if p == valid), None)

  def _new_number(self) -> int:
    self.next_number += 1
    return self.next_number - 1

  def add_pending(self, params: Mapping[str, Any]) -> Suggestion:
    """Registers a pending configuration; returns it as a Suggestion with its new number. Raises as `validate`."""
    valid = self.space.validate(params)
    number = self._new_number()
    self.pending[number] = valid
    return Suggestion(valid, number, self.study_id)

  def remove_pending(self, params: Mapping[str, Any]) -> None:
    """Forgets a pending trial. Raises ValueError if it is not pending or of another study."""
    valid = self.space.validate(params)
    number = self._match_pending(params, valid)
    if number is None:
      raise ValueError(f"{dict(params)!r} is not a pending trial.")
    del self.pending[number]

  def suggestions(self) -> list[Suggestion]:
    """The pending configurations as Suggestions, oldest first."""
    return [Suggestion(p, n, self.study_id) for n, p in self.pending.items()]

  @property
  def best(self) -> tuple[dict, float] | list[tuple[dict, tuple]]:
    """(params, value) of the best feasible trial; with several objectives the Pareto front of the feasible
    trials, a list of (params, values) in tell order. Raises ValueError if no trial is feasible."""
    front = self.pareto_front()
    if not front:
      raise ValueError("No feasible trial has been told yet.")
    if self.num_objectives > 1:
      return [(dict(t.params), t.value) for t in front]
    pick = max if self.goal == "maximize" else min
    t = pick(front, key=lambda t: t.value)
    return dict(t.params), t.value

  def pareto_front(self) -> list[Trial]:
    """The feasible trials that no other feasible trial dominates, in tell order (all feasible trials with one
    objective)."""
    feasible = [t for t in self.trials if not t.infeasible]
    if self.num_objectives == 1 or not feasible:
      return feasible
    keep = ~dominated(self.losses(feasible))
    return [t for t, k in zip(feasible, keep) if k]

  def losses(self, trials) -> np.ndarray:
    """float [n, K]: the trials' objectives, each negated where maximized (smaller is better)."""
    return -np.array([[self.internal(v, k) for k, v in enumerate(t.values)] for t in trials], np.float64)

  def internal(self, value: float, objective: int = 0) -> float:
    """An objective in the model's direction (larger is better)."""
    return value if self.goals[objective] == "maximize" else -value

  def unit(self, number: int, params) -> np.ndarray:
    """float64 [D] unit form of a told or pending trial's params.

    Cached per trial number together with the params it was computed from, and recomputed when they differ:
    a suggestion edited before it is told (`tell` records the edited values under the same number) enters
    the context with its edited values, as `trials` holds them.
    """
    cached, key = self._units.get(number), self.key(params)
    if cached is None or cached[0] != key:
      cached = self._units[number] = (key, self.space.to_unit(params))
    return cached[1]

  def key(self, params) -> tuple:
    """A configuration's values with their types, in parameter order (so True and 1 differ); None for a
    parameter the configuration leaves out (inactive in a conditional space)."""
    return tuple((type(params[p.name]), params[p.name]) if p.name in params else None for p in self.space)

  def told_rows(self, objective: int = 0) -> list[tuple[np.ndarray, float]]:
    """(unit row, y) of every told trial in tell order, y the objective of that index, larger-is-better, NaN
    when infeasible."""
    return [(self.unit(t.number, t.params), math.nan if t.infeasible else self.internal(t.values[objective], objective))
            for t in self.trials]

  def pending_units(self) -> list[np.ndarray]:
    """float64 [D] unit rows of the pending trials, oldest first."""
    return [self.unit(n, p) for n, p in self.pending.items()]

  def taken_keys(self) -> set[tuple]:
    """`key` of every told and pending configuration."""
    return {self.key(p) for p in [t.params for t in self.trials] + list(self.pending.values())}
