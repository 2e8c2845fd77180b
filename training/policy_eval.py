"""How good are the policy's suggestions? Held-out prior functions after a few trials.

For each of F validation functions of the example prior (training/data.py
with failures and conditional parameters off, so every configuration can be
scored), the first `trials` points of the example are the context (a study
after that many trials: uniform points or a BO-like cloud). Then, against the
same context:

  * policy: `samples` configurations decoded by the model (optformer.model.policy);
  * uniform: `samples` configurations uniform over the search space;
  * ei_pick: the configuration of highest expected improvement among the
    uniform ones under the exact GP posterior with the task's TRUE
    hyperparameters (the behaviour policy the head was trained to clone,
    restricted to these candidates);
  * policy_model_ei / uniform_model_ei: the pick of highest expected
    improvement under the model's own surrogate (bar distribution, z units,
    improvements capped at the best z + MODEL_EI_CAP) among the policy's
    samples / the uniform ones: OptFormer (EI)'s suggestion, and the
    surrogate's with random candidates.

Scores are the noiseless objective f (maximized). Per function, `z` divides
the difference to the uniform mean by the uniform std (so functions of
different output scale weigh the same); `p_improve` is the share of samples
better than the context's best f. Means over functions with standard errors.

  python -m optformer.training.policy_eval --checkpoint DIR [--functions 64] [--trials 20] [--samples 256]
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optformer.model import bar
from optformer.model import policy
from optformer.data_gen import prior as prior_lib
from optformer.model.network import SurrogateBatch
from optformer.training.data import PFNDataConfig, expected_improvement, gp_posterior_batch, make_batch


MODEL_EI_CAP = 4.0  # z units above the context's best z beyond which improvement stops counting (bar.py).


def scorable(cfg: PFNDataConfig) -> PFNDataConfig:
  """The example prior without failure regions and conditional parameters (f is defined everywhere)."""
  return dataclasses.replace(cfg, examples=dataclasses.replace(cfg.examples, p_failure=0.0, p_conditional=0.0))


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef, params, ctx):
  return nnx.merge(graphdef, params).encode_context(ctx)


@functools.partial(jax.jit, static_argnums=0)
def _score(graphdef, params, enc, queries):
  return nnx.merge(graphdef, params).score_queries(enc, queries)


def model_ei(graphdef, params, enc, units_NxD, ctx: SurrogateBatch, borders) -> np.ndarray:
  """float64 [N]: the surrogate's expected improvement (z units, capped) of N configurations over the context."""
  n = units_NxD.shape[0]
  q = SurrogateBatch(x=units_NxD[None], active=jnp.broadcast_to(ctx.kinds[:, None] > 0, (1, n) + ctx.kinds.shape[1:]),
                     kinds=ctx.kinds, num_values=ctx.num_values, slot_ids=ctx.slot_ids, z=jnp.zeros((1, n)),
                     feasible=jnp.ones((1, n), bool), context=jnp.zeros((1, n), bool), valid=jnp.ones((1, n), bool))
  probs = jax.nn.softmax(np.asarray(_score(graphdef, params, enc, q), np.float64)[0], -1)[:, :-1]
  best = float(np.asarray(ctx.z).max())
  return bar.BarDistribution(np.asarray(probs), borders).expected_improvement(best, cap=best + MODEL_EI_CAP)


def _one_task(task, b: int):
  return jax.tree.map(lambda a: a[b:b + 1], task)


