"""The Sobol pool and gradient refinement of the acquisition search (SearchConfig.pool, grad_top), on the tiny model."""

import numpy as np
import pytest
from scipy.stats import qmc

import optformer
from optformer import SearchConfig
from optformer import search_space as ss
from optformer.acquisition_search import gradient_moves, movable_mask, search, uniform_points
from optformer.context import Context
from optformer.model import Backend


def _posterior(model, space, n=10, seed=0):
  """The tiny model conditioned on n uniform trials of `space` with a smooth objective; (posterior, best)."""
  rng = np.random.default_rng(seed)
  units = uniform_points(space, rng, n)
  y = -np.sum((np.clip(units, 0, 1) - 0.3) ** 2, axis=1)
  backend = Backend.for_space(model, space)
  active = space.unit_active_mask(units) if space.is_conditional else None
  return backend.condition(Context.from_rows(list(zip(units, y)), len(space)), active), float(y.max())


def _acquisition(posterior, space, best):
  active = lambda u: space.unit_active_mask(u) if space.is_conditional else None
  return lambda u: posterior.acquisition(u, best, "ei", active=active(u))


def _ascend(posterior, space, best):
  active = lambda u: space.unit_active_mask(u) if space.is_conditional else None
  return lambda u, movable, steps, radius: posterior.ascend_ei(u, best, movable, steps, active(u), radius)[0]


@pytest.fixture(scope="module")
def floats():
  return ss.SearchSpace([ss.Float(f"x{i}", -5.0, 5.0) for i in range(3)])


@pytest.fixture(scope="module")
def conditional():
  return ss.SearchSpace([
      ss.Categorical("kernel", ["linear", "rbf", "poly"]),
      ss.Float("C", 1e-3, 1e3, log=True),
      ss.Float("gamma", 1e-4, 1.0, log=True, condition=("kernel", ["rbf", "poly"])),
      ss.Int("degree", 2, 50, condition=ss.Condition("kernel", ["poly"])),
  ])


# -- Sobol pool ------------------------------------------------------------------


def test_sobol_pool_is_valid_reproducible_and_more_even_than_uniform(mixed_space, floats):
  for seed in range(3):
    rows = uniform_points(mixed_space, np.random.default_rng(seed), 100, "sobol")
    assert rows.shape == (100, len(mixed_space))
    np.testing.assert_array_equal(rows, mixed_space.snap(rows))
    for r in rows[:20]:
      assert mixed_space.validate(mixed_space.from_unit(r)) is not None
    counts = np.bincount(rows[:, 3].astype(int), minlength=4)  # 4 categories: Sobol strata give 25 each.
    assert counts.min() >= 20
  again = uniform_points(mixed_space, np.random.default_rng(0), 100, "sobol")
  np.testing.assert_array_equal(again, uniform_points(mixed_space, np.random.default_rng(0), 100, "sobol"))
  # Lower discrepancy than independent uniform points, on average over seeds.
  disc = {pool: np.mean([qmc.discrepancy(uniform_points(floats, np.random.default_rng(s), 128, pool))
                         for s in range(5)]) for pool in ("uniform", "sobol")}
  assert disc["sobol"] < 0.5 * disc["uniform"]


def test_sobol_pool_redraws_forbidden_rows_and_keeps_inactive_slots(conditional):
  space = ss.SearchSpace(list(conditional), forbidden=[optformer.Forbidden({"kernel": "linear"})])
  rows = uniform_points(space, np.random.default_rng(0), 50, "sobol")
  assert len(rows) == 50 and not space.unit_forbidden(rows).any()
  active = space.unit_active_mask(rows)
  assert np.all(rows[~active] == ss.INACTIVE_UNIT)
  with pytest.raises(ValueError, match="pool"):
    uniform_points(space, np.random.default_rng(0), 5, "halton")


def test_search_config_checks_and_round_trips_the_new_fields():
  cfg = SearchConfig(pool="sobol", grad_top=4, grad_steps=7, grad_radius=0.1, grad_ordinal=True)
  assert SearchConfig.from_json(cfg.to_json()) == cfg
  bad_values = (dict(pool="halton"), dict(grad_top=-1), dict(grad_steps=1.5), dict(grad_ordinal=1), dict(grad_radius=0),
                dict(grad_radius=1.5), dict(grad_radius=True))
  for bad in bad_values:
    with pytest.raises(ValueError, match=next(iter(bad))):
      SearchConfig(**bad)
  assert SearchConfig().pool == "uniform" and SearchConfig().grad_top == 0  # Defaults unchanged (off).


# -- Gradient ascent through the network ------------------------------------------


