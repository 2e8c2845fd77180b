"""`optformer-train ablate`: train N configs at one budget, score them on common ground, write the table.

  optformer-train ablate --preset cpu-small --variant "bins128=" --variant "bins64=--bins 64" \
      --out docs/ablations/bins.md

Each `--variant NAME=FLAGS` is one run: `optformer-train train` with the
common flags (--preset, --steps, --seed), then FLAGS (any of train's:
--bins 64, --set model.value_input=tokens, --config run.json, ...), in the
workdir RUNS/NAME, exported to RUNS/NAME/export. The runs train one after
the other (on one device); re-running the command resumes each run where it
stopped (an unchanged finished run is not trained again; a changed one is
refused, naming the differing fields).

Then every run is scored on the same examples of one evaluation prior
(training/evaluate.py; default the project's reference GP prior, contexts
5 to 200, those above a model's max_context left out): the query NLL gap to
the exact GP per context with its standard error over examples, and the
paired difference of each run to the FIRST variant on the same examples
(± standard error: the comparison to read, since runs share the examples'
noise). With --reference-kernels K the Bayes-optimal unit-free reference
(the hyperprior-marginal GP, training/gp_reference.py) is scored on the same
examples as a row of its own. The markdown table goes to --out, its numbers
as JSON beside it (same name, .json).

Columns: s/step is the median of the run's logged seconds per step (its
first log row, which includes compilation, left out); measured while the
machine does whatever else it does, so it is only comparable between runs
of one command on an idle machine. Examples seen = steps x batch size.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import re
import shlex
import sys
import time

import numpy as np

PROG = "optformer-train ablate"


@dataclasses.dataclass(frozen=True)
class Variant:
  """One config of the ablation: its name (the run's folder and table row) and its train flags."""

  name: str
  flags: tuple[str, ...]

  @property
  def label(self) -> str:
    return " ".join(shlex.quote(f) for f in self.flags) or "(the common flags only)"


def parse_variant(text: str) -> Variant:
  """"NAME=FLAGS" -> Variant (FLAGS split as a shell would).

  Raises:
    argparse.ArgumentTypeError: no "=", a NAME that is not a folder name ([A-Za-z0-9_.-]+), or FLAGS that set
      --workdir, --export or --until (the command sets them).
  """
  name, sep, flags = text.partition("=")
  name = name.strip()
  if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
    raise argparse.ArgumentTypeError(f"expected NAME=FLAGS with NAME a folder name (letters, digits, _ . -), e.g. "
                                     f"'bins64=--bins 64', got {text!r}")
  try:
    words = tuple(shlex.split(flags))
  except ValueError as e:
    raise argparse.ArgumentTypeError(f"variant {name}: cannot split its flags {flags!r}: {e}") from None
  owned = [w for w in words if w.split("=")[0] in ("--workdir", "--export", "--until", "--export-only")]
  if owned:
    raise argparse.ArgumentTypeError(f"variant {name}: {', '.join(owned)} is set by the ablation (RUNS/NAME), "
                                     "not by a variant")
  return Variant(name, words)


def train_argv(variant: Variant, workdir: pathlib.Path, common: list[str]) -> list[str]:
  """The `optformer-train train` arguments of one variant: its workdir and export, the common flags, its own."""
  if "--config" in variant.flags:  # A config file gives the model and the data: no --preset with it.
    common = [c for i, c in enumerate(common) if c != "--preset" and (i == 0 or common[i - 1] != "--preset")]
  return ["--workdir", str(workdir), "--export", str(workdir / "export"), "--no-progress", *common, *variant.flags]


def seconds_per_step(metrics: pathlib.Path) -> float:
  """Median seconds per step of a run's training log rows after the first (NaN without two such rows)."""
  rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
  times = [r["seconds_per_step"] for r in rows if "seconds_per_step" in r][1:]
  return float(np.median(times)) if times else math.nan


def score(runs: list[tuple[str, pathlib.Path]], prior: str, contexts, num_batches: int,
          reference_kernels: int = 0) -> dict:
  """Scores exported models on the same examples of the evaluation prior `prior`.

  runs: (name, model directory) pairs; the first is the baseline of the paired differences.
  Returns {"contexts": [n], "examples": E, "runs": {name: {"gap": {n: mean}, "gap_se": {n: s.e.}, "diff": {n: mean},
  "diff_se": {n: s.e.}, "step": int}}, "reference": {"gap": ..., "gap_se": ...} with reference_kernels}; contexts
  above any model's max_context are left out (keys are strings of n).

  Raises:
    ValueError: a model cannot be scored on `prior` (too few parameter slots), or the runs' exact-GP scores differ
      (their examples are not the same: a bug, not a user error).
  """
  from flax import nnx

  from optformer import checkpoint
  from optformer.training import evaluate
  from optformer.training.data import PFNDataConfig

  models = [(name, *checkpoint.load_pfn(path, with_metadata=True)) for name, path in runs]
  contexts = evaluate.model_contexts(tuple(contexts), min(m.config.max_context for _, m, _ in models))
  out = {"contexts": list(contexts), "prior": prior, "runs": {}}
  base, gp = {}, {}
  for name, model, meta in models:
    mc = model.config
    evaluate.check_eval(prior, contexts, mc.num_slot_ids, mc.max_categories, mc.max_context)
    data = evaluate.eval_data(PFNDataConfig.from_json(meta["train"]["data"]), prior)
    graphdef, params = nnx.split(model)
    row = {"step": meta.get("step"), "gap": {}, "gap_se": {}, "diff": {}, "diff_se": {}}
    for n in contexts:
      m, g, _ = evaluate.per_example_nll(graphdef, params, data, mc.borders, mc.num_slot_ids, n, num_batches)
      if n in gp and not np.allclose(g, gp[n], rtol=1e-6, atol=1e-6):
        raise ValueError(f"run {name} was scored on other examples than {runs[0][0]} at context {n}.")
      gp.setdefault(n, g)
      base.setdefault(n, m)
      row["gap"][str(n)], row["gap_se"][str(n)] = float((m - g).mean()), evaluate.standard_error(m - g)
      row["diff"][str(n)], row["diff_se"][str(n)] = float((m - base[n]).mean()), evaluate.standard_error(m - base[n])
      out["examples"] = int(len(m))
    out["runs"][name] = row
  if reference_kernels:
    from optformer.training.gp_reference import marginal_per_example

    _, model, meta = models[0]
    data = evaluate.eval_data(PFNDataConfig.from_json(meta["train"]["data"]), prior)
    ref = {"gap": {}, "gap_se": {}}
    for n in contexts:
      r = marginal_per_example(data, model.config.borders, model.config.num_slot_ids, n, num_batches,
                               reference_kernels) - gp[n]
      ref["gap"][str(n)], ref["gap_se"][str(n)] = float(r.mean()), evaluate.standard_error(r)
    out["reference"] = {"kernels": reference_kernels, **ref}
  return out


def _pm(v: float, se: float) -> str:
  return f"{v:+.3f} ± {se:.3f}" if math.isfinite(se) else f"{v:+.3f}"


def markdown(result: dict, title: str, command: str) -> str:
  """The ablation's markdown: what was run, the gap table, the paired-difference table (see the module docstring).

  result: `score`'s dict with, per run, "label" (its flags), "model" (its differing config fields), "steps",
  "examples_seen" and "s_per_step" added.
  """
  ctx = [str(n) for n in result["contexts"]]
  runs = result["runs"]
  first = next(iter(runs))
  lines = [f"# Ablation: {title}", "",
           f"Command (`{result['date']}`, {result['machine']}):", "", "```bash", command, "```", "",
           f"Scored on the same {result['examples']} examples per context of the `{result['prior']}` evaluation prior "
           f"(training/evaluate.py): query NLL gap to the exact GP in nats per query (lower is better), ± standard "
           "error over examples. s/step: median over the run's log rows; measured on a machine shared with other "
           "jobs, so it is noisy (compare it between runs with care).", "",
           "| run | flags | differs in | steps | examples seen | s/step | " + " | ".join(f"gap@{n}" for n in ctx) + " |",
           "|---|---|---|---:|---:|---:|" + "---:|" * len(ctx)]
  for name, r in runs.items():
    lines.append(f"| {name} | `{r['label']}` | {r['model']} | {r['steps']} | {r['examples_seen']:,} | "
                 f"{r['s_per_step']:.3f} | " + " | ".join(_pm(r["gap"][n], r["gap_se"][n]) for n in ctx) + " |")
  if "reference" in result:
    ref = result["reference"]
    lines.append(f"| Bayes-optimal unit-free reference ({ref['kernels']} kernels) | | | | | | "
                 + " | ".join(_pm(ref["gap"][n], ref["gap_se"][n]) for n in ctx) + " |")
  if len(runs) > 1:
    lines += ["", f"Paired difference to `{first}` on the same examples (run minus {first}, nats per query, ± "
              "standard error; negative: better than it):", "",
              "| run | " + " | ".join(f"Δ@{n}" for n in ctx) + " | mean Δ |", "|---|" + "---:|" * (len(ctx) + 1)]
    for name, r in list(runs.items())[1:]:
      lines.append(f"| {name} | " + " | ".join(_pm(r["diff"][n], r["diff_se"][n]) for n in ctx)
                   + f" | {np.mean([r['diff'][n] for n in ctx]):+.3f} |")
  return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
  from optformer.training import evaluate, presets

  p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--variant", type=parse_variant, action="append", default=[], required=True, metavar="NAME=FLAGS",
                 help="one config: NAME (its folder and row) = train flags, e.g. 'bins64=--bins 64' or "
                 "'tokens=--set model.value_input=tokens --set model.policy_tokens=64' or 'mine=--config run.json'; "
                 "'base=' for the common flags alone; repeatable (2 or more); the first is the baseline")
  p.add_argument("--preset", choices=list(presets.PRESETS), default="cpu-small",
                 help="the preset of every variant (default cpu-small; left out for a variant with --config)")
  p.add_argument("--steps", type=int, default=0, help="the step budget of every run (default: the preset's)")
  p.add_argument("--seed", type=int, default=None, help="seed of every run's model and data (default 0)")
  p.add_argument("--runs", type=pathlib.Path, default=None,
                 help="folder of the runs' workdirs (default runs/ablate/NAME, NAME the stem of --out)")
  p.add_argument("--out", type=pathlib.Path, required=True,
                 help="the markdown table to write, e.g. docs/ablations/bins.md (its JSON beside it, .json)")
  p.add_argument("--title", default=None, help="the table's title (default: the stem of --out)")
  p.add_argument("--eval-prior", choices=list(evaluate.EVAL_PRIORS), default=None, help="the common evaluation "
                 "prior (default: reference; tiny for the tiny preset)")
  p.add_argument("--contexts", type=int, nargs="+", default=None,
                 help="context sizes (default 5 10 20 40 100 200, those above the models' max_context left out)")
  p.add_argument("--eval-batches", type=int, default=4,
                 help=f"evaluation batches per context ({evaluate.EVAL_BATCH_SIZE} examples each; default 4)")
  p.add_argument("--reference-kernels", type=int, default=0, metavar="K", help="also score the Bayes-optimal "
                 "unit-free reference with K kernel draws (e.g. 1024; minutes per context on a CPU); 0: not (default)")
  p.add_argument("--train-only", action="store_true", help="train (or resume) the runs, score nothing")
  return p


