"""The ask/tell optimizer: zero-shot suggestions and predictions from a study's history.

Model: the shipped PFN (`checkpoint.DEFAULT_CHECKPOINT`, docs/model_v2.md)
or any checkpoint or in-memory `network.PFNSurrogate`.

Suggesting: the history is encoded once (the model's context;
`inference.PFNEngine.context`), and the acquisition is maximized by
`optformer.acquisition_search.search` over a pool of uniform points and,
when `search` asks for them, local moves of the best trials, policy samples
(a model with a policy: OptFormer, Chen et al. 2022, Sec. 5 "OptFormer
(EI)") and rounds of local moves around the best candidates; the best
candidate not already evaluated is returned. The default acquisition is
expected improvement over the best objective seen, in the model's
normalized units, times p(feasible | x) (`inference.PFNPredictive`).
The default pool (1024 uniform points) is the measured best
(docs/acquisition_search.md; re-measured on model v2 in docs/acquisition_v2.md). With an empty history the first suggestion is
a prior sample (with a `prior`) or a uniform one, with no model call; an
`initial_design` ("centre", "sobol:K") places the first trials instead.

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

Conditional search spaces (`Condition`): a configuration holds exactly its
active parameters (suggestions, `tell`, `add_pending`, `predict` and `best`
alike), and the model reads each row's active mask beside it
(`Designer.active`), so an inactive parameter is not read as a value.

Persistence: `save`/`load` (and `to_json`/`from_json`, optformer/study_json.py)
keep the search space, options, trials, pending trials and the random state,
so a resumed study makes the same next suggestion as an uninterrupted one.

Layout: `Optimizer` is a facade over a `study.Study` (trials, pending trials,
numbering, validation), a `designer.Designer` (context -> posterior ->
acquisition search) and the model boundary `optformer.model.Backend`.

Constraints (`tell(params, value, constraints=[...])`, feasible when all
are <= 0, as Optuna's): a trial that violates one is *infeasible*; it keeps
its value in `trials` and the study file, enters the model's context as
infeasible (the model's infeasible class) and never counts for `best`. The
acquisition (EI or PI) is weighted by the predicted probability of
feasibility (constrained EI, Gardner et al., ICML 2014; Gelbart et al., UAI
2014): the model's p(feasible | x) times, per constraint, P(c_j(x) <= 0)
from the model conditioned on that constraint's told values (one context per
constraint, `Designer.constraint_log_feasible`). On a 3-D toy the second
factor lifts the feasible share of trials 20-39 from 0.13 to 0.72
(eval/constrained.py).

Several objectives (`goal=["minimize", "maximize"]`, `tell(params, [v1, v2])`):
the model conditions on one objective at a time (one context per objective);
the acquisition is the expected hypervolume improvement of Monte Carlo
samples of the per-objective predictive distributions over the Pareto front
(two objectives; a random Chebyshev scalarization, ParEGO, for more), times
p(feasible | x) (`optformer.multi_objective`); `best` is the Pareto front and
`predict` returns one predictive distribution per objective.

History handling (documented behaviour for bad or long input):
  * NaN, +-inf or None objectives (any of them, with several) are recorded as
    *infeasible* trials (`Trial.infeasible`); they stay in `trials` and enter
    the model's context as infeasible, so the optimizer steers away.
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

import os
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from optformer import priors as priors_lib
from optformer import search_space as ss
from optformer import study_json
from optformer.context import Context
from optformer.designer import DEFAULT_SEARCH, Designer, SearchConfig
from optformer.model import Backend
from optformer.study import MAX_ABS_OBJECTIVE, Study, Suggestion, Trial

# No JAX, flax or orbax here: the Backend imports them when the model is loaded (docs/cold_start.md), so
# `import optformer` and the search-space API stay light.
if TYPE_CHECKING:
  from optformer.model.inference import PFNEngine, PFNPredictive

__all__ = ["DEFAULT_SEARCH", "MAX_ABS_OBJECTIVE", "Optimizer", "SearchConfig", "Suggestion", "Trial"]
PROGRESS_MIN_BATCH = 8  # ask(n) shows a progress bar from this batch size on (when stderr is a terminal).


class Optimizer:
  """Zero-shot black-box optimizer over a search space.

  Args:
    space: the SearchSpace to optimize over.
    goal: "minimize" or "maximize" the objective, or a list of them, one per
      objective (at least two), for a multi-objective study.
    model: a model (`network.PFNSurrogate`), a checkpoint directory, or None
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
    search: pool sizes of "search" (`SearchConfig`); None for DEFAULT_SEARCH. With `trust_region=True` every
      candidate lies near the told trials, in a region that grows with their number (optformer/trust_region.py);
      its `output_warping` (any candidates mode) warps the told objectives before the model reads them for the
      acquisition (docs/output_warping.md); `predict` is never warped.
    acquisition: what ranks the candidates: "ei" (expected improvement,
      Jones et al. 1998; the default), "pi" (probability of improvement,
      Kushner 1964) or "ucb" (mean + sqrt(ucb_beta) std, Srinivas et al.
      2010). EI and PI are in the model's normalized units and are
      multiplied by p(feasible | x) (Gardner et al., ICML 2014). A study of
      several objectives ranks by expected hypervolume improvement instead
      (`optformer.multi_objective`).
    ucb_beta: beta of "ucb" (> 0).
    prior: parameter name -> `optformer.priors.Normal`, `Beta` or `Weights`, a belief
      about where good values lie (piBO); None for no prior.
    prior_beta: beta of piBO (> 0): the prior's weight is pi(x) ** (beta / n)
      after n trials. The paper sets beta to a tenth of the trial budget;
      the default 1.0 suits budgets of 10-50 trials: a confident, misleading
      prior is back to no-prior regret by about 30 trials on a 2-D quadratic
      and by 50 on held-out prior tasks (eval/pibo.py); larger beta trusts
      the prior longer.
    seed: seeds the suggestions (same seed and history -> same suggestion).
    initial_design: the first trials, placed without the model
      (`optformer.initial_design`): "none" (the default: the model from
      the first feasible trial on, a uniform or prior sample before it),
      "centre" (the first trial at the centre of the space, as OSS
      Vizier's GP-bandit; "center" too) or "sobol:K" (the first K trials
      from a scrambled Sobol' sequence, as Optuna's n_startup_trials).
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
    ValueError: bad goal (not "minimize"/"maximize", or a list of fewer than
      two) or candidate source, non-positive num_candidates,
      temperature or prior_beta, a prior that does not fit the space, a
      space with more parameters than the model supports (64 for the
      shipped model), model="" (None is the shipped model), or
      candidates="policy" (or a `search` with policy samples) with a model
      that has no policy, an unknown initial_design, or a search with
      output_warping other than "none" on a study of several objectives.
    TypeError: space is not a SearchSpace, initial_design is not a string, or model is neither a model, a
      path nor None.
    checkpoint.CheckpointError: a missing or corrupt checkpoint or an
      invalid config, or a retired model v1 checkpoint (the parameters,
      read on first use, raise it there if orbax cannot read them).
  """

  def __init__(
      self, space: ss.SearchSpace, goal: str | Sequence[str] = "minimize", *, model=None, num_candidates: int = 128,
      temperature: float = 1.0, candidates: str = "search", search: SearchConfig | None = None,
      acquisition: str = "ei", ucb_beta: float = 4.0, prior: Mapping[str, priors_lib.Belief] | None = None,
      prior_beta: float = 1.0, seed: int | None = None, warn_truncation: bool = True,
      compilation_cache: bool | str | os.PathLike = True, initial_design: str = "none",
  ):
    if not isinstance(space, ss.SearchSpace):
      raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
    self.study = Study(space, goal)  # ValueError: a bad goal.
    # The model boundary (optformer.model): a checkpoint's config is checked now (CheckpointError: missing,
    # corrupt, retired), its network loaded by the first call that needs it (docs/cold_start.md).
    self.backend = Backend.for_space(model, space, compilation_cache=compilation_cache)
    self.designer = Designer(
        self.backend, space, num_candidates=num_candidates, temperature=temperature, candidates=candidates,
        search=search, acquisition=acquisition, ucb_beta=ucb_beta, prior=prior, prior_beta=prior_beta,
        warn_truncation=warn_truncation, initial_design=initial_design)
    if self.study.num_objectives > 1 and self.designer.search.output_warping != "none":
      raise ValueError(f"search.output_warping={self.designer.search.output_warping!r} applies to a single "
                       "objective; this study has several. Use output_warping='none'.")
    self.rng = np.random.default_rng(seed)

  # -- What the study and the designer hold ------------------------------------

  space = property(lambda self: self.study.space, doc="The SearchSpace.")
  goal = property(lambda self: self.study.goal, doc='"minimize" or "maximize"; a list of them with several objectives.')
  trials = property(lambda self: self.study.trials, doc="The completed trials (`Trial`), in tell order.")
  model_path = property(lambda self: self.backend.path, doc="The checkpoint directory; None for an in-memory model.")
  search = property(lambda self: self.designer.search, doc="The pool sizes of candidates='search'.")
  num_candidates = property(lambda self: self.designer.num_candidates)
  temperature = property(lambda self: self.designer.temperature)
  candidates = property(lambda self: self.designer.candidates)
  acquisition = property(lambda self: self.designer.acquisition)
  ucb_beta = property(lambda self: self.designer.ucb_beta)
  prior = property(lambda self: self.designer.prior, doc="The piBO `priors.Prior`, or None.")
  prior_beta = property(lambda self: self.designer.prior_beta)
  initial_design = property(lambda self: self.designer.initial_design, doc='"none", "centre" or "sobol:K".')

  @property
  def study_id(self) -> str:
    """Marks this study's suggestions (`Suggestion.study`); kept by save/load."""
    return self.study.study_id

  @property
  def engine(self) -> PFNEngine:
    """The model's jitted engine (`optformer.model.Backend.engine`). A checkpoint's model is loaded on first use:
    here, or by the first `ask` or `predict` after a feasible trial is told."""
    return self.backend.engine

  # -- History ---------------------------------------------------------------

  def tell(self, params: Mapping[str, Any], value: Any, constraints: Sequence[float] | None = None) -> Trial:
    """Records a completed trial and returns it.

    `value` is the objective (a real number; NaN, +-inf or None for a failed,
    infeasible evaluation), or with several objectives a sequence of them,
    one per goal. `constraints`: None, or a sequence of real numbers; the
    trial is feasible when all are <= 0 (each finite). A trial that
    violates one is recorded with its value and `infeasible` set, is read by
    the model as infeasible, and never counts for `best`.

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
        value that is not a sequence of one number per objective (several
        objectives), constraints that are not a sequence of finite numbers, a
        suggestion that was already told, or a suggestion of another study.
        Nothing is recorded then.
    """
    return self.study.tell(params, value, constraints)

  def add_pending(self, params: Mapping[str, Any]) -> Suggestion:
    """Registers a configuration under evaluation elsewhere (e.g. by another worker).

    It is not proposed again, and it enters the context with a fantasized
    objective until it is told (or removed with `remove_pending`).

    Returns:
      The configuration as a Suggestion with its new trial number.

    Raises:
      ValueError / TypeError: params not in the search space.
    """
    return self.study.add_pending(params)

  def remove_pending(self, params: Mapping[str, Any]) -> None:
    """Forgets a pending trial (evaluation abandoned). Raises ValueError if it is not pending or of another study."""
    self.study.remove_pending(params)

  @property
  def pending(self) -> list[Suggestion]:
    """Configurations asked (or added) but not yet told, oldest first."""
    return self.study.suggestions()

  @property
  def best(self) -> tuple[dict, float] | list[tuple[dict, tuple]]:
    """(params, value) of the best feasible trial; with several objectives the Pareto front, a list of
    (params, values) of the feasible trials no other feasible trial dominates, in tell order. Raises
    ValueError if no trial is feasible."""
    return self.study.best

  def _model_context(self) -> tuple[Context, float | None]:
    """(the Context the model conditions on, the best told objective in the model's direction or None);
    see `Designer.context`."""
    return self.designer.context(self.study)

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
    taken = self.study.taken_keys()
    out, repeats = [], 0
    count = 1 if n is None else int(n)
    steps = range(count)
    if progress or (progress is None and count >= PROGRESS_MIN_BATCH):
      from tqdm.auto import tqdm

      steps = tqdm(steps, desc="ask", unit="suggestion", disable=None if progress is None else False, leave=False)
    for _ in steps:
      unit = self.designer.suggest(self.study, self.rng)
      out.append(self.study.add_pending(self.space.from_unit(unit)))
      repeats += self.study.key(out[-1]) in taken
      taken.add(self.study.key(out[-1]))
    if repeats:
      size = self.space.num_configurations
      held = f"the search space holds {size} configurations" if size is not None else "no fresh candidate was found"
      warnings.warn(
          f"ask returned {repeats} configuration(s) already told or pending: {held}, and {len(taken)} distinct ones "
          "are told or pending. Tell the pending trials first, or widen the search space.", stacklevel=2,
      )
    return out[0] if n is None else out

  def sample_policy(self, n: int = 1) -> list[dict[str, Any]]:
    """n configurations decoded from the model's policy given the study so far (told trials, and pending ones
    with fantasized objectives, as for `ask`); not registered as pending, and they may repeat told ones.

    The policy decodes a configuration parameter by parameter over numeric tokens with masks that allow only
    valid tokens (optformer/model/policy.py), so every sample is valid by construction: inside the bounds, on the
    integer levels, among the categories, inactive children left out; a forbidden one (`SearchSpace.forbidden`) is
    redrawn. `temperature` (of the Optimizer)
    divides its logits. Works on an empty study (the policy's prior over configurations).

    Returns:
      A list of n dicts name -> value of the parameter's type.

    Raises:
      ValueError: n not an int >= 1, or the model has no policy (`backend.capabilities.policy`).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
      raise ValueError(f"n must be an int >= 1, got {n!r}.")
    if not self.backend.capabilities.policy:
      raise ValueError("sample_policy needs a model with a policy head; this model has none "
                       "(backend.capabilities.policy is False).")
    return self.designer.sample_policy(self.study, self.rng, int(n))  # Forbidden samples redrawn.

  def predict(self, configs: Sequence[Mapping[str, Any]]) -> PFNPredictive | list[PFNPredictive]:
    """Predictive distributions of the objective at `configs`, in objective units; with several objectives a
    list of them, one per objective (each conditioned on that objective's context).

    Pending trials are in the context with fantasized objectives, as for `ask`.

    Returns:
      A `inference.PFNPredictive` of N = len(configs) distributions in
      objective units, in the goal's direction (mean, std, quantile, cdf,
      pdf, log_prob, expected_improvement, probability_of_improvement,
      upper_confidence_bound, given the trial is feasible, and p_feasible);
      its expected_improvement() and probability_of_improvement() default
      to the best value seen (of that objective).

    Raises:
      ValueError: no feasible trial yet (the objective's scale is unknown),
        or a config not in the search space.
    """
    return self.designer.predict(self.study, self.space.to_units(configs))

  # -- Persistence (optformer/study_json.py) -----------------------------------

  def to_json(self) -> dict:
    """The study as a JSON-serializable dict (format 1): space, options, trials, pending, random state, study id.

    "model" references the model: "shipped:<name>" for a model shipped with
    the package (e.g. "shipped:optformer-v2", the default; resolved against
    `checkpoint.SHIPPED_CHECKPOINTS` when loaded, so the file survives
    moving the checkout or the environment), the absolute checkpoint path
    for any other directory, or null when the optimizer was built from an
    in-memory model (pass `model=` to load).
    """
    return study_json.to_json(self)

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
    return study_json.from_json(cls, data, model=model)

  def save(self, path: str | os.PathLike) -> None:
    """Writes `to_json()` to `path` atomically (`study_files.write_atomic`: a temporary file, then rename)."""
    study_json.save(self, path)

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
    return study_json.load(cls, path, model=model)
