"""The "prior" benchmark suite: held-out tasks from the project's GP prior.

Task seeds come from the prior's *validation* split
(`data_gen.prior.task_seeds(0, "validation", i, ...)`), which training never
uses; each task is a `data_gen.task.SyntheticTask` under the default
PriorConfig (D_max 8, float / int / categorical parameters mixed), keeping
those with at least `min_dims` parameters. The objective is MAXIMIZED. An
optimizer observes f(x) + N(0, noise variance) (the task's own noise level);
regret is measured on the noiseless f. The optimum is
`SyntheticTask.optimum_estimate()` (random search + local search; a lower
bound on max f), and eval/regret.py improves it by any better value seen.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from optformer.data_gen import prior as prior_lib
from optformer.data_gen.task import SyntheticTask


class PriorTask:
  """One held-out prior task as a benchmark objective (goal: maximize).

  Args:
    synthetic: the SyntheticTask.
    index: its index in the validation split (global seed 0); names the task.
    noise_seed: seeds the observation noise: the t-th call of studies with
      the same (index, noise_seed) sees the same noise draw, whatever the
      optimizer.
  """

  goal = "maximize"
  noisy = True

  def __init__(self, synthetic: SyntheticTask, index: int, noise_seed: int = 0):
    self.synthetic = synthetic
    self.index = index
    self.noise_seed = noise_seed
    self.name = f"prior_{index:04d}"
    self.problem = self.name  # Unit of the per-task win/tie/loss test.
    self.space = synthetic.space
    self._rng = np.random.default_rng([index, noise_seed])

  def with_noise_seed(self, seed: int) -> "PriorTask":
    """The same function with its observation noise seeded by `seed` (a fresh stream)."""
    return PriorTask(self.synthetic, self.index, seed)

  def noiseless(self, params: Mapping[str, Any]) -> float:
    """f(params), no noise (larger is better; unitless, prior scale ~ N(0, outputscale))."""
    return float(self.synthetic.evaluate(self.synthetic.to_unit(params)[None])[0])

  def __call__(self, params: Mapping[str, Any]) -> float:
    """f(params) + Gaussian noise of the task's variance, from this task's noise stream."""
    return float(self.synthetic.evaluate(self.synthetic.to_unit(params)[None], noisy=True, rng=self._rng)[0])

  @property
  def optimum(self) -> float:
    """Estimate of max f (SyntheticTask.optimum_estimate with its defaults; cached)."""
    return self.synthetic.optimum_estimate()

  def random_values(self, num: int, seed: int) -> np.ndarray:
    """float64 [num]: noiseless f at `num` uniform configurations (SearchSpace.sample, rng `seed`)."""
    rng = np.random.default_rng(seed)
    x_NxD = np.stack([self.synthetic.to_unit(self.space.sample(rng)) for _ in range(num)])
    return self.synthetic.evaluate(x_NxD).astype(np.float64)

  def describe(self) -> dict:
    return {"name": self.name, "goal": self.goal, "index": self.index, "task_seed": int(self.synthetic.seed),
            "space": self.space.to_json(), "noise_variance": self.synthetic.hyperparameters["noise_variance"]}


@functools.lru_cache(maxsize=8)
def _validation_tasks(count: int) -> tuple[SyntheticTask, ...]:
  seeds = prior_lib.task_seeds(0, "validation", 0, count)
  batch = prior_lib.sample_tasks(prior_lib.PriorConfig(), seeds)
  return tuple(SyntheticTask.from_batch(batch, i, int(s)) for i, s in enumerate(seeds))


def tasks(num_tasks: int, min_dims: int = 2) -> list[PriorTask]:
  """The first `num_tasks` held-out tasks with >= `min_dims` parameters, in validation-index order.

  Raises:
    ValueError: num_tasks < 1 or min_dims outside 1..8; or fewer matching
      tasks among the first 4096 validation indices.
  """
  if num_tasks < 1:
    raise ValueError(f"num_tasks must be >= 1, got {num_tasks}.")
  max_dims = prior_lib.PriorConfig().max_dims
  if not 1 <= min_dims <= max_dims:
    raise ValueError(f"min_dims must be in 1..{max_dims}, got {min_dims}.")
  count = 64
  while True:
    pool = _validation_tasks(count)
    picked = [PriorTask(t, i) for i, t in enumerate(pool) if t.num_dims >= min_dims][:num_tasks]
    if len(picked) == num_tasks:
      return picked
    if count >= 4096:
      raise ValueError(f"Only {len(picked)} of the first {count} validation tasks have >= {min_dims} parameters.")
    count *= 4
