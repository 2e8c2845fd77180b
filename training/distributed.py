"""Multi-process data-parallel training: one JAX process per host (or per GPU), one global batch.

P processes join one JAX runtime with `jax.distributed.initialize`
(`initialize`); the device mesh is 1-D ("data") over all devices of all
processes, ordered by process (training/step.py, `make_mesh`), so process p owns a contiguous
block of the global batch's rows (`local_rows`). Each process generates only
its shard of every global batch (training/data.py, `make_batch(shard=,
num_shards=)`: batch i is a pure function of (seed, i), so the shards are
rows of the same batch the one-process run draws) and `assemble` joins the
shards into global arrays with `jax.make_array_from_process_local_data`.
Parameters and optimizer state are replicated; XLA all-reduces the gradient
across processes (gloo on CPU, NCCL on GPU, ICI on TPU).

The data position is the index of the next global batch, the same on every
process, so one integer in the checkpoint resumes every shard; and as the
shard a process reads is a slice of the global batch, a run resumes with
another number of processes on the same global batch.

Side effects are the primary process's (process 0): config.json,
metrics.jsonl, held-out evaluation, exports. Every process calls the
orbax checkpoint save and restore (orbax writes each replicated array once).

Letters: B global batch (examples), P processes, D devices of all processes.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

AUTO = "auto"  # Cluster.coordinator: let jax detect the cluster (Cloud TPU pods, SLURM, Open MPI, Kubernetes).


@dataclasses.dataclass(frozen=True)
class Cluster:
  """Where this process sits in a multi-process run (not part of the run's config: a run resumes on any cluster)."""

  coordinator: str = ""  # "HOST:PORT" of process 0's coordinator service, AUTO, or "" (one process, no runtime).
  num_processes: int = 1  # P: processes in the run (with "HOST:PORT").
  process_id: int = 0  # This process's index in [0, P) (with "HOST:PORT"); process 0 hosts the coordinator.

  def __post_init__(self):
    if self.coordinator and self.coordinator != AUTO:
      host, sep, port = self.coordinator.rpartition(":")
      if not (sep and host and port.isdigit()):
        raise ValueError(f"coordinator must be HOST:PORT (e.g. 127.0.0.1:1234) or {AUTO!r}, got {self.coordinator!r}.")
      if not (self.num_processes >= 1 and 0 <= self.process_id < self.num_processes):
        raise ValueError(f"process_id must lie in [0, num_processes) with num_processes >= 1, got process_id="
                         f"{self.process_id}, num_processes={self.num_processes}.")
    elif (self.num_processes, self.process_id) != (1, 0) and not self.coordinator:
      raise ValueError(f"num_processes={self.num_processes} / process_id={self.process_id} need a coordinator "
                       "(HOST:PORT of process 0).")


def initialize(cluster: Cluster) -> None:
  """Joins the multi-process JAX runtime of `cluster` (nothing for one process); call before any JAX computation.

  Blocks until all P processes have joined (jax's default timeout: 5 minutes).

  Raises:
    RuntimeError: jax's backends are already initialized, or the coordinator cannot be reached.
  """
  if not cluster.coordinator:
    return
  if cluster.coordinator == AUTO:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address=cluster.coordinator, num_processes=cluster.num_processes,
                               process_id=cluster.process_id)


