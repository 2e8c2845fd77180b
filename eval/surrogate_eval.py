"""Surrogate quality on held-out prior tasks: the model next to the exact and a fitted GP.

For each held-out task (validation-split seeds, never used in training) we
take a random-search trajectory, use its first n trials as the context
(n in `context_sizes`, default 5, 10, 20, 50) and the next `num_queries`
trials as queries, and predict each query's noisy objective y with three
methods:

  * "model": the model's predictive distribution (`inference.PFNPredictive`,
    in objective units) through `optformer.model.Backend`, the
    path `optformer.Optimizer.predict` and `optformer.Surrogate` take;
  * "exact_gp": the GP with the task's TRUE hyperparameters on the true latent
    inputs, N(mean, var + noise variance) (data_gen/gp.py; Bayes-optimal for
    this prior up to the random-feature approximation of f; Rasmussen &
    Williams 2006, eq. 2.25-2.26);
  * "ml2_gp": scikit-learn's GaussianProcessRegressor with type-II maximum-
    likelihood hyperparameters (Rasmussen & Williams 2006, Sec. 5.4.1):
    Constant * Matern-5/2 ARD + WhiteKernel, normalize_y=True, L-BFGS-B
    with `gp_restarts` random restarts (bounds in `fit_ml2_gp`), on the
    inputs the model sees (float and int parameters at their unit value,
    categoricals one-hot), not the latent ones; its predictive std includes
    the fitted white noise. With few points ML-II is often overconfident,
    and a few far-off queries dominate its mean NLL: compare medians too.

Metrics, each per query in objective units (all tasks' queries pooled) unless
said otherwise:

  * NLL (nats): -log p(y). The model's is -log p(feasible) - log p(y | feasible),
    its density in objective units (`PFNPredictive.log_prob`, full support, so
    `fraction_outside_model_support` is 0).
  * CRPS (objective units): integral of (F(z) - 1[z >= y])^2 dz. Gaussian:
    sigma * (w (2 Phi(w) - 1) + 2 phi(w) - 1 / sqrt(pi)), w = (y - mu) / sigma
    (Gneiting & Raftery 2007, JASA, eq. 21). The model's: E|X - y| - E|X - X'| / 2
    (eq. 20) over `CRPS_QUANTILES` of its quantiles at midpoints (`quantile_crps`).
  * Calibration: the central interval of level a covers y iff the PIT value
    F(y) lies in [(1 - a) / 2, (1 + a) / 2]. Empirical coverage at
    a = 0.1, ..., 0.9 (`COVERAGE_LEVELS`) is the calibration-plot data;
    `calibration_error` is the mean over these 9 levels of
    |coverage - a| (0 = calibrated).
  * Spearman: rank correlation between the predicted mean and the noiseless
    f over the queries of one task, averaged over tasks (tasks with a
    constant prediction, where it is undefined, are skipped and counted).

`evaluate(...)` returns (consumed by eval/report.py):

  {"checkpoint": str, "num_tasks": int, "num_queries": int, "seed": int,
   "gp_restarts": int, "context_sizes": [int], "coverage_levels": [float] (9),
   "methods": ["model", "exact_gp", "ml2_gp"], "seconds": float,
   "by_context_size": {str(n): {
       "fraction_outside_model_support": float in [0, 1],
       "<method>": {
           "nll", "nll_se", "nll_median": float (nats per query),
           "nll_inside_support": float (mean NLL over the queries inside the
               model's support only, the same queries for every method),
           "crps", "crps_se": float (objective units),
           "coverage": [float] (9, empirical coverage at coverage_levels),
           "calibration_error": float in [0, 1],
           "spearman", "spearman_se": float in [-1, 1] (mean, s.e. over tasks),
           "spearman_tasks": int (tasks where it is defined)},
       # Aliases kept for older readers (README table, tests):
       "model_nll", "model_nll_se", "model_nll_median",
       "gp_nll", "gp_nll_se", "gp_nll_median": float (gp = exact_gp)}}}

Standard errors are std / sqrt(count) over queries (NLL, CRPS) or tasks
(Spearman).

Command: python -m optformer.eval.surrogate_eval [--checkpoint DIR] [--tasks 64] [--contexts 5 10 20 50]
  [--queries 20] [--gp-restarts 2] [--methods model exact_gp ml2_gp] [--out results/surrogate.json]
  [--figure results/surrogate_calibration.png]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

import jax
import numpy as np
import scipy.stats

from optformer.data_gen import gp
from optformer.data_gen.behaviour import ALGORITHMS, generate
from optformer.data_gen.prior import KIND_CATEGORICAL, PriorConfig, sample_tasks
from optformer.context import Context
from optformer.model import Backend

METHODS = ("model", "exact_gp", "ml2_gp")
COVERAGE_LEVELS = tuple(np.round(np.arange(1, 10) / 10, 1).tolist())  # 0.1, ..., 0.9.


# -- Metrics (pure functions) -------------------------------------------------


def gaussian_nll(mean, std, y) -> np.ndarray:
  """float [N]: -log N(y; mean, std^2) in nats; mean, std (> 0), y broadcast to [N]."""
  return -scipy.stats.norm.logpdf(y, loc=mean, scale=std)


def gaussian_crps(mean, std, y) -> np.ndarray:
  """float [N] >= 0: CRPS of N(mean, std^2) at y, in y's units (Gneiting & Raftery 2007, eq. 21)."""
  std = np.asarray(std, np.float64)
  w = (np.asarray(y, np.float64) - mean) / std
  return std * (w * (2.0 * scipy.stats.norm.cdf(w) - 1.0) + 2.0 * scipy.stats.norm.pdf(w) - 1.0 / np.sqrt(np.pi))


