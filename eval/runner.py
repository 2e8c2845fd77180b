"""One ask/tell loop for every optimizer, and best-so-far curves.

An *optimizer* is any object with `ask() -> params` and
`tell(params, value)` (optformer.Optimizer, eval.random_search.RandomSearch,
wrappers of other libraries). A *task* is any callable `task(params) ->
float` with `.goal` "minimize" or "maximize" (eval.sklearn_tasks.Task).
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np


class Record(NamedTuple):
  """One trial of a study, in the order it was suggested."""

  params: dict  # The configuration the optimizer suggested.
  value: float  # Objective at params (NaN if the evaluation failed).
  seconds_per_suggestion: float  # Wall-clock seconds spent in ask(), incl. any compilation.


def run_study(optimizer, task: Callable[[dict], float], num_trials: int,
              callback: Callable[[int, Record], Any] | None = None) -> list[Record]:
  """Runs `num_trials` rounds of ask -> evaluate -> tell.

  Args:
    optimizer: object with ask() and tell(params, value).
    task: the objective, params -> float.
    num_trials: T, number of evaluations (>= 0).
    callback: called as callback(t, record) after trial t (0-based) is told,
      e.g. to advance a progress bar.

  Returns:
    T records (params, value, seconds_per_suggestion).
  """
  records = []
  for t in range(num_trials):
    start = time.perf_counter()
    params = optimizer.ask()
    seconds = time.perf_counter() - start
    value = float(task(params))
    optimizer.tell(params, value)
    records.append(Record(params, value, seconds))
    if callback is not None:
      callback(t, records[-1])
  return records


def best_so_far(values, goal: str = "minimize") -> np.ndarray:
  """Best objective among the first t+1 trials, for each t.

  Args:
    values: float [..., T] objectives in trial order; NaN (failed trials) is
      skipped.
    goal: "minimize" or "maximize".

  Returns:
    float [..., T]; NaN until the first finite value.
  """
  v = np.asarray(values, np.float64)
  if goal not in ("minimize", "maximize"):
    raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
  sign = 1.0 if goal == "minimize" else -1.0
  filled = np.where(np.isfinite(v), sign * v, np.inf)
  best = np.minimum.accumulate(filled, axis=-1)
  return np.where(np.isinf(best), np.nan, sign * best)


def mean_and_stderr(x) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard error over axis 0 (seeds) of float [S, ...]; s.e. is 0 for S = 1."""
  x = np.asarray(x, np.float64)
  s = x.shape[0]
  se = np.std(x, axis=0, ddof=1) / np.sqrt(s) if s > 1 else np.zeros(x.shape[1:])
  return np.mean(x, axis=0), se
