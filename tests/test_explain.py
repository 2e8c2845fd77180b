"""optformer.explain: exact Shapley algebra, truth checks on synthetic objectives with the shipped model, bad input, CLI.

Truth checks: objectives of known structure, 50 (additive) or 40
(interaction) uniformly random trials, the shipped checkpoint as the
surrogate. The known answers (true partial dependences, true game values
from the objective itself) are computed by the same formulas on the true
objective, so a broken implementation (zeros, shuffled names, a wrong sign)
fails them.
"""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import optformer
from optformer import cli, explain
from optformer.explain import shapley
from optformer.explain import study as study_lib

ADDITIVE_SPACE = optformer.SearchSpace([
    optformer.Float("a", 0.0, 1.0),
    optformer.Float("b", 1e-4, 1e-1, log=True),
    optformer.Int("k", 0, 10),
    optformer.Categorical("e", ["x", "y", "z"]),  # irrelevant
])
WEIGHTS = {"a": 3.0, "b": 1.5, "k": 0.75}  # per unit of each parameter's unit value (b: log10 scale)
WORST = {"a": 1.0, "b": 1e-1, "k": 10, "e": "x"}  # the worst configuration for minimizing `additive`


def additive(p) -> float:
  return WEIGHTS["a"] * p["a"] + WEIGHTS["b"] * (math.log10(p["b"]) + 4) / 3 + WEIGHTS["k"] * p["k"] / 10


INTERACTION_SPACE = optformer.SearchSpace([optformer.Float(n, 0.0, 1.0) for n in ("a", "c", "d", "z")])


def interaction(p) -> float:
  """3 c d (complementary: either alone does nothing from c = d = 0) + a weak additive a; z irrelevant."""
  return 3.0 * p["c"] * p["d"] + 0.5 * p["a"]


def _fit(space, fn, n, seed, goal):
  rng = np.random.default_rng(seed)
  X = [space.sample(rng) for _ in range(n)]
  return optformer.Surrogate(space, goal=goal).fit(X, [fn(c) for c in X]), X


@pytest.fixture(scope="module")
def additive_study():
  return _fit(ADDITIVE_SPACE, additive, 50, 0, "minimize")


@pytest.fixture(scope="module")
def interaction_study():
  return _fit(INTERACTION_SPACE, interaction, 40, 0, "maximize")


def _true_game(space, fn, sign, ref, game, target=None, candidates=None):
  """v float [2^D] of the ablation / tunability game on the true objective (the module's definitions)."""
  names = space.names
  mix = lambda s, inside: {n: (inside if (s >> i) & 1 else ref)[n] for i, n in enumerate(names)}
  if game == "ablation":
    return np.array([sign * (fn(mix(s, target)) - fn(ref)) for s in range(2 ** len(names))])
  return np.array([max(sign * (fn(mix(s, c)) - fn(ref)) for c in candidates) for s in range(2 ** len(names))])


# -- Exact Shapley algebra ----------------------------------------------------


def _brute_force(v, d):
  val = lambda S: v[sum(1 << i for i in S)]
  phi, inter = np.zeros(d), np.zeros((d, d))
  for i in range(d):
    rest = [j for j in range(d) if j != i]
    for k in range(d):
      for S in itertools.combinations(rest, k):
        phi[i] += math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) * (val(S + (i,)) - val(S))
  for i, j in itertools.combinations(range(d), 2):
    rest = [l for l in range(d) if l not in (i, j)]
    for k in range(d - 1):
      for S in itertools.combinations(rest, k):
        w = math.factorial(k) * math.factorial(d - k - 2) / math.factorial(d - 1)
        inter[i, j] += w * (val(S + (i, j)) - val(S + (i,)) - val(S + (j,)) + val(S))
  return phi, inter + inter.T


@pytest.mark.parametrize("d", [1, 2, 5])
def test_shapley_values_and_interactions_match_the_definitions(d):
  v = np.random.default_rng(d).normal(size=2**d)
  phi, inter = _brute_force(v, d)
  np.testing.assert_allclose(shapley.shapley_values(v), phi, atol=1e-12)
  np.testing.assert_allclose(shapley.shapley_interactions(v), inter, atol=1e-12)
  assert shapley.shapley_values(v).sum() == pytest.approx(v[-1] - v[0])  # efficiency


