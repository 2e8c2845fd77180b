"""Reading trials.csv and configs.csv/json (the `optformer` command's history and queries), with located errors.

The columns are documented by optformer/cli.py: one per parameter, the
objective column(s) (`objective`, or `objective_1` ... `objective_K` for K
objectives), optionally `status` and the constraint columns `constraint_1`
... `constraint_J` (feasible when all are <= 0, as `Optimizer.tell`'s
`constraints`). Errors are `study_files.InputError`s naming the file, line
and field.
"""

from __future__ import annotations

import csv
import io
import math
import pathlib
import re
from typing import Any, NamedTuple

from optformer import search_space as ss
from optformer.study_files import (
    _STATUSES, RESERVED_COLUMNS, RESERVED_PATTERN, InputError, _json_list, _read_text, _spelled_as, check_tree,
    parse_number,
)


class Row(NamedTuple):
  """One trial of trials.csv."""

  line: int  # 1-based line of the row.
  params: dict  # The configuration (its active parameters).
  value: Any  # The objective (float; NaN for an infeasible trial), a tuple of them (several objectives), or None
  #             (status infeasible, or a configuration without history).
  status: str  # "completed", "infeasible" or "pending".
  constraints: tuple | None  # The constraint values of a completed trial with constraint columns, else None.


def _quote_hint(text: str) -> str:
  """A hint for a cell like ` "adam"`: RFC 4180 quotes only at the start of a field, so the quotes stay in the value."""
  if re.match(r'\s+"', text):
    return " (a quoted field must start right after the comma; remove the spaces before the quote)"
  return ""


def _cell_value(p, text: str):
  """A CSV cell as a value of parameter p; raises ValueError/TypeError without the parameter prefix.

  A categorical cell is first matched exactly against the string choices (so " a" reads as " a", not "a"), then, with
  the spaces around it removed, against the string choices and the spellings of the others (`_spelled_as`).
  """
  t = text.strip()
  if isinstance(p, ss.Categorical):
    for c in p.choices:
      if isinstance(c, str) and c == text:
        return c
    for c in p.choices:
      if c == t if isinstance(c, str) else _spelled_as(c, t):
        return c
    raise ValueError(f"{text!r} is not one of {list(p.choices)!r}{_quote_hint(text)}.")
  v = parse_number(t)
  if v is None:
    raise ValueError(f"{text!r} is not a number{_quote_hint(text)}.")
  return p.validate(int(v) if isinstance(p, (ss.Int, ss.Discrete)) and v.is_integer() else v)


def objective_columns(num_objectives: int) -> list[str]:
  """["objective"] for one objective, else ["objective_1", ..., "objective_K"]."""
  return ["objective"] if num_objectives == 1 else [f"objective_{k + 1}" for k in range(num_objectives)]


def _number(path, line: int, column: str, cell: str, what: str) -> float:
  """A cell as a float (empty or nan: NaN); InputError for text or an overflow such as 1e400."""
  value = parse_number(cell) if cell else math.nan
  if value is None:
    raise InputError(path, line, column, f"{cell!r} is not a number ({what}).")
  if math.isinf(value) and cell.lower().lstrip("+-") not in ("inf", "infinity"):
    raise InputError(path, line, column, f"{cell!r} overflows float64 (beyond +-1.8e308); write inf, or leave it empty.")
  return value


