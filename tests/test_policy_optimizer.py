"""The policy on the public surface: Optimizer.sample_policy, candidates="policy", policy samples in the pool.

A random-init tiny model with a policy head: what is tested is validity by construction (every sample a valid
configuration of a conditional mixed space, inactive children absent), determinism, and the errors; how good
the samples are is measured by eval/policy_quality.py on the shipped model.
"""

import dataclasses

import numpy as np
import pytest

from optformer import Optimizer
from optformer.model import network
from optformer import search_space as ss
from optformer.acquisition_search import SearchConfig

from test_acquisition_search import _assert_valid_rows, _model_choice_space


@pytest.fixture(scope="module")
def policy_model():
  cfg = dataclasses.replace(network.PFNConfig.tiny(), num_slot_ids=16, policy_tokens=16, max_context=32)
  return network.create_model(cfg, seed=0)


@pytest.fixture(scope="module")
def space():
  return _model_choice_space()


def _objective(cfg):
  return {"svm": 1.0, "rf": 2.0, "mlp": 3.0}[cfg["model"]] + cfg.get("C", 0.5) * 1e-3


def test_policy_samples_of_a_conditional_mixed_space_are_valid(policy_model, space):
  opt = Optimizer(space, model=policy_model, seed=0)
  assert opt.backend.capabilities.policy
  for told in range(3):
    samples = opt.sample_policy(64)
    assert len(samples) == 64
    rows = np.array([space.to_unit(c) for c in samples])
    configs, active = _assert_valid_rows(space, rows)
    assert configs == samples  # Inactive children are absent, active ones present.
    assert {c["model"] for c in samples} == {"svm", "rf", "mlp"}  # A random-init policy reaches every branch.
    assert not active.all() and opt.pending == []  # Not registered as pending.
    opt.tell(samples[0], _objective(samples[0]))


def test_policy_samples_are_reproducible_by_seed_and_differ_across_seeds(policy_model, space):
  draw = lambda seed: Optimizer(space, model=policy_model, seed=seed).sample_policy(8)
  assert draw(1) == draw(1) and draw(1) != draw(2)


def test_policy_samples_of_a_wide_int_are_not_confined_to_the_token_bins(policy_model):
  """Int(0, 10**6) has more levels than the 16 tokens: a token is a bin, the value uniform inside it, then snapped."""
  space = ss.SearchSpace([ss.Int("n", 0, 10**6), ss.Float("x", 0.0, 1.0)])
  values = [c["n"] for c in Optimizer(space, model=policy_model, seed=0).sample_policy(64)]
  assert len(set(values)) > 48 and all(0 <= v <= 10**6 for v in values)


def test_the_policy_mode_and_the_pool_ask_valid_configurations(policy_model, space):
  for kwargs in ({"candidates": "policy", "num_candidates": 16},
                 {"search": SearchConfig(num_random=16, num_local=8, refine_moves=8, num_policy=16)}):
    opt = Optimizer(space, model=policy_model, seed=0, **kwargs)
    for _ in range(4):
      s = opt.ask()
      assert space.validate(dict(s)) == dict(s)
      opt.tell(s, _objective(s))


def test_sample_policy_refuses_bad_n_and_a_model_without_a_policy(policy_model, tiny_v2_model, space):
  opt = Optimizer(space, model=policy_model, seed=0)
  for bad in (0, -1, 2.0, True, "3"):
    with pytest.raises(ValueError, match="n must be an int >= 1"):
      opt.sample_policy(bad)
  plain = Optimizer(ss.SearchSpace([ss.Float("x", 0, 1)]), model=tiny_v2_model)
  with pytest.raises(ValueError, match="needs a model with a policy head"):
    plain.sample_policy(4)
  assert len(opt.sample_policy(2)) == 2  # A refused call breaks nothing.


def test_the_shipped_model_proposes_valid_configurations_of_a_conditional_space(space):
  """The default model (model=None) has the policy head: what users get from Optimizer(space).sample_policy."""
  opt = Optimizer(space, seed=0)
  assert opt.backend.capabilities.policy
  samples = opt.sample_policy(32)
  _assert_valid_rows(space, np.array([space.to_unit(c) for c in samples]))
  opt.tell(samples[0], _objective(samples[0]))
  assert all(space.validate(c) == c for c in opt.sample_policy(8))
