"""Meta-training: one pure jitted train step, and the loop around it.

The step is data parallel over a 1-D device mesh ("data"): the batch is
split over devices along its first axis, parameters and optimizer state are
replicated, and XLA inserts the gradient all-reduce. On one CPU it is just a
jitted function. The loop adds the side effects: orbax checkpoints (params,
optimizer state, step and data position), held-out evaluation, a tqdm
progress bar and a JSONL metrics log. A non-finite loss raises.

The workdir and its checkpoint directory are checked for writing when the
Trainer is built and before every checkpoint, so an unwritable directory is
a `WorkdirError` at once: orbax, when a save fails inside it, logs the error
and leaves a thread that keeps the process alive forever. On resume,
metrics.jsonl loses its rows after the restored step (a run killed between
a log line and its checkpoint would otherwise list those steps twice).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import tempfile
import time
from typing import Callable

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from optformer.model import Batch, ModelConfig, create_model
from optformer.study_files import write_atomic
from optformer.training.data import BatchIterator, DataConfig
from optformer.training.loss import loss_fn, y_nll_per_trial


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimization and bookkeeping of one training run."""

  model: ModelConfig = ModelConfig()
  data: DataConfig = DataConfig()
  num_steps: int = 7_000  # Total optimizer steps (the cosine schedule's length).
  peak_learning_rate: float = 1e-3  # After linear warmup.
  warmup_steps: int = 300  # Linear warmup from 0.
  final_learning_rate_fraction: float = 0.05  # Cosine decays to this fraction of the peak.
  weight_decay: float = 0.01  # AdamW decoupled weight decay.
  grad_clip_norm: float = 1.0  # Global-norm gradient clipping.
  policy_weight: float = 1.0  # Weight of the policy (x) loss next to the surrogate (y) loss.
  log_every: int = 50  # Steps between metrics-log lines.
  eval_every: int = 1000  # Steps between held-out evaluations.
  eval_batches: int = 8  # Held-out batches per evaluation.
  checkpoint_every: int = 250  # Steps between checkpoints.
  keep_checkpoints: int = 3  # Checkpoints kept on disk.

  @classmethod
  def tiny(cls) -> "TrainConfig":
    return cls(
        model=ModelConfig.tiny(), data=DataConfig.tiny(), num_steps=20, warmup_steps=2, log_every=5,
        eval_every=10, eval_batches=1, checkpoint_every=5,
    )

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "TrainConfig":
    d = dict(d)
    return cls(model=ModelConfig.from_dict(d.pop("model")), data=DataConfig(**d.pop("data")), **d)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  """AdamW with linear warmup and cosine decay, after global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.peak_learning_rate, warmup_steps=cfg.warmup_steps,
      decay_steps=max(cfg.num_steps, cfg.warmup_steps + 1), end_value=cfg.peak_learning_rate * cfg.final_learning_rate_fraction,
  )
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), optax.adamw(schedule, weight_decay=cfg.weight_decay))


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """1-D mesh named "data" over `devices` (default: all)."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  return jax.sharding.Mesh(devices, ("data",))


def jit_step(train_step, mesh) -> Callable:
  """jax.jit of a step (params, opt_state, batch, extra) -> (params, opt_state, metrics), state donated.

  On a mesh of several devices the batch and the extra input are sharded over
  "data" and the rest replicated. On one device no shardings are given:
  measured on a 2-core CPU, explicit shardings over a 1-device mesh made
  the v2 train step 8x slower (1.74 s vs 0.22 s).
  """
  if mesh.size == 1:
    return jax.jit(train_step, donate_argnums=(0, 1))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  return jax.jit(train_step, in_shardings=(replicated, replicated, sharded, sharded),
                 out_shardings=(replicated, replicated, replicated), donate_argnums=(0, 1))


def make_train_step(graphdef, tx: optax.GradientTransformation, cfg: TrainConfig, mesh) -> Callable:
  """Returns jitted train_step(params, opt_state, batch, policy_index) -> (params, opt_state, metrics).

  params and opt_state are pure pytrees, replicated and donated; batch and
  policy_index are sharded over the mesh's "data" axis (batch size must
  divide by the number of devices).
  """

  def train_step(params, opt_state, batch: Batch, policy_index):
    return optimizer_step(lambda p: loss_fn(nnx.merge(graphdef, p), batch, policy_index, cfg.policy_weight),
                          tx, params, opt_state)

  return jit_step(train_step, mesh)


