"""Held-out tasks from the project's GP prior as benchmark objectives.

Task seeds come from the prior's *validation* split (data_gen.prior.task_seeds),
which the training corpus never uses. An optimizer sees the noisy objective
(to maximize); regret is measured on the noiseless function:

  normalized regret(t) = (f_max - max_{i <= t} f(x_i)) / (f_max - f_min),

with f_max and f_min estimated from 16,384 uniform valid points plus local
refinement of the best 16 (the same estimate for every optimizer).

Command: python -m eval.prior_tasks [--checkpoint DIR] [--tasks 20] [--trials 40] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

import optformer
from data_gen import prior as prior_lib
from eval.random_search import RandomSearch
from eval.runner import run_study


_evaluate = jax.jit(prior_lib.evaluate_one)  # One compile per shape, shared by all tasks.


class PriorTask:
  """One held-out prior function as an ask/tell objective (goal: maximize).

  Args:
    config: the PriorConfig tasks come from.
    index: task index within the validation split (global seed 0).
    noise_seed: seeds the observation noise of this run.
  """

  goal = "maximize"

  def __init__(self, config: prior_lib.PriorConfig, index: int, noise_seed: int = 0):
    seed = prior_lib.task_seeds(0, "validation", index, 1)
    self.task = jax.tree.map(lambda a: a[0], prior_lib.sample_tasks(config, seed))
    self.name = f"prior-{index}"
    self.kinds = np.asarray(self.task.kinds)
    self.num_values = np.asarray(self.task.num_values)
    self.num_dims = int(self.task.num_dims)
    params = []
    for d in range(self.num_dims):
      k, n = int(self.kinds[d]), int(self.num_values[d])
      if k == prior_lib.KIND_FLOAT:
        params.append(optformer.Float(f"x{d}", 0.0, 1.0))
      elif k == prior_lib.KIND_INT:
        params.append(optformer.Int(f"x{d}", 0, n - 1))
      else:
        params.append(optformer.Categorical(f"x{d}", [f"c{j}" for j in range(n)]))
    self.space = optformer.SearchSpace(params)
    self._f = lambda x: _evaluate(self.task, x)
    self._rng = np.random.default_rng([index, noise_seed])
    self.f_min, self.f_max = self._range()

  def unit(self, params) -> np.ndarray:
    """float32 [D_max] unit form of a configuration."""
    u = np.zeros(len(self.kinds), np.float32)
    u[: self.num_dims] = self.space.to_unit(params)
    return u

  def noiseless(self, params) -> float:
    return float(self._f(self.unit(params)[None])[0])

  def __call__(self, params) -> float:
    return self.noiseless(params) + float(np.sqrt(self.task.noise_variance)) * self._rng.normal()

  def _range(self) -> tuple[float, float]:
    key = jax.random.key(int(self.name.split("-")[1]))
    k1, k2 = jax.random.split(key)
    x = prior_lib.sample_valid(k1, self.task.kinds, self.task.num_values, 16_384)
    f = self._f(x)
    top = x[jnp.argsort(-f)[:16]]
    local = jnp.repeat(top, 256, axis=0) + 0.02 * jax.random.normal(k2, (16 * 256, x.shape[1]))
    is_float = self.task.kinds == prior_lib.KIND_FLOAT
    local = jnp.where(is_float, jnp.clip(local, 0.0, 1.0), jnp.repeat(top, 256, axis=0))
    return float(f.min()), float(max(f.max(), self._f(local).max()))

  def normalized_regret(self, f_values) -> np.ndarray:
    """float [T]: normalized regret of the best-so-far noiseless values."""
    best = np.maximum.accumulate(np.asarray(f_values, np.float64))
    return np.clip((self.f_max - best) / max(self.f_max - self.f_min, 1e-12), 0.0, 1.0)


def run(task: PriorTask, optimizer, num_trials: int) -> dict:
  """One study through the shared ask/tell loop; regret from the noiseless f."""
  records = run_study(optimizer, task, num_trials)
  f = [task.noiseless(r.params) for r in records]
  return {"regret": task.normalized_regret(f).tolist(), "seconds_per_ask": [r.seconds_per_suggestion for r in records]}


def benchmark(checkpoint=None, num_tasks: int = 20, num_trials: int = 40, num_seeds: int = 5, max_dims: int = 8) -> dict:
  config = prior_lib.PriorConfig(max_dims=max_dims)
  factories = {
      "optformer": lambda space, s: optformer.Optimizer(space, "maximize", model=checkpoint, seed=s),
      "random": lambda space, s: RandomSearch(space, s),
  }
  from tqdm import tqdm

  runs = {name: [] for name in factories}
  for i in tqdm(range(num_tasks), desc="prior tasks"):
    for s in range(num_seeds):
      for name, make in factories.items():
        task = PriorTask(config, i, noise_seed=s)
        runs[name].append({"task": task.name, "seed": s, "num_dims": task.num_dims, **run(task, make(task.space, s), num_trials)})
  return {"num_tasks": num_tasks, "num_trials": num_trials, "num_seeds": num_seeds, "runs": runs}


def summarize(result: dict, at=(10, 20, 40)) -> dict:
  out = {}
  for name, runs in result["runs"].items():
    r = np.array([run["regret"] for run in runs])  # [tasks * seeds, T]
    row = {}
    for t in at:
      if t <= r.shape[1]:
        v = r[:, t - 1]
        row[f"regret@{t}"] = (float(v.mean()), float(v.std() / np.sqrt(len(v))))
    row["median_seconds_per_ask"] = float(np.median([np.median(run["seconds_per_ask"]) for run in runs]))
    out[name] = row
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", default=None)
  p.add_argument("--tasks", type=int, default=20)
  p.add_argument("--trials", type=int, default=40)
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/prior_tasks.json"))
  args = p.parse_args(argv)
  result = benchmark(args.checkpoint, args.tasks, args.trials, args.seeds)
  summary = summarize(result)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps({"summary": summary, **result}))
  cols = [k for k in next(iter(summary.values())) if k.startswith("regret@")]
  print(f"{'optimizer':<12}" + "".join(f"{c:>18}" for c in cols) + f"{'s/ask':>10}")
  for name, row in summary.items():
    print(f"{name:<12}" + "".join(f"{row[c][0]:>11.4f} ± {row[c][1]:.3f}" for c in cols) + f"{row['median_seconds_per_ask']:>10.4f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
