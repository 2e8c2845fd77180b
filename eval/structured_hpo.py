"""Structured HPO, measured: OptFormerSampler against Optuna's samplers on a conditional, a constrained and a
bi-objective scikit-learn task (eval/structured_tasks.py).

  python -m optformer.eval.structured_hpo --task conditional|constrained|biobjective [--trials N] [--seeds S]
      [--first-seed 0] [--methods optformer tpe ...] [--checkpoint DIR] [--out results/structured_TASK.json]
  python -m optformer.eval.structured_hpo --summarize results/structured_TASK.json [more results of TASK ...]

Every method runs the task's define-by-run objective through `optuna.create_study(...).optimize` with its seed:

| method             | sampler                                                                         |
| ------------------ | ------------------------------------------------------------------------------- |
| "optformer"        | optformer.integrations.optuna.OptFormerSampler (the shipped model, or --checkpoint) |
| "tpe"              | TPESampler(seed) (Optuna 5's default, multivariate)                              |
| "tpe-group"        | TPESampler(seed, group=True): one joint model per branch of a conditional space  |
|                    | (the same sampler as "tpe" on a space without branches)                          |
| "gp"               | GPSampler(seed): its fallback samples parameters outside the intersection search |
|                    | space, i.e. every conditional one, at random                                    |
| "nsga2"            | NSGAIISampler(seed)                                                              |
| "random"           | RandomSampler(seed)                                                              |

All with the task's `constraints_func` (the constrained task) and their default startup trials (TPE and GP 10,
OptFormerSampler 1). For "optformer" and "gp" the fallback (`independent_sampler`) is a `CountingSampler` around
RandomSampler(seed): a *held* fallback is a parameter that some earlier COMPLETE trial held sampled by it, after
the sampler's startup trials (the issue's target: none for OptFormerSampler).

Metrics (`summarize`), mean +- standard error over seeds:
  * single objective: the best (feasible) validation error after n trials, and its regret: that minus the
    best feasible error of every study in the results file (all methods and seeds);
  * constrained: the feasible share of trials 20..39 (clipped to the trials run);
  * bi-objective: the hypervolume of the trials' (error, log10 weights) dominated up to `structured_tasks.REFERENCE`
    after n trials (optuna's compute_hypervolume; points beyond the reference count nothing).
The results file holds every trial (params, values, constraint) and is written after each study, so a long
run leaves partial results; a rerun with the same --out skips the (method, seed) studies already in it.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time
import warnings
from typing import Any

import numpy as np
import optuna

from optformer.eval.runner import mean_and_stderr
from optformer.eval.structured_tasks import TASKS, StructuredTask

METHODS = ("optformer", "tpe", "tpe-group", "gp", "nsga2", "random")
DEFAULT_METHODS = {
    "conditional": ("optformer", "tpe", "tpe-group", "gp", "random"),
    "constrained": ("optformer", "tpe", "gp", "random"),
    "biobjective": ("optformer", "tpe", "nsga2", "gp", "random"),
}
DEFAULT_TRIALS = {"conditional": 40, "constrained": 40, "biobjective": 100}
CHECKPOINTS = {"conditional": (10, 20, 40), "constrained": (20, 40), "biobjective": (20, 40, 100)}
FEASIBLE_WINDOW = (20, 40)  # Trials 20..39: the constrained target's feasible share.


class CountingSampler(optuna.samplers.BaseSampler):
  """An Optuna sampler that delegates to `inner` and records every `sample_independent` call (used as a fallback).

  `calls` lists (trial number, parameter name, held) per call, held = some COMPLETE trial before it holds the
  parameter.
  """

  def __init__(self, inner: optuna.samplers.BaseSampler):
    self.inner, self.calls = inner, []

  def infer_relative_search_space(self, study, trial):
    return {}

  def sample_relative(self, study, trial, search_space):
    return {}

  def sample_independent(self, study, trial, param_name, param_distribution):
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    self.calls.append((trial.number, param_name, any(param_name in t.params for t in completed)))
    return self.inner.sample_independent(study, trial, param_name, param_distribution)

  def before_trial(self, study, trial):
    self.inner.before_trial(study, trial)

  def after_trial(self, study, trial, state, values):
    self.inner.after_trial(study, trial, state, values)

  def reseed_rng(self):
    self.inner.reseed_rng()


def make_sampler(method: str, task: StructuredTask, seed: int, checkpoint=None):
  """(sampler, CountingSampler or None) of `method` for `task`, seeded.

  Raises:
    ValueError: unknown method.
  """
  s, cf = optuna.samplers, task.constraints_func
  if method == "optformer":
    from optformer.integrations.optuna import OptFormerSampler

    fallback = CountingSampler(s.RandomSampler(seed=seed))
    return OptFormerSampler(seed=seed, model=checkpoint, independent_sampler=fallback, constraints_func=cf), fallback
  if method == "gp":
    fallback = CountingSampler(s.RandomSampler(seed=seed))
    return s.GPSampler(seed=seed, independent_sampler=fallback, constraints_func=cf), fallback
  makers = {
      "tpe": lambda: s.TPESampler(seed=seed, constraints_func=cf),
      "tpe-group": lambda: s.TPESampler(seed=seed, group=True, constraints_func=cf),
      "nsga2": lambda: s.NSGAIISampler(seed=seed, constraints_func=cf),
      "random": lambda: s.RandomSampler(seed=seed),
  }
  if method not in makers:
    raise ValueError(f"Unknown method {method!r}; expected one of {list(METHODS)}.")
  return makers[method](), None


STARTUP = {"optformer": 1, "gp": 10}  # The samplers' default startup trials (all fallback by design).


def run_study(task: StructuredTask, method: str, seed: int, trials: int, checkpoint=None) -> dict:
  """One seeded study of `trials` trials; a JSON-able record.

  Returns:
    {"method", "seed", "trials": [{"params", "values" (None for a FAIL trial), "constraint" (constrained task)}],
     "seconds_per_trial" (wall seconds, sampling and evaluation: Optuna samples inside the objective's first
     suggest call),
     "fallback": {"calls", "held", "held_calls": [(trial number, parameter)]} (optformer and gp; held: after
     the startup trials),
     "warnings": {message head: count}}.
  """
  optuna.logging.set_verbosity(optuna.logging.ERROR)
  start = time.perf_counter()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sampler, counter = make_sampler(method, task, seed, checkpoint)
    study = optuna.create_study(directions=list(task.directions), sampler=sampler)
    study.optimize(task.objective, n_trials=trials, catch=(ValueError,))
  seconds = time.perf_counter() - start
  record: dict[str, Any] = {
      "method": method, "seed": seed,
      "seconds_per_trial": seconds / trials,
      "trials": [{"params": t.params, "values": t.values,
                  **({"constraint": t.user_attrs.get("constraint")} if task.constraints_func else {})}
                 for t in study.trials],
  }
  if counter is not None:
    held = [(n, p) for n, p, h in counter.calls if h and n >= STARTUP[method]]
    record["fallback"] = {"calls": len(counter.calls), "held": len(held), "held_calls": held}
  heads: dict[str, int] = {}
  for w in caught:
    key = f"{w.category.__name__}: {str(w.message)[:160]}"
    heads[key] = heads.get(key, 0) + 1
  record["warnings"] = heads
  return record


# -- Metrics ---------------------------------------------------------------------------------------------------


def _values(study: dict) -> np.ndarray:
  """float [T, M]: the trials' objective values, NaN for a FAIL trial (M = number of objectives)."""
  rows = [t["values"] for t in study["trials"]]
  m = max((len(r) for r in rows if r is not None), default=1)
  return np.array([r if r is not None else [math.nan] * m for r in rows], np.float64)


