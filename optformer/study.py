"""The study: a search space's trials, pending trials and their numbering, validated on entry.

`Study` is the trial store behind `optformer.Optimizer` (the designer, optformer/designer.py, reads it; the study
file, optformer/study_json.py, writes and reads it). It knows nothing of the model.

  * A trial is completed (`Trial`: params, value, infeasible, number) or pending (asked or added, not yet told).
  * Numbers count from 0 in ask/tell order and are never reused; `Suggestion` carries its number and its study's id.
  * NaN, +-inf or None objectives are infeasible trials; objectives beyond +-1e150 (`MAX_ABS_OBJECTIVE`) are
    refused before anything is recorded.
  * Telling a suggestion twice, or a suggestion of another study, raises ValueError; a plain dict completes the
    oldest pending trial with equal values, or is recorded as a new trial.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Any, Mapping

import numpy as np

from optformer import search_space as ss

# Objectives beyond +-1e150 are refused: the study's arithmetic in objective units (the span, the bins of the
# predictive distribution, its variance, which squares them) would overflow float64 and break later calls.
MAX_ABS_OBJECTIVE = 1e150


@dataclasses.dataclass(frozen=True)
class Trial:
  """A completed evaluation. `value` is NaN when `infeasible`; `number` counts trials from 0 in ask/tell order."""

  params: dict
  value: float
  infeasible: bool = False
  number: int = -1


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


class Study:
  """Trials and pending trials of one search space and goal.

  Args:
    space: the SearchSpace every configuration is validated against.
    goal: "minimize" or "maximize".

  Attributes:
    trials: completed trials, in tell order.
    pending: trial number -> validated params of the pending trials, in ask order.
    next_number: the number the next new trial gets.
    study_id: marks this study's suggestions (`Suggestion.study`).
  """

  def __init__(self, space: ss.SearchSpace, goal: str):
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    self.space, self.goal = space, goal
    self.trials: list[Trial] = []
    self.pending: dict[int, dict] = {}
    self.next_number = 0
    self.study_id = uuid.uuid4().hex
    self._units: dict[int, tuple[tuple, np.ndarray]] = {}  # trial number -> (key(params), unit form); see `unit`

  def tell(self, params: Mapping[str, Any], value: Any) -> Trial:
    """Records a completed trial and returns it (see `Optimizer.tell`). Raises ValueError / TypeError for params
    not in the space, a bad objective, a suggestion told twice or of another study; nothing is recorded then."""
    valid = self.space.validate(params)
    v, infeasible = as_objective(value)
    number = self._match_pending(params, valid)
    if number is None:
      number = self._new_number()
    else:
      del self.pending[number]
    trial = Trial(params=valid, value=math.nan if infeasible else v, infeasible=infeasible, number=number)
    self.trials.append(trial)
    return trial

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
  def best(self) -> tuple[dict, float]:
    """(params, value) of the best feasible trial. Raises ValueError if none."""
    feasible = [t for t in self.trials if not t.infeasible]
    if not feasible:
      raise ValueError("No feasible trial has been told yet.")
    pick = max if self.goal == "maximize" else min
    t = pick(feasible, key=lambda t: t.value)
    return dict(t.params), t.value

  def internal(self, value: float) -> float:
    """An objective in the model's direction (larger is better)."""
    return value if self.goal == "maximize" else -value

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

  def told_rows(self) -> list[tuple[np.ndarray, float]]:
    """(unit row, y) of every told trial in tell order, y larger-is-better, NaN when infeasible."""
    return [(self.unit(t.number, t.params), math.nan if t.infeasible else self.internal(t.value)) for t in self.trials]

  def pending_units(self) -> list[np.ndarray]:
    """float64 [D] unit rows of the pending trials, oldest first."""
    return [self.unit(n, p) for n, p in self.pending.items()]

  def taken_keys(self) -> set[tuple]:
    """`key` of every told and pending configuration."""
    return {self.key(p) for p in [t.params for t in self.trials] + list(self.pending.values())}
