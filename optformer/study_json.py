"""The study file (format 1): an Optimizer's space, options, trials, pending trials and random state as JSON.

`Optimizer.to_json`/`from_json`/`save`/`load` are these functions. A resumed study makes the same next suggestion
as an uninterrupted one. Study files of earlier versions keep loading: options added later get their defaults
(`_OPTIONAL_OPTION_KINDS`), a shipped model's absolute path from a checkout that has moved resolves to the shipped
model, and a study made with the retired model v1 ("shipped:optformer-gp-v1", its old path, an "algorithm" prompt,
policy candidates) continues on the default model with one warning (`_retire_options`).

Fields added later, still format 1: "options.initial_design" ("none" when absent) and "design_seed" (the Sobol'
scrambling seed of a "sobol:K" design, null until drawn; absent: null); a study of several objectives stores "goal"
as a list of goals and each trial's "value" as a list (null where not finite); a trial told with constraints has
"constraints" (a list of numbers), absent otherwise, so files without it load as before.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import warnings
from typing import TYPE_CHECKING, Any, Mapping

from optformer import priors as priors_lib
from optformer import search_space as ss
from optformer import study_files
from optformer.acquisition_search import SearchConfig
from optformer.study import Trial, as_constraints

if TYPE_CHECKING:
  from optformer.optimizer import Optimizer


def to_json(opt: Optimizer) -> dict:
  """The study file's JSON (format 1) of an Optimizer; the fields and the "model" reference are described by
  `Optimizer.to_json`, which calls it."""
  d, s = opt.designer, opt.study
  return {
      "format": FORMAT, "space": s.space.to_json(), "goal": s.goal, "model": _model_reference(opt.model_path),
      "options": {
          "num_candidates": d.num_candidates, "temperature": d.temperature, "candidates": d.candidates,
          "prior": d.prior.to_json() if d.prior else None, "prior_beta": d.prior_beta,
          "acquisition": d.acquisition, "ucb_beta": d.ucb_beta, "search": d.search.to_json(),
          "initial_design": d.initial_design,
      },
      "trials": [_trial_json(t) for t in s.trials],
      "pending": [{"number": n, "params": p} for n, p in s.pending.items()],
      "next_number": s.next_number, "rng": opt.rng.bit_generator.state,
      "warned_truncation": d.warned_truncation, "study_id": s.study_id, "design_seed": d.design_seed,
  }

def _trial_json(t: Trial) -> dict:
  """A trial's entry: "value" a number or null (not finite), a list of them with several objectives; "constraints"
  only when told (added later: study files without it keep loading)."""
  finite = lambda v: v if math.isfinite(v) else None
  out = {"number": t.number, "params": t.params,
         "value": [finite(v) for v in t.value] if isinstance(t.value, tuple) else finite(t.value)}
  if t.constraints is not None:
    out["constraints"] = list(t.constraints)
  return out


def from_json(cls: type[Optimizer], data: Mapping[str, Any], *, model=None) -> Optimizer:
  """Inverse of `to_json`: an instance of `cls` (Optimizer) from a study file's JSON; the semantics and the
  errors raised are those of `Optimizer.from_json`, which calls it."""
  fmt = data.get("format") if isinstance(data, Mapping) else None
  if type(fmt) is not int or fmt != FORMAT:  # Not `!=` alone: True == 1 and 1.0 == 1 in Python.
    if not isinstance(data, Mapping):
      got = type(data).__name__
    elif fmt is None or type(fmt) is int:
      got = repr(fmt)
    else:
      got = f"{fmt!r}, a JSON {type(fmt).__name__} where an integer is expected"
    raise ValueError(f"Not an optformer study (format {FORMAT} expected, got {got}).")
  space_items = _field(data, "space", "list")
  try:
    space = ss.SearchSpace.from_json(space_items)
  except (TypeError, ValueError) as e:
    raise ValueError(f"field 'space': {e}") from e
  goal = _field(data, "goal", "str|list")
  if (goal not in ("minimize", "maximize") if isinstance(goal, str) else
      len(goal) < 2 or any(g not in ("minimize", "maximize") for g in goal)):
    raise ValueError(f"field 'goal': expected 'minimize' or 'maximize', or a list of at least two of them, got {goal!r}.")
  stored_model = _field(data, "model", "str|null")
  options = _field(data, "options", "object")
  opts = {k: _field(options, k, kind, "options.") for k, kind in _OPTION_KINDS.items()}
  for k, (kind, default) in _OPTIONAL_OPTION_KINDS.items():  # Absent from study files of earlier versions.
    opts[k] = _field(options, k, kind, "options.") if k in options else default
  for k, kind in _RETIRED_OPTION_KINDS.items():
    if k in options:
      _field(options, k, kind, "options.")
  unknown = sorted(set(options) - set(_OPTION_KINDS) - set(_OPTIONAL_OPTION_KINDS) - set(_RETIRED_OPTION_KINDS))
  if unknown:
    raise ValueError(f"field 'options': unknown option(s) {unknown}; expected {sorted(_OPTION_KINDS) + sorted(_OPTIONAL_OPTION_KINDS)}.")
  prior = opts.pop("prior")
  if opts["search"] is not None:
    try:
      opts["search"] = SearchConfig.from_json(dict(opts["search"]))
    except (TypeError, ValueError) as e:
      raise ValueError(f"field 'options.search': {e}") from e
  if model is None and stored_model is None:
    raise ValueError("The study was saved from an in-memory model; pass model= to load it.")
  if model is None:
    model = _resolve_model_reference(stored_model)
    if model == RETIRED:
      model = None
      opts = _retire_options(opts)
  from optformer import checkpoint  # For CheckpointError (no JAX).

  try:
    opt = cls(space, goal, model=model, **opts)
  except checkpoint.CheckpointError:
    raise
  except (TypeError, ValueError) as e:
    raise ValueError(f"field 'options': {e}") from e
  if prior:
    try:
      opt.designer.prior = priors_lib.Prior.from_json(space, prior)
    except (TypeError, ValueError, KeyError) as e:
      raise ValueError(f"field 'options.prior': {e}") from e
  numbers: dict[int, str] = {}  # trial number -> the field that holds it

  def entry(i: int, item: Any, what: str) -> tuple[int, dict]:
    where = f"{what}[{i}]"
    if not isinstance(item, Mapping):
      raise ValueError(f"field {where!r}: expected an object, got {type(item).__name__} {item!r:.80}.")
    number = _field(item, "number", "int", where + ".")
    if number < 0 or number in numbers:
      why = "is negative" if number < 0 else f"is also the number of {numbers[number]}"
      raise ValueError(f"field '{where}.number': trial number {number} {why}.")
    numbers[number] = where
    params = _field(item, "params", "object", where + ".")
    try:
      return number, space.validate(params)
    except (TypeError, ValueError) as e:
      raise ValueError(f"field '{where}.params': {e}") from e

  for i, t in enumerate(_field(data, "trials", "list")):
    number, params = entry(i, t, "trials")
    multi = opt.study.num_objectives > 1
    value = _field(t, "value", "list" if multi else "number|null", f"trials[{i}].")
    for v in value if multi else [value]:
      if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)):
        raise ValueError(f"field 'trials[{i}].value': expected finite numbers or null (infeasible), got {value!r}.")
    try:  # Absent from study files written before constraints existed.
      constraints = as_constraints(_field(t, "constraints", "list", f"trials[{i}].")) if "constraints" in t else None
    except (TypeError, ValueError) as e:
      raise ValueError(f"field 'trials[{i}].constraints': {e}") from e
    try:
      opt.study.trials.append(opt.study.trial(params, value, constraints, number))
    except (TypeError, ValueError) as e:
      raise ValueError(f"field 'trials[{i}].value': {e}") from e
  opt.study.pending = dict(entry(i, p, "pending") for i, p in enumerate(_field(data, "pending", "list")))
  next_number = _field(data, "next_number", "int")
  if numbers and next_number <= max(numbers):
    raise ValueError(f"field 'next_number': {next_number} must exceed every trial number (the largest is {max(numbers)}).")
  opt.study.next_number = next_number
  rng_state = _field(data, "rng", "object")
  try:
    opt.rng.bit_generator.state = rng_state
  except (TypeError, ValueError, KeyError) as e:
    raise ValueError(f"field 'rng': not a {type(opt.rng.bit_generator).__name__} state ({e}).") from e
  opt.designer.warned_truncation = _field(data, "warned_truncation", "bool")
  if "study_id" in data:
    opt.study.study_id = _field(data, "study_id", "str")
  if "design_seed" in data:  # Absent from study files written before initial designs.
    opt.designer.design_seed = _field(data, "design_seed", "int|null")
  return opt

def save(opt: Optimizer, path: str | os.PathLike) -> None:
  """Writes `to_json()` to `path` atomically (`study_files.write_atomic`: a temporary file, then rename)."""
  study_files.write_atomic(path, json.dumps(to_json(opt), indent=1, allow_nan=False))

def load(cls: type[Optimizer], path: str | os.PathLike, *, model=None) -> Optimizer:
  """Reads a study written by `save`.

  Raises:
    OSError: the file cannot be read (FileNotFoundError, PermissionError).
    ValueError: anything else wrong with the file, its message starting
      with the file's path: not UTF-8 text, not JSON (or nested too
      deeply), or a field as in `from_json` (named in the message).
    checkpoint.CheckpointError: the referenced checkpoint is missing or corrupt.
  """
  raw = pathlib.Path(path).read_bytes()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(
        f"{path}: not a study: byte {raw[e.start]:#04x} at offset {e.start} is not UTF-8 text "
        "(expected the JSON written by Optimizer.save)."
    ) from None
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}).") from None
  except RecursionError:
    raise ValueError(f"{path}: not a study: its JSON is nested too deeply.") from None
  from optformer import checkpoint  # For CheckpointError (no JAX).

  try:
    return from_json(cls, data, model=model)
  except checkpoint.CheckpointError:
    raise
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e



FORMAT = 1  # Study files written before "shipped:<name>" existed store a shipped model's absolute path.
_SHIPPED = "shipped:"  # Prefix of a shipped model's reference in a study file ("shipped:optformer-v2").


def _model_reference(model_path: str | None) -> str | None:
  """The study file's "model" of a checkpoint path: "shipped:<name>" for a shipped model, else the absolute path."""
  if model_path is None:
    return None
  from optformer import checkpoint

  path = pathlib.Path(model_path).absolute()
  shipped = checkpoint.SHIPPED_CHECKPOINTS.resolve()
  if path.resolve().parent == shipped and path.name and (shipped / path.name).is_dir():
    return _SHIPPED + path.name
  return str(path)