def _feasible(study: dict) -> np.ndarray:
  """bool [T]: finite values and, where the task is constrained, constraint <= 0."""
  ok = np.all(np.isfinite(_values(study)), axis=1)
  c = [t.get("constraint", -1.0) for t in study["trials"]]
  return ok & np.array([x is not None and x <= 0 for x in c])


def best_feasible(study: dict, n: int) -> float:
  """The least first objective among the first n trials that are feasible (NaN if none)."""
  v, f = _values(study)[:n, 0], _feasible(study)[:n]
  return float(v[f].min()) if f.any() else math.nan


def feasible_share(study: dict, window=FEASIBLE_WINDOW) -> float:
  """Share of trials window[0]..window[1]-1 (clipped to those run) that are feasible; NaN if none are in it."""
  f = _feasible(study)[window[0]:window[1]]
  return float(f.mean()) if len(f) else math.nan


def hypervolume(study: dict, n: int, reference) -> float:
  """Hypervolume dominated by the first n feasible trials' values (all minimized) up to `reference` (float [M])."""
  from optuna._hypervolume import compute_hypervolume  # What optuna's own hypervolume reports use.

  ref = np.asarray(reference, np.float64)
  v = _values(study)[:n][_feasible(study)[:n]]
  v = v[np.all(v < ref, axis=1)]
  return float(compute_hypervolume(v, ref)) if len(v) else 0.0


