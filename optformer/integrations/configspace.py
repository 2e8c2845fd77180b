"""ConfigSpace integration: search-space conversion and Configuration decoding.

`from_configspace` / `to_configspace`, one hyperparameter at a time (and
`to_configuration` / `from_configuration` between a suggestion's params and a
`ConfigSpace.Configuration`):

| ConfigSpace                                 | optformer                       |
| ------------------------------------------- | ------------------------------- |
| UniformFloatHyperparameter(lower, upper, log)   | Float(low, high, log)       |
| UniformIntegerHyperparameter(lower, upper, log) | Int(low, high, log)         |
| NormalFloat/NormalInteger(mu, sigma, ...)   | Float/Int + prior Normal(mu, width) |
| BetaFloat/BetaInteger(alpha, beta, ...)     | Float/Int + prior Beta(alpha, beta) |
| CategoricalHyperparameter(choices, weights) | Categorical(choices) + prior Weights (unequal weights) |
| OrdinalHyperparameter, increasing numbers   | Discrete(numbers)               |
| OrdinalHyperparameter, any other sequence   | Categorical(sequence, ordered=True) |
| Constant, or a one-value categorical/ordinal | SearchSpace.constants[name]    |
| default_value other than ConfigSpace's own  | the parameter's `default`       |

Priors (piBO, `optformer.priors`): `prior_from_configspace(cs)` gives the
beliefs to pass as `Optimizer(prior=...)`; `to_configspace(space,
prior=...)` writes them back. A Normal's `width` is ConfigSpace's
vectorized sigma (sigma / (upper - lower); for log scale
|log(lower + sigma)| / log(upper / lower), as ConfigSpace's
`UnitScaler.vectorize_size`), so both sides sample the same truncated
normal on the unit interval.

Forbidden clauses (`configspace_forbidden.py`): ForbiddenEqualsClause,
ForbiddenInClause, their ForbiddenAndConjunction, ForbiddenOrConjunction
(one `Forbidden` per alternative) and the Equals/LessThan/GreaterThan(Equals)
relations become `Forbidden` clauses of the SearchSpace; they are written
back as Equals/In clauses, their AndConjunction and the relations.

Conditions (`configspace_conditions.py`, both ways; one condition object per child in ConfigSpace; its literals must all
name one parent, since an optformer parameter has one parent):

| ConfigSpace                                       | optformer                           |
| ------------------------------------------------- | ------------------------------------------ |
| EqualsCondition(child, parent, v)                 | Condition(parent, [v])                     |
| InCondition(child, parent, [v, ...])              | Condition(parent, [v, ...])                |
| GreaterThan/LessThanCondition (or their And-      | Condition(parent, greater_than=g,          |
| Conjunction) on a Float or Integer parent         |           less_than=l)                     |
| any other single-parent condition or conjunction  | Condition(parent, [the values that         |
| (NotEquals, OrConjunction, any condition on an    |           satisfy it])                     |
| Ordinal) on a parent with finitely many values    |                                            |
| a condition on a constant parent                  | none if it holds (the child is a root); an |
|                                                   | error if it never does                     |

`to_configspace` writes Equals (one value), In (several, in the parent's
order), GreaterThan/LessThan (and their AndConjunction) on Float and Int
parents, and In on a Discrete parent with a range; so Equals, In and
ranges round trip exactly (In's values in the parent's order), the rest as
the equivalent In.

So ConfigSpace -> optformer -> ConfigSpace keeps every hyperparameter
above (a one-value categorical or ordinal comes back as a Constant), their
defaults, priors (through `prior_from_configspace` and `to_configspace(...,
prior=)`), conditions and forbidden clauses. ConfigSpace orders
hyperparameters by name (parents before their children), so the
SearchSpace comes out in that order too. `meta` is not carried.

Rejected with a ValueError that names the offending parts and values:
conditions on several parents or that no value of a Float parent reduces to
a range (e.g. NotEquals on a Float), forbidden clauses optformer cannot
express (value comparisons such as ForbiddenLessThanClause, relations
between a categorical and a number, a clause on a constant that always
holds), a Normal mu outside [lower, upper], a categorical weight of 0, and
quantized (`q`) hyperparameters (ConfigSpace >= 1.0 removed `q`; checked
for objects that still carry one). `to_configspace` refuses priors
ConfigSpace cannot hold (Weights on a Discrete or ordered Categorical, a
Normal on a Discrete).
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Mapping

import ConfigSpace as CS
import numpy as np

from optformer import conditions
from optformer import priors
from optformer import search_space as ss
from optformer.integrations import configspace_forbidden
from optformer.integrations.configspace_conditions import _plain, constant_value, to_condition, to_cs_condition

_NORMAL = (CS.NormalFloatHyperparameter, CS.NormalIntegerHyperparameter)
_BETA = (CS.BetaFloatHyperparameter, CS.BetaIntegerHyperparameter)
_FLOAT = (CS.UniformFloatHyperparameter, CS.NormalFloatHyperparameter, CS.BetaFloatHyperparameter)
_INT = (CS.UniformIntegerHyperparameter, CS.NormalIntegerHyperparameter, CS.BetaIntegerHyperparameter)


def _is_number(v: Any) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _check_supported(cs: CS.ConfigurationSpace) -> None:
  for name, hp in cs.items():
    if getattr(hp, "q", None) is not None:
      raise ValueError(f"Hyperparameter {name!r} is quantized (q={hp.q!r}); quantized parameters are not supported.")
    weights = getattr(hp, "weights", None)
    if weights is not None and min(weights) <= 0:
      raise ValueError(f"Hyperparameter {name!r} has categorical weights {tuple(weights)!r}; a weight <= 0 would "
                       "forbid a choice (optformer's prior keeps every choice possible). Use a forbidden clause.")


def _default(hp, implicit) -> Any:
  """hp's default_value when it differs from ConfigSpace's own for that hyperparameter (`implicit()`), else None."""
  value = _plain(hp.default_value)
  return None if value == _plain(implicit().default_value) else value


def _to_parameter(name: str, hp: CS.hyperparameters.Hyperparameter, condition=None) -> ss.Parameter:
  if isinstance(hp, _FLOAT + _INT):
    kind = ss.Float if isinstance(hp, _FLOAT) else ss.Int
    shape = ({"mu": hp.mu, "sigma": hp.sigma} if isinstance(hp, _NORMAL) else
             {"alpha": hp.alpha, "beta": hp.beta} if isinstance(hp, _BETA) else {})
    default = _default(hp, lambda: type(hp)(name, lower=hp.lower, upper=hp.upper, log=hp.log, **shape))
    low, high = (hp.lower, hp.upper) if kind is ss.Float else (int(hp.lower), int(hp.upper))
    return kind(name, low, high, log=hp.log, condition=condition, default=default)
  if isinstance(hp, CS.CategoricalHyperparameter):
    default = _default(hp, lambda: CS.CategoricalHyperparameter(name, hp.choices, weights=hp.weights))
    return ss.Categorical(name, tuple(_plain(c) for c in hp.choices), condition=condition, default=default)
  if isinstance(hp, CS.OrdinalHyperparameter):
    seq = tuple(_plain(v) for v in hp.sequence)
    default = _default(hp, lambda: CS.OrdinalHyperparameter(name, hp.sequence))
    if all(_is_number(v) for v in seq) and all(a < b for a, b in itertools.pairwise(seq)):
      return ss.Discrete(name, seq, condition=condition, default=default)
    return ss.Categorical(name, seq, condition=condition, default=default, ordered=True)
  raise ValueError(
      f"Hyperparameter {name!r}: unsupported type {type(hp).__name__}; expected a Uniform, Normal or Beta Float "
      "or Integer, Categorical, Ordinal or Constant."
  )


def _vector_width(hp) -> float:
  """ConfigSpace's vectorized sigma of a Normal hyperparameter (`UnitScaler.vectorize_size`)."""
  if hp.log:
    return abs(math.log(hp.lower + hp.sigma) / (math.log(hp.upper) - math.log(hp.lower)))
  return hp.sigma / (hp.upper - hp.lower)


