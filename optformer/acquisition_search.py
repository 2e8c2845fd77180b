"""The suggest step's search of the acquisition function over a search space.

`search` maximizes an acquisition (any vectorized function of unit-form
configurations) the way GP-BO libraries do (Optuna's GPSampler: a
quasi-random pool, then local search from the best points; the TabPFN-as-BO
recipe of Müller et al. 2023 likewise): it scores one pool of

  * `num_random` uniform points in unit space,
  * `num_local` local moves of the best trials (`local_moves`), and
  * extra candidates from the caller (policy samples, prior samples),

then runs `rounds` of local moves around the `refine_top` best fresh
candidates so far, `refine_moves` per round, optionally ascends the
acquisition's gradient from the `grad_top` best (`gradient_moves`; the
caller's `ascend`, e.g. `Posterior.ascend_ei`), and returns the best fresh
candidate. Every candidate is snapped to the configuration it decodes to
(`SearchSpace.snap`), so floats take any value in their range and integers
reach every level, whatever the model's bins.

Conditional spaces: every candidate is a valid configuration; the slots of
its inactive parameters hold `search_space.INACTIVE_UNIT`, and
`space.unit_active_mask(rows)` (bool [M, D]) is the active mask a
surrogate reads beside the rows, e.g. inside the `acquisition` callable.

Forbidden clauses (`SearchSpace.forbidden`): no candidate is forbidden;
uniform points are redrawn, and forbidden local moves and extra rows are
dropped before they are scored.

Pool sizes are `SearchConfig`. Its defaults were chosen by measurement on
the prior, BBOB and HPO suites (docs/acquisition_search.md): with today's
model v1, 1024 uniform points and nothing else had the lowest regret on all
three; local moves and refinement, which exploit the surrogate harder,
made it worse. On model v2 (docs/acquisition_gradient.md) neither a scrambled
Sobol pool nor gradient refinement beat the default by more than its standard
error (refinement lost on BBOB: it drives coordinates onto the box's bounds),
so both stay off.

Trust region (`SearchConfig.trust_region`, optformer/trust_region.py, after OSS Vizier's GP-bandit): every
candidate of the pool (uniform points, local moves, extra rows, refined rows) is mapped into the union of
L-infinity balls around the told trials, whose radius grows with the number of trials; off by default.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from optformer import output_warping
from optformer import search_space as ss
from optformer import trust_region as tr

# Unit-space standard deviations of local moves (one drawn per move).
LOCAL_SCALES = (0.02, 0.05, 0.1, 0.2)
POOLS = ("uniform", "sobol")  # SearchConfig.pool: how the random points are drawn.


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Sizes of the acquisition search (all >= 0; `num_random + num_local + extra` >= 1).

  Attributes:
    num_random: uniform points in unit space.
    num_local: local moves of the `num_top_trials` best trials.
    num_top_trials: how many of the best feasible trials the first moves start from.
    rounds: refinement rounds after the first pool.
    refine_top: best fresh candidates each round's moves start from.
    refine_moves: local moves per round.
    num_policy: policy samples in the pool (a model with a policy head: `Capabilities.policy`).
    pool: how the `num_random` points are drawn: "uniform" (independent uniform) or "sobol" (a scrambled Sobol
      sequence, `scipy.stats.qmc.Sobol`, seeded from the search's rng; more even coverage of the unit cube).
    grad_top: best fresh candidates refined by gradient ascent of the acquisition through the model after the
      pool and the rounds (optformer/acquisition_gradient.py); 0: none. Applies where the caller passes the
      acquisition's gradient (`Designer`: single-objective EI).
    grad_steps: gradient steps per refinement (projected Adam in unit space).
    grad_radius: the refinement's trust region: each coordinate stays within this distance (unit space, in
      (0, 1]) of its start; 1: anywhere in the box.
    grad_ordinal: whether Int and Discrete parameters are refined too (as continuous unit values, then snapped
      to a level); floats always are, categoricals and inactive parameters never.
    trust_region: whether every candidate is mapped into the trust region around the told trials
      (optformer/trust_region.py, OSS Vizier's GP-bandit rule): the union of L-infinity balls in unit space of
      radius trust_min_radius + (0.5 - trust_min_radius) * n / (trust_dimension_factor * (D + 1)) after n told
      trials in D parameters, off once that reaches 0.5; categoricals and inactive parameters never count.
      Applies where the caller passes the told trials (`Designer`: candidates="search").
    trust_min_radius: the radius with no trial told, in (0, 0.5] (Vizier: 0.2).
    trust_dimension_factor: > 0; the region is off from trust_dimension_factor * (D + 1) told trials on (Vizier: 5).
    output_warping: a monotone warp of the told objectives before the model reads them for the acquisition
      (optformer/output_warping.py, docs/output_warping.md): "none", "half_rank" or "half_rank+log" (OSS Vizier's
      GP-bandit default). Single-objective studies only; predictions (`Optimizer.predict`) are not warped.
  """

  # The defaults are the measured best of the ablation (docs/acquisition_search.md): 1024 uniform points, no
  # local moves, no refinement, no policy samples. The local-search sizes apply once num_local or rounds is set.
  num_random: int = 1024
  num_local: int = 0
  num_top_trials: int = 5
  rounds: int = 0
  refine_top: int = 8
  refine_moves: int = 64
  num_policy: int = 0
  pool: str = "uniform"
  grad_top: int = 0
  grad_steps: int = 20
  grad_radius: float = 1.0
  grad_ordinal: bool = False
  trust_region: bool = False
  trust_min_radius: float = 0.2
  trust_dimension_factor: float = 5.0
  output_warping: str = "none"

  def __post_init__(self):
    if self.output_warping not in output_warping.WARPINGS:
      raise ValueError(f"SearchConfig.output_warping must be one of {list(output_warping.WARPINGS)}, "
                       f"got {self.output_warping!r}.")
    if self.pool not in POOLS:
      raise ValueError(f"SearchConfig.pool must be one of {list(POOLS)}, got {self.pool!r}.")
    if isinstance(self.grad_radius, bool) or not isinstance(self.grad_radius, (int, float)) or not 0 < self.grad_radius <= 1:
      raise ValueError(f"SearchConfig.grad_radius must be a number in (0, 1], got {self.grad_radius!r}.")
    if not isinstance(self.grad_ordinal, (bool, np.bool_)):
      raise ValueError(f"SearchConfig.grad_ordinal must be a bool, got {self.grad_ordinal!r}.")
    if not isinstance(self.trust_region, (bool, np.bool_)):
      raise ValueError(f"SearchConfig.trust_region must be a bool, got {self.trust_region!r}.")
    if not _is_number(self.trust_min_radius) or not 0 < self.trust_min_radius <= tr.OFF_RADIUS:
      raise ValueError(f"SearchConfig.trust_min_radius must be a number in (0, 0.5], got {self.trust_min_radius!r}.")
    if not _is_number(self.trust_dimension_factor) or not 0 < self.trust_dimension_factor < np.inf:
      raise ValueError(f"SearchConfig.trust_dimension_factor must be a finite number > 0, got "
                       f"{self.trust_dimension_factor!r}.")
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if f.name in _NOT_SIZES:
        continue
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"SearchConfig.{f.name} must be an int >= 0, got {v!r}.")
    if self.num_random + self.num_local + self.num_policy < 1:
      raise ValueError("SearchConfig needs num_random + num_local + num_policy >= 1 candidates.")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  def trust_radius(self, num_trials: int, num_parameters: int) -> float:
    """The trust region's radius after `num_trials` told trials in `num_parameters` parameters (`trust_region.radius`
    with this config's trust_min_radius and trust_dimension_factor); >= 0.5 (off) when trust_region is False."""
    if not self.trust_region:
      return tr.OFF_RADIUS
    return tr.radius(num_trials, num_parameters, self.trust_min_radius, self.trust_dimension_factor)

  @classmethod
  def from_json(cls, d) -> "SearchConfig":
    """Inverse of `to_json`. Raises ValueError on unknown keys or bad values."""
    if not isinstance(d, dict):
      raise ValueError(f"A SearchConfig is an object of sizes, got {type(d).__name__} {d!r:.80}.")
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f"Unknown SearchConfig field(s) {unknown}; expected {[f.name for f in dataclasses.fields(cls)]}.")
    return cls(**d)


