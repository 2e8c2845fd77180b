"""Random search: the baseline every optimizer must beat (Bergstra & Bengio, JMLR 2012).

Each suggestion is drawn independently and uniformly in unit space
(`SearchSpace.sample`: uniform in [low, high], or in [log low, log high] for
log-scale parameters; uniform over levels and categories), ignoring the
history.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import optformer


class RandomSearch:
  """Ask/tell optimizer that ignores what it is told.

  Args:
    space: the search space.
    seed: seeds the suggestions (same seed -> same sequence).
  """

  def __init__(self, space: optformer.SearchSpace, seed: int | None = None):
    self.space = space
    self._rng = np.random.default_rng(seed)
    self.trials: list[tuple[dict, float]] = []

  def ask(self) -> dict[str, Any]:
    """A uniformly random configuration: dict name -> value."""
    return self.space.sample(self._rng)

  def tell(self, params: Mapping[str, Any], value: float) -> None:
    """Records (params, value); suggestions do not depend on it."""
    self.trials.append((dict(params), float(value)))
