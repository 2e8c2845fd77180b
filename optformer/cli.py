"""The `optformer` command: suggestions and predictions from files, so any language can drive the model.

  optformer suggest --space space.json --history trials.csv [-n K] [--goal minimize|maximize|GOAL,GOAL,...]
                    [--seed S] [--checkpoint DIR] [--out PATH] [--no-compilation-cache]
  optformer predict --space space.json --history trials.csv --configs configs.csv|configs.json
                    [--quantiles 0.1,0.5,0.9] [--goal ...] [--checkpoint DIR] [--out PATH]
                    [--no-compilation-cache]
  optformer explain --space space.json --history trials.csv --out DIR [--goal ...] [--checkpoint DIR]
                    [--no-compilation-cache]
  optformer --version

`--no-compilation-cache` leaves JAX's persistent compilation cache off
(`Optimizer(compilation_cache=False)`); by default compiled functions are
kept in the per-user directory of `optformer.compilation_cache`.

Files (UTF-8; a byte-order mark is allowed):

* space.json: `SearchSpace.to_json()`, a list of parameters, each an object
  with "type" (float, int, discrete or categorical), "name", and
  "low"/"high"/"log" (float, int; "log" is optional, default false),
  "values" (discrete: sorted numbers) or "choices" (categorical: strings,
  numbers or booleans). No parameter may be named `objective` or `status`
  (columns of trials.csv), and no string choice may read as another
  choice in a CSV cell ("1" beside 1, "true" beside true): such a space is
  an error, since trials.csv could not tell them apart. A conditional
  parameter has a "condition" (`Condition.to_json`): {"parent": "kernel",
  "values": ["rbf", "poly"]}, or {"parent": "n_layers", "greater_than": 1}
  (and/or "less_than") on an ordered parent; an unknown parent, a cycle or
  a value the parent does not take is an error naming the parameter.
  A parameter may have a "default" (carried, not used) and a categorical
  "ordered": true (its choices are ordered levels). After the parameters,
  {"type": "constant", "name": ..., "value": ...} items and forbidden
  clauses {"type": "forbidden", "values": {"kernel": ["poly"], "degree":
  [4, 5]}, "relations": [["a", ">", "b"]]} (`optformer.Forbidden`): a
  forbidden configuration is never suggested, and a trials.csv row that is
  one is an error naming the clause.
* trials.csv: a header row naming every parameter and `objective`, then one
  trial per row, told to the Optimizer in file order. With several
  objectives (`--goal minimize,maximize`, one direction per objective) the
  objective columns are `objective_1`, ..., `objective_K` instead, in the
  order of --goal; an empty or nan cell in any of them makes the trial
  infeasible. Constraint columns `constraint_1`, ..., `constraint_J`
  (optional, numbered from 1 without gaps) hold numbers, and a completed
  trial is feasible when all are <= 0 (`Optimizer.tell(...,
  constraints=[...])`, as Optuna's constraints_func); a completed row needs
  a finite number in each, a pending row leaves them empty. No parameter
  may be named `objective_<k>` or `constraint_<k>`. Fields follow RFC
  4180 (Python's csv module writes them): spaces are part of a field, and
  a quoted field starts right after the comma. A categorical cell is the
  choice as written in space.json (true/false for booleans), matched
  exactly first (" a" is the choice " a"), then with the spaces around it
  removed; numbers may have spaces around them. An empty,
  nan or inf objective is an *infeasible* trial (as `Optimizer.tell` records
  NaN); a number that overflows float64 (1e400) or lies beyond +-1e150 is
  an error. Blank lines are skipped; a row of empty fields (`,,,,`) is an
  error. In a conditional space the cell of an inactive parameter is
  empty, and an active parameter's cell must not be (an error names the
  parameter either way). An optional `status` column holds `completed` (or empty),
  `infeasible` (objective empty) or `pending` (objective empty): a
  configuration under evaluation elsewhere, which is not suggested again
  and enters the context with a fantasized objective (`Optimizer.add_pending`).
* configs.csv (predict): a header row naming every parameter, one
  configuration per row; `objective` and `status` columns are ignored, so a
  trials.csv can be passed. configs.json: a list of objects name -> value
  (inactive parameters left out).

Output (stdout, or --out PATH written atomically by
`study_files.write_atomic`: a temporary file in the same directory, then
os.replace; a symbolic link is written through to its target, and a FIFO,
socket or device is refused), JSON:
* suggest: a list of K objects name -> value (only the active parameters
  of a conditional space);
* predict: one object per configuration, in input order: {"config", "mean",
  "std", "quantiles": {"0.1": ...}, "expected_improvement",
  "probability_of_improvement", "p_feasible"}, in objective units;
  improvement is over the best feasible objective in trials.csv, in the
  goal's direction; with several objectives each of these fields (and each
  quantile) is a list, one entry per objective.

* explain: for a space of at most 16 parameters (exact Shapley values over
  2^D coalitions), writes into DIR (created if its parent exists) `explain.json`
  (`optformer.explain.explain_study`: partial dependences with std and ICE
  curves, HyperSHAP ablation and tunability Shapley values and pairwise
  interactions, variance shares, seconds per explanation) and PNG figures
  (needs matplotlib: `pip install optformer[explain]`); prints the paths
  written, one per line. Pending trials enter the context as for predict;
  the explanations average over the feasible trials. One objective only.

`--seed` is an integer >= 0; `--quantiles` levels lie strictly between 0
and 1 (the distribution's tails are unbounded). `--version` prints
`optformer X.Y.Z` (the installed package's version, else the source
tree's pyproject.toml).

Exit status: 0 on success; 2 on an invalid command line, input file or
checkpoint, with one line on stderr naming the flag, or the file, line and
field at fault (e.g. `trials.csv:4: field 'units': value 400 is outside [2,
20].`) and nothing written to stdout or --out.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence

from optformer import explain, study_files, trials_csv
from optformer.optimizer import Optimizer
from optformer.study_files import InputError, load_space  # noqa: F401  (re-exported for callers of the CLI module)

# -- Commands ------------------------------------------------------------------


def _optimizer(args, space=None) -> Optimizer:
  """An Optimizer with the space (read from --space unless given) and the history of the command's files."""
  from optformer.checkpoint import CheckpointError  # No JAX: the checkpoint's checks read files only.

  space = study_files.load_space(args.space) if space is None else space
  goals = [args.goal] if isinstance(args.goal, str) else args.goal
  trials = trials_csv.read_trials(args.history, space, history=True, num_objectives=len(goals))
  try:
    opt = Optimizer(
        space, args.goal, model=args.checkpoint, seed=getattr(args, "seed", None),
        compilation_cache=not args.no_compilation_cache,
    )
  except CheckpointError as e:
    raise InputError(args.checkpoint or "checkpoint", None, None, str(e)) from e
  except ValueError as e:  # A space the model cannot take (too many parameters).
    raise InputError(args.space, None, None, str(e)) from e
  for row in trials:
    try:
      if row.status == "pending":
        opt.add_pending(row.params)
      else:
        opt.tell(row.params, row.value, constraints=row.constraints)
    except (TypeError, ValueError) as e:  # An objective beyond +-1e150 (the parameters were checked when read).
      raise InputError(args.history, row.line, "objective" if row.status != "pending" else None, str(e)) from e
  return opt


