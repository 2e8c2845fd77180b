"""User priors (piBO) on held-out prior tasks: no prior vs. a good one vs. a misleading one.

For each held-out prior task (eval/prior_tasks.py) the optimum x* is
estimated (`SyntheticTask.optimum_estimate_with_x`). A *good* prior puts a
`priors.Normal(width=0.1)` on every numeric parameter at x*'s value and
`priors.Weights` 4:1 on x*'s category; a *misleading* prior does the same at
the mirror point (unit value 1 - u* for numeric parameters, the next
category for categorical ones), far from the optimum. The optimizer sees the
task's noisy observations; the table reports normalized regret of the best
noiseless value (eval/regret.py) at a few budgets, mean +- s.e. over
tasks x seeds.

  python -m optformer.eval.pibo --tasks 10 --trials 50 --seeds 2 --out results/pibo.json
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from tqdm import tqdm

import optformer
from optformer.eval import prior_tasks, regret
from optformer.eval.runner import mean_and_stderr, run_study
from optformer import priors
from optformer import search_space as ss

SETTINGS = ("none", "good", "misleading")


def beliefs(space: optformer.SearchSpace, point: dict, width: float = 0.1) -> dict:
  """Beliefs centred on `point`: Normal(width) for numeric parameters, Weights 4:1 for categorical ones."""
  out = {}
  for p in space:
    if isinstance(p, ss.Categorical):
      out[p.name] = priors.Weights({c: 4.0 if c == point[p.name] else 1.0 for c in p.choices})
    else:
      out[p.name] = priors.Normal(point[p.name], width)
  return out


def mirror(space: optformer.SearchSpace, point: dict) -> dict:
  """The configuration at unit value 1 - u for numeric parameters and the next category for categorical ones."""
  out = {}
  for p in space:
    if isinstance(p, ss.Categorical):
      out[p.name] = p.choices[(p.choices.index(point[p.name]) + 1) % len(p.choices)]
    else:
      out[p.name] = p.from_unit(1.0 - p.to_unit(point[p.name]))
  return out


def evaluate(num_tasks: int = 10, num_trials: int = 50, num_seeds: int = 2, at=(5, 10, 25, 50), checkpoint=None) -> dict:
  """Normalized regret [setting] -> {"regret@t": (mean, s.e.)} and per-run curves.

  Raises:
    ValueError: a budget in `at` above num_trials.
  """
  if max(at) > num_trials:
    raise ValueError(f"Budgets {at} exceed num_trials={num_trials}.")
  tasks = prior_tasks.tasks(num_tasks)
  curves = {s: [] for s in SETTINGS}
  bar = tqdm(total=len(tasks) * num_seeds * len(SETTINGS), desc="piBO", unit="study")
  for task in tasks:
    f_star, x_star = task.synthetic.optimum_estimate_with_x()
    best_point = task.synthetic.from_unit(x_star)
    y_star, y_rand = regret.reference(task.goal, task.random_values(1024, seed=0), optimum=f_star)
    prior_of = {"none": None, "good": beliefs(task.space, best_point), "misleading": beliefs(task.space, mirror(task.space, best_point))}
    for seed in range(num_seeds):
      for setting in SETTINGS:
        opt = optformer.Optimizer(task.space, task.goal, model=checkpoint, prior=prior_of[setting], seed=seed)
        records = run_study(opt, task.with_noise_seed(seed), num_trials)
        values = [task.noiseless(r.params) for r in records]
        curves[setting].append(regret.normalized_regret(values, task.goal, y_star, y_rand))
        bar.update()
  bar.close()
  summary = {}
  for setting, c in curves.items():
    mean, se = mean_and_stderr(np.stack(c))
    summary[setting] = {f"regret@{t}": (float(mean[t - 1]), float(se[t - 1])) for t in at}
  return {"tasks": num_tasks, "trials": num_trials, "seeds": num_seeds, "summary": summary,
          "curves": {s: np.stack(c).tolist() for s, c in curves.items()}}


def table(result: dict) -> str:
  """Markdown table of the summary."""
  cols = list(next(iter(result["summary"].values())))
  lines = ["| prior | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
  for setting, row in result["summary"].items():
    lines.append(f"| {setting} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in row.values()) + " |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", type=int, default=10)
  parser.add_argument("--trials", type=int, default=50)
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--checkpoint", default=None)
  parser.add_argument("--out", default="results/pibo.json")
  args = parser.parse_args(argv)
  at = tuple(t for t in (5, 10, 25, 50, 100) if t <= args.trials)
  result = evaluate(args.tasks, args.trials, args.seeds, at, args.checkpoint)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result))
  print(table(result))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
