"""Held-out NLL of model v2 next to the exact GP, on pure GP-prior examples.

For each context size n, `eval_batches` validation batches of examples from
the GP prior alone (i.i.d. uniform points, no failures, no conditional
parameters; the setting of the issue's measurement): the first n points are
the context, the other N - n the queries. Both methods score each query's
noisy y in the user's units (nats per query):

  * model: -log p(feasible) - log p_z(z(y)) - log dz/dy (optformer.model.bar,
    optformer.model.ynorm: the density in z units plus the Jacobian);
  * exact GP: -log N(y; mu, var + noise variance) with the task's TRUE
    hyperparameters on the true latent inputs (data_gen/gp.py; Rasmussen &
    Williams 2006, eq. 2.25-2.26), the Bayes-optimal predictor up to the
    random-feature approximation of f.

`gap` = model - exact GP (0 is the bound; lower is better), with its
standard error over examples (`gap_se`). `main` (`optformer-train eval`)
can score two more methods on the same examples, the Bayes-optimal
unit-free reference (--reference-kernels, training/gp_reference.py) and a
type-II ML GP fitted on each context (--ml-gp,
training/surrogate_table.py), and writes the surrogate table (--markdown):
the JSON's "table" holds, per context, each method's gap and the model's
paired difference to each, overall and by relevant parameters.

Common ground: the examples come from an evaluation prior chosen apart from
the run's training prior (`EVAL_PRIORS`): "reference" (the default, the
project's reference GP prior, that of the default `PFNDataConfig`),
"reference-noiseless" (the same functions and points, every task
near-noiseless: noise variance ~ LogNormal(-13.8, 1), a median of 1e-6), "tiny"
(`ExampleConfig.tiny()`, for models with few parameter slots), "training"
(the run's own prior, the only choice before; configs saved without an
`eval_prior` keep it), or "bbob-like" / "hpo-like" (the reference prior with
every objective a BBOB-like or HPO-like shape, data_gen/families.py). On
those two the GP column is a GP with the task's GP-draw hyperparameters, no
longer the Bayes-optimal predictor (the objective is not that GP's draw): a
misspecified baseline, so read the model's NLL (`nll_model_n`), or paired
differences between models, rather than the gap. With a named prior every run draws the same examples
(seed 0, EVAL_BATCH_SIZE examples per batch), whatever its own batch size,
seed or prior, so two runs' gaps are paired and a prior ablation is scored
on the same examples. An example of context size n has
`eval_seq_len(n)` points (n context points, the rest queries).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import scipy.special
from flax import nnx

from optformer.model import bar
from optformer.model import ynorm
from optformer.data_gen.examples import ExampleConfig
from optformer.training.data import PFNDataConfig, gp_posterior_batch, make_batch

EVAL_SEQ_LEN = 64  # N of the evaluation examples up to context 40: n context points and 64 - n queries.
EVAL_MIN_QUERIES = 24  # Longer contexts get n + 24 points (context 100: 124, context 200: 224).
EVAL_BATCH_SIZE = 32  # Examples per evaluation batch under a named evaluation prior.


# name: () -> the ExampleConfig of the evaluation examples; "training" is the run's own prior.
EVAL_PRIORS = {"reference": lambda: PFNDataConfig().examples, "tiny": ExampleConfig.tiny, "training": None,
               "reference-noiseless": lambda: reference_with(p_noiseless=1.0),
               "bbob-like": lambda: reference_with(p_bbob=1.0), "hpo-like": lambda: reference_with(p_hpo=1.0)}


def reference_with(**prior_fields) -> ExampleConfig:
  """The reference examples with some prior fields changed, e.g. p_bbob=1.0 (every objective BBOB-like,
  data_gen/families.py) or p_noiseless=1.0 (every task near-noiseless).

  Only the changed draws differ (the same functions, points and standard normal draws otherwise), so scores on two
  such priors are paired example by example; held out from any training mixture by the validation split
  (evaluation batches are validation examples).
  """
  ref = PFNDataConfig().examples
  return dataclasses.replace(ref, prior=dataclasses.replace(ref.prior, **prior_fields))


DEFAULT_CONTEXTS = (5, 10, 20, 40, 100, 200)  # The context sizes of the comparison (issue 23: 5 to 200).


def eval_seq_len(n: int) -> int:
  """Points N of an evaluation example with context size n: 64 up to n = 40, else n + EVAL_MIN_QUERIES."""
  return max(EVAL_SEQ_LEN, n + EVAL_MIN_QUERIES)


def eval_data(cfg: PFNDataConfig, prior: str = "reference") -> PFNDataConfig:
  """The data config of the evaluation examples of a run whose data config is `cfg`.

  prior: a name of EVAL_PRIORS. A named prior replaces the run's examples, batch size (EVAL_BATCH_SIZE) and seed
  (0), so every run is scored on the same examples; "training" keeps the run's (its own prior, batch size and
  seed). The y pipeline settings (min_power_points) stay the run's. GP prior only (`gp_only`).

  Raises:
    ValueError: an unknown prior name (the message lists them).
  """
  if prior not in EVAL_PRIORS:
    raise ValueError(f"unknown evaluation prior {prior!r}; expected one of {', '.join(EVAL_PRIORS)}.")
  if prior == "training":
    return gp_only(cfg)
  return gp_only(dataclasses.replace(cfg, examples=EVAL_PRIORS[prior](), batch_size=EVAL_BATCH_SIZE, seed=0,
                                     dims_curriculum=(), soft_target_weight=0.0, policy_rows=0))


def check_eval(prior: str, contexts, num_slot_ids: int, max_categories: int, max_context: int) -> None:
  """Raises ValueError when a model of these sizes cannot be scored on `prior` at `contexts`: an unknown prior, a
  prior with more parameters (or categories) than the model's slots, or a context outside [2, max_context]."""
  if prior not in EVAL_PRIORS:
    raise ValueError(f"unknown evaluation prior {prior!r}; expected one of {', '.join(EVAL_PRIORS)}.")
  if prior != "training":
    p = EVAL_PRIORS[prior]().prior
    if p.max_dims > num_slot_ids or p.max_categories > max_categories:
      raise ValueError(f"the evaluation prior {prior!r} has up to {p.max_dims} parameters and {p.max_categories} "
                       f"categories, the model {num_slot_ids} slots and {max_categories} categories: choose another "
                       f"evaluation prior (eval_prior: {', '.join(EVAL_PRIORS)}).")
  bad = [n for n in contexts if not 2 <= int(n) <= max_context]
  if not contexts or bad:
    raise ValueError(f"evaluation contexts must be 2 to the model's max_context={max_context} trials, got "
                     f"{tuple(contexts)}.")


