"""Conditional search spaces: construction errors, validation, sampling, unit form, JSON, counting, decoder arrays."""

import itertools
import json

import numpy as np
import pytest

from optformer.search_space import INACTIVE_UNIT, Categorical, Condition, Discrete, Float, Int, SearchSpace


def _svm():
  """Children listed before their parent on purpose (ConfigSpace orders by name)."""
  return SearchSpace([
      Float("gamma", 1e-4, 1.0, log=True, condition=("kernel", ["rbf", "poly"])),
      Int("degree", 2, 5, condition=Condition("kernel", ["poly"])),
      Categorical("kernel", ["linear", "rbf", "poly"]),
      Float("C", 1e-3, 1e3, log=True),
      Discrete("coef0", (0.0, 0.5, 1.0), condition=Condition("degree", greater_than=2)),
  ])


def _mlp():
  return SearchSpace([
      Int("n_layers", 1, 3),
      Int("width_1", 8, 64, log=True),
      Int("width_2", 8, 64, log=True, condition=Condition("n_layers", greater_than=1)),
      Int("width_3", 8, 64, log=True, condition=Condition("n_layers", range(3, 4))),
      Float("dropout", 0.0, 0.5, condition=Condition("width_1", less_than=32)),
  ])


# -- Construction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: SearchSpace([Float("x", 0, 1, condition=("k", ["a"]))]), ValueError,
         r"'x': condition parent 'k' is not in the search space \['x'\]"),
        (lambda: SearchSpace([Categorical("k", ["a", "b"], condition=("k", ["a"]))]), ValueError,
         "'k': its condition names itself"),
        (lambda: SearchSpace([Categorical("a", ["x", "y"], condition=("b", ["x"])),
                              Categorical("b", ["x", "y"], condition=("a", ["y"]))]), ValueError,
         "'a': its conditions form a cycle a -> b -> a"),
        (lambda: SearchSpace([Categorical("k", ["a", "b"]), Float("x", 0, 1, condition=("k", ["c"]))]), ValueError,
         r"'x': condition k in \['c'\]: 'c' is not a value of 'k'"),
        (lambda: SearchSpace([Int("n", 1, 3), Float("x", 0, 1, condition=("n", [4]))]), ValueError,
         "'x'.*4 is not a value of 'n'"),
        (lambda: SearchSpace([Float("f", 0, 1), Float("x", 0, 1, condition=("f", [0.5]))]), ValueError,
         "'x'.*a Float parent takes a condition greater_than/less_than"),
        (lambda: SearchSpace([Categorical("k", ["a", "b"]), Float("x", 0, 1, condition=Condition("k", greater_than=0))]),
         ValueError, "'x'.*a Categorical parent takes a condition on values"),
        (lambda: SearchSpace([Int("n", 1, 3), Float("x", 0, 1, condition=Condition("n", greater_than=3))]), ValueError,
         "'x'.*no value of 'n' satisfies it"),
        (lambda: SearchSpace([Float("f", 0, 1), Float("x", 0, 1, condition=Condition("f", less_than=0))]), ValueError,
         "'x'.*no value of 'f' satisfies it"),
        (lambda: SearchSpace([Int("n", 0, 10**9), Int("m", 0, 3, condition=Condition("n", greater_than=5.2,
                                                                                       less_than=5.9))]), ValueError,
         "'m'.*no value of 'n' satisfies"),  # No integer strictly between 5.2 and 5.9.
        (lambda: Condition("k", []), ValueError, "empty"),
        (lambda: Condition("k", "rbf"), TypeError, r"values must be a list.*\['rbf'\]"),
        (lambda: Condition("k"), ValueError, "needs values or greater_than/less_than"),
        (lambda: Condition("k", ["a"], greater_than=1), ValueError, "not both"),
        (lambda: Condition("k", greater_than=2, less_than=2), ValueError, "greater_than=2 must be < less_than=2"),
        (lambda: Condition("k", greater_than=float("nan")), ValueError, "finite number"),
        (lambda: Condition("", ["a"]), TypeError, "parent must be a parameter name"),
        (lambda: Float("x", 0, 1, condition="k"), TypeError, "'x': condition must be a Condition"),
        (lambda: Float("x", 0, 1, condition={"parent": "k", "value": ["a"]}), ValueError, "'x': a condition has the fields"),
    ],
)
def test_construction_errors_name_the_parameter_and_the_problem(make, error, match):
  with pytest.raises(error, match=match):
    make()


def test_condition_values_become_the_parents_canonical_values_in_its_order():
  space = SearchSpace([
      Categorical("k", ["a", "b", "c"]), Discrete("d", (16, 32, 64)),
      Float("x", 0, 1, condition=Condition("k", ["c", "a", "c"])),
      Float("y", 0, 1, condition=Condition("d", [64.0, 16])),
      Float("z", 0, 1, condition=("k", ("a", "c"))),
  ])
  assert space["x"].condition == Condition("k", ("a", "c")) == space["z"].condition
  assert space["y"].condition.values == (16, 64) and all(type(v) is int for v in space["y"].condition.values)
  assert space.is_conditional and not SearchSpace([Float("x", 0, 1)]).is_conditional


