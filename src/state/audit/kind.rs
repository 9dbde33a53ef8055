//! What an audit event records (its kind) and how it came out (its outcome), as the types the
//! code writes and branches on. Stored as the text they have always had: the chain's hashes
//! cover that text, so it must never change (see the test at the end).

/// The kind of an audit event: what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    RunStarted,
    RunRefused,
    RunResumed,
    RunTakenOver,
    RunTakeoverRequested,
    RunTakeoverRefused,
    RunBreakGlass,
    RunCancelRequested,
    RunDone,
    RunFailed,
    RunRejected,
    RunCancelled,
    RunExpired,
    StepPlanned,
    StepAlreadyDone,
    StepParked,
    StepUnparked,
    StepPlanChanged,
    StepApplied,
    StepCheckFailed,
    StepDone,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalVoided,
    ApprovalReasked,
    ApprovalUnbacked,
    ApprovalRefused,
    ApprovalReminded,
    ApprovalExpired,
    /// Every production write of a run planned up front, shown with an Approve all button.
    PlanUpFront,
    /// One person's Approve all: the (step, plan hash) pairs of the up-front plan it covers.
    ApprovalGrantedAll,
    LockTakenOver,
    CommandRefused,
}

impl AuditKind {
    /// Every kind, for the tests and for whoever lists them.
    pub const ALL: [AuditKind; 34] = [
        Self::RunStarted,
        Self::RunRefused,
        Self::RunResumed,
        Self::RunTakenOver,
        Self::RunTakeoverRequested,
        Self::RunTakeoverRefused,
        Self::RunBreakGlass,
        Self::RunCancelRequested,
        Self::RunDone,
        Self::RunFailed,
        Self::RunRejected,
        Self::RunCancelled,
        Self::StepPlanned,
        Self::StepAlreadyDone,
        Self::StepParked,
        Self::StepUnparked,
        Self::StepPlanChanged,
        Self::StepApplied,
        Self::StepCheckFailed,
        Self::StepDone,
        Self::ApprovalRequested,
        Self::ApprovalGranted,
        Self::ApprovalRejected,
        Self::ApprovalVoided,
        Self::ApprovalReasked,
        Self::ApprovalUnbacked,
        Self::ApprovalRefused,
        Self::LockTakenOver,
        Self::CommandRefused,
        Self::RunExpired,
        Self::ApprovalReminded,
        Self::ApprovalExpired,
        Self::PlanUpFront,
        Self::ApprovalGrantedAll,
    ];

    /// The stored text (`run.started`): hashed into the chain, never to change.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunStarted => "run.started",
            Self::RunRefused => "run.refused",
            Self::RunResumed => "run.resumed",
            Self::RunTakenOver => "run.taken_over",
            Self::RunTakeoverRequested => "run.takeover_requested",
            Self::RunTakeoverRefused => "run.takeover_refused",
            Self::RunBreakGlass => "run.break_glass",
            Self::RunCancelRequested => "run.cancel_requested",
            Self::RunDone => "run.done",
            Self::RunFailed => "run.failed",
            Self::RunRejected => "run.rejected",
            Self::RunCancelled => "run.cancelled",
            Self::RunExpired => "run.expired",
            Self::StepPlanned => "step.planned",
            Self::StepAlreadyDone => "step.already_done",
            Self::StepParked => "step.parked",
            Self::StepUnparked => "step.unparked",
            Self::StepPlanChanged => "step.plan_changed",
            Self::StepApplied => "step.applied",
            Self::StepCheckFailed => "step.check_failed",
            Self::StepDone => "step.done",
            Self::ApprovalRequested => "approval.requested",
            Self::ApprovalGranted => "approval.granted",
            Self::ApprovalRejected => "approval.rejected",
            Self::ApprovalVoided => "approval.voided",
            Self::ApprovalReasked => "approval.reasked",
            Self::ApprovalUnbacked => "approval.unbacked",
            Self::ApprovalRefused => "approval.refused",
            Self::ApprovalReminded => "approval.reminded",
            Self::ApprovalExpired => "approval.expired",
            Self::PlanUpFront => "plan.up_front",
            Self::ApprovalGrantedAll => "approval.granted_all",
            Self::LockTakenOver => "lock.taken_over",
            Self::CommandRefused => "command.refused",
        }
    }

    /// The kind of a stored text; `None` for one this version does not write (an older or
    /// newer version's, or a test's own).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AuditKind> for String {
    fn from(k: AuditKind) -> Self {
        k.as_str().to_owned()
    }
}