_NOT_SIZES = ("pool", "grad_radius", "grad_ordinal", "trust_region", "trust_min_radius", "trust_dimension_factor",
              "output_warping")


def _is_number(v) -> bool:
  return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


def configurations_of(space: ss.SearchSpace, u_NxD) -> np.ndarray:
  """float64 [N, D] unit-form configurations of points u of the unit cube [0, 1)^D: a categorical's u picks
  category floor(u * num_values), every other parameter snaps to its nearest valid value (`SearchSpace.snap`)."""
  nv = np.array([p.num_values for p in space])
  cat = np.array([p.kind == ss.KIND_CATEGORICAL for p in space], bool)
  u = np.array(u_NxD, np.float64).reshape(-1, len(space))
  u[:, cat] = np.minimum(np.floor(u[:, cat] * nv[cat]), nv[cat] - 1)
  return space.snap(u)


def uniform_points(space: ss.SearchSpace, rng: np.random.Generator, num: int, pool: str = "uniform") -> np.ndarray:
  """float64 [num, D] uniform configurations in unit form (category indices uniform over categories).

  pool="uniform" draws independent points; "sobol" the first `num` points of a scrambled Sobol sequence
  (Owen scrambling, seeded from `rng`; a batch of the next power of two >= num points per round), which
  cover the unit cube more evenly. Either is then mapped the same way: a categorical's unit value u picks
  category floor(u * num_values), integers and discrete values snap to a level.
  In a conditional space every parent is drawn uniformly and the slots of
  the parameters it leaves inactive hold `ss.INACTIVE_UNIT`; their active
  mask is `space.unit_active_mask(rows)`. Forbidden rows are redrawn (from
  the same Sobol sequence: its next points) (ValueError if 100 rounds in a
  row find none allowed).

  Raises:
    ValueError: an unknown pool, or every point of 100 rounds forbidden.
  """
  if pool not in POOLS:
    raise ValueError(f"pool must be one of {list(POOLS)}, got {pool!r}.")
  if pool == "sobol" and num:
    from scipy.stats import qmc

    sobol = qmc.Sobol(len(space), scramble=True, seed=np.random.default_rng(rng.integers(2**63)))
    draw = lambda: sobol.random(1 << (num - 1).bit_length())[:num]
  else:
    draw = lambda: rng.random((num, len(space)))
  kept, have = [], 0
  for _ in range(100):
    u = configurations_of(space, draw())
    if not space.forbidden:
      return u
    kept.append(u[~space.unit_forbidden(u)])
    have += len(kept[-1])
    if have >= num:
      return np.concatenate(kept)[:num]
  if num and not have:
    raise ValueError(f"{100 * num} uniform points were all forbidden by the clauses "
                     f"{[c.describe() for c in space.forbidden]}.")
  return np.concatenate(kept)


