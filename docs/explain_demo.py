"""Explaining the demo study, and the same explanations from a type-II-ML Gaussian process.

  python docs/explain_demo.py [--trials 40] [--seed 0] [--out docs/explain_demo]

1. Runs (or, if OUT/trials.csv exists, reads) a study of the demo task:
   HistGradientBoostingClassifier on scikit-learn's breast_cancer, 3-fold CV
   log-loss, minimized, 8 parameters of all four kinds (the task of `make
   demo`, eval/sklearn_tasks.py:hgb_breast_cancer, rewritten here so this
   script imports only `optformer`), tuned by optformer.Optimizer.
2. Explains it with the in-context surrogate (`optformer.explain.explain_study`).
3. Explains the same trials with scikit-learn's GaussianProcessRegressor:
   Matern-5/2 ARD kernel times a constant plus white noise, hyperparameters
   by type-II maximum likelihood (5 optimizer restarts), normalize_y, on
   unit-encoded parameters (`SearchSpace.to_unit`; categoricals one-hot).
4. Measures the true partial dependence of TRUTH_PARAMS (the objective
   itself on the same grid, averaged over TRUTH_CONFIGS of the observed
   configurations) and correlates both models' partial dependence with it.
5. Writes OUT/space.json, OUT/trials.csv (so `optformer explain --space
   OUT/space.json --history OUT/trials.csv --out DIR` reproduces step 2),
   OUT/comparison.json (both explanations, seconds per explanation, rank
   correlations between the two) and docs/explain_demo.png, and prints a
   table.

Needs scikit-learn and matplotlib (pip install optformer[demo]).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time
import warnings

import numpy as np

import optformer
from optformer import explain
from optformer.explain import study as study_lib

HERE = pathlib.Path(__file__).resolve().parent
TRUTH_PARAMS = ("learning_rate", "max_iter", "interaction_cst")  # Top-ranked by either model.
TRUTH_CONFIGS = 10  # Observed configurations (the first ones) averaged over for the true partial dependence.
SPACE = optformer.SearchSpace([
    optformer.Float("learning_rate", 1e-3, 1.0, log=True),
    optformer.Int("max_iter", 10, 50, log=True),
    optformer.Int("max_leaf_nodes", 2, 64, log=True),
    optformer.Int("min_samples_leaf", 1, 64, log=True),
    optformer.Float("l2_regularization", 1e-6, 10.0, log=True),
    optformer.Float("max_features", 0.1, 1.0),
    optformer.Discrete("max_bins", [15, 31, 63, 127, 255]),
    optformer.Categorical("interaction_cst", ["none", "pairwise", "no_interactions"]),
])


def objective(params) -> float:
  """Mean 3-fold stratified CV log-loss of HistGradientBoostingClassifier on breast_cancer (NaN if a fit fails)."""
  from sklearn.datasets import load_breast_cancer
  from sklearn.ensemble import HistGradientBoostingClassifier
  from sklearn.model_selection import StratifiedKFold, cross_val_score

  x, y = load_breast_cancer(return_X_y=True)
  model = HistGradientBoostingClassifier(
      learning_rate=params["learning_rate"], max_iter=params["max_iter"], max_leaf_nodes=params["max_leaf_nodes"],
      min_samples_leaf=params["min_samples_leaf"], l2_regularization=params["l2_regularization"],
      max_features=params["max_features"], max_bins=params["max_bins"],
      interaction_cst=None if params["interaction_cst"] == "none" else params["interaction_cst"],
      early_stopping=False, random_state=0,
  )
  from threadpoolctl import threadpool_limits

  with threadpool_limits(1), warnings.catch_warnings(), np.errstate(all="ignore"):  # as eval/sklearn_tasks.py
    warnings.simplefilter("ignore")
    try:
      scores = cross_val_score(model, x, y, cv=StratifiedKFold(3, shuffle=True, random_state=0), scoring="neg_log_loss")
    except Exception:
      return math.nan
  return float(-np.mean(scores))


def run_study(num_trials: int, seed: int) -> list[tuple[dict, float]]:
  opt = optformer.Optimizer(SPACE, "minimize", seed=seed)
  trials = []
  for _ in range(num_trials):
    params = opt.ask()
    value = objective(params)
    opt.tell(params, value)
    trials.append((dict(params), value))
    print(f"trial {len(trials)}: {value:.4f}", flush=True)
  return trials


def gp_view(space, goal, trials) -> study_lib.StudyView:
  """A StudyView whose predictions come from a type-II-ML GP fit on the trials (module docstring)."""
  from sklearn.gaussian_process import GaussianProcessRegressor
  from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

  def encode(configs):
    cols = []
    for p in space:
      u = np.array([p.to_unit(c[p.name]) for c in configs])
      cols.append(np.eye(p.num_values)[u.astype(int)] if isinstance(p, optformer.Categorical) else u[:, None])
    return np.concatenate(cols, axis=1)

  feasible = [(c, v) for c, v in trials if math.isfinite(v)]
  configs, values = [c for c, _ in feasible], np.array([v for _, v in feasible])
  x = encode(configs)
  kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.ones(x.shape[1]), (1e-2, 1e2), nu=2.5) + WhiteKernel(1e-3, (1e-6, 1e0))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=5, random_state=0).fit(x, values)

  def score(batch):
    mean, std = gp.predict(encode(batch), return_std=True)
    return mean, std**2

  return study_lib.StudyView(space, goal, configs, values, score)


def _spearman(a: dict, b: dict) -> float:
  from scipy.stats import spearmanr

  keys = list(a)
  return float(spearmanr([a[k] for k in keys], [b[k] for k in keys]).statistic)


def figure(result: dict, gp: dict, truth: dict, path: pathlib.Path) -> None:
  """Three panels: PDP of the top tunability parameter (both models), tunability Shapley values, interactions."""
  from matplotlib.figure import Figure

  tun = result["importance"]["tunability"]
  top = max(tun["values"], key=lambda n: abs(tun["values"][n]))
  fig = Figure(figsize=(14, 3.8), layout="constrained")
  ax_pdp, ax_imp, ax_int = fig.subplots(1, 3, width_ratios=[1.1, 1, 1])
  pd = explain.partial_dependence(result["view"], top)
  explain.plot_pdp(pd, space=SPACE, ax=ax_pdp, objective="CV log-loss")
  gp_pd = gp["pdp"][top]
  ax_pdp.plot(gp_pd.grid, gp_pd.mean, "--", color="C1", lw=2, label="GP (type-II ML) partial dependence")
  if top in truth:
    ax_pdp.plot(truth[top]["grid"], truth[top]["true"], "ks", ms=4,
                label=f"true objective, mean over {TRUTH_CONFIGS} trials' configurations")
  ax_pdp.legend(fontsize="x-small")
  ax_pdp.set_title("partial dependence, ICE curves", fontsize="medium")
  imp = result["objects"]["tunability"]
  explain.plot_importance(imp, ax=ax_imp)
  names = imp.ranking()[::-1]
  ax_imp.plot([gp["objects"]["tunability"].values[n] for n in names], names, "D", color="C1", label="GP")
  ax_imp.legend(fontsize="x-small")
  explain.plot_interactions(imp, ax=ax_int)
  fig.suptitle("Explaining 40 trials of HistGradientBoosting on breast_cancer (3-fold CV log-loss, minimized)",
               fontsize="medium")
  fig.savefig(path, dpi=110)


def explain_all(view) -> tuple[dict, dict, dict]:
  """(Importance by game, PartialDependence by parameter, seconds by explanation)."""
  seconds, objects, pdps = {}, {}, {}
  for game in explain.GAMES:
    start = time.perf_counter()
    objects[game] = explain.importance(view, game)
    seconds[game] = time.perf_counter() - start
  start = time.perf_counter()
  objects["variance"] = explain.variance_importance(view)
  seconds["variance"] = time.perf_counter() - start
  for n in view.space.names:
    start = time.perf_counter()
    pdps[n] = explain.partial_dependence(view, n)
    seconds[f"pdp:{n}"] = time.perf_counter() - start
  return objects, pdps, seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--trials", type=int, default=40)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=pathlib.Path, default=HERE / "explain_demo")
  args = parser.parse_args()
  args.out.mkdir(parents=True, exist_ok=True)
  trials_csv = args.out / "trials.csv"
  if trials_csv.exists():
    from optformer import study_files

    trials = [(p, math.nan if v is None else v) for _, p, v, _ in study_files.read_trials(trials_csv, SPACE, history=True)]
  else:
    start = time.perf_counter()
    trials = run_study(args.trials, args.seed)
    print(f"study: {len(trials)} trials in {time.perf_counter() - start:.0f} s")
    lines = [",".join(SPACE.names + ["objective"])]
    lines += [",".join([str(p[n]) for n in SPACE.names] + [repr(v) if math.isfinite(v) else ""]) for p, v in trials]
    trials_csv.write_text("\n".join(lines) + "\n")
    (args.out / "space.json").write_text(json.dumps(SPACE.to_json(), indent=1) + "\n")

  opt = optformer.Optimizer(SPACE, "minimize")
  for p, v in trials:
    opt.tell(p, v)
  views = {"optformer": study_lib.as_study(opt), "gp": None}
  start = time.perf_counter()
  views["gp"] = gp_view(SPACE, "minimize", trials)
  gp_fit_seconds = time.perf_counter() - start
  explain.importance(views["optformer"], "ablation")  # Warm-up: compile the model's query shape once.
  results = {}
  for name, view in views.items():
    objects, pdps, seconds = explain_all(view)
    results[name] = {"view": view, "objects": objects, "pdp": pdps, "seconds": seconds}

  ours, gp = results["optformer"], results["gp"]
  comparison = {
      "task": "HistGradientBoostingClassifier, breast_cancer, 3-fold CV log-loss (minimize)",
      "num_trials": len(trials), "best_objective": float(np.nanmin([v for _, v in trials])),
      "gp_fit_seconds": gp_fit_seconds,
      "seconds": {name: {k: round(v, 3) for k, v in r["seconds"].items()} for name, r in results.items()},
      "spearman_optformer_vs_gp": {
          **{g: _spearman(ours["objects"][g].values, gp["objects"][g].values) for g in (*explain.GAMES, "variance")},
          **{f"interactions:{g}": _spearman(ours["objects"][g].interactions, gp["objects"][g].interactions)
             for g in explain.GAMES},
      },
      "pdp_correlation_optformer_vs_gp": {
          n: float(np.corrcoef(ours["pdp"][n].mean, gp["pdp"][n].mean)[0, 1]) for n in SPACE.names
      },
      "explanations": {name: {g: o.to_json() for g, o in r["objects"].items()} for name, r in results.items()},
  }
  start = time.perf_counter()
  truth = {}
  for n in TRUTH_PARAMS:
    grid = ours["pdp"][n].grid[::2] if SPACE[n].num_values == 0 else ours["pdp"][n].grid
    true_pd = [np.nanmean([objective({**c, n: SPACE[n].validate(g.item() if hasattr(g, "item") else g)})
                           for c in views["optformer"].configs[:TRUTH_CONFIGS]]) for g in grid]
    idx = [list(ours["pdp"][n].grid).index(g) for g in grid]
    truth[n] = {
        "grid": [g.item() if hasattr(g, "item") else g for g in grid], "true": [float(v) for v in true_pd],
        **{f"corr_{name}": float(np.corrcoef(r["pdp"][n].mean[idx], true_pd)[0, 1]) for name, r in results.items()},
    }
  comparison["true_partial_dependence"] = truth
  comparison["truth_seconds"] = time.perf_counter() - start
  (args.out / "comparison.json").write_text(json.dumps(comparison, indent=1) + "\n")
  figure({**ours, "importance": {g: o.to_json() for g, o in ours["objects"].items()}}, gp, truth, HERE / "explain_demo.png")

  print(f"{'explanation':<24} {'optformer s':>12} {'GP s':>8}")
  for key in ours["seconds"]:
    print(f"{key:<24} {ours['seconds'][key]:>12.2f} {gp['seconds'][key]:>8.2f}")
  print(f"GP fit: {gp_fit_seconds:.2f} s")
  for game in (*explain.GAMES, "variance"):
    print(f"{game:<11} optformer ranking {ours['objects'][game].ranking()}")
    print(f"{'':<11} GP        ranking {gp['objects'][game].ranking()}")
  print("Spearman optformer vs GP:", {k: round(v, 2) for k, v in comparison["spearman_optformer_vs_gp"].items()})
  for n, t in truth.items():
    print(f"true PD of {n}: corr with optformer {t['corr_optformer']:.2f}, with GP {t['corr_gp']:.2f} "
          f"(true range {np.ptp(t['true']):.3f}; optformer {np.ptp(ours['pdp'][n].mean):.3f}, GP {np.ptp(gp['pdp'][n].mean):.3f})")
  print("PDP correlation optformer vs GP:", {k: round(v, 2) for k, v in comparison["pdp_correlation_optformer_vs_gp"].items()})


if __name__ == "__main__":
  main()
