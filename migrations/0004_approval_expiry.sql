-- A plan that waits longer than `approvals.ttl_secs` for its decision expires: the run stops
-- as `expired` (resumable, like `failed` and `rejected`; `/resume` asks again).
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN
    ('running', 'waiting_approval', 'parked', 'failed', 'rejected', 'expired', 'done', 'cancelled'));
