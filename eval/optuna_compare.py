"""OptFormerSampler beside Optuna's TPESampler (multivariate) in ordinary Optuna studies.

  python -m optformer.eval.optuna_compare [--trials 40] [--seeds 3] [--task NAME] [--checkpoint DIR] [--out FILE]

For each seed s in 0..S-1 and each sampler, one `optuna.create_study` with
the sampler seeded s, run by `study.optimize` on a real task
(eval.sklearn_tasks, default the demo task), the search space suggested
define-by-run with `optformer.integrations.optuna.suggest_params`. The two
samplers see the same objective, the same trials budget and the same seeds.

Prints, per sampler: the best objective after 10 / 20 / 40 trials (mean ±
standard error over seeds) and the seconds per trial the sampler takes
(time in the trial's suggest calls, where Optuna runs the sampler; JAX
compilation included, so the first seed is slower) beside the seconds per
trial overall. With --out, writes every trial's params, value and timings
as JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Callable

import numpy as np
import optuna

from optformer.eval import runner
from optformer.eval.sklearn_tasks import DEMO_TASK, TASKS, get_task
from optformer.integrations.optuna import OptFormerSampler, suggest_params

REPORT_AT = (10, 20, 40)  # Trial counts in the table.


def make_samplers(checkpoint=None, num_candidates: int = 128) -> dict[str, Callable[[int], optuna.samplers.BaseSampler]]:
  """Sampler factories (seed -> sampler) by name. Loads the model now (fails fast)."""
  OptFormerSampler(seed=0, model=checkpoint, num_candidates=num_candidates)
  return {
      "OptFormerSampler": lambda seed: OptFormerSampler(seed=seed, model=checkpoint, num_candidates=num_candidates),
      "TPESampler(multivariate)": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
  }


def run_study(task, sampler: optuna.samplers.BaseSampler, num_trials: int) -> list[dict]:
  """One Optuna study of `task`; per trial: params, value (NaN if failed), sampler and total seconds."""
  rows = []

  def objective(trial):
    start = time.perf_counter()
    params = suggest_params(trial, task.space)  # The sampler runs inside the first suggest call.
    suggested = time.perf_counter()
    value = task(params)
    rows.append({"params": params, "value": value, "sampler_seconds": suggested - start,
                 "total_seconds": time.perf_counter() - start})
    return value  # NaN marks the trial FAIL; the samplers treat it as infeasible.

  study = optuna.create_study(direction=task.goal, sampler=sampler)
  study.optimize(objective, n_trials=num_trials)
  return rows


def summarize(results: dict[str, list[list[dict]]], goal: str, report_at) -> dict[str, dict]:
  """Per sampler: best-so-far mean and s.e. over seeds at each of `report_at`, and seconds per trial."""
  out = {}
  for name, seeds in results.items():
    best = runner.best_so_far([[r["value"] for r in rows] for rows in seeds], goal)  # [S, T]
    mean, se = runner.mean_and_stderr(best)
    sampler_s = np.array([[r["sampler_seconds"] for r in rows] for rows in seeds])
    total_s = np.array([[r["total_seconds"] for r in rows] for rows in seeds])
    out[name] = {
        "best_at": {t: (float(mean[t - 1]), float(se[t - 1])) for t in report_at},
        "sampler_seconds_mean": float(sampler_s.mean()), "sampler_seconds_median": float(np.median(sampler_s)),
        "total_seconds_mean": float(total_s.mean()),
    }
  return out


def format_table(summary: dict[str, dict], report_at) -> str:
  head = ["sampler", *(f"best @ {t}" for t in report_at), "sampler s/trial (mean, median)", "total s/trial"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, s in summary.items():
    cells = [name, *(f"{m:.4f} ± {e:.4f}" for m, e in s["best_at"].values()),
             f"{s['sampler_seconds_mean']:.3f}, {s['sampler_seconds_median']:.3f}", f"{s['total_seconds_mean']:.3f}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--trials", type=int, default=40, help="trials per study (>= 1)")
  parser.add_argument("--seeds", type=int, default=3, help="studies per sampler, seeds 0..S-1 (>= 1)")
  parser.add_argument("--task", default=DEMO_TASK, choices=sorted(TASKS))
  parser.add_argument("--checkpoint", default=None, help="model directory (default: the shipped model)")
  parser.add_argument("--num-candidates", type=int, default=128, help="OptFormerSampler candidates per trial")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="write every trial as JSON here")
  args = parser.parse_args(argv)
  if args.trials < 1 or args.seeds < 1:
    parser.error(f"--trials and --seeds must be >= 1, got {args.trials} and {args.seeds}.")

  optuna.logging.set_verbosity(optuna.logging.WARNING)
  task = get_task(args.task)
  samplers = make_samplers(args.checkpoint, args.num_candidates)
  report_at = tuple(t for t in REPORT_AT if t < args.trials) + (args.trials,)
  results: dict[str, list[list[dict]]] = {name: [] for name in samplers}
  for seed in range(args.seeds):
    for name, make in samplers.items():
      start = time.perf_counter()
      results[name].append(run_study(task, make(seed), args.trials))
      best = runner.best_so_far([r["value"] for r in results[name][-1]], task.goal)[-1]
      print(f"seed {seed} {name}: best {best:.4f} in {time.perf_counter() - start:.1f} s", flush=True)

  summary = summarize(results, task.goal, report_at)
  print(f"\n{task.name} ({task.goal}), {args.trials} trials x {args.seeds} seeds, mean ± s.e. over seeds:\n")
  print(format_table(summary, report_at))
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "task": task.describe(), "trials": args.trials, "seeds": args.seeds, "num_candidates": args.num_candidates,
        "summary": summary, "results": results,
    }, indent=1, default=str))


if __name__ == "__main__":
  main()
