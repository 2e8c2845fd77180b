"""ConfigSpace integration: round trips as tables of cases, unsupported features, Configuration decoding."""

import numpy as np
import pytest

CS = pytest.importorskip("ConfigSpace")

import optformer
from optformer.integrations import configspace as ci
from optformer.search_space import Categorical, Condition, Discrete, Float, Int, SearchSpace

# (ConfigSpace hyperparameter, optformer parameter): ConfigSpace -> optformer -> ConfigSpace is exact.
EXACT_CASES = [
    (CS.UniformFloatHyperparameter("p", -1.5, 2.0), Float("p", -1.5, 2.0)),
    (CS.UniformFloatHyperparameter("p", 1e-5, 1e-1, log=True), Float("p", 1e-5, 1e-1, log=True)),
    (CS.UniformIntegerHyperparameter("p", -3, 7), Int("p", -3, 7)),
    (CS.UniformIntegerHyperparameter("p", 1, 1024, log=True), Int("p", 1, 1024, log=True)),
    (CS.CategoricalHyperparameter("p", ["gini", "entropy"]), Categorical("p", ("gini", "entropy"))),
    (CS.CategoricalHyperparameter("p", [True, 3, "x"]), Categorical("p", (True, 3, "x"))),
    (CS.OrdinalHyperparameter("p", [16, 32, 64, 128]), Discrete("p", (16, 32, 64, 128))),
    (CS.OrdinalHyperparameter("p", [0.1, 0.5, 0.9]), Discrete("p", (0.1, 0.5, 0.9))),
]


@pytest.mark.parametrize("hp, param", EXACT_CASES)
def test_configspace_to_optformer_to_configspace(hp, param):
  cs = CS.ConfigurationSpace()
  cs.add(hp)
  space = ci.from_configspace(cs)
  assert space.parameters == (param,)
  assert ci.to_configspace(space)["p"] == hp


def test_equal_categorical_weights_are_uniform_and_accepted():
  cs = CS.ConfigurationSpace()
  cs.add(CS.CategoricalHyperparameter("p", ["a", "b"], weights=[2, 2]))
  assert ci.from_configspace(cs).parameters == (Categorical("p", ("a", "b")),)


# Ordinals that are not increasing numbers: ordered Categoricals in their own order, round trip exact.
ORDINAL_CASES = [
    (CS.OrdinalHyperparameter("p", [8, 4, 2]), Categorical("p", (8, 4, 2), ordered=True)),
    (CS.OrdinalHyperparameter("p", ["small", "medium", "large"]), Categorical("p", ("small", "medium", "large"), ordered=True)),
    (CS.OrdinalHyperparameter("p", [2, 8, 4]), Categorical("p", (2, 8, 4), ordered=True)),
    (CS.OrdinalHyperparameter("p", [False, True]), Categorical("p", (False, True), ordered=True)),
    (CS.OrdinalHyperparameter("p", ["lo", "mid", "hi"], default_value="mid"),
     Categorical("p", ("lo", "mid", "hi"), ordered=True, default="mid")),
]


@pytest.mark.parametrize("hp, param", ORDINAL_CASES)
def test_ordinals_keep_their_order_and_stay_ordinal(hp, param):
  cs = CS.ConfigurationSpace()
  cs.add(hp)
  space = ci.from_configspace(cs)
  assert space.parameters == (param,) and space["p"].kind == optformer.search_space.KIND_ORDINAL
  assert ci.to_configspace(space)["p"] == hp


SPACES = [
    SearchSpace([Float("x", 0.0, 1.0)]),
    SearchSpace([
        Float("learning_rate", 1e-5, 1e-1, log=True), Int("units", 2, 20, log=True),
        Discrete("batch_size", (16, 32, 64, 128)), Categorical("optimizer", ("adam", "sgd", 3, True)),
    ]),
    SearchSpace([Discrete("d", (0.25, 0.5, 1.0)), Int("n", -5, 5), Categorical("c", ("a", "b", "c"))]),
]


@pytest.mark.parametrize("space", SPACES)
def test_optformer_to_configspace_to_optformer_keeps_every_parameter_in_name_order(space):
  back = ci.from_configspace(ci.to_configspace(space))
  assert back == SearchSpace(sorted(space.parameters, key=lambda p: p.name))


