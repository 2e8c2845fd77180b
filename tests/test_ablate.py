"""`optformer-train ablate`: variants, the table, and a whole tiny ablation through the entry point."""

import json
import math

import argparse
import pathlib

import numpy as np
import pytest

from optformer.training import ablate


def test_a_variant_is_a_name_and_train_flags():
  v = ablate.parse_variant("bins64=--bins 64 --set 'model.value_input=\"tokens\"'")
  assert v == ablate.Variant("bins64", ("--bins", "64", "--set", 'model.value_input="tokens"'))
  assert ablate.parse_variant("base=") == ablate.Variant("base", ()) and "common flags" in ablate.Variant("b", ()).label
  for bad, named in (("no-equals", "NAME=FLAGS"), ("a/b=--bins 4", "folder name"), ("=--bins 4", "folder name"),
                     ("x=--workdir w", "--workdir is set by the ablation"), ("x=--until 5", "--until"),
                     ("x=--set 'a", "cannot split")):
    with pytest.raises(argparse.ArgumentTypeError, match=named):
      ablate.parse_variant(bad)


def test_a_config_file_variant_gets_the_common_flags_without_the_preset(tmp_path):
  common = ["--preset", "tiny", "--steps", "5"]
  argv = ablate.train_argv(ablate.Variant("mine", ("--config", "run.json")), tmp_path / "mine", common)
  assert argv == ["--workdir", str(tmp_path / "mine"), "--export", str(tmp_path / "mine" / "export"), "--no-progress",
                  "--steps", "5", "--config", "run.json"]
  assert ablate.train_argv(ablate.Variant("b", ("--bins", "8")), tmp_path / "b", common)[-6:] == [
      "--preset", "tiny", "--steps", "5", "--bins", "8"]


def test_seconds_per_step_leaves_out_the_compiling_first_row(tmp_path):
  log = tmp_path / "metrics.jsonl"
  log.write_text("".join(json.dumps(r) + "\n" for r in (
      {"step": 5, "seconds_per_step": 9.0}, {"step": 10, "seconds_per_step": 0.2, "gap_5": 1.0},
      {"step": 15, "seconds_per_step": 0.4}, {"step": 20, "seconds_per_step": 0.3})))
  assert ablate.seconds_per_step(log) == pytest.approx(0.3)
  assert math.isnan(ablate.seconds_per_step(tmp_path / "missing.jsonl"))


def _result():
  run = lambda g, d: {"gap": {"5": g, "20": g / 2}, "gap_se": {"5": 0.01, "20": 0.02}, "diff": {"5": d, "20": d},
                      "diff_se": {"5": 0.003, "20": float("nan")}, "label": "--bins 8", "model": "bins=8",
                      "steps": 10, "examples_seen": 40, "s_per_step": 0.25}
  return {"contexts": [5, 20], "prior": "tiny", "examples": 32, "date": "d", "machine": "m",
          "runs": {"base": run(0.5, 0.0), "b8": run(0.4, -0.1)},
          "reference": {"kernels": 64, "gap": {"5": 0.2, "20": 0.1}, "gap_se": {"5": 0.01, "20": 0.01}}}


def test_the_markdown_has_gaps_with_errors_and_paired_differences_to_the_first_run():
  text = ablate.markdown(_result(), "bins", "optformer-train ablate --variant base= --variant 'b8=--bins 8'")
  lines = text.splitlines()
  assert lines[0] == "# Ablation: bins" and "optformer-train ablate --variant base=" in text
  gap_rows = [line for line in lines if line.startswith("| base |") or line.startswith("| b8 |")]
  assert gap_rows[0].endswith("| +0.500 ± 0.010 | +0.250 ± 0.020 |") and "| 10 | 40 | 0.250 |" in gap_rows[0]
  assert any(line.startswith("| Bayes-optimal unit-free reference (64 kernels) |") and "+0.200 ± 0.010" in line
             for line in lines)
  assert "Paired difference to `base`" in text
  # The baseline has no row of differences; a NaN standard error prints no "±".
  assert gap_rows[2:] == ["| b8 | -0.100 ± 0.003 | -0.100 | -0.100 |"]
  assert "noisy" in text  # s/step is measured on a shared machine: the table says so.


