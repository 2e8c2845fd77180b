"""Saving and loading a trained model: config, orbax parameters, checksums.

A model directory holds:
  config.json     {"format": "pfn-v2", "model": config, "metadata": {...}}:
                  the config (optformer.model.config.PFNConfig) the model
                  reloads from alone. A config.json without "format" is the
                  retired model v1's (optformer-gp-v1): `read_config` and
                  `load` refuse it with a CheckpointError that names the
                  model replacing it,
  params/         the parameters, written by orbax's StandardCheckpointer,
  manifest.json   sha256 and size of every other file in the directory,
  card.md         (optional) the model card.

manifest.json is a JSON object {path: {"sha256": hex str, "bytes": int}}
whose paths are relative to the model directory in POSIX form
("config.json", "params/_METADATA", ...). It lists every file of the
directory except itself and the top-level card.md: the card is
documentation written after `save` (training/export.py) and changes no
prediction, so it may be edited freely. Any other file, config.json
included, is covered, because any of them can change what the model
predicts.

`load` verifies the manifest before reading anything else, so a truncated,
altered, missing or unexpected file is reported as corruption instead of
producing a silently wrong model; then checks every field of the config
(`validate_config`: types and ranges, so an edited config.json under a
regenerated manifest is named field by field instead of failing deep in
the model or loading wrong); then checks every parameter's shape against
the config. Symbolic links in the directory are followed (a `params/`
linked to shared storage is verified like a copy). `save` writes the
manifest last, atomically, so an interrupted save leaves a directory that
fails verification.

`read_config` runs the manifest and config checks alone, without JAX,
flax or orbax: `Optimizer` checks its
checkpoint with it when built and loads the model on first use
(docs/cold_start.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re

import numpy as np

from optformer.model.config import PFNConfig
from optformer.study_files import write_atomic

# No JAX, flax or orbax at import: `read_config` (manifest and config checks) runs without them, so an Optimizer
# validates its checkpoint before, and without, loading the model (docs/cold_start.md). `save` and `load` import them.


def _shipped_root() -> pathlib.Path:
  """Where the shipped model directories are: package data of an install, else the checkout's checkpoints/."""
  package = pathlib.Path(__file__).resolve().parent
  installed = package / "checkpoints"
  return installed if installed.is_dir() else package.parent / "checkpoints"


SHIPPED_CHECKPOINTS = _shipped_root()  # Holds one directory per shipped model.
V2_CHECKPOINT = SHIPPED_CHECKPOINTS / "optformer-v2"  # The PFN (docs/model_v2.md).
DEFAULT_CHECKPOINT = V2_CHECKPOINT  # The model of Optimizer, Surrogate and the CLI when none is named.
RETIRED_NAME = "optformer-gp-v1"  # The retired model v1's shipped name (study files may still reference it).
_MANIFEST = "manifest.json"
_UNCHECKED = ("card.md",)  # Top-level files the manifest never lists (documentation only).
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTRY = '{"sha256": <64 hex digits>, "bytes": <int>}'


class CheckpointError(ValueError):
  """A model directory is missing, corrupt or does not match its config."""