RETIRED = "retired"  # `_resolve_model_reference` of a study made with the retired model v1.


def _retire_options(opts: dict) -> dict:
  """A model v1 study's options on the default model, with one warning: policy candidates become the search."""
  from optformer import checkpoint

  warnings.warn(f"The study was made with model v1 ({checkpoint.RETIRED_NAME}), which was retired; it continues on "
                f"the default model ({checkpoint.DEFAULT_CHECKPOINT.name}).", UserWarning, stacklevel=4)
  opts = dict(opts)
  if opts["candidates"] == "policy":
    opts["candidates"] = "search"
  if opts["search"] is not None and opts["search"].num_policy:
    opts["search"] = dataclasses.replace(opts["search"], num_policy=0)
  return opts


def _resolve_model_reference(reference: str) -> pathlib.Path | str:
  """The checkpoint directory a study file's "model" names (see `Optimizer.to_json`).

  "shipped:<name>" and "default" name a shipped model; the retired model v1 ("shipped:optformer-gp-v1", or its
  old path, now gone) gives RETIRED. A file written before "shipped:<name>" existed holds the
  absolute path the study was saved with: when that path is gone and ended in checkpoints/<name> of a shipped
  model (the checkout or the environment moved), the shipped model of that name is used.

  Raises:
    ValueError: an empty reference.
    checkpoint.CheckpointError: a shipped name that this installation does not ship, or a path that does not exist.
  """
  from optformer import checkpoint

  shipped_names = sorted(p.name for p in checkpoint.SHIPPED_CHECKPOINTS.iterdir() if (p / "config.json").is_file())
  if reference == "":
    raise ValueError("field 'model': an empty string names no checkpoint; expected \"shipped:<name>\", a checkpoint "
                     "directory, or null.")
  if reference == "default":
    return checkpoint.DEFAULT_CHECKPOINT
  if reference == _SHIPPED + checkpoint.RETIRED_NAME or (
      pathlib.Path(reference).name == checkpoint.RETIRED_NAME and not pathlib.Path(reference).exists()):
    return RETIRED
  if reference.startswith(_SHIPPED):
    name = reference[len(_SHIPPED):]
    if name not in shipped_names:
      raise checkpoint.CheckpointError(
          f"The study's model {reference!r} is not shipped with this installation (shipped: {shipped_names}); "
          "pass model= a checkpoint directory to load the study.")
    return checkpoint.SHIPPED_CHECKPOINTS / name
  path = pathlib.Path(reference)
  if path.exists():
    return path
  if path.is_absolute() and path.parent.name == "checkpoints" and path.name in shipped_names:
    return checkpoint.SHIPPED_CHECKPOINTS / path.name  # The shipped model, saved under a path that has moved.
  raise checkpoint.CheckpointError(
      f"The study's model checkpoint {reference} does not exist; pass model= the checkpoint directory "
      "to load the study.")
