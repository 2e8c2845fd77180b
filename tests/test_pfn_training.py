"""Model v2 training: deterministic data, loss goes down, resume and warm start, export and load."""

import dataclasses
import json
import re

import jax
import numpy as np
import pytest

from flax import nnx

from optformer import checkpoint
from optformer.model.network import PFNSurrogate
from optformer.training.data import PFNDataConfig, make_batch, prior_borders
from optformer.training.evaluate import gp_gap
from optformer.training.export import export
from optformer.training.train import PFNTrainConfig, PFNTrainer


@pytest.fixture(scope="module")
def borders():
  return prior_borders(PFNDataConfig.tiny(), 32, num_batches=4)


@pytest.fixture(scope="module")
def cfg(borders):
  return PFNTrainConfig.tiny(borders)


def test_batches_are_a_pure_function_of_seed_and_index(cfg, borders):
  a, ta, *_ = make_batch(cfg.data, borders, 8, 3)
  b, tb, *_ = make_batch(cfg.data, borders, 8, 3)
  c, tc, *_ = make_batch(cfg.data, borders, 8, 4)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(ta, tb)
  assert not np.array_equal(a.x, c.x)


def test_context_statistics_never_see_the_queries(cfg, borders):
  batch, targets, ex, _, z = make_batch(cfg.data, borders, 8, 0, n_context=5)
  y = ex.y.astype(np.float64).copy()
  ex2 = ex._replace(y=np.where(np.arange(y.shape[1]) >= 5, y * 100 + 7, y).astype(np.float32))
  from optformer.training.data import to_batch

  b2, _, z2, _ = to_batch(ex2, np.full(len(y), 5), batch.slot_ids, borders)
  np.testing.assert_allclose(z2[:, :5], z[:, :5], atol=1e-5)  # Context z unchanged by the queries' values.
  np.testing.assert_array_equal(b2.z, batch.z)


def test_shards_partition_the_global_batch(cfg, borders):
  full, t, *_ = make_batch(cfg.data, borders, 8, 2)
  parts = [make_batch(cfg.data, borders, 8, 2, shard=s, num_shards=2)[0] for s in range(2)]
  np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), full.x)
  with pytest.raises(ValueError, match="num_shards"):
    make_batch(cfg.data, borders, 8, 2, num_shards=3)


@pytest.mark.slow
def test_the_dims_curriculum_limits_training_tasks_until_its_stage_ends(cfg, borders):
  data = dataclasses.replace(cfg.data, dims_curriculum=((3, 1), (5, 2)))
  full = cfg.data.examples.prior.max_dims
  used = lambda ex: int((np.asarray(ex.kinds) > 0).sum(-1).max())
  for index, most in ((0, 1), (2, 1), (3, 2), (4, 2), (5, full), (9, full)):
    batch, _, ex, *_ = make_batch(data, borders, 8, index)
    assert batch.x.shape[-1] == most and used(ex) <= most, index
  assert max(used(make_batch(data, borders, 8, i)[2]) for i in range(5, 12)) > 2  # The whole prior again.
  _, _, ex, *_ = make_batch(data, borders, 8, 0, "validation")
  assert ex.x.shape[-1] == full  # Validation ignores the curriculum.
  assert PFNDataConfig.from_json(json.loads(json.dumps(data.to_json()))) == data
  assert "dims_curriculum" not in cfg.data.to_json()  # Older runs' configs stay equal.
  for bad in (((5, 2), (3, 1)), ((3, 0),), ((3,),)):
    with pytest.raises(ValueError, match="dims_curriculum"):
      dataclasses.replace(cfg.data, dims_curriculum=bad)


def test_training_reduces_the_loss_and_resumes_exactly(cfg, tmp_path):
  import dataclasses

  long = dataclasses.replace(cfg, num_steps=40, log_every=10, checkpoint_every=20, peak_learning_rate=3e-3)
  tr = PFNTrainer(long, tmp_path / "a")
  rows = tr.run(progress=False)
  assert rows[-1]["loss"] < rows[0]["loss"]
  # A second run stopped at 20 and resumed gives the same parameters.
  tr_b = PFNTrainer(long, tmp_path / "b")
  tr_b.run(20, progress=False)
  tr_b = PFNTrainer(long, tmp_path / "b")
  assert tr_b.step == 20 and tr_b.position == 20
  tr_b.run(progress=False)
  for u, v in zip(jax_leaves(tr.params), jax_leaves(tr_b.params)):
    np.testing.assert_allclose(u, v, atol=1e-6)
  steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
  assert steps == sorted(set(steps))  # No step logged twice after the resume.


def jax_leaves(tree):
  import jax

  return [np.asarray(v) for v in jax.tree.leaves(tree)]


