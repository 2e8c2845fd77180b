"""The study's bookkeeping: what the model's context holds and what a study file stores. A tiny random-init model
(PFNConfig.tiny()) stands in for the shipped one, except where a test is about the shipped checkpoint itself."""

import json
import pathlib
import warnings

import numpy as np
import pytest

from optformer import checkpoint
from optformer.context import Context
from optformer.optimizer import Optimizer, Suggestion
from optformer.search_space import Categorical, Float, Int, SearchSpace
from optformer.surrogate import Surrogate


@pytest.fixture(scope="module")
def tiny_v2(tiny_v2_model):
  """conftest's random-init model v2: PFNConfig.tiny() with max_context=16 (buckets 8, 16), so truncation is cheap."""
  assert tiny_v2_model.config.max_context == 16
  return tiny_v2_model


@pytest.fixture(scope="module")
def space():
  return SearchSpace([Float("x", -2.0, 2.0), Int("n", 1, 9), Categorical("c", ("a", "b"))])


def _objective(p) -> float:
  return (p["x"] - 0.5) ** 2 + 0.1 * p["n"] + (0.3 if p["c"] == "b" else 0.0)


def _told(space, model, n, goal="minimize", sign=1.0, seed=0) -> Optimizer:
  opt = Optimizer(space, goal, model=model, seed=seed, compilation_cache=False)
  rng = np.random.default_rng(1)
  for _ in range(n):
    p = space.sample(rng)
    opt.tell(p, sign * _objective(p))
  return opt


_QUERIES = [{"x": x, "n": n, "c": c} for x in (-1.5, 0.0, 0.5, 1.9) for n in (1, 9) for c in ("a", "b")]


def _context(opt: Optimizer) -> Context:
  return opt._model_context()[0]


# -- An edited suggestion ---------------------------------------------------------------------------------------


def test_an_edited_suggestion_enters_the_context_with_its_edited_values(space, tiny_v2, tmp_path):
  opt = _told(space, tiny_v2, 4)
  batch = opt.ask(3)
  edited = batch[0]
  assert isinstance(edited, Suggestion)
  before = _context(opt)  # Caches the unit rows of the pending suggestions.
  edited["x"] = -1.25 if edited["x"] > 0 else 1.25
  opt.tell(edited, 0.7)
  assert opt.trials[-1].params["x"] == edited["x"]
  ctx = _context(opt)
  row = space.to_unit(edited)
  assert any(np.array_equal(u, row) for u in ctx.units), "the context lacks the edited point"
  assert not any(np.array_equal(u, space.to_unit(dict(edited, x=-edited["x"]))) for u in ctx.units[:5])
  assert len(ctx.units) == len(before.units)  # 4 told + 1 told edited + 2 pending.

  path = tmp_path / "study.json"
  opt.save(path)
  twin = Optimizer.load(path, model=tiny_v2)
  np.testing.assert_array_equal(_context(twin).units, ctx.units)
  np.testing.assert_array_equal(_context(twin).y, ctx.y)
  a, b = opt.predict(_QUERIES), twin.predict(_QUERIES)
  np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(a.std, b.std, rtol=1e-6, atol=1e-9)


def test_an_edited_trial_params_dict_is_what_the_model_reads(space, tiny_v2):
  opt = _told(space, tiny_v2, 3)
  _context(opt)
  opt.trials[0].params["n"] = 9 if opt.trials[0].params["n"] != 9 else 1  # Trial is frozen, its dict is not.
  assert any(np.array_equal(u, space.to_unit(opt.trials[0].params)) for u in _context(opt).units)


# -- The study file: format and model reference -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", [True, 1.0, "1", None])
def test_a_study_file_whose_format_is_not_the_integer_1_is_refused(space, tiny_v2, tmp_path, fmt):
  data = _told(space, tiny_v2, 1).to_json()
  data["format"] = fmt
  with pytest.raises(ValueError, match=f"format 1 expected, got {fmt!r}"):
    Optimizer.from_json(data, model=tiny_v2)


def test_an_empty_model_string_is_refused(space, tiny_v2):
  with pytest.raises(ValueError, match="model='' names no checkpoint"):
    Optimizer(space, model="")
  with pytest.raises(ValueError, match="model='' names no checkpoint"):
    Surrogate(space, model="")
  with pytest.raises(TypeError, match="model must be a PFNSurrogate, a checkpoint directory or None, got int"):
    Optimizer(space, model=3)
  data = _told(space, tiny_v2, 1).to_json()
  data["model"] = ""
  with pytest.raises(ValueError, match="field 'model': an empty string"):
    Optimizer.from_json(data)


