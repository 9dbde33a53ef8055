//! /dns-check's pure logic: the records a Provider's domain must have, the follow-up queries
//! their answers call for, and what the answers of each server mean (ok, missing, wrong value,
//! invalid, not yet propagated, server trouble), with a one-line fix per problem and the
//! zone-file lines of what to add and what to remove.
//!
//! Queries live in `adapters::dns`; everything here is a function of its inputs.
//!
//! - this file: the record types, the brand-mail pattern, the records a domain needs and the
//!   answers servers give;
//! - `report.rs`: the result: each record's status, the problems, the domain's report;
//! - `verdict.rs`: judging each record from every server's answers;
//! - `diagnose.rs`: the usual mistakes, each with its fix, and the zone snippet;
//! - `render.rs`: the report as text.

mod diagnose;
mod render;
mod report;
mod verdict;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::domain::{DomainName, MailPlan};

pub use diagnose::{
    SpfCount, ZoneLine, check_dmarc, spf_lookups, spf_lookups_through, zone_file_lines,
};
pub use render::{Problem, Row, Verdict, View, render, table, view};
pub use report::{Diagnosis, RecordReport, Report, Severity, Status};
pub use verdict::evaluate;

/// The record types the runbook uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Rtype {
    A,
    AAAA,
    CNAME,
    MX,
    TXT,
}

impl fmt::Display for Rtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The brand-mail pattern (runbook: agency-brands.conf), from config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailPattern {
    /// MX records for a mailbox on the domain, `preference host`; `{domain}` is replaced.
    pub mx: Vec<String>,
    /// The SPF record a mailbox domain publishes.
    pub spf: String,
    /// DKIM selector: the key is published at `{selector}._domainkey.{domain}`.
    pub dkim_selector: String,
    /// DMARC policy published at `_dmarc.{domain}`.
    pub dmarc: String,
    /// MX records of the inbound forwarder (forwarding-only plan).
    pub forwarding_mx: Vec<String>,
    /// SPF record of a forwarding-only domain.
    pub forwarding_spf: String,
    /// TTL used in the zone-file snippet of missing records.
    pub snippet_ttl: u32,
}

impl Default for MailPattern {
    fn default() -> Self {
        Self {
            mx: vec!["10 mail.{domain}".into()],
            spf: "v=spf1 mx -all".into(),
            dkim_selector: "default".into(),
            dmarc: "v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}".into(),
            forwarding_mx: vec![
                "10 mx1.forwardemail.net".into(),
                "20 mx2.forwardemail.net".into(),
            ],
            forwarding_spf: "v=spf1 include:spf.forwardemail.net -all".into(),
            snippet_ttl: 300,
        }
    }
}

/// What a record must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Want {
    /// Exactly these values (order does not matter).
    Values(Vec<String>),
    /// An A record with this address, or a CNAME to `target` (for www).
    AOrCname { ip: String, target: String },
    /// A TXT record starting with this tag (`v=spf1`, `v=DKIM1`, `v=DMARC1`); `suggest` is the
    /// value to publish when it is missing.
    TxtTag { tag: &'static str, suggest: String },
}

/// One expected record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// Owner name, lowercase, without the final dot.
    pub name: String,
    pub rtype: Rtype,
    pub want: Want,
    /// Why it is needed, for people.
    pub purpose: &'static str,
}