def gp_only(cfg: PFNDataConfig) -> PFNDataConfig:
  """The data config restricted to the GP prior: uniform points, no failures, no conditional parameters."""
  ex = dataclasses.replace(cfg.examples, p_local=0.0, p_failure=0.0, p_conditional=0.0)
  return dataclasses.replace(cfg, examples=ex)


@functools.partial(jax.jit, static_argnums=0)
def _logits(graphdef, params, batch):
  return nnx.merge(graphdef, params)(batch)


def model_nll(logits_BxNxY1, z_BxN, log_dz_dy_BxN, borders) -> np.ndarray:
  """float64 [B, N]: -log density in user units of feasible targets with normalized value z."""
  logp = scipy.special.log_softmax(np.asarray(logits_BxNxY1, np.float64), axis=-1)
  b, n, y1 = logp.shape
  p_bars = np.exp(logp[..., :-1]).reshape(b * n, y1 - 1)
  log_feasible = np.log(np.maximum(p_bars.sum(-1), 1e-300))
  dist = bar.BarDistribution(p_bars, borders)
  return -(log_feasible + dist.log_prob(z_BxN.reshape(-1))).reshape(b, n) - log_dz_dy_BxN


DIM_GROUPS = ((1, 2), (3, 4), (5, 8), (9, 16), (17, 64))  # Ranges of a task's number of relevant parameters.