def read_trials(path, space: ss.SearchSpace, history: bool, num_objectives: int = 1) -> list[Row]:
  """Rows of trials.csv (`Row`; cli.py documents the columns). history=False reads configurations only."""
  text = _read_text(path)
  # RFC 4180: spaces are part of a field (a categorical " a" stays " a"); _cell_value forgives spaces around a value.
  reader = csv.reader(io.StringIO(text, newline=""))
  rows, start = [], 1
  try:
    for cells in reader:
      if len(cells) > 1 or (cells and cells[0].strip()):  # Blank lines are skipped; ",,,," is a row of empty fields.
        rows.append((start, cells))
      start = reader.line_num + 1
  except csv.Error as e:
    raise InputError(path, reader.line_num, None, f"not valid CSV: {e}.") from e
  if not rows:
    raise InputError(path, 1, None, f"empty file; expected a header row with the parameter names{' and objective' if history else ''}.")
  header_line, header = rows[0]
  header = [h.strip() for h in header]
  objectives = objective_columns(num_objectives)
  constraints = sorted((h for h in header if re.fullmatch(r"constraint_[0-9]+", h)), key=lambda h: int(h[11:]))
  for j, name in enumerate(header):
    if name in header[:j]:
      raise InputError(path, header_line, name, "the column appears twice in the header.")
    if name not in space.names and name not in RESERVED_COLUMNS and not RESERVED_PATTERN.fullmatch(name):
      raise InputError(path, header_line, name, f"unknown column; expected the parameters {space.names}, "
                       f"{', '.join(objectives)} and optionally status and constraint_1, constraint_2, ...")
    if history and RESERVED_PATTERN.fullmatch(name) and name not in objectives + constraints or (
        history and name == "objective" and "objective" not in objectives):
      raise InputError(path, header_line, name, f"unexpected column for {num_objectives} objective(s) (--goal); "
                       f"expected the objective column(s) {objectives}.")
  if constraints != [f"constraint_{k + 1}" for k in range(len(constraints))] and history:
    raise InputError(path, header_line, None, f"constraint columns must be constraint_1, ..., constraint_J with none "
                     f"missing, got {constraints}.")
  for name in space.names + (objectives if history else []):
    if name not in header:
      raise InputError(path, header_line, name, f"missing column; the header must name every parameter {space.names}"
                       f"{' and ' + ', '.join(objectives) if history else ''}.")
  out = []
  for line, cells in rows[1:]:
    if len(cells) != len(header):
      hint = next((h for c in cells if (h := _quote_hint(c))), "")
      raise InputError(path, line, None,
                       f"{len(cells)} fields, but the header (line {header_line}) has {len(header)}{hint}.")
    row = dict(zip(header, cells))
    params = {}
    for p in space:
      if space.is_conditional and not row[p.name].strip():  # An inactive parameter's cell is empty.
        continue
      try:
        params[p.name] = _cell_value(p, row[p.name])
      except (TypeError, ValueError) as e:
        raise InputError(path, line, p.name, str(e).removeprefix(f"Parameter {p.name!r}: ")) from e
    params = check_tree(path, line, space, params, blank="leave its cell empty")
    if not history:
      out.append(Row(line, params, None, "completed", None))
      continue
    status = row.get("status", "").strip().lower() or "completed"
    if status not in _STATUSES:
      raise InputError(path, line, "status", f"{row['status']!r} is not one of {list(_STATUSES)} (empty means completed).")
    values = [_number(path, line, c, row[c].strip(), "leave it empty, or write nan, for an infeasible trial")
              for c in objectives]
    for c, value in zip(objectives, values):
      if status != "completed" and math.isfinite(value):
        raise InputError(path, line, c, f"a {status} trial has no objective; got {row[c].strip()!r} (leave it empty).")
    cells = [row[c].strip() for c in constraints]
    told = None
    if status == "completed" and constraints:
      told = tuple(_number(path, line, c, t, "constraints are numbers, feasible when <= 0") for c, t in zip(constraints, cells))
      bad = next((c for c, v in zip(constraints, told) if not math.isfinite(v)), None)
      if bad is not None:
        raise InputError(path, line, bad, f"a completed trial needs every constraint as a finite number, got "
                         f"{row[bad].strip()!r}.")
    elif any(cells) and status == "pending":
      raise InputError(path, line, constraints[[bool(c) for c in cells].index(True)], "a pending trial has no constraint "
                       "values yet (leave them empty).")
    value = values[0] if num_objectives == 1 else tuple(values)
    out.append(Row(line, params, None if status == "infeasible" else value, status, told))
  return out


def read_configs(path, space: ss.SearchSpace) -> list[dict]:
  """Configurations from a .csv or .json file."""
  suffix = pathlib.Path(path).suffix.lower()
  if suffix == ".csv":
    return [row.params for row in read_trials(path, space, history=False)]
  if suffix != ".json":
    raise InputError(path, None, None, "expected a .csv or .json file of configurations.")
  configs = []
  for i, (item, line, keys) in enumerate(_json_list(path, "configurations (objects name -> value)")):
    if not isinstance(item, dict):
      raise InputError(path, line, None, f"configuration #{i} must be an object name -> value, got {item!r}.")
    for key in item:
      if key not in space.names:
        raise InputError(path, keys[key], key, f"configuration #{i}: unknown parameter; the search space has {space.names}.")
    params = {}
    for p in space:
      if p.name not in item:
        if space.is_conditional:  # Inactive, or missing: check_tree tells.
          continue
        raise InputError(path, line, p.name, f"configuration #{i} is missing this parameter.")
      try:
        params[p.name] = p.validate(item[p.name])
      except (TypeError, ValueError) as e:
        raise InputError(path, keys[p.name], p.name, f"configuration #{i}: " + str(e).removeprefix(f"Parameter {p.name!r}: ")) from e
    configs.append(check_tree(path, line, space, params, f"configuration #{i}: "))
  return configs
