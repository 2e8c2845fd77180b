"""Saving and loading a trained model: config, orbax parameters, checksums.

A model directory holds:
  config.json     the ModelConfig (the model reloads from it alone),
  params/         the parameters, written by orbax's StandardCheckpointer,
  manifest.json   sha256 and size of every file under params/,
  card.md         (optional) the model card.

`load` verifies the manifest before reading, so a truncated or altered file
is reported as corruption instead of producing a silently wrong model, and
checks every parameter's shape against the config.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from optformer.model import ModelConfig, OptFormer, create_model

DEFAULT_CHECKPOINT = pathlib.Path(__file__).resolve().parents[1] / "checkpoints" / "optformer-gp-v1"


class CheckpointError(ValueError):
  """A model directory is missing, corrupt or does not match its config."""


def _digest(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(params_dir: pathlib.Path) -> dict:
  files = sorted(p for p in params_dir.rglob("*") if p.is_file())
  return {str(p.relative_to(params_dir)): {"sha256": _digest(p), "bytes": p.stat().st_size} for p in files}


def save(directory, config: ModelConfig, params: dict, metadata: dict | None = None) -> pathlib.Path:
  """Writes a model directory (overwriting `params/`), returns its path.

  Args:
    params: the pure parameter dict (nnx.to_pure_dict of the model's state).
    metadata: extra JSON-able facts stored in config.json under "metadata".
  """
  directory = pathlib.Path(directory).absolute()
  directory.mkdir(parents=True, exist_ok=True)
  params_dir = directory / "params"
  params = jax.tree.map(np.asarray, params)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(params_dir, params, force=True)
  (directory / "config.json").write_text(json.dumps({"model": config.to_dict(), "metadata": metadata or {}}, indent=1))
  (directory / "manifest.json").write_text(json.dumps(_manifest(params_dir), indent=1))
  return directory


def load(directory=None) -> OptFormer:
  """Loads a model directory (default: the shipped checkpoint).

  Raises:
    CheckpointError: the directory or a file is missing, a checksum does
      not match (corruption), or a parameter's shape does not match the
      config (a mismatched checkpoint).
  """
  directory = pathlib.Path(directory or DEFAULT_CHECKPOINT).absolute()
  for name in ("config.json", "manifest.json", "params"):
    if not (directory / name).exists():
      raise CheckpointError(f"Model checkpoint {directory} is missing {name!r}; expected a directory written by optformer.checkpoint.save.")
  try:
    config = ModelConfig.from_dict(json.loads((directory / "config.json").read_text())["model"])
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{directory / 'config.json'} is not a valid model config: {e}") from e
  try:
    expected = json.loads((directory / "manifest.json").read_text())
  except ValueError as e:
    raise CheckpointError(f"Checkpoint {directory}: manifest.json is corrupt: {e}") from e
  actual = _manifest(directory / "params")
  for name, info in expected.items():
    if name not in actual:
      raise CheckpointError(f"Checkpoint {directory} is corrupt: file params/{name} is missing.")
    if actual[name] != info:
      raise CheckpointError(f"Checkpoint {directory} is corrupt: params/{name} has sha256 {actual[name]['sha256'][:12]}…, expected {info['sha256'][:12]}….")
  model = nnx.eval_shape(lambda: create_model(config))
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
  return nnx.merge(nnx.graphdef(model), state)


def _check_shapes(abstract, saved_tree, directory):
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
