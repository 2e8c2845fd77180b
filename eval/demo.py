"""Demo: zero-shot OptFormer against random search on a real HPO task.

  python -m optformer.eval.demo [--trials 40] [--seeds 5] [--checkpoint DIR] [--out results/demo] [--task NAME]

Tunes the task (default: HistGradientBoostingClassifier on breast_cancer,
3-fold CV log-loss, eval/sklearn_tasks.py) with optformer.Optimizer and
with random search, the same budget for both, seeds 0..S-1, through the one
ask/tell loop of eval/runner.py. Nothing is trained: the model sees the
study's history as its context.

Prints a table (per optimizer: mean ± standard error over seeds of the best
objective after 10 / 20 / 40 trials, and the median seconds per suggestion)
and writes
  OUT/demo.json  config, machine, versions, summary, every trial's
                 params / value / seconds,
  OUT/demo.png   best-so-far curves, mean ± s.e. band over seeds.
Exits with status 2 and a message if the model cannot be loaded (the
shipped checkpoint is missing until it is trained: `make corpus train`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import time
import warnings
from importlib import metadata
from typing import Callable

import numpy as np

import optformer
from optformer.eval import runner
from optformer.eval.random_search import RandomSearch
from optformer.eval.sklearn_tasks import DEMO_TASK, TASKS, get_task

REPORT_AT = (10, 20, 40)  # Trial counts in the table.
OPTIMIZER_KWARGS = {"num_candidates": 128}  # Passed to optformer.Optimizer.

Factory = Callable[[int], object]  # seed -> fresh optimizer with ask()/tell().


def make_factories(task, checkpoint=None) -> dict[str, Factory]:
  """Optimizers to compare, by name. Loads the model now.

  Args:
    checkpoint: a PFNSurrogate, a model directory, or None for the shipped one.

  Raises:
    optformer.CheckpointError: the model cannot be loaded.
    ValueError: the task's space does not fit the model (too many parameters).
  """
  optformer.Optimizer(task.space, task.goal, model=checkpoint, seed=0, **OPTIMIZER_KWARGS)  # Fail fast.
  return {
      "optformer": lambda seed: optformer.Optimizer(task.space, task.goal, model=checkpoint, seed=seed, **OPTIMIZER_KWARGS),
      "random": lambda seed: RandomSearch(task.space, seed=seed),
  }


def run_all(task, factories: dict[str, Factory], num_trials: int, num_seeds: int, progress: bool = True) -> dict:
  """Runs every optimizer on every seed.

  Returns:
    name -> {"values": float [S][T], "seconds_per_suggestion": float [S][T],
    "seconds_per_evaluation": float [S][T], "params": dict [S][T],
    "wall_seconds": float}.
  """
  from tqdm.auto import tqdm

  results = {}
  with tqdm(total=len(factories) * num_seeds * num_trials, unit="trial", disable=not progress) as bar:
    for name, factory in factories.items():
      start = time.perf_counter()
      out = {"values": [], "seconds_per_suggestion": [], "seconds_per_evaluation": [], "params": []}
      for seed in range(num_seeds):
        bar.set_postfix_str(f"{name} seed {seed}")
        eval_seconds = []

        def timed(params, eval_seconds=eval_seconds):
          t0 = time.perf_counter()
          value = task(params)
          eval_seconds.append(time.perf_counter() - t0)
          return value

        records = runner.run_study(factory(seed), timed, num_trials, callback=lambda t, r: bar.update())
        out["values"].append([r.value for r in records])
        out["seconds_per_suggestion"].append([r.seconds_per_suggestion for r in records])
        out["seconds_per_evaluation"].append(eval_seconds)
        out["params"].append([r.params for r in records])
      out["wall_seconds"] = time.perf_counter() - start
      results[name] = out
  return results


def report_at(num_trials: int) -> list[int]:
  """The trial counts of the table: REPORT_AT up to num_trials, and num_trials itself."""
  return sorted({t for t in REPORT_AT if t <= num_trials} | {num_trials})


def summarize(results: dict, goal: str, num_trials: int) -> dict:
  """name -> {"best_at": {t: [mean, s.e.]}, "median_seconds_per_suggestion", "median_seconds_per_evaluation"}."""
  summary = {}
  for name, r in results.items():
    mean, se = runner.mean_and_stderr(runner.best_so_far(r["values"], goal))  # [T], [T]
    summary[name] = {
        "best_at": {str(t): [float(mean[t - 1]), float(se[t - 1])] for t in report_at(num_trials)},
        "median_seconds_per_suggestion": float(np.median(r["seconds_per_suggestion"])),
        "median_seconds_per_evaluation": float(np.median(r["seconds_per_evaluation"])),
    }
  return summary


def format_table(summary: dict) -> str:
  """One header line and one row per optimizer: best@t as mean ± s.e., median s/suggestion."""
  names = list(summary)
  at = list(summary[names[0]]["best_at"])
  header = f"{'optimizer':<10}" + "".join(f"{'best@' + t:>20}" for t in at) + f"{'s/suggestion':>14}"
  lines = [header]
  for name in names:
    s = summary[name]
    cells = "".join(f"{f'{m:.4f} ± {e:.4f}':>20}" for m, e in (s["best_at"][t] for t in at))
    lines.append(f"{name:<10}{cells}{s['median_seconds_per_suggestion']:>14.4f}")
  return "\n".join(lines)


def plot(results: dict, goal: str, path: pathlib.Path, title: str, ylabel: str = "objective") -> None:
  """Best-so-far objective vs trial, mean ± s.e. band over seeds, one line per optimizer."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for name, r in results.items():
    mean, se = runner.mean_and_stderr(runner.best_so_far(r["values"], goal))
    t = np.arange(1, len(mean) + 1)
    ax.plot(t, mean, label=name)
    ax.fill_between(t, mean - se, mean + se, alpha=0.25)
  ax.set_xlabel("trial")
  ax.set_ylabel(f"best {ylabel} so far ({'lower' if goal == 'minimize' else 'higher'} is better)")
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def machine_info() -> dict:
  import jax

  return {
      "platform": platform.platform(), "python": platform.python_version(), "processor": platform.processor(),
      "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
      "jax_devices": [str(d) for d in jax.devices()],
  }


