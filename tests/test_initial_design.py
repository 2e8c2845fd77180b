"""The initial design (optformer/initial_design.py): parsing, the centre, the Sobol' design, validity in conditional
and forbidden spaces, save/load, and the model taking over after the design."""

import json
import math

import numpy as np
import pytest

import optformer
from optformer import Categorical, Condition, Float, Forbidden, Int, SearchSpace
from optformer.eval import optimizers as opt_lib
from optformer.initial_design import InitialDesign, centre, sobol_points


def conditional_space(forbidden=()) -> SearchSpace:
  return SearchSpace([
      Float("lr", 1e-5, 1e-1, log=True),
      Int("units", 1, 9),
      Categorical("kernel", ["poly", "rbf", "linear"]),
      Int("degree", 2, 6, condition=Condition("kernel", ["poly"])),
      Float("x", -2.0, 4.0),
  ], forbidden=forbidden)


def count_model_calls(opt, monkeypatch) -> list:
  """A list that grows by one per call of the designer's model (`Designer.condition`)."""
  calls, condition = [], opt.designer.condition
  monkeypatch.setattr(opt.designer, "condition", lambda *a, **k: calls.append(1) or condition(*a, **k))
  return calls


@pytest.mark.parametrize("spec, kind, n, text", [
    ("none", "none", 0, "none"), ("centre", "centre", 1, "centre"), ("Center", "centre", 1, "centre"),
    ("sobol:5", "sobol", 5, "sobol:5"), (" sobol:12 ", "sobol", 12, "sobol:12"),
])
def test_parse_reads_the_option_and_prints_it_canonically(spec, kind, n, text):
  d = InitialDesign.parse(spec)
  assert (d.kind, d.num_trials, str(d)) == (kind, n, text)


@pytest.mark.parametrize("bad", ["sobol", "sobol:0", "sobol:-2", "sobol:2.5", "grid", "centre:3", ""])
def test_parse_refuses_other_strings_naming_them(bad):
  with pytest.raises(ValueError, match="initial_design must be"):
    InitialDesign.parse(bad)


def test_optimizer_refuses_a_bad_design_with_a_clear_error(model):
  with pytest.raises(ValueError, match="'sobol:0'"):
    optformer.Optimizer(conditional_space(), model=model, initial_design="sobol:0")
  with pytest.raises(TypeError, match="initial_design must be a string"):
    optformer.Optimizer(conditional_space(), model=model, initial_design=5)


def test_centre_is_the_unit_midpoint_and_the_first_or_default_category(model):
  s = SearchSpace([Float("lr", 1e-4, 1.0, log=True), Int("units", 1, 9), Float("x", -2.0, 4.0),
                   Categorical("act", ["relu", "tanh", "gelu"], default="gelu"), Categorical("opt", ["adam", "sgd"])])
  opt = optformer.Optimizer(s, model=model, initial_design="centre", seed=0)
  first = opt.ask()
  assert math.isclose(first["lr"], 1e-2) and first["units"] == 5 and first["x"] == 1.0
  assert first["act"] == "gelu" and first["opt"] == "adam"
  opt.tell(first, 1.0)
  assert opt.ask() != first  # The design is one trial; the second comes from the model.


def test_centre_of_a_conditional_space_is_valid_with_its_children():
  s = conditional_space()
  c = s.from_unit(centre(s, np.random.default_rng(0)))
  assert c == s.validate(c) and c["kernel"] == "poly" and c["degree"] == 4


def test_a_forbidden_centre_is_replaced_by_the_nearest_allowed_configuration():
  s = conditional_space(forbidden=[Forbidden({"kernel": "poly"})])
  c = s.from_unit(centre(s, np.random.default_rng(0)))
  assert not s.is_forbidden(c) and c["kernel"] != "poly"
  assert abs(math.log10(c["lr"]) + 3) < 0.6 and abs(c["x"] - 1.0) < 1.0  # Near the centre among 1024 points.


