"""Benchmarks of named models: `--model NAME=DIR`, a cache keyed by the model's content, a report by name."""

import dataclasses
import json

import pytest

from optformer import checkpoint
from optformer.model import network
from optformer.eval import benchmark, entries, report

PLANS = {"bbob": benchmark.SuitePlan(trials=3, seeds=1, tasks={"functions": (1,), "dimensions": (2,)},
                                     reference_samples=16)}
QUIET = lambda line: None


@pytest.fixture(scope="module")
def other_model():
  """A second tiny model (another initialization seed): (in-memory model, its checkpoint directory)."""
  return network.create_model(dataclasses.replace(network.PFNConfig.tiny(), max_context=16), seed=1)


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory, other_model):
  from flax import nnx

  state = nnx.to_pure_dict(nnx.state(other_model))
  return checkpoint.save(tmp_path_factory.mktemp("tiny_other"), other_model.config, state)


def test_model_ids_follow_content(tiny_v2_model, tiny_v2_dir, other_model, other_dir, tmp_path):
  assert entries.model_id(tiny_v2_model) == entries.model_id(tiny_v2_model)
  assert entries.model_id(tiny_v2_model).startswith("in-memory:")
  assert entries.model_id(tiny_v2_model) != entries.model_id(other_model)
  assert entries.model_id(tiny_v2_dir) != entries.model_id(other_dir)
  copy = tmp_path / "copy"  # The same files elsewhere: the same model.
  copy.mkdir()
  for f in tiny_v2_dir.rglob("*"):
    if f.is_file():
      (copy / f.relative_to(tiny_v2_dir)).parent.mkdir(parents=True, exist_ok=True)
      (copy / f.relative_to(tiny_v2_dir)).write_bytes(f.read_bytes())
  assert entries.model_id(copy) == entries.model_id(tiny_v2_dir)
  with pytest.raises(ValueError, match="Cannot identify the model"):
    entries.model_id(tmp_path / "missing")


def test_names_and_bad_model_arguments(tiny_v2_dir):
  assert entries.parse_model(f"base={tiny_v2_dir}") == ("base", tiny_v2_dir)
  for bad in ("base", "=dir", "base=", "a b=dir", "-x=dir"):
    with pytest.raises(ValueError, match="NAME=DIR"):
      entries.parse_model(bad)
  es = entries.make_entries(["random", "optformer"], None, {"base": tiny_v2_dir})
  assert [(e.name, e.optimizer) for e in es] == [("random", "random"), ("optformer", "optformer"), ("base", "optformer")]
  assert es[0].key == "random" and es[2].key == "optformer@" + es[2].model_id.replace(":", "-")
  with pytest.raises(ValueError, match="not an optimizer's name"):
    entries.make_entries(["random"], None, {"tpe": tiny_v2_dir})
  with pytest.raises(ValueError, match="must differ"):
    entries.make_entries(["random", "random"])


def test_one_report_compares_named_checkpoints_and_a_rebound_name_reruns(tmp_path, tiny_v2_dir, other_dir):
  first = benchmark.run(tmp_path, PLANS, ["random"], log=QUIET, models={"a": tiny_v2_dir})
  assert (first["run"], first["cached"]) == (2, 0)
  # Another checkpoint under the same name into the same folder runs again; the random baseline is cached.
  lines = []
  second = benchmark.run(tmp_path, PLANS, ["random"], log=lines.append, models={"a": other_dir})
  assert (second["run"], second["cached"]) == (1, 1)
  assert any(line.startswith("a now names the model " + entries.model_id(other_dir)) for line in lines)
  bound = json.loads((tmp_path / entries.MODELS_FILE).read_text())
  assert bound["a"]["model"] == entries.model_id(other_dir) and bound["random"]["model"] is None
  left_out = []
  data = report.load(tmp_path, left_out)
  study = data["bbob"]["f01_d2_i1"]["studies"]["a"][0]
  assert study["model"] == entries.model_id(other_dir) and study["name"] == "a" and len(left_out) == 1
  # Both checkpoints by name: nothing reruns (the cache follows content, not names), and both are rows.
  both = benchmark.run(tmp_path, PLANS, ["random"], log=QUIET, models={"a": tiny_v2_dir, "b": other_dir})
  assert (both["run"], both["cached"]) == (0, 3)
  text, res = report.build(tmp_path, at=(3,), reference="a", figures=False)
  s = res["suites"]["bbob"]
  assert set(s["optimizers"]) == {"random", "a", "b"} and res["left_out_studies"] == 0
  assert s["regret"]["a"]["3"][2] == s["regret"]["b"]["3"][2] == 1
  assert f"| a | optformer | {entries.model_id(tiny_v2_dir)} |" in text and "| b |" in text
  studies = report.load(tmp_path)["bbob"]["f01_d2_i1"]["studies"]
  assert studies["a"][0]["model"] == entries.model_id(tiny_v2_dir)  # Each name reads its own model's studies.
  assert studies["b"][0]["model"] == entries.model_id(other_dir) and studies["b"][0]["name"] == "a"  # Run as "a".
  # A cache without models.json (written before names) is read by each study's own name.
  (tmp_path / entries.MODELS_FILE).unlink()
  assert set(report.load(tmp_path)["bbob"]["f01_d2_i1"]["studies"]) == {"a", "random"}


def test_studies_cached_before_keys_held_the_model_id_are_reused_if_of_the_same_model(tmp_path, tiny_v2_dir):
  benchmark.run(tmp_path, PLANS, ["optformer"], model=tiny_v2_dir, log=QUIET)
  task = tmp_path / "bbob" / "f01_d2_i1"
  (task / benchmark.make_entries(["optformer"], tiny_v2_dir)[0].key).rename(task / "optformer")  # The old layout.
  assert benchmark.run(tmp_path, PLANS, ["optformer"], model=tiny_v2_dir, log=QUIET)["cached"] == 1
  assert benchmark.run(tmp_path, PLANS, ["optformer"], dry_run=True, log=QUIET)["run"] == 1  # Another model.
  assert set(report.load(tmp_path)["bbob"]["f01_d2_i1"]["studies"]) == {"optformer"}


def test_the_command_line_takes_named_models(tmp_path, tiny_v2_dir, capsys):
  argv = ["--preset", "bench", "--suite", "bbob", "--max-tasks", "1", "--trials", "2", "--seeds", "1",
          "--optimizers", "random", "--out", str(tmp_path / "out")]
  assert benchmark.main(argv + ["--model", f"a={tiny_v2_dir}", "--model", f"b={tiny_v2_dir}", "--dry-run"]) == 0
  assert "3 studies to run" in capsys.readouterr().out and not (tmp_path / "out").exists()
  for bad, match in ((["--model", "a"], "NAME=DIR"), (["--model", f"random={tiny_v2_dir}"], "optimizer's name"),
                     (["--model", f"a={tmp_path / 'missing'}"], "Cannot identify the model"),
                     (["--model", f"a={tiny_v2_dir}", "--model", f"a={tiny_v2_dir}"], "must differ")):
    with pytest.raises(SystemExit) as e:
      benchmark.main(argv + bad + ["--dry-run"])
    assert e.value.code == 2 and match in capsys.readouterr().err