def per_example_nll(graphdef, params, cfg: PFNDataConfig, borders, num_slot_ids: int, n: int, num_batches: int,
                    seed_offset: int = 0):
  """Per-example mean query NLL at context size n: (model float64 [E], exact GP float64 [E], relevant dims int [E]).

  E = num_batches * batch size examples of the GP prior (`gp_only`); a parameter is relevant when
  its true inverse lengthscale is positive.
  """
  data = gp_only(cfg)
  borders = np.asarray(borders)
  m_all, g_all, d_all = [], [], []
  for i in range(num_batches):
    batch, _, ex, task, z = make_batch(data, borders, num_slot_ids, seed_offset + i, "validation",
                                       seq_len=eval_seq_len(n), n_context=n)
    context = np.asarray(batch.context)
    y = ex.y.astype(np.float64)
    fields = ynorm.fit_batch(y, context)
    logits = _logits(graphdef, params, batch)
    nll_m = model_nll(logits, z, ynorm.log_derivative_batch(fields, y), borders)
    mean, var = gp_posterior_batch(task, ex.latent, ex.y, context)
    s2 = np.asarray(var, np.float64) + np.asarray(task.noise_variance, np.float64)[:, None]
    nll_g = 0.5 * np.log(2 * np.pi * s2) + 0.5 * (y - np.asarray(mean, np.float64)) ** 2 / s2
    q = ~context
    m_all.append(np.where(q, nll_m, 0.0).sum(1) / q.sum(1))
    g_all.append(np.where(q, nll_g, 0.0).sum(1) / q.sum(1))
    d_all.append((np.asarray(task.inv_lengthscale) > 0).sum(-1))
  return np.concatenate(m_all), np.concatenate(g_all), np.concatenate(d_all)


def gp_gap(graphdef, params, cfg: PFNDataConfig, borders, num_slot_ids: int, contexts=(5, 10, 20, 40),
           num_batches: int = 4, seed_offset: int = 0, by_dims: bool = False) -> dict:
  """{f"nll_model_{n}", f"nll_gp_{n}", f"gap_{n}", f"gap_se_{n}"} in nats per query: means over all queries of all
  batches, and the gap's standard error over the examples (std / sqrt(E), E = num_batches * cfg.batch_size).

  cfg: the data config the examples come from (`eval_data` of the run's). Every example has eval_seq_len(n) - n
  queries, so the mean over examples is the mean over queries.
  With `by_dims`, also f"gap_{n}_dims_{lo}-{hi}" and f"examples_{n}_dims_{lo}-{hi}" for each
  DIM_GROUPS range of relevant parameters that holds examples.
  """
  out = {}
  for n in contexts:
    m, g, dims = per_example_nll(graphdef, params, cfg, borders, num_slot_ids, n, num_batches, seed_offset)
    out.update(gap_keys(n, m, g, dims if by_dims else None))
  return out


def gap_keys(n: int, m, g, dims=None) -> dict:
  """`gp_gap`'s keys at context n from per-example NLLs of the model (m) and the exact GP (g), float [E]; with
  dims (int [E], relevant parameters per example) also the DIM_GROUPS keys."""
  out = {f"nll_model_{n}": float(m.mean()), f"nll_gp_{n}": float(g.mean()), f"gap_{n}": float(m.mean() - g.mean()),
         f"gap_se_{n}": standard_error(m - g)}
  for lo, hi in DIM_GROUPS if dims is not None else ():
    sel = (dims >= lo) & (dims <= hi)
    if sel.any():
      out[f"gap_{n}_dims_{lo}-{hi}"] = float((m[sel] - g[sel]).mean())
      out[f"examples_{n}_dims_{lo}-{hi}"] = int(sel.sum())
  return out


def standard_error(values) -> float:
  """The standard error of the mean of `values` (float [E], E >= 2; NaN when E < 2)."""
  values = np.asarray(values, np.float64)
  return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


@functools.partial(jax.jit, static_argnums=0)
def _policy_metrics(graphdef, params, batch, rows):
  from optformer.training.train import policy_loss

  model = nnx.merge(graphdef, params)
  _, logits = model.with_policy(batch, rows)
  return policy_loss(logits, rows, batch.kinds, batch.num_values)


def policy_nll(graphdef, params, cfg: PFNDataConfig, borders, num_slot_ids: int, num_batches: int = 4,
               seed_offset: int = 0) -> dict:
  """{"nll_policy", "policy_accuracy"}: the policy's held-out cross-entropy (nats per token) and top-1 accuracy
  on the behaviour target's undecoded tokens (training/data.py, "Policy rows"), on `num_batches` validation
  batches of the run's own prior (cfg.policy_rows rows per example, 8 if it has none). The mean over batches."""
  data = cfg if cfg.policy_rows else dataclasses.replace(cfg, policy_rows=8)
  nll, acc = [], []
  for i in range(num_batches):
    batch, targets, *_ = make_batch(data, np.asarray(borders), num_slot_ids, seed_offset + i, "validation")
    m = _policy_metrics(graphdef, params, batch, targets.rows)
    nll.append(float(m[0]))
    acc.append(float(m[1]))
  return {"nll_policy": float(np.mean(nll)), "policy_accuracy": float(np.mean(acc))}


