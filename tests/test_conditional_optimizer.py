"""Conditional search spaces through the Optimizer: ask/tell/add_pending/predict/best, the active masks the model
reads, and save/load (tests/test_conditional_space.py holds the search-space semantics)."""

import math

import numpy as np
import pytest

import optformer
from optformer import Categorical, Condition, Float, Int, SearchSpace
from optformer.model import posterior as posterior_lib


def svm_space() -> SearchSpace:
  return SearchSpace([
      Categorical("kernel", ["linear", "rbf", "poly"]),
      Float("C", 1e-3, 1e3, log=True),
      Float("gamma", 1e-4, 1.0, log=True, condition=("kernel", ["rbf", "poly"])),
      Int("degree", 2, 5, condition=Condition("kernel", ["poly"])),
  ])


def objective(c) -> float:
  """Lower is better; each branch reads only its active parameters."""
  v = (math.log10(c["C"]) - 1) ** 2
  if c["kernel"] != "linear":
    v += (math.log10(c["gamma"]) + 2) ** 2 / 4
  if c["kernel"] == "poly":
    v += c["degree"] / 5
  return v


def _opt(model, **kw):
  return optformer.Optimizer(svm_space(), model=model, seed=0, num_candidates=16, **kw)


def _told(model, n=8, seed=1, **kw):
  opt = _opt(model, **kw)
  rng = np.random.default_rng(seed)
  for _ in range(n):
    c = opt.space.sample(rng)
    opt.tell(c, objective(c))
  return opt


def test_condition_is_exported():
  assert optformer.Condition is Condition


def test_ask_tell_loop_suggests_valid_configurations_with_exactly_their_active_parameters(tiny_v2_model):
  opt = _opt(tiny_v2_model)
  kernels = set()
  for _ in range(12):
    s = opt.ask()
    assert opt.space.validate(s) == dict(s)  # Raises for an inactive parameter given or an active one missing.
    assert set(s) == {n for n, a in zip(opt.space.names, opt.space.active(s)) if a}
    kernels.add(s["kernel"])
    opt.tell(s, objective(s))
  assert len(opt.trials) == 12 and not opt.pending
  params, value = opt.best
  assert value == min(t.value for t in opt.trials) and objective(params) == value
  assert len(kernels) >= 2  # Not stuck in one branch.


def test_batches_and_pending_trials_on_a_conditional_space(tiny_v2_model):
  opt = _told(tiny_v2_model)
  pending = opt.add_pending({"kernel": "linear", "C": 1.0})
  batch = opt.ask(3)
  keys = {opt.study.key(c) for c in [t.params for t in opt.trials] + [pending] + batch}
  assert len(keys) == 8 + 1 + 3  # Nothing told or pending is proposed again.
  for s in batch:
    assert opt.space.validate(s) == dict(s)
  trial = opt.tell({"C": 1.0, "kernel": "linear"}, 0.5)  # A plain dict completes the pending trial it equals.
  assert trial.number == pending.number
  with pytest.raises(ValueError, match="'degree' is inactive"):
    opt.tell({"kernel": "rbf", "C": 1.0, "gamma": 0.1, "degree": 3}, 1.0)


def _record(monkeypatch):
  """Records the active masks that reach the model boundary: [("context", units, active), ("query", ...)]."""
  seen = []
  init, predict = posterior_lib.Posterior.__init__, posterior_lib.Posterior.predict

  def spy_init(self, backend, context, active=None):
    seen.append(("context", np.array(context.units), active))
    init(self, backend, context, active)

  def spy_predict(self, units, active=None, goal="maximize"):
    seen.append(("query", np.array(units).reshape(-1, len(self.backend.kinds)), active))
    return predict(self, units, active, goal)

  monkeypatch.setattr(posterior_lib.Posterior, "__init__", spy_init)
  monkeypatch.setattr(posterior_lib.Posterior, "predict", spy_predict)
  return seen


