"""Training throughput of model v2: trials/s, tokens/s and the step's share of this machine's matmul rate.

  optformer-train throughput [--config snapshots/v2/config.json] [--steps 20] [--out FILE] [--peak-flops F]

Builds the run's train step (a fresh model of the config's shapes, batches from its data
pipeline), counts the step's floating-point operations two ways (one count per sequence length
of the data): XLA's cost analysis of the compiled step (every op it runs: matmuls, elementwise,
the optimizer update) and an analytic count of the model's matmuls (`model_flops`: forward,
and backward where a gradient flows), and times `steps` steps on batches generated beforehand
(so data generation is not in the step time; it runs on its own thread during training).
After each timed step it times one float32 [n, n] @ [n, n] product (2 n^3 FLOP) on the same
device, so the share of the matmul rate compares the step with what this machine does on a large
matmul over the same seconds (the CPU is shared: a rate measured at another moment is not
comparable). Tokens are sequence positions (one per trial plus the global token); trials are
the valid ones. On a GPU, --peak-flops (e.g. 989e12, an H100 SXM's dense bf16 peak) adds the
share of that peak. Prints one JSON object and writes it to --out when given.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from optformer.model.features import VARIOGRAM_SCALES
from optformer.model.network import PFNConfig, SurrogateBatch
from optformer.training.train import PFNTrainConfig, PFNTrainer


def matmul_flops_per_second(n: int = 2048, repeats: int = 10) -> float:
  """Best FLOP/s of a jitted float32 [n, n] @ [n, n] on the default device (2 n^3 FLOP per product)."""
  timed = _matmul(n)
  return 2.0 * n**3 / min(timed() for _ in range(repeats))


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def model_flops(cfg: PFNConfig, batch_size: int, seq_len: int, num_slots: int) -> float:
  """Analytic FLOPs (2 per multiply-add) of the model's matmuls in one train step of `batch_size` examples of
  `seq_len` trials over `num_slots` parameter slots: the forward pass, plus twice it backward (gradients of the
  weights and of the activations) where the input carries a gradient, once where it is data (the slot encoder's
  input layer, the distance bias's pair distances). Elementwise work (LayerNorm, GELU, softmax, the
  variograms) and the optimizer update are not in it; XLA's count has them."""
  e, g, h, layers = cfg.d_model, cfg.d_slot, cfg.num_heads, cfg.num_layers
  n, t, d = seq_len, seq_len + 1, num_slots  # t: positions with the global token.
  slot_in = 2 * n * d * (2 * cfg.num_fourier + 1 + cfg.max_categories + 1) * g  # Features -> slot vectors.
  if cfg.value_input == "tokens":
    slot_in = 2 * n * d * (cfg.policy_tokens + cfg.max_categories + 1) * g
  bias = 2 * d * t * t * layers * h if cfg.distance_bias else 0  # Pair distances x relevance weights.
  dense = (2 * n * d * g + 2 * n * g * e + 2 * n * 9 * e  # Slot sum, slot -> E, objective features -> E.
           + layers * (2 * t * e * 4 * e + 2 * t * e * 2 * cfg.mlp_ratio * e  # q, k, v, out; the MLP.
                       + 2 * 2 * t * t * e)  # Logits q k and weights x v, all heads.
           + 2 * n * e * (cfg.num_bins + 1))  # The bar head.
  if cfg.distance_bias:
    s = 2 * len(VARIOGRAM_SCALES) + 5
    dense += 2 * d * (s * cfg.d_ard + cfg.d_ard * layers * h)  # The relevance MLP.
  return float(batch_size * (2 * (slot_in + bias) + 3 * dense))


