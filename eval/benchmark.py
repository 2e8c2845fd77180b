"""Benchmarks: every optimizer on every task of the chosen suites, cached per study.

  python -m optformer.eval.benchmark [--preset full|bench] [--suite prior bbob hpo] [--optimizers all | NAME ...]
                           [--seeds S] [--trials T] [--max-tasks N] [--checkpoint DIR] [--out results/full]
                           [--dry-run]

One *study* is one (suite, task, optimizer, seed): T rounds of ask ->
evaluate -> tell through eval/runner.py. Each study is written, when done,
to OUT/<suite>/<task>/<optimizer>/seed_<s>.json (observed and noiseless
objective per trial, the configurations, seconds per suggestion per trial);
a study already there with >= T trials is skipped, so a killed run resumes
where it stopped when started again with the same command. Per task,
OUT/<suite>/<task>/reference.json caches the uniform random sample that
normalizes regret (eval/regret.py). OUT/runs.jsonl gets one line per
invocation (command, plan, machine, versions). Studies run seed by seed
(all suites and tasks for seed 0, then seed 1, ...), so a partial run
covers every task. `python -m optformer.eval.report OUT` turns the cache into tables
and figures.

Presets (trials per study, seeds; see PRESETS):
  full   prior: 8 held-out tasks, 100 trials, 4 seeds; bbob: 24 functions x
         dimensions 2, 4, 8 x instances 1, 2, 50 trials, 1 seed; hpo: every
         registered scikit-learn task, 50 trials, 4 seeds (~2 h here);
  bench  the reduced run of `make bench`: 25 trials; prior 5 tasks x 4
         seeds; bbob f1, f3, f8, f21 x d 2, 4 x instances 1, 2 x 2 seeds;
         hpo knn_wine and dt_diabetes x 4 seeds.
--seeds, --trials and --max-tasks override every suite of the preset.
Seeds run 0..S-1; the seed of a study seeds the optimizer and, on prior
tasks, the observation noise (the same noise for every optimizer).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import math
import pathlib
import shlex
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np

from optformer.eval import optimizers as opt_lib
from optformer.eval import runner, suites
from optformer import study_files

REFERENCE_SEED = 12345  # Seeds the uniform random sample of every task's reference.json.


@dataclasses.dataclass(frozen=True)
class SuitePlan:
  """How much of one suite to run."""

  trials: int  # T: evaluations per study.
  seeds: int  # S: studies per (task, optimizer), seeds 0..S-1.
  tasks: dict  # Keyword arguments of the suite's task builder (suites.build).
  reference_samples: int  # Uniform random configurations per task for y_rand (regret normalization).
  max_tasks: int | None = None  # Keep only the first N tasks.


PRESETS: dict[str, dict[str, SuitePlan]] = {
    # Sized for ~2 hours on the shared 2-core machine (the GP baseline's ask() dominates; see the report).
    "full": {
        "prior": SuitePlan(100, 4, {"num_tasks": 8}, 2048),
        "bbob": SuitePlan(50, 1, {"dimensions": (2, 4, 8), "instances": (1, 2)}, 2048),
        "hpo": SuitePlan(50, 4, {}, 64),
    },
    # make bench: < 30 minutes including latency and surrogate quality. 4 seeds (or 2 seeds x 2 instances x 2
    # dimensions for bbob) per problem, the fewest with which the win/tie/loss test can reach p < 0.05.
    "bench": {
        "prior": SuitePlan(25, 4, {"num_tasks": 5}, 1024),
        "bbob": SuitePlan(25, 2, {"functions": (1, 3, 8, 21), "dimensions": (2, 4), "instances": (1, 2)}, 1024),
        "hpo": SuitePlan(25, 4, {"names": ("knn_wine", "dt_diabetes")}, 24),
    },
}


def study_path(out: pathlib.Path, suite: str, task: str, optimizer: str, seed: int) -> pathlib.Path:
  return out / suite / task / optimizer / f"seed_{seed}.json"


def model_id(model) -> str | None:
  """The identity of the model a study ran with, stored in its record as "model": for a checkpoint directory
  "sha256:" + the first 16 hex digits of the sha256 of its manifest.json (which lists the sha256 of every file
  of the model, so equal ids mean equal models wherever the directory lies), "in-memory:" + the class name for a
  model object, None for an optimizer without a model (`optimizers.checkpoint_of`)."""
  if model is None:
    return None
  if not isinstance(model, (str, os.PathLike)):
    return f"in-memory:{type(model).__name__}"
  try:
    return "sha256:" + hashlib.sha256((pathlib.Path(model) / "manifest.json").read_bytes()).hexdigest()[:16]
  except OSError as e:
    raise ValueError(f"Cannot identify the model {model}: {e}") from e


def _write_json(path: pathlib.Path, obj) -> None:
  """Writes atomically (temp file + rename), so a killed run never leaves half a file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  study_files.write_atomic(path, json.dumps(obj, default=_jsonable))


def _jsonable(x):
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  raise TypeError(f"Not JSON-able: {type(x).__name__}")