def local_moves(space: ss.SearchSpace, rng: np.random.Generator, starts_KxD, num: int) -> np.ndarray:
  """float64 [num, D] perturbations of K unit-form configurations (the local moves of GP-BO searches).

  From a start drawn uniformly among the K, each numeric parameter moves
  with probability max(1/D, 0.5) by N(0, s^2) in unit space (s drawn from
  LOCAL_SCALES per move, clipped to [0, 1]), each categorical parameter
  flips to a random category with probability 1/D, and at least one
  parameter that is active in the start moves. Rows are snapped to valid
  values. In a conditional space, a parameter that a move activates (its
  parent changed) is drawn uniformly, as are its own newly active children,
  and the ones it deactivates hold `ss.INACTIVE_UNIT`; the active mask of
  the rows is `space.unit_active_mask(rows)`. K = 0 gives none; forbidden
  moves are dropped, so fewer than `num` rows may come back.
  """
  starts = np.asarray(starts_KxD, np.float64).reshape(-1, len(space))
  d = len(space)
  if not len(starts) or not num:
    return np.zeros((0, d))
  cat = np.array([p.kind == ss.KIND_CATEGORICAL for p in space])
  nv = np.array([max(p.num_values, 1) for p in space])
  start = starts[rng.integers(len(starts), size=num)]
  scale = np.asarray(LOCAL_SCALES)[rng.integers(len(LOCAL_SCALES), size=(num, 1))]
  move = rng.random((num, d)) < np.where(cat, 1.0 / d, max(1.0 / d, 0.5))
  if space.is_conditional:  # The forced move: one parameter active in the start.
    was_active = space.unit_active_mask(start)
    move[np.arange(num), np.argmax(np.where(was_active, rng.random((num, d)), -1.0), axis=1)] = True
  else:
    move[np.arange(num), rng.integers(d, size=num)] = True
  out = np.where(move & ~cat, np.clip(start + scale * rng.normal(size=start.shape), 0.0, 1.0), start)
  out = np.where(move & cat, np.floor(rng.random((num, d)) * nv), out)
  out = space.snap(out)
  if space.is_conditional:  # Draw the newly active parameters, one tree level per pass.
    drawn = np.zeros_like(was_active)
    for _ in range(d):
      new = space.unit_active_mask(out) & ~was_active & ~drawn
      if not new.any():
        break
      out[new] = np.where(cat, np.floor(rng.random((num, d)) * nv), rng.random((num, d)))[new]
      drawn |= new
      out = space.snap(out)
  return out[~space.unit_forbidden(out)] if space.forbidden else out


