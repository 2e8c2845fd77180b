"""Forbidden clauses (optformer/forbidden.py): semantics on configurations and unit rows, never suggested by any
source of candidates, refused by tell, saved and loaded with the space."""

import dataclasses
import json

import numpy as np
import pytest

import optformer
from optformer import Categorical, Condition, Float, Forbidden, Int, SearchSpace
from optformer import acquisition_search
from optformer.acquisition_search import SearchConfig
from optformer.forbidden import ForbiddenError
from optformer.model import network


def space() -> SearchSpace:
  """kernel=poly with degree 4 or 5 is forbidden (degree exists for poly only), and so is a > b."""
  return SearchSpace([
      Categorical("kernel", ["linear", "rbf", "poly"]),
      Int("degree", 1, 5, condition=Condition("kernel", ["poly"])),
      Float("a", 0.0, 1.0),
      Float("b", 0.0, 1.0),
  ], forbidden=[Forbidden({"kernel": "poly", "degree": [5, 4]}), Forbidden(relations=[("a", ">", "b")])])


def _forbidden(c) -> bool:
  return (c["kernel"] == "poly" and c["degree"] >= 4) or c["a"] > c["b"]


def test_validate_refuses_a_forbidden_configuration_and_names_the_clause():
  s = space()
  with pytest.raises(ForbiddenError, match=r"kernel == 'poly' and degree in \[4, 5\]"):
    s.validate({"kernel": "poly", "degree": 5, "a": 0.1, "b": 0.2})
  with pytest.raises(ValueError, match="a > b"):
    s.validate({"kernel": "rbf", "a": 0.3, "b": 0.2})
  assert s.validate({"kernel": "poly", "degree": 3, "a": 0.1, "b": 0.2})["degree"] == 3
  assert s.is_forbidden({"kernel": "poly", "degree": 4, "a": 0.1, "b": 0.2})
  assert not s.is_forbidden({"kernel": "linear", "a": 0.2, "b": 0.2})  # a == b: not a > b.


def test_a_literal_on_an_inactive_parameter_does_not_hold():
  s = SearchSpace([Categorical("kernel", ["linear", "poly"]), Int("degree", 1, 5, condition=("kernel", ["poly"])),
                   Float("c", 0.0, 1.0)], forbidden=[Forbidden({"degree": 5})])
  assert not s.is_forbidden({"kernel": "linear", "c": 0.5})
  assert s.is_forbidden({"kernel": "poly", "degree": 5, "c": 0.5})


def test_unit_forbidden_agrees_with_validate_on_decoded_rows():
  s, rng = space(), np.random.default_rng(0)
  u = rng.random((500, 4))
  u[:, 0] = rng.integers(3, size=500)
  u = s.snap(u)
  mask = s.unit_forbidden(u)
  assert mask.any() and not mask.all()
  assert list(mask) == [s.is_forbidden(s.from_unit(row)) for row in u]


def test_sample_uniform_points_and_local_moves_skip_forbidden_configurations():
  s, rng = space(), np.random.default_rng(1)
  assert not any(_forbidden(s.sample(rng)) for _ in range(300))
  points = acquisition_search.uniform_points(s, rng, 256)
  assert len(points) == 256 and not s.unit_forbidden(points).any()
  moves = acquisition_search.local_moves(s, rng, points[:4], 256)
  assert 0 < len(moves) <= 256 and not s.unit_forbidden(moves).any()


def test_search_drops_forbidden_extra_candidates():
  s, rng = space(), np.random.default_rng(2)
  bad = np.array([[1.0, 0.5, 0.9, 0.1]])  # kernel=rbf, a=0.9 > b=0.1: forbidden, and it would score highest.
  assert s.unit_forbidden(bad).all()
  acq = lambda u: u[:, 2] - u[:, 3]  # Rewards a > b.
  unit, _, _ = acquisition_search.search(s, rng, acq, SearchConfig(num_random=64), [], lambda u: np.ones(len(u), bool), bad)
  assert not s.is_forbidden(s.from_unit(unit))


def test_bad_clauses_are_refused_with_the_reason():
  params = [Categorical("k", ["x", "y"]), Float("a", 0.0, 1.0), Int("n", 1, 3)]
  with pytest.raises(ValueError, match="unknown parameter"):
    SearchSpace(params, forbidden=[Forbidden({"z": 1})])
  with pytest.raises(ValueError, match="not one of"):
    SearchSpace(params, forbidden=[Forbidden({"k": "w"})])
  with pytest.raises(ValueError, match="forbids every configuration"):
    SearchSpace(params, forbidden=[Forbidden({"k": ["x", "y"]})])
  with pytest.raises(ValueError, match="need numeric values"):
    SearchSpace(params, forbidden=[Forbidden(relations=[("k", "<", "a")])])
  with pytest.raises(ValueError, match="op"):
    Forbidden(relations=[("a", "~", "n")])
  with pytest.raises(ValueError, match="at least one literal"):
    Forbidden()


