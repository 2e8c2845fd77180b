"""Soft targets of model v2 training: the exact GP posterior's bar masses (training/data.py, "Soft targets")."""

import dataclasses
import json

import jax
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from optformer.model import ynorm
from optformer.model.network import create_model
from optformer.training.data import GPTargets, PFNDataConfig, make_batch, prior_borders
from optformer.training.train import PFNTrainConfig, PFNTrainer, loss_fn, soft_bar_targets


@pytest.fixture(scope="module")
def borders():
  return prior_borders(PFNDataConfig.tiny(), 32, num_batches=4)


@pytest.fixture(scope="module")
def soft_data():
  # Longer examples than tiny() so the probability-integral-transform check has enough queries.
  return dataclasses.replace(PFNDataConfig.tiny(), soft_target_weight=1.0, batch_size=16, seq_lens=(48,))


def test_invert_batch_inverts_apply_batch():
  rng = np.random.default_rng(0)
  y = np.concatenate([rng.lognormal(size=(3, 12)), rng.normal(size=(2, 12))]) * 40 - 3  # Skewed rows get lam != 1.
  mask = np.ones_like(y, bool)
  mask[:, 8:] = False
  fields = ynorm.fit_batch(y, mask)
  assert fields["power"].any()
  z = ynorm.apply_batch(fields, y)
  np.testing.assert_allclose(ynorm.invert_batch(fields, z), y, rtol=1e-9, atol=1e-9)


def test_soft_targets_are_distributions_that_the_drawn_values_follow(borders, soft_data):
  """The drawn value of a query is a draw from its GP target, so its PIT is uniform (fails for a wrong mean or std)."""
  pits = []
  for i in range(4):
    batch, targets, ex, _, _ = make_batch(soft_data, borders, 8, i, n_context=12)
    assert isinstance(targets, GPTargets)
    q = np.asarray(soft_bar_targets(targets), np.float64)  # [B, N, Y]
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
    assert np.all(q >= 0)
    query = ~batch.context & ex.feasible
    cdf_y = scipy.stats.norm.cdf(ex.y, targets.mean, targets.std)
    pits.append(cdf_y[query])
    # The bar masses agree with the continuous target: the drawn bar's CDF brackets the value's CDF.
    cdf = np.cumsum(q, -1)
    bars = np.minimum(targets.bars, q.shape[-1] - 1)
    hi = np.take_along_axis(cdf, bars[..., None], -1)[..., 0]
    lo = hi - np.take_along_axis(q, bars[..., None], -1)[..., 0]
    assert np.all((lo[query] <= cdf_y[query] + 1e-4) & (cdf_y[query] <= hi[query] + 1e-4))
  pit = np.concatenate(pits)
  assert len(pit) > 300
  assert scipy.stats.kstest(pit, "uniform").statistic < 0.12


def test_hard_batches_are_unchanged_and_the_config_round_trips(borders, soft_data):
  hard = dataclasses.replace(soft_data, soft_target_weight=0.0)
  _, bars, *_ = make_batch(hard, borders, 8, 2)
  _, soft, *_ = make_batch(soft_data, borders, 8, 2)
  np.testing.assert_array_equal(bars, soft.bars)
  assert "soft_target_weight" not in hard.to_json()  # Configs of earlier runs stay equal.
  assert PFNDataConfig.from_json(json.loads(json.dumps(soft_data.to_json()))) == soft_data
  for bad in (-0.1, 1.5):
    with pytest.raises(ValueError, match="soft_target_weight"):
      dataclasses.replace(soft_data, soft_target_weight=bad)


def test_loss_mixes_the_drawn_bar_and_the_gp_target(borders, soft_data):
  cfg = PFNTrainConfig.tiny(borders)
  model = create_model(cfg.model, 0)
  batch, targets, *_ = make_batch(soft_data, borders, 8, 0, n_context=6)
  batch = jax.tree.map(np.asarray, batch)
  hard = float(loss_fn(model, batch, targets.bars)[0])
  assert float(loss_fn(model, batch, targets, 0.0)[0]) == pytest.approx(hard, rel=1e-6)
  logits = np.asarray(model(batch), np.float64)
  log_p = logits - scipy.special.logsumexp(logits, -1, keepdims=True)
  q = np.asarray(soft_bar_targets(targets), np.float64)
  soft_ce = -(q * log_p[..., :-1]).sum(-1)
  hard_ce = -np.take_along_axis(log_p, targets.bars[..., None], -1)[..., 0]
  feasible = targets.bars < q.shape[-1]
  per = np.where(feasible, 0.3 * hard_ce + 0.7 * soft_ce, hard_ce)
  w = ~np.asarray(batch.context)
  assert float(loss_fn(model, batch, targets, 0.7)[0]) == pytest.approx((per * w).sum() / w.sum(), rel=1e-4)


def test_training_on_soft_targets_reduces_the_loss(borders, soft_data, tmp_path):
  data = dataclasses.replace(PFNDataConfig.tiny(), soft_target_weight=1.0)
  cfg = dataclasses.replace(PFNTrainConfig.tiny(borders), data=data, num_steps=30, log_every=10, checkpoint_every=30,
                            peak_learning_rate=3e-3)
  rows = PFNTrainer(cfg, tmp_path / "soft").run(progress=False)
  assert rows[-1]["loss"] < rows[0]["loss"]


def test_gp_posterior_batch_retries_only_the_examples_whose_factorization_failed():
  from optformer.data_gen import gp
  from optformer.data_gen.prior import PriorConfig
  from optformer.data_gen.task import SyntheticTask
  from optformer.training import data
  prior_cfg = PriorConfig.tiny()
  task = jax.tree.map(lambda a: np.stack([np.asarray(a)] * 2), SyntheticTask.sample(prior_cfg, 11).task)
  s = np.asarray(task.outputscale)
  # Example 1: identical points (a rank-1 kernel matrix) and a noise that only the raised jitter makes positive.
  task = task._replace(noise_variance=np.array([1e-2, -50 * gp.JITTER], np.float32) * s)
  rng = np.random.default_rng(0)
  z = rng.random((2, 12, prior_cfg.max_dims)).astype(np.float32)
  z[1] = z[1, :1]
  y = rng.standard_normal((2, 12)).astype(np.float32)
  mask = np.ones((2, 12), bool)
  first = [np.asarray(a) for a in data._posterior_batch(task, z, y, mask, gp.JITTER)]
  retry = [np.asarray(a) for a in data._posterior_batch(task, z, y, mask, 100 * gp.JITTER)]
  assert np.isfinite(first[0][0]).all() and not np.isfinite(first[0][1]).all()
  mean, var = data.gp_posterior_batch(task, z, y, mask)
  assert isinstance(mean, np.ndarray) and mean.shape == var.shape == (2, 12)
  np.testing.assert_array_equal(mean[0], first[0][0])
  np.testing.assert_array_equal(var[0], first[1][0])
  np.testing.assert_array_equal(mean[1], retry[0][1])
  np.testing.assert_array_equal(var[1], retry[1][1])
  assert np.isfinite(mean).all() and np.isfinite(var).all()
