"""Export a model v2 training run as a shippable model directory with a model card."""

from __future__ import annotations

import json
import pathlib
import platform

import jax
import numpy as np

from optformer import checkpoint
from optformer.training import evaluate


def read_metrics(workdir) -> list[dict]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def export(trainer, out_dir, note: str = "") -> pathlib.Path:
  """Writes `out_dir` (optformer.checkpoint format "pfn-v2") from a PFNTrainer's current state, and card.md.

  The metadata holds what a warm start on another machine needs: step,
  data position and the training config.
  """
  cfg = trainer.cfg
  rows = read_metrics(trainer.workdir)
  evals = [r for r in rows if any(k.startswith("gap_") for k in r)]
  params = jax.tree.map(np.asarray, trainer.current_params())
  wall, prev = 0.0, 0
  for r in rows:
    wall += r["seconds_per_step"] * (r["step"] - prev)
    prev = r["step"]
  recent = rows[-20:]
  facts = {
      "step": int(trainer.step),
      "data_position": int(trainer.position),
      "num_params": int(sum(np.size(a) for a in jax.tree.leaves(params))),
      "examples_seen": int(trainer.step * cfg.data.batch_size),
      "train_wall_seconds": round(wall, 1),
      "trials_per_second": round(float(np.mean([r["trials_per_s"] for r in recent])), 1) if recent else None,
      "seconds_per_step": round(float(np.mean([r["seconds_per_step"] for r in recent])), 3) if recent else None,
      "final_train_loss": rows[-1]["loss"] if rows else None,
      "heldout": {k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith(("gap_", "nll_"))},
      "machine": f"{platform.machine()}, {jax.devices()[0].platform}, {jax.device_count()} device(s)",
  }
  out = checkpoint.save(out_dir, cfg.model, params, metadata={**facts, "train": cfg.to_dict()})
  (out / "card.md").write_text(card(cfg, facts, note))
  return out


POLICY_TARGETS = {"ei_search": "exact-GP expected-improvement search", "ei": "exact-GP expected-improvement",
                  "best": "best-value"}


def card(cfg, facts: dict, note: str = "") -> str:
  """The model card (markdown) of an exported v2 model."""
  m, d = cfg.model, cfg.data
  held = facts["heldout"]
  sizes = [k[len("gap_"):] for k in held if k.startswith("gap_") and k[len("gap_"):].isdigit()]
  gap_rows = "\n".join(f"| {n} | {held['nll_model_' + n]:.3f} | {held['nll_gp_' + n]:.3f} | {held['gap_' + n]:+.3f} |" for n in sizes)
  by_dims = ""
  if any("_dims_" in k for k in held):
    by_dims = "\nBy the task's number of relevant parameters:\n\n" + evaluate.gap_table_by_dims(held, sizes) + "\n"
  if m.policy_tokens:
    policy_line = (f"Also a policy: it decodes the next configuration parameter by parameter over {m.policy_tokens}\n"
                   f"numeric tokens (optformer/model/policy.py), trained to clone the "
                   f"{POLICY_TARGETS[d.policy_target]} pick of the prior\n"
                   f"(policy loss weight {cfg.policy_weight}, {d.policy_rows} policy rows per example).")
  else:
    policy_line = "It has no policy head; suggestions come from an acquisition search over candidates."
  return f"""# optformer model v2 (order-free in-context surrogate)

Format `pfn-v2` (optformer/model/network.py). A surrogate only: p(y | x, context) as a
full-support bar distribution over {m.num_bins} bars in normalized units
(optformer/model/ynorm.py, optformer/model/bar.py) plus p(infeasible | x).
{policy_line}

## Architecture
- width {m.d_model}, {m.num_layers} layers, {m.num_heads} heads, slot encoder width {m.d_slot},
  {facts['num_params']:,} parameters; {"distance-biased attention (per-slot weights from the context's variograms)" if m.distance_bias else "no distance bias"};
- up to {m.num_slot_ids} parameters (no weight tied to their number), {m.max_categories} categories,
  contexts up to {m.max_context} trials at inference (trained on {', '.join(map(str, d.seq_lens))} points per example).

## Training
- prior: data_gen/examples.py (GP prior "HEBO+" with mixed kinds, ints up to
  {d.examples.prior.max_int_levels} levels, up to {d.examples.prior.max_dims} parameters, BO-like point clouds
  p={d.examples.p_local}, conditional parameters p={d.examples.p_conditional}, failure regions p={d.examples.p_failure});
- optimizer {cfg.optimizer}, peak learning rate {cfg.peak_learning_rate}, batch {d.batch_size};
- step {facts['step']:,} of {cfg.num_steps:,}; {facts['examples_seen']:,} prior examples seen;
  {facts['train_wall_seconds']:,.0f} s of training on {facts['machine']};
  {facts['trials_per_second']} trials/s, {facts['seconds_per_step']} s/step (last logged steps).

## Held-out NLL against the exact GP (nats per query, user units)
GP-prior validation examples, 64 points, context n, the rest queries
(training/evaluate.py); gap = model - exact GP with the true hyperparameters.

| context | model | exact GP | gap |
|---|---|---|---|
{gap_rows}
{by_dims}
## Limits
- Trained on CPU for a fraction of the data PFNs use (0.5-6.5M prior datasets).
{note}
"""
