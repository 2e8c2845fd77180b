"""Reading a study's files: space.json (trials.csv and configs: trials_csv.py), with located errors; atomic writes.

Formats (UTF-8; a byte-order mark is allowed) are those of the `optformer`
command (optformer/cli.py documents them); every error is an `InputError`
naming the file, the 1-based line and the field at fault, e.g.
`trials.csv:4: field 'units': value 400 is outside [2, 20].`
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pathlib
import re
import stat
import tempfile
import time
from typing import Any

from optformer import search_space as ss

_KINDS = {cls.__name__.lower(): cls for cls in (ss.Float, ss.Int, ss.Discrete, ss.Categorical)}
_STATUSES = ("completed", "infeasible", "pending")
RESERVED_COLUMNS = ("objective", "status")  # Columns of trials.csv that are not parameters (and names none may take),
RESERVED_PATTERN = re.compile(r"(objective|constraint)_[0-9]+")  # and objective_1, ..., constraint_1, ... (trials_csv).


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
  params, extras, all_items, items = [], [], items, []
  for i, (item, line, keys) in enumerate(all_items):
    at = lambda key, keys=keys, line=line: keys.get(key, line)
    if not isinstance(item, dict):
      raise InputError(path, line, None, f"parameter #{i} must be an object with a \"type\", got {item!r}.")
    kind = item.get("type")
    if kind in ("forbidden", "constant"):  # SearchSpace.to_json's items after the parameters.
      extras.append((item, line))
      continue
    items.append((item, line, keys))
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
    at_name = items[i][2].get("name", items[i][1])
    if name in names[:i]:
      raise InputError(path, at_name, "name",
                       f"duplicate parameter name {name!r} (also parameter #{names.index(name)}).")
    if name in RESERVED_COLUMNS or RESERVED_PATTERN.fullmatch(name):
      raise InputError(path, at_name, "name",
                       f"parameter #{i}: the name {name!r} is taken by a column of trials.csv "
                       f"({', '.join(RESERVED_COLUMNS)}, objective_<k>, constraint_<k>); rename the parameter.")
    if isinstance(params[i], ss.Categorical) and (clash := _csv_clash(params[i])):
      raise InputError(path, items[i][2].get("choices", items[i][1]), "choices",
                       f"parameter #{i} ({name!r}): choices {clash[0]!r} and {clash[1]!r} read the same from a CSV "
                       "cell, so trials.csv could not tell them apart; make them distinct as text (e.g. rename the "
                       "string choice).")
  try:
    space = ss.SearchSpace(params)  # The condition tree: parents, cycles, values.
  except (TypeError, ValueError) as e:
    name = _named_parameter(str(e), names)
    i = names.index(name) if name is not None else None
    line = items[i][2].get("condition", items[i][1]) if i is not None else 1
    raise InputError(path, line, "condition" if i is not None else None,
                     (f"parameter #{i} ({name!r}): " if i is not None else "") +
                     str(e).removeprefix(f"Parameter {name!r}: ")) from e
  for item, line in extras:  # Forbidden clauses and constants, each checked alone so the error names its line.
    try:
      ss.SearchSpace.from_json(space.to_json() + [item])
    except (TypeError, ValueError) as e:
      raise InputError(path, line, item["type"], str(e)) from e
  return ss.SearchSpace.from_json(space.to_json() + [item for item, _ in extras])


def _named_parameter(message: str, names) -> str | None:
  """The parameter an error message of the search space names first ("Parameter 'x' ..." or a list ['x', ...])."""
  m = re.search(r"Parameter\(?s?\)? '([^']+)'|parameter\(s\) \['([^']+)'", message)
  name = m and (m.group(1) or m.group(2))
  return name if name in names else None


def check_tree(path, line: int, space: ss.SearchSpace, params: dict, where: str = "",
               blank: str = "leave it out") -> dict:
  """`space.validate(params)` for a conditional space's active parameters (or one with forbidden clauses); InputError
  naming the parameter at fault (an inactive one given, an active one missing) or the clause otherwise. `blank` says
  how to leave one out."""
  if not space.is_conditional and not space.forbidden:
    return params
  try:
    return space.validate(params)
  except (TypeError, ValueError) as e:
    message = str(e).replace("leave it out of the configuration", blank)
    name = _named_parameter(message, space.names)
    raise InputError(path, line, name, where + message) from e


# -- CSV files -----------------------------------------------------------------


def _spelled_as(c, t: str) -> bool:
  """Whether the stripped CSV text t is a spelling of the non-string choice c: JSON or Python (true, True, null, 3), or
  a number equal to it (3.0 for 3)."""
  return t in (json.dumps(c), str(c)) or (not isinstance(c, bool) and c is not None and parse_number(t) == c)


def _csv_clash(p: ss.Categorical) -> tuple | None:
  """Two choices of p that a CSV cell cannot tell apart (a string choice that reads as another choice, such as "1"
  and 1, "true" and True), or None."""
  for s in p.choices:
    for c in p.choices:
      if isinstance(s, str) and not isinstance(c, str) and _spelled_as(c, s.strip()):
        return s, c
  return None


def parse_number(text: str) -> float | None:
  """float(text), or None if text is not a number."""
  try:
    return float(text)
  except ValueError:
    return None


_STALE_SECONDS = 60.0  # A temporary file of write_atomic this old, whose process is gone, was left by a killed write.


_TEMP_NAME_CHARS = 100  # The file's name, cut to this, starts its temporary files' names (within 255 bytes).


def _remove_stale_temps(directory: pathlib.Path, name: str) -> None:
  """Removes the temporary files that killed write_atomic calls to `name` left in `directory` (see write_atomic)."""
  pattern = re.compile(rf"\.{re.escape(name[:_TEMP_NAME_CHARS])}\.(\d+)\.[A-Za-z0-9_]+\.tmp")
  now = time.time()
  try:
    entries = list(os.scandir(directory))
  except OSError:
    return
  for entry in entries:
    m = pattern.fullmatch(entry.name)
    if not m or not entry.is_file(follow_symlinks=False):
      continue
    try:
      if now - entry.stat(follow_symlinks=False).st_mtime < _STALE_SECONDS:
        continue
      os.kill(int(m.group(1)), 0)  # Raises ProcessLookupError if the writer is gone.
    except ProcessLookupError:
      pathlib.Path(entry.path).unlink(missing_ok=True)
    except (OSError, OverflowError, ValueError):  # Alive under another user (PermissionError), or no such pid number.
      continue


def replaceable_target(path: str | os.PathLike) -> tuple[pathlib.Path, os.stat_result | None]:
  """The file that write_atomic(path, ...) would replace (symbolic links followed), and its stat (None: not there yet).

  Raises:
    IsADirectoryError, OSError: as `write_atomic`, for a directory or a file that is not a regular file.
  """
  target = pathlib.Path(os.path.realpath(path))
  try:
    st = os.stat(target)
  except FileNotFoundError:
    st = None
  if st is not None and stat.S_ISDIR(st.st_mode):
    raise IsADirectoryError(errno.EISDIR, "is a directory; expected a file path", str(path))
  if st is not None and not stat.S_ISREG(st.st_mode):
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    what = next((name for test, name in kinds if test(st.st_mode)), "a special file")
    raise OSError(errno.EINVAL, f"is {what}, not a regular file; refusing to replace it", str(path))
  return target, st


def write_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes UTF-8 text to `path`, all or nothing: a temporary file in the same directory, fsync, then os.replace.

  A symbolic link is written through: the file it points to (after every
  link in the chain) is replaced and the link stays; a dangling link gets
  its target created. An existing file keeps its permission bits; a new one
  gets 0o666 less the umask.

  The temporary file is `.{name}.{pid}.{random}.tmp` next to the file
  written. Any error (KeyboardInterrupt included) removes it; a write killed
  outright (kill -9, power loss) leaves it, and the next write_atomic to the
  same file removes every such leftover whose process no longer runs and
  that is over a minute old.

  Raises:
    IsADirectoryError: `path` (or the file a link points to) is a directory.
    OSError: `path` exists but is not a regular file (a FIFO, socket or
      device, which replacing would destroy; errno EINVAL), or the
      directory is missing or not writable.
  """
  target, st = replaceable_target(path)
  _remove_stale_temps(target.parent, target.name)
  fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:_TEMP_NAME_CHARS]}.{os.getpid()}.",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    if st is not None:
      mode = stat.S_IMODE(st.st_mode)
    else:
      umask = os.umask(0)
      os.umask(umask)
      mode = 0o666 & ~umask
    os.chmod(tmp, mode)  # mkstemp creates 0600.
    os.replace(tmp, target)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
