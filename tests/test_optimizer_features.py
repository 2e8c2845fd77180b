"""Batches, pending trials, duplicate tells, piBO priors and study persistence of optformer.Optimizer."""

import json
import math

import numpy as np
import pytest

from optformer import Categorical, Discrete, Float, Int, Optimizer, SearchSpace, Suggestion, priors
from optformer.optimizer import load_engine


def _objective(config):
  return float(np.log10(config["learning_rate"]) ** 2 + config["units"] / 10 + (config["optimizer"] == "sgd"))


def _told(space, model, n, seed=0, **kw):
  opt = Optimizer(space, model=model, seed=seed, **kw)
  rng = np.random.default_rng(seed)
  for _ in range(n):
    c = space.sample(rng)
    opt.tell(c, _objective(c))
  return opt


def test_ask_n_returns_n_distinct_pending_suggestions_inside_the_space(mixed_space, tiny_model):
  opt = _told(mixed_space, tiny_model, 4)
  batch = opt.ask(5)
  assert len(batch) == 5 and all(isinstance(s, Suggestion) for s in batch)
  assert len({json.dumps(s, sort_keys=True) for s in batch}) == 5
  for s in batch:
    assert mixed_space.validate(s) == s
  assert opt.pending == batch
  assert [s.number for s in batch] == [4, 5, 6, 7, 8]
  for s in batch[:3]:
    opt.tell(s, _objective(s))
  assert opt.pending == batch[3:]
  assert [t.number for t in opt.trials[-3:]] == [4, 5, 6]


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_ask_with_a_bad_batch_size_raises(mixed_space, tiny_model, n):
  opt = Optimizer(mixed_space, model=tiny_model, seed=0)
  with pytest.raises(ValueError, match="n must be"):
    opt.ask(n)
  assert opt.pending == []


@pytest.mark.parametrize("told", [0, 2])
def test_pending_configurations_are_not_proposed_again_until_none_is_left(tiny_model, told):
  space = SearchSpace([Categorical("c", ("a", "b", "c", "d", "e"))])
  opt = Optimizer(space, model=tiny_model, seed=0)
  for c in "ab"[:told]:
    opt.tell({"c": c}, 1.0)
  batch = opt.ask(5 - told)
  assert sorted(s["c"] for s in batch) == sorted(set("abcde") - set("ab"[:told]))
  # Every value is now taken: the optimizer still answers (a repeat) rather than failing.
  assert opt.ask()["c"] in "abcde"


def test_add_pending_from_another_worker_is_avoided_and_completed_by_tell(tiny_model):
  space = SearchSpace([Categorical("c", ("a", "b", "c"))])
  opt = Optimizer(space, model=tiny_model, seed=0)
  opt.tell({"c": "a"}, 0.5)
  other = opt.add_pending({"c": "b"})
  assert opt.ask() == {"c": "c"}
  opt.tell({"c": "b"}, 0.1)  # a plain dict equal to the other worker's pending trial completes it
  assert [t.number for t in opt.trials] == [0, other.number]
  assert opt.pending == [{"c": "c"}]


def test_pending_trials_enter_the_context_as_fantasies(mixed_space, tiny_model):
  opt = _told(mixed_space, tiny_model, 3)
  x0, y0, *_ = opt._encoded_context()
  opt.add_pending(mixed_space.sample(np.random.default_rng(9)))
  x1, y1, *_, best = opt._encoded_context()
  assert len(y1) == len(y0) + 1 and np.array_equal(x1[:3], x0) and np.array_equal(y1[:3], y0)
  assert np.isfinite(y1[-1]) and best == y0.max()


def test_telling_a_suggestion_twice_raises_and_records_nothing(mixed_space, tiny_model):
  opt = _told(mixed_space, tiny_model, 2)
  s = opt.ask()
  opt.tell(s, 1.0)
  with pytest.raises(ValueError, match=f"Trial {s.number} .* already told"):
    opt.tell(s, 2.0)
  assert len(opt.trials) == 3 and opt.trials[-1].value == 1.0
  # The same configuration as a plain dict is a new evaluation (e.g. a noisy re-run), not an error.
  opt.tell(dict(s), 3.0)
  assert [t.number for t in opt.trials] == [0, 1, 2, 3]


