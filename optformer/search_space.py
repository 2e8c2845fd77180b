"""Search spaces: the parameters a study tunes, their conditions, and configurations in unit form.

A `SearchSpace` is an ordered list of uniquely named parameters
(`parameters.py`: Float, Int, Discrete, Categorical, re-exported here with
the kind codes). A configuration is a dict name -> value; its unit form is a
float64 row [D] of the parameters' unit values (`Parameter.to_unit`).

Conditional parameters (`conditions.py`): every kind takes
`condition=Condition(parent, values)` (or a range on an ordered parent, or
the pair `(parent, values)`), e.g.

    SearchSpace([
        Categorical("kernel", ["linear", "rbf", "poly"]),
        Float("gamma", 1e-4, 1.0, log=True, condition=("kernel", ["rbf", "poly"])),
        Int("degree", 2, 5, condition=("kernel", ["poly"])),
    ])

A configuration holds exactly its *active* parameters. In unit form every
parameter keeps its slot and an inactive one holds `INACTIVE_UNIT` (0.5);
which slots are active follows from the row itself (its parents' values),
so `unit_active_mask(u)` gives the mask the surrogate reads beside it.

Forbidden combinations (`forbidden.py`, ConfigSpace's forbidden clauses):
`SearchSpace(params, forbidden=[Forbidden({"kernel": "poly", "degree": 5})])`;
they are never sampled or suggested, and `validate` refuses them.
Constants (`constants={"seed": 0}`, ConfigSpace's Constant) are carried
with the space (JSON, ConfigSpace round trips) but are not parameters:
configurations leave them out.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from optformer import conditions as cond
from optformer import forbidden as forbidden_lib
from optformer.conditions import Condition
from optformer.forbidden import Forbidden
from optformer.parameters import (  # Re-exported: the public names of search spaces live here.
    INACTIVE_UNIT, KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, KIND_UNUSED, LEVEL_TOLERANCE, MAX_EXACT_INT,
    Discrete, Float, Int,
)
from optformer.categorical import Categorical

Parameter = Float | Int | Discrete | Categorical

__all__ = [
    "INACTIVE_UNIT", "KIND_CATEGORICAL", "KIND_FLOAT", "KIND_ORDINAL", "KIND_UNUSED", "LEVEL_TOLERANCE",
    "MAX_EXACT_INT", "Categorical", "Condition", "Discrete", "Float", "Forbidden", "Int", "Parameter", "SearchSpace",
]


class SearchSpace:
  """An ordered list of uniquely named parameters, some of them conditional.

  Args:
    parameters: Float, Int, Discrete or Categorical instances; a parameter
      with a `condition` is active only when its parent is active and the
      condition holds (`conditions.Condition`). Parents may come before or
      after their children.
    forbidden: `Forbidden` clauses (or their JSON dicts): combinations that
      are never suggested and that `validate` refuses (`forbidden.py`).
    constants: name -> value (a string, bool, number or None) of fixed
      settings carried with the space (ConfigSpace's Constant); not
      parameters, so configurations leave them out.

  Condition values are stored canonically (the parent's own values, in its
  order), so `space[name].condition` may differ from the one given.

  Raises:
    ValueError: if empty, two parameters share a name, or a condition is
      invalid (unknown parent, a cycle, a value the parent does not take, a
      condition that never holds; see `conditions.bind`).
    TypeError: if an element is not a parameter.
    Forbidden clauses and constants raise as `forbidden.bind`, or ValueError
    for a constant named like a parameter or of another type.
  """

  def __init__(self, parameters: Sequence[Parameter], forbidden: Sequence[Forbidden] = (),
               constants: Mapping[str, Any] | None = None):
    parameters = tuple(parameters)
    if not parameters:
      raise ValueError("A SearchSpace needs at least one parameter, got none.")
    for p in parameters:
      if not isinstance(p, (Float, Int, Discrete, Categorical)):
        raise TypeError(f"Expected Float, Int, Discrete or Categorical, got {p!r}.")
    names = [p.name for p in parameters]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
      raise ValueError(f"Duplicate parameter names in search space: {dupes}.")
    self.parameters = cond.bind(parameters)
    self._by_name = {p.name: p for p in self.parameters}
    self._index = {p.name: j for j, p in enumerate(self.parameters)}
    self._parents = cond.parent_indices(self.parameters)
    self._order = cond.topological_order(self.parameters)
    self.forbidden = forbidden_lib.bind(tuple(forbidden), self.parameters)
    self.constants = dict(constants or {})
    for name, v in self.constants.items():
      if name in self._by_name or not isinstance(name, str):
        raise ValueError(f"Constant {name!r} must be a string naming no parameter of the search space.")
      if v is not None and not isinstance(v, (str, bool, int, float)):
        raise ValueError(f"Constant {name!r} must be a string, bool, number or None, got {v!r}.")

  def __len__(self) -> int:
    return len(self.parameters)

  def __iter__(self):
    return iter(self.parameters)

  def __getitem__(self, name: str) -> Parameter:
    return self._by_name[name]

  def __eq__(self, other) -> bool:
    return (isinstance(other, SearchSpace) and self.parameters == other.parameters
            and self.forbidden == other.forbidden and self.constants == other.constants)

  def __repr__(self) -> str:
    extra = (f", forbidden={list(self.forbidden)!r}" if self.forbidden else "") + (
        f", constants={self.constants!r}" if self.constants else "")
    return f"SearchSpace({list(self.parameters)!r}{extra})"

  @property
  def names(self) -> list[str]:
    return [p.name for p in self.parameters]

  @property
  def is_conditional(self) -> bool:
    """True if some parameter has a condition."""
    return bool((self._parents >= 0).any())

  def topological_order(self) -> list[int]:
    """Indices into `parameters`, every parent before its children (otherwise in space order)."""
    return list(self._order)

  def parent_indices(self) -> np.ndarray:
    """int32 [D]: each parameter's parent index, -1 for a root (always active)."""
    return self._parents.copy()

  def condition_arrays(self, num_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(parent int32 [D], allowed bool [D, num_tokens]) for a decoder: see `conditions.condition_arrays`."""
    return cond.condition_arrays(self.parameters, num_tokens)

  @property
  def num_configurations(self) -> int | None:
    """How many distinct configurations the space holds (inactive parameters absent); None with a Float.

    Without conditions, the product of the levels and choices; with them,
    each parent's values count with the configurations of the children they
    activate (`conditions.num_configurations`). Forbidden clauses are not
    subtracted: with them it is an upper bound.
    """
    return cond.num_configurations(self.parameters)

  def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
    """Whether parameter `name` is active in `params` (only its ancestors' values are read).

    Raises:
      KeyError: `name` is not a parameter.
      ValueError: an active ancestor is missing from `params` or has an invalid value.
    """
    p = self._by_name[name]
    if p.condition is None:
      return True
    c = p.condition
    if not self.is_active(c.parent, params):
      return False
    parent = self._by_name[c.parent]
    if c.parent not in params:
      raise ValueError(f"Parameter {name!r} depends on {c.parent!r}, which is active but missing from {dict(params)!r}.")
    return bool(cond.holds(c, parent, [cond._code(parent, parent.validate(params[c.parent]))])[0])

  def _check(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """(validated active values in space order, bool [D] active); errors as `validate`."""
    if not isinstance(params, Mapping):
      raise TypeError(f"A configuration must be a dict of name -> value, got {params!r}.")
    unknown = sorted(set(params) - set(self._by_name))
    if unknown:
      raise ValueError(f"Unknown parameter(s) {unknown}; the search space has {self.names}.")
    active = np.ones(len(self), bool)
    if self.is_conditional:
      missing, values = [], {}
      unknown = np.zeros(len(self), bool)  # Below a missing active parent: reported as that parent's absence.
      for j in self._order:
        p, k = self.parameters[j], self._parents[j]
        if k >= 0:
          parent = self.parameters[k]
          unknown[j] = unknown[k] or (active[k] and parent.name not in values)
          active[j] = not unknown[j] and active[k] and bool(
              cond.holds(p.condition, parent, [cond._code(parent, values[parent.name])])[0])
        if unknown[j]:
          continue
        if active[j] and p.name in params:
          values[p.name] = p.validate(params[p.name])
        elif active[j]:
          missing.append(p.name)
        elif p.name in params:
          why = (f"its parent {p.condition.parent!r} is inactive" if not active[k] else
                 f"{p.condition.parent}={values[p.condition.parent]!r} does not satisfy {p.condition.describe()}")
          raise ValueError(f"Parameter {p.name!r} is inactive ({why}); leave it out of the configuration.")
      if missing:
        raise ValueError(f"Missing active parameter(s) {sorted(missing, key=self._index.get)} in configuration "
                         f"{dict(params)!r}.")
      return {p.name: values[p.name] for p in self.parameters if p.name in values}, active
    missing = [n for n in self.names if n not in params]
    if missing:
      raise ValueError(f"Missing parameter(s) {missing} in configuration {dict(params)!r}.")
    return {p.name: p.validate(params[p.name]) for p in self.parameters}, active

  def _allowed(self, values: dict, active: np.ndarray) -> dict:
    """`values` (valid, active ones); ValueError naming the clause if a forbidden clause holds."""
    if not self.forbidden:
      return values
    u = np.array([[p.to_unit(values[p.name]) if p.name in values else INACTIVE_UNIT for p in self.parameters]])
    for c in self.forbidden:
      if forbidden_lib.unit_forbidden(self.parameters, [c], u, active[None])[0]:
        raise forbidden_lib.ForbiddenError(
            f"Configuration {values!r} is forbidden by the clause {c.describe()!r} of the search space.")
    return values

  def validate(self, params: Mapping[str, Any], allow_forbidden: bool = False) -> dict[str, Any]:
    """Checks a configuration and returns its active parameters, in space order, with canonical value types.

    A configuration holds exactly its active parameters: inactive ones
    (their condition fails, or their parent is inactive) are left out.

    Raises:
      TypeError: `params` is not a mapping, or a value has the wrong type.
      ValueError: a parameter is unknown, out of its range, active but
        missing, or inactive but given (the message names it and why), or
        the configuration is forbidden (`ForbiddenError`, a ValueError naming the clause) unless
        `allow_forbidden` (a query to predict at, which may lie anywhere).
    """
    values, active = self._check(params)
    return values if allow_forbidden else self._allowed(values, active)

  def active(self, params: Mapping[str, Any]) -> np.ndarray:
    """bool [D]: which parameters are active in a configuration; errors as `validate`."""
    return self._check(params)[1]

  def active_mask(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """bool [N, D]: `active` of each of N configurations (N may be 0); errors as `validate`."""
    return np.array([self.active(c) for c in configs], bool).reshape(len(configs), len(self))

  def unit_active_mask(self, u_NxD) -> np.ndarray:
    """bool [N, D] (or [D] for one row): which parameters are active in unit rows.

    Read from the rows' parent values (decoded as `from_unit` does), so it
    equals `active_mask` of the decoded configurations (up to float
    round-off of a log-scale Float parent sitting exactly on a range
    bound); all True without conditions. Inactive slots are not read.
    """
    u = np.asarray(u_NxD, np.float64)
    if u.shape[-1:] != (len(self),) or u.ndim not in (1, 2):
      raise ValueError(f"Expected unit rows of shape (N, {len(self)}), got {u.shape}.")
    if not self.is_conditional:
      return np.ones(u.shape, bool)
    return cond.unit_active_mask(self.parameters, self._parents, self._order, u.reshape(-1, len(self))).reshape(u.shape)

  def unit_forbidden(self, u_NxD) -> np.ndarray:
    """bool [N]: which unit rows float [N, D] decode to a forbidden configuration (all False without clauses)."""
    u = np.asarray(u_NxD, np.float64).reshape(-1, len(self))
    if not self.forbidden:
      return np.zeros(len(u), bool)
    return forbidden_lib.unit_forbidden(self.parameters, self.forbidden, u, self.unit_active_mask(u))

  def is_forbidden(self, params: Mapping[str, Any]) -> bool:
    """Whether a configuration (valid otherwise) is forbidden; errors of `validate` other than forbidden raise."""
    try:
      self.validate(params)
    except forbidden_lib.ForbiddenError:
      return True
    return False

  def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
    """float64 [D]: unit values of a configuration (category index for categorical; INACTIVE_UNIT where inactive).

    A forbidden configuration encodes too (a prediction may be asked anywhere); `validate` refuses it."""
    params, _ = self._check(params)
    return np.array([p.to_unit(params[p.name]) if p.name in params else INACTIVE_UNIT for p in self.parameters],
                    dtype=np.float64)

  def to_units(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """float64 [N, D]: `to_unit` of each of N configurations (N may be 0); ValueError/TypeError as `validate`.

    `active_mask(configs)` (or `unit_active_mask` of the result) is the
    companion bool [N, D] mask.
    """
    return np.array([self.to_unit(c) for c in configs], np.float64).reshape(len(configs), len(self))

  def from_unit(self, u) -> dict[str, Any]:
    """Inverse of `to_unit` for a float [D] vector: the active parameters' values (inactive slots are not read)."""
    u = np.asarray(u, dtype=np.float64)
    if u.shape != (len(self),):
      raise ValueError(f"Expected unit values of shape ({len(self)},), got {u.shape}.")
    active = self.unit_active_mask(u)
    return {p.name: p.from_unit(x) for p, x, a in zip(self.parameters, u, active) if a}

  def snap(self, u_NxD) -> np.ndarray:
    """float64 [N, D]: each row moved to the unit values of the configuration it decodes to.

    Vectorized `to_unit(from_unit(row))` for every row: integers and
    discrete values round to a level, categories to an index, floats clip
    to [0, 1], inactive slots become INACTIVE_UNIT.
    """
    u = np.asarray(u_NxD, np.float64).reshape(-1, len(self))
    out = np.stack([p.snap_units(u[:, j]) for j, p in enumerate(self.parameters)], axis=1)
    if self.is_conditional:
      out[~self.unit_active_mask(out)] = INACTIVE_UNIT
    return out

  def sample(self, rng: np.random.Generator) -> dict[str, Any]:
    """A configuration drawn uniformly (in unit space; uniform over categories); only its active parameters.

    Forbidden configurations are redrawn (ValueError if 1000 draws in a row are all forbidden).
    """
    for _ in range(1000):
      u = np.array([rng.integers(p.num_values) if p.kind == KIND_CATEGORICAL else rng.random()
                    for p in self.parameters], dtype=np.float64)
      if not self.forbidden or not self.unit_forbidden(self.snap(u))[0]:
        return self.from_unit(u)
    raise ValueError(f"1000 uniform draws were all forbidden by the clauses {[c.describe() for c in self.forbidden]}.")

  def to_json(self) -> list[dict]:
    """One dict per parameter: its "type", fields, "condition" (`Condition.to_json`), "default" and "ordered" when
    set; then
    {"type": "constant", "name", "value"} per constant and {"type": "forbidden", "values", "relations"}
    (`Forbidden.to_json`) per forbidden clause."""
    out = []
    for p in self.parameters:
      d = {"type": type(p).__name__.lower()}
      for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if f.name == "condition":
          if v is not None:
            d["condition"] = v.to_json()
        elif f.name in ("default", "ordered"):  # Written when set, so spaces without them keep their JSON.
          if v is not None and v is not False:
            d[f.name] = v
        else:
          d[f.name] = list(v) if f.name in ("values", "choices") else v
      out.append(d)
    out += [{"type": "constant", "name": n, "value": v} for n, v in self.constants.items()]
    return out + [{"type": "forbidden", **c.to_json()} for c in self.forbidden]

  @classmethod
  def from_json(cls, items: Sequence[Mapping[str, Any]]) -> "SearchSpace":
    """Inverse of `to_json` (JSON without conditions loads as before). Raises ValueError on an unknown type."""
    kinds = {"float": Float, "int": Int, "discrete": Discrete, "categorical": Categorical}
    params, forbidden, constants = [], [], {}
    for i, item in enumerate(items):
      item = dict(item)
      t = item.pop("type", None)
      if t == "forbidden":
        forbidden.append(Forbidden.from_json(item))
        continue
      if t == "constant":
        if sorted(item) != ["name", "value"]:
          raise ValueError(f"Item #{i}: a constant has the fields name and value, got {sorted(item)}.")
        constants[item["name"]] = item["value"]
        continue
      if t not in kinds:
        raise ValueError(f"Parameter #{i}: unknown type {t!r}; expected one of {sorted(kinds)} (or constant, forbidden).")
      params.append(kinds[t](**item))
    return cls(params, forbidden, constants)
