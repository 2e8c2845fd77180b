"""Training: loss goes down, resume is exact, data parallel = single device, NaN aborts, export loads."""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import optformer
from optformer.training import data as data_lib
from optformer.training.train import Trainer, TrainConfig, WorkdirError

ROOT = pathlib.Path(__file__).resolve().parents[1]


class ListSource:
  """A random-access source of trajectory records, as data_gen.corpus gives."""

  def __init__(self, records):
    self.records = records

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    return self.records[i]


@pytest.fixture(scope="module")
def corpus():
  from optformer.data_gen.behaviour import generate
  from optformer.data_gen.prior import PriorConfig

  cfg = TrainConfig.tiny()
  prior = dataclasses.replace(PriorConfig.tiny(), max_dims=cfg.model.tokenizer.max_params)
  out = generate(prior, num_tasks=24, num_trials=cfg.data.num_trials, algorithm_mix=(1, 1, 1), seed=0)
  keys = ("x", "y", "kinds", "num_values", "algorithm")
  records = [{k: np.asarray(out[k][i]) for k in keys} for i in range(24)]
  return ListSource(records[:20]), ListSource(records[20:])


def test_batches_are_deterministic_by_position(corpus):
  train, _ = corpus
  cfg = TrainConfig.tiny()
  it = data_lib.BatchIterator(train, cfg.model.tokenizer, cfg.data)
  batches = [next(it) for _ in range(7)]  # crosses an epoch boundary (20 records, batch 4)
  resumed = data_lib.BatchIterator(train, cfg.model.tokenizer, cfg.data, position=5 * cfg.data.batch_size)
  for want, got in zip(batches[5:], [next(resumed), next(resumed)]):
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      np.testing.assert_array_equal(a, b)
  # Every record's value tokens are valid for its slot, at the tiny and the
  # shipped bin counts (float32 level values must not slip into a neighbour bin).
  full = data_lib.BatchIterator(train, optformer.tokenizer.TokenizerConfig(max_params=cfg.model.tokenizer.max_params), cfg.data)
  for batch, _ in batches + [next(full) for _ in range(5)]:
    b, t, d = batch.x.shape
    used = batch.kinds != 0
    for i in range(b):
      for j in range(d):
        if used[i, j]:
          assert batch.valid[i, j][batch.x[i, :, j]].all()


def test_loss_goes_down(corpus, tmp_path):
  train, valid = corpus
  cfg = dataclasses.replace(TrainConfig.tiny(), num_steps=60, peak_learning_rate=3e-3, log_every=10)
  rows = Trainer(cfg, tmp_path, train, valid).run(progress=False)
  assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
  assert (tmp_path / "metrics.jsonl").exists()
  assert "eval_y_nll" in rows[-1]


def test_resume_continues_exactly(corpus, tmp_path):
  train, _ = corpus
  cfg = TrainConfig.tiny()
  straight = Trainer(cfg, tmp_path / "a", train)
  straight.run(10, progress=False)
  first = Trainer(cfg, tmp_path / "b", train)
  first.run(5, progress=False)
  del first  # "killed" after its step-5 checkpoint
  resumed = Trainer(cfg, tmp_path / "b", train)
  assert resumed.step == 5 and resumed.batches.position == 5 * cfg.data.batch_size
  resumed.run(10, progress=False)
  for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_resume_drops_metrics_rows_logged_after_the_restored_step(corpus, tmp_path):
  train, _ = corpus
  cfg = dataclasses.replace(TrainConfig.tiny(), log_every=1, checkpoint_every=5)
  first = Trainer(cfg, tmp_path, train)
  first.run(8, progress=False)  # checkpoints at 5 and 8, a metrics row per step
  first.manager.delete(8)  # "killed" after logging steps 6-8 but before their checkpoint
  with (tmp_path / "metrics.jsonl").open("a") as f:
    f.write('{"loss": 1.0, "st')  # and in the middle of a line
  resumed = Trainer(cfg, tmp_path, train)
  assert resumed.step == 5
  resumed.run(10, progress=False)
  steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == list(range(1, 11))


