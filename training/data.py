"""Trajectories from the corpus -> tokenized training batches, deterministically.

A trajectory (one record of the data_gen corpus) holds unit-space x
float [T, D_max], objectives y float [T] (larger is better), slot kinds and
level counts, and the behaviour algorithm. Turning it into a training
example draws, from an RNG seeded by (seed, record index) so that the
result does not depend on when or where it is made:

  * a random permutation of the D_max slots (slot position carries no
    meaning; DESIGN.md);
  * the y normalization: statistics from the first k trials, k ~ U{2..T},
    mapped to a random sub-range [lo, hi], lo ~ U(0.05, 0.3), hi ~ U(0.7,
    0.95) (OptFormer randomizes the target sub-range in training); values
    beyond it are clipped to the outer bins;
  * P trial indices whose value tokens the policy learns to predict.

The order of records is a permutation per epoch seeded by (seed, epoch), so
the data position is a single integer: the number of records consumed.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from optformer import search_space as ss
from optformer import tokenizer as tk
from optformer.model import Batch


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """How trajectories become batches."""

  batch_size: int = 32  # Studies per batch (global, over all devices).
  num_trials: int = 64  # T: trials per training sequence (<= corpus length).
  policy_trials: int = 16  # P: trials per study whose x the policy predicts.
  seed: int = 0  # Seeds the record order and per-record randomness.

  @classmethod
  def tiny(cls) -> "DataConfig":
    return cls(batch_size=4, num_trials=16, policy_trials=4)


def prior_encoding(kinds_D, num_values_D, num_x_bins: int) -> tk.SpaceEncoding:
  """The SpaceEncoding of a prior task's slots (ordinal level i of n at i / (n - 1)).

  Built exactly as `tokenizer.encode_space` builds a user's search space, so
  training and inference tokenize values the same way.
  """
  d = len(kinds_D)
  valid = np.zeros((d, num_x_bins), bool)
  levels, tokens = [None] * d, [None] * d
  for j in range(d):
    k, n = int(kinds_D[j]), int(num_values_D[j])
    if k == ss.KIND_FLOAT or (k == ss.KIND_ORDINAL and n > num_x_bins):
      valid[j] = True
    elif k == ss.KIND_ORDINAL:
      levels[j] = np.arange(n) / (n - 1)
      tokens[j] = tk.level_tokens(levels[j], num_x_bins)
      valid[j, tokens[j]] = True
    elif k == ss.KIND_CATEGORICAL:
      valid[j, :n] = True
    else:
      valid[j, 0] = True
  return tk.SpaceEncoding(np.asarray(kinds_D, np.int32), np.asarray(num_values_D, np.int32), valid, tuple(levels), tuple(tokens))


def tokenize_trajectory(record: Mapping[str, np.ndarray], tok: tk.TokenizerConfig, cfg: DataConfig, rng: np.random.Generator):
  """One record -> dict of arrays for one row of a Batch (+ policy_index [P])."""
  t = cfg.num_trials
  x = np.asarray(record["x"], np.float64)[:t]
  y = np.asarray(record["y"], np.float64)[:t]
  kinds = np.asarray(record["kinds"], np.int32)
  num_values = np.asarray(record["num_values"], np.int32)
  d = tok.max_params
  if x.shape[0] < t:
    raise ValueError(f"Record has {x.shape[0]} trials; the training sequence needs {t}.")
  if len(kinds) > d:
    raise ValueError(f"Record has {len(kinds)} slots; the tokenizer supports max_params={d}.")
  pad = d - len(kinds)
  kinds = np.pad(kinds, (0, pad))
  num_values = np.pad(num_values, (0, pad))
  x = np.pad(x, ((0, 0), (0, pad)))
  perm = rng.permutation(d)
  x, kinds, num_values = x[:, perm], kinds[perm], num_values[perm]
  k = int(rng.integers(2, t + 1))
  lo, hi = rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)
  norm = tk.YNormalizer.fit(y[:k], low=lo, high=hi)
  enc = prior_encoding(kinds, num_values, tok.num_x_bins)
  return dict(
      x=tk.encode_units(x, enc, tok.num_x_bins),
      y=tk.encode_y(norm.apply(y), tok.num_y_bins),
      trial_mask=np.ones(t, bool),
      kinds=kinds,
      num_values=num_values,
      valid=enc.valid,
      algorithm=np.int32(record["algorithm"]),
      policy_index=np.sort(rng.choice(t, size=cfg.policy_trials, replace=False)).astype(np.int32),
  )


def collate(rows: Sequence[Mapping[str, np.ndarray]]) -> tuple[Batch, np.ndarray]:
  """Stacks rows into (Batch, policy_index int32 [B, P])."""
  stack = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  policy_index = stack.pop("policy_index")
  return Batch(**stack), policy_index


class BatchIterator:
  """Deterministic batches from a random-access source of records.

  Args:
    source: supports len() and integer indexing, returning a record dict.
    position: records consumed so far (restored from a checkpoint).
  """

  def __init__(self, source, tok: tk.TokenizerConfig, cfg: DataConfig, position: int = 0):
    if len(source) < cfg.batch_size:
      raise ValueError(f"The corpus has {len(source)} records; a batch needs {cfg.batch_size}.")
    self.source, self.tok, self.cfg = source, tok, cfg
    self.position = int(position)
    self._perm_epoch, self._perm = -1, None

  def _index(self, pos: int) -> int:
    n = len(self.source)
    epoch = pos // n
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
      self._perm_epoch = epoch
    return int(self._perm[pos % n])

  def __iter__(self):
    return self

  def __next__(self) -> tuple[Batch, np.ndarray]:
    rows = []
    for _ in range(self.cfg.batch_size):
      i = self._index(self.position)
      rng = np.random.default_rng([self.cfg.seed, 1, self.position])
      rows.append(tokenize_trajectory(self.source[i], self.tok, self.cfg, rng))
      self.position += 1
    return collate(rows)
