"""Every explanation of a study at once: the numbers as one JSON-able dict, and the figures as PNG files.

`explain_study` is what `optformer explain` runs: partial dependence of
every parameter, a 2-D partial dependence of the pair with the strongest
tunability interaction, both HyperSHAP games, and the variance view, with
the seconds each took.
"""

from __future__ import annotations

import pathlib
import re
import time

from optformer.explain import games as importance_lib
from optformer.explain import pdp as pdp_lib
from optformer.explain import plots
from optformer.explain import study as study_lib


def _slug(name: str) -> str:
  """A parameter name as a file-name fragment."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def explain_study(study, out_dir=None, *, objective: str = "objective") -> dict:
  """Computes all explanations; with `out_dir`, also writes the figures there.

  Args:
    study: an optformer.Optimizer, a fitted optformer.Surrogate or an optuna.Study.
    out_dir: an existing directory for the PNGs (needs matplotlib), or None.
    objective: the objective's name on the figures' axes.

  Returns:
    {"goal", "num_trials", "importance": {"ablation", "tunability",
    "variance"} (Importance.to_json()), "partial_dependence": {name:
    PartialDependence.to_json()}, "partial_dependence_2d": that of the pair,
    "seconds": {what: wall seconds}, "figures": [file names]}.

  Raises:
    As `importance` and `partial_dependence`.
  """
  view = study_lib.as_study(study)
  seconds, results = {}, {}

  def timed(key, fn, *args, **kwargs):
    start = time.perf_counter()
    results[key] = fn(*args, **kwargs)
    seconds[key] = round(time.perf_counter() - start, 3)
    return results[key]

  for game in importance_lib.GAMES:
    timed(game, importance_lib.importance, view, game)
  timed("variance", importance_lib.variance_importance, view)
  pdps = {n: timed(f"pdp:{n}", pdp_lib.partial_dependence, view, n) for n in view.space.names}
  pair = None
  if len(view.space) >= 2:
    inter = results["tunability"].interactions
    pair = max(inter, key=lambda k: abs(inter[k]))
    timed("pdp2d", pdp_lib.partial_dependence, view, pair)
  figures = []
  if out_dir is not None:
    out = pathlib.Path(out_dir)

    def save(fig, name):
      fig.savefig(out / name, dpi=120)
      figures.append(name)

    for n, pd in pdps.items():
      save(plots.plot_pdp(pd, space=view.space, objective=objective), f"pdp_{_slug(n)}.png")
    if pair is not None:
      save(plots.plot_pdp_2d(results["pdp2d"], space=view.space, objective=objective),
           f"pdp2d_{_slug(pair[0])}_{_slug(pair[1])}.png")
    for key in (*importance_lib.GAMES, "variance"):
      save(plots.plot_importance(results[key]), f"importance_{key}.png")
    for game in importance_lib.GAMES:
      save(plots.plot_interactions(results[game]), f"interactions_{game}.png")
  return {
      "goal": view.goal, "num_trials": len(view.configs),
      "importance": {k: results[k].to_json() for k in (*importance_lib.GAMES, "variance")},
      "partial_dependence": {n: pd.to_json() for n, pd in pdps.items()},
      "partial_dependence_2d": results["pdp2d"].to_json() if pair is not None else None,
      "seconds": seconds, "figures": figures,
  }