def test_the_shipped_model_is_stored_by_name_and_found_after_the_checkout_moves(space, tmp_path):
  opt = Optimizer(space, seed=0, compilation_cache=False)  # The shipped default model.
  opt.tell({"x": 0.1, "n": 3, "c": "a"}, 1.0)
  data = opt.to_json()
  assert data["model"] == "shipped:" + checkpoint.DEFAULT_CHECKPOINT.name
  assert Optimizer.from_json(data).model_path == str(checkpoint.DEFAULT_CHECKPOINT)
  explicit = Optimizer(space, model=checkpoint.V2_CHECKPOINT, compilation_cache=False).to_json()["model"]
  assert explicit == data["model"]
  # A study file written before "shipped:<name>": the absolute path of a checkout that has since moved.
  data["model"] = str(tmp_path / "old_checkout" / "checkpoints" / checkpoint.DEFAULT_CHECKPOINT.name)
  again = Optimizer.from_json(data)
  assert pathlib.Path(again.model_path) == checkpoint.DEFAULT_CHECKPOINT and again.trials == opt.trials
  data["model"] = "default"
  assert pathlib.Path(Optimizer.from_json(data).model_path) == checkpoint.DEFAULT_CHECKPOINT


# A study file written with the retired model v1 (format 1, as Optimizer.save wrote it then): its prompt, policy
# candidates and policy pool sizes, and three trials.
V1_STUDY = """{"format": 1, "space": [{"type": "float", "name": "x", "low": -2.0, "high": 2.0, "log": false},
 {"type": "int", "name": "n", "low": 1, "high": 9, "log": false}, {"type": "categorical", "name": "c", "choices": ["a", "b"]}],
 "goal": "minimize", "model": "MODEL",
 "options": {"num_candidates": 32, "temperature": 0.7, "algorithm": "gp_ucb", "candidates": "policy", "prior": null,
  "prior_beta": 1.0, "acquisition": "ei", "ucb_beta": 4.0, "search": {"num_random": 64, "num_local": 0,
  "num_top_trials": 5, "rounds": 0, "refine_top": 8, "refine_moves": 64, "num_policy": 128}},
 "trials": [{"number": 0, "params": {"x": 0.5, "n": 3, "c": "a"}, "value": 1.25},
  {"number": 1, "params": {"x": -1.0, "n": 7, "c": "b"}, "value": null},
  {"number": 2, "params": {"x": 1.5, "n": 1, "c": "a"}, "value": 0.75}],
 "pending": [], "next_number": 3, "rng": RNG, "warned_truncation": false, "study_id": "0123abcd"}"""


@pytest.mark.parametrize("reference", ["shipped:optformer-gp-v1", "/old/checkout/checkpoints/optformer-gp-v1"])
def test_a_study_made_with_model_v1_loads_and_continues_on_the_default_model(space, tmp_path, reference):
  rng = json.dumps(np.random.default_rng(5).bit_generator.state)
  path = tmp_path / "v1_study.json"
  path.write_text(V1_STUDY.replace("MODEL", reference).replace("RNG", rng))
  with pytest.warns(UserWarning, match=r"model v1 \(optformer-gp-v1\), which was retired.*optformer-v2") as caught:
    opt = Optimizer.load(path)
  assert len([w for w in caught if "retired" in str(w.message)]) == 1
  assert pathlib.Path(opt.model_path) == checkpoint.DEFAULT_CHECKPOINT
  assert [t.number for t in opt.trials] == [0, 1, 2] and opt.trials[1].infeasible and opt.best[1] == 0.75
  # Its options carry over, except the policy's, which the default model does not have.
  assert (opt.num_candidates, opt.temperature, opt.candidates) == (32, 0.7, "search")
  assert (opt.search.num_random, opt.search.num_policy) == (64, 0)
  suggestion = opt.ask()
  assert suggestion.number == 3 and space.validate(suggestion) == dict(suggestion)
  saved = opt.to_json()
  assert saved["model"] == "shipped:" + checkpoint.DEFAULT_CHECKPOINT.name and "algorithm" not in saved["options"]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # Saved again, it is a study of the default model: no warning.
    Optimizer.from_json(saved)


def test_a_missing_model_directory_or_unknown_shipped_name_is_a_checkpoint_error(space, tiny_v2, tmp_path):
  data = _told(space, tiny_v2, 1).to_json()
  data["model"] = str(tmp_path / "runs" / "my-model")
  with pytest.raises(checkpoint.CheckpointError, match="my-model does not exist; pass model="):
    Optimizer.from_json(data)
  data["model"] = str(tmp_path / "checkpoints" / "not-shipped")  # Named like a shipped path, but no such model.
  with pytest.raises(checkpoint.CheckpointError, match="not-shipped does not exist"):
    Optimizer.from_json(data)
  data["model"] = "shipped:optformer-v9"
  with pytest.raises(checkpoint.CheckpointError, match="'shipped:optformer-v9' is not shipped"):
    Optimizer.from_json(data)


