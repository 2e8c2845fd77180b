"""Behaviour algorithms that optimize prior tasks, and trajectory generation.

A trajectory is T trials (x_t, y_t) proposed by one algorithm on one task.
Algorithms (integer id = position in `ALGORITHMS`, stable, stored in the
corpus):

* `random`: i.i.d. uniform over each parameter's valid values.
* `sobol`: a scrambled Sobol sequence (scipy.stats.qmc.Sobol, seeded per
  task), each coordinate mapped to a valid value (`prior.quantize`).
* `gp_ucb`: GP-UCB (Srinivas et al., ICML 2010) with the exact GP of the
  task's TRUE hyperparameters (`gp.posterior`): the first trials are
  random, then each trial maximizes mean + sqrt(beta) * std over random
  valid candidates plus perturbations of the best observed configuration.
  beta ~ LogUniform(beta_range) per task. Vectorized over tasks (vmap) with
  a fixed-shape `lax.scan` over trials and masking of future trials.

Letters: B tasks, T trials, D = D_max slots, C candidates.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import qmc

from optformer.data_gen import gp
from optformer.data_gen import prior as prior_lib
from optformer.data_gen.prior import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, PriorConfig, TaskBatch

ALGORITHMS = ("random", "sobol", "gp_ucb")


@dataclasses.dataclass(frozen=True)
class BehaviourConfig:
  """Settings of the behaviour algorithms (GP-UCB) and of batching."""

  num_initial_random: int = 1  # gp_ucb: trials drawn at random before the GP is used.
  num_random_candidates: int = 512  # gp_ucb: uniform valid candidates per trial.
  num_local_candidates: int = 64  # gp_ucb: perturbations of the best observed x per trial.
  beta_range: tuple[float, float] = (1.0, 4.0)  # gp_ucb: beta ~ LogUniform(range) per task.
  local_change_prob: float = 0.3  # Probability that a slot is perturbed (>= 1 slot always is).
  local_float_std_range: tuple[float, float] = (0.01, 0.2)  # Perturbation std ~ LogUniform.
  batch_size: int = 256  # Most tasks per jitted call; bounds memory (~1 MB per gp_ucb task).
  min_bucket: int = 32  # Smallest padded sub-batch; fewer distinct sizes = fewer compilations.

  @classmethod
  def tiny(cls) -> "BehaviourConfig":
    """Few candidates, for tests."""
    return cls(num_random_candidates=128, num_local_candidates=32, batch_size=16, min_bucket=16)

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass
class GenerationStats:
  """Accumulates trajectory counts and seconds (wall and process CPU, all threads)."""

  count: dict = dataclasses.field(default_factory=dict)  # Algorithm name -> trajectories.
  policy_wall_s: dict = dataclasses.field(default_factory=dict)  # Name -> s proposing x.
  policy_cpu_s: dict = dataclasses.field(default_factory=dict)  # Name -> CPU s proposing x.
  total_count: int = 0  # All trajectories.
  total_wall_s: float = 0.0  # Everything: prior sampling, policies, evaluation.
  total_cpu_s: float = 0.0

  def add(self, name: str, count: int, wall_s: float, cpu_s: float) -> None:
    self.count[name] = self.count.get(name, 0) + count
    self.policy_wall_s[name] = self.policy_wall_s.get(name, 0.0) + wall_s
    self.policy_cpu_s[name] = self.policy_cpu_s.get(name, 0.0) + cpu_s

  def as_dict(self) -> dict:
    """JSON-ready summary; `*_per_cpu_s` = trajectories per second per core."""
    rate = lambda n, s: n / s if s > 0 else None
    return {
        "total_count": self.total_count,
        "total_wall_s": self.total_wall_s,
        "total_cpu_s": self.total_cpu_s,
        "trajectories_per_wall_s": rate(self.total_count, self.total_wall_s),
        "trajectories_per_cpu_s": rate(self.total_count, self.total_cpu_s),
        "policy": {n: {"count": c, "wall_s": self.policy_wall_s[n], "cpu_s": self.policy_cpu_s[n],
                       "trajectories_per_cpu_s": rate(c, self.policy_cpu_s[n])}
                   for n, c in self.count.items()},
    }


def mix_probabilities(algorithm_mix: Mapping[str, float] | Sequence[float]) -> np.ndarray:
  """float64 [len(ALGORITHMS)]: normalized weights of a name -> weight mapping or a sequence.

  Raises:
    ValueError: unknown names, wrong length, negative weights or all zero.
  """
  if isinstance(algorithm_mix, Mapping):
    unknown = sorted(set(algorithm_mix) - set(ALGORITHMS))
    if unknown:
      raise ValueError(f"Unknown algorithm(s) {unknown}; known: {ALGORITHMS}.")
    w = np.array([float(algorithm_mix.get(a, 0.0)) for a in ALGORITHMS])
  else:
    w = np.asarray(algorithm_mix, dtype=np.float64)
    if w.shape != (len(ALGORITHMS),):
      raise ValueError(f"Expected {len(ALGORITHMS)} weights for {ALGORITHMS}, got {list(w)}.")
  if (w < 0).any() or w.sum() <= 0:
    raise ValueError(f"Algorithm weights must be >= 0 and not all 0, got {list(w)}.")
  return w / w.sum()


def _perturb(u_4xCxD, n_CxD, x_best_D, task: TaskBatch, cfg: BehaviourConfig):
  """float32 [C, D]: valid neighbours of x_best (float: Gaussian step, int: +-1 level,
  categorical: a random category), each changing a random subset of used slots.

  Randomness comes in as uniforms u and normals n (few PRNG calls compile faster).
  """
  c, d = n_CxD.shape
  change = u_4xCxD[0] < cfg.local_change_prob
  forced = jnp.minimum(jnp.floor(u_4xCxD[1, :, :1] * task.num_dims), task.num_dims - 1)
  change = change | (jnp.arange(d)[None, :] == forced)  # At least one used slot changes.
  lo, hi = math.log(cfg.local_float_std_range[0]), math.log(cfg.local_float_std_range[1])
  std = jnp.exp(lo + (hi - lo) * u_4xCxD[1, :, 1:2])  # [C, 1]
  x_float = jnp.clip(x_best_D + std * n_CxD, 0.0, 1.0)
  denom = jnp.maximum(task.num_values - 1, 1).astype(jnp.float32)
  step = jnp.where(u_4xCxD[2] < 0.5, 1.0, -1.0)
  x_int = jnp.clip(jnp.round(x_best_D * denom) + step, 0.0, denom) / denom
  x_cat = prior_lib.quantize(u_4xCxD[3], task.kinds, task.num_values)
  new = jnp.where(task.kinds == KIND_FLOAT, x_float,
                  jnp.where(task.kinds == KIND_ORDINAL, x_int,
                            jnp.where(task.kinds == KIND_CATEGORICAL, x_cat, 0.0)))
  return jnp.where(change, new, x_best_D[None, :])


def _gp_ucb_one(task: TaskBatch, key, eps_T, num_trials: int, cfg: BehaviourConfig):
  """float32 [T, D]: the configurations GP-UCB proposes on one task."""
  k_init, k_beta, k_loop = jax.random.split(key, 3)
  lo, hi = cfg.beta_range
  sqrt_beta = jnp.sqrt(jnp.exp(jax.random.uniform(k_beta, minval=math.log(lo), maxval=math.log(hi))))
  noise_std = jnp.sqrt(task.noise_variance)
  x_TxD = prior_lib.sample_valid(k_init, task.kinds, task.num_values, num_trials)
  z_TxD = prior_lib.latent_one(task, x_TxD)
  y_T = prior_lib.evaluate_latent_one(task, z_TxD) + noise_std * eps_T  # Rows >= t unused.

  def step(carry, t):
    x_PxD, z_PxD, y_P = carry  # P = padded length of the current phase.
    mask_P = jnp.arange(x_PxD.shape[0]) < t
    k_u, k_n = jax.random.split(jax.random.fold_in(k_loop, t))
    c_rand, c_local, d = cfg.num_random_candidates, cfg.num_local_candidates, x_PxD.shape[1]
    u = jax.random.uniform(k_u, (c_rand + 4 * c_local, d))
    best = jnp.argmax(jnp.where(mask_P, y_P, -jnp.inf))
    cand_CxD = jnp.concatenate([
        prior_lib.quantize(u[:c_rand], task.kinds, task.num_values),
        _perturb(u[c_rand:].reshape(4, c_local, d), jax.random.normal(k_n, (c_local, d)),
                 x_PxD[best], task, cfg)])
    zc_CxD = prior_lib.latent_one(task, cand_CxD)
    mean_C, var_C = gp.posterior(task, z_PxD, y_P, mask_P, zc_CxD)
    i = jnp.argmax(mean_C + sqrt_beta * jnp.sqrt(var_C))
    y_new = prior_lib.evaluate_latent_one(task, zc_CxD[i][None])[0] + noise_std * eps_T[t]
    return (x_PxD.at[t].set(cand_CxD[i]), z_PxD.at[t].set(zc_CxD[i]), y_P.at[t].set(y_new)), None

  # Trials t0..t1-1 only see observations 0..t1-1, so each phase runs on the
  # first P = pad rows: the O(C T) posterior costs ~30% less than at pad T.
  for t0, t1, pad in _phases(min(cfg.num_initial_random, num_trials), num_trials):
    carry = (x_TxD[:pad], z_TxD[:pad], y_T[:pad])
    (x_PxD, z_PxD, y_P), _ = jax.lax.scan(step, carry, jnp.arange(t0, t1))
    x_TxD, z_TxD, y_T = x_TxD.at[:pad].set(x_PxD), z_TxD.at[:pad].set(z_PxD), y_T.at[:pad].set(y_P)
  return x_TxD


def _phases(start: int, num_trials: int, first_pad: int = 16) -> list[tuple[int, int, int]]:
  """(t0, t1, pad) triples covering trials start..num_trials-1 with pads 16, 32, ..., T."""
  out, lo, pad = [], 0, first_pad
  while lo < num_trials:
    hi = min(pad, num_trials)
    if max(lo, start) < hi:
      out.append((max(lo, start), hi, hi))
    lo, pad = hi, pad * 2
  return out


def _stream(words_2, stream: int):
  return jax.random.fold_in(prior_lib.key_from_words(words_2), stream)


def _noise_one(words_2, num_trials: int):
  """float32 [T]: the standard normal observation noise of one task's trials."""
  return jax.random.normal(_stream(words_2, prior_lib.STREAM_NOISE), (num_trials,))