def test_remove_pending(mixed_space, tiny_model):
  opt = Optimizer(mixed_space, model=tiny_model, seed=0)
  s = opt.ask()
  opt.remove_pending(s)
  assert opt.pending == []
  with pytest.raises(ValueError, match="not a pending trial"):
    opt.remove_pending(s)


@pytest.mark.parametrize(
    "params, error",
    [
        ({"learning_rate": "0.01", "units": 4, "batch_size": 32, "optimizer": "adam"}, TypeError),
        ({"learning_rate": 1e-3, "units": 4.5, "batch_size": 32, "optimizer": "adam"}, (TypeError, ValueError)),
        ({"learning_rate": 1e-3, "units": 4, "batch_size": 33, "optimizer": "adam"}, ValueError),
        ({"learning_rate": 1e-3, "units": 4, "batch_size": 32, "optimizer": "rmsprop"}, ValueError),
    ],
)
def test_values_of_the_wrong_type_are_rejected_by_tell_and_add_pending(mixed_space, tiny_model, params, error):
  opt = Optimizer(mixed_space, model=tiny_model, seed=0)
  with pytest.raises(error):
    opt.tell(params, 1.0)
  with pytest.raises(error):
    opt.add_pending(params)
  assert opt.trials == [] and opt.pending == []


# -- Persistence ---------------------------------------------------------------


def test_a_saved_and_loaded_study_makes_the_same_next_suggestions(mixed_space, tiny_model, tmp_path):
  prior = {"learning_rate": priors.Normal(1e-3, 0.2), "optimizer": priors.Weights({"adam": 3, "sgd": 1, 3: 1, True: 1})}
  opt = _told(mixed_space, tiny_model, 4, seed=3, prior=prior, num_candidates=16)
  opt.tell({"learning_rate": 1e-2, "units": 3, "batch_size": 16, "optimizer": True}, math.nan)
  pending = opt.ask(2)
  path = tmp_path / "study.json"
  opt.save(path)
  resumed = Optimizer.load(path, model=tiny_model)
  assert resumed.trials == opt.trials and resumed.pending == pending
  assert [s.number for s in resumed.pending] == [s.number for s in pending]
  assert resumed.prior.beliefs == opt.prior.beliefs and resumed.num_candidates == 16
  assert resumed.ask(3) == opt.ask(3)
  resumed.tell(pending[0], 1.0)  # numbers survive: telling a resumed suggestion completes it
  assert len(resumed.pending) == 4


def test_save_is_atomic_and_load_rejects_bad_files(mixed_space, tiny_model, tmp_path):
  opt = _told(mixed_space, tiny_model, 2)
  path = tmp_path / "study.json"
  opt.save(path)
  assert [p.name for p in tmp_path.iterdir()] == ["study.json"]
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(ValueError, match="bad.json: not valid JSON"):
    Optimizer.load(tmp_path / "bad.json", model=tiny_model)
  (tmp_path / "other.json").write_text(json.dumps({"format": 99}))
  with pytest.raises(ValueError, match="format 1 expected, got 99"):
    Optimizer.load(tmp_path / "other.json", model=tiny_model)
  with pytest.raises(ValueError, match="pass model="):
    Optimizer.load(path)  # saved from an in-memory model
  data = json.loads(path.read_text())
  data["trials"][0]["params"]["units"] = 10_000
  (tmp_path / "edited.json").write_text(json.dumps(data))
  with pytest.raises(ValueError, match="10000"):
    Optimizer.load(tmp_path / "edited.json", model=tiny_model)


def test_a_study_of_the_shipped_checkpoint_reloads_without_model_argument(tmp_path):
  space = SearchSpace([Float("x", 0.0, 1.0), Int("n", 1, 5)])
  opt = Optimizer(space, seed=0, num_candidates=8)
  opt.tell({"x": 0.5, "n": 2}, 1.0)
  opt.save(tmp_path / "s.json")
  resumed = Optimizer.load(tmp_path / "s.json")
  assert resumed.engine is load_engine(None) and resumed.ask() == opt.ask()


