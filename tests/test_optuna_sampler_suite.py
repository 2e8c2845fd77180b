"""Optuna's own sampler tests with OptFormerSampler under test.

Adapted from optuna 5.0.0, tests/samplers_tests/test_samplers.py and test_partial_fixed.py:

* The sampler test cases that test_samplers.py runs for every sampler ship with optuna
  (`optuna.testing.pytest_samplers`); they are subclassed here with OptFormerSampler as the sampler:
  BasicSamplerTestCase (sample_independent bounds and Python types, NaN objectives, partial fixing,
  single-valued distributions, every suggest kind alone and in pairs, conditional and dynamic-range
  objectives), RelativeSamplerTestCase (sample_relative bounds and Python types on numerical, categorical
  and mixed spaces; relative parameters with n_jobs 1 and 2) and MultiObjectiveSamplerTestCase
  (sample_independent bounds and Python types in a two-objective study); MultiObjectiveSamplerTestCase and
  the tests below also with deterministic_objective=True, as test_samplers.py does for GPSampler.
* test_samplers.py's module tests, in this repo's words: reseed_rng reseeds the fallback once and changes
  the study; the same seed gives the same trials, another seed others (a summing and a constant objective);
  the same seed gives the same trials in another process (slow: a fresh interpreter loads the model).
* test_partial_fixed.py: a parameter fixed by PartialFixedSampler over OptFormerSampler (test_fixed_sampling,
  test_fixed_none_value_sampling).
* Added: a study and its sampler survive pickle, copy.deepcopy and joblib.dump (Optuna's process-based
  workers and checkpoints need this).

Left out: SingleOnlySamplerTestCase (OptFormerSampler supports multi-objective studies:
MultiObjectiveSamplerTestCase runs instead, and tests/test_optuna_constraints.py runs whole two-objective
studies); test_sampler_reseed_rng's check of a LazyRandomState
attribute (OptFormerSampler has no random state of its own: trial t's Optimizer seed is derived from
(seed, t) and kept by reseed_rng on purpose, tests/test_integrations_optuna.py); test_pickle_random_sampler
and test_sample_relative (about RandomSampler and optuna's FixedSampler); test_partial_fixed.py's
float_to_int, out-of-range, experimental-warning and after_trial tests (about PartialFixedSampler over
Optuna's default sampler, whatever the base).

Models: the test cases check the sampler's plumbing (bounds, types, states), so they run a tiny
random-init model v2 (conftest's tiny_v2_model); reproducibility runs the shipped model v2, the default.
"""

import copy
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from unittest import mock

import pytest

optuna = pytest.importorskip("optuna")
joblib = pytest.importorskip("joblib")

from optuna.samplers import PartialFixedSampler
from optuna.testing import pytest_samplers

from optformer.integrations.optuna import OptFormerSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _tiny(model, deterministic_objective=False):
  """A factory of OptFormerSampler on a tiny model v2, from the first completed trial on."""
  return lambda: OptFormerSampler(
      seed=0, model=model, n_startup_trials=0, deterministic_objective=deterministic_objective,
      warn_independent_sampling=False,
  )


@pytest.fixture(params=[False, True], ids=["noisy", "deterministic"])
def tiny_sampler(request, tiny_v2_model):
  """_tiny with deterministic_objective False, then True."""
  return _tiny(tiny_v2_model, request.param)


# The two large test cases run with deterministic_objective=False only (both would take ~60 s here); the
# other tests run both.
class TestBasicSampler(pytest_samplers.BasicSamplerTestCase):
  @pytest.fixture
  def sampler(self, tiny_v2_model):
    return _tiny(tiny_v2_model)


class TestRelativeSampler(pytest_samplers.RelativeSamplerTestCase):
  @pytest.fixture
  def sampler(self, tiny_v2_model):
    return _tiny(tiny_v2_model)


class TestMultiObjectiveSampler(pytest_samplers.MultiObjectiveSamplerTestCase):
  @pytest.fixture
  def sampler(self, tiny_sampler):
    return tiny_sampler


def _seven_kinds(trial, value=sum):
  """test_samplers.py's objective: one parameter of each suggest kind on [1, 9]."""
  return value([
      trial.suggest_float("a", 1, 9), trial.suggest_float("b", 1, 9, log=True),
      trial.suggest_float("c", 1, 9, step=1), trial.suggest_int("d", 1, 9),
      trial.suggest_int("e", 1, 9, log=True), trial.suggest_int("f", 1, 9, step=2),
      trial.suggest_categorical("g", list(range(1, 10))),
  ])


