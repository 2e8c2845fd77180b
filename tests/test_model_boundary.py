"""The model boundary (optformer.model): Backend capabilities, the Posterior's scores, and that no layer above the
boundary branches on a model family."""

import dataclasses
import pathlib
import re

import numpy as np
import pytest

import optformer
from optformer.context import Context
from optformer.model import Backend, Capabilities, Posterior, load_engine
from optformer.model.inference import PFNEngine, PFNPredictive
from optformer.search_space import Categorical, Float, Int, SearchSpace

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPACE = SearchSpace([Float("x", 0.0, 1.0), Int("n", 1, 9), Categorical("c", ("a", "b", "c"))])


def _context(rng, n=6, infeasible=()):
  units = rng.random((n, 3))
  units[:, 2] = rng.integers(0, 3, n)
  y = rng.normal(size=n)
  y[list(infeasible)] = np.nan
  return Context(units, y)


def test_capabilities_come_from_the_config_and_a_checkpoint_loads_on_first_use(tiny_v2_dir, tiny_v2_model):
  backend = Backend.for_space(tiny_v2_dir, SPACE)
  c = tiny_v2_model.config
  assert backend.capabilities == Capabilities(max_params=c.num_slot_ids, max_context=c.max_context,
                                              max_categories=c.max_categories, policy=False, conditionals=True)
  assert backend.path == str(tiny_v2_dir) and not backend.loaded
  assert backend.engine is load_engine(tiny_v2_dir) and backend.loaded  # One cached engine per checkpoint.
  assert Backend.for_space(tiny_v2_model, SPACE).path is None


def test_the_space_is_checked_against_the_capabilities(tiny_v2_model, tiny_v2_dir):
  d = tiny_v2_model.config.num_slot_ids
  for model in (tiny_v2_model, tiny_v2_dir):
    with pytest.raises(ValueError, match=f"{d + 1} parameters; this model supports at most {d}"):
      Backend.for_space(model, SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(d + 1)]))
    k = tiny_v2_model.config.max_categories
    with pytest.raises(ValueError, match=f"'c' has {k + 1} choices"):
      Backend.for_space(model, SearchSpace([Categorical("c", tuple(range(k + 1)))]))
    with pytest.raises(ValueError, match="model='' names no checkpoint"):
      Backend.for_space("", SPACE)


def test_posterior_predicts_what_the_engine_predicts_in_user_units(tiny_v2_model):
  rng = np.random.default_rng(0)
  context, queries = _context(rng, infeasible=[2]), rng.random((5, 3))
  backend = Backend.for_space(tiny_v2_model, SPACE)
  post = backend.condition(context)
  assert isinstance(post, Posterior) and post.best == np.nanmax(context.y)
  pred = post.predict(queries, goal="minimize")
  want = PFNEngine(tiny_v2_model).predict(context.units, context.y, backend.kinds, backend.num_values, queries,
                                          goal="minimize")
  assert isinstance(pred, PFNPredictive) and pred.goal == "minimize"
  np.testing.assert_array_equal(pred.z.probs, want.z.probs)
  np.testing.assert_array_equal(pred.p_feasible, want.p_feasible)
  np.testing.assert_allclose(post.mean(queries), -pred.mean)  # mean: the context's direction (larger is better).
  # A query's prediction depends on the context and itself alone.
  np.testing.assert_array_equal(post.predict(queries[:2]).z.probs[0], post.predict(queries[[0, 4]]).z.probs[0])


def test_inactive_parameters_change_the_prediction(tiny_v2_model):
  """The `conditionals` capability: an inactive slot is read as such, in the queries and in the context."""
  rng = np.random.default_rng(1)
  context, queries = _context(rng), rng.random((4, 3))
  backend = Backend.for_space(tiny_v2_model, SPACE)
  active = np.ones((4, 3), bool)
  active[:, 1] = False
  post = backend.condition(context)
  assert not np.allclose(post.predict(queries, active).z.probs, post.predict(queries).z.probs)
  np.testing.assert_array_equal(post.predict(queries, np.ones((4, 3), bool)).z.probs, post.predict(queries).z.probs)
  ctx_active = np.ones((6, 3), bool)
  ctx_active[:3, 0] = False
  assert not np.allclose(backend.condition(context, ctx_active).predict(queries).z.probs, post.predict(queries).z.probs)


def test_acquisition_is_the_constrained_ei_of_the_prediction(tiny_v2_model):
  rng = np.random.default_rng(2)
  post = Backend.for_space(tiny_v2_model, SPACE).condition(_context(rng, infeasible=[0]))
  queries = rng.random((7, 3))
  pred = post.predict(queries)
  log_feasible = np.log(np.maximum(pred.p_feasible, 1e-300))
  np.testing.assert_allclose(post.acquisition(queries, post.best, "ei"),
                             pred.log_expected_improvement_z(post.best) + log_feasible)
  np.testing.assert_allclose(post.acquisition(queries, post.best, "ucb", 2.0), pred.upper_confidence_bound_z(2.0))
  with pytest.raises(ValueError, match="kind must be one of"):
    post.acquisition(queries, post.best, "thompson")


def test_without_a_feasible_row_the_posterior_has_no_scale(tiny_v2_model):
  post = Backend.for_space(tiny_v2_model, SPACE).condition(Context(np.zeros((2, 3)), np.array([np.nan, np.nan])))
  assert post.best is None
  with pytest.raises(ValueError, match="at least one feasible trial"):
    post.predict(np.zeros((1, 3)))


def test_sample_policy_names_the_missing_capability(tiny_v2_model):
  backend = Backend.for_space(tiny_v2_model, SPACE)
  assert backend.capabilities.policy is False
  post = backend.condition(_context(np.random.default_rng(3)))
  with pytest.raises(NotImplementedError, match="'policy' capability"):
    post.sample_policy(np.random.default_rng(0), 4)
  # The Optimizer asks the capability, not the model type, before it builds a policy pool.
  with pytest.raises(ValueError, match="needs a model with a policy"):
    optformer.Optimizer(SPACE, model=tiny_v2_model, candidates="policy")


# Modules above the model boundary, and what they must not contain: a family flag or a test of the model's type.
ABOVE = ["optformer/optimizer.py", "optformer/study.py", "optformer/designer.py", "optformer/surrogate.py",
         "optformer/cli.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "optformer" / "explain").glob("*.py")),
         "optformer/integrations/optuna.py", "optformer/integrations/configspace.py"]
# (Prose that names the retired model v1, e.g. the study file's retirement warning, is allowed.)
FAMILY_BRANCH = re.compile(r"\.v2\b|\bv2 =|_is_v2|isinstance\([^)]*(Engine|PFNSurrogate|OptFormer)\b|V1_PROMPTS|"
                           r"RiemannDistribution|StudyDistribution|\.algorithm\b")


def test_no_family_branch_above_the_model_boundary():
  found = []
  for name in ABOVE:
    path = ROOT / name
    if path.exists():
      found += [f"{name}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
                if FAMILY_BRANCH.search(line)]
  assert not found, "\n".join(found)
  # pfn_inference, the engine below the boundary, is imported above it only for annotations.
  for name in ABOVE:
    path = ROOT / name
    if path.exists():
      imports = [line for line in path.read_text().splitlines() if "import" in line and "model.inference" in line]
      assert all(line.startswith("  from optformer.model.inference import") for line in imports), (name, imports)
