"""Short probes of whether a fresh model v2 learns to read x on a restricted prior.

A probe trains a fresh model for a few hundred steps and, four times along the way, reports
the held-out NLL gap to the exact GP at contexts 10 and 30 (training/evaluate.py, also split
by the task's number of relevant parameters) and the correlation of the predicted median
with the true z of the queries at context 30 (near 0: the model predicts the context's
y distribution and ignores x). Findings: docs/model_v2.md, "The model barely reads x".

  optformer-train probe --max-dims 4 --steps 800 --d-slot 128      # GP prior, 1-4 floats
  optformer-train probe --full-prior --max-dims 16 --steps 800     # the v2 prior
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shutil

import numpy as np

from optformer.model.bar import BarDistribution
from optformer.data_gen.examples import ExampleConfig
from optformer.data_gen.prior import PriorConfig
from optformer.model.network import PFNConfig
from optformer.training import evaluate
from optformer.training.data import PFNDataConfig, make_batch, prior_borders
from optformer.training.train import PFNTrainConfig, PFNTrainer


def probe_config(args) -> PFNTrainConfig:
  """The probe's run: a fresh model of the given size on the restricted prior."""
  if args.full_prior:  # The v2 prior (ints, categoricals, warping, clouds, failures), at most max_dims parameters.
    examples = ExampleConfig(prior=dataclasses.replace(PriorConfig.v2(), max_dims=args.max_dims))
  else:  # Float parameters of the plain GP prior, uniform points.
    prior = dataclasses.replace(PriorConfig.v2(), max_dims=args.max_dims, min_dims=1, kind_probs=(1.0, 0.0, 0.0),
                                p_warp=0.0)
    examples = ExampleConfig(prior=prior, p_local=0.0, p_failure=0.0, p_conditional=0.0)
  data = PFNDataConfig(examples=examples, batch_size=args.batch_size, seq_lens=(64,), seq_len_probs=(1.0,),
                       soft_target_weight=args.soft_targets)
  borders = prior_borders(data, args.bins, num_batches=16)
  model = PFNConfig(d_model=args.d_model, num_heads=4, num_layers=args.layers, mlp_ratio=2, d_slot=args.d_slot,
                    num_slot_ids=64 if args.full_prior else 16, max_categories=64 if args.full_prior else 8,
                    borders=tuple(float(b) for b in borders), distance_bias=args.distance_bias)
  return PFNTrainConfig(model=model, data=data, num_steps=args.steps, peak_learning_rate=args.learning_rate,
                        warmup_steps=50, log_every=50, eval_every=10**9, checkpoint_every=10**9)


def median_correlation(trainer: PFNTrainer, cfg: PFNTrainConfig, n_context: int = 30, batches: int = 2) -> float:
  """Mean over held-out GP-prior examples of corr(predicted median, true z) of the queries."""
  params, borders = trainer.current_params(), np.asarray(cfg.model.borders)
  cors = []
  for i in range(batches):
    batch, _, _, _, z = make_batch(evaluate.gp_only(cfg.data), borders, cfg.model.num_slot_ids, i, "validation",
                                   seq_len=64, n_context=n_context)
    logits = np.asarray(evaluate._logits(trainer.graphdef, params, batch), np.float64)[:, n_context:, :-1]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    cors += [np.corrcoef(BarDistribution(p[b], borders).quantile(0.5), z[b, n_context:])[0, 1] for b in range(len(p))]
  return float(np.nanmean(cors))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--max-dims", type=int, default=4)
  p.add_argument("--full-prior", action="store_true", help="the v2 prior instead of float GP tasks")
  p.add_argument("--steps", type=int, default=800)
  p.add_argument("--learning-rate", type=float, default=3e-3)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--d-model", type=int, default=64)
  p.add_argument("--d-slot", type=int, default=32)
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--bins", type=int, default=100)
  p.add_argument("--distance-bias", action="store_true", help="attention bias from the context's per-slot variograms")
  p.add_argument("--soft-targets", type=float, default=0.0,
                 help="weight of the exact GP posterior's bar masses in the loss (training/data.py)")
  p.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("runs/probe"))
  args = p.parse_args(argv)
  cfg = probe_config(args)
  shutil.rmtree(args.workdir, ignore_errors=True)
  trainer = PFNTrainer(cfg, args.workdir)
  for _ in range(4):
    trainer.run(trainer.step + args.steps // 4, progress=False)
    gaps = evaluate.gp_gap(trainer.graphdef, trainer.current_params(), cfg.data, cfg.model.borders,
                           cfg.model.num_slot_ids, contexts=(10, 30), num_batches=4, by_dims=True)
    by_dims = ", ".join(f"{k.removeprefix('gap_30_dims_')}: {v:+.3f}" for k, v in gaps.items() if k.startswith("gap_30_dims_"))
    print(f"step {trainer.step}: gap@10 {gaps['gap_10']:+.3f}, gap@30 {gaps['gap_30']:+.3f} ({by_dims} relevant), "
          f"corr(median, z)@30 {median_correlation(trainer, cfg):+.3f}", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
