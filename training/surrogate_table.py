"""The surrogate table: a model's query NLL next to the exact GP, the Bayes reference and a fitted GP.

`optformer-train eval` scores every method on the same evaluation examples
(training/evaluate.py: GP-prior examples, contexts 5 to 200, nats per noisy
query in the example's units). This module adds the baseline a user would
fit and writes the table of the issue's targets:

  * "ml_gp": scikit-learn's GaussianProcessRegressor fitted by type-II
    maximum likelihood on each example's context (Rasmussen & Williams 2006,
    Sec. 5.4.1), `optformer.eval.surrogate_eval.fit_ml2_gp`: Constant *
    Matern-5/2 ARD + WhiteKernel, y standardized on the context
    (normalize_y), L-BFGS-B with a few random restarts, on the inputs the
    model sees (unit values, categoricals one-hot). Its predictive
    N(mean, std^2) is in the example's units already (sklearn undoes the
    standardization, the noise is in std), so -log N(y; mean, std^2) is
    directly comparable to the model's NLL, which carries its own Jacobian
    (`evaluate.model_nll`).
  * "reference": the Bayes-optimal unit-free (affine-equivariant) predictor,
    training/gp_reference.py `marginal_per_example`.

Per context the result (`compare`) holds, for each method, its gap to the
exact GP and, for each model, its paired difference to each baseline
("model minus reference", "model minus ml_gp"; negative = the model is
better), each as [mean, standard error over examples], overall and by the
task's number of relevant parameters (`evaluate.DIM_GROUPS`). `markdown`
renders one or more `eval --out` results (`merge` joins one evaluation's contexts run apart); `main` is
`optformer-train surrogate-table RESULT.json [RESULT.json ...] --out FILE.md`.
"""

from __future__ import annotations

import numpy as np

BASELINES = ("reference", "ml_gp")  # Methods a model is compared with, pairwise, when scored.
LABELS = {"reference": "Bayes reference", "ml_gp": "type-II ML GP", "exact_gp": "exact GP"}


def ml_gp_nll(examples, context_BxN, restarts: int = 2, seed: int = 0) -> np.ndarray:
  """float64 [B]: per-example mean query NLL (nats per query, the example's y units) of a type-II ML GP.

  examples: `data_gen.examples.Examples` of B examples (GP prior: every point feasible and active);
  context_BxN: bool [B, N], True for the context points (at least 2 per example), the rest are queries.
  restarts: extra L-BFGS-B starts per fit (`fit_ml2_gp`), seeded by `seed` + the example's row.

  Raises:
    ValueError: an infeasible point, or an example with fewer than 2 context points or no query.
  """
  from optformer.eval.surrogate_eval import fit_ml2_gp, gaussian_nll, gp_inputs

  context = np.asarray(context_BxN, bool)
  if not np.all(examples.feasible):
    raise ValueError("The ML GP baseline scores GP-prior examples without failure regions.")
  if np.any(context.sum(1) < 2) or np.any((~context).sum(1) < 1):
    raise ValueError(f"Every example needs >= 2 context points and >= 1 query, got context sizes "
                     f"{sorted(set(context.sum(1).tolist()))} of {context.shape[1]} points.")
  out = []
  for b in range(context.shape[0]):
    x = gp_inputs(np.asarray(examples.x[b], np.float64), examples.kinds[b], examples.num_values[b])
    y = np.asarray(examples.y[b], np.float64)
    ctx = context[b]
    mean, std = fit_ml2_gp(x[ctx], y[ctx], restarts, seed + b).predict(x[~ctx], return_std=True)
    out.append(float(gaussian_nll(mean, np.maximum(std, 1e-300), y[~ctx]).mean()))
  return np.asarray(out)


def ml_gp_per_example(data, borders, num_slot_ids: int, n: int, num_batches: int, restarts: int = 2) -> np.ndarray:
  """float64 [E]: `ml_gp_nll` on the examples `evaluate.per_example_nll` scores with the same arguments (data: an
  `evaluate.eval_data` config; borders and num_slot_ids only shape the batch), E = num_batches * batch size.
  Seconds per context on a CPU at n = 200 and 64 examples with 2 restarts: about 100 (one core)."""
  from optformer.training import evaluate
  from optformer.training.data import make_batch

  out = []
  for i in range(num_batches):
    batch, _, ex, _, _ = make_batch(evaluate.gp_only(data), np.asarray(borders), num_slot_ids, i, "validation",
                                    seq_len=evaluate.eval_seq_len(n), n_context=n)
    out.append(ml_gp_nll(ex, np.asarray(batch.context), restarts, seed=i * len(ex.y)))
  return np.concatenate(out)


def _mean_se(values) -> list:
  from optformer.training.evaluate import standard_error

  return [float(np.mean(values)), standard_error(values)]


