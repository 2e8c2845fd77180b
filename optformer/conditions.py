"""Conditional parameters: a tree of conditions over a search space's parameters.

A parameter may carry one `Condition` on a *parent* parameter: it is
*active* iff its parent is active and the parent's value satisfies the
condition, as in OSS Vizier (`select_values`) and ConfigSpace
(`EqualsCondition`, `InCondition`, `GreaterThanCondition`,
`LessThanCondition`):

* `Condition("kernel", ["rbf", "poly"])`: the parent's value is one of the
  values (Categorical, Int or Discrete parents);
* `Condition("n_layers", greater_than=2)`, `Condition("x", less_than=0.5)`,
  or both (a strict open interval): an ordered parent (Float, Int or
  Discrete).

Parameters without a condition are *roots* (always active). The parents
form a forest: every parent exists, no parameter is its own ancestor, and a
parent may come before or after its children in the space (ConfigSpace
orders hyperparameters by name); `topological_order` lists parents first.

This module holds the tree logic on the parameters of `parameters.py`
(which imports it for `Condition`); it reads a parameter only through its `name`,
`condition`, `validate`, `num_values` and, for unit rows, its
`values_from_units` (the value codes below).

Value codes: activity is computed on float64 *codes* of the parent's
value: the category index for a Categorical, the number itself for
Float, Int and Discrete.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np


def _is_categorical(p) -> bool:
  return hasattr(p, "choices")


def _finite(what: str, v: Any) -> float | None:
  if v is None:
    return None
  if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
    raise ValueError(f"Condition: {what} must be a finite number or None, got {v!r}.")
  return float(v) if isinstance(v, (float, np.floating)) else int(v)


@dataclasses.dataclass(frozen=True)
class Condition:
  """Active iff the parent is active and its value is in `values`, or in (greater_than, less_than).

  Give either `values` (a non-empty list, tuple, range or set of the
  parent's values) or a range (`greater_than` and/or `less_than`, strict
  comparisons as ConfigSpace's GreaterThan/LessThan conditions), not both.
  Inside a `SearchSpace` the values are canonical: the parent's own values,
  without duplicates, in the parent's order.

  Raises:
    TypeError: `parent` is not a string, or `values` is a string, a mapping
      or a scalar (wrap one value in a list).
    ValueError: no values and no range, both, empty values, a bound that is
      not a finite number, or greater_than >= less_than.
  """

  parent: str
  values: tuple | None = None
  greater_than: float | None = None
  less_than: float | None = None

  def __post_init__(self):
    if not isinstance(self.parent, str) or not self.parent:
      raise TypeError(f"Condition: parent must be a parameter name, got {self.parent!r}.")
    g = _finite("greater_than", self.greater_than)
    l = _finite("less_than", self.less_than)
    object.__setattr__(self, "greater_than", g)
    object.__setattr__(self, "less_than", l)
    if self.values is not None:
      listed = isinstance(self.values, (list, tuple, range, set, frozenset))
      if not listed or isinstance(self.values, (str, bytes, Mapping)):
        raise TypeError(
            f"Condition on {self.parent!r}: values must be a list of the parent's values, got {self.values!r} "
            f"(write [{self.values!r}] for one value)."
        )
      values = tuple(v.item() if isinstance(v, np.generic) else v for v in self.values)
      if not values:
        raise ValueError(f"Condition on {self.parent!r}: values is empty, so the child could never be active.")
      if g is not None or l is not None:
        raise ValueError(f"Condition on {self.parent!r}: give values or a range (greater_than/less_than), not both.")
      object.__setattr__(self, "values", values)
    elif g is None and l is None:
      raise ValueError(f"Condition on {self.parent!r}: needs values or greater_than/less_than.")
    if g is not None and l is not None and not g < l:
      raise ValueError(f"Condition on {self.parent!r}: greater_than={g!r} must be < less_than={l!r}.")

  @classmethod
  def parse(cls, obj: Any, child: str) -> "Condition | None":
    """A Condition from None, a Condition, a pair (parent, values) or its `to_json` dict.

    Raises:
      TypeError / ValueError naming `child` for anything else.
    """
    if obj is None or isinstance(obj, Condition):
      return obj
    try:
      if isinstance(obj, Mapping):
        unknown = sorted(set(obj) - {"parent", "values", "greater_than", "less_than"})
        if unknown or "parent" not in obj:
          raise ValueError(
              f"a condition has the fields parent, values, greater_than, less_than; got {dict(obj)!r}."
          )
        obj = dict(obj)
        if isinstance(obj.get("values"), list):
          obj["values"] = tuple(obj["values"])
        return cls(**obj)
      if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return cls(obj[0], obj[1])
    except (TypeError, ValueError) as e:
      raise type(e)(f"Parameter {child!r}: {e}") from e
    raise TypeError(
        f"Parameter {child!r}: condition must be a Condition, a (parent, values) pair or a dict, got {obj!r}."
    )

  def __repr__(self) -> str:
    given = [f"{k}={getattr(self, k)!r}" for k in ("values", "greater_than", "less_than") if getattr(self, k) is not None]
    return f"Condition({self.parent!r}, {', '.join(given)})"

  def describe(self) -> str:
    """Readable form, e.g. "kernel in ['rbf', 'poly']" or "n_layers > 2"."""
    if self.values is not None:
      return f"{self.parent} in {list(self.values)!r}"
    g, l = self.greater_than, self.less_than
    if l is None:
      return f"{self.parent} > {g!r}"
    return f"{self.parent} < {l!r}" if g is None else f"{g!r} < {self.parent} < {l!r}"

  def to_json(self) -> dict:
    out = {"parent": self.parent}
    if self.values is not None:
      out["values"] = list(self.values)
    for k in ("greater_than", "less_than"):
      if getattr(self, k) is not None:
        out[k] = getattr(self, k)
    return out


def bind(parameters: Sequence) -> tuple:
  """The parameters with canonical conditions, after checking the tree.

  Returns a tuple of the same parameters (a conditioned one replaced by a
  copy whose condition values are the parent's canonical values in its
  order).

  Raises:
    ValueError: naming the child: an unknown parent, itself as parent, a
      cycle, a value that the parent does not take, values on a Float
      parent, a range on a Categorical parent, or a condition that no value
      of the parent satisfies.
  """
  by_name = {p.name: p for p in parameters}
  out = []
  for p in parameters:
    c = p.condition
    if c is None:
      out.append(p)
      continue
    if c.parent == p.name:
      raise ValueError(f"Parameter {p.name!r}: its condition names itself as parent.")
    if c.parent not in by_name:
      raise ValueError(f"Parameter {p.name!r}: condition parent {c.parent!r} is not in the search space {list(by_name)}.")
    parent = by_name[c.parent]
    where = f"Parameter {p.name!r}: condition {c.describe()}"
    if c.values is not None:
      if parent.num_values == 0:
        raise ValueError(f"{where}: a Float parent takes a condition greater_than/less_than, not values.")
      canon = []
      for v in c.values:
        try:
          canon.append(parent.validate(v))
        except (TypeError, ValueError) as e:
          raise ValueError(f"{where}: {v!r} is not a value of {c.parent!r} ({e}).") from e
      codes = [_code(parent, v) for v in canon]
      keep = sorted({k: v for k, v in zip(codes, canon)}.items())
      c = dataclasses.replace(c, values=tuple(v for _, v in keep))
    else:
      if _is_categorical(parent):
        raise ValueError(f"{where}: a Categorical parent takes a condition on values, not greater_than/less_than.")
      if not _satisfiable(parent, c):
        raise ValueError(f"{where}: no value of {c.parent!r} satisfies it, so {p.name!r} could never be active.")
    out.append(dataclasses.replace(p, condition=c) if c != p.condition else p)
  parents = parent_indices(out)
  for j in range(len(out)):  # Walk up from each parameter: a cycle returns to it within D steps.
    seen, k = [out[j].name], parents[j]
    while k >= 0:
      if k == j:
        raise ValueError(f"Parameter {out[j].name!r}: its conditions form a cycle {' -> '.join(seen + [out[j].name])}.")
      seen.append(out[k].name)
      k = parents[k]
      if len(seen) > len(out):
        break
  return tuple(out)


def _code(p, value) -> float:
  """The float64 code of a (valid) value: category index or the number."""
  return float(p.index(value)) if _is_categorical(p) else float(value)


def _levels(p) -> np.ndarray | None:
  """float64 [n]: every value of an Int or Discrete parameter (None for Float or huge Ints)."""
  if p.num_values == 0 or _is_categorical(p):
    return None
  if hasattr(p, "values"):
    return np.asarray(p.values, np.float64)
  return np.arange(p.low, p.high + 1, dtype=np.float64) if p.num_values <= 1_000_000 else None


def _satisfiable(parent, c: Condition) -> bool:
  """Whether some value of an ordered parent satisfies a range condition."""
  levels = _levels(parent)
  if levels is not None:
    return bool(holds(c, parent, levels).any())
  g, l = c.greater_than, c.less_than
  if parent.num_values:  # An Int with too many levels to list: an integer strictly inside both bounds.
    first = parent.low if g is None else max(parent.low, math.floor(g) + 1)
    last = parent.high if l is None else min(parent.high, math.ceil(l) - 1)
    return first <= last
  return (g is None or g < parent.high) and (l is None or l > parent.low)  # A Float (g < l already holds).


def holds(c: Condition, parent, codes) -> np.ndarray:
  """bool [N]: whether the condition holds for N value codes of its parent (module docstring)."""
  codes = np.asarray(codes, np.float64)
  if c.values is not None:
    return np.isin(codes, [_code(parent, v) for v in c.values])
  ok = np.ones(codes.shape, bool)
  if c.greater_than is not None:
    ok &= codes > c.greater_than
  if c.less_than is not None:
    ok &= codes < c.less_than
  return ok


def parent_indices(parameters: Sequence) -> np.ndarray:
  """int32 [D]: the index of each parameter's parent, -1 for roots."""
  index = {p.name: i for i, p in enumerate(parameters)}
  return np.array([-1 if p.condition is None else index[p.condition.parent] for p in parameters], np.int32)


def topological_order(parameters: Sequence) -> list[int]:
  """Indices of the parameters with every parent before its children (otherwise in space order)."""
  parents = parent_indices(parameters)
  depth = np.zeros(len(parameters), int)
  for j in range(len(parameters)):
    k = parents[j]
    while k >= 0:
      depth[j] += 1
      k = parents[k]
  return sorted(range(len(parameters)), key=lambda j: (depth[j], j))


def unit_active_mask(parameters: Sequence, parents, order: Sequence[int], u_NxD) -> np.ndarray:
  """bool [N, D]: which parameters are active in each unit row (parents decoded as `from_unit` does).

  `parents` is `parent_indices(parameters)`, `order` is `topological_order(parameters)`.
  """
  u = np.asarray(u_NxD, np.float64)
  active = np.ones(u.shape, bool)
  for j in order:
    k = parents[j]
    if k >= 0:
      active[:, j] = active[:, k] & holds(parameters[j].condition, parameters[k], parameters[k].values_from_units(u[:, k]))
  return active


def num_configurations(parameters: Sequence) -> int | None:
  """Distinct configurations of the tree (inactive parameters absent); None if a Float can be active.

  Each parameter's subtree counts sum over its values v of the product over
  its children of (their subtree count if active under v, else 1); the
  space counts the product over roots. Int values are grouped into
  segments on which the same children are active, so huge ranges cost
  nothing.
  """
  if any(p.num_values == 0 for p in parameters):
    return None
  parents = parent_indices(parameters)
  children = {j: [i for i in range(len(parameters)) if parents[i] == j] for j in range(len(parameters))}

  def count(j: int) -> int:
    p, kids = parameters[j], children[j]
    if not kids:
      return p.num_values
    sub = [count(i) for i in kids]
    total = 0
    for rep, size in _segments(p, [parameters[i].condition for i in kids]):
      total += size * math.prod(s if holds(parameters[i].condition, p, [rep])[0] else 1 for i, s in zip(kids, sub))
    return total

  return math.prod(count(j) for j in range(len(parameters)) if parents[j] < 0)


def _segments(p, conditions: Sequence[Condition]) -> list[tuple[float, int]]:
  """(code, count) pairs partitioning p's values into runs on which every condition is constant."""
  if _is_categorical(p):
    return [(float(k), 1) for k in range(p.num_values)]
  if hasattr(p, "values"):  # Discrete.
    return [(float(v), 1) for v in p.values]
  cuts = {p.low, p.high + 1}
  for c in conditions:
    for v in c.values or ():
      cuts |= {int(v), int(v) + 1}
    if c.greater_than is not None:
      cuts.add(math.floor(c.greater_than) + 1)
    if c.less_than is not None:
      cuts.add(math.ceil(c.less_than))
  cuts = sorted(x for x in cuts if p.low <= x <= p.high + 1)
  return [(float(a), b - a) for a, b in zip(cuts, cuts[1:])]


def condition_arrays(parameters: Sequence, num_tokens: int) -> tuple[np.ndarray, np.ndarray]:
  """The tree as arrays for a decoder over `num_tokens` tokens per parameter.

  Returns:
    parent: int32 [D], the parent's index, -1 for roots.
    allowed: bool [D, num_tokens], True where the child is active when its
      parent takes that token (all True for roots). A Categorical parent's
      token k is category k (tokens >= K are False); an Int or Discrete
      parent with at most `num_tokens` levels has token i = level i (tokens
      >= its levels are False). Any other parent (a Float, or more levels
      than tokens) has token t = the unit bin [t / T, (t + 1) / T) and is
      allowed where the value at the bin centre (t + 0.5) / T satisfies the
      condition (so the bin that straddles a range bound follows its centre).

  Raises:
    ValueError: num_tokens < 1, or a Categorical parent with more than
      num_tokens categories.
  """
  if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)) or num_tokens < 1:
    raise ValueError(f"num_tokens must be an int >= 1, got {num_tokens!r}.")
  parents = parent_indices(parameters)
  allowed = np.ones((len(parameters), num_tokens), bool)
  for j, k in enumerate(parents):
    if k < 0:
      continue
    parent, c = parameters[k], parameters[j].condition
    n = parent.num_values
    if _is_categorical(parent):
      if n > num_tokens:
        raise ValueError(f"Parameter {parent.name!r} has {n} categories, more than num_tokens={num_tokens}.")
      codes = np.arange(n, dtype=np.float64)
    elif 0 < n <= num_tokens:
      codes = _levels(parent)
    else:
      codes = parent.values_from_units((np.arange(num_tokens) + 0.5) / num_tokens)
    allowed[j] = False
    allowed[j, : len(codes)] = holds(c, parent, codes)
  return parents, allowed
