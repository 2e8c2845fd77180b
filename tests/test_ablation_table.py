"""training/ablation_table.py: one row per run directory, as the trainer writes them."""

import json

import pytest

from optformer.training import ablation_table


def _run(root, name, gap, optimizer="adamw"):
  run = root / name
  run.mkdir()
  model = {"d_model": 32, "num_layers": 2, "d_slot": 16, "borders": [0.0, 1.0, 2.0, 3.0]}
  (run / "config.json").write_text(json.dumps({"optimizer": optimizer, "peak_learning_rate": 1e-3, "model": model}))
  rows = [{"step": 50, "loss": 2.0, "seconds_per_step": 0.5},
          # The trainer logs gaps by context size and by relevant parameters (pfn_eval's by_dims).
          {"step": 100, "loss": 1.5, "seconds_per_step": 0.25, "gap_5": gap, "gap_20": gap / 2, "gap_5_dims_1-2": 9.0}]
  (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_the_table_reads_the_trainers_runs_best_first(tmp_path, capsys):
  _run(tmp_path, "worse", 0.4)
  _run(tmp_path, "better", 0.2, optimizer="muon")
  (tmp_path / "better" / "metrics.jsonl").write_text((tmp_path / "better" / "metrics.jsonl").read_text().replace(
      '"gap_5_dims_1-2": 9.0', '"gap_5_dims_1-2": 99.0'))  # Not part of the ranking.
  (tmp_path / "unfinished").mkdir()
  assert ablation_table.main([str(tmp_path)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert "gap@5 | gap@20 |" in lines[0] and "dims" not in lines[0]
  assert lines[2].startswith("| better | muon |") and "+0.200 | +0.100 | +0.150" in lines[2]
  assert lines[3].startswith("| worse |") and len(lines) == 4
  assert ablation_table.main([str(tmp_path), "--at-step", "50"]) == 0
  assert capsys.readouterr().out.strip() == "No finished runs."


def test_help_and_a_missing_folder(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    ablation_table.main(["--help"])
  assert e.value.code == 0 and "--at-step" in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    ablation_table.main([str(tmp_path / "missing")])
  assert e.value.code == 2 and "not a folder of run directories" in capsys.readouterr().err
