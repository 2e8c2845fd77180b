"""The optimizers the benchmarks compare, by name, behind one ask/tell interface.

Every entry builds an object with `ask() -> params` and `tell(params, value)`
from (space, goal, seed), so eval/runner.py drives ours and the baselines
through the same loop:

| name               | what                                                                 |
| ------------------ | -------------------------------------------------------------------- |
| "optformer"        | optformer.Optimizer (the default model): EI maximized by the         |
|                    | acquisition search (optformer.acquisition_search, default SearchConfig) |
| "optformer-random" | candidates="random": EI over 128 uniform points                      |
| "random"           | uniform random search (eval/random_search.py)                        |
| "sobol"            | scrambled Sobol' sequence (scipy.stats.qmc), mapped by the space      |
| "tpe"              | Optuna TPESampler(multivariate=True)                                 |
| "gp"               | Optuna GPSampler (Gaussian-process BO with log-EI, needs torch)      |
| "cmaes"            | Optuna CmaEsSampler; numeric spaces only (no Categorical parameter)   |
| "smac"             | SMAC3 HyperparameterOptimizationFacade (random forest); optional:    |
|                    | the `peers` extra (eval/peers_extra.py)                              |
| "hebo"             | HEBO (warped GP, MACE, NSGA-II); optional: the `peers` extra; no      |
|                    | forbidden clauses (eval/peers_extra.py)                              |

Optuna samplers run through Optuna's ask/tell interface (`study.ask(dists)`,
`study.tell(trial, value)`) on the distributions of
optformer.integrations.optuna.to_distributions; the study's direction is the
goal. A NaN or infinite objective is told as a failed trial.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any, Callable, Mapping

import optformer
from optformer.eval import peers_extra
from optformer.eval.random_search import RandomSearch

# Variants ("optformer:num_random=512,num_local=128,rounds=2") take SearchConfig sizes and Optimizer options:
# see split_variant.
Factory = Callable[[optformer.SearchSpace, str, int], Any]  # (space, goal, seed) -> ask/tell object.

OPTIMIZERS = ("optformer", "optformer-random", "random", "sobol", "tpe", "gp", "cmaes")  # Installed with `eval`.
PEERS = peers_extra.PEERS  # ("smac", "hebo"): optional, with the `peers` extra; "all" leaves them out.
NAMES = OPTIMIZERS + PEERS  # Every registered name.
OURS = ("optformer", "optformer-random")  # Variants of the learned optimizer.


class SobolSearch:
  """Quasi-random search: a scrambled Sobol' sequence (Owen scrambling, scipy.stats.qmc.Sobol).

  Point i in [0, 1)^D is mapped to a configuration with `space.from_unit`,
  except that a categorical coordinate u picks category floor(u * K).
  Suggestions ignore the history.

  Args:
    space: the search space (D parameters, D <= 21201).
    seed: seeds the scrambling (same seed -> same sequence).
  """

  def __init__(self, space: optformer.SearchSpace, seed: int | None = None):
    from scipy.stats import qmc

    self.space = space
    self._sobol = qmc.Sobol(len(space), scramble=True, seed=seed)
    self.trials: list[tuple[dict, float]] = []

  def ask(self) -> dict[str, Any]:
    u_D = self._sobol.random(1)[0]
    for i, p in enumerate(self.space):
      if p.kind == optformer.search_space.KIND_CATEGORICAL:
        u_D[i] = min(math.floor(u_D[i] * p.num_values), p.num_values - 1)
    return self.space.from_unit(u_D)

  def tell(self, params: Mapping[str, Any], value: float) -> None:
    """Records (params, value); suggestions do not depend on it."""
    self.trials.append((dict(params), float(value)))


class OptunaOptimizer:
  """An Optuna sampler behind ask()/tell(), through Optuna's ask-and-tell interface.

  Args:
    space: the search space (converted once with to_distributions).
    goal: "minimize" or "maximize" (the study's direction).
    sampler: an optuna.samplers.BaseSampler (seeded by the caller).

  `tell` of a configuration that was not the pending suggestion (e.g. a
  history from elsewhere) adds it as a completed trial.
  """

  def __init__(self, space: optformer.SearchSpace, goal: str, sampler):
    import optuna

    from optformer.integrations.optuna import to_distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    self.space = space
    self._dists = to_distributions(space)
    self.study = optuna.create_study(direction=goal, sampler=sampler)
    self._pending: list[tuple[dict, Any]] = []  # (params, optuna trial) asked but not told.

  def ask(self) -> dict[str, Any]:
    trial = self.study.ask(self._dists)
    params = self.space.validate({name: trial.params[name] for name in self.space.names})
    self._pending.append((params, trial))
    return params

  def tell(self, params: Mapping[str, Any], value: float) -> None:
    """Completes the pending trial with these params (or adds a new one); NaN/inf -> failed trial."""
    import optuna

    params = self.space.validate(params)
    v = float(value)
    ok = math.isfinite(v)
    for i, (p, trial) in enumerate(self._pending):
      if p == params:
        del self._pending[i]
        if ok:
          self.study.tell(trial, v)
        else:
          self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    state = optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL
    self.study.add_trial(optuna.trial.create_trial(
        params=params, distributions=self._dists, value=v if ok else None, state=state))

  def remove_pending(self, params: Mapping[str, Any]) -> None:
    """Withdraws a pending suggestion (told to Optuna as a failed trial, which its samplers ignore).

    Raises:
      ValueError: `params` is not pending.
    """
    import optuna

    params = self.space.validate(params)
    for i, (p, trial) in enumerate(self._pending):
      if p == params:
        del self._pending[i]
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    raise ValueError(f"{params!r} is not a pending suggestion.")


def _has_categorical(space: optformer.SearchSpace) -> bool:
  return any(p.kind == optformer.search_space.KIND_CATEGORICAL for p in space)


def supports(name: str, space: optformer.SearchSpace) -> bool:
  """Whether optimizer `name` runs on `space`: all do, except "cmaes" on spaces with a Categorical and "hebo" on
  spaces with forbidden clauses.

  Raises:
    ValueError: unknown optimizer name.
  """
  base, _ = split_variant(name)
  return not ((base == "cmaes" and _has_categorical(space)) or (base == "hebo" and space.forbidden))


def split_variant(name: str) -> tuple[str, dict]:
  """(registered name, options) of `name`, which is a registered name or a variant of an optformer entry:
  "optformer:num_random=256,num_policy=0" (SearchConfig fields, or the Optimizer options num_candidates,
  candidates, acquisition, temperature, initial_design: "optformer:initial_design=sobol:5"). Values parse as int, then float, else str.
  A bool SearchConfig field takes 1/0 or true/false ("optformer:trust_region=1").

  Raises:
    ValueError: unknown name, options on a baseline, or an unknown option.
  """
  base, sep, rest = name.partition(":")
  if base not in NAMES:
    raise ValueError(f"Unknown optimizer {name!r}; expected one of {list(NAMES)}.")
  if not sep:
    return base, {}
  if base not in OURS:
    raise ValueError(f"Optimizer {name!r}: only the optformer entries {list(OURS)} take options.")
  opts = {}
  for item in rest.split(","):
    key, eq, value = item.partition("=")
    if not eq or key not in _VARIANT_OPTIONS:
      raise ValueError(f"Optimizer {name!r}: option {item!r} is not KEY=VALUE with KEY in {sorted(_VARIANT_OPTIONS)}.")
    for cast in (int, float, str):
      try:
        opts[key] = cast(value)
        break
      except ValueError:
        pass
  return base, opts


_SEARCH_FIELDS = tuple(f.name for f in dataclasses.fields(optformer.SearchConfig))
_SEARCH_BOOLS = {f.name for f in dataclasses.fields(optformer.SearchConfig) if f.type in (bool, "bool")}


def _as_bool(name: str, key: str, value) -> bool:
  """A variant's bool SearchConfig option ("optformer:trust_region=1"): 1/0 or true/false; ValueError otherwise."""
  if value in (0, 1) or str(value).lower() in ("true", "false"):
    return value == 1 or str(value).lower() == "true"
  raise ValueError(f"Optimizer {name!r}: option {key}={value!r} must be 1, 0, true or false.")


_VARIANT_OPTIONS = set(_SEARCH_FIELDS) | {"num_candidates", "candidates", "acquisition", "temperature",
                                               "initial_design"}


def factories(model=None) -> dict[str, Factory]:
  """name -> factory(space, goal, seed) for every optimizer of OPTIMIZERS, in that order (the PEERS: `make`).

  Args:
    model: for the optformer entries: a PFNSurrogate, a checkpoint directory,
      or None for the shipped checkpoint, loaded on first use, then cached.
  """
  import optuna

  def optformer_entry(name: str, **kwargs) -> Factory:
    chosen = checkpoint_of(name, model)
    return lambda space, goal, seed: optformer.Optimizer(space, goal, model=chosen, seed=seed, **kwargs)

  def optuna_entry(make_sampler: Callable[[int], Any]) -> Factory:
    return lambda space, goal, seed: OptunaOptimizer(space, goal, make_sampler(seed))

  def cmaes(space, goal, seed):
    if _has_categorical(space):
      raise ValueError(f"Optimizer 'cmaes' needs a purely numeric search space; got categorical parameters in {space}.")
    return OptunaOptimizer(space, goal, optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False))

  return {
      "optformer": optformer_entry("optformer"),
      "optformer-random": optformer_entry("optformer-random", candidates="random"),
      "random": lambda space, goal, seed: RandomSearch(space, seed=seed),
      "sobol": lambda space, goal, seed: SobolSearch(space, seed=seed),
      "tpe": optuna_entry(lambda seed: optuna.samplers.TPESampler(multivariate=True, seed=seed)),
      "gp": optuna_entry(lambda seed: optuna.samplers.GPSampler(seed=seed)),
      "cmaes": cmaes,
  }