def _sigma(p: ss.Float | ss.Int, width: float) -> float:
  """Inverse of `_vector_width`: the sigma ConfigSpace vectorizes to `width` on p's range."""
  if not p.log:
    return width * (p.high - p.low)
  span = math.log(p.high) - math.log(p.low)  # Two roots; the one with lower + sigma < 1 (a sigma below 1 - lower) first.
  sigma = math.exp(-width * span) - p.low
  return sigma if sigma > 0 else math.exp(width * span) - p.low


def prior_from_configspace(cs: CS.ConfigurationSpace) -> dict[str, priors.Belief]:
  """The piBO beliefs of `cs`'s non-uniform hyperparameters, to pass as `Optimizer(prior=...)`.

  NormalFloat/NormalInteger -> `priors.Normal(mu, width)` (width: module
  docstring), BetaFloat/BetaInteger -> `priors.Beta(alpha, beta)`, a
  Categorical with unequal weights -> `priors.Weights`. Empty when every
  hyperparameter is uniform.

  Raises:
    ValueError: a Normal whose mu lies outside [lower, upper] (the message
      names it), a weight <= 0, or what `from_configspace` raises.
  """
  space = from_configspace(cs)
  out = {}
  for name, hp in cs.items():
    if name not in space.names:
      continue
    if isinstance(hp, _NORMAL):
      if not hp.lower <= hp.mu <= hp.upper:
        raise ValueError(f"Hyperparameter {name!r}: mu={hp.mu!r} lies outside [{hp.lower}, {hp.upper}]; optformer's "
                         "Normal belief is centred on a value of the parameter.")
      mean = int(hp.mu) if isinstance(hp, CS.NormalIntegerHyperparameter) and float(hp.mu).is_integer() else hp.mu
      out[name] = priors.Normal(mean, _vector_width(hp))
    elif isinstance(hp, _BETA):
      out[name] = priors.Beta(hp.alpha, hp.beta)
    elif isinstance(hp, CS.CategoricalHyperparameter) and hp.weights is not None and len(set(hp.weights)) > 1:
      out[name] = priors.Weights({_plain(c): float(w) for c, w in zip(hp.choices, hp.weights)})
  priors.Prior(space, out)  # Checks every belief against its parameter.
  return out


