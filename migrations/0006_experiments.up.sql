-- FaultExperiment runs: one row per run of an experiment (an experiment and the start it was
-- given), with its state over time. Rows outlive the FaultExperiment resource, as history.
CREATE TABLE experiment_runs (
    id          bigserial PRIMARY KEY,
    namespace   text NOT NULL,
    name        text NOT NULL,
    -- host is the target, fully qualified.
    host        text NOT NULL,
    -- start_at and end_at are the planned window: start, and start + duration.
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    -- revision is the configuration revision of the spec the run follows (its resourceVersion).
    revision    bigint NOT NULL,
    state       text NOT NULL CHECK (state IN ('scheduled', 'running', 'stopped_early', 'finished', 'stopped', 'deleted')),
    reason      text NOT NULL DEFAULT '',
    -- started_at and ended_at are when the server turned the fault on and off.
    started_at  timestamptz,
    ended_at    timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at > start_at),
    UNIQUE (namespace, name, start_at)
);
CREATE INDEX experiment_runs_open_idx ON experiment_runs (state) WHERE state IN ('scheduled', 'running');
CREATE INDEX experiment_runs_recent_idx ON experiment_runs (start_at DESC);