def versions() -> dict:
  out = {}
  for pkg in ("optformer", "jax", "jaxlib", "flax", "numpy", "scikit-learn", "matplotlib"):
    try:
      out[pkg] = metadata.version(pkg)
    except metadata.PackageNotFoundError:
      out[pkg] = None
  try:
    root = pathlib.Path(__file__).resolve().parents[1]
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    out["git_commit"] = git("rev-parse", "HEAD") or None
    out["git_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.SubprocessError):
    out["git_commit"] = out["git_dirty"] = None
  return out


def checkpoint_info(checkpoint) -> dict:
  """The model directory and its config.json (model config and metadata), if readable."""
  if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
    return {"path": None, "model": type(checkpoint).__name__}
  path = pathlib.Path(checkpoint or optformer.checkpoint.DEFAULT_CHECKPOINT).absolute()
  info = {"path": str(path)}
  try:
    info.update(json.loads((path / "config.json").read_text()))
  except (OSError, ValueError):
    pass
  return info


def _jsonable(x):
  if isinstance(x, np.generic):
    return x.item()
  raise TypeError(f"Not JSON-able: {type(x).__name__}")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--trials", type=int, default=40, help="evaluations per study (default 40)")
  p.add_argument("--seeds", type=int, default=5, help="studies per optimizer, seeds 0..N-1 (default 5)")
  p.add_argument("--checkpoint", type=pathlib.Path, default=None,
                 help=f"model directory (default: the shipped {optformer.checkpoint.DEFAULT_CHECKPOINT.name})")
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/demo"), help="output folder")
  p.add_argument("--task", choices=sorted(TASKS), default=DEMO_TASK)
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = p.parse_args(argv)
  if args.trials < 1 or args.seeds < 1:
    p.error("--trials and --seeds must be >= 1")

  started = time.perf_counter()
  task = get_task(args.task)
  try:
    factories = make_factories(task, args.checkpoint)
  except optformer.CheckpointError as e:
    print(f"error: cannot load the OptFormer model.\n  {e}\n"
          "The shipped checkpoint is written by training (`make corpus train`); "
          "or pass --checkpoint DIR, a model directory written by optformer.checkpoint.save.", file=sys.stderr)
    return 2
  except ValueError as e:
    print(f"error: the model cannot optimize task {task.name!r}: {e}", file=sys.stderr)
    return 2

  context = factories["optformer"](0).backend.capabilities.max_context
  if args.trials > context:
    print(f"note: the model's context holds {context} trials; past that it sees the best {context // 2} "
          "and the most recent trials of the study.", file=sys.stderr)
  with warnings.catch_warnings():
    # The Optimizer's warning says the same per study, and "once" filters are reset by every
    # catch_warnings() (the tasks use one), so it is silenced here and said once above.
    warnings.filterwarnings("ignore", message="The study has .* trials; the model's context holds")
    results = run_all(task, factories, args.trials, args.seeds, progress=not args.no_progress)
  summary = summarize(results, task.goal, args.trials)
  wall = time.perf_counter() - started
  metric = getattr(task, "metric", "objective")
  title = f"{task.name}: {task.goal} CV {metric}, {args.seeds} seeds x {args.trials} trials"

  args.out.mkdir(parents=True, exist_ok=True)
  record = {
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": shlex.join(["python", "-m", "optformer.eval.demo", *(argv if argv is not None else sys.argv[1:])]),
      "config": {"trials": args.trials, "seeds": list(range(args.seeds)), "optimizers": list(factories),
                 "optformer_kwargs": OPTIMIZER_KWARGS, "checkpoint": checkpoint_info(args.checkpoint)},
      "task": task.describe() if hasattr(task, "describe") else {"name": task.name, "goal": task.goal},
      "machine": machine_info(), "versions": versions(), "wall_seconds": wall,
      "summary": summary, "results": results,
  }
  json_path, png_path = args.out / "demo.json", args.out / "demo.png"
  json_path.write_text(json.dumps(record, indent=1, default=_jsonable))
  plot(results, task.goal, png_path, title, ylabel=metric)

  print(title)
  print(format_table(summary))
  evals = float(np.median(np.concatenate([np.ravel(r["seconds_per_evaluation"]) for r in results.values()])))
  print(f"median seconds per evaluation: {evals:.3f}; total wall time {wall:.1f} s")
  print(f"wrote {json_path} and {png_path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
