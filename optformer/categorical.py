"""Categorical parameters: one of a set of choices, unordered (categories) or ordered (levels).

Split from parameters.py (Float, Int, Discrete), whose helpers it shares;
`search_space` re-exports it with the others.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from optformer.conditions import Condition
from optformer.parameters import (
    KIND_CATEGORICAL, KIND_ORDINAL, _clip, _check_name, _repr, _set_condition, _set_default,
)


@dataclasses.dataclass(frozen=True)
class Categorical:
  """A parameter taking one of `choices` (strings, bools, numbers or None), unordered or, with `ordered=True`, ordered.

  Unordered (the default): the unit value is the category's index k and the
  model reads a category (KIND_CATEGORICAL). Ordered (ConfigSpace's
  OrdinalHyperparameter, e.g. ["low", "medium", "high"], or numbers in any
  order such as [100, 10, 1]): the choices are levels in the given order,
  level k of K at unit value k / (K - 1), read by the model as ordered
  levels (KIND_ORDINAL), as Discrete's; local moves step between
  neighbouring levels. Either way conditions and forbidden clauses name the
  choices themselves, and `default` (None for none) is one of them.

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
  default: Any = None
  ordered: bool = False

  __repr__ = _repr

  @property
  def kind(self) -> int:
    """KIND_ORDINAL when ordered, else KIND_CATEGORICAL."""
    return KIND_ORDINAL if self.ordered else KIND_CATEGORICAL

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
    if not isinstance(self.ordered, (bool, np.bool_)):
      raise TypeError(f"Parameter {self.name!r}: ordered must be True or False, got {self.ordered!r}.")
    object.__setattr__(self, "ordered", bool(self.ordered))
    _set_default(self)

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

  def index(self, value: Any) -> int:
    """The position k of `value` among the choices; raises as `validate`."""
    c = self.validate(value)  # The choice object itself: index by identity, not ==.
    return next(k for k, x in enumerate(self.choices) if x is c)

  def to_unit(self, value: Any) -> float:
    k = self.index(value)
    return k / (len(self.choices) - 1) if self.ordered else float(k)

  def from_unit(self, u: float):
    if self.ordered:
      return self.choices[int(round(_clip(u, 0.0, 1.0) * (len(self.choices) - 1)))]
    k = int(round(float(u)))
    if not 0 <= k < len(self.choices):
      raise ValueError(f"Parameter {self.name!r}: category index {u!r} outside [0, {len(self.choices)}).")
    return self.choices[k]

  def snap_units(self, u) -> np.ndarray:
    """float64 [N]: the unit value of the choice each u decodes to: its index clipped to [0, K - 1], or its level
    k / (K - 1) when ordered."""
    if self.ordered:
      n = len(self.choices) - 1
      return np.round(np.clip(np.asarray(u, np.float64), 0.0, 1.0) * n) / n
    return np.clip(np.round(np.asarray(u, np.float64)), 0, len(self.choices) - 1)

  def values_from_units(self, u) -> np.ndarray:
    """float64 [N]: the index k of the choice each unit value decodes to (the value code of `conditions`)."""
    if self.ordered:
      return np.round(self.snap_units(u) * (len(self.choices) - 1))
    return self.snap_units(u)
