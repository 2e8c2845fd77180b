"""Checkpoints: exact round trip, and every broken directory reported as a CheckpointError."""

import dataclasses
import functools
import hashlib
import json
import math
import re
import shutil
import types

import jax
import numpy as np
import pytest
from flax import nnx

import optformer
from optformer import checkpoint
from optformer.model import network
from optformer.checkpoint import CheckpointError
from optformer.model.inference import PFNEngine


@pytest.fixture(scope="module")
def tiny_config(tiny_v2_model):
  return tiny_v2_model.config


@pytest.fixture(scope="module")
def saved(tiny_v2_model, tiny_config, tmp_path_factory):
  """A model directory written by checkpoint.save (read-only: tests copy it before breaking it)."""
  params = nnx.to_pure_dict(nnx.state(tiny_v2_model))
  return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "model", tiny_config, params, metadata={"note": "test"})


saved_v2 = saved  # The one model family.


@pytest.fixture
def copy(saved, tmp_path):
  """A fresh copy of the saved model directory, free to break."""
  return shutil.copytree(saved, tmp_path / "copy")


def _predict(model, seed=0):
  """float [M, Y] bar probabilities and [M] p(feasible) of random queries given a random context of 6 trials."""
  rng = np.random.default_rng(seed)
  kinds, num_values = np.array([1, 2, 3, 1]), np.array([0, 5, 3, 0])
  x, q = rng.random((6, 4)), rng.random((5, 4))
  pred = PFNEngine(model).predict(x, rng.normal(size=6), kinds, num_values, q)
  return pred.z.probs, pred.p_feasible


def test_save_load_round_trip_gives_identical_outputs(saved, tiny_v2_model, tiny_config):
  loaded = checkpoint.load(saved)
  assert loaded.config == tiny_config
  want, got = nnx.to_pure_dict(nnx.state(tiny_v2_model)), nnx.to_pure_dict(nnx.state(loaded))
  assert jax.tree.structure(want) == jax.tree.structure(got)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for a, b in zip(_predict(tiny_v2_model), _predict(loaded)):
    np.testing.assert_array_equal(a, b)
  meta = json.loads((saved / "config.json").read_text())
  assert meta["metadata"] == {"note": "test"}
  assert network.PFNConfig.from_dict(meta["model"]) == tiny_config


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


def _rel(directory, path):
  return path.relative_to(directory).as_posix()


def _read_manifest(directory):
  return json.loads((directory / "manifest.json").read_text())


def _write_manifest(directory, manifest):
  (directory / "manifest.json").write_text(json.dumps(manifest))


def _rehash(directory):
  """Rewrites manifest.json to match the directory as it is now (the format, written out independently of checkpoint.py)."""
  files = [p for p in directory.rglob("*") if p.is_file() and _rel(directory, p) not in ("manifest.json", "card.md")]
  _write_manifest(directory, {_rel(directory, p): {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size} for p in files})


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


@pytest.mark.parametrize("field, value", [("d_model", 64), ("num_layers", 3), ("d_slot", 40)])
def test_config_that_does_not_match_the_params_raises(copy, field, value):
  meta = json.loads((copy / "config.json").read_text())
  section, _, key = field.rpartition(".")
  (meta["model"][section] if section else meta["model"])[key] = value
  (copy / "config.json").write_text(json.dumps(meta))
  _rehash(copy)  # a consistent manifest, so the shape check is what fails.
  with pytest.raises(CheckpointError, match="does not match its config"):
    checkpoint.load(copy)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"model": {"d_model": 32}}), json.dumps({"other": 1})])
def test_invalid_config_json_raises(copy, text):
  (copy / "config.json").write_text(text)
  _rehash(copy)
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


