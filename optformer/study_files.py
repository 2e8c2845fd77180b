"""Reading a study's files: space.json, trials.csv and configs.csv/json, with located errors.

Formats (UTF-8; a byte-order mark is allowed) are those of the `optformer`
command (optformer/cli.py documents them); every error is an `InputError`
naming the file, the 1-based line and the field at fault, e.g.
`trials.csv:4: field 'units': value 400 is outside [2, 20].`
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import re
import tempfile
from typing import Any

from optformer import search_space as ss

_KINDS = {cls.__name__.lower(): cls for cls in (ss.Float, ss.Int, ss.Discrete, ss.Categorical)}
_STATUSES = ("completed", "infeasible", "pending")


class InputError(Exception):
  """A problem with an input file, located by file, line (1-based, or None) and field (or None)."""

  def __init__(self, path, line: int | None, field: str | None, message: str):
    where = f"{path}:{line}" if line else str(path)
    super().__init__(f"{where}: " + (f"field {field!r}: " if field else "") + message)


# -- JSON with line numbers ----------------------------------------------------


def _read_text(path) -> str:
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      return f.read()
  except OSError as e:
    raise InputError(path, None, None, f"cannot read the file: {e.strerror}.") from e
  except UnicodeDecodeError as e:
    raise InputError(path, None, None, f"not UTF-8 text: {e}.") from e


def _json_list(path, what: str) -> list[tuple[Any, int, dict[str, int]]]:
  """Items of a JSON list file as (item, line of the item, line of each key if an object)."""
  text = _read_text(path)
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise InputError(path, e.lineno, None, f"invalid JSON: {e.msg} (column {e.colno}).") from e
  except RecursionError:
    raise InputError(path, 1, None, f"invalid JSON: nested too deeply; expected a flat list of {what}.") from None
  if not isinstance(data, list):
    kind = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
    raise InputError(path, 1, None, f"expected a JSON list of {what}, got {kind}.")
  # The text is valid JSON, so a shallow re-scan with raw_decode finds where each item and key starts.
  dec, ws = json.JSONDecoder(), re.compile(r"\s*")
  line = lambda pos: text.count("\n", 0, pos) + 1
  skip = lambda pos: ws.match(text, pos).end()
  out, i = [], skip(skip(0) + 1)  # After "[".
  for item in data:
    start, keys = i, {}
    if isinstance(item, dict):
      i = skip(i + 1)
      while text[i] != "}":
        key, i = dec.raw_decode(text, i)
        if key in keys:
          raise InputError(path, line(i), key, "appears twice in the same object.")
        keys[key] = line(i)
        _, i = dec.raw_decode(text, skip(skip(i) + 1))  # Past ":" to the value.
        i = skip(i)
        i = skip(i + 1) if text[i] == "," else i
      i += 1
    else:
      _, i = dec.raw_decode(text, i)
    out.append((item, line(start), keys))
    i = skip(i)
    i = skip(i + 1) if text[i] == "," else i
  return out


# -- space.json ----------------------------------------------------------------


def _field_named_in(message: str, keys) -> str | None:
  """The key that an error message mentions first (e.g. 'low' in 'low=1.0 must be < high=0.5')."""
  hits = [(m.start(), k) for k in keys if (m := re.search(rf"\b{re.escape(k.rstrip('s'))}", message))]
  return min(hits)[1] if hits else None


def load_space(path) -> ss.SearchSpace:
  """The SearchSpace in a space.json file. Raises InputError naming the line and field at fault."""
  items = _json_list(path, "parameters (SearchSpace.to_json() format)")
  if not items:
    raise InputError(path, 1, None, "the search space needs at least one parameter, got [].")
  params = []
  for i, (item, line, keys) in enumerate(items):
    at = lambda key, keys=keys, line=line: keys.get(key, line)
    if not isinstance(item, dict):
      raise InputError(path, line, None, f"parameter #{i} must be an object with a \"type\", got {item!r}.")
    kind = item.get("type")
    if kind not in _KINDS:
      raise InputError(path, at("type"), "type", f"parameter #{i}: unknown type {kind!r}; expected one of {sorted(_KINDS)}.")
    fields = {f.name: f for f in dataclasses.fields(_KINDS[kind])}
    for key in item:
      if key != "type" and key not in fields:
        raise InputError(path, at(key), key, f"parameter #{i}: unknown field for type {kind!r}; expected {list(fields)}.")
    for f in fields.values():
      if f.default is dataclasses.MISSING and f.name not in item:
        raise InputError(path, line, f.name, f"parameter #{i} (type {kind!r}) is missing {f.name!r}.")
    for key, want in (("log", bool), ("values", list), ("choices", list), ("name", str)):
      if key in item and not isinstance(item[key], want):
        expected = {bool: "true or false", list: "a list", str: "a string"}[want]
        raise InputError(path, at(key), key, f"parameter #{i}: expected {expected}, got {item[key]!r}.")
    try:
      params.append(_KINDS[kind](**{k: v for k, v in item.items() if k != "type"}))
    except (TypeError, ValueError) as e:
      message = str(e).removeprefix(f"Parameter {item['name']!r}: ")
      field = _field_named_in(message, [k for k in item if k != "type"])
      raise InputError(path, at(field) if field else line, field, f"parameter #{i} ({item['name']!r}): {message}") from e
  names = [p.name for p in params]
  for i, name in enumerate(names):
    if name in names[:i]:
      raise InputError(path, items[i][2].get("name", items[i][1]), "name", f"duplicate parameter name {name!r} (also parameter #{names.index(name)}).")
  return ss.SearchSpace(params)


# -- CSV files -----------------------------------------------------------------


def _cell_value(p, text: str):
  """A CSV cell as a value of parameter p; raises ValueError/TypeError without the parameter prefix."""
  t = text.strip()
  if isinstance(p, ss.Categorical):
    for c in p.choices:
      if isinstance(c, str) and c in (text, t):
        return c
    for c in p.choices:  # Booleans and numbers by their JSON or Python spelling, or numerically.
      if not isinstance(c, str) and (t in (json.dumps(c), str(c)) or (not isinstance(c, bool) and parse_number(t) == c)):
        return c
    raise ValueError(f"{text!r} is not one of {list(p.choices)!r}.")
  v = parse_number(t)
  if v is None:
    raise ValueError(f"{text!r} is not a number.")
  return p.validate(int(v) if isinstance(p, (ss.Int, ss.Discrete)) and v.is_integer() else v)


def parse_number(text: str) -> float | None:
  """float(text), or None if text is not a number."""
  try:
    return float(text)
  except ValueError:
    return None


def read_trials(path, space: ss.SearchSpace, history: bool) -> list[tuple[int, dict, Any, str]]:
  """Rows as (line, params, objective or None, status). history=False reads configurations only."""
  text = _read_text(path)
  reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
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
  extra = ("objective", "status")
  for j, name in enumerate(header):
    if name in header[:j]:
      raise InputError(path, header_line, name, "the column appears twice in the header.")
    if name not in space.names and name not in extra:
      raise InputError(path, header_line, name, f"unknown column; expected the parameters {space.names}, 'objective' and optionally 'status'.")
  for name in space.names + (["objective"] if history else []):
    if name not in header:
      raise InputError(path, header_line, name, f"missing column; the header must name every parameter {space.names}{' and objective' if history else ''}.")
  out = []
  for line, cells in rows[1:]:
    if len(cells) != len(header):
      raise InputError(path, line, None, f"{len(cells)} fields, but the header (line {header_line}) has {len(header)}.")
    row = dict(zip(header, cells))
    params = {}
    for p in space:
      try:
        params[p.name] = _cell_value(p, row[p.name])
      except (TypeError, ValueError) as e:
        raise InputError(path, line, p.name, str(e).removeprefix(f"Parameter {p.name!r}: ")) from e
    if not history:
      out.append((line, params, None, "completed"))
      continue
    status = row.get("status", "").strip().lower() or "completed"
    if status not in _STATUSES:
      raise InputError(path, line, "status", f"{row['status']!r} is not one of {list(_STATUSES)} (empty means completed).")
    cell = row["objective"].strip()
    value = parse_number(cell) if cell else math.nan
    if value is None:
      raise InputError(path, line, "objective", f"{row['objective']!r} is not a number (leave it empty, or write nan, for an infeasible trial).")
    if math.isinf(value) and cell.lower().lstrip("+-") not in ("inf", "infinity"):
      raise InputError(path, line, "objective", f"{cell!r} overflows float64 (beyond +-1.8e308); write inf, or leave it empty, for an infeasible trial.")
    if status != "completed" and math.isfinite(value):
      raise InputError(path, line, "objective", f"a {status} trial has no objective; got {cell!r} (leave it empty).")
    out.append((line, params, None if status == "infeasible" else value, status))
  return out


def read_configs(path, space: ss.SearchSpace) -> list[dict]:
  """Configurations from a .csv or .json file."""
  suffix = pathlib.Path(path).suffix.lower()
  if suffix == ".csv":
    return [params for _, params, _, _ in read_trials(path, space, history=False)]
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
        raise InputError(path, line, p.name, f"configuration #{i} is missing this parameter.")
      try:
        params[p.name] = p.validate(item[p.name])
      except (TypeError, ValueError) as e:
        raise InputError(path, keys[p.name], p.name, f"configuration #{i}: " + str(e).removeprefix(f"Parameter {p.name!r}: ")) from e
    configs.append(params)
  return configs


def write_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes text to path via a temporary file in the same directory and os.replace: all or nothing."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions.
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
