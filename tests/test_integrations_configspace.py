"""ConfigSpace integration: round trips as tables of cases, unsupported features, Configuration decoding."""

import numpy as np
import pytest

CS = pytest.importorskip("ConfigSpace")

import optformer
from optformer.integrations import configspace as ci
from optformer.search_space import Categorical, Discrete, Float, Int, SearchSpace

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


# (ConfigSpace hyperparameter, optformer parameter, what comes back to ConfigSpace): lossy cases.
LOSSY_CASES = [
    # Decreasing numbers: the same levels, stored in increasing order.
    (CS.OrdinalHyperparameter("p", [8, 4, 2]), Discrete("p", (2, 4, 8)), CS.OrdinalHyperparameter("p", [2, 4, 8])),
    # Non-numeric or non-monotone ordinals: Categorical, order lost.
    (
        CS.OrdinalHyperparameter("p", ["small", "medium", "large"]), Categorical("p", ("small", "medium", "large")),
        CS.CategoricalHyperparameter("p", ["small", "medium", "large"]),
    ),
    (
        CS.OrdinalHyperparameter("p", [2, 8, 4]), Categorical("p", (2, 8, 4)),
        CS.CategoricalHyperparameter("p", [2, 8, 4]),
    ),
    (
        CS.OrdinalHyperparameter("p", [False, True]), Categorical("p", (False, True)),
        CS.CategoricalHyperparameter("p", [False, True]),
    ),
]


@pytest.mark.parametrize("hp, param, back", LOSSY_CASES)
def test_ordinals_become_discrete_only_when_numeric_and_monotone(hp, param, back):
  cs = CS.ConfigurationSpace()
  cs.add(hp)
  space = ci.from_configspace(cs)
  assert space.parameters == (param,)
  assert ci.to_configspace(space)["p"] == back


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


def test_constants_are_dropped_and_added_back_by_to_configuration():
  cs = CS.ConfigurationSpace(seed=0)
  cs.add([
      CS.UniformFloatHyperparameter("lr", 1e-4, 1.0, log=True), CS.Constant("loss", "log_loss"),
      CS.CategoricalHyperparameter("solver", ["lbfgs"]), CS.OrdinalHyperparameter("depth", [3]),
      CS.OrdinalHyperparameter("width", [32, 64]),
  ])
  space = ci.from_configspace(cs)
  assert space.names == ["lr", "width"]
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


def _conditional():
  model = CS.CategoricalHyperparameter("model", ["svm", "tree"])
  c = CS.UniformFloatHyperparameter("svm_c", 1e-3, 1e3, log=True)
  return _cs(model, c, CS.EqualsCondition(c, model, "svm"))


def _forbidden():
  a = CS.CategoricalHyperparameter("penalty", ["l1", "l2"])
  b = CS.CategoricalHyperparameter("solver", ["lbfgs", "saga"])
  return _cs(a, b, CS.ForbiddenAndConjunction(CS.ForbiddenEqualsClause(a, "l2"), CS.ForbiddenEqualsClause(b, "saga")))


def _quantized():
  cs = _cs(CS.UniformFloatHyperparameter("x", 0.0, 1.0))
  cs["x"].q = 0.1  # ConfigSpace >= 1.0 has no q; objects carrying one are refused.
  return cs


@pytest.mark.parametrize(
    "make, error, match",
    [
        (_conditional, ValueError, r"1 condition\(s\).*svm_c.*no conditional parameters"),
        (_forbidden, ValueError, r"1 forbidden clause\(s\).*penalty.*cannot exclude"),
        (lambda: _cs(CS.NormalFloatHyperparameter("x", mu=0.5, sigma=0.1, lower=0.0, upper=1.0)), ValueError,
         r"'x' is a NormalFloatHyperparameter \(a non-uniform prior\).*remove_hyperparameter_priors"),
        (lambda: _cs(CS.NormalIntegerHyperparameter("n", mu=5, sigma=2, lower=0, upper=10)), ValueError,
         "'n' is a NormalIntegerHyperparameter"),
        (lambda: _cs(CS.BetaFloatHyperparameter("x", alpha=2.0, beta=3.0, lower=0.0, upper=1.0)), ValueError,
         "'x' is a BetaFloatHyperparameter"),
        (lambda: _cs(CS.BetaIntegerHyperparameter("n", alpha=2.0, beta=3.0, lower=0, upper=10)), ValueError,
         "'n' is a BetaIntegerHyperparameter"),
        (lambda: _cs(CS.CategoricalHyperparameter("c", ["a", "b"], weights=[0.9, 0.1])), ValueError,
         r"'c' has categorical weights \(0.9, 0.1\)"),
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