# -- piBO priors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "beliefs, match",
    [
        ({"momentum": priors.Normal(0.9)}, "unknown parameter"),
        ({"optimizer": priors.Normal("adam")}, "categorical; use Weights"),
        ({"learning_rate": priors.Normal(0.5)}, "mean 0.5 is not a value"),
        ({"units": priors.Weights({2: 1.0})}, "Weights need a Categorical or Discrete"),
        ({"batch_size": priors.Weights({16: 1, 32: 1, 64: 1})}, r"missing \[128\]"),
        ({"batch_size": priors.Weights({16: 1, 32: 0, 64: 1, 128: 1})}, "must be a finite number > 0"),
        ({"optimizer": priors.Weights({"adam": 1, "sgd": 1, 3: 1, True: 1, "x": 1})}, r"unknown \['x'\]"),
        ({"units": "wide"}, "expected optformer.priors.Normal or Weights"),
    ],
)
def test_bad_priors_are_rejected(mixed_space, tiny_model, beliefs, match):
  with pytest.raises((ValueError, TypeError), match=match):
    Optimizer(mixed_space, model=tiny_model, prior=beliefs)


@pytest.mark.parametrize("width", [0.0, -0.1, 1.5, True])
def test_normal_width_must_be_in_unit_interval(width):
  with pytest.raises(ValueError, match="width must be in"):
    priors.Normal(0.5, width)


def test_prior_density_peaks_at_the_belief_and_is_floored(mixed_space):
  prior = priors.Prior(mixed_space, {
      "learning_rate": priors.Normal(1e-4, 0.05), "batch_size": priors.Weights({16: 1, 32: 1, 64: 1, 128: 5}),
  })
  base = {"units": 4, "optimizer": "adam"}
  configs = [{**base, "learning_rate": lr, "batch_size": bs} for lr in (1e-4, 1e-3, 1e-1) for bs in (128, 16)]
  logp = prior.log_density(configs).reshape(3, 2)
  assert np.all(np.diff(logp[:, 0]) < 0) and np.all(logp[:, 0] > logp[:, 1])  # decays away from the means
  floor = np.log(priors.FLOOR)
  assert np.all(logp > 2 * floor)  # never zero density: a wrong belief cannot rule a value out
  # A uniform belief scores zero everywhere.
  flat = priors.Prior(mixed_space, {"batch_size": priors.Weights({16: 2, 32: 2, 64: 2, 128: 2})})
  np.testing.assert_allclose(flat.log_density(configs), 0.0, atol=1e-12)


def test_prior_samples_concentrate_on_the_belief(mixed_space):
  prior = priors.Prior(mixed_space, {"learning_rate": priors.Normal(1e-2, 0.05), "optimizer": priors.Weights({"adam": 97, "sgd": 1, 3: 1, True: 1})})
  samples = prior.sample(np.random.default_rng(0), 400)
  for s in samples:
    assert mixed_space.validate(s) == s
  u = np.array([mixed_space["learning_rate"].to_unit(s["learning_rate"]) for s in samples])
  assert abs(np.median(u) - mixed_space["learning_rate"].to_unit(1e-2)) < 0.02 and u.std() < 0.07
  assert np.mean([s["optimizer"] == "adam" for s in samples]) > 0.9


def test_first_suggestions_of_an_empty_study_come_from_the_prior(tiny_model):
  space = SearchSpace([Float("x", 0.0, 1.0), Discrete("k", (1, 2, 4, 8))])
  opt = Optimizer(space, model=tiny_model, seed=0, prior={"x": priors.Normal(0.9, 0.02)})
  for s in opt.ask(4):
    assert abs(s["x"] - 0.9) < 0.1


def test_a_misleading_prior_does_not_stop_convergence():
  """Shipped model, 2-D quadratic with its optimum far from a confident, wrong belief."""
  space = SearchSpace([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
  wrong = {"x": priors.Normal(0.05, 0.1), "y": priors.Normal(0.05, 0.1)}
  opt = Optimizer(space, prior=wrong, seed=0)
  values = []
  for _ in range(30):
    s = opt.ask()
    values.append((s["x"] - 0.8) ** 2 + (s["y"] - 0.75) ** 2)
    opt.tell(s, values[-1])
  # The first suggestions follow the prior; later ones leave it for the optimum.
  assert min(values[:5]) > 0.5
  assert min(values) < 0.05
