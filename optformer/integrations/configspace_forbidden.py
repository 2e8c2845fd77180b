"""ConfigSpace forbidden clauses <-> optformer `Forbidden` clauses (used by `integrations.configspace`).

| ConfigSpace                                   | optformer                                  |
| --------------------------------------------- | ------------------------------------------ |
| ForbiddenEqualsClause(hp, v)                  | Forbidden({hp: [v]})                       |
| ForbiddenInClause(hp, [v, ...])               | Forbidden({hp: [v, ...]})                  |
| ForbiddenAndConjunction(a, b, ...)            | one Forbidden with every literal (values    |
|                                               | of one hyperparameter intersected)         |
| ForbiddenOrConjunction(a, b, ...)             | one Forbidden per alternative              |
| ForbiddenEqualsRelation(l, r), LessThan,      | Forbidden(relations=[(l, "==", r)]),       |
| LessThanEquals, GreaterThan, GreaterThanEquals | "<", "<=", ">", ">="                      |

A literal on a constant is dropped when the constant satisfies it (and the
alternative when it does not, since it can never hold then). Written back:
one Equals (one value) or In clause per literal, their AndConjunction, and
the relations.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

import ConfigSpace as CS
import numpy as np

from optformer import search_space as ss

_RELATIONS = {
    CS.ForbiddenEqualsRelation: "==", CS.ForbiddenLessThanRelation: "<", CS.ForbiddenLessThanEqualsRelation: "<=",
    CS.ForbiddenGreaterThanRelation: ">", CS.ForbiddenGreaterThanEqualsRelation: ">=",
}
_BACK = {op: cls for cls, op in _RELATIONS.items()}


def _plain(v: Any) -> Any:
  return v.item() if isinstance(v, np.generic) else v


def _alternatives(clause, constants: Mapping[str, Any]) -> list[tuple[dict, list]]:
  """The clause as an OR of ANDs: [(name -> allowed values, [(left, op, right)])]; dropped alternatives never hold."""
  if isinstance(clause, (CS.ForbiddenEqualsClause, CS.ForbiddenInClause)):
    name = clause.hyperparameter.name
    values = [clause.value] if isinstance(clause, CS.ForbiddenEqualsClause) else list(clause.values)
    values = [_plain(v) for v in values]
    if name in constants:
      return [({}, [])] if constants[name] in values else []
    return [({name: values}, [])]
  if type(clause) in _RELATIONS:
    left, right = clause.left.name, clause.right.name
    if left in constants or right in constants:
      raise ValueError(f"Forbidden clause {clause} relates a constant ({left if left in constants else right!r}); "
                       "not supported.")
    return [({}, [(left, _RELATIONS[type(clause)], right)])]
  if isinstance(clause, CS.ForbiddenOrConjunction):
    return [alt for c in clause.components for alt in _alternatives(c, constants)]
  if isinstance(clause, CS.ForbiddenAndConjunction):
    out = []
    for parts in itertools.product(*[_alternatives(c, constants) for c in clause.components]):
      values, relations, empty = {}, [], False
      for vs, rs in parts:
        relations += rs
        for name, v in vs.items():
          values[name] = [x for x in values[name] if x in v] if name in values else list(v)
          empty |= not values[name]
      if not empty:
        out.append((values, relations))
    return out
  raise ValueError(
      f"Forbidden clause {clause} ({type(clause).__name__}) is not supported: use Equals/In clauses, their And/Or "
      "conjunctions, or Equals/LessThan/GreaterThan(Equals) relations."
  )


def from_clauses(cs: CS.ConfigurationSpace, constants: Mapping[str, Any]) -> list[ss.Forbidden]:
  """The `Forbidden` clauses of `cs` (module docstring). ValueError names an unsupported clause, or one that
  forbids every configuration (all its literals on constants that satisfy them)."""
  out = []
  for clause in cs.forbidden_clauses:
    for values, relations in _alternatives(clause, constants):
      if not values and not relations:
        raise ValueError(f"Forbidden clause {clause} holds for the constants {dict(constants)!r}, so it forbids "
                         "every configuration.")
      out.append(ss.Forbidden(values, tuple(relations)))
  return out


def to_clauses(cs: CS.ConfigurationSpace, space: ss.SearchSpace) -> list:
  """ConfigSpace forbidden clauses of `space.forbidden` over `cs`'s hyperparameters (module docstring)."""
  out = []
  for f in space.forbidden:
    literals = [CS.ForbiddenEqualsClause(cs[n], vs[0]) if len(vs) == 1 else CS.ForbiddenInClause(cs[n], list(vs))
                for n, vs in f.values]
    literals += [_BACK[op](cs[l], cs[r]) for l, op, r in f.relations]
    out.append(literals[0] if len(literals) == 1 else CS.ForbiddenAndConjunction(*literals))
  return out
