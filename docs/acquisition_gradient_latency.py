"""ask() latency of the acquisition-search variants of docs/acquisition_gradient.md, interleaved in one process
(so a shared machine's load hits all alike): median seconds per ask() on a 4-parameter float space after 20
told trials, 10 asks each (after 2 warm-up asks that compile).

  python docs/acquisition_gradient_latency.py
"""

import time

import numpy as np

import optformer

VARIANTS = {
    "default": optformer.SearchConfig(),
    "pool=sobol": optformer.SearchConfig(pool="sobol"),
    "grad_top=8,grad_steps=20": optformer.SearchConfig(grad_top=8, grad_steps=20),
    "grad_top=8,grad_steps=20,grad_radius=0.1": optformer.SearchConfig(grad_top=8, grad_steps=20, grad_radius=0.1),
}


def main():
  space = optformer.SearchSpace([optformer.Float(f"x{i}", -5.0, 5.0) for i in range(4)])
  f = lambda c: sum((v - 1.0) ** 2 for v in c.values())
  opts, times = {}, {name: [] for name in VARIANTS}
  for name, cfg in VARIANTS.items():
    opts[name] = optformer.Optimizer(space, seed=0, search=cfg)
    rng = np.random.default_rng(0)
    for _ in range(20):
      c = space.sample(rng)
      opts[name].tell(c, f(c))
  for r in range(12):
    for name, opt in opts.items():
      t = time.perf_counter()
      c = dict(opt.ask())
      dt = time.perf_counter() - t
      opt.tell(c, f(c))
      if r >= 2:
        times[name].append(dt)
  for name, ts in times.items():
    print(f"{name:45s} median {np.median(ts) * 1e3:.0f} ms per ask (min {np.min(ts) * 1e3:.0f})")


if __name__ == "__main__":
  main()
