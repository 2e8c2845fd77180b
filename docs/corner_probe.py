"""Why early suggestions sit in the corners (docs/model_v3.md).

The surrogate's mean, std and EI by distance to the bounds:

  python docs/corner_probe.py [MODEL_DIR]

Eight times: 3 uniform trials of the sphere f(x) = sum x_i^2 on [-5, 5]^4, the shipped model (or MODEL_DIR) fitted
on them (optformer.Surrogate), 2,000 uniform points scored. Prints, by L-inf distance of the points from the centre
(5 = on a bound), the mean prediction, std, EI (minimization, Jones et al. 1998, eq. 15) and distance to the
nearest trial, with the true f; then the same for the 20 points of highest EI (its last column: their L-inf).
"""

import collections
import sys

import numpy as np
from scipy.stats import norm

from optformer import Float, SearchSpace
from optformer.surrogate import Surrogate


def main(model=None, dims: int = 4, repeats: int = 8) -> None:
  names = [f"x{i}" for i in range(dims)]
  space = SearchSpace([Float(n, -5.0, 5.0) for n in names])
  rng = np.random.default_rng(0)
  rows = collections.defaultdict(list)
  for _ in range(repeats):
    trials = rng.uniform(-5, 5, size=(3, dims))
    y = (trials ** 2).sum(1)
    surrogate = Surrogate(space, model=model).fit([dict(zip(names, r)) for r in trials], y)
    points = rng.uniform(-5, 5, size=(2000, dims))
    mean, std = surrogate.predict([dict(zip(names, map(float, r))) for r in points], return_std=True)
    z = (y.min() - mean) / std
    ei = std * (z * norm.cdf(z) + norm.pdf(z))
    edge = np.abs(points).max(1)
    dist = np.linalg.norm(points[:, None] - trials[None], axis=-1).min(1)
    for lo, hi in ((0, 2.5), (2.5, 4), (4, 4.75), (4.75, 5.01)):
      k = (edge >= lo) & (edge < hi)
      rows[f"L-inf in [{lo}, {hi})"].append((mean[k].mean(), std[k].mean(), ei[k].mean(), dist[k].mean(),
                                            (points[k] ** 2).sum(1).mean()))
    top = np.argsort(-ei)[:20]
    rows["20 best by EI"].append((mean[top].mean(), std[top].mean(), ei[top].mean(), dist[top].mean(),
                                  edge[top].mean()))
  print("| points | mean | std | EI | distance to the nearest trial | true f (best by EI: L-inf) |")
  print("|---|---:|---:|---:|---:|---:|")
  for name, v in rows.items():
    print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in np.mean(v, 0)) + " |")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else None)
