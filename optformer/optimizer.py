"""The ask/tell optimizer: zero-shot suggestions and predictions from a study's history.

Model: the shipped PFN (`checkpoint.DEFAULT_CHECKPOINT`, docs/model_v2.md)
or any checkpoint or in-memory `pfn.PFNSurrogate`.

Suggesting: the history is encoded once (the model's context;
`pfn_inference.PFNEngine.context`), and the acquisition is maximized by
`optformer.acquisition_search.search` over a pool of uniform points and,
when `search` asks for them, local moves of the best trials, policy samples
(a model with a policy: OptFormer, Chen et al. 2022, Sec. 5 "OptFormer
(EI)") and rounds of local moves around the best candidates; the best
candidate not already evaluated is returned. The default acquisition is
expected improvement over the best objective seen, in the model's
normalized units, times p(feasible | x) (`pfn_inference.PFNPredictive`).
The default pool (1024 uniform points) is the measured best
(docs/acquisition_search.md). With an empty history the first suggestion is
a prior sample (with a `prior`) or a uniform one, with no model call.

Batches and pending trials: every suggestion is *pending* until it is told;
`add_pending` registers configurations being evaluated elsewhere. Pending
configurations are never proposed again, and they enter the model's context
with the surrogate's predicted mean as a fantasized objective (the "kriging
believer" of Ginsbourger et al., 2010), so `ask(n)` returns n diverse
configurations: each one is chosen after conditioning on the ones before.

User priors (`prior=`, piBO, Hvarfner et al. 2022): the expected improvement
of each candidate is multiplied by pi(x) ** (prior_beta / n) (see
`optformer.priors`), candidates are drawn from the prior as well, and the first suggestions of an empty study are drawn from
the prior.

Persistence: `save`/`load` (and `to_json`/`from_json`) keep the search space,
options, trials, pending trials and the random state, so a resumed study
makes the same next suggestion as an uninterrupted one.

History handling (documented behaviour for bad or long input):
  * NaN, +-inf or None objectives are recorded as *infeasible* trials
    (`Trial.infeasible`); they stay in `trials` and enter the model's context
    with the worst feasible objective seen, so the optimizer steers away.
  * Telling the same suggestion twice raises ValueError (a suggestion from
    `ask` carries its trial number; plain dicts are matched to pending
    trials by value, and otherwise recorded as a new trial). A suggestion
    of another study (`Suggestion.study`) is refused with ValueError.
  * Objectives beyond +-1e150 (`MAX_ABS_OBJECTIVE`) are refused with
    ValueError at `tell`, before anything is recorded: the objective's
    scale would overflow float64 and break every later call.
  * A history longer than the model's context (`backend.capabilities.max_context`:
    256 trials for the shipped model) is *truncated for the
    model only* (`optformer.context.truncate`): the context holds the best
    half and the most recent trials, in their original order; all trials
    stay in `trials` and count for `best`. A warning says so once.
  * A suggestion edited before it is told is recorded, and read by the
    model, with its edited values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from optformer import acquisition_search
from optformer import priors as priors_lib
from optformer import search_space as ss
from optformer import study_files
from optformer import context as context_lib
from optformer.context import Context
from optformer.model import Backend

# No JAX, flax or orbax here: the Backend imports them when the model is loaded (docs/cold_start.md), so
# `import optformer` and the search-space API stay light.
if TYPE_CHECKING:
  from optformer.pfn_inference import PFNEngine, PFNPredictive

SearchConfig = acquisition_search.SearchConfig
# The default acquisition search of candidates="search" (docs/acquisition_search.md).
DEFAULT_SEARCH = SearchConfig()
PROGRESS_MIN_BATCH = 8  # ask(n) shows a progress bar from this batch size on (when stderr is a terminal).


@dataclasses.dataclass(frozen=True)
class Trial:
  """A completed evaluation. `value` is NaN when `infeasible`; `number` counts trials from 0 in ask/tell order."""

  params: dict
  value: float
  infeasible: bool = False
  number: int = -1


class Suggestion(dict):
  """A configuration returned by `Optimizer.ask`: a plain dict name -> value that also carries its trial `number`.

  `study` is the `Optimizer.study_id` of the study that made it (kept by
  save/load, so a resumed study accepts the suggestions of the original);
  another study's `tell` refuses it. None: a suggestion of any study.
  """

  def __init__(self, params: Mapping[str, Any], number: int, study: str | None = None):
    super().__init__(params)
    self.number = number
    self.study = study

  def __repr__(self) -> str:
    return f"Suggestion({dict(self)!r}, number={self.number})"

  def __reduce__(self):
    return (Suggestion, (dict(self), self.number, self.study))


# Objectives beyond +-1e150 are refused: the study's arithmetic in objective units (the span, the bins of the
# predictive distribution, its variance, which squares them) would overflow float64 and break later calls.
MAX_ABS_OBJECTIVE = 1e150


def _as_objective(value: Any) -> tuple[float, bool]:
  """(float value, infeasible) of an objective; raises TypeError (not a number) or ValueError (|value| > 1e150)."""
  if value is None:
    return math.nan, True
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"The objective must be a real number (or None/NaN for infeasible), got {value!r}.")
  big_int = isinstance(value, (int, np.integer)) and abs(int(value)) > MAX_ABS_OBJECTIVE  # float() may overflow
  v = math.inf if big_int else float(value)
  if big_int or (math.isfinite(v) and abs(v) > MAX_ABS_OBJECTIVE):
    raise ValueError(
        f"The objective {value!r} is beyond +-{MAX_ABS_OBJECTIVE:g}: the study's objective scale would overflow "
        "float64. Rescale the objective (e.g. take its logarithm), or pass NaN for a failed evaluation."
    )
  return v, not math.isfinite(v)


class Optimizer:
  """Zero-shot black-box optimizer over a search space.

  Args:
    space: the SearchSpace to optimize over.
    goal: "minimize" or "maximize" the objective.
    model: a model (`pfn.PFNSurrogate`), a checkpoint directory, or None
      for the shipped one (`checkpoint.DEFAULT_CHECKPOINT`). A checkpoint
      is checked here (manifest checksums and config:
      `checkpoint.read_config`, no JAX) and loaded by the first call that
      needs the model (`ask` or `predict` with a feasible trial told, or
      `engine`), which imports JAX, flax and orbax; an in-memory model is
      wrapped here (docs/cold_start.md).
    num_candidates: M candidates of the "policy" and "random" modes, and
      of prior samples added to any pool when a `prior` is given (> 0).
    temperature: policy sampling temperature (> 0; read only by a model
      with a policy).
    candidates: how the acquisition is maximized:
      "search" (the default): `optformer.acquisition_search.search` with
      the pool sizes of `search` (default 1024 uniform points; local moves
      of the best trials, policy samples and refinement rounds on request);
      floats take any value in their range;
      "policy" (a model with a policy only): M policy samples (OptFormer,
      Chen et al. 2022, "OptFormer (EI)"); with num_candidates=1 the policy
      sample alone;
      "random": M uniform points (the surrogate alone, as in PFNs4BO's
      random-candidate ablation).
    search: pool sizes of "search" (`SearchConfig`); None for DEFAULT_SEARCH.
    acquisition: what ranks the candidates: "ei" (expected improvement,
      Jones et al. 1998; the default), "pi" (probability of improvement,
      Kushner 1964) or "ucb" (mean + sqrt(ucb_beta) std, Srinivas et al.
      2010). EI and PI are in the model's normalized units and are
      multiplied by p(feasible | x) (Gardner et al., ICML 2014).
    ucb_beta: beta of "ucb" (> 0).
    prior: parameter name -> `optformer.priors.Normal` or `Weights`, a belief
      about where good values lie (piBO); None for no prior.
    prior_beta: beta of piBO (> 0): the prior's weight is pi(x) ** (beta / n)
      after n trials. The paper sets beta to a tenth of the trial budget;
      the default 1.0 suits budgets of 10-50 trials: a confident, misleading
      prior is back to no-prior regret by about 30 trials on a 2-D quadratic
      and by 50 on held-out prior tasks (eval/pibo.py); larger beta trusts
      the prior longer.
    seed: seeds the suggestions (same seed and history -> same suggestion).
    warn_truncation: warn (once) when the history outgrows the model's
      context; False for callers that warn themselves (e.g. a sampler that
      builds an Optimizer per trial).
    compilation_cache: where JAX keeps the model's compiled functions
      between processes (`optformer.compilation_cache`): True for the
      per-user directory ($XDG_CACHE_HOME/optformer/jax, else
      ~/.cache/optformer/jax; or a directory already given to JAX), a
      path for that directory, False to leave JAX's settings alone (no
      cache unless the caller turned it on). True does nothing after
      `optformer.compilation_cache.disable()`, the process-wide off switch.
      An unwritable directory warns once and the optimizer runs without
      the cache. Applied when the model is loaded (for a checkpoint, on
      first use).

  Raises:
    ValueError: bad goal or candidate source, non-positive num_candidates,
      temperature or prior_beta, a prior that does not fit the space, a
      space with more parameters than the model supports (64 for the
      shipped model), model="" (None is the shipped model), or
      candidates="policy" (or a `search` with policy samples) with a model
      that has no policy.
    TypeError: space is not a SearchSpace, or model is neither a model, a
      path nor None.
    checkpoint.CheckpointError: a missing or corrupt checkpoint or an
      invalid config, or a retired model v1 checkpoint (the parameters,
      read on first use, raise it there if orbax cannot read them).
  """

  def __init__(
      self, space: ss.SearchSpace, goal: str = "minimize", *, model=None, num_candidates: int = 128,
      temperature: float = 1.0, candidates: str = "search",
      search: SearchConfig | None = None, acquisition: str = "ei", ucb_beta: float = 4.0,
      prior: Mapping[str, priors_lib.Belief] | None = None, prior_beta: float = 1.0, seed: int | None = None,
      warn_truncation: bool = True, compilation_cache: bool | str | os.PathLike = True,
  ):
    if not isinstance(space, ss.SearchSpace):
      raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    if num_candidates < 1:
      raise ValueError(f"num_candidates must be >= 1, got {num_candidates}.")
    if candidates not in ("policy", "random", "search"):
      raise ValueError(f"candidates must be 'policy', 'random' or 'search', got {candidates!r}.")
    if acquisition not in ("ei", "pi", "ucb"):
      raise ValueError(f"acquisition must be 'ei', 'pi' or 'ucb', got {acquisition!r}.")
    if not ucb_beta > 0:
      raise ValueError(f"ucb_beta must be > 0, got {ucb_beta}.")
    if not temperature > 0:
      raise ValueError(f"temperature must be > 0, got {temperature}.")
    if not prior_beta > 0:
      raise ValueError(f"prior_beta must be > 0, got {prior_beta}.")
    self.space, self.goal = space, goal
    # The model boundary (optformer.model): a checkpoint's config is checked now (CheckpointError: missing,
    # corrupt, retired), its network loaded by the first call that needs it (docs/cold_start.md).
    self.backend = Backend.for_space(model, space, compilation_cache=compilation_cache)
    self.model_path = self.backend.path  # None for an in-memory model.
    has_policy = self.backend.capabilities.policy
    if candidates == "policy" and not has_policy:
      raise ValueError("candidates='policy' needs a model with a policy; this model has none. Use 'search' or 'random'.")
    if search is not None and not isinstance(search, SearchConfig):
      raise TypeError(f"search must be an optformer.SearchConfig or None, got {type(search).__name__}.")
    self.search = search or DEFAULT_SEARCH
    if self.search.num_policy and not has_policy:
      raise ValueError(f"search.num_policy={self.search.num_policy} asks for policy samples; this model has no policy. "
                       "Set num_policy=0.")
    self.num_candidates, self.temperature, self.candidates = num_candidates, temperature, candidates
    self.acquisition, self.ucb_beta = acquisition, float(ucb_beta)
    self.prior = priors_lib.Prior(space, prior) if prior else None
    self.prior_beta = float(prior_beta)
    self._rng = np.random.default_rng(seed)
    self.trials: list[Trial] = []
    self._pending: dict[int, dict] = {}  # trial number -> validated params, in ask order
    self._next_number = 0
    self._units: dict[int, tuple[tuple, np.ndarray]] = {}  # trial number -> (_key(params), unit form); see _unit
    self._warned_truncation = not warn_truncation
    self.study_id = uuid.uuid4().hex  # Marks this study's suggestions (`Suggestion.study`); kept by save/load.

  @property
  def engine(self) -> PFNEngine:
    """The model's jitted engine (`optformer.model.Backend.engine`). A checkpoint's model is loaded on first use: here, or by the first
    `ask` or `predict` after a feasible trial is told (pending trials then get fantasized objectives)."""
    return self.backend.engine

  # -- History ---------------------------------------------------------------

  def tell(self, params: Mapping[str, Any], value: Any) -> Trial:
    """Records a completed trial and returns it.

    `params` is a suggestion from `ask` (matched by its trial number), or any
    configuration: it completes the oldest pending trial with equal values,
    or else is recorded as a new trial. A suggestion of another study (its
    `study` is not this `study_id`) is refused, as a trial of another Optuna
    study or Vizier study is: pass `dict(suggestion)` to record its
    configuration here as a plain one.

    Raises:
      ValueError / TypeError: params not in the search space (unknown,
        missing or out-of-range parameter, a value of the wrong type), a
        non-numeric objective or one beyond +-1e150 (`MAX_ABS_OBJECTIVE`), a
        suggestion that was already told, or a suggestion of another study.
        Nothing is recorded then.
    """
    valid = self.space.validate(params)
    v, infeasible = _as_objective(value)
    number = self._match_pending(params, valid)
    if number is None:
      number = self._new_number()
    else:
      del self._pending[number]
    trial = Trial(params=valid, value=math.nan if infeasible else v, infeasible=infeasible, number=number)
    self.trials.append(trial)
    return trial

  def _match_pending(self, params, valid) -> int | None:
    if isinstance(params, Suggestion):
      if params.study is not None and params.study != self.study_id:
        raise ValueError(
            f"Suggestion {params.number} ({dict(params)!r}) comes from another study (Optimizer); tell it to the "
            "optimizer that asked it, or pass dict(suggestion) to record the configuration here."
        )
      if params.number in self._pending:
        return params.number
      if any(t.number == params.number for t in self.trials):
        raise ValueError(f"Trial {params.number} ({dict(params)!r}) was already told; tell each suggestion once.")
    return next((n for n, p in self._pending.items() if p == valid), None)

  def _new_number(self) -> int:
    self._next_number += 1
    return self._next_number - 1

  def add_pending(self, params: Mapping[str, Any]) -> Suggestion:
    """Registers a configuration under evaluation elsewhere (e.g. by another worker).

    It is not proposed again, and it enters the context with a fantasized
    objective until it is told (or removed with `remove_pending`).

    Returns:
      The configuration as a Suggestion with its new trial number.

    Raises:
      ValueError / TypeError: params not in the search space.
    """
    valid = self.space.validate(params)
    number = self._new_number()
    self._pending[number] = valid
    return Suggestion(valid, number, self.study_id)

  def remove_pending(self, params: Mapping[str, Any]) -> None:
    """Forgets a pending trial (evaluation abandoned). Raises ValueError if it is not pending or of another study."""
    valid = self.space.validate(params)
    number = self._match_pending(params, valid)
    if number is None:
      raise ValueError(f"{dict(params)!r} is not a pending trial.")
    del self._pending[number]

  @property
  def pending(self) -> list[Suggestion]:
    """Configurations asked (or added) but not yet told, oldest first."""
    return [Suggestion(p, n, self.study_id) for n, p in self._pending.items()]

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

  def _unit(self, number: int, params) -> np.ndarray:
    """float64 [D] unit form of a told or pending trial's params.

    Cached per trial number together with the params it was computed from, and recomputed when they differ:
    a suggestion edited before it is told (`tell` records the edited values under the same number) enters
    the context with its edited values, as `trials` holds them.
    """
    cached, key = self._units.get(number), self._key(params)
    if cached is None or cached[0] != key:
      cached = self._units[number] = (key, self.space.to_unit(params))
    return cached[1]

  def _key(self, params) -> tuple:
    """A configuration's values with their types, in parameter order (so True and 1 differ)."""
    return tuple((type(params[p.name]), params[p.name]) for p in self.space)

  def _fit(self, rows: list) -> Context:
    """The Context of (unit row, y) rows: truncated past the model's context, with one warning per study."""
    limit = self.backend.capabilities.max_context
    if len(rows) > limit and not self._warned_truncation:
      warnings.warn(context_lib.truncation_warning(len(rows), limit), stacklevel=5)
      self._warned_truncation = True
    return Context.from_rows(rows, len(self.space), limit)

  def _model_context(self) -> tuple[Context, float | None]:
    """(the Context the model conditions on, the best told objective in the model's direction or None).

    Rows are the told trials (NaN objective when infeasible), then the
    pending trials with the surrogate's predicted mean given the told ones
    as a fantasized objective (kriging believer); past the model's context
    the best half and the most recent rows.
    """
    rows = [(self._unit(t.number, t.params), math.nan if t.infeasible else self._internal(t.value)) for t in self.trials]
    told = Context.from_rows(rows, len(self.space))
    if not self._pending or told.best is None:
      return self._fit(rows), told.best
    pend = [self._unit(*p) for p in self._pending.items()]
    limit = self.backend.capabilities.max_context
    base = Context.from_rows(rows, len(self.space), max(limit - len(pend), 1))
    means = self.backend.condition(base).mean(pend)
    return self._fit(rows + list(zip(pend, means))), told.best

  # -- Suggest and predict ---------------------------------------------------

  def ask(self, n: int | None = None, *, progress: bool | None = None) -> Suggestion | list[Suggestion]:
    """The next configuration(s) to evaluate.

    Args:
      n: None for one configuration, or an int >= 1 for a batch of n diverse
        configurations (each chosen after fantasizing the ones before).
      progress: show a progress bar (tqdm, on stderr) over the batch: True,
        False, or None (the default) for batches of PROGRESS_MIN_BATCH or
        more when stderr is a terminal.

    Returns:
      A Suggestion (a dict name -> value of the parameter's type, with its
      trial `number`), or a list of n of them. Each is pending until told.
      A configuration already told or pending is returned only when no
      fresh one is found (e.g. the space holds fewer configurations than
      are asked for: `SearchSpace.num_configurations`), with a UserWarning.

    Raises:
      ValueError: n < 1.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
      raise ValueError(f"n must be None or an int >= 1, got {n!r}.")
    key = self._key
    taken = {key(p) for p in [t.params for t in self.trials] + list(self._pending.values())}
    out, repeats = [], 0
    count = 1 if n is None else int(n)
    steps = range(count)
    if progress or (progress is None and count >= PROGRESS_MIN_BATCH):
      from tqdm.auto import tqdm

      steps = tqdm(steps, desc="ask", unit="suggestion", disable=None if progress is None else False, leave=False)
    for _ in steps:
      out.append(self._ask_one())
      repeats += key(out[-1]) in taken
      taken.add(key(out[-1]))
    if repeats:
      size = self.space.num_configurations
      held = f"the search space holds {size} configurations" if size is not None else "no fresh candidate was found"
      warnings.warn(
          f"ask returned {repeats} configuration(s) already told or pending: {held}, and {len(taken)} distinct ones "
          "are told or pending. Tell the pending trials first, or widen the search space.", stacklevel=2,
      )
    return out[0] if n is None else out

  def _ask_one(self) -> Suggestion:
    context, best = self._model_context()
    taken = [self._unit(t.number, t.params) for t in self.trials] + [self._unit(*p) for p in self._pending.items()]
    # A candidate equal to a told or pending trial is not fresh.
    seen = set(self.backend.fresh_keys(taken)) if taken else set()
    is_fresh = lambda units: np.array([k not in seen for k in self.backend.fresh_keys(units)], bool)
    config = self._search_config()
    prior_samples = lambda: np.array([self.space.to_unit(c) for c in self.prior.sample(self._rng, self.num_candidates)])
    if best is None:  # No scale yet: the first fresh prior, policy or uniform sample (no model call for these two).
      if self.prior is not None:
        first = prior_samples()
      elif config.num_policy:
        first = self.backend.condition(context).sample_policy(self._rng, config.num_policy, self.temperature)
      else:
        first = acquisition_search.uniform_points(self.space, self._rng, max(self.num_candidates, 64))
      return self.add_pending(self.space.from_unit(first[int(np.argmax(is_fresh(first)))]))
    posterior = self.backend.condition(context)
    extra = [posterior.sample_policy(self._rng, config.num_policy, self.temperature)] if config.num_policy else []
    if self.prior is not None:
      extra.append(prior_samples())
    acquisition = lambda units: self._with_prior(units, posterior.acquisition(units, best, self.acquisition, self.ucb_beta))
    feasible = [t for t in self.trials if not t.infeasible]
    top = [self._unit(t.number, t.params) for t in sorted(feasible, key=lambda t: -self._internal(t.value))]
    unit, _, _ = acquisition_search.search(
        self.space, self._rng, acquisition, config, top, is_fresh, np.concatenate(extra) if extra else None)
    return self.add_pending(self.space.from_unit(unit))

  def _search_config(self) -> SearchConfig:
    """The acquisition search of the `candidates` mode: "search" (the pool of `search`), "policy" or "random"."""
    if self.candidates == "policy":
      return SearchConfig(num_random=0, num_local=0, rounds=0, num_policy=self.num_candidates)
    if self.candidates == "random":
      return SearchConfig(num_random=self.num_candidates, num_local=0, rounds=0)
    return self.search

  def _with_prior(self, units, score) -> np.ndarray:
    """score + (prior_beta / n) log pi(x) (piBO, Hvarfner et al. 2022); score itself without a prior."""
    if self.prior is None:
      return score
    configs = [self.space.from_unit(u) for u in units]
    return score + self.prior_beta / max(len(self.trials), 1) * self.prior.log_density(configs)

  def predict(self, configs: Sequence[Mapping[str, Any]]) -> PFNPredictive:
    """Predictive distributions of the objective at `configs`, in objective units.

    Pending trials are in the context with fantasized objectives, as for `ask`.

    Returns:
      A `pfn_inference.PFNPredictive` of N = len(configs) distributions in
      objective units, in the goal's direction (mean, std, quantile, cdf,
      pdf, log_prob, expected_improvement, probability_of_improvement,
      upper_confidence_bound, given the trial is feasible, and p_feasible);
      its expected_improvement() and probability_of_improvement() default
      to the best value seen.

    Raises:
      ValueError: no feasible trial yet (the objective's scale is unknown),
        or a config not in the search space.
    """
    context, best = self._model_context()
    if best is None:
      raise ValueError("predict needs at least one feasible trial to set the objective's scale.")
    units = self.space.to_units(configs)
    return with_best(self.backend.condition(context).predict(units, goal=self.goal), self.best[1])

  # -- Persistence -----------------------------------------------------------

  def to_json(self) -> dict:
    """The study as a JSON-serializable dict (format 1): space, options, trials, pending, random state, study id.

    "model" references the model: "shipped:<name>" for a model shipped with
    the package (e.g. "shipped:optformer-v2", the default; resolved against
    `checkpoint.SHIPPED_CHECKPOINTS` when loaded, so the file survives
    moving the checkout or the environment), the absolute checkpoint path
    for any other directory, or null when the optimizer was built from an
    in-memory model (pass `model=` to load).
    """
    return {
        "format": _FORMAT, "space": self.space.to_json(), "goal": self.goal, "model": _model_reference(self.model_path),
        "options": {
            "num_candidates": self.num_candidates, "temperature": self.temperature,
            "candidates": self.candidates,
            "prior": self.prior.to_json() if self.prior else None, "prior_beta": self.prior_beta,
            "acquisition": self.acquisition, "ucb_beta": self.ucb_beta, "search": self.search.to_json(),
        },
        "trials": [
            {"number": t.number, "params": t.params, "value": None if t.infeasible else t.value} for t in self.trials
        ],
        "pending": [{"number": n, "params": p} for n, p in self._pending.items()],
        "next_number": self._next_number, "rng": self._rng.bit_generator.state,
        "warned_truncation": self._warned_truncation, "study_id": self.study_id,
    }

  @classmethod
  def from_json(cls, data: Mapping[str, Any], *, model=None) -> "Optimizer":
    """Inverse of `to_json`. `model` overrides the stored model reference.

    Every field is checked before use; a study without `study_id` (written
    before it existed) gets a new one.

    Raises:
      ValueError: an unknown format, or a field that is missing, of the wrong
        type or out of range (a trial outside the stored space, a trial
        number used twice, an objective beyond +-1e150); the message names
        the field, e.g. "field 'trials[3].value': ...".
      checkpoint.CheckpointError: the referenced checkpoint is missing or
        corrupt, or names a shipped model this installation does not ship.
    """
    fmt = data.get("format") if isinstance(data, Mapping) else None
    if type(fmt) is not int or fmt != _FORMAT:  # Not `!=` alone: True == 1 and 1.0 == 1 in Python.
      if not isinstance(data, Mapping):
        got = type(data).__name__
      elif fmt is None or type(fmt) is int:
        got = repr(fmt)
      else:
        got = f"{fmt!r}, a JSON {type(fmt).__name__} where an integer is expected"
      raise ValueError(f"Not an optformer study (format {_FORMAT} expected, got {got}).")
    space_items = _field(data, "space", "list")
    try:
      space = ss.SearchSpace.from_json(space_items)
    except (TypeError, ValueError) as e:
      raise ValueError(f"field 'space': {e}") from e
    goal = _field(data, "goal", "str")
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"field 'goal': expected 'minimize' or 'maximize', got {goal!r}.")
    stored_model = _field(data, "model", "str|null")
    options = _field(data, "options", "object")
    opts = {k: _field(options, k, kind, "options.") for k, kind in _OPTION_KINDS.items()}
    for k, (kind, default) in _OPTIONAL_OPTION_KINDS.items():  # Absent from study files of earlier versions.
      opts[k] = _field(options, k, kind, "options.") if k in options else default
    for k, kind in _RETIRED_OPTION_KINDS.items():
      if k in options:
        _field(options, k, kind, "options.")
    unknown = sorted(set(options) - set(_OPTION_KINDS) - set(_OPTIONAL_OPTION_KINDS) - set(_RETIRED_OPTION_KINDS))
    if unknown:
      raise ValueError(f"field 'options': unknown option(s) {unknown}; expected {sorted(_OPTION_KINDS) + sorted(_OPTIONAL_OPTION_KINDS)}.")
    prior = opts.pop("prior")
    if opts["search"] is not None:
      try:
        opts["search"] = SearchConfig.from_json(dict(opts["search"]))
      except (TypeError, ValueError) as e:
        raise ValueError(f"field 'options.search': {e}") from e
    if model is None and stored_model is None:
      raise ValueError("The study was saved from an in-memory model; pass model= to load it.")
    if model is None:
      model = _resolve_model_reference(stored_model)
      if model == RETIRED:
        model = None
        opts = _retire_options(opts)
    from optformer import checkpoint  # For CheckpointError (no JAX).

    try:
      opt = cls(space, goal, model=model, **opts)
    except checkpoint.CheckpointError:
      raise
    except (TypeError, ValueError) as e:
      raise ValueError(f"field 'options': {e}") from e
    if prior:
      try:
        opt.prior = priors_lib.Prior.from_json(space, prior)
      except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"field 'options.prior': {e}") from e
    numbers: dict[int, str] = {}  # trial number -> the field that holds it

    def entry(i: int, item: Any, what: str) -> tuple[int, dict]:
      where = f"{what}[{i}]"
      if not isinstance(item, Mapping):
        raise ValueError(f"field {where!r}: expected an object, got {type(item).__name__} {item!r:.80}.")
      number = _field(item, "number", "int", where + ".")
      if number < 0 or number in numbers:
        why = "is negative" if number < 0 else f"is also the number of {numbers[number]}"
        raise ValueError(f"field '{where}.number': trial number {number} {why}.")
      numbers[number] = where
      params = _field(item, "params", "object", where + ".")
      try:
        return number, space.validate(params)
      except (TypeError, ValueError) as e:
        raise ValueError(f"field '{where}.params': {e}") from e

    for i, t in enumerate(_field(data, "trials", "list")):
      number, params = entry(i, t, "trials")
      value = _field(t, "value", "number|null", f"trials[{i}].")
      if value is not None and not math.isfinite(value):
        raise ValueError(f"field 'trials[{i}].value': expected a finite number or null (infeasible), got {value!r}.")
      try:
        v, infeasible = _as_objective(value)
      except ValueError as e:
        raise ValueError(f"field 'trials[{i}].value': {e}") from e
      opt.trials.append(Trial(params, math.nan if infeasible else v, infeasible, number))
    opt._pending = dict(entry(i, p, "pending") for i, p in enumerate(_field(data, "pending", "list")))
    next_number = _field(data, "next_number", "int")
    if numbers and next_number <= max(numbers):
      raise ValueError(f"field 'next_number': {next_number} must exceed every trial number (the largest is {max(numbers)}).")
    opt._next_number = next_number
    rng_state = _field(data, "rng", "object")
    try:
      opt._rng.bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError) as e:
      raise ValueError(f"field 'rng': not a {type(opt._rng.bit_generator).__name__} state ({e}).") from e
    opt._warned_truncation = _field(data, "warned_truncation", "bool")
    if "study_id" in data:
      opt.study_id = _field(data, "study_id", "str")
    return opt

  def save(self, path: str | os.PathLike) -> None:
    """Writes `to_json()` to `path` atomically (`study_files.write_atomic`: a temporary file, then rename)."""
    study_files.write_atomic(path, json.dumps(self.to_json(), indent=1, allow_nan=False))

  @classmethod
  def load(cls, path: str | os.PathLike, *, model=None) -> "Optimizer":
    """Reads a study written by `save`.

    Raises:
      OSError: the file cannot be read (FileNotFoundError, PermissionError).
      ValueError: anything else wrong with the file, its message starting
        with the file's path: not UTF-8 text, not JSON (or nested too
        deeply), or a field as in `from_json` (named in the message).
      checkpoint.CheckpointError: the referenced checkpoint is missing or corrupt.
    """
    raw = pathlib.Path(path).read_bytes()
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(
          f"{path}: not a study: byte {raw[e.start]:#04x} at offset {e.start} is not UTF-8 text "
          "(expected the JSON written by Optimizer.save)."
      ) from None
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e}).") from None
    except RecursionError:
      raise ValueError(f"{path}: not a study: its JSON is nested too deeply.") from None
    from optformer import checkpoint  # For CheckpointError (no JAX).

    try:
      return cls.from_json(data, model=model)
    except checkpoint.CheckpointError:
      raise
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from e


_FORMAT = 1  # Study files written before "shipped:<name>" existed store a shipped model's absolute path.
_SHIPPED = "shipped:"  # Prefix of a shipped model's reference in a study file ("shipped:optformer-v2").


def _model_reference(model_path: str | None) -> str | None:
  """The study file's "model" of a checkpoint path: "shipped:<name>" for a shipped model, else the absolute path."""
  if model_path is None:
    return None
  from optformer import checkpoint

  path = pathlib.Path(model_path).absolute()
  shipped = checkpoint.SHIPPED_CHECKPOINTS.resolve()
  if path.resolve().parent == shipped and path.name and (shipped / path.name).is_dir():
    return _SHIPPED + path.name
  return str(path)


