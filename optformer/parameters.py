"""Parameters of a search space: Float, Int, Discrete (Categorical: categorical.py), and their encoding to [0, 1].

Four parameter kinds, as in OSS Vizier, Optuna and ConfigSpace:

* `Float(name, low, high, log=False)`: a real number in [low, high].
* `Int(name, low, high, log=False)`: an integer in [low, high].
* `Discrete(name, values)`: one of a sorted, finite set of numbers.
* `Categorical(name, choices, ordered=False)`: one of a set of strings
  (or numbers, bools, None), unordered, or ordered as given (categorical.py).

Each also takes `default=` (a value of the parameter, carried for tools
that name one, such as ConfigSpace; the optimizer does not use it) and `condition=` (a `conditions.Condition`, its JSON dict, or a
pair `(parent, values)`): the parameter is active only when the condition
on its parent holds; `search_space.SearchSpace` checks the tree.

Every parameter maps a value to a *unit value* (`to_unit`) and back
(`from_unit`). For Float and Int the unit value is the position in [0, 1]
after the log transform when `log=True`. Int and Discrete values are ordered
*levels*: level i of n sits at unit value i / (n - 1) for Discrete, and at
the scaled integer for Int. For Categorical the unit value is the category's
index k (0 <= k < K) as a float (categories carry no order), and k / (K - 1)
for an ordered one (levels, as Discrete's).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, Mapping

import numpy as np

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
  """The dataclass repr, without `condition`, `default` or `ordered` when they hold their defaults."""
  hide = lambda f: f.name in ("condition", "default", "ordered") and (getattr(p, f.name) is None or getattr(p, f.name) is False)
  fields = [f for f in dataclasses.fields(p) if not hide(f)]
  return f"{type(p).__name__}({', '.join(f'{f.name}={getattr(p, f.name)!r}' for f in fields)})"


def _set_condition(p) -> None:
  object.__setattr__(p, "condition", Condition.parse(p.condition, p.name))


def _set_default(p) -> None:
  """Validates `default` (None: no default); it is carried for tools that name one (ConfigSpace), not used."""
  if p.default is not None:
    object.__setattr__(p, "default", p.validate(p.default))


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
  default: Any = None  # A value of the parameter (`_set_default`); None for none.

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
    _set_default(self)

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
  default: Any = None  # A value of the parameter (`_set_default`); None for none.

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
    _set_default(self)

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
  default: Any = None  # A value of the parameter (`_set_default`); None for none.

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
    _set_default(self)

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
