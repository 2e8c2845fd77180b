"""Every field of a training run's config, with its default and description: `optformer-train train --list-fields`.

The descriptions are the comments beside (or on the lines just above) each
field in the config dataclasses' source, so they are written once, where the
field is defined:

  PFNTrainConfig (training/train.py)       optimization, bookkeeping and evaluation
  .model: PFNConfig (optformer/model/config.py)    the architecture and bar borders
  .data: PFNDataConfig (training/data.py)           batches of prior examples
  .data.examples: ExampleConfig (data_gen/examples.py)   where the points of an example lie
  .data.examples.prior: PriorConfig (data_gen/prior.py)  the task (GP) hyperprior

Each field is set by its dotted name: `--set data.examples.prior.max_dims=4`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
import typing


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field: dotted name, type, default (JSON-like) and description."""

  name: str  # Dotted, e.g. "data.examples.prior.max_dims".
  type: str  # As annotated, e.g. "int".
  default: object
  description: str  # "" when the source has no comment for it.


@functools.cache
def comments(cls) -> dict[str, str]:
  """{field name: its comment} of a dataclass: the comment on the field's line(s), else the comment lines just above.

  Read from the class's source (`inspect.getsource`); {} when the source is not available.
  """
  try:
    lines, _ = inspect.getsourcelines(cls)
  except (OSError, TypeError):
    return {}
  source = textwrap.dedent("".join(lines))
  text = source.splitlines()
  line_comment = {t.start[0]: t.string[1:].strip() for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type == tokenize.COMMENT}  # 1-based line -> its comment (a "#" in a string is no comment).
  out = {}
  for node in ast.parse(source).body[0].body:
    if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
      continue
    trailing = [line_comment[i] for i in range(node.lineno, node.end_lineno + 1) if i in line_comment]
    above, i = [], node.lineno - 1
    while i >= 1 and text[i - 1].strip().startswith("#"):
      above.insert(0, line_comment[i])
      i -= 1
    out[node.target.id] = " ".join(trailing or above)
  return out


def fields(cls=None, prefix: str = "", value=None) -> list[Field]:
  """Every leaf field of the config dataclass `cls` (default PFNTrainConfig), nested configs flattened to dotted
  names; defaults are those of `value` (default: an instance with cls's defaults)."""
  if cls is None:
    from optformer.training.train import PFNTrainConfig

    cls = PFNTrainConfig
  value = cls() if value is None else value
  hints = typing.get_type_hints(cls)
  out = []
  for f in dataclasses.fields(cls):
    v = getattr(value, f.name)
    if dataclasses.is_dataclass(v):
      out += fields(type(v), f"{prefix}{f.name}.", v)
    else:
      kind = getattr(hints.get(f.name), "__name__", str(hints.get(f.name, "")))
      out.append(Field(prefix + f.name, kind, v, comments(cls).get(f.name, "")))
  return out


def _default(v) -> str:
  if isinstance(v, tuple) and len(v) > 8:
    return f"({len(v)} values: {v[0]:g} .. {v[-1]:g})" if all(isinstance(x, float) for x in v) else f"({len(v)} values)"
  return json.dumps(list(v) if isinstance(v, tuple) else v)


def listing(value=None) -> str:
  """The text of --list-fields: one line per field "name (type, default D)" and its description indented below.

  value: a PFNTrainConfig whose values are shown as the defaults (e.g. a preset's); default PFNTrainConfig().
  """
  rows = []
  for f in fields(value=value, cls=None if value is None else type(value)):
    rows.append(f"{f.name} ({f.type}, default {_default(f.default)})")
    rows += textwrap.wrap(f.description or "(no description)", 100, initial_indent="    ", subsequent_indent="    ")
  return "\n".join(rows)