def test_context_and_candidate_masks_reach_the_model(tiny_v2_model, monkeypatch):
  opt = _told(tiny_v2_model)
  opt.add_pending({"kernel": "poly", "C": 2.0, "gamma": 0.01, "degree": 4})
  seen = _record(monkeypatch)
  opt.ask()
  assert {what for what, _, _ in seen} == {"context", "query"}
  for what, units, active in seen:
    assert active is not None and active.shape == units.shape
    np.testing.assert_array_equal(active, opt.space.unit_active_mask(units))
  for what in ("context", "query"):  # svm rows: a linear or rbf kernel leaves a parameter inactive.
    assert not np.concatenate([a for w, _, a in seen if w == what]).all()
  told = [u for what, u, _ in seen if what == "context"][-1]
  np.testing.assert_array_equal(told[:8], opt.space.to_units([t.params for t in opt.trials]))


def test_predict_reads_the_inactive_mask(tiny_v2_model):
  opt = _told(tiny_v2_model)
  queries = [{"kernel": "linear", "C": 3.0}, {"kernel": "rbf", "C": 3.0, "gamma": 0.01},
             {"kernel": "poly", "C": 3.0, "gamma": 0.01, "degree": 2}]
  mean = opt.predict(queries).mean
  engine, space = opt.engine, opt.space
  x, q = space.to_units([t.params for t in opt.trials]), space.to_units(queries)
  y = -np.array([t.value for t in opt.trials])
  kinds, nv = opt.backend.kinds, opt.backend.num_values
  masked = engine.predict(x, y, kinds, nv, q, space.unit_active_mask(x), space.unit_active_mask(q), goal="minimize")
  unmasked = engine.predict(x, y, kinds, nv, q, goal="minimize")
  np.testing.assert_allclose(mean, masked.mean, rtol=1e-6)
  assert not np.allclose(mean, unmasked.mean, rtol=1e-6)  # Reading 0.5 as a value is another prediction.


def test_save_load_round_trip_resumes_the_same_suggestion(tiny_v2_model, tmp_path):
  opt = _told(tiny_v2_model, n=6)
  opt.ask()  # A pending suggestion travels too.
  path = tmp_path / "study.json"
  opt.save(path)
  back = optformer.Optimizer.load(path, model=tiny_v2_model)
  assert back.space == opt.space and back.space.is_conditional
  assert [t.params for t in back.trials] == [t.params for t in opt.trials]
  assert back.pending == opt.pending
  assert back.ask() == opt.ask()


def test_prior_on_a_conditional_space(tiny_v2_model):
  prior = {"gamma": optformer.priors.Normal(0.01, 0.1), "kernel": optformer.priors.Weights(
      {"linear": 1.0, "rbf": 1.0, "poly": 8.0})}
  opt = _opt(tiny_v2_model, prior=prior)
  for _ in range(4):
    s = opt.ask()
    assert opt.space.validate(s) == dict(s)
    opt.tell(s, objective(s))
  samples = opt.prior.sample(np.random.default_rng(0), 400)
  for c in samples:
    assert opt.space.validate(c) == c
  assert 0.6 < np.mean([c["kernel"] == "poly" for c in samples]) < 0.9  # 0.9 * 0.8 + 0.1 / 3 = 0.75.
  gammas = np.log10([c["gamma"] for c in samples if "gamma" in c])
  assert abs(np.median(gammas) + 2) < 0.3  # The belief's mean, only where gamma is active.
  dens = opt.prior.log_density([{"kernel": "linear", "C": 1.0}, {"kernel": "rbf", "C": 1.0, "gamma": 0.01},
                                {"kernel": "rbf", "C": 1.0, "gamma": 1.0}])
  lin = math.log(0.9 * 3 / 10 + 0.1)  # Weights: mass 1/10 times 3 values.
  assert dens[0] == pytest.approx(lin)  # No gamma term where gamma is inactive.
  assert dens[1] > dens[0] > dens[2]
