"""Model v2's training data: prior examples -> surrogate batches, generated on the fly.

Batch i of a run is a pure function of (seed, i): its sequence length N,
its examples (data_gen.examples, example indices i * B .. i * B + B - 1), the
context size of each example and the slot ids. So training is deterministic,
the data position is one integer (grain's iterator state, saved by orbax
beside the model), and process p of P can generate its own slice of every
global batch (`shard`).

Per example (the PFN split, Müller et al., ICLR 2022): the first n_context
of its N points are the context, n_context ~ 1 + LogUniform-ish over
[1, N - 1] with probability `p_log_context`, else uniform; the rest are
queries. The y pipeline (optformer.model.ynorm) is fitted on the context's
feasible objectives only, exactly as at inference, and maps every objective
to z; a query's target is its bar (optformer.model.bar.bin_index) or the
infeasible class Y.

Soft targets (`soft_target_weight` > 0): every GP-family task is a GP draw whose
hyperparameters the generator knows, so the distribution a feasible query's
noisy objective was drawn from, given its context and the task, is known in
closed form: the exact GP posterior (data_gen/gp.py) plus the noise. Its mass
on each bar is an unbiased, lower-variance stand-in for the one-hot bar of
the drawn value (Rao-Blackwellization of the PFN loss: the expected loss, and
so its minimizer, the posterior predictive, are unchanged up to the
random-feature approximation of f), and `GPTargets` carries what the loss
needs to compute it. A BBOB-/HPO-like example (data_gen/families.py,
`Examples.family` > 0) has no such posterior: its target is the drawn
value's bar (as where the GP factorization fails).

Policy rows (`policy_rows` R > 0; the policy head of optformer/model/network.py): each
example also teaches the policy which configuration to try next. Its target
is a strong behaviour policy's pick that the generator can afford: the query
point of highest expected improvement (Jones et al. 1998; the objective is
maximized, data_gen/prior.py, and ynorm's y -> z is increasing) under the
exact GP posterior with the task's true hyperparameters given the feasible
context, among the example's feasible queries (or, `policy_target="best"`,
the one of best noiseless value); examples with fewer than
`policy_min_queries` feasible queries teach nothing. Any-order behaviour
cloning: each of the R rows shows a random subset of the target's slots as
decoded (each slot with probability r ~ U(0, 1); a child only with its
parent, and a child its decoded parent switches off always, as the decoder
does), and the loss is the cross-entropy of the target's tokens on the
undecoded active slots (training/train.py). On a BBOB-/HPO-like example the
EI policies use the GP posterior of the task's GP-draw hyperparameters (a
GP-EI behaviour policy with a misspecified kernel, no longer the Bayes-optimal
one).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from optformer.data_gen import gp
from optformer.data_gen.prior import latent as prior_latent
from optformer.data_gen.examples import ExampleConfig, Examples, example_words, sample_examples
from optformer.model import bar
from optformer.model import ynorm
from optformer.model.network import PolicyRows, SurrogateBatch

SPLIT_IDS = {"train": 0, "validation": 1}
F32_MAX = float(np.finfo(np.float32).max)  # Bar borders beyond float32 (the power transform's far tails) clip here.


@dataclasses.dataclass(frozen=True)
class PFNDataConfig:
  """How prior examples become batches."""

  examples: ExampleConfig = ExampleConfig()  # The prior of examples.
  batch_size: int = 32  # Examples per global batch.
  seq_lens: tuple = (64, 128)  # N: points per example, drawn per batch ...
  seq_len_probs: tuple = (0.7, 0.3)  # ... with these probabilities (one compilation each).
  p_log_context: float = 0.5  # P(n_context log-uniform) vs uniform over [1, N - 1].
  min_power_points: int = 4  # Distinct context values before the power transform is fitted.
  seed: int = 0  # Global seed of the example stream.
  # Curriculum over the number of parameters: ((until_batch, max_dims), ...) in increasing
  # until_batch; training batch i < until_batch draws tasks of at most max_dims parameters
  # (the first entry that applies), later batches the prior's own. Validation ignores it.
  dims_curriculum: tuple = ()
  # Weight of the exact-GP posterior's bar masses in a feasible query's loss (the rest on the drawn value's
  # bar); 0 keeps batches as (SurrogateBatch, bars int32 [B, N]), above 0 they carry `GPTargets`.
  soft_target_weight: float = 0.0
  policy_rows: int = 0  # R: policy rows per example (0: no policy targets; "Policy rows" above).
  # The behaviour policy: "ei_search" (the exact-GP EI's argmax over SEARCH_CANDIDATES uniform and local
  # candidates), "ei" (its argmax over the example's feasible queries) or "best" (the best noiseless query).
  policy_target: str = "ei_search"
  policy_min_queries: int = 8  # Feasible queries an example needs to teach the policy.

  @classmethod
  def tiny(cls) -> "PFNDataConfig":
    return cls(examples=ExampleConfig.tiny(), batch_size=4, seq_lens=(16,), seq_len_probs=(1.0,))

  def to_json(self) -> dict:
    d = dataclasses.asdict(self)
    d["examples"] = self.examples.to_json()
    for key in ("dims_curriculum", "soft_target_weight", "policy_rows"):
      if not d[key]:
        del d[key]  # Configs of runs from before these knobs existed stay equal.
    if not self.policy_rows:
      del d["policy_target"], d["policy_min_queries"]
    return d

  @classmethod
  def from_json(cls, d: dict) -> "PFNDataConfig":
    d = dict(d)
    ex = ExampleConfig.from_json(d.pop("examples"))
    cur = tuple(tuple(int(v) for v in stage) for stage in d.pop("dims_curriculum", ()))
    return cls(examples=ex, dims_curriculum=cur, **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

  def __post_init__(self):
    until = [stage[0] for stage in self.dims_curriculum]
    if self.policy_rows < 0 or self.policy_target not in ("ei_search", "ei", "best") or self.policy_min_queries < 1:
      raise ValueError(f"policy_rows must be >= 0, policy_target 'ei_search', 'ei' or 'best' and policy_min_queries >= 1, got "
                       f"{self.policy_rows}, {self.policy_target!r}, {self.policy_min_queries}.")
    if not 0.0 <= self.soft_target_weight <= 1.0:
      raise ValueError(f"soft_target_weight must lie in [0, 1], got {self.soft_target_weight}.")
    if any(len(stage) != 2 or stage[1] < 1 for stage in self.dims_curriculum) or until != sorted(until):
      raise ValueError(f"dims_curriculum must be ((until_batch, max_dims >= 1), ...) with increasing until_batch, "
                       f"got {self.dims_curriculum}.")

  def examples_at(self, index: int, split: str = "train") -> ExampleConfig:
    """The example distribution of batch `index` of `split` (the curriculum's stage for training)."""
    prior = self.examples.prior
    for until, max_dims in self.dims_curriculum if split == "train" else ():
      if index < until:
        if max_dims >= prior.max_dims:
          return self.examples
        small = dataclasses.replace(prior, max_dims=max_dims, min_dims=min(prior.min_dims, max_dims))
        return dataclasses.replace(self.examples, prior=small)
    return self.examples


def context_sizes(rng: np.random.Generator, n: int, num: int, p_log: float) -> np.ndarray:
  """int [num] context sizes in [1, n - 1]."""
  log_u = np.floor(np.exp(rng.uniform(0.0, np.log(n - 1), num))).astype(int)
  uni = rng.integers(1, n, num)
  return np.clip(np.where(rng.uniform(size=num) < p_log, log_u, uni), 1, n - 1)


def to_batch(ex: Examples, n_context, slot_ids, borders, min_power_points: int = 4):
  """(SurrogateBatch, targets int32 [B, N], z float64 [B, N], transform fields) of examples with given context sizes.

  Targets: the bar of each point's z (every position; the loss uses queries), Y for infeasible points.
  """
  b, n, _ = ex.x.shape
  context = np.arange(n)[None, :] < np.asarray(n_context)[:, None]
  y = np.nan_to_num(ex.y.astype(np.float64))
  fields = ynorm.fit_batch(y, context & ex.feasible, min_power_points=min_power_points)
  z = ynorm.apply_batch(fields, y)
  targets = np.where(ex.feasible, bar.bin_index(z, borders), len(borders) - 1).astype(np.int32)
  batch = SurrogateBatch(
      x=ex.x, active=ex.active, kinds=ex.kinds, num_values=ex.num_values, slot_ids=np.asarray(slot_ids, np.int32),
      z=np.where(context & ex.feasible, z, 0.0).astype(np.float32), feasible=ex.feasible, context=context,
      valid=np.ones((b, n), bool),
  )
  return batch, targets, z, fields


class GPTargets(NamedTuple):
  """Query targets with the exact GP posterior of every point given its example's context (soft targets)."""

  bars: np.ndarray  # int32 [B, N]: the drawn value's bar, or Y for an infeasible point.
  mean: np.ndarray  # float32 [B, N]: posterior mean of the noisy objective (the example's units).
  std: np.ndarray  # float32 [B, N]: posterior std of the noisy objective (noise included), > 0.
  borders_y: np.ndarray  # float32 [B, Y + 1]: the bar borders in the example's units (clipped to +-F32_MAX).


@jax.jit
def _posterior_batch(task, latent_BxNxD, y_BxN, mask_BxN, jitter):
  return jax.vmap(lambda *a: gp.posterior(*a, jitter=jitter))(task, latent_BxNxD, y_BxN, mask_BxN, latent_BxNxD)


def gp_posterior_batch(task, latent_BxNxD, y_BxN, mask_BxN):
  """Exact GP posterior (mean, var of the noiseless f), numpy float32 [B, N], of B tasks at their own N points.

  Conditions on the points where mask_BxN is True (data_gen/gp.py, true hyperparameters). An example
  whose float32 Cholesky fails (near-duplicate points, little noise) retries with 100x the jitter.
  The retry runs after the first pass has finished, and only when an example failed: two batched
  factorizations in flight at once can wedge XLA's CPU thread pool (tests hung in CI that way).
  """
  mean, var = map(np.asarray, _posterior_batch(task, latent_BxNxD, y_BxN, mask_BxN, gp.JITTER))
  ok = (np.isfinite(mean).all(-1) & np.isfinite(var).all(-1))[:, None]
  if not ok.all():
    mean2, var2 = map(np.asarray, _posterior_batch(task, latent_BxNxD, y_BxN, mask_BxN, 100 * gp.JITTER))
    mean, var = np.where(ok, mean, mean2), np.where(ok, var, var2)
  return mean, var


def gp_targets(ex: Examples, task, context_BxN, fields: dict, bars_BxN, borders, posterior=None) -> GPTargets:
  """`GPTargets` of examples: the exact GP posterior (true hyperparameters) given the context's feasible points.

  posterior: its (mean, var) float32 [B, N] when already computed (`gp_posterior_batch`).
  """
  mask = np.asarray(context_BxN) & ex.feasible
  y = np.nan_to_num(ex.y)
  mean, var = gp_posterior_batch(task, ex.latent, y, mask) if posterior is None else posterior
  std = np.sqrt(var.astype(np.float64) + np.asarray(task.noise_variance, np.float64)[:, None])
  # Where the factorization failed even so, the target falls back to (nearly) the drawn value's bar.
  failed = ~(np.isfinite(mean).all(-1) & np.isfinite(std).all(-1))[:, None]
  failed |= (np.asarray(ex.family) != 0).reshape(-1, 1)  # A BBOB-/HPO-like objective has no GP posterior to use.
  mean = np.where(failed, y, mean)
  std = np.where(failed, 1e-6 * np.maximum(np.abs(y), 1.0), std)
  borders_y = ynorm.invert_batch(fields, np.broadcast_to(np.asarray(borders, np.float64), (len(std), len(borders))))
  borders_y = np.clip(borders_y, -F32_MAX, F32_MAX).astype(np.float32)
  return GPTargets(bars=np.asarray(bars_BxN, np.int32), mean=np.asarray(mean, np.float32),
                   std=np.maximum(std, 1e-12).astype(np.float32), borders_y=borders_y)


class WithPolicy(NamedTuple):
  """A batch's targets when it teaches the policy too (cfg.policy_rows > 0)."""

  targets: object  # The bars int32 [B, N] or `GPTargets`.
  rows: PolicyRows  # [B, R, D]: the behaviour target and each row's decoded slots.


def conditional_parents(ex: Examples) -> np.ndarray:
  """int32 [B, D]: each slot's parent slot, -1 for a root, inferred from the points (data_gen/examples.py: a
  child is active exactly where its categorical parent is category 0; a child never inactive reads as a root)."""
  b, _, d = ex.x.shape
  parent = np.full((b, d), -1, np.int32)
  used = ex.kinds > 0
  child_BxD = used & ~ex.active.all(1)
  for i in np.nonzero(child_BxD.any(1))[0]:
    c = int(np.argmax(child_BxD[i]))
    fits = [p for p in np.nonzero((ex.kinds[i] == 3) & ~child_BxD[i])[0]
            if np.array_equal(ex.x[i, :, p] == 0, ex.active[i, :, c])]
    if fits:
      parent[i, child_BxD[i]] = fits[0]
  return parent


def expected_improvement(mean, var, best):
  """float64 EI of maximizing f ~ N(mean, var) over `best` (Jones et al. 1998): s (u Phi(u) + phi(u))."""
  import scipy.stats

  s = np.sqrt(np.maximum(np.asarray(var, np.float64), 1e-12))
  u = (np.asarray(mean, np.float64) - best) / s
  return s * (u * scipy.stats.norm.cdf(u) + scipy.stats.norm.pdf(u))


SEARCH_CANDIDATES = 512  # Candidates of the "ei_search" behaviour policy per example: half uniform, half local.
SEARCH_STDS = (0.01, 0.03, 0.1, 0.3)  # Unit-space perturbation scales of its local candidates.


@jax.jit
def _posterior_at(task, latent_BxNxD, y_BxN, mask_BxN, latent_BxQxD):
  return jax.vmap(gp.posterior)(task, latent_BxNxD, y_BxN, mask_BxN, latent_BxQxD)


def search_candidates(rng: np.random.Generator, ex: Examples, known_BxN, num: int = SEARCH_CANDIDATES):
  """(x float32 [B, C, D], active bool [B, C, D]): valid configurations, half uniform, half perturbations of
  the 3 best known trials (scales SEARCH_STDS; a categorical kept, or redrawn with probability 0.2); children
  inactive where their parent (`conditional_parents`) is not category 0, as in data_gen/examples.py."""
  b, _, d = ex.x.shape
  kinds, n = ex.kinds[:, None, :], np.maximum(ex.num_values[:, None, :], 1)

  def snap(u, integer_levels):  # u in [0, 1] (or a category index) -> valid unit-form values.
    levels = np.maximum(n - 1, 1)
    ordinal = np.clip(np.round(u * levels), 0, levels) / levels
    cat = np.clip(np.floor(u * n) if not integer_levels else np.round(u), 0, n - 1)
    return np.where(kinds == 1, np.clip(u, 0, 1), np.where(kinds == 2, ordinal, np.where(kinds == 3, cat, 0.0)))

  uniform = snap(rng.uniform(size=(b, num, d)), False)
  y = np.where(known_BxN, np.nan_to_num(ex.y), -np.inf)
  top = np.argsort(-y, 1)[:, :3]  # [B, 3]
  start = ex.x[np.arange(b)[:, None], top[np.arange(b)[:, None], rng.integers(0, 3, (b, num))]]  # [B, C, D]
  std = np.asarray(SEARCH_STDS)[rng.integers(0, len(SEARCH_STDS), (b, num, 1))]
  moved = np.where(kinds == 3, np.round(start), start + std * rng.normal(size=(b, num, d)))
  moved = np.where((kinds == 3) & (rng.uniform(size=(b, num, d)) < 0.2), uniform, snap(moved, True))
  local = (np.arange(num) >= num // 2)[None, :, None] & known_BxN.any(1)[:, None, None]
  x = np.where(local, moved, uniform)
  parent = conditional_parents(ex)
  off = (parent >= 0)[:, None, :] & (np.take_along_axis(x, np.maximum(parent, 0)[:, None, :], 2) != 0)
  active = (ex.kinds > 0)[:, None, :] & ~off
  return np.where(active, x, 0.0).astype(np.float32), active


def behaviour_target(rng: np.random.Generator, cfg: PFNDataConfig, ex: Examples, task, context_BxN, posterior):
  """(x float32 [B, D], active bool [B, D], usable bool [B]): each example's behaviour pick ("Policy rows")."""
  b = len(ex.x)
  known = np.asarray(context_BxN) & ex.feasible
  best_y = np.where(known, np.nan_to_num(ex.y), -np.inf).max(1)
  if cfg.policy_target == "ei_search":
    x_c, act_c = search_candidates(rng, ex, known)
    latent = np.where(act_c, np.asarray(prior_latent(task, x_c)), 0.5).astype(np.float32)
    mean, var = map(np.asarray, _posterior_at(task, ex.latent, np.nan_to_num(ex.y), known, latent))
    score = expected_improvement(mean, var, np.where(known.any(1), best_y, 0.0)[:, None])
    score = np.where(np.isfinite(score), score, -np.inf)
    usable = known.any(1) & np.isfinite(score).any(1)
    pick = np.argmax(score, 1)
    return x_c[np.arange(b), pick], act_c[np.arange(b), pick], usable
  cand = ~np.asarray(context_BxN) & ex.feasible
  if cfg.policy_target == "best":
    score = ex.f.astype(np.float64)
  else:
    mean, var = posterior
    best = np.where(known.any(1), best_y, np.where(cand, mean, -np.inf).max(1))[:, None]
    score = expected_improvement(mean, var, best)
  score = np.where(cand & np.isfinite(score), score, -np.inf)  # A failed factorization (NaN) teaches nothing.
  usable = (cand.sum(1) >= cfg.policy_min_queries) & np.isfinite(score).any(1)
  pick = np.argmax(score, 1)
  return ex.x[np.arange(b), pick], ex.active[np.arange(b), pick], usable


def policy_rows(rng: np.random.Generator, cfg: PFNDataConfig, ex: Examples, target) -> PolicyRows:
  """`PolicyRows` [B, R, D] of examples: the behaviour target (x, active: the whole configuration, from
  `behaviour_target`) and each row's random decoded subset; an unusable example is all decoded."""
  x, active, usable = target
  b, _, d = ex.x.shape
  r = cfg.policy_rows
  decoded = rng.uniform(size=(b, r, d)) < rng.uniform(size=(b, r, 1))
  parent = conditional_parents(ex)
  has = parent >= 0
  pdec = np.take_along_axis(decoded, np.maximum(parent, 0)[:, None, :], 2)
  decoded = np.where(has[:, None], pdec & (decoded | ~active[:, None]), decoded)
  decoded |= (ex.kinds == 0)[:, None, :] | ~usable[:, None, None]
  rep = lambda a: np.broadcast_to(a[:, None], (b, r, d))
  return PolicyRows(x=rep(x).astype(np.float32), active=rep(active), decoded=decoded)


def make_batch(cfg: PFNDataConfig, borders, num_slot_ids: int, index: int, split: str = "train",
               shard: int = 0, num_shards: int = 1, seq_len: int | None = None, n_context=None):
  """Batch `index` of `split` (this shard's rows): (SurrogateBatch, targets, Examples, task, z).

  targets: the bars int32 [B, N], or `GPTargets` when cfg.soft_target_weight > 0; with cfg.policy_rows > 0,
  `WithPolicy(that, PolicyRows)`.

  `seq_len` / `n_context` (int or int [B]) override the random draws (evaluation).

  Raises:
    ValueError: batch_size not divisible by num_shards.
  """
  if cfg.batch_size % num_shards:
    raise ValueError(f"batch_size={cfg.batch_size} must divide by num_shards={num_shards}.")
  rng = np.random.default_rng([cfg.seed, SPLIT_IDS[split], index])
  n = seq_len or int(rng.choice(cfg.seq_lens, p=cfg.seq_len_probs))
  b_all = cfg.batch_size
  n_ctx = context_sizes(rng, n, b_all, cfg.p_log_context) if n_context is None else np.broadcast_to(n_context, (b_all,))
  examples = cfg.examples_at(index, split)
  d = examples.prior.max_dims
  if d > num_slot_ids:
    raise ValueError(f"The prior has {d} slots but the model has {num_slot_ids} slot ids.")
  ids = np.stack([rng.permutation(num_slot_ids)[:d] for _ in range(b_all)])
  rows = slice(shard * b_all // num_shards, (shard + 1) * b_all // num_shards)
  words = example_words(cfg.seed, split, index * b_all + np.arange(b_all)[rows])
  ex, task = sample_examples(examples, words, n)
  batch, targets, z, fields = to_batch(ex, n_ctx[rows], ids[rows], borders, cfg.min_power_points)
  posterior = None
  if cfg.soft_target_weight > 0 or (cfg.policy_rows > 0 and cfg.policy_target == "ei"):  # "ei_search": its own.
    posterior = gp_posterior_batch(task, ex.latent, np.nan_to_num(ex.y), batch.context & ex.feasible)
  if cfg.soft_target_weight > 0:
    targets = gp_targets(ex, task, batch.context, fields, targets, borders, posterior)
  if cfg.policy_rows > 0:
    target = behaviour_target(rng, cfg, ex, task, batch.context, posterior)
    targets = WithPolicy(targets, policy_rows(rng, cfg, ex, target))
  return batch, targets, ex, task, z


def dataset(cfg: PFNDataConfig, borders, num_slot_ids: int, shard: int = 0, num_shards: int = 1):
  """grain MapDataset of training batches: element i = (SurrogateBatch, targets) of batch i."""
  import grain

  def element(i):
    batch, targets, *_ = make_batch(cfg, borders, num_slot_ids, int(i), "train", shard, num_shards)
    return batch, targets

  return grain.MapDataset.range(0, 2**40).map(element)


def batch_iterator(ds, start: int, workers: int = 0):
  """Iterator over the elements start, start + 1, ... of the grain MapDataset `ds` (a run's data position on).

  workers: grain worker processes generating elements ahead (0: this process, one thread); the order, and so
    the run, is the same for any number. Workers run JAX on the CPU (the GP posteriors of soft and policy
    targets), never on the training process's accelerator.
  """
  import grain

  it = ds[start:].to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
  if workers > 0:
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags, parsed only under absl.app.
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers), worker_init_fn=_cpu_worker)
  return iter(it)


def _cpu_worker(worker_index: int, num_workers: int) -> None:
  jax.config.update("jax_platforms", "cpu")


def prior_borders(cfg: PFNDataConfig, num_bins: int, num_batches: int = 64) -> np.ndarray:
  """float64 [num_bins + 1]: bar borders at equal-mass quantiles of the prior's query z.

  Drawn from a separate example stream (seed + 100_003), never the training batches.
  """
  seeded = dataclasses.replace(cfg, seed=cfg.seed + 100_003, dims_curriculum=())  # The whole prior.
  zs = []
  for i in range(num_batches):
    batch, _, ex, _, z = make_batch(seeded, np.linspace(-1.0, 1.0, 4), cfg.examples.prior.max_dims, i)
    zs.append(z[ex.feasible & ~batch.context])
  return bar.borders_from_samples(np.concatenate(zs), num_bins)