def test_export_loads_as_v2_and_warm_starts_a_new_workdir(cfg, tmp_path):
  tr = PFNTrainer(cfg, tmp_path / "run")
  tr.run(10, progress=False)
  out = export(tr, tmp_path / "model")
  model, meta = checkpoint.load_pfn(out, with_metadata=True)
  assert isinstance(model, PFNSurrogate) and meta["step"] == 10 and meta["data_position"] == 10
  assert "| context |" in (out / "card.md").read_text()
  warm = PFNTrainer(cfg, tmp_path / "run2", init_from=out)
  assert warm.step == 10 and warm.position == 10
  for u, v in zip(jax_leaves(warm.params), jax_leaves(tr.current_params())):
    np.testing.assert_array_equal(u, v)


def test_gp_gap_reports_the_exact_gp_as_a_lower_bound_for_an_untrained_model(cfg, tmp_path):
  tr = PFNTrainer(cfg, tmp_path / "g")
  out = gp_gap(tr.graphdef, tr.params, cfg.data, cfg.model.borders, cfg.model.num_slot_ids, contexts=(3,), num_batches=1)
  assert np.isfinite(out["nll_model_3"]) and out["gap_3"] > 0


def test_gp_gap_by_relevant_parameters_partitions_the_examples(cfg, tmp_path):
  tr = PFNTrainer(cfg, tmp_path / "g")
  out = gp_gap(tr.graphdef, tr.params, cfg.data, cfg.model.borders, cfg.model.num_slot_ids, contexts=(3,),
               num_batches=2, by_dims=True)
  groups = [k.removeprefix("examples_3_dims_") for k in out if k.startswith("examples_3_dims_")]
  counts = np.array([out[f"examples_3_dims_{g}"] for g in groups])
  assert groups and counts.sum() == 2 * cfg.data.batch_size
  # Equal queries per example: the overall gap is the count-weighted mean of the groups' gaps.
  weighted = sum(out[f"gap_3_dims_{g}"] * c for g, c in zip(groups, counts)) / counts.sum()
  assert weighted == pytest.approx(out["gap_3"], abs=1e-9)
  from optformer.training.evaluate import gap_table_by_dims

  table = gap_table_by_dims(out, (3,)).splitlines()
  assert table[0] == "| context | all | " + " | ".join(f"{g} relevant" for g in groups) + " |"
  assert table[2].startswith(f"| 3 | {out['gap_3']:+.3f} ± {out['gap_se_3']:.3f} |") and str(counts[0]) in table[-1]
  assert "gap_3_dims_1-2" not in gp_gap(tr.graphdef, tr.params, cfg.data, cfg.model.borders, cfg.model.num_slot_ids,
                                        contexts=(3,), num_batches=1)


def test_an_unwritable_checkpoint_directory_raises_at_once(cfg, tmp_path):
  from optformer.training.workdir import WorkdirError

  (tmp_path / "w").mkdir()
  (tmp_path / "w" / "checkpoints").write_text("a file in the way")
  with pytest.raises(WorkdirError, match="checkpoints"):
    PFNTrainer(cfg, tmp_path / "w")


@pytest.mark.slow
def test_the_probe_reports_gaps_by_relevant_parameters_and_the_median_correlation(tmp_path, capsys):
  from optformer.training import probe

  assert probe.main(["--max-dims", "2", "--steps", "4", "--bins", "16", "--d-model", "16", "--d-slot", "8",
                         "--layers", "1", "--batch-size", "4", "--workdir", str(tmp_path / "p")]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split(":")[0] for line in lines] == ["step 1", "step 2", "step 3", "step 4"]
  corr = float(lines[-1].rsplit(" ", 1)[1])
  assert -1.0 <= corr <= 1.0 and "relevant" in lines[-1]


