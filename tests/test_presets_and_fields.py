"""Presets, field help, the common evaluation prior, intervals as flags and Ctrl-C (issue 23's frictions)."""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from optformer.training import evaluate, fields, presets, run_config, train_cli
from optformer.training.train import PFNTrainConfig


def _args(tmp_path, *flags):
  return train_cli.parser().parse_args(["--workdir", str(tmp_path / "w"), *flags])


def test_every_config_field_has_a_description_and_the_listing_shows_them_all(capsys):
  all_fields = fields.fields()
  assert len(all_fields) > 60 and "data.examples.prior.noise_log_std" in {f.name for f in all_fields}
  assert [f.name for f in all_fields if not f.description] == []
  assert run_config.train(["--list-fields"]) == 0
  text = capsys.readouterr().out
  assert all(f"\n{f.name} (" in text for f in all_fields)
  assert "eval_prior (str, default \"reference\")" in text and "(no description)" not in text
  assert "data.examples.prior.p_noiseless (float, default 0.0)\n    Probability that a task is near-noiseless" in text
  assert run_config.train(["--list-fields", "tiny"]) == 0  # A preset's values as the defaults.
  assert "model.d_model (int, default 32)" in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    run_config.train(["--list-fields", "huge"])
  assert e.value.code == 2 and "unknown preset 'huge'" in capsys.readouterr().err


def test_every_flag_of_train_and_ablate_has_help():
  from optformer.training import ablate

  for p in (run_config.parser(), ablate.parser()):
    assert [a.dest for a in p._actions if not a.help] == [], p.prog


def test_comments_above_a_field_describe_it_and_a_hash_in_a_string_is_not_a_comment():
  @dataclasses.dataclass(frozen=True)
  class C:
    # Two lines
    # above.
    a: int = 1
    b: str = "#x"  # Beside.
    c: int = 2

  assert fields.comments(C) == {"a": "Two lines above.", "b": "Beside.", "c": ""}


def test_presets_are_defined_in_one_place_and_listed(capsys):
  assert {"default", "tiny", "cpu-small", "gpu"} <= set(presets.PRESETS)
  choices = next(a for a in train_cli.parser()._actions if a.dest == "preset").choices
  assert list(choices) == list(presets.PRESETS)
  for name, preset in presets.PRESETS.items():
    cfg = preset.config()
    assert isinstance(cfg, PFNTrainConfig) and cfg.model.borders == () and preset.bins >= 2 and preset.help, name
  assert presets.get("cpu-small").config().num_steps < PFNTrainConfig().num_steps
  with pytest.raises(ValueError, match="unknown preset 'x'; the presets are default, tiny"):
    presets.get("x")
  assert run_config.train(["--list-presets"]) == 0
  listed = capsys.readouterr().out
  assert all(name in listed for name in presets.PRESETS)


def test_the_tiny_preset_honours_bins_and_a_warmup_past_the_run_is_clipped_with_a_warning(tmp_path, capsys):
  cfg = train_cli.build_config(_args(tmp_path, "--preset", "tiny", "--bins", "16"))
  assert cfg.model.num_bins == 16 and cfg.eval_prior == "tiny" and cfg.eval_contexts == (5, 10, 20, 40)
  assert train_cli.build_config(_args(tmp_path, "--preset", "tiny")).model.num_bins == 32
  assert "warmup" not in capsys.readouterr().err
  cfg = train_cli.build_config(_args(tmp_path, "--preset", "tiny", "--warmup", "50"))
  assert cfg.warmup_steps == 2  # A tenth of the 20-step run.
  assert "warmup (50 steps) is not shorter than the run (20 steps): clipped to 2" in capsys.readouterr().err
  clipped, warning = presets.clip_warmup(dataclasses.replace(cfg, warmup_steps=5))
  assert clipped.warmup_steps == 5 and warning is None


