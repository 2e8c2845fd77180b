"""Model invariants on a tiny random-init model: what each position may and may not see.

Letters as in model.py: B studies, T history trials, M queries, D slots, Q value bins.
"""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from optformer import search_space as ss
from optformer import tokenizer as tk
from optformer.model import NEG_INF, Batch

B, T, M = 2, 6, 3
N_VALID = (T, 4)  # row 1 holds 4 real trials and 2 padded ones
ATOL = 1e-5  # "unchanged": equal up to float32 reassociation
CHANGED = 1e-4  # "changed": some output moved by more than this


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef, params, inputs):
  model = nnx.merge(graphdef, params)
  states, queries = model.encode(**inputs)
  return states, model.y_logits(queries)


@functools.partial(jax.jit, static_argnums=0)
def _train_forward(graphdef, params, batch):
  return nnx.merge(graphdef, params)(batch)


@functools.partial(jax.jit, static_argnums=0)
def _policy(graphdef, params, state, x, kinds, num_values, valid):
  return nnx.merge(graphdef, params).policy_logits(state, x, kinds, num_values, valid)


@pytest.fixture(scope="module")
def split(tiny_model):
  return nnx.split(tiny_model)


@pytest.fixture(scope="module")
def encodings(tiny_config, mixed_space):
  small = ss.SearchSpace([ss.Categorical("c", ("a", "b", "c")), ss.Float("x", -1.0, 1.0), ss.Int("n", 0, 5)])
  return [tk.encode_space(space, tiny_config.tokenizer) for space in (mixed_space, small)]


def _sample_x(rng, encodings, n, tok):
  """int32 [B, n, D] valid value tokens per slot (PAD in unused slots)."""
  x = np.full((B, n, tok.max_params), tok.x_pad, np.int32)
  for b, enc in enumerate(encodings):
    for j in np.flatnonzero(enc.kinds):
      x[b, :, j] = rng.choice(np.flatnonzero(enc.valid[j]), size=n)
  return x


def _inputs(encodings, tok, seed=0):
  rng = np.random.default_rng(seed)
  hist_valid = np.arange(T)[None] < np.array(N_VALID)[:, None]
  hist_x = _sample_x(rng, encodings, T, tok)
  hist_y = rng.integers(0, tok.num_y_bins, size=(B, T)).astype(np.int32)
  hist_x[~hist_valid], hist_y[~hist_valid] = tok.x_pad, tok.y_pad
  return dict(
      hist_x=hist_x, hist_y=hist_y, hist_valid=hist_valid,
      query_x=_sample_x(rng, encodings, M, tok),
      query_context=np.array([[2, T, T], [N_VALID[1], N_VALID[1], T]], np.int32),  # row 1, query 2: sees padding too
      kinds=np.stack([e.kinds for e in encodings]), num_values=np.stack([e.num_values for e in encodings]),
      algorithm=np.array([0, 2], np.int32),
  )


def _run(split, inputs):
  states, y_logits = _encode(*split, inputs)
  return np.asarray(states), np.asarray(y_logits)


def _changed(a, b):
  return np.max(np.abs(a - b)) > CHANGED


def test_outputs_have_documented_shapes_and_are_finite(split, encodings, tiny_config):
  tok = tiny_config.tokenizer
  states, y_logits = _run(split, _inputs(encodings, tok))
  assert states.shape == (B, 1 + T, tiny_config.d_model)
  assert y_logits.shape == (B, M, tok.num_y_bins)
  assert np.isfinite(states).all() and np.isfinite(y_logits).all()


def test_query_prediction_does_not_depend_on_other_queries(split, encodings, tiny_config):
  tok = tiny_config.tokenizer
  base = _inputs(encodings, tok)
  _, y0 = _run(split, base)
  other = dict(base, query_x=base["query_x"].copy())
  other["query_x"][:, 1] = _sample_x(np.random.default_rng(1), encodings, 1, tok)[:, 0]
  _, y1 = _run(split, other)
  np.testing.assert_allclose(y1[:, [0, 2]], y0[:, [0, 2]], atol=ATOL)
  assert _changed(y1[:, 1], y0[:, 1])  # the changed query itself moves
  # Permuting queries (with their contexts) permutes the predictions.
  perm = [2, 0, 1]
  permuted = dict(base, query_x=base["query_x"][:, perm], query_context=base["query_context"][:, perm])
  np.testing.assert_allclose(_run(split, permuted)[1], y0[:, perm], atol=ATOL)


def test_history_states_do_not_depend_on_queries(split, encodings, tiny_config):
  tok = tiny_config.tokenizer
  base = _inputs(encodings, tok)
  s0, y0 = _run(split, base)
  s1, y1 = _run(split, dict(base, query_x=_sample_x(np.random.default_rng(2), encodings, M, tok)))
  np.testing.assert_allclose(s1, s0, atol=ATOL)
  assert _changed(y1, y0)


