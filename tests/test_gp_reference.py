"""The equivariant references of training/gp_reference.py: closed forms, invariances, sampling."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from optformer.data_gen import examples as examples_lib
from optformer.data_gen.prior import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, KIND_UNUSED, PriorConfig
from optformer.training import gp_reference


def test_independent_points_give_the_textbook_student_t():
  # C = I: the predictive of a new draw from N(mu, s) with mu, s unknown is
  # t_{n-1}(ybar, s_y sqrt(1 + 1/n)) (e.g. Gelman et al., Bayesian Data Analysis, Sec. 3.2).
  y = np.array([0.3, -1.2, 2.0, 0.7, 1.1], np.float32)
  n = len(y)
  _, mean, scale, dof = gp_reference.student_t_predictive(jnp.eye(n), jnp.zeros((2, n)), jnp.ones(2), jnp.asarray(y))
  assert float(dof) == n - 1
  np.testing.assert_allclose(mean, [y.mean()] * 2, rtol=1e-5)
  np.testing.assert_allclose(scale, [y.std(ddof=1) * np.sqrt(1 + 1 / n)] * 2, rtol=1e-5)
  got = gp_reference.student_t_logpdf(1.5, mean[0], scale[0], dof)
  np.testing.assert_allclose(got, scipy.stats.t(n - 1, y.mean(), scale[0]).logpdf(1.5), rtol=1e-5)


def _corr(x, inv_ls, noise):
  d2 = ((x[:, None] - x[None, :]) * inv_ls) ** 2
  sr = np.sqrt(3 * d2)
  return (1 + sr) * np.exp(-sr) + noise * np.eye(len(x))


def test_log_marginal_matches_the_integral_over_mean_and_scale():
  # log_marginal differences between two kernels = log ratio of the integrals of N(y; mu 1, s C) dmu ds / s.
  x, y = np.array([0.1, 0.5, 0.8, 0.3]), np.array([0.4, -0.3, 1.0, 0.2])

  def integral(c):  # Trapezoid over log s (ds / s = d log s) and mu; the integrand decays like s^(-3/2).
    log_s, mu = np.linspace(-10, 10, 801), np.linspace(-40, 40, 4001)
    prec, (_, log_det) = np.linalg.inv(c), np.linalg.slogdet(c)
    r = y[None, :] - mu[:, None]  # [M, 4]
    quad = np.einsum("mi,ij,mj->m", r, prec, r)
    s = np.exp(log_s)[:, None]
    log_pdf = -0.5 * (4 * np.log(2 * np.pi * s) + log_det + quad[None, :] / s)
    return np.trapezoid(np.trapezoid(np.exp(log_pdf), mu, axis=1), log_s)

  c1, c2 = _corr(x, 2.0, 0.05), _corr(x, 8.0, 0.05)
  m1 = gp_reference.student_t_predictive(jnp.asarray(c1, jnp.float32), jnp.zeros((1, 4)), jnp.ones(1), jnp.asarray(y, jnp.float32))[0]
  m2 = gp_reference.student_t_predictive(jnp.asarray(c2, jnp.float32), jnp.zeros((1, 4)), jnp.ones(1), jnp.asarray(y, jnp.float32))[0]
  np.testing.assert_allclose(float(m1 - m2), np.log(integral(c1) / integral(c2)), atol=2e-3)


@pytest.fixture(scope="module")
def tiny_examples():
  cfg = examples_lib.ExampleConfig(prior=dataclasses.replace(PriorConfig.tiny(), max_dims=2, min_dims=1),
                                   p_local=0.0, p_failure=0.0, p_conditional=0.0)
  words = examples_lib.example_words(0, "validation", np.arange(8))
  ex, task = examples_lib.sample_examples(cfg, words, 32)
  return cfg, ex, task


def test_oracle_is_equivariant_under_affine_maps_of_y(tiny_examples):
  _, ex, task = tiny_examples
  a, b = 37.0, -5.0
  base = np.asarray(gp_reference.oracle_kernel_nll(task, ex.latent, ex.y, 10))
  moved = np.asarray(gp_reference.oracle_kernel_nll(task, ex.latent, a * ex.y + b, 10))
  np.testing.assert_allclose(moved, base + np.log(a), atol=2e-3)


def test_oracle_beats_a_predictor_that_ignores_x(tiny_examples):
  _, ex, task = tiny_examples
  n = 20
  oracle = np.asarray(gp_reference.oracle_kernel_nll(task, ex.latent, ex.y, n)).mean()
  blind = []
  for y in ex.y:
    _, mean, scale, dof = gp_reference.student_t_predictive(jnp.eye(n), jnp.zeros((32 - n, n)), jnp.ones(32 - n), y[:n])
    blind.append(-np.asarray(gp_reference.student_t_logpdf(y[n:], mean, scale, dof)).mean())
  assert oracle < np.mean(blind) - 0.3


def test_marginal_comes_close_to_the_oracle_and_beats_a_blind_predictor(tiny_examples):
  cfg, ex, task = tiny_examples
  n = 20
  ref = gp_reference.reference_nll(cfg.prior, ex, task, n, num_kernels=512, seed=0)
  assert np.all((ref["ess"] >= 1) & (ref["ess"] <= 512))
  blind = []
  for y in ex.y:
    _, mean, scale, dof = gp_reference.student_t_predictive(jnp.eye(n), jnp.zeros((32 - n, n)), jnp.ones(32 - n), y[:n])
    blind.append(-np.asarray(gp_reference.student_t_logpdf(y[n:], mean, scale, dof)).mean())
  # The marginal learns the kernel from the context, so it comes close to the oracle that knows it (on 8 examples
  # of a 128-feature prior either may come out ahead), and both are far ahead of ignoring x.
  assert abs(ref["marginal"].mean() - ref["oracle_kernel"].mean()) < 0.1
  assert ref["marginal"].mean() < np.mean(blind) - 0.2


def test_sample_kernels_keeps_the_search_space_and_draws_the_hyperprior():
  cfg = dataclasses.replace(PriorConfig.v2(), p_noiseless=0.25)  # With the noise mixture (model v3).
  kinds = jnp.array([KIND_FLOAT, KIND_ORDINAL, KIND_CATEGORICAL] + [KIND_UNUSED] * 13, jnp.int32)
  levels = jnp.array([0, 50, 4] + [0] * 13, jnp.int32)
  ks = gp_reference.sample_kernels(jax.random.key(0), cfg, kinds, levels, 4000)
  inv = np.asarray(ks.inv_lengthscale)
  assert np.all(inv[:, 3:] == 0) and np.all((inv[:, :3] > 0).any(1))  # Unused slots never relevant, one forced.
  np.testing.assert_allclose((inv[:, :3] > 0).mean(), 0.7 + 0.3 ** 3 / 3, atol=0.02)
  ls = 1 / inv[:, 0][inv[:, 0] > 0]
  np.testing.assert_allclose(ls.mean(), cfg.lengthscale_concentration / cfg.lengthscale_rate, rtol=0.06)
  warped = (np.asarray(ks.warp_a) != 1) | (np.asarray(ks.warp_b) != 1)
  np.testing.assert_allclose(warped[:, :2].mean(), cfg.p_warp, atol=0.03)
  assert not warped[:, 2:].any()  # Categorical and unused slots are never warped.
  assert np.all(np.asarray(ks.kinds) == np.asarray(kinds)) and np.all(np.asarray(ks.num_values) == np.asarray(levels))
  log_noise = np.log(np.asarray(ks.noise_variance, np.float64))
  quiet = log_noise < -9.0  # The components' means are -13.8 and -4.63.
  np.testing.assert_allclose(quiet.mean(), cfg.p_noiseless, atol=0.03)
  np.testing.assert_allclose([log_noise[quiet].mean(), log_noise[~quiet].mean()], [-13.8, -4.63], atol=0.1)


def test_reference_refuses_tiny_contexts_and_failures(tiny_examples):
  cfg, ex, task = tiny_examples
  with pytest.raises(ValueError, match="n=1"):
    gp_reference.reference_nll(cfg.prior, ex, task, 1, num_kernels=256)
  failed = ex._replace(feasible=np.zeros_like(ex.feasible))
  with pytest.raises(ValueError, match="failure"):
    gp_reference.reference_nll(cfg.prior, failed, task, 5, num_kernels=256)