def _digest(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _covered_files(directory: pathlib.Path) -> dict[str, pathlib.Path]:
  """{POSIX path relative to directory: path} of every file the manifest must list.

  Symbolic links are followed, to files and to directories (a `params/` linked to shared storage is checked like a
  copy); a link back to a directory already walked (a loop) raises CheckpointError.
  """
  skip = {_MANIFEST, *_UNCHECKED}
  files, walked = {}, set()
  for root, dirs, names in os.walk(directory, followlinks=True):
    real = os.path.realpath(root)
    if real in walked:
      rel = pathlib.Path(root).relative_to(directory).as_posix()
      raise CheckpointError(f"Checkpoint {directory}: {rel} is a symbolic link to {real}, a directory already read "
                            "(a loop); expected a directory written by optformer.checkpoint.save.")
    walked.add(real)
    for name in names:
      p = pathlib.Path(root, name)
      if p.is_file():
        files[p.relative_to(directory).as_posix()] = p
  return {k: files[k] for k in sorted(files) if k not in skip}


def _manifest(directory: pathlib.Path) -> dict:
  """The manifest of a model directory as it is now (see the module docstring)."""
  return {k: {"sha256": _digest(p), "bytes": p.stat().st_size} for k, p in _covered_files(directory).items()}


def _write_manifest(directory: pathlib.Path) -> None:
  """Checksums the directory's files and writes manifest.json atomically."""
  write_atomic(directory / _MANIFEST, json.dumps(_manifest(directory), indent=1) + "\n")


FORMAT_V2 = "pfn-v2"


def save(directory, config: PFNConfig, params: dict, metadata: dict | None = None) -> pathlib.Path:
  """Writes a model directory (overwriting `params/`), returns its path.

  The old manifest.json is removed first and the new one is written last
  (temporary file + os.replace), so a save interrupted at any point leaves a
  directory that `load` rejects. The manifest covers every file then in
  the directory except card.md, including files this call did not write.

  Args:
    directory: the model directory; created if missing.
    config: the model's PFNConfig, stored in config.json under "model".
    params: the pure parameter dict (nnx.to_pure_dict of the model's state).
    metadata: extra JSON-able facts stored in config.json under "metadata".
  """
  import jax
  import orbax.checkpoint as ocp

  if not isinstance(config, PFNConfig):
    raise TypeError(f"config must be a PFNConfig, got {type(config).__name__}.")
  directory = pathlib.Path(directory).absolute()
  directory.mkdir(parents=True, exist_ok=True)
  (directory / _MANIFEST).unlink(missing_ok=True)
  for name in (_MANIFEST, "config.json"):
    for stale in directory.glob(f".{name}.*.tmp"):  # write_atomic's temporary files, left by a save killed mid-write.
      stale.unlink()
  params = jax.tree.map(np.asarray, params)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / "params", params, force=True)
  doc = {"format": FORMAT_V2, "model": config.to_dict(), "metadata": metadata or {}}
  write_atomic(directory / "config.json", json.dumps(doc, indent=1))
  _write_manifest(directory)
  return directory


def read_config(directory=None, with_metadata: bool = False):
  """The checked config of a model directory (default: the shipped checkpoint), without loading the model.

  Runs every check of `load` that needs no parameters: the directory and
  its top-level files exist, every file matches manifest.json (sha256 and
  size: `_verify`), and config.json is a valid config (`validate_config`).
  Imports no JAX, flax or orbax.

  Returns:
    A `pfn_config.PFNConfig`; with with_metadata, (config, config.json's
    "metadata" dict).

  Raises:
    CheckpointError: as `load`, except the parameters' shapes (checked by
      `load`); a model v1 directory (config.json without "format") raises
      it saying the family was retired and which model replaces it.
  """
  directory = pathlib.Path(directory or DEFAULT_CHECKPOINT).absolute()
  if _is_retired(directory):  # Before the manifest: a model v1 directory is named as such, complete or not.
    raise _retired(directory)
  for name in ("config.json", _MANIFEST, "params"):
    if (directory / name).is_symlink() and not (directory / name).exists():
      raise CheckpointError(f"Model checkpoint {directory}: {name!r} is a symbolic link to "
                            f"{os.path.realpath(directory / name)}, which does not exist.")
    if not (directory / name).exists():
      raise CheckpointError(f"Model checkpoint {directory} is missing {name!r}; expected a directory written by optformer.checkpoint.save.")
  _verify(directory)
  try:
    doc = json.loads((directory / "config.json").read_text())
    fmt = doc.get("format")
    if fmt != FORMAT_V2:
      raise ValueError(f"unknown format {fmt!r}; this version reads {FORMAT_V2!r}")
    config = PFNConfig.from_dict(doc["model"])
    metadata = doc.get("metadata", {})
    validate_config(config)
  except CheckpointError:
    raise
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise CheckpointError(f"{directory / 'config.json'} is not a valid model config: {e}") from e
  return (config, metadata) if with_metadata else config


def _is_retired(directory: pathlib.Path) -> bool:
  """Whether `directory` holds a model v1 config.json: a JSON object with "model" and no "format"."""
  try:
    doc = json.loads((directory / "config.json").read_text())
  except (OSError, ValueError):
    return False
  return isinstance(doc, dict) and "model" in doc and "format" not in doc


