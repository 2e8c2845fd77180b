"""A training run's directory: config.json, metrics.jsonl and orbax checkpoints.

  WORKDIR/config.json     the run's config (written on first use; the record of the run)
  WORKDIR/metrics.jsonl   one JSON object per logged step
  WORKDIR/checkpoints/N   orbax checkpoint of step N: {"state": params and optimizer state, "meta": JSON}

The workdir and its checkpoint directory are checked for writing when a
trainer opens them and before every checkpoint, so an unwritable directory
is a `WorkdirError` at once: orbax, when a save fails inside it, logs the
error and leaves a thread that keeps the process alive forever. On resume,
metrics.jsonl loses its rows after the restored step (a run killed between a
log line and its checkpoint would otherwise list those steps twice).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from optformer.study_files import write_atomic


class WorkdirError(OSError):
  """The training workdir or its checkpoint directory cannot be written (the message names it)."""


def check_writable(directory: pathlib.Path) -> None:
  """Creates `directory` (and its parents) and a probe file in it, removed at once.

  Raises:
    WorkdirError: the directory cannot be created or written (permissions,
      a read-only file system, a file in the way), naming it and the reason.
  """
  try:
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe-")
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    raise WorkdirError(f"Cannot write to {directory}: {e.strerror or e}.") from e


def drop_metrics_after(path: pathlib.Path, step: int) -> None:
  """Rewrites metrics.jsonl without rows logged after `step` (or cut short), if it has any."""
  if not path.exists():
    return
  lines = path.read_text().splitlines()
  keep = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:  # A line cut short by a killed run.
      continue
    if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
      keep.append(line)
  if len(keep) != len(lines):
    write_atomic(path, "".join(line + "\n" for line in keep))


def open_workdir(workdir: pathlib.Path, cfg_dict: dict) -> pathlib.Path:
  """Checks `workdir` is writable and holds this config (writing config.json on first use); returns its checkpoints/ path.

  Raises:
    ValueError: `workdir` holds a run with a different config.
    WorkdirError: `workdir` or its checkpoints/ cannot be written.
  """
  check_writable(workdir)
  cfg_path = workdir / "config.json"
  if cfg_path.exists():
    saved = json.loads(cfg_path.read_text())
    if saved != json.loads(json.dumps(cfg_dict)):
      raise ValueError(f"{cfg_path} holds a different config; use a new workdir or the same config.")
  else:
    try:  # Atomic: the processes of a multi-process run may write the same config at once.
      write_atomic(cfg_path, json.dumps(cfg_dict, indent=1))
    except OSError as e:
      raise WorkdirError(f"Cannot write {cfg_path}: {e.strerror or e}.") from e
  checkpoints = (workdir / "checkpoints").absolute()
  check_writable(checkpoints)
  return checkpoints


def restore_latest(manager: ocp.CheckpointManager, state: dict, mesh) -> tuple[dict, dict | None]:
  """(state, meta) of the manager's latest checkpoint, or (state placed on the mesh, None) when it has none.

  `state` gives the pytree's structure, shapes and dtypes; the restored arrays are replicated over `mesh`.
  """
  replicated = NamedSharding(mesh, P())
  latest = manager.latest_step()
  if latest is None:
    return jax.device_put(state, replicated), None
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), state)
  restored = manager.restore(
      latest, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
  return restored["state"], restored["meta"]


def save_checkpoint(manager: ocp.CheckpointManager, step: int, state: dict, meta: dict) -> None:
  """Writes the step's checkpoint (state and JSON meta) and waits for it.

  Raises:
    WorkdirError: the checkpoint directory cannot be written, or orbax failed to save.
  """
  directory = pathlib.Path(manager.directory)
  check_writable(directory)
  try:
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                 force=True)
    manager.wait_until_finished()
  except Exception as e:  # orbax raises many types (OSError, ValueError, its own) for a failed write.
    raise WorkdirError(f"Saving the step-{step} checkpoint to {directory} failed: {type(e).__name__}: {e}") from e