@jax.jit(static_argnames=("num_trials", "cfg"))
def _run_gp_ucb(batch: TaskBatch, words_Bx2, num_trials, cfg):
  one = lambda t, w: _gp_ucb_one(t, _stream(w, prior_lib.STREAM_POLICY), _noise_one(w, num_trials), num_trials, cfg)
  return jax.vmap(one)(batch, words_Bx2)


@jax.jit(static_argnames="num_trials")
def _run_random(batch: TaskBatch, words_Bx2, num_trials):
  one = lambda w, kd, nv: prior_lib.sample_valid(_stream(w, prior_lib.STREAM_POLICY), kd, nv, num_trials)
  return jax.vmap(one)(words_Bx2, batch.kinds, batch.num_values)


_quantize_batch = jax.jit(jax.vmap(prior_lib.quantize))


def _run_sobol(batch: TaskBatch, seeds_B, num_trials: int) -> np.ndarray:
  """float32 [B, T, D]: per-task scrambled Sobol points (numpy RNG seeded by task seed)."""
  d = batch.kinds.shape[-1]
  m = max(0, math.ceil(math.log2(num_trials)))
  u = np.stack([qmc.Sobol(d, scramble=True, rng=np.random.default_rng([int(s), prior_lib.STREAM_POLICY]))
                .random_base2(m)[:num_trials] for s in seeds_B]).astype(np.float32)
  return np.asarray(_quantize_batch(u, batch.kinds, batch.num_values))