def test_constants_are_kept_by_the_space_and_added_back_by_to_configuration():
  cs = CS.ConfigurationSpace(seed=0)
  cs.add([
      CS.UniformFloatHyperparameter("lr", 1e-4, 1.0, log=True), CS.Constant("loss", "log_loss"),
      CS.CategoricalHyperparameter("solver", ["lbfgs"]), CS.OrdinalHyperparameter("depth", [3]),
      CS.OrdinalHyperparameter("width", [32, 64]),
  ])
  space = ci.from_configspace(cs)
  assert space.names == ["lr", "width"]
  assert space.constants == {"depth": 3, "loss": "log_loss", "solver": "lbfgs"}
  assert ci.to_configspace(space)["loss"] == CS.Constant("loss", "log_loss")  # One-value ones come back as Constant.
  config = ci.to_configuration(cs, {"lr": 0.01, "width": 64})
  assert isinstance(config, CS.Configuration)
  assert dict(config) == {"depth": 3, "loss": "log_loss", "lr": 0.01, "solver": "lbfgs", "width": 64}
  assert dict(ci.to_configuration(cs, {"lr": 0.01, "width": 64, "loss": "log_loss"})) == dict(config)


def test_suggestions_of_an_optimizer_decode_to_legal_configurations(tiny_model):
  cs = CS.ConfigurationSpace()
  cs.add([
      CS.UniformFloatHyperparameter("lr", 1e-4, 1.0, log=True), CS.UniformIntegerHyperparameter("n", 1, 9),
      CS.OrdinalHyperparameter("width", [32, 64, 128]), CS.CategoricalHyperparameter("act", ["relu", "tanh"]),
      CS.Constant("loss", "log_loss"),
  ])
  opt = optformer.Optimizer(ci.from_configspace(cs), model=tiny_model, num_candidates=8, seed=0)
  for i in range(3):
    params = opt.ask()
    config = ci.to_configuration(cs, params)
    config.check_valid_configuration()
    for k, v in params.items():  # ConfigSpace rounds floats.
      assert config[k] == (pytest.approx(v, rel=1e-9) if isinstance(v, float) else v)
    opt.tell(params, float(i))
  # Configurations sampled by ConfigSpace are valid optformer configurations too.
  for config in [cs.get_default_configuration(), *cs.sample_configuration(5)]:
    params = ci.from_configuration(config)
    assert set(params) == set(opt.space.names) and opt.space.validate(params) == params
    assert not any(isinstance(v, np.generic) for v in params.values())
    opt.tell(params, 1.0)
  assert ci.from_configuration(dict(config), cs) == params
  with pytest.raises(TypeError, match="Pass the ConfigurationSpace"):
    ci.from_configuration(dict(config))


def _cs(*items):
  cs = CS.ConfigurationSpace()
  cs.add(list(items))
  return cs


def _two_parents():
  a, b = CS.CategoricalHyperparameter("a", ["x", "y"]), CS.CategoricalHyperparameter("b", ["x", "y"])
  c = CS.UniformFloatHyperparameter("c", 0.0, 1.0)
  return _cs(a, b, c, CS.AndConjunction(CS.EqualsCondition(c, a, "x"), CS.EqualsCondition(c, b, "y")))


def _not_equals_on_float():
  x, c = CS.UniformFloatHyperparameter("x", 0.0, 1.0), CS.UniformFloatHyperparameter("c", 0.0, 1.0)
  return _cs(x, c, CS.NotEqualsCondition(c, x, 0.5))


def _never_on_constant():
  k, c = CS.Constant("k", "a"), CS.UniformFloatHyperparameter("c", 0.0, 1.0)
  return _cs(k, c, CS.NotEqualsCondition(c, k, "a"))


def _value_comparison():
  a = CS.UniformFloatHyperparameter("a", 0.0, 1.0)
  return _cs(a, CS.ForbiddenLessThanClause(a, 0.5))


def _quantized():
  cs = _cs(CS.UniformFloatHyperparameter("x", 0.0, 1.0))
  cs["x"].q = 0.1  # ConfigSpace >= 1.0 has no q; objects carrying one are refused.
  return cs


@pytest.mark.parametrize(
    "make, error, match",
    [
        (_two_parents, ValueError, r"Condition .* of 'c' depends on several parents \['a', 'b'\]; .* one parent"),
        (_not_equals_on_float, ValueError,
         r"of 'c' \(NotEqualsCondition on UniformFloatHyperparameter 'x'\) is not supported"),
        (_never_on_constant, ValueError, r"of 'c' never holds \(its parent 'k' is the constant 'a'\)"),
        (_value_comparison, ValueError, r"ForbiddenLessThanClause\) is not supported"),
        (lambda: _cs(CS.CategoricalHyperparameter("c", ["a", "b"], weights=[1.0, 0.0])), ValueError,
         r"'c' has categorical weights \(1.0, 0.0\); a weight <= 0"),
        (_quantized, ValueError, r"'x' is quantized \(q=0.1\)"),
        (lambda: _cs(CS.Constant("k", 1)), ValueError, r"no hyperparameter that is not a constant: \['k'\]"),
        (lambda: {"x": (0.0, 1.0)}, TypeError, "ConfigurationSpace, got dict"),
    ],
)
def test_from_configspace_rejects_unsupported_features(make, error, match):
  with pytest.raises(error, match=match):
    ci.from_configspace(make())


