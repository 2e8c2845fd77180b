"""Meta-training of model v2 (optformer.model.network) on prior examples generated on the fly.

One pure jitted `train_step(params, opt_state, batch, targets)`, data
parallel over a 1-D "data" mesh as in training/step.py, over the devices of
one process or of several (training/distributed.py: each process generates
its shard of every global batch; process 0 alone logs, evaluates and
exports); the loop around it
adds the side effects: orbax checkpoints of params, optimizer state, step
and the data position (the next global batch's index), held-out evaluation
against the exact GP (training/evaluate.py), a JSONL metrics log (rows after
the resumed step are dropped on resume, so no step is listed twice) and a
progress bar. A non-finite loss raises.

Warm start: a new workdir can start from an exported model directory
(`init_from`): its parameters, step and data position; the optimizer state
starts fresh at those parameters (schedule-free AdamW's iterate z too). A model without a policy head warm-starts a run with one (the
head starts fresh).

Policy (`data.policy_rows` > 0 and a model with `policy_tokens` > 0): the
loss is the bar loss plus `policy_weight` times the policy's any-order
behaviour-cloning cross-entropy (training/data.py, "Policy rows").
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from optformer.model.network import PFNConfig, PFNSurrogate, PolicyRows, SurrogateBatch, create_model, value_tokens
from optformer.training import distributed
from optformer.training.data import GPTargets, PFNDataConfig, WithPolicy, batch_iterator, dataset
from optformer.training.step import fresh_state, jit_step, make_mesh, optimizer_step, set_compute_dtype
from optformer.training.workdir import drop_metrics_after, open_workdir, restore_latest, save_checkpoint


@dataclasses.dataclass(frozen=True)
class PFNTrainConfig:
  """Optimization and bookkeeping of one v2 training run."""

  model: PFNConfig = PFNConfig()
  data: PFNDataConfig = PFNDataConfig()
  optimizer: str = "schedule_free_adamw"  # Or "adamw" (warmup + cosine) or "muon" (optax.contrib); docs/model_v2.md.
  num_steps: int = 200_000  # Total optimizer steps (the cosine schedule's length; schedule-free needs none).
  peak_learning_rate: float = 3e-3  # After linear warmup.
  warmup_steps: int = 500  # Linear warmup from 0.
  final_learning_rate_fraction: float = 0.05  # Cosine decays to this fraction (adamw, muon).
  weight_decay: float = 0.01  # Decoupled weight decay.
  grad_clip_norm: float = 1.0  # Global-norm gradient clipping.
  log_every: int = 50  # Steps between metrics-log lines.
  eval_every: int = 1000  # Steps between held-out evaluations.
  eval_batches: int = 4  # Held-out batches per context size.
  eval_contexts: tuple = (5, 10, 20, 40, 100, 200)  # Context sizes of the held-out evaluation (at most max_context).
  # The prior of the held-out examples (training/evaluate.py, EVAL_PRIORS): "reference" (the project's reference GP
  # prior, the same examples for every run), "reference-noiseless" (its functions, near-noiseless), "tiny" (for models with few slots) or "training" (the run's own prior;
  # configs saved without this field have it).
  eval_prior: str = "reference"
  checkpoint_every: int = 250  # Steps between checkpoints.
  keep_checkpoints: int = 2  # Checkpoints kept on disk.
  seed: int = 0  # The model's initialization (the data's seed is data.seed); runs of older configs have 0.
  policy_weight: float = 1.0  # Weight of the policy loss (used when data.policy_rows > 0).
  policy_learning_rate_multiplier: float = 1.0  # The policy head's rate / the rest's (adamw, muon).
  freeze_surrogate: bool = False  # Train the policy head only (the surrogate's predictions stay exactly as they were).
  # The dtype of the model's matmuls in training: "float32" or "bfloat16" (parameters, optimizer state and the
  # output heads stay float32: training/step.py, `set_compute_dtype`); exports are float32 models either way.
  compute_dtype: str = "float32"

  @classmethod
  def tiny(cls, borders=None) -> "PFNTrainConfig":
    return cls(model=PFNConfig.tiny(borders), data=PFNDataConfig.tiny(), num_steps=20, warmup_steps=2, log_every=5,
               eval_every=10, eval_batches=1, eval_contexts=(5, 10, 20, 40), eval_prior="tiny", checkpoint_every=5)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["model"], d["data"] = self.model.to_dict(), self.data.to_json()
    d["eval_contexts"] = list(self.eval_contexts)
    if not d["seed"]:
      del d["seed"]  # Configs of runs from before the seed knob existed stay equal.
    if not self.data.policy_rows:
      del d["policy_weight"], d["policy_learning_rate_multiplier"]
    if not self.freeze_surrogate:
      del d["freeze_surrogate"]
    if self.compute_dtype == "float32":
      del d["compute_dtype"]  # Configs of runs from before the knob stay equal.
    if self.eval_prior == "training":
      del d["eval_prior"]  # Configs of runs from before the evaluation prior stay equal.
    return d

  def __post_init__(self):
    if self.compute_dtype not in ("float32", "bfloat16"):
      raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {self.compute_dtype!r}.")
    if self.data.policy_rows and not self.model.policy_tokens:
      raise ValueError(f"data.policy_rows={self.data.policy_rows} needs a model with a policy head (policy_tokens > 0).")
    if (self.policy_learning_rate_multiplier != 1.0 or self.freeze_surrogate) and self.optimizer == "schedule_free_adamw":
      raise ValueError("policy_learning_rate_multiplier and freeze_surrogate need optimizer 'adamw' or 'muon', "
                       "not schedule_free_adamw.")
    if not (self.policy_weight >= 0 and self.policy_learning_rate_multiplier > 0):
      raise ValueError(f"policy_weight must be >= 0 and policy_learning_rate_multiplier > 0, got "
                       f"{self.policy_weight}, {self.policy_learning_rate_multiplier}.")
    if min(self.log_every, self.eval_every, self.checkpoint_every, self.eval_batches, self.keep_checkpoints) < 1:
      raise ValueError(f"log_every, eval_every, checkpoint_every, eval_batches and keep_checkpoints must be >= 1, got "
                       f"{self.log_every}, {self.eval_every}, {self.checkpoint_every}, {self.eval_batches}, "
                       f"{self.keep_checkpoints}.")
    from optformer.training.evaluate import check_eval

    m = self.model
    check_eval(self.eval_prior, self.eval_contexts, m.num_slot_ids, m.max_categories, m.max_context)

  @classmethod
  def from_dict(cls, d: dict) -> "PFNTrainConfig":
    d = dict(d)
    m, data = PFNConfig.from_dict(d.pop("model")), PFNDataConfig.from_json(d.pop("data"))
    d.setdefault("eval_prior", "training")  # Runs from before the evaluation prior were scored on their own.
    return cls(model=m, data=data, **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def make_optimizer(cfg: PFNTrainConfig) -> optax.GradientTransformation:
  """The run's optimizer after global-norm clipping.

  adamw / muon: linear warmup then cosine decay to the final fraction;
  schedule_free_adamw: constant rate after warmup (Defazio et al., "The Road
  Less Scheduled", NeurIPS 2024); evaluate its `eval_params`.

  Raises:
    ValueError: an unknown optimizer name.
  """
  if cfg.optimizer not in ("adamw", "schedule_free_adamw", "muon"):
    raise ValueError(f"optimizer must be 'adamw', 'schedule_free_adamw' or 'muon', got {cfg.optimizer!r}.")

  def rule(lr):
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=cfg.warmup_steps,
        decay_steps=max(cfg.num_steps, cfg.warmup_steps + 1), end_value=lr * cfg.final_learning_rate_fraction,
    )
    if cfg.optimizer == "adamw":
      return optax.adamw(schedule, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "schedule_free_adamw":
      return optax.contrib.schedule_free_adamw(lr, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay)
    return optax.contrib.muon(schedule, weight_decay=cfg.weight_decay, adam_weight_decay=cfg.weight_decay)

  lr = cfg.peak_learning_rate
  if cfg.policy_learning_rate_multiplier == 1.0 and not cfg.freeze_surrogate:
    tx = rule(lr)
  else:  # The policy head's own rate (a new head on a warm-started backbone learns faster), or the head alone.
    labels = lambda params: {k: jax.tree.map(lambda _: "policy" if k in POLICY_PARAMS else "rest", v)
                             for k, v in params.items()}
    rest = optax.set_to_zero() if cfg.freeze_surrogate else rule(lr)
    tx = optax.multi_transform({"rest": rest, "policy": rule(lr * cfg.policy_learning_rate_multiplier)}, labels)
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)


POLICY_PARAMS = ("undecoded", "y_policy", "policy_slot", "policy_hidden", "policy_out", "copy_q", "copy_k",
                 "copy_out")  # pfn.PFNSurrogate's policy head.


def eval_params(cfg: PFNTrainConfig, params, opt_state):
  """The parameters to evaluate and export (schedule-free: its averaged iterate)."""
  if cfg.optimizer == "schedule_free_adamw":
    return optax.contrib.schedule_free_eval_params(opt_state[1], params)
  return params


def soft_bar_targets(gp: GPTargets):
  """float32 [B, N, Y]: the exact GP posterior's mass on each bar, N(mean, std^2) integrated over the bar.

  The outer bars take the tails beyond the inner borders (as `bar.bin_index` does with values).
  """
  inner_BxNxYm1 = (gp.borders_y[:, None, 1:-1] - gp.mean[..., None]) / gp.std[..., None]
  cdf = jax.scipy.special.ndtr(inner_BxNxYm1)
  b, n = gp.mean.shape
  cdf = jnp.concatenate([jnp.zeros((b, n, 1)), cdf, jnp.ones((b, n, 1))], -1)  # [B, N, Y + 1]
  return jnp.diff(cdf, axis=-1)


def policy_loss(logits_BxRxDxV, rows: PolicyRows, kinds_BxD, num_values_BxD):
  """(mean cross-entropy float [] in nats per token, accuracy float []) of the target's tokens on the rows'
  undecoded active slots (any-order behaviour cloning; training/data.py, "Policy rows")."""
  tokens = value_tokens(rows.x, kinds_BxD[:, None], num_values_BxD[:, None], logits_BxRxDxV.shape[-1])
  w = (~rows.decoded & rows.active & (kinds_BxD > 0)[:, None]).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxRxDxV.astype(jnp.float32), tokens)
  hit = (jnp.argmax(logits_BxRxDxV, -1) == tokens).astype(jnp.float32)
  count = jnp.maximum(w.sum(), 1.0)
  return jnp.sum(ce * w) / count, jnp.sum(hit * w) / count


def loss_fn(model: PFNSurrogate, batch: SurrogateBatch, targets, soft_weight: float = 0.0,
            policy_weight: float = 1.0):
  """Mean cross-entropy (nats) over query positions of the bar + infeasible classes (Müller et al. 2022, Eq. 2),
  plus policy_weight times `policy_loss` when the targets carry policy rows.

  targets: bars int32 [B, N], or `GPTargets`: then a feasible query's loss is (1 - soft_weight) times the
  cross-entropy of its drawn bar plus soft_weight times that of the exact GP posterior's bar masses
  (`soft_bar_targets`; training/data.py, "Soft targets"); or `WithPolicy(either, PolicyRows)`.

  Returns (loss float [], metrics dict): loss, bar_loss (and policy_loss, policy_accuracy with policy rows);
  `infeasible_nll`, the part of the loss from the feasible-vs-infeasible decision, is not separated.
  """
  rows = None
  if isinstance(targets, WithPolicy):
    targets, rows = targets
    logits, policy_logits = model.with_policy(batch, rows)
  else:
    logits = model(batch)
  bars = targets.bars if isinstance(targets, GPTargets) else targets
  ce_BxN = optax.softmax_cross_entropy_with_integer_labels(logits, bars)
  if isinstance(targets, GPTargets) and soft_weight > 0:
    y = logits.shape[-1] - 1
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), -1)[..., :y]
    soft_BxN = -jnp.sum(soft_bar_targets(targets) * log_p, -1)
    ce_BxN = jnp.where(bars < y, (1.0 - soft_weight) * ce_BxN + soft_weight * soft_BxN, ce_BxN)
  w = (batch.valid & ~batch.context).astype(jnp.float32)
  loss = jnp.sum(ce_BxN * w) / jnp.maximum(w.sum(), 1.0)
  if rows is None:
    return loss, {"loss": loss, "bar_loss": loss}
  pl, acc = policy_loss(policy_logits, rows, batch.kinds, batch.num_values)
  total = loss + policy_weight * pl
  return total, {"loss": total, "bar_loss": loss, "policy_loss": pl, "policy_accuracy": acc}


def make_train_step(graphdef, tx, mesh, soft_weight: float = 0.0, policy_weight: float = 1.0) -> Callable:
  """Jitted train_step(params, opt_state, batch, targets) -> (params, opt_state, metrics); state donated."""

  def train_step(params, opt_state, batch, targets):
    objective = lambda p: loss_fn(nnx.merge(graphdef, p), batch, targets, soft_weight, policy_weight)
    return optimizer_step(objective, tx, params, opt_state)

  return jit_step(train_step, mesh)


def init_state(cfg: PFNTrainConfig, seed: int | None = None):
  """(graphdef, params pure dict, optimizer, opt_state) of a fresh model, initialized with `seed` (default cfg.seed),
  computing in cfg.compute_dtype."""
  model = set_compute_dtype(create_model(cfg.model, cfg.seed if seed is None else seed), cfg.compute_dtype)
  return fresh_state(model, make_optimizer(cfg))


class PFNTrainer:
  """Runs (and resumes) training of model v2.

  Args:
    cfg: the run's config (saved as config.json in `workdir`).
    workdir: holds checkpoints/, metrics.jsonl and config.json.
    init_from: an exported model directory to warm-start a new workdir from.
    devices: the mesh's devices (default: all devices of all processes; training/distributed.py).
    data_workers: grain worker processes generating batches (0: in this process); results do not depend on it.

  Raises:
    ValueError: `workdir` holds a run with a different config, or `init_from` another model config.
    WorkdirError: `workdir` or its checkpoints/ cannot be written (also from `save`).
  """

  def __init__(self, cfg: PFNTrainConfig, workdir, init_from=None, devices=None, data_workers: int = 0):
    import orbax.checkpoint as ocp

    self.cfg, self.workdir = cfg, pathlib.Path(workdir)
    self.primary = distributed.is_primary()
    if self.primary:  # Writes config.json on first use; the other processes then compare theirs with it.
      checkpoints = open_workdir(self.workdir, cfg.to_dict())
    distributed.barrier("optformer: workdir opened")
    if not self.primary:
      checkpoints = open_workdir(self.workdir, cfg.to_dict())
    self.mesh = make_mesh(devices)
    if cfg.data.batch_size % self.mesh.size:
      raise ValueError(f"batch_size={cfg.data.batch_size} must divide by the {self.mesh.size} devices.")
    self.shard, self.num_shards = distributed.data_shard(cfg.data.batch_size, self.mesh)
    self.graphdef, params, self.tx, opt_state = init_state(cfg)
    # Held-out evaluation runs the model as exported: float32 (the training graph may compute in bfloat16).
    self.eval_graphdef = self.graphdef if cfg.compute_dtype == "float32" else nnx.split(
        nnx.eval_shape(lambda: create_model(cfg.model, 0)))[0]
    self.manager = ocp.CheckpointManager(
        checkpoints, options=ocp.CheckpointManagerOptions(max_to_keep=cfg.keep_checkpoints, create=True))
    state, meta = restore_latest(self.manager, {"params": params, "opt_state": opt_state}, self.mesh)
    if meta is None and init_from is not None:
      from optformer import checkpoint

      model, meta = checkpoint.load_pfn(init_from, with_metadata=True)
      headless = dataclasses.replace(cfg.model, policy_tokens=0, policy_copy=False)
      if model.config != cfg.model and not (model.config == headless and cfg.model.value_input == "fourier"):
        raise ValueError(f"{init_from} has another model config than this run.")
      loaded = {**params, **nnx.to_pure_dict(nnx.state(model))}  # A new policy head keeps its fresh parameters.
      state["params"] = jax.device_put(loaded, NamedSharding(self.mesh, P()))
      # The optimizer state of the loaded parameters: schedule-free AdamW's z iterate starts at them (the fresh
      # model's state would pull every step toward its random initialization).
      state["opt_state"] = jax.device_put(self.tx.init(loaded), NamedSharding(self.mesh, P()))
    meta = meta or {}
    self.step, self.position = int(meta.get("step", 0)), int(meta.get("data_position", 0))
    self.params, self.opt_state = state["params"], state["opt_state"]
    if self.primary:
      drop_metrics_after(self.workdir / "metrics.jsonl", self.step)
    self._ds = dataset(cfg.data, np.asarray(cfg.model.borders), cfg.model.num_slot_ids, self.shard, self.num_shards)
    self.batches = batch_iterator(self._ds, self.position, data_workers)
    self.train_step = make_train_step(self.graphdef, self.tx, self.mesh, cfg.data.soft_target_weight,
                                      cfg.policy_weight)
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    if jax.process_count() > 1:  # This process's rows -> global arrays.
      self.put = lambda tree: distributed.assemble(tree, self.mesh, cfg.data.batch_size)
    else:
      self.put = lambda tree: jax.tree.map(lambda a: jax.device_put(np.asarray(a), self.batch_sharding), tree)

  def save(self, metrics: dict | None = None):
    """Writes a checkpoint of the current step and waits for it (raises WorkdirError when it cannot)."""
    meta = {"step": self.step, "data_position": self.position, "metrics": metrics or {}}
    save_checkpoint(self.manager, self.step, {"params": self.params, "opt_state": self.opt_state}, meta)

  def current_params(self):
    """The parameters to evaluate and export, on this process's devices (`distributed.to_local`)."""
    return eval_params(self.cfg, distributed.to_local(self.params), distributed.to_local(self.opt_state))

  def run(self, num_steps: int | None = None, progress: bool = True, evaluator=None, stop=None) -> list[dict]:
    """Trains until step `num_steps` (default cfg.num_steps); returns logged metrics.

    evaluator: callable(graphdef, params) -> dict of held-out metrics, run every eval_every steps (and at the
      end), whatever log_every is: its metrics join that step's log row. Process 0 alone runs it and logs; it
      gets the float32 model's graphdef whatever cfg.compute_dtype is.
    stop: callable() -> bool, asked after every step: when True, the trainer saves a checkpoint of the step
      (unless it has just saved one) and returns early (a Ctrl-C handler sets it; training/train_cli.py).
    """
    from tqdm import tqdm

    cfg = self.cfg
    target = cfg.num_steps if num_steps is None else num_steps
    log_path = self.workdir / "metrics.jsonl"
    logged, acc, t_last, trials = [], [], time.time(), 0
    bar_ = tqdm(total=target, initial=self.step, disable=not (progress and self.primary), desc="train v2")
    while self.step < target:
      batch, targets = next(self.batches)
      self.position += 1
      trials += int(batch.valid.sum()) * self.num_shards  # Of all processes, from this one's equal-sized shard.
      self.params, self.opt_state, metrics = self.train_step(self.params, self.opt_state, *self.put((batch, targets)))
      self.step += 1
      acc.append(metrics)
      bar_.update(1)
      evaluate = self.primary and evaluator is not None and (self.step % cfg.eval_every == 0 or self.step == target)
      if self.step % cfg.log_every == 0 or self.step == target or evaluate:  # An evaluation is a log row too.
        row = {k: float(np.mean([float(m[k]) for m in acc])) for k in acc[0]}
        if not all(math.isfinite(v) for v in row.values()):
          raise FloatingPointError(f"Non-finite metrics at step {self.step}: {row}")
        dt = time.time() - t_last
        row.update(step=self.step, trials_per_s=trials / dt, seconds_per_step=dt / len(acc))
        if evaluate:
          row.update(evaluator(self.eval_graphdef, self.current_params()))
        if self.primary:
          with log_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        logged.append(row)
        bar_.set_postfix(loss=f"{row['loss']:.3f}")
        acc, t_last, trials = [], time.time(), 0
      if self.step % cfg.checkpoint_every == 0 or self.step == target or (stop is not None and stop()):
        self.save(logged[-1] if logged else None)
        if stop is not None and stop():
          break
    bar_.close()
    return logged
