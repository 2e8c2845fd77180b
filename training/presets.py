"""Run configs sized for accelerators: `optformer-train train --preset gpu | pod` (docs/scale.md).

  gpu   one modern GPU (H100 / A100 class, 40-80 GB): E=512, 12 layers (38M parameters), 256 examples of 128 or
        256 points per step (12.3 TFLOP per step on average, counted by XLA)
  pod   a small pod slice (e.g. TPU v5e-16: 4 hosts x 4 chips): E=768, 16 layers (114M parameters), 1024 examples
        per step (143 TFLOP per step)

Both compute in bfloat16 with float32 master weights (`PFNTrainConfig.compute_dtype`) and train on contexts up to
the model's 256 trials. A preset also names the grain worker processes per host that generate its prior
examples (`data_workers`; on this repo's 2-core machine one core makes about 650 examples of 128 points or
350 of 256 per second, so about 460 of these presets' mix, docs/scale.md): not part of the run's config, as
the batches do not depend on it. Bar borders are drawn from the prior when the run starts (train_cli, --bins).

Sizes are set from FLOP arithmetic, not measured on the hardware yet (docs/scale.md says what was run where).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from optformer.model.config import PFNConfig
from optformer.training.data import PFNDataConfig


@dataclasses.dataclass(frozen=True)
class Preset:
  """One named preset: its config (bar borders drawn when a run starts), its bars, the data workers it needs."""

  help: str  # One line for --help.
  config: Callable[[], object]  # () -> PFNTrainConfig with model.borders == () (drawn at run creation).
  bins: int  # Bars of the predictive distribution.
  data_workers: int = 0  # grain worker processes per host that keep the accelerators fed.


def _gpu():
  from optformer.training.train import PFNTrainConfig

  model = PFNConfig(d_model=512, num_heads=8, num_layers=12, mlp_ratio=4, d_slot=128, d_ard=64)
  data = PFNDataConfig(batch_size=256, seq_lens=(128, 256), seq_len_probs=(0.5, 0.5))
  return PFNTrainConfig(model=model, data=data, peak_learning_rate=6e-4, num_steps=200_000, warmup_steps=4000,
                        log_every=100, eval_every=5000, checkpoint_every=1000, compute_dtype="bfloat16")


def _pod():
  from optformer.training.train import PFNTrainConfig

  model = PFNConfig(d_model=768, num_heads=12, num_layers=16, mlp_ratio=4, d_slot=128, d_ard=64)
  data = PFNDataConfig(batch_size=1024, seq_lens=(128, 256), seq_len_probs=(0.5, 0.5))
  return PFNTrainConfig(model=model, data=data, peak_learning_rate=4e-4, num_steps=200_000, warmup_steps=4000,
                        log_every=100, eval_every=5000, checkpoint_every=1000, compute_dtype="bfloat16")


PRESETS = {
    "gpu": Preset("one modern GPU: E=512, 12 layers, batch 256, bfloat16", _gpu, 1000, data_workers=12),
    "pod": Preset("a small pod slice (16 chips, 4 hosts): E=768, 16 layers, global batch 1024, bfloat16", _pod, 1000,
                  data_workers=8),
}


def get(name: str) -> Preset:
  """The preset `name`.

  Raises:
    ValueError: an unknown name (the message lists the known ones).
  """
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}.")
  return PRESETS[name]

