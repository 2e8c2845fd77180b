"""The run infrastructure under the trainer: workdir checks, metrics on resume, checkpoints, the data-parallel step."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from optformer.training.step import jit_step, make_mesh, optimizer_step
from optformer.training.workdir import (
    WorkdirError, check_writable, drop_metrics_after, open_workdir, restore_latest, save_checkpoint,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_resume_drops_metrics_rows_logged_after_the_restored_step(tmp_path):
  log = tmp_path / "metrics.jsonl"
  rows = "".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 9))
  log.write_text(rows + '{"loss": 1.0, "st')  # "Killed" after logging steps 6-8 and in the middle of a line.
  drop_metrics_after(log, 5)
  assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5]
  before = log.stat().st_mtime_ns
  drop_metrics_after(log, 5)  # Nothing to drop: the file is left alone.
  assert log.stat().st_mtime_ns == before
  drop_metrics_after(tmp_path / "absent.jsonl", 5)  # A run with no log yet.
  assert not (tmp_path / "absent.jsonl").exists()


def test_a_workdir_records_its_config_and_refuses_another(tmp_path):
  checkpoints = open_workdir(tmp_path / "run", {"lr": 0.1, "sizes": (1, 2)})
  assert checkpoints == (tmp_path / "run" / "checkpoints").absolute() and checkpoints.is_dir()
  assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"lr": 0.1, "sizes": [1, 2]}
  assert open_workdir(tmp_path / "run", {"lr": 0.1, "sizes": (1, 2)}) == checkpoints  # The same config: a resume.
  with pytest.raises(ValueError, match="holds a different config"):
    open_workdir(tmp_path / "run", {"lr": 0.2, "sizes": (1, 2)})


def test_an_unwritable_workdir_or_checkpoint_directory_raises_at_once(tmp_path):
  (tmp_path / "a_file").write_text("")
  with pytest.raises(WorkdirError, match=r"Cannot write to .*a_file/run: Not a directory"):
    open_workdir(tmp_path / "a_file" / "run", {})
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "checkpoints").write_text("")  # A file where the checkpoints go.
  with pytest.raises(WorkdirError, match=r"Cannot write to .*run/checkpoints: File exists"):
    open_workdir(tmp_path / "run", {})
  if os.geteuid() != 0:  # Root writes through permission bits.
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    with pytest.raises(WorkdirError, match="Permission denied"):
      check_writable(tmp_path / "ro")


def test_checkpoints_round_trip_and_a_vanished_directory_raises_before_orbax_starts(tmp_path):
  mesh = make_mesh(jax.devices()[:1])
  state = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "opt_state": {"count": np.int32(4)}}
  manager = ocp.CheckpointManager(tmp_path / "checkpoints", options=ocp.CheckpointManagerOptions(create=True))
  fresh, meta = restore_latest(manager, state, mesh)
  assert meta is None and np.array_equal(fresh["params"]["w"], state["params"]["w"])
  save_checkpoint(manager, 7, state, {"step": 7, "data_position": 9})
  zeros = jax.tree.map(np.zeros_like, state)
  restored, meta = restore_latest(manager, zeros, mesh)
  assert meta == {"step": 7, "data_position": 9}
  np.testing.assert_array_equal(restored["params"]["w"], state["params"]["w"])
  assert int(restored["opt_state"]["count"]) == 4
  (tmp_path / "checkpoints").rename(tmp_path / "moved")
  (tmp_path / "checkpoints").write_text("")  # The directory went away during the run; a file is in its place.
  with pytest.raises(WorkdirError, match="checkpoints: File exists"):
    save_checkpoint(manager, 8, state, {"step": 8})


def test_the_optimizer_step_lowers_the_objective_and_reports_the_gradient_norm():
  tx = optax.sgd(0.1)
  params = {"w": jnp.array([3.0, -4.0])}
  objective = lambda p: (jnp.sum(p["w"] ** 2), {"loss": jnp.sum(p["w"] ** 2)})
  step = jit_step(lambda p, s, batch, extra: optimizer_step(objective, tx, p, s), make_mesh(jax.devices()[:1]))
  new, _, metrics = step(params, tx.init(params), jnp.zeros(1), jnp.zeros(1))
  assert float(metrics["grad_norm"]) == pytest.approx(10.0)  # |2 w| = 2 * 5.
  np.testing.assert_allclose(np.asarray(new["w"]), [3.0 * 0.8, -4.0 * 0.8], rtol=1e-6)  # w - 0.1 * 2 w.


_MULTI_DEVICE = textwrap.dedent(
    """
    import dataclasses, json
    import jax, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from optformer.model.network import SurrogateBatch
    from optformer.training.data import make_batch, prior_borders
    from optformer.training.train import PFNTrainConfig, init_state, make_train_step
    from optformer.training.step import make_mesh
    assert len(jax.devices()) == 8, jax.devices()
    tiny = PFNTrainConfig.tiny()
    data = dataclasses.replace(tiny.data, batch_size=8)
    cfg = PFNTrainConfig.tiny(prior_borders(data, 32, num_batches=2))
    cfg = dataclasses.replace(cfg, data=data)
    batch, targets, *_ = make_batch(cfg.data, np.asarray(cfg.model.borders), cfg.model.num_slot_ids, 0)
    result = {}
    for n in (1, 8):
      mesh = make_mesh(jax.devices()[:n])
      put = lambda a: jax.device_put(np.asarray(a), NamedSharding(mesh, P("data")))
      graphdef, params, tx, opt_state = init_state(cfg)
      step = make_train_step(graphdef, tx, mesh)
      losses = []
      for _ in range(3):
        params, opt_state, metrics = step(params, opt_state, SurrogateBatch(*map(put, batch)), jax.tree.map(put, targets))
        losses.append(float(metrics["loss"]))
      result[n] = losses
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_eight_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
  out = subprocess.run([sys.executable, "-c", _MULTI_DEVICE], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(result["8"], result["1"], rtol=1e-4)
  assert result["1"][2] != result["1"][0]  # Updated parameters (the warmup's first rate is 0).