def test_intervals_and_the_evaluation_are_flags_and_a_changed_one_is_refused_on_resume(tmp_path):
  cfg = train_cli.build_config(_args(tmp_path, "--preset", "tiny", "--checkpoint-every", "3", "--eval-every", "7",
                                     "--log-every", "2", "--eval-contexts", "5,20", "--eval-prior", "training"))
  assert (cfg.checkpoint_every, cfg.eval_every, cfg.log_every, cfg.eval_contexts, cfg.eval_prior) == (
      3, 7, 2, (5, 20), "training")
  (tmp_path / "w").mkdir()
  (tmp_path / "w" / "config.json").write_text(json.dumps(cfg.to_dict()))
  assert train_cli.build_config(_args(tmp_path, "--checkpoint-every", "3")) == cfg
  for flags, named in ((("--checkpoint-every", "9"), "--checkpoint-every 9 (the run has 3)"),
                       (("--bins", "8"), "--bins 8 (the run has 32)"),
                       (("--eval-prior", "reference"), "--eval-prior reference (the run has training)"),
                       (("--prior-noiseless", "0.3"), "--prior-noiseless 0.3 (the run has 0.0)"),
                       (("--noiseless-log-mean", "-20"), "--noiseless-log-mean -20.0 (the run has -13.8)")):
    with pytest.raises(SystemExit, match=named.replace("(", r"\(").replace(")", r"\)")):
      train_cli.build_config(_args(tmp_path, *flags))
  with pytest.raises(SystemExit, match="eval_every.* must be >= 1|--eval-contexts"):
    train_cli.build_config(_args(tmp_path / "x", "--preset", "tiny", "--eval-contexts", "5,a"))


def test_the_noise_mixture_flags_set_the_prior_and_its_borders(tmp_path, monkeypatch):
  from optformer.training import data as data_lib

  drawn = []  # The prior each run's bar borders are drawn from (a stand-in for its quantiles, which take a minute).
  monkeypatch.setattr(data_lib, "prior_borders", lambda data, bins, num_batches: drawn.append(data.examples.prior)
                      or np.linspace(-3.0, 3.0, bins + 1))
  cfg = train_cli.build_config(_args(tmp_path, "--preset", "tiny", "--prior-noiseless", "0.3", "--noiseless-log-mean",
                                     "-16", "--noiseless-log-std", "0.5"))
  p = cfg.data.examples.prior
  assert (p.p_noiseless, p.noiseless_log_mean, p.noiseless_log_std) == (0.3, -16.0, 0.5) and drawn == [p]
  assert PFNTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # Saved and read back whole.
  plain = train_cli.build_config(_args(tmp_path, "--preset", "tiny")).to_dict()
  assert "p_noiseless" not in plain["data"]["examples"]["prior"]  # Configs from before the mixture stay equal.
  for flags, named in ((("--prior-noiseless", "1.5"), "--prior-noiseless must be a probability"),
                       (("--noiseless-log-std", "-1"), "--noiseless-log-std must be >= 0")):
    with pytest.raises(SystemExit, match=named):
      train_cli.build_config(_args(tmp_path / "x", "--preset", "tiny", *flags))


def test_the_noiseless_evaluation_prior_is_the_reference_prior_without_its_noise():
  ref, quiet = evaluate.eval_data(PFNTrainConfig().data, "reference"), evaluate.eval_data(
      PFNTrainConfig().data, "reference-noiseless")
  assert quiet.examples.prior.p_noiseless == 1.0
  assert quiet.examples == dataclasses.replace(ref.examples, prior=dataclasses.replace(ref.examples.prior,
                                                                                       p_noiseless=1.0))
  assert dataclasses.replace(quiet, examples=ref.examples) == ref  # Only the noise differs.


@pytest.mark.slow
def test_the_noiseless_evaluation_examples_are_the_reference_functions_observed_without_noise():
  from optformer.data_gen import examples as examples_lib

  ref, quiet = evaluate.eval_data(PFNTrainConfig().data, "reference"), evaluate.eval_data(
      PFNTrainConfig().data, "reference-noiseless")
  words = examples_lib.example_words(0, "validation", range(8))
  (a, ta), (b, tb) = (examples_lib.sample_examples(d.examples, words, 16) for d in (ref, quiet))
  np.testing.assert_array_equal(a.x, b.x)
  np.testing.assert_array_equal(a.f, b.f)  # The same functions at the same points ...
  assert np.all(np.asarray(tb.noise_variance) < np.asarray(ta.noise_variance))  # ... observed with little noise.
  ok = a.feasible & b.feasible
  assert np.all(np.abs(b.y - b.f)[ok] < 0.05) and np.std((a.y - a.f)[ok]) > 10 * np.std((b.y - b.f)[ok])