def movable_mask(space: ss.SearchSpace, units_KxD, ordinal: bool = False) -> np.ndarray:
  """bool [K, D]: the coordinates of unit rows that gradient refinement may move: active floats (and, with
  `ordinal`, active Int and Discrete parameters), never categoricals, inactive parameters or the parents of
  conditions (moving one would switch its children on or off)."""
  u = np.asarray(units_KxD, np.float64).reshape(-1, len(space))
  kinds = np.array([p.kind for p in space])
  numeric = (kinds == ss.KIND_FLOAT) | ((kinds == ss.KIND_ORDINAL) if ordinal else False)
  parents = space.parent_indices()
  is_parent = np.isin(np.arange(len(space)), parents[parents >= 0])
  return space.unit_active_mask(u) & (numeric & ~is_parent)[None]


def gradient_moves(space: ss.SearchSpace, ascend: Callable, starts_KxD, config: SearchConfig) -> np.ndarray:
  """float64 [<= K, D]: the K starts after `config.grad_steps` steps of `ascend`, snapped to configurations;
  rows that snap back to their start, and forbidden rows, are dropped.

  ascend: (starts float [K, D], movable bool [K, D], steps int, radius float) -> float [K, D] rows, e.g.
  `Posterior.ascend_ei` (only the movable coordinates, `movable_mask`, may change, each by at most radius).
  """
  starts = np.asarray(starts_KxD, np.float64).reshape(-1, len(space))
  movable = movable_mask(space, starts, config.grad_ordinal)
  keep = movable.any(axis=1)
  if not keep.any() or not config.grad_steps:
    return np.zeros((0, len(space)))
  starts, movable = starts[keep], movable[keep]
  moved = np.asarray(ascend(starts, movable, config.grad_steps, config.grad_radius), np.float64).reshape(starts.shape)
  r = config.grad_radius
  moved = space.snap(np.where(movable, np.clip(moved, np.maximum(starts - r, 0.0), np.minimum(starts + r, 1.0)), starts))
  moved = moved[np.any(moved != starts, axis=1)]
  return moved[~space.unit_forbidden(moved)] if space.forbidden else moved


