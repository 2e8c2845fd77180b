"""Command line of model v2 training: train (resumably) on prior examples, export the model.

  python -m optformer.training.train_cli --workdir runs/v2 [--preset cpu-small] [--steps N] [--until N]
  python -m optformer.training.train_cli --workdir runs/v2 --export checkpoints/optformer-v2 --export-only
  python -m optformer.training.train_cli --workdir runs/v2b --init-from checkpoints/optformer-v2   # warm start on a new machine
  make train-v2   # the long run: resumes runs/v2d (or snapshots/v2 on a new machine), exports every 1000 steps
  python -m optformer.training.train_cli --workdir runs/g --preset gpu --export runs/g/export   # one GPU (docs/scale.md)
  # One of P processes (process I; process 0 at HOST:PORT), each generating its shard of every global batch:
  python -m optformer.training.train_cli --workdir runs/p --preset pod --coordinator HOST:PORT --num-processes P --process-id I

Re-running the same command resumes from the latest checkpoint in --workdir
at the same data position (it prints the step it resumes from). The bar
borders are drawn from the prior once, when a workdir is created, and saved
in its config.json. Presets (--preset; training/presets.py, --list-presets)
size the model, data and step budget for a machine; --list-fields prints
every config field with its default and description.

Ctrl-C stops at the end of the current step, saves a checkpoint of it and
exits with status 130 (a second Ctrl-C quits at once: the steps since the
last checkpoint are lost, and the message says which).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import signal
import sys


# The prior's flags (data_gen/prior.py, data_gen/families.py): flag -> (PriorConfig field, "p" for a probability in
# [0, 1], "+" for a value >= 0, None for any number). For a new run or --init-from; a resume refuses a change.
PRIOR_FLAGS = {
    "--noise-log-mean": ("noise_log_mean", None), "--noise-log-std": ("noise_log_std", "+"),
    "--prior-noiseless": ("p_noiseless", "p"), "--noiseless-log-mean": ("noiseless_log_mean", None),
    "--noiseless-log-std": ("noiseless_log_std", "+"), "--prior-bbob": ("p_bbob", "p"),
    "--prior-hpo": ("p_hpo", "p"), "--prior-family-residual": ("p_family_residual", "p"),
}


def _prior_flag(args, flag):
  """The value of a PRIOR_FLAGS flag in `args`, None when not given."""
  return getattr(args, flag[2:].replace("-", "_"), None)


def _with_prior(data, args):
  """`data` with the prior flags (PRIOR_FLAGS) given in `args` applied: the noise (log noise variance ~
  N(--noise-log-mean, --noise-log-std^2), or with probability --prior-noiseless ~ N(--noiseless-log-mean,
  --noiseless-log-std^2)) and the function-family shares. SystemExit naming the flag and value when out of range."""
  given = {}
  for flag, (field, kind) in PRIOR_FLAGS.items():
    v = _prior_flag(args, flag)
    if v is None:
      continue
    if kind == "p" and not 0.0 <= v <= 1.0:
      raise SystemExit(f"{flag} must be a probability in [0, 1], got {v}.")
    if kind == "+" and v < 0:
      raise SystemExit(f"{flag} must be >= 0, got {v}.")
    given[field] = v
  if not given:
    return data
  try:
    prior = dataclasses.replace(data.examples.prior, **given)
  except ValueError as e:  # Across flags, e.g. --prior-bbob + --prior-hpo > 1.
    raise SystemExit(f"prior flags {given}: {e}") from None
  return dataclasses.replace(data, examples=dataclasses.replace(data.examples, prior=prior))


def _with_seq_lens(data, args):
  """`data` with the points per example of --seq-lens (equally likely) where given."""
  if not args.seq_lens:
    return data
  try:
    lens = tuple(int(v) for v in args.seq_lens.split(","))
  except ValueError:
    lens = ()
  if not lens or min(lens) < 2:
    raise SystemExit(f"--seq-lens: expected comma-separated integers >= 2 (points per example), got {args.seq_lens!r}.")
  return dataclasses.replace(data, seq_lens=lens, seq_len_probs=tuple([1.0 / len(lens)] * len(lens)))


def _with_seed(cfg, args):
  """`cfg` with the model's and the data's seed set to --seed where given."""
  if args.seed is None:
    return cfg
  if args.seed < 0:
    raise SystemExit(f"--seed must be an integer >= 0, got {args.seed}.")
  return dataclasses.replace(cfg, seed=args.seed, data=dataclasses.replace(cfg.data, seed=args.seed))


def _with_policy(cfg, args):
  """`cfg` with the policy head and its training (--policy-tokens, --policy-rows, ...) where given."""
  if args.policy_tokens < 0 or args.policy_rows < 0 or args.policy_weight < 0 or args.policy_lr_multiplier < 0:
    raise SystemExit("--policy-tokens, --policy-rows, --policy-weight and --policy-lr-multiplier must be >= 0.")
  model, data, repl = cfg.model, cfg.data, {}
  if args.policy_tokens:
    model = dataclasses.replace(model, policy_tokens=args.policy_tokens)
  if args.policy_copy:
    model = dataclasses.replace(model, policy_copy=True)
  if args.value_input:
    model = dataclasses.replace(model, value_input=args.value_input)
  if args.policy_rows:
    data = dataclasses.replace(data, policy_rows=args.policy_rows)
  if args.policy_target:
    data = dataclasses.replace(data, policy_target=args.policy_target)
  if args.policy_weight:
    repl["policy_weight"] = args.policy_weight
  if args.policy_lr_multiplier:
    repl["policy_learning_rate_multiplier"] = args.policy_lr_multiplier
  if args.freeze_surrogate:
    repl["freeze_surrogate"] = True
  try:
    return dataclasses.replace(cfg, model=model, data=data, **repl)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None


def _with_optimization(cfg, args):
  """`cfg` with --steps, --learning-rate, --optimizer, --warmup, --eval-every where given (a warm start)."""
  repl = {}
  for name, field in (("steps", "num_steps"), ("learning_rate", "peak_learning_rate"), ("optimizer", "optimizer"),
                      ("warmup", "warmup_steps"), ("eval_every", "eval_every")):
    if getattr(args, name):
      repl[field] = getattr(args, name)
  return dataclasses.replace(cfg, **repl)


def _changed_on_resume(cfg, args) -> list[str]:
  """The flags given that differ from the saved run config `cfg` ("--flag VALUE (the run has X)")."""
  d, prior = cfg.data, cfg.data.examples.prior
  given = {  # flag: (value given or None when not given, the run's value)
      "--steps": (args.steps or None, cfg.num_steps), "--optimizer": (args.optimizer, cfg.optimizer),
      "--learning-rate": (args.learning_rate or None, cfg.peak_learning_rate),
      "--warmup": (args.warmup or None, cfg.warmup_steps), "--batch-size": (args.batch_size or None, d.batch_size),
      "--d-model": (args.d_model or None, cfg.model.d_model), "--layers": (args.layers or None, cfg.model.num_layers),
      "--d-slot": (args.d_slot or None, cfg.model.d_slot),
      "--seq-lens": (_with_seq_lens(d, args).seq_lens if args.seq_lens else None, d.seq_lens),
      "--eval-every": (args.eval_every or None, cfg.eval_every),
      "--checkpoint-every": (args.checkpoint_every or None, cfg.checkpoint_every),
      "--log-every": (args.log_every or None, cfg.log_every),
      "--eval-prior": (args.eval_prior, cfg.eval_prior),
      "--eval-contexts": (_contexts(args.eval_contexts) if args.eval_contexts else None, cfg.eval_contexts),
      "--bins": (args.bins, cfg.model.num_bins),
      "--soft-targets": (args.soft_targets or None, d.soft_target_weight),
      "--seed": (args.seed, (cfg.seed, d.seed) if cfg.seed != d.seed else cfg.seed),
      "--policy-tokens": (args.policy_tokens or None, cfg.model.policy_tokens),
      "--value-input": (args.value_input, cfg.model.value_input),
      "--policy-copy": (args.policy_copy or None, cfg.model.policy_copy),
      "--policy-rows": (args.policy_rows or None, d.policy_rows),
      "--policy-target": (args.policy_target, d.policy_target),
      "--policy-weight": (args.policy_weight or None, cfg.policy_weight),
      "--policy-lr-multiplier": (args.policy_lr_multiplier or None, cfg.policy_learning_rate_multiplier),
      "--freeze-surrogate": (args.freeze_surrogate or None, cfg.freeze_surrogate),
  }
  given.update({flag: (_prior_flag(args, flag), getattr(prior, field)) for flag, (field, _) in PRIOR_FLAGS.items()})
  changed = [f"{flag} {v} (the run has {have})" for flag, (v, have) in given.items() if v is not None and v != have]
  if args.init_from:
    changed.append(f"--init-from {args.init_from} (the run has its own parameters)")
  return changed


def _contexts(text: str) -> tuple:
  """"5,10,20" -> (5, 10, 20); SystemExit naming the value when it is not comma-separated integers."""
  try:
    return tuple(int(v) for v in text.split(","))
  except ValueError:
    raise SystemExit(f"--eval-contexts: expected comma-separated context sizes, e.g. 5,10,20, got {text!r}.") from None


def _with_bookkeeping(cfg, args):
  """`cfg` with --checkpoint-every, --log-every, --eval-prior, --eval-contexts where given."""
  repl = {"checkpoint_every": args.checkpoint_every, "log_every": args.log_every, "eval_prior": args.eval_prior,
          "eval_contexts": _contexts(args.eval_contexts) if args.eval_contexts else None}
  try:
    return dataclasses.replace(cfg, **{k: v for k, v in repl.items() if v})
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None


def build_config(args, fresh: bool = False):
  """The run config the flags `args` describe: the workdir's saved one on a resume (a flag that would change it is
  refused: SystemExit naming it), else a new one from --init-from or the preset; `fresh`: always a new one."""
  from optformer.training import presets
  from optformer.training.data import prior_borders
  from optformer.training.train import PFNTrainConfig

  cfg_path = args.workdir / "config.json"
  if cfg_path.exists() and not fresh:  # Resume: the saved config is the run's config; a flag that would change it is refused.
    cfg = PFNTrainConfig.from_dict(json.loads(cfg_path.read_text()))
    changed = _changed_on_resume(cfg, args)
    if changed:
      raise SystemExit(f"{args.workdir} holds a run whose config.json is the run's config; these flags would "
                       f"change it and are not applied on a resume: {', '.join(changed)}. Drop them to resume, "
                       "or start a new run in another --workdir (--init-from an export to warm-start it).")
    return cfg
  if args.init_from:
    meta = json.loads((pathlib.Path(args.init_from) / "config.json").read_text())
    if "train" in meta.get("metadata", {}):  # The model's own run config (its borders), with prior overrides.
      cfg = PFNTrainConfig.from_dict(meta["metadata"]["train"])
      cfg = dataclasses.replace(cfg, data=_with_prior(_with_seq_lens(cfg.data, args), args))
      cfg = _with_optimization(cfg, args)  # The warm start's own schedule where given (else the model's run's).
      return _with_bookkeeping(_with_policy(_with_seed(cfg, args), args), args)
  preset = presets.get(args.preset)
  cfg = preset.config()
  model = cfg.model
  if args.d_model:
    model = dataclasses.replace(model, d_model=args.d_model)
  if args.layers:
    model = dataclasses.replace(model, num_layers=args.layers)
  if args.d_slot:
    model = dataclasses.replace(model, d_slot=args.d_slot)
  repl = {}
  for name in ("steps", "learning_rate", "optimizer", "warmup"):
    v = getattr(args, name)
    if v:
      repl[{"steps": "num_steps", "learning_rate": "peak_learning_rate", "warmup": "warmup_steps"}.get(name, name)] = v
  data = cfg.data
  if args.batch_size:
    data = dataclasses.replace(data, batch_size=args.batch_size)
  data = _with_seq_lens(data, args)
  if args.dims_curriculum:
    try:
      stages = tuple(tuple(int(v) for v in stage.split(":")) for stage in args.dims_curriculum.split(","))
      data = dataclasses.replace(data, dims_curriculum=stages)
    except ValueError as e:
      raise SystemExit(f"--dims-curriculum: expected UNTIL:MAX_DIMS[,UNTIL:MAX_DIMS...] with increasing UNTIL, "
                       f"got {args.dims_curriculum!r} ({e}).") from None
  if args.soft_targets:
    data = dataclasses.replace(data, soft_target_weight=args.soft_targets)
  data = _with_prior(data, args)
  if args.eval_every:
    repl["eval_every"] = args.eval_every
  bins = preset.bins if args.bins is None else args.bins
  if bins < 2:
    raise SystemExit(f"--bins must be >= 2, got {bins}.")
  borders = prior_borders(data, bins, num_batches=preset.border_batches)
  model = dataclasses.replace(model, borders=tuple(float(b) for b in borders))
  cfg = _with_bookkeeping(_with_policy(_with_seed(dataclasses.replace(cfg, model=model, data=data, **repl), args), args),
                          args)
  cfg, warning = presets.clip_warmup(cfg)
  if warning:
    print(warning, file=sys.stderr)
  return cfg


def _eval_priors() -> list[str]:
  from optformer.training.evaluate import EVAL_PRIORS

  return list(EVAL_PRIORS)


def parser() -> argparse.ArgumentParser:
  from optformer.training import presets

  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", type=pathlib.Path, required=True, help="the run's directory (config.json, "
                 "metrics.jsonl, checkpoints/); an existing one is resumed")
  p.add_argument("--preset", choices=list(presets.PRESETS), default="default",
                 help="model, data and step budget for a machine (default: default): " + "; ".join(
                     f"{name}: {pr.help}" for name, pr in presets.PRESETS.items()))
  p.add_argument("--steps", type=int, default=0, help="total steps (schedule length; default: the preset's)")
  p.add_argument("--until", type=int, default=0, help="stop at this step (resume later); default: --steps")
  p.add_argument("--optimizer", choices=("adamw", "schedule_free_adamw", "muon"), default=None,
                 help="default: schedule_free_adamw")
  p.add_argument("--learning-rate", type=float, default=0.0, help="peak learning rate (default 3e-3)")
  p.add_argument("--warmup", type=int, default=0, help="linear warmup steps (default: the preset's, clipped to a "
                 "tenth of the run with a warning when not shorter than it)")
  p.add_argument("--batch-size", type=int, default=0, help="examples per step (default: the preset's)")
  p.add_argument("--d-model", type=int, default=0, help="width E of the backbone (default: the preset's)")
  p.add_argument("--layers", type=int, default=0, help="transformer blocks (default: the preset's)")
  p.add_argument("--d-slot", type=int, default=0, help="hidden width of the per-slot encoder (default: the preset's)")
  p.add_argument("--bins", type=int, default=None, help="bars of the predictive distribution (default: the "
                 "preset's: 1000, tiny 32, cpu-small 128)")
  p.add_argument("--seq-lens", default="", help="comma-separated points per example, equally likely, e.g. 64,128 "
                 "(also for a warm start: --init-from keeps the model's config and borders)")
  p.add_argument("--eval-every", type=int, default=0, help="steps between held-out evaluations (any number: "
                 "an evaluation is a log row of its own; default: the preset's)")
  p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (default: the "
                 "preset's; 250 for default)")
  p.add_argument("--log-every", type=int, default=0, help="steps between metrics-log rows (default 50)")
  p.add_argument("--eval-prior", choices=_eval_priors(), default=None, help="prior of the "
                 "held-out evaluation (training/evaluate.py): reference (default: the project's reference GP "
                 "prior, the same examples for every run), reference-noiseless (its functions, near-noiseless), "
                 "tiny (the tiny preset's), training (the run's own), "
                 "bbob-like or hpo-like (the reference prior with BBOB-/HPO-like objectives, data_gen/families.py)")
  p.add_argument("--eval-contexts", default="", help="comma-separated context sizes of the held-out evaluation "
                 "(default 5,10,20,40,100,200; tiny 5,10,20,40)")
  p.add_argument("--seed", type=int, default=None, help="seed of the model's initialization and of the prior's "
                 "examples (default 0), so an ablation can be repeated over seeds")
  p.add_argument("--soft-targets", type=float, default=0.0, help="weight in [0, 1] of the exact GP posterior's bar "
                 "masses in the query loss (training/data.py, 'Soft targets'); 0: the drawn value's bar only")
  p.add_argument("--dims-curriculum", default="", help="training batches before UNTIL draw tasks of at most MAX_DIMS "
                 "parameters: UNTIL:MAX_DIMS[,...], e.g. 17000:4,20000:8 (batch index = data position)")
  p.add_argument("--noise-log-mean", type=float, default=None,
                 help="prior: mean of the log noise variance (default the prior's, -4.63); a new run or --init-from")
  p.add_argument("--noise-log-std", type=float, default=None, help="prior: std of the log noise variance (default 0.5)")
  p.add_argument("--prior-bbob", type=float, default=None, metavar="P", help="prior: share of tasks whose objective "
                 "is a BBOB-like shape (data_gen/families.py: rotated, ill-conditioned, multimodal; default 0)")
  p.add_argument("--prior-hpo", type=float, default=None, metavar="P", help="prior: share of tasks whose objective is "
                 "an HPO-like shape (few important parameters, log-scale sensitivity, plateaus; default 0)")
  p.add_argument("--prior-family-residual", type=float, default=None, metavar="P", help="prior: probability that a "
                 "BBOB-/HPO-like task adds a GP residual (default 0.5)")
  p.add_argument("--prior-noiseless", type=float, default=None, help="prior: probability in [0, 1] that a task is "
                 "near-noiseless (the noise mixture; default 0, HEBO+); a new run or --init-from")
  p.add_argument("--noiseless-log-mean", type=float, default=None, help="prior: mean of the log noise variance of "
                 "a near-noiseless task (default -13.8, a variance of 1e-6)")
  p.add_argument("--noiseless-log-std", type=float, default=None, help="prior: std of the log noise variance of a "
                 "near-noiseless task (default 1)")
  p.add_argument("--policy-tokens", type=int, default=0, help="V: tokens of the policy head (optformer/model/policy.py); "
                 "0: none. With --init-from a model without a head, the head starts fresh")
  p.add_argument("--policy-copy", action="store_true", help="the policy head also attends over the context's "
                 "per-parameter values (a copy pointer; optformer/model/network.py)")
  p.add_argument("--value-input", choices=("fourier", "tokens"), default=None,
                 help="how float/int values enter the model: Fourier features (default) or V-bin tokens (ablation)")
  p.add_argument("--policy-rows", type=int, default=0, help="policy rows per example (training/data.py, "
                 "'Policy rows'); 0: no policy loss")
  p.add_argument("--policy-target", choices=("ei_search", "ei", "best"), default=None,
                 help="the behaviour policy the head clones: the exact-GP EI's argmax over uniform and local "
                 "candidates (ei_search, default), over the example's queries (ei), or the best query (best)")
  p.add_argument("--policy-weight", type=float, default=0.0, help="weight of the policy loss (default 1)")
  p.add_argument("--policy-lr-multiplier", type=float, default=0.0,
                 help="the policy head's learning rate / the rest's (adamw, muon; default 1)")
  p.add_argument("--freeze-surrogate", action="store_true", help="train the policy head only (adamw, muon): the "
                 "surrogate's predictions stay exactly those of --init-from")
  p.add_argument("--init-from", type=pathlib.Path, help="exported model directory to warm-start a new workdir")
  p.add_argument("--export", type=pathlib.Path, help="write the latest checkpoint as a model directory")
  p.add_argument("--export-only", action="store_true", help="export the latest checkpoint (with --export), train nothing")
  p.add_argument("--export-every", type=int, default=0, help="also export every N steps while training (with --export)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar (the start/resume line and the "
                 "final metrics are printed all the same)")
  from optformer.training import distributed

  distributed.add_flags(p)
  return p


class _Interrupt:
  """SIGINT handler of a training run: the first Ctrl-C asks the trainer to save the current step and stop, a
  second one raises KeyboardInterrupt (quit at once)."""

  def __init__(self):
    self.requested = False

  def __call__(self, signum=None, frame=None):
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    print("\nCtrl-C: stopping after this step and saving a checkpoint of it (Ctrl-C again to quit at once)",
          file=sys.stderr, flush=True)

  def install(self):
    """Installs the handler (in the main thread only; elsewhere Ctrl-C keeps Python's default); returns the old."""
    try:
      return signal.signal(signal.SIGINT, self)
    except ValueError:  # Not the main thread.
      return None


def main(argv=None) -> int:
  """Runs `optformer-train train` with train_cli's flags; exit status 0, 2 (an unusable workdir) or 130 (Ctrl-C)."""
  args = parser().parse_args(argv)
  from optformer.training import distributed

  distributed.join_cluster(args)

  from optformer.training.workdir import WorkdirError, check_writable

  try:
    check_writable(args.workdir)
  except WorkdirError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  interrupt = _Interrupt()
  previous = interrupt.install()
  trainer = None
  try:
    trainer = _start(args)
    if interrupt.requested:
      raise KeyboardInterrupt
    return _train(args, trainer, interrupt)
  except KeyboardInterrupt:  # One line instead of a traceback; the last checkpoint is intact.
    last = trainer.manager.latest_step() if trainer is not None else None
    step = trainer.step if trainer is not None else None
    lost = f"steps {last or 0} to {step} are lost" if step and step != (last or 0) else "nothing is lost"
    print(f"interrupted at step {step}; the latest checkpoint is step {last} ({lost}): re-run the same command to "
          "resume from it", file=sys.stderr)
    return 130
  finally:
    if previous is not None:
      signal.signal(signal.SIGINT, previous)


def _start(args):
  """The trainer of the run `args` describe (new, resumed or warm-started), with the line that says which."""
  from optformer.training import distributed
  from optformer.training.train import PFNTrainer

  cfg = build_config(args)
  distributed.barrier("optformer: run config read")  # Every process has seen the workdir before one writes it.
  trainer = PFNTrainer(cfg, args.workdir, init_from=args.init_from, data_workers=distributed.data_workers(args))
  primary = distributed.is_primary()
  say = print if primary else (lambda *a, **k: None)  # Process 0 speaks for the run.
  until = args.until or cfg.num_steps
  if args.export_only:
    return trainer
  if trainer.manager.latest_step() is not None:  # A checkpoint before any step of this process: a resume.
    say(f"resuming {args.workdir} at step {trainer.step} (data position {trainer.position}), until step {until}",
        flush=True)
  else:
    start = f"from {args.init_from} at its step {trainer.step}" if args.init_from else "from scratch"
    say(f"new run in {args.workdir}, {start}, until step {until} of a {cfg.num_steps}-step schedule", flush=True)
    if not args.init_from and cfg.warmup_steps >= until:
      say(f"warning: the learning-rate warmup ({cfg.warmup_steps} steps) does not end before this run stops at "
          f"step {until}; set --warmup lower", file=sys.stderr)
  return trainer


def _train(args, trainer, interrupt) -> int:
  """Trains `trainer` to --until (exporting every --export-every steps), then exports with --export."""
  from optformer.training import distributed
  from optformer.training.evaluate import eval_data, gp_gap, policy_nll

  cfg, until = trainer.cfg, args.until or trainer.cfg.num_steps
  primary = distributed.is_primary()
  say = print if primary else (lambda *a, **k: None)  # Process 0 speaks for the run.
  if not args.export_only:
    data = eval_data(cfg.data, cfg.eval_prior)

    def evaluator(graphdef, params):
      out = gp_gap(graphdef, params, data, cfg.model.borders, cfg.model.num_slot_ids,
                   contexts=cfg.eval_contexts, num_batches=cfg.eval_batches, by_dims=True)
      if cfg.data.policy_rows:
        out.update(policy_nll(graphdef, params, cfg.data, cfg.model.borders, cfg.model.num_slot_ids, cfg.eval_batches))
      return out

    rows = []
    while trainer.step < until:
      stop = min(until, trainer.step + args.export_every) if (args.export and args.export_every) else until
      rows = trainer.run(stop, progress=not args.no_progress, evaluator=evaluator,
                         stop=lambda: interrupt.requested) or rows
      if interrupt.requested:
        say(f"interrupted: saved a checkpoint of step {trainer.step}; re-run the same command to resume from it",
            file=sys.stderr)
        return 130
      if args.export and trainer.step < until and primary:
        from optformer.training.export import export

        export(trainer, args.export)
    if rows:
      say(json.dumps(rows[-1]))
  if args.export and primary:
    from optformer.training.export import export

    print(f"exported {export(trainer, args.export)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
