"""Normalized regret: one definition for every suite.

In the minimize sense (y = -objective when the goal is "maximize"), after t
trials of a study

  r_t = max(0, (best_t - y*) / (y_rand - y*)),

  best_t  the best *noiseless* objective among trials 1..t (failed trials,
          NaN, are skipped; r_t = 1 before the first feasible trial);
  y_rand  the mean noiseless objective of uniform random configurations
          (a fixed-seed sample per task, cached next to the studies), so a
          single random trial scores 1 in expectation;
  y*      the best value known for the task: the exact optimum (bbob), the
          optimum estimate (prior), or none (hpo), improved by the best value
          seen in any study of the task (every optimizer and seed in the
          cache) and in the random sample.

The anchors follow Bayesmark's normalized score (Turner et al., "Bayesian
Optimization is Superior to Random Search for Machine Learning
Hyperparameter Tuning", NeurIPS 2020 competition, 2021), which also uses
random search and the best value found by any method, except that here the
random anchor is fixed over t (one random trial's expected value), so
curves of different t share one scale.
Because y* for hpo (and prior) depends on the studies in the cache, adding
studies can only lower y* and raise other studies' regret slightly.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from optformer.eval.runner import best_so_far


def sign(goal: str) -> float:
  """+1 for "minimize", -1 for "maximize" (multiply objectives to get the minimize sense)."""
  if goal not in ("minimize", "maximize"):
    raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
  return 1.0 if goal == "minimize" else -1.0


def reference(goal: str, random_values, optimum: float | None = None, seen: Iterable = ()) -> tuple[float, float]:
  """(y*, y_rand) in the minimize sense.

  Args:
    goal: "minimize" or "maximize".
    random_values: float [N] noiseless objectives of uniform random
      configurations (NaN entries, failed fits, are ignored).
    optimum: the known or estimated best objective, or None.
    seen: arrays of noiseless objectives observed in studies of this task.

  Raises:
    ValueError: bad goal; no finite random value; or y_rand <= y* (a
      constant objective: regret is undefined).
  """
  s = sign(goal)
  rand = s * np.asarray(random_values, np.float64)
  if not np.isfinite(rand).any():
    raise ValueError("reference needs at least one finite random value, got none.")
  y_rand = float(np.nanmean(np.where(np.isfinite(rand), rand, np.nan)))
  pool = [rand[np.isfinite(rand)]] + [s * np.ravel(np.asarray(v, np.float64)) for v in seen]
  if optimum is not None:
    pool.append(np.array([s * float(optimum)]))
  allv = np.concatenate(pool)
  y_star = float(np.min(allv[np.isfinite(allv)]))
  if not y_rand > y_star:
    raise ValueError(f"Regret is undefined: random mean {y_rand!r} is not above the optimum {y_star!r} (minimize sense).")
  return y_star, y_rand


def normalized_regret(values, goal: str, y_star: float, y_rand: float) -> np.ndarray:
  """float [..., T] normalized regret r_t of studies' noiseless objectives `values` float [..., T].

  y_star and y_rand are in the minimize sense (see `reference`). Values are
  >= 0; 1 is the expected regret of one random trial; 0 the optimum.

  Raises:
    ValueError: bad goal, or y_rand <= y_star.
  """
  s = sign(goal)
  if not y_rand > y_star:
    raise ValueError(f"Need y_rand > y_star, got y_rand={y_rand!r}, y_star={y_star!r}.")
  best = s * best_so_far(values, goal)  # Minimize sense; NaN before the first feasible trial.
  r = (best - y_star) / (y_rand - y_star)
  return np.where(np.isnan(r), 1.0, np.maximum(r, 0.0))
