"""The benchmark framework: every registered optimizer through one ask/tell loop, regret math, cache, report."""

import json
import math

import numpy as np
import pytest

import optformer
from optformer.eval import benchmark, optimizers, regret, report, runner, suites


def _run(name, space, goal, seed, trials, objective, model):
  opt = optimizers.make(name, space, goal, seed, model=model)
  return runner.run_study(opt, objective, trials)


def test_every_registered_optimizer_runs_the_same_loop_inside_the_space(mixed_space, tiny_v2_model):
  rng = np.random.default_rng(0)
  target = mixed_space.sample(rng)

  def objective(params):  # Smallest at `target`; categorical mismatch costs 1.
    u, v = mixed_space.to_unit(params), mixed_space.to_unit(target)
    return float(np.sum((u[:3] - v[:3]) ** 2) + (u[3] != v[3]))

  numeric = optformer.SearchSpace([optformer.Float("x", -2.0, 3.0), optformer.Int("n", 1, 64, log=True)])
  assert set(optimizers.OPTIMIZERS) == set(optimizers.factories(tiny_v2_model))
  for name in optimizers.OPTIMIZERS:
    space = mixed_space if optimizers.supports(name, mixed_space) else numeric
    f = objective if space is mixed_space else (lambda p: (p["x"] - 1.0) ** 2 + math.log(p["n"]))
    runs = [_run(name, space, "minimize", 7, 6, f, tiny_v2_model) for _ in range(2)]
    for r in runs[0]:
      assert space.validate(r.params) == r.params, name  # Every suggestion lies in the space.
      assert math.isfinite(r.value) and r.seconds_per_suggestion >= 0
    assert [r.params for r in runs[0]] == [r.params for r in runs[1]], name  # Deterministic under a seed.
  assert not optimizers.supports("cmaes", mixed_space)
  with pytest.raises(ValueError, match="numeric"):
    optimizers.make("cmaes", mixed_space, "minimize", 0)


@pytest.mark.parametrize("name", ["tpe", "gp", "cmaes"])
def test_model_based_baselines_improve_on_an_easy_quadratic(name):
  space = optformer.SearchSpace([optformer.Float("a", -5.0, 5.0), optformer.Float("b", -5.0, 5.0)])
  f = lambda p: (p["a"] - 1.0) ** 2 + (p["b"] + 2.0) ** 2
  goals = (("minimize", 1.0),) if name == "gp" else (("minimize", 1.0), ("maximize", -1.0))  # gp: slowest.
  for goal, sign in goals:
    values = [sign * r.value for r in _run(name, space, goal, 0, 16, lambda p: sign * f(p), None)]
    # Loosely: its last suggestions are better than its first (random start-up or wide CMA-ES steps).
    assert np.median(values[-5:]) < np.median(values[:5]), (name, goal)


def test_optuna_wrapper_records_outside_configurations_and_failures():
  space = optformer.SearchSpace([optformer.Float("x", 0.0, 1.0), optformer.Categorical("c", ("a", "b"))])
  opt = optimizers.make("tpe", space, "maximize", 0)
  opt.tell({"x": 0.5, "c": "a"}, 1.0)  # Never asked: added as a completed trial.
  p = opt.ask()
  opt.tell(p, float("nan"))  # A failed evaluation.
  states = [t.state.name for t in opt.study.trials]
  assert states == ["COMPLETE", "FAIL"] and opt.study.direction.name == "MAXIMIZE"
  q = opt.ask()
  opt.remove_pending(q)
  with pytest.raises(ValueError, match="not a pending"):
    opt.remove_pending(q)


def test_sobol_covers_categories_and_bad_names_are_rejected(mixed_space):
  opt = optimizers.make("sobol", mixed_space, "minimize", 3)
  seen = {repr(opt.ask()["optimizer"]) for _ in range(32)}
  assert len(seen) == 4
  with pytest.raises(ValueError, match="Unknown optimizer 'nope'"):
    optimizers.make("nope", mixed_space, "minimize", 0)
  with pytest.raises(ValueError, match="goal"):
    optimizers.make("random", mixed_space, "lowest", 0)
  with pytest.raises(ValueError, match="Unknown suite 'nope'"):
    suites.build("nope")
  with pytest.raises(ValueError, match="Unknown suite"):
    benchmark.make_plans("bench", ["prior", "nope"])
  with pytest.raises(ValueError, match="Unknown preset"):
    benchmark.make_plans("huge")


