"""Model v2 invariants: queries independent, context order and slot order free, cache == full pass."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optformer.pfn import PFNConfig, SurrogateBatch, create_model

B, N, D = 2, 12, 4


@pytest.fixture(scope="module")
def model():
  return create_model(PFNConfig.tiny(), seed=1)


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
  states, mask = model.encode_context(ctx)
  got = np.asarray(model.score_queries(states, mask, qs))
  np.testing.assert_allclose(got, np.asarray(forward(b))[:, 7:], atol=1e-4)
