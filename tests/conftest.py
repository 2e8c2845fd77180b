"""Shared fixtures: one tiny random-init model per test session (compiled once per shape)."""

import pytest

from optformer import search_space as ss
from optformer.inference import Engine
from optformer.model import ModelConfig, create_model


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
  return ModelConfig.tiny()


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
  """A random-init OptFormer with ModelConfig.tiny() (E=32, D_max=4, Q=Y=32, max_trials=16)."""
  return create_model(tiny_config, seed=0)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model) -> Engine:
  """The tiny model's fixed-shape propose/score functions, shared so they compile once."""
  return Engine(tiny_model)


@pytest.fixture(scope="session")
def mixed_space() -> ss.SearchSpace:
  """One parameter of every kind (4 = tiny max_params): log Float, log Int, Discrete, Categorical."""
  return ss.SearchSpace([
      ss.Float("learning_rate", 1e-5, 1e-1, log=True),
      ss.Int("units", 2, 20, log=True),
      ss.Discrete("batch_size", (16, 32, 64, 128)),
      ss.Categorical("optimizer", ("adam", "sgd", 3, True)),
  ])
