"""Training throughput of model v2, and the step's share of this machine's float32 matmul rate.

  optformer-train throughput [--config snapshots/v2/config.json] [--steps 20] [--out FILE]

Builds the run's train step (a fresh model of the config's shapes, batches from its data
pipeline), reads the step's floating-point operations from XLA's cost analysis of the compiled
step (one per sequence length of the data), and times `steps` steps on batches generated beforehand (so data generation is not in the
step time; it runs on its own thread during training). The matmul rate is the best of several
timed float32 [n, n] @ [n, n] products (2 n^3 FLOP each) on the same device, so the share reads
"how much of what this CPU does on a large matmul the train step achieves". Prints one JSON
object and writes it to --out when given.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from optformer.model.network import SurrogateBatch
from optformer.training.train import PFNTrainConfig, PFNTrainer


def matmul_flops_per_second(n: int = 2048, repeats: int = 10) -> float:
  """Best FLOP/s of a jitted float32 [n, n] @ [n, n] on the default device (2 n^3 FLOP per product)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    dot(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2.0 * n**3 / best


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def measure(cfg: PFNTrainConfig, steps: int = 20) -> dict:
  """{"step_flops", "seconds_per_step", "trials_per_s", "step_flops_per_s", ...} of `steps` timed train steps.

  The batches keep the data's mix of sequence lengths; each length's step is compiled (and run
  once) before timing, and the means are over the timed steps.

  Raises:
    ValueError: steps < 1.
  """
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}.")
  with tempfile.TemporaryDirectory() as tmp:
    tr = PFNTrainer(cfg, pathlib.Path(tmp) / "run")
    put = lambda a: jax.device_put(np.asarray(a), tr.batch_sharding)
    batches = [next(tr.batches) for _ in range(steps)]
    batches = [(SurrogateBatch(*map(put, b)), jax.tree.map(put, t)) for b, t in batches]
    params, opt_state = tr.params, tr.opt_state
    flops = {}  # Trials per example (the data mixes sequence lengths) -> FLOPs of that step.
    for batch, targets in batches:
      n = int(batch.x.shape[1])
      if n not in flops:  # Compile each shape before timing (cost analysis, then one untimed step).
        flops[n] = _flops(tr.train_step.lower(params, opt_state, batch, targets).compile())
        params, opt_state, metrics = tr.train_step(params, opt_state, batch, targets)
        jax.block_until_ready(metrics)
    times, work, trials, lengths = [], 0.0, 0, []
    for batch, targets in batches:
      t = time.perf_counter()
      params, opt_state, metrics = tr.train_step(params, opt_state, batch, targets)
      jax.block_until_ready((params, metrics))
      times.append(time.perf_counter() - t)
      lengths.append(int(batch.x.shape[1]))
      work += flops[lengths[-1]]
      trials += int(np.asarray(batch.valid).sum())
  total = float(np.sum(times))
  return {
      "step_flops": work / len(times), "step_flops_by_length": {str(k): v for k, v in sorted(flops.items())},
      "seconds_per_step": total / len(times), "seconds_per_step_all": times, "lengths": lengths,
      "trials_per_s": trials / total, "step_flops_per_s": work / total,
      "batch_size": cfg.data.batch_size, "seq_lens": list(cfg.data.seq_lens),
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", type=pathlib.Path, default=pathlib.Path("snapshots/v2/config.json"),
                 help="a v2 run's config.json (default: the committed snapshot's)")
  p.add_argument("--steps", type=int, default=20, help="timed train steps (default 20)")
  p.add_argument("--matmul-size", type=int, default=2048, help="n of the reference float32 matmul (default 2048)")
  p.add_argument("--out", type=pathlib.Path, default=None, help="also write the JSON here")
  args = p.parse_args(argv)
  if args.steps < 1 or args.matmul_size < 1:
    p.error("--steps and --matmul-size must be >= 1")
  try:
    cfg = PFNTrainConfig.from_dict(json.loads(args.config.read_text()))
  except (OSError, ValueError, KeyError, TypeError) as e:
    print(f"error: cannot read a v2 training config from {args.config}: {e}", file=__import__("sys").stderr)
    return 2
  out = measure(cfg, args.steps)
  out["matmul_flops_per_s"] = matmul_flops_per_second(args.matmul_size)
  out["share_of_matmul_rate"] = out["step_flops_per_s"] / out["matmul_flops_per_s"]
  out["device"] = f"{jax.devices()[0].platform}, {jax.device_count()} device(s)"
  out["config"] = str(args.config)
  text = json.dumps(out, indent=1)
  print(text)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
