"""What any affine-equivariant surrogate can reach on GP-prior examples: two reference predictors.

Model v2 sees the objective only through z, a map of the context's y that
removes location and scale (optformer.model.ynorm), so it is *equivariant*: under
y -> a y + b (a > 0) its prediction moves with y. The exact GP of
`evaluate` knows the task's mean (0), outputscale, noise and kernel; no
equivariant predictor can know the first two. Two references bracket what
the model could reach, both scored like `evaluate` (nats per noisy query in
the user's units):

  * `oracle_kernel`: the GP that knows the kernel (lengthscales, relevance,
    input warping, category positions) and the noise-to-signal ratio, with
    the constant mean and the outputscale integrated out under the right
    Haar prior p(mu, s) ∝ 1 / s. Its predictive is a Student-t with n - 1
    degrees of freedom (universal kriging with a Jeffreys prior on the
    scale: Santner, Williams & Notz, "The Design and Analysis of Computer
    Experiments", 2003, Thm. 4.1.2; Handcock & Stein, Technometrics 1993).
    The Bayes predictor under the right Haar prior is the best equivariant
    predictive density under log loss (Liang & Barron, IEEE Trans. Inf.
    Theory 2004), so its gap to the exact GP is a LOWER bound on any
    equivariant model's gap, here for a model that also knew the kernel.
  * `marginal`: the same Student-t, averaged over K kernels drawn from the
    task's hyperprior given its search space (data_gen.prior: relevance,
    Gamma lengthscales, Kumaraswamy warps, category positions, the
    noise-to-signal ratio), weighted by their Haar marginal likelihood of
    the context (self-normalized importance sampling). It is a valid
    equivariant predictive density that knows only what the model knows, so
    its gap is an ACHIEVED value: the model could do at least this well.
    With too few draws for the posterior (many relevant parameters, long
    contexts) the weights degenerate and the bound loosens; the effective
    sample size is reported.

Letters: n context points, Q queries, D = D_max slots, K kernel draws, K_c
categories.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from optformer.data_gen import gp
from optformer.data_gen import prior as prior_lib
from optformer.data_gen.prior import PriorConfig, TaskBatch


def student_t_predictive(corr_nxn, corr_qxn, prior_var_q, y_n):
  """Haar-prior GP predictive at Q queries: (log_marginal [], mean [Q], scale [Q], dof []).

  Model: y = mu 1 + e, e ~ N(0, s C) with C = corr_nxn (noise included), p(mu, s) ∝ 1 / s.
  Then y_q | y is Student-t with dof n - 1, location mu_hat + c_q^T C^-1 (y - mu_hat 1) and
  squared scale Q / (n - 1) * (c_qq - c_q^T C^-1 c_q + (1 - c_q^T C^-1 1)^2 / (1^T C^-1 1)),
  mu_hat = 1^T C^-1 y / 1^T C^-1 1, Q = (y - mu_hat 1)^T C^-1 (y - mu_hat 1) (Santner et al. 2003,
  Thm. 4.1.2). log_marginal = -1/2 log|C| - 1/2 log 1^T C^-1 1 - (n - 1)/2 log Q, the marginal
  likelihood up to a constant that depends on n only (for weighting kernels).

  Args:
    corr_nxn: float32 [n, n] positive definite correlation of the noisy context values.
    corr_qxn: float32 [Q, n] correlation of the noiseless f at the queries with the context.
    prior_var_q: float32 [Q] prior variance of a noisy query value in units of s (1 + noise ratio).
    y_n: float32 [n] context objectives, n >= 2 with not all values equal.
  """
  n = y_n.shape[0]
  chol = jnp.linalg.cholesky(corr_nxn)
  solve = lambda b: jax.scipy.linalg.solve_triangular(chol, b, lower=True)
  a_n, b_n, k_nxq = solve(jnp.ones(n)), solve(y_n), solve(corr_qxn.T)
  ones_c_ones = a_n @ a_n
  mu = (a_n @ b_n) / ones_c_ones
  r_n = b_n - mu * a_n
  quad = r_n @ r_n
  mean = mu + k_nxq.T @ r_n
  u_q = 1.0 - k_nxq.T @ a_n
  var_q = prior_var_q - jnp.sum(k_nxq * k_nxq, 0) + u_q * u_q / ones_c_ones
  dof = n - 1.0
  scale = jnp.sqrt(jnp.maximum(quad / dof * var_q, 1e-30))
  log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
  log_marginal = -0.5 * log_det - 0.5 * jnp.log(ones_c_ones) - 0.5 * dof * jnp.log(quad)
  return log_marginal, mean, scale, dof


def student_t_logpdf(y, mean, scale, dof):
  """float32 log density of Student-t(dof) with location `mean` and scale `scale` at y (broadcast)."""
  t = (y - mean) / scale
  return (jax.scipy.special.gammaln((dof + 1) / 2) - jax.scipy.special.gammaln(dof / 2)
          - 0.5 * jnp.log(dof * jnp.pi) - jnp.log(scale) - (dof + 1) / 2 * jnp.log1p(t * t / dof))


def _kernel_nll(latent_nxd, y_n, n, inv_lengthscale_d, noise_ratio):
  """(log_marginal [], nll [Q]) of the Haar-prior GP with one kernel; the first n points are the context."""
  corr = gp.matern32(latent_nxd, latent_nxd, inv_lengthscale_d)
  ctx, qry = corr[:n, :n], corr[n:, :n]
  ctx = ctx + (noise_ratio + gp.JITTER) * jnp.eye(n)
  prior_var = jnp.full(qry.shape[0], 1.0 + noise_ratio)
  log_m, mean, scale, dof = student_t_predictive(ctx, qry, prior_var, y_n[:n])
  return log_m, -student_t_logpdf(y_n[n:], mean, scale, dof)


@functools.partial(jax.jit, static_argnames="n")
def oracle_kernel_nll(task: TaskBatch, latent_BxNxD, y_BxN, n: int):
  """float32 [B, N - n]: NLL of each query under the true kernel, mean and outputscale unknown (Haar prior)."""
  def one(t, z, y):
    return _kernel_nll(z, y, n, t.inv_lengthscale, t.noise_variance / t.outputscale)[1]
  return jax.vmap(one)(task, latent_BxNxD, y_BxN)


def sample_kernels(key, cfg: PriorConfig, kinds_D, num_values_D, num: int) -> TaskBatch:
  """`num` kernels of the hyperprior given one task's search space (kinds and levels fixed).

  Draws what `data_gen.prior` draws after the search space (`prior.kernel_from_draws`: relevance,
  lengthscales, outputscale, noise (its mixture component included), Kumaraswamy warps, category positions). Random Fourier
  features are left empty: only the kernel is used.
  """
  d, k = kinds_D.shape[0], cfg.max_categories

  def one(key):
    k_u, k_n, k_g = jax.random.split(key, 3)
    u = jax.random.uniform(k_u, (3 + k, d))  # Rows: relevance, [0] forced slot, warp; 3.. category positions.
    kernel = prior_lib.kernel_from_draws(cfg, kinds_D, u[0], u[1, 0], u[2], u[3:], jax.random.normal(k_n, (3, d)), k_g,
                                         prior_lib.noiseless_key(cfg, k_n))
    return kernel._replace(num_values=num_values_D)

  return jax.vmap(one)(jax.random.split(key, num))


@functools.partial(jax.jit, static_argnames=("cfg", "n", "num_kernels", "chunk"))
def marginal_nll(key, cfg: PriorConfig, kinds_D, num_values_D, x_NxD, y_N, n: int, num_kernels: int,
                 chunk: int = 1024):
  """(nll float32 [N - n], effective sample size []) of one example under the hyperprior-marginal predictive.

  p(y_q | context) = sum_k w_k t_k(y_q), w_k ∝ the Haar marginal likelihood of the context under
  kernel k of `num_kernels` hyperprior draws (`sample_kernels`); x_NxD are unit-form values
  (data_gen.prior), mapped to each kernel's latent inputs.
  """
  kernels = sample_kernels(key, cfg, kinds_D, num_values_D, num_kernels)

  def score(t):
    z = prior_lib.latent_one(t, x_NxD)
    return _kernel_nll(z, y_N, n, t.inv_lengthscale, t.noise_variance / t.outputscale)

  chunks = jax.tree.map(lambda a: a.reshape(num_kernels // chunk, chunk, *a.shape[1:]), kernels)
  log_m, nll = jax.lax.map(jax.vmap(score), chunks)  # [K / c, c], [K / c, c, Q]
  log_m, nll = log_m.reshape(-1), nll.reshape(num_kernels, -1)
  ok = jnp.isfinite(log_m) & jnp.all(jnp.isfinite(nll), axis=1)  # A failed Cholesky gives NaN: weight 0.
  log_m, nll = jnp.where(ok, log_m, -jnp.inf), jnp.where(ok[:, None], nll, jnp.inf)
  log_w = log_m - jax.scipy.special.logsumexp(log_m)
  mix = -jax.scipy.special.logsumexp(log_w[:, None] - nll, axis=0)
  ess = 1.0 / jnp.sum(jnp.exp(2.0 * log_w))
  return mix, ess


def reference_nll(prior: PriorConfig, examples, task, n: int, num_kernels: int, seed: int = 0) -> dict:
  """Per-example mean query NLL of both references: {"oracle_kernel": float64 [B], "marginal": [B], "ess": [B]}.

  prior: the hyperprior the kernels are drawn from (the examples' `ExampleConfig.prior`).
  examples / task: a `evaluate` batch (`make_batch(...)[2:4]`, GP prior, no failures); n >= 2.

  Raises:
    ValueError: n < 2 (the Haar predictive needs two context values) or an infeasible point.
  """
  if n < 2:
    raise ValueError(f"The references need a context of at least 2 points, got n={n}.")
  if not np.all(examples.feasible):
    raise ValueError("The references score GP-prior examples without failure regions.")
  y = np.asarray(examples.y, np.float32)
  oracle = np.asarray(oracle_kernel_nll(task, examples.latent, y, n), np.float64).mean(1)
  mix, ess = [], []
  for b in range(y.shape[0]):
    key = jax.random.fold_in(jax.random.key(seed), b)
    m, e = marginal_nll(key, prior, examples.kinds[b], examples.num_values[b], examples.x[b], y[b], n, num_kernels,
                        min(1024, num_kernels))
    mix.append(float(np.mean(np.asarray(m, np.float64))))
    ess.append(float(e))
  return {"oracle_kernel": oracle, "marginal": np.asarray(mix), "ess": np.asarray(ess)}


def marginal_per_example(data, borders, num_slot_ids: int, n: int, num_batches: int, num_kernels: int) -> np.ndarray:
  """float64 [E]: per-example mean query NLL of the hyperprior-marginal reference (`reference_nll`'s "marginal") on
  the examples `evaluate.per_example_nll` scores with the same arguments (data: an `evaluate.eval_data` config;
  borders and num_slot_ids only shape the batch), E = num_batches * data.batch_size. Its gap to the exact GP is the
  Bayes-optimal unit-free (affine-equivariant) predictor's, up to the K = num_kernels draws: minutes per context
  on a CPU at K = 1024 and 128 examples.

  Raises:
    ValueError: n < 2, or num_kernels neither below 1024 nor a multiple of it.
  """
  from optformer.training import evaluate
  from optformer.training.data import make_batch

  if num_kernels % min(1024, num_kernels):
    raise ValueError(f"num_kernels must be a multiple of 1024 or below it, got {num_kernels}.")
  out = []
  for i in range(num_batches):
    _, _, ex, task, _ = make_batch(evaluate.gp_only(data), np.asarray(borders), num_slot_ids, i, "validation",
                                   seq_len=evaluate.eval_seq_len(n), n_context=n)
    out.append(reference_nll(data.examples.prior, ex, task, n, num_kernels, seed=i)["marginal"])
  return np.concatenate(out)


def main(argv=None) -> int:
  """`optformer-train gp-reference`: the gap of both references and a checkpoint to the exact GP."""
  import argparse
  import json
  import pathlib

  from flax import nnx

  from optformer import checkpoint
  from optformer.training import evaluate
  from optformer.training.data import PFNDataConfig, make_batch

  p = argparse.ArgumentParser(description=main.__doc__)
  p.add_argument("--checkpoint", type=pathlib.Path, default=checkpoint.V2_CHECKPOINT)
  p.add_argument("--contexts", type=int, nargs="+", default=[5, 10, 20, 40])
  p.add_argument("--batches", type=int, default=2, help="validation batches (of the run's batch size) per context")
  p.add_argument("--kernels", type=int, default=4096, help="hyperprior draws of the marginal reference")
  p.add_argument("--out", type=pathlib.Path, help="also write the numbers here as JSON")
  args = p.parse_args(argv)
  if args.kernels % min(1024, args.kernels):
    raise SystemExit(f"--kernels must be a multiple of 1024 or below it, got {args.kernels}.")
  model, meta = checkpoint.load_pfn(args.checkpoint, with_metadata=True)
  cfg = PFNDataConfig.from_json(meta["train"]["data"])
  data = evaluate.gp_only(cfg)
  graphdef, params = nnx.split(model)
  borders = np.asarray(model.config.borders)
  rows, out = [], {"checkpoint": str(args.checkpoint), "step": meta.get("step"), "kernels": args.kernels}
  for n in args.contexts:
    acc = {k: [] for k in ("model", "exact_gp", "oracle_kernel", "marginal", "ess", "dims")}
    for i in range(args.batches):
      m, g, dims = evaluate.per_example_nll(graphdef, params, cfg, borders, model.config.num_slot_ids, n, 1, i)
      _, _, ex, task, _ = make_batch(data, borders, model.config.num_slot_ids, i, "validation",
                                     seq_len=evaluate.eval_seq_len(n), n_context=n)
      ref = reference_nll(data.examples.prior, ex, task, n, args.kernels, seed=i)
      for k, v in (("model", m), ("exact_gp", g), ("dims", dims), *ref.items()):
        acc[k].append(np.asarray(v))
    acc = {k: np.concatenate(v) for k, v in acc.items()}
    gap = {k: float((acc[k] - acc["exact_gp"]).mean()) for k in ("model", "oracle_kernel", "marginal")}
    out[str(n)] = {**{f"gap_{k}": v for k, v in gap.items()}, "nll_exact_gp": float(acc["exact_gp"].mean()),
                   "ess_median": float(np.median(acc["ess"])), "examples": int(acc["model"].size),
                   "by_dims": {f"{lo}-{hi}": {k: float((acc[k] - acc["exact_gp"])[sel].mean())
                                              for k in ("model", "oracle_kernel", "marginal")} | {"examples": int(sel.sum())}
                               for lo, hi in evaluate.DIM_GROUPS
                               if (sel := (acc["dims"] >= lo) & (acc["dims"] <= hi)).any()}}
    rows.append(f"| {n} | {gap['oracle_kernel']:+.3f} | {gap['marginal']:+.3f} | {gap['model']:+.3f} | "
                f"{np.median(acc['ess']):.0f} |")
    print(rows[-1], flush=True)
  print(f"{args.checkpoint} (step {meta.get('step')}): NLL gap to the exact GP, nats per query")
  print("| context | oracle kernel (lower bound) | hyperprior marginal (achieved) | model | median ESS |")
  print("|---|---|---|---|---|")
  print("\n".join(rows))
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
