"""A/B of the v2 train step: model code at a git revision vs the working tree, in one process, alternating.

  python docs/throughput_ab.py REV STEPS [LENGTHS]     e.g. python docs/throughput_ab.py e6964b6 8 64,128

Loads optformer/model/{network,features}.py as of REV into their own modules, builds both train steps on v2's
config (snapshots/v2/config.json) with v2's weights (checkpoints/optformer-v2, its policy head dropped), prints
the loss and the largest gradient difference of the two codes on each sequence length's first batch, then times
STEPS steps of each (batches of the given LENGTHS only, if given) alternately, the order flipped every batch, and
prints the medians of CPU seconds (time.process_time: the shared machine's load changes wall time more) and wall
seconds per length, with their ratios old / new. Run from the repository root.
"""
import json, pathlib, subprocess, sys, tempfile, time, types
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from optformer.model.network import SurrogateBatch
from optformer.training.train import PFNTrainConfig, PFNTrainer, loss_fn, make_train_step

rev, steps = sys.argv[1], int(sys.argv[2])
lengths = [int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else None

def load_old(rev):
  show = lambda f: subprocess.run(["git", "show", f"{rev}:{f}"], capture_output=True, text=True, check=True).stdout
  feats = types.ModuleType("old_features"); sys.modules["old_features"] = feats
  exec(compile(show("optformer/model/features.py"), "old_features.py", "exec"), feats.__dict__)
  net = types.ModuleType("old_network"); sys.modules["old_network"] = net
  src = show("optformer/model/network.py").replace("from optformer.model.features import", "from old_features import")
  exec(compile(src, "old_network.py", "exec"), net.__dict__)
  return net

old = load_old(rev)
cfg = PFNTrainConfig.from_dict(json.loads(pathlib.Path("snapshots/v2/config.json").read_text()))
with tempfile.TemporaryDirectory() as tmp:
  tr = PFNTrainer(cfg, pathlib.Path(tmp) / "run")
  from optformer import checkpoint
  loaded = nnx.to_pure_dict(nnx.state(checkpoint.load_pfn("checkpoints/optformer-v2")))  # v2's weights (its policy head dropped).
  tr.params = jax.tree.map(jnp.asarray, {k: loaded[k] for k in tr.params})
  tr.opt_state = tr.tx.init(tr.params)
  g_old = nnx.split(old.create_model(cfg.model, 0))[0]
  step_new, step_old = tr.train_step, make_train_step(g_old, tr.tx, tr.mesh)
  put = lambda a: jax.device_put(np.asarray(a))
  batches = []
  while len(batches) < steps:
    b, t = next(tr.batches)
    if lengths is None or np.asarray(b.x).shape[1] in lengths:
      batches.append((SurrogateBatch(*map(put, b)), jax.tree.map(put, t)))
  # Equivalence on the v2 weights: loss and gradients of both codes on each length's first batch.
  seen = set()
  for batch, targets in batches:
    n = batch.x.shape[1]
    if n in seen: continue
    seen.add(n)
    vg = lambda g: jax.jit(jax.value_and_grad(lambda p: loss_fn(nnx.merge(g, p), batch, targets)[0]))(tr.params)
    (l0, g0), (l1, g1) = vg(g_old), vg(tr.graphdef)
    gd = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)))
    gm = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(g0))
    print(f"N={n}: loss old {float(l0):.7f} new {float(l1):.7f}; max |grad diff| {gd:.2e} (max |grad| {gm:.2e})", flush=True)
  state = {"old": (tr.params, tr.opt_state), "new": jax.tree.map(jnp.copy, (tr.params, tr.opt_state))}
  fns = {"old": step_old, "new": step_new}
  for batch, targets in batches:  # Compile and warm both.
    for k in fns:
      p, o, m = fns[k](*state[k], batch, targets); jax.block_until_ready(m); state[k] = (p, o)
  cpu = {k: {} for k in fns}; wall = {k: {} for k in fns}
  for i, (batch, targets) in enumerate(batches):
    n = batch.x.shape[1]
    for k in (("old", "new") if i % 2 == 0 else ("new", "old")):
      t, c = time.perf_counter(), time.process_time()
      p, o, m = fns[k](*state[k], batch, targets); jax.block_until_ready((p, m)); state[k] = (p, o)
      cpu[k].setdefault(n, []).append(time.process_time() - c); wall[k].setdefault(n, []).append(time.perf_counter() - t)
  out = {}
  for n in sorted(cpu["old"]):
    r = {k: (float(np.median(cpu[k][n])), float(np.median(wall[k][n]))) for k in fns}
    out[n] = r
    print(f"N={n} ({len(cpu['old'][n])} steps): median CPU s old {r['old'][0]:.3f} new {r['new'][0]:.3f} "
          f"(x{r['old'][0] / r['new'][0]:.2f}); wall old {r['old'][1]:.3f} new {r['new'][1]:.3f} (x{r['old'][1] / r['new'][1]:.2f})")
  tot = {k: sum(sum(v) for v in cpu[k].values()) for k in fns}
  totw = {k: sum(sum(v) for v in wall[k].values()) for k in fns}
  print(f"all: CPU s old {tot['old']:.2f} new {tot['new']:.2f} (x{tot['old'] / tot['new']:.2f}); wall old {totw['old']:.2f} new {totw['new']:.2f} (x{totw['old'] / totw['new']:.2f})")
