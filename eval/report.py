"""Benchmark report from the study cache of eval/benchmark.py: tables, JSON and figures.

  python -m optformer.eval.report OUT [--at 10 25 50 100] [--reference optformer]

Reads OUT/<suite>/<task>/{reference.json, <key>/seed_<s>.json} and writes
  OUT/report.md    per suite: normalized regret at t = 10, 25, 50, 100 (those
                   <= the suite's trials), mean ± standard error over all
                   (task, seed) studies; average rank; wins / ties / losses of
                   the reference optimizer against each peer; median seconds
                   per suggestion; then ask() latency (OUT/latency.json) and
                   surrogate quality (OUT/surrogate.json) when present;
  OUT/report.json  the same numbers;
  OUT/figures/regret_<suite>.png  mean normalized regret vs trial (log y), ± s.e. band.

Rows are entries by name (eval/entries.py): OUT/models.json binds each name
to an optimizer and a model id, and a study counts under every name bound to
its (optimizer, model); a checkpoint that no name stands for any more stays
cached but out of the tables (the report says how many studies it left
out). A cache without models.json is read by each study's "name" (its
optimizer for records written before names).

Rules (like with like):
  * regret: eval/regret.py (one definition for all suites);
  * a task enters only when every optimizer seen in the suite that supports
    its space has studies there; per task, only the seeds that all of them
    have finished enter (a partial cache never compares unequal seed sets),
    and curves are cut to the shortest study of the task;
  * average rank at t: per task, optimizers ranked by their mean regret over
    seeds (ties share the mean rank, scipy.stats.rankdata), then averaged
    over the tasks each optimizer ran (cmaes runs only numeric spaces);
  * wins / ties / losses at the last reported t: per problem (a task; for
    bbob one function, its dimensions and instances pooled), a two-sided
    Mann-Whitney U test (scipy.stats.mannwhitneyu) of the reference's
    regrets against the peer's over seeds (and bbob's dimensions and
    instances); p < 0.05 is a win
    when the reference's regrets are stochastically smaller (U < n1 n2 / 2),
    a loss when larger, otherwise a tie. With fewer than 4 samples a side p
    cannot reach 0.05, so every comparison is a tie.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from collections import defaultdict

import numpy as np

import optformer
from optformer.eval import entries, regret
from optformer.eval.optimizers import NAMES, OURS, supports

REPORT_AT = (10, 25, 50, 100)
ALPHA = 0.05  # Significance level of the win/tie/loss test.
SURROGATE_FILE = "surrogate.json"  # Written by eval/surrogate_eval.py (make bench).
LATENCY_FILE = "latency.json"  # Written by eval/latency.py (make bench).


def load(out: pathlib.Path, left_out: list | None = None) -> dict:
  """suite -> task -> {"reference": dict, "studies": entry name -> seed -> study record}; unreadable files skipped.

  With OUT/models.json, a study counts under every name bound to its (optimizer, model), and a study of a
  model no name stands for is left out (its path appended to `left_out`); without it, under its record's
  "name" (its optimizer for records written before names). Of two studies of a name and seed, the first counts.
  """
  models = entries.read_models(out)
  data: dict = defaultdict(dict)
  for ref_path in sorted(out.glob("*/*/reference.json")):
    suite, task = ref_path.parts[-3], ref_path.parts[-2]
    try:
      ref = json.loads(ref_path.read_text())
    except (OSError, ValueError):
      continue
    studies: dict = defaultdict(dict)
    for p in sorted(ref_path.parent.glob("*/seed_*.json")):
      try:
        rec = json.loads(p.read_text())
      except (OSError, ValueError):
        continue
      names = ([n for n, m in models.items() if (m["optimizer"], m["model"]) == (rec["optimizer"], rec.get("model"))]
               if models else [rec.get("name", rec["optimizer"])])
      if not names and left_out is not None:
        left_out.append(p)
      for name in names:
        studies[name].setdefault(int(rec["seed"]), rec)
    if studies:
      data[suite][task] = {"reference": ref, "studies": dict(studies)}
  return dict(data)


def _values(xs) -> np.ndarray:
  return np.array([math.nan if v is None else v for v in xs], np.float64)


def task_curves(entry: dict) -> dict:
  """Normalized regret of one task's studies, like with like.

  Returns:
    {"curves": optimizer -> float [S, T] (seeds in "seeds" order),
     "seeds": [int] common to all optimizers, "trials": T (shortest study),
     "y_star", "y_rand": minimize-sense references, "problem": str}.
  """
  ref, studies = entry["reference"], entry["studies"]
  seeds = sorted(set.intersection(*(set(s) for s in studies.values())))
  trials = min(len(rec["noiseless"]) for s in studies.values() for rec in s.values())
  seen = [_values(rec["noiseless"]) for s in studies.values() for rec in s.values()]
  y_star, y_rand = regret.reference(ref["goal"], _values(ref["random_values"]), ref["optimum"], seen)
  curves = {}
  for name, by_seed in studies.items():
    v = np.array([_values(by_seed[s]["noiseless"])[:trials] for s in seeds]).reshape(len(seeds), trials)
    curves[name] = regret.normalized_regret(v, ref["goal"], y_star, y_rand)
  return {"curves": curves, "seeds": seeds, "trials": trials, "y_star": y_star, "y_rand": y_rand,
          "problem": ref.get("problem", ref["task"])}


def _order(names) -> list[str]:
  known = [n for n in NAMES if n in names]
  return known + sorted(set(names) - set(known))


def report_at(trials: int, at=REPORT_AT) -> list[int]:
  """The reported trial counts: `at` up to `trials` (and `trials` itself if none fits)."""
  return [t for t in at if t <= trials] or [trials]


def wins_ties_losses(a, b, alpha: float = ALPHA) -> str:
  """"win" / "tie" / "loss" of samples `a` float [n1] against `b` float [n2] (lower is better).

  Two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu); p < alpha and
  U_a < n1 n2 / 2 is a win, p < alpha and U_a > n1 n2 / 2 a loss, else a tie.
  Identical samples are a tie.
  """
  from scipy.stats import mannwhitneyu

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  both = np.concatenate([a, b])
  if len(a) == 0 or len(b) == 0 or np.all(both == both[0]):
    return "tie"
  res = mannwhitneyu(a, b, alternative="two-sided")
  if not res.pvalue < alpha:
    return "tie"
  return "win" if res.statistic < len(a) * len(b) / 2 else "loss"


def _expected(entry: dict, names) -> set:
  """The optimizers among `names` that run on the task's search space (all, if the cache lacks the space)."""
  space = entry["reference"].get("space") or entry["reference"].get("describe", {}).get("space")
  if not space:
    return set(names)
  space = optformer.SearchSpace.from_json(space)
  return {n for n in names if n not in NAMES or supports(n, space)}