def measure(cfg: PFNTrainConfig, steps: int = 20, matmul_size: int | None = None) -> dict:
  """{"step_flops", "model_flops", "seconds_per_step", "trials_per_s", "tokens_per_s", "step_flops_per_s", ...}
  of `steps` timed train steps; with `matmul_size` n, also "matmul_flops_per_s" from one float32 [n, n] @ [n, n]
  timed after each step (their mean time) and the shares of it.

  The batches keep the data's mix of sequence lengths; each length's step is compiled (and run
  once) before timing, and the means are over the timed steps.

  Raises:
    ValueError: steps < 1 or matmul_size < 1.
  """
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}.")
  if matmul_size is not None and matmul_size < 1:
    raise ValueError(f"matmul_size must be >= 1, got {matmul_size}.")
  dot = _matmul(matmul_size) if matmul_size else None
  with tempfile.TemporaryDirectory() as tmp:
    tr = PFNTrainer(cfg, pathlib.Path(tmp) / "run")
    put = lambda a: jax.device_put(np.asarray(a), tr.batch_sharding)
    batches = [next(tr.batches) for _ in range(steps)]
    batches = [(SurrogateBatch(*map(put, b)), jax.tree.map(put, t)) for b, t in batches]
    params, opt_state = tr.params, tr.opt_state
    flops, analytic = {}, {}  # Trials per example (the data mixes sequence lengths) -> FLOPs of that step.
    for batch, targets in batches:
      b, n, d = batch.x.shape
      if n not in flops:  # Compile each shape before timing (cost analysis, then one untimed step).
        flops[n] = _flops(tr.train_step.lower(params, opt_state, batch, targets).compile())
        analytic[n] = model_flops(cfg.model, b, n, d)
        params, opt_state, metrics = tr.train_step(params, opt_state, batch, targets)
        jax.block_until_ready(metrics)
    times, matmul_times, work, model_work, trials, tokens, lengths = [], [], 0.0, 0.0, 0, 0, []
    for batch, targets in batches:
      t = time.perf_counter()
      params, opt_state, metrics = tr.train_step(params, opt_state, batch, targets)
      jax.block_until_ready((params, metrics))
      times.append(time.perf_counter() - t)
      if dot is not None:
        matmul_times.append(dot())
      b, n = batch.x.shape[:2]
      lengths.append(int(n))
      work, model_work = work + flops[n], model_work + analytic[n]
      trials += int(np.asarray(batch.valid).sum())
      tokens += b * (n + 1)
  total = float(np.sum(times))
  out = {
      "step_flops": work / len(times), "step_flops_by_length": {str(k): v for k, v in sorted(flops.items())},
      "model_flops": model_work / len(times), "model_flops_by_length": {str(k): v for k, v in sorted(analytic.items())},
      "seconds_per_step": total / len(times), "seconds_per_step_all": times, "lengths": lengths,
      "trials_per_s": trials / total, "tokens_per_s": tokens / total,
      "step_flops_per_s": work / total, "model_flops_per_s": model_work / total,
      "batch_size": cfg.data.batch_size, "seq_lens": list(cfg.data.seq_lens),
  }
  if dot is not None:
    out["matmul_size"] = matmul_size
    out["matmul_flops_per_s"] = 2.0 * matmul_size**3 / float(np.mean(matmul_times))
    out["share_of_matmul_rate"] = out["step_flops_per_s"] / out["matmul_flops_per_s"]
    out["model_share_of_matmul_rate"] = out["model_flops_per_s"] / out["matmul_flops_per_s"]
  return out


def _matmul(n: int):
  """A callable timing one jitted float32 [n, n] @ [n, n] on the default device (seconds), compiled and warm."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()

  def timed() -> float:
    t = time.perf_counter()
    dot(a, b).block_until_ready()
    return time.perf_counter() - t

  return timed


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", type=pathlib.Path, default=pathlib.Path("snapshots/v2/config.json"),
                 help="a v2 run's config.json (default: the committed snapshot's)")
  p.add_argument("--steps", type=int, default=20, help="timed train steps (default 20)")
  p.add_argument("--matmul-size", type=int, default=2048, help="n of the reference float32 matmul (default 2048)")
  p.add_argument("--peak-flops", type=float, default=None,
                 help="the device's peak FLOP/s (GPU: its dense bf16 peak, e.g. 989e12 for an H100 SXM) to report the "
                      "share of")
  p.add_argument("--out", type=pathlib.Path, default=None, help="also write the JSON here")
  args = p.parse_args(argv)
  if args.steps < 1 or args.matmul_size < 1 or (args.peak_flops is not None and args.peak_flops <= 0):
    p.error("--steps and --matmul-size must be >= 1 and --peak-flops > 0")
  try:
    cfg = PFNTrainConfig.from_dict(json.loads(args.config.read_text()))
  except (OSError, ValueError, KeyError, TypeError) as e:
    print(f"error: cannot read a v2 training config from {args.config}: {e}", file=__import__("sys").stderr)
    return 2
  out = measure(cfg, args.steps, args.matmul_size)
  out["matmul_flops_per_s_best"] = matmul_flops_per_second(args.matmul_size)  # Best of 10, after the steps.
  if args.peak_flops:
    out["peak_flops_per_s"] = args.peak_flops
    out["share_of_peak"] = out["step_flops_per_s"] / args.peak_flops
    out["model_share_of_peak"] = out["model_flops_per_s"] / args.peak_flops
  out["device"] = f"{jax.devices()[0].platform}, {jax.device_count()} device(s): {jax.devices()[0].device_kind}"
  out["config"] = str(args.config)
  text = json.dumps(out, indent=1)
  print(text)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
