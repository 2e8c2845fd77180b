"""Gradient ascent of log expected improvement through the network, in unit space (the context held fixed).

EI as `Posterior.acquisition(kind="ei")` ranks it, log E[max(clip(Z) - c, 0)] + log p(feasible), is linear in
the model's bar probabilities: with p_j = softmax(logits)_j over the Y bars and the infeasible class,

    EI(x) p_feas(x) = sum_j p_j(x) v_j,   v_j = E[improvement | bar j] (`BarDistribution.improvement_per_bar`,
                                                 plus max(lo - c, 0) when the best lies below the support)

so log EI + log p_feas = logsumexp_j(logits_j + log v_j) - logsumexp(logits), which is differentiable in the
query's unit values x (Fourier features and pair distances of float and integer slots; a categorical's value
is rounded, so its gradient is 0, and callers keep it fixed). The context's encoding is an input, so only the
queries' forward and backward passes run per step. PFNs4BO (Müller et al., ICML 2023) refines the best
candidates of a pool the same way (with L-BFGS-B); here projected Adam runs all steps in one jitted call.

Shapes: K rows (padded to a power of two >= 8, one compilation per padded size, step count and context bucket),
D parameters, Y bars.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from optformer.model.inference import PFNContext, support_z
from optformer.model.bar import BarDistribution
from optformer.model.network import SurrogateBatch

LEARNING_RATE = 0.02  # Adam's step in unit space (each coordinate moves about this much per early step).


def log_improvement_weights(ctx: PFNContext, best: float) -> np.ndarray:
  """float64 [Y]: log v_j, the log of each bar's expected improvement over `best` (context units, larger is
  better) of clip(Z) in z units, capped at the support's top as `PFNPredictive.log_expected_improvement_z`
  caps it; -inf for bars wholly below the best."""
  lo, hi = support_z(ctx.transform)
  with np.errstate(over="ignore", invalid="ignore"):
    c = float(ctx.transform.apply(np.array([float(best)]))[0])
  borders = ctx.engine.borders
  bars = BarDistribution(np.ones((1, len(borders) - 1)), borders)
  v = bars.improvement_per_bar(min(max(c, lo), hi), cap=hi) + max(lo - c, 0.0)
  with np.errstate(divide="ignore"):
    return np.log(np.maximum(v, 0.0))


def ascend_log_ei(ctx: PFNContext, units_KxD, active_KxD, movable_KxD, best: float, steps: int,
                  radius: float = 1.0, learning_rate: float = LEARNING_RATE) -> tuple[np.ndarray, np.ndarray]:
  """Projected Adam ascent of log EI + log p(feasible) from K unit rows; the best point of each trajectory.

  Each movable coordinate stays in [0, 1] and within `radius` of its start (a trust region: the box
  [x0 - radius, x0 + radius] intersected with the unit interval).

  Args:
    ctx: the encoded context (`PFNEngine.context`).
    units_KxD: float [K, D] start rows (unit form).
    active_KxD: bool [K, D] or None (all active): the rows' active masks, held fixed.
    movable_KxD: bool [K, D]: the coordinates that move (the rest stay at their start values).
    best: the improvement threshold in the context's units (larger is better).
    steps: Adam steps (>= 0; 0 scores the starts).
    radius: the trust region's half-width in unit space, in (0, 1] (1: the whole unit interval).
    learning_rate: Adam's step size in unit space (> 0).

  Returns:
    (float64 [K, D] the best point of each trajectory, in [0, 1] on movable coordinates; float64 [K] its
    log EI + log p(feasible), the model's own score in float32, before any snapping).

  Raises:
    ValueError: mismatched shapes, steps < 0, radius outside (0, 1] or learning_rate <= 0.
  """
  x = np.asarray(units_KxD, np.float64)
  k, d = x.shape if x.ndim == 2 else (0, -1)
  if d != ctx.kinds.shape[1]:
    raise ValueError(f"units must be [K, {ctx.kinds.shape[1]}], got {x.shape}.")
  movable = np.broadcast_to(np.asarray(movable_KxD, bool), x.shape)
  active = np.ones(x.shape, bool) if active_KxD is None else np.broadcast_to(np.asarray(active_KxD, bool), x.shape)
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be an int >= 0, got {steps!r}.")
  if not 0 < radius <= 1:
    raise ValueError(f"radius must be in (0, 1], got {radius!r}.")
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
  log_v = log_improvement_weights(ctx, best)
  if not k or not np.isfinite(log_v).any():  # No improvement possible anywhere: nothing to ascend.
    return x.copy(), np.full(k, -np.inf)
  size = max(8, 1 << (k - 1).bit_length())
  pad = lambda a: np.concatenate([a, np.zeros((size - k,) + a.shape[1:], a.dtype)])
  queries = SurrogateBatch(
      x=pad(x.astype(np.float32))[None], active=pad(active)[None], kinds=ctx.kinds, num_values=ctx.num_values,
      slot_ids=ctx.slot_ids, z=np.zeros((1, size), np.float32), feasible=np.ones((1, size), bool),
      context=np.zeros((1, size), bool), valid=np.ones((1, size), bool))
  graph, params = ctx.engine.graph, ctx.engine.params
  x32 = queries.x[0]
  lower, upper = np.maximum(x32 - radius, 0.0), np.minimum(x32 + radius, 1.0)
  out, score = _ascend(graph, params, ctx.encoded, queries, pad(movable), lower, upper, log_v.astype(np.float32),
                       np.float32(learning_rate), int(steps))
  out = np.asarray(out)[:k]
  out = np.where(movable & (out != x.astype(np.float32)), out.astype(np.float64), x)  # Unmoved: the exact start.
  return out, np.asarray(score, np.float64)[:k]


@functools.partial(jax.jit, static_argnums=(0, 9))
def _ascend(graph, params, encoded, queries: SurrogateBatch, movable_KxD, lower_KxD, upper_KxD, log_v_Y,
            learning_rate, steps: int):
  """(float32 [K, D] best point of each trajectory, float32 [K] its score) of `steps` projected Adam steps."""
  model = graph.merge(params)
  move = movable_KxD.astype(jnp.float32)

  def scores(x_KxD):  # [K]: log sum_j p_j v_j = log EI + log p(feasible).
    logits = model.score_queries(encoded, queries._replace(x=x_KxD[None]))[0]  # [K, Y + 1]
    return jax.nn.logsumexp(logits[:, :-1] + log_v_Y, axis=-1) - jax.nn.logsumexp(logits, axis=-1)

  value_and_grad = jax.value_and_grad(lambda x: (lambda s: (jnp.sum(s), s))(scores(x)), has_aux=True)
  b1, b2, eps = 0.9, 0.999, 1e-8

  def step(carry, t):
    x, m, v, best_x, best_s = carry
    (_, s), g = value_and_grad(x)
    better = s > best_s
    best_x, best_s = jnp.where(better[:, None], x, best_x), jnp.where(better, s, best_s)
    g = jnp.where(jnp.isfinite(g), g, 0.0) * move
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    x = jnp.where(movable_KxD, jnp.clip(x + learning_rate * mhat / (jnp.sqrt(vhat) + eps), lower_KxD, upper_KxD), x)
    return (x, m, v, best_x, best_s), None

  x0 = queries.x[0]
  init = (x0, jnp.zeros_like(x0), jnp.zeros_like(x0), x0, jnp.full(x0.shape[:1], -jnp.inf))
  (x, _, _, best_x, best_s), _ = jax.lax.scan(step, init, jnp.arange(1, steps + 1, dtype=jnp.float32))
  s = scores(x)  # The last step's point.
  better = s > best_s
  return jnp.where(better[:, None], x, best_x), jnp.where(better, s, best_s)
