"""Paired comparison behind docs/acquisition_gradient.md: each variant's regret minus the default's on the same
(task, seed), mean ± standard error, and how often a suggestion's coordinate sits on the box's bounds.

  python docs/acquisition_gradient_paired.py results/acq

Reads the benchmark cache (eval/report.py `load`, `task_curves`: the report's normalized regret, like with like).
"""

import sys
import pathlib

import numpy as np

from optformer.eval import report

BASE = "optformer"


def main(out: str) -> None:
  data = report.load(pathlib.Path(out))
  for suite, tasks in sorted(data.items()):
    curves = [report.task_curves(entry) for entry in tasks.values()]
    names = sorted({n for c in curves for n in c["curves"]} - {BASE})
    print(f"## {suite}")
    for name in names:
      cells = []
      for t in (10, 25):
        d = np.concatenate([c["curves"][name][:, t - 1] - c["curves"][BASE][:, t - 1] for c in curves])
        cells.append(f"@{t}: {d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f}")
      on_bound = []
      for entry in tasks.values():
        for rec in entry["studies"][name].values():
          for params in rec["params"][1:]:  # The first suggestion is a uniform sample.
            on_bound += [abs(abs(v) - 5.0) < 1e-6 for v in params.values()] if suite == "bbob" else []
      bound = f", coordinates on a bound {np.mean(on_bound):.3f}" if on_bound else ""
      print(f"{name} - {BASE} (n={len(d)}): " + ", ".join(cells) + bound)
    if suite == "bbob":
      base = [abs(abs(v) - 5.0) < 1e-6 for e in tasks.values() for r in e["studies"][BASE].values()
              for p in r["params"][1:] for v in p.values()]
      print(f"{BASE}: coordinates on a bound {np.mean(base):.3f}")


if __name__ == "__main__":
  main(sys.argv[1])