@jax.jit
def _choose(words_Bx2, probs):
  pick = lambda w: jax.random.choice(_stream(w, prior_lib.STREAM_ALGORITHM), probs.shape[0], p=probs)
  return jax.vmap(pick)(words_Bx2).astype(jnp.int32)


@jax.jit(static_argnames="num_trials")
def _finish(batch: TaskBatch, x_BxTxD, words_Bx2, num_trials):
  """(f, y, z) of valid configurations: f [B, T], y = f + noise [B, T], z [B, T, D]."""
  z = jax.vmap(prior_lib.latent_one)(batch, x_BxTxD)
  f = jax.vmap(prior_lib.evaluate_latent_one)(batch, z)
  eps = jax.vmap(lambda w: _noise_one(w, num_trials))(words_Bx2)
  return f, f + jnp.sqrt(batch.noise_variance)[:, None] * eps, z


def _pad_rows(tree, size: int):
  """Pads every numpy array in `tree` along axis 0 to `size` by repeating row 0."""
  return jax.tree.map(lambda v: np.concatenate([v, np.repeat(v[:1], size - len(v), 0)]), tree)


def _propose(name, batch, words, seeds, num_trials, cfg) -> np.ndarray:
  """float32 [B, T, D] configurations of algorithm `name`."""
  if name == "random":
    return np.asarray(_run_random(batch, words, num_trials))
  if name == "sobol":
    return _run_sobol(batch, seeds, num_trials)
  if name == "gp_ucb":
    return np.asarray(_run_gp_ucb(batch, words, num_trials, cfg))
  raise ValueError(f"Unknown algorithm {name!r}; known: {ALGORITHMS}.")