def from_configspace(cs: CS.ConfigurationSpace) -> ss.SearchSpace:
  """The optformer SearchSpace of a ConfigurationSpace (hyperparameters in name order).

  Constants (and one-value categoricals/ordinals) become
  `SearchSpace.constants`, not parameters; pass suggestions through
  `to_configuration(cs, params)` to add them back. Conditions become
  `Condition`s and forbidden clauses `Forbidden` clauses (module docstring),
  so inactive hyperparameters are absent from suggestions, as in a
  Configuration, and forbidden configurations are never suggested. Normal
  and Beta hyperparameters become uniform parameters here; their beliefs
  come from `prior_from_configspace(cs)`.

  Raises:
    TypeError: `cs` is not a ConfigurationSpace.
    ValueError: unsupported conditions (several parents, or no range/value
      form) or forbidden clauses, a categorical weight <= 0, quantized or
      unknown hyperparameters (see the module docstring), or no
      hyperparameter that is not a constant.
  """
  if not isinstance(cs, CS.ConfigurationSpace):
    raise TypeError(f"Expected a ConfigSpace.ConfigurationSpace, got {type(cs).__name__}.")
  _check_supported(cs)
  conditions = {c.child.name: to_condition(cs, c) for c in cs.conditions}
  params = [
      _to_parameter(name, hp, conditions.get(name)) for name, hp in cs.items() if not constant_value(hp)[0]
  ]
  if not params:
    raise ValueError(f"ConfigurationSpace has no hyperparameter that is not a constant: {list(cs)}.")
  constants = {name: _plain(constant_value(hp)[1]) for name, hp in cs.items() if constant_value(hp)[0]}
  forbidden = configspace_forbidden.from_clauses(cs, constants)
  return ss.SearchSpace(params, forbidden=forbidden, constants=constants)


def _to_hyperparameter(p: ss.Parameter, belief: priors.Belief | None) -> CS.hyperparameters.Hyperparameter:
  default = {} if p.default is None else {"default_value": p.default}
  if belief is not None and isinstance(p, (ss.Discrete, ss.Categorical)) and (
      isinstance(belief, priors.Normal) or isinstance(p, ss.Discrete) or p.ordered):
    raise ValueError(f"Prior for {p.name!r}: ConfigSpace has no {type(belief).__name__} prior for an "
                     f"OrdinalHyperparameter ({p!r}); drop the belief or use a Categorical.")
  if isinstance(p, (ss.Float, ss.Int)):
    base = (CS.UniformFloatHyperparameter, CS.NormalFloatHyperparameter, CS.BetaFloatHyperparameter)
    if isinstance(p, ss.Int):
      base = (CS.UniformIntegerHyperparameter, CS.NormalIntegerHyperparameter, CS.BetaIntegerHyperparameter)
    if isinstance(belief, priors.Normal):
      return base[1](p.name, mu=belief.mean, sigma=_sigma(p, belief.width), lower=p.low, upper=p.high, log=p.log,
                     **default)
    if isinstance(belief, priors.Beta):
      return base[2](p.name, alpha=belief.alpha, beta=belief.beta, lower=p.low, upper=p.high, log=p.log, **default)
    return base[0](p.name, p.low, p.high, log=p.log, **default)
  if isinstance(p, ss.Discrete):
    return CS.OrdinalHyperparameter(p.name, list(p.values), **default)
  if p.ordered:
    return CS.OrdinalHyperparameter(p.name, list(p.choices), **default)
  weights = None if belief is None else [float(belief.weights[c]) for c in p.choices]
  return CS.CategoricalHyperparameter(p.name, list(p.choices), weights=weights, **default)