@pytest.mark.slow
def test_throughput_counts_the_step_flops_and_times_real_steps(cfg, tmp_path):
  from optformer.training import throughput

  one = throughput.measure(cfg, steps=2, matmul_size=64)
  wide = throughput.measure(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=2 * cfg.data.batch_size)), 2)
  assert one["step_flops"] > 0 and len(one["seconds_per_step_all"]) == 2 and one["trials_per_s"] > 0
  assert 1.6 < wide["step_flops"] / one["step_flops"] < 2.1  # The step's work scales with the batch.
  assert wide["model_flops"] == pytest.approx(2 * one["model_flops"])
  # The analytic count is the matmuls: most of XLA's count, never more (XLA adds elementwise work, the optimizer).
  assert 0.6 < one["model_flops"] / one["step_flops"] < 1.0
  assert one["step_flops_per_s"] == pytest.approx(one["step_flops"] / one["seconds_per_step"])
  n = cfg.data.seq_lens[0]
  assert one["tokens_per_s"] == pytest.approx(one["trials_per_s"] * (n + 1) / n)  # Plus the global token.
  assert one["share_of_matmul_rate"] == pytest.approx(one["step_flops_per_s"] / one["matmul_flops_per_s"])
  assert "matmul_flops_per_s" not in wide
  assert set(one["step_flops_by_length"]) == {str(n) for n in one["lengths"]}
  with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
    throughput.measure(cfg, steps=0)
  (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
  out = tmp_path / "t.json"
  assert throughput.main(["--config", str(tmp_path / "config.json"), "--steps", "1", "--matmul-size", "64",
                              "--out", str(out)]) == 0
  got = json.loads(out.read_text())
  assert 0 < got["share_of_matmul_rate"] == pytest.approx(got["step_flops_per_s"] / got["matmul_flops_per_s"])
  assert got["model_share_of_matmul_rate"] < got["share_of_matmul_rate"] and "share_of_peak" not in got
  assert throughput.main(["--config", str(tmp_path / "config.json"), "--steps", "1", "--matmul-size", "64",
                          "--peak-flops", "1e12", "--out", str(out)]) == 0
  got = json.loads(out.read_text())
  assert got["share_of_peak"] == pytest.approx(got["step_flops_per_s"] / 1e12)
  assert throughput.main(["--config", str(tmp_path / "missing.json")]) == 2


@pytest.mark.slow
def test_cli_noise_prior_overrides_a_new_run_and_a_warm_start(cfg, tmp_path):
  from optformer.training import train_cli

  new = train_cli.build_config(train_cli.parser().parse_args(
      ["--workdir", str(tmp_path / "a"), "--preset", "tiny", "--noise-log-mean", "-9", "--noise-log-std", "2"]))
  assert (new.data.examples.prior.noise_log_mean, new.data.examples.prior.noise_log_std) == (-9.0, 2.0)
  tr = PFNTrainer(cfg, tmp_path / "run")
  tr.run(2, progress=False)
  out = export(tr, tmp_path / "model")
  warm = train_cli.build_config(train_cli.parser().parse_args(
      ["--workdir", str(tmp_path / "b"), "--init-from", str(out), "--noise-log-mean", "-9"]))
  assert warm.model == cfg.model and warm.data.examples.prior.noise_log_mean == -9.0
  assert warm.data.examples.prior.noise_log_std == cfg.data.examples.prior.noise_log_std
  mixed = train_cli.build_config(train_cli.parser().parse_args(  # Model v3's noise mixture on a warm start.
      ["--workdir", str(tmp_path / "m"), "--init-from", str(out), "--prior-noiseless", "0.3", "--noiseless-log-mean", "-16"]))
  assert mixed.model == cfg.model and mixed.data.examples.prior == dataclasses.replace(
      cfg.data.examples.prior, p_noiseless=0.3, noiseless_log_mean=-16.0)
  plain = train_cli.build_config(train_cli.parser().parse_args(["--workdir", str(tmp_path / "c"), "--init-from", str(out)]))
  assert plain == cfg
  longer = train_cli.build_config(train_cli.parser().parse_args(
      ["--workdir", str(tmp_path / "e"), "--init-from", str(out), "--seq-lens", "16,40"]))  # Was silently ignored.
  assert longer.data.seq_lens == (16, 40) and longer.data.seq_len_probs == (0.5, 0.5) and longer.model == cfg.model
  sched = train_cli.build_config(train_cli.parser().parse_args(  # A warm start's schedule: was silently the model's.
      ["--workdir", str(tmp_path / "g"), "--init-from", str(out), "--steps", "900", "--learning-rate", "3e-4",
       "--warmup", "30", "--eval-every", "7"]))
  assert (sched.num_steps, sched.peak_learning_rate, sched.warmup_steps, sched.eval_every) == (900, 3e-4, 30, 7)
  assert sched.model == cfg.model
  with pytest.raises(SystemExit, match="--seq-lens: expected comma-separated integers >= 2"):
    train_cli.build_config(train_cli.parser().parse_args(["--workdir", str(tmp_path / "f"), "--init-from", str(out),
                                                      "--seq-lens", "16,x"]))
  with pytest.raises(SystemExit, match="--noise-log-std must be >= 0, got -1.0"):
    train_cli.build_config(train_cli.parser().parse_args(["--workdir", str(tmp_path / "d"), "--init-from", str(out),
                                                      "--noise-log-std", "-1"]))


def test_cli_refuses_flags_that_would_change_a_run_it_resumes(cfg, tmp_path):
  from optformer.training import train_cli

  (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
  resume = lambda *flags: train_cli.build_config(train_cli.parser().parse_args(["--workdir", str(tmp_path), *flags]))
  assert resume() == cfg and resume("--export-every", "5", "--no-progress") == cfg
  lens = ",".join(str(n) for n in cfg.data.seq_lens)
  assert resume("--seq-lens", lens, "--steps", str(cfg.num_steps)) == cfg  # The run's own values: a resume.
  assert resume("--seed", str(cfg.seed)) == cfg
  for flags, named in ((("--learning-rate", "0.5"), "--learning-rate 0.5"), (("--seq-lens", "99"), "--seq-lens (99,)"),
                       (("--init-from", str(tmp_path)), "--init-from"), (("--seed", "7"), "--seed 7")):
    with pytest.raises(SystemExit, match=f"not applied on a resume: {re.escape(named)}"):  # Was ignored (exit 0).
      resume(*flags)


def test_evaluations_run_every_eval_every_steps_whatever_the_log_interval(cfg, tmp_path):
  run = dataclasses.replace(cfg, num_steps=7, log_every=5, eval_every=3, checkpoint_every=100)
  seen = []
  rows = PFNTrainer(run, tmp_path / "a").run(progress=False, evaluator=lambda g, p: seen.append(1) or {"gap_5": 0.1})
  assert [r["step"] for r in rows] == [3, 5, 6, 7]  # Steps 3 and 6 had been skipped (not multiples of 5).
  assert [r["step"] for r in rows if "gap_5" in r] == [3, 6, 7] and len(seen) == 3


@pytest.mark.slow
def test_cli_says_whether_it_starts_or_resumes_and_warns_of_a_warmup_past_the_run(tmp_path, capsys, monkeypatch):
  from optformer.training import train_cli

  args = ["--workdir", str(tmp_path / "w"), "--preset", "tiny", "--warmup", "5", "--eval-every", "100", "--no-progress"]
  assert train_cli.main([*args, "--until", "2"]) == 0
  out = capsys.readouterr()
  assert out.out.startswith(f"new run in {tmp_path / 'w'}, from scratch, until step 2")
  assert "warmup (5 steps) does not end before this run stops at step 2" in out.err
  assert train_cli.main([*args, "--until", "3"]) == 0  # The same command resumes, and says so (it printed nothing).
  out = capsys.readouterr()
  assert out.out.startswith(f"resuming {tmp_path / 'w'} at step 2 (data position 2), until step 3") and not out.err

  def interrupted(self, *a, **k):
    raise KeyboardInterrupt

  monkeypatch.setattr(PFNTrainer, "run", interrupted)  # Ctrl-C while training: one line, exit 130.
  assert train_cli.main([*args, "--until", "9"]) == 130
  assert "interrupted at step 3; the latest checkpoint is step 3" in capsys.readouterr().err


def test_the_seed_sets_the_models_initialization_and_the_datas(cfg, tmp_path):
  from optformer.training import train_cli
  from optformer.training.train import init_state

  other = dataclasses.replace(cfg, seed=1)
  a, b = jax_leaves(init_state(cfg)[1]), jax_leaves(init_state(other)[1])
  assert any(not np.array_equal(u, v) for u, v in zip(a, b))
  assert all(np.array_equal(u, v) for u, v in zip(b, jax_leaves(init_state(cfg, seed=1)[1])))
  (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
  with pytest.raises(SystemExit, match="--seed must be an integer >= 0, got -2"):
    train_cli._with_seed(cfg, train_cli.parser().parse_args(["--workdir", str(tmp_path), "--seed", "-2"]))
  seeded = train_cli._with_seed(cfg, train_cli.parser().parse_args(["--workdir", str(tmp_path), "--seed", "3"]))
  assert (seeded.seed, seeded.data.seed) == (3, 3) and PFNTrainConfig.from_dict(seeded.to_dict()) == seeded


def test_a_run_from_before_the_seed_knob_resumes():
  """Configs saved before PFNTrainConfig.seed existed have no "seed": seed 0 writes none, so they stay equal."""
  cfg = PFNTrainConfig.tiny()
  assert "seed" not in cfg.to_dict() and PFNTrainConfig.from_dict(cfg.to_dict()) == cfg
  assert PFNTrainConfig.from_dict(dataclasses.replace(cfg, seed=2).to_dict()).seed == 2


def test_a_warm_start_begins_at_the_loaded_parameters(cfg, tmp_path):
  """Schedule-free AdamW's optimizer state holds an iterate (z): a warm start must start it at the loaded
  parameters, or the evaluated/exported parameters mix in the fresh model's random initialization."""
  from optformer import checkpoint

  assert cfg.optimizer == "schedule_free_adamw"
  tr = PFNTrainer(cfg, tmp_path / "a")
  tr.run(3, progress=False)
  out = export(tr, tmp_path / "model")
  warm = PFNTrainer(cfg, tmp_path / "b", init_from=out)
  loaded = nnx.to_pure_dict(nnx.state(checkpoint.load_pfn(out)))
  got = warm.current_params()
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