def is_primary() -> bool:
  """Whether this is process 0, the one that writes config.json, metrics.jsonl and exports."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def rows_of_process(batch_size: int, device_processes, process: int) -> slice:
  """The rows of a global batch of `batch_size` that `process` feeds on a 1-D mesh.

  device_processes: the process index of each mesh device in mesh order (D of them); device j holds rows
    j * B / D .. (j + 1) * B / D - 1.

  Raises:
    ValueError: B does not divide by D, `process` has no device, or its devices are not one contiguous block.
  """
  owners = list(device_processes)
  d = len(owners)
  if not d or batch_size % d:
    raise ValueError(f"batch_size={batch_size} must divide by the {d} devices of all processes.")
  mine = [j for j, p in enumerate(owners) if p == process]
  if not mine:
    raise ValueError(f"process {process} has no device on the mesh (device processes {owners}).")
  if mine != list(range(mine[0], mine[-1] + 1)):
    raise ValueError(f"process {process}'s devices are not contiguous on the mesh (device processes {owners}); "
                     "build it with training.step.make_mesh().")
  per_device = batch_size // d
  return slice(mine[0] * per_device, (mine[-1] + 1) * per_device)


def data_shard(batch_size: int, mesh: jax.sharding.Mesh) -> tuple[int, int]:
  """(shard, num_shards) of this process: its rows of every global batch are shard `shard` of `num_shards` equal ones.

  Raises:
    ValueError: as `rows_of_process`, or the processes own unequal numbers of devices.
  """
  owners = [dev.process_index for dev in mesh.devices.flat]
  rows = rows_of_process(batch_size, owners, jax.process_index())
  counts = {owners.count(p) for p in set(owners)}
  if len(counts) != 1:
    raise ValueError(f"every process must own as many mesh devices; device processes {owners}.")
  size = rows.stop - rows.start
  return rows.start // size, batch_size // size


def assemble(local_tree, mesh: jax.sharding.Mesh, batch_size: int):
  """Global arrays, sharded over "data" along axis 0, from this process's rows of every leaf.

  local_tree: a pytree of arrays [B / P, ...] (this process's `data_shard` of the global batch); returns the
    same tree of jax.Arrays [B, ...] with the dtypes kept.
  """
  sharding = NamedSharding(mesh, P("data"))

  def one(a):
    a = np.asarray(a)
    return jax.make_array_from_process_local_data(sharding, a, (batch_size, *a.shape[1:]))

  return jax.tree.map(one, local_tree)


def to_local(tree):
  """The tree with every replicated global jax.Array replaced by its copy on this process's first device.

  For computations one process runs alone (evaluation, export): an op on a global array would wait for the
  other processes. Arrays already fully addressable are returned as they are.
  """
  def one(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if not a.is_fully_replicated:
        raise ValueError(f"to_local needs replicated arrays, got one sharded as {a.sharding}.")
      return a.addressable_data(0)
    return a

  return jax.tree.map(one, tree)


def add_flags(p) -> None:
  """Adds --data-workers and the cluster flags (--coordinator, --num-processes, --process-id) to the argparse `p`."""
  p.add_argument("--data-workers", type=int, default=None, help="grain worker processes generating batches "
                 "(default: the preset's, else 0: in the training process); the batches are the same for any number")
  g = p.add_argument_group("multi-process training (training/distributed.py; not part of the run's config)")
  g.add_argument("--coordinator", default="", help="HOST:PORT of process 0's coordinator (e.g. 127.0.0.1:1234), "
                 "or 'auto' to let jax detect the cluster (Cloud TPU, SLURM, Open MPI); default: one process")
  g.add_argument("--num-processes", type=int, default=1, help="processes in the run (with --coordinator HOST:PORT)")
  g.add_argument("--process-id", type=int, default=0, help="this process's index in [0, --num-processes)")


def join_cluster(args) -> None:
  """Joins the multi-process run that --coordinator/--num-processes/--process-id describe (once; before any JAX).

  Raises SystemExit with the message for flags that do not describe a cluster.
  """
  try:
    cluster = Cluster(args.coordinator, args.num_processes, args.process_id)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  if cluster.coordinator:
    if not jax.distributed.is_initialized():
      initialize(cluster)


def data_workers(args) -> int:
  """--data-workers, or the preset's number when not given (0 for default and tiny)."""
  from optformer.training import presets

  if args.data_workers is not None:
    if args.data_workers < 0:
      raise SystemExit(f"--data-workers must be >= 0, got {args.data_workers}.")
    return args.data_workers
  return presets.PRESETS[args.preset].data_workers if args.preset in presets.PRESETS else 0