def summarize(results: dict) -> dict:
  """method -> {metric name: (mean, s.e., number of seeds)} over the seeds in `results` (`run_study` records).

  Metrics: "best@n" and "regret@n" (single objective), "feasible 20-39" (constrained), "hv@n" (bi-objective),
  "fallback held" (after the startup trials), "fallback held >=10" (from trial 10 on) and "fallback calls" (all,
  startup included; optformer and gp), "s/trial" (wall seconds per trial).
  """
  task, trials = TASKS[results["task"]["name"]], results["trials_per_study"]
  at = sorted({n for n in CHECKPOINTS.get(task.name, ()) if n <= trials} | {trials})
  studies = results["studies"]
  out: dict[str, dict] = {}
  if len(task.directions) == 1:
    bests = [best_feasible(s, trials) for s in studies]
    y_star = float(np.nanmin(bests)) if np.isfinite(bests).any() else math.nan
  for method in dict.fromkeys(s["method"] for s in studies):
    mine = [s for s in studies if s["method"] == method]
    rows: dict[str, list] = {}
    for n in at:
      if len(task.directions) == 1:
        rows[f"best@{n}"] = [best_feasible(s, n) for s in mine]
        rows[f"regret@{n}"] = [best_feasible(s, n) - y_star for s in mine]
      else:
        rows[f"hv@{n}"] = [hypervolume(s, n, task.reference) for s in mine]
    if task.constraints_func is not None:
      rows["feasible 20-39"] = [feasible_share(s) for s in mine]
    if all("fallback" in s for s in mine):
      rows["fallback held"] = [s["fallback"]["held"] for s in mine]
      rows["fallback held >=10"] = [sum(n >= 10 for n, _ in s["fallback"]["held_calls"]) for s in mine]
      rows["fallback calls"] = [s["fallback"]["calls"] for s in mine]
    rows["s/trial"] = [s["seconds_per_trial"] for s in mine]
    out[method] = {k: (*(float(x) for x in mean_and_stderr(v)), len(v)) for k, v in rows.items()}
  return out