def test_an_unwritable_workdir_or_checkpoint_directory_raises_at_once(corpus, tmp_path):
  train, _ = corpus
  (tmp_path / "a_file").write_text("")
  with pytest.raises(WorkdirError, match=r"Cannot write to .*a_file/run: Not a directory"):
    Trainer(TrainConfig.tiny(), tmp_path / "a_file" / "run", train)
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "checkpoints").write_text("")  # a file where the checkpoints go
  with pytest.raises(WorkdirError, match=r"Cannot write to .*run/checkpoints: File exists"):
    Trainer(TrainConfig.tiny(), tmp_path / "run", train)
  if os.geteuid() != 0:  # root writes through permission bits
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    with pytest.raises(WorkdirError, match="Permission denied"):
      Trainer(TrainConfig.tiny(), tmp_path / "ro", train)
  # A directory that goes away during the run: the next checkpoint raises before orbax starts.
  trainer = Trainer(TrainConfig.tiny(), tmp_path / "later", train)
  shutil.rmtree(tmp_path / "later" / "checkpoints")
  (tmp_path / "later" / "checkpoints").write_text("")
  with pytest.raises(WorkdirError, match="checkpoints: File exists"):
    trainer.run(5, progress=False)


_CLI_UNWRITABLE = textwrap.dedent(
    """
    import dataclasses, pathlib, shutil, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_training import ListSource
    import optformer.data_gen.corpus
    from optformer.data_gen.behaviour import generate
    from optformer.data_gen.prior import PriorConfig
    from optformer.training import cli, train
    cfg = train.TrainConfig.tiny()
    prior = dataclasses.replace(PriorConfig.tiny(), max_dims=cfg.model.tokenizer.max_params)
    out = generate(prior, num_tasks=8, num_trials=cfg.data.num_trials, algorithm_mix=(1, 1, 1), seed=0)
    src = ListSource([{k: np.asarray(out[k][i]) for k in ("x", "y", "kinds", "num_values", "algorithm")} for i in range(8)])
    optformer.data_gen.corpus.load_corpus = lambda path, split: src
    optformer.data_gen.corpus.resolve_corpus_dir = str
    optformer.data_gen.corpus.load_corpus_config = lambda path: type("C", (), {"to_json": lambda self: {}})()
    workdir, case = pathlib.Path(sys.argv[2]), sys.argv[3]
    if case == "midway":  # orbax itself fails: the directory check passes, then the directory is a file
      built = train.Trainer.__init__
      def init(self, *a, **k):
        built(self, *a, **k)
        shutil.rmtree(workdir / "checkpoints")
        (workdir / "checkpoints").write_text("")
        train.check_writable = lambda directory: None
      train.Trainer.__init__ = init
    sys.exit(cli.main(["--corpus", "corpus", "--workdir", str(workdir), "--preset", "tiny", "--no-progress"]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["checked", "midway"])
def test_the_cli_exits_1_with_one_line_when_checkpoints_cannot_be_written(tmp_path, case):
  workdir = tmp_path / "run"
  workdir.mkdir()
  if case == "checked":
    (workdir / "checkpoints").write_text("")
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  run = subprocess.run(
      [sys.executable, "-c", _CLI_UNWRITABLE, str(ROOT / "tests"), str(workdir), case],
      env=env, capture_output=True, text=True, timeout=300,
  )
  assert run.returncode == 1, run.stderr[-3000:]
  last = run.stderr.strip().splitlines()[-1]
  assert re.match(r"optformer\.training\.cli: error: (Cannot write to|Saving the step-5 checkpoint to) .*checkpoints", last), run.stderr[-3000:]
  if case == "checked":  # found before orbax starts: no traceback, no orbax log
    assert "Traceback" not in run.stderr and "absl" not in run.stderr, run.stderr


def test_mismatched_workdir_config_raises(corpus, tmp_path):
  train, _ = corpus
  Trainer(TrainConfig.tiny(), tmp_path, train)
  other = dataclasses.replace(TrainConfig.tiny(), peak_learning_rate=0.1)
  with pytest.raises(ValueError, match="different config"):
    Trainer(other, tmp_path, train)


def test_non_finite_loss_raises(corpus, tmp_path):
  train, _ = corpus
  trainer = Trainer(TrainConfig.tiny(), tmp_path, train)
  trainer.params = jax.tree.map(lambda a: a * np.nan, trainer.params)
  with pytest.raises(FloatingPointError, match="Non-finite"):
    trainer.run(5, progress=False)


def test_export_loads_into_optimizer(corpus, tmp_path):
  train, valid = corpus
  Trainer(TrainConfig.tiny(), tmp_path / "run", train, valid).run(10, progress=False)
  from optformer.training.export import export

  out = export(tmp_path / "run", tmp_path / "model", corpus_info={"name": "test"}, command="test")
  card = (out / "card.md").read_text()
  assert "steps: 10 of" in card and "held-out objective NLL" in card
  space = optformer.SearchSpace([optformer.Float("a", 0.0, 1.0), optformer.Int("b", 1, 5)])
  opt = optformer.Optimizer(space, model=out, seed=0)
  params = opt.ask()
  space.validate(params)


_MULTI_DEVICE = textwrap.dedent(
    """
    import dataclasses, json, sys
    import jax, numpy as np
    from optformer.training.train import TrainConfig, init_state, make_mesh, make_train_step, _as_jax
    from optformer.training.data import BatchIterator
    from jax.sharding import NamedSharding, PartitionSpec as P
    sys.path.insert(0, sys.argv[1])
    from test_training import ListSource
    from optformer.data_gen.behaviour import generate
    from optformer.data_gen.prior import PriorConfig
    assert len(jax.devices()) == 8, jax.devices()
    cfg = dataclasses.replace(TrainConfig.tiny(), data=dataclasses.replace(TrainConfig.tiny().data, batch_size=8))
    prior = dataclasses.replace(PriorConfig.tiny(), max_dims=cfg.model.tokenizer.max_params)
    out = generate(prior, num_tasks=8, num_trials=cfg.data.num_trials, algorithm_mix=(1, 1, 1), seed=0)
    src = ListSource([{k: np.asarray(out[k][i]) for k in ("x", "y", "kinds", "num_values", "algorithm")} for i in range(8)])
    batch, idx = next(BatchIterator(src, cfg.model.tokenizer, cfg.data))
    result = {}
    for n in (1, 8):
      mesh = make_mesh(jax.devices()[:n])
      graphdef, params, tx, opt_state = init_state(cfg)
      step = make_train_step(graphdef, tx, cfg, mesh)
      params, opt_state, metrics = step(params, opt_state, *_as_jax(batch, idx, NamedSharding(mesh, P("data"))))
      params, opt_state, metrics2 = step(params, opt_state, *_as_jax(batch, idx, NamedSharding(mesh, P("data"))))
      result[n] = [float(metrics["loss"]), float(metrics2["loss"])]
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_eight_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=str(ROOT))
  out = subprocess.run(
      [sys.executable, "-c", _MULTI_DEVICE, str(ROOT / "tests")], env=env, capture_output=True, text=True, timeout=600
  )
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(result["8"], result["1"], rtol=1e-4)


@pytest.mark.parametrize("num_bins", [32, 1000])
def test_float32_prior_levels_tokenize_to_valid_tokens(num_bins):
  # The corpus stores int level i of n as float32(i / (n - 1)); e.g. 0.7 becomes
  # 0.69999999, which a plain floor(u * Q) puts one bin below the level's token.
  for n in range(2, min(41, num_bins + 1)):
    kinds = np.array([optformer.search_space.KIND_ORDINAL], np.int32)
    enc = data_lib.prior_encoding(kinds, np.array([n], np.int32), num_bins)
    x = (np.arange(n, dtype=np.float32) / np.float32(n - 1))[:, None]
    tokens = optformer.tokenizer.encode_units(x, enc, num_bins)[:, 0]
    assert enc.valid[0][tokens].all(), n
    np.testing.assert_array_equal(tokens, enc.level_tokens[0])