def gap_table_by_dims(out: dict, contexts) -> str:
  """Markdown table of a `gp_gap(..., by_dims=True)` result: the gap per context, overall and by DIM_GROUPS."""
  groups = [f"{lo}-{hi}" for lo, hi in DIM_GROUPS if any(f"gap_{n}_dims_{lo}-{hi}" in out for n in contexts)]
  rows = ["| context | all | " + " | ".join(f"{g} relevant" for g in groups) + " |", "|---|---|" + "---|" * len(groups)]
  for n in contexts:
    cells = [f"{out[f'gap_{n}_dims_{g}']:+.3f}" if f"gap_{n}_dims_{g}" in out else "" for g in groups]
    se = f" ± {out[f'gap_se_{n}']:.3f}" if f"gap_se_{n}" in out else ""
    rows.append(f"| {n} | {out[f'gap_{n}']:+.3f}{se} | " + " | ".join(cells) + " |")
  counts = [f"{g}: {out[k]}" for g in groups if (k := f"examples_{contexts[0]}_dims_{g}") in out]
  return "\n".join(rows + ([f"examples per group: {', '.join(counts)}"] if counts else []))


def model_contexts(contexts, max_context: int) -> tuple:
  """The contexts a model of `max_context` trials can be scored at (the others dropped, with a note on stderr)."""
  import sys

  kept = tuple(n for n in contexts if n <= max_context)
  if len(kept) < len(contexts):
    print(f"note: contexts above the model's max_context={max_context} left out: "
          f"{[n for n in contexts if n > max_context]}", file=sys.stderr)
  return kept


