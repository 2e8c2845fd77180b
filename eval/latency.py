"""Seconds per suggestion at given history sizes, after compilation.

For each history size n, an Optimizer on the demo task's search space is
told n random configurations (objective values drawn at random: the cost
of ask() does not depend on them), asked once to compile that history
bucket, then asked `repeats` more times; the median is reported, next to
random search's in the same run.

Command: python -m eval.latency [--checkpoint DIR] [--sizes 10 40] [--out results/latency.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import jax
import numpy as np

import optformer
from eval.random_search import RandomSearch
from eval.sklearn_tasks import DEMO_TASK, get_task


def _median_ask_seconds(opt, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    opt.ask()
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def measure(checkpoint=None, sizes=(10, 40), repeats: int = 7, num_candidates: int = 128) -> dict:
  space = get_task(DEMO_TASK).space
  rng = np.random.default_rng(0)
  rows = {}
  for n in sizes:
    opt = optformer.Optimizer(space, "minimize", model=checkpoint, seed=0, num_candidates=num_candidates)
    rs = RandomSearch(space, seed=0)
    for _ in range(n):
      params = space.sample(rng)
      value = float(rng.normal())
      opt.tell(params, value)
      rs.tell(params, value)
    t0 = time.perf_counter()
    opt.ask()
    first = time.perf_counter() - t0
    ours, base = _median_ask_seconds(opt, repeats), _median_ask_seconds(rs, repeats)
    rows[str(n)] = {"optformer_s": ours, "first_call_s": first, "random_s": base, "ratio": ours / max(base, 1e-9)}
  return {
      "num_candidates": num_candidates, "repeats": repeats, "by_history_size": rows,
      "machine": f"{platform.machine()}, {jax.devices()[0].platform}, {len(jax.devices())} device(s)",
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", default=None)
  p.add_argument("--sizes", type=int, nargs="+", default=[10, 40])
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/latency.json"))
  args = p.parse_args(argv)
  res = measure(args.checkpoint, tuple(args.sizes))
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(res, indent=1))
  print(f"{'history':>8} {'optformer s/ask':>16} {'first call s':>13} {'random s/ask':>13}")
  for n, r in res["by_history_size"].items():
    print(f"{n:>8} {r['optformer_s']:>16.4f} {r['first_call_s']:>13.2f} {r['random_s']:>13.6f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