def compare(nll: dict, dims) -> dict:
  """The statistics of one context from per-example mean query NLLs.

  nll: name -> float64 [E], with "exact_gp", any of BASELINES, and the models (every other name);
  dims: int [E], the example's number of relevant parameters.
  Returns {"examples": E, "nll": {name: mean}, "gap": {name: [mean, se]} (name minus exact GP),
  "minus": {model: {baseline: [mean, se]}} (paired), "minus_median": {model: {baseline: median}} (the ML GP's
  mean is dominated by a few overconfident fits at short contexts), "by_relevant": {"lo-hi": the same four keys on the
  examples whose task has lo..hi relevant parameters}} for each `evaluate.DIM_GROUPS` range that holds examples.

  Raises:
    ValueError: no "exact_gp", or arrays of different lengths.
  """
  from optformer.training.evaluate import DIM_GROUPS

  if "exact_gp" not in nll:
    raise ValueError(f"compare needs the exact GP's NLL ('exact_gp'), got {sorted(nll)}.")
  dims = np.asarray(dims)
  if any(np.shape(v) != dims.shape for v in nll.values()):
    raise ValueError(f"every NLL array must have one value per example ({dims.shape}), got "
                     f"{ {k: np.shape(v) for k, v in nll.items()} }.")

  def stats(sel) -> dict:
    v = {k: np.asarray(a, np.float64)[sel] for k, a in nll.items()}
    models = [k for k in v if k != "exact_gp" and k not in BASELINES]
    return {"examples": int(sel.sum()), "nll": {k: float(a.mean()) for k, a in v.items()},
            "gap": {k: _mean_se(a - v["exact_gp"]) for k, a in v.items() if k != "exact_gp"},
            "minus": {m: {b: _mean_se(v[m] - v[b]) for b in BASELINES if b in v} for m in models},
            "minus_median": {m: {b: float(np.median(v[m] - v[b])) for b in BASELINES if b in v} for m in models}}

  out = stats(np.ones(dims.shape, bool))
  out["by_relevant"] = {f"{lo}-{hi}": stats(sel) for lo, hi in DIM_GROUPS
                        if (sel := (dims >= lo) & (dims <= hi)).any()}
  return out


def _cell(pair, bold_below: float | None = None) -> str:
  """'+0.123 ± 0.004' of [mean, se]; bold when the mean is below `bold_below`."""
  mean, se = pair
  text = f"{mean:+.3f} ± {se:.3f}" if np.isfinite(se) else f"{mean:+.3f}"
  return f"**{text}**" if bold_below is not None and mean <= bold_below else text


def _restarts(result: dict, contexts) -> str:
  """'2 restarts', or per context when `merge` joined runs with different ones: '2 restarts (contexts 5, 10), 0 (200)'."""
  by = {}
  for n in contexts:
    by.setdefault(result["table"][n].get("ml_gp_restarts", result.get("ml_gp_restarts")), []).append(n)
  if len(by) == 1:
    return f"{next(iter(by))} restarts"
  return ", ".join(f"{k}{' restarts' if i == 0 else ''} (context{'s' if len(v) > 1 else ''} {', '.join(v)})"
                   for i, (k, v) in enumerate(by.items()))