def checkpoint_of(name: str, model=None):
  """The model an entry loads: a checkpoint directory (pathlib.Path), the in-memory `model` itself, or None for
  an optimizer that uses no model (the baselines). `name` as in `make`.

  Raises:
    ValueError: unknown name.
  """
  base, _ = split_variant(name)
  if base not in OURS:
    return None
  if model is None:
    return optformer.checkpoint.DEFAULT_CHECKPOINT
  return pathlib.Path(model) if isinstance(model, (str, os.PathLike)) else model


def make(name: str, space: optformer.SearchSpace, goal: str, seed: int, model=None):
  """A fresh optimizer `name` on `space`.

  Args:
    name: one of NAMES, or a variant of an optformer entry (`split_variant`).
    space: the search space.
    goal: "minimize" or "maximize".
    seed: int seed of the optimizer's randomness.
    model: the model of the optformer entries (see `factories`).

  Raises:
    ValueError: unknown name, a bad goal, or a space the optimizer does not
      support (`supports`).
    ImportError: a peer ("smac", "hebo") whose package is not installed; the
      message names the `peers` extra.
  """
  base, opts = split_variant(name)
  if goal not in ("minimize", "maximize"):
    raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
  if base in PEERS:
    return peers_extra.make(base, space, goal, int(seed))
  if not opts:
    return factories(model)[base](space, goal, int(seed))
  # A variant: the entry's Optimizer with the given options (search sizes on top of the entry's default).
  probe = factories(model)[base](space, goal, int(seed))
  sizes = {k: opts.pop(k) for k in _SEARCH_FIELDS if k in opts}
  sizes.update({k: _as_bool(name, k, sizes[k]) for k in _SEARCH_BOOLS & set(sizes)})
  kwargs = dict(candidates=probe.candidates, num_candidates=probe.num_candidates, acquisition=probe.acquisition,
                search=dataclasses.replace(probe.search, **sizes))
  kwargs.update(opts)
  return optformer.Optimizer(space, goal, model=probe.model_path or model, seed=int(seed), **kwargs)


def parse_names(names) -> list[str]:
  """Validated optimizer names in the given order; ["all"] -> OPTIMIZERS (the optional PEERS only when named).
  Raises ValueError if unknown."""
  names = list(names)
  if names == ["all"]:
    return list(OPTIMIZERS)
  for n in names:
    split_variant(n)
  return names

