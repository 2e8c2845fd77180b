"""optformer: learned black-box optimization in JAX.

Public API (re-exports only; see each module for details).
"""

from optformer import compilation_cache
from optformer.checkpoint import CheckpointError
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
