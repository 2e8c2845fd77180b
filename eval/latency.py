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
The shipped model's context holds 256 trials (`surrogate.max_context`):
past that it sees the best half and the most recent trials (optformer.context).

Cold start (`cold_start`): each step in a fresh interpreter (subprocess), for
optformer.Optimizer (the shipped model unless --checkpoint) and Optuna's
GPSampler on an 8-parameter Float space (a shifted sphere, as
examples/cold_start.py): the import, building the optimizer, the first
suggestion of an empty study, the first suggestion after 10 told trials
(another fresh process), 12 ask/tell rounds, and the wall time from the
process's spawn to its first suggestion. optformer runs with a compilation
cache in a new directory: a first process fills it (reported as
"cold_cache"), the timed ones read it (a warm cache). GPSampler's first 10
suggestions are its random start-up trials (n_startup_trials=10, its
default), so its 12 rounds fit a GP twice.

Predict (`predict_5000`): the predictive mean and std on 5,000 uniform
configurations after 50 told trials, in one process: Optimizer.predict
(context encoding and scoring; first call, then the median of 3) beside
GPSampler's GP (optuna._gp: fitting the kernel hyperparameters as
GPSampler does, then `GPRegressor.posterior` on the 5,000 points).

Command: python -m optformer.eval.latency [--checkpoint DIR] [--sizes 10 50 100 200] [--repeats 5]
                                [--optimizers all] [--no-cold-start] [--out results/latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import textwrap
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
    model: PFNSurrogate / checkpoint directory / None (shipped) for the optformer entries.
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


COLD_START_PARAMS = 8  # Float parameters of the cold-start and predict study, in [-5, 5].
COLD_START_ROUNDS = 12

# Runs in a fresh interpreter: argv = [spawn time (time.time()), history size, rounds, model, cache dir].
_OPTFORMER_CHILD = """
import json, sys, time
spawn, t0 = float(sys.argv[1]), time.perf_counter()
import optformer
t_import = time.perf_counter()
history, rounds, model, cache = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] or None, sys.argv[5]
space = optformer.SearchSpace([optformer.Float(f"x{i}", -5.0, 5.0) for i in range(NUM)])
f = lambda p: sum((p[f"x{i}"] - 1.0) ** 2 for i in range(NUM))
opt = optformer.Optimizer(space, seed=0, model=model, compilation_cache=cache)
t_opt = time.perf_counter()
import numpy as np
rng = np.random.default_rng(0)
for _ in range(history):
  c = space.sample(rng)
  opt.tell(c, f(c))
t_told = time.perf_counter()
p = opt.ask()
t_first, to_first = time.perf_counter(), time.time() - spawn
for _ in range(rounds - 1):
  opt.tell(p, f(p))
  p = opt.ask()
t_end = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "optimizer_s": t_opt - t_import, "first_ask_s": t_first - t_told,
                  "rounds_s": t_end - t_told, "spawn_to_first_suggestion_s": to_first}))
"""

_GP_CHILD = """
import json, sys, time
spawn, t0 = float(sys.argv[1]), time.perf_counter()
import optuna
t_import = time.perf_counter()
history, rounds = int(sys.argv[2]), int(sys.argv[3])
optuna.logging.set_verbosity(optuna.logging.WARNING)
dists = {f"x{i}": optuna.distributions.FloatDistribution(-5.0, 5.0) for i in range(NUM)}
f = lambda p: sum((p[f"x{i}"] - 1.0) ** 2 for i in range(NUM))
study = optuna.create_study(direction="minimize", sampler=optuna.samplers.GPSampler(seed=0))
t_opt = time.perf_counter()
import numpy as np
rng = np.random.default_rng(0)
for _ in range(history):
  c = {k: float(rng.uniform(-5.0, 5.0)) for k in dists}
  study.add_trial(optuna.trial.create_trial(params=c, distributions=dists, value=f(c)))
t_told = time.perf_counter()
trial = study.ask(dists)
t_first, to_first = time.perf_counter(), time.time() - spawn
for _ in range(rounds - 1):
  study.tell(trial, f(trial.params))
  trial = study.ask(dists)
t_end = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "optimizer_s": t_opt - t_import, "first_ask_s": t_first - t_told,
                  "rounds_s": t_end - t_told, "spawn_to_first_suggestion_s": to_first}))
"""


def _child(code: str, history: int, rounds: int, *extra: str) -> dict:
  """Runs `code` in a fresh interpreter; its JSON line of seconds (see cold_start)."""
  env = dict(os.environ)
  root = str(pathlib.Path(__file__).resolve().parents[1])
  env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  args = [sys.executable, "-c", textwrap.dedent(code).replace("NUM", str(COLD_START_PARAMS)), repr(time.time()),
          str(history), str(rounds), *extra]
  out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
  if out.returncode != 0:
    raise RuntimeError(f"cold-start child failed ({out.returncode}): {out.stderr[-2000:]}")
  return {k: round(v, 3) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def cold_start(model=None, repeats: int = 3, with_gp: bool = True) -> dict:
  """Fresh-process timings of optformer.Optimizer and (with_gp) Optuna's GPSampler (module docstring).

  Args:
    model: a checkpoint directory, or None for the shipped model.
    repeats: fresh processes per setting (>= 1); each step reports the median over them.
    with_gp: also time GPSampler (needs optuna and torch).

  Returns:
    {"params", "rounds", "repeats", "optformer": {"cold_cache": {...}, "empty": {...}, "history_10": {...}},
     "gpsampler": {"empty": {...}, "history_10": {...}}} of seconds of wall time: import_s, optimizer_s,
    first_ask_s (after the history is told), rounds_s (`rounds` ask/tell rounds, "empty" only; the first ask
    included), spawn_to_first_suggestion_s.

  Raises:
    ValueError: repeats < 1. RuntimeError: a child process failed (its stderr in the message).
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}.")
  median = lambda runs: {k: round(float(np.median([r[k] for r in runs])), 3) for k in runs[0]}
  out = {"params": COLD_START_PARAMS, "rounds": COLD_START_ROUNDS, "repeats": repeats, "optformer": {}}
  with tempfile.TemporaryDirectory() as cache:
    ours = lambda history, rounds: _child(_OPTFORMER_CHILD, history, rounds, str(model or ""), cache)
    out["optformer"]["cold_cache"] = ours(0, COLD_START_ROUNDS)
    ours(10, 1)  # Fills the cache for the 10-trial history too.
    out["optformer"]["empty"] = median([ours(0, COLD_START_ROUNDS) for _ in range(repeats)])
    out["optformer"]["history_10"] = median([ours(10, 1) for _ in range(repeats)])
  if with_gp:
    gp = lambda history, rounds: _child(_GP_CHILD, history, rounds)
    out["gpsampler"] = {"empty": median([gp(0, COLD_START_ROUNDS) for _ in range(repeats)]),
                        "history_10": median([gp(10, 1) for _ in range(repeats)])}
  return out


def predict_5000(model=None, history: int = 50, num_points: int = 5000, repeats: int = 3, with_gp: bool = True) -> dict:
  """Seconds for the predictive mean and std at `num_points` configurations after `history` told trials.

  optformer: Optimizer.predict(configs) then its .mean and .std (first call, which compiles the context and
  query shapes when new to the process, and the median of `repeats` more). GPSampler (with_gp): its GP as
  GPSampler builds it (optuna._gp.gp.fit_kernel_params with GPSampler's prior and noise floor on the
  standardized objective), then `GPRegressor.posterior` on the normalized points; fit and posterior timed
  separately, medians of `repeats`.

  Returns:
    {"history", "num_points", "optformer": {"first_s", "median_s"}, "gpsampler": {"fit_s", "posterior_s",
     "total_s"}} (gpsampler only with with_gp).
  """
  import optformer

  space = optformer.SearchSpace([optformer.Float(f"x{i}", -5.0, 5.0) for i in range(COLD_START_PARAMS)])
  rng = np.random.default_rng(0)
  told = [space.sample(rng) for _ in range(history)]
  values = [sum((c[f"x{i}"] - 1.0) ** 2 for i in range(COLD_START_PARAMS)) for c in told]
  queries = [space.sample(rng) for _ in range(num_points)]
  opt = optformer.Optimizer(space, seed=0, model=model)
  for c, v in zip(told, values):
    opt.tell(c, v)

  def ours() -> float:
    t = time.perf_counter()
    dist = opt.predict(queries)
    dist.mean, dist.std  # noqa: B018 (computed properties: the work being timed)
    return time.perf_counter() - t

  first = ours()
  out = {"history": history, "num_points": num_points,
         "optformer": {"first_s": round(first, 4), "median_s": round(float(np.median([ours() for _ in range(repeats)])), 4)}}
  if with_gp:
    out["gpsampler"] = _gp_predict(told, values, queries, repeats)
  return out


def _gp_predict(told, values, queries, repeats: int) -> dict:
  """GPSampler's GP on (told, values), posterior at queries: median seconds of the fit and of the posterior."""
  import optuna
  import torch
  from optuna._gp import gp, prior
  from optuna._gp import search_space as gp_space

  dists = {k: optuna.distributions.FloatDistribution(-5.0, 5.0) for k in told[0]}
  internal = gp_space.SearchSpace(dists)
  X = internal.get_normalized_params([None] * len(told), told)
  Xq = torch.from_numpy(internal.get_normalized_params([None] * len(queries), queries))
  y = -np.asarray(values, np.float64)  # GPSampler maximizes the standardized -objective.
  y = (y - y.mean()) / max(y.std(), 1e-10)
  fits, posts = [], []
  for _ in range(repeats):
    t = time.perf_counter()
    gpr = gp.fit_kernel_params(X=X, Y=y, is_categorical=internal.is_categorical, log_prior=prior.default_log_prior,
                               minimum_noise=prior.DEFAULT_MINIMUM_NOISE_VAR, deterministic_objective=False)
    fits.append(time.perf_counter() - t)
    t = time.perf_counter()
    with torch.no_grad():
      mean, var = gpr.posterior(Xq)
      mean.numpy(), var.sqrt().numpy()
    posts.append(time.perf_counter() - t)
  fit, post = float(np.median(fits)), float(np.median(posts))
  return {"fit_s": round(fit, 4), "posterior_s": round(post, 4), "total_s": round(fit + post, 4)}


def cold_start_markdown(res: dict) -> str:
  """Tables of `cold_start` and `predict_5000` results (seconds)."""
  cs, lines = res.get("cold_start"), []
  if cs:
    steps = ("import_s", "optimizer_s", "first_ask_s", "rounds_s", "spawn_to_first_suggestion_s")
    lines += [f"### Cold start: fresh process per row, median of {cs['repeats']}, seconds "
              f"({cs['params']} Float parameters; rounds: {cs['rounds']} ask/tell rounds)", "",
              "| optimizer | history | import | optimizer | first ask | rounds | spawn to first suggestion |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for name, runs in (("optformer", cs["optformer"]), ("GPSampler", cs.get("gpsampler", {}))):
      for setting, r in runs.items():
        cells = " | ".join("" if k not in r else f"{r[k]:.2f}" for k in steps)
        lines.append(f"| {name} | {setting} | {cells} |")
  pr = res.get("predict_5000")
  if pr:
    lines += ["", f"### Predictive mean and std at {pr['num_points']:,} configurations after {pr['history']} trials, "
              "seconds", "", "| optimizer | first call | median |", "|---|---:|---:|",
              f"| optformer (Optimizer.predict) | {pr['optformer']['first_s']:.3f} | {pr['optformer']['median_s']:.3f} |"]
    if "gpsampler" in pr:
      g = pr["gpsampler"]
      lines.append(f"| GPSampler's GP (fit {g['fit_s']:.3f} + posterior {g['posterior_s']:.3f}) | | {g['total_s']:.3f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", default=None)
  p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--optimizers", nargs="+", default=["all"])
  p.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process and predict-5,000 timings")
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/latency.json"))
  args = p.parse_args(argv)
  try:
    names = opt_lib.parse_names(args.optimizers)
    res = measure(args.checkpoint, tuple(args.sizes), args.repeats, names)
  except ValueError as e:
    p.error(str(e))
  if not args.no_cold_start:
    res["cold_start"] = cold_start(args.checkpoint, with_gp="gp" in names)
    res["predict_5000"] = predict_5000(args.checkpoint, with_gp="gp" in names)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(res, indent=1))
  from optformer.eval.report import latency_markdown

  print(latency_markdown(res))
  if not args.no_cold_start:
    print("\n" + cold_start_markdown(res))
  return 0


if __name__ == "__main__":
  sys.exit(main())