def test_a_user_checkpoint_is_stored_by_absolute_path(space, tiny_v2, tmp_path, monkeypatch):
  model_dir = checkpoint.save(tmp_path / "mine", tiny_v2.config, _pure(tiny_v2))
  monkeypatch.chdir(tmp_path)
  opt = Optimizer(space, model="mine", compilation_cache=False)
  assert opt.to_json()["model"] == str(model_dir)


def _pure(model):
  from flax import nnx

  return nnx.to_pure_dict(nnx.state(model))


# -- Truncation, maximize, fantasies on model v2 ------------------------------------------------------------------


def test_past_the_context_limit_the_model_sees_the_best_half_and_the_most_recent(space, tiny_v2):
  opt = _told(space, tiny_v2, 21)
  assert opt.backend.capabilities.max_context == 16
  with pytest.warns(UserWarning, match="21 trials; the model's context holds 16"):
    ctx = _context(opt)
  values = np.array([t.value for t in opt.trials])
  best8 = set(np.argsort(values, kind="stable")[:8].tolist())
  recent = [i for i in range(20, -1, -1) if i not in best8][:8]
  keep = sorted(best8 | set(recent))
  np.testing.assert_array_equal(ctx.y, -values[keep])  # Minimize: the model reads -value; original order.
  # The kept trials told to a fresh study give the same predictions: the model reads nothing else.
  twin = Optimizer(space, model=tiny_v2, compilation_cache=False)
  for i in keep:
    twin.tell(opt.trials[i].params, opt.trials[i].value)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # 16 trials: no truncation.
    np.testing.assert_allclose(opt.predict(_QUERIES).mean, twin.predict(_QUERIES).mean, rtol=1e-6)
  assert opt.best[1] == values.min()  # `best` reads all trials.


def test_the_shipped_v2_context_holds_256_trials(space):
  assert Optimizer(space, compilation_cache=False).backend.capabilities.max_context == 256


def test_maximize_is_minimize_of_the_negated_objective(space, tiny_v2):
  lo = _told(space, tiny_v2, 6, "minimize", 1.0)
  hi = _told(space, tiny_v2, 6, "maximize", -1.0)
  np.testing.assert_array_equal(_context(lo).y, _context(hi).y)
  a, b = lo.predict(_QUERIES), hi.predict(_QUERIES)
  np.testing.assert_allclose(b.mean, -a.mean, rtol=1e-6)
  np.testing.assert_allclose(b.std, a.std, rtol=1e-6)
  np.testing.assert_allclose(b.expected_improvement(), a.expected_improvement(), rtol=1e-6)
  assert hi.best[1] == -lo.best[1]
  assert lo.ask() == hi.ask()


def test_pending_trials_are_fantasized_with_the_predicted_mean(space, tiny_v2):
  opt = _told(space, tiny_v2, 5)
  first, second = opt.ask(2)
  # The first pending trial enters the context with the mean predicted from the told trials (kriging believer).
  twin = _told(space, tiny_v2, 5)
  mean = float(twin.predict([first]).mean[0])
  assert np.isfinite(mean)
  twin.tell(dict(first), mean)
  opt.remove_pending(second)
  np.testing.assert_allclose(_context(opt).y, _context(twin).y, rtol=1e-6)
  np.testing.assert_allclose(opt.predict(_QUERIES).mean, twin.predict(_QUERIES).mean, rtol=1e-5)
  assert second != first


@pytest.mark.slow
def test_the_shipped_model_truncates_past_256_trials_and_still_suggests(space):
  opt = Optimizer(space, seed=0)
  rng = np.random.default_rng(2)
  for _ in range(260):
    p = space.sample(rng)
    opt.tell(p, _objective(p))
  with pytest.warns(UserWarning, match="260 trials; the model's context holds 256"):
    suggestion = opt.ask()
  assert space.validate(suggestion) == dict(suggestion)
  ctx = _context(opt)  # 260 told + 1 pending, kept: the best 128, then the most recent.
  assert len(ctx.y) == 256
  internal = -np.array([t.value for t in opt.trials])
  assert np.sort(ctx.y[~np.isnan(ctx.y)])[-128:].min() >= np.sort(internal)[-128]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # The warning is given once per study.
    assert np.isfinite(opt.predict(_QUERIES).mean).all()