def summarize_suite(tasks: dict, at=REPORT_AT, reference: str = "optformer") -> dict:
  """Tables of one suite from its tasks' cache entries (see the module docstring for the rules).

  Returns:
    {"trials": T (shortest), "at": [t], "tasks": int (complete tasks: every optimizer of the suite
     that supports the task's space has studies there), "incomplete_tasks": int (left out),
     "optimizers": [names],
     "regret": name -> {t: [mean, s.e., n studies]},
     "rank": name -> {t: [average rank, tasks]},
     "wtl": peer -> {"win", "tie", "loss": int, "losses": [problems]} (reference vs peer, last t),
     "paired": peer -> {t: [mean, s.e., n]}: the reference's regret minus the peer's, study by study over the
       (task, seed) pairs both ran (the seed fixes a prior task's noise, so pairs share the objective): negative
       means the reference is ahead; s.e. = std / sqrt(n) of the differences,
     "seconds_per_suggestion": name -> median over all trials of all studies,
     "curve": name -> [mean regret per trial], "curve_se": name -> [s.e.]}.
  """
  names = _order({n for entry in tasks.values() for n in entry["studies"]})
  complete = {k: e for k, e in tasks.items() if _expected(e, names) <= set(e["studies"])}
  per_task = {name: task_curves(entry) for name, entry in complete.items()}
  per_task = {k: v for k, v in per_task.items() if v["seeds"]}
  if not per_task:
    return {}
  trials = min(v["trials"] for v in per_task.values())
  ts = report_at(trials, at)
  out = {"trials": trials, "at": ts, "tasks": len(per_task), "incomplete_tasks": len(tasks) - len(per_task),
         "optimizers": names, "regret": {}, "rank": {}, "wtl": {}, "paired": {}, "seconds_per_suggestion": {},
         "curve": {}, "curve_se": {}}
  for n in names:
    rows = np.concatenate([v["curves"][n][:, :trials] for v in per_task.values() if n in v["curves"]])  # [studies, T]
    se = rows.std(axis=0, ddof=1) / math.sqrt(len(rows)) if len(rows) > 1 else np.zeros(trials)
    out["regret"][n] = {str(t): [float(rows[:, t - 1].mean()), float(se[t - 1]), len(rows)] for t in ts}
    out["curve"][n], out["curve_se"][n] = rows.mean(axis=0).tolist(), se.tolist()
    secs = [s for name in per_task for rec in tasks[name]["studies"].get(n, {}).values()
            for s in rec["seconds_per_suggestion"]]
    out["seconds_per_suggestion"][n] = float(np.median(secs)) if secs else math.nan
  from scipy.stats import rankdata

  for t in ts:
    ranks = defaultdict(list)
    for v in per_task.values():
      present = [n for n in names if n in v["curves"]]
      r = rankdata([v["curves"][n][:, t - 1].mean() for n in present])
      for n, x in zip(present, r):
        ranks[n].append(x)
    for n in names:
      out["rank"].setdefault(n, {})[str(t)] = [float(np.mean(ranks[n])), len(ranks[n])]
  if reference in names:
    t = ts[-1]
    problems = defaultdict(lambda: defaultdict(list))
    for v in per_task.values():
      for n, c in v["curves"].items():
        problems[v["problem"]][n].extend(c[:, t - 1].tolist())
    for peer in names:
      if peer == reference:
        continue
      tally = {"win": 0, "tie": 0, "loss": 0, "losses": []}
      for prob, by_name in sorted(problems.items()):
        if reference in by_name and peer in by_name:
          res = wins_ties_losses(by_name[reference], by_name[peer])
          tally[res] += 1
          if res == "loss":
            tally["losses"].append(prob)
      out["wtl"][peer] = tally
      diffs = [v["curves"][reference][:, :trials] - v["curves"][peer][:, :trials] for v in per_task.values()
               if reference in v["curves"] and peer in v["curves"]]
      if diffs:
        d = np.concatenate(diffs)  # [pairs, T]
        se = d.std(axis=0, ddof=1) / math.sqrt(len(d)) if len(d) > 1 else np.full(trials, math.nan)
        out["paired"][peer] = {str(t): [float(d[:, t - 1].mean()), float(se[t - 1]), len(d)] for t in ts}
  return out