def test_priors_removed_by_configspace_are_accepted():
  cs = _cs(CS.NormalFloatHyperparameter("x", mu=0.5, sigma=0.1, lower=0.0, upper=1.0))
  assert ci.from_configspace(cs.remove_hyperparameter_priors()).parameters == (Float("x", 0.0, 1.0),)
  assert ci.prior_from_configspace(cs.remove_hyperparameter_priors()) == {}


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lr": 0.01}, r"Missing parameter\(s\) \['width'\]"),
        ({"lr": 0.01, "width": 64, "momentum": 0.9}, r"Unknown parameter\(s\) \['momentum'\]"),
        ({"lr": 0.01, "width": 64, "loss": "hinge"}, "'loss' is the constant 'log_loss', got 'hinge'"),
        ({"lr": 5.0, "width": 64}, "5.0.*'lr'"),
        ({"lr": 0.01, "width": 48}, "48.*'width'"),
    ],
)
def test_to_configuration_rejects_bad_params(params, match):
  cs = _cs(
      CS.UniformFloatHyperparameter("lr", 1e-4, 1.0, log=True), CS.OrdinalHyperparameter("width", [32, 64]),
      CS.Constant("loss", "log_loss"),
  )
  with pytest.raises(ValueError, match=match):
    ci.to_configuration(cs, params)


def test_to_configspace_rejects_a_non_space():
  with pytest.raises(TypeError, match="SearchSpace"):
    ci.to_configspace([Float("x", 0.0, 1.0)])


# -- Conditions ----------------------------------------------------------------------------------

_K = CS.CategoricalHyperparameter("k", ["linear", "rbf", "poly"])
_N = CS.UniformIntegerHyperparameter("n", 1, 4)
_X = CS.UniformFloatHyperparameter("x", 0.0, 1.0)
_O = CS.OrdinalHyperparameter("o", [16, 32, 64])
_C = CS.UniformFloatHyperparameter("c", 1e-3, 1.0, log=True)

# (parent, ConfigSpace condition of child c, optformer Condition): ConfigSpace -> optformer -> ConfigSpace is exact.
EXACT_CONDITIONS = [
    (_K, CS.EqualsCondition(_C, _K, "rbf"), Condition("k", ["rbf"])),
    (_K, CS.InCondition(_C, _K, ["rbf", "poly"]), Condition("k", ["rbf", "poly"])),
    (_N, CS.EqualsCondition(_C, _N, 3), Condition("n", [3])),
    (_N, CS.InCondition(_C, _N, [1, 4]), Condition("n", [1, 4])),
    (_N, CS.GreaterThanCondition(_C, _N, 2), Condition("n", greater_than=2)),
    (_N, CS.LessThanCondition(_C, _N, 3), Condition("n", less_than=3)),
    (_X, CS.GreaterThanCondition(_C, _X, 0.25), Condition("x", greater_than=0.25)),
    (_X, CS.AndConjunction(CS.GreaterThanCondition(_C, _X, 0.25), CS.LessThanCondition(_C, _X, 0.75)),
     Condition("x", greater_than=0.25, less_than=0.75)),
    (_O, CS.EqualsCondition(_C, _O, 32), Condition("o", [32])),
    (_O, CS.InCondition(_C, _O, [16, 64]), Condition("o", [16, 64])),
]