def test_moebius_of_a_pure_pair_game():
  v = np.array([0.0, 0.0, 0.0, 3.0])  # only the coalition {0, 1} is worth anything
  np.testing.assert_allclose(shapley.moebius(v), [0, 0, 0, 3])
  np.testing.assert_allclose(shapley.shapley_values(v), [1.5, 1.5])
  assert shapley.shapley_interactions(v)[0, 1] == pytest.approx(3.0)


# -- Truth checks: partial dependence ---------------------------------------


def _true_pd(fn, X, name, grid):
  return np.array([np.mean([fn({**c, name: g}) for c in X]) for g in grid])


def test_pdp_recovers_the_additive_effects_and_their_direction(additive_study):
  sur, X = additive_study
  ranges = {}
  for name in ("a", "b", "k"):
    pd = explain.partial_dependence(sur, name, grid=10)
    grid = [ADDITIVE_SPACE[name].validate(g) for g in pd.grid]
    truth = _true_pd(additive, X, name, grid)
    assert np.corrcoef(pd.mean, truth)[0, 1] > 0.8, name
    # One ICE curve per trial, each at its own trial's level (the other parameters' effect: a spread of about
    # 0.3-0.7 around the mean), and the PD averages all of them: its level is the truth's (measured: within 0.02).
    truth_ice = np.array([[additive({**c, name: g}) for g in grid] for c in X])
    assert pd.ice.shape == truth_ice.shape
    assert np.corrcoef(pd.ice.mean(1), truth_ice.mean(1))[0, 1] > 0.95, name  # measured: 0.996
    assert abs(pd.mean.mean() - truth.mean()) < 0.1, name
    assert pd.mean[-1] > pd.mean[0] + 2 * np.abs(np.diff(pd.mean)).min(), name  # increasing, as the truth
    ranges[name] = np.ptp(pd.mean)
  flat = explain.partial_dependence(sur, "e")
  assert list(flat.grid) == ["x", "y", "z"]
  assert np.ptp(flat.mean) < 0.3 * ranges["a"]  # irrelevant: flat next to the strongest effect
  assert ranges["a"] > ranges["b"]


def test_pdp_grid_is_log_spaced_for_log_parameters_and_levels_for_ints(additive_study):
  sur, _ = additive_study
  pd = explain.partial_dependence(sur, "b", grid=7)
  np.testing.assert_allclose(np.diff(np.log10(pd.grid)), 0.5)  # 1e-4 ... 1e-1 in half decades
  assert explain.partial_dependence(sur, "k", grid=20).grid.tolist() == list(range(11))  # 11 levels <= 20
  assert explain.partial_dependence(sur, "b", grid=[1e-3, 1e-2]).grid.tolist() == [1e-3, 1e-2]


def test_pdp_is_the_mean_of_ice_and_std_comes_from_the_predictive_variances(additive_study):
  sur, X = additive_study
  pd = explain.partial_dependence(sur, "a", grid=5)
  assert pd.ice.shape == (len(X), 5) and pd.mean.shape == pd.std.shape == (5,)
  np.testing.assert_allclose(pd.mean, pd.ice.mean(axis=0))
  mean, std = sur.predict([{**c, "a": float(pd.grid[2])} for c in X], return_std=True)
  np.testing.assert_allclose(pd.ice[:, 2], mean, rtol=1e-5)  # float32 model, another query padding
  np.testing.assert_allclose(pd.std[2], np.sqrt(np.mean(std**2)), rtol=1e-5)


