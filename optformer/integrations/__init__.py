"""Adapters between optformer and other HPO libraries.

Each submodule imports its library on import, so install the extra first:

* `optformer.integrations.optuna` (`pip install optformer[optuna]`):
  search-space conversion to and from Optuna distributions, and
  `OptFormerSampler`, an Optuna sampler backed by `optformer.Optimizer`.
* `optformer.integrations.configspace` (`pip install optformer[configspace]`):
  search-space conversion to and from `ConfigSpace.ConfigurationSpace`.

This package imports neither library itself.
"""
