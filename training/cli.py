"""`optformer-train` (also `python -m optformer.training`): everything training does, one subcommand each.

  optformer-train train --workdir runs/v2 [--preset tiny] [--steps N] [--until N] [--export DIR] ...
  optformer-train train --workdir runs/b --config runs/a/config.json [--seed 1]   # a run described by a file
  optformer-train export --workdir runs/v2 --out checkpoints/my-model
  optformer-train eval --checkpoint checkpoints/my-model [--contexts 5 10 20 40] [--batches 8]
  optformer-train throughput [--config snapshots/v2/config.json] [--steps 20]
  optformer-train probe --max-dims 4 --steps 800
  optformer-train ablation-table runs/ablate [--at-step N]
  optformer-train ablate --preset cpu-small --variant base= --variant "bins64=--bins 64" --out docs/ablations/bins.md
  optformer-train gp-reference --checkpoint checkpoints/optformer-v2 --batches 4
  optformer-train eval --prior reference --batches 2 --reference-kernels 256 --ml-gp --markdown docs/surrogate_table.md
  optformer-train surrogate-table results/v2.json results/v3.json --out docs/surrogate_table.md

`optformer-train SUBCOMMAND --help` lists a subcommand's flags. Re-running
the same `train` command resumes its workdir at the step and data position
of its latest checkpoint. Exit status: 0 on success, 2 on an unknown
subcommand, a bad flag or a workdir that cannot be used (one line on stderr),
130 when training is interrupted (Ctrl-C; the latest checkpoint is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pathlib
import sys

PROG = "optformer-train"

# name: (the module of optformer.training that does it, one line of help)
COMMANDS = {
    "train": ("train_cli", "train the default model (resumable) on prior examples generated on the fly"),
    "export": ("train_cli", "write a run's latest checkpoint as a model directory with its model card"),
    "eval": ("evaluate", "held-out NLL gap of an exported model to the exact GP, by context and relevant parameters"),
    "throughput": ("throughput", "seconds per train step and the step's share of the machine's matmul rate"),
    "probe": ("probe", "a short fresh run on a restricted prior: does the model read x?"),
    "ablation-table": ("ablation_table", "markdown table of the runs in a folder of workdirs"),
    "ablate": ("ablate", "train N configs at one budget, score them on a common prior, write the table"),
    "gp-reference": ("gp_reference", "the gap of two affine-equivariant reference predictors to the exact GP"),
    "surrogate-table": ("surrogate_table", "markdown surrogate table of `eval --out` results (one or more models)"),
}


def parser() -> argparse.ArgumentParser:
  """The top-level parser: the subcommand's name only (its flags are parsed by its own parser)."""
  p = argparse.ArgumentParser(
      prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="subcommands:\n" + "\n".join(f"  {name:15} {help_}" for name, (_, help_) in COMMANDS.items()))
  p.add_argument("command", choices=list(COMMANDS), metavar="SUBCOMMAND", help="one of: " + ", ".join(COMMANDS))
  return p


@contextlib.contextmanager
def _prog(name: str):
  """Subcommand parsers name themselves "optformer-train NAME" in usage and errors.

  argparse takes a parser's default name from sys.argv[0]; the modules build
  their own parsers, so the entry point (which owns sys.argv) sets it while one runs.
  """
  saved = sys.argv[0] if sys.argv else ""
  if sys.argv:
    sys.argv[0] = name
  else:
    sys.argv.append(name)
  try:
    yield
  finally:
    sys.argv[0] = saved


def main(argv=None) -> int:
  """Runs `optformer-train SUBCOMMAND [FLAGS]` (argv without the program name; default sys.argv[1:])."""
  argv = sys.argv[1:] if argv is None else list(argv)
  command = parser().parse_args(argv[:1]).command  # --help, no subcommand or an unknown one: usage, exit 0 / 2.
  rest = argv[1:]
  prog = f"{PROG} {command}"
  with _prog(prog):
    if command == "train":
      from optformer.training.run_config import train

      return train(rest, prog)
    if command == "export":
      return export(rest, prog)
    module = importlib.import_module(f"optformer.training.{COMMANDS[command][0]}")
    return module.main(rest)


def export(argv, prog: str = f"{PROG} export") -> int:
  """`optformer-train export --workdir W --out DIR`: the run's latest checkpoint as a model directory."""
  p = argparse.ArgumentParser(prog=prog, description=COMMANDS["export"][1])
  p.add_argument("--workdir", type=pathlib.Path, required=True, help="the training run's directory")
  p.add_argument("--out", type=pathlib.Path, required=True,
                 help="model directory to write (loads with optformer.Optimizer(model=DIR))")
  args = p.parse_args(argv)
  checkpoints = args.workdir / "checkpoints"
  if not (args.workdir / "config.json").is_file():
    p.error(f"{args.workdir} holds no training run (no config.json)")
  if not (checkpoints.is_dir() and any(d.name.isdigit() for d in checkpoints.iterdir())):
    p.error(f"{args.workdir} has no checkpoint yet (train first)")
  from optformer.training import train_cli

  return train_cli.main(["--workdir", str(args.workdir), "--export", str(args.out), "--export-only"])


if __name__ == "__main__":
  sys.exit(main())
