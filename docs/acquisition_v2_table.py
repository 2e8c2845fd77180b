"""The tables of docs/acquisition_v2.md from a benchmark cache (python -m optformer.eval.benchmark --out OUT).

  python docs/acquisition_v2_table.py OUT [--baseline optformer] [--random random] [--at 10 25] [--entries NAME ...]

Per suite: normalized regret (eval/regret.py) at each t, mean ± s.e. over (task, seed) studies; the paired
difference to the baseline entry over the same studies (variant - baseline, mean ± s.e.; negative is better);
median seconds per suggestion. Then per task (a BBOB function pools its dimensions and instances, as
eval/report.py's problems do): the entries whose mean regret is above random search's at any t, with "*" where a
two-sided Mann-Whitney U test (eval/report.py `wins_ties_losses`) calls it a loss (p < 0.05). Only tasks where
every entry has studies count, and only the seeds all entries share (report.task_curves); --entries keeps only
those entries (so entries run on more seeds compare on all of them).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from collections import defaultdict

import numpy as np

from optformer.eval import report


def tables(out: pathlib.Path, baseline: str, random: str, at: tuple[int, ...], keep=None) -> str:
  data = report.load(out)
  if keep:
    for tasks in data.values():
      for e in tasks.values():
        e["studies"] = {n: s for n, s in e["studies"].items() if n in keep}
  lines = []
  for suite in [s for s in ("prior", "bbob", "hpo") if s in data]:
    names = report._order({n for e in data[suite].values() for n in e["studies"]})
    per_task = {k: report.task_curves(e) for k, e in data[suite].items() if set(names) <= set(e["studies"])}
    per_task = {k: v for k, v in per_task.items() if v["seeds"]}
    if not per_task:
      continue
    rows = {n: np.concatenate([v["curves"][n] for v in per_task.values()]) for n in names}  # [studies, T]
    studies = len(rows[names[0]])
    head = " | ".join(f"regret@{t}" for t in at)
    diff = " | ".join(f"Δ@{t} vs {baseline}" for t in at)
    lines += [f"### {suite}: {len(per_task)} tasks, {studies} studies", "",
              f"| entry | {head} | {diff} | s/suggestion |", "|---|" + "---:|" * (2 * len(at) + 1)]
    for n in names:
      cells = [f"{rows[n][:, t - 1].mean():.3f} ± {_se(rows[n][:, t - 1]):.3f}" for t in at]
      d = [rows[n][:, t - 1] - rows[baseline][:, t - 1] for t in at] if baseline in rows else []
      dcells = ["—" if n == baseline else f"{x.mean():+.3f} ± {_se(x):.3f}" for x in d]
      secs = [s for k in per_task for rec in data[suite][k]["studies"][n].values() for s in rec["seconds_per_suggestion"]]
      lines.append(f"| {n} | {' | '.join(cells)} | {' | '.join(dcells)} | {np.median(secs):.3f} |")
    lines += ["", f"{suite}: entries with a mean regret above {random}'s on a task (t: mean vs {random}'s; "
              "* = Mann-Whitney loss, p < 0.05):", ""]
    problems = defaultdict(lambda: defaultdict(list))
    for v in per_task.values():
      for n, c in v["curves"].items():
        problems[v["problem"]][n].append(c)
    worse = []
    for prob, by_name in sorted(problems.items()):
      c = {n: np.concatenate(x) for n, x in by_name.items()}
      for n in names:
        if n == random:
          continue
        hits = []
        for t in at:
          a, b = c[n][:, t - 1], c[random][:, t - 1]
          if a.mean() > b.mean() + 5e-4:  # Above by more than the printed precision.
            star = "*" if report.wins_ties_losses(a, b) == "loss" else ""
            hits.append(f"@{t} {a.mean():.3f} vs {b.mean():.3f}{star}")
        if hits:
          worse.append(f"| {prob} | {n} | {'; '.join(hits)} |")
    lines += (["| task | entry | worse than random at |", "|---|---|---|"] + worse) if worse else ["(none)"]
    lines.append("")
  return "\n".join(lines)


def _se(x) -> float:
  return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("out", type=pathlib.Path)
  p.add_argument("--baseline", default="optformer")
  p.add_argument("--random", default="random")
  p.add_argument("--at", type=int, nargs="+", default=[10, 25])
  p.add_argument("--entries", nargs="+", help="only these entries (default: all)")
  args = p.parse_args(argv)
  print(tables(args.out, args.baseline, args.random, tuple(args.at), args.entries))
  return 0


if __name__ == "__main__":
  sys.exit(main())
