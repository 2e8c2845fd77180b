"""The context: which of a study's trials the model sees, in what form.

One policy for every caller (`Optimizer`, `Surrogate`, the CLI, the Optuna
sampler, `eval.surrogate_eval`, all through `optformer.model.Backend`):

  * a trial is a row (unit-form configuration float [D], objective in the
    model's direction: larger is better, NaN for an infeasible trial);
  * a history longer than the model's context keeps the best half (NaN
    last) and then the most recent rows, in their original order
    (`truncate`); the caller warns once;
  * how infeasible rows and the objective's scale enter the model is the
    model's business (`optformer.model`): the model has an "infeasible"
    input and fits its own y map.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np


class Context(NamedTuple):
  """The rows the model conditions on.

  units: float64 [n, D] unit-form configurations (category index for categorical).
  y: float64 [n] objectives, larger is better; NaN = infeasible.
  """

  units: np.ndarray
  y: np.ndarray

  @classmethod
  def from_rows(cls, rows: Sequence, num_params: int, limit: int | None = None) -> "Context":
    """A Context of (unit row, y) pairs; past `limit` rows, the ones `truncate` keeps."""
    if limit is not None:
      rows = truncate(rows, limit)
    units = np.array([u for u, _ in rows], np.float64).reshape(len(rows), num_params)
    return cls(units, np.array([y for _, y in rows], np.float64))

  @property
  def best(self) -> float | None:
    """The largest feasible y, None if there is none."""
    feasible = self.y[~np.isnan(self.y)]
    return float(feasible.max()) if len(feasible) else None


def truncate(rows: Sequence, limit: int) -> list:
  """The rows a context of `limit` holds: all of them, or else the best limit // 2 (by y, NaN last) and
  then the most recent ones, in their original order. Rows are (unit row, y) pairs."""
  if len(rows) <= limit:
    return list(rows)
  order = np.argsort([-(y if not math.isnan(y) else -np.inf) for _, y in rows], kind="stable")
  keep = set(order[: limit // 2].tolist())
  for i in range(len(rows) - 1, -1, -1):
    if len(keep) >= limit:
      break
    keep.add(i)
  return [rows[i] for i in sorted(keep)]


def truncation_warning(num_rows: int, limit: int) -> str:
  """The one warning a caller gives when `truncate` drops rows."""
  return (f"The study has {num_rows} trials; the model's context holds {limit}. It sees the best "
          f"{limit // 2} and the most recent trials (all trials are kept in `trials`).")