def test_set_on_a_workdir_resumes_its_run_when_the_config_is_the_same(tmp_path, monkeypatch, capsys):
  calls = []
  monkeypatch.setattr(train_cli, "main", lambda argv: calls.append(argv) or 0)
  flags = ["--workdir", str(tmp_path / "w"), "--preset", "tiny", "--set", "model.num_heads=1"]
  assert run_config.train(flags) == 0 and run_config.train(flags) == 0  # New, then a resume of the same run.
  assert calls[0] == calls[1] == ["--workdir", str(tmp_path / "w"), "--preset", "tiny"]
  with pytest.raises(SystemExit):
    run_config.train([*flags[:-1], "model.num_heads=4"])
  assert "differing fields: model.num_heads: 1 -> 4" in capsys.readouterr().err


def test_the_evaluation_prior_is_common_ground_and_old_runs_keep_their_own():
  cfg = PFNTrainConfig.tiny()
  other = dataclasses.replace(cfg.data, batch_size=7, seed=3, examples=dataclasses.replace(
      cfg.data.examples, prior=dataclasses.replace(cfg.data.examples.prior, noise_log_mean=-1.0)))
  assert evaluate.eval_data(cfg.data, "tiny") == evaluate.eval_data(other, "tiny")  # The same examples for both.
  assert evaluate.eval_data(other, "tiny").batch_size == evaluate.EVAL_BATCH_SIZE
  assert evaluate.eval_data(other, "training").batch_size == 7  # The run's own.
  with pytest.raises(ValueError, match="unknown evaluation prior 'mine'"):
    evaluate.eval_data(cfg.data, "mine")
  assert PFNTrainConfig().eval_prior == "reference" and PFNTrainConfig().eval_contexts == evaluate.DEFAULT_CONTEXTS
  old = PFNTrainConfig().to_dict()
  del old["eval_prior"]  # A config.json written before the evaluation prior existed.
  assert PFNTrainConfig.from_dict(old).eval_prior == "training" and PFNTrainConfig.from_dict(old).to_dict() == old
  with pytest.raises(ValueError, match="evaluation prior 'reference' has up to 16 parameters"):
    dataclasses.replace(cfg, eval_prior="reference")  # The tiny model has 8 parameter slots.
  with pytest.raises(ValueError, match="max_context=64"):
    dataclasses.replace(cfg, eval_contexts=(5, 100))
  assert evaluate.eval_seq_len(40) == 64 and evaluate.eval_seq_len(200) == 224


def test_every_gap_has_its_standard_error(tiny_v2_model):
  from flax import nnx

  data = evaluate.eval_data(PFNTrainConfig.tiny().data, "tiny")
  graphdef, params = nnx.split(tiny_v2_model)
  c = tiny_v2_model.config
  out = evaluate.gp_gap(graphdef, params, data, c.borders, c.num_slot_ids, contexts=(5,), num_batches=1)
  m, g, _ = evaluate.per_example_nll(graphdef, params, data, c.borders, c.num_slot_ids, 5, 1)
  assert out["gap_5"] == pytest.approx((m - g).mean())
  assert out["gap_se_5"] == pytest.approx((m - g).std(ddof=1) / np.sqrt(len(m))) and out["gap_se_5"] > 0
  assert np.isnan(evaluate.standard_error([1.0]))


def test_the_first_ctrl_c_asks_to_stop_and_the_second_quits(capsys):
  interrupt = train_cli._Interrupt()
  interrupt()
  assert interrupt.requested and "stopping after this step and saving" in capsys.readouterr().err
  with pytest.raises(KeyboardInterrupt):
    interrupt()


@pytest.mark.slow
def test_ctrl_c_saves_the_step_and_exits_promptly_without_a_traceback(tmp_path):
  """A real SIGINT to a training process: it saves the step it is at, says so, exits 130 within seconds."""
  work = tmp_path / "w"
  cmd = [sys.executable, "-m", "optformer.training", "train", "--workdir", str(work), "--preset", "tiny", "--steps",
         "100000", "--checkpoint-every", "100000", "--log-every", "1", "--eval-every", "100000", "--no-progress"]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
  log = work / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
    time.sleep(0.5)
  assert proc.poll() is None, proc.communicate()
  proc.send_signal(signal.SIGINT)
  sent = time.time()
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 130, err
  assert time.time() - sent < 20 and "Traceback" not in err
  saved = int(err.split("saved a checkpoint of step ")[1].split(";")[0])
  assert saved >= 2 and (work / "checkpoints" / str(saved)).is_dir()
  # The same command resumes from the saved step (--until it: no step to train, so no compilation).
  resumed = subprocess.run([*cmd, "--until", str(saved)], capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0 and f"resuming {work} at step {saved}" in resumed.stdout
