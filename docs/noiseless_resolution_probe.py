"""How finely the y pipeline resolves values near the context's best on near-noiseless tasks (model v3, noise mixture).

For the evaluation examples of a prior (training/evaluate.py, "reference" or "reference-noiseless"), at context
size n: the context's y is normalized as the model sees it (optformer.model.ynorm, fitted on the context), and
each query's z is placed among the model's bar borders. Per context size it prints

  * z_best: the median z of the context's best value and the median width of the bar that holds it;
  * improving: the share of queries whose y beats the context's best, and of those, the share whose z lies in the
    best's own bar (an improvement the bars cannot resolve: within a bar the density is flat);
  * gap2: the median z distance between the best and second-best context values, in widths of the best's bar.

  OPTFORMER_ROOT=$PWD python docs/noiseless_resolution_probe.py [--checkpoint checkpoints/optformer-v2]
"""

import argparse
import json
import pathlib

import numpy as np

from optformer.training import evaluate
from optformer.training.data import PFNDataConfig, make_batch


def probe(prior: str, borders, num_slot_ids: int, contexts, num_batches: int) -> list[dict]:
  data = evaluate.gp_only(evaluate.eval_data(PFNDataConfig(), prior))
  rows = []
  for n in contexts:
    acc = {k: [] for k in ("z_best", "width", "improving", "unresolved", "gap2")}
    for i in range(num_batches):
      _, _, ex, _, z = make_batch(data, borders, num_slot_ids, i, "validation", seq_len=evaluate.eval_seq_len(n),
                                  n_context=n)
      z = np.asarray(z, np.float64)
      for b in range(z.shape[0]):
        zc, zq = np.sort(z[b, :n]), z[b, n:]
        best = zc[-1]
        k = np.clip(np.searchsorted(borders, best) - 1, 0, len(borders) - 2)
        width = borders[k + 1] - borders[k]
        better = zq > best
        acc["z_best"].append(best)
        acc["width"].append(width)
        acc["improving"].append(better.mean())
        if better.any():
          acc["unresolved"].append(np.mean(zq[better] < borders[k + 1]))
        acc["gap2"].append((best - zc[-2]) / width)
    rows.append({"prior": prior, "context": n, "z_best": float(np.median(acc["z_best"])),
                 "bar_width_at_best": float(np.median(acc["width"])),
                 "improving_share": float(np.mean(acc["improving"])),
                 "unresolved_share_of_improving": float(np.mean(acc["unresolved"])) if acc["unresolved"] else None,
                 "gap2_in_bar_widths": float(np.median(acc["gap2"])), "examples": len(acc["z_best"])})
    print(json.dumps(rows[-1]), flush=True)
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", type=pathlib.Path, default=pathlib.Path("checkpoints/optformer-v2"))
  p.add_argument("--contexts", type=int, nargs="+", default=[10, 40, 100])
  p.add_argument("--batches", type=int, default=2)
  args = p.parse_args()
  model = json.loads((args.checkpoint / "config.json").read_text())["model"]
  borders = np.asarray(model["borders"], np.float64)
  w = np.diff(borders)
  mid = 0.5 * (borders[1:] + borders[:-1])
  print(f"{len(w)} bars on [{borders[0]:.2f}, {borders[-1]:.2f}]; width at z = " + ", ".join(
      f"{z:g}: {w[np.argmin(np.abs(mid - z))]:.4f}" for z in (0, 1, 2, 3, 4)))
  for prior in ("reference-noiseless", "reference"):
    probe(prior, borders, model["num_slot_ids"], args.contexts, args.batches)


if __name__ == "__main__":
  main()
