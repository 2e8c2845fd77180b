"""training/ablation_table.py: one row per run directory, as the trainer writes them, models named by what differs."""

import json

import pytest

from optformer.training import ablation_table


def _config(optimizer="adamw", bins=3, max_dims=16, eval_every=10):
  model = {"d_model": 32, "num_layers": 2, "d_slot": 16, "max_categories": 8, "borders": [0.0] * (bins + 1)}
  prior = {"max_dims": max_dims, "max_categories": 8, "kind_probs": [0.6, 0.25, 0.15]}
  return {"optimizer": optimizer, "peak_learning_rate": 1e-3, "eval_every": eval_every, "model": model,
          "data": {"batch_size": 8, "examples": {"prior": prior}}}


def _run(root, name, gap, gap_se=None, **config):
  run = root / name
  run.mkdir()
  (run / "config.json").write_text(json.dumps(_config(**config)))
  last = {"step": 100, "loss": 1.5, "seconds_per_step": 0.25, "gap_5": gap, "gap_20": gap / 2,
          "gap_5_dims_1-2": 9.0}  # The trainer logs gaps by context size and by relevant parameters (by_dims).
  if gap_se is not None:
    last.update({"gap_se_5": gap_se, "gap_se_20": gap_se / 2})
  rows = [{"step": 50, "loss": 2.0, "seconds_per_step": 0.5}, last]
  (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  return run


def test_the_table_reads_the_trainers_runs_best_first(tmp_path, capsys):
  _run(tmp_path, "worse", 0.4, eval_every=5)  # Bookkeeping fields do not name a model.
  _run(tmp_path, "better", 0.2, optimizer="muon")
  (tmp_path / "better" / "metrics.jsonl").write_text((tmp_path / "better" / "metrics.jsonl").read_text().replace(
      '"gap_5_dims_1-2": 9.0', '"gap_5_dims_1-2": 99.0'))  # Not part of the ranking.
  (tmp_path / "unfinished").mkdir()
  assert ablation_table.main([str(tmp_path)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert "| gap@5 | gap@20 |" in lines[0] and "dims" not in lines[0] and "Δ" not in lines[0]
  assert lines[2].startswith("| better | optimizer=muon | 100 | 800 |") and "+0.200 | +0.100 | +0.150" in lines[2]
  assert lines[3].startswith("| worse | optimizer=adamw |") and len(lines) == 4
  assert "±" not in "".join(lines)  # These metrics carry no standard errors.
  assert ablation_table.main([str(tmp_path), "--at-step", "50"]) == 0
  assert capsys.readouterr().out.strip() == "No finished runs."


def test_models_are_named_by_their_differing_fields():
  base = ablation_table.flat_config(_config())
  assert base["model.bins"] == 3 and "model.borders" not in base and "eval_every" not in base
  configs = [base, ablation_table.flat_config(_config(bins=7, max_dims=4)), ablation_table.flat_config(_config())]
  assert ablation_table.differing_fields(configs) == ["model.bins", "data.examples.prior.max_dims"]
  assert ablation_table.model_names(configs) == ["bins=3, max_dims=16", "bins=7, max_dims=4", "bins=3, max_dims=16"]
  assert ablation_table.model_names(configs[:1]) == ["(same config)"]
  # Two differing fields with the same last part keep as much of their dotted name as tells them apart.
  other = ablation_table.flat_config(_config())
  other["data.examples.prior.max_categories"] = 4
  other["model.max_categories"] = 16
  assert ablation_table.model_names([base, other]) == ["model.max_categories=8, prior.max_categories=8",
                                                       "model.max_categories=16, prior.max_categories=4"]


def test_standard_errors_and_paired_differences_on_common_ground(tmp_path, capsys):
  _run(tmp_path, "base", 0.30, gap_se=0.02)
  noise = _run(tmp_path, "noise", 0.50, gap_se=0.04, max_dims=4)
  assert ablation_table.main([str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert "| base | max_dims=16 | 100 | 800 | +0.300 ± 0.020 | +0.150 ± 0.010 |" in out
  # pfn_eval --out on one evaluation prior, against the base run: these numbers replace the in-run ones.
  common = {"checkpoint": "runs/noise/export", "step": 100, "gap_5": 0.31, "gap_20": 0.16, "diff_5": 0.01,
            "diff_se_5": 0.005, "diff_20": -0.002, "diff_se_20": 0.003, "gap_5_dims_1-2": 1.0}
  (noise / "eval.json").write_text(json.dumps(common))
  assert ablation_table.main([str(tmp_path), "--eval", "eval.json"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert "| gap@5 | gap@20 | Δ@5 | Δ@20 | mean gap |" in lines[0] and len(lines) == 3  # base has no eval.json (but names noise's change).
  assert lines[2] == "| noise | max_dims=4 | 100 | 800 | +0.310 | +0.160 | +0.010 ± 0.005 | -0.002 ± 0.003 | +0.235 | 0.38 |"


def test_help_and_bad_input(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    ablation_table.main(["--help"])
  assert e.value.code == 0 and "--at-step" in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    ablation_table.main([str(tmp_path / "missing")])
  assert e.value.code == 2 and "not a folder of run directories" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    ablation_table.main([str(tmp_path), "--eval", "e.json", "--at-step", "5"])
  assert e.value.code == 2 and "give one of them" in capsys.readouterr().err
  run = _run(tmp_path, "broken", 0.1)
  (run / "eval.json").write_text("{not json")
  with pytest.raises(SystemExit) as e:
    ablation_table.main([str(tmp_path), "--eval", "eval.json"])
  assert e.value.code == 2 and "eval.json is not the JSON of pfn_eval" in capsys.readouterr().err
