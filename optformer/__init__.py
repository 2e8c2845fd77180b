"""optformer: learned black-box optimization in JAX.

Public API (re-exports only; see each module for details).

`import optformer` does not import JAX, flax or orbax: the model's modules
are imported when a model is loaded (`Surrogate(...)`; `Optimizer(...)`
with a checkpoint, the default, at its first call that needs the model), and `CheckpointError` (defined with the checkpoint reader) when it
is first named (docs/cold_start.md).
"""

import importlib
import importlib.util

from optformer import compilation_cache
from optformer.acquisition_search import SearchConfig
from optformer import priors
from optformer.optimizer import Optimizer, Suggestion, Trial
from optformer.search_space import Categorical, Condition, Discrete, Float, Forbidden, Int, SearchSpace
from optformer.surrogate import Surrogate
from optformer import explain  # After Optimizer and Surrogate, which it reads; imports neither matplotlib nor optuna.

__all__ = [
    "Categorical", "CheckpointError", "Condition", "Discrete", "Float", "Forbidden", "Int", "Optimizer",
    "SearchConfig", "SearchSpace", "Suggestion", "Surrogate", "Trial", "compilation_cache", "explain", "priors",
]
__version__ = "0.1.0"


def __getattr__(name: str):
  """`optformer.CheckpointError` and submodules not imported above (`optformer.checkpoint`, `optformer.model.network`, ...),
  imported on first use: the model's modules import JAX, flax and orbax."""
  if name == "CheckpointError":
    from optformer.checkpoint import CheckpointError

    return CheckpointError
  if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))
