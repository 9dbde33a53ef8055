//! Judging each expected record from every server's answers, into the domain's report.

use super::diagnose::{diagnose, zone_lines};
use super::report::{Severity, txt_has_tag};
use super::*;

/// Judges one expected record from one server's answers (`obs`: every answer, for what a
/// CNAME's target holds).
fn judge(
    e: &Expected,
    answers: &BTreeMap<(String, Rtype), Answer>,
    obs: &Observations,
) -> (Status, String, Option<u32>) {
    let get = |t: Rtype| {
        answers
            .get(&(e.name.clone(), t))
            .cloned()
            .unwrap_or(Answer::Timeout)
    };
    let cname = match get(Rtype::CNAME) {
        Answer::Records { values, ttl, .. } => values.into_iter().next().map(|t| (t, ttl)),
        _ => None,
    };
    let mut main = get(e.rtype);
    // An authoritative server cannot follow a CNAME out of its zone (it refuses the target):
    // what the target holds is then looked up where it is known.
    if let Some((target, _)) = &cname
        && main.is_server_trouble()
        && let Some(Answer::Records { values, ttl, .. }) = known(obs, target, e.rtype)
    {
        main = Answer::Records {
            values: values.clone(),
            ttl: *ttl,
            via: Some(target.clone()),
        };
    }
    let text = main.describe();
    if let (Want::AOrCname { ip, target }, Some((to, ttl))) = (&e.want, &cname) {
        let (status, text) = if to == target {
            (Status::Ok, format!("CNAME {to}"))
        } else {
            match &main {
                Answer::Records { values, .. } => (
                    if *values == [ip.clone()] {
                        Status::Ok
                    } else {
                        Status::WrongValue
                    },
                    format!("CNAME {to} → {}", values.join(", ")),
                ),
                a => (Status::WrongValue, format!("CNAME {to} → {}", a.describe())),
            }
        };
        return (status, text, Some(*ttl));
    }
    match (&e.want, &main) {
        (_, a) if a.is_server_trouble() => (Status::ServerTrouble, text, None),
        (Want::Values(want), Answer::Records { values, ttl, .. }) => {
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
        (Want::AOrCname { ip, .. }, Answer::Records { values, ttl, .. }) => (
            if *values == [ip.clone()] {
                Status::Ok
            } else {
                Status::WrongValue
            },
            text,
            Some(*ttl),
        ),
        (Want::TxtTag { tag, .. }, Answer::Records { values, ttl, .. }) => {
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
            let (status, text, t) = judge(e, answers, obs);
            found.push((*server, *role, text));
            if *role == Role::Authoritative {
                ttl = ttl.or(t);
            }
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
            problems: Vec::new(),
        });
    }
    let findings = diagnose(domain, expected, obs, &records, pattern.snippet_ttl);
    // A row shows every problem that names it, and is never ok beside one.
    for r in &mut records {
        let key = r.key();
        let mine: Vec<&Diagnosis> = findings
            .iter()
            .map(|f| &f.diagnosis)
            .filter(|d| d.record.as_ref() == Some(&key))
            .collect();
        r.problems = mine.iter().map(|d| d.problem.clone()).collect();
        if mine.iter().any(|d| d.severity == Severity::Blocking) {
            if r.status.holds() {
                r.status = Status::Invalid;
            }
        } else if !mine.is_empty() && r.status == Status::Ok {
            r.status = Status::Warning;
        }
    }
    let (snippet, remove) = zone_lines(&findings);
    Report {
        domain: domain.to_owned(),
        records,
        diagnoses: findings.into_iter().map(|f| f.diagnosis).collect(),
        snippet,
        remove,
    }
}