def _suggest(args) -> list[dict]:
  return [dict(s) for s in _optimizer(args).ask(args.n)]


def _predict(args) -> list[dict]:
  opt = _optimizer(args)
  configs = trials_csv.read_configs(args.configs, opt.space)
  try:
    dists = opt.predict(configs)
  except ValueError as e:  # No feasible trial: the objective's scale is unknown.
    raise InputError(args.history, None, None, str(e)) from e
  one = not isinstance(dists, list)
  dists = [dists] if one else dists
  fields = [
      {"mean": d.mean, "std": d.std, "expected_improvement": d.expected_improvement(),
       "probability_of_improvement": d.probability_of_improvement(), "p_feasible": d.p_feasible,
       **{f"q{q:g}": d.quantile(q) for q in args.quantiles}} for d in dists]
  pick = lambda key, i: float(fields[0][key][i]) if one else [float(f[key][i]) for f in fields]
  keys = ("mean", "std", "expected_improvement", "probability_of_improvement", "p_feasible")
  return [{"config": config, **{k: pick(k, i) for k in keys[:2]},
           "quantiles": {f"{q:g}": pick(f"q{q:g}", i) for q in args.quantiles}, **{k: pick(k, i) for k in keys[2:]}}
          for i, config in enumerate(configs)]


