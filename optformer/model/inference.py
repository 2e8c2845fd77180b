"""The model at inference: fixed-shape jitted calls, and predictions in the user's units.

`PFNEngine.predict` takes a study's context (unit-form configurations and
objectives, "larger is better", NaN for infeasible trials) and queries, and
returns a `PFNPredictive`: per query the bar distribution in z units
(optformer.model.bar), the fitted y map (optformer.model.ynorm) and p(feasible). In user
units it is one distribution, the model's z censored to a support bounded
by the context (`support_z`), whose moments, EI, quantiles and CDF are all
computed from it (see `PFNPredictive`).

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

from optformer.model import bar
from optformer.model.network import PFNSurrogate, SurrogateBatch
from optformer.model.ynorm import YTransform

class StaticGraph:
  """A model's nnx graphdef as a static jit argument whose hash is computed once.

  jax hashes static arguments on every call; a graphdef's hash walks the whole module tree (milliseconds for
  the shipped model, several times per ask). Equal graphdefs compare equal, so engines of one architecture
  share compilations.
  """

  def __init__(self, graphdef):
    self.graphdef, self._hash = graphdef, hash(graphdef)

  def __hash__(self) -> int:
    return self._hash

  def __eq__(self, other) -> bool:
    return isinstance(other, StaticGraph) and (other.graphdef is self.graphdef or other.graphdef == self.graphdef)

  def merge(self, params):
    return nnx.merge(self.graphdef, params)


def history_buckets(max_context: int) -> tuple[int, ...]:
  """Padded context lengths: powers of two from 8, then max_context."""
  out, b = [], 8
  while b < max_context:
    out.append(b)
    b *= 2
  return tuple(out) + (max_context,)


def bucket(n: int, buckets) -> int:
  """The smallest bucket >= n; ValueError past the largest."""
  for b in buckets:
    if n <= b:
      return b
  raise ValueError(f"A context of {n} trials exceeds the largest bucket {buckets[-1]}.")


POLICY_CHUNK = 1024  # Most policy samples decoded in one call.
QUERY_CHUNK = 256  # Queries per scoring call. 5,000 queries, context 256, 2 CPU cores: 256, 512 and 1024 all take
# 0.36-0.40 s for Optimizer.predict (forward pass 0.26 s at 256); smaller chunks pad less for small query sets.
# The outer bars reach z of about -6500 and +430 (context scales; from one- and two-point training
# contexts) and keep mass no model drives to zero: 4e-4 at z ~ 240 adds 0.09 to the EI in z units,
# more than a whole promising region's (docs/model_v2.md, "Capped acquisition"); and the power
# transform's inverse turns a little mass at z ~ -6500, or even at z = -10, into values like 1e168.
# So every prediction reads the model's Z censored to a support bounded in both units (`support_z`).
Z_LIMIT = 10.0  # Half-width of the support in z units (context scales).
SUPPORT_RANGES = 4.0  # ... and beyond the context's range by at most this many ranges in user units.


def support_z(transform: YTransform) -> tuple[float, float]:
  """(lo, hi) in z units: the support of the predictive distribution given the context `transform` was fitted on.

  With r = high - low the context's feasible range (its scale when r = 0: a tie or a single trial),
  lo = max(T(low - SUPPORT_RANGES r), min(-Z_LIMIT, T(low) - 1)) and
  hi = min(T(high + SUPPORT_RANGES r), max(Z_LIMIT, T(high) + 1)), T the y map:
  at most Z_LIMIT context scales from the center (the acquisitions' cap), widened to one z unit past the
  context's own extremes (so every observed value and an improvement on the best stay possible), and in
  user units never further than SUPPORT_RANGES ranges outside the context's range (the power transform's
  inverse at z = +-Z_LIMIT can lie far beyond) nor outside float64's. Without a known range (no feasible
  trial): +-Z_LIMIT.
  lo < T(low) <= T(high) < hi.
  """
  low, high = transform.low, transform.high
  if not (math.isfinite(low) and math.isfinite(high)):
    return -Z_LIMIT, Z_LIMIT
  big = np.finfo(np.float64).max
  with np.errstate(over="ignore", invalid="ignore"):
    r = high - low if high > low else transform.scale
    far = np.clip([low - SUPPORT_RANGES * r, high + SUPPORT_RANGES * r], -big, big)  # Also within float64's range.
    z_low, z_high, z_far_low, z_far_high = transform.apply(np.array([low, high, *far]))
  lo = max(z_far_low, min(-Z_LIMIT, z_low - 1.0))
  hi = min(z_far_high, max(Z_LIMIT, z_high + 1.0))
  return float(lo), float(hi)


class PFNPredictive:
  """N predictive distributions of the objective in user units, in the goal's direction.

  The distribution: Y = sign T^-1(clip(Z, lo, hi)), with Z the model's bar distribution in z units
  (optformer.model.bar), T the context's y map (optformer.model.ynorm), [lo, hi] = `support_z(transform)` and sign
  -1 when minimizing. Censoring, not truncation: the model's mass beyond the support sits at its ends,
  so quantiles inside the support are the model's own, and the support's ends are bounded by the
  context (no reachable input gives a mean further than SUPPORT_RANGES ranges outside the context's
  range). Everything in user units reads this one distribution: `mean`, `std`, `quantile`, `cdf`,
  `expected_improvement`, `probability_of_improvement`, `upper_confidence_bound` (and so the kriging
  believer's fantasies and `Surrogate.sample_y`); so do the ranking scores in z units
  (`log_expected_improvement_z`, `upper_confidence_bound_z`), which are the same censored Z before T^-1.
  Only `log_prob`/`pdf` give the model's own density: it equals the censored distribution's inside
  the support (which has atoms at its ends), and it is what NLL evaluation scores
  (eval/surrogate_eval.py).

  Moments and EI are per-bar expectations of T^-1 computed once per distribution (every row shares
  the bars; `BarDistribution.expectations`), then one [N, Y] @ [Y] product: O(N Y).

  Args:
    probs: float [N, Y] bar probabilities given feasible (rows renormalized).
    p_feasible: float [N] in [0, 1].
    borders: float [Y + 1] bar borders in z units.
    transform: the context's YTransform (user units, larger is better -> z), with its range.
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
    self.support = support_z(transform)  # (lo, hi) in z units.
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

  @functools.cached_property
  def _support_internal(self) -> tuple[float, float]:
    """The support's ends in internal units (larger is better): exactly the values `quantile` gives there."""
    lo, hi = self.transform.invert(np.array(self.support))
    return float(lo), float(hi)

  def _censored_cdf(self, x, strict: bool = False) -> np.ndarray:
    """float [N]: P(X <= x) (P(X < x) when strict), X = T^-1(clip(Z)) in internal units, x scalar or float [N]."""
    lo, hi = self._support_internal
    x = np.broadcast_to(np.asarray(x, np.float64), (len(self),))
    with np.errstate(over="ignore", invalid="ignore"):
      z = self.transform.apply(np.clip(x, lo, hi))
    inner = self.z.cdf(np.clip(z, *self.support))
    below, above = (x <= lo, x > hi) if strict else (x < lo, x >= hi)
    return np.where(below, 0.0, np.where(above, 1.0, inner))

  def cdf(self, y) -> np.ndarray:
    """float [N] in [0, 1]: P(Y <= y) for y scalar or float [N] in user units (1 at and past the upper end of
    the support, 0 below the lower one)."""
    x = self._internal(y)
    return self._censored_cdf(x) if self._sign > 0 else 1.0 - self._censored_cdf(x, strict=True)

  def log_prob(self, y) -> np.ndarray:
    """float [N]: log density at y in user units (finite everywhere): log p_z(z(y)) + log dz/dy, the model's
    own density (uncensored; see the class docstring)."""
    u = self._internal(y)
    return self.z.log_prob(self.transform.apply(u)) + self.transform.log_derivative(u)

  def pdf(self, y) -> np.ndarray:
    """float [N] > 0: exp(log_prob(y))."""
    return np.exp(self.log_prob(y))

  def quantile(self, q) -> np.ndarray:
    """float [N]: the q-quantile in user units, q in (0, 1) scalar or float [N] (the model's quantile, clipped
    to the support).

    Raises:
      ValueError: q outside (0, 1).
    """
    q = np.asarray(q, np.float64)
    z = np.clip(self.z.quantile(q if self._sign > 0 else 1.0 - q), *self.support)
    return self._sign * self.transform.invert(z)

  # -- Moments in user units --------------------------------------------------

  @functools.cached_property
  def _unit(self) -> float:
    """c > 0: the largest |u| on the support (u = (y - loc) / scale); moments are taken of u / c, in [-1, 1]."""
    return float(np.max(np.abs(self.transform.invert_standardized(np.array(self.support)))))

  def _expect(self, f, knot=None) -> np.ndarray:
    """float [N]: E[f(clip(Z))] of each row."""
    return self.z.probs @ self.z.expectations(f, *self.support, knot=knot)

  @functools.cached_property
  def _moments(self) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) float [N] in internal units (larger is better)."""
    t, c = self.transform, self._unit
    m1 = self._expect(lambda z: t.invert_standardized(z) / c)
    m2 = self._expect(lambda z: (t.invert_standardized(z) / c) ** 2)
    return t.loc + t.scale * (c * m1), t.scale * (c * np.sqrt(np.maximum(m2 - m1 * m1, 0.0)))

  @property
  def mean(self) -> np.ndarray:
    """float [N] in user units: E[Y] (per-bar Gauss-Legendre of T^-1, see `BarDistribution.expectations`)."""
    return self._sign * self._moments[0]

  @property
  def std(self) -> np.ndarray:
    """float [N] >= 0 in user units: sqrt(Var[Y]) (0 only if a row's whole mass lies beyond one end of the support)."""
    return self._moments[1]

  def expected_improvement(self, best=None) -> np.ndarray:
    """float [N] >= 0 in user units: E[max(Y - best, 0)] when maximizing, E[max(best - Y, 0)] when minimizing
    (Jones et al. 1998), best a float in user units (default: the study's best)."""
    c, t = self._best(best), self.transform
    with np.errstate(over="ignore", invalid="ignore"):
      knot = float(t.apply(c))
    cu = (c - t.loc) / t.scale / self._unit  # The best in units of u / c.
    f = lambda z: np.maximum(t.invert_standardized(z) / self._unit - cu, 0.0)
    return t.scale * (self._unit * self._expect(f, knot if math.isfinite(knot) else None))

  def probability_of_improvement(self, best=None) -> np.ndarray:
    """float [N] in [0, 1]: P(Y better than best), best in user units (default: the study's best)."""
    return 1.0 - self._censored_cdf(self._best(best))

  def upper_confidence_bound(self, beta: float = 4.0) -> np.ndarray:
    """float [N] in user units: mean +/- sqrt(beta) std, optimistic in the goal's direction (Srinivas et al. 2010)."""
    return self.mean + self._sign * math.sqrt(beta) * self.std

  # -- Ranking scores in z units (what `ask` maximizes) ----------------------

  def log_expected_improvement_z(self, best=None) -> np.ndarray:
    """float [N]: log E[max(clip(Z) - z(best), 0)] in the model's z units (closed form; floored at log(1e-300))."""
    lo, hi = self.support
    with np.errstate(over="ignore", invalid="ignore"):
      c = float(self.transform.apply(self._best(best)))
    # clip(Z) - c = (clip(Z) - max(c, lo)) + max(lo - c, 0); the first part is min(Z, hi)'s improvement on max(c, lo).
    ei = self.z.expected_improvement(min(max(c, lo), hi), cap=hi) + max(lo - c, 0.0)
    return np.log(np.maximum(ei, 1e-300))

  def upper_confidence_bound_z(self, beta: float = 4.0) -> np.ndarray:
    """float [N]: mean + sqrt(beta) std of clip(Z) in z units (Srinivas et al. 2010)."""
    mean, std = self.z.clipped_moments(*self.support)
    return mean + math.sqrt(beta) * std

  def __repr__(self) -> str:
    return f"PFNPredictive(n={len(self)}, bars={self.z.probs.shape[1]}, goal={self.goal!r})"


class PFNEngine:
  """The model's jitted context encoding and query scoring at fixed shapes."""

  def __init__(self, model: PFNSurrogate):
    self.config = model.config
    graphdef, self.params = nnx.split(model)
    self.graph = StaticGraph(graphdef)
    self.buckets = history_buckets(model.config.max_context)
    self.borders = np.asarray(model.config.borders, np.float64)

  @functools.cached_property
  def model(self):
    """The network (merged from the engine's graph and parameters once; the policy's decoder reads it)."""
    return self.graph.merge(self.params)

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
    x = np.asarray(x_NxD, np.float32).reshape(len(y_N), len(kinds_D))
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

  def sample_policy(self, key, n: int, temperature: float = 1.0, parent=None, allowed=None, order=None):
    """(units float64 [n, D], active bool [n, D]): n configurations decoded from the policy head given this
    context (`optformer.model.policy.sample`: valid by construction, 0 in inactive slots).

    key: a jax PRNG key. parent, allowed, order: the space's conditions as the decoder reads them
    (`SearchSpace.condition_arrays(policy_tokens)`, `SearchSpace.topological_order()`); None: no conditions.
    Samples are decoded in chunks of at most POLICY_CHUNK rows, each padded to a power of two (one compilation
    per padded size and context bucket).

    Raises:
      ValueError: the model has no policy head, n < 1, or temperature <= 0.
    """
    import jax

    from optformer.model import policy

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
      raise ValueError(f"n must be an integer >= 1, got {n!r}.")
    space = policy.decode_space(self.kinds[0], self.num_values[0], self.slot_ids[0],
                                self.engine.config.policy_tokens, parent, allowed, order)
    units, active = [], []
    for i, s in enumerate(range(0, n, POLICY_CHUNK)):
      m = min(POLICY_CHUNK, n - s)
      size = max(16, 1 << (m - 1).bit_length())
      u, a = policy.sample(self.engine.model, self.encoded, space, size, jax.random.fold_in(key, i), temperature)
      units.append(np.asarray(u, np.float64)[:m])
      active.append(np.asarray(a, bool)[:m])
    return np.concatenate(units), np.concatenate(active)


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
