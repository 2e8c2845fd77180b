"""Model v2 invariants: queries independent, context order and slot order free, cache == full pass."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optformer.model.features import VARIOGRAM_SCALES, pair_distance, slot_variogram
from optformer.model.network import NEG_INF, Block, PFNConfig, SurrogateBatch, create_model

B, N, D = 2, 12, 4


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "distance_bias"])
def model(request):
  m = create_model(dataclasses.replace(PFNConfig.tiny(), distance_bias=request.param), seed=1)
  if request.param:  # Its output layer starts at zero (uniform weights); make the weights depend on the context.
    m.ard_out.kernel[...] = jax.random.normal(jax.random.key(3), m.ard_out.kernel[...].shape)
  return m


@pytest.fixture(scope="module")
def forward(model):
  graphdef, state = nnx.split(model)
  return jax.jit(lambda b: nnx.merge(graphdef, state)(b))


def make_batch(seed=0, n_context=7):
  rng = np.random.default_rng(seed)
  kinds = np.array([[1, 2, 3, 0], [3, 1, 1, 2]], np.int32)
  nv = np.where(kinds == 2, 50, np.where(kinds == 3, 4, 0)).astype(np.int32)
  x = rng.uniform(size=(B, N, D)).astype(np.float32)
  x = np.where(kinds[:, None] == 3, rng.integers(0, 4, size=(B, N, D)), x).astype(np.float32)
  active = np.broadcast_to(kinds[:, None] > 0, (B, N, D)).copy()
  active[0, 3, 1] = False  # One inactive (conditional) value.
  context = np.broadcast_to(np.arange(N) < n_context, (B, N)).copy()
  feasible = np.ones((B, N), bool)
  feasible[1, 2] = False
  return SurrogateBatch(x=x, active=active, kinds=kinds, num_values=nv, slot_ids=np.array([[0, 3, 5, 1], [2, 4, 6, 7]], np.int32),
                        z=rng.normal(size=(B, N)).astype(np.float32), feasible=feasible, context=context,
                        valid=np.ones((B, N), bool))


def test_logits_have_one_class_per_bar_plus_infeasible(forward):
  out = np.asarray(forward(make_batch()))
  assert out.shape == (B, N, PFNConfig.tiny().num_bins + 1) and np.all(np.isfinite(out))


def test_a_query_does_not_depend_on_other_queries(forward):
  b = make_batch()
  x2 = b.x.copy()
  x2[:, 9:] = np.random.default_rng(5).uniform(size=x2[:, 9:].shape)
  a, c = np.asarray(forward(b)), np.asarray(forward(b._replace(x=x2)))
  np.testing.assert_allclose(a[:, 7:9], c[:, 7:9], atol=1e-5)
  assert not np.allclose(a[:, 9:], c[:, 9:], atol=1e-3)


def test_prediction_does_not_depend_on_context_order(forward):
  b = make_batch()
  perm = np.r_[np.random.default_rng(2).permutation(7), np.arange(7, N)]
  shuffled = SurrogateBatch(*(v[:, perm] if v.ndim >= 2 and v.shape[1] == N else v for v in b))
  np.testing.assert_allclose(np.asarray(forward(b))[:, 7:], np.asarray(forward(shuffled))[:, 7:], atol=1e-5)


def test_prediction_does_not_depend_on_slot_order(forward):
  b = make_batch()
  perm = np.array([2, 0, 3, 1])
  moved = b._replace(x=b.x[..., perm], active=b.active[..., perm], kinds=b.kinds[:, perm], num_values=b.num_values[:, perm],
                     slot_ids=b.slot_ids[:, perm])
  np.testing.assert_allclose(np.asarray(forward(b)), np.asarray(forward(moved)), atol=1e-5)


def test_context_values_matter_and_padding_does_not(forward):
  b = make_batch()
  z2 = b.z.copy()
  z2[:, :7] += 1.0
  assert not np.allclose(np.asarray(forward(b))[:, 7:], np.asarray(forward(b._replace(z=z2)))[:, 7:], atol=1e-3)
  valid = b.valid.copy()
  valid[:, 6] = False  # Drop context trial 6: the same as changing it arbitrarily.
  x2 = b.x.copy()
  x2[:, 6] = 0.123
  p1 = np.asarray(forward(b._replace(valid=valid)))[:, 7:]
  p2 = np.asarray(forward(b._replace(valid=valid, x=x2, z=z2)))
  np.testing.assert_allclose(p1, np.asarray(forward(b._replace(valid=valid, x=x2)))[:, 7:], atol=1e-5)
  assert p2.shape == (B, N, p1.shape[-1])


def test_encoded_context_scores_queries_like_the_full_pass(model, forward):
  b = make_batch()
  ctx = SurrogateBatch(*(v[:, :7] if v.ndim >= 2 and v.shape[1] == N else v for v in b))
  qs = SurrogateBatch(*(v[:, 7:] if v.ndim >= 2 and v.shape[1] == N else v for v in b))
  got = np.asarray(model.score_queries(model.encode_context(ctx), qs))
  np.testing.assert_allclose(got, np.asarray(forward(b))[:, 7:], atol=1e-4)


def test_variogram_tells_the_slot_that_explains_z():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(1, 40, 3)).astype(np.float32)
  z = np.sin(6.0 * x[..., 0]).astype(np.float32)  # Only slot 0 matters.
  kinds = np.array([[1, 1, 0]], np.int32)
  active = np.ones_like(x, bool)
  f = np.asarray(slot_variogram(x, active, kinds, z, np.ones((1, 40), bool)))[0]  # [D, 2 S]
  ratio = f[:, 0::2]  # Semivariance over the mean, per lag scale.
  assert np.all(ratio[0, :3] < 0.3) and np.all(ratio[1, :3] > 0.6), ratio
  assert np.all(f[2] == 0.0)  # The unused slot has no pairs.


def test_block_attention_is_the_masked_biased_softmax():
  blk = Block(16, 2, 2, nnx.Rngs(params=0))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 16)).astype(np.float32)
  src = rng.normal(size=(2, 7, 16)).astype(np.float32)
  mask = np.array([[1, 1, 0, 1, 0, 1, 1], [1, 0, 0, 0, 0, 0, 1]], bool)
  bias = rng.normal(size=(2, 2, 5, 7)).astype(np.float32) * 3.0
  q = np.asarray(blk.q(blk.ln1(x))).reshape(2, 5, 2, 8)
  k, v = np.moveaxis(np.asarray(blk.kv(blk.ln1(src))).reshape(2, 7, 2, 2, 8), 2, 0)
  logits = np.einsum("bshk,bchk->bhsc", q, k) / np.sqrt(8.0) + bias
  w = np.exp(np.where(mask[:, None, None], logits, NEG_INF) - logits.max(-1, keepdims=True))
  o = np.einsum("bhsc,bchk->bshk", w / w.sum(-1, keepdims=True), v).reshape(2, 5, 16)
  h = x + np.asarray(blk.out(o))
  want = h + np.asarray(blk.mlp_out(jax.nn.gelu(blk.mlp_in(blk.ln2(h)))))
  np.testing.assert_allclose(np.asarray(blk(x, src, mask, bias)), want, rtol=1e-5, atol=1e-5)


def direct_variogram(x, active, kinds, z, known):
  """slot_variogram's formula as written in its docstring: ordered pairs, one exp per scale (the reference)."""
  n = x.shape[1]
  pair = known[:, :, None] & known[:, None, :] & ~np.eye(n, dtype=bool)[None]  # [B, N, N]
  dz2 = np.square(z[:, :, None] - z[:, None, :]) * pair
  total = dz2.sum((1, 2)) / np.maximum(pair.sum((1, 2)), 1.0)
  delta = np.asarray(pair_distance(x, active, x, active, kinds), np.float64)  # [B, N, N, D]
  both = active[:, :, None, :] & active[:, None, :, :] & pair[..., None] & (kinds > 0)[:, None, None]
  feats = []
  for s in VARIOGRAM_SCALES:
    w = np.exp(-delta / (2.0 * s * s)) * both
    sw = w.sum((1, 2))
    gamma = np.einsum("bnmd,bnm->bd", w, dz2) / np.maximum(sw, 1e-3)
    feats += [np.clip(gamma / np.maximum(total, 1e-6)[:, None], 0.0, 4.0), np.log1p(sw) / 8.0]
  return np.stack(feats, axis=-1)


