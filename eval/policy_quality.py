"""The policy's samples against uniform samples, after a study's first trials.

For each task of a suite: `context` uniform configurations (seeded) are
evaluated and told to an `optformer.Optimizer`; then `samples` policy samples
(`Optimizer.sample_policy`) and as many uniform samples
(`SearchSpace.sample`) are evaluated on the task's noiseless objective.

Per task: the mean noiseless objective of each sampler, and
P(policy beats uniform), the probability that a policy sample is better
than a uniform sample in the task's goal (ties count half): the
Mann-Whitney U statistic over n * m (Mann & Whitney, Ann. Math. Statist.
1947), 0.5 when the policy is no better than uniform, 1 when every policy
sample beats every uniform one. It is scale-free, so it averages over tasks.
Per suite: its mean over tasks with the standard error, and the share of
tasks whose policy mean is better than the uniform mean.

  python -m optformer.eval.policy_quality --suite prior --tasks 16 --out results/policy/prior.json
  python -m optformer.eval.policy_quality --suite bbob --dims 16,32,64 --out results/policy/bbob.json
  python -m optformer.eval.policy_quality --suite hpo --samples 64 --out results/policy/hpo.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Sequence

import numpy as np
from scipy import stats


def beats_probability(policy, uniform, goal: str) -> float:
  """P(a policy value is better than a uniform value) under `goal`, ties half; NaN values are dropped.

  Args:
    policy, uniform: float arrays of noiseless objective values (any lengths >= 1 after dropping NaN).
    goal: "minimize" or "maximize".

  Raises:
    ValueError: a bad goal, or no finite value on one side.
  """
  if goal not in ("minimize", "maximize"):
    raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
  p, u = (np.asarray(v, np.float64) for v in (policy, uniform))
  p, u = p[np.isfinite(p)], u[np.isfinite(u)]
  if not len(p) or not len(u):
    raise ValueError(f"Need finite values on both sides, got {len(p)} policy and {len(u)} uniform.")
  if goal == "minimize":
    p, u = -p, -u
  return float(stats.mannwhitneyu(p, u).statistic / (len(p) * len(u)))


def run_task(task, context: int, samples: int, seed: int, model=None) -> dict[str, Any]:
  """One task's row: the means of both samplers and P(policy beats uniform)."""
  from optformer import Optimizer

  rng = np.random.default_rng(seed)
  opt = Optimizer(task.space, goal=task.goal, model=model, seed=seed)
  for _ in range(context):
    params = task.space.sample(rng)
    opt.tell(params, task(params))
  policy = [task.noiseless(p) for p in opt.sample_policy(samples)]
  uniform = [task.noiseless(task.space.sample(rng)) for _ in range(samples)]
  return {
      "task": task.name, "dims": len(task.space), "goal": task.goal,
      "policy_mean": float(np.nanmean(policy)), "uniform_mean": float(np.nanmean(uniform)),
      "p_policy_beats_uniform": beats_probability(policy, uniform, task.goal),
  }


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
  """Mean and standard error of P(policy beats uniform) over tasks, and the share of tasks the policy's mean wins."""
  p = np.array([r["p_policy_beats_uniform"] for r in rows], np.float64)
  sign = np.array([1.0 if r["goal"] == "maximize" else -1.0 for r in rows])
  wins = sign * (np.array([r["policy_mean"] for r in rows]) - np.array([r["uniform_mean"] for r in rows])) > 0
  se = float(p.std(ddof=1) / np.sqrt(len(p))) if len(p) > 1 else float("nan")
  return {"tasks": len(rows), "p_policy_beats_uniform": float(p.mean()), "standard_error": se,
          "policy_mean_better_share": float(wins.mean())}


def build_tasks(args) -> list:
  from optformer.eval import suites

  if args.suite == "prior":
    return suites.build("prior", num_tasks=args.tasks)
  if args.suite == "bbob":
    dims = tuple(int(d) for d in args.dims.split(","))
    return suites.build("bbob", functions=tuple(range(1, 25))[:: max(1, 24 // args.tasks)], dimensions=dims)
  return suites.build("hpo")[: args.tasks]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--suite", choices=("prior", "bbob", "hpo"), required=True)
  p.add_argument("--tasks", type=int, default=16, help="prior: tasks; bbob: about this many functions; hpo: first N")
  p.add_argument("--dims", default="2,4,8", help="bbob: comma-separated dimensions")
  p.add_argument("--context", type=int, default=20, help="uniform trials told before sampling")
  p.add_argument("--samples", type=int, default=256, help="policy samples and uniform samples per task")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
  p.add_argument("--out", type=pathlib.Path, help="write {rows, summary} as JSON here")
  args = p.parse_args(argv)
  rows = []
  for i, task in enumerate(build_tasks(args)):
    rows.append(run_task(task, args.context, args.samples, args.seed + i, model=args.model))
    print(json.dumps(rows[-1]), flush=True)
  result = {"suite": args.suite, "context": args.context, "samples": args.samples, "rows": rows,
            "summary": summarize(rows)}
  print(json.dumps(result["summary"]))
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
