"""Search spaces: construction errors, validation messages, unit round trips, JSON round trips."""

import json
import math

import numpy as np
import pytest

from optformer import search_space as ss
from optformer.search_space import Categorical, Discrete, Float, Int, SearchSpace


def _space():
  return SearchSpace([
      Float("lr", 1e-4, 1e-1, log=True),
      Int("layers", 1, 8),
      Discrete("batch", (16, 32, 64)),
      Categorical("act", ("relu", "gelu")),
  ])


# -- Construction errors --------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Float("x", 1.0, 1.0), ValueError, "must be <"),  # empty range
        (lambda: Float("x", 2.0, 1.0), ValueError, "must be <"),
        (lambda: Float("x", 0.0, 1.0, log=True), ValueError, "log scale needs low > 0"),
        (lambda: Float("x", -1.0, 1.0, log=True), ValueError, "log scale needs low > 0"),
        (lambda: Float("x", 0.0, math.inf), ValueError, "finite"),
        (lambda: Float("x", math.nan, 1.0), ValueError, "finite"),
        (lambda: Float("x", "0", 1.0), TypeError, "number"),
        (lambda: Float("", 0.0, 1.0), ValueError, "non-empty string"),
        (lambda: Int("n", 3, 3), ValueError, "must be <"),
        (lambda: Int("n", 5, 2), ValueError, "must be <"),
        (lambda: Int("n", 0, 10, log=True), ValueError, "log scale needs low > 0"),
        (lambda: Int("n", 0.5, 3), TypeError, "must be an int"),
        (lambda: Discrete("d", (1.0,)), ValueError, "at least 2 values"),
        (lambda: Discrete("d", (2.0, 1.0, 3.0)), ValueError, "sorted"),  # unsorted
        (lambda: Discrete("d", (1.0, 1.0)), ValueError, "distinct"),
        (lambda: Discrete("d", (1.0, math.inf)), ValueError, "finite"),
        (lambda: Categorical("c", ("a",)), ValueError, "at least 2 choices"),
        (lambda: Categorical("c", ("a", "b", "a")), ValueError, "duplicate"),
        (lambda: Categorical("c", [1, 1.0]), ValueError, r"duplicate.*1 == 1\.0"),  # one dict key, one Optuna index
        (lambda: Categorical("c", [True, 1]), ValueError, "duplicate.*True == 1"),
        (lambda: Categorical("c", "abc"), TypeError, "list or tuple, got str 'abc'"),  # not the choices a, b, c
        (lambda: Categorical("c", {"a", "b"}), TypeError, "list or tuple, got set"),
        (lambda: Categorical("c", [math.nan, "a"]), ValueError, "finite, got nan"),
        (lambda: Categorical("c", [math.inf, "a"]), ValueError, "finite, got inf"),
        (lambda: Categorical("c", [["a"], "b"]), TypeError, r"string, bool, number or None, got \['a'\]"),
        (lambda: Float("x", -1e308, 1e308), ValueError, "'x'.*overflows float64"),  # every suggestion was 1e308
        (lambda: Int("i", 0, 2**53 + 1), ValueError, r"'i'.*high=9007199254740993 is beyond \+-2\*\*53"),
        (lambda: Int("i", -(2**60), 0), ValueError, "'i'.*low=.*beyond"),
        (lambda: SearchSpace([]), ValueError, "at least one parameter"),
        (lambda: SearchSpace([Float("a", 0, 1), Int("a", 0, 3)]), ValueError, r"Duplicate parameter names.*'a'"),
        (lambda: SearchSpace(["a"]), TypeError, "Expected Float"),
        (lambda: Float("x", 1.0, 2.0, log="no"), TypeError, "'x': log must be True or False, got 'no'"),  # "no" is truthy
        (lambda: Float("x", 1.0, 2.0, log=1), TypeError, "log must be True or False, got 1"),
        (lambda: Int("n", 1, 8, log="false"), TypeError, "'n': log must be True or False, got 'false'"),
        (lambda: Int("n", 1, 8, log=None), TypeError, "log must be True or False, got None"),
        (lambda: Float(" x", 0.0, 1.0), ValueError, "name ' x' has leading or trailing whitespace"),
        (lambda: Categorical("c\t", ("a", "b")), ValueError, "leading or trailing whitespace"),
    ],
)
def test_construction_errors(make, error, match):
  with pytest.raises(error, match=match):
    make()


