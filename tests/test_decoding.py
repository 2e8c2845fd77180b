"""Constrained decoding: every sampled token is valid for its slot, seeded, with consistent log-probs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optformer import decoding
from optformer import search_space as ss
from optformer import tokenizer as tk

NUM_SAMPLES = 256


@functools.partial(jax.jit, static_argnums=(0, 7))
def _sample(graphdef, params, state_E, kinds_D, num_values_D, valid_DxQ, key, num_samples, temperature):
  model = nnx.merge(graphdef, params)
  return decoding.sample_tokens(model, state_E, kinds_D, num_values_D, valid_DxQ, key, num_samples, temperature)


@functools.partial(jax.jit, static_argnums=0)
def _teacher_forced_logp(graphdef, params, state_E, tokens_MxD, kinds_D, num_values_D, valid_DxQ, temperature):
  """float [M]: sum over used slots of log p(token_j | state, tokens_<j), from the teacher-forced logits."""
  model = nnx.merge(graphdef, params)
  m, d = tokens_MxD.shape
  logits = model.policy_logits(
      jnp.broadcast_to(state_E, (m, 1, state_E.shape[-1])), tokens_MxD[:, None],
      jnp.broadcast_to(kinds_D, (m, d)), jnp.broadcast_to(num_values_D, (m, d)),
      jnp.broadcast_to(valid_DxQ, (m, *valid_DxQ.shape)),
  )[:, 0] / temperature  # [M, D, Q]
  lp = jnp.take_along_axis(jax.nn.log_softmax(logits), tokens_MxD[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(kinds_D != ss.KIND_UNUSED, lp, 0.0), axis=1)


@pytest.fixture(scope="module")
def split(tiny_model):
  return nnx.split(tiny_model)


@pytest.fixture(scope="module")
def spaces(mixed_space):
  three = ss.SearchSpace([ss.Int("n", 0, 6), ss.Categorical("c", ("a", "b", "c")), ss.Float("x", -1.0, 1.0)])
  return [mixed_space, three]  # 4 slots used, and 3 used + 1 unused


def _check_tokens(tokens, space, enc, tok):
  assert tokens.shape == (NUM_SAMPLES, tok.max_params) and tokens.dtype == np.int32
  for j in range(tok.max_params):
    if enc.kinds[j] == ss.KIND_UNUSED:
      assert np.all(tokens[:, j] == 0)
    else:
      assert enc.valid[j, tokens[:, j]].all(), f"slot {j} got invalid tokens {np.unique(tokens[:, j][~enc.valid[j, tokens[:, j]]])}"
  types = {ss.Float: (float,), ss.Int: (int,)}
  for row in tokens:
    config = tk.decode_x(row, space, enc, tok.num_x_bins)
    assert space.validate(config) == config
    for p in space:
      allowed = types.get(type(p)) or tuple({type(v) for v in getattr(p, "values", getattr(p, "choices", ()))})
      assert type(config[p.name]) in allowed


@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
def test_every_decoded_token_is_valid_for_its_slot(split, spaces, tiny_config, temperature):
  tok = tiny_config.tokenizer
  rng = np.random.default_rng(0)
  for i, space in enumerate(spaces):
    enc = tk.encode_space(space, tok)
    for s in range(2):  # two random history states per space
      state = rng.normal(size=tiny_config.d_model).astype(np.float32) * 3.0
      tokens, logp = _sample(*split, state, enc.kinds, enc.num_values, enc.valid, jax.random.key(10 * i + s), NUM_SAMPLES, temperature)
      _check_tokens(np.asarray(tokens), space, enc, tok)
      assert np.isfinite(logp).all() and np.all(np.asarray(logp) <= 0)


def test_decoding_through_the_engine_after_a_history(tiny_engine, spaces, tiny_config):
  tok = tiny_config.tokenizer
  rng = np.random.default_rng(1)
  for space in spaces:
    enc = tk.encode_space(space, tok)
    history = [space.sample(rng) for _ in range(5)]
    x = tk.encode_configs(history, space, tok)
    y = rng.integers(0, tok.num_y_bins, size=len(history))
    for n in (0, 5):
      tokens, logp = tiny_engine.context(x[:n], y[:n], enc, algorithm=2).propose(seed=n, num_samples=NUM_SAMPLES)
      _check_tokens(tokens, space, enc, tok)
      assert np.isfinite(logp).all() and np.all(logp <= 0)


def test_same_key_same_samples_and_different_key_different_samples(split, spaces, tiny_config):
  tok = tiny_config.tokenizer
  enc = tk.encode_space(spaces[0], tok)
  state = np.random.default_rng(2).normal(size=tiny_config.d_model).astype(np.float32)
  args = (state, enc.kinds, enc.num_values, enc.valid)
  a = _sample(*split, *args, jax.random.key(7), NUM_SAMPLES, 1.0)
  b = _sample(*split, *args, jax.random.key(7), NUM_SAMPLES, 1.0)
  c = _sample(*split, *args, jax.random.key(8), NUM_SAMPLES, 1.0)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])
  assert len({row.tobytes() for row in np.asarray(a[0])}) > 1  # samples differ from each other


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_log_probs_match_teacher_forced_logits(split, spaces, tiny_config, temperature):
  tok = tiny_config.tokenizer
  for i, space in enumerate(spaces):
    enc = tk.encode_space(space, tok)
    state = np.random.default_rng(3 + i).normal(size=tiny_config.d_model).astype(np.float32)
    tokens, logp = _sample(*split, state, enc.kinds, enc.num_values, enc.valid, jax.random.key(i), NUM_SAMPLES, temperature)
    want = _teacher_forced_logp(*split, state, tokens, enc.kinds, enc.num_values, enc.valid, np.float32(temperature))
    np.testing.assert_allclose(np.asarray(logp), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_huge_temperature_still_decodes_only_valid_tokens(split, spaces, tiny_config):
  # The masking must survive the temperature: invalid tokens carry NEG_INF = -1e9, and
  # -1e9 / 1e9 = -1 is no longer a mask. Any temperature > 0 is accepted by Optimizer.
  tok = tiny_config.tokenizer
  enc = tk.encode_space(spaces[1], tok)
  state = np.zeros(tiny_config.d_model, np.float32)
  tokens, _ = _sample(*split, state, enc.kinds, enc.num_values, enc.valid, jax.random.key(0), NUM_SAMPLES, 1e9)
  _check_tokens(np.asarray(tokens), spaces[1], enc, tok)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_sample_frequencies_follow_the_policy_probabilities(split, spaces, tiny_config, temperature):
  """First-slot tokens of many samples: their histogram matches softmax(logits / temperature)."""
  tok = tiny_config.tokenizer
  enc = tk.encode_space(spaces[0], tok)
  state = np.random.default_rng(5).normal(size=tiny_config.d_model).astype(np.float32) * 3.0
  n = 20000
  tokens, _ = _sample(*split, state, enc.kinds, enc.num_values, enc.valid, jax.random.key(11), n, temperature)
  first = np.asarray(tokens)[:, :1]
  model = nnx.merge(*split)
  logits = model.policy_logits(jnp.asarray(state)[None, None], jnp.zeros((1, 1, tok.max_params), jnp.int32),
                               jnp.asarray(enc.kinds)[None], jnp.asarray(enc.num_values)[None],
                               jnp.asarray(enc.valid)[None])[0, 0, 0] / temperature
  want = np.asarray(jax.nn.softmax(logits))
  got = np.bincount(first[:, 0], minlength=tok.num_x_bins) / n
  assert np.abs(got - want).sum() / 2 < 0.03  # total variation; a uniform or argmax sampler is far off
  assert got[~enc.valid[0]].sum() == 0
