"""Two local CPU processes reproduce the one-process run, and resume after one of them is killed.

  python -m optformer.training.smoke_distributed [--steps 40] [--out DIR]     (make smoke-distributed)

Three runs of the tiny config (global batch 4) through `optformer-train train`:
  1. one process (one CPU device);
  2. two processes (coordinator on 127.0.0.1, one CPU device each, 2 examples each per step), with process 1
     killed (SIGKILL) once the checkpoint of step `kill_after` is written; process 0, stuck in the gradient
     all-reduce, is then stopped too (a cluster scheduler restarts every process of a job), and both are
     started again with the same command: they resume at the latest checkpoint's step and data position.
Prints both final losses and the largest relative gap between the two loss curves (metrics.jsonl, every 5
steps), and a JSON summary as its last line. Exit status 1 when the curves differ by more than --rtol or the
second run did not resume from a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train_argv(workdir: pathlib.Path, steps: int) -> list[str]:
  return [sys.executable, "-m", "optformer.training", "train", "--workdir", str(workdir), "--preset", "tiny",
          "--steps", str(steps), "--warmup", "2", "--eval-every", str(10 * steps), "--no-progress"]


def _start(workdir, steps, log, port=None, process=None, env=None) -> subprocess.Popen:
  argv = _train_argv(workdir, steps)
  if port is not None:
    argv += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(process)]
  return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait(procs, timeout: float, what: str) -> None:
  deadline = time.time() + timeout
  for p in procs:
    rc = p.wait(timeout=max(1.0, deadline - time.time()))
    if rc != 0:
      raise RuntimeError(f"{what}: a process exited with status {rc} (its log is in the run's folder).")


def _checkpoints(workdir: pathlib.Path) -> list[int]:
  d = workdir / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def losses(workdir: pathlib.Path) -> dict[int, float]:
  """{step: loss} of the run's metrics.jsonl."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  return {r["step"]: r["loss"] for r in rows}


def run(out: pathlib.Path, steps: int = 40, kill_after: int = 10, timeout: float = 600.0) -> dict:
  """Runs the three runs in `out` (one folder each, with its log); returns the summary dict.

  Summary: one_process / two_processes ({step: loss}), final_loss_one / final_loss_two, max_rel_gap (over the
  steps both logged), killed_at_checkpoint (the latest checkpoint when process 1 was killed), resumed_from
  (the step the restarted processes resumed at, from process 0's log), process0_exited_alone (whether
  process 0 ended by itself within 10 s of its peer's death).

  Raises:
    RuntimeError: a run failed, or the two-process run finished before the kill (raise `steps`).
  """
  out.mkdir(parents=True, exist_ok=True)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  one, two = out / "one_process", out / "two_processes"
  with open(out / "one_process.log", "w") as log:
    _wait([_start(one, steps, log, env=env)], timeout, "one-process run")

  port = _free_port()
  logs = [open(out / f"two_processes.{i}.log", "w") for i in range(2)]
  procs = [_start(two, steps, logs[i], port, i, env) for i in range(2)]
  deadline = time.time() + timeout
  while not any(s >= kill_after for s in _checkpoints(two)):
    if any(p.poll() is not None for p in procs) or time.time() > deadline:
      for p in procs:
        p.kill()
      raise RuntimeError(f"the two-process run ended or timed out before its step-{kill_after} checkpoint "
                         f"(exit statuses {[p.poll() for p in procs]}).")
    time.sleep(0.1)
  procs[1].send_signal(signal.SIGKILL)
  killed_at = max(_checkpoints(two))
  procs[1].wait()
  try:
    procs[0].wait(timeout=10)
    alone = True
  except subprocess.TimeoutExpired:
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    alone = False
  if procs[0].returncode == 0:
    raise RuntimeError("process 0 finished the run before its peer was killed; raise `steps`.")

  for f in logs:
    f.write("\n--- restarted ---\n")
    f.flush()
  port = _free_port()
  _wait([_start(two, steps, logs[i], port, i, env) for i in range(2)], timeout, "resumed two-process run")
  for f in logs:
    f.close()
  resumed = None
  for line in (out / "two_processes.0.log").read_text().split("--- restarted ---")[-1].splitlines():
    if line.startswith("resuming "):
      resumed = int(line.split(" at step ")[1].split()[0])

  a, b = losses(one), losses(two)
  common = sorted(set(a) & set(b))
  gap = max(abs(a[s] - b[s]) / abs(a[s]) for s in common)
  return {"one_process": a, "two_processes": b, "final_loss_one": a[max(a)], "final_loss_two": b[max(b)],
          "max_rel_gap": gap, "steps_compared": len(common), "killed_at_checkpoint": killed_at,
          "resumed_from": resumed, "process0_exited_alone": alone}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--steps", type=int, default=40, help="steps of each run (the tiny config checkpoints every 5)")
  p.add_argument("--kill-after", type=int, default=10, help="kill process 1 once this step's checkpoint exists")
  p.add_argument("--rtol", type=float, default=1e-3, help="largest relative gap of the loss curves allowed")
  p.add_argument("--out", type=pathlib.Path, help="folder of the runs and their logs (default: a new temporary one)")
  args = p.parse_args(argv)
  out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="optformer-smoke-distributed-"))
  t = time.time()
  summary = run(out, args.steps, args.kill_after)
  print(f"runs and logs in {out} ({time.time() - t:.0f} s)")
  print(f"final loss, one process:   {summary['final_loss_one']:.6f} (step {max(summary['one_process'])})")
  print(f"final loss, two processes: {summary['final_loss_two']:.6f} (process 1 killed after the step-"
        f"{summary['killed_at_checkpoint']} checkpoint; both resumed at step {summary['resumed_from']})")
  print(f"largest relative gap of the loss curves over {summary['steps_compared']} logged steps: "
        f"{summary['max_rel_gap']:.2e} (allowed {args.rtol:.0e})")
  print(json.dumps({k: v for k, v in summary.items() if k not in ("one_process", "two_processes")}))
  ok = summary["max_rel_gap"] <= args.rtol and summary["resumed_from"] is not None and summary["resumed_from"] > 0
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
