"""The surrogate: a context and queries in, predictive distributions in objective units out.

`ModelSurrogate` wraps the loaded model (`pfn_inference.PFNEngine`) for one
search space's parameter kinds; `condition(context)` encodes a
`context.Context` once and returns a `Posterior`, which scores any number
of query sets against it:

  * `predict(units, goal)`: the predictive distribution in objective units
    (`pfn_inference.PFNPredictive`);
  * `acquisition(units, best, kind)`: what the acquisition search ranks by
    (log EI or log PI in the model's z units times p(feasible | x), or UCB);
  * `mean(units)`: the predicted mean in the model's direction (the kriging
    believer's fantasies of pending trials).

`Optimizer`, `Surrogate` and `eval.surrogate_eval` all predict through here.
Infeasible rows enter the model as such; it fits its own y map (`optformer.ynorm`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from optformer import search_space as ss
from optformer.context import Context
from optformer.pfn_config import PFNConfig

if TYPE_CHECKING:  # JAX-based; an engine exists only once a model is loaded (optimizer.load_engine).
  from optformer.pfn_inference import PFNEngine, PFNPredictive


ACQUISITIONS = ("ei", "pi", "ucb")


def _check_space(config: PFNConfig, space: ss.SearchSpace) -> None:
  """ValueError unless a model of `config` takes `space` (parameters, categories)."""
  if len(space) > config.num_slot_ids:
    raise ValueError(f"The search space has {len(space)} parameters; this model supports at most "
                     f"{config.num_slot_ids}.")
  for p in space:
    check_categories(p, config.max_categories)


def check_categories(p: ss.Parameter, limit: int) -> None:
  """ValueError when `p` is a categorical with more than `limit` choices (a model's `max_categories`): larger
  category indices would share the model's last category embedding."""
  if p.kind == ss.KIND_CATEGORICAL and p.num_values > limit:
    raise ValueError(f"Parameter {p.name!r} has {p.num_values} choices; this model supports at most {limit} "
                     "per categorical parameter.")


class ModelSurrogate:
  """The model on one search space's parameter kinds.

  Args:
    engine: a `pfn_inference.PFNEngine`; None for a model loaded on first use (`deferred`).
    kinds: int [D] search_space.KIND_* per parameter.
    num_values: int [D] levels / categories per parameter (0 for floats).
    load: with engine=None, the zero-argument function that returns the engine (called once, on first use).
    config: with engine=None, the model's `pfn_config.PFNConfig` (the limits come from it).
  """

  def __init__(self, engine: PFNEngine | None, kinds, num_values, *, load: Callable[[], PFNEngine] | None = None,
               config: PFNConfig | None = None):
    if engine is None and (load is None or not isinstance(config, PFNConfig)):
      raise ValueError("A ModelSurrogate without an engine needs load= (returning the engine) and config= (its PFNConfig).")
    self._engine, self._load = engine, load
    self.config = engine.config if engine is not None else config
    self.kinds = np.asarray(kinds, np.int32)
    self.num_values = np.minimum(np.asarray(num_values, np.int64), 2**31 - 1).astype(np.int32)

  @property
  def engine(self) -> PFNEngine:
    """The model's engine; a deferred surrogate builds it here on first use (`load()`: imports JAX, reads the model)."""
    if self._engine is None:
      self._engine = self._load()
    return self._engine

  @property
  def loaded(self) -> bool:
    return self._engine is not None

  @classmethod
  def for_space(cls, engine: PFNEngine, space: ss.SearchSpace) -> "ModelSurrogate":
    """The surrogate of `space`. ValueError: more parameters or categories than the model takes."""
    _check_space(engine.config, space)
    return cls(engine, [p.kind for p in space], [p.num_values for p in space])

  @classmethod
  def deferred(cls, load: Callable[[], PFNEngine], config: PFNConfig, space: ss.SearchSpace) -> "ModelSurrogate":
    """The surrogate of `space` for a model known by its config; `load()` builds its engine on first use."""
    _check_space(config, space)
    return cls(None, [p.kind for p in space], [p.num_values for p in space], load=load, config=config)

  @property
  def max_params(self) -> int:
    return self.config.num_slot_ids

  @property
  def max_categories(self) -> int:
    return self.config.max_categories

  @property
  def max_context(self) -> int:
    return self.config.max_context

  def fresh_keys(self, units) -> list[bytes]:
    """One key per unit row."""
    return [row.tobytes() for row in np.asarray(units, np.float64).reshape(-1, len(self.kinds))]

  def condition(self, context: Context) -> "Posterior":
    """The model conditioned on `context` (encoded once)."""
    return Posterior(self, context)


class Posterior:
  """A ModelSurrogate conditioned on a context (see the module docstring for the methods)."""

  def __init__(self, surrogate: ModelSurrogate, context: Context):
    self.surrogate, self.context = surrogate, context
    self.best = context.best  # Largest feasible y of the context (None: none, so no scale yet).
    self.encoded = None
    if self.best is not None:
      self.encoded = surrogate.engine.context(context.units, context.y, surrogate.kinds, surrogate.num_values)

  def predict(self, units, goal: str = "maximize") -> PFNPredictive:
    if self.best is None:
      raise ValueError("predict needs at least one feasible trial to set the objective's scale.")
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
