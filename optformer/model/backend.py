"""Backend: a model (checkpoint or in-memory network) on one search space's parameter kinds.

A Backend is what the layers above the model hold (vizier draws the same line: its `Designer` turns trials into
suggestions and its `Predictor` answers `predict(trials)`; neither knows the model's internals). It

  * resolves the model: a checkpoint directory (its config is read and checked now, without JAX; the network is
    loaded by the first call that needs it), an in-memory `network.PFNSurrogate`, or None for the shipped checkpoint;
  * caches the jitted engine per checkpoint path (one compilation per process and context bucket);
  * declares what the model can do (`Capabilities`), so callers branch on a capability, never on a model type;
  * `condition(context)` encodes a study's context once and returns a `Posterior` (optformer/model/posterior.py).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from optformer import search_space as ss
from optformer.context import Context
from optformer.model.config import PFNConfig

if TYPE_CHECKING:  # JAX-based: imported when a model is loaded.
  from optformer.model.posterior import Posterior
  from optformer.model.network import PFNSurrogate
  from optformer.model.inference import PFNEngine

_ENGINES: dict[str, PFNEngine] = {}  # Absolute checkpoint path -> its engine (`load_engine`).
_CONFIGS: dict[str, PFNConfig] = {}  # Absolute checkpoint path -> its checked config (`read_config`).


@dataclasses.dataclass(frozen=True)
class Capabilities:
  """What a model can do; the layers above the model ask these, never which network it is.

  Attributes:
    max_params: the most parameters a search space may have (the network's parameter slots).
    max_context: the most trials the model conditions on (longer histories are truncated by `context.truncate`).
    max_categories: the most choices a categorical parameter may have.
    policy: whether `Posterior.sample_policy` proposes configurations (a policy head).
    conditionals: whether the model reads inactive (conditional) parameters (`Posterior.predict(active=...)`).
  """

  max_params: int
  max_context: int
  max_categories: int
  policy: bool
  conditionals: bool

  @classmethod
  def of(cls, config: PFNConfig) -> "Capabilities":
    return cls(max_params=config.num_slot_ids, max_context=config.max_context,
               max_categories=config.max_categories, policy=config.policy_tokens > 0, conditionals=True)


def read_config(path: str | os.PathLike) -> PFNConfig:
  """The checked config of a checkpoint directory (`checkpoint.read_config`: manifest and config, no JAX); cached by
  path, like `load_engine`'s engines.

  Raises:
    checkpoint.CheckpointError: a missing, corrupt or retired (model v1) checkpoint, or an invalid config.
  """
  from optformer import checkpoint

  key = str(pathlib.Path(path).absolute())
  if key in _ENGINES:
    return _ENGINES[key].config
  if key not in _CONFIGS:
    _CONFIGS[key] = checkpoint.read_config(key)
  return _CONFIGS[key]


def check_not_empty(model) -> None:
  """ValueError for model="" (a path that names no checkpoint; None is the shipped model)."""
  if isinstance(model, (str, os.PathLike)) and os.fspath(model) == "":
    raise ValueError("model='' names no checkpoint; pass None for the shipped model or a checkpoint directory.")


def load_engine(model: PFNSurrogate | str | os.PathLike | None = None) -> PFNEngine:
  """The jitted engine (`inference.PFNEngine`) of a model, a checkpoint directory, or (None) the shipped
  checkpoint; cached by path. Imports JAX and flax (and orbax, to read a checkpoint).

  Raises:
    ValueError: model is "" (it names no checkpoint; None is the shipped one).
    TypeError: model is neither a model, a path nor None.
    checkpoint.CheckpointError: a missing, corrupt, mismatched or retired (model v1) checkpoint.
  """
  from optformer.model.network import PFNSurrogate
  from optformer.model.inference import PFNEngine

  if isinstance(model, PFNSurrogate):
    return PFNEngine(model)
  from optformer import checkpoint

  if model is not None and not isinstance(model, (str, os.PathLike)):
    raise TypeError(f"model must be a PFNSurrogate, a checkpoint directory or None, got {type(model).__name__}.")
  check_not_empty(model)
  key = str(pathlib.Path(checkpoint.DEFAULT_CHECKPOINT if model is None else model).absolute())
  if key not in _ENGINES:
    _ENGINES[key] = PFNEngine(checkpoint.load(key))
  return _ENGINES[key]


def check_categories(p: ss.Parameter, limit: int) -> None:
  """ValueError when `p` is a categorical with more than `limit` choices (a model's `max_categories`): larger
  category indices would share the model's last category embedding."""
  if p.kind == ss.KIND_CATEGORICAL and p.num_values > limit:
    raise ValueError(f"Parameter {p.name!r} has {p.num_values} choices; this model supports at most {limit} "
                     "per categorical parameter.")


def _enable_cache(setting: bool | str | os.PathLike) -> None:
  """Applies a compilation_cache argument (`compilation_cache.enable`; imports JAX) before a model loads."""
  if setting is not False:
    from optformer import compilation_cache as compilation_cache_lib

    compilation_cache_lib.enable(None if setting is True else setting)


class Backend:
  """The model on one search space's parameter kinds (build with `for_space` or `for_kinds`).

  Args:
    config: the model's PFNConfig (its limits are `capabilities`).
    kinds: int [D] search_space.KIND_* per parameter (0: an unused slot).
    num_values: int [D] levels / categories per parameter (0 for floats).
    engine: the loaded engine, or None to call `load()` on first use.
    load: with engine=None, the zero-argument function that returns the engine.
    path: the checkpoint directory, or None for an in-memory model.
  """

  def __init__(self, config: PFNConfig, kinds, num_values, *, engine: PFNEngine | None = None,
               load: Callable[[], PFNEngine] | None = None, path: str | None = None):
    if engine is None and load is None:
      raise ValueError("A Backend needs an engine or load= (a function returning one).")
    self.config, self.path = config, path
    self.capabilities = Capabilities.of(config)
    self._engine, self._load = engine, load
    self.kinds = np.asarray(kinds, np.int32)
    self.space: ss.SearchSpace | None = None  # Set by `for_space`: the policy's conditions and snapping read it.
    self.num_values = np.minimum(np.asarray(num_values, np.int64), 2**31 - 1).astype(np.int32)

  @classmethod
  def for_space(cls, model, space: ss.SearchSpace, *, compilation_cache: bool | str | os.PathLike = False) -> "Backend":
    """The backend of `space` on `model`: a `network.PFNSurrogate`, a checkpoint directory, or None for the shipped one.

    A checkpoint's config is read and `space` checked against it now, without JAX; its network is loaded (with
    the compilation cache set as `compilation_cache` says: True, a directory, or False to leave JAX alone) by
    the first call that needs it. An in-memory model is wrapped now.

    Raises:
      ValueError: model="", or `space` has more parameters or categories than the model takes.
      TypeError: model is neither a model, a path nor None.
      checkpoint.CheckpointError: a missing, corrupt or retired (model v1) checkpoint, or an invalid config.
    """
    check_not_empty(model)
    kinds, num_values = [p.kind for p in space], [p.num_values for p in space]
    if model is None or isinstance(model, (str, os.PathLike)):
      from optformer import checkpoint  # No JAX.

      path = os.fspath(checkpoint.DEFAULT_CHECKPOINT if model is None else model)
      config = read_config(path)
      _check_space(Capabilities.of(config), space)

      def load() -> PFNEngine:
        _enable_cache(compilation_cache)
        return load_engine(path)

      backend = cls(config, kinds, num_values, load=load, path=path)
    else:
      _enable_cache(compilation_cache)
      engine = load_engine(model)
      _check_space(Capabilities.of(engine.config), space)
      backend = cls(engine.config, kinds, num_values, engine=engine)
    backend.space = space
    return backend

  @classmethod
  def for_kinds(cls, model, kinds: Sequence[int], num_values: Sequence[int]) -> "Backend":
    """The backend of raw parameter kinds and sizes (int [D] each; kind 0 an unused slot), model loaded now.
    For callers without a SearchSpace (eval/surrogate_eval.py reads prior tasks). Raises as `load_engine`."""
    engine = load_engine(model)
    return cls(engine.config, kinds, num_values, engine=engine)

  @property
  def engine(self) -> PFNEngine:
    """The jitted engine; a checkpoint's is loaded here on first use (imports JAX, reads the parameters)."""
    if self._engine is None:
      self._engine = self._load()
    return self._engine

  @property
  def loaded(self) -> bool:
    """Whether the network is loaded (always for an in-memory model; a checkpoint's after first use)."""
    return self._engine is not None

  def policy_conditions(self) -> tuple:
    """(parent int32 [D], allowed bool [D, V], order int32 [D]) of the space's conditions for the policy's decoder
    (`SearchSpace.condition_arrays`, `topological_order`); (None, None, None) without conditions."""
    if self.space is None or not self.space.is_conditional:
      return None, None, None
    parent, allowed = self.space.condition_arrays(self.config.policy_tokens)
    return parent, allowed, np.asarray(self.space.topological_order(), np.int32)

  def fresh_keys(self, units) -> list[bytes]:
    """One key per unit row float [M, D]; rows the model cannot tell apart share a key.

    Rows are rounded to 1e-9 (the float32 model cannot tell closer values apart), so a candidate snapped to a
    configuration equals a told trial of it even when `to_unit` and `snap` differ in the last bits (log scales).
    """
    rows = np.round(np.asarray(units, np.float64).reshape(-1, len(self.kinds)), 9) + 0.0  # + 0.0: -0.0 -> 0.0
    return [row.tobytes() for row in rows]

  def condition(self, context: Context, active=None) -> Posterior:
    """The model conditioned on `context` (encoded once, when the context has a feasible row); `active`: bool
    [n, D], False where a context row's conditional parameter is inactive (None: all active)."""
    from optformer.model.posterior import Posterior

    return Posterior(self, context, active)


def _check_space(capabilities: Capabilities, space: ss.SearchSpace) -> None:
  """ValueError unless a model with `capabilities` takes `space` (parameters, categories)."""
  if len(space) > capabilities.max_params:
    raise ValueError(f"The search space has {len(space)} parameters; this model supports at most "
                     f"{capabilities.max_params}.")
  for p in space:
    check_categories(p, capabilities.max_categories)