def test_pdp_2d_recovers_the_interaction(interaction_study):
  sur, X = interaction_study
  pd = explain.partial_dependence(sur, ("c", "d"), grid=6)
  assert pd.mean.shape == (6, 6) and pd.ice.shape == (len(X), 6, 6)
  truth = np.outer(pd.grid[0], pd.grid[1])
  centred = lambda m: m - m.mean(0, keepdims=True) - m.mean(1, keepdims=True) + m.mean()  # the pure c x d part
  assert np.corrcoef(pd.mean.ravel(), truth.ravel())[0, 1] > 0.8
  assert np.corrcoef(centred(pd.mean).ravel(), centred(truth).ravel())[0, 1] > 0.6
  # Each trial's ICE surface sits at its own level (0.5 a of that trial), and the PD is their mean: its level is
  # the true PD's (measured: level correlation 0.975, level within 0.04).
  true_ice = np.array([[[interaction({**c, "c": g1, "d": g2}) for g2 in pd.grid[1]] for g1 in pd.grid[0]] for c in X])
  assert np.corrcoef(pd.ice.mean((1, 2)), true_ice.mean((1, 2)))[0, 1] > 0.8
  assert abs(pd.mean.mean() - true_ice.mean()) < 0.15


# -- Truth checks: importance -----------------------------------------------


@pytest.mark.parametrize("game", ["ablation", "tunability"])
def test_importance_recovers_the_additive_ranking(additive_study, game):
  sur, X = additive_study
  imp = explain.importance(sur, game, reference=WORST)
  names = ADDITIVE_SPACE.names
  rng = np.random.default_rng(0)  # the candidates importance() uses: reference, trials, 32 samples of seed 0
  candidates = [WORST] + X + [ADDITIVE_SPACE.sample(rng) for _ in range(32)]
  v = _true_game(ADDITIVE_SPACE, additive, -1.0, WORST, game, target=imp.target, candidates=candidates)
  true_phi = shapley.shapley_values(v)
  est = np.array([imp.values[n] for n in names])
  assert list(imp.values) == names
  assert np.corrcoef(est, true_phi)[0, 1] > 0.8
  assert imp.ranking()[0] == "a"
  assert abs(imp.values["e"]) < 0.3 * imp.values["a"]  # the irrelevant parameter
  assert imp.values["a"] > 0  # gain units: moving "a" away from the worst value improves the objective
  assert imp.coalition_values[0] == 0.0
  assert sum(imp.values.values()) == pytest.approx(imp.coalition_values[-1])  # efficiency


@pytest.mark.parametrize("game", ["ablation", "tunability"])
def test_importance_finds_the_strong_interaction(interaction_study, game):
  sur, _ = interaction_study
  imp = explain.importance(sur, game, reference={"a": 0.0, "c": 0.0, "d": 0.0, "z": 0.5})
  assert max(imp.interactions, key=lambda k: abs(imp.interactions[k])) == ("c", "d")
  assert imp.interactions[("c", "d")] > 2 * max(abs(v) for k, v in imp.interactions.items() if k != ("c", "d"))
  assert set(imp.ranking()[:2]) == {"c", "d"}
  assert len(imp.interactions) == 6 and all(a < b for a, b in [(INTERACTION_SPACE.names.index(x),
                                                               INTERACTION_SPACE.names.index(y)) for x, y in imp.interactions])


def test_ablation_defaults_to_the_first_trial_and_targets_the_incumbent(additive_study):
  sur, X = additive_study
  imp = explain.importance(sur, "ablation")
  assert imp.reference == X[0]
  y = [additive(c) for c in X]
  assert imp.target == X[int(np.argmin(y))]


def test_variance_importance_ranks_the_additive_effects(additive_study):
  sur, _ = additive_study
  values = explain.variance_importance(sur, grid=6).values
  assert values["a"] > values["b"] > values["e"] and values["a"] > values["k"] > values["e"]
  assert all(0.0 <= v <= 1.0 for v in values.values())


def test_variance_importance_of_pairs_finds_the_interaction(interaction_study):
  sur, _ = interaction_study
  imp = explain.variance_importance(sur, grid=5, pairs=True)
  assert max(imp.interactions, key=imp.interactions.get) == ("c", "d")
  assert imp.interactions[("c", "d")] > 2 * max(v for k, v in imp.interactions.items() if k != ("c", "d"))
  assert all(0.0 <= v <= 1.0 for v in [*imp.values.values(), *imp.interactions.values()])
  assert imp.values["z"] < 0.1 * min(imp.values["c"], imp.values["d"])