impl PartialEq<AuditKind> for String {
    fn eq(&self, k: &AuditKind) -> bool {
        self == k.as_str()
    }
}

/// How an event came out. Refusals record their reason instead (an [`ApprovalRefusal`]'s key,
/// a command's), as text.
///
/// [`ApprovalRefusal`]: crate::messages::ApprovalRefusal
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Done,
    Failed,
    Rejected,
    Cancelled,
    Approved,
    Refused,
    Waiting,
    DryRun,
    WouldRefuse,
    PlanChanged,
    Locked,
    NotOnRecord,
    Expired,
}

impl Outcome {
    pub const ALL: [Outcome; 14] = [
        Self::Ok,
        Self::Done,
        Self::Failed,
        Self::Rejected,
        Self::Cancelled,
        Self::Approved,
        Self::Refused,
        Self::Waiting,
        Self::DryRun,
        Self::WouldRefuse,
        Self::PlanChanged,
        Self::Locked,
        Self::NotOnRecord,
        Self::Expired,
    ];

    /// The stored text (`ok`): hashed into the chain, never to change.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::Approved => "approved",
            Self::Refused => "refused",
            Self::Waiting => "waiting",
            Self::DryRun => "dry_run",
            Self::WouldRefuse => "would_refuse",
            Self::PlanChanged => "plan_changed",
            Self::Locked => "locked",
            Self::NotOnRecord => "not_on_record",
            Self::Expired => "expired",
        }
    }

    /// The outcome of a stored text; `None` for a refusal's reason or another version's.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Outcome> for String {
    fn from(o: Outcome) -> Self {
        o.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every kind and outcome as stored before they were types: events already in
    /// the chain are hashed over it, so a change here would break every old event's hash.
    #[test]
    fn kinds_and_outcomes_keep_their_stored_text() {
        let kinds = [
            "run.started",
            "run.refused",
            "run.resumed",
            "run.taken_over",
            "run.takeover_requested",
            "run.takeover_refused",
            "run.break_glass",
            "run.cancel_requested",
            "run.done",
            "run.failed",
            "run.rejected",
            "run.cancelled",
            "step.planned",
            "step.already_done",
            "step.parked",
            "step.unparked",
            "step.plan_changed",
            "step.applied",
            "step.check_failed",
            "step.done",
            "approval.requested",
            "approval.granted",
            "approval.rejected",
            "approval.voided",
            "approval.reasked",
            "approval.unbacked",
            "approval.refused",
            "lock.taken_over",
            "command.refused",
            "run.expired",
            "approval.reminded",
            "approval.expired",
            "plan.up_front",
            "approval.granted_all",
        ];
        assert_eq!(AuditKind::ALL.map(AuditKind::as_str), kinds);
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
            assert_eq!(String::from(k), k.to_string());
        }
        let outcomes = [
            "ok",
            "done",
            "failed",
            "rejected",
            "cancelled",
            "approved",
            "refused",
            "waiting",
            "dry_run",
            "would_refuse",
            "plan_changed",
            "locked",
            "not_on_record",
            "expired",
        ];
        assert_eq!(Outcome::ALL.map(Outcome::as_str), outcomes);
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(AuditKind::parse("test.appended"), None);
        assert_eq!(Outcome::parse("not_approver"), None);
    }
}
