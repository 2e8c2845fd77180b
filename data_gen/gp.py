"""Exact GP posterior of a prior task, with its TRUE kernel hyperparameters.

This is the Bayes-optimal surrogate for tasks drawn from `data_gen.prior`
(up to the random-feature approximation of f): the GP-UCB behaviour policy
uses it, and it is the reference an in-context surrogate is measured
against. Letters: T observations (padded; `mask_T` marks real ones),
Q queries, D = D_max slots. All functions act on ONE task; `jax.vmap` them
over a `TaskBatch`.

Formulas: Rasmussen & Williams, "Gaussian Processes for Machine Learning"
(2006), Algorithm 2.1 (Cholesky posterior) and eq. 4.17 (Matérn-3/2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optformer.data_gen.prior import TaskBatch

# Added to the diagonal of the (outputscale-normalized) kernel matrix.
JITTER = 1e-5


def matern32(z1_NxD, z2_MxD, inv_lengthscale_D):
  """float32 [N, M]: Matérn-3/2 correlation (1 + sqrt3 r) exp(-sqrt3 r), k(z, z) = 1.

  r = || (z1 - z2) * inv_lengthscale ||; slots with inv_lengthscale 0 are ignored.
  """
  a = z1_NxD * inv_lengthscale_D
  b = z2_MxD * inv_lengthscale_D
  d2 = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T  # [N, M]
  sr = jnp.sqrt(3.0 * jnp.maximum(d2, 0.0))
  return (1.0 + sr) * jnp.exp(-sr)


def posterior(task: TaskBatch, z_TxD, y_T, mask_T, z_QxD, jitter: float = JITTER):
  """Posterior mean and variance of the noiseless f at z_QxD (one task).

  Args:
    task: one task (no leading B axis); uses inv_lengthscale, outputscale
      and noise_variance.
    z_TxD: float32 [T, D] latent inputs of the observations (padding rows any value).
    y_T: float32 [T] noisy observations (padding ignored).
    mask_T: bool [T], True for real observations; all False gives the prior.
    z_QxD: float32 [Q, D] latent query inputs.
    jitter: added to the diagonal of the outputscale-normalized kernel matrix.

  Returns:
    (mean_Q, var_Q), float32 [Q] each, var >= 0, in the units of y; NaN where the Cholesky
    factorization fails in float32 (near-duplicate points with little noise: raise `jitter`).
  """
  s = task.outputscale
  mask = mask_T.astype(jnp.float32)
  noise = task.noise_variance / s + jitter
  k_TxT = matern32(z_TxD, z_TxD, task.inv_lengthscale) * mask[:, None] * mask[None, :]
  # Padding rows become identity rows, so they decouple from real observations.
  k_TxT = k_TxT + jnp.diag(mask * noise + (1.0 - mask))
  chol_TxT = jnp.linalg.cholesky(k_TxT)
  eye = jnp.eye(z_TxD.shape[0], dtype=jnp.float32)
  inv_chol_TxT = jax.scipy.linalg.solve_triangular(chol_TxT, eye, lower=True)
  k_QxT = matern32(z_QxD, z_TxD, task.inv_lengthscale) * mask[None, :]
  a_QxT = k_QxT @ inv_chol_TxT.T  # (L^-1 k_*)^T as one matmul (this layout is ~2x faster on CPU).
  b_T = inv_chol_TxT @ (y_T * mask / jnp.sqrt(s))
  mean = jnp.sqrt(s) * (a_QxT @ b_T)
  var = s * jnp.maximum(1.0 - jnp.sum(a_QxT * a_QxT, -1), 0.0)
  return mean, var