def load_study(path: pathlib.Path) -> dict | None:
  """The cached study at `path`, or None if missing or unreadable (then it is recomputed)."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def ensure_reference(out: pathlib.Path, suite: str, task, num: int) -> dict:
  """OUT/<suite>/<task>/reference.json: the task's random sample and known optimum (computed once).

  Returns:
    {"suite", "task", "problem", "goal", "optimum": float | None (goal units), "space" (to_json),
     "random_values": float [num] (noiseless objective, NaN -> null), "seed", "seconds", "describe"}.
  """
  path = out / suite / task.name / "reference.json"
  cached = load_study(path)
  if cached is not None and len(cached["random_values"]) >= num:
    return cached
  t0 = time.perf_counter()
  values = task.random_values(num, REFERENCE_SEED)
  optimum = task.optimum
  ref = {"suite": suite, "task": task.name, "problem": task.problem, "goal": task.goal,
         "optimum": None if optimum is None else float(optimum), "space": task.space.to_json(),
         "random_values": [v if math.isfinite(v) else None for v in map(float, values)],
         "seed": REFERENCE_SEED, "seconds": time.perf_counter() - t0, "describe": task.describe()}
  _write_json(path, ref)
  return ref


def run_one(task, optimizer: str, seed: int, trials: int, model=None) -> dict:
  """One study: a fresh optimizer on the task's noise stream `seed`, `trials` rounds of ask/tell.

  Returns:
    The study record (see the module docstring): "values" float [T] (what
    the optimizer observed), "noiseless" float [T], "params" [T],
    "seconds_per_suggestion" [T], "seconds_per_evaluation" [T], "wall_seconds".
  """
  objective = task.with_noise_seed(seed)
  opt = opt_lib.make(optimizer, task.space, task.goal, seed, model=model)
  used = model_id(opt_lib.checkpoint_of(optimizer, model))
  noiseless, eval_seconds = [], []

  def evaluate(params):
    t0 = time.perf_counter()
    value = objective(params)
    eval_seconds.append(time.perf_counter() - t0)
    noiseless.append(objective.noiseless(params) if objective.noisy else value)
    return value

  start = time.perf_counter()
  with warnings.catch_warnings():
    # Past the model's context (256 trials for the default model) the Optimizer keeps the best half
    # and the most recent trials and warns once per study; the report states it once.
    warnings.filterwarnings("ignore", message="The study has .* trials; the model's context holds")
    records = runner.run_study(opt, evaluate, trials)
  return {
      "task": task.name, "problem": task.problem, "goal": task.goal, "optimizer": optimizer, "model": used, "seed": seed,
      "trials": trials, "values": [r.value for r in records], "noiseless": noiseless,
      "params": [dict(r.params) for r in records],
      "seconds_per_suggestion": [r.seconds_per_suggestion for r in records],
      "seconds_per_evaluation": eval_seconds, "wall_seconds": time.perf_counter() - start,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def plan_studies(plans: dict[str, SuitePlan], optimizers, task_lists: dict[str, list]):
  """(suite, task, optimizer, seed, trials) of every study to run, seed-major; unsupported pairs left out."""
  out = []
  for seed in range(max(p.seeds for p in plans.values())):
    for suite, plan in plans.items():
      if seed >= plan.seeds:
        continue
      for task in task_lists[suite]:
        for name in optimizers:
          if opt_lib.supports(name, task.space):
            out.append((suite, task, name, seed, plan.trials))
  return out


def run(out: pathlib.Path, plans: dict[str, SuitePlan], optimizers, model=None, dry_run: bool = False,
        log: Callable[[str], Any] = print) -> dict:
  """Runs every missing study of `plans` into the cache at `out`.

  Args:
    out: cache folder.
    plans: suite name -> SuitePlan.
    optimizers: names from eval.optimizers.OPTIMIZERS.
    model: PFNSurrogate / checkpoint directory / None (shipped) for the optformer entries.
    dry_run: only count what would run.
    log: called with one line per study run and a summary.

  Returns:
    {"run": studies computed, "cached": studies skipped (already done),
     "unsupported": [(suite, task, optimizer)] pairs left out (cmaes on
     categorical spaces), "seconds": wall time}.

  Raises:
    ValueError: unknown suite or optimizer name, bad task arguments, or a cached study in `out` run with another
      model than this run's (`model_id`; nothing is overwritten).
  """
  optimizers = opt_lib.parse_names(optimizers)
  for suite in plans:
    if suite not in suites.SUITES:
      raise ValueError(f"Unknown suite {suite!r}; expected one of {list(suites.SUITES)}.")
  start = time.perf_counter()
  task_lists = {}
  for suite, plan in plans.items():
    task_lists[suite] = suites.build(suite, **plan.tasks)[: plan.max_tasks]
  unsupported = [(s, t.name, n) for s, ts in task_lists.items() for t in ts for n in optimizers
                 if not opt_lib.supports(n, t.space)]
  todo = plan_studies(plans, optimizers, task_lists)
  done = {"run": 0, "cached": 0, "unsupported": unsupported}
  models = {name: model_id(opt_lib.checkpoint_of(name, model)) for name in optimizers}
  # What a record written before "model" was stored ran with: the default model of its entry.
  defaults = {name: model_id(opt_lib.checkpoint_of(name)) for name in optimizers}
  for i, (suite, task, name, seed, trials) in enumerate(todo):
    path = study_path(out, suite, task.name, name, seed)
    cached = load_study(path)
    if cached is not None and len(cached.get("values", ())) >= trials:
      _check_cached_model(path, cached.get("model", defaults[name]), name, models[name])
      done["cached"] += 1
      continue
    if dry_run:
      done["run"] += 1
      continue
    ensure_reference(out, suite, task, plans[suite].reference_samples)
    record = run_one(task, name, seed, trials, model)
    _write_json(path, {"suite": suite, **record})
    done["run"] += 1
    sps = np.median(record["seconds_per_suggestion"])
    log(f"[{i + 1}/{len(todo)}] {suite}/{task.name} {name} seed {seed}: {trials} trials in "
        f"{record['wall_seconds']:.1f} s (median {sps:.4f} s/suggestion)")
  if not dry_run:
    for suite, ts in task_lists.items():  # References of tasks whose studies were all cached.
      for t in ts:
        ensure_reference(out, suite, t, plans[suite].reference_samples)
  done["seconds"] = time.perf_counter() - start
  log(f"{done['run']} studies {'to run' if dry_run else 'run'}, {done['cached']} cached, "
      f"{len(unsupported)} (task, optimizer) pairs unsupported, {done['seconds']:.0f} s")
  return done


def _check_cached_model(path: pathlib.Path, have: str | None, name: str, wanted: str | None) -> None:
  """Raises ValueError when a cached study ran with another model than this run would use (the cache is keyed
  by suite, task, optimizer and seed, so it would otherwise be reported as this model's). `have`: the record's
  "model" (`model_id`; the entry's default model for records written before it was stored)."""
  if have != wanted:
    raise ValueError(
        f"{path} holds a study of {name!r} run with the model {have}, but this run's model is {wanted}: "
        "write this run to another --out folder (or remove that folder's studies of this optimizer)."
    )


def make_plans(preset: str, suite_names=None, seeds=None, trials=None, max_tasks=None) -> dict[str, SuitePlan]:
  """The preset's plans for `suite_names` (None: all), with overrides applied.

  Raises:
    ValueError: unknown preset or suite, or a non-positive override.
  """
  if preset not in PRESETS:
    raise ValueError(f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
  names = list(suites.SUITES) if not suite_names else list(suite_names)
  for n in names:
    if n not in suites.SUITES:
      raise ValueError(f"Unknown suite {n!r}; expected one of {list(suites.SUITES)}.")
  for what, v in (("seeds", seeds), ("trials", trials), ("max_tasks", max_tasks)):
    if v is not None and v < 1:
      raise ValueError(f"{what} must be >= 1, got {v}.")
  plans = {}
  for n in names:
    p = PRESETS[preset][n]
    plans[n] = dataclasses.replace(p, seeds=seeds or p.seeds, trials=trials or p.trials,
                                   max_tasks=max_tasks or p.max_tasks)
  return plans


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="full", choices=sorted(PRESETS))
  p.add_argument("--suite", nargs="+", default=None, metavar="SUITE", help=f"of {list(suites.SUITES)} (default all)")
  p.add_argument("--optimizers", nargs="+", default=["all"], metavar="NAME",
                 help=f"'all' or names of {list(opt_lib.OPTIMIZERS)}")
  p.add_argument("--seeds", type=int, default=None, help="override: seeds 0..S-1 for every suite")
  p.add_argument("--trials", type=int, default=None, help="override: trials per study for every suite")
  p.add_argument("--max-tasks", type=int, default=None, help="override: first N tasks of every suite")
  p.add_argument("--checkpoint", default=None, help="model directory (default: the shipped checkpoint)")
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/full"))
  p.add_argument("--dry-run", action="store_true", help="count the studies to run, run nothing")
  args = p.parse_args(argv)
  try:
    plans = make_plans(args.preset, args.suite, args.seeds, args.trials, args.max_tasks)
    names = opt_lib.parse_names(args.optimizers)
  except ValueError as e:
    p.error(str(e))
  from optformer.eval import demo

  if not args.dry_run:
    args.out.mkdir(parents=True, exist_ok=True)
    line = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(["python", "-m", "optformer.eval.benchmark", *(argv if argv is not None else sys.argv[1:])]),
            "preset": args.preset, "plans": {k: dataclasses.asdict(v) for k, v in plans.items()},
            "optimizers": names, "checkpoint": demo.checkpoint_info(args.checkpoint),
            "machine": demo.machine_info(), "versions": demo.versions()}
    with open(args.out / "runs.jsonl", "a") as f:
      f.write(json.dumps(line, default=_jsonable) + "\n")
  run(args.out, plans, names, model=args.checkpoint, dry_run=args.dry_run, log=lambda s: print(s, flush=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())