RETIRED = "retired"  # `_resolve_model_reference` of a study made with the retired model v1.


def _retire_options(opts: dict) -> dict:
  """A model v1 study's options on the default model, with one warning: policy candidates become the search."""
  from optformer import checkpoint

  warnings.warn(f"The study was made with model v1 ({checkpoint.RETIRED_NAME}), which was retired; it continues on "
                f"the default model ({checkpoint.DEFAULT_CHECKPOINT.name}).", UserWarning, stacklevel=4)
  opts = dict(opts)
  if opts["candidates"] == "policy":
    opts["candidates"] = "search"
  if opts["search"] is not None and opts["search"].num_policy:
    opts["search"] = dataclasses.replace(opts["search"], num_policy=0)
  return opts


def _resolve_model_reference(reference: str) -> pathlib.Path | str:
  """The checkpoint directory a study file's "model" names (see `Optimizer.to_json`).

  "shipped:<name>" and "default" name a shipped model; the retired model v1 ("shipped:optformer-gp-v1", or its
  old path, now gone) gives RETIRED. A file written before "shipped:<name>" existed holds the
  absolute path the study was saved with: when that path is gone and ended in checkpoints/<name> of a shipped
  model (the checkout or the environment moved), the shipped model of that name is used.

  Raises:
    ValueError: an empty reference.
    checkpoint.CheckpointError: a shipped name that this installation does not ship, or a path that does not exist.
  """
  from optformer import checkpoint

  shipped_names = sorted(p.name for p in checkpoint.SHIPPED_CHECKPOINTS.iterdir() if (p / "config.json").is_file())
  if reference == "":
    raise ValueError("field 'model': an empty string names no checkpoint; expected \"shipped:<name>\", a checkpoint "
                     "directory, or null.")
  if reference == "default":
    return checkpoint.DEFAULT_CHECKPOINT
  if reference == _SHIPPED + checkpoint.RETIRED_NAME or (
      pathlib.Path(reference).name == checkpoint.RETIRED_NAME and not pathlib.Path(reference).exists()):
    return RETIRED
  if reference.startswith(_SHIPPED):
    name = reference[len(_SHIPPED):]
    if name not in shipped_names:
      raise checkpoint.CheckpointError(
          f"The study's model {reference!r} is not shipped with this installation (shipped: {shipped_names}); "
          "pass model= a checkpoint directory to load the study.")
    return checkpoint.SHIPPED_CHECKPOINTS / name
  path = pathlib.Path(reference)
  if path.exists():
    return path
  if path.is_absolute() and path.parent.name == "checkpoints" and path.name in shipped_names:
    return checkpoint.SHIPPED_CHECKPOINTS / path.name  # The shipped model, saved under a path that has moved.
  raise checkpoint.CheckpointError(
      f"The study's model checkpoint {reference} does not exist; pass model= the checkpoint directory "
      "to load the study.")