def test_manifest_covers_every_file_but_the_card_with_paths_relative_to_the_directory(saved):
  files = {_rel(saved, p) for p in saved.rglob("*") if p.is_file()} - {"manifest.json"}
  assert "config.json" in files and "card.md" not in files
  manifest = _read_manifest(saved)
  assert set(manifest) == files
  for name, entry in manifest.items():
    assert entry == {"sha256": hashlib.sha256((saved / name).read_bytes()).hexdigest(), "bytes": (saved / name).stat().st_size}


def test_card_is_documentation_and_not_checksummed(copy):
  (copy / "card.md").write_text("# a model card, written after save and free to edit\n")
  checkpoint.load(copy)


def test_empty_manifest_raises(copy):
  _write_manifest(copy, {})
  with pytest.raises(CheckpointError, match="manifest.json lists no files"):
    checkpoint.load(copy)


def _unlist(directory, path):
  """Removes path's entry from manifest.json (a partial manifest)."""
  manifest = _read_manifest(directory)
  _write_manifest(directory, {k: v for k, v in manifest.items() if not path.as_posix().endswith("/" + k)})


@pytest.mark.parametrize("which", ["config.json", "largest params file"])
def test_partial_manifest_raises_naming_the_unlisted_file(copy, which):
  path = copy / "config.json" if which == "config.json" else _params_files(copy)[0]
  name = _rel(copy, path)
  _unlist(copy, path)
  with pytest.raises(CheckpointError, match=f"corrupt: {name} is not listed in manifest.json"):
    checkpoint.load(copy)


def test_flipped_byte_in_an_unlisted_params_file_raises(copy):
  path = _params_files(copy)[0]
  _unlist(copy, path)
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x01
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=_rel(copy, path)):
    checkpoint.load(copy)


def test_list_shaped_manifest_raises(copy):
  _write_manifest(copy, [{"path": k, **v} for k, v in _read_manifest(copy).items()])
  with pytest.raises(CheckpointError, match=r"manifest.json holds a JSON array; expected an object"):
    checkpoint.load(copy)


_SHA = "0" * 64


@pytest.mark.parametrize("entry", [
    "abc", ["sha", 12], None, {"sha256": _SHA}, {"sha256": 12, "bytes": 12}, {"sha256": "abc", "bytes": 12},
    {"sha256": _SHA, "bytes": "12"}, {"sha256": _SHA, "bytes": True}, {"sha256": _SHA, "bytes": -1},
    {"sha256": _SHA, "bytes": 12, "mtime": 0},
])
def test_malformed_manifest_entry_raises_naming_it(copy, entry):
  manifest = _read_manifest(copy)
  name = sorted(manifest)[-1]
  manifest[name] = entry
  _write_manifest(copy, manifest)
  with pytest.raises(CheckpointError, match=rf"manifest.json: entry for '{re.escape(name)}' is .*; expected"):
    checkpoint.load(copy)


@pytest.mark.parametrize("key", ["/abs/config.json", "../config.json", "./config.json", "params//_METADATA", "params\\_METADATA", ""])
def test_manifest_key_that_is_not_a_relative_path_raises(copy, key):
  manifest = _read_manifest(copy)
  manifest[key] = next(iter(manifest.values()))
  _write_manifest(copy, manifest)
  with pytest.raises(CheckpointError, match="not a normalized path relative to the model directory"):
    checkpoint.load(copy)


@pytest.mark.parametrize("name", ["params/extra.bin", "params/d/extra", "extra.json", ".hidden"])
def test_extra_file_raises_naming_it(copy, name):
  (copy / name).write_bytes(b"not part of the model")
  with pytest.raises(CheckpointError, match=f"corrupt: {name} is not listed in manifest.json"):
    checkpoint.load(copy)


def test_listed_file_that_is_missing_raises_naming_it(copy):
  (copy / "tokenizer_notes.txt").write_text("listed, then removed")
  _rehash(copy)
  (copy / "tokenizer_notes.txt").unlink()
  with pytest.raises(CheckpointError, match=r"corrupt: tokenizer_notes.txt is missing"):
    checkpoint.load(copy)


