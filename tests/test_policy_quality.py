"""eval/policy_quality.py: the scale-free comparison of policy samples with uniform samples."""

import numpy as np
import pytest

from optformer.eval import policy_quality as pq


@pytest.mark.parametrize("policy, uniform, goal, expected", [
    ([1.0, 2.0], [0.0, 0.5], "maximize", 1.0),  # Every policy value is better.
    ([1.0, 2.0], [0.0, 0.5], "minimize", 0.0),
    ([1.0], [1.0], "maximize", 0.5),  # A tie counts half.
    ([0.0, 2.0], [1.0], "maximize", 0.5),
    ([3.0, np.nan], [1.0, 2.0, 4.0], "minimize", 1 / 3),  # NaN dropped: 3 beats only 4.
])
def test_beats_probability_table(policy, uniform, goal, expected):
  assert pq.beats_probability(policy, uniform, goal) == pytest.approx(expected)


def test_beats_probability_rejects_bad_input():
  with pytest.raises(ValueError, match="goal must be"):
    pq.beats_probability([1.0], [2.0], "max")
  with pytest.raises(ValueError, match="0 policy"):
    pq.beats_probability([np.nan], [2.0], "maximize")


def test_summarize_orients_wins_by_goal():
  rows = [{"goal": "minimize", "policy_mean": 1.0, "uniform_mean": 2.0, "p_policy_beats_uniform": 0.8},
          {"goal": "maximize", "policy_mean": 1.0, "uniform_mean": 2.0, "p_policy_beats_uniform": 0.4}]
  s = pq.summarize(rows)
  assert s["tasks"] == 2 and s["policy_mean_better_share"] == 0.5
  assert s["p_policy_beats_uniform"] == pytest.approx(0.6) and s["standard_error"] == pytest.approx(0.2)


def test_run_task_scores_policy_and_uniform_samples_of_a_bbob_task():
  import dataclasses

  from optformer.model import network
  from optformer.eval import bbob

  model = network.create_model(dataclasses.replace(network.PFNConfig.tiny(), policy_tokens=16, max_context=32), seed=0)
  task = bbob.tasks(functions=(1,), dimensions=(2,))[0]
  row = pq.run_task(task, context=5, samples=16, seed=0, model=model)
  assert row["dims"] == 2 and row["goal"] == "minimize"
  assert np.isfinite(row["policy_mean"]) and np.isfinite(row["uniform_mean"])
  assert 0.0 <= row["p_policy_beats_uniform"] <= 1.0
