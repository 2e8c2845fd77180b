"""Explanations of a study from the in-context surrogate: partial dependence and hyperparameter importance.

Public API (re-exports only; see each module):

* `partial_dependence(study, param_or_pair, grid=None) -> PartialDependence`
  (pdp.py): PDP with uncertainty and ICE curves (Moosbauer et al., NeurIPS 2021).
* `importance(study, game="ablation" | "tunability") -> Importance`
  (games.py): HyperSHAP's games, exact Shapley values and pairwise
  interactions over all 2^D coalitions (shapley.py).
* `variance_importance(study) -> Importance`: a fANOVA-style variance view.
* `plot_pdp`, `plot_pdp_2d`, `plot_importance`, `plot_interactions`
  (plots.py; matplotlib is imported only when one is called).
* `explain_study(study, out_dir)` (report.py): all of the above, as one
  JSON-able dict and PNG files (what `optformer explain` runs).

`study` is an optformer.Optimizer, a fitted optformer.Surrogate or an
optuna.Study. Nothing here imports matplotlib or optuna on import.
"""

from optformer.explain.games import GAMES, Importance, importance, variance_importance
from optformer.explain.pdp import PartialDependence, partial_dependence
from optformer.explain.plots import plot_importance, plot_interactions, plot_pdp, plot_pdp_2d
from optformer.explain.report import explain_study

__all__ = [
    "GAMES", "Importance", "PartialDependence", "explain_study", "importance", "partial_dependence", "plot_importance",
    "plot_interactions", "plot_pdp", "plot_pdp_2d", "variance_importance",
]
