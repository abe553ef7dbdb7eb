"""The DuckDB schema of the results index.

The database is a *derived* index over the run directories (``results/runs/<run_id>/``): every value in it comes
from a file there, so the index can be deleted and rebuilt with ``vrbench collect`` without losing anything.
All accuracies are percentages (0-100), as in the run files and the papers.

Tables
------
``runs`` — one row per finished run (``status`` = ``done`` from result.json, or ``failed`` from error.json)::

    run_id            VARCHAR PRIMARY KEY  -- directory name: first 16 hex digits of sha256(canonical config)
    method            VARCHAR   -- the row name: config.json "method" ("<input>+<mapping>" such as "padding+ilm"
                                --   for VR, the method such as "promptsrc" for prompt learning, or a suite label)
    input             VARCHAR   -- config.input (NULL for prompt-learning runs)
    mapping           VARCHAR   -- config.mapping (NULL for prompt-learning runs)
    backbone          VARCHAR
    dataset           VARCHAR   -- the dataset the run is tested on
    seed              BIGINT
    protocol          VARCHAR   -- vr | base2novel | fewshot | cross_dataset | domain_generalization
    shots             BIGINT    -- config.shots: training images per class; NULL = full training data (and VR)
    subsample         VARCHAR   -- config.subsample: all | base | new, the class subset tested (NULL for VR)
    stage             VARCHAR   -- config.stage: train (trains, tests its own dataset) | eval (tests another run's
                                --   prompts) (NULL for VR)
    train_run         VARCHAR   -- config.train_run: eval runs, the run_id whose prompts they test (else NULL)
    source_dataset    VARCHAR   -- config.source_dataset: eval runs, the training run's dataset (else NULL)
    epochs            BIGINT    -- epochs trained (result.json) for done runs, epochs planned (config) for failed ones
    status            VARCHAR   -- 'done' | 'failed'
    final_acc         DOUBLE    -- test accuracy after the last epoch
    best_test_acc     DOUBLE    -- max test accuracy over epochs (the VR papers' rule; test-set selection)
    best_test_epoch   BIGINT
    best_val_acc      DOUBLE    -- test accuracy at the epoch with the best validation accuracy (NULL without val)
    best_val_epoch    BIGINT
    val_size          BIGINT
    trainable_params  BIGINT
    train_seconds     DOUBLE
    finished_at       TIMESTAMP -- UTC; result.json finished_at, or error.json failed_at for failed runs
    error_type        VARCHAR   -- failed runs only
    error_message     VARCHAR   -- failed runs only: the error's message (first line first)
    config            JSON      -- the canonical config (sorted keys), as hashed into run_id
    ingested_at       TIMESTAMP -- UTC; when this row's source files were last (re)read
    source_digest     VARCHAR   -- sha256 of the source files; an unchanged run keeps its row and ingested_at
    source_stat       VARCHAR   -- size, mtime, ctime and inode of the source files when they were read ('' for
                                --   files written in the last 2 s): equal stats skip reading them (scan.stat_key)

``epochs`` — one row per finished epoch (metrics.jsonl; epochs counted from 1)::

    run_id VARCHAR, epoch BIGINT, train_loss DOUBLE, train_acc DOUBLE, val_acc DOUBLE, test_acc DOUBLE,
    lr DOUBLE, seconds DOUBLE

``environments`` — one row per run that has an env.json::

    run_id VARCHAR PRIMARY KEY, vrbench_version VARCHAR, torch_version VARCHAR, python_version VARCHAR,
    git_sha VARCHAR, device VARCHAR, device_name VARCHAR, precision VARCHAR, threads BIGINT, hostname VARCHAR,
    platform VARCHAR

``problems`` — partial problems of indexed runs (an unreadable env.json or metrics.jsonl line), kept so that
later ingestions, which do not re-read unchanged runs, still report them::

    run_id VARCHAR, file VARCHAR (a file name inside the run directory), reason VARCHAR

``provenance`` — one row per indexed run that arrived in a bundle (``vrbench import``; runs/<run_id>/provenance.json,
see docs/leaderboard.md); runs made here have none::

    run_id VARCHAR PRIMARY KEY, bundle VARCHAR (the bundle's file name), bundle_sha256 VARCHAR,
    source_host VARCHAR (the host that exported it), exported_at TIMESTAMP, imported_at TIMESTAMP

``job_results`` — every result of a job that has more than one (a conflict: a bundle brought a different result
for a run id that was already done here). The run directory's result is the ``counted`` one (the only one in
``runs``, ``scores`` and ``cells``); the others live in ``alternates/<run_id>/<result_key>/``
(:mod:`vrbench.share.conflicts`)::

    run_id VARCHAR, result_key VARCHAR (16 hex digits of the digest of result.json, metrics.jsonl, env.json and
    mapping.json), counted BOOLEAN, location VARCHAR (the directory, relative to the results root), status VARCHAR,
    final_acc DOUBLE, best_test_acc DOUBLE, best_val_acc DOUBLE, epochs BIGINT, finished_at TIMESTAMP,
    env JSON (the whole env.json), source_host VARCHAR, bundle VARCHAR, imported_at TIMESTAMP

``meta`` — ``(key VARCHAR PRIMARY KEY, value VARCHAR)``; holds ``schema_version`` (and ``alternates``, the listing
of ``alternates/`` that ``job_results`` was built from). An index with another schema
version is dropped and rebuilt from the run directories on the next ingestion.

Views
-----
``scores`` — done runs unpivoted to one row per selection rule: ``run_id, method, backbone, dataset, seed, rule,
acc, protocol, shots, subsample, source_dataset`` with ``rule`` in ``final | best_test | best_val``; NULL
accuracies (e.g. best_val without a validation split, best_test of a run tested once) are dropped.

``cells`` — one row per ``(method, backbone, dataset, rule, protocol, shots, subsample, source_dataset)`` over
``scores``: ``n``, ``mean``, ``std`` (sample standard deviation, ddof=1; NULL when n=1), ``min``, ``max``. The
prompt-learning keys keep apart what must not be averaged together (a method's base-class and novel-class
accuracy on one dataset, or its 1-shot and 16-shot runs); for VR runs they are constant (``vr``, NULLs), so VR
cells are the same as per ``(method, backbone, dataset, rule)``. The base-to-novel HM is not a view: it is the HM
of two cells' means (see :mod:`vrbench.report.prompt`).

``cells_by_env`` — as ``cells``, additionally grouped by ``device`` and ``precision`` (from ``environments``;
NULL when a run has no env.json).
"""

