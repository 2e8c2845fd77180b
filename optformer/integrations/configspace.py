"""ConfigSpace integration: search-space conversion and Configuration decoding.

`from_configspace` / `to_configspace`, one hyperparameter at a time (and
`to_configuration` / `from_configuration` between a suggestion's params and a
`ConfigSpace.Configuration`):

| ConfigSpace                                 | optformer                       |
| ------------------------------------------- | ------------------------------- |
| UniformFloatHyperparameter(lower, upper, log)   | Float(low, high, log)       |
| UniformIntegerHyperparameter(lower, upper, log) | Int(low, high, log)         |
| CategoricalHyperparameter(choices)          | Categorical(choices)            |
| OrdinalHyperparameter, numbers in increasing or decreasing order | Discrete(sorted numbers) |
| OrdinalHyperparameter, other sequences      | Categorical(sequence): order lost |
| Constant, or a one-value categorical/ordinal | dropped; re-added by `to_configuration` |

Conditions (one condition object per child in ConfigSpace; its literals must all
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

`to_configspace` maps Discrete to an OrdinalHyperparameter of its sorted
values, so ConfigSpace -> optformer -> ConfigSpace keeps every
hyperparameter above except constants (dropped), and with ConfigSpace's
default `default_value`s (defaults and `meta` are not carried). ConfigSpace
orders hyperparameters by name (parents before their children), so the
SearchSpace comes out in that order too.

Rejected with a ValueError that names the offending parts (optformer has no
such notions yet): conditions on several parents or that no value of a
Float parent reduces to a range (e.g. NotEquals on a Float), forbidden clauses, non-uniform priors (Normal
and Beta floats and integers; `cs.remove_hyperparameter_priors()` turns them
uniform), categorical weights that are not all equal, and quantized (`q`)
hyperparameters (ConfigSpace >= 1.0 removed `q`; checked for objects that
still carry one).
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Mapping

import ConfigSpace as CS
import numpy as np

from optformer import conditions
from optformer import search_space as ss

_PRIOR_KINDS = (
    CS.NormalFloatHyperparameter, CS.NormalIntegerHyperparameter, CS.BetaFloatHyperparameter,
    CS.BetaIntegerHyperparameter,
)


def _is_number(v: Any) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _constant_value(hp: CS.hyperparameters.Hyperparameter) -> tuple[bool, Any]:
  """(True, value) if `hp` takes a single value (a Constant or one choice), else (False, None)."""
  if isinstance(hp, CS.Constant):
    return True, hp.value
  if isinstance(hp, CS.CategoricalHyperparameter) and len(hp.choices) == 1:
    return True, hp.choices[0]
  if isinstance(hp, CS.OrdinalHyperparameter) and len(hp.sequence) == 1:
    return True, hp.sequence[0]
  return False, None


def _check_supported(cs: CS.ConfigurationSpace) -> None:
  if cs.forbidden_clauses:
    raise ValueError(
        f"ConfigurationSpace has {len(cs.forbidden_clauses)} forbidden clause(s) "
        f"{[str(f) for f in cs.forbidden_clauses]}; optformer search spaces cannot exclude configurations."
    )
  for name, hp in cs.items():
    if isinstance(hp, _PRIOR_KINDS):
      raise ValueError(
          f"Hyperparameter {name!r} is a {type(hp).__name__} (a non-uniform prior); optformer supports uniform "
          "floats and integers only. Use cs.remove_hyperparameter_priors() to make it uniform."
      )
    if getattr(hp, "q", None) is not None:
      raise ValueError(f"Hyperparameter {name!r} is quantized (q={hp.q!r}); quantized parameters are not supported.")
    weights = getattr(hp, "weights", None)
    if weights is not None and len(set(weights)) > 1:
      raise ValueError(
          f"Hyperparameter {name!r} has categorical weights {tuple(weights)!r}; optformer samples categories "
          "uniformly. Drop the weights."
      )


def _to_parameter(name: str, hp: CS.hyperparameters.Hyperparameter, condition=None) -> ss.Parameter:
  if isinstance(hp, CS.UniformFloatHyperparameter):
    return ss.Float(name, hp.lower, hp.upper, log=hp.log, condition=condition)
  if isinstance(hp, CS.UniformIntegerHyperparameter):
    return ss.Int(name, int(hp.lower), int(hp.upper), log=hp.log, condition=condition)
  if isinstance(hp, CS.CategoricalHyperparameter):
    return ss.Categorical(name, tuple(hp.choices), condition=condition)
  if isinstance(hp, CS.OrdinalHyperparameter):
    seq = tuple(hp.sequence)
    if all(_is_number(v) for v in seq):
      if all(a < b for a, b in itertools.pairwise(seq)):
        return ss.Discrete(name, seq, condition=condition)
      if all(a > b for a, b in itertools.pairwise(seq)):
        return ss.Discrete(name, seq[::-1], condition=condition)
    return ss.Categorical(name, seq, condition=condition)
  raise ValueError(
      f"Hyperparameter {name!r}: unsupported type {type(hp).__name__}; expected UniformFloat, UniformInteger, "
      "Categorical, Ordinal or Constant."
  )


def _literals(c) -> tuple:
  return tuple(c.dlcs) if isinstance(c, CS.conditions.Conjunction) else (c,)


def _parent_values(hp) -> list | None:
  """Every value of a finite hyperparameter (None for floats and Ints over 10000 values)."""
  if isinstance(hp, CS.CategoricalHyperparameter):
    return list(hp.choices)
  if isinstance(hp, CS.OrdinalHyperparameter):
    return list(hp.sequence)
  if isinstance(hp, CS.UniformIntegerHyperparameter) and hp.upper - hp.lower < 10_000:
    return list(range(int(hp.lower), int(hp.upper) + 1))
  return None


def _plain(v: Any) -> Any:
  return v.item() if isinstance(v, np.generic) else v


def _to_condition(cs: CS.ConfigurationSpace, c) -> ss.Condition | None:
  """The optformer Condition of ConfigSpace condition `c` (module docstring); None if it always holds."""
  child = c.child.name
  parents = sorted({lit.parent.name for lit in _literals(c)})
  if len(parents) > 1:
    raise ValueError(
        f"Condition {c} of {child!r} depends on several parents {parents}; an optformer parameter has one parent."
    )
  parent = cs[parents[0]]
  is_constant, value = _constant_value(parent)
  if is_constant:
    if c.satisfied_by_value({parent.name: value}):
      return None
    raise ValueError(f"Condition {c} of {child!r} never holds (its parent {parent.name!r} is the constant {value!r}).")
  ordinal = isinstance(parent, CS.OrdinalHyperparameter)
  if isinstance(c, CS.EqualsCondition) and not ordinal:
    return ss.Condition(parent.name, [_plain(c.value)])
  if isinstance(c, CS.InCondition) and not ordinal:
    return ss.Condition(parent.name, [_plain(v) for v in c.values])
  ranged = (CS.GreaterThanCondition, CS.LessThanCondition)
  if isinstance(parent, (CS.UniformFloatHyperparameter, CS.UniformIntegerHyperparameter)) and (
      isinstance(c, ranged) or isinstance(c, CS.AndConjunction) and all(isinstance(l, ranged) for l in _literals(c))):
    g = max((l.value for l in _literals(c) if isinstance(l, CS.GreaterThanCondition)), default=None)
    l = min((l.value for l in _literals(c) if isinstance(l, CS.LessThanCondition)), default=None)
    return ss.Condition(parent.name, greater_than=_plain(g), less_than=_plain(l))
  values = _parent_values(parent)
  if values is None:
    raise ValueError(
        f"Condition {c} of {child!r} ({type(c).__name__} on {type(parent).__name__} {parent.name!r}) is not "
        "supported: on a float or a large integer parent, use GreaterThan/LessThan conditions (or their "
        "AndConjunction), Equals or In."
    )
  return ss.Condition(parent.name, [_plain(v) for v in values if c.satisfied_by_value({parent.name: v})])


def from_configspace(cs: CS.ConfigurationSpace) -> ss.SearchSpace:
  """The optformer SearchSpace of a ConfigurationSpace (hyperparameters in name order).

  Constants (and one-value categoricals/ordinals) are left out; pass
  suggestions through `to_configuration(cs, params)` to add them back.
  Conditions become `Condition`s (module docstring), so inactive
  hyperparameters are absent from suggestions, as in a Configuration.

  Raises:
    TypeError: `cs` is not a ConfigurationSpace.
    ValueError: unsupported conditions (several parents, or no range/value
      form), forbidden clauses, Normal/Beta priors, unequal categorical
      weights, quantized or unknown hyperparameters (see the module
      docstring), or no hyperparameter that is not a constant.
  """
  if not isinstance(cs, CS.ConfigurationSpace):
    raise TypeError(f"Expected a ConfigSpace.ConfigurationSpace, got {type(cs).__name__}.")
  _check_supported(cs)
  conditions = {c.child.name: _to_condition(cs, c) for c in cs.conditions}
  params = [
      _to_parameter(name, hp, conditions.get(name)) for name, hp in cs.items() if not _constant_value(hp)[0]
  ]
  if not params:
    raise ValueError(f"ConfigurationSpace has no hyperparameter that is not a constant: {list(cs)}.")
  return ss.SearchSpace(params)


def _to_hyperparameter(p: ss.Parameter) -> CS.hyperparameters.Hyperparameter:
  if isinstance(p, ss.Float):
    return CS.UniformFloatHyperparameter(p.name, p.low, p.high, log=p.log)
  if isinstance(p, ss.Int):
    return CS.UniformIntegerHyperparameter(p.name, p.low, p.high, log=p.log)
  if isinstance(p, ss.Discrete):
    return CS.OrdinalHyperparameter(p.name, list(p.values))
  return CS.CategoricalHyperparameter(p.name, list(p.choices))


def to_configspace(space: ss.SearchSpace, seed: int | None = None) -> CS.ConfigurationSpace:
  """A ConfigurationSpace with one uniform hyperparameter per parameter of `space`.

  Float -> UniformFloat, Int -> UniformInteger, Discrete -> Ordinal (sorted
  values), Categorical -> Categorical; default values are ConfigSpace's own
  (midpoint, first choice or level). Conditions become Equals, In,
  GreaterThan/LessThan or their AndConjunction (module docstring). `seed`
  seeds its sampling.

  Raises:
    TypeError: `space` is not an optformer.SearchSpace.
  """
  if not isinstance(space, ss.SearchSpace):
    raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
  cs = CS.ConfigurationSpace(seed=seed)
  cs.add([_to_hyperparameter(p) for p in space])
  cs.add([_to_cs_condition(cs, space, p) for p in space if p.condition is not None])
  return cs


def _to_cs_condition(cs: CS.ConfigurationSpace, space: ss.SearchSpace, p: ss.Parameter):
  c, child, parent = p.condition, cs[p.name], cs[p.condition.parent]
  values = c.values
  if values is None and isinstance(space[c.parent], ss.Discrete):  # An Ordinal parent: the levels in the range.
    values = [v for v in space[c.parent].values if conditions.holds(c, space[c.parent], [float(v)])[0]]
  if values is not None:
    return CS.EqualsCondition(child, parent, values[0]) if len(values) == 1 else CS.InCondition(child, parent, list(values))
  ranges = []
  if c.greater_than is not None:
    ranges.append(CS.GreaterThanCondition(child, parent, c.greater_than))
  if c.less_than is not None:
    ranges.append(CS.LessThanCondition(child, parent, c.less_than))
  return ranges[0] if len(ranges) == 1 else CS.AndConjunction(*ranges)


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
    is_constant, value = _constant_value(hp)
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
      for name, value in config.items() if name in cs and not _constant_value(cs[name])[0]
  }