def main(argv=None) -> int:
  """Runs `optformer-train ablate`; exit status 0, 2 (bad flags or a run refused) or 130 (Ctrl-C)."""
  import platform

  from optformer.training import evaluate, run_config

  argv = sys.argv[1:] if argv is None else list(argv)
  p = parser()
  args = p.parse_args(argv)
  names = [v.name for v in args.variant]
  if len(args.variant) < 2 or len(set(names)) < len(names):
    p.error(f"give two or more --variant with distinct names, got {names}")
  if args.eval_batches < 1 or args.steps < 0 or args.reference_kernels < 0:
    p.error("--eval-batches must be >= 1, --steps and --reference-kernels >= 0")
  runs = args.runs or pathlib.Path("runs/ablate") / args.out.stem
  common = ["--preset", args.preset] + (["--steps", str(args.steps)] if args.steps else []) + (
      ["--seed", str(args.seed)] if args.seed is not None else [])
  for i, v in enumerate(args.variant):
    workdir = runs / v.name
    print(f"[{i + 1}/{len(args.variant)}] {v.name}: optformer-train train {' '.join(train_argv(v, workdir, common))}",
          flush=True)
    try:
      code = run_config.train(train_argv(v, workdir, common), prog=f"{PROG} ({v.name})")
    except SystemExit as e:  # A usage error (argparse prints it) or a refused run (its message is e.code).
      if not isinstance(e.code, int):
        print(f"{PROG}: run {v.name}: {e.code}", file=sys.stderr)
      code = e.code if isinstance(e.code, int) else 2
    if code:
      then = "re-run the command to resume" if code == 130 else "fix the variant (or use a new --runs) and re-run"
      print(f"{PROG}: run {v.name} ({workdir}) stopped with exit status {code}; {then}", file=sys.stderr)
      return code
  if args.train_only:
    return 0
  prior = args.eval_prior or ("tiny" if args.preset == "tiny" else "reference")
  contexts = args.contexts or evaluate.DEFAULT_CONTEXTS
  print(f"scoring {len(names)} runs on the {prior} prior ...", flush=True)
  try:
    result = score([(v.name, runs / v.name / "export") for v in args.variant], prior, contexts, args.eval_batches,
                   args.reference_kernels)
  except ValueError as e:
    p.error(str(e))
  except KeyboardInterrupt:
    print(f"{PROG}: interrupted while scoring; the runs are trained: re-run the command to score them",
          file=sys.stderr)
    return 130
  describe(result, args.variant, runs)
  result.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                machine=f"{platform.machine()}, {_cpus()} CPUs, device {_device()}")
  command = "optformer-train ablate " + " ".join(shlex.quote(a) for a in argv)
  text = markdown(result, args.title or args.out.stem, command)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(text)
  args.out.with_suffix(".json").write_text(json.dumps({"command": command, **result}, indent=1))
  print(text)
  print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
  return 0


def describe(result: dict, variants: list[Variant], runs: pathlib.Path) -> None:
  """Adds each run's flags, differing config fields, steps, examples seen and s/step to `score`'s result."""
  from optformer.training import ablation_table

  configs = [ablation_table.flat_config(json.loads((runs / v.name / "config.json").read_text())) for v in variants]
  for v, cfg, model in zip(variants, configs, ablation_table.model_names(configs)):
    r = result["runs"][v.name]
    steps = r["step"] or 0
    r.update(label=v.label, model=model, steps=steps, examples_seen=steps * cfg["data.batch_size"],
             s_per_step=seconds_per_step(runs / v.name / "metrics.jsonl"))


def _cpus() -> int:
  import os

  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _device() -> str:
  import jax

  return jax.devices()[0].platform


if __name__ == "__main__":
  sys.exit(main())