def test_all_coalitions_are_scored_in_a_few_batched_calls(interaction_study, monkeypatch):
  sur, X = interaction_study
  calls = []
  predict = sur.predict_distribution
  monkeypatch.setattr(sur, "predict_distribution", lambda configs: calls.append(len(configs)) or predict(configs))
  # 16 coalitions x (reference + 40 trials + 32 samples); the first trial is the reference, so 15 x 72 + 1 distinct.
  explain.importance(sur, "tunability", seed=1)
  assert calls == [study_lib.CHUNK, study_lib.CHUNK]
  calls.clear()
  explain.importance(sur, "tunability", seed=0)  # seed 0 samples the trials' configurations again (same rng)
  assert calls == [study_lib.CHUNK]  # each distinct configuration is scored once
  calls.clear()
  explain.importance(sur, "ablation")
  assert calls == [study_lib.CHUNK]


def test_optuna_study_gives_the_same_explanation_as_the_optimizer(additive_study):
  optuna = pytest.importorskip("optuna")
  _, X = additive_study
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  study = optuna.create_study()
  dists = {"a": optuna.distributions.FloatDistribution(0.0, 1.0),
           "b": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
  for c in X[:20]:
    study.add_trial(optuna.trial.create_trial(params={"a": c["a"], "b": c["b"]}, distributions=dists,
                                              value=additive(c)))
  opt = optformer.Optimizer(optformer.SearchSpace([optformer.Float("a", 0.0, 1.0),
                                                   optformer.Float("b", 1e-4, 1e-1, log=True)]))
  for c in X[:20]:
    opt.tell({"a": c["a"], "b": c["b"]}, additive(c))
  from_optuna, from_opt = explain.partial_dependence(study, "a", grid=5), explain.partial_dependence(opt, "a", grid=5)
  np.testing.assert_allclose(from_optuna.mean, from_opt.mean)
  assert explain.importance(study, "ablation").values == pytest.approx(explain.importance(opt, "ablation").values)


# -- Bad input ---------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda s: explain.partial_dependence(s, "nope"), r"Unknown parameter 'nope'; expected one of .*'a'"),
    (lambda s: explain.partial_dependence(s, ("a", "a")), r"same parameter twice \('a', 'a'\)"),
    (lambda s: explain.partial_dependence(s, ("a", "b", "k")), r"a parameter name or a pair"),
    (lambda s: explain.partial_dependence(s, ("a", "nope")), r"Unknown parameter 'nope'"),
    (lambda s: explain.partial_dependence(s, "a", grid=1), r"int >= 2 .* got 1"),
    (lambda s: explain.partial_dependence(s, "a", grid=2.5), r"int >= 2 or a sequence .* float 2.5"),
    (lambda s: explain.partial_dependence(s, "a", grid="ten"), r"int >= 2 or a sequence .* 'ten'"),
    (lambda s: explain.partial_dependence(s, "a", grid=[]), r"'a' is empty"),
    (lambda s: explain.partial_dependence(s, "a", grid=[0.5, 2.0]), r"grid for parameter 'a'.*2.0 is outside"),
    (lambda s: explain.partial_dependence(s, "e", grid=["x", "w"]), r"grid for parameter 'e'.*'w' is not one of"),
    (lambda s: explain.partial_dependence(s, ("a", "b"), grid=[1, 2, 3]), r"pair \(grid_a, grid_b\)"),
    (lambda s: explain.importance(s, "shap"), r"game must be one of \('ablation', 'tunability'\), got 'shap'"),
    (lambda s: explain.importance(s, "ablation", reference={"a": 0.5}), r"reference is not a configuration.*Missing"),
    (lambda s: explain.importance(s, "tunability", num_samples=-1), r"num_samples must be an int >= 0, got -1"),
    (lambda s: explain.variance_importance(s, grid=0), r"grid must be an int >= 2, got 0"),
])
def test_bad_input_raises_a_clear_value_error(additive_study, call, message):
  with pytest.raises(ValueError, match=message):
    call(additive_study[0])