def _params(sampler, n_trials, value=sum):
  study = optuna.create_study(sampler=sampler)
  study.optimize(lambda t: _seven_kinds(t, value), n_trials=n_trials)
  return [t.params for t in study.trials]


def test_reseed_rng_reseeds_the_fallback_once_and_changes_the_study(tiny_v2_model):
  sampler = OptFormerSampler(seed=1, model=tiny_v2_model)
  fallback = sampler._independent_sampler
  before = str(fallback._rng.rng.get_state())
  with mock.patch.object(fallback, "reseed_rng", wraps=fallback.reseed_rng) as reseed:
    sampler.reseed_rng()
  assert reseed.call_count == 1 and str(fallback._rng.rng.get_state()) != before
  assert _params(sampler, 4) != _params(OptFormerSampler(seed=1, model=tiny_v2_model), 4)


@pytest.mark.parametrize("value", [sum, lambda values: 0.0], ids=["sum", "constant"])
def test_same_seed_same_trials_and_another_seed_other_trials_on_the_shipped_model(value):
  n = 4
  first = _params(OptFormerSampler(seed=1), n, value)
  assert first == _params(OptFormerSampler(seed=1), n, value)
  assert first != _params(OptFormerSampler(seed=2), n, value)


_OTHER_PROCESS = textwrap.dedent("""
    import json, sys
    import optuna
    from optformer.integrations.optuna import OptFormerSampler
    sys.path.insert(0, sys.argv[1])
    from test_optuna_sampler_suite import _params
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(json.dumps([hash("nondeterministic hash"), _params(OptFormerSampler(seed=1), int(sys.argv[2]))]))
""")


@pytest.mark.slow
def test_same_seed_same_trials_in_another_process():
  # Fresh interpreters with different string hashing (test_samplers.py's test_reproducible_in_other_process).
  n = 6
  runs = []
  for hash_seed in ("1", "2"):
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, os.path.dirname(__file__), str(n)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
  assert runs[0][0] != runs[1][0]  # The processes did hash strings differently.
  assert runs[0][1] == runs[1][1] == _params(OptFormerSampler(seed=1), n)


def test_a_fixed_parameter_is_kept_and_the_others_sampled(tiny_sampler):
  # test_partial_fixed.py's test_fixed_sampling.
  objective = lambda t: sum(t.suggest_float(name, -10, 10) ** 2 for name in "xyz")
  base = tiny_sampler()
  study = optuna.create_study(sampler=base)
  study.optimize(objective, n_trials=1)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    study.sampler = PartialFixedSampler(fixed_params={"z": 0}, base_sampler=base)
  study.optimize(objective, n_trials=2)
  assert [t.params["z"] for t in study.trials[1:]] == [0, 0]
  # Only x and y are joint: z is the fixed sampler's.
  assert set(base.infer_relative_search_space(study, study.trials[-1])) == {"x", "y", "z"}
  assert set(study.sampler.infer_relative_search_space(study, study.trials[-1])) == {"x", "y"}


def test_a_parameter_fixed_to_none_stays_none(tiny_sampler):
  # test_partial_fixed.py's test_fixed_none_value_sampling, with OptFormerSampler as the base (theirs is TPE).
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    sampler = PartialFixedSampler(fixed_params={"x": None}, base_sampler=tiny_sampler())
  study = optuna.create_study(sampler=sampler)
  study.optimize(lambda t: t.suggest_categorical("x", (None, 0)) is None and t.suggest_float("y", 0, 1), n_trials=4)
  assert [t.params["x"] for t in study.trials] == [None] * 4


def test_a_study_and_its_sampler_survive_pickle_deepcopy_and_joblib(tiny_sampler):
  study = optuna.create_study(sampler=tiny_sampler())
  study.optimize(lambda t: _seven_kinds(t), n_trials=3)
  buffer = io.BytesIO()
  joblib.dump(study, buffer)
  restored = joblib.load(io.BytesIO(buffer.getvalue()))
  for sampler in (pickle.loads(pickle.dumps(study.sampler)), copy.deepcopy(study.sampler), restored.sampler):
    assert isinstance(sampler, OptFormerSampler) and sampler.trial_seed(7) == study.sampler.trial_seed(7)
  restored.optimize(lambda t: _seven_kinds(t), n_trials=2)
  assert [t.state.name for t in restored.trials] == ["COMPLETE"] * 5
