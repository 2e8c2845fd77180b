"""The acquisition search of ask(): valid candidates, the argmax of fresh candidates, local refinement, off-grid values."""

import numpy as np
import pytest

from optformer import Optimizer, SearchConfig
from optformer import search_space as ss
from optformer.acquisition_search import local_moves, search, uniform_points


@pytest.fixture(scope="module")
def space():
  return ss.SearchSpace([
      ss.Float("lr", 1e-5, 1e-1, log=True), ss.Int("n", 1, 10**6, log=True), ss.Int("k", 0, 7),
      ss.Discrete("b", (16, 32, 64)), ss.Categorical("c", ("a", "b", "c")),
  ])


def test_snap_is_the_vectorized_round_trip_of_every_row(space):
  rng = np.random.default_rng(0)
  u = rng.random((300, len(space))) * 1.2 - 0.1
  u[:, 4] = rng.integers(0, 3, 300)
  want = np.array([space.to_unit(space.from_unit(np.clip(r, [0, 0, 0, 0, -1], [1, 1, 1, 1, 9]))) for r in u])
  np.testing.assert_allclose(space.snap(u), want, atol=1e-12)


def test_pools_are_valid_and_local_moves_stay_near_their_starts(space):
  rng = np.random.default_rng(1)
  for rows in (uniform_points(space, rng, 500), local_moves(space, rng, uniform_points(space, rng, 3), 500)):
    for r in rows:
      cfg = space.from_unit(r)
      assert space.validate(cfg) == cfg and np.allclose(space.to_unit(cfg), r)
  start = np.array([[0.5, 0.5, 0.5, 0.5, 1.0]])
  moves = local_moves(space, rng, start, 1000)
  assert np.all(np.any(moves != start, axis=1))  # Every move changes something.
  assert np.mean(np.abs(moves[:, 0] - 0.5) < 0.3) > 0.9
  assert len(local_moves(space, rng, np.zeros((0, 5)), 10)) == 0


def test_search_refines_toward_the_acquisition_maximum_and_skips_taken_points(space):
  target = np.array([0.3137, 0.71, 3 / 7, 0.5, 2.0])

  def acq(units):
    return -np.sum((units[:, :4] - target[:4]) ** 2, axis=1) - (units[:, 4] != 2)

  rng = np.random.default_rng(2)
  coarse = SearchConfig(num_random=64, num_local=0, rounds=0)
  fine = SearchConfig(num_random=64, num_local=0, rounds=6, refine_top=4, refine_moves=64)
  all_fresh = lambda u: np.ones(len(u), bool)
  gaps = []
  for cfg in (coarse, fine):
    scores = [search(space, np.random.default_rng(s), acq, cfg, np.zeros((0, 5)), all_fresh)[1] for s in range(8)]
    gaps.append(-np.mean(scores))
  assert gaps[1] < 0.3 * gaps[0]  # Refinement rounds get much closer than the pool alone.
  # Local moves of the best trials start there: with the target told, the best fresh point is near it.
  best, score, n = search(space, rng, acq, SearchConfig(num_random=8, num_local=256, rounds=1), target[None],
                          lambda u: ~np.all(np.isclose(u, space.snap(target[None])), axis=1))
  assert n == 8 + 256 + 64 and not np.allclose(best, space.snap(target[None])[0]) and score > -0.01
  # Nothing fresh (a space smaller than the history): the best of all is returned.
  best, _, _ = search(space, rng, acq, coarse, np.zeros((0, 5)), lambda u: np.zeros(len(u), bool))
  assert space.validate(space.from_unit(best))


@pytest.mark.parametrize("config", [SearchConfig(num_random=64, num_local=0, rounds=0),
                                    SearchConfig(num_random=32, num_local=32, rounds=3, refine_top=4, refine_moves=16)])
def test_search_returns_the_best_fresh_candidate_of_everything_it_scored(space, config):
  """The winner is the argmax of the acquisition over every fresh row scored (pool, extra rows and refinement
  moves), not any other candidate; rows that are not fresh never win, however good."""
  calls = []
  value = lambda u: -np.sum((u[:, :4] - 0.3) ** 2, axis=1) + 0.1 * (u[:, 4] == 1)

  def acq(units):
    calls.append((units.copy(), value(units)))
    return calls[-1][1]

  taken = lambda u: value(u) > -0.2  # The acquisition's best region is told already.
  rng = np.random.default_rng(4)
  extra = uniform_points(space, rng, 8)
  best, score, n = search(space, rng, acq, config, uniform_points(space, rng, 3), lambda u: ~taken(u), extra)
  units = np.concatenate([u for u, _ in calls])
  scores = np.concatenate([s for _, s in calls])
  assert n == len(units) == config.num_random + config.num_local + 8 + config.rounds * config.refine_moves
  fresh = ~taken(units)
  assert (~fresh).any() and scores[~fresh].max() > scores[fresh].max()  # The taken rows would win otherwise.
  i = int(np.argmax(np.where(fresh, scores, -np.inf)))
  np.testing.assert_array_equal(best, units[i])
  assert score == scores[i]