@pytest.mark.parametrize("value", [32.0, 64.5])  # shapes are unchanged, predictions are not.
def test_edited_config_raises_naming_it(copy, tiny_config, value):
  assert value != tiny_config.max_frequency
  meta = json.loads((copy / "config.json").read_text())
  meta["model"]["max_frequency"] = value
  (copy / "config.json").write_text(json.dumps(meta, indent=1))
  with pytest.raises(CheckpointError, match="corrupt: config.json has (sha256|.* bytes)"):
    checkpoint.load(copy)


def _edit_config(directory, field, value):
  """Sets a field of config.json's model and regenerates the manifest, as an edit would."""
  meta = json.loads((directory / "config.json").read_text())
  section, _, key = field.rpartition(".")
  target = meta["model"][section] if section else meta["model"]
  target[key] = value(target[key]) if callable(value) else value
  (directory / "config.json").write_text(json.dumps(meta))
  _rehash(directory)


# (family, field, new value or function of the old one, message after "field '<field>' is ")
BAD_CONFIGS = [
    ("v2", "borders", lambda b: b[::-1], r"\[3\.0, 2\.8125, .*\(33 values\); expected strictly increasing numbers, "
                                          r"but borders\[0\] = 3\.0 >= borders\[1\] = 2\.8125"),
    ("v2", "borders", lambda b: b[:5] + [math.nan] + b[6:], r".*expected finite numbers, but borders\[5\] is nan"),
    ("v2", "borders", lambda b: b[:1] * 2 + b[1:], r".*but borders\[0\] = -3\.0 >= borders\[1\] = -3\.0"),  # a tie
    ("v2", "borders", [0.0, 1.0], r"\[0\.0, 1\.0\]; expected at least 3 bar borders"),
    ("v2", "num_layers", -1, r"-1; expected an int >= 1"),
    ("v2", "d_model", "32", r"'32'; expected an int >= 1"),
    ("v2", "d_model", 31, r"31; expected a multiple of num_heads=2"),
    ("v2", "max_frequency", math.nan, r"nan; expected a finite number > 0"),
    ("v2", "max_context", 0, r"0; expected an int >= 1"),
    ("v2", "num_heads", True, r"True; expected an int >= 1"),
    ("v2", "distance_bias", "yes", r"'yes'; expected true or false"),
    ("v2", "max_frequency", -64.0, r"-64\.0; expected a finite number > 0"),
]


@pytest.mark.parametrize("family, field, value, message", BAD_CONFIGS,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(BAD_CONFIGS)])
def test_edited_config_under_a_regenerated_manifest_raises_naming_the_field_and_value(
    saved, tmp_path, family, field, value, message):
  copy = shutil.copytree(saved, tmp_path / "copy")
  _edit_config(copy, field, value)
  want = rf"config\.json is not a valid model config: field '{re.escape(field)}' is {message}"
  with pytest.raises(CheckpointError, match=want):
    checkpoint.load(copy)


def test_shipped_configs_are_valid():
  doc = json.loads((checkpoint.DEFAULT_CHECKPOINT / "config.json").read_text())
  assert doc["format"] == checkpoint.FORMAT_V2
  checkpoint.validate_config(network.PFNConfig.from_dict(doc["model"]))
  assert not (checkpoint.SHIPPED_CHECKPOINTS / checkpoint.RETIRED_NAME).exists()


# The retired model v1's config.json (optformer-gp-v1, abridged): a "model" with a tokenizer and prompts, no "format".
V1_CONFIG = {"model": {"d_model": 128, "num_heads": 4, "num_layers": 4, "max_trials": 64, "algorithms": ["random",
             "sobol", "gp_ucb"], "tokenizer": {"max_params": 8, "num_x_bins": 1000, "num_y_bins": 1000}},
             "metadata": {"step": 20000}}


