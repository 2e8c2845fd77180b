"""On HPO-like plateau tasks: do the best context values land in distinct bars (v2's 1000, cpu-small's 128)?"""
import dataclasses, json, numpy as np, jax
from optformer.data_gen import families, prior as P
from optformer.data_gen.examples import example_words
from optformer.model import ynorm, bar
b1000 = np.asarray(json.load(open("checkpoints/optformer-v2/config.json"))["model"]["borders"])
cfg = dataclasses.replace(P.PriorConfig.v2(), p_hpo=1.0, p_family_residual=0.0)
tasks, fts = families.sample_family_tasks(cfg, example_words(5, "validation", np.arange(256)))
idx = [i for i in range(256) if int(fts.shape[i]) == 1][:48]
rows = []
for n in (20, 40, 100):
  rel, d1000, top_in_plateau = [], [], []
  for j, i in enumerate(idx):
    t = jax.tree.map(lambda v: v[i], tasks); ft = jax.tree.map(lambda v: v[i], fts)
    x = P.sample_valid(jax.random.key(j), t.kinds, t.num_values, n)
    z_lat = P.latent_one(t, x)
    f = np.asarray(families.evaluate_one(ft, t, z_lat, P.evaluate_latent_one(t, z_lat)), np.float64)
    q = np.asarray(families._hpo_loss(ft, z_lat)); top = np.argsort(-f)[:5]
    top_in_plateau.append(np.mean(q[top] < float(ft.plateau[0])))
    tr = ynorm.YTransform.fit(f)
    zt = tr.apply(f[top])
    rel.append((f[top[0]] - f[top[-1]]) / (np.quantile(f, 0.9) - np.quantile(f, 0.1)))
    d1000.append(len(np.unique(bar.bin_index(zt, b1000))))
  rel = np.asarray(rel); d1000 = np.asarray(d1000)
  print(f"context {n}: {len(idx)} plateau tasks; top-5 in the plateau {np.mean(top_in_plateau):.2f}; "
        f"(best - 5th best) / (q90 - q10) median {np.median(rel):.2e}; distinct v2 bars among the top 5: "
        f"mean {d1000.mean():.2f}, share with 1 bar {np.mean(d1000 == 1):.2f}, with 5 bars {np.mean(d1000 == 5):.2f}")
