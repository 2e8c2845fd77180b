"""The train step's faster formulation computes the same function as model v2's original one (docs/throughput.md).

`ReferenceSurrogate` is `PFNSurrogate` with the distance bias and the slot encoder written as in v2's checkpoints
(commit e6964b6): pair distances [B, S, C, D], one einsum and one pad for all layers; the slot sum as an einsum with
the used-slot mask and the value bias added after the product. Same parameters, so a v2 checkpoint (and the v3 run
warm-started from it) loads into either; the tests compare logits, the loss and every gradient.
"""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optformer.model.features import fourier_features, pair_distance, pair_distance_by_slot
from optformer.model.network import PFNConfig, PFNSurrogate, PolicyRows, SurrogateBatch, create_model
from optformer.search_space import KIND_CATEGORICAL
from optformer.training.data import make_batch
from optformer.training.train import PFNTrainConfig, loss_fn

ROOT = pathlib.Path(__file__).resolve().parents[1]


class ReferenceSurrogate(PFNSurrogate):
  """v2's original formulation of the distance bias and the slot encoder (the reference)."""

  def embed_x(self, x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD=None):
    h = self._slot_values(x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD)
    used_BxD = (kinds_BxD > 0).astype(h.dtype)
    return self.slot_out(jnp.einsum("bndg,bd->bng", h, used_BxD))

  def _slot_values(self, x_BxNxD, active_BxNxD, kinds_BxD, num_values_BxD, slot_ids_BxD, decoded_BxNxD=None):
    c = self.config
    slot_BxDxG = self.slot_embedding(kinds_BxD, num_values_BxD, slot_ids_BxD)
    is_cat = (kinds_BxD == KIND_CATEGORICAL)[:, None, :]
    numeric, categorical = active_BxNxD & ~is_cat, active_BxNxD & is_cat
    feats = fourier_features(jnp.clip(x_BxNxD, 0.0, 1.0), c.num_fourier, c.max_frequency)
    table, bias = self.value_proj.kernel[...], self.value_proj.bias[...]
    cat_idx = jnp.clip(jnp.round(x_BxNxD).astype(jnp.int32), 0, c.max_categories - 1)
    one_hot = jax.nn.one_hot(cat_idx, c.max_categories, dtype=feats.dtype)
    inputs = jnp.concatenate([jnp.where(numeric[..., None], feats, 0.0), jnp.where(categorical[..., None], one_hot, 0.0),
                              (~active_BxNxD)[..., None].astype(feats.dtype)], axis=-1)
    weights = jnp.concatenate([table, self.category_emb.embedding[...], self.inactive[...][None]], axis=0)
    v = inputs @ weights + numeric[..., None] * bias
    if decoded_BxNxD is not None:
      v = jnp.where(decoded_BxNxD[..., None], v, self.undecoded[...])
    return jax.nn.gelu(v + slot_BxDxG[:, None])

  def _biases(self, lam_LxBxHxD, xq, aq, xc, ac, kinds, with_global_query: bool, known_q=None):
    delta = pair_distance(xq, aq, xc, ac, kinds)
    if known_q is not None:
      delta = delta * known_q[:, :, None, :]
    bias = -jnp.einsum("bscd,lbhd->lbhsc", delta, lam_LxBxHxD)
    return list(jnp.pad(bias, [(0, 0)] * 3 + [(1 if with_global_query else 0, 0), (1, 0)]))


def _random_inputs(seed, b=3, s=9, c=11, d=6):
  rng = np.random.default_rng(seed)
  kinds = rng.integers(0, 4, size=(b, d)).astype(np.int32)
  def values(n):
    x = rng.uniform(size=(b, n, d)).astype(np.float32)
    off_grid = rng.integers(0, 4, size=(b, n, d)) + rng.uniform(-0.45, 0.45, size=(b, n, d))  # Perturbed categories.
    x = np.where(kinds[:, None] == KIND_CATEGORICAL, off_grid, x).astype(np.float32)
    return x, (kinds[:, None] > 0) & (rng.uniform(size=(b, n, d)) > 0.2)
  return values(s), values(c), kinds


def test_slot_major_pair_distances_equal_pair_distance():
  (xa, aa), (xb, ab), kinds = _random_inputs(0)
  want = np.transpose(np.asarray(pair_distance(xa, aa, xb, ab, kinds)), (0, 3, 1, 2))  # [B, S, C, D] -> [B, D, S, C].
  got = np.asarray(pair_distance_by_slot(xa, aa, xb, ab, kinds))
  np.testing.assert_array_equal(got, want)
  assert np.any(got == 1.0) and np.any((got > 0) & (got < 1))  # Mismatches / one-sided inactivity and distances.


def _both(model: PFNSurrogate):
  """(graphdef of the model, graphdef of the reference, parameters)."""
  graphdef, state = nnx.split(model)
  return graphdef, nnx.split(ReferenceSurrogate(model.config, nnx.Rngs(params=0)))[0], nnx.to_pure_dict(state)