def evaluate_policy(model, cfg: PFNDataConfig, num_functions: int = 64, trials: int = 20, samples: int = 256,
                    temperature: float = 1.0, seed: int = 0) -> dict:
  """Per-function scores (float64 [F] each, F = num_functions rounded up to whole batches) and their means.

  Returns {"per_function": {name: array}, name: (mean, standard error), ...} for names policy_f, uniform_f,
  ei_pick_f, context_best_f, policy_z, ei_pick_z, policy_model_ei_z, uniform_model_ei_z, policy_best_z,
  uniform_best_z, policy_p_improve, uniform_p_improve.

  Raises:
    ValueError: the model has no policy head, or trials < 1.
  """
  if trials < 1:
    raise ValueError(f"trials must be >= 1, got {trials}.")
  data = scorable(cfg)
  graphdef, params = nnx.split(model)
  c = model.config
  key = jax.random.key(seed)
  rows = {k: [] for k in ("policy_f", "uniform_f", "ei_pick_f", "context_best_f", "policy_z", "ei_pick_z",
                          "policy_model_ei_z", "uniform_model_ei_z", "policy_best_z", "uniform_best_z",
                          "policy_p_improve", "uniform_p_improve")}
  index = 0
  while len(rows["policy_f"]) < num_functions:
    batch, _, ex, task, _ = make_batch(data, np.asarray(c.borders), c.num_slot_ids, 10_000 + index, "validation",
                                       seq_len=trials + 1, n_context=trials)
    index += 1
    for b in range(len(ex.x)):
      per_trial = lambda a: jnp.asarray(a[b:b + 1, :trials])  # [1, C, ...]: the context's trials only.
      ctx = SurrogateBatch(x=per_trial(batch.x), active=per_trial(batch.active), kinds=jnp.asarray(batch.kinds[b:b + 1]),
                           num_values=jnp.asarray(batch.num_values[b:b + 1]), slot_ids=jnp.asarray(batch.slot_ids[b:b + 1]),
                           z=per_trial(batch.z), feasible=per_trial(batch.feasible), context=per_trial(batch.context),
                           valid=per_trial(batch.valid))
      enc = _encode(graphdef, params, ctx)
      space = policy.decode_space(ex.kinds[b], ex.num_values[b], batch.slot_ids[b], c.policy_tokens)
      key, k_pol, k_uni = jax.random.split(key, 3)
      units, _ = policy.sample(model, enc, space, samples, k_pol, temperature)
      uni = prior_lib.sample_valid(k_uni, jnp.asarray(ex.kinds[b]), jnp.asarray(ex.num_values[b]), samples)
      tb = _one_task(task, b)
      f_pol = np.asarray(prior_lib.evaluate(tb, units[None]))[0].astype(np.float64)
      f_uni = np.asarray(prior_lib.evaluate(tb, uni[None]))[0].astype(np.float64)
      # The exact-GP EI pick among the uniform candidates (true hyperparameters, the context's noisy y).
      lat = np.concatenate([ex.latent[b:b + 1, :trials], np.asarray(prior_lib.latent(tb, uni[None]))], 1)
      y = np.concatenate([np.nan_to_num(ex.y[b:b + 1, :trials]), np.zeros((1, samples), np.float32)], 1)
      mask = np.arange(trials + samples)[None] < trials
      mean, var = gp_posterior_batch(tb, lat.astype(np.float32), y, mask)
      ei = expected_improvement(mean[0, trials:], var[0, trials:], ex.y[b, :trials].max())
      f_ei = f_uni[np.argmax(ei)]
      f_pol_mei = f_pol[np.argmax(model_ei(graphdef, params, enc, units, ctx, c.borders))]
      f_uni_mei = f_uni[np.argmax(model_ei(graphdef, params, enc, uni, ctx, c.borders))]
      best = float(ex.f[b, :trials].max())
      m, s = f_uni.mean(), max(f_uni.std(), 1e-12)
      for k, v in (("policy_f", f_pol.mean()), ("uniform_f", m), ("ei_pick_f", f_ei), ("context_best_f", best),
                   ("policy_z", (f_pol.mean() - m) / s), ("ei_pick_z", (f_ei - m) / s),
                   ("policy_model_ei_z", (f_pol_mei - m) / s), ("uniform_model_ei_z", (f_uni_mei - m) / s),
                   ("policy_best_z", (f_pol.max() - m) / s), ("uniform_best_z", (f_uni.max() - m) / s),
                   ("policy_p_improve", np.mean(f_pol > best)), ("uniform_p_improve", np.mean(f_uni > best))):
        rows[k].append(float(v))
  per = {k: np.asarray(v[:num_functions]) for k, v in rows.items()}
  out = {"per_function": per, "functions": num_functions, "trials": trials, "samples": samples,
         "temperature": temperature}
  for k, v in per.items():
    out[k] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))))
  return out


def main(argv=None) -> int:
  """`python -m optformer.training.policy_eval --checkpoint DIR`: the policy against uniform samples."""
  import argparse
  import json
  import pathlib

  from optformer import checkpoint

  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", type=pathlib.Path, required=True, help="a model directory with a policy head")
  p.add_argument("--functions", type=int, default=64, help="held-out prior functions (whole batches)")
  p.add_argument("--trials", type=int, default=20, help="context trials before the suggestions")
  p.add_argument("--samples", type=int, default=256, help="policy and uniform samples per function")
  p.add_argument("--temperature", type=float, nargs="+", default=[1.0])
  p.add_argument("--out", type=pathlib.Path, help="also write the numbers here as JSON")
  args = p.parse_args(argv)
  model, meta = checkpoint.load_pfn(args.checkpoint, with_metadata=True)
  if model.config.policy_tokens <= 0:
    raise SystemExit(f"{args.checkpoint} has no policy head (policy_tokens = 0).")
  cfg = PFNDataConfig.from_json(meta["train"]["data"])
  results = []
  print(f"{args.checkpoint} (step {meta.get('step')}): noiseless f after {args.trials} trials, "
        f"{args.functions} held-out prior functions, {args.samples} samples each; mean +- standard error")
  for t in args.temperature:
    out = evaluate_policy(model, cfg, args.functions, args.trials, args.samples, t)
    print(f"temperature {t}:")
    for k, v in out.items():
      if isinstance(v, tuple):
        print(f"  {k:18s} {v[0]:+.4f} +- {v[1]:.4f}")
    results.append({k: v for k, v in out.items() if k != "per_function"})
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "step": meta.get("step"),
                                    "results": results}, indent=1))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