@pytest.mark.parametrize("bad", [dict(num_random=-1), dict(rounds=1.5), dict(num_random=0, num_local=0, num_policy=0),
                                 dict(refine_top=True)])
def test_search_config_refuses_bad_sizes(bad):
  with pytest.raises(ValueError, match="SearchConfig"):
    SearchConfig(**bad)
  with pytest.raises(ValueError, match="Unknown SearchConfig"):
    SearchConfig.from_json({"num_random": 3, "width": 2})


def _model_choice_space():
  """A 14-parameter model-choice space: svm / rf / mlp subtrees, kernel-dependent svm parameters, mlp widths per layer."""
  c = ss.Condition
  return ss.SearchSpace([
      ss.Categorical("model", ["svm", "rf", "mlp"]),
      ss.Categorical("kernel", ["linear", "rbf", "poly"], condition=("model", ["svm"])),
      ss.Float("C", 1e-3, 1e3, log=True, condition=("model", ["svm"])),
      ss.Float("gamma", 1e-4, 1.0, log=True, condition=("kernel", ["rbf", "poly"])),
      ss.Int("degree", 2, 5, condition=("kernel", ["poly"])),
      ss.Int("n_trees", 10, 500, log=True, condition=("model", ["rf"])),
      ss.Int("max_depth", 2, 32, condition=("model", ["rf"])),
      ss.Float("max_features", 0.1, 1.0, condition=("model", ["rf"])),
      ss.Int("n_layers", 1, 3, condition=("model", ["mlp"])),
      ss.Int("width_1", 8, 512, log=True, condition=("model", ["mlp"])),
      ss.Int("width_2", 8, 512, log=True, condition=c("n_layers", greater_than=1)),
      ss.Int("width_3", 8, 512, log=True, condition=c("n_layers", greater_than=2)),
      ss.Float("lr", 1e-5, 1e-1, log=True, condition=("model", ["mlp"])),
      ss.Discrete("batch", (32, 64, 128), condition=("model", ["mlp"])),
  ])


def _assert_valid_rows(space, rows):
  active = space.unit_active_mask(rows)
  assert np.all(rows[~active] == ss.INACTIVE_UNIT)
  configs = [space.from_unit(r) for r in rows]
  for r, cfg in zip(rows, configs):
    assert space.validate(cfg) == cfg
    np.testing.assert_allclose(space.to_unit(cfg), r, atol=1e-12)
  np.testing.assert_array_equal(space.active_mask(configs), active)
  return configs, active


def test_pools_of_a_conditional_space_are_valid_configurations_and_reach_every_branch():
  space = _model_choice_space()
  rng = np.random.default_rng(5)
  points = uniform_points(space, rng, 600)
  configs, active = _assert_valid_rows(space, points)
  assert {c["model"] for c in configs} == {"svm", "rf", "mlp"} and active.any(axis=0).all()
  assert {c["n_layers"] for c in configs if "n_layers" in c} == {1, 2, 3}
  moves = local_moves(space, rng, points[:4], 600)
  _assert_valid_rows(space, moves)


def test_a_move_that_switches_the_model_draws_the_subtree_it_activates():
  space = _model_choice_space()
  rng = np.random.default_rng(6)
  start = space.to_unit({"model": "rf", "n_trees": 100, "max_depth": 8, "max_features": 0.5})[None]
  moves = local_moves(space, rng, start, 1000)
  configs, active = _assert_valid_rows(space, moves)
  mlp = [c for c in configs if c["model"] == "mlp"]
  assert len(mlp) > 20  # The model flips with probability 1/D (or as the forced move).
  assert {c["n_layers"] for c in mlp} == {1, 2, 3}  # Children and grandchildren drawn, not left at 0.5.
  assert len({c["lr"] for c in mlp}) == len(mlp) and len({c["width_1"] for c in mlp}) > 10
  same = [c for c in configs if c["model"] == "rf"]
  assert all(set(c) == {"model", "n_trees", "max_depth", "max_features"} for c in same)
  assert np.mean([c != space.from_unit(start[0]) for c in configs]) > 0.9  # The forced move hits an active parameter.


def test_search_over_a_conditional_space_returns_a_valid_winner():
  space = _model_choice_space()
  seen = []

  def acq(units):
    seen.append(units)
    active = space.unit_active_mask(units)
    return np.where(active[:, 3], -np.abs(units[:, 3] - 0.25), -1.0)  # Wants gamma active near unit 0.25.

  rng = np.random.default_rng(7)
  best, score, n = search(space, rng, acq, SearchConfig(num_random=256, num_local=64, rounds=2, refine_moves=64),
                          uniform_points(space, rng, 3), lambda u: np.ones(len(u), bool))
  for rows in seen:
    _assert_valid_rows(space, rows)
  cfg = space.from_unit(best)
  assert cfg["model"] == "svm" and cfg["kernel"] in ("rbf", "poly") and score > -0.05
