"""Optuna integration: distribution round trips and bad input."""

import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

import optformer  # noqa: E402
from optformer.integrations import optuna as oi  # noqa: E402
from optformer.search_space import Categorical, Discrete, Float, Int  # noqa: E402

# (optuna distribution, optformer parameter): optuna -> optformer -> optuna is exact for all of these.
EXACT_CASES = [
    (FloatDistribution(0.0, 1.0), Float("p", 0.0, 1.0)),
    (FloatDistribution(1e-5, 1e-1, log=True), Float("p", 1e-5, 1e-1, log=True)),
    (IntDistribution(-3, 7), Int("p", -3, 7)),
    (IntDistribution(1, 1024, log=True), Int("p", 1, 1024, log=True)),
    (IntDistribution(2, 10, step=2), Discrete("p", (2, 4, 6, 8, 10))),
    (IntDistribution(0, 9, step=3), Discrete("p", (0, 3, 6, 9))),
    (FloatDistribution(0.1, 0.4, step=0.1), Discrete("p", (0.1, 0.2, 0.3, 0.4))),
    (FloatDistribution(-1.0, 1.0, step=0.5), Discrete("p", (-1.0, -0.5, 0.0, 0.5, 1.0))),
    (CategoricalDistribution(("a", "b", "c")), Categorical("p", ("a", "b", "c"))),
    (CategoricalDistribution((None, True, 3, 2.5, "x")), Categorical("p", (None, True, 3, 2.5, "x"))),
]


@pytest.mark.parametrize("dist, param", EXACT_CASES)
def test_optuna_to_optformer_to_optuna_is_exact(dist, param):
  space = oi.from_distributions({"p": dist})
  assert space.parameters == (param,)
  assert oi.to_distributions(space) == {"p": dist}


# (optformer parameter, its optuna distribution, what comes back): the lossy direction.
DISCRETE_CASES = [
    (Discrete("p", (1, 2, 3)), IntDistribution(1, 3), Int("p", 1, 3)),
    (Discrete("p", (16, 32, 64)), CategoricalDistribution((16, 32, 64)), Categorical("p", (16, 32, 64))),
    (Discrete("p", (0.0, 0.25, 1.0)), CategoricalDistribution((0.0, 0.25, 1.0)), Categorical("p", (0.0, 0.25, 1.0))),
    (Discrete("p", (0.5, 1.0, 1.5)), FloatDistribution(0.5, 1.5, step=0.5), Discrete("p", (0.5, 1.0, 1.5))),
    (Discrete("p", (1e-3, 2e-3, 3e-3)), FloatDistribution(1e-3, 3e-3, step=1e-3), Discrete("p", (1e-3, 2e-3, 3e-3))),
]


@pytest.mark.parametrize("param, dist, back", DISCRETE_CASES)
def test_discrete_maps_to_a_stepped_distribution_when_evenly_spaced_else_categorical(param, dist, back):
  dists = oi.to_distributions(optformer.SearchSpace([param]))
  assert dists == {"p": dist}
  assert oi.from_distributions(dists).parameters == (back,)
  # Every level of the Discrete is a valid value of its distribution.
  for v in param.values:
    assert dists["p"]._contains(dists["p"].to_internal_repr(v))


def test_order_of_parameters_is_kept(mixed_space):
  dists = oi.to_distributions(mixed_space)
  assert list(dists) == mixed_space.names
  assert oi.from_distributions(dists).names == mixed_space.names


@pytest.mark.parametrize(
    "dists, error, match",
    [
        ({}, ValueError, "empty"),
        ({"p": FloatDistribution(1.0, 1.0)}, ValueError, "'p'.*single value"),
        ({"p": CategoricalDistribution(("only",))}, ValueError, "'p'.*single value"),
        ({"p": IntDistribution(3, 3, step=2)}, ValueError, "'p'.*single value"),
        ({"p": FloatDistribution(0.0, 1.0, step=1e-6)}, ValueError, "'p'.*1000001 grid points"),
        ({"p": IntDistribution(0, 10**6, step=2)}, ValueError, "'p'.*500001 grid points"),
        ({"p": (0.0, 1.0)}, TypeError, "'p'.*optuna distribution"),
    ],
)
def test_from_distributions_rejects_bad_input(dists, error, match):
  with pytest.raises(error, match=match):
    oi.from_distributions(dists)


def test_to_distributions_rejects_a_non_space():
  with pytest.raises(TypeError, match="SearchSpace"):
    oi.to_distributions({"p": Float("p", 0.0, 1.0)})
