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


class StaticGraph:
  """A model's nnx graphdef as a static jit argument whose hash is computed once.

  jax hashes static arguments on every call; a graphdef's hash walks the
  whole module tree (~4 ms for the shipped model, several times per ask).
  Equal graphdefs compare equal, so engines of one architecture share
  compilations.
  """

  def __init__(self, graphdef):
    self.graphdef, self._hash = graphdef, hash(graphdef)

  def __hash__(self) -> int:
    return self._hash

  def __eq__(self, other) -> bool:
    return isinstance(other, StaticGraph) and (other.graphdef is self.graphdef or other.graphdef == self.graphdef)

  def merge(self, params):
    return nnx.merge(self.graphdef, params)


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
  """A model's jitted history encoding, scoring and proposing at fixed shapes.

  Args:
    model: a trained OptFormer.
  """

  def __init__(self, model: OptFormer):
    self.config = model.config
    self.tok = model.config.tokenizer
    graphdef, self.params = nnx.split(model)
    self.graph = StaticGraph(graphdef)
    self.buckets = history_buckets(model.config.max_trials)

  def _pad_history(self, x_NxD, y_N):
    n = len(y_N)
    if n > self.config.max_trials:
      raise ValueError(f"History of {n} trials exceeds the model's context of {self.config.max_trials} trials.")
    length = bucket(max(n, 1), self.buckets)
    x = np.full((1, length, self.tok.max_params), self.tok.x_pad, np.int32)
    y = np.full((1, length), self.tok.y_pad, np.int32)
    x[0, :n], y[0, :n] = x_NxD, y_N
    return x, y

  def context(self, x_NxD, y_N, enc: tk.SpaceEncoding, algorithm: int) -> "EncodedHistory":
    """Encodes a history once (x_NxD int [n, D] value tokens, y_N int [n] objective tokens); score and
    propose against it any number of times."""
    x, y = self._pad_history(x_NxD, y_N)
    n = len(y_N)
    valid = np.arange(x.shape[1])[None] < n
    states, keys, values = _encode_history(
        self.graph, self.params, x, y, valid, enc.kinds[None], enc.num_values[None], np.array([algorithm], np.int32))
    return EncodedHistory(self, enc, n, states, keys, values, np.concatenate([[[True]], valid], axis=1))


class EncodedHistory:
  """A history encoded once (`Engine.context`): its states and every block's keys and values."""

  def __init__(self, engine: Engine, enc: tk.SpaceEncoding, n: int, states, keys, values, key_mask):
    self.engine, self.enc, self.n = engine, enc, n
    self.states, self.keys, self.values, self.key_mask = states, keys, values, key_mask

  def propose(self, seed: int, num_samples: int, temperature: float = 1.0):
    """Samples configurations from the policy after the history.

    Returns:
      tokens int32 [num_samples, D], log-probabilities float [num_samples].
    """
    e, enc = self.engine, self.enc
    tokens, logp = _propose(
        e.graph, e.params, self.states, np.int32(self.n), enc.kinds[None], enc.num_values[None], enc.valid[None],
        jax.random.key(seed), np.float32(temperature), num_samples=num_samples,
    )
    return np.asarray(tokens), np.asarray(logp)

  def score(self, query_x_MxD):
    """float [M, Y] objective-bin probabilities of each query (int [M, D] value tokens) given the history.

    Queries are padded to a multiple of QUERY_MULTIPLE (one compilation per padded size and bucket).
    """
    e, tok = self.engine, self.engine.tok
    m = len(query_x_MxD)
    padded_m = max(QUERY_MULTIPLE, -(-m // QUERY_MULTIPLE) * QUERY_MULTIPLE)
    q = np.full((1, padded_m, tok.max_params), tok.x_pad, np.int32)
    q[0, :m] = query_x_MxD
    probs = _score(e.graph, e.params, self.keys, self.values, self.key_mask, q, self.enc.kinds[None],
                   self.enc.num_values[None])
    return np.asarray(probs)[:m]


@functools.partial(jax.jit, static_argnums=0)
def _encode_history(graph, params, hist_x, hist_y, hist_valid, kinds, num_values, algorithm):
  return graph.merge(params).encode_history(hist_x, hist_y, hist_valid, kinds, num_values, algorithm)


@functools.partial(jax.jit, static_argnums=0, static_argnames=("num_samples",))
def _propose(graph, params, states, n, kinds, num_values, valid, key, temperature, num_samples):
  model = graph.merge(params)
  return decoding.sample_tokens(model, states[0, n], kinds[0], num_values[0], valid[0], key, num_samples, temperature)


@functools.partial(jax.jit, static_argnums=0)
def _score(graph, params, keys, values, key_mask, query_x, kinds, num_values):
  logits = graph.merge(params).score_cached(keys, values, key_mask, query_x, kinds, num_values)
  return jax.nn.softmax(logits[0], axis=-1)
