"""The ask/tell optimizer: zero-shot suggestions and predictions from a study's history.

Suggesting (OptFormer, Chen et al. 2022, Sec. 5 "OptFormer (EI)"):
  1. sample `num_candidates` configurations from the policy, prompted with
     the strongest behaviour algorithm (default "gp_ucb");
  2. score each with the surrogate's expected improvement over the best
     objective seen (distribution.RiemannDistribution.expected_improvement);
  3. return the best candidate not already evaluated.
With an empty history the first policy sample is returned.

History handling (documented behaviour for bad or long input):
  * NaN, +-inf or None objectives are recorded as *infeasible* trials
    (`Trial.infeasible`); they stay in `trials` and enter the model's context
    with the worst feasible objective seen, so the optimizer steers away.
  * A history longer than the model's context (`max_trials`, 64 for the
    shipped model) is *truncated for the model only*: the context holds the
    best half and the most recent trials, in their original order; all
    trials stay in `trials` and count for `best`. A warning says so once.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from optformer import checkpoint
from optformer import search_space as ss
from optformer import tokenizer as tk
from optformer.distribution import RiemannDistribution
from optformer.inference import Engine
from optformer.model import OptFormer

_ENGINES: dict[str, Engine] = {}


def load_engine(model: OptFormer | str | pathlib.Path | None = None) -> Engine:
  """An Engine for a model, a checkpoint directory, or (None) the shipped checkpoint; cached by path."""
  if isinstance(model, OptFormer):
    return Engine(model)
  key = str(pathlib.Path(model or checkpoint.DEFAULT_CHECKPOINT).absolute())
  if key not in _ENGINES:
    _ENGINES[key] = Engine(checkpoint.load(key))
  return _ENGINES[key]


@dataclasses.dataclass(frozen=True)
class Trial:
  """A completed evaluation. `value` is NaN when `infeasible`."""

  params: dict
  value: float
  infeasible: bool = False


def _as_objective(value: Any) -> tuple[float, bool]:
  if value is None:
    return math.nan, True
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"The objective must be a real number (or None/NaN for infeasible), got {value!r}.")
  v = float(value)
  return v, not math.isfinite(v)


class Optimizer:
  """Zero-shot black-box optimizer over a search space.

  Args:
    space: the SearchSpace to optimize over.
    goal: "minimize" or "maximize" the objective.
    model: an OptFormer, a checkpoint directory, or None for the shipped one.
    num_candidates: M policy samples ranked per suggestion (> 0).
    temperature: policy sampling temperature (> 0).
    algorithm: behaviour-algorithm prompt, one of the model's algorithms.
    candidates: where the M candidates ranked by expected improvement come
      from: "policy" (samples from the model's policy head, the default) or
      "random" (uniform in the search space; the surrogate alone, as in
      PFNs4BO's random-candidate ablation). With num_candidates=1 and
      "policy" the suggestion is the policy sample alone.
    seed: seeds the suggestions (same seed and history -> same suggestion).

  Raises:
    ValueError: bad goal, unknown algorithm or candidate source, non-positive num_candidates or
      temperature, or a space with more parameters than the model supports.
    checkpoint.CheckpointError: a missing, corrupt or mismatched checkpoint.
  """

  def __init__(
      self, space: ss.SearchSpace, goal: str = "minimize", *, model=None, num_candidates: int = 128,
      temperature: float = 1.0, algorithm: str = "gp_ucb", candidates: str = "policy", seed: int | None = None,
  ):
    if not isinstance(space, ss.SearchSpace):
      raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    if num_candidates < 1:
      raise ValueError(f"num_candidates must be >= 1, got {num_candidates}.")
    if candidates not in ("policy", "random"):
      raise ValueError(f"candidates must be 'policy' or 'random', got {candidates!r}.")
    if not temperature > 0:
      raise ValueError(f"temperature must be > 0, got {temperature}.")
    self.space, self.goal = space, goal
    self.engine = load_engine(model)
    self.tok = self.engine.tok
    algorithms = self.engine.config.algorithms
    if algorithm not in algorithms:
      raise ValueError(f"algorithm must be one of {list(algorithms)}, got {algorithm!r}.")
    self.algorithm = algorithms.index(algorithm)
    self.encoding = tk.encode_space(space, self.tok)
    self.num_candidates, self.temperature, self.candidates = num_candidates, temperature, candidates
    self._rng = np.random.default_rng(seed)
    self.trials: list[Trial] = []
    self._warned_truncation = False

  # -- History ---------------------------------------------------------------

  def tell(self, params: Mapping[str, Any], value: Any) -> Trial:
    """Records a completed trial and returns it.

    Raises:
      ValueError / TypeError: params not in the search space (unknown,
        missing or out-of-range parameter), or a non-numeric objective.
        Nothing is recorded then.
    """
    params = self.space.validate(params)
    v, infeasible = _as_objective(value)
    trial = Trial(params=params, value=math.nan if infeasible else v, infeasible=infeasible)
    self.trials.append(trial)
    return trial

  @property
  def best(self) -> tuple[dict, float]:
    """(params, value) of the best feasible trial. Raises ValueError if none."""
    feasible = [t for t in self.trials if not t.infeasible]
    if not feasible:
      raise ValueError("No feasible trial has been told yet.")
    pick = max if self.goal == "maximize" else min
    t = pick(feasible, key=lambda t: t.value)
    return dict(t.params), t.value

  def _internal(self, value: float) -> float:
    return value if self.goal == "maximize" else -value

  def _context(self) -> tuple[np.ndarray, np.ndarray]:
    """Model context: unit-space tokens int [n, D] and objectives float [n] (larger is better)."""
    feasible = [self._internal(t.value) for t in self.trials if not t.infeasible]
    if not feasible:
      return np.zeros((0, self.tok.max_params), np.int32), np.zeros(0)
    worst = min(feasible)
    rows = [(t, worst if t.infeasible else self._internal(t.value)) for t in self.trials]
    limit = self.engine.config.max_trials
    if len(rows) > limit:
      if not self._warned_truncation:
        warnings.warn(
            f"The study has {len(rows)} trials; the model's context holds {limit}. It sees the best "
            f"{limit // 2} and the most recent trials (all trials are kept in `trials`).", stacklevel=3,
        )
        self._warned_truncation = True
      order = np.argsort([-y for _, y in rows], kind="stable")
      keep = set(order[: limit // 2].tolist())
      for i in range(len(rows) - 1, -1, -1):
        if len(keep) >= limit:
          break
        keep.add(i)
      rows = [rows[i] for i in sorted(keep)]
    return self._tokens([t.params for t, _ in rows]), np.array([y for _, y in rows])

  def _tokens(self, configs) -> np.ndarray:
    """int32 [N, D_max] value tokens of configurations."""
    return tk.encode_configs(configs, self.space, self.tok, self.encoding)

  def _encoded_context(self):
    """(x int [n, D_max], y float [n] larger-is-better, its YNormalizer, y tokens int [n])."""
    x, y = self._context()
    norm = tk.YNormalizer.fit(y, self.tok.y_low, self.tok.y_high)
    return x, y, norm, tk.encode_y(norm.apply(y), self.tok.num_y_bins)

  # -- Suggest and predict ---------------------------------------------------

  def ask(self) -> dict[str, Any]:
    """The next configuration to evaluate: dict name -> value of the parameter's type."""
    x, y, norm, y_tok = self._encoded_context()
    if self.candidates == "random":
      cand = self._tokens([self.space.sample(self._rng) for _ in range(self.num_candidates)])
    else:
      seed = int(self._rng.integers(2**31))
      cand, _ = self.engine.propose(x, y_tok, self.encoding, self.algorithm, seed, self.num_candidates, self.temperature)
    if len(y) == 0:
      return self._decode(cand[0])
    probs = self.engine.score(x, y_tok, self.encoding, self.algorithm, cand)
    ei = RiemannDistribution(probs, self.tok.y_edges(), "maximize").expected_improvement(norm.apply(y.max()))
    d = len(self.space)
    seen = {row.tobytes() for row in self._tokens([t.params for t in self.trials])[:, :d]}
    fresh = np.array([row[:d].tobytes() not in seen for row in cand])
    ei = np.where(fresh, ei, -np.inf) if fresh.any() else ei
    return self._decode(cand[int(np.argmax(ei))])

  def _decode(self, tokens_D) -> dict[str, Any]:
    return tk.decode_x(tokens_D, self.space, self.encoding, self.tok.num_x_bins)

  def predict(self, configs: Sequence[Mapping[str, Any]]) -> RiemannDistribution:
    """Predictive distributions of the objective at `configs`, in objective units.

    Returns:
      RiemannDistribution over N = len(configs) rows with `goal` set, so its
      expected_improvement() and probability_of_improvement() default to
      the best value seen.

    Raises:
      ValueError: no feasible trial yet (the objective's scale is unknown),
        or a config not in the search space.
    """
    x, y, norm, y_tok = self._encoded_context()
    if len(y) == 0:
      raise ValueError("predict needs at least one feasible trial to set the objective's scale.")
    query = self._tokens(list(configs))
    probs = self.engine.score(x, y_tok, self.encoding, self.algorithm, query)
    edges = norm.invert(self.tok.y_edges())  # increasing, larger is better
    if self.goal == "minimize":
      edges, probs = -edges[::-1], probs[:, ::-1]
    return StudyDistribution(probs, edges, self.goal, best=self.best[1])


class StudyDistribution(RiemannDistribution):
  """A RiemannDistribution whose improvement defaults to the study's best value."""

  def __init__(self, probs, edges, goal: str, best: float):
    super().__init__(probs, edges, goal)
    self.best = best

  def expected_improvement(self, best: float | None = None) -> np.ndarray:
    return super().expected_improvement(self.best if best is None else best)

  def probability_of_improvement(self, best: float | None = None) -> np.ndarray:
    return super().probability_of_improvement(self.best if best is None else best)
