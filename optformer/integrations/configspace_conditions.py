"""ConfigSpace conditions <-> optformer `Condition`s (used by `integrations.configspace`).


"""

from __future__ import annotations

from typing import Any

import ConfigSpace as CS
import numpy as np

from optformer import conditions
from optformer import search_space as ss

_NUMERIC = (CS.UniformFloatHyperparameter, CS.UniformIntegerHyperparameter, CS.NormalFloatHyperparameter,
            CS.NormalIntegerHyperparameter, CS.BetaFloatHyperparameter, CS.BetaIntegerHyperparameter)
_INTEGER = (CS.UniformIntegerHyperparameter, CS.NormalIntegerHyperparameter, CS.BetaIntegerHyperparameter)


def constant_value(hp: CS.hyperparameters.Hyperparameter) -> tuple[bool, Any]:
  """(True, value) if `hp` takes a single value (a Constant or one choice), else (False, None)."""
  if isinstance(hp, CS.Constant):
    return True, hp.value
  if isinstance(hp, CS.CategoricalHyperparameter) and len(hp.choices) == 1:
    return True, hp.choices[0]
  if isinstance(hp, CS.OrdinalHyperparameter) and len(hp.sequence) == 1:
    return True, hp.sequence[0]
  return False, None


def _literals(c) -> tuple:
  return tuple(c.dlcs) if isinstance(c, CS.conditions.Conjunction) else (c,)


def _parent_values(hp) -> list | None:
  """Every value of a finite hyperparameter (None for floats and Ints over 10000 values)."""
  if isinstance(hp, CS.CategoricalHyperparameter):
    return list(hp.choices)
  if isinstance(hp, CS.OrdinalHyperparameter):
    return list(hp.sequence)
  if isinstance(hp, _INTEGER) and hp.upper - hp.lower < 10_000:
    return list(range(int(hp.lower), int(hp.upper) + 1))
  return None


def _plain(v: Any) -> Any:
  return v.item() if isinstance(v, np.generic) else v


def to_condition(cs: CS.ConfigurationSpace, c) -> ss.Condition | None:
  """The optformer Condition of ConfigSpace condition `c` (module docstring); None if it always holds."""
  child = c.child.name
  parents = sorted({lit.parent.name for lit in _literals(c)})
  if len(parents) > 1:
    raise ValueError(
        f"Condition {c} of {child!r} depends on several parents {parents}; an optformer parameter has one parent."
    )
  parent = cs[parents[0]]
  is_constant, value = constant_value(parent)
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
  if isinstance(parent, _NUMERIC) and (
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


def to_cs_condition(cs: CS.ConfigurationSpace, space: ss.SearchSpace, p: ss.Parameter):
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