def optimizer_step(objective, tx: optax.GradientTransformation, params, opt_state):
  """One update on objective(params) -> (loss, metrics): (params, opt_state, metrics with grad_norm)."""
  (_, metrics), grads = jax.value_and_grad(objective, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  return params, opt_state, dict(metrics, grad_norm=optax.tree.norm(grads))


def fresh_state(model, tx: optax.GradientTransformation):
  """(graphdef, params pure dict, tx, opt_state) of a freshly built nnx model."""
  graphdef, state = nnx.split(model)
  params = nnx.to_pure_dict(state)
  return graphdef, params, tx, tx.init(params)


def init_state(cfg: TrainConfig, seed: int = 0):
  """(graphdef, params pure dict, optimizer, opt_state) of a fresh model."""
  return fresh_state(create_model(cfg.model, seed), make_optimizer(cfg))


def evaluate(graphdef, params, batches) -> dict:
  """Held-out surrogate NLL (nats per trial, mean over trials and studies)."""
  fn = jax.jit(lambda p, b: y_nll_per_trial(nnx.merge(graphdef, p), b))
  vals = [np.asarray(fn(params, b)) for b, _ in batches]
  return {"eval_y_nll": float(np.mean(vals))}


def _as_jax(batch: Batch, policy_index, sharding) -> tuple[Batch, jax.Array]:
  put = lambda a: jax.device_put(np.asarray(a), sharding)
  return Batch(*map(put, batch)), put(policy_index)


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
    try:
      cfg_path.write_text(json.dumps(cfg_dict, indent=1))
    except OSError as e:
      raise WorkdirError(f"Cannot write {cfg_path}: {e.strerror or e}.") from e
  checkpoints = (workdir / "checkpoints").absolute()
  check_writable(checkpoints)
  return checkpoints


def restore_latest(manager: ocp.CheckpointManager, state: dict, mesh) -> tuple[dict, dict | None]:
  """(state, meta) of the manager's latest checkpoint, or (state placed on the mesh, None) when it has none."""
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


class Trainer:
  """Runs (and resumes) training of a model on a corpus.

  Args:
    cfg: the run's TrainConfig (saved as config.json in `workdir`).
    workdir: holds checkpoints/, metrics.jsonl and config.json.
    train_source / eval_source: random-access record sources (data_gen).

  Raises:
    ValueError: `workdir` holds a run with a different config.
    WorkdirError: `workdir` or its checkpoints/ cannot be written (also from
      `run` and `save`, before a checkpoint or a metrics line is written).
  """

  def __init__(self, cfg: TrainConfig, workdir, train_source, eval_source=None, devices=None):
    self.cfg, self.workdir = cfg, pathlib.Path(workdir)
    checkpoints = open_workdir(self.workdir, cfg.to_dict())
    self.mesh = make_mesh(devices)
    if cfg.data.batch_size % self.mesh.size:
      raise ValueError(f"batch_size={cfg.data.batch_size} must divide by the {self.mesh.size} devices.")
    self.graphdef, params, self.tx, opt_state = init_state(cfg)
    self.manager = ocp.CheckpointManager(
        checkpoints, options=ocp.CheckpointManagerOptions(max_to_keep=cfg.keep_checkpoints, create=True))
    state, meta = restore_latest(self.manager, {"params": params, "opt_state": opt_state}, self.mesh)
    self.step, position = (int(meta["step"]), int(meta["data_position"])) if meta else (0, 0)
    self.params, self.opt_state = state["params"], state["opt_state"]
    drop_metrics_after(self.workdir / "metrics.jsonl", self.step)
    self.batches = BatchIterator(train_source, cfg.model.tokenizer, cfg.data, position=position)
    self.eval_source = eval_source
    self.train_step = make_train_step(self.graphdef, self.tx, cfg, self.mesh)
    self.batch_sharding = NamedSharding(self.mesh, P("data"))

  def save(self, metrics: dict | None = None):
    """Writes a checkpoint of the current step and waits for it.

    Raises:
      WorkdirError: the checkpoint directory cannot be written, or orbax failed to save.
    """
    meta = {"step": self.step, "data_position": self.batches.position, "metrics": metrics or {}}
    save_checkpoint(self.manager, self.step, {"params": self.params, "opt_state": self.opt_state}, meta)

  def eval_batches(self):
    cfg = self.cfg
    eval_cfg = dataclasses.replace(cfg.data, seed=cfg.data.seed + 10_000)
    it = BatchIterator(self.eval_source, cfg.model.tokenizer, eval_cfg)
    return [next(it) for _ in range(cfg.eval_batches)]

  def run(self, num_steps: int | None = None, progress: bool = True) -> list[dict]:
    """Trains until step `num_steps` (default cfg.num_steps); returns logged metrics."""
    from tqdm import tqdm

    cfg = self.cfg
    target = cfg.num_steps if num_steps is None else num_steps
    log_path = self.workdir / "metrics.jsonl"
    eval_data = self.eval_batches() if self.eval_source is not None else None
    logged, acc, t_last, tokens_per_step = [], [], time.time(), None
    bar = tqdm(total=target, initial=self.step, disable=not progress, desc="train")
    while self.step < target:
      batch, policy_index = next(self.batches)
      tokens_per_step = tokens_per_step or int(batch.trial_mask.sum())
      self.params, self.opt_state, metrics = self.train_step(
          self.params, self.opt_state, *_as_jax(batch, policy_index, self.batch_sharding)
      )
      self.step += 1
      acc.append(metrics)
      bar.update(1)
      if self.step % cfg.log_every == 0 or self.step == target:
        row = {k: float(np.mean([float(m[k]) for m in acc])) for k in acc[0]}
        if not all(math.isfinite(v) for v in row.values()):
          raise FloatingPointError(f"Non-finite metrics at step {self.step}: {row}")
        dt = time.time() - t_last
        row.update(step=self.step, trials_per_s=len(acc) * tokens_per_step / dt, seconds_per_step=dt / len(acc))
        if eval_data is not None and (self.step % cfg.eval_every == 0 or self.step == target):
          row.update(evaluate(self.graphdef, self.params, eval_data))
        try:
          with log_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        except OSError as e:
          raise WorkdirError(f"Cannot write {log_path}: {e.strerror or e}.") from e
        logged.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", y_nll=f"{row['y_nll']:.3f}")
        acc, t_last = [], time.time()
      if self.step % cfg.checkpoint_every == 0 or self.step == target:
        self.save(logged[-1] if logged else None)
    bar.close()
    return logged
