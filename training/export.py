"""Export a training run's latest checkpoint as a shippable model with a model card."""

from __future__ import annotations

import json
import pathlib
import platform

import jax
import numpy as np
import orbax.checkpoint as ocp

from optformer import checkpoint
from optformer.training.train import TrainConfig, init_state


def read_metrics(workdir) -> list[dict]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def latest_params(workdir):
  """(TrainConfig, params pure dict, step) from a run's latest orbax checkpoint.

  Raises:
    FileNotFoundError: the run has no checkpoint yet.
  """
  workdir = pathlib.Path(workdir).absolute()
  cfg = TrainConfig.from_dict(json.loads((workdir / "config.json").read_text()))
  manager = ocp.CheckpointManager(workdir / "checkpoints")
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {workdir / 'checkpoints'}.")
  _, params, _, opt_state = init_state(cfg)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), {"params": params, "opt_state": opt_state})
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  return cfg, restored["state"]["params"], step


def export(workdir, out_dir, corpus_info: dict | None = None, command: str = "", note: str = "") -> pathlib.Path:
  """Writes `out_dir` (optformer.checkpoint format) and `out_dir/card.md` (+ `note` under Limits)."""
  cfg, params, step = latest_params(workdir)
  rows = read_metrics(workdir)
  evals = [r for r in rows if "eval_y_nll" in r]
  trials_per_step = cfg.data.batch_size * cfg.data.num_trials
  wall_s = 0.0
  prev_step = 0
  for r in rows:
    wall_s += r["seconds_per_step"] * (r["step"] - prev_step)
    prev_step = r["step"]
  num_params = int(sum(np.size(a) for a in jax.tree.leaves(params)))
  facts = {
      "step": int(step),
      "num_params": num_params,
      "trials_seen": int(step * trials_per_step),
      "tokens_seen": int(step * trials_per_step * (cfg.model.tokenizer.max_params + 1)),
      "train_wall_seconds": round(wall_s, 1),
      "final_train_y_nll": rows[-1]["y_nll"] if rows else None,
      "final_train_x_nll": rows[-1]["x_nll"] if rows else None,
      "heldout_y_nll": evals[-1]["eval_y_nll"] if evals else None,
      "trials_per_second": float(np.median([r["trials_per_s"] for r in rows[-20:]])) if rows else None,
      "machine": f"{platform.machine()}, {jax.devices()[0].platform}, {len(jax.devices())} device(s)",
      "corpus": corpus_info or {},
      "command": command,
  }
  out = checkpoint.save(out_dir, cfg.model, params, metadata=facts)
  (out / "card.md").write_text(model_card(cfg, facts) + (f"\n{note}\n" if note else ""))
  return out


def model_card(cfg: TrainConfig, facts: dict) -> str:
  m, t = cfg.model, cfg.model.tokenizer
  corpus = facts.get("corpus", {})
  return f"""# optformer-gp-v1: model card

A trial-level transformer (surrogate + policy) meta-trained on synthetic
optimization trajectories from a GP prior (model v1; `optformer.Optimizer`'s
default is model v2). Numbers below were written by `training/export.py` from the run's
own logs.

## Model
- backbone: {m.num_layers} layers, d_model {m.d_model}, {m.num_heads} heads, MLP x{m.mlp_ratio}; slot width {m.d_slot}; policy decoder {m.decoder_layers} layer(s)
- parameters: {facts['num_params']:,}
- tokens: {t.num_x_bins} value bins, {t.num_y_bins} objective bins, up to {t.max_params} parameters, context {m.max_trials} trials
- behaviour prompts: {', '.join(m.algorithms)}

## Training data (prior)
- corpus: {json.dumps(corpus, sort_keys=True)}
- GP prior in the spirit of PFNs4BO's HEBO+ (Matérn-3/2 ARD, Gamma hyperpriors on lengthscale and outputscale, LogNormal noise, irrelevant dimensions, input warping, int and categorical parameters); trajectories from random search, Sobol and GP-UCB with the true kernel (see data_gen/).

## Training
- steps: {facts['step']:,} of {cfg.num_steps:,} (batch {cfg.data.batch_size} studies x {cfg.data.num_trials} trials), AdamW peak lr {cfg.peak_learning_rate}, warmup {cfg.warmup_steps}, cosine to {cfg.final_learning_rate_fraction} x peak
- trials seen: {facts['trials_seen']:,}; tokens seen: {facts['tokens_seen']:,} ({t.max_params} value tokens + 1 objective token per trial)
- wall time: {facts['train_wall_seconds']:.0f} s on {facts['machine']}; throughput {facts['trials_per_second']} trials/s
- final train NLL: objective {facts['final_train_y_nll']}, policy {facts['final_train_x_nll']} (nats)
- held-out objective NLL (validation split, nats per trial over {t.num_y_bins} bins): {facts['heldout_y_nll']}

## Reproduce
```
{facts['command']}
```

## Limits
Trained only on synthetic GP-prior functions with at most {t.max_params} parameters and
{m.max_trials}-trial histories; longer histories are truncated to the best half plus the
most recent trials. No conditional parameters. No real-task data.
"""
