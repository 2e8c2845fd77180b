"""The optional peers SMAC3 and HEBO (eval/peers_extra.py) through the benchmarks' ask/tell loop.

The studies need the `peers` extra and are skipped without it; the registry, the error of a missing package and
HEBO's parameter encoding are tested everywhere.
"""

import math
import sys

import numpy as np
import pytest

import optformer
from optformer.eval import optimizers, peers_extra, runner

ss = optformer.search_space


def _space(forbidden: bool = True) -> optformer.SearchSpace:
  """Every parameter kind, a conditional parameter and (optionally) a forbidden combination."""
  return optformer.SearchSpace([
      optformer.Float("x", -2.0, 3.0),
      optformer.Float("lr", 1e-4, 1.0, log=True),
      optformer.Int("units", 2, 64, log=True),
      optformer.Int("depth", 0, 5),
      optformer.Discrete("batch", (16, 32, 64, 128)),
      optformer.Categorical("kernel", ("rbf", "poly", None, 3)),
      optformer.Categorical("size", ("s", "m", "l"), ordered=True),
      optformer.Int("degree", 2, 5, condition=("kernel", ["poly"])),
  ], forbidden=[optformer.Forbidden({"kernel": "rbf", "size": "l"})] if forbidden else ())


def _objective(p) -> float:
  """Smallest near x = 1, lr = 1e-2, few units, kernel "poly" with degree 2."""
  return ((p["x"] - 1.0) ** 2 + (math.log10(p["lr"]) + 2.0) ** 2 + math.log(p["units"]) + 0.1 * p["depth"]
          + (p["kernel"] != "poly") + 0.1 * p.get("degree", 5) + p["batch"] / 128)


def _types_ok(space, params) -> bool:
  kinds = {ss.Float: float, ss.Int: int}
  return all(type(v) is kinds[type(space[n])] for n, v in params.items() if type(space[n]) in kinds)


def test_peers_are_registered_but_optional():
  assert set(optimizers.PEERS) == {"smac", "hebo"}
  assert not set(optimizers.PEERS) & set(optimizers.parse_names(["all"]))  # "all" needs no extra package.
  assert optimizers.parse_names(["smac", "hebo", "gp"]) == ["smac", "hebo", "gp"]
  with pytest.raises(ValueError, match="only the optformer entries"):
    optimizers.split_variant("smac:num_random=3")
  assert optimizers.supports("smac", _space()) and optimizers.supports("hebo", _space(forbidden=False))
  assert not optimizers.supports("hebo", _space())  # HEBO cannot exclude forbidden combinations.


@pytest.mark.parametrize("name, package", [("smac", "smac"), ("hebo", "hebo")])
def test_a_missing_package_names_the_extra(name, package, monkeypatch):
  monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError.
  with pytest.raises(ImportError, match=rf"Optimizer '{name}' needs the package '{package}'.*'peers' extra"):
    optimizers.make(name, _space(forbidden=False), "minimize", 0)
  with pytest.raises(ValueError, match="Unknown peer"):
    peers_extra.require("nevergrad")


def test_hebo_encoding_round_trips_every_kind():
  space = _space(forbidden=False)
  rng = np.random.default_rng(0)
  for _ in range(50):
    params = space.sample(rng)
    for name, v in params.items():
      p = space[name]
      entry = peers_extra._hebo_parameter(p)
      assert entry["name"] == name
      assert peers_extra._from_hebo(p, peers_extra._to_hebo(p, v)) == v
  # A log-scale value a hair outside the bounds (HEBO's 10 ** log10(high)) is clipped back in.
  assert peers_extra._from_hebo(space["lr"], 1.0 + 1e-12) == 1.0


def _study(name, space, goal, seed, trials, objective=_objective):
  return runner.run_study(optimizers.make(name, space, goal, seed), objective, trials)


def test_smac_study_stays_in_the_space_and_repeats_under_a_seed():
  pytest.importorskip("smac")
  space = _space()
  runs = [_study("smac", space, "minimize", s, 14) for s in (3, 3, 4)]
  for r in runs[0]:
    assert space.validate(r.params) == r.params and _types_ok(space, r.params)
    assert not space.is_forbidden(r.params)
  assert [r.params for r in runs[0]] == [r.params for r in runs[1]]  # Same seed, same study.
  assert [r.params for r in runs[0]] != [r.params for r in runs[2]]
  # Maximizing -f is minimizing f: SMAC sees the same costs, so the same study.
  neg = _study("smac", space, "maximize", 3, 14, lambda p: -_objective(p))
  assert [r.params for r in neg] == [r.params for r in runs[0]]


def test_smac_takes_failed_and_unasked_trials():
  pytest.importorskip("smac")
  space = _space()
  opt = optimizers.make("smac", space, "minimize", 0)
  opt.tell(opt.ask(), math.nan)  # A failed trial: crashed in SMAC's run history.
  given = {"x": 1.0, "lr": 1e-2, "units": 2, "depth": 0, "batch": 16, "kernel": "poly", "size": "s", "degree": 2}
  opt.tell(given, _objective(given))  # A trial SMAC did not ask for.
  assert len(opt.smac.runhistory) == 2
  assert space.validate(opt.ask())


@pytest.mark.slow  # HEBO's model-based suggestions take ~10 s each on the shared machine.
def test_hebo_study_stays_in_the_space_and_repeats_under_a_seed():
  pytest.importorskip("hebo")
  space = _space(forbidden=False)
  trials = len(space) + 3  # HEBO's Sobol start has D + 1 trials; then 2 model-based suggestions.
  state = np.random.get_state()[1].copy()
  runs = [_study("hebo", space, "minimize", 5, trials) for _ in range(2)]
  assert np.array_equal(np.random.get_state()[1], state)  # NumPy's global generator is left as it was.
  for r in runs[0]:
    assert space.validate(r.params) == r.params and _types_ok(space, r.params)
  assert [r.params for r in runs[0]] == [r.params for r in runs[1]]
  assert [r.params for r in _study("hebo", space, "minimize", 6, 2)] != [r.params for r in runs[0][:2]]
  opt = optimizers.make("hebo", space, "maximize", 0)
  opt.tell(opt.ask(), math.inf)  # Dropped by HEBO's observe: it models finite values only.
  opt.tell({"x": 1.0, "lr": 1e-2, "units": 2, "depth": 0, "batch": 16, "kernel": "rbf", "size": "s"}, 3.0)
  assert len(opt.hebo.y) == 1 and opt.hebo.y[0, 0] == -3.0  # Maximized: HEBO minimizes -value.