CRPS_QUANTILES = 256  # Quantile midpoints per query of the model's CRPS.


def quantile_crps(samples_QxK, y) -> np.ndarray:
  """float [Q] >= 0: CRPS of each row's equally weighted samples float [Q, K] at y (float [Q]):
  E|X - y| - E|X - X'| / 2 (Gneiting & Raftery 2007, eq. 20), E|X - X'| exact for the sorted sample."""
  samples = np.sort(np.asarray(samples_QxK, np.float64), axis=1)
  k = samples.shape[1]
  spread = 2.0 / k**2 * samples @ (2.0 * np.arange(1, k + 1) - k - 1)
  return np.abs(samples - np.asarray(y, np.float64)[:, None]).mean(1) - 0.5 * spread


def central_coverage(pit, levels=COVERAGE_LEVELS) -> np.ndarray:
  """float [L]: fraction of PIT values F(y) float [N] inside the central interval of each level in (0, 1)."""
  pit = np.asarray(pit, np.float64)
  return np.array([np.mean(np.abs(pit - 0.5) <= level / 2.0) for level in levels])


def calibration_error(coverage, levels=COVERAGE_LEVELS) -> float:
  """Mean over levels of |empirical coverage - level|, in [0, 1]; 0 for a calibrated predictor."""
  return float(np.mean(np.abs(np.asarray(coverage) - np.asarray(levels))))


def mean_spearman(predicted, true) -> tuple[float, float, int]:
  """(mean, s.e., count) over tasks of Spearman's rho between predicted[t] and true[t] (float [Q] each).

  Tasks where rho is undefined (a constant input) are skipped; (nan, nan, 0) if all are.
  """
  rho = []
  for p, t in zip(predicted, true):
    if np.ptp(p) > 0 and np.ptp(t) > 0:
      rho.append(scipy.stats.spearmanr(p, t).statistic)
  if not rho:
    return float("nan"), float("nan"), 0
  rho = np.array(rho)
  return float(rho.mean()), float(rho.std() / np.sqrt(len(rho))), len(rho)


# -- The fitted (type-II ML) GP ---------------------------------------------------


