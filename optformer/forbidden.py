"""Forbidden combinations of parameter values (ConfigSpace's forbidden clauses).

A `Forbidden` clause is a conjunction of literals; a configuration that
satisfies every literal of some clause of its search space is *forbidden*:

* `Forbidden({"kernel": "poly", "degree": [4, 5]})`: kernel == "poly" and
  degree in {4, 5} (ConfigSpace `ForbiddenAndConjunction` of a
  `ForbiddenEqualsClause` and a `ForbiddenInClause`);
* `Forbidden(relations=[("lower", ">", "upper")])`: the value of one
  parameter compared with another's (`ForbiddenGreaterThanRelation`;
  "==", "<", "<=", ">", ">=" as ConfigSpace's relations, on the values
  themselves; the order comparisons need numeric values).

As in ConfigSpace, a literal on an inactive parameter (a conditional one
switched off) does not hold, so a clause that names it does not forbid the
configuration.

Forbidden configurations are never suggested: `SearchSpace.sample`, the
acquisition search's candidates (uniform points, local moves, prior and
policy samples), `Optimizer.sample_policy` and the first suggestion of an
empty study all skip them. A forbidden configuration is not a
configuration of the space: `SearchSpace.validate` (so `Optimizer.tell`,
`add_pending` and the CLI's trials.csv) refuses it with
`ForbiddenError`, a ValueError naming the clause, as ConfigSpace refuses to
build such a `Configuration` (ForbiddenValueError). Predictions
(`Optimizer.predict`, `Surrogate.predict`, explanations) may still be asked
at one: the model predicts anywhere in the parameters' ranges.

This module reads parameters only through `name`, `kind`, `validate`,
`to_unit`, `snap_units`, `values_from_units` and `choices`.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Mapping, Sequence

import numpy as np

from optformer.parameters import KIND_FLOAT

RELATIONS = {"==": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
FLOAT_MATCH = 1e-12  # A Float literal holds within this distance in unit space (round-off of the log warp).


class ForbiddenError(ValueError):
  """A configuration satisfies a forbidden clause of its search space (ConfigSpace's ForbiddenValueError)."""


def _one_or_many(v: Any) -> tuple:
  """A literal's values: a list, tuple, set or range as its elements, anything else as one value."""
  if isinstance(v, (list, tuple, set, frozenset, range)):
    return tuple(x.item() if isinstance(x, np.generic) else x for x in v)
  return (v.item() if isinstance(v, np.generic) else v,)


@dataclasses.dataclass(frozen=True)
class Forbidden:
  """A forbidden combination: every literal holds (module docstring).

  Args:
    values: parameter name -> a forbidden value, or a list of them (the
      literal "name in values"); stored as a tuple of (name, values) pairs.
    relations: (left name, op, right name) triples, op in "==", "<", "<=",
      ">", ">=": the literal "value of left op value of right" (values as
      ConfigSpace compares them: a categorical's choices, not their order;
      "==" between any two parameters, the others between parameters whose
      values are all numbers).

  Inside a `SearchSpace` the values are canonical (the parameter's own
  values, without duplicates, in the parameter's order).

  Raises:
    TypeError: values is not a mapping, or a relation is not a triple of strings.
    ValueError: no literal at all, an empty value list, or an unknown op.
  """

  values: Any = ()
  relations: tuple = ()

  def __post_init__(self):
    values = self.values
    if isinstance(values, Mapping):
      values = tuple(values.items())
    if not isinstance(values, tuple) or any(not (isinstance(x, tuple) and len(x) == 2) for x in values):
      raise TypeError(f"Forbidden: values must be a dict name -> value(s), got {self.values!r}.")
    pairs = []
    for name, vs in values:
      if not isinstance(name, str) or not name:
        raise TypeError(f"Forbidden: a parameter name must be a non-empty string, got {name!r}.")
      vs = _one_or_many(vs)
      if not vs:
        raise ValueError(f"Forbidden: the values of {name!r} are empty, so the clause could never hold.")
      pairs.append((name, vs))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
      raise ValueError(f"Forbidden: a parameter appears twice in {names}; give each once with all its values.")
    relations = []
    for r in self.relations:
      if not (isinstance(r, (tuple, list)) and len(r) == 3 and all(isinstance(x, str) for x in r)):
        raise TypeError(f"Forbidden: a relation is a triple (left name, op, right name), got {r!r}.")
      if r[1] not in RELATIONS:
        raise ValueError(f"Forbidden: relation {tuple(r)!r} has op {r[1]!r}; expected one of {list(RELATIONS)}.")
      if r[0] == r[2]:
        raise ValueError(f"Forbidden: relation {tuple(r)!r} compares a parameter with itself.")
      relations.append(tuple(r))
    if not pairs and not relations:
      raise ValueError("Forbidden: needs at least one literal (values or relations), got none.")
    object.__setattr__(self, "values", tuple(pairs))
    object.__setattr__(self, "relations", tuple(relations))

  @property
  def names(self) -> list[str]:
    """The parameters the clause reads, in literal order."""
    return [n for n, _ in self.values] + [n for l, _, r in self.relations for n in (l, r)]

  def describe(self) -> str:
    """e.g. "kernel == 'poly' and degree in [4, 5] and lower > upper"."""
    parts = [f"{n} == {vs[0]!r}" if len(vs) == 1 else f"{n} in {list(vs)!r}" for n, vs in self.values]
    return " and ".join(parts + [f"{l} {op} {r}" for l, op, r in self.relations])

  def to_json(self) -> dict:
    """{"values": {name: [values]}, "relations": [[left, op, right]]} (relations left out when there are none)."""
    out = {"values": {n: list(vs) for n, vs in self.values}}
    if self.relations:
      out["relations"] = [list(r) for r in self.relations]
    return out

  @classmethod
  def from_json(cls, d: Mapping[str, Any]) -> "Forbidden":
    """Inverse of `to_json`. Raises ValueError on unknown fields."""
    if not isinstance(d, Mapping):
      raise ValueError(f"A forbidden clause is an object with values and relations, got {d!r}.")
    unknown = sorted(set(d) - {"values", "relations", "type"})
    if unknown:
      raise ValueError(f"Forbidden clause: unknown field(s) {unknown}; expected values, relations.")
    values = d.get("values", {})
    if not isinstance(values, Mapping):
      raise ValueError(f"Forbidden clause: values must be an object name -> list of values, got {values!r}.")
    return cls(dict(values), tuple(tuple(r) if isinstance(r, list) else r for r in d.get("relations", ())))


def bind(clauses: Sequence[Forbidden], parameters: Sequence) -> tuple[Forbidden, ...]:
  """The clauses checked against the space's parameters, with canonical values.

  Raises:
    TypeError: an element is not a Forbidden.
    ValueError: an unknown parameter, a value the parameter does not take,
      a relation between parameters that cannot be compared (a categorical
      with "<", or with a numeric parameter), or a clause that forbids every
      configuration (In literals only, on root parameters, covering all
      their values).
  """
  by_name = {p.name: p for p in parameters}
  out = []
  for c in clauses:
    if isinstance(c, Mapping):
      c = Forbidden.from_json(c)
    if not isinstance(c, Forbidden):
      raise TypeError(f"Expected an optformer.Forbidden clause, got {c!r}.")
    unknown = [n for n in c.names if n not in by_name]
    if unknown:
      raise ValueError(f"Forbidden clause {c.describe()!r} names unknown parameter(s) {unknown}; the search space "
                       f"has {list(by_name)}.")
    pairs = []
    for name, vs in c.values:
      p = by_name[name]
      try:
        valid = [p.validate(v) for v in vs]
      except (TypeError, ValueError) as e:
        raise ValueError(f"Forbidden clause {c.describe()!r}: {e}") from None
      order = sorted({p.to_unit(v): v for v in valid}.items())
      pairs.append((name, tuple(v for _, v in order)))
    for l, op, r in c.relations:
      if op != "==" and not all(_numeric(by_name[n]) for n in (l, r)):
        raise ValueError(f"Forbidden clause {c.describe()!r}: relation {l} {op} {r} compares values, so both "
                         "parameters need numeric values (any two parameters may be compared with '==').")
    bound = Forbidden(tuple(pairs), c.relations)
    full = not bound.relations and all(
        by_name[n].condition is None and by_name[n].num_values == len(vs) for n, vs in bound.values)
    if full:
      raise ValueError(f"Forbidden clause {c.describe()!r} forbids every configuration of the search space.")
    out.append(bound)
  return tuple(out)


def _numeric(p) -> bool:
  """Whether every value of p is a number (Float, Int, Discrete, or a Categorical of numbers)."""
  choices = getattr(p, "choices", None)
  return choices is None or all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)


