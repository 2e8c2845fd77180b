"""The policy of model v2: decode the next configuration parameter by parameter over numeric tokens.

Letters: D parameter slots, V = PFNConfig.policy_tokens tokens, n samples.

Tokens of a slot (one vocabulary of V for every kind; `network.value_tokens`):
  * float: token b is the value bin [b / V, (b + 1) / V) of the unit value;
    a decoded value is uniform inside its bin;
  * ordinal of L levels: L <= V: token i is level i (unit value i / (L - 1));
    L > V: bins as for a float, the value then snapped to the nearest level;
  * categorical of K <= V categories: token k is category k.
Tokens a slot cannot take (>= L, >= K) have logit NEG_INF (`network.token_mask`),
and a child parameter is decoded only where its decoded parent allows it, so
every sample lies in its search space by construction.

Decoding: one `lax.fori_loop` step per slot in a decode order that puts
parents before their children; each step scores the n partly decoded rows
against the encoded context (`PFNSurrogate.policy_logits`), samples the
slot's token at a temperature, and marks the slot's disallowed children
decoded-inactive. One compilation per (model, D, n, context length): pad
the context to a bucket (as pfn_inference does for queries) to keep it so.
Training (training/train.py) teaches the same rows in any order.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optformer.model.network import EncodedContext, PolicyRows, token_mask, value_tokens
from optformer.search_space import KIND_CATEGORICAL, KIND_ORDINAL


class DecodeSpace(NamedTuple):
  """A search space as the decoder reads it (build with `decode_space`)."""

  kinds: jax.Array  # int32 [D] search_space.KIND_* (0 unused).
  num_values: jax.Array  # int32 [D] levels / categories, 0 for floats.
  slot_ids: jax.Array  # int32 [D] distinct ids in [0, num_slot_ids).
  order: jax.Array  # int32 [D] a permutation of the slots, every parent before its children.
  parent: jax.Array  # int32 [D] the slot's parent slot, -1 for a root.
  allowed: jax.Array  # bool [D, V] parent tokens under which the slot is active (all True for roots).


def decode_space(kinds, num_values, slot_ids, num_tokens: int, parent=None, allowed=None, order=None) -> DecodeSpace:
  """Checks and packs a search space for `sample` / `log_prob`.

  Args:
    kinds, num_values, slot_ids: int [D] as in `network.SurrogateBatch` (one study).
    num_tokens: V, the model's `PFNConfig.policy_tokens`.
    parent: int [D], the parent slot of each child parameter, -1 for a root (default: all roots).
    allowed: bool [D, V], the parent tokens under which a child is active (ignored for roots).
    order: int [D], the decode order (default: by depth in the parent tree, then by slot).

  Raises:
    ValueError: a categorical parameter of more than V categories; arrays of the wrong shape; a parent that
      is out of range, itself, unused or not before its child in `order`; `order` not a permutation.
  """
  kinds, num_values = np.asarray(kinds, np.int32), np.asarray(num_values, np.int32)
  d = kinds.shape[0]
  slot_ids = np.asarray(slot_ids, np.int32)
  if kinds.ndim != 1 or num_values.shape != (d,) or slot_ids.shape != (d,):
    raise ValueError(f"kinds, num_values and slot_ids must be [D] arrays, got {kinds.shape}, {num_values.shape}, "
                     f"{slot_ids.shape}.")
  big = (kinds == KIND_CATEGORICAL) & (num_values > num_tokens)
  if big.any():
    raise ValueError(f"Slot {int(np.argmax(big))} has {int(num_values[big][0])} categories; the policy decodes "
                     f"at most policy_tokens={num_tokens}.")
  parent = np.full(d, -1, np.int32) if parent is None else np.asarray(parent, np.int32)
  allowed = np.ones((d, num_tokens), bool) if allowed is None else np.asarray(allowed, bool)
  if parent.shape != (d,) or allowed.shape != (d, num_tokens):
    raise ValueError(f"parent must be [{d}] and allowed [{d}, {num_tokens}], got {parent.shape}, {allowed.shape}.")
  bad = (parent >= d) | (parent < -1) | (parent == np.arange(d))
  bad |= (parent >= 0) & (kinds[np.maximum(parent, 0)] == 0)
  if bad.any():
    raise ValueError(f"Slot {int(np.argmax(bad))} has parent {int(parent[bad][0])}; expected -1 or another used "
                     f"slot in [0, {d}).")
  if order is None:
    depth = np.zeros(d, int)
    for _ in range(d):
      depth = np.where(parent >= 0, depth[np.maximum(parent, 0)] + 1, 0)
    order = np.lexsort((np.arange(d), depth))
  order = np.asarray(order, np.int32)
  if sorted(order.tolist()) != list(range(d)):
    raise ValueError(f"order must be a permutation of range({d}), got {order.tolist()}.")
  pos = np.argsort(order)
  late = (parent >= 0) & (pos[np.maximum(parent, 0)] > pos)
  if late.any():
    raise ValueError(f"Slot {int(np.argmax(late))} comes before its parent {int(parent[late][0])} in the decode order.")
  return DecodeSpace(*map(jnp.asarray, (kinds, num_values, slot_ids, order, parent, allowed)))


def token_values(tokens, uniform, kinds, num_values, num_tokens: int):
  """float32 unit-form values of tokens (`tokens`' shape [..., D]); `uniform` in [0, 1) places a float in its bin."""
  n = num_values.astype(jnp.float32)
  denom = jnp.maximum(n - 1.0, 1.0)
  t = tokens.astype(jnp.float32)
  in_bin = jnp.clip((t + uniform) / num_tokens, 0.0, 1.0)
  ordinal = jnp.where(n <= num_tokens, t, jnp.round(in_bin * denom)) / denom
  return jnp.where(kinds == KIND_CATEGORICAL, t, jnp.where(kinds == KIND_ORDINAL, ordinal, in_bin))


class _Loop(NamedTuple):
  """State of the decoding loop (n rows)."""

  x: jax.Array  # float32 [n, D] decoded unit values (0 elsewhere).
  active: jax.Array  # bool [n, D] decoded and active.
  decoded: jax.Array  # bool [n, D] decoded (value or inactive) so far.
  tokens: jax.Array  # int32 [n, D] decoded tokens (0 where inactive or undecoded).
  log_prob: jax.Array  # float32 [n] sum of the decoded tokens' log-probabilities.


@functools.partial(jax.jit, static_argnames=("graphdef", "num", "teacher"))
def _decode(graphdef, params, enc: EncodedContext, space: DecodeSpace, forced_NxD, forced_units_NxD, key,
            temperature, num: int, teacher: bool) -> _Loop:
  """The decoding loop: sampled tokens, or (teacher) the forced tokens with their given unit values."""
  model = nnx.merge(graphdef, params)
  v = model.config.policy_tokens
  d = space.kinds.shape[0]
  used = space.kinds > 0
  start = _Loop(jnp.zeros((num, d)), jnp.zeros((num, d), bool), jnp.broadcast_to(~used, (num, d)),
                jnp.zeros((num, d), jnp.int32), jnp.zeros((num,)))

  def step(t, s: _Loop) -> _Loop:
    slot = space.order[t]
    rows = PolicyRows(s.x[None], s.active[None], s.decoded[None])
    logits = model.policy_logits(enc, rows, space.kinds[None], space.num_values[None], space.slot_ids[None])
    logp_NxV = jax.nn.log_softmax(logits[0, :, slot, :].astype(jnp.float32) / temperature, -1)
    k_tok, k_bin = jax.random.split(jax.random.fold_in(key, t))
    tok = forced_NxD[:, slot] if teacher else jax.random.categorical(k_tok, logp_NxV)
    on = ~s.decoded[:, slot]  # Unused, or a child its parent switched off: skipped.
    value = token_values(tok, jax.random.uniform(k_bin, (num,)), space.kinds[slot], space.num_values[slot], v)
    if teacher:
      value = forced_units_NxD[:, slot]
    picked = jnp.take_along_axis(logp_NxV, tok[:, None], -1)[:, 0]
    # Children of this slot that its token (or its inactivity) switches off are decoded as inactive now.
    child = (space.parent == slot)[None, :]  # [1, D]
    off = child & ~(on[:, None] & space.allowed[:, tok].T)  # [n, D]
    return _Loop(
        x=s.x.at[:, slot].set(jnp.where(on, value, 0.0)),
        active=s.active.at[:, slot].set(on) & ~off,
        decoded=s.decoded.at[:, slot].set(True) | off,
        tokens=s.tokens.at[:, slot].set(jnp.where(on, tok, 0)),
        log_prob=s.log_prob + jnp.where(on, picked, 0.0),
    )

  return jax.lax.fori_loop(0, d, step, start)


def _checked(model, enc: EncodedContext):
  """(graphdef, params) of a model with a policy head, after checking the context is one study's."""
  if model.config.policy_tokens <= 0:
    raise ValueError("This model has no policy head (PFNConfig.policy_tokens = 0).")
  if enc.key_mask.shape[0] != 1:
    raise ValueError(f"The policy decodes for one study (B = 1), got an encoded context of {enc.key_mask.shape[0]}.")
  return nnx.split(model)


def sample(model, enc: EncodedContext, space: DecodeSpace, num: int, key, temperature: float = 1.0):
  """Samples `num` configurations of one study from the policy.

  Args:
    model: a `network.PFNSurrogate` with a policy head (PFNConfig.policy_tokens > 0).
    enc: `model.encode_context` of ONE study's context (B = 1).
    space: `decode_space` of the study's search space (the same slots as the context).
    num: n, samples decoded in parallel (one compilation per n).
    key: a jax PRNG key.
    temperature: > 0; divides the logits (1: the model's distribution, -> 0: greedy).

  Returns:
    (units float32 [n, D], active bool [n, D]): unit-form values (float in [0, 1], ordinal levels i / (L - 1),
    category index as a float; 0 where inactive or unused) and the active slots. Valid by construction.

  Raises:
    ValueError: no policy head, an encoded context of B != 1, or temperature <= 0.
  """
  graphdef, params = _checked(model, enc)
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature}.")
  d = space.kinds.shape[0]
  out = _decode(graphdef, params, enc, space, jnp.zeros((num, d), jnp.int32), jnp.zeros((num, d)), key,
                jnp.float32(temperature), num, False)
  return out.x, out.active


def log_prob(model, enc: EncodedContext, space: DecodeSpace, units, active):
  """float32 [n]: log-probability of the tokens of n configurations under the policy (teacher forcing).

  units: float [n, D] unit-form values; active: bool [n, D]. A child counts only where its parent's token
  allows it (as in `sample`). Only tokens count (a float's place inside its bin is not a token); temperature 1.

  Raises:
    ValueError: as `sample`.
  """
  graphdef, params = _checked(model, enc)
  units, active = jnp.asarray(units, jnp.float32), jnp.asarray(active, bool)
  num = units.shape[0]
  tokens = jnp.where(active, value_tokens(units, space.kinds, space.num_values, space.allowed.shape[1]), 0)
  out = _decode(graphdef, params, enc, space, tokens, units, jax.random.key(0), jnp.float32(1.0), num, True)
  return out.log_prob