def gp_inputs(x_TxD, kinds_D, num_values_D) -> np.ndarray:
  """float [T, F]: unit-form x with unused slots dropped and categoricals one-hot (F columns)."""
  cols = []
  for j, (kind, n) in enumerate(zip(kinds_D, num_values_D)):
    if kind == KIND_CATEGORICAL:
      cols.append(np.eye(int(n))[np.rint(x_TxD[:, j]).astype(int)])
    elif kind != 0:
      cols.append(x_TxD[:, j:j + 1])
  return np.concatenate(cols, axis=1).astype(np.float64)


def fit_ml2_gp(x_NxF, y_N, restarts: int, seed: int):
  """A GaussianProcessRegressor fitted by type-II ML: Constant * Matern-5/2 ARD + White, normalize_y.

  Args:
    x_NxF: float [N, F] inputs in [0, 1] (`gp_inputs`); y_N: float [N] objectives.
    restarts: extra L-BFGS-B starts, drawn log-uniformly within the bounds.
    seed: seeds those starts.

  Bounds (on the standardized y): output variance [1e-2, 1e2], lengthscales
  [1e-2, 1e2], noise variance [1e-4, 1] (the floor of BoTorch's
  MIN_INFERRED_NOISE_LEVEL; lower floors make the few-point fits even more
  overconfident).
  """
  from sklearn.gaussian_process import GaussianProcessRegressor
  from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
  from threadpoolctl import threadpool_limits

  f = x_NxF.shape[1]
  kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.full(f, 0.5), (1e-2, 1e2), nu=2.5)
            + WhiteKernel(1e-2, (1e-4, 1e0)))
  gpr = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed)
  with threadpool_limits(1), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Hyperparameters at their bounds are expected with 5 points.
    return gpr.fit(x_NxF, y_N)


# -- Evaluation -----------------------------------------------------------------


def _scores(pit, nll, crps, mean, f, inside) -> dict:
  """One method on one task's Q queries: float [Q] each; `inside` bool [Q] marks the model's support."""
  return {"pit": pit, "nll": nll, "crps": crps, "mean": mean, "f": f, "inside": inside}


def _summary(rows: list[dict]) -> dict:
  """Pools per-task rows (see `_scores`) into the per-method metrics of the module docstring."""
  nll, crps, pit, inside = (np.concatenate([r[k] for r in rows]) for k in ("nll", "crps", "pit", "inside"))
  coverage = central_coverage(pit)
  rho, rho_se, rho_n = mean_spearman([r["mean"] for r in rows], [r["f"] for r in rows])
  se = lambda v: float(v.std() / np.sqrt(len(v)))
  return {
      "nll": float(nll.mean()), "nll_se": se(nll), "nll_median": float(np.median(nll)),
      "nll_inside_support": float(nll[inside].mean()) if inside.any() else float("nan"),
      "crps": float(crps.mean()), "crps_se": se(crps),
      "coverage": coverage.tolist(), "calibration_error": calibration_error(coverage),
      "spearman": rho, "spearman_se": rho_se, "spearman_tasks": rho_n,
  }


