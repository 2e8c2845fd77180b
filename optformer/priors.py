"""User beliefs about where good parameter values lie (piBO, Hvarfner et al., ICLR 2022).

A *prior* maps parameter names to per-parameter beliefs; parameters without
one are uniform. The optimizer multiplies its acquisition by the prior
density raised to beta / n (n = number of completed trials, piBO Eq. 6):

    a_pi(x) = EI(x) * pi(x) ** (beta / n)

so the prior dominates the first suggestions and fades as evidence
accumulates. Each belief is mixed with the uniform distribution,
(1 - FLOOR) * belief + FLOOR * uniform with FLOOR = 0.1 (a defensive
mixture), so its density is bounded below and a wrong prior slows the
search down but cannot rule a region out: its penalty on the log scale is at
most log(max density / FLOOR) per parameter, times beta / n.

Densities are defined in the parameter's *unit space* (`to_unit`: linear in
[low, high], logarithmic for log-scale parameters; uniform over levels and
categories), so a `Normal` on a log-scale learning rate is a log-normal
belief in the learning rate.

Conditional spaces: a belief on a conditional parameter counts only where
the parameter is active. `log_density` sums over each configuration's active
parameters (an inactive one contributes 0, the uniform's log density
relative to itself), and `sample` draws every parameter (its belief or
uniform) and keeps the active ones, so a belief on a parent also moves how
often its children are active.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from optformer import search_space as ss


@dataclasses.dataclass(frozen=True)
class Normal:
  """A Gaussian belief centred on a parameter value, truncated to the parameter's range.

  For Float, Int and Discrete parameters.

  Args:
    mean: the value believed best, inside the parameter's range (in the
      parameter's own units, e.g. 1e-3 for a learning rate; on an Int
      parameter any number in its range, e.g. 5.5).
    width: standard deviation in unit space, a finite number > 0: the
      fraction of the range (of its logarithm for log-scale parameters)
      that one standard deviation spans. 0.1 is a confident belief, 0.3 a
      vague one; above 1 it is nearly uniform (ConfigSpace's NormalFloat
      with a wide sigma).
  """

  mean: Any
  width: float = 0.15

  def __post_init__(self):
    if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not 0 < self.width < math.inf:
      raise ValueError(f"Normal prior: width must be in (0, inf), a finite number > 0, got {self.width!r}.")


@dataclasses.dataclass(frozen=True)
class Beta:
  """A Beta(alpha, beta) belief on the parameter's unit interval (ConfigSpace's BetaFloat/BetaInteger).

  For Float and Int parameters: the unit value (linear in [low, high],
  logarithmic for log-scale parameters) follows Beta(alpha, beta), whose
  mode (alpha - 1) / (alpha + beta - 2) is the value believed best.

  Args:
    alpha, beta: shape parameters, finite numbers >= 1 (so the density is
      finite, as ConfigSpace requires).
  """

  alpha: float
  beta: float

  def __post_init__(self):
    for what, v in (("alpha", self.alpha), ("beta", self.beta)):
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1 <= v < math.inf:
        raise ValueError(f"Beta prior: {what} must be a finite number >= 1, got {v!r}.")


@dataclasses.dataclass(frozen=True)
class Weights:
  """A belief over the values of a Categorical or Discrete parameter.

  Args:
    weights: value -> positive weight, one entry for every value of the
      parameter (normalized to probabilities).
  """

  weights: Mapping[Any, float]


Belief = Normal | Beta | Weights

FLOOR = 0.1  # Weight of the uniform component mixed into every belief.


def _check(belief, p) -> None:
  if isinstance(belief, Normal):
    if isinstance(p, ss.Categorical):
      raise ValueError(f"Prior for {p.name!r}: a Normal belief needs a numeric parameter, {p.name!r} is categorical; use Weights.")
    try:
      _mean_unit(p, belief.mean)
    except (TypeError, ValueError) as e:
      raise ValueError(f"Prior for {p.name!r}: mean {belief.mean!r} is not a value of the parameter ({e}).") from None
  elif isinstance(belief, Beta):
    if not isinstance(p, (ss.Float, ss.Int)):
      raise ValueError(f"Prior for {p.name!r}: a Beta belief needs a Float or Int parameter, got {type(p).__name__}.")
  elif isinstance(belief, Weights):
    if not isinstance(p, (ss.Categorical, ss.Discrete)):
      raise ValueError(f"Prior for {p.name!r}: Weights need a Categorical or Discrete parameter, got {type(p).__name__}.")
    values = list(p.choices if isinstance(p, ss.Categorical) else p.values)
    unknown = [v for v in belief.weights if v not in values]
    missing = [v for v in values if v not in belief.weights]
    if unknown or missing:
      raise ValueError(f"Prior for {p.name!r}: Weights need exactly the values {values}; unknown {unknown}, missing {missing}.")
    bad = {v: w for v, w in belief.weights.items() if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0)}
    if bad:
      raise ValueError(f"Prior for {p.name!r}: every weight must be a finite number > 0 (a zero would forbid a value forever), got {bad}.")
  else:
    raise TypeError(f"Prior for {p.name!r}: expected optformer.priors.Normal, Beta or Weights, got {belief!r}.")


def _mean_unit(p, mean) -> float:
  """The unit value of a Normal belief's mean: `p.to_unit`, or on an Int any number in [low, high] (warped)."""
  if isinstance(p, ss.Int) and not isinstance(mean, bool) and isinstance(mean, (float, np.floating)):
    return ss.Float(p.name, p.low, p.high, log=p.log).to_unit(mean)
  return p.to_unit(mean)


