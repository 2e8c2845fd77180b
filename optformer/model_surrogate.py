"""The surrogate: a context and queries in, predictive distributions in objective units out.

`ModelSurrogate` wraps a loaded model (v1 `inference.Engine`, v2
`pfn_inference.PFNEngine`) for one search space's parameter kinds;
`condition(context)` encodes a `context.Context` once and returns a
`Posterior`, which scores any number of query sets against it:

  * `predict(units, goal)`: the predictive distribution in objective units
    (v1: `RiemannDistribution` on the context's bins mapped back through its
    `tokenizer.YNormalizer`; v2: `pfn_inference.PFNPredictive`);
  * `acquisition(units, best, kind)`: what the acquisition search ranks by
    (log EI, log PI or UCB; for v2 EI and PI times p(feasible | x));
  * `mean(units)`: the predicted mean in the model's direction (the kriging
    believer's fantasies of pending trials);
  * `propose(rng, num)`: policy samples (model v1 only).

`Optimizer`, `Surrogate` and `eval.surrogate_eval` all predict through here.
How each model reads the context: v1 imputes infeasible rows with the worst
feasible objective and normalizes y to [y_low, y_high] of its tokenizer;
v2 marks them infeasible and fits its own y map (`optformer.ynorm`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from optformer import search_space as ss
from optformer import tokenizer as tk
from optformer.context import Context
from optformer.distribution import RiemannDistribution
from optformer.pfn_config import PFNConfig

if TYPE_CHECKING:  # JAX-based; an engine exists only once a model is loaded (optimizer.load_engine).
  from optformer.inference import Engine
  from optformer.pfn_inference import PFNEngine, PFNPredictive


def _is_v2(engine) -> bool:
  """Whether `engine` is a model v2 engine (pfn_inference.PFNEngine), imported here: JAX is loaded with the engine."""
  from optformer.pfn_inference import PFNEngine

  return isinstance(engine, PFNEngine)

# Model v1's behaviour prompts (model.ModelConfig.algorithms); a model v2 reads none, so it accepts these names
# (a study file stores one) and refuses any other.
V1_PROMPTS = ("random", "sobol", "gp_ucb")
ACQUISITIONS = ("ei", "pi", "ucb")


def _check_v2_space(config: PFNConfig, space: ss.SearchSpace, algorithm: str | None) -> None:
  """ValueError unless a model v2 of `config` takes `space` (parameters, categories) and `algorithm` (a v1 prompt)."""
  if len(space) > config.num_slot_ids:
    raise ValueError(f"The search space has {len(space)} parameters; this model supports at most "
                     f"{config.num_slot_ids}.")
  if algorithm is not None and algorithm not in V1_PROMPTS:
    raise ValueError(f"algorithm must be one of {list(V1_PROMPTS)} (model v1's behaviour prompts; this model "
                     f"reads no prompt), got {algorithm!r}.")
  for p in space:
    check_categories(p, config.max_categories)


def check_categories(p: ss.Parameter, limit: int) -> None:
  """ValueError when `p` is a categorical with more than `limit` choices (a model's `max_categories`): larger
  category indices would share the model's last category embedding."""
  if p.kind == ss.KIND_CATEGORICAL and p.num_values > limit:
    raise ValueError(f"Parameter {p.name!r} has {p.num_values} choices; this model supports at most {limit} "
                     "per categorical parameter.")


class ModelSurrogate:
  """A model on one search space's parameter kinds.

  Args:
    engine: an `inference.Engine` (v1) or `pfn_inference.PFNEngine` (v2);
      None for a model v2 loaded on first use (`deferred`).
    kinds: int [D] search_space.KIND_* per parameter.
    num_values: int [D] levels / categories per parameter (0 for floats).
    encoding: the v1 SpaceEncoding (tokenizer.encode_space); ignored by v2.
    algorithm: the v1 behaviour-algorithm prompt id; ignored by v2.
    load: with engine=None, the zero-argument function that returns the
      v2 engine (`engine` calls it once, on first use).
    config: with engine=None, the model v2's `pfn_config.PFNConfig` (the
      limits `max_params`, `max_categories`, `max_context` come from it).
  """

  def __init__(self, engine: Engine | PFNEngine | None, kinds, num_values, encoding: tk.SpaceEncoding | None = None,
               algorithm: int = 0, *, load: Callable[[], PFNEngine] | None = None, config: PFNConfig | None = None):
    if engine is None and (load is None or not isinstance(config, PFNConfig)):
      raise ValueError("A ModelSurrogate without an engine needs load= (returning a model v2 engine) and config= "
                       "(its PFNConfig).")
    self._engine, self._load = engine, load
    self.v2 = engine is None or _is_v2(engine)
    self.config = engine.config if engine is not None else config  # PFNConfig (v2) or ModelConfig (v1).
    self.kinds = np.asarray(kinds, np.int32)
    self.num_values = np.minimum(np.asarray(num_values, np.int64), 2**31 - 1).astype(np.int32)
    if not self.v2 and encoding is None:
      raise ValueError("A model v1 surrogate needs the search space's encoding (tokenizer.encode_space).")
    self.encoding, self.algorithm = encoding, int(algorithm)

  @property
  def engine(self) -> Engine | PFNEngine:
    """The model's engine; a deferred surrogate builds it here on first use (`load()`: imports JAX, reads the model)."""
    if self._engine is None:
      self._engine = self._load()
    return self._engine

  @property
  def loaded(self) -> bool:
    """Whether the engine exists (always for an engine given at construction; a deferred one after first use)."""
    return self._engine is not None

  @classmethod
  def for_space(cls, engine: Engine | PFNEngine, space: ss.SearchSpace, algorithm: str | None = None) -> "ModelSurrogate":
    """The surrogate of `space`; `algorithm` names a v1 prompt (None: its last, "gp_ucb" for the shipped model).

    Raises:
      ValueError: more parameters than the model supports, a categorical with more choices than the model's
        categories (v2: `max_categories`, 64 for the shipped model), or an unknown algorithm.
    """
    kinds = [p.kind for p in space]
    num_values = [p.num_values for p in space]
    if _is_v2(engine):
      _check_v2_space(engine.config, space, algorithm)
      return cls(engine, kinds, num_values)
    algorithms = engine.config.algorithms
    algorithm = algorithms[-1] if algorithm is None else algorithm
    if algorithm not in algorithms:
      raise ValueError(f"algorithm must be one of {list(algorithms)}, got {algorithm!r}.")
    return cls(engine, kinds, num_values, tk.encode_space(space, engine.tok), algorithms.index(algorithm))

  @classmethod
  def deferred(cls, load: Callable[[], PFNEngine], config: PFNConfig, space: ss.SearchSpace,
               algorithm: str | None = None) -> "ModelSurrogate":
    """The surrogate of `space` for a model v2 known by its config; `load()` builds its engine on first use.

    Checks `space` and `algorithm` as `for_space` does, from the config alone (no JAX), so a space the model
    cannot take fails here; the model is loaded by the first `condition` with a feasible row (or `engine`).

    Raises:
      ValueError: as `for_space` for a v2 model.
    """
    _check_v2_space(config, space, algorithm)
    return cls(None, [p.kind for p in space], [p.num_values for p in space], load=load, config=config)

  @property
  def max_params(self) -> int:
    """The most parameters a search space may have for this model."""
    return self.config.num_slot_ids if self.v2 else self.engine.tok.max_params

  @property
  def max_categories(self) -> int:
    """The most choices a categorical parameter may have for this model."""
    return self.config.max_categories if self.v2 else self.engine.tok.num_x_bins

  @property
  def max_context(self) -> int:
    """The most context rows the model reads."""
    return self.config.max_context if self.v2 else self.config.max_trials

  def _tokens(self, units) -> np.ndarray:
    units = np.asarray(units, np.float64).reshape(-1, len(self.kinds))
    return tk.encode_units(units, self.encoding, self.engine.tok.num_x_bins)

  def fresh_keys(self, units) -> list[bytes]:
    """One key per unit row; rows the model cannot tell apart share a key (v1: the same value tokens)."""
    if self.v2:
      return [row.tobytes() for row in np.asarray(units, np.float64).reshape(-1, len(self.kinds))]
    return [row[: len(self.kinds)].tobytes() for row in self._tokens(units)]

  def condition(self, context: Context) -> "Posterior":
    """The model conditioned on `context` (encoded once). A context without feasible rows only proposes (v1)."""
    return _PFNPosterior(self, context) if self.v2 else _TokenPosterior(self, context)


class Posterior:
  """A ModelSurrogate conditioned on a context (see the module docstring for the methods)."""

  def __init__(self, surrogate: ModelSurrogate, context: Context):
    self.surrogate, self.context = surrogate, context
    self.best = context.best  # Largest feasible y of the context (None: none, so no scale yet).

  def _check_scale(self):
    if self.best is None:
      raise ValueError("predict needs at least one feasible trial to set the objective's scale.")

  def predict(self, units, goal: str = "maximize") -> PFNPredictive | RiemannDistribution:
    """Predictive distributions at float [M, D] unit rows in objective units, in the goal's direction:
    v2 a `pfn_inference.PFNPredictive`, v1 a RiemannDistribution. ValueError without a feasible row."""
    raise NotImplementedError

  def mean(self, units) -> np.ndarray:
    raise NotImplementedError

  def acquisition(self, units, best: float, kind: str = "ei", ucb_beta: float = 4.0) -> np.ndarray:
    raise NotImplementedError

  def propose(self, rng: np.random.Generator, num: int, temperature: float = 1.0) -> np.ndarray:
    raise ValueError("This model has no policy (model v2); candidates come from the acquisition search.")


class _TokenPosterior(Posterior):
  """Model v1: value and objective tokens, the context's YNormalizer, an encoded history."""

  def __init__(self, surrogate: ModelSurrogate, context: Context):
    super().__init__(surrogate, context)
    tok = surrogate.engine.tok
    y = context.y
    feasible = ~np.isnan(y)
    units = context.units
    if not feasible.any():  # No scale: an empty history (the policy's first proposals).
      units, y = units[:0], y[:0]
    else:
      y = np.where(feasible, y, y[feasible].min())  # Infeasible rows: the worst feasible objective.
    self.y = y  # float64 [n]: the objectives the model reads (infeasible rows imputed).
    self.norm = tk.YNormalizer.fit(y, tok.y_low, tok.y_high)
    self.history = surrogate.engine.context(surrogate._tokens(units), tk.encode_y(self.norm.apply(y), tok.num_y_bins),
                                            surrogate.encoding, surrogate.algorithm)

  def _normalized(self, units) -> RiemannDistribution:
    self._check_scale()
    tok = self.surrogate.engine.tok
    return RiemannDistribution(self.history.score(self.surrogate._tokens(units)), tok.y_edges(), "maximize")

  def predict(self, units, goal: str = "maximize") -> RiemannDistribution:
    dist = self._normalized(units)
    edges, probs = self.norm.invert(dist.edges), dist.probs  # Increasing: larger is better.
    if goal == "minimize":
      edges, probs = -edges[::-1], probs[:, ::-1]
    return RiemannDistribution(probs, edges, goal)

  def mean(self, units) -> np.ndarray:
    return self.norm.invert(self._normalized(units).mean)

  def acquisition(self, units, best: float, kind: str = "ei", ucb_beta: float = 4.0) -> np.ndarray:
    dist = self._normalized(units)
    if kind == "ucb":
      return dist.upper_confidence_bound(ucb_beta)
    acq = dist.expected_improvement if kind == "ei" else dist.probability_of_improvement
    return np.log(np.maximum(acq(self.norm.apply(best)), 1e-300))

  def propose(self, rng: np.random.Generator, num: int, temperature: float = 1.0) -> np.ndarray:
    """float64 [num, D] policy samples in unit form (a uniform point inside each value token's bin)."""
    tokens, _ = self.history.propose(int(rng.integers(2**31)), num, temperature)
    s = self.surrogate
    return tk.decode_units(tokens, s.encoding, s.engine.tok.num_x_bins, rng)


class _PFNPosterior(Posterior):
  """Model v2: an encoded context (pfn_inference.PFNContext)."""

  def __init__(self, surrogate: ModelSurrogate, context: Context):
    super().__init__(surrogate, context)
    self.encoded = None
    if self.best is not None:
      self.encoded = surrogate.engine.context(context.units, context.y, surrogate.kinds, surrogate.num_values)

  def predict(self, units, goal: str = "maximize") -> PFNPredictive:
    self._check_scale()
    return self.encoded.score(np.asarray(units, np.float64).reshape(-1, len(self.surrogate.kinds)), goal=goal)

  def mean(self, units) -> np.ndarray:
    return self.predict(units).mean

  def acquisition(self, units, best: float, kind: str = "ei", ucb_beta: float = 4.0) -> np.ndarray:
    pred = self.predict(units)
    if kind == "ucb":
      return pred.upper_confidence_bound_z(ucb_beta)
    log_feasible = np.log(np.maximum(pred.p_feasible, 1e-300))
    if kind == "pi":
      return np.log(np.maximum(pred.probability_of_improvement(best), 1e-300)) + log_feasible
    # Constrained EI (Gardner et al., ICML 2014): EI in the model's z units times p(feasible).
    return pred.log_expected_improvement_z(best) + log_feasible