def test_space_json_round_trip_keeps_clauses_and_constants():
  s = SearchSpace(space().parameters, forbidden=space().forbidden, constants={"seed": 7})
  again = SearchSpace.from_json(json.loads(json.dumps(s.to_json())))
  assert again == s and again.forbidden == s.forbidden and again.constants == {"seed": 7}
  assert again != SearchSpace(space().parameters)


@pytest.fixture(scope="module")
def policy_model():
  cfg = dataclasses.replace(network.PFNConfig.tiny(), num_slot_ids=16, policy_tokens=16, max_context=32)
  return network.create_model(cfg, seed=0)


def test_ask_never_suggests_forbidden_and_tell_refuses_them(tiny_v2_model, tmp_path):
  opt = optformer.Optimizer(space(), model=tiny_v2_model, seed=0, search=SearchConfig(num_random=64, num_local=32, rounds=1))
  for _ in range(10):  # The first suggestion (no scale yet) and the acquisition search's.
    s = opt.ask()
    assert not _forbidden(s)
    opt.tell(s, (s["a"] - 0.9) ** 2 + (s["b"] - 0.1) ** 2)  # Best near a > b: the acquisition pulls there.
  with pytest.raises(ValueError, match="forbidden"):
    opt.tell({"kernel": "rbf", "a": 0.9, "b": 0.1}, 0.0)
  assert len(opt.trials) == 10
  opt.save(tmp_path / "study.json")
  again = optformer.Optimizer.load(tmp_path / "study.json", model=tiny_v2_model)
  assert again.space.forbidden == opt.space.forbidden and again.ask() == opt.ask()


def test_prior_samples_and_policy_samples_skip_forbidden(policy_model):
  prior = {"a": optformer.priors.Normal(0.6, 0.2), "b": optformer.priors.Normal(0.4, 0.2)}  # About 3 in 4: a > b.
  opt = optformer.Optimizer(space(), model=policy_model, seed=0, prior=prior,
                            search=SearchConfig(num_random=16, num_policy=32))
  assert not any(_forbidden(c) for c in opt.prior.sample(np.random.default_rng(0), 64))
  assert len(opt.prior.sample(np.random.default_rng(0), 64)) == 64
  opposed = optformer.priors.Prior(space(), {"a": optformer.priors.Normal(1.0, 0.01), "b": optformer.priors.Normal(0.0, 0.01)})
  assert opposed.sample(np.random.default_rng(0), 8) == []  # Beliefs and clauses exclude each other: none.
  assert not any(_forbidden(c) for c in opt.sample_policy(64))
  for _ in range(4):
    s = opt.ask()
    assert not _forbidden(s)
    opt.tell(s, s["a"])


def test_predictions_may_be_asked_at_forbidden_configurations(tiny_v2_model):
  s, rng = space(), np.random.default_rng(3)
  told = [s.sample(rng) for _ in range(6)]
  bad = {"kernel": "poly", "degree": 5, "a": 0.9, "b": 0.1}
  opt = optformer.Optimizer(s, model=tiny_v2_model, seed=0)
  for c in told:
    opt.tell(c, c["a"])
  assert np.isfinite(opt.predict([bad]).mean).all()
  assert s.validate(bad, allow_forbidden=True) == bad
  sur = optformer.Surrogate(s, model=tiny_v2_model).fit(told, [c["a"] for c in told])
  np.testing.assert_allclose(sur.predict([bad]), opt.predict([bad]).mean, rtol=1e-6)


def test_search_falls_back_to_uniform_points_when_every_candidate_is_forbidden():
  s, rng = space(), np.random.default_rng(4)
  bad = np.array([[1.0, 0.5, 0.9, 0.1]] * 8)  # Policy samples, all forbidden (a > b).
  unit, _, n = acquisition_search.search(s, rng, lambda u: u[:, 2], SearchConfig(num_random=0, num_policy=8), [],
                                         lambda u: np.ones(len(u), bool), bad)
  assert n == 64 and not s.is_forbidden(s.from_unit(unit))


def test_relations_compare_values_not_their_order():
  s = SearchSpace([Categorical("big", [100, 10, 1], ordered=True), Int("small", 1, 100),
                   Categorical("p", ["x", "y"]), Categorical("q", ["y", "x"], ordered=True)],
                  forbidden=[Forbidden(relations=[("big", "<", "small")]), Forbidden(relations=[("p", "==", "q")])])
  assert s.is_forbidden({"big": 10, "small": 11, "p": "x", "q": "y"})  # 10 < 11, although 10 is level 1 of 3.
  assert not s.is_forbidden({"big": 10, "small": 10, "p": "x", "q": "y"})
  assert s.is_forbidden({"big": 100, "small": 1, "p": "y", "q": "y"})  # Same choice, at another index.
  with pytest.raises(ValueError, match="need numeric values"):
    SearchSpace(s.parameters, forbidden=[Forbidden(relations=[("p", "<", "small")])])