# -- validate ---------------------------------------------------------------------


def test_validate_accepts_a_valid_configuration_and_canonicalizes_types():
  space = _space()
  out = space.validate({"lr": 0.01, "layers": 3.0, "batch": 32.0, "act": "gelu"})
  assert out == {"lr": 0.01, "layers": 3, "batch": 32, "act": "gelu"}
  assert type(out["layers"]) is int and type(out["batch"]) is int


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"dropout": 0.1}, ValueError, "Unknown parameter.*'dropout'"),
        ({"lr": 0.5}, ValueError, "'lr'.*0.5.*outside"),
        ({"lr": 1e-5}, ValueError, "'lr'.*1e-05.*outside"),
        ({"layers": 9}, ValueError, "'layers'.*9.*outside"),
        ({"layers": 0}, ValueError, "'layers'.*0.*outside"),
        ({"batch": 48}, ValueError, "'batch'.*48.*not one of"),
        ({"act": "tanh"}, ValueError, "'act'.*'tanh'.*not one of"),
        ({"lr": "fast"}, TypeError, "'lr'.*'fast'"),
        ({"lr": math.nan}, ValueError, "'lr'.*finite"),
        ({"layers": 2.5}, TypeError, "'layers'.*2.5"),
        ({"layers": "3"}, TypeError, "'layers'.*'3'"),
        ({"layers": True}, TypeError, "'layers'.*True"),
        ({"batch": "32"}, TypeError, "'batch'.*'32'"),
    ],
)
def test_validate_errors_name_the_value(change, error, match):
  params = {"lr": 0.01, "layers": 3, "batch": 32, "act": "relu"}
  params.update(change)
  with pytest.raises(error, match=match):
    _space().validate(params)


def test_log_flag_is_stored_as_a_bool():
  assert Float("x", 1.0, 2.0, log=np.bool_(True)).log is True and Int("n", 1, 8).log is False


# (levels, value given, level it must read as, or None: refused)
DISCRETE_CASES = [
    ((1e9, 1e9 + 1), 1e9 + 1, 1e9 + 1),  # relative 1e-9 of the magnitude merged these two
    ((1e9, 1e9 + 1), 1e9, 1e9),
    ((1e9, 1e9 + 1), 1e9 + 0.5, None),  # between two levels
    ((1e-15, 2e-15, 3e-15), 2e-15, 2e-15),  # an absolute 1e-12 merged all three
    ((1e-15, 2e-15, 3e-15), 3e-15, 3e-15),
    ((1e-15, 2e-15, 3e-15), 1.5e-15, None),
    ((0.1, 0.2, 0.3), 0.1 * 3, 0.3),  # float round-off (0.30000000000000004) reads as the level
    ((0.1, 0.2, 0.3), 0.1 + 0.2, 0.3),
    ((0.0, 0.5, 1.0), 0.1 + 0.2 - 0.3, 0.0),  # 5.6e-17 from 0
    ((0.0, 0.5, 1.0), 1e-6, None),
    ((16, 32, 64), 32.0, 32),
    ((16, 32, 64), 33, None),
    ((1.0, 1.0 + 2**-52), 1.0 + 2**-52, 1.0 + 2**-52),  # adjacent floats stay distinct
]