# (parent, ConfigSpace condition, optformer Condition, what comes back): equivalent but written differently.
EQUIVALENT_CONDITIONS = [
    (_K, CS.NotEqualsCondition(_C, _K, "linear"), Condition("k", ["rbf", "poly"]), CS.InCondition(_C, _K, ["rbf", "poly"])),
    (_K, CS.InCondition(_C, _K, ["poly", "rbf"]), Condition("k", ["rbf", "poly"]), CS.InCondition(_C, _K, ["rbf", "poly"])),
    (_K, CS.OrConjunction(CS.EqualsCondition(_C, _K, "poly"), CS.EqualsCondition(_C, _K, "linear")),
     Condition("k", ["linear", "poly"]), CS.InCondition(_C, _K, ["linear", "poly"])),
    (_K, CS.AndConjunction(CS.InCondition(_C, _K, ["rbf", "poly"]), CS.NotEqualsCondition(_C, _K, "poly")),
     Condition("k", ["rbf"]), CS.EqualsCondition(_C, _K, "rbf")),
    (_O, CS.GreaterThanCondition(_C, _O, 16), Condition("o", [32, 64]), CS.InCondition(_C, _O, [32, 64])),
    (_N, CS.NotEqualsCondition(_C, _N, 2), Condition("n", [1, 3, 4]), CS.InCondition(_C, _N, [1, 3, 4])),
]


@pytest.mark.parametrize("parent, condition, want", EXACT_CONDITIONS)
def test_conditions_round_trip_exactly(parent, condition, want):
  cs = _cs(parent, _C, condition)
  space = ci.from_configspace(cs)
  assert space["c"].condition == want
  back = ci.to_configspace(space)
  assert back == cs and back.conditions == [condition]
  assert ci.from_configspace(back) == space


@pytest.mark.parametrize("parent, condition, want, back", EQUIVALENT_CONDITIONS)
def test_other_single_parent_conditions_become_the_equivalent_values(parent, condition, want, back):
  cs = _cs(parent, _C, condition)
  assert ci.from_configspace(cs)["c"].condition == want
  assert ci.to_configspace(ci.from_configspace(cs)).conditions == [back]
  for config in cs.sample_configuration(30):  # Activity agrees with ConfigSpace's.
    assert ("c" in config) == ci.from_configspace(cs).is_active("c", ci.from_configuration(config))


def test_a_condition_that_holds_on_a_constant_parent_makes_a_root():
  k, c = CS.Constant("k", "a"), CS.UniformFloatHyperparameter("c", 0.0, 1.0)
  space = ci.from_configspace(_cs(k, c, CS.EqualsCondition(c, k, "a")))
  assert space.parameters == (Float("c", 0.0, 1.0),)


def _svm_cs():
  kernel = CS.CategoricalHyperparameter("kernel", ["linear", "rbf", "poly"])
  gamma = CS.UniformFloatHyperparameter("gamma", 1e-4, 1.0, log=True)
  degree = CS.UniformIntegerHyperparameter("degree", 2, 5)
  coef0 = CS.UniformFloatHyperparameter("coef0", 0.0, 1.0)
  c = CS.UniformFloatHyperparameter("C", 1e-3, 1e3, log=True)
  return _cs(kernel, gamma, degree, coef0, c, CS.InCondition(gamma, kernel, ["rbf", "poly"]),
             CS.EqualsCondition(degree, kernel, "poly"), CS.GreaterThanCondition(coef0, degree, 2))


def test_conditional_configurations_pass_both_ways():
  cs = _svm_cs()
  space = ci.from_configspace(cs)
  for config in cs.sample_configuration(50):  # ConfigSpace's samples are valid optformer configurations ...
    params = ci.from_configuration(config)
    assert space.validate(params) == params
  rng = np.random.default_rng(0)
  for _ in range(50):  # ... and optformer's are valid Configurations.
    params = space.sample(rng)
    config = ci.to_configuration(cs, params)
    config.check_valid_configuration()
    assert set(config) == set(params)
  with pytest.raises(ValueError, match=r"Missing parameter\(s\) \['degree', 'gamma'\]"):
    ci.to_configuration(cs, {"kernel": "poly", "C": 1.0})


# -- Forbidden clauses, priors, defaults ------------------------------------------------------------


def _full_cs(seed=0):
  """Every feature at once: priors, weights, custom defaults, an ordinal, a constant, a condition, forbidden clauses."""
  kernel = CS.CategoricalHyperparameter("kernel", ["linear", "rbf", "poly"], weights=[1, 2, 1], default_value="linear")
  degree = CS.UniformIntegerHyperparameter("degree", 1, 5, default_value=2)
  a = CS.NormalFloatHyperparameter("a", mu=0.3, sigma=0.2, lower=0.0, upper=1.0)
  b = CS.BetaFloatHyperparameter("b", alpha=2.0, beta=3.0, lower=0.0, upper=1.0)
  lr = CS.NormalFloatHyperparameter("lr", mu=1e-3, sigma=0.5, lower=1e-5, upper=1.0, log=True)
  n = CS.NormalIntegerHyperparameter("n", mu=5.5, sigma=2.0, lower=1, upper=10)
  m = CS.BetaIntegerHyperparameter("m", alpha=3.0, beta=1.5, lower=1, upper=64, log=True)
  size = CS.OrdinalHyperparameter("size", ["s", "m", "l"], default_value="m")
  cs = _cs(kernel, degree, a, b, lr, n, m, size, CS.Constant("loss", "hinge"), CS.EqualsCondition(degree, kernel, "poly"))
  cs.add([CS.ForbiddenAndConjunction(CS.ForbiddenEqualsClause(kernel, "poly"), CS.ForbiddenInClause(degree, [4, 5])),
          CS.ForbiddenLessThanRelation(b, a)])
  cs.seed(seed)
  return cs


