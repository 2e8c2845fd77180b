"""A training run described by a config file: `optformer-train train --config run.json`.

The file is a `PFNTrainConfig` as JSON, the format of the config.json that
every workdir holds (so a run's config.json starts another run as it was).
Flags override its fields: train_cli's flags (--steps, --seed, --batch-size,
...) and `--set FIELD=VALUE` for any field by its dotted name, e.g.
`--set data.examples.prior.max_dims=4 --set model.num_heads=2` (VALUE is JSON,
or a string). The resolved config is written as WORKDIR/config.json, the
record of the run; a workdir whose config.json differs is refused with the
differing fields named. `--set` also works without --config, over the
config the flags give (a preset with its prior-drawn bar borders).

The bar borders are the file's (`model.borders`); a file without them
(an empty list) gets borders drawn from its prior with --bins bars, and a
--set of a prior field (data.examples.*) draws them again from the changed
prior unless it sets model.borders too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

# train_cli's flags that override a field (argparse dest: dotted field); the others are applied as train_cli applies them.
FLAG_FIELDS = {
    "steps": "num_steps", "optimizer": "optimizer", "learning_rate": "peak_learning_rate", "warmup": "warmup_steps",
    "eval_every": "eval_every", "batch_size": "data.batch_size", "d_model": "model.d_model",
    "layers": "model.num_layers", "d_slot": "model.d_slot", "soft_targets": "data.soft_target_weight",
    "checkpoint_every": "checkpoint_every", "log_every": "log_every", "eval_prior": "eval_prior",
}


def load(path: pathlib.Path):
  """The PFNTrainConfig in the JSON file `path`.

  Raises:
    ValueError: the file cannot be read or is not a PFNTrainConfig (the message names the file and the problem).
  """
  from optformer.training.train import PFNTrainConfig

  try:
    return PFNTrainConfig.from_dict(json.loads(pathlib.Path(path).read_text()))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"cannot read a training config from {path}: {type(e).__name__}: {e}") from e


def with_fields(cfg, assignments: list[tuple[str, object]]):
  """`cfg` (a PFNTrainConfig) with each (dotted field, value) set, e.g. ("data.examples.prior.max_dims", 4).

  Raises:
    ValueError: an unknown field (naming the fields at that level), or a value the config refuses.
  """
  d = cfg.to_dict()
  for dotted, value in assignments:
    obj, node, parts = cfg, d, dotted.split(".")
    for i, part in enumerate(parts):
      names = [f.name for f in dataclasses.fields(obj)]
      if part not in names:
        where = ".".join(parts[:i]) or "the run config"
        raise ValueError(f"unknown field {dotted!r}: {where} has {', '.join(names)}.")
      obj = getattr(obj, part)
      if i < len(parts) - 1:
        if not dataclasses.is_dataclass(obj):
          raise ValueError(f"unknown field {dotted!r}: {'.'.join(parts[:i + 1])} is a value, not a config.")
        node = node.setdefault(part, {})
      else:
        node[part] = value
  try:
    return type(cfg).from_dict(d)
  except (ValueError, TypeError, KeyError) as e:
    raise ValueError(f"{', '.join(f'{k}={v!r}' for k, v in assignments)}: {e}") from e


def parse_assignment(text: str) -> tuple[str, object]:
  """"FIELD=VALUE" -> (FIELD, VALUE parsed as JSON, or the string when it is not JSON)."""
  field, sep, raw = text.partition("=")
  if not sep or not field:
    raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (a dotted field name), got {text!r}")
  try:
    return field.strip(), json.loads(raw)
  except ValueError:
    return field.strip(), raw


def apply_flags(cfg, args):
  """`cfg` with the train_cli flags given in `args` (FLAG_FIELDS, --seq-lens, the prior flags (train_cli.PRIOR_FLAGS), --seed) applied."""
  from optformer.training import train_cli

  given = [(field, getattr(args, dest)) for dest, field in FLAG_FIELDS.items() if getattr(args, dest)]
  cfg = with_fields(cfg, given)
  data = train_cli._with_prior(train_cli._with_seq_lens(cfg.data, args), args)
  return train_cli._with_bookkeeping(train_cli._with_seed(dataclasses.replace(cfg, data=data), args), args)


def differences(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
  """Dotted names of the fields where two config dicts differ ("num_steps: 20 -> 40")."""
  out = []
  for key in sorted(set(saved) | set(wanted), key=str):
    a, b, name = saved.get(key), wanted.get(key), f"{prefix}{key}"
    if isinstance(a, dict) and isinstance(b, dict):
      out += differences(a, b, name + ".")
    elif a != b:
      out.append(f"{name}: {_short(a)} -> {_short(b)}")
  return out


def _short(value) -> str:
  """A field's value for a message: JSON, cut at 60 characters; "(default)" for a field the dict leaves out."""
  text = "(default)" if value is None else json.dumps(value)
  return text if len(text) <= 60 else text[:60] + "..."


def parser(prog: str = "optformer-train train") -> argparse.ArgumentParser:
  """`train`'s flags: train_cli's, --config and --set."""
  from optformer.training import train_cli

  p = train_cli.parser()
  p.prog = prog
  p.add_argument("--config", type=pathlib.Path, help="a run config (PFNTrainConfig JSON, as WORKDIR/config.json "
                 "holds) to start from instead of --preset; the flags given override its fields")
  p.add_argument("--set", dest="assignments", type=parse_assignment, action="append", default=[], metavar="FIELD=VALUE",
                 help="set any config field by its dotted name, e.g. --set data.examples.prior.max_dims=4 "
                 "(VALUE is JSON); repeatable; --list-fields names them all")
  p.add_argument("--list-fields", nargs="?", const="default", metavar="PRESET", help="print every config field "
                 "(dotted name, type, default: the preset's, default 'default') with its description, and exit")
  p.add_argument("--list-presets", action="store_true", help="print the presets (training/presets.py) and exit")
  return p


