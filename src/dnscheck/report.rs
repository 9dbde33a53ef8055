//! The check's result: each record's status, the problems found with their fixes, and the
//! domain's whole report. Plain data, read by the verdicts, the diagnoses and the rendering.

use serde::Serialize;

use super::*;

/// The verdict on one expected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Ok,
    Missing,
    WrongValue,
    /// The authoritative servers have it; a recursive resolver does not yet.
    NotYetPropagated,
    /// No authoritative server gave a usable answer.
    ServerTrouble,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::WrongValue => "wrong value",
            Status::NotYetPropagated => "not yet propagated",
            Status::ServerTrouble => "server trouble",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    pub expected: Expected,
    pub status: Status,
    /// Per server: what it answered.
    pub found: Vec<(SocketAddr, Role, String)>,
    pub ttl: Option<u32>,
}

/// A problem found, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub name: String,
    /// The type of the expected record at `name` this problem is about, whose row shows it;
    /// `None` for a problem of the domain or a server.
    pub rtype: Option<Rtype>,
    pub problem: String,
    pub fix: String,
    /// False for trouble that does not make the domain wrong (a recursive resolver down).
    pub blocking: bool,
}

/// The whole check of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub domain: String,
    pub records: Vec<RecordReport>,
    pub diagnoses: Vec<Diagnosis>,
    /// Records to add or change, as zone-file lines.
    pub snippet: Vec<String>,
}

impl Report {
    /// Every record is ok on every authoritative server (propagation is reported, not waited for).
    pub fn authoritative_ok(&self) -> bool {
        self.records
            .iter()
            .all(|r| matches!(r.status, Status::Ok | Status::NotYetPropagated))
            && self.diagnoses.iter().all(|d| !d.blocking)
    }

    pub fn all_ok(&self) -> bool {
        self.records.iter().all(|r| r.status == Status::Ok) && self.diagnoses.is_empty()
    }
}

/// Whether a TXT value is a record of the kind `tag` starts (`v=spf1`, `v=DMARC1`).
pub(super) fn txt_has_tag(v: &str, tag: &str) -> bool {
    let v = v.trim_start();
    v.len() >= tag.len()
        && v[..tag.len()].eq_ignore_ascii_case(tag)
        && v[tag.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == ';')
}
