//! The verdict on each expected record, from every server's answers, and the domain's report.

use std::net::SocketAddr;

use serde::Serialize;

use super::diagnose::{diagnose, snippet_lines};
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

/// Judges one expected record from one server's answers.
fn judge(
    e: &Expected,
    answers: &BTreeMap<(String, Rtype), Answer>,
) -> (Status, String, Option<u32>) {
    let get = |t: Rtype| {
        answers
            .get(&(e.name.clone(), t))
            .cloned()
            .unwrap_or(Answer::Timeout)
    };
    let main = get(e.rtype);
    let text = main.describe();
    match (&e.want, &main) {
        (_, a) if a.is_server_trouble() => (Status::ServerTrouble, text, None),
        (Want::Values(want), Answer::Records { values, ttl }) => {
            let mut got = values.clone();
            got.sort();
            let mut w = want.clone();
            w.sort();
            (
                if got == w {
                    Status::Ok
                } else {
                    Status::WrongValue
                },
                text,
                Some(*ttl),
            )
        }
        (Want::AOrCname { ip, target }, _) => {
            if let Answer::Records { values, ttl } = get(Rtype::CNAME) {
                let ok = values.iter().any(|v| v == target);
                return (
                    if ok { Status::Ok } else { Status::WrongValue },
                    format!("CNAME {}", values.join(", ")),
                    Some(ttl),
                );
            }
            match main {
                Answer::Records { values, ttl } => (
                    if values == vec![ip.clone()] {
                        Status::Ok
                    } else {
                        Status::WrongValue
                    },
                    text,
                    Some(ttl),
                ),
                _ => (Status::Missing, text, None),
            }
        }
        (Want::TxtTag { tag, .. }, Answer::Records { values, ttl }) => {
            let tagged = values.iter().any(|v| txt_has_tag(v, tag));
            (
                if tagged { Status::Ok } else { Status::Missing },
                text,
                Some(*ttl),
            )
        }
        _ => (Status::Missing, text, None),
    }
}

pub(super) fn txt_has_tag(v: &str, tag: &str) -> bool {
    let v = v.trim_start();
    v.len() >= tag.len()
        && v[..tag.len()].eq_ignore_ascii_case(tag)
        && v[tag.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == ';')
}

/// Builds the report of one domain from every server's answers.
pub fn evaluate(
    domain: &str,
    expected: &[Expected],
    obs: &Observations,
    pattern: &MailPattern,
) -> Report {
    let mut records = Vec::new();
    for e in expected {
        let mut found = Vec::new();
        let mut auth_statuses = Vec::new();
        let mut rec_statuses = Vec::new();
        let mut ttl = None;
        for ((server, role), answers) in obs {
            let (status, text, t) = judge(e, answers);
            found.push((*server, *role, text));
            ttl = ttl.or(t);
            match role {
                Role::Authoritative => auth_statuses.push(status),
                Role::Recursive => rec_statuses.push(status),
            }
        }
        let usable: Vec<Status> = auth_statuses
            .iter()
            .copied()
            .filter(|s| *s != Status::ServerTrouble)
            .collect();
        let status = if usable.is_empty() {
            Status::ServerTrouble
        } else if let Some(bad) = usable.iter().find(|s| **s != Status::Ok) {
            *bad
        } else if rec_statuses
            .iter()
            .any(|s| !matches!(s, Status::Ok | Status::ServerTrouble))
        {
            Status::NotYetPropagated
        } else {
            Status::Ok
        };
        records.push(RecordReport {
            expected: e.clone(),
            status,
            found,
            ttl,
        });
    }
    let diagnoses = diagnose(domain, expected, obs, &records);
    let snippet = records
        .iter()
        .filter(|r| matches!(r.status, Status::Missing | Status::WrongValue))
        .flat_map(|r| snippet_lines(&r.expected, pattern.snippet_ttl))
        .collect();
    Report {
        domain: domain.to_owned(),
        records,
        diagnoses,
        snippet,
    }
}
