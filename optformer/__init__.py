"""optformer: learned black-box optimization in JAX.

Public API (re-exports only; see each module for details).
"""

from optformer.search_space import Categorical, Discrete, Float, Int, SearchSpace

__all__ = ["Categorical", "Discrete", "Float", "Int", "SearchSpace"]
__version__ = "0.1.0"
