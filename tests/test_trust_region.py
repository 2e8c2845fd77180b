"""The trust region of the acquisition search (optformer/trust_region.py, SearchConfig.trust_region)."""

import dataclasses

import numpy as np
import pytest

import optformer
from optformer import SearchConfig
from optformer import search_space as ss
from optformer import trust_region as tr
from optformer.acquisition_search import local_moves, search, uniform_points
from optformer.eval import optimizers


def _mixed_conditional_space():
  """Every kind of parameter, a conditional subtree under a categorical and an Int parent, and a forbidden clause."""
  return ss.SearchSpace([
      ss.Categorical("model", ["rf", "mlp"]),
      ss.Float("lr", 1e-5, 1e-1, log=True, condition=("model", ["mlp"])),
      ss.Int("n_layers", 1, 3, condition=("model", ["mlp"])),
      ss.Int("width_2", 8, 512, log=True, condition=ss.Condition("n_layers", greater_than=1)),
      ss.Int("n_trees", 10, 500, log=True, condition=("model", ["rf"])),
      ss.Discrete("batch", (16, 32, 64, 128)),
      ss.Float("dropout", 0.0, 0.5),
      ss.Int("seed_len", 0, 1000),
  ], forbidden=[ss.Forbidden({"model": "rf", "batch": 16})])


def test_the_radius_grows_linearly_from_the_minimum_to_the_off_radius():
  for d, r_min, f in ((1, 0.2, 5.0), (4, 0.2, 5.0), (10, 0.1, 2.0)):
    n_off = f * (d + 1)  # Vizier's rule: the region is off from f (D + 1) trials on.
    radii = [tr.radius(n, d, r_min, f) for n in range(int(n_off) + 3)]
    assert radii[0] == pytest.approx(r_min)
    assert np.all(np.diff(radii) > 0) and np.allclose(np.diff(radii), (0.5 - r_min) / n_off)
    assert tr.radius(int(np.ceil(n_off)), d, r_min, f) >= tr.OFF_RADIUS > radii[int(np.ceil(n_off)) - 1]
  cfg = SearchConfig(trust_region=True)
  assert cfg.trust_radius(3, 4) == tr.radius(3, 4) == pytest.approx(0.2 + 0.3 * 3 / 25)
  assert SearchConfig().trust_radius(0, 4) == tr.OFF_RADIUS  # Off: no region at any n.
  for bad in (dict(num_trials=-1, num_parameters=2), dict(num_trials=1, num_parameters=0),
              dict(num_trials=1, num_parameters=2, min_radius=0.0),
              dict(num_trials=1, num_parameters=2, min_radius=0.7),
              dict(num_trials=1, num_parameters=2, dimension_factor=0.0)):
    with pytest.raises(ValueError, match="radius needs"):
      tr.radius(**bad)


def test_distance_ignores_categoricals_and_inactive_parameters_and_allows_half_a_level():
  space = _mixed_conditional_space()
  rf = space.to_unit({"model": "rf", "n_trees": 10, "batch": 32, "dropout": 0.0, "seed_len": 0})
  mlp = space.to_unit({"model": "mlp", "lr": 1e-1, "n_layers": 3, "width_2": 512, "batch": 32, "dropout": 0.0,
                       "seed_len": 0})
  # Only batch, dropout and seed_len are active in both: the category and the subtrees do not count.
  assert tr.distance(space, rf[None], mlp[None])[0] == 0.0
  far = space.to_unit({"model": "rf", "n_trees": 500, "batch": 32, "dropout": 0.5, "seed_len": 0})
  assert tr.distance(space, rf[None], far[None])[0] == pytest.approx(1.0)  # n_trees at the other end.
  # Discrete levels are 1/3 apart: a neighbouring level is 1/3 - 1/6 away.
  next_batch = space.to_unit({"model": "rf", "n_trees": 10, "batch": 64, "dropout": 0.0, "seed_len": 0})
  assert tr.distance(space, rf[None], next_batch[None])[0] == pytest.approx(1 / 6)
  assert tr.distance(space, np.zeros((0, len(space))), rf[None])[0] == np.inf


