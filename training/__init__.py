"""Meta-training of the default model (optformer.model.network) on prior examples; one entry point, `optformer-train`.

  cli.py            `optformer-train` / `python -m optformer.training`: the subcommands below
  pfn_cli.py        train: flags -> run config, resume, export while training (`python -m ...pfn_cli`, an alias)
  run_config.py     train --config FILE / --set FIELD=VALUE: a run described by its config file
  pfn_train.py      the config, the loss, the pure train step and the loop (PFNTrainer)
  pfn_data.py       prior examples -> batches, generated on the fly (grain)
  workdir.py        a run's directory: config.json, metrics.jsonl, orbax checkpoints
  step.py           the data-parallel step's pieces: mesh, optimizer update, jit, bf16 compute
  distributed.py    multi-process runs: joining the runtime, each process's rows, the global batch
  presets.py        run configs sized for one GPU and a small pod slice (docs/scale.md)
  smoke_distributed.py  two local processes vs one, with a kill and a resume (make smoke-distributed)
  pfn_export.py     export: a run's state as a model directory with its model card
  pfn_eval.py       eval: held-out NLL gap to the exact GP
  pfn_throughput.py, pfn_probe.py, ablation_table.py, gp_reference.py: throughput, probe, ablation-table, gp-reference
"""
