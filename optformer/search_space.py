"""Search spaces: the parameters a study tunes and their encoding to [0, 1].

Four parameter kinds, as in OSS Vizier, Optuna and ConfigSpace:

* `Float(name, low, high, log=False)`: a real number in [low, high].
* `Int(name, low, high, log=False)`: an integer in [low, high].
* `Discrete(name, values)`: one of a sorted, finite set of numbers.
* `Categorical(name, choices)`: one of an unordered set of strings.

Every parameter maps a value to a *unit value* (`to_unit`) and back
(`from_unit`). For Float and Int the unit value is the position in [0, 1]
after the log transform when `log=True`. Int and Discrete values are ordered
*levels*: level i of n sits at unit value i / (n - 1) for Discrete, and at
the scaled integer for Int. For Categorical the unit value is the category's
index k (0 <= k < K) as a float; categories carry no order.

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
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from optformer import conditions as cond
from optformer.conditions import Condition

# Kind codes, shared with the tokenizer and the prior (data_gen). 0 = unused.
KIND_UNUSED = 0
KIND_FLOAT = 1
KIND_ORDINAL = 2  # Int and Discrete: ordered, finitely many levels.
KIND_CATEGORICAL = 3

MAX_EXACT_INT = 2**53  # Int bounds: every integer up to this magnitude is a float64.
INACTIVE_UNIT = 0.5  # The unit value held by an inactive parameter's slot (the model reads the active mask).
LEVEL_TOLERANCE = 1e-9  # Discrete: how far from a level a value may be, as a fraction of the gap to the next level.


def _repr(p) -> str:
  """The dataclass repr, without `condition` when there is none."""
  fields = [f for f in dataclasses.fields(p) if f.name != "condition" or p.condition is not None]
  return f"{type(p).__name__}({', '.join(f'{f.name}={getattr(p, f.name)!r}' for f in fields)})"


def _set_condition(p) -> None:
  object.__setattr__(p, "condition", Condition.parse(p.condition, p.name))


def _clip(v, lo: float, hi: float) -> float:
  """float(v) clipped to [lo, hi] (NaN stays NaN); a scalar np.clip costs ~10 us, this ~0.3 us."""
  return float(min(max(float(v), lo), hi))


def _check_name(name: Any) -> None:
  if not isinstance(name, str) or not name:
    raise ValueError(f"Parameter name must be a non-empty string, got {name!r}.")
  if name != name.strip():
    raise ValueError(
        f"Parameter name {name!r} has leading or trailing whitespace; remove it (files such as the CLI's trials.csv "
        "strip it, so the name could not be told apart from the stripped one)."
    )


def _check_log(name: str, log: Any) -> bool:
  """`log` as a bool; TypeError unless it is True or False (a string such as "no" is truthy, so it is refused)."""
  if not isinstance(log, (bool, np.bool_)):
    raise TypeError(f"Parameter {name!r}: log must be True or False, got {log!r}.")
  return bool(log)


def _check_finite_number(name: str, what: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"Parameter {name!r}: {what} must be a number, got {value!r}.")
  if not math.isfinite(float(value)):
    raise ValueError(f"Parameter {name!r}: {what} must be finite, got {value!r}.")
  return float(value)


@dataclasses.dataclass(frozen=True)
class Float:
  """A real-valued parameter in [low, high] (log scale if `log`).

  Raises:
    TypeError: a bound is not a number, or `log` is not True or False.
    ValueError: if low >= high, a bound is not finite, high - low overflows
      float64 (e.g. -1e308 to 1e308: no value in between could be encoded),
      or log=True with low <= 0.
  """

  name: str
  low: float
  high: float
  log: bool = False
  condition: Condition | None = None

  __repr__ = _repr
  kind = KIND_FLOAT

  def __post_init__(self):
    _check_name(self.name)
    _set_condition(self)
    object.__setattr__(self, "log", _check_log(self.name, self.log))
    low = _check_finite_number(self.name, "low", self.low)
    high = _check_finite_number(self.name, "high", self.high)
    if low >= high:
      raise ValueError(f"Parameter {self.name!r}: low={self.low!r} must be < high={self.high!r}.")
    if self.log and low <= 0:
      raise ValueError(f"Parameter {self.name!r}: log scale needs low > 0, got low={self.low!r}.")
    if not self.log and not math.isfinite(high - low):
      raise ValueError(
          f"Parameter {self.name!r}: the range high - low = {self.high!r} - {self.low!r} overflows float64; "
          "narrow it."
      )
    object.__setattr__(self, "low", low)
    object.__setattr__(self, "high", high)

  @property
  def num_values(self) -> int:
    """0: infinitely many values."""
    return 0

  def validate(self, value: Any) -> float:
    """Returns `value` as a float; raises TypeError/ValueError if not in [low, high]."""
    v = _check_finite_number(self.name, "value", value)
    if not self.low <= v <= self.high:
      raise ValueError(f"Parameter {self.name!r}: value {value!r} is outside [{self.low}, {self.high}].")
    return v

  def _warp(self, v):
    return np.log(v) if self.log else v

  def to_unit(self, value: Any) -> float:
    v = self.validate(value)
    lo, hi = self._warp(self.low), self._warp(self.high)
    return _clip((self._warp(v) - lo) / (hi - lo), 0.0, 1.0)

  def from_unit(self, u: float) -> float:
    lo, hi = self._warp(self.low), self._warp(self.high)
    w = lo + _clip(u, 0.0, 1.0) * (hi - lo)
    v = float(np.exp(w)) if self.log else float(w)
    return _clip(v, self.low, self.high)

  def snap_units(self, u) -> np.ndarray:
    """float64 [N]: the unit value of the value each u decodes to (vectorized to_unit(from_unit(u)))."""
    return np.clip(np.asarray(u, np.float64), 0.0, 1.0)

  def values_from_units(self, u) -> np.ndarray:
    """float64 [N]: the value each unit value decodes to (vectorized from_unit, up to round-off)."""
    lo, hi = self._warp(self.low), self._warp(self.high)
    w = lo + np.clip(np.asarray(u, np.float64), 0.0, 1.0) * (hi - lo)
    return np.clip(np.exp(w) if self.log else w, self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Int:
  """An integer parameter in [low, high] (log scale if `log`).

  Integers up to 2**53 in magnitude (the ones float64 holds exactly) are
  supported; a range with more levels than the model's bins is decoded by
  rounding, as a float would be.

  Raises:
    TypeError: if a bound is not an integer, or `log` is not True or False.
    ValueError: if low >= high, a bound beyond +-2**53, or log=True with low <= 0.
  """

  name: str
  low: int
  high: int
  log: bool = False
  condition: Condition | None = None

  __repr__ = _repr
  kind = KIND_ORDINAL

  def __post_init__(self):
    _check_name(self.name)
    _set_condition(self)
    object.__setattr__(self, "log", _check_log(self.name, self.log))
    for what, v in (("low", self.low), ("high", self.high)):
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"Parameter {self.name!r}: {what} must be an int, got {v!r}.")
      if abs(int(v)) > MAX_EXACT_INT:
        raise ValueError(
            f"Parameter {self.name!r}: {what}={v!r} is beyond +-2**53, where float64 no longer holds every integer."
        )
    if self.low >= self.high:
      raise ValueError(f"Parameter {self.name!r}: low={self.low!r} must be < high={self.high!r}.")
    if self.log and self.low <= 0:
      raise ValueError(f"Parameter {self.name!r}: log scale needs low > 0, got low={self.low!r}.")
    object.__setattr__(self, "low", int(self.low))
    object.__setattr__(self, "high", int(self.high))

  @property
  def num_values(self) -> int:
    return self.high - self.low + 1

  def validate(self, value: Any) -> int:
    """Returns `value` as an int; raises if not an integer in [low, high]."""
    if isinstance(value, bool):
      raise TypeError(f"Parameter {self.name!r}: expected an int, got {value!r}.")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
      value = int(value)
    if not isinstance(value, (int, np.integer)):
      raise TypeError(f"Parameter {self.name!r}: expected an int, got {value!r}.")
    if not self.low <= value <= self.high:
      raise ValueError(f"Parameter {self.name!r}: value {value!r} is outside [{self.low}, {self.high}].")
    return int(value)

  def _warp(self, v):
    return np.log(v) if self.log else v

  def to_unit(self, value: Any) -> float:
    v = self.validate(value)
    lo, hi = self._warp(float(self.low)), self._warp(float(self.high))
    return _clip((self._warp(float(v)) - lo) / (hi - lo), 0.0, 1.0)

  def from_unit(self, u: float) -> int:
    lo, hi = self._warp(float(self.low)), self._warp(float(self.high))
    w = lo + _clip(u, 0.0, 1.0) * (hi - lo)
    v = float(np.exp(w)) if self.log else w
    return int(min(max(round(v), self.low), self.high))

  def snap_units(self, u) -> np.ndarray:
    """float64 [N]: the unit value of the integer each u decodes to (vectorized to_unit(from_unit(u)))."""
    lo, hi = self._warp(float(self.low)), self._warp(float(self.high))
    w = lo + np.clip(np.asarray(u, np.float64), 0.0, 1.0) * (hi - lo)
    v = np.clip(np.round(np.exp(w) if self.log else w), self.low, self.high)
    return np.clip((self._warp(v) - lo) / (hi - lo), 0.0, 1.0)

  def values_from_units(self, u) -> np.ndarray:
    """float64 [N]: the integer each unit value decodes to (vectorized from_unit)."""
    lo, hi = self._warp(float(self.low)), self._warp(float(self.high))
    w = lo + np.clip(np.asarray(u, np.float64), 0.0, 1.0) * (hi - lo)
    return np.clip(np.round(np.exp(w) if self.log else w), self.low, self.high)

  def level_units(self) -> np.ndarray:
    """float64 [num_values]: the unit value of every integer, in order."""
    return np.array([self.to_unit(v) for v in range(self.low, self.high + 1)])


@dataclasses.dataclass(frozen=True)
class Discrete:
  """A numeric parameter taking one of a sorted, finite set of values.

  Level i of n is encoded at unit value i / (n - 1) (ordinal spacing).

  `validate` maps a number to the level nearest to it, and accepts it only
  if it lies within `LEVEL_TOLERANCE` (1e-9) times the gap from that level
  to its nearest neighbouring level: float round-off such as 0.1 * 3 =
  0.30000000000000004 is accepted as 0.3, but no two levels are ever merged
  (1e9 and 1e9 + 1, or 1e-15 and 2e-15, stay distinct) and a value between
  levels is refused. Floats written with `repr` (Python's json and csv)
  read back exactly, so they need no tolerance at all.

  Raises:
    ValueError: fewer than 2 values, duplicates, unsorted or non-finite values.
  """

  name: str
  values: tuple
  condition: Condition | None = None

  __repr__ = _repr
  kind = KIND_ORDINAL

  def __post_init__(self):
    _check_name(self.name)
    _set_condition(self)
    values = tuple(_check_finite_number(self.name, "each value", v) for v in self.values)
    if len(values) < 2:
      raise ValueError(f"Parameter {self.name!r}: needs at least 2 values, got {list(self.values)!r}.")
    if any(b <= a for a, b in zip(values, values[1:])):
      raise ValueError(f"Parameter {self.name!r}: values must be sorted and distinct, got {list(self.values)!r}.")
    # Keep ints as ints so that users get back the type they gave.
    keep = tuple(int(v) if all(isinstance(x, (int, np.integer)) for x in self.values) else v for v in values)
    object.__setattr__(self, "values", keep)
    # Per level: the largest distance from it that still reads as that level (see the class docstring).
    gaps = [math.inf, *(b - a for a, b in zip(values, values[1:])), math.inf]  # gaps[i], gaps[i + 1]: around level i.
    object.__setattr__(self, "_floats", values)
    object.__setattr__(self, "_tolerances", tuple(LEVEL_TOLERANCE * min(gaps[i], gaps[i + 1]) for i in range(len(values))))

  @property
  def num_values(self) -> int:
    return len(self.values)

  def _level(self, value: Any) -> int:
    """The index of the level `value` reads as (class docstring); TypeError/ValueError if none."""
    v = _check_finite_number(self.name, "value", value)
    floats = self._floats
    i = bisect.bisect_left(floats, v)
    k = min((j for j in (i - 1, i) if 0 <= j < len(floats)), key=lambda j: abs(v - floats[j]))
    if abs(v - floats[k]) <= self._tolerances[k]:
      return k
    raise ValueError(f"Parameter {self.name!r}: value {value!r} is not one of {list(self.values)!r}.")

  def validate(self, value: Any):
    """The level `value` reads as (exactly as given in `values`); raises TypeError/ValueError if none."""
    return self.values[self._level(value)]

  def to_unit(self, value: Any) -> float:
    return self._level(value) / (len(self.values) - 1)

  def from_unit(self, u: float):
    return self.values[int(round(_clip(u, 0.0, 1.0) * (len(self.values) - 1)))]

  def snap_units(self, u) -> np.ndarray:
    """float64 [N]: the unit value of the level each u decodes to (vectorized to_unit(from_unit(u)))."""
    n = len(self.values) - 1
    return np.round(np.clip(np.asarray(u, np.float64), 0.0, 1.0) * n) / n

  def level_units(self) -> np.ndarray:
    return np.arange(len(self.values)) / (len(self.values) - 1)

  def values_from_units(self, u) -> np.ndarray:
    """float64 [N]: the level each unit value decodes to (vectorized from_unit)."""
    n = len(self.values) - 1
    return np.asarray(self._floats)[np.round(np.clip(np.asarray(u, np.float64), 0.0, 1.0) * n).astype(int)]


@dataclasses.dataclass(frozen=True)
class Categorical:
  """An unordered parameter taking one of `choices` (strings, bools, numbers or None).

  `choices` is a list or tuple. Numpy scalars become the Python value they
  hold. Choices that compare equal in Python (1, 1.0 and True; they are one
  key of a dict, of a `priors.Weights` and of Optuna's lookup) are
  duplicates.

  Raises:
    TypeError: `choices` is a string, bytes, a set or a mapping (an unordered
      or character-by-character collection), or a choice is not a string,
      bool, number or None.
    ValueError: fewer than 2 choices, a NaN or infinite choice (it never
      equals itself, or cannot be saved), or duplicate choices.
  """

  name: str
  choices: tuple
  condition: Condition | None = None

  __repr__ = _repr
  kind = KIND_CATEGORICAL

  def __post_init__(self):
    _check_name(self.name)
    _set_condition(self)
    if isinstance(self.choices, (str, bytes, set, frozenset, Mapping)):
      raise TypeError(
          f"Parameter {self.name!r}: choices must be a list or tuple, got {type(self.choices).__name__} "
          f"{self.choices!r}."
      )
    choices = tuple(c.item() if isinstance(c, np.generic) else c for c in self.choices)
    for c in choices:
      if c is not None and not isinstance(c, (str, bool, int, float)):
        raise TypeError(f"Parameter {self.name!r}: a choice must be a string, bool, number or None, got {c!r}.")
      if isinstance(c, float) and not math.isfinite(c):
        raise ValueError(f"Parameter {self.name!r}: choices must be finite, got {c!r}.")
    if len(choices) < 2:
      raise ValueError(f"Parameter {self.name!r}: needs at least 2 choices, got {list(self.choices)!r}.")
    dupes = [(a, b) for i, a in enumerate(choices) for b in choices[i + 1:] if a == b]
    if dupes:
      raise ValueError(
          f"Parameter {self.name!r}: duplicate choices in {list(self.choices)!r} "
          f"({dupes[0][0]!r} == {dupes[0][1]!r})."
      )
    object.__setattr__(self, "choices", choices)

  @property
  def num_values(self) -> int:
    return len(self.choices)

  def validate(self, value: Any):
    for c in self.choices:
      if type(c) is type(value) and c == value:
        return c
    for c in self.choices:  # Allow str subclasses (numpy.str_) and numpy scalars equal to a choice.
      if isinstance(c, str) == isinstance(value, str) and c == value:
        return c
    raise ValueError(f"Parameter {self.name!r}: value {value!r} is not one of {list(self.choices)!r}.")

  def to_unit(self, value: Any) -> float:
    c = self.validate(value)  # The choice object itself: index by identity, not ==.
    return float(next(k for k, x in enumerate(self.choices) if x is c))

  def from_unit(self, u: float):
    k = int(round(float(u)))
    if not 0 <= k < len(self.choices):
      raise ValueError(f"Parameter {self.name!r}: category index {u!r} outside [0, {len(self.choices)}).")
    return self.choices[k]

  def snap_units(self, u) -> np.ndarray:
    """float64 [N]: the category index each u decodes to, clipped to [0, K - 1]."""
    return np.clip(np.round(np.asarray(u, np.float64)), 0, len(self.choices) - 1)

  def values_from_units(self, u) -> np.ndarray:
    """float64 [N]: the category index each unit value decodes to (as snap_units)."""
    return self.snap_units(u)


Parameter = Float | Int | Discrete | Categorical


class SearchSpace:
  """An ordered list of uniquely named parameters, some of them conditional.

  Args:
    parameters: Float, Int, Discrete or Categorical instances; a parameter
      with a `condition` is active only when its parent is active and the
      condition holds (`conditions.Condition`). Parents may come before or
      after their children.

  Condition values are stored canonically (the parent's own values, in its
  order), so `space[name].condition` may differ from the one given.

  Raises:
    ValueError: if empty, two parameters share a name, or a condition is
      invalid (unknown parent, a cycle, a value the parent does not take, a
      condition that never holds; see `conditions.bind`).
    TypeError: if an element is not a parameter.
  """

  def __init__(self, parameters: Sequence[Parameter]):
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

  def __len__(self) -> int:
    return len(self.parameters)

  def __iter__(self):
    return iter(self.parameters)

  def __getitem__(self, name: str) -> Parameter:
    return self._by_name[name]

  def __eq__(self, other) -> bool:
    return isinstance(other, SearchSpace) and self.parameters == other.parameters

  def __repr__(self) -> str:
    return f"SearchSpace({list(self.parameters)!r})"

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
    activate (`conditions.num_configurations`).
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

  def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
    """Checks a configuration and returns its active parameters, in space order, with canonical value types.

    A configuration holds exactly its active parameters: inactive ones
    (their condition fails, or their parent is inactive) are left out.

    Raises:
      TypeError: `params` is not a mapping, or a value has the wrong type.
      ValueError: a parameter is unknown, out of its range, active but
        missing, or inactive but given (the message names it and why).
    """
    return self._check(params)[0]

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

  def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
    """float64 [D]: unit values of a configuration (category index for categorical; INACTIVE_UNIT where inactive)."""
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
    """A configuration drawn uniformly (in unit space; uniform over categories); only its active parameters."""
    u = [rng.integers(p.num_values) if p.kind == KIND_CATEGORICAL else rng.random() for p in self.parameters]
    return self.from_unit(np.array(u, dtype=np.float64))

  def to_json(self) -> list[dict]:
    """One dict per parameter: its "type", fields, and "condition" (`Condition.to_json`) when it has one."""
    out = []
    for p in self.parameters:
      d = {"type": type(p).__name__.lower()}
      for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        if f.name == "condition":
          if v is not None:
            d["condition"] = v.to_json()
        else:
          d[f.name] = list(v) if f.name in ("values", "choices") else v
      out.append(d)
    return out

  @classmethod
  def from_json(cls, items: Sequence[Mapping[str, Any]]) -> "SearchSpace":
    """Inverse of `to_json` (JSON without conditions loads as before). Raises ValueError on an unknown type."""
    kinds = {"float": Float, "int": Int, "discrete": Discrete, "categorical": Categorical}
    params = []
    for i, item in enumerate(items):
      item = dict(item)
      t = item.pop("type", None)
      if t not in kinds:
        raise ValueError(f"Parameter #{i}: unknown type {t!r}; expected one of {sorted(kinds)}.")
      params.append(kinds[t](**item))
    return cls(params)