@pytest.mark.parametrize("seed", range(4))
def test_every_restricted_candidate_is_a_valid_allowed_configuration_inside_the_region(seed):
  """Property test on a mixed conditional space with a forbidden clause: uniform points and local moves, mapped
  into the region, are valid configurations, none forbidden, each within the radius of a trial; rows already
  inside come back unchanged."""
  space = _mixed_conditional_space()
  rng = np.random.default_rng(seed)
  trusted = uniform_points(space, rng, 1 + seed * 3)
  r = tr.radius(len(trusted), len(space), min_radius=0.05 + 0.05 * seed)
  pool = np.concatenate([uniform_points(space, rng, 500), local_moves(space, rng, trusted, 300)])
  kept = tr.restrict(space, pool, trusted, r)
  assert len(kept) > 0.9 * len(pool)  # Mapped, not dropped.
  assert np.all(tr.distance(space, trusted, kept) <= r + 1e-12)
  assert not space.unit_forbidden(kept).any()
  np.testing.assert_array_equal(space.snap(kept), kept)
  for row in kept:
    config = space.from_unit(row)
    assert space.validate(config) == config
  inside = pool[tr.distance(space, trusted, pool) <= r]
  assert {tuple(u) for u in inside} <= {tuple(u) for u in kept}
  # A float coordinate mapped in keeps varying: the pool is spread over the region, not piled on its faces.
  dropout = kept[:, [p.name for p in space].index("dropout")]
  assert len(np.unique(np.round(dropout, 6))) > 0.5 * len(kept)
  np.testing.assert_array_equal(tr.restrict(space, pool, trusted, tr.OFF_RADIUS), pool)


def test_the_search_winner_stays_in_the_region_even_when_the_acquisition_prefers_corners():
  space = ss.SearchSpace([ss.Float(f"x{i}", -5.0, 5.0) for i in range(4)])
  corner_loving = lambda u: np.abs(u - 0.5).sum(axis=1)  # Largest at the corners of the box.
  trusted = np.full((2, 4), 0.5)
  trusted[1] = 0.55
  fresh = lambda u: np.ones(len(u), bool)
  config = SearchConfig(trust_region=True, num_local=64, rounds=1)
  unit, score, _ = search(space, np.random.default_rng(0), corner_loving, config, trusted, fresh, trusted_NxD=trusted)
  r = config.trust_radius(2, 4)
  assert tr.distance(space, trusted, unit[None])[0] <= r + 1e-12
  assert score > 4 * (r - 0.02)  # It still reaches the region's far corner.
  off = dataclasses.replace(config, trust_region=False)
  unit_off, _, _ = search(space, np.random.default_rng(0), corner_loving, off, trusted, fresh, trusted_NxD=trusted)
  assert tr.distance(space, trusted, unit_off[None])[0] > r


def test_off_by_default_and_an_off_region_leave_the_search_unchanged():
  assert SearchConfig().trust_region is False
  space = _mixed_conditional_space()
  trusted = uniform_points(space, np.random.default_rng(1), 5)
  acq = lambda u: -np.abs(u - 0.3).sum(axis=1)
  fresh = lambda u: np.ones(len(u), bool)
  cfg = SearchConfig(num_random=256, num_local=32, rounds=1)
  runs = [search(space, np.random.default_rng(7), acq, c, trusted, fresh, trusted_NxD=t) for c, t in (
      (cfg, None), (cfg, trusted), (dataclasses.replace(cfg, trust_min_radius=0.05), trusted),
      (dataclasses.replace(cfg, trust_region=True, trust_min_radius=0.5), trusted))]  # r >= 0.5: off.
  for unit, score, count in runs[1:]:
    np.testing.assert_array_equal(unit, runs[0][0])
    assert (score, count) == runs[0][1:]


