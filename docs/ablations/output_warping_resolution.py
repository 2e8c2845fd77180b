"""Resolution near the best value under each output warping (docs/output_warping.md): the synthetic plateau
contexts of docs/ablations/prior_families_yres_synthetic.py, warped, then through the model's y map."""
import json

import numpy as np

from optformer import output_warping
from optformer.model import bar, ynorm

borders = np.asarray(json.load(open("checkpoints/optformer-v2/config.json"))["model"]["borders"])
rng = np.random.default_rng(0)
print("| n | plateau share | plateau within | " + " | ".join(f"{w}: z range, bars" for w in output_warping.WARPINGS) + " |")
print("|---|---|---|" + "---|" * len(output_warping.WARPINGS))
for n in (10, 40, 100):
  for share in (0.3, 0.6):
    for rel in (1e-4, 1e-3, 1e-2):
      k = max(2, int(n * share))  # k plateau values within rel of the spread at the top, the rest exponentially below.
      y = np.concatenate([rel * np.arange(k)[::-1] / (k - 1), -rng.exponential(1.0, n - k) - 0.01])
      cells = []
      for warping in output_warping.WARPINGS:
        v = output_warping.warp(y, warping)
        z = ynorm.YTransform.fit(v).apply(v[:k])
        cells.append(f"{z[0] - z[-1]:.1e}, {len(np.unique(bar.bin_index(z, borders)))}")
      print(f"| {n} | {share:.0%} | {rel:g} | " + " | ".join(cells) + " |")