def test_normalized_regret_on_hand_made_curves():
  y_star, y_rand = regret.reference("minimize", [2.0, 4.0, float("nan")], optimum=0.0, seen=[[1.0, 3.0]])
  assert (y_star, y_rand) == (0.0, 3.0)
  r = regret.normalized_regret([[float("nan"), 3.0, 1.5, 2.0, 0.0]], "minimize", y_star, y_rand)
  np.testing.assert_allclose(r, [[1.0, 1.0, 0.5, 0.5, 0.0]])
  # Maximize: the same curve with signs flipped; a value better than the optimum estimate improves y*.
  y_star, y_rand = regret.reference("maximize", [-2.0, -4.0], optimum=-0.5, seen=[[0.0, -3.0]])
  assert (y_star, y_rand) == (0.0, 3.0)
  np.testing.assert_allclose(regret.normalized_regret([-3.0, -1.5, 0.0], "maximize", y_star, y_rand), [1.0, 0.5, 0.0])
  # Below y* (an estimate that a later value beats) clips at 0.
  assert regret.normalized_regret([-1.0], "minimize", 0.0, 3.0)[0] == 0.0
  with pytest.raises(ValueError, match="undefined"):
    regret.reference("minimize", [1.0, 1.0])


def test_wins_ties_losses_rule():
  a, b = [0.10, 0.11, 0.12, 0.13, 0.14], [0.50, 0.51, 0.52, 0.53, 0.54]
  assert report.wins_ties_losses(a, b) == "win" and report.wins_ties_losses(b, a) == "loss"
  assert report.wins_ties_losses(a[:3], b[:3]) == "tie"  # 3 seeds a side cannot reach p < 0.05.
  assert report.wins_ties_losses([0.0] * 5, [0.0] * 5) == "tie"


def test_cache_resumes_without_recomputing_and_report_builds_tables(tmp_path, monkeypatch, tiny_v2_model):
  plans = {"bbob": benchmark.SuitePlan(trials=6, seeds=2, tasks={"functions": (1, 3), "dimensions": (2,)},
                                       reference_samples=32)}
  names = ["optformer", "random", "sobol", "cmaes"]
  calls = []
  real = benchmark.run_one
  monkeypatch.setattr(benchmark, "run_one", lambda *a, **k: calls.append(a[:3]) or real(*a, **k))
  quiet = lambda line: None
  done = benchmark.run(tmp_path, plans, names, model=tiny_v2_model, log=quiet)
  assert done["run"] == len(calls) == 2 * 2 * 4 and done["cached"] == 0
  again = benchmark.run(tmp_path, plans, names, model=tiny_v2_model, log=quiet)
  assert again["run"] == 0 and again["cached"] == 16 and len(calls) == 16  # Nothing recomputed.
  # A study lost when the run was killed is the only one recomputed.
  benchmark.study_path(tmp_path, "bbob", "f03_d2_i1", "sobol", 1).unlink()
  assert benchmark.run(tmp_path, plans, names, model=tiny_v2_model, log=quiet)["run"] == 1
  assert calls[-1][1:] == ("sobol", 1)
  rec = json.loads(benchmark.study_path(tmp_path, "bbob", "f01_d2_i1", "random", 0).read_text())
  assert len(rec["values"]) == len(rec["seconds_per_suggestion"]) == 6 and rec["noiseless"] == rec["values"]

  text, res = report.build(tmp_path, at=(3, 6))
  s = res["suites"]["bbob"]
  assert s["tasks"] == 2 and s["optimizers"] == names and s["at"] == [3, 6]
  for n in names:
    mean, se, count = s["regret"][n]["6"]
    assert 0 <= mean <= s["regret"][n]["3"][0] + 1e-12 and count == 4  # 2 tasks x 2 seeds; regret never rises.
  assert sum(s["wtl"]["random"][k] for k in ("win", "tie", "loss")) == 2  # Problems f01_d2, f03_d2.
  ranks = [s["rank"][n]["6"][0] for n in names]
  assert np.isclose(np.mean(ranks), (len(names) + 1) / 2)
  # Paired: the reference's regret minus the peer's, study by study (same task, same seed).
  curves = [report.task_curves(e)["curves"] for e in report.load(tmp_path)["bbob"].values()]
  d = np.concatenate([c["optformer"][:, 5] - c["sobol"][:, 5] for c in curves])
  mean, se, count = s["paired"]["sobol"]["6"]
  assert count == 4 and np.isclose(mean, d.mean()) and np.isclose(se, d.std(ddof=1) / 2)
  assert set(s["paired"]) == set(names) - {"optformer"}
  assert "optformer minus each peer, paired by (task, seed)" in text and "| sobol | " in text
  assert "### bbob: 2 tasks, 6 trials per study" in text and "| cmaes |" in text
  assert (tmp_path / "report.md").exists() and (tmp_path / "figures" / "regret_bbob.png").stat().st_size > 0
  # A task that not every optimizer has finished stays out of the tables (like with like).
  for f in (tmp_path / "bbob" / "f03_d2_i1" / "cmaes").iterdir():
    f.unlink()
  _, res = report.build(tmp_path, at=(3, 6), figures=False)
  assert res["suites"]["bbob"]["tasks"] == 1 and res["suites"]["bbob"]["incomplete_tasks"] == 1
  with pytest.raises(FileNotFoundError):
    report.build(tmp_path / "missing")


