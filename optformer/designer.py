"""The designer: a study's context -> the model's posterior -> the acquisition search -> the next configuration.

`Designer` is the suggesting half of `optformer.Optimizer` (the trial store is optformer/study.py). It reads a
`Study`, builds the context the model conditions on, and asks the model only through the boundary
(`optformer.model.Backend` / `Posterior`):

  * context: the told trials (NaN for infeasible), then the pending ones with the posterior mean given the told
    ones as a fantasized objective (the kriging believer, Ginsbourger et al. 2010); past the model's
    `max_context`, the best half and the most recent rows (`context.truncate`), with one warning per study;
  * candidates: `acquisition_search.search` over the pool of `search` (uniform points, local moves, prior samples
    and, when the backend has the `policy` capability, policy samples), or the "policy" / "random" pools;
  * output warping (`SearchConfig.output_warping`, optformer/output_warping.py): for the acquisition only, the
    told objectives pass a monotone warp before the model reads them (the best stays the best and is EI's
    incumbent in warped units); `predict` reads them unwarped;
  * score: the posterior's acquisition (EI, PI or UCB; EI and PI times p(feasible | x) and, with told
    constraints, P(c_j(x) <= 0) of each constraint from its own context: constrained EI) plus
    (prior_beta / n) log pi(x) with a piBO prior; with several objectives, one context (and posterior) per
    objective and the multi-objective score of `multi_objective.scorer` instead.

Initial design (`initial_design`, optformer/initial_design.py): the trials numbered below the design's size are
its points ("centre": the centre of the space; "sobol:K": a scrambled Sobol' sequence), with no model call. After
the design, or without one, a study with no feasible trial yet (no objective scale) gets a prior, policy or uniform
sample; the model ranks candidates from the first feasible trial on.

Conditional spaces: every unit row the model reads (context, pending fantasies, candidates, predict queries) goes
with its active mask, `space.unit_active_mask(rows)` (`active`), so the model reads a switched-off parameter as
inactive, not as the INACTIVE_UNIT value its slot holds; candidates are valid rows (`acquisition_search`).

Forbidden clauses (`SearchSpace.forbidden`): no candidate, first suggestion or policy sample is forbidden (the
acquisition search drops them; `sample_policy` redraws).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Mapping

import numpy as np

from optformer import acquisition_search
from optformer import multi_objective
from optformer import output_warping
from optformer import context as context_lib
from optformer import initial_design as design_lib
from optformer import priors as priors_lib
from optformer.context import Context
from optformer.model import ACQUISITIONS, Backend
from optformer.study import Study

if TYPE_CHECKING:
  from optformer.model.inference import PFNPredictive

SearchConfig = acquisition_search.SearchConfig
DEFAULT_SEARCH = SearchConfig()  # The default pool of candidates="search" (docs/acquisition_search.md).
CANDIDATES = ("policy", "random", "search")


class Designer:
  """Suggestions and predictions for a Study on a Backend (arguments as `optformer.Optimizer`'s).

  Raises:
    ValueError: an unknown candidate source, acquisition or initial design (`InitialDesign.parse`), non-positive
      num_candidates, temperature, ucb_beta or prior_beta, a prior that does not fit the space, or policy samples
      (candidates="policy" or search.num_policy > 0) from a backend without the `policy` capability.
    TypeError: search is not a SearchConfig, or initial_design not a string.

  Attributes:
    design_seed: scrambles the Sobol' sequence of a "sobol:K" design; drawn from the study's generator at the
      first design suggestion (None before), and kept with the study (optformer/study_json.py).
  """

  def __init__(self, backend: Backend, space, *, num_candidates: int = 128, temperature: float = 1.0,
               candidates: str = "search", search: SearchConfig | None = None, acquisition: str = "ei",
               ucb_beta: float = 4.0, prior: Mapping[str, priors_lib.Belief] | None = None, prior_beta: float = 1.0,
               warn_truncation: bool = True, initial_design: str = "none"):
    self.design = design_lib.InitialDesign.parse(initial_design)
    if num_candidates < 1:
      raise ValueError(f"num_candidates must be >= 1, got {num_candidates}.")
    if candidates not in CANDIDATES:
      raise ValueError(f"candidates must be 'policy', 'random' or 'search', got {candidates!r}.")
    if acquisition not in ACQUISITIONS:
      raise ValueError(f"acquisition must be 'ei', 'pi' or 'ucb', got {acquisition!r}.")
    for name, value in (("ucb_beta", ucb_beta), ("temperature", temperature), ("prior_beta", prior_beta)):
      if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    if search is not None and not isinstance(search, SearchConfig):
      raise TypeError(f"search must be an optformer.SearchConfig or None, got {type(search).__name__}.")
    self.backend, self.space = backend, space
    self.search = search or DEFAULT_SEARCH
    has_policy = backend.capabilities.policy
    if candidates == "policy" and not has_policy:
      raise ValueError("candidates='policy' needs a model with a policy; this model has none. Use 'search' or 'random'.")
    if self.search.num_policy and not has_policy:
      raise ValueError(f"search.num_policy={self.search.num_policy} asks for policy samples; this model has no policy. "
                       "Set num_policy=0.")
    self.num_candidates, self.temperature, self.candidates = num_candidates, temperature, candidates
    self.acquisition, self.ucb_beta = acquisition, float(ucb_beta)
    self.prior = priors_lib.Prior(space, prior) if prior else None
    self.prior_beta = float(prior_beta)
    self.warned_truncation = not warn_truncation
    self.design_seed: int | None = None

  @property
  def initial_design(self) -> str:
    """The initial design's option string: "none", "centre" or "sobol:K"."""
    return str(self.design)

  # -- Context ---------------------------------------------------------------

  def _fit(self, rows: list) -> Context:
    """The Context of (unit row, y) rows: truncated past the model's context, with one warning per study."""
    limit = self.backend.capabilities.max_context
    if len(rows) > limit and not self.warned_truncation:
      warnings.warn(context_lib.truncation_warning(len(rows), limit), stacklevel=5)
      self.warned_truncation = True
    return Context.from_rows(rows, len(self.space), limit)

  def context(self, study: Study, objective: int = 0, warped: bool = False) -> tuple[Context, float | None]:
    """(the Context the model conditions on, the best told objective in the model's direction or None), of the
    objective of that index (one context per objective). `warped`: the told objectives under the search's
    `output_warping` (optformer/output_warping.py; the acquisition's context), the best one and the pending
    trials' fantasies in the warped units too; else in user units (predictions)."""
    rows = study.told_rows(objective)
    if warped and self.search.output_warping != "none":
      values = output_warping.warp([y for _, y in rows], self.search.output_warping)
      rows = [(u, float(v)) for (u, _), v in zip(rows, values)]
    told = Context.from_rows(rows, len(self.space))
    if not study.pending or told.best is None:
      return self._fit(rows), told.best
    pend = study.pending_units()
    limit = self.backend.capabilities.max_context
    base = Context.from_rows(rows, len(self.space), max(limit - len(pend), 1))
    means = self.condition(base).mean(pend, self.active(pend))
    return self._fit(rows + list(zip(pend, means))), told.best

  def active(self, units) -> np.ndarray | None:
    """bool [M, D]: the active mask of unit rows float [M, D] (`SearchSpace.unit_active_mask`); None (all
    active) for a space without conditions."""
    if not self.space.is_conditional:
      return None
    return self.space.unit_active_mask(np.asarray(units, np.float64).reshape(-1, len(self.space)))

  def condition(self, context: Context):
    """The backend's Posterior on `context`, with the context's active mask."""
    return self.backend.condition(context, self.active(context.units))

  # -- Suggest and predict ---------------------------------------------------

  def suggest(self, study: Study, rng: np.random.Generator) -> np.ndarray:
    """float64 [D]: the unit form of the next configuration for `study` (a design point, else the best fresh
    candidate)."""
    taken = [u for u, _ in study.told_rows()] + study.pending_units()
    seen = set(self.backend.fresh_keys(taken)) if taken else set()
    is_fresh = lambda units: np.array([k not in seen for k in self.backend.fresh_keys(units)], bool)
    if self.design.covers(len(study.trials) + len(study.pending)):
      if self.design_seed is None and self.design.kind == "sobol":
        self.design_seed = int(rng.integers(2**31))
      unit = self.design.suggest(self.space, rng, self.design_seed or 0, is_fresh)
      if unit is not None:
        return unit
    context, best = self.context(study, warped=True)
    config = self.search_config()
    prior_samples = lambda: np.array([self.space.to_unit(c) for c in self.prior.sample(rng, self.num_candidates)
                                      ]).reshape(-1, len(self.space))
    if best is None:  # No scale yet: the first fresh prior, policy or uniform sample (no model call for these two).
      if self.prior is not None:
        first = prior_samples()
      elif config.num_policy:
        first = self.condition(context).sample_policy(rng, config.num_policy, self.temperature)
      else:
        first = acquisition_search.uniform_points(self.space, rng, max(self.num_candidates, 64))
      if self.space.forbidden:  # Prior and policy samples may be forbidden: uniform points then.
        first = first[~self.space.unit_forbidden(first)]
        first = first if len(first) else acquisition_search.uniform_points(self.space, rng, 64)
      return first[int(np.argmax(is_fresh(first)))]
    posterior = self.condition(context)
    extra = [posterior.sample_policy(rng, config.num_policy, self.temperature)] if config.num_policy else []
    if self.prior is not None:
      extra.append(prior_samples())
    n = len(study.trials)
    feasibility = self.constraint_log_feasible(study)
    ascend = None  # Gradient refinement (SearchConfig.grad_top): of single-objective EI only.
    if study.num_objectives == 1 and self.acquisition == "ei" and config.grad_top:
      ascend = lambda units, movable, steps, radius: posterior.ascend_ei(
          units, best, movable, steps, self.active(units), radius)[0]
    if study.num_objectives > 1:  # One context per objective, scored together (optformer/multi_objective.py).
      posteriors = [posterior] + [self.condition(self.context(study, k)[0]) for k in range(1, study.num_objectives)]
      feasible = [t for t in study.trials if not t.infeasible]
      score = multi_objective.scorer(posteriors, study.losses(feasible), rng)
      acquisition = lambda units: self._with_prior(units, score(units, self.active(units)) + feasibility(units), n)
      top = [study.unit(t.number, t.params) for t in study.pareto_front()]
    else:
      acquisition = lambda units: self._with_prior(units, posterior.acquisition(
          units, best, self.acquisition, self.ucb_beta, active=self.active(units)) + feasibility(units), n)
      feasible = [t for t in study.trials if not t.infeasible]
      top = [study.unit(t.number, t.params) for t in sorted(feasible, key=lambda t: -study.internal(t.value))]
    told = [u for u, _ in study.told_rows()] if config.trust_region else None  # The trust region's centres.
    unit, _, _ = acquisition_search.search(
        self.space, rng, acquisition, config, top, is_fresh, np.concatenate(extra) if extra else None, ascend, told)
    return unit

  def sample_policy(self, study: Study, rng: np.random.Generator, n: int) -> list[dict]:
    """n configurations decoded from the policy given the study's context (`Optimizer.sample_policy`); forbidden
    samples are redrawn (ValueError if 20 batches leave fewer than n allowed)."""
    posterior, kept = self.condition(self.context(study)[0]), []
    for _ in range(20):
      units = posterior.sample_policy(rng, n, self.temperature)
      kept += [u for u, bad in zip(units, self.space.unit_forbidden(units)) if not bad]
      if len(kept) >= n:
        return [self.space.from_unit(u) for u in kept[:n]]
    raise ValueError(f"The policy proposed forbidden configurations in 20 batches of {n}; only {len(kept)} were "
                     f"allowed by the clauses {[c.describe() for c in self.space.forbidden]}.")

  def constraint_log_feasible(self, study: Study):
    """units float [M, D] -> float [M]: sum over constraints j of log P(c_j(x) <= 0), each constraint's values
    predicted by the model conditioned on them (one context per constraint, of the trials that told it; Gardner
    et al., ICML 2014, model each constraint so); zeros without constraints. Added to the acquisition of EI and
    PI (log scores), on top of the model's own p(feasible | x) from the objective's context."""
    told = [t for t in study.trials if t.constraints]
    if not told or self.acquisition == "ucb":
      return lambda units: 0.0
    posteriors = []
    for j in range(max(len(t.constraints) for t in told)):
      rows = [(study.unit(t.number, t.params), -t.constraints[j]) for t in told if len(t.constraints) > j]
      posteriors.append(self.condition(self._fit(rows)))

    def log_feasible(units) -> np.ndarray:
      active = self.active(units)
      return sum(np.log(np.maximum(p.predict(units, active).probability_of_improvement(0.0), 1e-300))
                 for p in posteriors)

    return log_feasible

  def search_config(self) -> SearchConfig:
    """The acquisition search of the `candidates` mode: "search" (the pool of `search`), "policy" or "random"."""
    if self.candidates == "policy":
      return SearchConfig(num_random=0, num_local=0, rounds=0, num_policy=self.num_candidates)
    if self.candidates == "random":
      return SearchConfig(num_random=self.num_candidates, num_local=0, rounds=0)
    return self.search

  def _with_prior(self, units, score, num_trials: int) -> np.ndarray:
    """score + (prior_beta / n) log pi(x) (piBO, Hvarfner et al. 2022); score itself without a prior."""
    if self.prior is None:
      return score
    configs = [self.space.from_unit(u) for u in units]
    return score + self.prior_beta / max(num_trials, 1) * self.prior.log_density(configs)

  def predict(self, study: Study, units) -> PFNPredictive | list[PFNPredictive]:
    """The predictive distribution at float [M, D] unit rows in objective units, in the study's goal direction,
    its improvement defaulting to the study's best value; with several objectives a list of them, one per
    objective (each from its own context). ValueError: no feasible trial yet."""
    out = []
    for k, goal in enumerate(study.goals):
      context, best = self.context(study, k)
      if best is None:
        raise ValueError("predict needs at least one feasible trial to set the objective's scale.")
      pick = max if goal == "maximize" else min
      best_value = pick(t.values[k] for t in study.trials if not t.infeasible)
      out.append(with_best(self.condition(context).predict(units, self.active(units), goal=goal), best_value))
    return out[0] if study.num_objectives == 1 else out


def with_best(dist: PFNPredictive, best: float) -> PFNPredictive:
  """`dist` with its expected_improvement() and probability_of_improvement() defaulting to `best` (objective units)."""
  dist.best = best
  return dist