# Stored options (`to_json()["options"]`) and their JSON kinds, all required.
_OPTION_KINDS = {
    "num_candidates": "int", "temperature": "number", "candidates": "str",
    "prior": "object|null", "prior_beta": "number",
}
# Options added later, with the default a study file without them gets: name -> (JSON kind, default).
_OPTIONAL_OPTION_KINDS = {"acquisition": ("str", "ei"), "ucb_beta": ("number", 4.0), "search": ("object|null", None),
                          "initial_design": ("str", "none")}
# Options of the retired model v1, read and dropped: name -> JSON kind.
_RETIRED_OPTION_KINDS = {"algorithm": "str"}
_JSON_KINDS = {
    "int": (int,), "number": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple),
    "object": (Mapping,), "null": (type(None),),
}


def _field(obj: Mapping[str, Any], key: str, kinds: str, where: str = "") -> Any:
  """obj[key] if its JSON kind is one of `kinds` ("int|null"); ValueError naming the field `where + key` otherwise."""
  if key not in obj:
    raise ValueError(f"field {where + key!r} is missing.")
  value = obj[key]
  for kind in kinds.split("|"):
    if isinstance(value, _JSON_KINDS[kind]) and not (isinstance(value, bool) and kind in ("int", "number")):
      return value
  names = {"object": "an object", "list": "a list", "int": "an integer", "number": "a number", "str": "a string",
           "bool": "true or false", "null": "null"}
  want = " or ".join(names[k] for k in kinds.split("|"))
  raise ValueError(f"field {where + key!r}: expected {want}, got {type(value).__name__} {value!r:.80}.")

