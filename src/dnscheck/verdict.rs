//! Judging each expected record from every server's answers, into the domain's report.

use super::diagnose::{diagnose, snippet_lines};
use super::report::txt_has_tag;
use super::*;

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
            problems: Vec::new(),
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
        remove: Vec::new(),
    }
}
