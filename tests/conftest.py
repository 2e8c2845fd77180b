"""Shared fixtures: one tiny random-init model per family and test session (compiled once per shape).

Model v2 (`optformer.pfn.PFNSurrogate`) is the default family; model v1 (`optformer.model.OptFormer`) is
the legacy one. Public-API tests take the `model` fixture, which runs each test on both tiny models
(`family` is "v2", then "v1") while v1 exists; tests of v1-only behaviour (the policy,
`candidates="policy"`, `Surrogate(algorithm=...)` prompts, v1's objective imputation) take `tiny_model`.
"""

import dataclasses
import pathlib

import numpy as np
import pytest

from optformer import pfn
from optformer import search_space as ss
from optformer.inference import Engine
from optformer.model import ModelConfig, create_model

FAMILIES = ("v2", "v1")  # The default family first.


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
  return ModelConfig.tiny()


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
  """A random-init OptFormer (v1) with ModelConfig.tiny() (E=32, D_max=4, Q=Y=32, max_trials=16)."""
  return create_model(tiny_config, seed=0)


@pytest.fixture(scope="session")
def tiny_v2_model() -> pfn.PFNSurrogate:
  """A random-init model v2 with PFNConfig.tiny() (E=32, 8 parameter slots, 32 bars on [-3, 3]) and a context of
  16 trials (tiny v1's max_trials; buckets 8 and 16), so truncation tests stay short on both families."""
  return pfn.create_model(dataclasses.replace(pfn.PFNConfig.tiny(), max_context=16), seed=0)


@pytest.fixture(scope="session")
def tiny_v2_dir(tmp_path_factory, tiny_v2_model) -> pathlib.Path:
  """`tiny_v2_model` saved as a checkpoint directory (what `model=DIR`, the CLI and the benchmarks load)."""
  from flax import nnx

  from optformer import checkpoint

  state = nnx.to_pure_dict(nnx.state(tiny_v2_model))
  return checkpoint.save(tmp_path_factory.mktemp("tiny_v2"), tiny_v2_model.config, state)


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
  """The model family under test: "v2" (the default) or "v1"."""
  return request.param


@pytest.fixture
def model(family, tiny_model, tiny_v2_model):
  """The tiny model of `family`, passable as `model=` to Optimizer and Surrogate."""
  return tiny_v2_model if family == "v2" else tiny_model


def max_params(model) -> int:
  """The most parameters a search space may have for a tiny model of either family."""
  return model.config.num_slot_ids if isinstance(model, pfn.PFNSurrogate) else model.config.tokenizer.max_params


def max_context(model) -> int:
  """The most trials a tiny model of either family reads."""
  return model.config.max_context if isinstance(model, pfn.PFNSurrogate) else model.config.max_trials


def acquisition_of(dist, kind):
  """float [N]: the acquisition `ask` ranks by, recomputed from `Optimizer.predict`'s public distribution.

  v2 (PFNPredictive): log EI / log PI in the model's z units plus log p(feasible) (Gardner et al. 2014), or
  UCB of z; v1 (RiemannDistribution): EI / PI / UCB in objective units (an increasing map of v1's normalized ones).
  """
  if hasattr(dist, "p_feasible"):
    log_feasible = np.log(np.maximum(dist.p_feasible, 1e-300))
    if kind == "ucb":
      return dist.upper_confidence_bound_z(4.0)
    if kind == "pi":
      return np.log(np.maximum(dist.probability_of_improvement(), 1e-300)) + log_feasible
    return dist.log_expected_improvement_z() + log_feasible
  if kind == "ucb":
    return dist.upper_confidence_bound(4.0)
  return dist.probability_of_improvement() if kind == "pi" else dist.expected_improvement()


@pytest.fixture(scope="session")
def tiny_engine(tiny_model) -> Engine:
  """The tiny model's fixed-shape propose/score functions, shared so they compile once."""
  return Engine(tiny_model)


@pytest.fixture(scope="session")
def mixed_space() -> ss.SearchSpace:
  """One parameter of every kind (4 = tiny v1's max_params): log Float, log Int, Discrete, Categorical."""
  return ss.SearchSpace([
      ss.Float("learning_rate", 1e-5, 1e-1, log=True),
      ss.Int("units", 2, 20, log=True),
      ss.Discrete("batch_size", (16, 32, 64, 128)),
      ss.Categorical("optimizer", ("adam", "sgd", 3, True)),
  ])