def test_ascent_scores_are_the_acquisition_and_never_fall(tiny_v2_model, floats):
  posterior, best = _posterior(tiny_v2_model, floats)
  starts = uniform_points(floats, np.random.default_rng(1), 6)
  movable = np.ones(starts.shape, bool)
  same, s0 = posterior.ascend_ei(starts, best, movable, 0)
  np.testing.assert_array_equal(same, starts)
  np.testing.assert_allclose(s0, posterior.acquisition(starts, best, "ei"), atol=1e-4)  # The same score, float32.
  movable[:, 1] = False
  moved, s = posterior.ascend_ei(starts, best, movable, 10)
  assert np.all(s >= s0 - 1e-6) and np.any(s > s0 + 1e-3)  # The best of each trajectory; some climb.
  np.testing.assert_array_equal(moved[:, 1], starts[:, 1])  # Fixed coordinates stay.
  assert np.all((moved >= 0) & (moved <= 1)) and np.any(np.abs(moved - starts) > 1e-3)
  np.testing.assert_allclose(posterior.acquisition(moved, best, "ei"), s, atol=1e-4)
  near, _ = posterior.ascend_ei(starts, best, movable, 10, radius=0.03)  # The trust region.
  assert np.abs(near - starts).max() <= 0.03 + 1e-6 and np.any(np.abs(near - starts) > 1e-3)
  with pytest.raises(ValueError, match="steps"):
    posterior.ascend_ei(starts, best, movable, -1)


def test_refinement_never_lowers_the_chosen_candidates_acquisition(tiny_v2_model, floats):
  posterior, best = _posterior(tiny_v2_model, floats)
  acq, ascend = _acquisition(posterior, floats, best), _ascend(posterior, floats, best)
  fresh = lambda u: np.ones(len(u), bool)
  gains = []
  for seed in range(4):
    plain = search(floats, np.random.default_rng(seed), acq, SearchConfig(num_random=64), [], fresh)
    cfg = SearchConfig(num_random=64, grad_top=4, grad_steps=10)
    refined = search(floats, np.random.default_rng(seed), acq, cfg, [], fresh, ascend=ascend)
    assert refined[1] >= plain[1] and refined[2] > plain[2]  # Same pool, plus the refined points.
    assert np.all((refined[0] >= 0) & (refined[0] <= 1))
    gains.append(refined[1] - plain[1])
  assert max(gains) > 1e-3


def test_refinement_moves_only_active_numeric_parameters(tiny_v2_model, mixed_space, conditional):
  for space in (mixed_space, conditional):
    posterior, best = _posterior(tiny_v2_model, space)
    starts = uniform_points(space, np.random.default_rng(3), 12)
    ascend = _ascend(posterior, space, best)
    kinds = np.array([p.kind for p in space])
    for ordinal in (False, True):
      cfg = SearchConfig(grad_top=1, grad_steps=10, grad_radius=0.2 if ordinal else 1.0, grad_ordinal=ordinal)
      pairs = [(m, src) for src in starts for m in gradient_moves(space, ascend, src[None], cfg)]  # One start each.
      assert pairs
      moved, src = map(np.array, zip(*pairs))
      np.testing.assert_array_equal(moved, space.snap(moved))  # Valid configurations.
      fixed = ~movable_mask(space, src, ordinal)
      np.testing.assert_array_equal(moved[fixed], src[fixed])  # Categoricals, inactive slots, parents.
      assert np.abs(moved - src)[~fixed].max() <= cfg.grad_radius + 1e-9
      np.testing.assert_array_equal(space.unit_active_mask(moved), space.unit_active_mask(src))
      assert np.all(moved[:, kinds == ss.KIND_CATEGORICAL] == src[:, kinds == ss.KIND_CATEGORICAL])
      if not ordinal:
        assert np.all(moved[:, kinds == ss.KIND_ORDINAL] == src[:, kinds == ss.KIND_ORDINAL])
  mask = movable_mask(conditional, starts)
  inactive = ~conditional.unit_active_mask(starts)
  assert not mask[:, 0].any() and mask[:, 1].all() and not (mask & inactive).any() and not mask[:, 3].any()
  assert movable_mask(conditional, starts, ordinal=True)[:, 3].tolist() == (~inactive[:, 3]).tolist()


def test_optimizer_with_gradient_refinement_suggests_valid_configurations(tiny_v2_model, conditional):
  cfg = SearchConfig(num_random=32, grad_top=4, grad_steps=10, grad_ordinal=True, pool="sobol")
  opt = optformer.Optimizer(conditional, model=tiny_v2_model, seed=0, search=cfg)
  rng = np.random.default_rng(0)
  for _ in range(6):
    s = dict(opt.ask())
    assert conditional.validate(s) == s
    opt.tell(s, float(np.log10(s["C"]) ** 2 + rng.random()))
  assert len({tuple(sorted(t.params.items())) for t in opt.study.trials}) == 6
