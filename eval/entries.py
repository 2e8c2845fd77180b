"""What a benchmark compares: entries (a name, an optimizer, a model) and the models' content ids.

An entry is one row of the report. The optimizers of `--optimizers` are
entries under their own names; `--model NAME=DIR` adds the "optformer"
optimizer with the model in DIR under NAME. Studies are cached by
`Entry.key` (optimizer and model id), so the cache follows the model's
content, not its name or folder; OUT/models.json (`bind_models`) says which
model each name stands for, and the report reads only those studies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
from typing import Any, Callable

import numpy as np

from optformer import study_files
from optformer.eval import optimizers as opt_lib

MODELS_FILE = "models.json"  # OUT/models.json: entry name -> {"optimizer", "model", "checkpoint"}.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")  # An entry name made by --model (a table cell, a file name).


def model_id(model) -> str | None:
  """The content id of the model a study ran with, stored in its record as "model" and part of its cache key.

  For a checkpoint directory "sha256:" + the first 16 hex digits of the sha256 of its manifest.json (which lists
  the sha256 of every file of the model, so equal ids mean equal models wherever the directory lies); for an
  in-memory model (an nnx.Module with a config) "in-memory:" + 16 hex digits of the sha256 of its config and
  parameters (any other object: "in-memory:" + its class name); None for an optimizer without a model
  (`optimizers.checkpoint_of`).

  Raises:
    ValueError: a directory without a readable manifest.json (not a model directory).
  """
  if model is None:
    return None
  if not isinstance(model, (str, os.PathLike)):
    return "in-memory:" + _parameter_hash(model)
  try:
    return "sha256:" + hashlib.sha256((pathlib.Path(model) / "manifest.json").read_bytes()).hexdigest()[:16]
  except OSError as e:
    raise ValueError(f"Cannot identify the model {model}: {e}") from e


def _parameter_hash(model) -> str:
  """16 hex digits of the sha256 of an nnx model's config and parameter arrays; its class name otherwise."""
  try:
    import jax
    from flax import nnx

    leaves = jax.tree_util.tree_leaves(nnx.state(model))
  except (ImportError, TypeError, ValueError, AttributeError):
    return type(model).__name__
  h = hashlib.sha256(repr(getattr(model, "config", None)).encode())
  for leaf in leaves:
    a = np.asarray(leaf)
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Entry:
  """One row of the report: what runs under which name."""

  name: str  # The row's name: the optimizer's name, or NAME of --model NAME=DIR.
  optimizer: str  # A name of eval.optimizers (or a variant: "optformer:rounds=1").
  model: Any = None  # Checkpoint directory (pathlib.Path) / in-memory model / None (a baseline).
  model_id: str | None = None  # `model_id(model)`.

  @property
  def key(self) -> str:
    """The study cache's folder name: the optimizer, then "@" and the model id (":" -> "-") if it has a model."""
    return self.optimizer if self.model_id is None else f"{self.optimizer}@{self.model_id.replace(':', '-')}"


def parse_model(text: str) -> tuple[str, pathlib.Path]:
  """(NAME, DIR) of a --model argument "NAME=DIR".

  Raises:
    ValueError: no "=", an empty DIR, or a NAME that is not letters, digits and _ . + - (starting with a letter
      or digit).
  """
  name, eq, directory = text.partition("=")
  if not eq or not directory or not _NAME.match(name):
    raise ValueError(f"--model {text!r}: expected NAME=DIR with NAME of letters, digits and _.+- "
                     "(e.g. bins64=runs/bins64/export).")
  return name, pathlib.Path(directory)


def make_entries(optimizers, model=None, models: dict | None = None) -> list[Entry]:
  """The entries of a run: `optimizers` under their own names (the optformer ones with `model`), then each
  named model of `models` (NAME -> checkpoint directory or in-memory model) as the "optformer" optimizer.

  Raises:
    ValueError: an unknown optimizer, a bad or duplicate name (a named model may not take an optimizer's
      name), or a model directory without a manifest (`model_id`).
  """
  out = []
  for name in opt_lib.parse_names(optimizers):
    chosen = opt_lib.checkpoint_of(name, model)
    out.append(Entry(name, name, chosen, model_id(chosen)))
  for name, m in (models or {}).items():
    if not _NAME.match(name) or name in opt_lib.NAMES or ":" in name:
      raise ValueError(f"Model name {name!r}: expected letters, digits and _.+-, not an optimizer's name "
                       f"({list(opt_lib.NAMES)}).")
    chosen = opt_lib.checkpoint_of("optformer", m)
    out.append(Entry(name, "optformer", chosen, model_id(chosen)))
  names = [e.name for e in out]
  if len(set(names)) < len(names):
    raise ValueError(f"Entry names must differ; got {names}.")
  return out


def read_models(out: pathlib.Path) -> dict:
  """OUT/models.json: entry name -> {"optimizer", "model": model id or None, "checkpoint": path or None}; {} if
  missing or unreadable (a cache written before names existed: every study is reported under its optimizer)."""
  try:
    return json.loads((out / MODELS_FILE).read_text())
  except (OSError, ValueError):
    return {}


def bind_models(out: pathlib.Path, entries: list[Entry], log: Callable[[str], Any]) -> None:
  """Binds each entry's name to its model in OUT/models.json (other names kept), saying when a name changes model."""
  index = read_models(out)
  out.mkdir(parents=True, exist_ok=True)
  for e in entries:
    old = index.get(e.name, {}).get("model", e.model_id)
    if old != e.model_id:
      log(f"{e.name} now names the model {e.model_id}; the studies of {old} stay cached, in the report "
          "only under a name that stands for that model.")
    ckpt = str(pathlib.Path(e.model).absolute()) if isinstance(e.model, (str, os.PathLike)) else None
    index[e.name] = {"optimizer": e.optimizer, "model": e.model_id, "checkpoint": ckpt}
  study_files.write_atomic(out / MODELS_FILE, json.dumps(index, indent=1))
