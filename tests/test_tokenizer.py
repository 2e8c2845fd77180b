"""Tokenizer: value -> token -> value round trips, valid-token masks, objective normalization."""

import numpy as np
import pytest

from optformer import search_space as ss
from optformer import tokenizer as tk
from optformer.search_space import Categorical, Discrete, Float, Int, SearchSpace

CFG = tk.TokenizerConfig.tiny()  # Q = 32 value bins, D_max = 4 slots.
Q = CFG.num_x_bins


def _round_trip(param, value):
  """(token, decoded value) of `value` as the only parameter of a space."""
  space = SearchSpace([param])
  enc = tk.encode_space(space, CFG)
  tokens_1xD = tk.encode_configs([{param.name: value}], space, CFG)
  assert tokens_1xD.shape == (1, CFG.max_params) and tokens_1xD.dtype == np.int32
  token = int(tokens_1xD[0, 0])
  assert enc.valid[0, token], f"{value!r} encodes to token {token}, not valid for {param}"
  np.testing.assert_array_equal(tokens_1xD[0, 1:], CFG.x_pad)  # unused slots are PAD
  return token, tk.decode_x(tokens_1xD[0], space, enc, Q)[param.name]


@pytest.mark.parametrize(
    "param, values",
    [
        (Int("n", 0, 10), range(0, 11)),
        (Int("n", -20, 11), range(-20, 12)),  # exactly Q levels
        (Int("n", 1, 5, log=True), range(1, 6)),
        (Int("n", 1, 32, log=True), range(1, 33)),  # Q levels on a log scale
        (Int("n", 16, 40, log=True), range(16, 41)),
        (Discrete("d", (0.001, 0.01, 0.1, 0.5, 1.0)), (0.001, 0.01, 0.1, 0.5, 1.0)),
        (Discrete("d", tuple(range(0, 64, 2))), range(0, 64, 2)),  # Q values
        (Categorical("c", ("adam", "sgd", "rmsprop")), ("adam", "sgd", "rmsprop")),
        (Categorical("c", (7, 2.5, None, "x")), (7, 2.5, None, "x")),
        (Categorical("c", tuple(f"c{k}" for k in range(Q))), tuple(f"c{k}" for k in range(Q))),
    ],
    ids=["int", "int-Q-levels", "log-int-1-5", "log-int-1-32", "log-int-16-40", "discrete-float", "discrete-Q-ints",
         "categorical", "categorical-mixed-types", "categorical-Q-choices"],
)
def test_exact_round_trip_for_ordinal_and_categorical(param, values):
  tokens = []
  for v in values:
    token, back = _round_trip(param, v)
    assert back == v and type(back) is type(v), (v, token, back)
    tokens.append(token)
  assert len(set(tokens)) == len(tokens)  # distinct values, distinct tokens


@pytest.mark.parametrize(
    "param",
    [Float("x", -3.0, 5.0), Float("x", 1e-5, 1e2, log=True), Float("x", 0.5, 0.5000001)],
    ids=["linear", "log", "narrow"],
)
def test_float_round_trip_within_half_a_bin(param):
  values = [param.low, param.high, param.from_unit(0.5), param.from_unit(1 / Q), param.from_unit(1 - 1e-9)]
  values += [param.from_unit(u) for u in np.random.default_rng(0).random(40)]
  for v in values:
    token, back = _round_trip(param, v)
    assert type(back) is float and param.low <= back <= param.high
    assert abs(param.to_unit(back) - param.to_unit(v)) <= 0.5 / Q + 1e-9, (v, token, back)
  assert _round_trip(param, param.low)[0] == 0 and _round_trip(param, param.high)[0] == Q - 1


def test_quantize_and_bin_centers_agree():
  u = np.concatenate([np.linspace(0, 1, 101), [-0.2, 1.3]])
  tokens = tk.quantize(u, Q)
  assert tokens.dtype == np.int32 and tokens.min() == 0 and tokens.max() == Q - 1
  assert np.all(np.diff(tokens[:101]) >= 0)
  inside = u[:101]
  assert np.all(np.abs(tk.bin_centers(Q)[tokens[:101]] - inside) <= 0.5 / Q + 1e-12)


# -- Valid-token masks -------------------------------------------------------------