class Prior:
  """Per-parameter beliefs over a search space: density and sampling.

  Args:
    space: the search space.
    beliefs: parameter name -> Normal or Weights; other parameters are uniform.

  Raises:
    ValueError: an unknown parameter name, a belief that does not fit its
      parameter (Normal on a categorical, a mean outside the range, weights
      missing a value or not positive).
  """

  def __init__(self, space: ss.SearchSpace, beliefs: Mapping[str, Belief]):
    unknown = sorted(set(beliefs) - set(space.names))
    if unknown:
      raise ValueError(f"Prior names unknown parameter(s) {unknown}; the search space has {space.names}.")
    for name, belief in beliefs.items():
      _check(belief, space[name])
    self.space = space
    self.beliefs = dict(beliefs)

  def _unit_normal(self, p, belief: Normal | Beta):
    """scipy.stats.truncnorm of a Normal belief on [0, 1], or the beta of a Beta belief (scipy.stats is imported
    here: ~0.7 s, Normal and Beta priors only)."""
    from scipy import stats

    if isinstance(belief, Beta):
      return stats.beta(belief.alpha, belief.beta)
    mu = _mean_unit(p, belief.mean)
    a, b = (0.0 - mu) / belief.width, (1.0 - mu) / belief.width
    return stats.truncnorm(a, b, loc=mu, scale=belief.width)

  def _probs(self, p, belief: Weights) -> np.ndarray:
    values = list(p.choices if isinstance(p, ss.Categorical) else p.values)
    w = np.array([float(belief.weights[v]) for v in values])
    return w / w.sum()

  def log_density(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """float64 [N]: log prior density of each configuration, relative to uniform.

    Per parameter: log((1 - FLOOR) * belief + FLOOR), with the belief as a
    unit-space density (Normal) or as mass times the number of values
    (Weights), so a uniform belief scores 0.
    """
    out = np.zeros(len(configs))
    for name, belief in self.beliefs.items():
      p = self.space[name]
      has = np.array([name in c for c in configs], bool)  # False where the parameter is inactive.
      held = [c[name] for c in configs if name in c]
      if isinstance(belief, (Normal, Beta)):
        dens = self._unit_normal(p, belief).pdf(np.array([p.to_unit(v) for v in held]))
      else:
        values = list(p.choices if isinstance(p, ss.Categorical) else p.values)
        probs = self._probs(p, belief) * len(values)
        dens = np.array([probs[values.index(p.validate(v))] for v in held])
      out[has] += np.log((1 - FLOOR) * dens + FLOOR)
    return out

  def sample(self, rng: np.random.Generator, num: int) -> list[dict[str, Any]]:
    """`num` configurations drawn from the beliefs (uniform for parameters without one; without the floor).

    In a conditional space each configuration holds only its active parameters (module docstring). Forbidden
    configurations (`SearchSpace.forbidden`) are redrawn, up to 20 rounds of `num` draws: fewer than `num`
    come back only when the beliefs and the clauses nearly exclude each other.
    """
    if not self.space.forbidden:
      return self._draw(rng, num)
    kept = []
    for _ in range(20):
      kept += [c for c in self._draw(rng, num) if not self.space.is_forbidden(c)]
      if len(kept) >= num:
        break
    return kept[:num]

  def _draw(self, rng: np.random.Generator, num: int) -> list[dict[str, Any]]:
    """`sample` without the forbidden clauses."""
    if self.space.is_conditional:
      return self._sample_tree(rng, num)
    configs = [self.space.sample(rng) for _ in range(num)]
    for name, belief in self.beliefs.items():
      p = self.space[name]
      if isinstance(belief, (Normal, Beta)):
        u = self._unit_normal(p, belief).rvs(size=num, random_state=rng)
        vals = [p.from_unit(float(x)) for x in u]
      else:
        values = list(p.choices if isinstance(p, ss.Categorical) else p.values)
        vals = [values[i] for i in rng.choice(len(values), size=num, p=self._probs(p, belief))]
      for c, v in zip(configs, vals):
        c[name] = v
    return configs

  def _sample_tree(self, rng: np.random.Generator, num: int) -> list[dict[str, Any]]:
    """`sample` in a conditional space: every slot drawn in unit form, then decoded (inactive ones dropped)."""
    u = np.array([[rng.integers(p.num_values) if p.kind == ss.KIND_CATEGORICAL else rng.random() for p in self.space]
                  for _ in range(num)], np.float64).reshape(num, len(self.space))
    drawn = {}
    for name, belief in self.beliefs.items():
      p, j = self.space[name], self.space.names.index(name)
      if isinstance(belief, (Normal, Beta)):
        drawn[name] = [p.from_unit(float(x)) for x in self._unit_normal(p, belief).rvs(size=num, random_state=rng)]
      else:
        values = list(p.choices if isinstance(p, ss.Categorical) else p.values)
        drawn[name] = [values[i] for i in rng.choice(len(values), size=num, p=self._probs(p, belief))]
      u[:, j] = [p.to_unit(v) for v in drawn[name]]
    configs = [self.space.from_unit(row) for row in u]
    for name, vals in drawn.items():  # The drawn values themselves, not their unit round trip.
      for c, v in zip(configs, vals):
        if name in c:
          c[name] = v
    return configs

  def to_json(self) -> dict:
    """JSON-serializable form: {name: {"normal": {...}}, {"beta": {...}} or {"weights": [[value, w], ...]}}."""
    out = {}
    for name, b in self.beliefs.items():
      if isinstance(b, Normal):
        out[name] = {"normal": {"mean": b.mean, "width": b.width}}
      elif isinstance(b, Beta):
        out[name] = {"beta": {"alpha": b.alpha, "beta": b.beta}}
      else:
        out[name] = {"weights": [[v, w] for v, w in b.weights.items()]}
    return out

  @classmethod
  def from_json(cls, space: ss.SearchSpace, data: Mapping[str, Any]) -> "Prior":
    """Inverse of `to_json`. Raises ValueError on an unknown belief type."""
    beliefs = {}
    for name, item in data.items():
      if "normal" in item:
        beliefs[name] = Normal(**item["normal"])
      elif "beta" in item:
        beliefs[name] = Beta(**item["beta"])
      elif "weights" in item:
        beliefs[name] = Weights({v: w for v, w in item["weights"]})
      else:
        raise ValueError(f"Prior for {name!r}: expected a 'normal', 'beta' or 'weights' entry, got {sorted(item)}.")
    return cls(space, beliefs)
