"""Where the v2 train step's time goes: a jax.profiler trace of the compiled step, per-op times grouped by model part.

  python docs/throughput_profile.py [LENGTH]     (default 128 points; prints a table)

Times 3 steps of one batch of v2's config (snapshots/v2/config.json) under jax.profiler and groups each XLA
op's time by the innermost function of optformer/model or training/ that its HLO metadata names (matmuls
that XLA fused without that metadata are "other(dot_general)"). Op times are summed over the CPU's threads
and include time a thread was descheduled, so on a loaded machine read the shares, not the milliseconds.
"""

import collections
import gzip
import json
import pathlib
import re
import sys
import tempfile

import jax
import numpy as np

from optformer.model.network import SurrogateBatch
from optformer.training.train import PFNTrainConfig, PFNTrainer

PARTS = (("slot_variogram", "variograms"), ("_variogram_sums", "variograms"), ("pair_distance", "distance bias"),
         ("_biases", "distance bias"), ("_slot_product", "distance bias"), ("_slot_major", "distance bias"),
         ("relevance", "relevance MLP"), ("_slot_values", "slot encoder"), ("embed_x", "slot encoder"),
         ("slot_embedding", "slot encoder"), ("embed_y", "objective embedding"))


def _frames(hlo: str):
  """op name -> (the file:function:line chain of its stack frame, innermost first; its op_name)."""
  sec, files, funcs, locs, frames = None, {}, {}, {}, {}
  for line in hlo.splitlines():
    if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
      sec = line
    elif sec == "FileNames" and (m := re.match(r'(\d+) "(.*)"', line)):
      files[int(m[1])] = m[2].split("/")[-1]
    elif sec == "FunctionNames" and (m := re.match(r'(\d+) "(.*)"', line)):
      funcs[int(m[1])] = m[2]
    elif sec == "FileLocations" and (m := re.match(r"(\d+) \{file_name_id=(\d+) function_name_id=(\d+) line=(\d+)", line)):
      locs[int(m[1])] = (files[int(m[2])], funcs[int(m[3])], int(m[4]))
    elif sec == "StackFrames" and (m := re.match(r"(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)", line)):
      frames[int(m[1])] = (int(m[2]), int(m[3]))

  def chain(fid):
    out = []
    while fid in frames and len(out) < 64:
      loc, parent = frames[fid]
      out.append(locs[loc])
      if parent == fid:
        break
      fid = parent
    return out

  ops = {}
  for line in hlo.splitlines():
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
    if m and m[1] not in ops:
      sf, on = re.search(r"stack_frame_id=(\d+)", line), re.search(r'op_name="([^"]*)"', line)
      ops[m[1]] = (chain(int(sf[1])) if sf else [], on[1] if on else "")
  return ops


def _part(chain, op_name):
  mine = [c for c in chain if c[0] in ("network.py", "features.py", "train.py", "step.py")]
  names = [c[1] for c in mine]
  if not mine:
    return "other(" + op_name.split("/")[-1][:24] + ")"
  if "optimizer_step" in names and "loss_fn" not in names:
    return "optimizer update"
  for key, part in PARTS:
    if any(key in n for n in names):
      return part
  if "Block.__call__" in names:
    return f"block, network.py line {mine[names.index('Block.__call__')][2]}"
  return f"{names[0]} line {mine[0][2]}"


def main(length: int = 128, steps: int = 3):
  cfg = PFNTrainConfig.from_dict(json.loads(pathlib.Path("snapshots/v2/config.json").read_text()))
  with tempfile.TemporaryDirectory() as tmp:
    tr = PFNTrainer(cfg, pathlib.Path(tmp) / "run")
    while True:
      b, t = next(tr.batches)
      if np.asarray(b.x).shape[1] == length:
        break
    batch, targets = SurrogateBatch(*map(jax.device_put, map(np.asarray, b))), jax.tree.map(jax.device_put, t)
    p, o = tr.params, tr.opt_state
    ops = _frames(tr.train_step.lower(p, o, batch, targets).compile().as_text())
    for _ in range(2):
      p, o, m = tr.train_step(p, o, batch, targets)
      jax.block_until_ready(m)
    with jax.profiler.trace(f"{tmp}/trace", create_perfetto_trace=True):
      for _ in range(steps):
        p, o, m = tr.train_step(p, o, batch, targets)
        jax.block_until_ready(m)
    trace = json.load(gzip.open(next(pathlib.Path(tmp, "trace").rglob("perfetto_trace.json.gz"))))
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  total, backward = collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("name") in ops and not e["name"].startswith("while"):
      chain, op_name = ops[e["name"]]
      part = _part(chain, op_name)
      total[part] += e["dur"]
      backward[part] += e["dur"] * ("transpose(" in op_name)
  all_ = sum(total.values())
  print(f"{length} points: op time {all_ / steps / 1e3:.0f} ms per step (summed over threads)")
  print("| part | share | of it backward |\n| --- | --- | --- |")
  for part, v in total.most_common(14):
    print(f"| {part} | {100 * v / all_:.1f} % | {100 * backward[part] / max(v, 1):.0f} % |")


if __name__ == "__main__":
  main(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
