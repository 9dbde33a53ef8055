//! The check's result: each record's status, the problems found with their fixes, and the
//! domain's whole report. Plain data, read by the verdicts, the diagnoses and the rendering.

use serde::Serialize;

use super::*;

/// The verdict on one expected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// It holds on every server.
    Ok,
    /// No record of this kind at the name.
    Missing,
    /// Records of this type exist, with other values than expected.
    WrongValue,
    /// The record is there with an acceptable value, but a blocking problem names it (two SPF
    /// records, a DMARC record that does not parse, a CNAME beside it, an MX target without an
    /// address): `RecordReport::problems` says what.
    Invalid,
    /// It holds, but a warning names it (`RecordReport::problems`); nothing waits for it.
    Warning,
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
            Status::Invalid => "invalid",
            Status::Warning => "warning",
            Status::NotYetPropagated => "not yet propagated",
            Status::ServerTrouble => "server trouble",
        }
    }

    /// The record needs nothing more from a person (it may still be propagating or carry a
    /// warning).
    pub fn holds(self) -> bool {
        matches!(
            self,
            Status::Ok | Status::Warning | Status::NotYetPropagated
        )
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct RecordReport {
    /// The record the runbook needs.
    pub expected: Expected,
    /// The verdict over every server; never `Ok` while `problems` is not empty.
    pub status: Status,
    /// Per server: what it answered.
    pub found: Vec<(SocketAddr, Role, String)>,
    /// The smallest TTL an authoritative server gave, when it has the record.
    pub ttl: Option<u32>,
    /// The `problem` of each of `Report::diagnoses` that names this row (its `record`), in
    /// the same order: what a row shows beside its status.
    pub problems: Vec<String>,
}

impl RecordReport {
    /// The key a `Diagnosis::record` uses for this row.
    pub fn key(&self) -> (String, Rtype) {
        (self.expected.name.clone(), self.expected.rtype)
    }
}

/// How much a problem matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    /// The domain is wrong: a run parks until it is fixed, and the check fails.
    Blocking,
    /// A recursive resolver's trouble (down, refusing, failing): not the zone's fault, so a
    /// run does not wait for it, but the check is not all ok either.
    Resolver,
    /// Worth fixing, but nothing fails or waits for it (DMARC reports sent to another domain
    /// that has not authorized them).
    Warning,
}

/// A problem found, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The DNS name the problem is at (the domain itself for server trouble).
    pub name: String,
    /// What is wrong, one line.
    pub problem: String,
    /// What a person does about it, one line.
    pub fix: String,
    /// Whether it parks a run, fails the check, or only warns.
    pub severity: Severity,
    /// The row of `Report::records` it is about, as (name, type), if any (server trouble is
    /// about none).
    pub record: Option<(String, Rtype)>,
}

impl Diagnosis {
    /// A run waits until it is fixed.
    pub fn blocking(&self) -> bool {
        self.severity == Severity::Blocking
    }
}

/// The whole check of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The domain checked.
    pub domain: String,
    /// One row per record the runbook needs, in `expected_records` order.
    pub records: Vec<RecordReport>,
    /// Every problem found, each with its fix.
    pub diagnoses: Vec<Diagnosis>,
    /// Records to add at the DNS provider, as zone-file lines: the missing ones, and the new
    /// value of each one to change (its old value is in `remove`). Aligned in columns together
    /// with `remove`.
    pub snippet: Vec<String>,
    /// Existing records to delete, as zone-file lines (what the servers answer today): the old
    /// values of records to change, extra SPF records, a CNAME beside other records.
    pub remove: Vec<String>,
}

impl Report {
    /// How many records are ok: they hold on every server, warnings or not (a warning waits
    /// for nothing). The one count every "n/m records ok" line shows.
    pub fn records_ok(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r.status, Status::Ok | Status::Warning))
            .count()
    }

    /// Every record holds on every authoritative server and no problem blocks (propagation
    /// and warnings are reported, not waited for).
    pub fn authoritative_ok(&self) -> bool {
        self.records.iter().all(|r| r.status.holds())
            && self.diagnoses.iter().all(|d| !d.blocking())
    }

    /// Every record holds everywhere and nothing but warnings is reported.
    pub fn all_ok(&self) -> bool {
        self.records
            .iter()
            .all(|r| matches!(r.status, Status::Ok | Status::Warning))
            && self
                .diagnoses
                .iter()
                .all(|d| d.severity == Severity::Warning)
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