def to_configspace(space: ss.SearchSpace, seed: int | None = None,
                   prior: Mapping[str, priors.Belief] | None = None) -> CS.ConfigurationSpace:
  """A ConfigurationSpace with one hyperparameter per parameter of `space`, its constants, conditions and clauses.

  Float -> UniformFloat, Int -> UniformInteger (Normal/Beta ones with a
  `prior` belief), Discrete and ordered Categorical -> Ordinal (in their
  order), Categorical -> Categorical (weights from a Weights belief); a
  parameter's `default` becomes its default_value (else ConfigSpace's own).
  Constants become Constant, conditions Equals, In, GreaterThan/LessThan or
  their AndConjunction, forbidden clauses Forbidden clauses (module
  docstring). `seed` seeds its sampling.

  Raises:
    TypeError: `space` is not an optformer.SearchSpace.
    ValueError: a prior ConfigSpace cannot hold (module docstring), or one
      that does not fit the space (`priors.Prior`).
  """
  if not isinstance(space, ss.SearchSpace):
    raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
  prior = dict(prior or {})
  priors.Prior(space, prior)
  cs = CS.ConfigurationSpace(seed=seed)
  cs.add([_to_hyperparameter(p, prior.get(p.name)) for p in space])
  cs.add([CS.Constant(name, value) for name, value in space.constants.items()])
  cs.add([to_cs_condition(cs, space, p) for p in space if p.condition is not None])
  cs.add(configspace_forbidden.to_clauses(cs, space))
  return cs


def to_configuration(cs: CS.ConfigurationSpace, params: Mapping[str, Any]) -> CS.Configuration:
  """A suggestion (e.g. `Optimizer.ask()` over `from_configspace(cs)`) as a Configuration of `cs`.

  Constants of `cs` are added back; a constant given in `params` must equal it.
  Inactive hyperparameters of a conditional `cs` are left out, as in `params`.
  ConfigSpace rounds float values (to 1e-9 relative or so) on the way in.

  Raises:
    ValueError: a missing or unknown parameter, or a value that `cs` does not
      allow (ConfigSpace's IllegalValueError is a ValueError).
  """
  values = dict(params)
  unknown = sorted(set(values) - set(cs))
  if unknown:
    raise ValueError(f"Unknown parameter(s) {unknown}; the ConfigurationSpace has {list(cs)}.")
  for name, hp in cs.items():
    is_constant, value = constant_value(hp)
    if is_constant:
      if name in values and values[name] != value:
        raise ValueError(f"Parameter {name!r} is the constant {value!r}, got {values[name]!r}.")
      values[name] = value
  missing = [name for name in cs if name not in values]
  if cs.conditions and missing:  # Inactive hyperparameters are absent from a Configuration.
    space, missing = from_configspace(cs), []
    for j in space.topological_order():
      name = space.names[j]
      try:
        if name not in values and space.is_active(name, values):
          missing.append(name)
      except ValueError:  # An ancestor is missing (reported) or invalid (ConfigSpace reports it below).
        pass
  if missing:
    raise ValueError(f"Missing parameter(s) {missing} in {dict(params)!r}.")
  return CS.Configuration(cs, values=values)


def from_configuration(
    config: CS.Configuration | Mapping[str, Any], cs: CS.ConfigurationSpace | None = None
) -> dict[str, Any]:
  """The params of `from_configspace(cs)` in a Configuration (e.g. a default or a ConfigSpace sample).

  Constants are left out and NumPy scalars (ConfigSpace samples return
  np.str_, np.int64, ...) become Python values, so the result can be told
  to an Optimizer over `from_configspace(cs)`.

  Args:
    config: a Configuration (its own space is used when `cs` is None) or a
      mapping name -> value.
    cs: the ConfigurationSpace; needed when `config` is a plain mapping.

  Raises:
    TypeError: a plain mapping without `cs`.
  """
  if cs is None:
    if not isinstance(config, CS.Configuration):
      raise TypeError(f"Pass the ConfigurationSpace as `cs` with a plain mapping, got {type(config).__name__}.")
    cs = config.config_space
  return {
      name: value.item() if isinstance(value, np.generic) else value
      for name, value in config.items() if name in cs and not constant_value(cs[name])[0]
  }
