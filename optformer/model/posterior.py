"""Posterior: a model conditioned on one study's context, scoring any number of query sets against it.

  * `predict(units, active=None, goal)`: the predictive distribution in the user's objective units
    (`inference.PFNPredictive`: mean, std, quantiles, cdf, EI, PI, UCB, and p_feasible);
  * `acquisition(units, best, kind, active=None)`: what the acquisition search ranks (log EI or log PI in the model's z
    units plus log p(feasible | x), Gardner et al. 2014; or UCB in z units);
  * `ascend_ei(units, best, movable, steps, active=None)`: gradient ascent of the "ei" acquisition through the
    network (optformer/model/ascent.py), for the acquisition search's refinement;
  * `mean(units, active=None)`: the predicted mean in the model's direction (the kriging believer's fantasies);
  * `sample_policy(rng, n)`: configurations proposed by the model's policy, for a backend with the `policy`
    capability; NotImplementedError otherwise.

Units: `units` are float [M, D] unit-form configurations (`SearchSpace.to_units`; a category's index as a
float); the context's objectives are "larger is better" (the caller negates a minimized objective).
Conditional spaces: `active` (bool [M, D], `SearchSpace.unit_active_mask(units)`) marks the parameters a
condition switches off, for the context (`Backend.condition(context, active)`) as for the queries; None reads
every slot as active, which is right only without conditions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from optformer.context import Context

if TYPE_CHECKING:
  from optformer.model.backend import Backend
  from optformer.model.inference import PFNContext, PFNPredictive

ACQUISITIONS = ("ei", "pi", "ucb")


class Posterior:
  """A Backend conditioned on a context (see the module docstring).

  Args:
    backend: the Backend whose model reads the context.
    context: the rows (float [n, D] units, float [n] y larger-is-better, NaN infeasible).
    active: bool [n, D], False where a context row's conditional parameter is inactive; None: all active.

  The context is encoded once, here when it has a feasible row (without one the objective has no scale, and
  only `sample_policy` may be called).
  """

  def __init__(self, backend: Backend, context: Context, active=None):
    self.backend, self.context, self.active = backend, context, active
    self.best = context.best  # Largest feasible y of the context (None: none, so no scale yet).
    self._encoded: PFNContext | None = None
    if self.best is not None:
      self._encode()

  def _encode(self) -> PFNContext:
    if self._encoded is None:
      b = self.backend
      self._encoded = b.engine.context(self.context.units, self.context.y, b.kinds, b.num_values,
                                       active_NxD=self.active)
    return self._encoded

  def predict(self, units, active=None, goal: str = "maximize") -> PFNPredictive:
    """The predictive distribution at float [M, D] unit rows (`active`: bool [M, D], False for an inactive
    conditional parameter; None: all active), in objective units, in the goal's direction.

    Raises:
      ValueError: the context has no feasible row (the objective's scale is unknown), or units not [M, D].
    """
    if self.best is None:
      raise ValueError("predict needs at least one feasible trial to set the objective's scale.")
    d = len(self.backend.kinds)
    return self._encode().score(np.asarray(units, np.float64).reshape(-1, d), active, goal=goal)

  def mean(self, units, active=None) -> np.ndarray:
    """float [M]: the predicted mean in the context's units (larger is better); `active` as for `predict`."""
    return self.predict(units, active).mean

  def acquisition(self, units, best: float, kind: str = "ei", ucb_beta: float = 4.0, active=None) -> np.ndarray:
    """float [M]: the score the acquisition search maximizes at each unit row; `best` in the context's units;
    `active` as for `predict`.

    "ei": log E[max(Z - z(best), 0)] + log p(feasible) (constrained EI, Gardner et al., ICML 2014);
    "pi": log P(Y > best) + log p(feasible); "ucb": mean + sqrt(ucb_beta) std of the model's z.
    """
    if kind not in ACQUISITIONS:
      raise ValueError(f"kind must be one of {list(ACQUISITIONS)}, got {kind!r}.")
    pred = self.predict(units, active)
    if kind == "ucb":
      return pred.upper_confidence_bound_z(ucb_beta)
    log_feasible = np.log(np.maximum(pred.p_feasible, 1e-300))
    if kind == "pi":
      return np.log(np.maximum(pred.probability_of_improvement(best), 1e-300)) + log_feasible
    return pred.log_expected_improvement_z(best) + log_feasible

  def ascend_ei(self, units, best: float, movable, steps: int, active=None,
                radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gradient ascent of "ei" (`acquisition`'s log EI + log p(feasible)) through the network from K unit rows
    float [K, D], moving only the coordinates where `movable` (bool [K, D]) is True, within [0, 1] and within
    `radius` (in (0, 1]) of the start; `active`
    (held fixed) as for `predict`. Returns (float [K, D] the best point of each start's trajectory, unsnapped;
    float [K] its score). optformer/model/ascent.py.

    Raises:
      ValueError: the context has no feasible row, mismatched shapes, steps < 0 or radius outside (0, 1].
    """
    if self.best is None:
      raise ValueError("ascend_ei needs at least one feasible trial to set the objective's scale.")
    from optformer.model import ascent

    return ascent.ascend_log_ei(self._encode(), units, active, movable, best, steps, radius)

  def sample_policy(self, rng: np.random.Generator, n: int, temperature: float = 1.0) -> np.ndarray:
    """float64 [n, D] unit-form configurations proposed by the model's policy given the context (valid by
    construction: inside the space, inactive children absent; optformer/model/policy.py), drawn with `rng`.
    temperature > 0 divides the policy's logits. The context may be empty or hold no feasible row.

    Raises:
      NotImplementedError: the backend lacks the `policy` capability (`Capabilities.policy` is False).
      ValueError: n < 1 or temperature <= 0.
    """
    if not self.backend.capabilities.policy:
      raise NotImplementedError("sample_policy needs a model with the 'policy' capability (a policy head); this "
                                "model has none (Backend.capabilities.policy is False).")
    import jax

    key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
    units, active = self._encode().sample_policy(key, n, temperature, *self.backend.policy_conditions())
    space = self.backend.space
    # Snapped, so a sample reads exactly as the configuration it decodes to (fresh keys, inactive slots at 0.5).
    return space.snap(units) if space is not None else np.where(active, units, 0.0)