/// The expected record set of one domain.
pub fn expected_records(
    domain: &DomainName,
    ipv4: std::net::Ipv4Addr,
    ipv6: Option<std::net::Ipv6Addr>,
    mail: MailPlan,
    pattern: &MailPattern,
) -> Vec<Expected> {
    let apex = domain.as_str().to_owned();
    let www = domain.www().as_str().to_owned();
    let fill = |s: &str| s.replace("{domain}", &apex);
    let mut out = vec![
        Expected {
            name: apex.clone(),
            rtype: Rtype::A,
            want: Want::Values(vec![ipv4.to_string()]),
            purpose: "apex → the VPS",
        },
        Expected {
            name: www.clone(),
            rtype: Rtype::A,
            want: Want::AOrCname {
                ip: ipv4.to_string(),
                target: apex.clone(),
            },
            purpose: "www → the VPS (or a CNAME to the apex)",
        },
    ];
    if let Some(v6) = ipv6 {
        for name in [&apex, &www] {
            out.push(Expected {
                name: name.clone(),
                rtype: Rtype::AAAA,
                want: Want::Values(vec![v6.to_string()]),
                purpose: "IPv6 → the VPS",
            });
        }
    }
    match mail {
        MailPlan::None => {}
        MailPlan::Mailbox => {
            out.push(Expected {
                name: apex.clone(),
                rtype: Rtype::MX,
                want: Want::Values(pattern.mx.iter().map(|m| normalize_mx(&fill(m))).collect()),
                purpose: "mail for the domain",
            });
            out.push(Expected {
                name: apex.clone(),
                rtype: Rtype::TXT,
                want: Want::TxtTag {
                    tag: "v=spf1",
                    suggest: fill(&pattern.spf),
                },
                purpose: "SPF: who may send as the domain",
            });
            out.push(Expected {
                name: format!("{}._domainkey.{apex}", pattern.dkim_selector),
                rtype: Rtype::TXT,
                want: Want::TxtTag {
                    tag: "v=DKIM1",
                    suggest: "v=DKIM1; k=rsa; p=<public key from the mail server>".into(),
                },
                purpose: "DKIM signing key",
            });
            out.push(Expected {
                name: format!("_dmarc.{apex}"),
                rtype: Rtype::TXT,
                want: Want::TxtTag {
                    tag: "v=DMARC1",
                    suggest: fill(&pattern.dmarc),
                },
                purpose: "DMARC policy",
            });
        }
        MailPlan::Forwarding => {
            out.push(Expected {
                name: apex.clone(),
                rtype: Rtype::MX,
                want: Want::Values(
                    pattern
                        .forwarding_mx
                        .iter()
                        .map(|m| normalize_mx(&fill(m)))
                        .collect(),
                ),
                purpose: "inbound forwarding",
            });
            out.push(Expected {
                name: apex.clone(),
                rtype: Rtype::TXT,
                want: Want::TxtTag {
                    tag: "v=spf1",
                    suggest: fill(&pattern.forwarding_spf),
                },
                purpose: "SPF for the forwarder",
            });
        }
    }
    out
}

/// `10 mail.example.com.` → `10 mail.example.com`.
pub fn normalize_mx(s: &str) -> String {
    let mut parts = s.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(p), Some(h)) => format!("{p} {}", h.trim_end_matches('.').to_ascii_lowercase()),
        _ => s.trim().to_owned(),
    }
}

/// The queries needed to judge `expected`: each record, and the CNAME at each of its names
/// (a CNAME is followed, or is a problem beside other records).
pub fn queries(expected: &[Expected]) -> Vec<(String, Rtype)> {
    let mut q: Vec<(String, Rtype)> = Vec::new();
    for e in expected {
        q.push((e.name.clone(), e.rtype));
        q.push((e.name.clone(), Rtype::CNAME));
    }
    q.sort();
    q.dedup();
    q
}

/// Whether `name` is in the zone of `domain` (the apex or below it): its authoritative
/// servers answer for it; other names are asked of the resolvers.
pub fn in_zone(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

/// The answer to `(name, t)`: the first usable one from an authoritative server, else from a
/// resolver (names out of the zone are asked of the resolvers). `None`: nobody could say.
fn known<'a>(obs: &'a Observations, name: &str, t: Rtype) -> Option<&'a Answer> {
    let key = (name.to_owned(), t);
    [Role::Authoritative, Role::Recursive]
        .into_iter()
        .flat_map(|role| {
            obs.iter()
                .filter(move |((_, r), _)| *r == role)
                .filter_map(|(_, answers)| answers.get(&key))
        })
        .find(|a| !a.is_server_trouble())
}

/// The values of a known answer (empty for no data or no such name); `None` when unknown.
fn known_values(obs: &Observations, name: &str, t: Rtype) -> Option<Vec<String>> {
    match known(obs, name, t)? {
        Answer::Records { values, .. } => Some(values.clone()),
        _ => Some(Vec::new()),
    }
}