def markdown(results: list, command: str | None = None, target: float = 0.03) -> str:
  """The surrogate table (markdown) of one or more `eval --out` results (dicts with "table", "checkpoint", "step",
  "prior", "examples"): per model, the gap of each method to the exact GP by context, the model's paired
  difference to the Bayes reference and to the ML GP (bold: within `target` nats of the reference, or below the ML
  GP), then the same two differences by the number of relevant parameters. `command`: shown as the way to
  reproduce it.

  Raises:
    ValueError: no result, or a result without a "table" (an eval run before this module).
  """
  if not results:
    raise ValueError("markdown needs at least one eval result.")
  lines = ["# Surrogate table", "",
           "Held-out query NLL on GP-prior examples (`optformer-train eval`, training/evaluate.py), nats per noisy "
           "query in the objective's units; lower is better. *gap* = method minus the exact GP (the task's true "
           "hyperparameters: a bound no predictor reaches); *Bayes reference* = the hyperprior-marginal, "
           "affine-equivariant predictor (training/gp_reference.py), what a unit-free model can reach; *type-II ML "
           "GP* = scikit-learn's GaussianProcessRegressor (Matérn-5/2 ARD + white noise, y standardized on the "
           "context, type-II ML with restarts), what a user would fit. *model − X* is paired on the same examples "
           "(± standard error over examples; the ML GP's mean is dominated by a few overconfident fits at short "
           "contexts, so its median difference is shown too); the model v3 targets are model − Bayes reference <= "
           f"{target:.2f} and model − ML GP < 0 at every context.", ""]
  if command:  # docs/*.md blocks are tests (tests/test_readme.py): this one is only parsed.
    lines += ["Reproduce:", "", "<!-- test: parse-only the evaluation takes about an hour on 2 cores -->", "```bash",
              command, "```", ""]
  for r in results:
    if "table" not in r:
      raise ValueError(f"the result of {r.get('checkpoint')!r} has no 'table': re-run `optformer-train eval` "
                       "with --out on this version.")
    table = r["table"]
    contexts = sorted(table, key=int)
    names = [k for k in table[contexts[0]]["minus"]]
    baselines = [b for b in BASELINES if b in table[contexts[0]]["gap"]]
    lines += [f"## {r['checkpoint']} (step {r.get('step')})", "",
              f"{r.get('prior')} evaluation prior, {r.get('examples')} examples per context"
              + (f", Bayes reference with {r['reference_kernels']} kernel draws" if r.get("reference_kernels") else "")
              + (f", ML GP with {_restarts(r, contexts)}" if "ml_gp" in baselines else "") + ".", ""]
    head = ([f"{m}: gap" for m in names] + [f"{LABELS[b]}: gap" for b in baselines]
            + [f"{m} − {LABELS[b]}" for m in names for b in baselines]
            + [f"{m} − {LABELS[b]}, median" for m in names for b in baselines if b == "ml_gp"])
    lines += ["| context | exact GP NLL | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for n in contexts:
      t = table[n]
      cells = ([_cell(t["gap"][m]) for m in names] + [_cell(t["gap"][b]) for b in baselines]
               + [_cell(t["minus"][m][b], target if b == "reference" else 0.0) for m in names for b in baselines]
               + [f"{t['minus_median'][m][b]:+.3f}" if "minus_median" in t else "" for m in names for b in baselines
                  if b == "ml_gp"])
      lines.append(f"| {n} | {t['nll']['exact_gp']:.3f} | " + " | ".join(cells) + " |")
    groups = list(dict.fromkeys(g for n in contexts for g in table[n]["by_relevant"]))
    for m in names:
      for b in baselines:
        lines += ["", f"{m} − {LABELS[b]} by the task's number of relevant parameters (examples per group at "
                  f"context {contexts[0]}: " + ", ".join(f"{g}: {table[contexts[0]]['by_relevant'][g]['examples']}"
                                                          for g in groups if g in table[contexts[0]]['by_relevant'])
                  + "):", "", "| context | " + " | ".join(f"{g} relevant" for g in groups) + " |",
                  "|---|" + "---|" * len(groups)]
        for n in contexts:
          by = table[n]["by_relevant"]
          cells = [_cell(by[g]["minus"][m][b], target if b == "reference" else 0.0) if g in by else "" for g in groups]
          lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


SETTINGS = ("checkpoint", "step", "prior", "examples", "reference_kernels")  # What `merge` matches.


def merge(results: list) -> list:
  """`eval --out` results with the contexts of one evaluation in several files (e.g. contexts run in parallel)
  joined: results that agree on SETTINGS become one, with the union of their contexts (the first result's
  numbers where a context repeats; each context keeps its run's "ml_gp_restarts"); the others are kept apart,
  in order.

  Raises:
    ValueError: a result without a "table" (an eval run before this module).
  """
  merged: dict = {}
  for r in results:
    if "table" not in r:
      raise ValueError(f"the result of {r.get('checkpoint')!r} has no 'table': re-run `optformer-train eval` "
                       "with --out on this version.")
    key = tuple(str(r.get(k)) for k in SETTINGS)
    r = {**r, "table": {n: {"ml_gp_restarts": r.get("ml_gp_restarts"), **t} for n, t in r["table"].items()}}
    if key in merged:
      merged[key]["table"] = {**r["table"], **merged[key]["table"]}
    else:
      merged[key] = {**r, "table": dict(r["table"])}
  return list(merged.values())


def main(argv=None) -> int:
  """`optformer-train surrogate-table RESULT.json [...] --out FILE.md`: the surrogate table of `eval --out` results
  (the contexts of one checkpoint's evaluation, split over several files, are joined: `merge`)."""
  import argparse
  import json
  import pathlib

  p = argparse.ArgumentParser(description=main.__doc__)
  p.add_argument("results", type=pathlib.Path, nargs="+", help="JSON files written by `optformer-train eval --out`")
  p.add_argument("--out", type=pathlib.Path, help="write the markdown here (default: print it)")
  p.add_argument("--command", help="the command line to show as the way to reproduce the numbers")
  args = p.parse_args(argv)
  try:
    text = markdown(merge([json.loads(f.read_text()) for f in args.results]), args.command)
  except (OSError, ValueError) as e:
    p.error(str(e))
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
  else:
    print(text)
  return 0