def train(argv, prog: str = "optformer-train train") -> int:
  """`optformer-train train`: train_cli's flags (their meaning unchanged), plus --config FILE and --set FIELD=VALUE."""
  from optformer.training import train_cli

  p = parser(prog)
  if any(a == "--list-presets" for a in argv):
    from optformer.training import presets

    print(presets.table())
    return 0
  if any(a == "--list-fields" or a.startswith("--list-fields=") for a in argv):
    return list_fields(p, argv)
  args = p.parse_args(argv)
  from optformer.training import distributed

  distributed.join_cluster(args)  # Before any JAX computation (drawing bar borders may run some).
  if args.config is None and not args.assignments:
    return train_cli.main(argv)  # The flags alone: train_cli's run, resume and refusal of changed flags.
  cfg = resolve(p, args, argv)
  cfg_path = args.workdir / "config.json"
  if cfg_path.exists():
    changed = differences(json.loads(cfg_path.read_text()), json.loads(json.dumps(cfg.to_dict())))
    if changed:
      p.error(f"{args.workdir} holds a run with another config (its config.json); differing fields: "
              f"{'; '.join(changed)}. Use a new --workdir, or the run's own config to resume it")
  else:
    from optformer.training.workdir import WorkdirError, open_workdir

    try:
      open_workdir(args.workdir, cfg.to_dict())  # Writes config.json, the record of the run.
    except WorkdirError as e:
      print(f"{prog}: error: {e}", file=sys.stderr)
      return 2
    from optformer.training.distributed import is_primary

    if is_primary():  # Every process of a multi-process run writes the same config.json (atomically); one says so.
      print(f"the run's config, from {args.config or 'the flags and --set'}: {cfg_path}")
  # train_cli resumes the workdir from its config.json; the flags given are already in it.
  return train_cli.main(_without(argv, ("--config", "--set")))


def resolve(p: argparse.ArgumentParser, args, argv):
  """The run config of `train --config FILE` / `--set ...`: the file's (or the flags'), then the flags, then --set.

  Bar borders: the file's; drawn from its prior with --bins bars when it has none. A --set of a prior field
  (data.examples.*) draws them again from the changed prior, with as many bars, unless it sets model.borders.
  Errors are usage errors (p.error: a message and exit status 2).
  """
  from optformer.training import presets, train_cli
  from optformer.training.data import prior_borders

  preset = presets.get(args.preset)
  draw = lambda cfg, bins: with_fields(cfg, [("model.borders", [float(b) for b in prior_borders(
      cfg.data, bins, num_batches=preset.border_batches)])])
  if args.init_from:
    p.error("--init-from takes the model's config from the export: it does not combine with --config or --set yet")
  try:
    if args.config is not None:
      if _given(argv, "--preset") or _given(argv, "--bins") or args.dims_curriculum:
        p.error("--config gives the model, the bars and the data: drop --preset, --bins and --dims-curriculum "
                "(or set their fields with --set, e.g. --set data.dims_curriculum=[[1000,4]])")
      cfg = apply_flags(load(args.config), args)
      if not cfg.model.borders:
        cfg = draw(cfg, args.bins or preset.bins)
    else:  # On a workdir that holds a run too: train() compares it with the run's config.json.
      cfg = train_cli.build_config(args, fresh=True)
    fields = [field for field, _ in args.assignments]
    cfg = with_fields(cfg, args.assignments)
    if any(f.startswith("data.examples.") for f in fields) and "model.borders" not in fields:
      cfg = draw(cfg, cfg.model.num_bins)
    cfg, warning = presets.clip_warmup(cfg)
    if warning:
      print(warning, file=sys.stderr)
  except ValueError as e:
    p.error(str(e))
  if clash := train_cli._changed_on_resume(cfg, args):  # --set changed a field that a flag also gives.
    p.error(f"--set and the flags disagree: {', '.join(clash)}")
  return cfg


def list_fields(p: argparse.ArgumentParser, argv) -> int:
  """`train --list-fields [PRESET]`: every field with the preset's value as its default (training/fields.py)."""
  from optformer.training import fields, presets

  i = next(i for i, a in enumerate(argv) if a == "--list-fields" or a.startswith("--list-fields="))
  name = argv[i].partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-")
                                       else "default")
  try:
    cfg = presets.get(name).config()
  except ValueError as e:
    p.error(str(e))
  print(f"Fields of a run config (preset {name}; set one with --set FIELD=VALUE; the bar borders model.borders are "
        f"drawn from the prior with --bins bars, {presets.get(name).bins} for this preset):\n")
  print(fields.listing(cfg))
  return 0


def _given(argv, flag: str) -> bool:
  return any(a == flag or a.startswith(flag + "=") for a in argv)


def _without(argv, flags) -> list[str]:
  """argv without the given flags and their values ("--flag VALUE" or "--flag=VALUE")."""
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
    elif a in flags:
      skip = True
    elif not any(a.startswith(f + "=") for f in flags):
      out.append(a)
  return out