def evaluate(checkpoint=None, num_tasks: int = 64, context_sizes=(5, 10, 20, 50), num_queries: int = 20,
             seed: int = 0, gp_restarts: int = 2, methods=METHODS) -> dict:
  """Surrogate metrics of `methods` per context size on `num_tasks` held-out prior tasks.

  Args:
    checkpoint: a PFNSurrogate, a model directory, or None for the shipped one.
    num_tasks: validation-split prior tasks (>= 1), tasks 0..num_tasks-1 under `seed`.
    context_sizes: history lengths n (each 1 <= n <= the model's max_trials).
    num_queries: queries per task and context size, trials n..n+num_queries-1.
    seed: global seed of the task split (data_gen.prior.task_seeds).
    gp_restarts: extra random starts of the ML-II GP's optimizer.
    methods: a subset of METHODS.

  Returns:
    The dict described in the module docstring.

  Raises:
    ValueError: a bad count, context size or method.
    optformer.CheckpointError: the model cannot be loaded.
  """
  started = time.perf_counter()
  if unknown := set(methods) - set(METHODS):
    raise ValueError(f"Unknown methods {sorted(unknown)}; expected a subset of {METHODS}.")
  model = Backend.for_kinds(checkpoint, [], [])  # Loads the model once; each task's kinds are bound below.
  max_trials = model.capabilities.max_context
  if num_tasks < 1 or num_queries < 1 or not all(1 <= n <= max_trials for n in context_sizes):
    raise ValueError(f"Need num_tasks, num_queries >= 1 and context sizes in [1, {max_trials}]; got "
                     f"{num_tasks}, {num_queries}, {list(context_sizes)}.")
  prior = PriorConfig(max_dims=8)
  num_trials = max(context_sizes) + num_queries
  mix = [1.0 if a == "random" else 0.0 for a in ALGORITHMS]
  data = generate(prior, num_tasks, num_trials, mix, seed, split="validation")
  tasks = sample_tasks(prior, data["task_seed"])
  posterior = jax.jit(gp.posterior)
  results = {}
  for n in context_sizes:
    rows = {m: [] for m in methods}
    outside = []
    ctx, qry = slice(0, n), slice(n, n + num_queries)
    for i in range(num_tasks):
      kinds, nv = data["kinds"][i], data["num_values"][i]
      y = data["y"][i].astype(np.float64)  # Noisy, to maximize.
      y_q, f_q = y[qry], data["f"][i][qry].astype(np.float64)
      inside = np.ones(len(y_q), bool)
      context = Context(data["x"][i][ctx].astype(np.float64), y[ctx])
      if "model" in methods:
        backend = Backend(model.config, kinds, nv, engine=model.engine)
        pred = backend.condition(context).predict(data["x"][i][qry])
        nll = -(np.log(np.maximum(pred.p_feasible, 1e-300)) + pred.log_prob(y_q))
        levels = (np.arange(CRPS_QUANTILES) + 0.5) / CRPS_QUANTILES
        samples = np.stack([pred.quantile(q) for q in levels], axis=1)  # [Q, K] quantile midpoints.
        outside.append(np.zeros(len(y_q), bool))  # Full support: every query is inside.
        rows["model"].append(_scores(pred.cdf(y_q), nll, quantile_crps(samples, y_q), pred.mean, f_q, inside))
      if "exact_gp" in methods:
        task = jax.tree.map(lambda a: a[i], tasks)
        z = data["z"][i]
        mask = np.zeros(len(y), bool)
        mask[ctx] = True
        mean, var = posterior(task, z, y.astype(np.float32), mask, z[qry])
        mean = np.asarray(mean, np.float64)
        std = np.sqrt(np.asarray(var, np.float64) + float(task.noise_variance))
        rows["exact_gp"].append(_scores(scipy.stats.norm.cdf(y_q, mean, std), gaussian_nll(mean, std, y_q),
                                        gaussian_crps(mean, std, y_q), mean, f_q, inside))
      if "ml2_gp" in methods:
        x = gp_inputs(data["x"][i], kinds, nv)
        mean, std = fit_ml2_gp(x[ctx], y[ctx], gp_restarts, seed).predict(x[qry], return_std=True)
        std = np.maximum(std, 1e-9)
        rows["ml2_gp"].append(_scores(scipy.stats.norm.cdf(y_q, mean, std), gaussian_nll(mean, std, y_q),
                                      gaussian_crps(mean, std, y_q), mean, f_q, inside))
    row = {m: _summary(rows[m]) for m in methods}
    if "model" in methods:
      row["fraction_outside_model_support"] = float(np.concatenate(outside).mean())
    for alias, m in (("model", "model"), ("gp", "exact_gp")):
      if m in row:
        row.update({f"{alias}_{k}": row[m][k] for k in ("nll", "nll_se", "nll_median")})
    results[str(n)] = row
  return {
      "checkpoint": "shipped" if checkpoint is None else str(checkpoint) if isinstance(checkpoint, (str, pathlib.Path))
      else type(checkpoint).__name__, "num_tasks": num_tasks,
      "num_queries": num_queries, "seed": seed, "gp_restarts": gp_restarts, "context_sizes": list(context_sizes),
      "coverage_levels": list(COVERAGE_LEVELS), "methods": list(methods),
      "seconds": time.perf_counter() - started, "by_context_size": results,
  }