@pytest.mark.parametrize("complete", [False, True])
def test_a_model_v1_checkpoint_is_refused_naming_the_model_that_replaces_it(saved, tmp_path, complete):
  """A v1 directory (config.json without "format"), alone or with params and a matching manifest, is named as such."""
  v1 = shutil.copytree(saved, tmp_path / "v1") if complete else tmp_path / "v1"
  v1.mkdir(exist_ok=True)
  (v1 / "config.json").write_text(json.dumps(V1_CONFIG))
  if complete:
    _rehash(v1)
  for call in (checkpoint.read_config, checkpoint.load):
    with pytest.raises(CheckpointError, match=r"model v1 .*retired.*optformer-v2") as e:
      call(v1)
    assert str(v1) in str(e.value) and "checkpoints/optformer-v2" in str(e.value)
  for build in (lambda: optformer.Optimizer(optformer.SearchSpace([optformer.Float("x", 0, 1)]), model=v1),
                lambda: optformer.Surrogate(optformer.SearchSpace([optformer.Float("x", 0, 1)]), model=v1)):
    with pytest.raises(CheckpointError, match="retired"):
      build()


def _link_params_elsewhere(copy, tmp_path):
  shutil.move(copy / "params", tmp_path / "shared_params")
  (copy / "params").symlink_to(tmp_path / "shared_params")


def test_a_params_symlink_is_followed_and_verified(saved_v2, tmp_path):
  """A params/ linked to shared storage loads like a copy (it was reported as every params file missing)."""
  copy = shutil.copytree(saved_v2, tmp_path / "copy")
  _link_params_elsewhere(copy, tmp_path)
  want = nnx.to_pure_dict(nnx.state(checkpoint.load(saved_v2)))
  got = nnx.to_pure_dict(nnx.state(checkpoint.load(copy)))
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  path = _params_files(copy)[0]  # the files behind the link are checked too
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x01
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=f"corrupt: {_rel(copy, path)} has sha256"):
    checkpoint.load(copy)


def test_a_dangling_params_symlink_or_a_link_loop_is_named(saved, tmp_path):
  copy = shutil.copytree(saved, tmp_path / "copy")
  _link_params_elsewhere(copy, tmp_path)
  (copy / "params" / "loop").symlink_to(copy / "params")
  with pytest.raises(CheckpointError, match=r"params/loop is a symbolic link to .*shared_params, a directory already read"):
    checkpoint.load(copy)
  (copy / "params" / "loop").unlink()
  shutil.rmtree(tmp_path / "shared_params")
  with pytest.raises(CheckpointError, match=r"'params' is a symbolic link to .*shared_params, which does not exist"):
    checkpoint.load(copy)


def test_old_format_manifest_raises_asking_to_resave(copy):
  _write_manifest(copy, {k[len("params/"):]: v for k, v in _read_manifest(copy).items() if k.startswith("params/")})
  with pytest.raises(CheckpointError, match="old format.*Re-save"):
    checkpoint.load(copy)


def test_interrupted_save_never_leaves_a_loadable_directory(copy, tiny_v2_model, tiny_config, monkeypatch):
  def interrupted(*args):
    raise KeyboardInterrupt
  edited = dataclasses.replace(tiny_config, max_frequency=tiny_config.max_frequency + 1)  # same shapes, other predictions.
  with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
    m.setattr(checkpoint, "hashlib", types.SimpleNamespace(sha256=interrupted))  # dies checksumming, after params and config.
    checkpoint.save(copy, edited, nnx.to_pure_dict(nnx.state(tiny_v2_model)))
  with pytest.raises(CheckpointError, match="missing 'manifest.json'"):
    checkpoint.load(copy)


def test_shipped_checkpoint_passes_verification():
  shipped = checkpoint.DEFAULT_CHECKPOINT
  files = {_rel(shipped, p) for p in shipped.rglob("*") if p.is_file()} - {"manifest.json", "card.md"}
  assert set(_read_manifest(shipped)) == files
  checkpoint.load()