from __future__ import annotations

# 2: the prompt-learning columns shots, subsample, stage, train_run, source_dataset (and view keys).
# 3: source_stat, so that an unchanged run is recognised from its files' stat without reading them.
# 4: provenance (imported runs) and job_results (jobs with more than one result).
SCHEMA_VERSION = "4"

RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "method", "input", "mapping", "backbone", "dataset", "seed", "protocol", "shots", "subsample", "stage",
    "train_run", "source_dataset", "epochs", "status",
    "final_acc", "best_test_acc", "best_test_epoch", "best_val_acc", "best_val_epoch", "val_size",
    "trainable_params", "train_seconds", "finished_at", "error_type", "error_message", "config", "ingested_at",
    "source_digest", "source_stat",
)
PROBLEM_COLUMNS: tuple[str, ...] = ("run_id", "file", "reason")
EPOCH_COLUMNS: tuple[str, ...] = ("run_id", "epoch", "train_loss", "train_acc", "val_acc", "test_acc", "lr", "seconds")
ENV_COLUMNS: tuple[str, ...] = (
    "run_id", "vrbench_version", "torch_version", "python_version", "git_sha", "device", "device_name", "precision",
    "threads", "hostname", "platform",
)

TABLES_DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, method VARCHAR, input VARCHAR, mapping VARCHAR, backbone VARCHAR,
        dataset VARCHAR, seed BIGINT, protocol VARCHAR, shots BIGINT, subsample VARCHAR, stage VARCHAR,
        train_run VARCHAR, source_dataset VARCHAR, epochs BIGINT, status VARCHAR NOT NULL,
        final_acc DOUBLE, best_test_acc DOUBLE, best_test_epoch BIGINT, best_val_acc DOUBLE, best_val_epoch BIGINT,
        val_size BIGINT, trainable_params BIGINT, train_seconds DOUBLE, finished_at TIMESTAMP,
        error_type VARCHAR, error_message VARCHAR, config JSON, ingested_at TIMESTAMP, source_digest VARCHAR,
        source_stat VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS epochs (
        run_id VARCHAR NOT NULL, epoch BIGINT NOT NULL, train_loss DOUBLE, train_acc DOUBLE, val_acc DOUBLE,
        test_acc DOUBLE, lr DOUBLE, seconds DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS environments (
        run_id VARCHAR PRIMARY KEY, vrbench_version VARCHAR, torch_version VARCHAR, python_version VARCHAR,
        git_sha VARCHAR, device VARCHAR, device_name VARCHAR, precision VARCHAR, threads BIGINT, hostname VARCHAR,
        platform VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS problems (run_id VARCHAR NOT NULL, file VARCHAR, reason VARCHAR)",
    """CREATE TABLE IF NOT EXISTS provenance (
        run_id VARCHAR PRIMARY KEY, bundle VARCHAR, bundle_sha256 VARCHAR, source_host VARCHAR,
        exported_at TIMESTAMP, imported_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS job_results (
        run_id VARCHAR NOT NULL, result_key VARCHAR NOT NULL, counted BOOLEAN, location VARCHAR, status VARCHAR,
        final_acc DOUBLE, best_test_acc DOUBLE, best_val_acc DOUBLE, epochs BIGINT, finished_at TIMESTAMP,
        env JSON, source_host VARCHAR, bundle VARCHAR, imported_at TIMESTAMP)""",
)
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "run_id", "bundle", "bundle_sha256", "source_host", "exported_at", "imported_at")
JOB_RESULT_COLUMNS: tuple[str, ...] = (
    "run_id", "result_key", "counted", "location", "status", "final_acc", "best_test_acc", "best_val_acc", "epochs",
    "finished_at", "env", "source_host", "bundle", "imported_at")