# -- Report ---------------------------------------------------------------------

_LABELS = {"model": "OptFormer", "exact_gp": "exact GP (true hyperparameters)", "ml2_gp": "GP (ML-II)"}


def plot_calibration(result: dict, path) -> None:
  """Calibration plot: nominal vs empirical central-interval coverage, one panel per context size."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sizes = list(result["by_context_size"])
  levels = result["coverage_levels"]
  fig, axes = plt.subplots(1, len(sizes), figsize=(3.0 * len(sizes), 3.3), sharey=True, squeeze=False)
  for ax, n in zip(axes[0], sizes):
    row = result["by_context_size"][n]
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    for m in result["methods"]:
      ax.plot(levels, row[m]["coverage"], marker="o", ms=3, label=_LABELS[m])
    ax.set_title(f"context n = {n}", fontsize=10)
    ax.set_xlabel("nominal coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("empirical coverage")
  axes[0][0].legend(fontsize=7, loc="upper left")
  fig.suptitle(f"Central-interval calibration, {result['num_tasks']} held-out prior tasks", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def format_table(result: dict) -> str:
  """One line per (context size, method): NLL (mean, median, inside the model's support), CRPS, calibration, Spearman."""
  lines = [f"{'context':>7} {'method':<9} {'NLL':>17} {'NLL median':>10} {'NLL inside':>10} {'CRPS':>15} "
           f"{'calib.err':>9} {'Spearman':>15}"]
  for n, row in result["by_context_size"].items():
    for m in result["methods"]:
      r = row[m]
      lines.append(f"{n:>7} {m:<9} {r['nll']:>8.3f} ± {r['nll_se']:<6.3f} {r['nll_median']:>10.3f} "
                   f"{r['nll_inside_support']:>10.3f} "
                   f"{r['crps']:>7.3f} ± {r['crps_se']:.3f} {r['calibration_error']:>9.3f} "
                   f"{r['spearman']:>7.3f} ± {r['spearman_se']:.3f}")
    if "fraction_outside_model_support" in row:
      lines.append(f"{'':>7} queries outside the model's support: {100 * row['fraction_outside_model_support']:.1f} %")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", default=None, help="model directory (default: the shipped one)")
  p.add_argument("--tasks", type=int, default=64, help="held-out prior tasks (default 64)")
  p.add_argument("--contexts", type=int, nargs="+", default=[5, 10, 20, 50], help="context sizes (default 5 10 20 50)")
  p.add_argument("--queries", type=int, default=20, help="queries per task and context size (default 20)")
  p.add_argument("--gp-restarts", type=int, default=2, help="restarts of the ML-II GP fit (default 2)")
  p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/surrogate.json"))
  p.add_argument("--figure", type=pathlib.Path, default=None, help="calibration plot (PNG) path")
  p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="methods to score (default all)")
  args = p.parse_args(argv)
  res = evaluate(args.checkpoint, args.tasks, tuple(args.contexts), args.queries, gp_restarts=args.gp_restarts,
                 methods=tuple(args.methods))
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(res, indent=1))
  if args.figure is not None:
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    plot_calibration(res, args.figure)
  print(format_table(res))
  print(f"{res['seconds']:.1f} s; wrote {args.out}" + (f" and {args.figure}" if args.figure else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main())
