"""Capped vs uncapped EI of model v2 on a 2-D quadratic bowl (docs/model_v2.md, "Capped acquisition").

  .venv/bin/python docs/capped_ei_probe.py [MODEL_DIR]

For each cap (inference.Z_LIMIT: inf = the plain EI of the bar distribution, 10 = the default),
runs 30 trials of the default Optimizer from seeds 0..7 on f(x, y) = (x - 0.8)^2 + (y - 0.75)^2
(minimize; random search's mean value is 0.32, the worst corner's 1.2) and prints the mean of the
last 15 values and how many trials landed within 0.1 of the worst corner (0, 0).
"""

import math
import sys

import numpy as np

import optformer
from optformer.model import inference

CAPS = (math.inf, inference.Z_LIMIT)
SPACE = optformer.SearchSpace([optformer.Float("x", 0.0, 1.0), optformer.Float("y", 0.0, 1.0)])


def objective(p):
  return (p["x"] - 0.8) ** 2 + (p["y"] - 0.75) ** 2


MODEL = None  # A model directory; None for the default.


def study(seed):
  opt = optformer.Optimizer(SPACE, "minimize", seed=seed, model=MODEL)
  values, corner = [], 0
  for _ in range(30):
    s = opt.ask()
    values.append(objective(s))
    corner += math.hypot(s["x"], s["y"]) < 0.1
    opt.tell(s, values[-1])
  return np.mean(values[-15:]), corner, min(values)


def main():
  global MODEL
  if len(sys.argv) > 1:
    MODEL = sys.argv[1]
  default = inference.Z_LIMIT
  print("| cap | mean of trials 16-30 | trials within 0.1 of the worst corner | best value |")
  print("|---|---|---|---|")
  for cap in CAPS:
    inference.Z_LIMIT = cap
    late, corner, best = map(np.array, zip(*[study(seed) for seed in range(8)]))
    se = late.std(ddof=1) / math.sqrt(len(late))
    print(f"| {cap:g} | {late.mean():.3f} ± {se:.3f} | {corner.sum()} of 240 | {np.median(best):.4f} (median) |")
  inference.Z_LIMIT = default


if __name__ == "__main__":
  main()
