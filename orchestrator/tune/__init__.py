"""The adapters wing: every module that imports Ray, Optuna or MLflow, and nothing else does.

* :mod:`~orchestrator.tune.driver` — ``run_sweep``: validate, then build or restore the Tune experiment;
* :mod:`~orchestrator.tune.trainable` — one Tune trial = the engine trainer on its seed(s);
* :mod:`~orchestrator.tune.study` — the sweep's Optuna study: storage, index by plan key, tell;
* :mod:`~orchestrator.tune.searcher` — what runs next: grid, sampled, repeats, orphans, confirmation;
* :mod:`~orchestrator.tune.pruners` / :mod:`~orchestrator.tune.schedulers` — who stops a trial early;
* :mod:`~orchestrator.tune.callback` — the journal and the Parquet tables, kept as results arrive;
* :mod:`~orchestrator.tune.mlflow_logger` — MLflow's parent and child runs;
* :mod:`~orchestrator.tune.progress` — the live trial table.

The words they share (statuses, result keys, the journal, the table schemas) live below them in the
Ray-free :mod:`orchestrator.records`.
"""