@pytest.mark.parametrize("levels, value, level", DISCRETE_CASES)
def test_discrete_reads_a_value_as_its_own_level_and_never_merges_levels(levels, value, level):
  d = Discrete("d", levels)
  if level is None:
    with pytest.raises(ValueError, match="not one of"):
      d.validate(value)
    return
  got = d.validate(value)
  assert got == level and type(got) is type(d.values[0])
  assert d.to_unit(value) == d.values.index(level) / (len(levels) - 1)


def test_discrete_levels_survive_json_and_csv_text_round_trips():
  d = Discrete("d", (1e-15, 2e-15, 3e-15, 0.1, 0.3, 1e9, 1e9 + 1))
  for v in d.values:
    assert d.validate(json.loads(json.dumps(v))) == v and d.validate(float(repr(v))) == v
  assert len({d.to_unit(v) for v in d.values}) == len(d.values)


def test_validate_missing_parameter_names_it():
  with pytest.raises(ValueError, match=r"Missing parameter.*'batch'"):
    _space().validate({"lr": 0.01, "layers": 3, "act": "relu"})


def test_validate_rejects_non_mapping():
  with pytest.raises(TypeError, match="dict"):
    _space().validate([0.01, 3, 32, "relu"])


# -- Unit round trips -------------------------------------------------------------


@pytest.mark.parametrize(
    "param, values",
    [
        (Float("x", -2.0, 3.0), [-2.0, -0.7, 0.0, 2.999, 3.0]),
        (Float("x", 1e-4, 1.0, log=True), [1e-4, 3.3e-3, 0.5, 1.0]),
        (Int("n", -3, 7), list(range(-3, 8))),
        (Int("n", 1, 1000, log=True), [1, 2, 3, 10, 99, 500, 999, 1000]),
        (Discrete("d", (0.1, 0.5, 2.0, 10.0)), [0.1, 0.5, 2.0, 10.0]),
        (Discrete("d", (1, 2, 8)), [1, 2, 8]),
        (Categorical("c", ("adam", 7, 2.5, True, None)), ["adam", 7, 2.5, True, None]),
    ],
)
def test_to_unit_from_unit_round_trip(param, values):
  units = [param.to_unit(v) for v in values]
  if param.kind == ss.KIND_CATEGORICAL:
    assert sorted(units) == list(range(len(values)))  # distinct category indices
  else:
    assert all(0.0 <= u <= 1.0 for u in units)
    assert units == sorted(units)  # order preserving
    assert units[0] == 0.0 and units[-1] == 1.0  # each table spans [low, high]
  for v, u in zip(values, units):
    back = param.from_unit(u)
    assert type(back) is type(v), (v, back)
    if isinstance(param, Float):
      assert back == pytest.approx(v, rel=1e-12)
    else:
      assert back == v


def test_bounds_map_to_unit_ends_and_log_midpoint_is_half():
  f = Float("x", 1e-4, 1.0, log=True)
  assert f.to_unit(1e-4) == 0.0 and f.to_unit(1.0) == 1.0
  assert f.to_unit(1e-2) == pytest.approx(0.5)  # geometric midpoint
  i = Int("n", 1, 100, log=True)
  assert i.to_unit(1) == 0.0 and i.to_unit(100) == 1.0 and i.to_unit(10) == pytest.approx(0.5)
  d = Discrete("d", (1.0, 10.0, 1000.0))
  np.testing.assert_allclose([d.to_unit(v) for v in d.values], [0.0, 0.5, 1.0])  # ordinal spacing


def test_from_unit_clips_and_categorical_rejects_out_of_range_index():
  assert Float("x", 0.0, 2.0).from_unit(1.5) == 2.0
  assert Int("n", 0, 5).from_unit(-0.3) == 0
  with pytest.raises(ValueError, match="category index"):
    Categorical("c", ("a", "b")).from_unit(2)