def test_sobol_design_is_space_filling_valid_and_reproducible(model):
  s = SearchSpace([Float("x", 0.0, 1.0)])
  xs = [optformer.Optimizer(s, model=model, initial_design="sobol:4", seed=3).ask(4) for _ in range(2)]
  assert xs[0] == xs[1]  # Same seed, same design.
  assert sorted(int(c["x"] * 4) for c in xs[0]) == [0, 1, 2, 3]  # A Sobol' net: one point per quarter.
  other = optformer.Optimizer(s, model=model, initial_design="sobol:4", seed=4).ask(4)
  assert [c["x"] for c in other] != [c["x"] for c in xs[0]]


def test_sobol_design_avoids_forbidden_configurations_and_then_uses_the_model(model, monkeypatch):
  s = conditional_space(forbidden=[Forbidden({"kernel": "poly", "degree": [5, 6]}), Forbidden({"kernel": "linear"})])
  opt = optformer.Optimizer(s, model=model, initial_design="sobol:6", seed=1)
  calls = count_model_calls(opt, monkeypatch)
  design = []
  for i in range(6):
    c = opt.ask()
    design.append(c)
    assert c == s.validate(c)  # Valid: bounds, children of active parents only, no forbidden clause.
    opt.tell(c, float(i))
  assert not calls  # No model call during the design.
  expected = [s.from_unit(u) for u in sobol_points(s, opt.designer.design_seed, 6)[:6]]
  assert [dict(c) for c in design] == expected  # The sequence's allowed points, in order.
  assert len({json.dumps(dict(c), sort_keys=True) for c in design}) == 6
  after = opt.ask()
  assert calls and not s.is_forbidden(after)  # The model ranks the next candidates.


def test_batch_ask_returns_the_whole_design_and_a_warm_started_study_skips_it(model, monkeypatch):
  s = conditional_space()
  opt = optformer.Optimizer(s, model=model, initial_design="sobol:3", seed=0)
  batch = opt.ask(3)
  assert [dict(c) for c in batch] == [s.from_unit(u) for u in sobol_points(s, opt.designer.design_seed, 3)[:3]]
  warm = optformer.Optimizer(s, model=model, initial_design="sobol:3", seed=0)
  for i, c in enumerate(batch):
    warm.tell(dict(c), float(i))  # Three told trials: the design is covered.
  calls = count_model_calls(warm, monkeypatch)
  warm.ask()
  assert calls and warm.designer.design_seed is None


def test_design_is_saved_and_restored_with_the_study(model, tmp_path):
  s = conditional_space()
  whole = optformer.Optimizer(s, model=model, initial_design="sobol:5", seed=7)
  part = optformer.Optimizer(s, model=model, initial_design="sobol:5", seed=7)
  for i in range(2):
    whole.tell(whole.ask(), float(i))
    part.tell(part.ask(), float(i))
  part.save(tmp_path / "study.json")
  data = json.loads((tmp_path / "study.json").read_text())
  assert data["options"]["initial_design"] == "sobol:5" and data["design_seed"] == whole.designer.design_seed
  resumed = optformer.Optimizer.load(tmp_path / "study.json", model=model)
  assert resumed.initial_design == "sobol:5"
  for i in range(4):  # Three more design trials, then the model's first suggestion: all as uninterrupted.
    a, b = whole.ask(), resumed.ask()
    assert dict(a) == dict(b)
    whole.tell(a, float(i))
    resumed.tell(b, float(i))


def test_a_study_file_without_the_design_loads_with_none(model):
  opt = optformer.Optimizer(conditional_space(), model=model, initial_design="centre")
  data = opt.to_json()
  del data["options"]["initial_design"], data["design_seed"]
  assert optformer.Optimizer.from_json(data, model=model).initial_design == "none"
  data["options"]["initial_design"] = "grid"
  with pytest.raises(ValueError, match="field 'options'.*'grid'"):
    optformer.Optimizer.from_json(data, model=model)


def test_benchmark_variant_takes_the_design(model):
  assert opt_lib.split_variant("optformer:initial_design=sobol:5") == ("optformer", {"initial_design": "sobol:5"})
  opt = opt_lib.make("optformer:initial_design=centre", conditional_space(), "minimize", 0, model=model)
  assert opt.initial_design == "centre" and opt.search == optformer.SearchConfig()
