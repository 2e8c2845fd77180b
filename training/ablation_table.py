"""Markdown table of training-run ablations: one row per run directory, each model named by what it changes.

  optformer-train ablation-table runs/ablate [--at-step N] [--eval eval.json]

Each run is a workdir of `optformer-train train` (config.json, metrics.jsonl).
A row shows:

  * model: the run's values of the config fields that differ between the
    runs of the folder (dotted names shortened to their last part when that is
    unambiguous; the bar borders as their number of bins, "bins"; the
    bookkeeping fields BOOKKEEPING left out), so a two-run bins ablation reads
    "bins=32" against "bins=64";
  * its held-out evaluation (training/evaluate.py): the NLL gap to the exact
    GP in nats per query at each context size (lower is better), "± s.e."
    where the metrics carry a standard error (f"gap_se_{n}");
  * with --eval FILE, the numbers of RUN/FILE instead of the run's last
    in-run evaluation: the JSON of `python -m optformer.training.evaluate
    --checkpoint RUN/export --out RUN/FILE [--against BASE/export]`; its
    paired differences against BASE (f"diff_{n}", f"diff_se_{n}": this model
    minus BASE on the same examples, ± standard error) become the Δ@n
    columns, the comparison to read when effects are about 0.02 nats. The
    examples are those of the run's evaluation prior (`eval_prior`: the
    reference GP prior for every run since issue 23, the run's own training
    prior for older runs); `optformer-train ablate` trains and scores a set
    of variants on common ground in one command;
  * steps, examples seen (steps x data.batch_size), mean gap over the
    contexts (no standard error: the contexts share examples), seconds per
    step (mean over the run's log rows), best mean gap first.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

# Fields that change how a run is logged or saved, not the model it trains: never part of a model's name.
BOOKKEEPING = ("log_every", "eval_every", "eval_batches", "eval_contexts", "eval_prior", "checkpoint_every",
               "keep_checkpoints")


def flat_config(cfg: dict) -> dict:
  """{dotted field: value} of a config.json dict; "model.borders" becomes "model.bins" (their number - 1),
  lists become tuples, BOOKKEEPING fields are dropped."""
  out = {}

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      elif f"{prefix}{k}" == "model.borders":
        out["model.bins"] = max(len(v) - 1, 0)
      elif f"{prefix}{k}" not in BOOKKEEPING:
        out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
  walk(cfg, "")
  return out


def differing_fields(configs: list[dict]) -> list[str]:
  """The dotted fields (of `flat_config`) whose values are not the same in every config, in field order; a field
  missing from a config counts as differing."""
  keys = list(dict.fromkeys(k for c in configs for k in c))
  return [k for k in keys if len({json.dumps(c.get(k, "<missing>"), default=str) for c in configs}) > 1]


def short_names(fields: list[str]) -> dict[str, str]:
  """field -> the shortest dotted suffix no other field in `fields` ends with ("data.examples.p_local" ->
  "p_local")."""
  out = {}
  for f in fields:
    parts = f.split(".")
    for i in range(len(parts) - 1, -1, -1):
      cand = ".".join(parts[i:])
      if not any(g != f and (g == cand or g.endswith("." + cand)) for g in fields):
        out[f] = cand
        break
    else:
      out[f] = f
  return out


def _value(v) -> str:
  if isinstance(v, float):
    return f"{v:g}"
  if isinstance(v, tuple):
    return "(" + ",".join(_value(x) for x in v) + ")"
  return str(v)


def model_names(configs: list[dict]) -> list[str]:
  """One name per config (`flat_config` dicts): "field=value, ..." over the differing fields, or "(same
  config)" when no field differs."""
  fields = differing_fields(configs)
  short = short_names(fields)
  return [", ".join(f"{short[f]}={_value(c.get(f, '-'))}" for f in fields) or "(same config)" for c in configs]


