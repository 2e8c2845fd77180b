"""Function families beside the GP prior (data_gen/families.py) and their hooks (examples, eval priors, flags)."""

import argparse
import dataclasses
import functools
import hashlib
import math

import jax
import numpy as np
import pytest

from optformer.data_gen import families
from optformer.data_gen import prior as prior_lib
from optformer.data_gen.examples import ExampleConfig, example_words, sample_examples
from optformer.data_gen.prior import PriorConfig

N = 32


def _config(**shares) -> ExampleConfig:
  tiny = ExampleConfig.tiny()
  return dataclasses.replace(tiny, prior=dataclasses.replace(tiny.prior, **shares))


@functools.cache
def _examples(seed: int = 0):
  """Tiny examples (16 of N points) with a 40% BBOB-like, 40% HPO-like, 20% GP mixture: one compilation."""
  return sample_examples(_config(p_bbob=0.4, p_hpo=0.4), example_words(seed, "train", np.arange(16)), N)


@functools.cache
def _six_dim_tasks():
  """(GP tasks, family tasks) of 128 tasks with 6 parameters, all relevant, half BBOB-like and half HPO-like."""
  cfg = dataclasses.replace(PriorConfig.tiny(), max_dims=6, min_dims=6, p_irrelevant=0.0, p_bbob=0.5, p_hpo=0.5)
  return families.sample_family_tasks(cfg, example_words(1, "train", np.arange(128)))


def _picks(family, shape):
  _, fts = _six_dim_tasks()
  return [i for i in range(128) if int(fts.family[i]) == family and int(fts.shape[i]) == shape]


def _one(batch, i):
  return jax.tree.map(lambda v: v[i], batch)


def _reference_latent(task, num=512, seed=0):
  return prior_lib.latent_one(task, prior_lib.sample_valid(jax.random.key(seed), task.kinds, task.num_values, num))


def test_default_prior_gives_the_examples_of_before():
  # Digest of the tiny examples' points and noiseless objectives at commit e6964b6, before the families existed.
  ex, task = sample_examples(ExampleConfig.tiny(), example_words(3, "train", np.arange(8)), N)
  h = hashlib.sha256()
  for a in (ex.x, ex.active, ex.latent, ex.f, ex.feasible):
    h.update(np.ascontiguousarray(a).tobytes())
  assert h.hexdigest()[:16] == "f25b95e16d8e185d"
  assert (ex.family == families.FAMILY_GP).all()
  assert not families.enabled(ExampleConfig().prior) and "p_bbob" not in ExampleConfig().to_json()["prior"]


@pytest.mark.slow  # Compiles the example sampler with families (~20 s alone; minutes on a loaded machine).
def test_family_examples_are_finite_deterministic_and_mixed():
  ex, task = _examples()
  assert ex.x.shape == ex.latent.shape == (16, N, 3) and ex.f.shape == ex.y.shape == (16, N) and ex.family.shape == (16,)
  assert set(np.unique(ex.family)) == {0, 1, 2}
  assert np.isfinite(ex.f).all() and np.isfinite(ex.y[ex.feasible]).all()
  again, _ = sample_examples(_config(p_bbob=0.4, p_hpo=0.4), example_words(0, "train", np.arange(16)), N)
  np.testing.assert_array_equal(again.f, ex.f)
  other, _ = sample_examples(_config(p_bbob=0.4, p_hpo=0.4), example_words(1, "train", np.arange(16)), N)
  assert not np.allclose(other.f, ex.f)
  # A GP task's objective is its GP draw; a family task's is its shape, the same evaluated apart from the example.
  gp = ex.family == families.FAMILY_GP
  f_gp = np.asarray(jax.vmap(prior_lib.evaluate_latent_one)(task, ex.latent))
  np.testing.assert_allclose(ex.f[gp], f_gp[gp], rtol=1e-5, atol=1e-5)
  assert not np.allclose(ex.f[~gp], f_gp[~gp], atol=1e-3)
  t, ft = families.sample_family_tasks(_config(p_bbob=0.4, p_hpo=0.4).prior, example_words(0, "train", np.arange(16)))
  np.testing.assert_allclose(families.evaluate_latent(t, ft, ex.latent), ex.f, rtol=1e-4, atol=1e-4)


def test_family_tasks_are_finite_and_deterministic():
  tasks, fts = _six_dim_tasks()
  z = jax.random.uniform(jax.random.key(0), (128, 64, 6))
  f = np.asarray(families.evaluate_latent(tasks, fts, z))
  assert f.shape == (128, 64) and np.isfinite(f).all() and set(np.unique(fts.family)) == {1, 2}
  assert all(len(_picks(fam, s)) > 0 for fam, n in ((1, 4), (2, 3)) for s in range(n))  # Every shape is drawn.
  cfg = dataclasses.replace(PriorConfig.tiny(), max_dims=6, min_dims=6, p_irrelevant=0.0, p_bbob=0.5, p_hpo=0.5)
  again = families.sample_family_tasks(cfg, example_words(1, "train", np.arange(128)))[1]
  jax.tree.map(np.testing.assert_array_equal, again, fts)


_hessian = jax.jit(jax.hessian(lambda z, ft, relevant: families._cost(ft, z[None], relevant)[0]))


