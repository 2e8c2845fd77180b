"""Surrogate quality on held-out prior tasks: the model's NLL next to the exact GP's.

For each held-out task (validation-split seeds, never used in training) we
take a random-search trajectory, use its first n trials as the context and
the next `num_queries` trials as queries, and score the noisy objective of
each query under

  * the model: the Riemann distribution over normalized bins, turned into a
    density in objective units (log p_b - log w_b + log scale, where scale is
    the normalizer's slope, so both NLLs are in the same units);
  * the exact GP with the task's true hyperparameters on the true latent
    inputs: N(mean, var + noise variance) (the Bayes-optimal predictor for
    this prior up to the random-feature approximation of the kernel;
    Rasmussen & Williams 2006, eq. 2.25-2.26).

A query whose normalized objective falls outside [0, 1] (the model's
support) is scored at the nearest edge bin; the fraction of such queries is
reported, since there the model's NLL is understated.

Command: python -m eval.surrogate_eval [--checkpoint DIR] [--tasks 64] [--out results/surrogate.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from data_gen import gp
from data_gen.behaviour import ALGORITHMS, generate
from data_gen.prior import PriorConfig, sample_tasks
from optformer import tokenizer as tk
from optformer.distribution import RiemannDistribution
from optformer.optimizer import load_engine
from training.data import prior_encoding


def evaluate(checkpoint=None, num_tasks: int = 64, context_sizes=(5, 10, 20, 40), num_queries: int = 20, seed: int = 0) -> dict:
  """Mean NLL (nats per query, objective units) of model and exact GP per context size."""
  engine = load_engine(checkpoint)
  tok = engine.tok
  prior = PriorConfig(max_dims=tok.max_params)
  num_trials = max(context_sizes) + num_queries
  mix = [1.0 if a == "random" else 0.0 for a in ALGORITHMS]
  data = generate(prior, num_tasks, num_trials, mix, seed, split="validation")
  tasks = sample_tasks(prior, data["task_seed"])
  posterior = jax.jit(gp.posterior)
  results = {}
  for n in context_sizes:
    nll_model, nll_gp, outside = [], [], []
    for i in range(num_tasks):
      kinds, nv = data["kinds"][i], data["num_values"][i]
      enc = prior_encoding(kinds, nv, tok.num_x_bins)
      x_tok = tk.encode_units(data["x"][i], enc, tok.num_x_bins)
      y = data["y"][i].astype(np.float64)
      ctx, qry = slice(0, n), slice(n, n + num_queries)
      norm = tk.YNormalizer.fit(y[ctx], tok.y_low, tok.y_high)
      probs = engine.score(x_tok[ctx], tk.encode_y(norm.apply(y[ctx]), tok.num_y_bins), enc, ALGORITHMS.index("random"), x_tok[qry])
      dist = RiemannDistribution(probs, tok.y_edges())
      v = norm.apply(y[qry])
      outside.append((v < 0) | (v > 1))
      nll_model.append(-(dist.log_prob(np.clip(v, 1e-9, 1 - 1e-9)) + np.log(norm.scale)))
      task = jax.tree.map(lambda a: a[i], tasks)
      z = data["z"][i]
      mask = np.zeros(len(y), bool)
      mask[ctx] = True
      mean, var = posterior(task, z, y.astype(np.float32), mask, z[qry])
      var = np.asarray(var, np.float64) + float(task.noise_variance)
      nll_gp.append(0.5 * (np.log(2 * np.pi * var) + (y[qry] - np.asarray(mean)) ** 2 / var))
    m, g = np.concatenate(nll_model), np.concatenate(nll_gp)
    results[str(n)] = {
        "model_nll": float(m.mean()), "model_nll_se": float(m.std() / np.sqrt(len(m))),
        "gp_nll": float(g.mean()), "gp_nll_se": float(g.std() / np.sqrt(len(g))),
        "model_nll_median": float(np.median(m)), "gp_nll_median": float(np.median(g)),
        "fraction_outside_model_support": float(np.concatenate(outside).mean()),
    }
  return {"num_tasks": num_tasks, "num_queries": num_queries, "seed": seed, "by_context_size": results}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", default=None)
  p.add_argument("--tasks", type=int, default=64)
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/surrogate.json"))
  args = p.parse_args(argv)
  res = evaluate(args.checkpoint, args.tasks)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(res, indent=1))
  print(f"{'context':>8} {'model NLL':>16} {'exact GP NLL':>16}")
  for n, r in res["by_context_size"].items():
    print(f"{n:>8} {r['model_nll']:>9.3f} ± {r['model_nll_se']:.3f} {r['gp_nll']:>9.3f} ± {r['gp_nll_se']:.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