/// The queries the first answers call for, beyond [`queries`]: what a CNAME's target holds,
/// the addresses of the MX targets, the SPF records its includes and redirect name (RFC 7208
/// §4.6.4), and the authorization of each other domain DMARC reports go to (RFC 7489 §7.1).
/// Asked again with the new answers until nothing new comes up.
pub fn follow_ups(domain: &str, expected: &[Expected], obs: &Observations) -> Vec<(String, Rtype)> {
    let mut q: Vec<(String, Rtype)> = Vec::new();
    for e in expected {
        if let Some(target) =
            known_values(obs, &e.name, Rtype::CNAME).and_then(|v| v.into_iter().next())
        {
            q.push((target, e.rtype));
        }
        match (&e.want, e.rtype) {
            (_, Rtype::MX) => {
                for mx in known_values(obs, &e.name, Rtype::MX).unwrap_or_default() {
                    let host = mx_host(&mx).to_owned();
                    q.push((host.clone(), Rtype::A));
                    q.push((host, Rtype::AAAA));
                }
            }
            (Want::TxtTag { tag: "v=spf1", .. }, _) => {
                for spf in known_values(obs, &e.name, Rtype::TXT)
                    .unwrap_or_default()
                    .iter()
                    .filter(|v| report::txt_has_tag(v, "v=spf1"))
                {
                    let count =
                        diagnose::spf_lookups_through(spf, &|n| known_values(obs, n, Rtype::TXT));
                    q.extend(count.unresolved.into_iter().map(|n| (n, Rtype::TXT)));
                }
            }
            (
                Want::TxtTag {
                    tag: "v=DMARC1", ..
                },
                _,
            ) => {
                for dmarc in known_values(obs, &e.name, Rtype::TXT)
                    .unwrap_or_default()
                    .iter()
                    .filter(|v| report::txt_has_tag(v, "v=DMARC1"))
                {
                    q.extend(
                        diagnose::dmarc_report_domains(dmarc, domain)
                            .into_iter()
                            .map(|d| (dmarc_authorization(domain, &d), Rtype::TXT)),
                    );
                }
            }
            _ => {}
        }
    }
    q.sort();
    q.dedup();
    q
}

/// Where `receiver` authorizes DMARC reports about `domain` (RFC 7489 §7.1).
pub fn dmarc_authorization(domain: &str, receiver: &str) -> String {
    format!("{domain}._report._dmarc.{receiver}")
}

/// The host of a normalised MX value (`10 mail.example.com` → `mail.example.com`).
fn mx_host(mx: &str) -> &str {
    mx.split_once(' ').map_or(mx, |(_, h)| h)
}

/// What one server said to one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Answer {
    /// Records of the asked type (values normalised), and their smallest TTL.
    Records {
        values: Vec<String>,
        ttl: u32,
        /// The name that holds them when it is not the name asked about: the records were
        /// reached through a CNAME there. `None`: the asked name holds them itself.
        via: Option<String>,
    },
    /// The name exists but has no record of this type.
    NoData,
    /// The name does not exist at all.
    NxDomain,
    ServFail,
    Refused,
    Timeout,
    /// Could not talk to the server (connection refused, network unreachable).
    Unreachable(String),
}

impl Answer {
    fn is_server_trouble(&self) -> bool {
        matches!(
            self,
            Answer::ServFail | Answer::Refused | Answer::Timeout | Answer::Unreachable(_)
        )
    }

    fn describe(&self) -> String {
        match self {
            Answer::Records { values, ttl, .. } => format!("{} (TTL {ttl})", values.join(", ")),
            Answer::NoData => "no record of this type (the name exists)".into(),
            Answer::NxDomain => "NXDOMAIN (the name does not exist)".into(),
            Answer::ServFail => "SERVFAIL".into(),
            Answer::Refused => "REFUSED".into(),
            Answer::Timeout => "timed out".into(),
            Answer::Unreachable(e) => format!("unreachable: {e}"),
        }
    }
}

/// Whether a server is authoritative for the zone or a recursive resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Role {
    Authoritative,
    Recursive,
}

/// Every answer: (server, role) → (name, type) → answer.
pub type Observations = BTreeMap<(SocketAddr, Role), BTreeMap<(String, Rtype), Answer>>;

#[cfg(test)]
pub(crate) mod tests;
