"""The initial design: the first trials of a study, placed without the model.

`Optimizer(initial_design=...)` takes one of

  * "none" (the default): the model from the first trial with a feasible value on; before that, a uniform (prior or
    policy) sample, as without an initial design;
  * "centre" (or "center"): the first trial at the centre of the search space, as OSS Vizier's GP-bandit places
    its first trial: every numeric parameter at the midpoint of its unit scale (the log-scale midpoint of a log
    parameter, the middle level of an Int, Discrete or ordered Categorical), every unordered Categorical at its
    `default` or else its first category;
  * "sobol:K" (K >= 1): the first K trials from one scrambled Sobol' sequence (Owen scrambling,
    `scipy.stats.qmc.Sobol`), as Optuna's `n_startup_trials` of quasi-random sampling: a coordinate u in [0, 1)
    is the unit value of a numeric parameter and category floor(u * K) of an unordered Categorical.

The design covers the trials numbered below its size (told and pending alike, so `ask(K)` returns the whole
design); a study that already holds that many (e.g. warm-started with told trials) never uses it. Every design
point is a valid configuration: inactive parameters of a conditional space are left out (`SearchSpace.snap`); a
forbidden centre is replaced by the allowed one nearest to it among uniform points; forbidden Sobol' points are
skipped, and so are points already told or pending (the next point of the sequence is taken). A design's trials
take precedence over a piBO prior's samples (`prior=`), which the model's suggestions use from the design's end on.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from optformer import acquisition_search
from optformer import search_space as ss

KINDS = ("none", "centre", "sobol")


@dataclasses.dataclass(frozen=True)
class InitialDesign:
  """A parsed `initial_design` option: its kind (one of KINDS) and how many trials it places (0 for "none")."""

  kind: str = "none"
  num_trials: int = 0

  @classmethod
  def parse(cls, spec: str) -> "InitialDesign":
    """The design of "none", "centre" (or "center") or "sobol:K" with K an int >= 1.

    Raises:
      ValueError: any other string, naming it and the accepted forms.
      TypeError: spec is not a string.
    """
    if not isinstance(spec, str):
      raise TypeError(f"initial_design must be a string ('none', 'centre' or 'sobol:K'), got {type(spec).__name__} "
                      f"{spec!r:.80}.")
    kind, sep, count = spec.strip().lower().partition(":")
    if kind in ("none", "centre", "center") and not sep:
      return cls("none", 0) if kind == "none" else cls("centre", 1)
    if kind == "sobol" and sep and count.isdigit() and int(count) >= 1:
      return cls("sobol", int(count))
    raise ValueError(f"initial_design must be 'none', 'centre' (or 'center') or 'sobol:K' with an integer K >= 1, "
                     f"got {spec!r}.")

  def __str__(self) -> str:
    """The canonical option string ("none", "centre", "sobol:K"), as stored in a study file."""
    return f"sobol:{self.num_trials}" if self.kind == "sobol" else self.kind

  def covers(self, num_trials: int) -> bool:
    """Whether the trial after `num_trials` told and pending ones is a design trial."""
    return num_trials < self.num_trials

  def suggest(self, space: ss.SearchSpace, rng: np.random.Generator, seed: int,
              is_fresh: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """float64 [D]: the unit form of the next design trial, or None when the design has no fresh point left.

    Args:
      space: the search space (D parameters).
      rng: draws the uniform points that replace a forbidden centre.
      seed: scrambles the Sobol' sequence (the same seed for every trial of a study: one sequence).
      is_fresh: unit rows float [M, D] -> bool [M], False for a configuration already told or pending.
    """
    points = [centre(space, rng)] if self.kind == "centre" else sobol_points(space, seed, self.num_trials)
    # Re-encoded as the study encodes its trials (`SearchSpace.to_unit`), so a told point reads as taken.
    points = space.to_units([space.from_unit(u) for u in np.reshape(points, (-1, len(space)))])
    fresh = is_fresh(points) if len(points) else np.zeros(0, bool)
    return points[int(np.argmax(fresh))] if fresh.any() else None


def centre(space: ss.SearchSpace, rng: np.random.Generator) -> np.ndarray:
  """float64 [D]: the unit form of the centre of `space` (see the module docstring); when the centre is forbidden,
  the allowed configuration nearest to it (unit distance on numeric parameters, 1 per differing category) among
  1024 uniform points."""
  unordered = _unordered(space)
  c = np.full(len(space), 0.5)
  for j, p in enumerate(space):
    if unordered[j]:
      c[j] = p.to_unit(p.default) if p.default is not None else 0.0
  c = space.snap(c)
  if not space.forbidden or not space.unit_forbidden(c)[0]:
    return c[0]
  pool = acquisition_search.uniform_points(space, rng, 1024)
  distance = np.where(unordered, pool != c, (pool - c) ** 2).sum(axis=1)
  return pool[int(np.argmin(distance))]


def sobol_points(space: ss.SearchSpace, seed: int, num: int) -> np.ndarray:
  """float64 [N, D]: the allowed points among the first max(4 num, 16) (a power of two) of the scrambled Sobol'
  sequence of `seed`, in sequence order, in unit form (N <= that count; forbidden points dropped)."""
  from scipy.stats import qmc

  m = int(np.ceil(np.log2(max(4 * num, 16))))
  u = acquisition_search.configurations_of(space, qmc.Sobol(len(space), scramble=True, seed=seed).random_base2(m))
  return u[~space.unit_forbidden(u)] if space.forbidden else u


def _unordered(space: ss.SearchSpace) -> np.ndarray:
  """bool [D]: True for an unordered Categorical (its unit value is a category index)."""
  return np.array([p.kind == ss.KIND_CATEGORICAL for p in space], bool)
