"""Markdown table of model v2 recipe ablations: one row per run directory.

  optformer-train ablation-table runs/ablate [--at-step N]

Each run is a workdir of `optformer-train train`; the row shows its recipe (from
config.json), its last held-out evaluation (training/pfn_eval.py: NLL gap to
the exact GP in nats per query at each context size, lower is better), its
final training loss and seconds per step.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def row(run: pathlib.Path, at_step: int | None = None) -> dict | None:
  cfg_path, log = run / "config.json", run / "metrics.jsonl"
  if not (cfg_path.exists() and log.exists()):
    return None
  cfg = json.loads(cfg_path.read_text())
  rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
  evals = [r for r in rows if any(k.startswith("gap_") for k in r) and (at_step is None or r["step"] == at_step)]
  if not evals:
    return None
  m = cfg["model"]
  return {
      "run": run.name, "optimizer": cfg["optimizer"], "lr": cfg["peak_learning_rate"], "width": m["d_model"],
      "layers": m["num_layers"], "slot": m["d_slot"], "bins": len(m["borders"]) - 1, "steps": evals[-1]["step"],
      "gaps": {k[4:]: v for k, v in evals[-1].items() if k.startswith("gap_")},
      "loss": rows[-1]["loss"], "s_per_step": sum(r["seconds_per_step"] for r in rows) / len(rows),
  }


def table(runs, at_step: int | None = None) -> str:
  rows = [r for r in (row(run, at_step) for run in runs) if r]
  if not rows:
    return "No finished runs.\n"
  # Gaps by context size ("gap_20"); the trainer also logs them by relevant parameters ("gap_5_dims_1-2"), left out.
  sizes = sorted((k for k in rows[0]["gaps"] if k.isdigit()), key=int)
  head = "| run | optimizer | lr | width x layers | slot | bins | steps | " + " | ".join(f"gap@{n}" for n in sizes) + " | mean gap | s/step |"
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  for r in sorted(rows, key=lambda r: sum(r["gaps"].get(n, float("nan")) for n in sizes)):  # Best mean gap first.
    g = [r["gaps"].get(n, float("nan")) for n in sizes]
    lines.append(f"| {r['run']} | {r['optimizer']} | {r['lr']:g} | {r['width']} x {r['layers']} | {r['slot']} | {r['bins']} | "
                 f"{r['steps']} | " + " | ".join(f"{v:+.3f}" for v in g) + f" | {sum(g) / len(g):+.3f} | {r['s_per_step']:.2f} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("root", nargs="?", type=pathlib.Path, default=pathlib.Path("runs/ablate"),
                 help="folder of run directories (default: runs/ablate)")
  p.add_argument("--at-step", type=int, default=None, help="the evaluation at this step (default: each run's last)")
  args = p.parse_args(argv)
  if not args.root.is_dir():
    p.error(f"{args.root} is not a folder of run directories")
  print(table(sorted(d for d in args.root.iterdir() if d.is_dir()), args.at_step))
  return 0


if __name__ == "__main__":
  sys.exit(main())