def _explain(args) -> None:
  space = study_files.load_space(args.space)
  if len(space) > explain.shapley.MAX_PLAYERS:  # Before the model loads and before --out is created.
    raise InputError(args.space, None, None,
                     f"the search space has {len(space)} parameters; optformer explain computes exact Shapley values "
                     f"over all 2^D coalitions and supports at most {explain.shapley.MAX_PLAYERS}.")
  if not isinstance(args.goal, str):
    raise InputError("--goal", None, None, "explain takes one objective; got several goals.")
  opt = _optimizer(args, space)
  try:
    view = explain.study.as_study(opt)  # Too few feasible trials: an error before anything is written.
  except ValueError as e:
    raise InputError(args.history, None, None, str(e)) from e
  try:
    import matplotlib  # noqa: F401
  except ImportError as e:
    raise InputError(args.out, None, None, "--out: the figures need matplotlib; pip install 'optformer[explain]'.") from e
  created = not args.out.exists()
  try:
    args.out.mkdir(exist_ok=True)  # After the input files are read: a bad input leaves nothing behind.
  except OSError as e:
    raise InputError(args.out, None, None, f"--out: cannot create the directory: {e.strerror}.") from e
  try:
    out = explain.explain_study(view, args.out)
    study_files.write_atomic(args.out / "explain.json", json.dumps(out, indent=2, allow_nan=False) + "\n")
  except BaseException:
    if created and not any(args.out.iterdir()):
      args.out.rmdir()
    raise
  for name in ["explain.json", *out["figures"]]:
    print(args.out / name)


# -- Arguments -----------------------------------------------------------------


def _positive_int(text: str) -> int:
  try:
    n = int(text)
  except ValueError:
    n = 0
  if n < 1:
    raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
  return n


def _seed(text: str) -> int:
  try:
    n = int(text)
  except ValueError:
    n = -1
  if n < 0:
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
  return n


def _quantiles(text: str) -> list[float]:
  """Levels strictly inside (0, 1): the predictive distribution has unbounded tails (levels 0 and 1: -inf and inf)."""
  levels = []
  for part in text.split(","):
    q = study_files.parse_number(part.strip())
    if q is None or not 0.0 < q < 1.0:
      raise argparse.ArgumentTypeError(
          "expected comma-separated levels strictly between 0 and 1, in (0, 1), such as 0.1,0.5,0.9; "
          f"got {part.strip()!r}")
    levels.append(q)
  return levels


def _goal(text: str) -> str | list[str]:
  """"minimize" or "maximize", or a comma-separated list of at least two of them (one per objective)."""
  goals = [g.strip() for g in text.split(",")]
  if any(g not in ("minimize", "maximize") for g in goals):
    raise argparse.ArgumentTypeError(f"expected minimize, maximize, or a comma-separated list of them, got {text!r}")
  return goals[0] if len(goals) == 1 else goals


def _version() -> str:
  """The installed package's version, else the one in the source tree's pyproject.toml, else "unknown"."""
  import importlib.metadata

  try:
    return importlib.metadata.version("optformer")
  except importlib.metadata.PackageNotFoundError:
    pass
  import tomllib

  try:
    with open(pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
      return str(tomllib.load(f)["project"]["version"])
  except (OSError, KeyError, tomllib.TOMLDecodeError):
    return "unknown"


class _PrintVersion(argparse.Action):
  """`--version`: prints `optformer X.Y.Z` and exits 0 (the version is looked up only then)."""

  def __init__(self, option_strings, dest, **kwargs):
    super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

  def __call__(self, parser, namespace, values, option_string=None):
    sys.stdout.write(f"{parser.prog} {_version()}\n")
    parser.exit(0)


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors, as for input files: `optformer predict: error: ... (see optformer predict -h)`."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(
      prog="optformer", description="Zero-shot hyperparameter suggestions and predictions with a pretrained OptFormer.",
      epilog="File formats: see `python -c 'import optformer.cli; help(optformer.cli)'`.",
  )
  parser.add_argument("--version", action=_PrintVersion, help="print the version of optformer and exit")
  commands = parser.add_subparsers(dest="command", required=True, metavar="{suggest,predict,explain}")

  def common(p, out_help="write the JSON here (atomically) instead of stdout"):
    p.add_argument("--space", required=True, metavar="SPACE.json", help="search space, SearchSpace.to_json() format")
    p.add_argument("--history", required=True, metavar="TRIALS.csv",
                   help="one column per parameter plus 'objective' (with several goals: objective_1, ..., objective_K "
                        "in --goal's order); optional 'status' (completed, infeasible, pending) and constraint_1, ..., "
                        "constraint_J (a trial is feasible when all are <= 0)")
    p.add_argument("--goal", type=_goal, default="minimize", metavar="GOAL",
                   help="minimize or maximize (default: minimize); several objectives: one per objective, comma-"
                        "separated, e.g. minimize,maximize for objective_1 and objective_2")
    p.add_argument("--checkpoint", metavar="DIR", default=None, help="model directory (default: the shipped checkpoint)")
    p.add_argument("--out", metavar="PATH", type=pathlib.Path, default=None, help=out_help)
    p.add_argument("--no-compilation-cache", action="store_true",
                   help="do not use JAX's persistent compilation cache (default: on, in the per-user cache directory)")

  p = commands.add_parser("suggest", help="print the next configurations to evaluate, as a JSON list of objects")
  common(p)
  p.add_argument("-n", type=_positive_int, default=1, metavar="K", help="number of configurations, diverse for K > 1 (default: 1)")
  p.add_argument("--seed", type=_seed, default=None,
                 help="seed, an integer >= 0: same files and seed give the same suggestions")
  p.set_defaults(run=_suggest)

  p = commands.add_parser("predict", help="print the predictive distribution of the objective at given configurations")
  common(p)
  p.add_argument("--configs", required=True, metavar="CONFIGS.csv|.json", help="configurations to predict")
  p.add_argument("--quantiles", type=_quantiles, default=[0.1, 0.5, 0.9], metavar="Q,...",
                 help="quantile levels in (0, 1) (default: 0.1,0.5,0.9)")
  p.set_defaults(run=_predict)

  p = commands.add_parser("explain", help="write partial dependence plots, importance values and interactions to a directory")
  common(p, out_help="directory for explain.json and the PNG figures (created if missing; required)")
  p.set_defaults(run=_explain)
  return parser