def _fmt_time(s: float) -> str:
  return "n/a" if not math.isfinite(s) else (f"{s:.4f}" if s >= 1e-3 else f"{s * 1e6:.0f} µs")


def suite_markdown(suite: str, s: dict, reference: str = "optformer") -> str:
  """A markdown section: regret table (with average rank at the last t and s/suggestion), then W/T/L."""
  ts = s["at"]
  last = str(ts[-1])
  skipped = f" ({s['incomplete_tasks']} more not complete yet)" if s.get("incomplete_tasks") else ""
  lines = [f"### {suite}: {s['tasks']} tasks{skipped}, {s['trials']} trials per study", "",
           "| entry | " + " | ".join(f"regret@{t}" for t in ts) + f" | avg rank@{last} | studies | s/suggestion |",
           "|---|" + "---:|" * (len(ts) + 3)]
  for n in s["optimizers"]:
    cells = " | ".join(f"{m:.4f} ± {e:.4f}" for m, e, _ in (s["regret"][n][str(t)] for t in ts))
    rank, ntasks = s["rank"][n][last]
    lines.append(f"| {n} | {cells} | {rank:.2f} | {s['regret'][n][last][2]} | {_fmt_time(s['seconds_per_suggestion'][n])} |")
  partial = [f"{n} ran on {s['rank'][n][last][1]} of {s['tasks']} tasks" for n in s["optimizers"]
             if s["rank"][n][last][1] < s["tasks"]]
  if partial:
    lines += ["", "Not every optimizer ran every task (cmaes needs a numeric space): " + "; ".join(partial)
              + ". Its rank is over the tasks it ran."]
  if s["wtl"]:
    lines += ["", f"{reference} against each peer at trial {last} (per problem; two-sided Mann-Whitney U over "
              f"seeds, p < {ALPHA}):", "", "| peer | wins | ties | losses | lost on |", "|---|---:|---:|---:|---|"]
    for peer, w in s["wtl"].items():
      lost = ", ".join(w["losses"][:8]) + (" ..." if len(w["losses"]) > 8 else "")
      lines.append(f"| {peer} | {w['win']} | {w['tie']} | {w['loss']} | {lost} |")
  if s.get("paired"):
    lines += ["", f"{reference} minus each peer, paired by (task, seed) (mean ± s.e. of the differences in normalized "
              "regret; negative: the reference is ahead):", "",
              "| peer | " + " | ".join(f"@{t}" for t in ts) + " | pairs |", "|---|" + "---:|" * (len(ts) + 1)]
    for peer, by_t in s["paired"].items():
      cells = " | ".join(f"{m:+.4f} ± {e:.4f}" for m, e, _ in (by_t[str(t)] for t in ts))
      lines.append(f"| {peer} | {cells} | {by_t[str(ts[-1])][2]} |")
  return "\n".join(lines)