@pytest.mark.parametrize("space", [_svm(), _mlp()])
def test_topological_order_puts_every_parent_first(space):
  order = space.topological_order()
  assert sorted(order) == list(range(len(space)))
  parents = space.parent_indices()
  for position, j in enumerate(order):
    assert parents[j] < 0 or order.index(parents[j]) < position


# -- validate ---------------------------------------------------------------------------

OK = None
VALIDATE_CASES = [
    ({"kernel": "linear", "C": 1.0}, OK),
    ({"kernel": "rbf", "C": 1.0, "gamma": 0.1}, OK),
    ({"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 2}, OK),  # degree 2: coef0 inactive
    ({"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 3, "coef0": 0.5}, OK),
    ({"kernel": "linear", "C": 1.0, "gamma": 0.1}, r"'gamma' is inactive \(kernel='linear' does not satisfy kernel in "
                                                   r"\['rbf', 'poly'\]\); leave it out"),
    ({"kernel": "rbf", "C": 1.0}, r"Missing active parameter\(s\) \['gamma'\]"),
    ({"kernel": "poly", "C": 1.0}, r"Missing active parameter\(s\) \['gamma', 'degree'\]"),
    ({"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 3}, r"Missing active parameter\(s\) \['coef0'\]"),
    ({"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 2, "coef0": 0.5}, r"'coef0' is inactive \(degree=2 does not "
                                                                            r"satisfy degree > 2\)"),
    ({"kernel": "rbf", "C": 1.0, "gamma": 0.1, "coef0": 0.5}, r"'coef0' is inactive \(its parent 'degree' is inactive\)"),
    ({"kernel": "rbf", "C": 1.0, "gamma": 5.0}, r"'gamma'.*outside"),
    ({"C": 1.0}, r"Missing active parameter\(s\) \['kernel'\]"),
    ({"kernel": "sigmoid", "C": 1.0}, "'kernel'.*'sigmoid'.*not one of"),
]


@pytest.mark.parametrize("config, error", VALIDATE_CASES)
def test_validate_accepts_exactly_the_active_parameters(config, error):
  space = _svm()
  if error is OK:
    out = space.validate(config)
    assert out == config and list(out) == [n for n in space.names if n in config]  # Space order.
    np.testing.assert_array_equal(space.active(config), [n in config for n in space.names])
    assert all(space.is_active(n, config) == (n in config) for n in space.names)
  else:
    with pytest.raises(ValueError, match=error):
      space.validate(config)


def test_is_active_reads_only_the_ancestors():
  space = _svm()
  assert space.is_active("gamma", {"kernel": "rbf"}) and not space.is_active("degree", {"kernel": "rbf"})
  assert not space.is_active("coef0", {"kernel": "linear"})  # Its parent is inactive: degree is not needed.
  assert space.is_active("coef0", {"kernel": "poly", "degree": 4})
  with pytest.raises(ValueError, match="'coef0' depends on 'degree', which is active but missing"):
    space.is_active("coef0", {"kernel": "poly"})


# -- Sampling and unit form --------------------------------------------------------------


@pytest.mark.parametrize("space", [_svm(), _mlp()])
def test_samples_are_valid_and_reach_every_branch(space):
  rng = np.random.default_rng(0)
  configs = [space.sample(rng) for _ in range(400)]
  for c in configs:
    assert space.validate(c) == c
  active = space.active_mask(configs)
  assert active.shape == (400, len(space))
  assert active.any(axis=0).all() and (~active).any(axis=0)[space.parent_indices() >= 0].all()
  for p in space:  # Every value of every finite parent is reached.
    if 0 < p.num_values <= 10 and any(q.condition and q.condition.parent == p.name for q in space):
      assert len({c[p.name] for c in configs if p.name in c}) == p.num_values


@pytest.mark.parametrize("space", [_svm(), _mlp()])
def test_unit_form_holds_inactive_slots_at_the_fixed_value_and_round_trips(space):
  rng = np.random.default_rng(1)
  configs = [space.sample(rng) for _ in range(200)]
  units, active = space.to_units(configs), space.active_mask(configs)
  assert np.all(units[~active] == INACTIVE_UNIT)
  np.testing.assert_array_equal(space.unit_active_mask(units), active)
  for c, u in zip(configs, units):
    assert space.from_unit(u) == pytest.approx(c) and set(space.from_unit(u)) == set(c)
  # Inactive slots are never read: any value there decodes to the same configuration.
  noisy = np.where(active, units, rng.random(units.shape))
  assert [space.from_unit(u) for u in noisy] == [space.from_unit(u) for u in units]
  np.testing.assert_array_equal(space.snap(noisy), units)


@pytest.mark.parametrize("space", [_svm(), _mlp()])
def test_snap_is_the_round_trip_of_every_row(space):
  rng = np.random.default_rng(2)
  u = rng.random((300, len(space)))
  for j, p in enumerate(space):
    if p.num_values and hasattr(p, "choices"):
      u[:, j] = rng.integers(0, p.num_values, 300)
  want = np.array([space.to_unit(space.from_unit(r)) for r in u])
  np.testing.assert_allclose(space.snap(u), want, atol=1e-12)
  np.testing.assert_array_equal(space.unit_active_mask(u), space.active_mask([space.from_unit(r) for r in u]))


# -- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [_svm(), _mlp()])
def test_json_round_trips_conditions_through_text(space):
  back = SearchSpace.from_json(json.loads(json.dumps(space.to_json())))
  assert back == space and [p.condition for p in back] == [p.condition for p in space]


def test_json_without_conditions_is_unchanged_and_loads():
  items = [{"type": "float", "name": "x", "low": 0.0, "high": 1.0, "log": False},
           {"type": "categorical", "name": "c", "choices": ["a", "b"]}]
  space = SearchSpace.from_json(items)
  assert space.to_json() == items and not space.is_conditional
  with_condition = [*items, {"type": "int", "name": "n", "low": 1, "high": 3, "log": False,
                             "condition": {"parent": "c", "values": ["b"]}}]
  assert SearchSpace.from_json(with_condition)["n"].condition == Condition("c", ["b"])


# -- Counting ----------------------------------------------------------------------------------


def _brute_force_count(space):
  """Distinct validated configurations among all combinations of every parameter's values."""
  domains = [[p.from_unit(u) for u in (p.level_units() if hasattr(p, "level_units") else range(p.num_values))]
             for p in space]
  seen = set()
  for combo in itertools.product(*domains):
    full = dict(zip(space.names, combo))
    seen.add(tuple(sorted((k, v) for k, v in full.items() if space.is_active(k, full))))
  return len(seen)


COUNT_SPACES = [
    [Categorical("k", ["a", "b", "c"]), Int("d", 2, 5, condition=("k", ["a"])),
     Discrete("e", (1, 2), condition=("k", ["a", "b"]))],
    [Int("n", 1, 4), Int("w2", 1, 3, condition=Condition("n", greater_than=1)),
     Int("w3", 1, 3, condition=Condition("n", greater_than=2)),
     Categorical("c", ["x", "y"], condition=Condition("w3", less_than=2))],
    [Int("n", -3, 6), Categorical("c", ["x", "y"], condition=Condition("n", greater_than=-1.5, less_than=4.5)),
     Discrete("d", (0.5, 1.5), condition=("n", [-3, 6]))],
]


@pytest.mark.parametrize("params", COUNT_SPACES)
def test_num_configurations_counts_the_tree(params):
  space = SearchSpace(params)
  assert space.num_configurations == _brute_force_count(space)


def test_num_configurations_of_huge_int_parents_and_floats():
  space = SearchSpace([Int("n", 0, 10**12), Int("m", 0, 9, condition=Condition("n", greater_than=10**12 - 5))])
  assert space.num_configurations == (10**12 - 4) + 5 * 10
  assert _svm().num_configurations is None


# -- Decoder arrays ------------------------------------------------------------------------------


def test_condition_arrays_agree_with_activity_of_each_parent_token():
  space = SearchSpace([
      Categorical("k", ["a", "b", "c"]), Float("x", 0.0, 10.0, condition=("k", ["b", "c"])),
      Int("n", 1, 4, condition=("k", ["a"])), Int("w", 8, 64, condition=Condition("n", greater_than=2)),
      Float("y", 0.0, 1.0, condition=Condition("x", greater_than=2.5, less_than=7.5)),
      Float("z", 0.0, 1.0, condition=Condition("w", less_than=20)),
  ])
  t = 8
  parent, allowed = space.condition_arrays(t)
  assert parent.dtype == np.int32 and allowed.shape == (len(space), t) and allowed.dtype == bool
  np.testing.assert_array_equal(parent, [-1, 0, 0, 2, 1, 3])
  assert allowed[0].all()
  np.testing.assert_array_equal(allowed[1], [False, True, True] + [False] * 5)  # token k = category k
  np.testing.assert_array_equal(allowed[3], [False, False, True, True] + [False] * 4)  # token i = level i (n = i + 1)
  centres = (np.arange(t) + 0.5) / t  # Bins for a Float parent and for w (57 levels > 8 tokens).
  np.testing.assert_array_equal(allowed[4], (10 * centres > 2.5) & (10 * centres < 7.5))
  np.testing.assert_array_equal(allowed[5], space["w"].values_from_units(centres) < 20)
  with pytest.raises(ValueError, match="'k' has 3 categories, more than num_tokens=2"):
    space.condition_arrays(2)


def test_a_missing_parent_is_reported_not_its_children():
  with pytest.raises(ValueError, match=r"Missing active parameter\(s\) \['degree'\] in"):
    _svm().validate({"kernel": "poly", "C": 1.0, "gamma": 0.1, "coef0": 0.5})


def test_num_configurations_of_a_wide_int_parent_is_fast():
  space = SearchSpace([Int("n", 1, 10**6), Categorical("c", ["a", "b"], condition=("n", [7, 9])),
                       Int("m", 1, 3, condition=Condition("n", less_than=100))])
  assert space.num_configurations == (10**6 - 99) + 97 * 3 + 2 * 2 * 3
