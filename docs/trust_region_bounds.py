"""Share of coordinates at the bounds of the box in BBOB trials 2-10, per benchmark entry (docs/trust_region.md).

  python docs/trust_region_bounds.py results/trust

A coordinate counts as at a bound when it lies within 5% of the range [-5, 5] of either end (|x| >= 4.5).
"""

import collections
import json
import pathlib
import sys

import numpy as np


def main(out: str) -> None:
  at_bound = collections.defaultdict(list)
  for path in sorted(pathlib.Path(out, "bbob").glob("*/*/seed_*.json")):
    study = json.loads(path.read_text())
    for params in study["params"][1:10]:  # Trials 2-10.
      at_bound[study["name"]].extend(abs(v) >= 4.5 for v in params.values())
  print("| entry | coordinates at a bound, trials 2-10 |\n|---|---:|")
  for name, flags in sorted(at_bound.items()):
    print(f"| {name} | {np.mean(flags):.1%} (of {len(flags)}) |")


if __name__ == "__main__":
  main(sys.argv[1])
