"""Function families beside the GP prior: BBOB-like and HPO-like objectives over the same tasks.

A family task reuses a GP task of `data_gen.prior` (its search space, input
warping, category positions, irrelevant parameters and noise) and replaces
its objective, as a function of the same latent inputs z in [0, 1]^D, by a
shape drawn here. Which tasks do so is set by `PriorConfig.p_bbob` and
`PriorConfig.p_hpo` (default 0: the GP prior alone, every example as
before); the rest stay GP draws. The objective is MAXIMIZED (f = -cost).

Letters: N points, D = D_max parameter slots, R reference points.

BBOB-like (Hansen et al., "Real-Parameter Black-Box Optimization
Benchmarking 2009: Noiseless Functions Definitions", INRIA RR-6829):
t = 10 (z - z*) on the relevant slots (0 elsewhere), z* ~ U[0.1, 0.9]^D (the
box [-5, 5] with optimum in [-4, 4], as in BBOB), u = Q t with Q a random
rotation of the relevant slots (probability P_ROTATE, else the identity),
condition number kappa ~ LogUniform(1, MAX_CONDITION) and
lambda_i = kappa^(r_i / (n - 1)) for the i-th of n relevant slots (rank r_i).
Shapes (uniform):
  0 ellipsoid (f10):          sum_i lambda_i u_i^2; Hessian condition number kappa;
  1 sharp ridge (f13):        a_1^2 + 100 ||a_{2..}||, a = sqrt(lambda) u;
  2 Rastrigin-like (f15):     sum_i a_i^2 + A sum_i (1 - cos(2 pi a_i)), a = sqrt(lambda') u with
                              kappa' = min(kappa, 100), A ~ LogUniform(1, 10);
  3 Rosenbrock-like (f9):     sum_i 100 (a_i^2 - a_{i+1})^2 + (a_i - 1)^2, a = max(1, sqrt(n) / 8) u + 1.

HPO-like (ours; shapes seen in hyperparameter tuning): a few important
parameters, importance w ~ LogNormal(0, IMPORTANCE_LOG_STD^2) normalized
over the relevant slots (most mass on one to three of them; a Gamma(0.3)
draw does the same but compiles a rejection loop); each relevant slot
log-sensitive with probability P_LOG: v = log(z' + e) rescaled to [0, 1],
z' = z or 1 - z, e ~ LogUniform(1e-4, 1e-1) (a learning rate searched on a
linear scale: everything happens near one end); each slot's loss is a bowl
(v - v*)^2 or, with probability P_SATURATING, a saturating curve
(exp(-k v) - exp(-k)) / (1 - exp(-k)), k ~ LogUniform(1, 20) (more is
better, with diminishing returns: epochs, width). q = sum_i w_i loss_i.
Shapes (uniform):
  0 smooth bowl:  q;
  1 plateau:      tau softplus((q - q0) / tau) + tilt q: flat below q0 (a share ~ U(0.05, 0.5) of
                  the search space) up to a real but tiny slope tilt ~ LogUniform(1e-4, 1e-2), tau = 0.05 q0
                  (a regularized linear model's accuracy over its regularization);
  2 saturating:   1 - exp(-q / c), c ~ LogUniform(0.01, 1) x median q: sharp near the optimum, flat far
                  from it (diverged or chance-level configurations).

Every shape is scaled to the GP task's amplitude: g = sqrt(s) (cost0 - cost)
/ spread, with cost0 the median and spread = (q90 - q10) / 2.563 of the cost
over R uniform latent points (a normal's std from its 10-90% range, robust to
an ill-conditioned shape's far tail), so the task's noise has the GP prior's
signal-to-noise ratio. With probability `PriorConfig.p_family_residual` a GP
residual r f_gp (r ~ U(0, RESIDUAL_MAX), f_gp the GP task's own draw) is
added, so shapes are not exactly their textbook forms.

Randomness: the family task of an example is drawn from
fold_in(example key, STREAM_FAMILY), so it is a pure function of the example
key, like the GP task.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from optformer.data_gen import prior as prior_lib
from optformer.data_gen.prior import KIND_UNUSED, PriorConfig, TaskBatch

STREAM_FAMILY = 9  # Sub-stream of an example key (prior.STREAM_* use 0..3, examples.STREAM_EXAMPLE 7).
FAMILY_GP, FAMILY_BBOB, FAMILY_HPO = 0, 1, 2
FAMILY_NAMES = ("gp", "bbob", "hpo")
BBOB_SHAPES = ("ellipsoid", "sharp_ridge", "rastrigin", "rosenbrock")
HPO_SHAPES = ("bowl", "plateau", "saturating")
MAX_CONDITION = 1e6  # kappa ~ LogUniform(1, MAX_CONDITION).
MAX_RASTRIGIN_CONDITION = 100.0  # Rastrigin's conditioning is capped (BBOB f15 uses 10).
P_ROTATE = 0.75  # P(a BBOB-like task is rotated) vs axis-aligned (separable).
IMPORTANCE_LOG_STD = 2.0  # HPO importance w ~ LogNormal(0, 2^2), normalized: the top 2 of 6 hold ~80% of it.
P_LOG = 0.5  # P(an HPO relevant slot is log-sensitive).
P_SATURATING = 0.4  # P(an HPO slot's loss is a saturating curve) vs a bowl.
RESIDUAL_MAX = 0.3  # GP residual weight ~ U(0, RESIDUAL_MAX) (relative to the shape's amplitude).
NUM_REFERENCE = 256  # R: uniform latent points that set a shape's location and spread.


class FamilyTask(NamedTuple):
  """The shape of one family task (a leading B axis when batched); fields unused by a family are 0."""

  family: jax.Array  # int32 []: FAMILY_GP (the GP draw itself), FAMILY_BBOB or FAMILY_HPO.
  shape: jax.Array  # int32 []: index into BBOB_SHAPES or HPO_SHAPES.
  optimum: jax.Array  # float32 [D]: z* (BBOB) or v* (HPO bowls), in [0, 1].
  rotation: jax.Array  # float32 [D, D]: Q, orthogonal on the relevant slots, identity elsewhere.
  log_condition: jax.Array  # float32 []: log kappa (BBOB; 0 for HPO).
  scales: jax.Array  # float32 [D]: lambda_i (BBOB; 1 on irrelevant slots) or importance w_i (HPO; sum 1).
  amplitude: jax.Array  # float32 []: Rastrigin's A.
  log_eps: jax.Array  # float32 [D]: log e of a log-sensitive HPO slot; 0 = linear.
  log_flip: jax.Array  # bool [D]: the log-sensitive end is z = 1 (z' = 1 - z).
  saturating: jax.Array  # bool [D]: the HPO slot's loss is a saturating curve.
  rate: jax.Array  # float32 [D]: k of a saturating curve.
  plateau: jax.Array  # float32 [3]: (q0, tau, tilt) of the HPO plateau; (c, 0, 0) of the saturating shape.
  loc: jax.Array  # float32 []: median cost over the reference points.
  spread: jax.Array  # float32 []: (q90 - q10) / 2.563 of the cost over the reference points, > 0.
  residual: jax.Array  # float32 []: weight r of the GP residual r f_gp (0: none).


def check_config(cfg: PriorConfig) -> None:
  """Raises ValueError unless p_bbob, p_hpo, p_family_residual are probabilities and p_bbob + p_hpo <= 1."""
  p = (cfg.p_bbob, cfg.p_hpo, cfg.p_family_residual)
  if min(p) < 0 or max(p) > 1 or cfg.p_bbob + cfg.p_hpo > 1 + 1e-9:
    raise ValueError(f"p_bbob, p_hpo, p_family_residual must lie in [0, 1] with p_bbob + p_hpo <= 1, got {p}.")


def enabled(cfg: PriorConfig) -> bool:
  """Whether the prior mixes in any family (a Python bool: examples.py skips families at trace time if not)."""
  return cfg.p_bbob > 0 or cfg.p_hpo > 0


def _log_uniform(u, lo, hi):
  return jnp.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def sample_one(key, cfg: PriorConfig, task: TaskBatch) -> FamilyTask:
  """The family task of one GP task (`prior._sample_one`'s output, no batch axis); jittable, vmappable.

  The family is BBOB-like with probability cfg.p_bbob, HPO-like with cfg.p_hpo, else FAMILY_GP (f is the
  GP draw). Relevant slots are those with a positive inverse lengthscale (at least one per task).
  """
  d = task.kinds.shape[-1]
  ks = jax.random.split(key, 6)
  s = jax.random.uniform(ks[0], (12,))  # Scalar draws.
  u = jax.random.uniform(ks[1], (6, d))  # Per-slot draws.
  relevant = task.inv_lengthscale > 0
  rank = jnp.cumsum(relevant) - 1  # Rank of a relevant slot among the relevant ones.
  n_rel = jnp.maximum(jnp.sum(relevant), 1)
  family = jnp.where(s[0] < cfg.p_bbob, FAMILY_BBOB, jnp.where(s[0] < cfg.p_bbob + cfg.p_hpo, FAMILY_HPO, FAMILY_GP))
  bbob = family == FAMILY_BBOB
  shape = jnp.where(bbob, prior_lib._uniform_int(s[1], 0, len(BBOB_SHAPES)),
                    prior_lib._uniform_int(s[1], 0, len(HPO_SHAPES))).astype(jnp.int32)

  # BBOB: rotation of the relevant block (QR of a Gaussian matrix, signs fixed: Haar), conditioning.
  rel2 = relevant[:, None] & relevant[None, :]
  g = jnp.where(rel2, jax.random.normal(ks[2], (d, d)), jnp.eye(d))
  q, r = jnp.linalg.qr(g)
  q = q * jnp.where(jnp.diag(r) < 0, -1.0, 1.0)[None, :]
  rotate = bbob & (s[2] < P_ROTATE)
  rotation = jnp.where(rotate, jnp.where(rel2, q, jnp.eye(d)), jnp.eye(d))
  log_kappa = jnp.where(bbob, s[3] * math.log(MAX_CONDITION), 0.0)
  frac = jnp.where(n_rel > 1, rank / jnp.maximum(n_rel - 1, 1), 0.0)
  lam = jnp.where(relevant, jnp.exp(log_kappa * frac), 1.0)

  # HPO: importance, log sensitivity, bowls or saturating curves.
  w = jnp.where(relevant, jnp.exp(IMPORTANCE_LOG_STD * jax.random.normal(ks[3], (d,))), 0.0)
  w = w / jnp.sum(w)
  log_eps = jnp.where(relevant & (u[1] < P_LOG) & (task.kinds != KIND_UNUSED), jnp.log(_log_uniform(u[2], 1e-4, 1e-1)), 0.0)
  optimum = jnp.where(bbob, 0.1 + 0.8 * u[0], u[0])
  ft = FamilyTask(
      family=family.astype(jnp.int32), shape=shape, optimum=optimum.astype(jnp.float32),
      rotation=rotation.astype(jnp.float32), log_condition=log_kappa.astype(jnp.float32),
      scales=jnp.where(bbob, lam, w).astype(jnp.float32), amplitude=_log_uniform(s[4], 1.0, 10.0),
      log_eps=log_eps.astype(jnp.float32), log_flip=u[3] < 0.5, saturating=relevant & (u[4] < P_SATURATING),
      rate=_log_uniform(u[5], 1.0, 20.0).astype(jnp.float32), plateau=jnp.zeros(3, jnp.float32),
      loc=jnp.float32(0.0), spread=jnp.float32(1.0),
      residual=jnp.where(s[5] < cfg.p_family_residual, RESIDUAL_MAX * s[6], 0.0).astype(jnp.float32))

  # Location and spread of the cost over uniform latent points; the plateau's level and the saturation scale.
  z_ref = prior_lib.latent_one(task, prior_lib.sample_valid(ks[4], task.kinds, task.num_values, NUM_REFERENCE))
  q_ref = _hpo_loss(ft, z_ref)
  plateau_share = 0.05 + 0.45 * s[7]
  q0 = jnp.quantile(q_ref, plateau_share)
  tilt = _log_uniform(s[8], 1e-4, 1e-2)
  sat = _log_uniform(s[9], 0.01, 1.0) * jnp.median(q_ref)
  ft = ft._replace(plateau=jnp.where(shape == 1, jnp.stack([q0, 0.05 * q0, tilt]),
                                     jnp.stack([sat, 0.0, 0.0])).astype(jnp.float32))
  cost = _cost(ft, z_ref, relevant)
  lo, hi = jnp.quantile(cost, 0.1), jnp.quantile(cost, 0.9)
  spread = jnp.maximum((hi - lo) / 2.563, 1e-6 * (jnp.max(jnp.abs(cost)) + 1e-30))
  return ft._replace(loc=jnp.median(cost).astype(jnp.float32), spread=spread.astype(jnp.float32))


def evaluate_one(ft: FamilyTask, task: TaskBatch, z_NxD, f_gp_N):
  """float32 [N]: the objective (to maximize) of one family task at latent inputs z [N, D].

  f_gp_N: the GP task's own values there (`prior.evaluate_latent_one(task, z)`): the objective of a FAMILY_GP
  task, and the residual of a family task.
  """
  g = jnp.sqrt(task.outputscale) * (ft.loc - _cost(ft, z_NxD, task.inv_lengthscale > 0)) / ft.spread
  f = g + ft.residual * f_gp_N
  return jnp.where(ft.family == FAMILY_GP, f_gp_N, f).astype(jnp.float32)


def _cost(ft: FamilyTask, z_NxD, relevant):
  """float32 [N]: the cost (minimized) of latent z [N, D] under the task's family and shape (relevant: bool [D])."""
  # BBOB-like.
  t = jnp.where(relevant, 10.0 * (z_NxD - ft.optimum), 0.0)  # [N, D]
  u = t @ ft.rotation.T  # [N, D]: Q t per point.
  lam = jnp.where(relevant, ft.scales, 0.0)
  ellipsoid = jnp.sum(lam * u**2, -1)
  a = jnp.sqrt(lam) * u
  first = jnp.argmax(relevant)  # The least-conditioned relevant slot (lambda = 1): the ridge's direction.
  is_first = jnp.arange(u.shape[-1]) == first
  ridge = jnp.sum(jnp.where(is_first, a, 0.0)**2, -1) + 100.0 * jnp.sqrt(jnp.sum(jnp.where(is_first, 0.0, a)**2, -1) + 1e-12)
  kappa_r = jnp.minimum(ft.log_condition, math.log(MAX_RASTRIGIN_CONDITION))
  lam_r = jnp.where(relevant, jnp.exp(kappa_r * jnp.log(jnp.maximum(lam, 1.0)) / jnp.maximum(ft.log_condition, 1e-6)), 0.0)
  ar = jnp.sqrt(lam_r) * u
  rastrigin = jnp.sum(ar**2 + ft.amplitude * (1.0 - jnp.cos(2 * jnp.pi * ar)), -1)
  n_rel = jnp.maximum(jnp.sum(relevant), 1)
  ab = jnp.maximum(1.0, jnp.sqrt(n_rel) / 8.0) * u + 1.0
  rosen = jnp.sum(100.0 * (ab[:, :-1]**2 - ab[:, 1:])**2 + (ab[:, :-1] - 1.0)**2, -1)
  bbob = jnp.stack([ellipsoid, ridge, rastrigin, rosen], -1)  # [N, 4]
  # HPO-like.
  q = _hpo_loss(ft, z_NxD)
  q0, tau, tilt = ft.plateau[0], ft.plateau[1], ft.plateau[2]
  plateau = tau * jax.nn.softplus((q - q0) / jnp.maximum(tau, 1e-12)) + tilt * q
  saturating = 1.0 - jnp.exp(-q / jnp.maximum(ft.plateau[0], 1e-12))
  hpo = jnp.stack([q, plateau, saturating, q], -1)  # [N, 4]: padded to BBOB's 4 shapes for `pick`.
  pick = lambda c: jnp.take_along_axis(c, jnp.broadcast_to(ft.shape, (c.shape[0], 1)), -1)[:, 0]
  return jnp.where(ft.family == FAMILY_BBOB, pick(bbob), jnp.where(ft.family == FAMILY_HPO, pick(hpo), 0.0))


def _hpo_loss(ft: FamilyTask, z_NxD):
  """float32 [N]: q = sum_i w_i loss_i(v_i) of the HPO-like family (0 for other families' weights)."""
  z = jnp.clip(z_NxD, 0.0, 1.0)
  zf = jnp.where(ft.log_flip, 1.0 - z, z)
  eps = jnp.exp(ft.log_eps)
  v_log = (jnp.log(zf + eps) - ft.log_eps) / (jnp.log1p(eps) - ft.log_eps)
  v = jnp.where(ft.log_eps != 0, v_log, z)
  bowl = (v - ft.optimum) ** 2
  k = ft.rate
  sat = (jnp.exp(-k * v) - jnp.exp(-k)) / (1.0 - jnp.exp(-k))
  w = jnp.where(ft.family == FAMILY_HPO, ft.scales, 0.0)
  return jnp.sum(w * jnp.where(ft.saturating, sat, bowl), -1)


def sample_family_tasks(cfg: PriorConfig, words_Bx2) -> tuple[TaskBatch, FamilyTask]:
  """(GP tasks, family tasks) of B examples' key words uint32 [B, 2] (`examples.example_words`), as in examples.py."""
  return _sample_batch(jnp.asarray(words_Bx2), cfg)


@jax.jit(static_argnames="cfg")
def _sample_batch(words_Bx2, cfg):
  def one(w):
    key = prior_lib.key_from_words(w)
    task = prior_lib._sample_one(jax.random.fold_in(key, prior_lib.STREAM_PRIOR), cfg)
    return task, sample_one(jax.random.fold_in(key, STREAM_FAMILY), cfg, task)
  return jax.vmap(one)(words_Bx2)


@jax.jit
def evaluate_latent(task: TaskBatch, ft: FamilyTask, z_BxNxD):
  """float32 [B, N]: objectives (to maximize) of B (GP task, family task) pairs at latent inputs z [B, N, D]."""
  def one(t, f, z):
    return evaluate_one(f, t, z, prior_lib.evaluate_latent_one(t, z))
  return jax.vmap(one)(task, ft, z_BxNxD)