def test_ellipsoid_hessian_has_the_drawn_condition_number():
  tasks, fts = _six_dim_tasks()
  picks = [i for i in _picks(families.FAMILY_BBOB, 0) if float(fts.log_condition[i]) > math.log(1e2)]
  assert picks, "no ill-conditioned ellipsoid among the BBOB-like tasks"
  for i in picks[:3]:
    task, ft = _one(tasks, i), _one(fts, i)
    relevant = task.inv_lengthscale > 0
    cost = lambda z: families._cost(ft, z[None], relevant)[0]
    hess = np.asarray(_hessian(np.full(6, 0.5, np.float32), ft, relevant), np.float64)
    eig = np.linalg.eigvalsh(0.5 * (hess + hess.T))
    assert eig.min() > 0
    assert abs(math.log(eig.max() / eig.min()) - float(ft.log_condition)) < 0.05
    assert float(cost(np.asarray(ft.optimum))) < 1e-6  # The optimum z* is the minimum (cost 0) ...
    f = families.evaluate_one(ft, task, np.stack([ft.optimum, np.full(6, 0.5, np.float32)]), np.zeros(2))
    assert f[0] > f[1]  # ... and the objective's maximum.


def _local_minima_on_a_line(ft, task, slot):
  z = np.tile(np.asarray(ft.optimum), (2001, 1))
  z[:, slot] = np.linspace(0.0, 1.0, 2001)
  c = np.asarray(families._cost(ft, z, task.inv_lengthscale > 0))
  return int(np.sum((c[1:-1] < c[:-2]) & (c[1:-1] < c[2:])))


def test_rastrigin_is_multimodal_and_the_ellipsoid_unimodal():
  tasks, fts = _six_dim_tasks()
  for i in _picks(families.FAMILY_BBOB, 2)[:2]:
    assert _local_minima_on_a_line(_one(fts, i), _one(tasks, i), 0) >= 3
  for i in _picks(families.FAMILY_BBOB, 0)[:2]:
    assert _local_minima_on_a_line(_one(fts, i), _one(tasks, i), 0) == 1


def test_plateau_is_nearly_flat_with_real_differences():
  tasks, fts = _six_dim_tasks()
  picks = _picks(families.FAMILY_HPO, 1)
  for i in picks[:3]:
    task, ft = _one(tasks, i), _one(fts, i)
    z = _reference_latent(task, 2048)
    q = np.asarray(families._hpo_loss(ft, z), np.float64)
    cost = np.asarray(families._cost(ft, z, task.inv_lengthscale > 0), np.float64)
    q0 = float(ft.plateau[0])
    inside = q < 0.5 * q0
    assert inside.sum() >= 10 and 0.02 < np.mean(q < q0) < 0.7  # The plateau is a wide share of the space.
    spread = np.quantile(cost, 0.9) - np.quantile(cost, 0.1)
    assert np.ptp(cost[inside]) < 0.02 * spread  # Nearly flat ...
    order = np.argsort(q[inside])
    assert np.all(np.diff(cost[inside][order]) >= 0) and np.ptp(cost[inside]) > 0  # ... with real differences.


def test_hpo_tasks_have_few_important_parameters():
  _, fts = _six_dim_tasks()
  w = np.sort(np.asarray(fts.scales)[np.asarray(fts.family) == families.FAMILY_HPO], -1)[:, ::-1]  # [T, 6], largest first.
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
  assert np.mean(w[:, :2].sum(-1)) > 0.6 and np.mean(w[:, 3:].sum(-1)) < 0.2


def test_config_rejects_bad_shares_and_round_trips():
  with pytest.raises(ValueError, match="p_bbob"):
    PriorConfig(p_bbob=0.7, p_hpo=0.6)
  with pytest.raises(ValueError, match="p_bbob"):
    PriorConfig(p_family_residual=-0.1)
  cfg = _config(p_bbob=0.2, p_hpo=0.1)
  assert ExampleConfig.from_json(cfg.to_json()) == cfg


def test_eval_priors_and_train_flags():
  from optformer.training import evaluate, train_cli
  from optformer.training.data import PFNDataConfig

  for name, field in (("bbob-like", "p_bbob"), ("hpo-like", "p_hpo")):
    assert getattr(evaluate.eval_data(PFNDataConfig(), name).examples.prior, field) == 1.0
    evaluate.check_eval(name, (5, 10), num_slot_ids=64, max_categories=64, max_context=256)
  args = train_cli.parser().parse_args(["--workdir", "w", "--prior-bbob", "0.2", "--prior-hpo", "0.1"])
  prior = train_cli._with_prior(PFNDataConfig(), args).examples.prior
  assert (prior.p_bbob, prior.p_hpo, prior.p_family_residual) == (0.2, 0.1, 0.5)
  bad = train_cli.parser().parse_args(["--workdir", "w", "--prior-bbob", "0.8", "--prior-hpo", "0.5"])
  with pytest.raises(SystemExit, match="0.8"):
    train_cli._with_prior(PFNDataConfig(), bad)
  with pytest.raises(SystemExit, match="--prior-hpo must be a probability in \\[0, 1\\], got 1.5"):
    train_cli._with_prior(PFNDataConfig(), train_cli.parser().parse_args(["--workdir", "w", "--prior-hpo", "1.5"]))


@pytest.mark.slow  # Compiles the example sampler with families and the batched GP posterior.
def test_soft_targets_of_family_examples_are_the_drawn_bars():
  from optformer.training.data import PFNDataConfig, make_batch

  cfg = dataclasses.replace(PFNDataConfig.tiny(), examples=_config(p_bbob=0.5, p_hpo=0.5), soft_target_weight=0.5)
  _, targets, ex, _, _ = make_batch(cfg, np.linspace(-3.0, 3.0, 17), 8, 0)
  family = (ex.family != families.FAMILY_GP)[:, None] & ex.feasible
  assert family.any()
  y = np.nan_to_num(ex.y)
  assert np.all(targets.std[family] <= 1e-6 * np.maximum(np.abs(y[family]), 1.0) * 1.0001)
  np.testing.assert_allclose(targets.mean[family], y[family], rtol=1e-6)
