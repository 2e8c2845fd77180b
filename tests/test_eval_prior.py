"""Held-out prior tasks, surrogate NLL against the exact GP, and ask() latency."""

import dataclasses

import numpy as np
import pytest
from flax import nnx

from data_gen.prior import PriorConfig
from eval import latency, prior_tasks, surrogate_eval
from eval.random_search import RandomSearch
from optformer import checkpoint
from optformer.model import ModelConfig, create_model
from optformer.tokenizer import TokenizerConfig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  cfg = ModelConfig.tiny()
  cfg = dataclasses.replace(cfg, tokenizer=dataclasses.replace(TokenizerConfig.tiny(), max_params=8), max_trials=32)
  return checkpoint.save(tmp_path_factory.mktemp("m"), cfg, nnx.to_pure_dict(nnx.state(create_model(cfg))))


def test_prior_task_regret_is_normalized_and_monotone():
  task = prior_tasks.PriorTask(PriorConfig(), index=3, noise_seed=0)
  rng = np.random.default_rng(0)
  configs = [task.space.sample(rng) for _ in range(30)]
  f = np.array([task.noiseless(c) for c in configs])
  assert np.all(f <= task.f_max + 1e-6)  # f_max is the best of a much larger search
  regret = task.normalized_regret(f)
  assert np.all(np.diff(regret) <= 0) and np.all((0 <= regret) & (regret <= 1))
  # The noisy objective differs from the noiseless one by the task's noise level.
  noise = np.array([task(c) - task.noiseless(c) for c in configs])
  assert 0 < noise.std() < 5 * np.sqrt(float(task.task.noise_variance)) + 1e-6


def test_prior_tasks_are_held_out_and_deterministic():
  a = prior_tasks.PriorTask(PriorConfig(), index=0)
  b = prior_tasks.PriorTask(PriorConfig(), index=0)
  assert a.space == b.space and a.f_max == b.f_max
  c = RandomSearch(a.space, seed=1).ask()
  assert a.noiseless(c) == b.noiseless(c)


def test_benchmark_and_summary_run_both_optimizers(model_dir):
  result = prior_tasks.benchmark(str(model_dir), num_tasks=1, num_trials=10, num_seeds=1)
  summary = prior_tasks.summarize(result, at=(5, 10))
  assert set(summary) == {"optformer", "random"}
  for row in summary.values():
    assert 0.0 <= row["regret@10"][0] <= row["regret@5"][0] <= 1.0


def test_exact_gp_beats_an_untrained_model(model_dir):
  res = surrogate_eval.evaluate(str(model_dir), num_tasks=4, context_sizes=(10,), num_queries=8)
  row = res["by_context_size"]["10"]
  assert np.isfinite(row["model_nll"]) and np.isfinite(row["gp_nll"])
  assert row["gp_nll"] < row["model_nll"]


def test_latency_reports_each_history_size(model_dir):
  res = latency.measure(str(model_dir), sizes=(4, 12), repeats=2, num_candidates=8)
  assert set(res["by_history_size"]) == {"4", "12"}
  for row in res["by_history_size"].values():
    assert row["optformer_s"] > 0 and row["random_s"] > 0