def latency_markdown(lat: dict) -> str:
  """ask() latency tables from eval/latency.py's JSON: medians (seconds) with ratios to random search and
  TPE at the largest history size; then the first call of the optformer entries per size (it compiles a
  history bucket the process has not seen yet)."""
  sizes = list(lat["by_history_size"])
  rows = lat["by_history_size"]
  fmt = lambda r: "n/a" if r is None or not math.isfinite(r) else f"{r:,.0f}" if r >= 10 else f"{r:.2f}"
  lines = [f"### ask() latency: median of {lat['repeats']} calls after a warm-up call, seconds "
           f"(task {lat.get('task', '?')}, {lat.get('num_params', '?')} parameters; {lat.get('machine', '')})", "",
           "| optimizer | " + " | ".join(f"n={n}" for n in sizes) + f" | × random (n={sizes[-1]}) | × tpe (n={sizes[-1]}) |",
           "|---|" + "---:|" * (len(sizes) + 2)]
  for name in lat["optimizers"]:
    cells = " | ".join(_fmt_time(rows[n][name]["median_s"]) for n in sizes)
    big = rows[sizes[-1]][name]
    lines.append(f"| {name} | {cells} | {fmt(big.get('ratio_to_random'))} | {fmt(big.get('ratio_to_tpe'))} |")
  ours = [n for n in lat["optimizers"] if n.startswith("optformer")]
  if ours:
    lines += ["", "First call (seconds; includes compiling the history bucket when new to the process):", "",
              "| optimizer | " + " | ".join(f"n={n}" for n in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for name in ours:
      lines.append(f"| {name} | " + " | ".join(f"{rows[n][name]['first_call_s']:.2f}" for n in sizes) + " |")
  return "\n".join(lines)


def surrogate_markdown(sur: dict) -> str:
  """Surrogate quality from eval/surrogate_eval.evaluate's dict: per context size and method, NLL, CRPS,
  calibration error and Spearman (its docstring defines them); the calibration figure if it was written
  to OUT/figures/surrogate_calibration.png. Older files with only model_nll / gp_nll are read too."""
  rows = sur.get("by_context_size")
  if not isinstance(rows, dict):
    return f"### Surrogate quality\n\n(unrecognized {SURROGATE_FILE}; keys: {sorted(sur)})"
  methods = sur.get("methods")
  lines = [f"### Surrogate quality on {sur.get('num_tasks', '?')} held-out prior tasks "
           f"({sur.get('num_queries', '?')} queries per task and context size)", ""]
  if methods:
    lines += ["| context | method | NLL (nats) | CRPS | calibration error | Spearman |", "|---:|---|---:|---:|---:|---:|"]
    for n, r in rows.items():
      for m in methods:
        x = r[m]
        lines.append(f"| {n} | {m} | {x['nll']:.3f} ± {x['nll_se']:.3f} | {x['crps']:.4f} ± {x['crps_se']:.4f} | "
                     f"{x['calibration_error']:.3f} | {x['spearman']:.3f} ± {x['spearman_se']:.3f} |")
  else:
    lines += ["| context | model NLL | exact GP NLL |", "|---:|---:|---:|"]
    for n, r in rows.items():
      lines.append(f"| {n} | {r['model_nll']:.3f} ± {r['model_nll_se']:.3f} | {r['gp_nll']:.3f} ± {r['gp_nll_se']:.3f} |")
  return "\n".join(lines)


def plot_suite(suite: str, s: dict, path: pathlib.Path) -> None:
  """Mean normalized regret vs trial, ± s.e. band, log y (values floored at 1e-6 for the log scale)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for n in s["optimizers"]:
    m, e = np.array(s["curve"][n]), np.array(s["curve_se"][n])
    t = np.arange(1, len(m) + 1)
    style = "--" if n in NAMES and n not in OURS else "-"  # Baselines dashed; ours and named models solid.
    ran = s["rank"][n][str(s["at"][-1])][1]
    label = n if ran == s["tasks"] else f"{n} ({ran}/{s['tasks']} tasks)"
    ax.plot(t, np.maximum(m, 1e-6), style, label=label, lw=2 if n == "optformer" else 1.2)
    ax.fill_between(t, np.maximum(m - e, 1e-6), np.maximum(m + e, 1e-6), alpha=0.15)
  ax.set_yscale("log")
  ax.set_xlabel("trial")
  ax.set_ylabel("normalized regret (mean over tasks and seeds)")
  ax.set_title(f"{suite}: {s['tasks']} tasks, {s['trials']} trials", fontsize=10)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8, ncol=2)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  plt.close(fig)


def build(out: pathlib.Path, at=REPORT_AT, reference: str = "optformer", figures: bool = True) -> tuple[str, dict]:
  """(markdown, JSON-able dict) of the whole report; writes report.md, report.json and figures into `out`.

  Raises:
    FileNotFoundError: `out` is not a folder.
  """
  if not out.is_dir():
    raise FileNotFoundError(f"No benchmark cache at {out} (run python -m optformer.eval.benchmark --out {out} first).")
  left_out: list = []
  data = load(out, left_out)
  md = [f"## Benchmarks ({out})", "",
        "Normalized regret r_t = (best_t - y*) / (y_rand - y*) in the minimize sense, clipped at 0 "
        "(eval/regret.py); mean ± standard error over (task, seed) studies. 1 = one random trial on average. "
        "tpe and gp start with the same 10 random trials under a seed (Optuna's start-up), so their early "
        "regret is equal. The default model's context holds 256 trials; past that it sees the "
        "best half and the most recent trials. s/suggestion: median seconds per ask() over all trials, on a shared machine."]
  result = {"suites": {}, "models": entries.read_models(out), "left_out_studies": len(left_out)}
  named = {n: m for n, m in result["models"].items() if m.get("model")}
  if named:
    md += ["", "| entry | optimizer | model | checkpoint |", "|---|---|---|---|"]
    md += [f"| {n} | {m['optimizer']} | {m['model']} | {m.get('checkpoint') or 'in memory'} |" for n, m in named.items()]
  if left_out:
    md += ["", f"{len(left_out)} cached studies of models that no name stands for (OUT/models.json) are left out."]
  for suite in [s for s in ("prior", "bbob", "hpo") if s in data] + sorted(set(data) - {"prior", "bbob", "hpo"}):
    s = summarize_suite(data[suite], at, reference)
    if not s:
      continue
    result["suites"][suite] = s
    md += ["", suite_markdown(suite, s, reference)]
    if figures:
      fig = out / "figures" / f"regret_{suite}.png"
      plot_suite(suite, s, fig)
      md += ["", f"![{suite} regret curves](figures/{fig.name})"]
  for fname, key, render in ((LATENCY_FILE, "latency", latency_markdown), (SURROGATE_FILE, "surrogate", surrogate_markdown)):
    path = out / fname
    if path.exists():
      try:
        content = json.loads(path.read_text())
        md += ["", render(content)]
        result[key] = content
        if key == "surrogate" and (out / "figures" / "surrogate_calibration.png").exists():
          md += ["", "![surrogate calibration](figures/surrogate_calibration.png)"]
      except (OSError, ValueError, KeyError, TypeError) as e:
        md += ["", f"({fname} could not be read: {e})"]
  text = "\n".join(md) + "\n"
  (out / "report.md").write_text(text)
  (out / "report.json").write_text(json.dumps(result, indent=1))
  return text, result


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("out", type=pathlib.Path, help="benchmark cache folder (eval.benchmark --out)")
  p.add_argument("--at", type=int, nargs="+", default=list(REPORT_AT), help="trial counts of the tables")
  p.add_argument("--reference", default="optformer",
                 help="entry (optimizer or --model NAME of the benchmark) whose wins/ties/losses are counted")
  args = p.parse_args(argv)
  try:
    text, _ = build(args.out, tuple(args.at), args.reference)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(text)
  print(f"wrote {args.out / 'report.md'}, {args.out / 'report.json'} and {args.out / 'figures'}/")
  return 0


if __name__ == "__main__":
  sys.exit(main())
