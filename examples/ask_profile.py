"""Where one ask() of the shipped model spends its time: history encoding, scoring, policy samples.

A held-out 8-parameter prior task (the one eval/latency.py uses), a history of
50 uniform random trials; each line is the median of 7 calls after a warm-up.

  python examples/ask_profile.py [--history 50] [--checkpoint DIR]
"""

import argparse
import time

import numpy as np

import optformer
from optformer.acquisition_search import uniform_points
from optformer.eval import latency


def median_ms(f, repeats: int = 7) -> float:
  f()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    f()
    times.append(time.perf_counter() - t0)
  return 1000 * float(np.median(times))


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--history", type=int, default=50)
  p.add_argument("--checkpoint", default=None)
  args = p.parse_args()
  task = latency.default_task()
  objective = task.with_noise_seed(0)
  opt = optformer.Optimizer(task.space, task.goal, model=args.checkpoint, seed=0, warn_truncation=False)
  rng = np.random.default_rng(0)
  for _ in range(args.history):
    c = task.space.sample(rng)
    opt.tell(c, objective(c))
  context, best = opt._model_context()
  model = opt.surrogate
  print(f"history {args.history}, {len(task.space)} parameters, {'v2' if model.v2 else 'v1'} model")
  print(f"condition on the history (encode once): {median_ms(lambda: model.condition(context)):.1f} ms")
  post = model.condition(context)
  for m in (64, 256, 512, 1024):
    units = uniform_points(task.space, rng, m)
    print(f"acquisition of {m:4d} candidates: {median_ms(lambda: post.acquisition(units, best)):.1f} ms")
  if not model.v2:
    for m in (32, 128):
      print(f"{m:4d} policy samples: {median_ms(lambda: post.propose(rng, m)):.1f} ms")

  def ask():
    opt.remove_pending(opt.ask())

  print(f"ask() with the default search {opt.search}: {median_ms(ask):.1f} ms")


if __name__ == "__main__":
  main()
