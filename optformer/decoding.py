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
  state = jnp.broadcast_to(state_E, (m, 1, state_E.shape[-1]))
  kinds = jnp.broadcast_to(kinds_D, (m, d))
  num_values = jnp.broadcast_to(num_values_D, (m, d))
  valid = jnp.broadcast_to(valid_DxQ, (m, *valid_DxQ.shape))

  def body(j, carry):
    tokens_MxD, logp_M, key = carry
    logits_MxQ = model.policy_logits(state, tokens_MxD[:, None], kinds, num_values, valid)[:, 0, j]
    logits_MxQ = jnp.where(valid[:, j], logits_MxQ / temperature, -jnp.inf)  # Mask after scaling.
    key, sub = jax.random.split(key)
    tok_M = jax.random.categorical(sub, logits_MxQ).astype(jnp.int32)
    lp_M = jnp.take_along_axis(jax.nn.log_softmax(logits_MxQ), tok_M[:, None], axis=1)[:, 0]
    used = kinds_D[j] != ss.KIND_UNUSED
    tokens_MxD = tokens_MxD.at[:, j].set(jnp.where(used, tok_M, 0))
    return tokens_MxD, logp_M + jnp.where(used, lp_M, 0.0), key

  init = (jnp.zeros((m, d), jnp.int32), jnp.zeros((m,), jnp.float32), key)
  tokens, logp, _ = jax.lax.fori_loop(0, d, body, init)
  return tokens, logp
