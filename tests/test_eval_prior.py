"""The held-out prior suite (eval/prior_tasks.py) and ask() latency of every optimizer (eval/latency.py)."""

import dataclasses

import numpy as np
import pytest
from flax import nnx

from data_gen.prior import SPLIT_OFFSETS
from eval import latency, optimizers, prior_tasks, regret
from optformer import checkpoint
from optformer.model import ModelConfig, create_model
from optformer.tokenizer import TokenizerConfig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A random tiny model with 8 parameter slots (prior tasks have up to 8 parameters)."""
  cfg = ModelConfig.tiny()
  cfg = dataclasses.replace(cfg, tokenizer=dataclasses.replace(TokenizerConfig.tiny(), max_params=8), max_trials=32)
  return checkpoint.save(tmp_path_factory.mktemp("m"), cfg, nnx.to_pure_dict(nnx.state(create_model(cfg))))


@pytest.fixture(scope="module")
def tasks():
  return prior_tasks.tasks(4)


def test_prior_tasks_are_held_out_mixed_and_deterministic(tasks):
  assert len({t.name for t in tasks}) == 4
  for t in tasks:
    assert t.synthetic.seed % 2**32 >= SPLIT_OFFSETS["validation"]  # Never a training seed.
    assert 2 <= len(t.space) <= 8 and t.goal == "maximize"
  again = prior_tasks.tasks(4)
  assert [t.name for t in again] == [t.name for t in tasks] and again[0].space == tasks[0].space
  kinds = {type(p).__name__ for t in prior_tasks.tasks(12) for p in t.space}
  assert {"Float", "Int", "Categorical"} <= kinds
  with pytest.raises(ValueError, match="min_dims"):
    prior_tasks.tasks(2, min_dims=9)


def test_noise_is_seeded_per_study_and_regret_uses_the_noiseless_function(tasks):
  task = tasks[0]
  rng = np.random.default_rng(0)
  configs = [task.space.sample(rng) for _ in range(20)]
  a = [task.with_noise_seed(1)(c) for c in configs]
  b = [task.with_noise_seed(1)(c) for c in configs]
  c = [task.with_noise_seed(2)(x) for x in configs]
  f = np.array([task.noiseless(x) for x in configs])
  assert a != c and np.allclose(np.array(a) - f, np.array(b) - f)
  noise = np.array(a) - f
  assert 0 < noise.std() < 5 * np.sqrt(task.synthetic.hyperparameters["noise_variance"]) + 1e-6
  # The optimum estimate beats a random sample, so the normalized regret of noiseless values lies in [0, ~1+].
  rand = task.random_values(256, seed=0)
  assert task.optimum >= rand.max() - 1e-6
  y_star, y_rand = regret.reference(task.goal, rand, task.optimum)
  r = regret.normalized_regret(f, task.goal, y_star, y_rand)
  assert np.all(np.diff(r) <= 0) and np.all(r >= 0)


def test_latency_times_every_optimizer_at_each_history_size(model_dir):
  task = next(t for t in prior_tasks.tasks(16, min_dims=3) if all(p.kind != 3 for p in t.space))
  res = latency.measure(str(model_dir), sizes=(3, 12), repeats=1, task=task)
  assert set(res["by_history_size"]) == {"3", "12"}
  assert res["optimizers"] == list(optimizers.OPTIMIZERS)  # A numeric space: cmaes runs too.
  for row in res["by_history_size"].values():
    for name, r in row.items():
      assert r["median_s"] > 0 and r["first_call_s"] > 0
    assert row["random"]["ratio_to_random"] == pytest.approx(1.0)
    assert row["tpe"]["ratio_to_tpe"] == pytest.approx(1.0)
  with pytest.raises(ValueError, match="Unknown optimizer"):
    latency.measure(str(model_dir), sizes=(3,), repeats=1, optimizers=["no-such"], task=task)