def _assert_same_loss_and_gradients(model, batch, targets, rtol):
  graphdef, reference, params = _both(model)
  value_and_grad = lambda g: jax.jit(jax.value_and_grad(lambda p: loss_fn(nnx.merge(g, p), batch, targets)[0]))(params)
  (loss, grads), (want_loss, want_grads) = value_and_grad(graphdef), value_and_grad(reference)
  assert float(loss) == pytest.approx(float(want_loss), rel=rtol)
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(want_grads))
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=rtol * scale, err_msg=str(path))
  logits = lambda g: np.asarray(jax.jit(lambda p: nnx.merge(g, p)(batch))(params))
  np.testing.assert_allclose(logits(graphdef), logits(reference), rtol=rtol, atol=rtol)


def _synthetic_batch(cfg: PFNConfig, seed=0, b=4, n=16):
  """A batch with every case the formulations differ on: all kinds, off-grid categories, inactive values, unused
  slots, infeasible context trials, contexts of several sizes; targets: random bars (and the infeasible class)."""
  (x, active), _, kinds = _random_inputs(seed, b=b, s=n, d=cfg.num_slot_ids)
  rng = np.random.default_rng(seed)
  context = np.arange(n)[None] < rng.integers(1, n, size=(b, 1))
  num_values = np.where(kinds == KIND_CATEGORICAL, 4, np.where(kinds == 2, 50, 0)).astype(np.int32)
  batch = SurrogateBatch(x=x, active=active, kinds=kinds, num_values=num_values,
                         slot_ids=np.stack([rng.permutation(cfg.num_slot_ids) for _ in range(b)]).astype(np.int32),
                         z=rng.normal(size=(b, n)).astype(np.float32), feasible=rng.uniform(size=(b, n)) > 0.1,
                         context=context, valid=np.ones((b, n), bool))
  return SurrogateBatch(*map(jnp.asarray, batch)), jnp.asarray(rng.integers(0, cfg.num_bins + 1, size=(b, n)), jnp.int32)


def test_the_tiny_train_step_has_the_loss_and_gradients_of_the_reference():
  model = create_model(PFNConfig.tiny(), seed=1)
  model.ard_out.kernel[...] = jax.random.normal(jax.random.key(3), model.ard_out.kernel[...].shape)  # lam != 1.
  _assert_same_loss_and_gradients(model, *_synthetic_batch(model.config), rtol=1e-5)


def test_inference_paths_match_the_reference():
  """encode_context / score_queries and the policy head's rows (known_q) go through the same bias code."""
  cfg = dataclasses.replace(PFNConfig.tiny(), policy_tokens=8, policy_copy=True)
  model = create_model(cfg, seed=2)
  model.ard_out.kernel[...] = jax.random.normal(jax.random.key(4), model.ard_out.kernel[...].shape)
  graphdef, reference, params = _both(model)
  (x, act), _, kinds = _random_inputs(5, b=2, s=10, d=cfg.num_slot_ids)
  b, n, d = x.shape
  ctx = SurrogateBatch(x=x, active=act, kinds=kinds, num_values=np.where(kinds == 3, 4, 0).astype(np.int32),
                       slot_ids=np.tile(np.arange(d, dtype=np.int32), (b, 1)),
                       z=np.linspace(-1, 1, b * n).reshape(b, n).astype(np.float32), feasible=np.ones((b, n), bool),
                       context=np.arange(n)[None].repeat(b, 0) < 6, valid=np.ones((b, n), bool))
  rng = np.random.default_rng(1)
  rows = PolicyRows(x=x[:, :3], active=act[:, :3], decoded=rng.uniform(size=(b, 3, d)) > 0.5)
  @jax.jit
  def outputs(g, params):
    m = nnx.merge(g, params)
    enc = m.encode_context(ctx)
    return (m(ctx), *m.with_policy(ctx, rows), m.score_queries(enc, ctx),
            m.policy_logits(enc, rows, ctx.kinds, ctx.num_values, ctx.slot_ids))
  for got, want in zip(outputs(graphdef, params), outputs(reference, params)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_the_v2_train_step_with_v2_weights_has_the_loss_and_gradients_of_the_reference():
  """v2's config and weights (checkpoints/optformer-v2, the v3 run's warm start) on batches of v2's data, 64 and 128."""
  from optformer import checkpoint

  cfg = PFNTrainConfig.from_dict(json.loads((ROOT / "snapshots/v2/config.json").read_text()))
  cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=4))
  model = checkpoint.load_pfn(ROOT / "checkpoints/optformer-v2")
  assert model.config.borders == cfg.model.borders
  for n in cfg.data.seq_lens:
    batch, targets, *_ = make_batch(cfg.data, np.asarray(cfg.model.borders), cfg.model.num_slot_ids, 0, seq_len=n)
    batch, targets = SurrogateBatch(*map(jnp.asarray, batch)), jax.tree.map(jnp.asarray, targets)
    lam = np.asarray(model.relevance(batch))[:, :, :, np.asarray(batch.kinds[0]) > 0]
    assert lam.max() / lam.min() > 10.0  # Trained relevance weights, not the initial 1s.
    _assert_same_loss_and_gradients(model, batch, targets, rtol=1e-5)
