"""Matplotlib figures of explanations. matplotlib is imported here, inside each function, never by `import optformer`.

Each function draws on `ax`, or on a new `matplotlib.figure.Figure` when
None (made without pyplot, so no GUI backend is touched; save it with
`fig.savefig(path)`), and returns the Figure. Install matplotlib with
`pip install optformer[explain]`.
"""

from __future__ import annotations

import numpy as np

from optformer.explain.games import Importance
from optformer.explain.pdp import PartialDependence

MAX_ICE = 50  # ICE curves drawn at most (the first ones).


def _axes(ax, figsize):
  """(figure, axes): those of `ax`, or a new pyplot-free Figure (no backend or window involved)."""
  if ax is not None:
    return ax.figure, ax
  from matplotlib.figure import Figure

  fig = Figure(figsize=figsize, layout="constrained")
  return fig, fig.subplots()


def _log_axis(pd: PartialDependence, space, i: int) -> bool:
  p = space[pd.params[i]] if space is not None else None
  return bool(getattr(p, "log", False))


def plot_pdp(pd: PartialDependence, *, space=None, ax=None, ice: bool = True, objective: str = "objective"):
  """1-D PDP: the partial dependence with a +-2 std band and the ICE curves; bars for a categorical parameter.

  Args:
    pd: a one-parameter PartialDependence.
    space: the SearchSpace, to draw a log-scale parameter on a log axis.
    ax: matplotlib Axes to draw on, or None for a new figure.
    ice: draw the ICE curves (up to MAX_ICE).
    objective: the y-axis label.

  Raises:
    ValueError: a two-parameter PartialDependence (use plot_pdp_2d).
  """
  if len(pd.params) != 1:
    raise ValueError(f"plot_pdp draws one parameter; got the pair {pd.params} (use plot_pdp_2d).")
  fig, ax = _axes(ax, (4.5, 3.2))
  if pd.grid.dtype == object:  # Categorical: one point per category with a 2-std error bar.
    x = np.arange(len(pd.grid))
    if ice:
      ax.plot(np.tile(x, (min(len(pd.ice), MAX_ICE), 1)).T, pd.ice[:MAX_ICE].T, "o", color="0.6", alpha=0.3, ms=3)
    ax.errorbar(x, pd.mean, yerr=2 * pd.std, fmt="o", color="C0", capsize=4, label="partial dependence ± 2 std")
    ax.set_xticks(x, [str(c) for c in pd.grid])
  else:
    if ice:
      ax.plot(pd.grid, pd.ice[:MAX_ICE].T, color="0.6", alpha=0.3, lw=0.8)
    ax.fill_between(pd.grid, pd.mean - 2 * pd.std, pd.mean + 2 * pd.std, color="C0", alpha=0.2, label="± 2 std")
    ax.plot(pd.grid, pd.mean, color="C0", lw=2, label="partial dependence")
    if _log_axis(pd, space, 0):
      ax.set_xscale("log")
  ax.set_xlabel(pd.params[0])
  ax.set_ylabel(f"predicted {objective}")
  ax.legend(fontsize="small")
  return fig


def plot_pdp_2d(pd: PartialDependence, *, space=None, ax=None, objective: str = "objective"):
  """2-D PDP: the partial dependence of a pair as a heatmap (grid index axes, labelled with the values).

  Raises:
    ValueError: a one-parameter PartialDependence (use plot_pdp).
  """
  if len(pd.params) != 2:
    raise ValueError(f"plot_pdp_2d draws a pair; got {pd.params} (use plot_pdp).")
  fig, ax = _axes(ax, (4.8, 3.8))
  image = ax.imshow(pd.mean.T, origin="lower", aspect="auto", cmap="viridis")
  fig.colorbar(image, ax=ax, label=f"predicted {objective}")
  for axis, i in ((ax.set_xticks, 0), (ax.set_yticks, 1)):
    g = pd.grid[i]
    step = max(1, len(g) // 5)
    ticks = np.arange(0, len(g), step)
    labels = [str(g[t]) if g.dtype == object else f"{g[t]:.3g}" for t in ticks]
    axis(ticks, labels)
  ax.set_xlabel(pd.params[0])
  ax.set_ylabel(pd.params[1])
  return fig


def plot_importance(imp: Importance, *, ax=None):
  """Horizontal bars of the importance values, the most important on top."""
  fig, ax = _axes(ax, (4.5, 0.4 * len(imp.values) + 1.2))
  order = imp.ranking()[::-1]
  values = [imp.values[n] for n in order]
  ax.barh(order, values, color=["C0" if v >= 0 else "C3" for v in values])
  ax.axvline(0.0, color="k", lw=0.8)
  unit = "share of variance" if imp.game == "variance" else "Shapley value (gain, objective units)"
  ax.set_xlabel(unit)
  ax.set_title(f"{imp.game} importance", fontsize="medium")
  return fig


def plot_interactions(imp: Importance, *, ax=None):
  """Heatmap of the pairwise interactions (symmetric; the diagonal left blank), annotated with the values up to D = 6.

  Raises:
    ValueError: an Importance without interactions (variance_importance without pairs=True).
  """
  if not imp.interactions:
    raise ValueError(f"The {imp.game!r} importance has no interactions to draw (variance_importance(pairs=True) has).")
  names = list(imp.values)
  d = len(names)
  m = np.full((d, d), np.nan)
  for (a, b), v in imp.interactions.items():
    m[names.index(a), names.index(b)] = m[names.index(b), names.index(a)] = v
  fig, ax = _axes(ax, (0.6 * d + 2.8, 0.6 * d + 1.6))
  lim = float(np.nanmax(np.abs(m))) or 1.0
  signed = imp.game != "variance"
  image = ax.imshow(m, cmap="RdBu_r" if signed else "viridis", vmin=-lim if signed else 0.0, vmax=lim)
  fig.colorbar(image, ax=ax, label="Shapley interaction (gain)" if signed else "share of variance")
  if d <= 6:  # Beyond that the numbers overlap.
    for i in range(d):
      for j in range(d):
        if i != j:
          ax.text(j, i, f"{m[i, j]:.2g}", ha="center", va="center", fontsize="x-small")
  ax.set_xticks(range(d), names, rotation=45, ha="right")
  ax.set_yticks(range(d), names)
  ax.set_title(f"{imp.game} interactions", fontsize="medium")
  return fig
