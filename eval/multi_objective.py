"""Multi-objective acquisition, measured: hypervolume after N trials on ZDT1 (Zitzler et al. 2000) in 4-D.

  python -m optformer.eval.multi_objective [--trials 30] [--seeds 3] [--methods ehvi parego random tpe nsga2]
                                           [--checkpoint DIR]

ZDT1: x in [0, 1]^4, f1 = x1, g = 1 + 9 mean(x2..x4), f2 = g (1 - sqrt(f1 / g)), both minimized; the Pareto
front is x2..x4 = 0, f2 = 1 - sqrt(f1). Hypervolume of the feasible trials' losses with reference point
(1.1, 11) by optuna's `compute_hypervolume` (the front's hypervolume is 1.1 * 11 - 2/3 - ... ~ 11.44 at most).

Methods: "ehvi" and "parego" (`optformer.Optimizer(goal=[...])` with `optformer.multi_objective.METHOD` set),
"random" (uniform), "tpe" and "nsga2" (Optuna's multi-objective TPESampler and NSGAIISampler, seeded).
Prints per method the mean ± standard error over seeds of the hypervolume at 10, 20, 40 and N trials, and the
seconds per trial.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import optformer
from optformer import multi_objective
from optformer import search_space as ss

REFERENCE = np.array([1.1, 11.0])
DIM = 4


def zdt1(x: np.ndarray) -> tuple[float, float]:
  """(f1, f2) of ZDT1 at x float [DIM] in [0, 1]."""
  g = 1.0 + 9.0 * float(np.mean(x[1:]))
  return float(x[0]), g * (1.0 - np.sqrt(x[0] / g))


def hypervolume_curve(losses: np.ndarray, at) -> list[float]:
  """The hypervolume of the first n losses (float [N, 2]) for each n in `at`."""
  from optuna._hypervolume import compute_hypervolume

  out = []
  for n in at:
    l = losses[:n]
    l = l[np.all(l < REFERENCE, axis=1)]
    out.append(float(compute_hypervolume(l, REFERENCE)) if len(l) else 0.0)
  return out


def run(method: str, seed: int, trials: int, checkpoint=None) -> np.ndarray:
  """float [trials, 2]: the losses of one study."""
  names = [f"x{i}" for i in range(DIM)]
  if method in ("ehvi", "parego"):
    multi_objective.METHOD = method
    space = ss.SearchSpace([ss.Float(n, 0.0, 1.0) for n in names])
    opt = optformer.Optimizer(space, goal=["minimize", "minimize"], model=checkpoint, seed=seed)
    out = []
    for _ in range(trials):
      s = opt.ask()
      out.append(zdt1(np.array([s[n] for n in names])))
      opt.tell(s, list(out[-1]))
    return np.array(out)
  if method == "random":
    return np.array([zdt1(x) for x in np.random.default_rng(seed).random((trials, DIM))])
  import optuna

  optuna.logging.set_verbosity(optuna.logging.WARNING)
  sampler = (optuna.samplers.TPESampler(seed=seed) if method == "tpe" else
             optuna.samplers.NSGAIISampler(seed=seed))
  study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
  study.optimize(lambda t: zdt1(np.array([t.suggest_float(n, 0.0, 1.0) for n in names])), n_trials=trials)
  return np.array([t.values for t in study.trials])


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--trials", type=int, default=30)
  ap.add_argument("--seeds", type=int, default=3)
  ap.add_argument("--methods", nargs="+", default=["ehvi", "parego", "random", "tpe", "nsga2"])
  ap.add_argument("--checkpoint", default=None)
  args = ap.parse_args(argv)
  at = sorted({n for n in (10, 20, 40) if n < args.trials} | {args.trials})
  print(f"ZDT1 {DIM}-D, hypervolume (reference {REFERENCE.tolist()}) at trials {at}, mean ± s.e. over "
        f"{args.seeds} seeds")
  for method in args.methods:
    start, curves = time.perf_counter(), []
    for seed in range(args.seeds):
      curves.append(hypervolume_curve(run(method, seed, args.trials, args.checkpoint), at))
    c = np.array(curves)
    se = c.std(axis=0, ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.zeros(len(at))
    cells = "  ".join(f"{m:7.3f} ± {e:5.3f}" for m, e in zip(c.mean(axis=0), se))
    secs = (time.perf_counter() - start) / (args.seeds * args.trials)
    print(f"{method:8s} {cells}   {secs:.2f} s/trial", flush=True)


if __name__ == "__main__":
  main()