def _retired(directory: pathlib.Path) -> CheckpointError:
  """The error for a model v1 checkpoint: the family was retired, and the model that replaces it."""
  return CheckpointError(
      f"Checkpoint {directory} holds a model v1 ({RETIRED_NAME} format: config.json has no \"format\"). "
      f"That model family was retired; the default model {DEFAULT_CHECKPOINT.name} (checkpoints/"
      f"{DEFAULT_CHECKPOINT.name}, model=None) replaces it: pass model=None or a {FORMAT_V2!r} checkpoint directory.")


def load(directory=None, with_metadata: bool = False):
  """Loads a model directory (default: the shipped checkpoint): a `network.PFNSurrogate`.

  with_metadata: also return config.json's "metadata" dict, as (model, metadata).

  Raises:
    CheckpointError: the directory or a top-level file is missing;
      manifest.json is not valid JSON or not an object of
      {relative path: {"sha256": str, "bytes": int}}; a file it lists is
      missing, changed (size or sha256: corruption), or a file it does not
      list is present (symbolic links are followed; a dangling one or a
      loop is named); config.json is not a valid config (a field of the
      wrong type or range, named with its value: `validate_config`) or
      names an unknown format (these first, by `read_config`); or a
      parameter's shape does not match the config (a mismatched
      checkpoint), or orbax cannot read the parameters.
  """
  import jax
  import orbax.checkpoint as ocp
  from flax import nnx

  from optformer.model import network

  directory = pathlib.Path(directory or DEFAULT_CHECKPOINT).absolute()
  config, metadata = read_config(directory, with_metadata=True)
  model = nnx.eval_shape(lambda: network.create_model(config))
  state = nnx.state(model)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), nnx.to_pure_dict(state))
  try:
    with ocp.StandardCheckpointer() as ckptr:
      meta = ckptr.metadata(directory / "params")
      tree = getattr(meta, "item_metadata", meta)
      _check_shapes(abstract, tree, directory)
      restored = ckptr.restore(directory / "params", abstract)
  except CheckpointError:
    raise
  except Exception as e:  # orbax raises many types for unreadable data.
    raise CheckpointError(f"Cannot read parameters from {directory / 'params'}: {type(e).__name__}: {e}") from e
  nnx.replace_by_pure_dict(state, restored)
  model = nnx.merge(nnx.graphdef(model), state)
  return (model, metadata) if with_metadata else model


load_pfn = load  # The name training/ uses (one model family: `load`).


def _verify(directory) -> None:
  """Checks a model directory against its manifest.json (format: module docstring).

  Raises:
    CheckpointError: manifest.json is missing, not JSON, or not an object of
      {relative path: {"sha256": str, "bytes": int}}; or a listed file is
      missing, a file is present but not listed, or a file's size or sha256
      differs. The message names the file(s).
  """
  directory = pathlib.Path(directory).absolute()
  path = directory / _MANIFEST
  try:
    expected = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise CheckpointError(f"Checkpoint {directory}: {_MANIFEST} is unreadable or corrupt: {e}") from e
  _check_manifest_format(expected, path)
  covered = _covered_files(directory)
  if "config.json" not in expected and any((directory / "params" / k).is_file() for k in expected):
    raise CheckpointError(
        f"Checkpoint {directory}: {_MANIFEST} is in the old format (paths relative to params/, config.json not covered); "
        f"expected paths relative to the model directory covering every file. Re-save the model with optformer.checkpoint.save.")
  problems = [f"{k} is missing" for k in expected if k not in covered]
  for k, p in covered.items():
    if k not in expected:
      problems.append(f"{k} is not listed in {_MANIFEST}")
      continue
    want, size = expected[k], p.stat().st_size
    if size != want["bytes"]:
      problems.append(f"{k} has {size} bytes, expected {want['bytes']}")
    elif (got := _digest(p)) != want["sha256"]:
      problems.append(f"{k} has sha256 {got[:12]}…, expected {want['sha256'][:12]}…")
  if problems:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    raise CheckpointError(f"Checkpoint {directory} is corrupt: {shown}.")