def test_optformer_variants_take_search_sizes_and_options(mixed_space, tiny_v2_model):
  opt = optimizers.make("optformer:num_random=16,num_policy=0,rounds=1,acquisition=pi", mixed_space, "minimize", 3,
                        model=tiny_v2_model)
  assert (opt.search.num_random, opt.search.num_policy, opt.search.rounds) == (16, 0, 1)
  assert opt.search.num_local == optformer.Optimizer(mixed_space, model=tiny_v2_model).search.num_local  # The rest: defaults.
  assert opt.acquisition == "pi" and opt.candidates == "search"
  r = _run("optformer:num_random=8,rounds=0", mixed_space, "minimize", 0, 4, lambda p: float(p["units"]), tiny_v2_model)
  assert len(r) == 4 and all(mixed_space.validate(x.params) == x.params for x in r)
  assert optimizers.parse_names(["optformer-random:num_candidates=8"]) == ["optformer-random:num_candidates=8"]
  for bad, match in (("tpe:num_random=3", "only the optformer"), ("optformer:width=3", "KEY=VALUE"),
                     ("optformer:num_random", "KEY=VALUE"), ("optformerx", "Unknown optimizer")):
    with pytest.raises(ValueError, match=match):
      optimizers.parse_names([bad])
  with pytest.raises(ValueError, match="num_random"):
    optimizers.make("optformer:num_random=-1", mixed_space, "minimize", 0, model=tiny_v2_model)


def test_a_cached_study_of_another_model_is_never_reported_as_this_one(tmp_path, tiny_v2_dir):
  plans = {"bbob": benchmark.SuitePlan(trials=3, seeds=1, tasks={"functions": (1,), "dimensions": (2,)},
                                       reference_samples=16)}
  quiet = lambda line: None
  assert benchmark.run(tmp_path, plans, ["optformer", "random"], model=tiny_v2_dir, log=quiet)["run"] == 2
  tiny = benchmark.Entry("optformer", "optformer", tiny_v2_dir, benchmark.model_id(tiny_v2_dir))
  rec = json.loads(benchmark.study_path(tmp_path, "bbob", "f01_d2_i1", tiny.key, 0).read_text())
  assert rec["model"] == tiny.model_id and rec["model"].startswith("sha256:") and rec["name"] == "optformer"
  assert benchmark.run(tmp_path, plans, ["optformer", "random"], model=tiny_v2_dir, log=quiet)["cached"] == 2
  # The shipped model into the same folder: its studies are its own (keyed by its model id), not the tiny model's.
  shipped = benchmark.run(tmp_path, plans, ["optformer", "random"], dry_run=True, log=quiet)
  assert (shipped["run"], shipped["cached"]) == (1, 1)  # Baselines use no model.
  assert shipped["entries"][0].key != tiny.key
  assert json.loads(benchmark.study_path(tmp_path, "bbob", "f01_d2_i1", tiny.key, 0).read_text()) == rec


def test_tasks_filter_keeps_named_tasks_of_any_registered_hpo_task(tmp_path):
  plans = benchmark.make_plans("bench", ["hpo", "bbob"], seeds=2, tasks=["lasso_diabetes", "f01_d2_i1"])
  assert plans["hpo"].names == ("lasso_diabetes", "f01_d2_i1") and "names" not in plans["hpo"].tasks
  done = benchmark.run(tmp_path, plans, ["random"], dry_run=True, log=lambda s: None)
  assert done["run"] == 2 * 2  # One hpo task (not in the bench preset's list) and one bbob task, 2 seeds each.
  assert benchmark.make_plans("bench", ["hpo"])["hpo"].names is None  # No filter: the preset's tasks.
  with pytest.raises(ValueError, match="No task named \\['nope'\\]"):
    benchmark.run(tmp_path, benchmark.make_plans("bench", ["hpo"], tasks=["nope", "knn_wine"]), ["random"],
                  dry_run=True, log=lambda s: None)
  with pytest.raises(ValueError, match="at least one"):
    benchmark.make_plans("bench", ["hpo"], tasks=[])
