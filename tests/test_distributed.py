"""Multi-process training: which rows each process feeds, the global batch it assembles, bf16 compute, presets.

The two-process run itself (jax.distributed on 127.0.0.1, a kill and a resume) is the slow test at the end;
`make smoke-distributed` runs the same and prints both final losses.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from optformer.model.network import create_model
from optformer.training import distributed, presets
from optformer.training.data import PFNDataConfig, batch_iterator, dataset, make_batch
from optformer.training.step import make_mesh, set_compute_dtype
from optformer.training.train import PFNTrainConfig, loss_fn

BORDERS = np.linspace(-3, 3, 33)


@pytest.mark.parametrize("batch_size, owners, process, rows", [
    (4, [0], 0, (0, 4)),
    (4, [0, 1], 0, (0, 2)),
    (4, [0, 1], 1, (2, 4)),
    (16, [0, 0, 1, 1, 2, 2, 3, 3], 2, (8, 12)),  # 4 hosts of 2 chips.
    (8, [0, 0, 0, 0, 1, 1, 1, 1], 1, (4, 8)),
])
def test_each_process_feeds_the_rows_of_its_devices(batch_size, owners, process, rows):
  got = distributed.rows_of_process(batch_size, owners, process)
  assert (got.start, got.stop) == rows


@pytest.mark.parametrize("batch_size, owners, process, message", [
    (6, [0, 0, 1, 1], 0, "must divide by the 4 devices"),
    (4, [0, 1, 0, 1], 0, "not contiguous"),
    (4, [0, 1], 2, "has no device"),
])
def test_a_mesh_that_cannot_split_the_batch_by_process_is_refused(batch_size, owners, process, message):
  with pytest.raises(ValueError, match=message):
    distributed.rows_of_process(batch_size, owners, process)


def test_the_shards_of_two_processes_are_the_rows_of_the_one_process_batch():
  """What makes P processes train on the one-process run's batches: process p's shard = its rows of batch i."""
  cfg = PFNDataConfig.tiny()
  whole, bars, *_ = make_batch(cfg, BORDERS, 8, 7)
  for process in range(2):
    rows = distributed.rows_of_process(cfg.batch_size, [0, 1], process)
    shard, num_shards = rows.start // (rows.stop - rows.start), cfg.batch_size // (rows.stop - rows.start)
    part, part_bars, *_ = make_batch(cfg, BORDERS, 8, 7, shard=shard, num_shards=num_shards)
    for a, b in zip(part, whole):
      np.testing.assert_array_equal(a, b[rows])
    np.testing.assert_array_equal(part_bars, bars[rows])


def test_one_process_assembles_its_rows_into_the_global_batch():
  mesh = make_mesh()
  assert [d.process_index for d in mesh.devices.flat] == sorted(d.process_index for d in jax.devices())
  assert distributed.data_shard(4 * mesh.size, mesh) == (0, 1)
  local = {"x": np.arange(4 * mesh.size * 3, dtype=np.float32).reshape(-1, 3), "m": np.ones(4 * mesh.size, bool)}
  out = distributed.assemble(local, mesh, 4 * mesh.size)
  for k in local:
    assert out[k].dtype == local[k].dtype and out[k].sharding.spec == P("data")
    np.testing.assert_array_equal(np.asarray(out[k]), local[k])
  assert distributed.to_local(out) is not None and distributed.to_local(out)["x"] is out["x"]  # Addressable already.


@pytest.mark.parametrize("kwargs, message", [
    (dict(coordinator="localhost"), "HOST:PORT"),
    (dict(coordinator="10.0.0.1:80", num_processes=2, process_id=2), "process_id must lie"),
    (dict(num_processes=2, process_id=1), "need a coordinator"),
])
def test_a_cluster_that_cannot_be_joined_is_refused_with_its_values(kwargs, message):
  with pytest.raises(ValueError, match=message):
    distributed.Cluster(**kwargs)


def test_one_process_needs_no_runtime():
  distributed.initialize(distributed.Cluster())  # No coordinator: nothing to join.
  assert distributed.is_primary()
  distributed.barrier("one process")  # Returns at once.


def test_the_data_stream_resumes_at_a_position():
  cfg = PFNDataConfig.tiny()
  it = batch_iterator(dataset(cfg, BORDERS, 8), start=3)
  for index in (3, 4):
    batch, bars = next(it)
    np.testing.assert_array_equal(batch.x, make_batch(cfg, BORDERS, 8, index)[0].x)


def test_bf16_compute_keeps_float32_master_weights_and_a_float32_loss():
  cfg = PFNTrainConfig.tiny(BORDERS)
  batch, bars, *_ = make_batch(cfg.data, BORDERS, cfg.model.num_slot_ids, 0)
  f32 = create_model(cfg.model, 0)
  bf16 = set_compute_dtype(create_model(cfg.model, 0), "bfloat16")
  dtypes = {path[-1]: m.dtype for path, m in nnx.iter_modules(bf16) if isinstance(m, nnx.Linear) and path}
  assert dtypes["head"] is None and dtypes["q"] == jnp.bfloat16  # Output head in float32, the blocks in bf16.
  assert {a.dtype for a in jax.tree.leaves(nnx.state(bf16, nnx.Param))} == {jnp.dtype(jnp.float32)}
  logits = bf16(batch)
  assert logits.dtype == jnp.float32
  loss32, loss16 = float(loss_fn(f32, batch, bars)[0]), float(loss_fn(bf16, batch, bars)[0])
  assert loss16 != loss32 and loss16 == pytest.approx(loss32, rel=0.02)  # Rounded matmuls, the same model.
  with pytest.raises(ValueError, match="float16"):
    set_compute_dtype(f32, "float16")


def test_compute_dtype_is_a_config_field_that_round_trips():
  cfg = dataclasses.replace(PFNTrainConfig.tiny(BORDERS), compute_dtype="bfloat16")
  assert PFNTrainConfig.from_dict(cfg.to_dict()) == cfg
  assert "compute_dtype" not in PFNTrainConfig.tiny(BORDERS).to_dict()  # Older runs' configs stay equal.
  with pytest.raises(ValueError, match="compute_dtype"):
    dataclasses.replace(cfg, compute_dtype="fp8")


@pytest.mark.parametrize("name, chips", [("gpu", 1), ("pod", 16)])
def test_accelerator_presets_are_valid_runs_that_split_over_their_chips(name, chips):
  p = presets.get(name)
  cfg = p.config()
  assert PFNTrainConfig.from_dict(cfg.to_dict()) == cfg
  assert cfg.compute_dtype == "bfloat16" and cfg.data.batch_size % chips == 0 and p.data_workers > 0
  assert max(cfg.data.seq_lens) <= cfg.model.max_context and cfg.model.d_model % cfg.model.num_heads == 0
  with pytest.raises(ValueError, match="the presets are .*gpu, pod"):
    presets.get("tpu")


@pytest.mark.slow
def test_two_processes_reproduce_one_and_resume_after_a_kill(tmp_path):
  from optformer.training import smoke_distributed

  s = smoke_distributed.run(tmp_path, steps=40, kill_after=10)
  assert s["resumed_from"] >= 10 and s["resumed_from"] % 5 == 0  # At a checkpoint, not from scratch.
  assert s["steps_compared"] == 8 and max(s["two_processes"]) == 40
  assert s["max_rel_gap"] < 1e-3, s
  assert s["one_process"][40] != s["one_process"][5]  # Training moved the loss: the comparison is not vacuous.


def test_the_train_command_refuses_cluster_flags_that_describe_no_cluster():
  from optformer.training import train_cli

  p = train_cli.parser()
  for flags, message in ((["--coordinator", "host0"], "HOST:PORT"), (["--num-processes", "2"], "need a coordinator"),
                         (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "5"], "process_id must")):
    with pytest.raises(SystemExit, match=message):
      distributed.join_cluster(p.parse_args(["--workdir", "w", *flags]))
  distributed.join_cluster(p.parse_args(["--workdir", "w"]))  # One process: nothing to join.
  workers = lambda *flags: distributed.data_workers(p.parse_args(["--workdir", "w", *flags]))
  assert (workers(), workers("--preset", "gpu"), workers("--preset", "gpu", "--data-workers", "3")) == (0, 12, 3)
  with pytest.raises(SystemExit, match="--data-workers must be >= 0"):
    workers("--data-workers", "-1")