def search(
    space: ss.SearchSpace, rng: np.random.Generator, acquisition: Callable[[np.ndarray], np.ndarray],
    config: SearchConfig, best_trials_KxD, is_fresh: Callable[[np.ndarray], np.ndarray], extra_PxD=None,
    ascend: Callable | None = None, trusted_NxD=None,
) -> tuple[np.ndarray, float, int]:
  """The candidate with the largest acquisition among fresh ones.

  Args:
    space: the search space.
    rng: draws the pool and the moves.
    acquisition: unit rows float [M, D] -> float [M] scores (larger is better; -inf allowed).
    config: pool sizes (`SearchConfig`; its num_policy is the caller's business).
    best_trials_KxD: unit rows of the best trials, best first (local moves start here).
    is_fresh: unit rows [M, D] -> bool [M], False for configurations already told or pending.
    extra_PxD: further unit rows to score (policy or prior samples), snapped here; forbidden ones dropped.
    ascend: the acquisition's gradient ascent for `config.grad_top` (see `gradient_moves`); None: no gradient
      refinement. The ascended candidates join the pool and are scored by `acquisition`, so a refined point
      wins only where its acquisition is higher than every other candidate's.
    trusted_NxD: unit rows of the told trials, the centres of the trust region (`config.trust_region`; its radius
      counts these N rows). None or no rows: no trust region. With one, every candidate (uniform points, local
      moves, extra rows, refinements) is mapped into the region before it is scored (`trust_region.restrict`).

  Returns:
    (unit row float [D] of the winner, its score, number of candidates scored).
    When no candidate is fresh (a space smaller than the history) the best
    of all is returned.
  """
  d = len(space)
  top = np.asarray(best_trials_KxD, np.float64).reshape(-1, d)[: config.num_top_trials]
  trusted = np.zeros((0, d)) if trusted_NxD is None else np.asarray(trusted_NxD, np.float64).reshape(-1, d)
  r = config.trust_radius(len(trusted), d)
  within = lambda rows: tr.restrict(space, rows, trusted, r)  # Identity without a trust region.
  parts = [uniform_points(space, rng, config.num_random, config.pool), local_moves(space, rng, top, config.num_local)]
  if extra_PxD is not None and len(extra_PxD):
    extra = space.snap(extra_PxD)
    parts.append(extra[~space.unit_forbidden(extra)] if space.forbidden else extra)
  pool = within(np.concatenate(parts))
  if not len(pool):  # Every policy or local candidate was forbidden: uniform points instead.
    pool = within(uniform_points(space, rng, 64))
    pool = pool if len(pool) else uniform_points(space, rng, 64)
  score, fresh = np.asarray(acquisition(pool), np.float64), np.asarray(is_fresh(pool), bool)
  for _ in range(config.rounds if config.refine_moves and config.refine_top else 0):
    ranked = np.where(fresh, score, -np.inf)
    order = np.argsort(-ranked, kind="stable")[: config.refine_top]
    starts = pool[order[np.isfinite(ranked[order])]] if fresh.any() else pool[order]
    more = within(local_moves(space, rng, starts, config.refine_moves))
    pool = np.concatenate([pool, more])
    score = np.concatenate([score, np.asarray(acquisition(more), np.float64)])
    fresh = np.concatenate([fresh, np.asarray(is_fresh(more), bool)])
  if ascend is not None and config.grad_top and config.grad_steps:
    ranked = np.where(fresh, score, -np.inf)
    order = np.argsort(-ranked, kind="stable")[: config.grad_top]
    moved = within(gradient_moves(space, ascend, pool[order[np.isfinite(ranked[order])]], config))
    if len(moved):
      pool = np.concatenate([pool, moved])
      score = np.concatenate([score, np.asarray(acquisition(moved), np.float64)])
      fresh = np.concatenate([fresh, np.asarray(is_fresh(moved), bool)])
  ranked = np.where(fresh, score, -np.inf) if fresh.any() else score
  i = int(np.argmax(ranked))
  return pool[i], float(score[i]), len(pool)
