-- One executor per run: a fencing token, and a take-over that asks the holder to stop.

-- Bumped at every claim: an executor holds the value it claimed with and checks it right before
-- every apply, so a process that lost the run (taken over, lease lapsed) stops before writing.
ALTER TABLE runs ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
-- Where the executor's pid means something: `<boot id>/<pid namespace>`. A pid is judged dead
-- only by a process that shares both (same machine boot, same pid namespace).
ALTER TABLE runs ADD COLUMN executor_proc text;
-- Set by a take-over: the holder stops renewing its lease and stops before its next write.
ALTER TABLE runs ADD COLUMN takeover_by text;

-- One decision per (run, step, plan hash) while it stands: a second row for the same plan is
-- refused by the database, not only by the bot. Voided rows (plan changed, rejection re-asked)
-- make room for a new decision.
CREATE UNIQUE INDEX approvals_one_decision ON approvals (run_id, step, plan_hash)
    WHERE voided_at IS NULL;
