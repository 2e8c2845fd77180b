"""Resolution of the y pipeline near the best value on plateau-like contexts."""
import json, numpy as np
from optformer.model import ynorm, bar
borders = np.asarray(json.load(open("checkpoints/optformer-v2/config.json"))["model"]["borders"])
w = np.diff(borders)
for zc in (0.0, 1.0, 1.5, 2.0, 2.5, 3.0):
  i = bar.bin_index(zc, borders); print(f"z={zc}: bar {i} width {w[i]:.4f}")
rng = np.random.default_rng(0)
def case(n, top_share, rel, label):
  # n context values: a share on a plateau at the top whose values differ by `rel` of the spread, the rest spread below.
  k = max(2, int(n * top_share))
  spread = 1.0
  below = -rng.exponential(1.0, n - k) - 0.01
  top = rel * spread * np.arange(k)[::-1] / max(k - 1, 1)  # k distinct values within rel * spread.
  y = np.concatenate([top, below])
  t = ynorm.YTransform.fit(y)
  z = t.apply(np.sort(top)[::-1])
  bars = bar.bin_index(z, borders)
  print(f"{label}: n={n}, {k} plateau values within {rel:g} of the spread: lam={t.lam:.2f}, z of best {z[0]:.4f}, "
        f"z range of plateau {z[0]-z[-1]:.2e}, distinct bars {len(np.unique(bars))} (bar width there {w[bars[0]]:.4f})")
  return z[0] - z[-1]
for n in (10, 40, 100):
  for share in (0.3, 0.6):
    for rel in (1e-4, 1e-3, 1e-2):
      case(n, share, rel, "plateau")