def main(argv=None) -> int:
  """`optformer-train eval --checkpoint DIR`: the held-out gap to the exact GP with standard errors, by context and
  relevant parameters, on a common evaluation prior; paired differences against another model with --against."""
  import argparse
  import json
  import pathlib
  import shlex
  import sys

  from optformer import checkpoint
  from optformer.training import surrogate_table

  p = argparse.ArgumentParser(description=main.__doc__)
  p.add_argument("--checkpoint", type=pathlib.Path, default=checkpoint.V2_CHECKPOINT, help="model directory "
                 "(default: the shipped model)")
  p.add_argument("--contexts", type=int, nargs="+", default=list(DEFAULT_CONTEXTS),
                 help="context sizes (default 5 10 20 40 100 200; those above the model's max_context are left out)")
  p.add_argument("--batches", type=int, default=4, help=f"evaluation batches per context (default 4; "
                 f"{EVAL_BATCH_SIZE} examples each under a named prior, the run's batch size under 'training')")
  p.add_argument("--prior", choices=list(EVAL_PRIORS), default=None, help="the evaluation prior: reference "
                 "(the project's reference GP prior, the same examples for every model), reference-noiseless (the same "
                 "functions and points, noise variance ~1e-6), tiny (for models with fewer "
                 "than 16 parameter slots), training (the checkpoint's own training prior), bbob-like or hpo-like (the "
                 "reference prior with BBOB-like / HPO-like objectives, data_gen/families.py); default: the run's "
                 "eval_prior (reference for new runs, tiny for the tiny preset, training for runs from before it)")
  p.add_argument("--reference-kernels", type=int, default=0, metavar="K", help="also score the Bayes-optimal "
                 "unit-free reference (the hyperprior-marginal GP, training/gp_reference.py) with K kernel draws, "
                 "e.g. 1024 (minutes per context); 0: not computed (default)")
  p.add_argument("--out", type=pathlib.Path, help="also write the numbers here as JSON")
  p.add_argument("--against", type=pathlib.Path, help="another model directory: also print the paired difference "
                 "of the two models' query NLL on the same examples (this one minus that one, +- standard error)")
  p.add_argument("--ml-gp", action="store_true", help="also score a type-II maximum-likelihood GP fitted on each "
                 "context (scikit-learn, training/surrogate_table.py; about a minute per context at 200 trials)")
  p.add_argument("--ml-gp-restarts", type=int, default=2, metavar="R", help="extra optimizer starts of each ML GP "
                 "fit (default 2)")
  p.add_argument("--markdown", type=pathlib.Path, help="also write the surrogate table (markdown, with this command) "
                 "here, e.g. docs/surrogate_table.md")
  args = p.parse_args(argv)
  if args.batches < 1 or args.reference_kernels < 0 or args.ml_gp_restarts < 0:
    p.error(f"--batches must be >= 1, --reference-kernels and --ml-gp-restarts >= 0, got {args.batches}, "
            f"{args.reference_kernels} and {args.ml_gp_restarts}")
  model, meta = checkpoint.load_pfn(args.checkpoint, with_metadata=True)
  mc = model.config
  args.prior = args.prior or meta["train"].get("eval_prior", "training")
  contexts = model_contexts(args.contexts, mc.max_context)
  try:
    check_eval(args.prior, contexts, mc.num_slot_ids, mc.max_categories, mc.max_context)
  except ValueError as e:
    p.error(str(e))
  cfg = eval_data(PFNDataConfig.from_json(meta["train"]["data"]), args.prior)
  graphdef, params = nnx.split(model)
  out = {"prior": args.prior, "examples": args.batches * cfg.batch_size, "table": {},
         "reference_kernels": args.reference_kernels, "ml_gp_restarts": args.ml_gp_restarts if args.ml_gp else None}
  other = checkpoint.load_pfn(args.against) if args.against else None
  name = args.checkpoint.name or str(args.checkpoint)
  other_name = args.against and (args.against.name if args.against.name not in ("", name) else str(args.against))
  for n in contexts:
    m, g, dims = per_example_nll(graphdef, params, cfg, mc.borders, mc.num_slot_ids, n, args.batches)
    out.update(gap_keys(n, m, g, dims))
    nll = {name: m, "exact_gp": g}
    if other is not None:
      nll[other_name] = per_example_nll(*nnx.split(other), cfg, other.config.borders, other.config.num_slot_ids, n,
                                        args.batches)[0]
      out[f"diff_{n}"], out[f"diff_se_{n}"] = float((m - nll[other_name]).mean()), standard_error(m - nll[other_name])
    if args.reference_kernels:
      from optformer.training.gp_reference import marginal_per_example

      nll["reference"] = marginal_per_example(cfg, mc.borders, mc.num_slot_ids, n, args.batches, args.reference_kernels)
    if args.ml_gp:
      from optformer.training.surrogate_table import ml_gp_per_example

      nll["ml_gp"] = ml_gp_per_example(cfg, mc.borders, mc.num_slot_ids, n, args.batches, args.ml_gp_restarts)
    for b in ("reference", "ml_gp"):
      if b in nll:
        out[f"gap_{b}_{n}"], out[f"gap_{b}_se_{n}"] = float((nll[b] - g).mean()), standard_error(nll[b] - g)
    out["table"][str(n)] = table = surrogate_table.compare(nll, dims)
    table["per_example"] = {**{k: v.round(6).tolist() for k, v in nll.items()}, "relevant": dims.tolist()}
    print(f"context {n}: gap to the exact GP " + ", ".join(f"{k} {v[0]:+.4f} +- {v[1]:.4f}" for k, v in
                                                          table["gap"].items())
          + "".join(f"; {k} minus {b} {v[0]:+.4f} +- {v[1]:.4f}" for k, d in table["minus"].items()
                    for b, v in d.items())
          + (f"; {name} minus {other_name} {out[f'diff_{n}']:+.4f} +- {out[f'diff_se_{n}']:.4f}" if other else ""),
          flush=True)
  print(f"{args.checkpoint} (step {meta.get('step')}): NLL gap to the exact GP, nats per query, on the "
        f"{args.prior} prior ({out['examples']} examples per context)")
  print(gap_table_by_dims(out, contexts))
  if mc.policy_tokens:
    out.update(policy_nll(graphdef, params, cfg, mc.borders, mc.num_slot_ids, args.batches))
    print(f"policy: held-out cross-entropy {out['nll_policy']:.4f} nats per token, accuracy {out['policy_accuracy']:.4f}")
  out = {"checkpoint": str(args.checkpoint), "step": meta.get("step"), **out}
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
  if args.markdown:
    command = "python -m optformer.training.evaluate " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(surrogate_table.markdown([out], command))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