def test_categorical_choices_of_different_types_keep_their_own_index():
  # 1 and "1", 0.5 and "0.5" differ (validate matches by type); 1, 1.0 and True would be duplicates.
  choices = (1, "1", 0.5, "0.5", False)
  c = Categorical("c", choices)
  assert [c.to_unit(v) for v in choices] == [0.0, 1.0, 2.0, 3.0, 4.0]
  for v in choices:
    back = c.from_unit(c.to_unit(v))
    assert type(back) is type(v) and back == v


def test_categorical_accepts_numpy_scalars_equal_to_a_choice():
  c = Categorical("c", ("a", 4, 0.5))
  assert c.validate(np.int64(4)) == 4 and c.to_unit(np.float32(0.5)) == 2.0
  with pytest.raises(ValueError, match="'4'"):
    c.validate("4")  # a string never matches a number
  got = c.validate(np.str_("a"))  # e.g. from ConfigSpace samples
  assert type(got) is str and got == "a"
  with pytest.raises(ValueError, match="'4'"):
    c.validate(np.str_("4"))


def test_categorical_numpy_choices_become_python_values():
  c = Categorical("c", np.array(["a", "b"]))
  assert c.choices == ("a", "b") and all(type(x) is str for x in c.choices)
  assert json.dumps(SearchSpace([Categorical("k", (np.int64(2), np.float64(0.5)))]).to_json())


def test_huge_int_ranges_work_and_huge_float_ranges_are_refused():
  i = Int("i", 0, 2**31)  # more levels than int32 holds: decoded by rounding
  assert i.from_unit(1.0) == 2**31 and i.from_unit(i.to_unit(2**31 - 7)) == 2**31 - 7
  assert Float("x", 0.0, 1.7e308).from_unit(0.5) == pytest.approx(0.85e308)
  assert Float("x", 1e-300, 1e300, log=True).from_unit(0.5) == pytest.approx(1.0)


def test_space_round_trip_on_samples():
  space = _space()
  rng = np.random.default_rng(0)
  for _ in range(50):
    config = space.sample(rng)
    assert space.validate(config) == config
    u = space.to_unit(config)
    assert u.shape == (len(space),) and u.dtype == np.float64
    assert space.from_unit(u) == pytest.approx(config)


def test_space_from_unit_checks_shape():
  with pytest.raises(ValueError, match=r"shape \(4,\)"):
    _space().from_unit(np.zeros(3))


# -- JSON ----------------------------------------------------------------------------


def test_json_round_trip_through_text():
  space = SearchSpace([
      Float("lr", 1e-4, 1e-1, log=True),
      Float("momentum", 0.0, 0.99),
      Int("layers", 1, 8),
      Int("units", 8, 512, log=True),
      Discrete("batch", (16, 32, 64)),
      Discrete("ratio", (0.25, 0.5, 1.0)),
      Categorical("act", ("relu", 2, True, None)),
  ])
  text = json.dumps(space.to_json())
  back = SearchSpace.from_json(json.loads(text))
  assert back == space
  assert back.names == space.names
  assert type(back["batch"].values[0]) is int and type(back["ratio"].values[0]) is float
  assert back["units"].log and not back["layers"].log


@pytest.mark.parametrize("item, match", [({"type": "complex", "name": "z"}, "'complex'"), ({"name": "z"}, "None")])
def test_from_json_unknown_type_raises(item, match):
  with pytest.raises(ValueError, match=f"unknown type {match}"):
    SearchSpace.from_json([{"type": "float", "name": "a", "low": 0.0, "high": 1.0, "log": False}, item])


def test_to_units_stacks_to_unit_rows_and_validates_each_configuration():
  space = _space()
  rng = np.random.default_rng(0)
  configs = [space.from_unit(rng.uniform(size=len(space))) for _ in range(3)]
  units = space.to_units(configs)
  assert units.shape == (3, len(space)) and units.dtype == np.float64
  np.testing.assert_array_equal(units, np.stack([space.to_unit(c) for c in configs]))
  assert space.to_units([]).shape == (0, len(space))
  with pytest.raises(ValueError, match="Missing parameter"):
    space.to_units([configs[0], {}])