def row(run: pathlib.Path, at_step: int | None = None, eval_file: str | None = None) -> dict | None:
  """The table's numbers of one run directory, or None when it has no config.json, no metrics.jsonl or no
  evaluation (at `at_step`; with `eval_file`, when RUN/eval_file is missing).

  Returns:
    {"run": folder name, "config": flat_config, "steps": int, "batch_size": int | None,
     "gaps": {context: gap}, "gap_se": {context: s.e.}, "diffs": {context: (diff, s.e.)},
     "loss": float, "s_per_step": float}; contexts as strings ("20").

  Raises:
    ValueError: config.json, metrics.jsonl or the eval file is not valid JSON (naming the file).
  """
  cfg_path, log = run / "config.json", run / "metrics.jsonl"
  if not (cfg_path.exists() and log.exists()):
    return None
  try:
    cfg = json.loads(cfg_path.read_text())
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
  except ValueError as e:
    raise ValueError(f"{run}: config.json or metrics.jsonl is not JSON: {e}") from e
  if eval_file:
    path = run / eval_file
    if not path.exists():
      return None
    try:
      ev = json.loads(path.read_text())
    except ValueError as e:
      raise ValueError(f"{path} is not the JSON of pfn_eval --out: {e}") from e
  else:
    evals = [r for r in rows if any(k.startswith("gap_") for k in r) and (at_step is None or r["step"] == at_step)]
    if not evals:
      return None
    ev = evals[-1]
  # Gaps by context size ("gap_20"); those by relevant parameters ("gap_5_dims_1-2") are left out.
  pick = lambda prefix: {k[len(prefix):]: v for k, v in ev.items() if k.startswith(prefix) and k[len(prefix):].isdigit()}
  diffs, diff_se = pick("diff_"), pick("diff_se_")
  train_rows = [r for r in rows if "seconds_per_step" in r]
  return {
      "run": run.name, "config": flat_config(cfg), "steps": ev.get("step"),
      "batch_size": cfg.get("data", {}).get("batch_size"), "gaps": pick("gap_"), "gap_se": pick("gap_se_"),
      "diffs": {n: (d, diff_se.get(n, math.nan)) for n, d in diffs.items()},
      "loss": train_rows[-1]["loss"] if train_rows else math.nan,
      "s_per_step": sum(r["seconds_per_step"] for r in train_rows) / len(train_rows) if train_rows else math.nan,
  }


def _read_json(path: pathlib.Path):
  try:
    return json.loads(path.read_text())
  except ValueError as e:
    raise ValueError(f"{path} is not JSON: {e}") from e


def _pm(v: float, se: float | None) -> str:
  return f"{v:+.3f}" + ("" if se is None or not math.isfinite(se) else f" ± {se:.3f}")


def table(runs, at_step: int | None = None, eval_file: str | None = None) -> str:
  """The markdown table of the run directories `runs` (see the module docstring); "No finished runs." if none
  has an evaluation."""
  runs = list(runs)
  rows = [r for r in (row(run, at_step, eval_file) for run in runs) if r]
  if not rows:
    return "No finished runs.\n"
  # Names over every run of the folder with a config, so a run without an evaluation still shapes the others'.
  configs = {run.name: flat_config(_read_json(run / "config.json")) for run in runs if (run / "config.json").exists()}
  names = dict(zip(configs, model_names(list(configs.values()))))
  for r in rows:
    r["model"] = names[r["run"]]
  sizes = sorted({n for r in rows for n in r["gaps"]}, key=int)
  deltas = sorted({n for r in rows for n in r["diffs"]}, key=int)
  head = ("| run | model | steps | examples | " + "".join(f"gap@{n} | " for n in sizes)
          + "".join(f"Δ@{n} | " for n in deltas) + "mean gap | s/step |")
  lines = [head, "|---|---|" + "---:|" * (head.count("|") - 3)]
  mean_gap = lambda r: sum(r["gaps"].get(n, math.nan) for n in sizes) / len(sizes)
  for r in sorted(rows, key=lambda r: (math.isnan(mean_gap(r)), mean_gap(r))):  # Best mean gap first.
    seen = r["steps"] * r["batch_size"] if r["steps"] is not None and r["batch_size"] else None
    cells = [_pm(r["gaps"][n], r["gap_se"].get(n)) if n in r["gaps"] else "" for n in sizes]
    cells += [_pm(*r["diffs"][n]) if n in r["diffs"] else "" for n in deltas]
    lines.append(f"| {r['run']} | {r['model']} | {r['steps']} | {'' if seen is None else f'{seen:,}'} | "
                 + "".join(c + " | " for c in cells) + f"{mean_gap(r):+.3f} | {r['s_per_step']:.2f} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("root", nargs="?", type=pathlib.Path, default=pathlib.Path("runs/ablate"),
                 help="folder of run directories (default: runs/ablate)")
  p.add_argument("--at-step", type=int, default=None, help="the evaluation at this step (default: each run's last)")
  p.add_argument("--eval", default=None, metavar="FILE",
                 help="read each run's numbers from RUN/FILE, the JSON of pfn_eval --out (default: its in-run evaluation)")
  args = p.parse_args(argv)
  if not args.root.is_dir():
    p.error(f"{args.root} is not a folder of run directories")
  if args.eval and args.at_step is not None:
    p.error("--at-step picks an in-run evaluation; --eval reads one file per run: give one of them")
  try:
    print(table(sorted(d for d in args.root.iterdir() if d.is_dir()), args.at_step, args.eval))
  except ValueError as e:
    p.error(str(e))
  return 0


if __name__ == "__main__":
  sys.exit(main())
