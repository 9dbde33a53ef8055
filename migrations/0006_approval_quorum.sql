-- A step may need several distinct approvers (`approvals.required`): one standing decision per
-- person on each plan, instead of one per plan. A second decision by the same person on the
-- same plan is still refused by the database; voided rows (plan changed, rejection re-asked)
-- make room for a new one.
DROP INDEX approvals_one_decision;
CREATE UNIQUE INDEX approvals_one_decision_per_actor ON approvals (run_id, step, plan_hash, actor)
    WHERE voided_at IS NULL;
