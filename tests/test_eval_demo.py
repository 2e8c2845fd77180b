"""Tests of eval/: the demo task, the ask/tell runner, random search and the demo end to end."""

import dataclasses
import json
import math

import numpy as np
import pytest
from flax import nnx

import optformer
from optformer.eval import demo, runner
from optformer.eval.random_search import RandomSearch
from optformer.eval.sklearn_tasks import DEMO_TASK, TASKS, get_task


@pytest.fixture(scope="module")
def task():
  return get_task(DEMO_TASK)


@pytest.fixture(scope="module")
def tiny_v2_checkpoint(tmp_path_factory):
  """A random tiny model (8 parameter slots: the demo task has 8 parameters)."""
  from optformer.model.network import PFNConfig, create_model as create_pfn

  model = create_pfn(PFNConfig.tiny(), seed=0)
  return optformer.checkpoint.save(tmp_path_factory.mktemp("tiny_v2"), model.config, nnx.to_pure_dict(nnx.state(model)))


def test_demo_task_is_deterministic_and_finite(task):
  assert task.goal == "minimize" and len(task.space) <= 8
  kinds = {type(p).__name__ for p in task.space}
  assert {"Float", "Int", "Categorical"} <= kinds
  assert any(getattr(p, "log", False) for p in task.space)
  params = task.space.sample(np.random.default_rng(0))
  value = task(params)
  assert math.isfinite(value) and value > 0  # CV log-loss in nats.
  assert task(params) == value


def test_every_registered_task_builds():
  for name in TASKS:
    t = get_task(name)
    assert t.name == name and t.goal in ("minimize", "maximize")
  with pytest.raises(ValueError, match="Unknown task"):
    get_task("no_such_task")


def test_random_search_is_seeded_and_in_space(task):
  a, b = RandomSearch(task.space, seed=3), RandomSearch(task.space, seed=3)
  for _ in range(5):
    p = a.ask()
    assert p == b.ask()
    assert task.space.validate(p) == p


def test_runner_records_and_best_so_far():
  space = optformer.SearchSpace([optformer.Float("x", -1.0, 1.0)])
  records = runner.run_study(RandomSearch(space, seed=0), lambda p: p["x"] ** 2, 6)
  assert len(records) == 6
  for params, value, seconds in records:
    assert value == pytest.approx(params["x"] ** 2) and seconds >= 0
  best = runner.best_so_far([3.0, np.nan, 1.0, 2.0])
  np.testing.assert_array_equal(best, [3.0, 3.0, 1.0, 1.0])
  np.testing.assert_array_equal(runner.best_so_far([[np.nan, 1.0, 2.0]], "maximize"), [[np.nan, 1.0, 2.0]])
  mean, se = runner.mean_and_stderr([[1.0, 2.0], [3.0, 2.0]])
  np.testing.assert_allclose(mean, [2.0, 2.0])
  np.testing.assert_allclose(se, [1.0, 0.0])


def test_demo_end_to_end_with_tiny_model(tiny_v2_checkpoint, tmp_path, capsys):
  out = tmp_path / "demo"
  model = tiny_v2_checkpoint
  rc = demo.main(["--trials", "4", "--seeds", "2", "--checkpoint", str(model), "--out", str(out), "--no-progress"])
  assert rc == 0
  printed = capsys.readouterr().out
  rows = {line.split()[0]: line for line in printed.splitlines() if line.strip()}
  assert "optimizer" in rows and "best@4" in rows["optimizer"]
  assert "optformer" in rows and "random" in rows
  record = json.loads((out / "demo.json").read_text())
  assert record["config"]["trials"] == 4 and record["config"]["seeds"] == [0, 1]
  assert record["task"]["name"] == DEMO_TASK
  assert record["versions"]["jax"] and record["machine"]["cpu_count"]
  for name in ("optformer", "random"):
    r = record["results"][name]
    assert np.array(r["values"]).shape == (2, 4)
    assert np.array(r["seconds_per_suggestion"]).shape == (2, 4)
    assert set(record["summary"][name]["best_at"]) == {"4"}
  assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_reports_a_missing_checkpoint(tmp_path, capsys):
  rc = demo.main(["--trials", "2", "--seeds", "1", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
  assert rc == 2
  err = capsys.readouterr().err
  assert "cannot load the OptFormer model" in err and "--checkpoint" in err
  assert not (tmp_path / "o").exists()


def test_table_rows_and_report_points():
  assert demo.report_at(40) == [10, 20, 40]
  assert demo.report_at(25) == [10, 20, 25]
  assert demo.report_at(3) == [3]
  summary = {
      "optformer": {"best_at": {"10": [0.1, 0.01], "20": [0.09, 0.005]}, "median_seconds_per_suggestion": 0.2},
      "random": {"best_at": {"10": [0.12, 0.02], "20": [0.11, 0.01]}, "median_seconds_per_suggestion": 1e-4},
  }
  lines = demo.format_table(summary).splitlines()
  assert lines[0].split() == ["optimizer", "best@10", "best@20", "s/suggestion"]
  assert lines[1].split() == ["optformer", "0.1000", "±", "0.0100", "0.0900", "±", "0.0050", "0.2000"]
  assert lines[2].split()[0] == "random"
