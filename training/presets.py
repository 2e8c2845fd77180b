"""Named training presets: a model, data and step budget sized for one kind of machine.

  optformer-train train --workdir runs/x --preset cpu-small      # 8-16 minutes on a 2-core CPU
  optformer-train train --list-presets                          # this table

| preset    | what it is for |
|-----------|----------------|
| default   | the shipped model v2's run: the full model, 1000 bars, 200,000 steps (days on a CPU) |
| tiny      | tests and smoke runs: a 2-layer E=32 model on a 3-parameter prior, 32 bars, 20 steps |
| cpu-small | ablations on a small CPU: E=64, 2 layers, 16 examples of 64 points per step, 128 bars, 1500 steps |
|           | (0.2-0.3 s/step; 8-16 min a run with its evaluations on the project's shared 2-core CPU)       |
| gpu       | one modern GPU (H100 / A100 class): E=512, 12 layers (38M parameters), 256 examples of 128 or 256 |
|           | points per step (12.3 TFLOP per step on average, counted by XLA), bfloat16 compute, 200,000 steps |
| pod       | a small pod slice (e.g. 16 chips on 4 hosts): E=768, 16 layers (114M parameters), 1024 examples |
|           | per step (143 TFLOP per step), bfloat16 compute                                             |

gpu and pod compute in bfloat16 with float32 master weights (`PFNTrainConfig.compute_dtype`), train on
contexts up to the model's 256 trials and name the grain worker processes per host that generate their
prior examples (`data_workers`: not part of the run's config, the batches do not depend on it). Their
sizes come from FLOP arithmetic, not yet measured on the hardware (docs/scale.md says what ran where).

A preset gives a whole `PFNTrainConfig` (without bar borders: they are drawn
from the preset's prior with `bins` bars when a run is created) and the
number of prior batches the borders are drawn from. Flags and `--set`
override its fields. Every preset lives in `PRESETS`, the one place; new
machines add an entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

# Border draws: batches of the prior whose normalized objectives place the bar borders (training/data.py).
BORDER_BATCHES = 48


@dataclasses.dataclass(frozen=True)
class Preset:
  """One named preset: its config (borders still empty), its bars and what it is for."""

  help: str  # One line for --help and the README.
  config: Callable[[], object]  # () -> PFNTrainConfig with model.borders == () (drawn at run creation).
  bins: int  # Bars of the predictive distribution (the default of --bins).
  border_batches: int = BORDER_BATCHES  # Prior batches the borders are drawn from.
  data_workers: int = 0  # grain worker processes per host that keep the accelerators fed (--data-workers default).


def _default():
  from optformer.training.train import PFNTrainConfig

  return PFNTrainConfig()


def _tiny():
  from optformer.training.train import PFNTrainConfig

  cfg = PFNTrainConfig.tiny()
  return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, borders=()))


def _cpu_small():
  from optformer.model.config import PFNConfig
  from optformer.training.data import PFNDataConfig
  from optformer.training.train import PFNTrainConfig

  model = PFNConfig(d_model=64, num_heads=4, num_layers=2, d_slot=32, d_ard=32)
  data = PFNDataConfig(batch_size=16, seq_lens=(64,), seq_len_probs=(1.0,))
  return PFNTrainConfig(model=model, data=data, num_steps=1500, warmup_steps=100, eval_every=750,
                        checkpoint_every=100, eval_batches=2)


def _gpu():
  from optformer.model.config import PFNConfig
  from optformer.training.data import PFNDataConfig
  from optformer.training.train import PFNTrainConfig

  model = PFNConfig(d_model=512, num_heads=8, num_layers=12, mlp_ratio=4, d_slot=128, d_ard=64)
  data = PFNDataConfig(batch_size=256, seq_lens=(128, 256), seq_len_probs=(0.5, 0.5))
  return PFNTrainConfig(model=model, data=data, peak_learning_rate=6e-4, num_steps=200_000, warmup_steps=4000,
                        log_every=100, eval_every=5000, checkpoint_every=1000, compute_dtype="bfloat16")


def _pod():
  from optformer.model.config import PFNConfig
  from optformer.training.data import PFNDataConfig
  from optformer.training.train import PFNTrainConfig

  model = PFNConfig(d_model=768, num_heads=12, num_layers=16, mlp_ratio=4, d_slot=128, d_ard=64)
  data = PFNDataConfig(batch_size=1024, seq_lens=(128, 256), seq_len_probs=(0.5, 0.5))
  return PFNTrainConfig(model=model, data=data, peak_learning_rate=4e-4, num_steps=200_000, warmup_steps=4000,
                        log_every=100, eval_every=5000, checkpoint_every=1000, compute_dtype="bfloat16")


PRESETS: dict[str, Preset] = {
    "default": Preset("the shipped model v2's run: full model, 1000 bars, 200,000 steps (days on a CPU)", _default,
                      1000),
    "tiny": Preset("tests and smoke runs: E=32, 2 layers, a 3-parameter prior, 32 bars, 20 steps (seconds)", _tiny,
                   32, border_batches=8),
    "cpu-small": Preset("ablations on a 2-core CPU: E=64, 2 layers, 16 examples x 64 points per step, 128 bars, "
                        "1500 steps (8-16 min a run on this shared 2-core CPU)", _cpu_small, 128),
    "gpu": Preset("one modern GPU: E=512, 12 layers, batch 256 of 128-256 points, bfloat16", _gpu, 1000,
                  data_workers=12),
    "pod": Preset("a small pod slice (16 chips, 4 hosts): E=768, 16 layers, global batch 1024, bfloat16", _pod, 1000,
                  data_workers=8),
}


def get(name: str) -> Preset:
  """The preset `name`.

  Raises:
    ValueError: an unknown name (the message lists the presets).
  """
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; the presets are {', '.join(PRESETS)}.")
  return PRESETS[name]


def clip_warmup(cfg):
  """(cfg, warning or None): a learning-rate warmup as long as the run or longer is clipped to a tenth of it.

  A warmup of `warmup_steps` >= `num_steps` would end the run before the rate reaches its peak (and the cosine
  schedule would never decay), so it becomes max(1, num_steps // 10) and the warning says so.
  """
  if cfg.warmup_steps < cfg.num_steps:
    return cfg, None
  clipped = max(1, cfg.num_steps // 10)
  return dataclasses.replace(cfg, warmup_steps=clipped), (
      f"warning: the learning-rate warmup ({cfg.warmup_steps} steps) is not shorter than the run "
      f"({cfg.num_steps} steps): clipped to {clipped} steps (set --warmup to choose)")


def table() -> str:
  """The presets as lines "NAME  help" (for --list-presets)."""
  return "\n".join(f"{name:10} {p.help}" for name, p in PRESETS.items())
