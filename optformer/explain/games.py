"""Hyperparameter importance from the in-context surrogate: HyperSHAP's games and a variance (fANOVA-style) view.

HyperSHAP (Wever et al., "HyperSHAP: Shapley Values and Interactions for
Explaining Hyperparameter Optimization", 2025) explains a study with
cooperative games whose players are the D parameters. Here a coalition S
is scored by the model's predictive mean m, in *gain* units: objective
units signed so that larger is better (sign = +1 to maximize, -1 to
minimize), relative to a reference configuration l^0:

  ablation    v(S) = sign * (m(l*_S, l^0_-S) - m(l^0))           l*: the incumbent (best trial)
  tunability  v(S) = max_k sign * (m(l^k_S, l^0_-S) - m(l^0))     l^k: candidates; l^0 is one, so v(S) >= 0

(for tunability HyperSHAP maximizes over l_S; the candidates here are the
observed trials plus uniform samples of the space). All 2^D coalitions are
scored, in a few fixed-shape model calls, and the Shapley values and
pairwise Shapley interactions are exact (`optformer.explain.shapley`).
Positive values mean "moving this parameter improves the objective".

`variance_importance` is a second view: the share of the variance of the
predicted objective explained by each parameter's main effect (and,
optionally, each pair's second-order effect), as fANOVA does (Hutter et
al., ICML 2014), computed from partial dependences over the observed
configurations instead of a random forest's exact marginals.

Conditional search spaces: a coalition's configuration takes each parameter
from its side (l* or l^k inside S, l^0 outside) and is then completed
(`study.complete`): parameters switched off are dropped, and one switched
on that its side lacks (inactive there) takes the centre of its range. So a
child whose parent stays at a value that switches it off changes nothing
in that coalition. Variance shares average over the configurations where
the parameter is active (`pdp`'s rule).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping

import numpy as np

from optformer.explain import pdp as pdp_lib
from optformer.explain import shapley
from optformer.explain import study as study_lib

GAMES = ("ablation", "tunability")
DEFAULT_SAMPLES = 32  # Uniform samples added to the observed trials as tunability candidates.


@dataclasses.dataclass(frozen=True)
class Importance:
  """Importance of each parameter and of each pair.

  Attributes:
    game: "ablation", "tunability" or "variance".
    values: parameter name -> Shapley value (gain units: objective units,
      positive = better in the goal's direction) for the games; share of the
      predicted objective's variance in [0, 1] for "variance". In the space's order.
    interactions: (name_a, name_b) -> pairwise Shapley interaction (gain
      units), or second-order variance share for "variance" (empty unless
      asked for); pairs in the space's order, a before b.
    goal: the study's "minimize" or "maximize".
    reference: the reference configuration l^0 (None for "variance").
    target: the incumbent l* for "ablation", else None.
    coalition_values: float64 [2^D] v(S) by bit mask (bit i = i-th
      parameter of the space) for the games; empty for "variance".
  """

  game: str
  values: dict[str, float]
  interactions: dict[tuple[str, str], float]
  goal: str
  reference: dict[str, Any] | None = None
  target: dict[str, Any] | None = None
  coalition_values: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

  def ranking(self) -> list[str]:
    """Parameter names from the most to the least important (by |value|)."""
    return sorted(self.values, key=lambda n: -abs(self.values[n]))

  def to_json(self) -> dict:
    """A JSON-able dict; interaction keys are "a,b"."""
    return {
        "game": self.game, "goal": self.goal, "values": self.values,
        "interactions": {f"{a},{b}": v for (a, b), v in self.interactions.items()},
        "reference": self.reference, "target": self.target, "coalition_values": self.coalition_values.tolist(),
    }


def _mix(space, mask: int, inside: Mapping[str, Any], outside: Mapping[str, Any]) -> dict[str, Any]:
  """The configuration with the parameters of `mask` from `inside` and the rest from `outside`, completed in a
  conditional space (module docstring)."""
  out = {}
  for i, n in enumerate(space.names):
    side = inside if (mask >> i) & 1 else outside
    if n in side:
      out[n] = side[n]
  return study_lib.complete(space, out)


def importance(study, game: str = "ablation", *, reference: Mapping[str, Any] | None = None,
               num_samples: int = DEFAULT_SAMPLES, seed: int = 0) -> Importance:
  """Shapley values and pairwise interactions of HyperSHAP's ablation or tunability game (module docstring).

  Args:
    study: an optformer.Optimizer, a fitted optformer.Surrogate, or an
      optuna.Study (its completed trials; needs optuna installed).
    game: "ablation" (which parameters explain the gain from the reference
      to the incumbent) or "tunability" (which parameters are worth tuning
      from the reference).
    reference: the reference configuration l^0; None for the study's first
      feasible trial (an optformer SearchSpace carries no defaults).
    num_samples: tunability only: uniform samples of the space added to
      the observed trials as candidates (>= 0).
    seed: seeds those samples.

  Returns:
    An Importance. Cost: 2^D predictions for ablation, 2^D (n + num_samples
    + 1) for tunability (fewer where coalitions repeat a configuration),
    scored 1024 at a time.

  Raises:
    ValueError: a game not in ("ablation", "tunability"), a reference not in
      the space, a negative num_samples, a space with more than 16
      parameters, or a study with fewer than 2 feasible trials.
    TypeError: `study` is none of the accepted types.
  """
  if game not in GAMES:
    raise ValueError(f"game must be one of {GAMES}, got {game!r}.")
  if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
    raise ValueError(f"num_samples must be an int >= 0, got {num_samples!r}.")
  view = study_lib.as_study(study)
  names, d = view.space.names, len(view.space)
  if d > shapley.MAX_PLAYERS:
    raise ValueError(f"The search space has {d} parameters; exact Shapley values over 2^D coalitions support at "
                     f"most {shapley.MAX_PLAYERS}.")
  if reference is None:
    ref = dict(view.configs[0])
  else:
    try:
      ref = view.space.validate(reference)
    except (TypeError, ValueError) as e:
      raise ValueError(f"reference is not a configuration of the search space: {e}") from e
  masks = range(2**d)
  if game == "ablation":
    target = view.incumbent
    configs = [_mix(view.space, s, target, ref) for s in masks]  # [2^D]
    mean_C, _ = view.predict(configs)
    v_C = view.sign * (mean_C - mean_C[0])
  else:
    target = None
    rng = np.random.default_rng(seed)
    candidates = [ref] + list(view.configs) + [view.space.sample(rng) for _ in range(int(num_samples))]  # [K]
    configs = [_mix(view.space, s, c, ref) for s in masks for c in candidates]  # [2^D * K]
    mean, _ = view.predict(configs)
    gain_CxK = view.sign * (mean.reshape(2**d, len(candidates)) - mean[0])
    v_C = gain_CxK.max(axis=1)
  phi_D, inter_DxD = shapley.shapley_values(v_C), shapley.shapley_interactions(v_C)
  return Importance(
      game=game, values={n: float(phi_D[i]) for i, n in enumerate(names)},
      interactions={(names[i], names[j]): float(inter_DxD[i, j]) for i, j in itertools.combinations(range(d), 2)},
      goal=view.goal, reference=ref, target=target, coalition_values=v_C,
  )


def _share(effect, ice) -> float:
  """Var(effect) / Var(ice) over their non-NaN entries (NaN: a parameter inactive there); 0.0 without spread."""
  effect, ice = effect[~np.isnan(effect)], ice[~np.isnan(ice)]
  if effect.size < 2 or ice.size < 2 or not ice.var() > 0:
    return 0.0
  return float(effect.var() / ice.var())


def variance_importance(study, *, grid: int = 10, pairs: bool = False) -> Importance:
  """Share of the predicted objective's variance explained by each parameter (fANOVA-style, from partial dependences).

  With c_j the partial dependence on parameter j over its grid (uniform in
  unit space; every category once), the observed configurations l^(i), and
  m the predicted mean:

    values[j]           = Var_g[c_j(g)] / V_j        (first-order effect)
    interactions[j, k]  = Var_{g,h}[c_jk(g, h) - c_j(g) - c_k(h)] / V_jk   (pairs=True)

  V_j = Var_{g,i}[m(l_j = g, l_C^(i))] is the variance of the objective under
  "parameter j uniform, the rest as observed" (its ICE points pooled); V_jk
  the same with the pair on its grid. By the law of total variance,
  Var_g[c_j] <= V_j, so every first-order share is in [0, 1]; for an additive
  objective V_j is nearly the same for every j (the grid's spread of j
  replaces the observed spread), so the shares are comparable across
  parameters. They need not sum to 1.

  Args:
    study: as for `importance`.
    grid: grid points per numeric parameter (int >= 2).
    pairs: also compute the second-order shares of all D(D-1)/2 pairs
      (costs n * grid^2 predictions per pair).

  Returns:
    An Importance with game "variance".

  Raises:
    ValueError: a grid that is not an int >= 2, or a study with fewer than 2
      feasible trials. TypeError: `study` is none of the accepted types.
  """
  if not pdp_lib._is_count(grid) or grid < 2:
    raise ValueError(f"grid must be an int >= 2, got {grid!r}.")
  view = study_lib.as_study(study)
  names = view.space.names
  mains = {n: pdp_lib.partial_dependence(view, n, grid=grid) for n in names}
  share = lambda effect, ice: _share(effect, ice)
  values = {n: share(r.mean, r.ice) for n, r in mains.items()}
  interactions = {}
  if pairs:
    for a, b in itertools.combinations(names, 2):
      joint = pdp_lib.partial_dependence(view, (a, b), grid=(mains[a].grid, mains[b].grid))
      residual = joint.mean - mains[a].mean[:, None] - mains[b].mean[None, :]
      interactions[(a, b)] = share(residual, joint.ice)
  return Importance(game="variance", values=values, interactions=interactions, goal=view.goal)