def unit_forbidden(parameters: Sequence, clauses: Sequence[Forbidden], u_NxD, active_NxD) -> np.ndarray:
  """bool [N]: whether each unit row (float [N, D], its active mask bool [N, D]) satisfies some clause.

  Rows are read as they decode (`values_from_units`, a Float within
  FLOAT_MATCH in unit space); a literal on an inactive slot does not hold.
  """
  u = np.asarray(u_NxD, np.float64)
  out = np.zeros(len(u), bool)
  if not clauses or not len(u):
    return out
  index = {p.name: j for j, p in enumerate(parameters)}

  def decoded(j):
    """The values of column j, as ConfigSpace's relations compare them (a categorical's choices, not its order)."""
    p = parameters[j]
    if hasattr(p, "choices"):  # values_from_units: the choice's index.
      return np.array(p.choices, object)[p.values_from_units(u[:, j]).astype(int)]
    return p.values_from_units(u[:, j])

  for c in clauses:
    holds = np.ones(len(u), bool)
    for name, vs in c.values:
      j = index[name]
      p = parameters[j]
      targets = np.array([p.to_unit(v) for v in vs])
      if p.kind == KIND_FLOAT:
        hit = (np.abs(np.clip(u[:, j, None], 0.0, 1.0) - targets[None]) <= FLOAT_MATCH).any(1)
      else:
        hit = np.isin(p.snap_units(u[:, j]), targets)
      holds &= hit & active_NxD[:, j]
    for l, op, r in c.relations:
      jl, jr = index[l], index[r]
      both = active_NxD[:, jl] & active_NxD[:, jr]
      holds &= both & np.asarray(RELATIONS[op](decoded(jl), decoded(jr)), bool)
    out |= holds
  return out