def table(results: dict, markdown: bool = False) -> str:
  """A table of `summarize(results)`: one row per method, "mean ± s.e." per metric; fixed-width text, or a
  Markdown table (for docs/structured_hpo.md)."""
  summary = summarize(results)
  if not summary:
    return "(no studies)"
  metrics = list(dict.fromkeys(k for row in summary.values() for k in row))
  seeds = sorted({s["seed"] for s in results["studies"]})
  title = f"{results['task']['name']}: {results['trials_per_study']} trials, seeds {seeds}, mean ± s.e."
  if markdown:
    lines = [title, "", "| method | seeds | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
  else:
    lines = [title, f"{'method':18s}{'seeds':>6s}" + "".join(f"{m:>20s}" for m in metrics)]
  for method, row in summary.items():
    cells = []
    for m in metrics:
      if m not in row:  # A metric of other methods (the fallback counts).
        cells.append("-")
        continue
      mean, se, _ = row[m]
      digits = 1 if m.startswith("fallback") else 2 if m == "s/trial" else 4
      cells.append(f"{mean:.{digits}f} ± {se:.{digits}f}")
    if markdown:
      lines.append(f"| {method} | {row['s/trial'][2]} | " + " | ".join(cells) + " |")
    else:
      lines.append(f"{method:18s}{row['s/trial'][2]:6d}" + "".join(f"{c:>20s}" for c in cells))
  return "\n".join(lines)


def merge(results: list[dict]) -> dict:
  """One results dict pooling the studies of several (e.g. seeds run in separate processes); a (method, seed)
  study in more than one is kept once, from the first.

  Raises:
    ValueError: the results are of different tasks or trial counts.
  """
  first, seen, studies = results[0], set(), []
  for r in results:
    if (r["task"]["name"], r["trials_per_study"]) != (first["task"]["name"], first["trials_per_study"]):
      raise ValueError(f"Cannot pool {r['task']['name']!r} with {r['trials_per_study']} trials and "
                       f"{first['task']['name']!r} with {first['trials_per_study']}.")
    for s in r["studies"]:
      if (s["method"], s["seed"]) not in seen:
        seen.add((s["method"], s["seed"]))
        studies.append(s)
  return {**first, "studies": studies}


def run(task_name: str, trials: int, seeds, methods, checkpoint=None, out: pathlib.Path | None = None,
        log=print) -> dict:
  """Runs every (seed, method) study not already in `out` (seed-major, so partial results cover whole seeds), writing
  `out` after each; returns the results {"task", "trials_per_study", "checkpoint", "studies"}.

  Raises:
    ValueError: unknown task or method, or `out` holds another task or trial count.
  """
  if task_name not in TASKS:
    raise ValueError(f"Unknown task {task_name!r}; expected one of {list(TASKS)}.")
  for m in methods:
    if m not in METHODS:
      raise ValueError(f"Unknown method {m!r}; expected one of {list(METHODS)}.")
  task = TASKS[task_name]
  results = {"task": task.describe(), "trials_per_study": trials,
             "checkpoint": str(checkpoint) if checkpoint else "default", "studies": []}
  if out is not None and out.exists():
    old = json.loads(out.read_text())
    if old["task"]["name"] != task_name or old["trials_per_study"] != trials:
      raise ValueError(f"{out} holds task {old['task']['name']!r} with {old['trials_per_study']} trials, not "
                       f"{task_name!r} with {trials}; choose another --out.")
    results["studies"] = old["studies"]
  done = {(s["method"], s["seed"]) for s in results["studies"]}
  for seed in seeds:
    for method in methods:
      if (method, seed) in done:
        continue
      record = run_study(task, method, seed, trials, checkpoint)
      results["studies"].append(record)
      log(f"{task_name} {method} seed {seed}: {record['seconds_per_trial']:.2f} s/trial")
      if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=float))
        tmp.replace(out)
  return results


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--task", choices=list(TASKS))
  ap.add_argument("--trials", type=int, default=None, help="per study (default: 40, or 100 for biobjective)")
  ap.add_argument("--seeds", type=int, default=3)
  ap.add_argument("--first-seed", type=int, default=0)
  ap.add_argument("--methods", nargs="+", default=None)
  ap.add_argument("--checkpoint", default=None)
  ap.add_argument("--out", type=pathlib.Path, default=None)
  ap.add_argument("--summarize", type=pathlib.Path, nargs="+", default=None,
                  help="print the table of results files (one task and trial count; studies pooled) and exit")
  ap.add_argument("--markdown", action="store_true", help="print the table in Markdown")
  args = ap.parse_args(argv)
  if args.summarize is not None:
    print(table(merge([json.loads(p.read_text()) for p in args.summarize]), args.markdown))
    return
  if args.task is None:
    ap.error("--task is required (or --summarize FILE)")
  trials = args.trials or DEFAULT_TRIALS[args.task]
  results = run(args.task, trials, range(args.first_seed, args.first_seed + args.seeds),
                args.methods or DEFAULT_METHODS[args.task], args.checkpoint, args.out,
                log=lambda s: print(s, flush=True))
  print(table(results, args.markdown))


if __name__ == "__main__":
  main()
