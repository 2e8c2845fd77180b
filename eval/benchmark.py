"""Benchmarks: every optimizer on every task of the chosen suites, cached per study.

  python -m optformer.eval.benchmark [--preset full|bench] [--suite prior bbob hpo] [--optimizers all | NAME ...]
                           [--model NAME=DIR ...] [--seeds S] [--trials T] [--max-tasks N] [--tasks NAME ...]
                           [--checkpoint DIR]
                           [--out results/full] [--dry-run]

What runs is a list of *entries*, each a row of the report: the optimizers
of --optimizers under their own names (the optformer entries with the model
of --checkpoint, the shipped one by default), then one entry per --model
NAME=DIR: the "optformer" optimizer with the model in DIR, named NAME. So
`--model base=runs/a/export --model bins64=runs/b/export` compares two
checkpoints with the baselines in one report.

One *study* is one (suite, task, entry, seed): T rounds of ask -> evaluate ->
tell through eval/runner.py. Each study is written, when done, to
OUT/<suite>/<task>/<key>/seed_<s>.json (observed and noiseless objective per
trial, the configurations, seconds per suggestion per trial, the entry's
name and model id). The cache is keyed by what ran, not by the name: <key> is
the optimizer's name for a baseline and "<optimizer>@<model id>" for an entry
with a model (`model_id`: a content hash of the checkpoint), so another
checkpoint under the same name or into the same OUT runs its own studies,
and a renamed checkpoint reuses its studies (so do studies cached under
OUT/<suite>/<task>/<optimizer>/ before keys held the model id, when their
record names this model). A study already there with >= T
trials is skipped, so a killed run resumes where it stopped when started
again with the same command. OUT/models.json binds each entry's name to its
model id (the latest run's binding wins); the report reads the studies of
each name's bound model only. Per task,
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
--seeds, --trials and --max-tasks override every suite of the preset;
--tasks keeps only the tasks of those names (of any registered hpo task,
not only the preset's: `--suite hpo --tasks lasso_diabetes`).
Seeds run 0..S-1; the seed of a study seeds the optimizer and, on prior
tasks, the observation noise (the same noise for every optimizer).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
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
from optformer.eval import entries as entries_lib
from optformer.eval.entries import MODELS_FILE, Entry, make_entries, model_id, parse_model, read_models  # noqa: F401
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
  names: tuple[str, ...] | None = None  # Keep only the tasks of these names (before max_tasks); None: all.


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


def study_path(out: pathlib.Path, suite: str, task: str, key: str, seed: int) -> pathlib.Path:
  """Where a study is cached; `key`: `Entry.key` (a baseline's optimizer name)."""
  return out / suite / task / key / f"seed_{seed}.json"


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


def plan_studies(plans: dict[str, SuitePlan], entries: list[Entry], task_lists: dict[str, list]):
  """(suite, task, entry, seed, trials) of every study to run, seed-major; unsupported pairs left out."""
  out = []
  for seed in range(max(p.seeds for p in plans.values())):
    for suite, plan in plans.items():
      if seed >= plan.seeds:
        continue
      for task in task_lists[suite]:
        for entry in entries:
          if opt_lib.supports(entry.optimizer, task.space):
            out.append((suite, task, entry, seed, plan.trials))
  return out


def run(out: pathlib.Path, plans: dict[str, SuitePlan], optimizers, model=None, dry_run: bool = False,
        log: Callable[[str], Any] = print, models: dict | None = None) -> dict:
  """Runs every missing study of `plans` into the cache at `out`.

  Args:
    out: cache folder.
    plans: suite name -> SuitePlan.
    optimizers: names from eval.optimizers.OPTIMIZERS (or variants); each an entry under its own name.
    model: PFNSurrogate / checkpoint directory / None (shipped) for the optformer entries of `optimizers`.
    dry_run: only count what would run (nothing is written).
    log: called with one line per study run and a summary.
    models: named models, NAME -> checkpoint directory or PFNSurrogate: one "optformer" entry each
      (`make_entries`).

  Returns:
    {"run": studies computed, "cached": studies skipped (already done with the same model),
     "unsupported": [(suite, task, entry name)] pairs left out (cmaes on categorical spaces),
     "entries": [Entry], "seconds": wall time}.

  Raises:
    ValueError: unknown suite or optimizer name, a bad model name or directory, or bad task arguments.
  """
  entries = make_entries(optimizers, model, models)
  for suite in plans:
    if suite not in suites.SUITES:
      raise ValueError(f"Unknown suite {suite!r}; expected one of {list(suites.SUITES)}.")
  start = time.perf_counter()
  task_lists = {}
  for suite, plan in plans.items():
    built = suites.build(suite, **plan.tasks)
    task_lists[suite] = [t for t in built if plan.names is None or t.name in plan.names][: plan.max_tasks]
  wanted = {n for p in plans.values() for n in (p.names or ())}
  missing = sorted(wanted - {t.name for ts in task_lists.values() for t in ts})
  if missing:
    raise ValueError(f"No task named {missing} in the suites {list(plans)}.")
  unsupported = [(s, t.name, e.name) for s, ts in task_lists.items() for t in ts for e in entries
                 if not opt_lib.supports(e.optimizer, t.space)]
  todo = plan_studies(plans, entries, task_lists)
  done = {"run": 0, "cached": 0, "unsupported": unsupported, "entries": entries}
  if not dry_run:
    entries_lib.bind_models(out, entries, log)
  for i, (suite, task, entry, seed, trials) in enumerate(todo):
    path = study_path(out, suite, task.name, entry.key, seed)
    # The key holds the model id; a record of another model there (an id without content: "in-memory:Class")
    # is recomputed, never reported as this one's. A cache written before keys held the model id has its studies
    # under the optimizer's name: one of this model (its record's "model") counts as done.
    old = study_path(out, suite, task.name, entry.optimizer, seed)
    if any(c is not None and len(c.get("values", ())) >= trials and c.get("model") == entry.model_id
           for c in map(load_study, dict.fromkeys((path, old)))):
      done["cached"] += 1
      continue
    if dry_run:
      done["run"] += 1
      continue
    ensure_reference(out, suite, task, plans[suite].reference_samples)
    record = run_one(task, entry.optimizer, seed, trials, entry.model)
    _write_json(path, {"suite": suite, "name": entry.name, **record})
    done["run"] += 1
    sps = np.median(record["seconds_per_suggestion"])
    log(f"[{i + 1}/{len(todo)}] {suite}/{task.name} {entry.name} seed {seed}: {trials} trials in "
        f"{record['wall_seconds']:.1f} s (median {sps:.4f} s/suggestion)")
  if not dry_run:
    for suite, ts in task_lists.items():  # References of tasks whose studies were all cached.
      for t in ts:
        ensure_reference(out, suite, t, plans[suite].reference_samples)
  done["seconds"] = time.perf_counter() - start
  log(f"{done['run']} studies {'to run' if dry_run else 'run'}, {done['cached']} cached, "
      f"{len(unsupported)} (task, optimizer) pairs unsupported, {done['seconds']:.0f} s")
  return done


def make_plans(preset: str, suite_names=None, seeds=None, trials=None, max_tasks=None,
               tasks=None) -> dict[str, SuitePlan]:
  """The preset's plans for `suite_names` (None: all), with overrides applied.

  `tasks`: None, or task names to keep (`SuitePlan.names`; `run` raises ValueError for a name no suite has); an
  hpo plan then draws them from every registered scikit-learn task, not only the preset's.

  Raises:
    ValueError: unknown preset or suite, a non-positive override, or an empty `tasks`.
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
  if tasks is not None and not len(tasks):
    raise ValueError("tasks must name at least one task (None: all).")
  plans = {}
  for n in names:
    p = PRESETS[preset][n]
    kwargs = p.tasks if tasks is None else {k: v for k, v in p.tasks.items() if not (n == "hpo" and k == "names")}
    plans[n] = dataclasses.replace(p, seeds=seeds or p.seeds, trials=trials or p.trials,
                                   max_tasks=max_tasks or p.max_tasks, tasks=kwargs,
                                   names=None if tasks is None else tuple(tasks))
  return plans


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="full", choices=sorted(PRESETS))
  p.add_argument("--suite", nargs="+", default=None, metavar="SUITE", help=f"of {list(suites.SUITES)} (default all)")
  p.add_argument("--optimizers", nargs="+", default=["all"], metavar="NAME",
                 help=f"'all' or names of {list(opt_lib.NAMES)}")
  p.add_argument("--seeds", type=int, default=None, help="override: seeds 0..S-1 for every suite")
  p.add_argument("--trials", type=int, default=None, help="override: trials per study for every suite")
  p.add_argument("--max-tasks", type=int, default=None, help="override: first N tasks of every suite")
  p.add_argument("--tasks", nargs="+", default=None, metavar="NAME",
                 help="keep only the tasks of these names (hpo: of every registered task)")
  p.add_argument("--checkpoint", default=None,
                 help="model directory of the optformer entries of --optimizers (default: the shipped checkpoint)")
  p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                 help="a named model: the optformer optimizer with the model in DIR, reported as NAME (repeatable)")
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/full"))
  p.add_argument("--dry-run", action="store_true", help="count the studies to run, run nothing")
  args = p.parse_args(argv)
  try:
    plans = make_plans(args.preset, args.suite, args.seeds, args.trials, args.max_tasks, args.tasks)
    names = opt_lib.parse_names(args.optimizers)
    models = dict(parse_model(m) for m in args.model)
    if len(models) < len(args.model):
      raise ValueError(f"--model names must differ; got {args.model}.")
    make_entries(names, args.checkpoint, models)  # Bad names and model directories fail here, before any work.
  except ValueError as e:
    p.error(str(e))
  from optformer.eval import demo

  if not args.dry_run:
    args.out.mkdir(parents=True, exist_ok=True)
    line = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(["python", "-m", "optformer.eval.benchmark", *(argv if argv is not None else sys.argv[1:])]),
            "preset": args.preset, "plans": {k: dataclasses.asdict(v) for k, v in plans.items()},
            "optimizers": names, "checkpoint": demo.checkpoint_info(args.checkpoint),
            "models": {n: demo.checkpoint_info(d) for n, d in models.items()},
            "machine": demo.machine_info(), "versions": demo.versions()}
    with open(args.out / "runs.jsonl", "a") as f:
      f.write(json.dumps(line, default=_jsonable) + "\n")
  try:
    run(args.out, plans, names, model=args.checkpoint, dry_run=args.dry_run, log=lambda s: print(s, flush=True),
        models=models)
  except ValueError as e:  # Bad task arguments or names (`run`'s documented errors).
    p.error(str(e))
  return 0


if __name__ == "__main__":
  sys.exit(main())
