"""Parameter defaults, ordered categoricals and constants: semantics, encoding, the model's kinds, save/load."""

import json

import numpy as np
import pytest

import optformer
from optformer import Categorical, Discrete, Float, Int, SearchSpace
from optformer import acquisition_search
from optformer import search_space as ss


def test_defaults_are_validated_canonical_and_round_trip_through_json():
  space = SearchSpace([Float("lr", 1e-4, 1.0, log=True, default=1e-2), Int("n", 1, 9, default=3.0),
                       Discrete("bs", [16, 32], default=32), Categorical("opt", ["adam", "sgd"], default="sgd"),
                       Float("plain", 0.0, 1.0)])
  assert space["n"].default == 3 and type(space["n"].default) is int
  assert space["plain"].default is None and "default" not in space.to_json()[-1]
  assert "default" not in repr(space["plain"]) and "default=0.01" in repr(space["lr"])
  assert SearchSpace.from_json(json.loads(json.dumps(space.to_json()))) == space
  with pytest.raises(ValueError, match="outside"):
    Float("x", 0.0, 1.0, default=2.0)
  with pytest.raises(ValueError, match="not one of"):
    Categorical("c", ["a", "b"], default="z")


def test_an_ordered_categorical_is_read_as_ordered_levels():
  p = Categorical("size", ["small", "medium", "large"], ordered=True)
  assert p.kind == ss.KIND_ORDINAL and Categorical("c", ["a", "b"]).kind == ss.KIND_CATEGORICAL
  assert [p.to_unit(c) for c in p.choices] == [0.0, 0.5, 1.0]
  assert [p.from_unit(u) for u in (0.1, 0.4, 0.8)] == ["small", "medium", "large"]
  assert list(p.snap_units([0.2, 0.3, 2.0])) == [0.0, 0.5, 1.0]
  descending = Categorical("k", [100, 10, 1], ordered=True)  # Any order: the given one.
  assert descending.to_unit(100) == 0.0 and descending.from_unit(1.0) == 1
  with pytest.raises(TypeError, match="ordered"):
    Categorical("c", ["a", "b"], ordered="yes")


def test_ordered_categorical_in_conditions_forbidden_clauses_sampling_and_json():
  space = SearchSpace([
      Categorical("size", ["small", "medium", "large"], ordered=True),
      Int("width", 1, 4, condition=("size", ["medium", "large"])),
      Float("x", 0.0, 1.0),
  ], forbidden=[optformer.Forbidden({"size": "large", "width": 4})])
  rng = np.random.default_rng(0)
  rows = acquisition_search.uniform_points(space, rng, 400)
  configs = [space.from_unit(r) for r in rows]
  assert {c["size"] for c in configs} == {"small", "medium", "large"}
  assert all(("width" in c) == (c["size"] != "small") for c in configs)
  assert not any(c["size"] == "large" and c["width"] == 4 for c in configs)
  assert space.unit_active_mask(rows).tolist() == space.active_mask(configs).tolist()
  assert SearchSpace.from_json(json.loads(json.dumps(space.to_json()))) == space
  assert space.to_json()[0]["ordered"] is True


def test_optimizer_suggests_and_saves_an_ordered_categorical(tiny_v2_model, tmp_path):
  space = SearchSpace([Categorical("size", ["s", "m", "l", "xl"], ordered=True, default="m"), Float("x", 0.0, 1.0)],
                      constants={"seed": 1})
  opt = optformer.Optimizer(space, model=tiny_v2_model, seed=0, num_candidates=16)
  for _ in range(5):
    s = opt.ask()
    assert s["size"] in ("s", "m", "l", "xl") and set(s) == {"size", "x"}  # Constants are not parameters.
    opt.tell(s, ["s", "m", "l", "xl"].index(s["size"]) + s["x"])
  opt.save(tmp_path / "study.json")
  again = optformer.Optimizer.load(tmp_path / "study.json", model=tiny_v2_model)
  assert again.space == space and again.space["size"].ordered and again.space.constants == {"seed": 1}
  assert again.ask() == opt.ask()


def test_constants_must_not_shadow_parameters():
  with pytest.raises(ValueError, match="naming no parameter"):
    SearchSpace([Float("x", 0.0, 1.0)], constants={"x": 1})
  with pytest.raises(ValueError, match="string, bool, number or None"):
    SearchSpace([Float("x", 0.0, 1.0)], constants={"c": [1]})


def test_beta_belief_density_peaks_at_its_mode_and_samples_follow_it():
  space = SearchSpace([Float("x", 0.0, 10.0), Int("n", 1, 100, log=True)])
  prior = optformer.priors.Prior(space, {"x": optformer.priors.Beta(5.0, 2.0), "n": optformer.priors.Normal(10.5, 0.1)})
  dens = prior.log_density([{"x": v, "n": 10} for v in (1.0, 8.0, 9.99)])
  assert dens[1] > dens[0] and dens[1] > dens[2]  # Mode (5 - 1) / (5 + 2 - 2) = 0.8 of the range.
  xs = np.array([c["x"] for c in prior.sample(np.random.default_rng(0), 400)])
  assert abs(xs.mean() - 10 * 5 / 7) < 0.3
  again = optformer.priors.Prior.from_json(space, json.loads(json.dumps(prior.to_json())))
  assert again.beliefs == prior.beliefs
  with pytest.raises(ValueError, match="alpha must be a finite number >= 1"):
    optformer.priors.Beta(0.5, 2.0)
  with pytest.raises(ValueError, match="Beta belief needs a Float or Int"):
    optformer.priors.Prior(SearchSpace([Categorical("c", ["a", "b"])]), {"c": optformer.priors.Beta(2.0, 2.0)})


def test_policy_samples_of_an_ordered_categorical_are_its_choices():
  import dataclasses

  from optformer.model import network

  cfg = dataclasses.replace(network.PFNConfig.tiny(), num_slot_ids=16, policy_tokens=16, max_context=32)
  space = SearchSpace([Categorical("size", ["s", "m", "l", "xl"], ordered=True), Float("x", 0.0, 1.0)])
  opt = optformer.Optimizer(space, model=network.create_model(cfg, seed=0), seed=0)
  samples = opt.sample_policy(64)
  assert {s["size"] for s in samples} <= {"s", "m", "l", "xl"} and len({s["size"] for s in samples}) > 1
  assert all(space.validate(s) == s for s in samples)
