//! /dns-check's pure logic: the records a Provider's domain must have, and what the answers
//! of each server mean (ok, missing, wrong value, not yet propagated, server trouble), with a
//! one-line fix per problem and a zone-file snippet of what to add.
//!
//! Queries live in `adapters::dns`; everything here is a function of its inputs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::domain::{DomainName, MailPlan};

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

/// The queries needed to judge `expected` (CNAME at the apex and at www included).
pub fn queries(expected: &[Expected]) -> Vec<(String, Rtype)> {
    let mut q: Vec<(String, Rtype)> = Vec::new();
    for e in expected {
        q.push((e.name.clone(), e.rtype));
        if matches!(e.want, Want::AOrCname { .. })
            || (e.rtype == Rtype::A && matches!(e.want, Want::Values(_)))
        {
            q.push((e.name.clone(), Rtype::CNAME));
        }
    }
    q.sort();
    q.dedup();
    q
}

/// What one server said to one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Answer {
    /// Records of the asked type (values normalised), and their smallest TTL.
    Records {
        values: Vec<String>,
        ttl: u32,
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
            Answer::Records { values, ttl } => format!("{} (TTL {ttl})", values.join(", ")),
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

fn txt_has_tag(v: &str, tag: &str) -> bool {
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

fn snippet_lines(e: &Expected, ttl: u32) -> Vec<String> {
    let name = format!("{}.", e.name);
    match &e.want {
        Want::Values(values) => values
            .iter()
            .map(|v| match e.rtype {
                Rtype::MX => {
                    let (p, h) = v.split_once(' ').unwrap_or(("10", v));
                    format!("{name:<32} {ttl} IN MX    {p} {h}.")
                }
                t => format!("{name:<32} {ttl} IN {t:<5}  {v}"),
            })
            .collect(),
        Want::AOrCname { ip, .. } => vec![format!("{name:<32} {ttl} IN A      {ip}")],
        Want::TxtTag { suggest, .. } => {
            vec![format!("{name:<32} {ttl} IN TXT    {}", quote_txt(suggest))]
        }
    }
}

/// A TXT value in zone-file syntax, split into 255-byte strings.
fn quote_txt(v: &str) -> String {
    let escaped: Vec<String> = v
        .as_bytes()
        .chunks(255)
        .map(|c| {
            format!(
                "\"{}\"",
                String::from_utf8_lossy(c)
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
            )
        })
        .collect();
    escaped.join(" ")
}

/// The usual mistakes, each with its fix.
fn diagnose(
    domain: &str,
    expected: &[Expected],
    obs: &Observations,
    records: &[RecordReport],
) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let push_as =
        |out: &mut Vec<Diagnosis>, blocking: bool, name: &str, problem: String, fix: String| {
            let d = Diagnosis {
                name: name.to_owned(),
                problem,
                fix,
                blocking,
            };
            if !out.contains(&d) {
                out.push(d);
            }
        };
    // Server trouble, per server and query.
    for ((server, role), answers) in obs {
        let trouble: Vec<String> = answers
            .iter()
            .filter(|(_, a)| a.is_server_trouble())
            .map(|((n, t), a)| format!("{n} {t}: {}", a.describe()))
            .collect();
        if !trouble.is_empty() {
            let blocking = *role == Role::Authoritative;
            let role = if blocking {
                "authoritative"
            } else {
                "recursive"
            };
            push_as(
                &mut out,
                blocking,
                domain,
                format!("{role} server {server}: {}", trouble.join("; ")),
                match answers.values().find(|a| a.is_server_trouble()) {
                    Some(Answer::ServFail) => "the server cannot serve the zone: check the zone is loaded and valid there".into(),
                    Some(Answer::Refused) => "the server refuses: it is not authoritative for this zone, or refuses recursion".into(),
                    _ => "the server did not answer: check it is up and reachable on UDP and TCP port 53".into(),
                },
            );
        }
    }
    let push = |out: &mut Vec<Diagnosis>, name: &str, problem: String, fix: String| {
        push_as(out, true, name, problem, fix)
    };
    let auth: Vec<&BTreeMap<(String, Rtype), Answer>> = obs
        .iter()
        .filter(|((_, r), _)| *r == Role::Authoritative)
        .map(|(_, a)| a)
        .collect();
    let auth_answer = |name: &str, t: Rtype| -> Option<Answer> {
        auth.iter()
            .filter_map(|a| a.get(&(name.to_owned(), t)))
            .find(|a| !a.is_server_trouble())
            .cloned()
    };
    for r in records {
        let e = &r.expected;
        match (r.status, &e.want) {
            (Status::WrongValue, Want::Values(want)) if e.rtype == Rtype::A => {
                if let Some(Answer::Records { values, .. }) = auth_answer(&e.name, Rtype::A) {
                    push(
                        &mut out,
                        &e.name,
                        format!(
                            "A for {} points at {}, not the VPS {}",
                            e.name,
                            values.join(", "),
                            want.join(", ")
                        ),
                        format!("change the A record of {} to {}", e.name, want.join(", ")),
                    );
                }
            }
            (Status::WrongValue, Want::AOrCname { ip, target }) => push(
                &mut out,
                &e.name,
                format!(
                    "{} answers {}",
                    e.name,
                    r.found.first().map(|f| f.2.as_str()).unwrap_or("")
                ),
                format!(
                    "point {} at {ip} (A) or make it a CNAME to {target}",
                    e.name
                ),
            ),
            (Status::WrongValue, Want::Values(want)) => push(
                &mut out,
                &e.name,
                format!("{} {} does not match {}", e.name, e.rtype, want.join(", ")),
                format!(
                    "set the {} records of {} to {}",
                    e.rtype,
                    e.name,
                    want.join(", ")
                ),
            ),
            (Status::Missing, _) => {
                let what = match auth_answer(&e.name, e.rtype) {
                    Some(Answer::NxDomain) => "the name does not exist (NXDOMAIN)",
                    Some(Answer::NoData) => "the name exists but has no such record (no data)",
                    _ => "no matching record",
                };
                let fix = if e.name.contains("._domainkey.") {
                    let selector = e.name.split('.').next().unwrap_or("default");
                    format!(
                        "publish the DKIM key as TXT at {} (selector `{selector}`)",
                        e.name
                    )
                } else {
                    format!("add the {} record shown in the snippet below", e.rtype)
                };
                let problem = if e.name.contains("._domainkey.") {
                    format!("DKIM selector missing: {} {} — {what}", e.name, e.rtype)
                } else {
                    format!("{} {} missing ({}) — {what}", e.name, e.rtype, e.purpose)
                };
                push(&mut out, &e.name, problem, fix);
            }
            _ => {}
        }
    }
    // CNAME at the apex: forbidden next to SOA/NS/MX.
    if let Some(Answer::Records { values, .. }) = auth_answer(domain, Rtype::CNAME) {
        push(
            &mut out,
            domain,
            format!(
                "CNAME at the apex {domain} (→ {}): not allowed beside SOA, NS and MX",
                values.join(", ")
            ),
            "replace the apex CNAME by an A record to the VPS (ALIAS/flattening if the DNS host offers it)".into(),
        );
    }
    // SPF and DMARC syntax, two SPF records, the 10-lookup limit.
    for e in expected.iter().filter(|e| e.rtype == Rtype::TXT) {
        let Some(Answer::Records { values, .. }) = auth_answer(&e.name, Rtype::TXT) else {
            continue;
        };
        match &e.want {
            Want::TxtTag { tag: "v=spf1", .. } => {
                let spf: Vec<&String> =
                    values.iter().filter(|v| txt_has_tag(v, "v=spf1")).collect();
                if spf.len() > 1 {
                    push(
                        &mut out,
                        &e.name,
                        format!(
                            "{} SPF records at {} (receivers treat this as a permanent error)",
                            spf.len(),
                            e.name
                        ),
                        "merge them into a single `v=spf1 ...` TXT record".into(),
                    );
                }
                for v in spf {
                    match spf_lookups(v) {
                        Err(term) => push(
                            &mut out,
                            &e.name,
                            format!("SPF syntax error in `{v}`: `{term}` is not a valid SPF term"),
                            "fix the term (mechanisms: all, include:, a, mx, ptr, ip4:, ip6:, exists:; modifiers redirect=, exp=)"
                                .into(),
                        ),
                        Ok(n) if n > 10 => push(
                            &mut out,
                            &e.name,
                            format!("SPF needs {n} DNS lookups at the top level; the limit is 10"),
                            "flatten includes into ip4:/ip6: ranges or drop unused ones".into(),
                        ),
                        Ok(_) => {}
                    }
                }
            }
            Want::TxtTag {
                tag: "v=DMARC1", ..
            } => {
                for v in values.iter().filter(|v| txt_has_tag(v, "v=DMARC1")) {
                    if let Err(problem) = check_dmarc(v) {
                        push(
                            &mut out,
                            &e.name,
                            format!("DMARC `{v}`: {problem}"),
                            format!(
                                "publish e.g. `v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}`"
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Counts the DNS-querying terms of an SPF record (include, a, mx, ptr, exists, redirect);
/// `Err(term)` names the first term that is not valid SPF.
pub fn spf_lookups(record: &str) -> Result<usize, String> {
    let mut terms = record.split_whitespace();
    match terms.next() {
        Some(v) if v.eq_ignore_ascii_case("v=spf1") => {}
        other => return Err(other.unwrap_or("").to_owned()),
    }
    let mut lookups = 0;
    for term in terms {
        let t = term
            .trim_start_matches(['+', '-', '~', '?'])
            .to_ascii_lowercase();
        let (name, arg) = match t.find([':', '=', '/']) {
            Some(i) => (&t[..i], Some(&t[i..])),
            None => (t.as_str(), None),
        };
        let has_value = |a: Option<&str>| a.is_some_and(|a| a.len() > 1);
        let valid = match name {
            "all" => arg.is_none(),
            "include" | "exists" => arg.is_some_and(|a| a.starts_with(':')) && has_value(arg),
            "a" | "mx" | "ptr" => {
                arg.is_none_or(|a| (a.starts_with(':') || a.starts_with('/')) && a.len() > 1)
            }
            "ip4" | "ip6" => arg.is_some_and(|a| a.starts_with(':')) && has_value(arg),
            "redirect" | "exp" => arg.is_some_and(|a| a.starts_with('=')) && has_value(arg),
            // Unknown modifiers (name=value) are allowed by RFC 7208; unknown mechanisms are not.
            other => {
                arg.is_some_and(|a| a.starts_with('='))
                    && !other.is_empty()
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            }
        };
        if !valid || term.len() != term.trim().len() {
            return Err(term.to_owned());
        }
        if matches!(name, "include" | "a" | "mx" | "ptr" | "exists" | "redirect") {
            lookups += 1;
        }
    }
    Ok(lookups)
}

/// Checks a DMARC record's syntax: `v=DMARC1` first, then `p=` with a valid policy.
pub fn check_dmarc(record: &str) -> Result<(), String> {
    let tags: Vec<(String, String)> = record
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_ascii_lowercase(), v.trim().to_owned())),
            None => Err(format!("`{t}` is not a tag=value pair")),
        })
        .collect::<Result<_, _>>()?;
    if tags.first().is_none_or(|(k, v)| k != "v" || v != "DMARC1") {
        return Err("must start with v=DMARC1".into());
    }
    match tags.iter().find(|(k, _)| k == "p") {
        None => Err("has no p= policy tag (required)".into()),
        Some((_, p)) if !matches!(p.as_str(), "none" | "quarantine" | "reject") => {
            Err(format!("p={p} is not none, quarantine or reject"))
        }
        Some(_) if tags.get(1).is_none_or(|(k, _)| k != "p") => {
            Err("p= must come right after v=DMARC1".into())
        }
        Some(_) => Ok(()),
    }
}

/// The report as text for the console and chat.
pub fn render(report: &Report) -> String {
    let mut out = format!("DNS check for {}\n", report.domain);
    for r in &report.records {
        out.push_str(&format!(
            "  {:<4} {:<40} {:<5} {:<18} ttl {}\n",
            match r.status {
                Status::Ok => "ok",
                Status::NotYetPropagated => "wait",
                _ => "FAIL",
            },
            r.expected.name,
            r.expected.rtype.to_string(),
            r.status.as_str(),
            r.ttl.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
        ));
        for (server, role, text) in &r.found {
            let role = if *role == Role::Authoritative {
                "auth"
            } else {
                "recursive"
            };
            out.push_str(&format!("         {role:<9} {server:<21} {text}\n"));
        }
    }
    if !report.diagnoses.is_empty() {
        out.push_str("Problems:\n");
        for d in &report.diagnoses {
            out.push_str(&format!("  - {}\n    fix: {}\n", d.problem, d.fix));
        }
    }
    if !report.snippet.is_empty() {
        out.push_str("Add these records at the DNS provider:\n");
        for l in &report.snippet {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn recs(v: &[&str]) -> Answer {
        Answer::Records {
            values: v.iter().map(|s| s.to_string()).collect(),
            ttl: 300,
        }
    }

    fn setup(mail: MailPlan) -> (Vec<Expected>, MailPattern) {
        let p = MailPattern::default();
        (
            expected_records(
                &DomainName::parse("merche.com").unwrap(),
                "127.0.0.1".parse().unwrap(),
                None,
                mail,
                &p,
            ),
            p,
        )
    }

    fn good_answers() -> BTreeMap<(String, Rtype), Answer> {
        let mut a = BTreeMap::new();
        a.insert(("merche.com".into(), Rtype::A), recs(&["127.0.0.1"]));
        a.insert(("merche.com".into(), Rtype::CNAME), Answer::NoData);
        a.insert(("www.merche.com".into(), Rtype::A), recs(&["127.0.0.1"]));
        a.insert(
            ("www.merche.com".into(), Rtype::CNAME),
            recs(&["merche.com"]),
        );
        a.insert(
            ("merche.com".into(), Rtype::MX),
            recs(&["10 mail.merche.com"]),
        );
        a.insert(("merche.com".into(), Rtype::TXT), recs(&["v=spf1 mx -all"]));
        a.insert(
            ("default._domainkey.merche.com".into(), Rtype::TXT),
            recs(&["v=DKIM1; k=rsa; p=abc"]),
        );
        a.insert(
            ("_dmarc.merche.com".into(), Rtype::TXT),
            recs(&["v=DMARC1; p=quarantine"]),
        );
        a
    }

    #[test]
    fn a_correct_zone_passes() {
        let (exp, p) = setup(MailPlan::Mailbox);
        let mut obs = Observations::new();
        obs.insert((server(53), Role::Authoritative), good_answers());
        let r = evaluate("merche.com", &exp, &obs, &p);
        assert!(r.all_ok(), "{}", render(&r));
        assert!(r.snippet.is_empty());
    }

    #[test]
    fn broken_variants_get_their_diagnosis() {
        let (exp, p) = setup(MailPlan::Mailbox);
        type Breaker = Box<dyn Fn(&mut BTreeMap<(String, Rtype), Answer>)>;
        let cases: Vec<(Breaker, &str)> = vec![
            (
                Box::new(|a| {
                    a.insert(("merche.com".into(), Rtype::A), recs(&["10.9.9.9"]));
                }),
                "points at 10.9.9.9, not the VPS 127.0.0.1",
            ),
            (
                Box::new(|a| {
                    a.insert(
                        ("merche.com".into(), Rtype::CNAME),
                        recs(&["elsewhere.net"]),
                    );
                }),
                "CNAME at the apex",
            ),
            (
                Box::new(|a| {
                    a.insert(
                        ("merche.com".into(), Rtype::TXT),
                        recs(&["v=spf1 mx -all", "v=spf1 a -all"]),
                    );
                }),
                "2 SPF records",
            ),
            (
                Box::new(|a| {
                    a.insert(("merche.com".into(), Rtype::TXT), recs(&["v=spf1 include:a include:b include:c include:d include:e include:f a mx ptr exists:x include:g -all"]));
                }),
                "11 DNS lookups",
            ),
            (
                Box::new(|a| {
                    a.insert(
                        ("merche.com".into(), Rtype::TXT),
                        recs(&["v=spf1 mx bogus -all"]),
                    );
                }),
                "`bogus` is not a valid SPF term",
            ),
            (
                Box::new(|a| {
                    a.insert(
                        ("_dmarc.merche.com".into(), Rtype::TXT),
                        recs(&["v=DMARC1; rua=mailto:x@merche.com"]),
                    );
                }),
                "has no p= policy",
            ),
            (
                Box::new(|a| {
                    a.insert(
                        ("default._domainkey.merche.com".into(), Rtype::TXT),
                        Answer::NxDomain,
                    );
                }),
                "DKIM selector missing",
            ),
            (
                Box::new(|a| {
                    a.insert(("www.merche.com".into(), Rtype::A), Answer::NoData);
                    a.insert(("www.merche.com".into(), Rtype::CNAME), Answer::NoData);
                }),
                "no such record (no data)",
            ),
            (
                Box::new(|a| {
                    a.insert(("www.merche.com".into(), Rtype::A), Answer::NxDomain);
                    a.insert(("www.merche.com".into(), Rtype::CNAME), Answer::NxDomain);
                }),
                "does not exist (NXDOMAIN)",
            ),
        ];
        for (breakit, want) in cases {
            let mut a = good_answers();
            breakit(&mut a);
            let mut obs = Observations::new();
            obs.insert((server(53), Role::Authoritative), a);
            let r = evaluate("merche.com", &exp, &obs, &p);
            assert!(!r.all_ok());
            let text = render(&r);
            assert!(text.contains(want), "expected {want:?} in:\n{text}");
        }
    }

    #[test]
    fn propagation_and_server_trouble_are_per_server() {
        let (exp, p) = setup(MailPlan::None);
        let mut obs = Observations::new();
        obs.insert((server(53), Role::Authoritative), good_answers());
        let mut stale = good_answers();
        stale.insert(("merche.com".into(), Rtype::A), Answer::NxDomain);
        obs.insert((server(54), Role::Recursive), stale);
        let dead: BTreeMap<_, _> = good_answers()
            .into_keys()
            .map(|k| (k, Answer::Timeout))
            .collect();
        obs.insert((server(55), Role::Recursive), dead);
        let r = evaluate("merche.com", &exp, &obs, &p);
        assert_eq!(r.records[0].status, Status::NotYetPropagated);
        assert!(r.authoritative_ok());
        assert!(
            render(&r).contains("recursive server 127.0.0.1:55"),
            "{}",
            render(&r)
        );
    }

    #[test]
    fn missing_records_become_a_zone_snippet() {
        let (exp, p) = setup(MailPlan::Mailbox);
        let mut obs = Observations::new();
        let none: BTreeMap<_, _> = good_answers()
            .into_keys()
            .map(|k| (k, Answer::NxDomain))
            .collect();
        obs.insert((server(53), Role::Authoritative), none);
        let r = evaluate("merche.com", &exp, &obs, &p);
        let s = r.snippet.join("\n");
        assert!(
            s.contains("merche.com.") && s.contains("IN A      127.0.0.1"),
            "{s}"
        );
        assert!(s.contains("IN MX    10 mail.merche.com."), "{s}");
        assert!(
            s.contains("_dmarc.merche.com.")
                && s.contains("\"v=DMARC1; p=quarantine; rua=mailto:dmarc@merche.com\""),
            "{s}"
        );
    }

    #[test]
    fn spf_and_dmarc_parsers() {
        assert_eq!(
            spf_lookups("v=spf1 ip4:1.2.3.0/24 include:_spf.x.com mx -all"),
            Ok(2)
        );
        assert_eq!(spf_lookups("v=spf1 a/24 mx:mail.x.com ~all"), Ok(2));
        assert!(spf_lookups("v=spf2 -all").is_err());
        assert!(spf_lookups("v=spf1 include -all").is_err());
        assert!(check_dmarc("v=DMARC1; p=reject").is_ok());
        assert!(check_dmarc("v=DMARC1; p=maybe").is_err());
        assert!(check_dmarc("p=reject; v=DMARC1").is_err());
    }
}