# Stored options (`to_json()["options"]`) and their JSON kinds, all required.
_OPTION_KINDS = {
    "num_candidates": "int", "temperature": "number", "candidates": "str",
    "prior": "object|null", "prior_beta": "number",
}
# Options added later, with the default a study file without them gets: name -> (JSON kind, default).
_OPTIONAL_OPTION_KINDS = {"acquisition": ("str", "ei"), "ucb_beta": ("number", 4.0), "search": ("object|null", None)}
# Options of the retired model v1, read and dropped: name -> JSON kind.
_RETIRED_OPTION_KINDS = {"algorithm": "str"}
_JSON_KINDS = {
    "int": (int,), "number": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple),
    "object": (Mapping,), "null": (type(None),),
}


def _field(obj: Mapping[str, Any], key: str, kinds: str, where: str = "") -> Any:
  """obj[key] if its JSON kind is one of `kinds` ("int|null"); ValueError naming the field `where + key` otherwise."""
  if key not in obj:
    raise ValueError(f"field {where + key!r} is missing.")
  value = obj[key]
  for kind in kinds.split("|"):
    if isinstance(value, _JSON_KINDS[kind]) and not (isinstance(value, bool) and kind in ("int", "number")):
      return value
  names = {"object": "an object", "list": "a list", "int": "an integer", "number": "a number", "str": "a string",
           "bool": "true or false", "null": "null"}
  want = " or ".join(names[k] for k in kinds.split("|"))
  raise ValueError(f"field {where + key!r}: expected {want}, got {type(value).__name__} {value!r:.80}.")


def with_best(dist: PFNPredictive, best: float) -> PFNPredictive:
  """`dist` with its improvement defaulting to `best` (objective units)."""
  dist.best = best
  return dist
