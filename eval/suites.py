"""Benchmark suites: named lists of tasks behind one interface.

A benchmark *task* has
  name: str                      unique within its suite (names its cache folder);
  problem: str                   unit of the per-task win/tie/loss test (BBOB
                                 pools the dimensions and instances of a function);
  space: optformer.SearchSpace;  goal: "minimize" | "maximize";
  __call__(params) -> float      the objective an optimizer observes (may be noisy);
  noiseless(params) -> float     the objective regret is measured on;
  noisy: bool                    whether __call__ adds noise to noiseless (else they are equal);
  optimum: float | None          known or estimated best noiseless value (goal units), None if unknown;
  with_noise_seed(seed) -> task  the task whose observation noise is seeded by `seed`;
  random_values(num, seed) -> float64 [num]  noiseless objective at uniform configurations;
  describe() -> dict             JSON-able description.

Suites (see each module):
  "prior"  held-out tasks of the training prior (eval/prior_tasks.py), maximize;
  "bbob"   the 24 noiseless BBOB functions from ioh (eval/bbob.py), minimize;
  "hpo"    Bayesmark-style scikit-learn tasks (eval/sklearn_tasks.py), CV loss, minimize.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

SUITES = ("prior", "bbob", "hpo")


class HpoTask:
  """A scikit-learn task of eval/sklearn_tasks.py as a benchmark task (deterministic objective)."""

  optimum = None  # Unknown: the best value seen stands in for it (eval/regret.py).
  noisy = False

  def __init__(self, task):
    self.task = task
    self.name = self.problem = task.name
    self.space, self.goal = task.space, task.goal

  def with_noise_seed(self, seed: int) -> "HpoTask":
    """Self: CV splits and estimator seeds are fixed, so evaluations are deterministic."""
    return self

  def __call__(self, params: Mapping[str, Any]) -> float:
    """The task's CV loss at params (units of its metric); NaN if the fit fails."""
    return float(self.task(params))

  noiseless = __call__

  def random_values(self, num: int, seed: int) -> np.ndarray:
    """float64 [num]: objective at `num` uniform configurations (rng `seed`); NaN where a fit fails."""
    rng = np.random.default_rng(seed)
    return np.array([self(self.space.sample(rng)) for _ in range(num)], np.float64)

  def describe(self) -> dict:
    return self.task.describe() if hasattr(self.task, "describe") else {"name": self.name, "goal": self.goal}


def hpo_tasks(names=None) -> list[HpoTask]:
  """The registered scikit-learn tasks `names` (None: all, in registry order).

  Raises:
    ValueError: an unknown task name (eval.sklearn_tasks.get_task).
  """
  from optformer.eval import sklearn_tasks

  names = list(sklearn_tasks.TASKS) if names is None else list(names)
  return [HpoTask(sklearn_tasks.get_task(n)) for n in names]


def build(suite: str, **kwargs) -> list:
  """The tasks of `suite`; kwargs go to prior_tasks.tasks, bbob.tasks or hpo_tasks.

  Raises:
    ValueError: unknown suite name, or bad arguments for it.
  """
  if suite == "prior":
    from optformer.eval import prior_tasks

    return prior_tasks.tasks(**kwargs)
  if suite == "bbob":
    from optformer.eval import bbob

    return bbob.tasks(**kwargs)
  if suite == "hpo":
    return hpo_tasks(**kwargs)
  raise ValueError(f"Unknown suite {suite!r}; expected one of {list(SUITES)}.")