@pytest.mark.slow
def test_a_tiny_ablation_trains_scores_on_the_same_examples_and_writes_the_table(tmp_path, capsys):
  """Two tiny configs through `optformer-train ablate`: both trained at the budget, scored on the same examples
  (the baseline's paired difference to itself is exactly 0) beside the Bayes-optimal reference, the table and its
  JSON written; a re-run resumes."""
  from optformer.training import cli

  out = tmp_path / "docs" / "bins.md"
  argv = ["ablate", "--preset", "tiny", "--steps", "4", "--variant", "base=", "--variant", "b16=--bins 16",
          "--runs", str(tmp_path / "runs"), "--out", str(out), "--eval-batches", "1", "--contexts", "5", "10"]
  assert cli.main([*argv, "--reference-kernels", "64"]) == 0
  result = json.loads(out.with_suffix(".json").read_text())
  ref = result["reference"]  # The Bayes-optimal unit-free reference, on the same examples.
  assert ref["kernels"] == 64 and all(np.isfinite(v) and v > -0.5 for v in ref["gap"].values())
  assert "| Bayes-optimal unit-free reference (64 kernels) |" in out.read_text()
  assert result["prior"] == "tiny" and result["contexts"] == [5, 10] and result["examples"] == 32
  base, b16 = result["runs"]["base"], result["runs"]["b16"]
  assert base["diff"] == {"5": 0.0, "10": 0.0} and base["steps"] == b16["steps"] == 4
  assert b16["examples_seen"] == 4 * 4 and b16["model"] == "bins=16" and base["model"] == "bins=32"
  assert all(np.isfinite(v) for r in (base, b16) for v in [*r["gap"].values(), *r["gap_se"].values()])
  cfg = json.loads((tmp_path / "runs" / "b16" / "config.json").read_text())
  assert len(cfg["model"]["borders"]) == 17  # The tiny preset honours --bins.
  text = out.read_text()
  assert "| b16 | `--bins 16` | bins=16 | 4 | 16 |" in text and "Paired difference to `base`" in text
  ev = tmp_path / "eval.json"  # `eval --against` scores the same examples: the same paired difference.
  assert cli.main(["eval", "--checkpoint", str(tmp_path / "runs" / "b16" / "export"), "--against",
                   str(tmp_path / "runs" / "base" / "export"), "--prior", "tiny", "--contexts", "5", "10",
                   "--batches", "1", "--out", str(ev)]) == 0
  got = json.loads(ev.read_text())
  assert got["gap_5"] == pytest.approx(b16["gap"]["5"]) and got["gap_se_10"] == pytest.approx(b16["gap_se"]["10"])
  assert got["diff_5"] == pytest.approx(b16["diff"]["5"]) and got["diff_se_5"] == pytest.approx(b16["diff_se"]["5"])
  capsys.readouterr()
  assert cli.main(argv) == 0  # A re-run resumes the finished runs (no step trained) and scores them again.
  printed = capsys.readouterr().out
  assert f"resuming {tmp_path / 'runs' / 'b16'} at step 4" in printed
  assert json.loads(out.with_suffix(".json").read_text())["runs"]["b16"]["gap"] == b16["gap"]
  changed = [a if a != "b16=--bins 16" else "b16=--bins 8" for a in argv]
  assert cli.main(changed) == 2  # A changed variant on its finished run is refused, naming the flag.
  assert "--bins 8 (the run has 16)" in capsys.readouterr().err


def test_bad_flags_are_usage_errors(tmp_path, capsys):
  from optformer.training import cli

  with pytest.raises(SystemExit) as e:
    cli.main(["ablate", "--variant", "a=", "--out", str(tmp_path / "t.md")])
  assert e.value.code == 2 and "two or more --variant" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["ablate", "--variant", "a=", "--variant", "a=--bins 8", "--out", str(tmp_path / "t.md")])
  assert "distinct names" in capsys.readouterr().err
  assert not pathlib.Path(tmp_path / "t.md").exists()


def _benchmark_commands(path: pathlib.Path) -> list[list[str]]:
  """The `python -m optformer.eval.benchmark ...` command lines of a Markdown file (continuations joined)."""
  import re
  import shlex

  text = re.sub(r"\\\n\s*", " ", path.read_text())
  return [shlex.split(line, comments=True)[3:] for line in text.splitlines()
          if line.startswith("python -m optformer.eval.benchmark ")]


def test_the_model_v2_docs_benchmark_commands_name_optimizers_and_models_that_exist(capsys, monkeypatch):
  """docs/model_v2.md's benchmark commands, each run with --dry-run appended (it checks the optimizer names and
  model directories, then counts the studies and runs none): they once named the retired 'optformer-v2'. Commands
  of a model a training run writes (runs/...) are left out: that run is not in the checkout."""
  from optformer.eval import benchmark

  root = pathlib.Path(__file__).resolve().parents[1]
  monkeypatch.chdir(root)
  commands = [c for c in _benchmark_commands(root / "docs" / "model_v2.md") if not any("runs/" in a for a in c)]
  assert len(commands) >= 4 and any("--model" in c for c in commands)
  for argv in commands:
    assert benchmark.main([*argv, "--dry-run"]) == 0, argv
