"""The registered scikit-learn HPO tasks: spaces, finite deterministic objectives, validation."""

import math
import time

import numpy as np
import pytest
from sklearn.svm import SVC

import optformer
from optformer.eval import sklearn_tasks
from optformer.eval.sklearn_tasks import TASKS, get_task
from optformer.search_space import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL

NUM_SAMPLES = 3  # Random configurations evaluated per task (each ~0.01-0.2 s).


@pytest.fixture(scope="module")
def evaluated():
  """name -> (task, configs, values float [NUM_SAMPLES]); every task evaluated once per config."""
  out = {}
  for name in TASKS:
    task = get_task(name)
    rng = np.random.default_rng(0)
    configs = [task.space.sample(rng) for _ in range(NUM_SAMPLES)]
    out[name] = (task, configs, np.array([task(c) for c in configs]))
  return out


def test_registry_has_enough_tasks_with_valid_spaces():
  assert len(TASKS) >= 8
  datasets, kinds, log_floats = set(), set(), 0
  for name in TASKS:
    task = get_task(name)
    assert task.name == name and task.goal == "minimize"
    assert isinstance(task.space, optformer.SearchSpace) and 1 <= len(task.space) <= 8
    assert task.metric in sklearn_tasks._METRICS and task.folds >= 3
    kinds |= {p.kind for p in task.space}
    log_floats += sum(isinstance(p, optformer.Float) and p.log for p in task.space)
    datasets.add(task.dataset)
  assert {KIND_FLOAT, KIND_ORDINAL, KIND_CATEGORICAL} <= kinds and log_floats > 0
  assert datasets == set(sklearn_tasks._DATASETS)  # Every bundled data set is used.


def test_sampled_configs_give_finite_values(evaluated):
  for name, (_, _, values) in evaluated.items():
    assert np.all(np.isfinite(values)), name
    assert np.all(values >= 0), name  # Every metric is a loss >= 0.


def test_same_params_give_the_same_value(evaluated):
  for name, (task, configs, values) in evaluated.items():
    assert task(configs[0]) == values[0], name


def test_different_params_give_different_values(evaluated):
  varied = [name for name, (_, _, values) in evaluated.items() if len(set(values.tolist())) > 1]
  assert len(varied) >= len(TASKS) - 1, f"constant on {NUM_SAMPLES} configs: {set(TASKS) - set(varied)}"


@pytest.mark.parametrize("name", ["svm_digits", "lasso_diabetes"])
def test_params_outside_the_space_raise(name, evaluated):
  task, configs, _ = evaluated[name]
  bad = dict(configs[0])
  first = task.space.parameters[0]  # A log Float in both tasks.
  bad[first.name] = first.high * 10
  with pytest.raises(ValueError):
    task(bad)
  with pytest.raises(ValueError):
    task({**configs[0], "no_such_parameter": 1})


def test_a_failed_fit_is_nan():
  task = get_task("knn_wine")
  broken = type(task)(task.name, task.space, lambda p: SVC(C=-1.0), task.dataset, task.metric)  # C must be > 0.
  assert math.isnan(broken(task.space.sample(np.random.default_rng(0))))


class _TimedTask:
  """A task whose evaluations take known seconds and return known values (NaN: a failed fit)."""

  def __init__(self, space, seconds, values):
    self.space, self.seconds, self.values, self.seen = space, list(seconds), list(values), []

  def __call__(self, params):
    self.seen.append(params)
    time.sleep(self.seconds[len(self.seen) - 1])
    return self.values[len(self.seen) - 1]


def test_time_task_reports_seconds():
  space = get_task("knn_wine").space
  task = _TimedTask(space, seconds=[0.02, 0.1, 0.02, 0.02], values=[0.5, math.nan, 0.25, 0.75])
  row = sklearn_tasks.time_task(task, num_evals=4, seed=3)
  assert 0.04 <= row["mean_seconds"] < 0.04 + 0.1 and 0.1 <= row["max_seconds"] < 0.1 + 0.1  # sleeps overshoot a little
  assert row["fraction_nan"] == 0.25 and (row["min"], row["median"], row["max"]) == (0.25, 0.5, 0.75)
  rng = np.random.default_rng(3)  # the configurations are the seeded uniform samples
  assert task.seen == [space.sample(rng) for _ in range(4)]
  real = sklearn_tasks.time_task(get_task("knn_wine"), num_evals=2)
  assert real["mean_seconds"] > 0 and real["fraction_nan"] == 0.0 and 0.0 <= real["min"] <= real["max"] <= 1.0

