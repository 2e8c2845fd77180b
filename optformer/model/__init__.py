"""The model boundary: everything above it (Optimizer, Surrogate, explain, the CLI, integrations, eval) talks to
the network only through these names, and never asks which network it is.

    Optimizer / Surrogate / explain / CLI / integrations / eval
        |  Backend.for_space(model, space) ........ checks the space against `capabilities` (no JAX)
        |  backend.condition(context) -> Posterior  encodes the context once (loads the model on first use)
        |  posterior.predict(units) -> PFNPredictive  (user units, p_feasible)
        |  posterior.acquisition(units, best, kind)    what the acquisition search ranks
        |  posterior.ascend_ei(units, best, movable, steps)  its gradient ascent (SearchConfig.grad_top)
        |  posterior.sample_policy(rng, n)              proposals, when capabilities.policy
    ------------------------------------------------------------------------------ model boundary
    optformer.model.inference (jitted, fixed shapes) -> optformer.model.network (the network) <- optformer.checkpoint

Importing this package imports no JAX, flax or orbax: a checkpoint's config is read and checked without them, and
the model is loaded by the first call that needs it (docs/cold_start.md).
"""

from optformer.model.backend import Backend, Capabilities, check_categories, load_engine, read_config
from optformer.model.posterior import ACQUISITIONS, Posterior

__all__ = ["ACQUISITIONS", "Backend", "Capabilities", "Posterior", "check_categories", "load_engine", "read_config"]
