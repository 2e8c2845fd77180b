"""The training loss: surrogate cross-entropy plus policy behaviour cloning."""

from __future__ import annotations

import jax.numpy as jnp
import optax

from optformer import search_space as ss
from optformer.model import Batch, OptFormer


def loss_fn(model: OptFormer, batch: Batch, policy_index_BxP, policy_weight: float):
  """Scalar loss and metrics of one batch.

  loss = y_nll + policy_weight * x_nll, where
    y_nll: mean cross-entropy (nats) of each trial's objective bin under the
      query prediction from the trials before it (PFN training objective,
      Müller et al. 2022, Eq. 2, with the bar distribution's bins);
    x_nll: mean cross-entropy (nats per used slot) of the behaviour
      algorithm's value tokens at the P chosen trials (OptFormer, Chen et
      al. 2022, Sec. 4: next-token prediction on the algorithm's trials).

  Args:
    batch: Batch of B studies with T trials.
    policy_index_BxP: int [B, P] trials the policy is trained on.

  Returns:
    (loss float [], metrics dict of float []).
  """
  y_logits_BxTxY, x_logits_BxPxDxQ = model(batch, policy_index_BxP)
  q = x_logits_BxPxDxQ.shape[-1]
  y_ce_BxT = optax.softmax_cross_entropy_with_integer_labels(y_logits_BxTxY, batch.y)
  y_w = batch.trial_mask.astype(jnp.float32)
  y_nll = jnp.sum(y_ce_BxT * y_w) / jnp.maximum(y_w.sum(), 1.0)

  x_target_BxPxD = jnp.take_along_axis(batch.x, policy_index_BxP[..., None], axis=1)
  trial_BxP = jnp.take_along_axis(batch.trial_mask, policy_index_BxP, axis=1)
  x_w = (trial_BxP[..., None] & (batch.kinds[:, None, :] != ss.KIND_UNUSED)).astype(jnp.float32)
  x_ce = optax.softmax_cross_entropy_with_integer_labels(x_logits_BxPxDxQ, jnp.clip(x_target_BxPxD, 0, q - 1))
  x_nll = jnp.sum(x_ce * x_w) / jnp.maximum(x_w.sum(), 1.0)
  loss = y_nll + policy_weight * x_nll
  return loss, {"loss": loss, "y_nll": y_nll, "x_nll": x_nll}


def y_nll_per_trial(model: OptFormer, batch: Batch):
  """float [B, T] cross-entropy (nats) of each trial's objective bin (evaluation)."""
  b, t, _ = batch.x.shape
  y_logits, _ = model(batch, jnp.zeros((b, 1), jnp.int32))
  return optax.softmax_cross_entropy_with_integer_labels(y_logits, batch.y)
