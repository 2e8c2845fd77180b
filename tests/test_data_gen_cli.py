"""Smoke test of the corpus command line (data_gen.cli)."""

import json

from optformer.data_gen import cli, corpus


def test_cli_writes_corpus_and_throughput(tmp_path, capsys):
  out = tmp_path / "corpus"
  assert cli.main(["--out", str(out), "--num-train", "5", "--num-valid", "2", "--trials", "4",
                   "--max-dims", "2", "--mix", "1,1,0", "--no-progress"]) == 0
  assert "trajectories/s/core" in capsys.readouterr().out
  (dataset_dir,) = corpus.find_corpus_dirs(str(out))
  report = json.loads(open(f"{dataset_dir}/throughput.json").read())
  assert report["generated"] == 7 and report["trajectories_per_cpu_s"] > 0
  src = corpus.load_corpus(str(out), "validation")
  assert len(src) == 2 and src[0]["x"].shape == (4, 2) and src[1]["algorithm"] in (0, 1)
