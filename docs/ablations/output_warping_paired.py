"""Paired comparison behind docs/output_warping.md: each warping's normalized regret minus the default's ("none")
on the same (task, seed), mean ± standard error over studies, and how many studies it was better / worse on.

  python docs/ablations/output_warping_paired.py results/ywarp

Reads the benchmark cache (eval/report.py `load`, `task_curves`: the report's normalized regret, like with like).
The hpo suite is split into the plateau tasks (regularized linear models) and the others.
"""

import pathlib
import sys

import numpy as np

from optformer.eval import report

BASE = "optformer"
PLATEAU = ("logreg_breast_cancer", "lasso_diabetes", "elasticnet_diabetes")


def group(suite: str, task: str) -> str:
  return f"{suite} (plateau tasks)" if suite == "hpo" and task in PLATEAU else suite


def main(out: str, at=(10, 25)) -> None:
  curves: dict = {}
  for suite, tasks in sorted(report.load(pathlib.Path(out)).items()):
    for task, entry in sorted(tasks.items()):
      if BASE in entry["studies"]:
        curves.setdefault(group(suite, task), []).append(report.task_curves(entry))
  print("| studies | warping | " + " | ".join(f"regret @{t}: warp - none | better / worse @{t}" for t in at) + " |")
  print("|---|---|" + "---|---|" * len(at))
  for name, cs in curves.items():
    for warp in sorted({n for c in cs for n in c["curves"]} - {BASE}):
      cells, n = [], 0
      for t in at:
        d = np.concatenate([c["curves"][warp][:, t - 1] - c["curves"][BASE][:, t - 1] for c in cs
                            if warp in c["curves"] and c["trials"] >= t])
        n = len(d)
        cells.append(f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(n):.4f}")
        cells.append(f"{np.sum(d < -1e-12)} / {np.sum(d > 1e-12)}")
      print(f"| {name}, {len(cs)} tasks, n={n} | {warp.removeprefix('optformer:output_warping=')} | "
            + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv[1])
