"""Checkpoints: exact round trip, and every broken directory reported as a CheckpointError."""

import functools
import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import optformer
from optformer import checkpoint
from optformer.checkpoint import CheckpointError
from optformer.model import Batch, ModelConfig


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, batch):
  return nnx.merge(graphdef, params)(batch)


@pytest.fixture(scope="module")
def saved(tiny_model, tiny_config, tmp_path_factory):
  """A model directory written by checkpoint.save (read-only: tests copy it before breaking it)."""
  params = nnx.to_pure_dict(nnx.state(tiny_model))
  return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "model", tiny_config, params, metadata={"note": "test"})


@pytest.fixture
def copy(saved, tmp_path):
  """A fresh copy of the saved model directory, free to break."""
  return shutil.copytree(saved, tmp_path / "copy")


def _batch(config, seed=0):
  tok = config.tokenizer
  rng = np.random.default_rng(seed)
  b, t, d, q = 2, 5, tok.max_params, tok.num_x_bins
  return Batch(
      x=rng.integers(0, q, size=(b, t, d)).astype(np.int32), y=rng.integers(0, tok.num_y_bins, size=(b, t)).astype(np.int32),
      trial_mask=np.ones((b, t), bool), kinds=np.tile(np.array([1, 2, 3, 1], np.int32), (b, 1)),
      num_values=np.tile(np.array([0, 5, 3, 0], np.int32), (b, 1)), valid=np.ones((b, d, q), bool),
      algorithm=np.array([0, 1], np.int32),
  )


def test_save_load_round_trip_gives_identical_outputs(saved, tiny_model, tiny_config):
  loaded = checkpoint.load(saved)
  assert loaded.config == tiny_config
  want, got = nnx.to_pure_dict(nnx.state(tiny_model)), nnx.to_pure_dict(nnx.state(loaded))
  assert jax.tree.structure(want) == jax.tree.structure(got)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  batch = _batch(tiny_config)
  for a, b in zip(_forward(*nnx.split(tiny_model), batch), _forward(*nnx.split(loaded), batch)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  meta = json.loads((saved / "config.json").read_text())
  assert meta["metadata"] == {"note": "test"}
  assert ModelConfig.from_dict(meta["model"]) == tiny_config


def test_missing_directory_raises(tmp_path):
  with pytest.raises(CheckpointError, match="missing"):
    checkpoint.load(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["config.json", "manifest.json", "params"])
def test_missing_top_level_file_raises_naming_it(copy, name):
  target = copy / name
  shutil.rmtree(target) if target.is_dir() else target.unlink()
  with pytest.raises(CheckpointError, match=name):
    checkpoint.load(copy)


def _params_files(directory):
  return sorted((p for p in (directory / "params").rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)


def test_missing_params_file_raises_corrupt(copy):
  _params_files(copy)[0].unlink()
  with pytest.raises(CheckpointError, match="corrupt.*missing"):
    checkpoint.load(copy)


@pytest.mark.parametrize("which", [0, -1])  # the largest and the smallest file under params/
def test_flipped_byte_raises_corrupt(copy, which):
  path = _params_files(copy)[which]
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x01
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match="corrupt"):
    checkpoint.load(copy)


def test_truncated_params_file_raises_corrupt(copy):
  path = _params_files(copy)[0]
  path.write_bytes(path.read_bytes()[:-7])
  with pytest.raises(CheckpointError, match="corrupt"):
    checkpoint.load(copy)


@pytest.mark.parametrize("field, value", [("d_model", 64), ("num_layers", 3), ("tokenizer.num_x_bins", 40)])
def test_config_that_does_not_match_the_params_raises(copy, field, value):
  meta = json.loads((copy / "config.json").read_text())
  section, _, key = field.rpartition(".")
  (meta["model"][section] if section else meta["model"])[key] = value
  (copy / "config.json").write_text(json.dumps(meta))
  with pytest.raises(CheckpointError, match="does not match its config"):
    checkpoint.load(copy)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"model": {"d_model": 32}}), json.dumps({"other": 1})])
def test_invalid_config_json_raises(copy, text):
  (copy / "config.json").write_text(text)
  with pytest.raises(CheckpointError, match="config"):
    checkpoint.load(copy)


def test_unreadable_manifest_raises_checkpoint_error(copy):
  (copy / "manifest.json").write_text('{"truncated": ')
  with pytest.raises(CheckpointError, match="manifest"):
    checkpoint.load(copy)


def test_optimizer_with_a_bad_checkpoint_path_raises(copy, tmp_path, mixed_space):
  with pytest.raises(CheckpointError):
    optformer.Optimizer(mixed_space, model=tmp_path / "nowhere")
  _params_files(copy)[0].write_bytes(b"garbage")
  with pytest.raises(CheckpointError, match="corrupt"):
    optformer.Optimizer(mixed_space, model=str(copy))
