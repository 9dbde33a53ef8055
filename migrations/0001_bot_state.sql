-- The bot's own state. Never the platform's tables: the runbook says no schema migration there.

-- One execution of a runbook (onboard, dns-check, cert, verify).
CREATE TABLE runs (
    id            uuid PRIMARY KEY,
    runbook       text NOT NULL,
    -- The slug or domain the run is about; what `audit SLUG` filters on.
    subject       text NOT NULL,
    -- The validated request, as the domain types serialise it.
    input         jsonb NOT NULL,
    -- Values steps hand to later steps (ids returned by INSERT ... RETURNING, paths).
    outputs       jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL CHECK (status IN
                    ('running', 'waiting_approval', 'parked', 'failed', 'rejected', 'done', 'cancelled')),
    dry_run       boolean NOT NULL DEFAULT false,
    started_by    text NOT NULL,
    frontend      text NOT NULL,
    -- Where the front-end reports this run (a Discord thread id, ...).
    chat_ref      jsonb,
    -- Why a break-glass console run was allowed against production.
    break_glass   text,
    error         text,
    -- Which process executes the run: `host:pid`, renewed while it runs.
    executor      text,
    executor_until timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX runs_subject ON runs (subject);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('running', 'waiting_approval', 'parked');

-- One row per step of a run, in order.
CREATE TABLE step_runs (
    run_id       uuid NOT NULL REFERENCES runs(id),
    idx          integer NOT NULL,
    name         text NOT NULL,
    status       text NOT NULL CHECK (status IN
                   ('pending', 'planning', 'waiting_approval', 'applying', 'checking', 'parked',
                    'done', 'already_done', 'planned', 'failed', 'cancelled')),
    plan_hash    text,
    plan_summary text,
    attempts     integer NOT NULL DEFAULT 0,
    error        text,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (run_id, idx),
    UNIQUE (run_id, name)
);

-- An approval (or rejection) of one exact plan of one step.
CREATE TABLE approvals (
    id          bigserial PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES runs(id),
    step        text NOT NULL,
    plan_hash   text NOT NULL,
    approved    boolean NOT NULL,
    actor       text NOT NULL,
    frontend    text NOT NULL,
    reason      text,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when the step re-planned to something else: the approval no longer covers it.
    voided_at   timestamptz
);
CREATE INDEX approvals_lookup ON approvals (run_id, step, plan_hash);

-- One active run per slug and per domain: `slug:merche-biche`, `domain:merche-biche.com`.
CREATE TABLE locks (
    key          text PRIMARY KEY,
    run_id       uuid NOT NULL REFERENCES runs(id),
    acquired_at  timestamptz NOT NULL DEFAULT now()
);

-- The audit trail: append-only, each event chained to the previous one by hash.
CREATE TABLE audit_events (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    run_id       uuid,
    subject      text NOT NULL,
    step         text,
    actor        text NOT NULL,
    kind         text NOT NULL,
    outcome      text NOT NULL,
    detail       jsonb NOT NULL,
    duration_ms  bigint,
    prev_hash    text NOT NULL,
    hash         text NOT NULL UNIQUE
);
CREATE INDEX audit_events_subject ON audit_events (subject, id);
CREATE INDEX audit_events_run ON audit_events (run_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
