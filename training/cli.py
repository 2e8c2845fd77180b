"""Command line: train (resumably) on a corpus, and export the shipped model.

  python -m optformer.training.cli --corpus corpus --workdir runs/gp-v1 [--steps N]
  python -m optformer.training.cli --workdir runs/gp-v1 --export checkpoints/optformer-gp-v1 --export-only

Re-running the same command resumes from the latest checkpoint in --workdir
with the same data position.

Exit status: 0 on success; 1 with one line on stderr when --workdir or its
checkpoints cannot be written (checked before training starts and before
each checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import sys
import threading

from optformer.training.train import TrainConfig, Trainer, WorkdirError


def build_config(args) -> TrainConfig:
  cfg = TrainConfig.tiny() if args.preset == "tiny" else TrainConfig()
  if args.steps:
    cfg = dataclasses.replace(cfg, num_steps=args.steps)
  if args.learning_rate:
    cfg = dataclasses.replace(cfg, peak_learning_rate=args.learning_rate)
  if args.batch_size:
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=args.batch_size))
  return cfg


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--corpus", type=pathlib.Path, help="corpus directory written by data_gen.cli")
  p.add_argument("--workdir", type=pathlib.Path, required=True)
  p.add_argument("--preset", choices=("default", "tiny"), default="default")
  p.add_argument("--steps", type=int, default=0, help="total steps (schedule length); default from the preset")
  p.add_argument("--until", type=int, default=0, help="stop at this step (resume later); default: --steps")
  p.add_argument("--batch-size", type=int, default=0)
  p.add_argument("--learning-rate", type=float, default=0.0, help="peak learning rate; default from the preset")
  p.add_argument("--export", type=pathlib.Path, help="write the latest checkpoint as a model directory")
  p.add_argument("--export-only", action="store_true")
  p.add_argument("--note", default="", help="text appended to the model card's Limits section")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)

  corpus_info = {}
  if args.corpus:
    from optformer.data_gen.corpus import load_corpus_config, resolve_corpus_dir

    corpus_info = {"path": resolve_corpus_dir(str(args.corpus)), "config": load_corpus_config(str(args.corpus)).to_json()}
  if not args.export_only:
    if not args.corpus:
      p.error("--corpus is required for training")
    from optformer.data_gen.corpus import load_corpus

    try:
      trainer = Trainer(build_config(args), args.workdir, load_corpus(args.corpus, "train"), load_corpus(args.corpus, "validation"))
      rows = trainer.run(args.until or None, progress=not args.no_progress)
    except WorkdirError as e:
      print(f"optformer.training.cli: error: {e}", file=sys.stderr, flush=True)
      _exit_if_orbax_hangs()
      return 1
    if rows:
      print(json.dumps(rows[-1]))
  if args.export:
    from optformer.training.export import export

    command = f"python -m optformer.training.cli --corpus {shlex.quote(str(args.corpus or 'corpus'))} --workdir {shlex.quote(str(args.workdir))} --export {shlex.quote(str(args.export))}"
    out = export(args.workdir, args.export, corpus_info=corpus_info, command=command, note=args.note)
    print(f"exported {out}")
  return 0


def _exit_if_orbax_hangs() -> None:
  """Ends the process now (status 1) if a failed orbax save left a non-daemon thread waiting forever.

  Orbax's save threads wait for a completion signal that a failed commit
  never sends, so the interpreter would wait at exit forever. Trainer
  checks the directories before each save, so this is the rare case of a
  write that fails midway (a full disk).
  """
  main = threading.main_thread()
  if any(t.is_alive() and not t.daemon and t is not main and t is not threading.current_thread() for t in threading.enumerate()):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


if __name__ == "__main__":
  sys.exit(main())