def test_valid_masks_per_kind():
  space = SearchSpace([Int("n", 3, 9), Categorical("c", ("a", "b", "c")), Float("x", 0.0, 1.0)])
  enc = tk.encode_space(space, CFG)
  assert enc.valid.shape == (CFG.max_params, Q) and enc.valid.dtype == bool
  np.testing.assert_array_equal(enc.kinds, [ss.KIND_ORDINAL, ss.KIND_CATEGORICAL, ss.KIND_FLOAT, ss.KIND_UNUSED])
  np.testing.assert_array_equal(enc.num_values, [7, 3, 0, 0])
  # Int: the valid bins are exactly the tokens of its 7 levels.
  level_tokens = {int(tk.encode_configs([{"n": v, "c": "a", "x": 0.0}], space, CFG)[0, 0]) for v in range(3, 10)}
  assert set(np.flatnonzero(enc.valid[0]).tolist()) == level_tokens and len(level_tokens) == 7
  # Categorical: the first K tokens.
  np.testing.assert_array_equal(enc.valid[1], np.arange(Q) < 3)
  # Float: every bin.
  assert enc.valid[2].all()
  # Unused slot: a single dummy token, so decoding it is deterministic.
  assert enc.valid[3].sum() == 1


def test_int_with_more_levels_than_bins_allows_every_bin_and_decodes_in_range():
  space = SearchSpace([Int("n", 0, 10 * Q)])
  enc = tk.encode_space(space, CFG)
  assert enc.valid[0].all()
  decoded = [tk.decode_x([b, CFG.x_pad, CFG.x_pad, CFG.x_pad], space, enc, Q)["n"] for b in range(Q)]
  assert all(type(v) is int and 0 <= v <= 10 * Q for v in decoded)
  assert decoded == sorted(decoded) and len(set(decoded)) == Q


def test_decode_rejects_invalid_token():
  space = SearchSpace([Categorical("c", ("a", "b"))])
  enc = tk.encode_space(space, CFG)
  with pytest.raises(ValueError, match="Token 2 .*'c'"):
    tk.decode_x([2, 0, 0, 0], space, enc, Q)
  with pytest.raises(ValueError, match=f"Token {CFG.x_pad} "):
    tk.decode_x([CFG.x_pad, 0, 0, 0], space, enc, Q)


def test_too_many_parameters_raises_naming_the_count():
  space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(CFG.max_params + 1)])
  with pytest.raises(ValueError, match=rf"{CFG.max_params + 1} parameters.*at most {CFG.max_params}"):
    tk.encode_space(space, CFG)


def test_too_many_categories_raises():
  space = SearchSpace([Categorical("c", tuple(range(Q + 1)))])
  with pytest.raises(ValueError, match=rf"{Q + 1} choices"):
    tk.encode_space(space, CFG)


# -- Objectives ----------------------------------------------------------------------


def test_y_normalizer_maps_worst_to_low_and_best_to_high_and_inverts():
  y = np.random.default_rng(0).normal(3.0, 10.0, size=25)
  norm = tk.YNormalizer.fit(y, CFG.y_low, CFG.y_high)
  v = norm.apply(y)
  assert v[np.argmin(y)] == pytest.approx(CFG.y_low) and v[np.argmax(y)] == pytest.approx(CFG.y_high)
  assert np.all(np.diff(v[np.argsort(y)]) > 0)  # order preserving
  np.testing.assert_allclose(norm.invert(v), y, rtol=1e-12, atol=1e-12)
  assert norm.scale > 0


@pytest.mark.parametrize("y", [[4.2], [-1e6, -1e6, -1e6], [0.0], [1e-9]])
def test_y_normalizer_single_value_lands_at_midpoint(y):
  norm = tk.YNormalizer.fit(y, CFG.y_low, CFG.y_high)
  np.testing.assert_allclose(norm.apply(y), 0.5 * (CFG.y_low + CFG.y_high))
  assert norm.scale > 0 and np.isfinite(norm.scale)
  np.testing.assert_allclose(norm.invert(norm.apply([y[0] + 1.0])), [y[0] + 1.0])


def test_y_normalizer_empty_history_is_invertible():
  norm = tk.YNormalizer.fit([])
  np.testing.assert_allclose(norm.invert(norm.apply([0.3, -2.0])), [0.3, -2.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_y_normalizer_rejects_non_finite(bad):
  with pytest.raises(ValueError, match="finite"):
    tk.YNormalizer.fit([1.0, bad, 2.0])


def test_encode_y_clips_and_bins():
  y_bins = CFG.num_y_bins
  v = np.array([-0.5, 0.0, 0.2, 0.5, 0.8, 1.0, 1.7])
  tokens = tk.encode_y(v, y_bins)
  assert tokens.dtype == np.int32
  assert tokens[0] == 0 and tokens[-1] == y_bins - 1 and tokens[-2] == y_bins - 1
  edges = CFG.y_edges()
  for u, b in zip(v[1:-1], tokens[1:-1]):
    assert edges[b] <= u <= edges[b + 1]  # the token's bin contains the value
  assert np.all(np.diff(tokens) >= 0)
  assert CFG.y_pad >= y_bins and CFG.y_missing >= y_bins and CFG.y_pad != CFG.y_missing
