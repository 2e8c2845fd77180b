"""The held-out prior suite (eval/prior_tasks.py) and ask() latency of every optimizer (eval/latency.py)."""

import dataclasses
import time

import numpy as np
import pytest
from flax import nnx

from optformer.data_gen.prior import SPLIT_OFFSETS
from optformer.eval import latency, optimizers, prior_tasks, regret
from optformer import checkpoint
from optformer.model import network


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A random tiny model with 8 parameter slots (prior tasks have up to 8 parameters)."""
  cfg = dataclasses.replace(network.PFNConfig.tiny(), max_context=32)
  return checkpoint.save(tmp_path_factory.mktemp("m"), cfg, nnx.to_pure_dict(nnx.state(network.create_model(cfg))))


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


class _Spy:
  """An optimizer that records, for each ask, how many trials it had been told and how long the ask took."""

  def __init__(self, inner, log):
    self.inner, self.told, self.log = inner, 0, log

  def tell(self, params, value):
    self.told += 1
    self.inner.tell(params, value)

  def ask(self):
    t0 = time.perf_counter()
    out = self.inner.ask()
    self.log.append((self.told, time.perf_counter() - t0))
    return out

  def __getattr__(self, name):  # remove_pending where the inner optimizer has it
    return getattr(self.inner, name)


def test_latency_times_every_optimizer_at_each_history_size(model_dir, monkeypatch):
  task = next(t for t in prior_tasks.tasks(16, min_dims=3) if all(p.kind != 3 for p in t.space))
  made = []  # (name, [(trials told at the ask, seconds)]) per optimizer built, in order
  make = optimizers.make

  def spying_make(name, space, goal, seed, model=None):
    made.append((name, []))
    return _Spy(make(name, space, goal, seed, model=model), made[-1][1])

  monkeypatch.setattr(latency.opt_lib, "make", spying_make)
  res = latency.measure(str(model_dir), sizes=(3, 12), repeats=2, task=task)
  assert set(res["by_history_size"]) == {"3", "12"}
  assert res["optimizers"] == list(optimizers.OPTIMIZERS)  # A numeric space: cmaes runs too.
  # One fresh optimizer per (size, name), told exactly n trials before each of its 1 + repeats asks.
  expected = [(n, name) for n in (3, 12) for name in optimizers.OPTIMIZERS]
  assert [name for name, _ in made] == [name for _, name in expected]
  assert [[told for told, _ in log] for _, log in made] == [[n] * 3 for n, _ in expected]
  for (n, name), (_, log) in zip(expected, made):
    r = res["by_history_size"][str(n)][name]
    first, rest = log[0][1], [s for _, s in log[1:]]
    # The reported seconds are those of the asks themselves (plus the timer's own overhead).
    assert first <= r["first_call_s"] <= first + 0.25, (name, r, log)
    assert np.median(rest) <= r["median_s"] <= np.median(rest) + 0.25, (name, r, log)
  for row in res["by_history_size"].values():
    for name, r in row.items():
      assert r["ratio_to_random"] == pytest.approx(r["median_s"] / row["random"]["median_s"])
      assert r["ratio_to_tpe"] == pytest.approx(r["median_s"] / row["tpe"]["median_s"])
    # The model's forward passes cost more than a uniform draw: the ratio measures something.
    assert row["optformer"]["ratio_to_random"] > 5
  with pytest.raises(ValueError, match="Unknown optimizer"):
    latency.measure(str(model_dir), sizes=(3,), repeats=1, optimizers=["no-such"], task=task)
