"""`optformer-train` (training/cli.py): subcommands, their errors, and a run described by a config file."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from optformer.training import cli, run_config
from optformer.training.train import PFNTrainConfig, init_state

BORDERS = tuple(np.linspace(-3.0, 3.0, 33).tolist())


def exit_code(argv) -> int:
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  return e.value.code


def test_the_top_level_help_lists_every_subcommand(capsys):
  assert exit_code(["--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("usage: optformer-train ")
  assert all(f"\n  {name} " in out for name in cli.COMMANDS)


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_each_subcommand_has_its_own_help(command, capsys):
  assert exit_code([command, "--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith(f"usage: optformer-train {command} ")
  assert "--workdir" in out if command in ("train", "export") else "--help" in out


def test_a_bad_subcommand_or_flag_is_a_usage_error_with_exit_code_2(tmp_path, capsys):
  assert exit_code([]) == 2
  assert "the following arguments are required: SUBCOMMAND" in capsys.readouterr().err
  assert exit_code(["trian"]) == 2
  assert "invalid choice: 'trian' (choose from 'train', 'export'" in capsys.readouterr().err
  assert exit_code(["train", "--workdir", str(tmp_path / "w"), "--bogus", "1"]) == 2
  assert "optformer-train train: error: unrecognized arguments: --bogus 1" in capsys.readouterr().err
  assert not (tmp_path / "w").exists()  # Nothing was started.
  assert exit_code(["eval", "--contexts", "five"]) == 2
  assert "optformer-train eval: error: argument --contexts: invalid int value: 'five'" in capsys.readouterr().err
  assert exit_code(["export", "--workdir", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
  assert f"{tmp_path} holds no training run (no config.json)" in capsys.readouterr().err
  (tmp_path / "config.json").write_text("{}")
  assert exit_code(["export", "--workdir", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
  assert "has no checkpoint yet (train first)" in capsys.readouterr().err
  assert exit_code(["train", "--workdir", str(tmp_path / "x"), "--set", "novalue"]) == 2
  assert "expected FIELD=VALUE" in capsys.readouterr().err


def test_python_dash_m_is_the_same_entry_point():
  run = subprocess.run([sys.executable, "-m", "optformer.training", "bogus"], capture_output=True, text=True, timeout=120)
  assert run.returncode == 2 and "optformer-train: error: argument SUBCOMMAND: invalid choice: 'bogus'" in run.stderr


def test_fields_are_set_by_dotted_names_and_unknown_ones_are_named():
  cfg = PFNTrainConfig.tiny(BORDERS)
  got = run_config.with_fields(cfg, [("data.examples.prior.max_dims", 2), ("model.num_heads", 4), ("seed", 3),
                                     ("data.dims_curriculum", [[5, 1]])])
  assert (got.data.examples.prior.max_dims, got.model.num_heads, got.seed) == (2, 4, 3)
  assert got.data.dims_curriculum == ((5, 1),) and got.model.borders == cfg.model.borders
  with pytest.raises(ValueError, match=r"unknown field 'data.examples.prior.max_dim': data.examples.prior has max_dims"):
    run_config.with_fields(cfg, [("data.examples.prior.max_dim", 2)])
  with pytest.raises(ValueError, match=r"'num_steps.x': num_steps is a value, not a config"):
    run_config.with_fields(cfg, [("num_steps.x", 2)])
  with pytest.raises(ValueError, match=r"soft_target_weight must lie in \[0, 1\], got 2"):
    run_config.with_fields(cfg, [("data.soft_target_weight", 2)])
  assert run_config.parse_assignment("model.d_model=64") == ("model.d_model", 64)
  assert run_config.parse_assignment("optimizer=adamw") == ("optimizer", "adamw")
  assert run_config.parse_assignment("eval_contexts=[5, 10]") == ("eval_contexts", [5, 10])


def test_differences_name_the_dotted_fields_that_differ():
  a = PFNTrainConfig.tiny(BORDERS)
  b = run_config.with_fields(a, [("num_steps", 40), ("data.examples.prior.max_dims", 2), ("seed", 1)])
  assert run_config.differences(a.to_dict(), b.to_dict()) == [
      "data.examples.prior.max_dims: 3 -> 2", "num_steps: 20 -> 40", "seed: (default) -> 1"]
  assert run_config.differences(a.to_dict(), a.to_dict()) == []


def test_a_config_file_that_disagrees_with_the_workdirs_run_is_refused_with_the_fields(tmp_path, capsys):
  cfg = PFNTrainConfig.tiny(BORDERS)
  (tmp_path / "w").mkdir()
  (tmp_path / "w" / "config.json").write_text(json.dumps(cfg.to_dict()))
  (tmp_path / "run.json").write_text(json.dumps(cfg.to_dict()))
  train = ["train", "--workdir", str(tmp_path / "w"), "--config", str(tmp_path / "run.json"), "--no-progress"]
  assert exit_code([*train, "--steps", "40", "--set", "data.batch_size=2"]) == 2
  err = capsys.readouterr().err
  assert "differing fields: data.batch_size: 4 -> 2; num_steps: 20 -> 40" in err, err
  assert exit_code([*train, "--preset", "tiny"]) == 2
  assert "drop --preset, --bins and --dims-curriculum" in capsys.readouterr().err
  new = ["train", "--workdir", str(tmp_path / "v"), "--config", str(tmp_path / "run.json")]
  assert exit_code([*new, "--steps", "10", "--set", "num_steps=30"]) == 2
  assert "--set and the flags disagree: --steps 10 (the run has 30)" in capsys.readouterr().err
  (tmp_path / "bad.json").write_text('{"model": {}}')
  assert exit_code(["train", "--workdir", str(tmp_path / "v"), "--config", str(tmp_path / "bad.json")]) == 2
  assert f"cannot read a training config from {tmp_path / 'bad.json'}" in capsys.readouterr().err
  assert not (tmp_path / "v").exists()
  assert (tmp_path / "w" / "config.json").read_text() == json.dumps(cfg.to_dict())  # The record is untouched.


def test_a_set_prior_field_draws_the_bar_borders_from_the_changed_prior(tmp_path, monkeypatch):
  from optformer.training import data

  drawn = []  # (noise_log_mean, bars) of each draw; a stand-in for the prior's quantiles, which take a minute here.

  def prior_borders(data, num_bins, num_batches=64):
    drawn.append((data.examples.prior.noise_log_mean, num_bins))
    return np.linspace(-3.0, 3.0, num_bins + 1) * (1.0 + abs(data.examples.prior.noise_log_mean))

  monkeypatch.setattr(data, "prior_borders", prior_borders)
  p = run_config.parser()
  resolve = lambda *flags: run_config.resolve(p, p.parse_args(list(flags)), list(flags))
  base = ["--workdir", str(tmp_path / "w"), "--preset", "tiny"]
  plain = resolve(*base, "--set", "eval_contexts=[3]")  # Not a prior field: the preset's borders.
  assert plain.eval_contexts == (3,) and drawn == [(-4.63, 32)] and not (tmp_path / "w").exists()
  narrow = resolve(*base, "--set", "data.examples.prior.noise_log_mean=1.0")
  assert narrow.data.examples.prior.noise_log_mean == 1.0 and drawn[1:] == [(-4.63, 32), (1.0, 32)]
  assert narrow.model.borders == tuple(np.linspace(-6.0, 6.0, 33).tolist())  # Drawn from the changed prior.
  kept = resolve(*base, "--set", "data.examples.prior.noise_log_mean=1.0", "--set", f"model.borders={list(BORDERS)}")
  assert kept.model.borders == BORDERS and len(drawn) == 4


def test_argv_loses_only_the_named_flags():
  argv = ["--workdir", "w", "--config", "c.json", "--set", "a=1", "--set=b=2", "--steps", "3"]
  assert run_config._without(argv, ("--config", "--set")) == ["--workdir", "w", "--steps", "3"]


@pytest.mark.slow
def test_a_tiny_run_through_the_entry_point_exports_evaluates_and_equals_its_config_file_run(tmp_path, capsys):
  """train with flags; the same run from its config.json, stopped and resumed; export and eval both."""
  from optformer import checkpoint

  a, b = tmp_path / "a", tmp_path / "b"
  assert cli.main(["train", "--workdir", str(a), "--preset", "tiny", "--steps", "4", "--eval-every", "100",
                   "--no-progress"]) == 0
  assert cli.main(["train", "--workdir", str(b), "--config", str(a / "config.json"), "--until", "2",
                   "--no-progress"]) == 0
  printed = capsys.readouterr().out
  assert f"the run's config, from {a / 'config.json'}: {b / 'config.json'}" in printed
  assert f"new run in {b}, from scratch, until step 2 of a 4-step schedule" in printed
  assert cli.main(["train", "--workdir", str(b), "--config", str(a / "config.json"), "--no-progress"]) == 0
  assert f"resuming {b} at step 2" in capsys.readouterr().out
  assert (b / "config.json").read_text() == (a / "config.json").read_text()
  steps = [[json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (a, b)]
  assert steps == [[4], [2, 4]]  # A log row at the end of each run (the tiny preset logs every 5 steps).
  for run in (a, b):
    assert cli.main(["export", "--workdir", str(run), "--out", str(run / "model")]) == 0
  leaves = [jax_leaves(checkpoint.load_pfn(run / "model")) for run in (a, b)]
  for u, v in zip(*leaves):  # The same parameters after the same 4 steps on the same data.
    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
  initial = init_state(PFNTrainConfig.from_dict(json.loads((a / "config.json").read_text())))[1]
  assert any(not np.allclose(u, np.asarray(v)) for u, v in zip(leaves[0], jax.tree.leaves(initial)))  # It trained.
  out = tmp_path / "eval.json"
  assert cli.main(["eval", "--checkpoint", str(a / "model"), "--contexts", "2", "--batches", "1", "--out", str(out)]) == 0
  got = json.loads(out.read_text())
  assert got["step"] == 4 and np.isfinite(got["gap_2"]) and got["gap_2"] == pytest.approx(got["nll_model_2"] - got["nll_gp_2"])


def jax_leaves(model):
  from flax import nnx

  return [np.asarray(v) for v in jax.tree.leaves(nnx.to_pure_dict(nnx.state(model)))]