def _drop_closed_event_loop_noise() -> None:
  """Stops the "RuntimeError: Event loop is closed" tracebacks that follow an unreadable checkpoint.

  When orbax fails to read a truncated parameter file, it closes its asyncio
  event loop while tensorstore's reads are still in flight; each read that
  ends later calls back into the closed loop, and Python prints one
  unraisable-exception traceback per read (about a hundred, after our
  one-line error). The hook drops exactly those and passes every other
  unraisable exception to the hook that was installed before. It is
  installed once and stays for the life of the process, because the reads
  end after `main` returns.
  """
  previous = sys.unraisablehook
  if getattr(previous, "_optformer_drops_closed_loop", False):
    return

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)

  hook._optformer_drops_closed_loop = True
  sys.unraisablehook = hook


def _explain_out_dir(out: pathlib.Path | None) -> None:
  """Checks explain's --out: an existing directory, or a new one in an existing directory; InputError if not."""
  if out is None:
    raise InputError("--out", None, None, "explain needs --out DIR, the directory for its figures and explain.json.")
  if out.exists() and not out.is_dir():
    raise InputError(out, None, None, "--out: is a file; expected a directory.")
  if not out.parent.is_dir():
    raise InputError(out, None, None, "--out: the parent directory does not exist.")


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status (0 success, 2 invalid input). See the module docstring."""
  from optformer.checkpoint import CheckpointError  # No JAX (checkpoint.read_config).

  args = _parser().parse_args(argv)
  _drop_closed_event_loop_noise()  # Before the checkpoint is read: the tracebacks may start at once.
  try:
    if args.command == "explain":
      _explain_out_dir(args.out)
      args.run(args)
      return 0
    if args.out is not None:  # Checked before the model runs; write_atomic checks again when it writes.
      try:
        target, _ = study_files.replaceable_target(args.out)
      except OSError as e:
        raise InputError(args.out, None, None, f"--out: {e.strerror}.") from e
      if not target.parent.is_dir():
        raise InputError(args.out, None, None, "--out: the directory does not exist.")
    text = json.dumps(args.run(args), indent=2, allow_nan=False) + "\n"
    if args.out is not None:
      try:
        study_files.write_atomic(args.out, text)
      except OSError as e:
        raise InputError(args.out, None, None, f"--out: cannot write the file: {e.strerror}.") from e
    else:
      sys.stdout.write(text)
      sys.stdout.flush()
  except (InputError, CheckpointError) as e:
    if isinstance(e, CheckpointError):  # The model's parameters are read on first use, after _optimizer's checks.
      e = InputError(getattr(args, "checkpoint", None) or "checkpoint", None, None, str(e))
    print(f"optformer {args.command}: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