_RULE_COLUMNS = (("final", "final_acc"), ("best_test", "best_test_acc"), ("best_val", "best_val_acc"))

# Keys that tell prompt-learning cells apart (constant for VR runs); cells group by them after the rule.
SETTING_COLUMNS: tuple[str, ...] = ("protocol", "shots", "subsample", "source_dataset")
_SETTINGS = ", ".join(SETTING_COLUMNS)

SCORES_VIEW = "CREATE OR REPLACE VIEW scores AS\n" + "\nUNION ALL\n".join(
    f"SELECT run_id, method, backbone, dataset, seed, '{rule}' AS rule, {col} AS acc, {_SETTINGS} "
    f"FROM runs WHERE status = 'done' AND {col} IS NOT NULL"
    for rule, col in _RULE_COLUMNS
)

_AGGREGATES = ('count(*) AS n, avg(s.acc) AS mean, stddev_samp(s.acc) AS std, '
               'min(s.acc) AS "min", max(s.acc) AS "max"')

_S_SETTINGS = ", ".join(f"s.{c}" for c in SETTING_COLUMNS)

VIEWS_DDL: tuple[str, ...] = (
    SCORES_VIEW,
    f"""CREATE OR REPLACE VIEW cells AS
        SELECT s.method, s.backbone, s.dataset, s.rule, {_S_SETTINGS}, {_AGGREGATES}
        FROM scores s GROUP BY s.method, s.backbone, s.dataset, s.rule, {_S_SETTINGS}""",
    f"""CREATE OR REPLACE VIEW cells_by_env AS
        SELECT s.method, s.backbone, s.dataset, s.rule, {_S_SETTINGS}, e.device, e.precision, {_AGGREGATES}
        FROM scores s LEFT JOIN environments e ON e.run_id = s.run_id
        GROUP BY s.method, s.backbone, s.dataset, s.rule, {_S_SETTINGS}, e.device, e.precision""",
)

DROP_DDL: tuple[str, ...] = (
    "DROP VIEW IF EXISTS cells_by_env", "DROP VIEW IF EXISTS cells", "DROP VIEW IF EXISTS scores",
    "DROP TABLE IF EXISTS runs", "DROP TABLE IF EXISTS epochs", "DROP TABLE IF EXISTS environments",
    "DROP TABLE IF EXISTS problems", "DROP TABLE IF EXISTS provenance", "DROP TABLE IF EXISTS job_results",
    "DROP TABLE IF EXISTS meta",
)
