"""Paired comparison behind docs/output_warping.md: each warping's normalized regret minus the default's ("none")
on the same (task, seed), mean ± standard error over studies, and how many studies it was better / worse on.

  python docs/ablations/output_warping_paired.py results/ywarp [T1 T2 ...]   (trial counts; default 10 25)
  python docs/ablations/output_warping_paired.py --log results/ywarp50 10 25 50

--log compares log10 of the normalized regret (floored at 1e-6) instead: on the plateau tasks every optimizer's
regret is within 1e-3 of 0 after a few trials, so differences near the best (what the warp is for) show only
on a log scale.

Reads the benchmark cache (eval/report.py `load`, `task_curves`: the report's normalized regret, like with like).
The hpo suite is split into the plateau tasks (regularized linear models) and the others.
"""

import pathlib
import sys

import numpy as np

from optformer.eval import report

BASE = "optformer"
PLATEAU = ("logreg_breast_cancer", "lasso_diabetes", "elasticnet_diabetes")


def groups(suite: str, task: str) -> list[str]:
  """The rows a task counts in: its suite's (the plateau tasks': all of them together, and each alone)."""
  return [f"{suite} (plateau tasks)", f"{suite}/{task}"] if suite == "hpo" and task in PLATEAU else [suite]


LOG_FLOOR = 1e-6  # --log: regrets below this count as this.


def main(out: str, at=(10, 25), log: bool = False) -> None:
  metric = (lambda r: np.log10(np.maximum(r, LOG_FLOOR))) if log else (lambda r: r)
  curves: dict = {}
  for suite, tasks in sorted(report.load(pathlib.Path(out)).items()):
    for task, entry in sorted(tasks.items()):
      if BASE in entry["studies"]:
        for g in groups(suite, task):
          curves.setdefault(g, []).append(report.task_curves(entry))
  what = "log10 regret" if log else "regret"
  print("| studies | warping | " + " | ".join(f"{what} @{t}: warp - none | better / worse @{t}" for t in at) + " |")
  print("|---|---|" + "---|---|" * len(at))
  for name, cs in curves.items():
    for warp in sorted({n for c in cs for n in c["curves"]} - {BASE}):
      cells, n = [], 0
      for t in at:
        d = np.concatenate([metric(c["curves"][warp][:, t - 1]) - metric(c["curves"][BASE][:, t - 1]) for c in cs
                            if warp in c["curves"] and c["trials"] >= t])
        n = len(d)
        cells.append(f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(n):.4f}" if n > 1 else f"{d.mean():+.4f}")
        cells.append(f"{np.sum(d < -1e-12)} / {np.sum(d > 1e-12)}")
      print(f"| {name}, {len(cs)} tasks, n={n} | {warp.removeprefix('optformer:output_warping=')} | "
            + " | ".join(cells) + " |")


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if a != "--log"]
  main(args[0], tuple(int(t) for t in args[1:]) or (10, 25), log="--log" in sys.argv[1:])