@pytest.mark.parametrize("k", [0, 2, T - 1])
def test_state_after_n_trials_does_not_depend_on_later_trials(split, encodings, tiny_config, k):
  tok = tiny_config.tokenizer
  base = _inputs(encodings, tok)
  s0, y0 = _run(split, base)
  other = dict(base, hist_x=base["hist_x"].copy(), hist_y=base["hist_y"].copy())
  other["hist_x"][0, k] = _sample_x(np.random.default_rng(3), encodings, 1, tok)[0, 0]
  other["hist_y"][0, k] = (base["hist_y"][0, k] + tok.num_y_bins // 2) % tok.num_y_bins
  s1, y1 = _run(split, other)
  # states[:, n] summarizes trials < n; trial k enters at n = k + 1.
  np.testing.assert_allclose(s1[0, : k + 1], s0[0, : k + 1], atol=ATOL)
  assert _changed(s1[0, k + 1], s0[0, k + 1])
  # Queries whose context ends before trial k do not see it; the others do.
  sees = base["query_context"][0] > k
  np.testing.assert_allclose(y1[0, ~sees], y0[0, ~sees], atol=ATOL)
  assert _changed(y1[0, sees], y0[0, sees])
  np.testing.assert_allclose(s1[1], s0[1], atol=ATOL)  # other studies in the batch are untouched
  np.testing.assert_allclose(y1[1], y0[1], atol=ATOL)


def test_padded_history_trials_do_not_change_outputs(split, encodings, tiny_config):
  tok = tiny_config.tokenizer
  base = _inputs(encodings, tok)
  s0, y0 = _run(split, base)
  n = N_VALID[1]
  other = dict(base, hist_x=base["hist_x"].copy(), hist_y=base["hist_y"].copy())
  other["hist_x"][1, n:] = _sample_x(np.random.default_rng(4), encodings, T - n, tok)[1]
  other["hist_y"][1, n:] = np.arange(T - n)
  s1, y1 = _run(split, other)
  np.testing.assert_allclose(s1[1, : n + 1], s0[1, : n + 1], atol=ATOL)
  np.testing.assert_allclose(y1, y0, atol=ATOL)  # incl. the query whose context spans the padding


def _batch(encodings, tok, seed=0):
  inputs = _inputs(encodings, tok, seed)
  return Batch(
      x=inputs["hist_x"], y=inputs["hist_y"], trial_mask=inputs["hist_valid"], kinds=inputs["kinds"],
      num_values=inputs["num_values"], valid=np.stack([e.valid for e in encodings]), algorithm=inputs["algorithm"],
  )


def test_training_pass_hides_each_trials_own_objective(split, encodings, tiny_config):
  tok = tiny_config.tokenizer
  batch = _batch(encodings, tok)
  y0, x0 = map(np.asarray, _train_forward(*split, batch))
  assert y0.shape == (B, T, tok.num_y_bins) and x0.shape == (B, T, tok.max_params, tok.num_x_bins)
  assert np.isfinite(y0).all()
  k = 2
  y = batch.y.copy()
  y[0, k] = (y[0, k] + tok.num_y_bins // 2) % tok.num_y_bins
  y1, x1 = map(np.asarray, _train_forward(*split, batch._replace(y=y)))
  # Trial t's objective prediction and its policy step see only trials < t (and trial t's x).
  np.testing.assert_allclose(y1[0, : k + 1], y0[0, : k + 1], atol=ATOL)
  np.testing.assert_allclose(x1[0, : k + 1], x0[0, : k + 1], atol=ATOL)
  assert _changed(y1[0, k + 1 :], y0[0, k + 1 :])
  assert _changed(x1[0, k + 1 :], x0[0, k + 1 :])


def test_policy_logits_mask_invalid_tokens_and_are_causal_over_slots(split, encodings, tiny_config):
  tok = tiny_config.tokenizer
  rng = np.random.default_rng(5)
  batch = _batch(encodings, tok)
  state = rng.normal(size=(B, T, tiny_config.d_model)).astype(np.float32)
  logits = np.asarray(_policy(*split, state, batch.x, batch.kinds, batch.num_values, batch.valid))
  assert logits.shape == (B, T, tok.max_params, tok.num_x_bins)
  valid = np.broadcast_to(batch.valid[:, None], logits.shape)
  assert np.all(logits[~valid] == NEG_INF)
  assert np.isfinite(logits).all() and np.all(logits[valid] > NEG_INF / 2)
  # Slot j's logits depend on the tokens of slots < j only.
  for j in range(tok.max_params - 1):
    x = batch.x.copy()
    tokens = np.flatnonzero(encodings[0].valid[j])  # study 0 uses every slot
    x[0, :, j] = tokens[(np.searchsorted(tokens, x[0, :, j]) + 1) % len(tokens)]  # the next valid token
    other = np.asarray(_policy(*split, state, x, batch.kinds, batch.num_values, batch.valid))
    np.testing.assert_allclose(other[:, :, : j + 1], logits[:, :, : j + 1], atol=ATOL)
    assert _changed(other[0, :, j + 1], logits[0, :, j + 1])


@functools.partial(jax.jit, static_argnums=0)
def _cached(graphdef, params, inputs, key_mask):
  model = nnx.merge(graphdef, params)
  states, keys, values = model.encode_history(
      inputs["hist_x"], inputs["hist_y"], inputs["hist_valid"], inputs["kinds"], inputs["num_values"], inputs["algorithm"])
  return states, model.score_cached(keys, values, key_mask, inputs["query_x"], inputs["kinds"], inputs["num_values"])


def test_cached_history_scoring_equals_the_full_pass(split, encodings, tiny_config):
  """Inference encodes the history once and scores queries against its keys and values: same numbers."""
  tok = tiny_config.tokenizer
  base = _inputs(encodings, tok)
  n = np.array(N_VALID)
  base["query_context"] = np.repeat(n[:, None], M, axis=1).astype(np.int32)
  s0, y0 = _run(split, base)
  key_mask = np.concatenate([np.ones((B, 1), bool), base["hist_valid"] & (np.arange(T)[None] < n[:, None])], axis=1)
  s1, y1 = (np.asarray(a) for a in _cached(*split, base, key_mask))
  np.testing.assert_allclose(s1, s0, atol=ATOL)
  np.testing.assert_allclose(y1, y0, atol=ATOL)
  # A shorter context in the mask is a different prediction (the mask is used).
  short = key_mask.copy()
  short[:, 2:] = False
  assert _changed(np.asarray(_cached(*split, base, short)[1]), y0)