@pytest.mark.parametrize("warping", ["none", "half_rank"])  # With the output warping too (both read told trials).
def test_optimizer_suggestions_stay_in_the_region_and_the_option_is_saved_with_the_study(
    tiny_v2_model, mixed_space, tmp_path, warping):
  cfg = SearchConfig(num_random=64, trust_region=True, trust_min_radius=0.1, trust_dimension_factor=3.0,
                     output_warping=warping)
  opt = optformer.Optimizer(mixed_space, model=tiny_v2_model, seed=0, search=cfg)
  plain = optformer.Optimizer(mixed_space, model=tiny_v2_model, seed=0,
                              search=dataclasses.replace(cfg, trust_region=False))
  objective = lambda p: float(np.log10(p["learning_rate"]) ** 2 + p["units"] / 10)
  moved_outside = 0
  for n in range(6):
    units = np.array([mixed_space.to_unit(t.params) for t in opt.trials]).reshape(-1, len(mixed_space))
    s, s_plain = opt.ask(), plain.ask()
    if n:  # The first trial is a uniform sample (no scale yet); the model's suggestions stay in the region.
      r = cfg.trust_radius(n, len(mixed_space))
      assert tr.distance(mixed_space, units, mixed_space.to_unit(s)[None])[0] <= r + 1e-12
      moved_outside += tr.distance(mixed_space, units, mixed_space.to_unit(s_plain)[None])[0] > r
    opt.tell(s, objective(s))
    plain.remove_pending(s_plain)
    plain.tell(dict(s), objective(s))  # The same history as opt's.
  assert moved_outside  # The region changed something: without it some suggestions lie outside.
  path = tmp_path / "study.json"
  opt.save(path)
  twin = optformer.Optimizer.load(path, model=tiny_v2_model)
  assert twin.search == cfg
  assert dict(twin.ask()) == dict(opt.ask())  # The restored study suggests what the original does.
  data = opt.to_json()
  for key in ("trust_region", "trust_min_radius", "trust_dimension_factor"):  # A study saved before the option.
    del data["options"]["search"][key]
  assert optformer.Optimizer.from_json(data, model=tiny_v2_model).search == dataclasses.replace(
      cfg, trust_region=False, trust_min_radius=0.2, trust_dimension_factor=5.0)


@pytest.mark.parametrize("bad", [dict(trust_region=1), dict(trust_region="yes"), dict(trust_min_radius=0.0),
                                 dict(trust_min_radius=0.6), dict(trust_min_radius=True),
                                 dict(trust_dimension_factor=0), dict(trust_dimension_factor=float("inf")),
                                 dict(trust_dimension_factor="5")])
def test_bad_trust_region_values_raise_a_clear_error(bad):
  key, value = next(iter(bad.items()))
  with pytest.raises(ValueError, match=f"SearchConfig.{key} must be .*got {value!r}"):
    SearchConfig(**bad)
  with pytest.raises(ValueError, match=key):
    SearchConfig.from_json(dict(SearchConfig().to_json(), **bad))


def test_benchmark_entries_take_the_trust_region(tiny_v2_model, mixed_space):
  opt = optimizers.make("optformer:trust_region=1,trust_min_radius=0.1,initial_design=centre", mixed_space,
                        "minimize", 0, model=tiny_v2_model)
  assert opt.search.trust_region is True and opt.search.trust_min_radius == 0.1
  assert opt.designer.initial_design == "centre"
  assert optimizers.make("optformer:trust_region=false", mixed_space, "minimize", 0,
                         model=tiny_v2_model).search.trust_region is False
  with pytest.raises(ValueError, match="trust_region=2 must be 1, 0, true or false"):
    optimizers.make("optformer:trust_region=2", mixed_space, "minimize", 0, model=tiny_v2_model)
