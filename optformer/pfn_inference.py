"""Model v2 at inference: fixed-shape jitted calls, and predictions in the user's units.

`PFNEngine.predict` takes a study's context (unit-form configurations and
objectives, "larger is better", NaN for infeasible trials) and queries, and
returns a `PFNPredictive`: per query the bar distribution in z units
(optformer.bar), the fitted y map (optformer.ynorm) and p(feasible).

Shapes are fixed so a growing study does not recompile on every call: the
context is padded to the next bucket (8, 16, 32, ... up to the model's
`max_context`) and queries to a multiple of `QUERY_CHUNK`; the context is
encoded once per call and all query chunks are scored against it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optformer import bar
from optformer.inference import StaticGraph, bucket, history_buckets
from optformer.pfn import PFNSurrogate, SurrogateBatch
from optformer.ynorm import YTransform

QUERY_CHUNK = 256
QUADRATURE_POINTS = 512  # Quantile midpoints for moments in user units under a power transform.
# The outer bars reach z of about -6500 and +430 (context scales; from one- and two-point training
# contexts) and keep mass no model drives to zero: 4e-4 at z ~ 240 adds 0.09 to the EI in z units,
# more than a whole promising region's (docs/model_v2.md, "Capped acquisition"). So the acquisitions
# (EI, UCB) read Z clipped to [-Z_LIMIT, Z_LIMIT], and so do moments in user units under a power
# transform (whose inverse turns a little mass at z ~ -6500 into values like 1e168). Densities, the
# CDF and quantiles stay the model's own.
Z_LIMIT = 10.0


class PFNPredictive:
  """N predictive distributions of the objective in user units, in the goal's direction.

  Args:
    probs: float [N, Y] bar probabilities given feasible (rows renormalized).
    p_feasible: float [N] in [0, 1].
    borders: float [Y + 1] bar borders in z units.
    transform: the context's YTransform (user units, larger is better -> z).
    goal: "maximize" or "minimize" (the user's objective is -internal when minimizing).

  All methods describe the objective given the trial is feasible;
  `p_feasible` is separate.
  """

  def __init__(self, probs, p_feasible, borders, transform: YTransform, goal: str = "maximize"):
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    self.z = bar.BarDistribution(probs, borders)
    self.p_feasible = np.asarray(p_feasible, np.float64)
    self.transform, self.goal = transform, goal
    self._sign = 1.0 if goal == "maximize" else -1.0
    self.best: float | None = None  # Default of `best` below (the study's best value, set by Optimizer.predict).

  def _best(self, best) -> float:
    if best is None:
      if self.best is None:
        raise ValueError("best is required (this distribution has no study best).")
      best = self.best
    return self._sign * float(best)

  def __len__(self) -> int:
    return len(self.z)

  def _internal(self, y):
    return self._sign * np.asarray(y, np.float64)

  def cdf(self, y) -> np.ndarray:
    """float [N]: P(Y <= y)."""
    c = self.z.cdf(self.transform.apply(self._internal(y)))
    return c if self._sign > 0 else 1.0 - c

  def log_prob(self, y) -> np.ndarray:
    """float [N]: log density at y in user units (finite everywhere): log p_z(z(y)) + log dz/dy."""
    u = self._internal(y)
    return self.z.log_prob(self.transform.apply(u)) + self.transform.log_derivative(u)

  def pdf(self, y) -> np.ndarray:
    return np.exp(self.log_prob(y))

  def quantile(self, q) -> np.ndarray:
    """float [N]: the q-quantile, q in (0, 1)."""
    q = np.asarray(q, np.float64)
    z = self.z.quantile(q if self._sign > 0 else 1.0 - q)
    return self._sign * self.transform.invert(z)

  @functools.cached_property
  def _samples(self) -> np.ndarray:
    """float [N, K] internal-unit values at K quantile midpoints (the quadrature of moments), computed once.

    Their z is clipped to +-Z_LIMIT before the inverse transform (see there); densities,
    the CDF and quantiles stay exact.
    """
    return self.transform.invert(self._z_samples)

  @functools.cached_property
  def _z_samples(self) -> np.ndarray:
    """float [N, K]: z at K quantile midpoints, clipped to +-Z_LIMIT."""
    k = QUADRATURE_POINTS
    levels = (np.arange(k) + 0.5) / k
    return np.stack([np.clip(self.z.quantile(q), -Z_LIMIT, Z_LIMIT) for q in levels], axis=1)

  @property
  def _affine(self) -> tuple[float, float] | None:
    t = self.transform
    return None if t.power else (t.scale * t.scale2, t.loc + t.loc2 * t.scale)

  @property
  def mean(self) -> np.ndarray:
    """float [N] in user units (exact for an affine map; under the power transform, quantile quadrature
    with z clipped to +-Z_LIMIT)."""
    aff = self._affine
    m = aff[0] * self.z.mean + aff[1] if aff else self._samples.mean(1)
    return self._sign * m

  @property
  def std(self) -> np.ndarray:
    """float [N] >= 0 in user units."""
    aff = self._affine
    return aff[0] * self.z.std if aff else self._samples.std(1)

  def expected_improvement(self, best=None) -> np.ndarray:
    """float [N] >= 0: E[improvement over best] in user units, in the goal's direction (Jones et al. 1998),
    with z capped at Z_LIMIT (improvements beyond count as reaching it; exact for an affine map,
    quantile quadrature under the power transform)."""
    c = self._best(best)
    aff = self._affine
    if aff:
      return aff[0] * self.z.expected_improvement((c - aff[1]) / aff[0], cap=Z_LIMIT)
    return np.maximum(self._samples - c, 0.0).mean(1)

  def log_expected_improvement_z(self, best=None) -> np.ndarray:
    """float [N]: log EI in the model's z units with z capped at Z_LIMIT (exact; the acquisition `ask` ranks by)."""
    return self.z.log_expected_improvement(float(self.transform.apply(self._best(best))), cap=Z_LIMIT)

  def upper_confidence_bound_z(self, beta: float = 4.0) -> np.ndarray:
    """float [N]: mean + sqrt(beta) std of z clipped to +-Z_LIMIT (Srinivas et al. 2010)."""
    mean, std = self.z.clipped_moments(-Z_LIMIT, Z_LIMIT)
    return mean + math.sqrt(beta) * std

  def probability_of_improvement(self, best=None) -> np.ndarray:
    """float [N] in [0, 1]: P(Y better than best)."""
    return self.z.probability_of_improvement(float(self.transform.apply(self._best(best))))

  def upper_confidence_bound(self, beta: float = 4.0) -> np.ndarray:
    """float [N]: mean +/- sqrt(beta) std, optimistic in the goal's direction (Srinivas et al. 2010)."""
    return self.mean + self._sign * math.sqrt(beta) * self.std

  def __repr__(self) -> str:
    return f"PFNPredictive(n={len(self)}, bars={self.z.probs.shape[1]}, goal={self.goal!r})"


class PFNEngine:
  """A model v2's jitted context encoding and query scoring at fixed shapes."""

  def __init__(self, model: PFNSurrogate):
    self.config = model.config
    graphdef, self.params = nnx.split(model)
    self.graph = StaticGraph(graphdef)
    self.buckets = history_buckets(model.config.max_context)
    self.borders = np.asarray(model.config.borders, np.float64)

  def predict(self, x_NxD, y_N, kinds_D, num_values_D, query_MxD, active_NxD=None, active_MxD=None,
              goal: str = "maximize", min_power_points: int = 4) -> PFNPredictive:
    """Predictive distributions at M queries given a context of n trials (`context(...).score(...)`).

    Args:
      x_NxD: float [n, D] unit-form context configurations (category index as a float).
      y_N: float [n] context objectives, larger is better; NaN = infeasible.
      kinds_D, num_values_D: int [D] per parameter (search_space.KIND_*, levels/categories).
      query_MxD: float [M, D] unit-form queries.
      active_*: bool, False where a conditional parameter is inactive (default all True).
      goal: the direction the returned distribution reports in (its values are -internal when minimizing).

    Raises:
      ValueError: more parameters than the model's slot ids, a context longer than
        max_context, an infinite objective, or mismatched shapes.
    """
    ctx = self.context(x_NxD, y_N, kinds_D, num_values_D, active_NxD, min_power_points)
    return ctx.score(query_MxD, active_MxD, goal)

  def context(self, x_NxD, y_N, kinds_D, num_values_D, active_NxD=None, min_power_points: int = 4) -> "PFNContext":
    """Encodes a context once (arguments as in `predict`); score any number of query sets against it."""
    x = np.asarray(x_NxD, np.float32).reshape(len(y_N), -1)
    y = np.asarray(y_N, np.float64)
    n, d = x.shape
    if d > self.config.num_slot_ids:
      raise ValueError(f"The search space has {d} parameters; this model supports at most {self.config.num_slot_ids}.")
    if n > self.config.max_context:
      raise ValueError(f"A context of {n} trials exceeds the model's {self.config.max_context}.")
    t = YTransform.fit(y, min_power_points=min_power_points)
    z = np.where(np.isnan(y), 0.0, t.apply(np.nan_to_num(y)))
    c = bucket(max(n, 1), self.buckets)
    kinds = np.asarray(kinds_D, np.int32)[None]
    nv = np.asarray(num_values_D, np.int32)[None]
    ids = np.arange(d, dtype=np.int32)[None]
    act = np.ones((n, d), bool) if active_NxD is None else np.asarray(active_NxD, bool)
    batch = SurrogateBatch(
        x=_pad(x, c)[None], active=_pad(act, c)[None], kinds=kinds, num_values=nv, slot_ids=ids,
        z=_pad(z.astype(np.float32), c)[None], feasible=_pad(~np.isnan(y), c)[None],
        context=_pad(np.ones(n, bool), c)[None], valid=_pad(np.ones(n, bool), c)[None],
    )
    return PFNContext(self, _encode(self.graph, self.params, batch), kinds, nv, ids, t)


class PFNContext:
  """An encoded context (see `PFNEngine.context`): the model's EncodedContext and the fitted y map."""

  def __init__(self, engine: PFNEngine, encoded, kinds, num_values, slot_ids, transform: YTransform):
    self.engine, self.encoded = engine, encoded
    self.kinds, self.num_values, self.slot_ids, self.transform = kinds, num_values, slot_ids, transform

  def score(self, query_MxD, active_MxD=None, goal: str = "maximize") -> PFNPredictive:
    """PFNPredictive of M unit-form queries float [M, D] against this context."""
    q = np.asarray(query_MxD, np.float32)
    d = self.kinds.shape[1]
    if q.ndim != 2 or q.shape[1] != d:
      raise ValueError(f"Queries must be [M, {d}], got {q.shape}.")
    m = len(q)
    qa = np.ones((m, d), bool) if active_MxD is None else np.asarray(active_MxD, bool)
    probs = []
    for s in range(0, max(m, 1), QUERY_CHUNK):
      qx, qact = _pad(q[s:s + QUERY_CHUNK], QUERY_CHUNK), _pad(qa[s:s + QUERY_CHUNK], QUERY_CHUNK)
      qb = SurrogateBatch(x=qx[None], active=qact[None], kinds=self.kinds, num_values=self.num_values,
                          slot_ids=self.slot_ids, z=np.zeros((1, QUERY_CHUNK), np.float32),
                          feasible=np.ones((1, QUERY_CHUNK), bool), context=np.zeros((1, QUERY_CHUNK), bool),
                          valid=np.ones((1, QUERY_CHUNK), bool))
      probs.append(np.asarray(_score(self.engine.graph, self.engine.params, self.encoded, qb))[0])
    p = np.concatenate(probs)[:m].astype(np.float64)
    return PFNPredictive(p[:, :-1], 1.0 - p[:, -1], self.engine.borders, self.transform, goal)


def _pad(a, length: int):
  out = np.zeros((length,) + a.shape[1:], a.dtype)
  out[: len(a)] = a
  return out


@functools.partial(jax.jit, static_argnums=0)
def _encode(graph, params, ctx):
  return graph.merge(params).encode_context(ctx)


@functools.partial(jax.jit, static_argnums=0)
def _score(graph, params, encoded, queries):
  return jax.nn.softmax(graph.merge(params).score_queries(encoded, queries), axis=-1)
