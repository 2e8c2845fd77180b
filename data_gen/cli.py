"""Command line: write a trajectory corpus, or benchmark generation throughput.

  python -m optformer.data_gen.cli --out corpus/ --num-train 100000 --num-valid 1000 \\
      --trials 64 --seed 0 [--max-dims 8] [--mix 0.25,0.25,0.5]
  python -m optformer.data_gen.cli --out corpus/ --benchmark 512 --trials 64

Writes `throughput.json` into the dataset folder (or `benchmark.json` into
--out). Throughput "per core" = trajectories per second of process CPU time
(all threads); per wall second is reported too. Safe to run in the
background (`nohup ... &`): the progress bar goes to stderr and nothing is
read from stdin.

On a small machine shared with other jobs, pass `--cpus 0` (or any one core
id): XLA's CPU thread pool then has a single thread. Unpinned, its threads
wait on each other whenever another process holds a core, and GP-UCB ran
~10-30x slower on a busy 2-core machine (pinned: ~80 trajectories/s/core).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from optformer.data_gen import behaviour, corpus
from optformer.data_gen.prior import PriorConfig


def _parse_mix(text: str) -> tuple[float, ...]:
  weights = tuple(float(w) for w in text.split(","))
  behaviour.mix_probabilities(weights)  # Validates.
  return weights


def _benchmark(config: corpus.CorpusConfig, num_tasks: int) -> dict:
  """Per-algorithm throughput on `num_tasks` tasks each, after a warm-up run."""
  results = {}
  for name in behaviour.ALGORITHMS:
    run = lambda seed, stats=None: behaviour.generate(
        config.prior, num_tasks, config.num_trials, {name: 1.0}, seed,
        behaviour_config=config.behaviour, stats=stats)
    run(seed=config.seed + 1)  # Compile.
    stats = behaviour.GenerationStats()
    run(seed=config.seed, stats=stats)
    results[name] = stats.as_dict()
    print(f"{name:8s} {results[name]['trajectories_per_cpu_s']:9.1f} trajectories/s/core "
          f"({results[name]['trajectories_per_wall_s']:.1f}/s wall)", flush=True)
  return results


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", required=True, help="Data dir; the corpus goes to <out>/optformer_corpus/<name>/<version>.")
  p.add_argument("--num-train", type=int, default=100_000, help="Train trajectories.")
  p.add_argument("--num-valid", type=int, default=1_000, help="Validation trajectories (disjoint task seeds).")
  p.add_argument("--trials", type=int, default=64, help="Trials per trajectory.")
  p.add_argument("--seed", type=int, default=0, help="Global seed in [0, 2**31).")
  p.add_argument("--max-dims", type=int, default=8, help="D_max, parameter slots.")
  p.add_argument("--mix", type=_parse_mix, default=(0.25, 0.25, 0.5),
                 help=f"Comma-separated weights of {','.join(behaviour.ALGORITHMS)}.")
  p.add_argument("--chunk-size", type=int, default=1024, help="Trajectories generated per step.")
  p.add_argument("--no-progress", action="store_true", help="No progress bar.")
  p.add_argument("--cpus", type=str, default="",
                 help="Comma-separated CPU ids to pin this process to (e.g. 0); see above.")
  p.add_argument("--benchmark", type=int, default=0, metavar="N",
                 help="Only measure per-algorithm throughput on N tasks and write benchmark.json.")
  args = p.parse_args(argv)
  if args.cpus:
    cpus = {int(c) for c in args.cpus.split(",")}
    if os.sched_getaffinity(0) != cpus:
      # XLA sizes its CPU thread pool when jax is imported, which has happened
      # already; restart this command pinned (the affinity is inherited).
      os.sched_setaffinity(0, cpus)
      argv = sys.argv[1:] if argv is None else argv
      os.execv(sys.executable, [sys.executable, "-m", "optformer.data_gen.cli", *argv])

  config = corpus.CorpusConfig(
      prior=PriorConfig(max_dims=args.max_dims), num_train=args.num_train,
      num_validation=args.num_valid, num_trials=args.trials, algorithm_mix=args.mix,
      seed=args.seed, chunk_size=args.chunk_size)
  os.makedirs(args.out, exist_ok=True)
  host = {"cpu_count": os.cpu_count(), "pinned_cpus": sorted(os.sched_getaffinity(0)),
          "loadavg_at_end": None}

  if args.benchmark:
    results = {"config": config.to_json(), "num_tasks": args.benchmark, "host": host,
               "algorithms": _benchmark(config, args.benchmark)}
    host["loadavg_at_end"] = os.getloadavg()
    path = os.path.join(args.out, "benchmark.json")
    with open(path, "w") as fp:
      json.dump(results, fp, indent=2)
    print(f"wrote {path}")
    return 0

  import tensorflow_datasets as tfds  # Entry point only: quiet tfds's own bars.
  if not args.no_progress:
    tfds.disable_progress_bar()
  builder = corpus.build_corpus(args.out, config, progress=not args.no_progress)
  stats = {split: s.as_dict() for split, s in builder.stats.items()}
  total = sum(s["total_count"] for s in stats.values())
  cpu = sum(s["total_cpu_s"] for s in stats.values())
  host["loadavg_at_end"] = os.getloadavg()
  report = {
      "dataset_dir": str(builder.data_dir), "config": config.to_json(), "host": host,
      "generated": total, "build_wall_s": builder.build_seconds,
      "trajectories_per_cpu_s": total / cpu if cpu else None,
      "trajectories_per_build_wall_s": total / builder.build_seconds if total else None,
      "splits": stats,
  }
  if total == 0:
    print(f"corpus already exists at {builder.data_dir}; nothing generated.")
    return 0
  path = os.path.join(str(builder.data_dir), "throughput.json")
  with open(path, "w") as fp:
    json.dump(report, fp, indent=2)
  print(f"wrote {total} trajectories to {builder.data_dir} in {builder.build_seconds:.1f} s: "
        f"{report['trajectories_per_cpu_s']:.1f} trajectories/s/core (generation, CPU time), "
        f"{report['trajectories_per_build_wall_s']:.1f}/s wall including writing; details in {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
