"""Custom numeric tokens for trials: quantized parameter values and objectives.

Layout (one *trial-level* position per trial; see README "Sequence layout"):

    position 0        [ALGO]                       behaviour-algorithm prompt
    positions 1..n    (x_1 .. x_Dmax, y)           one per history trial
    query positions   (x_1 .. x_Dmax, MISSING)     candidates whose y is asked

Each trial is a row of D_max *value tokens* plus one *y token*. The trial is
its own separator: the model embeds a row into one position (DESIGN.md,
"trial-level backbone"), so no separator token is spent.

Value tokens (OptFormer, Chen et al. 2022, Sec. 3.1):
  * Float / Int / Discrete: the unit value u in [0, 1] (after log for log
    scale) is quantized into `num_x_bins` = Q bins, token = min(floor(u Q), Q-1).
  * Categorical: token = category index k (0 <= k < K <= Q).
  * Unused slots (fewer parameters than D_max): token `PAD`.
Objective tokens: the objective, turned into "larger is better", is
normalized per study by the min and max of the history into the sub-range
[y_low, y_high] of [0, 1] (headroom for better values), then quantized into
`num_y_bins` bins. `MISSING` marks an unknown y (a query), `PAD` an absent
trial.

Round trip value -> token -> value is exact for categorical and ordinal
(Int/Discrete with at most Q levels) values, and within half a bin width
(0.5 / Q in unit space) for floats.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from optformer import search_space as ss

# Special token ids sit above the value tokens of the larger vocabulary.
# They are the same for x and y vocabularies: value ids are 0..Q-1.
PAD_OFFSET = 0  # PAD id = Q
MISSING_OFFSET = 1  # MISSING id = Q + 1
NUM_SPECIAL = 2


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
  """How values become tokens."""

  num_x_bins: int = 1000  # Q: value tokens per numeric parameter (OptFormer uses 1000).
  num_y_bins: int = 1000  # Bins of the objective (PFNs4BO uses 1000 buckets).
  max_params: int = 8  # D_max: parameter slots per trial.
  y_low: float = 0.2  # Where the worst observed objective lands in [0, 1].
  y_high: float = 0.8  # Where the best observed objective lands in [0, 1].

  @classmethod
  def tiny(cls) -> "TokenizerConfig":
    return cls(num_x_bins=32, num_y_bins=32, max_params=4)

  @property
  def x_pad(self) -> int:
    return self.num_x_bins + PAD_OFFSET

  @property
  def y_pad(self) -> int:
    return self.num_y_bins + PAD_OFFSET

  @property
  def y_missing(self) -> int:
    return self.num_y_bins + MISSING_OFFSET

  def y_edges(self) -> np.ndarray:
    """float64 [num_y_bins + 1]: bin edges of normalized objectives, 0 to 1."""
    return np.linspace(0.0, 1.0, self.num_y_bins + 1)


# ----------------------------------------------------------------------------
# Parameter values.


def quantize(u, num_bins: int) -> np.ndarray:
  """int32 tokens of unit values u in [0, 1] (clipped): min(floor(u Q), Q - 1)."""
  u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
  return np.minimum(np.floor(u * num_bins), num_bins - 1).astype(np.int32)


def bin_centers(num_bins: int) -> np.ndarray:
  """float64 [num_bins]: the unit value each token stands for, (b + 0.5) / Q."""
  return (np.arange(num_bins) + 0.5) / num_bins


@dataclasses.dataclass(frozen=True)
class SpaceEncoding:
  """A search space as the arrays the model consumes (one row per slot).

  Attributes:
    kinds: int32 [D_max]; search_space.KIND_* (0 for unused slots).
    num_values: int32 [D_max]; levels (ordinal) or categories, 0 for floats;
      at most 2**31 - 1 (an Int with more levels is stored as that).
    valid: bool [D_max, Q]; the value tokens a decoder may emit per slot.
    level_units: per slot, float64 [n] unit values of its levels, or None.
    level_tokens: per slot, int32 [n] strictly increasing token of each
      level (its bin, moved up or down to the nearest free bin when levels
      of a log scale share one), or None.
  """

  kinds: np.ndarray
  num_values: np.ndarray
  valid: np.ndarray
  level_units: tuple
  level_tokens: tuple = ()


def level_tokens(units, num_bins: int) -> np.ndarray:
  """int32 [n] distinct, increasing tokens of n <= Q sorted unit values.

  Each level gets its bin when free; levels that share a bin (log-scale
  integers near the top) take the next free bins, pushed back down from Q-1
  when needed, so every level keeps its own token and the round trip stays
  exact.
  """
  t = quantize(units, num_bins).astype(np.int64)
  n = len(t)
  for i in range(1, n):
    t[i] = max(t[i], t[i - 1] + 1)
  for i in range(n - 1, -1, -1):
    t[i] = min(t[i], num_bins - n + i)
  return t.astype(np.int32)


def encode_space(space: ss.SearchSpace, config: TokenizerConfig) -> SpaceEncoding:
  """Builds the per-slot arrays of `space`.

  Raises:
    ValueError: more parameters than `config.max_params`, or a categorical
      parameter with more choices than `config.num_x_bins`.
  """
  q, d_max = config.num_x_bins, config.max_params
  if len(space) > d_max:
    raise ValueError(
        f"The search space has {len(space)} parameters; this model supports at most {d_max} (max_params)."
    )
  kinds = np.zeros(d_max, np.int32)
  num_values = np.zeros(d_max, np.int32)
  valid = np.zeros((d_max, q), bool)
  valid[:, 0] = True  # Unused slots decode a dummy token 0, ignored.
  levels: list = [None] * d_max
  tokens: list = [None] * d_max
  for j, p in enumerate(space):
    kinds[j] = p.kind
    num_values[j] = min(p.num_values, np.iinfo(np.int32).max)  # An Int of 2**31 levels or more saturates.
    valid[j] = False
    if p.kind == ss.KIND_CATEGORICAL:
      if p.num_values > q:
        raise ValueError(f"Parameter {p.name!r} has {p.num_values} choices; at most {q} are supported.")
      valid[j, : p.num_values] = True
    elif p.kind == ss.KIND_ORDINAL and p.num_values <= q:
      levels[j] = p.level_units()
      tokens[j] = level_tokens(levels[j], q)
      valid[j, tokens[j]] = True
    else:  # Float, or an Int with more levels than bins (decoded by rounding).
      valid[j] = True
  return SpaceEncoding(kinds, num_values, valid, tuple(levels), tuple(tokens))


def encode_x(unit_TxD, kinds, num_x_bins: int) -> np.ndarray:
  """int32 [T, D_max] value tokens of unit values (category index for categorical).

  Args:
    unit_TxD: float [T, D] with D <= D_max = len(kinds); padded with PAD.
    kinds: int [D_max] kind codes.
  """
  unit_TxD = np.asarray(unit_TxD, np.float64)
  kinds = np.asarray(kinds)
  t, d = unit_TxD.shape
  out = np.full((t, len(kinds)), num_x_bins + PAD_OFFSET, np.int32)
  k = kinds[:d]
  numeric = quantize(unit_TxD, num_x_bins)
  categorical = np.rint(unit_TxD).astype(np.int32)
  tok = np.where(k == ss.KIND_CATEGORICAL, categorical, numeric)
  out[:, :d] = np.where(k == ss.KIND_UNUSED, num_x_bins + PAD_OFFSET, tok)
  return out


def decode_x(tokens_D, space: ss.SearchSpace, enc: SpaceEncoding, num_x_bins: int) -> dict[str, Any]:
  """Configuration (name -> value) from one row of value tokens int [D_max].

  Raises:
    ValueError: a token that is not valid for its parameter.
  """
  tokens_D = np.asarray(tokens_D)
  centers = bin_centers(num_x_bins)
  out = {}
  for j, p in enumerate(space):
    b = int(tokens_D[j])
    if not (0 <= b < num_x_bins and enc.valid[j, b]):
      raise ValueError(f"Token {b} is not a valid value token for parameter {p.name!r}.")
    if p.kind == ss.KIND_CATEGORICAL:
      out[p.name] = p.from_unit(b)
    elif enc.level_tokens[j] is not None:
      out[p.name] = p.from_unit(enc.level_units[j][int(np.searchsorted(enc.level_tokens[j], b))])
    else:
      out[p.name] = p.from_unit(centers[b])
  return out


def decode_units(tokens_NxD, enc: SpaceEncoding, num_x_bins: int, rng: np.random.Generator | None = None) -> np.ndarray:
  """float64 [N, D] unit values (category index for categorical) of value-token rows int [N, D_max], D = used slots.

  A float parameter, or an integer with more levels than bins, gets its bin
  centre, or with `rng` a uniform point inside its bin (so decoded values
  are not restricted to the Q bin centres); an ordinal parameter with its
  own level tokens gets its level, a categorical one its index.
  """
  tokens = np.asarray(tokens_NxD)
  d = int(np.count_nonzero(enc.kinds))
  inside = rng.random((len(tokens), d)) if rng is not None else np.full((len(tokens), d), 0.5)
  out = (tokens[:, :d] + inside) / num_x_bins
  for j in range(d):
    if enc.kinds[j] == ss.KIND_CATEGORICAL:
      out[:, j] = tokens[:, j]
    elif enc.level_tokens[j] is not None:
      out[:, j] = enc.level_units[j][np.clip(np.searchsorted(enc.level_tokens[j], tokens[:, j]), 0, len(enc.level_units[j]) - 1)]
  return out


def encode_units(unit_NxD, enc: SpaceEncoding, num_x_bins: int) -> np.ndarray:
  """int32 [N, D_max] value tokens of unit values of a search space's parameters.

  Like `encode_x`, but ordinal parameters take their level's own token
  (`SpaceEncoding.level_tokens`), exact for log-scale integers too.
  """
  tokens = encode_x(unit_NxD, enc.kinds, num_x_bins)
  for j in range(np.shape(unit_NxD)[1]):
    if enc.level_tokens[j] is not None:
      idx = np.argmin(np.abs(np.asarray(unit_NxD)[:, j, None] - enc.level_units[j][None, :]), axis=1)
      tokens[:, j] = enc.level_tokens[j][idx]
  return tokens


def encode_configs(
    configs: Sequence[Mapping[str, Any]], space: ss.SearchSpace, config: TokenizerConfig, enc: SpaceEncoding | None = None
) -> np.ndarray:
  """int32 [N, D_max] value tokens of N configurations (validated first).

  `enc`: the space's encoding if already built (encode_space(space, config)).
  """
  unit = space.to_units(configs)
  return encode_units(unit, enc or encode_space(space, config), config.num_x_bins)


# ----------------------------------------------------------------------------
# Objectives.


@dataclasses.dataclass(frozen=True)
class YNormalizer:
  """Affine map of "larger is better" objectives into [0, 1] (per study).

  The history's worst value goes to `low`, its best to `high`. With fewer
  than two distinct values the map keeps slope (high - low) / max(|y|, 1)
  around the single value, which lands at (low + high) / 2.
  """

  offset: float  # Raw objective mapped to `low`... see `apply`.
  scale: float  # Normalized units per raw unit, > 0.
  low: float
  high: float

  @classmethod
  def fit(cls, y, low: float = 0.2, high: float = 0.8) -> "YNormalizer":
    """Fits the map on finite history objectives y float [n] (n >= 0)."""
    y = np.asarray(y, np.float64)
    if y.size and not np.all(np.isfinite(y)):
      raise ValueError(f"Objectives must be finite to normalize, got {y[~np.isfinite(y)][:3]}.")
    if y.size == 0:
      return cls(offset=0.0, scale=1.0, low=low, high=high)
    lo, hi = float(y.min()), float(y.max())
    if hi > lo:
      return cls(offset=lo, scale=(high - low) / (hi - lo), low=low, high=high)
    scale = (high - low) / max(abs(lo), 1.0)
    return cls(offset=lo - 0.5 * (high - low) / scale, scale=scale, low=low, high=high)

  def apply(self, y) -> np.ndarray:
    return self.low + (np.asarray(y, np.float64) - self.offset) * self.scale

  def invert(self, v) -> np.ndarray:
    return self.offset + (np.asarray(v, np.float64) - self.low) / self.scale


def encode_y(y_norm, num_y_bins: int) -> np.ndarray:
  """int32 tokens of normalized objectives (clipped into [0, 1] first)."""
  return quantize(y_norm, num_y_bins)