def test_the_full_round_trip_is_exact():
  cs = _full_cs()
  space, prior = ci.from_configspace(cs), ci.prior_from_configspace(cs)
  assert space["degree"].default == 2 and space["kernel"].default == "linear" and space["size"].ordered
  assert space.constants == {"loss": "hinge"} and len(space.forbidden) == 2
  assert prior["a"].mean == 0.3 and prior["a"].width == pytest.approx(0.2)
  assert prior["b"] == optformer.priors.Beta(2.0, 3.0) and prior["kernel"].weights == {"linear": 1, "rbf": 2, "poly": 1}
  assert prior["n"].mean == 5.5
  back = ci.to_configspace(space, prior=prior)
  assert back == cs
  assert [str(f) for f in back.forbidden_clauses] == [str(f) for f in cs.forbidden_clauses]
  assert ci.from_configspace(back) == space and ci.prior_from_configspace(back) == prior


def test_forbidden_clauses_agree_with_configspace_and_are_never_suggested(tiny_model):
  cs = _full_cs()
  space = ci.from_configspace(cs)
  for config in cs.sample_configuration(200):  # ConfigSpace's samples are allowed here too.
    assert not space.is_forbidden(ci.from_configuration(config))
  bad = {"kernel": "poly", "degree": 4, "a": 0.1, "b": 0.2, "lr": 0.01, "n": 3, "m": 4, "size": "s"}
  assert space.is_forbidden(bad)
  with pytest.raises(ValueError):
    CS.Configuration(cs, values={**bad, "loss": "hinge"})  # ConfigSpace refuses it as well.
  opt = optformer.Optimizer(space, model=tiny_model, seed=0, num_candidates=16, prior=ci.prior_from_configspace(cs))
  for i in range(6):
    params = opt.ask()
    ci.to_configuration(cs, params).check_valid_configuration()  # Raises for a forbidden configuration.
    opt.tell(params, params["a"] - params["b"])
  with pytest.raises(ValueError, match="forbidden"):
    opt.tell(bad, 0.0)


def test_or_conjunctions_become_one_clause_per_alternative():
  k = CS.CategoricalHyperparameter("k", ["x", "y", "z"])
  n = CS.UniformIntegerHyperparameter("n", 1, 4)
  cs = _cs(k, n, CS.ForbiddenOrConjunction(CS.ForbiddenEqualsClause(k, "z"),
                                           CS.ForbiddenAndConjunction(CS.ForbiddenEqualsClause(k, "y"),
                                                                      CS.ForbiddenInClause(n, [3, 4]))))
  space = ci.from_configspace(cs)
  assert space.forbidden == (optformer.Forbidden({"k": "z"}), optformer.Forbidden({"k": "y", "n": [3, 4]}))
  for config in cs.sample_configuration(50):
    assert not space.is_forbidden(ci.from_configuration(config))


@pytest.mark.parametrize(
    "cs, match",
    [
        (lambda: _cs(CS.NormalFloatHyperparameter("x", mu=2.0, sigma=0.1, lower=0.0, upper=1.0)), r"mu=2.0 lies outside"),
    ],
)
def test_priors_that_optformer_cannot_hold_are_refused(cs, match):
  with pytest.raises(ValueError, match=match):
    ci.prior_from_configspace(cs())


def test_priors_that_configspace_cannot_hold_are_refused():
  space = SearchSpace([Discrete("d", (1, 2, 4)), Categorical("o", ("a", "b"), ordered=True)])
  with pytest.raises(ValueError, match="no Weights prior for an OrdinalHyperparameter"):
    ci.to_configspace(space, prior={"d": optformer.priors.Weights({1: 1.0, 2: 2.0, 4: 1.0})})
  with pytest.raises(ValueError, match="no Normal prior"):
    ci.to_configspace(space, prior={"d": optformer.priors.Normal(2)})
