"""optformer: learned black-box optimization in JAX.

Public API (re-exports only; see each module for details).

`import optformer` does not import JAX, flax or orbax: the model's modules
are imported when a model is loaded (`Optimizer(...)`, `Surrogate(...)`),
and `CheckpointError` (defined with the checkpoint reader) when it is first
named (docs/cold_start.md).
"""

from optformer import compilation_cache
from optformer.acquisition_search import SearchConfig
from optformer.distribution import RiemannDistribution
from optformer import priors
from optformer.optimizer import Optimizer, Suggestion, Trial
from optformer.search_space import Categorical, Discrete, Float, Int, SearchSpace
from optformer.surrogate import Surrogate
from optformer import explain  # After Optimizer and Surrogate, which it reads; imports neither matplotlib nor optuna.

__all__ = [
    "Categorical", "CheckpointError", "Discrete", "Float", "Int", "Optimizer", "RiemannDistribution",
    "SearchConfig", "SearchSpace", "Suggestion", "Surrogate", "Trial", "compilation_cache", "explain", "priors",
]
__version__ = "0.1.0"


def __getattr__(name: str):
  """`optformer.CheckpointError`, imported on first use (optformer.checkpoint imports JAX, flax and orbax)."""
  if name == "CheckpointError":
    from optformer.checkpoint import CheckpointError

    return CheckpointError
  raise AttributeError(f"module 'optformer' has no attribute {name!r}")
