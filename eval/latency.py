"""Seconds per suggestion of every registered optimizer at given history sizes.

For each history size n and each optimizer of eval/optimizers.py, a fresh
optimizer (seed 0) is told the same n uniform random configurations of a
held-out prior task with their noisy objective values, asked once (the
*first call*, timed on its own: for the optformer entries it includes
compiling that history bucket when the bucket is new to the process, and
loading the model on the very first call), then asked `repeats` more times;
the median of those is reported. Between calls the pending suggestion is
withdrawn (`remove_pending`), so every timed call sees the same n trials.
Ratios are to random search and to TPE at the same n, in the same run.
The shipped model's context holds 64 trials: at n > 64 it sees the best 32
and the most recent trials (eval.optimizers / optformer.Optimizer).

Command: python -m optformer.eval.latency [--checkpoint DIR] [--sizes 10 50 100 200] [--repeats 5]
                                [--optimizers all] [--out results/latency.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time
import warnings

import numpy as np

from optformer.eval import optimizers as opt_lib
from optformer.eval import prior_tasks

SIZES = (10, 50, 100, 200)


def default_task() -> prior_tasks.PriorTask:
  """The first held-out prior task with 8 parameters and no categorical one (so cmaes runs too)."""
  for t in prior_tasks.tasks(64, min_dims=8):
    if all(p.kind != 3 for p in t.space):  # 3 = KIND_CATEGORICAL.
      return t
  raise ValueError("No numeric 8-parameter task among the first 64 held-out prior tasks with 8 parameters.")


def _timed_ask(opt) -> float:
  t0 = time.perf_counter()
  params = opt.ask()
  seconds = time.perf_counter() - t0
  if hasattr(opt, "remove_pending"):
    opt.remove_pending(params)
  return seconds


def measure(model=None, sizes=SIZES, repeats: int = 5, optimizers=opt_lib.OPTIMIZERS, task=None) -> dict:
  """ask() latency per optimizer and history size.

  Args:
    model: OptFormer / checkpoint directory / None (shipped) for the optformer entries.
    sizes: history sizes n (>= 1).
    repeats: timed calls after the first one (>= 1).
    optimizers: names from eval.optimizers.OPTIMIZERS.
    task: a benchmark task (default: `default_task()`).

  Returns:
    {"task", "sizes", "repeats", "optimizers", "machine",
     "by_history_size": {str(n): {name: {"median_s", "first_call_s", "ratio_to_random",
     "ratio_to_tpe" (None when that peer is not measured)}}}}; seconds of wall time.

  Raises:
    ValueError: a size or repeats < 1, or an unknown optimizer.
  """
  if repeats < 1 or min(sizes) < 1:
    raise ValueError(f"sizes and repeats must be >= 1, got sizes={sizes}, repeats={repeats}.")
  names = opt_lib.parse_names(optimizers)
  task = task or default_task()
  names = [n for n in names if opt_lib.supports(n, task.space)]
  objective = task.with_noise_seed(0)
  rng = np.random.default_rng(0)
  configs = [task.space.sample(rng) for _ in range(max(sizes))]
  values = [objective(c) for c in configs]
  rows = {}
  for n in sizes:
    row = {}
    for name in names:
      opt = opt_lib.make(name, task.space, task.goal, seed=0, model=model)
      for c, v in zip(configs[:n], values[:n]):
        opt.tell(c, v)
      with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The study has .* trials; the model's context holds")
        first = _timed_ask(opt)
        times = [_timed_ask(opt) for _ in range(repeats)]
      row[name] = {"median_s": float(np.median(times)), "first_call_s": first}
    for name, r in row.items():
      for peer in ("random", "tpe"):
        r[f"ratio_to_{peer}"] = r["median_s"] / max(row[peer]["median_s"], 1e-12) if peer in row else None
    rows[str(n)] = row
  import jax

  return {
      "task": task.name, "num_params": len(task.space), "sizes": list(sizes), "repeats": repeats, "optimizers": names,
      "machine": f"{platform.machine()}, {jax.devices()[0].platform}, {len(jax.devices())} device(s)",
      "by_history_size": rows,
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", default=None)
  p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--optimizers", nargs="+", default=["all"])
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/latency.json"))
  args = p.parse_args(argv)
  try:
    res = measure(args.checkpoint, tuple(args.sizes), args.repeats, opt_lib.parse_names(args.optimizers))
  except ValueError as e:
    p.error(str(e))
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(res, indent=1))
  from optformer.eval.report import latency_markdown

  print(latency_markdown(res))
  return 0


if __name__ == "__main__":
  sys.exit(main())