def test_a_study_with_fewer_than_two_trials_is_refused():
  opt = optformer.Optimizer(ADDITIVE_SPACE)
  opt.tell(WORST, 1.0)
  opt.tell({**WORST, "a": 0.5}, None)  # infeasible: does not count
  for call in (lambda: explain.partial_dependence(opt, "a"), lambda: explain.importance(opt)):
    with pytest.raises(ValueError, match=r"1 feasible trial\(s\); explanations need at least 2"):
      call()
  with pytest.raises(ValueError, match="not fitted"):
    explain.importance(optformer.Surrogate(ADDITIVE_SPACE))
  with pytest.raises(TypeError, match="optformer.Optimizer, a fitted optformer.Surrogate or an optuna.Study"):
    explain.importance([1, 2, 3])


# -- Figures, CLI, imports -----------------------------------------------------


def test_figures_are_drawn(additive_study, tmp_path):
  pytest.importorskip("matplotlib")
  sur, _ = additive_study
  imp = explain.importance(sur, "ablation")
  for i, fig in enumerate([
      explain.plot_pdp(explain.partial_dependence(sur, "b", grid=5), space=ADDITIVE_SPACE),
      explain.plot_pdp(explain.partial_dependence(sur, "e")),
      explain.plot_pdp_2d(explain.partial_dependence(sur, ("a", "e"), grid=4)),
      explain.plot_importance(imp), explain.plot_interactions(imp),
  ]):
    fig.savefig(tmp_path / f"{i}.png")
    assert (tmp_path / f"{i}.png").stat().st_size > 1000
  assert fig.axes[0].get_xscale() == "linear"
  with pytest.raises(ValueError, match="use plot_pdp_2d"):
    explain.plot_pdp(explain.partial_dependence(sur, ("a", "e"), grid=2))


def test_import_optformer_does_not_import_matplotlib_optuna_or_shapiq():
  code = "import sys, optformer; optformer.explain.importance; print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'optuna', 'shapiq'}))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]"


def _files(tmp_path, n):
  rng = np.random.default_rng(1)
  (tmp_path / "space.json").write_text(json.dumps(ADDITIVE_SPACE.to_json()))
  rows = ["a,b,k,e,objective"] + [
      f"{c['a']},{c['b']},{c['k']},{c['e']},{additive(c)}" for c in (ADDITIVE_SPACE.sample(rng) for _ in range(n))
  ]
  (tmp_path / "trials.csv").write_text("\n".join(rows) + "\n")
  return ["--space", str(tmp_path / "space.json"), "--history", str(tmp_path / "trials.csv")]


def test_cli_explain_writes_figures_and_numbers(tmp_path, capsys):
  pytest.importorskip("matplotlib")
  args = _files(tmp_path, 20)
  assert cli.main(["explain", *args, "--out", str(tmp_path / "out")]) == 0
  written = capsys.readouterr().out.split()
  data = json.loads((tmp_path / "out" / "explain.json").read_text())
  assert set(data["importance"]) == {"ablation", "tunability", "variance"}
  assert set(data["partial_dependence"]) == set(ADDITIVE_SPACE.names)
  assert set(data["importance"]["tunability"]["values"]) == set(ADDITIVE_SPACE.names)
  assert len(written) == 1 + len(data["figures"]) and all((tmp_path / "out" / f).stat().st_size > 0 for f in data["figures"])
  assert "pdp_a.png" in data["figures"] and "interactions_ablation.png" in data["figures"]


@pytest.mark.parametrize("out, trials, message", [
    (None, 20, r"explain needs --out DIR"),
    ("missing/out", 20, r"the parent directory does not exist"),
    ("file.txt", 20, r"is a file; expected a directory"),
    ("out", 1, r"trials.csv: The study has 1 feasible trial\(s\)"),
])
def test_cli_explain_errors_exit_2_with_one_line(tmp_path, capsys, out, trials, message):
  args = _files(tmp_path, trials)
  (tmp_path / "file.txt").write_text("x")
  code = cli.main(["explain", *args] + (["--out", str(tmp_path / out)] if out else []))
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("optformer explain: error: ")
  assert __import__("re").search(message, err), err
  assert not (tmp_path / "out").exists()
