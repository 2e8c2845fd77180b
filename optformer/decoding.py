"""Constrained decoding of configurations from the policy head.

Slot by slot, each of the M samples draws the token of slot j from the
policy's logits given the history state and the tokens already drawn for
slots < j (causal over slots). Invalid tokens (an integer parameter's
non-integer bins, categories beyond K, ...) carry logit -1e9 (model.NEG_INF),
so only valid values are ever produced: constrained decoding as in
OptFormer (Chen et al. 2022, Sec. 3.3).

Loop state of `lax.fori_loop` over j = 0 .. D-1:
  tokens_MxD  int32 [M, D]  tokens drawn so far (slots >= j hold 0, unseen
                            by slot j's logits thanks to the causal mask);
  logp_M      float [M]     summed log-probabilities of the drawn tokens
                            over used slots;
  key         PRNG key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optformer import search_space as ss
from optformer.model import OptFormer


def sample_tokens(model: OptFormer, state_E, kinds_D, num_values_D, valid_DxQ, key, num_samples: int, temperature: float = 1.0):
  """Draws `num_samples` configurations' value tokens from the policy.

  Args:
    state_E: float [E] history state (model.encode states[:, n]).
    kinds_D, num_values_D: int [D]; valid_DxQ: bool [D, Q].
    key: PRNG key. temperature: > 0; divides the logits.

  Returns:
    tokens int32 [M, D] (valid for every used slot; 0 in unused slots) and
    their log-probabilities float [M] at the given temperature.
  """
  m, d = num_samples, kinds_D.shape[0]
  state_ME = jnp.broadcast_to(state_E, (m, state_E.shape[-1]))
  e = state_E.shape[-1]
  h = model.config.num_heads
  cache = jnp.zeros((len(model.dec_blocks), m, d, h, e // h), state_E.dtype)

  def body(j, carry):
    tokens_MxD, logp_M, key, cache_k, cache_v = carry
    # Incremental over slots (keys and values of earlier slots cached); the Q-way head on slot j only.
    hidden_MxE, cache_k, cache_v = model.policy_decode_step(state_ME, tokens_MxD, kinds_D, num_values_D, j, cache_k, cache_v)
    logits_MxQ = jnp.where(valid_DxQ[j], model.x_head(hidden_MxE) / temperature, -jnp.inf)  # Mask after scaling.
    key, sub = jax.random.split(key)
    # Inverse-CDF sampling: one uniform per sample, not Q Gumbel draws (threefry bits dominate on a CPU).
    logp_MxQ = jax.nn.log_softmax(logits_MxQ)
    cdf_MxQ = jnp.cumsum(jnp.exp(logp_MxQ), axis=-1)
    u_M = jax.random.uniform(sub, (m,)) * cdf_MxQ[:, -1]
    tok_M = jnp.argmax((cdf_MxQ > u_M[:, None]) & valid_DxQ[j][None], axis=-1).astype(jnp.int32)
    lp_M = jnp.take_along_axis(logp_MxQ, tok_M[:, None], axis=1)[:, 0]
    used = kinds_D[j] != ss.KIND_UNUSED
    tokens_MxD = tokens_MxD.at[:, j].set(jnp.where(used, tok_M, 0))
    return tokens_MxD, logp_M + jnp.where(used, lp_M, 0.0), key, cache_k, cache_v

  init = (jnp.zeros((m, d), jnp.int32), jnp.zeros((m,), jnp.float32), key, cache, cache)
  tokens, logp, *_ = jax.lax.fori_loop(0, d, body, init)
  return tokens, logp