def generate_from_seeds(prior_config: PriorConfig, seeds, num_trials: int,
                        algorithm_mix: Mapping[str, float] | Sequence[float],
                        behaviour_config: BehaviourConfig = BehaviourConfig(),
                        stats: GenerationStats | None = None) -> dict[str, np.ndarray]:
  """Trajectories on the tasks of the given int64 seeds, one per task.

  Each task's algorithm is drawn from `algorithm_mix` with the task's own
  key, so a trajectory depends only on (task seed, configs, mix), not on
  the batch it is generated in. Tasks are grouped by algorithm and run in
  padded sub-batches (sizes: powers of two in [min_bucket, batch_size]).
  Results are bitwise reproducible for the same `seeds` split into the same
  calls; XLA compiles each batch size separately, so across batch sizes
  floats may differ in the last bits (and GP-UCB may, rarely, break a
  near-tie differently).

  Returns:
    dict of numpy arrays with leading axis B = len(seeds), the corpus features:
    x float32 [B, T, D] (unit form, exactly valid), y float32 [B, T] (noisy,
    maximize), f float32 [B, T] (noiseless), z float32 [B, T, D] (latent
    inputs), kinds int32 [B, D], num_values int32 [B, D], num_dims int32 [B],
    algorithm int32 [B] (index into ALGORITHMS), lengthscale float32 [B, D]
    (irrelevant or unused slots = 1e6), outputscale float32 [B],
    noise_variance float32 [B], task_seed int64 [B].
  """
  if num_trials < 1:
    raise ValueError(f"num_trials must be >= 1, got {num_trials}.")
  t_wall, t_cpu = time.perf_counter(), time.process_time()
  probs = jnp.asarray(mix_probabilities(algorithm_mix), jnp.float32)
  seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
  n = len(seeds)
  size = prior_lib.pad_size(n)
  seeds_p = _pad_rows(seeds, size)
  words = prior_lib.seed_words(seeds_p)
  batch = _pad_rows(prior_lib.sample_tasks(prior_config, seeds), size)
  algorithm = np.asarray(_choose(words, probs))
  x = np.zeros((size, num_trials, prior_config.max_dims), np.float32)
  cfg = behaviour_config
  for a, name in enumerate(ALGORITHMS):
    idx_all = np.nonzero(algorithm[:n] == a)[0]
    for start in range(0, len(idx_all), cfg.batch_size):
      idx = idx_all[start:start + cfg.batch_size]
      idx_p = _pad_rows(idx, min(prior_lib.pad_size(len(idx), cfg.min_bucket), cfg.batch_size))
      w, c = time.perf_counter(), time.process_time()
      sub = TaskBatch(*(v[idx_p] for v in batch))
      x[idx] = _propose(name, sub, words[idx_p], seeds_p[idx_p], num_trials, cfg)[:len(idx)]
      if stats is not None:
        stats.add(name, len(idx), time.perf_counter() - w, time.process_time() - c)
  x = prior_lib.canonicalize(x, batch.kinds, batch.num_values)
  f, y, z = _finish(batch, x, words, num_trials)
  out = {
      "x": x[:n], "y": np.asarray(y, np.float32)[:n], "f": np.asarray(f, np.float32)[:n],
      "z": np.asarray(z, np.float32)[:n],
      "kinds": batch.kinds[:n].astype(np.int32),
      "num_values": batch.num_values[:n].astype(np.int32),
      "num_dims": batch.num_dims[:n].astype(np.int32),
      "algorithm": algorithm[:n].astype(np.int32),
      "lengthscale": prior_lib.lengthscale(batch, irrelevant_value=1e6)[:n],
      "outputscale": batch.outputscale[:n].astype(np.float32),
      "noise_variance": batch.noise_variance[:n].astype(np.float32),
      "task_seed": seeds,
  }
  if stats is not None:
    stats.total_count += n
    stats.total_wall_s += time.perf_counter() - t_wall
    stats.total_cpu_s += time.process_time() - t_cpu
  return out


def generate(prior_config: PriorConfig, num_tasks: int, num_trials: int,
             algorithm_mix: Mapping[str, float] | Sequence[float], seed: int, *,
             split: str = "train", start: int = 0,
             behaviour_config: BehaviourConfig = BehaviourConfig(),
             stats: GenerationStats | None = None) -> dict[str, np.ndarray]:
  """Trajectories on tasks start..start+num_tasks-1 of `split` under global `seed`.

  See `generate_from_seeds` for the returned arrays and `prior.task_seeds`
  for the seed layout (train and validation tasks never share a seed).
  """
  seeds = prior_lib.task_seeds(seed, split, start, num_tasks)
  return generate_from_seeds(prior_config, seeds, num_trials, algorithm_mix, behaviour_config, stats)
