"""Shared fixtures: one tiny random-init model per test session (compiled once per shape).

`tiny_v2_model` (`optformer.model.network.PFNSurrogate` with `PFNConfig.tiny()`) is the model of the public-API tests;
`model` is the same model under the name those tests take.
"""

import dataclasses
import pathlib

import numpy as np
import pytest

from optformer.model import network
from optformer import search_space as ss


@pytest.fixture(scope="session")
def tiny_v2_model() -> network.PFNSurrogate:
  """A random-init model with PFNConfig.tiny() (E=32, 8 parameter slots, 32 bars on [-3, 3]) and a context of
  16 trials (buckets 8 and 16), so truncation tests stay short."""
  return network.create_model(dataclasses.replace(network.PFNConfig.tiny(), max_context=16), seed=0)


@pytest.fixture(scope="session")
def tiny_v2_dir(tmp_path_factory, tiny_v2_model) -> pathlib.Path:
  """`tiny_v2_model` saved as a checkpoint directory (what `model=DIR`, the CLI and the benchmarks load)."""
  from flax import nnx

  from optformer import checkpoint

  state = nnx.to_pure_dict(nnx.state(tiny_v2_model))
  return checkpoint.save(tmp_path_factory.mktemp("tiny_v2"), tiny_v2_model.config, state)


@pytest.fixture(scope="session")
def model(tiny_v2_model):
  """The tiny model, passable as `model=` to Optimizer and Surrogate."""
  return tiny_v2_model


@pytest.fixture(scope="session")
def tiny_model(tiny_v2_model):
  """Alias of `tiny_v2_model` for tests written when a second model family existed (retired: issue 19)."""
  return tiny_v2_model


def max_params(model) -> int:
  """The most parameters a search space may have for a tiny model."""
  return model.config.num_slot_ids


def max_context(model) -> int:
  """The most trials a tiny model reads."""
  return model.config.max_context


def acquisition_of(dist, kind):
  """float [N]: the acquisition `ask` ranks by, recomputed from `Optimizer.predict`'s public distribution:
  log EI / log PI in the model's z units plus log p(feasible) (Gardner et al. 2014), or UCB of z."""
  log_feasible = np.log(np.maximum(dist.p_feasible, 1e-300))
  if kind == "ucb":
    return dist.upper_confidence_bound_z(4.0)
  if kind == "pi":
    return np.log(np.maximum(dist.probability_of_improvement(), 1e-300)) + log_feasible
  return dist.log_expected_improvement_z() + log_feasible


@pytest.fixture(scope="session")
def mixed_space() -> ss.SearchSpace:
  """One parameter of every kind: log Float, log Int, Discrete, Categorical."""
  return ss.SearchSpace([
      ss.Float("learning_rate", 1e-5, 1e-1, log=True),
      ss.Int("units", 2, 20, log=True),
      ss.Discrete("batch_size", (16, 32, 64, 128)),
      ss.Categorical("optimizer", ("adam", "sgd", 3, True)),
  ])
