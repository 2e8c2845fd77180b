"""Fixed-shape, jitted calls of a model on one study's history.

Histories are padded to the next *bucket* length (8, 16, 32, 64, ... up to
the model's `max_trials`) and query sets to a multiple of 64, so a growing
study compiles at most once per bucket instead of on every call.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optformer import decoding
from optformer import tokenizer as tk
from optformer.model import OptFormer

QUERY_MULTIPLE = 64


def history_buckets(max_trials: int) -> tuple[int, ...]:
  """Padded history lengths: powers of two from 8, then max_trials."""
  out, b = [], 8
  while b < max_trials:
    out.append(b)
    b *= 2
  return tuple(out) + (max_trials,)


def bucket(n: int, buckets) -> int:
  for b in buckets:
    if n <= b:
      return b
  raise ValueError(f"History of {n} trials exceeds the largest bucket {buckets[-1]}.")


class Engine:
  """A model's propose/score functions at fixed shapes.

  Args:
    model: a trained OptFormer.
  """

  def __init__(self, model: OptFormer):
    self.config = model.config
    self.tok = model.config.tokenizer
    self.graphdef, self.params = nnx.split(model)
    self.buckets = history_buckets(model.config.max_trials)
    self._propose = functools.partial(_propose, self.graphdef)
    self._score = functools.partial(_score, self.graphdef)

  def _pad_history(self, x_NxD, y_N):
    n = len(y_N)
    if n > self.config.max_trials:
      raise ValueError(f"History of {n} trials exceeds the model's context of {self.config.max_trials} trials.")
    length = bucket(max(n, 1), self.buckets)
    x = np.full((1, length, self.tok.max_params), self.tok.x_pad, np.int32)
    y = np.full((1, length), self.tok.y_pad, np.int32)
    x[0, :n], y[0, :n] = x_NxD, y_N
    return x, y

  def propose(self, x_NxD, y_N, enc: tk.SpaceEncoding, algorithm: int, seed: int, num_samples: int, temperature: float = 1.0):
    """Samples configurations from the policy after the history.

    Args:
      x_NxD: int [n, D] history value tokens; y_N: int [n] objective tokens.
      enc: the search space's encoding. algorithm: behaviour prompt id.

    Returns:
      tokens int32 [num_samples, D], log-probabilities float [num_samples].
    """
    x, y = self._pad_history(x_NxD, y_N)
    tokens, logp = self._propose(
        self.params, x, y, np.int32(len(y_N)), enc.kinds[None], enc.num_values[None], enc.valid[None],
        np.array([algorithm], np.int32), jax.random.key(seed), np.float32(temperature), num_samples=num_samples,
    )
    return np.asarray(tokens), np.asarray(logp)

  def score(self, x_NxD, y_N, enc: tk.SpaceEncoding, algorithm: int, query_x_MxD):
    """float [M, Y] objective-bin probabilities of each query given the history."""
    x, y = self._pad_history(x_NxD, y_N)
    m = len(query_x_MxD)
    padded_m = max(QUERY_MULTIPLE, -(-m // QUERY_MULTIPLE) * QUERY_MULTIPLE)
    q = np.full((1, padded_m, self.tok.max_params), self.tok.x_pad, np.int32)
    q[0, :m] = query_x_MxD
    probs = self._score(
        self.params, x, y, np.int32(len(y_N)), q, enc.kinds[None], enc.num_values[None], np.array([algorithm], np.int32)
    )
    return np.asarray(probs)[:m]


@functools.partial(jax.jit, static_argnums=0, static_argnames=("num_samples",))
def _propose(graphdef, params, hist_x, hist_y, n, kinds, num_values, valid, algorithm, key, temperature, num_samples):
  model = nnx.merge(graphdef, params)
  hist_valid = jnp.arange(hist_x.shape[1])[None] < n
  dummy_q = jnp.zeros((1, 1, hist_x.shape[2]), jnp.int32)
  states, _ = model.encode(hist_x, hist_y, hist_valid, dummy_q, jnp.zeros((1, 1), jnp.int32), kinds, num_values, algorithm)
  return decoding.sample_tokens(model, states[0, n], kinds[0], num_values[0], valid[0], key, num_samples, temperature)


@functools.partial(jax.jit, static_argnums=0)
def _score(graphdef, params, hist_x, hist_y, n, query_x, kinds, num_values, algorithm):
  model = nnx.merge(graphdef, params)
  hist_valid = jnp.arange(hist_x.shape[1])[None] < n
  context = jnp.full(query_x.shape[:2], n, jnp.int32)
  _, queries = model.encode(hist_x, hist_y, hist_valid, query_x, context, kinds, num_values, algorithm)
  return jax.nn.softmax(model.y_logits(queries)[0], axis=-1)
