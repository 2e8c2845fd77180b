"""The "bbob" benchmark suite: the 24 noiseless BBOB functions, from the ioh package.

BBOB (Hansen et al., "Real-Parameter Black-Box Optimization Benchmarking
2009: Noiseless Functions Definitions", INRIA RR-6829) as implemented by
IOHexperimenter (`ioh.get_problem(fid, instance, dimension, ProblemClass.BBOB)`,
de Nobel et al. 2024). Each task is one (function id 1..24, dimension,
instance) on the box [-5, 5]^d, one Float parameter per coordinate, to be
MINIMIZED; ioh gives the exact optimum f(x*), so regret is f(x) - f(x*).
Instances shift and rotate the function and its optimum value.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import optformer

NUM_FUNCTIONS = 24


class BBOBTask:
  """BBOB function `fid` in `dimension` dimensions, instance `instance` (goal: minimize).

  Args:
    fid: function id, 1..24.
    dimension: d >= 2 (ioh supports 2..40 for all functions).
    instance: instance id >= 1.

  Raises:
    ValueError: fid, dimension or instance out of range.
  """

  goal = "minimize"
  noisy = False

  def __init__(self, fid: int, dimension: int, instance: int = 1):
    import ioh

    if not 1 <= fid <= NUM_FUNCTIONS:
      raise ValueError(f"BBOB function id must be in 1..{NUM_FUNCTIONS}, got {fid!r}.")
    if not 2 <= dimension <= 40:
      raise ValueError(f"BBOB dimension must be in 2..40, got {dimension!r}.")
    if instance < 1:
      raise ValueError(f"BBOB instance must be >= 1, got {instance!r}.")
    self.fid, self.dimension, self.instance = fid, dimension, instance
    self._f = ioh.get_problem(fid, instance, dimension, ioh.ProblemClass.BBOB)
    self.name = f"f{fid:02d}_d{dimension}_i{instance}"
    # Win/tie/loss tests pool all dimensions and instances of one function (normalized regret is scale-free).
    self.problem = f"f{fid:02d}"
    lb, ub = np.asarray(self._f.bounds.lb), np.asarray(self._f.bounds.ub)
    self.space = optformer.SearchSpace([optformer.Float(f"x{i}", float(lb[i]), float(ub[i])) for i in range(dimension)])
    self.optimum = float(self._f.optimum.y)  # Exact f(x*).

  def with_noise_seed(self, seed: int) -> "BBOBTask":
    """Self: the function is deterministic."""
    return self

  def __call__(self, params: Mapping[str, Any]) -> float:
    """f(x) at x = (params["x0"], ..., params["x{d-1}"]); float, function units."""
    return float(self._f([float(params[n]) for n in self.space.names]))

  noiseless = __call__

  def random_values(self, num: int, seed: int) -> np.ndarray:
    """float64 [num]: f at `num` uniform points of the box (rng `seed`)."""
    rng = np.random.default_rng(seed)
    return np.array([self(self.space.sample(rng)) for _ in range(num)], np.float64)

  def describe(self) -> dict:
    return {"name": self.name, "goal": self.goal, "function": self._f.meta_data.name, "fid": self.fid,
            "dimension": self.dimension, "instance": self.instance, "optimum": self.optimum}


def tasks(functions=tuple(range(1, NUM_FUNCTIONS + 1)), dimensions=(2, 4, 8), instances=(1,)) -> list[BBOBTask]:
  """One BBOBTask per (dimension, function, instance), in that nesting order.

  Raises:
    ValueError: an id out of range (see BBOBTask) or an empty list.
  """
  if not functions or not dimensions or not instances:
    raise ValueError(f"Need functions, dimensions and instances; got {functions!r}, {dimensions!r}, {instances!r}.")
  return [BBOBTask(f, d, i) for d in dimensions for f in functions for i in instances]