def _check_manifest_format(manifest, path: pathlib.Path) -> None:
  """Raises CheckpointError unless manifest is {relative POSIX path: {"sha256": hex str, "bytes": int >= 0}}, non-empty."""
  if not isinstance(manifest, dict):
    kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(manifest), "null")
    raise CheckpointError(f"{path} holds a JSON {kind}; expected an object {{relative path: {_ENTRY}}}.")
  if not manifest:
    raise CheckpointError(f"{path} lists no files; expected an entry {_ENTRY} for every file of the model directory (config.json, params/...).")
  for name, entry in manifest.items():
    parts = pathlib.PurePosixPath(name).parts
    if not name or name.startswith("/") or "\\" in name or ".." in parts or "/".join(parts) != name:
      raise CheckpointError(f"{path}: key {name!r} is not a normalized path relative to the model directory (like 'params/_METADATA').")
    if (not isinstance(entry, dict) or set(entry) != {"sha256", "bytes"} or not isinstance(entry["sha256"], str)
        or not _SHA256.fullmatch(entry["sha256"]) or not isinstance(entry["bytes"], int) or isinstance(entry["bytes"], bool)
        or entry["bytes"] < 0):
      raise CheckpointError(f"{path}: entry for {name!r} is {json.dumps(entry)[:80]}; expected {_ENTRY}.")


def _count(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _finite(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _rule(check, expected: str):
  """A field rule: value -> None if `check(value)`, else what the field must be."""
  return lambda v: None if check(v) else expected


def _borders_problem(v) -> str | None:
  if not isinstance(v, tuple) or len(v) < 3:
    return "at least 3 bar borders"
  bad = next((i for i, b in enumerate(v) if not _finite(b)), None)
  if bad is not None:
    return f"finite numbers, but borders[{bad}] is {v[bad]!r}"
  bad = next((i for i in range(len(v) - 1) if not v[i] < v[i + 1]), None)
  if bad is not None:
    return f"strictly increasing numbers, but borders[{bad}] = {v[bad]!r} >= borders[{bad + 1}] = {v[bad + 1]!r}"
  return None


_COUNT = _rule(_count, "an int >= 1")
# Field name -> rule, for the fields of pfn_config.PFNConfig.
_FIELD_RULES = {
    "d_model": _COUNT, "num_heads": _COUNT, "num_layers": _COUNT, "mlp_ratio": _COUNT, "d_slot": _COUNT,
    "num_fourier": _COUNT, "max_frequency": _rule(lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "num_slot_ids": _COUNT, "max_categories": _COUNT, "max_context": _COUNT, "d_ard": _COUNT,
    "distance_bias": _rule(lambda v: isinstance(v, bool), "true or false"), "borders": _borders_problem,
}


def _shown(value) -> str:
  """A field's value for an error message: JSON-like, long tuples (borders) cut short."""
  if isinstance(value, tuple) and len(value) > 6:
    return f"[{', '.join(map(repr, value[:3]))}, ..., {', '.join(map(repr, value[-2:]))}] ({len(value)} values)"
  return repr(list(value) if isinstance(value, tuple) else value)


def validate_config(config, prefix: str = "") -> None:
  """Checks every field of a model config (PFNConfig) before a load.

  Raises:
    ValueError: a field of the wrong type or out of range, named with its
      value and what it must be (e.g. "field 'num_layers' is -1; expected
      an int >= 1"); d_model not a multiple of num_heads.
  """
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    if dataclasses.is_dataclass(value):
      validate_config(value, f"{prefix}{f.name}.")
    elif f.name in _FIELD_RULES and (expected := _FIELD_RULES[f.name](value)):
      raise ValueError(f"field '{prefix}{f.name}' is {_shown(value)}; expected {expected}.")
  if hasattr(config, "num_heads") and config.d_model % config.num_heads:
    raise ValueError(f"field '{prefix}d_model' is {config.d_model}; "
                     f"expected a multiple of num_heads={config.num_heads}.")


def _check_shapes(abstract, saved_tree, directory):
  import jax

  want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(abstract)}
  have = {}
  for k, v in jax.tree_util.tree_leaves_with_path(saved_tree):
    have[jax.tree_util.keystr(k)] = tuple(getattr(v, "shape", ()) or ())
  norm = lambda s: s.replace("'", "")
  want = {norm(k): v for k, v in want.items()}
  have = {norm(k): v for k, v in have.items()}
  if set(want) != set(have):
    extra, missing = sorted(set(have) - set(want))[:3], sorted(set(want) - set(have))[:3]
    raise CheckpointError(f"Checkpoint {directory} does not match its config: unexpected {extra}, missing {missing}.")
  for k in want:
    if tuple(want[k]) != tuple(have[k]):
      raise CheckpointError(f"Checkpoint {directory} does not match its config: {k} has shape {have[k]}, config expects {want[k]}.")
