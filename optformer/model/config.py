"""Model v2's architecture config (`PFNConfig`), without JAX.

`optformer.checkpoint.read_config` reads and validates a checkpoint's
config.json with it before any model is loaded, so building an `Optimizer`
imports no JAX, flax or orbax (docs/cold_start.md). `optformer.model.network`
re-exports it; the model itself (`network.PFNSurrogate`) lives there.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PFNConfig:
  """Architecture of model v2; saved next to every checkpoint (with the bar borders)."""

  d_model: int = 128  # E: width of the backbone (ablation: docs/model_v2.md).
  num_heads: int = 4  # H: attention heads.
  num_layers: int = 4  # Transformer blocks.
  mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * E.
  d_slot: int = 64  # G: hidden width of the per-slot encoder (summed over slots).
  num_fourier: int = 16  # Frequencies of the value features.
  max_frequency: float = 64.0  # Highest of them, in half-periods per unit interval.
  num_slot_ids: int = 64  # Most parameters a search space may have.
  max_categories: int = 64  # Most choices of a categorical parameter.
  borders: tuple = ()  # Y + 1 bar borders in z units (set from prior samples, see training.pfn_data).
  max_context: int = 256  # Longest context the inference buckets allow.
  distance_bias: bool = True  # Attention bias from per-slot distances weighted by the context's variograms.
  d_ard: int = 64  # Hidden width of the MLP from a slot's variogram to its per-layer, per-head weights.
  # V: tokens of the policy head (optformer/model/policy.py: value bins, levels or categories per parameter);
  # 0: a surrogate only, no policy head (checkpoints from before the head).
  policy_tokens: int = 0
  # The policy head also reads the context's per-slot values through its own attention (a copy pointer:
  # "near which trial's value of this parameter?"); False for heads from before it.
  policy_copy: bool = False
  # How a float/int unit value enters the slot encoder: "fourier" (continuous features) or "tokens"
  # (quantized to V = policy_tokens bins and embedded; the numeric-token ablation).
  value_input: str = "fourier"

  def __post_init__(self):
    if self.policy_tokens < 0:
      raise ValueError(f"policy_tokens must be >= 0, got {self.policy_tokens}.")
    if self.value_input not in ("fourier", "tokens"):
      raise ValueError(f"value_input must be 'fourier' or 'tokens', got {self.value_input!r}.")
    if self.policy_copy and not self.policy_tokens:
      raise ValueError("policy_copy needs a policy head (policy_tokens > 0).")
    if self.value_input == "tokens" and self.policy_tokens < 2:
      raise ValueError(f"value_input='tokens' needs policy_tokens >= 2 bins, got {self.policy_tokens}.")

  @classmethod
  def tiny(cls, borders=None) -> "PFNConfig":
    b = tuple(np.linspace(-3, 3, 33).tolist()) if borders is None else tuple(borders)
    return cls(d_model=32, num_heads=2, num_layers=2, mlp_ratio=2, d_slot=32, num_fourier=4, num_slot_ids=8,
               max_categories=8, borders=b, max_context=64)

  @property
  def num_bins(self) -> int:
    return len(self.borders) - 1

  @property
  def has_policy(self) -> bool:
    return self.policy_tokens > 0

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["borders"] = list(self.borders)
    for key, default in (("policy_tokens", 0), ("value_input", "fourier"), ("policy_copy", False)):
      if d[key] == default:
        del d[key]  # Configs of models from before these knobs stay equal.
    return d

  @classmethod
  def from_dict(cls, d: dict) -> "PFNConfig":
    d = dict(d)
    d["borders"] = tuple(float(v) for v in d.get("borders", ()))
    d.setdefault("distance_bias", False)  # Checkpoints from before the distance bias have none.
    d.setdefault("policy_tokens", 0)  # Checkpoints from before the policy head have none.
    d.setdefault("value_input", "fourier")
    d.setdefault("policy_copy", False)
    return cls(**d)
