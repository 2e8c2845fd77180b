"""Exact Shapley values and pairwise Shapley interactions of a game given on all 2^D coalitions.

A game is v: float [2^D], v[mask] the value of the coalition whose members
are the set bits of `mask` (bit i = player i). With the Moebius transform
(Harsanyi dividends) a(T) = sum_{U subset T} (-1)^{|T|-|U|} v(U):

  Shapley value         phi_i  = sum_{T contains i} a(T) / |T|              (Shapley 1953)
  Shapley interaction   I_ij   = sum_{T contains i, j} a(T) / (|T| - 1)      (Grabisch & Roubens 1999)

Both are exact, O(D 2^D); sum_i phi_i = v(all) - v(empty) (efficiency).
"""

from __future__ import annotations

import numpy as np

MAX_PLAYERS = 16  # 2^16 coalitions; beyond that an exact game is too large to score.


def coalition_sizes(num_players: int) -> np.ndarray:
  """int64 [2^D]: |T| of every coalition mask."""
  masks = np.arange(2**num_players)
  return np.array([bin(m).count("1") for m in masks], np.int64)


def moebius(v_C: np.ndarray) -> np.ndarray:
  """float64 [2^D]: the Moebius transform a of a game v float [2^D] (fast subset-sum inversion)."""
  a_C = np.array(v_C, np.float64)
  num_players = int(np.log2(len(a_C)))
  if 2**num_players != len(a_C):
    raise ValueError(f"A game needs 2^D values, got {len(a_C)}.")
  masks = np.arange(len(a_C))
  for i in range(num_players):
    has = (masks >> i) & 1 == 1
    a_C[has] -= a_C[masks[has] ^ (1 << i)]
  return a_C


def shapley_values(v_C: np.ndarray) -> np.ndarray:
  """float64 [D]: the exact Shapley value of each player."""
  a_C = moebius(v_C)
  num_players = int(np.log2(len(a_C)))
  size_C, masks = coalition_sizes(num_players), np.arange(len(a_C))
  return np.array([np.sum(a_C[has] / size_C[has]) for has in ((masks >> i) & 1 == 1 for i in range(num_players))])


def shapley_interactions(v_C: np.ndarray) -> np.ndarray:
  """float64 [D, D]: the exact pairwise Shapley interaction index I_ij (symmetric; zero diagonal)."""
  a_C = moebius(v_C)
  num_players = int(np.log2(len(a_C)))
  size_C, masks = coalition_sizes(num_players), np.arange(len(a_C))
  out = np.zeros((num_players, num_players))
  for i in range(num_players):
    for j in range(i + 1, num_players):
      has = ((masks >> i) & 1 == 1) & ((masks >> j) & 1 == 1)
      out[i, j] = out[j, i] = np.sum(a_C[has] / (size_C[has] - 1))
  return out