@pytest.mark.parametrize("b", [1, 3, 8])
def test_variogram_equals_its_direct_formula(b):
  rng = np.random.default_rng(b)
  n, d = 30, 5
  kinds = rng.integers(0, 4, size=(b, d)).astype(np.int32)
  x = rng.uniform(size=(b, n, d)).astype(np.float32)
  x = np.where(kinds[:, None] == 3, rng.integers(0, 4, size=(b, n, d)), x).astype(np.float32)
  active = (kinds[:, None] > 0) & (rng.uniform(size=(b, n, d)) > 0.1)
  z = rng.normal(size=(b, n)).astype(np.float32)
  known = rng.uniform(size=(b, n)) > 0.3
  got = np.asarray(slot_variogram(x, active, kinds, z, known))
  np.testing.assert_allclose(got, direct_variogram(x, active, kinds, z, known), rtol=1e-4, atol=1e-5)


def test_pair_distance_of_kinds_and_inactive_values():
  kinds = np.array([[1, 3, 2, 0]], np.int32)
  xa = np.array([[[0.2, 1.0, 0.5, 0.3]]], np.float32)
  xb = np.array([[[0.7, 2.0, 0.5, 0.9], [0.2, 1.0, 0.9, 0.1]]], np.float32)
  act_a = np.ones((1, 1, 4), bool)
  act_b = np.array([[[True, True, True, True], [True, True, False, True]]])
  d = np.asarray(pair_distance(xa, act_a, xb, act_b, kinds))[0, 0]  # [C, D]
  np.testing.assert_allclose(d, [[0.25, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], atol=1e-6)
