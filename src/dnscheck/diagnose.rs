//! The usual mistakes (a record at the wrong name, a second SPF, a DMARC that does not parse,
//! an MX target without an address, a CNAME beside other records, ...), each with its fix and
//! the zone-file lines to add and to remove.

use super::report::{Severity, txt_has_tag};
use super::*;

/// One record in zone-file terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ZoneRec {
    name: String,
    ttl: u32,
    rtype: Rtype,
    /// The value in zone-file syntax (names with their final dot, TXT quoted).
    value: String,
}

impl ZoneRec {
    /// A record with a value as the checker holds it (normalised, see `Answer::Records`).
    fn new(name: &str, ttl: u32, rtype: Rtype, value: &str) -> Self {
        let value = match rtype {
            Rtype::CNAME => format!("{value}."),
            Rtype::MX => match value.split_once(' ') {
                Some((p, h)) => format!("{p} {h}."),
                None => format!("10 {value}."),
            },
            Rtype::TXT => quote_txt(value),
            Rtype::A | Rtype::AAAA => value.to_owned(),
        };
        Self {
            name: name.to_owned(),
            ttl,
            rtype,
            value,
        }
    }
}

/// A problem with its fix, and the records the fix adds and removes.
pub(super) struct Finding {
    pub diagnosis: Diagnosis,
    add: Vec<ZoneRec>,
    remove: Vec<ZoneRec>,
}

/// What to publish for a record that is missing or wrong.
fn wanted(e: &Expected, ttl: u32) -> Vec<ZoneRec> {
    match &e.want {
        Want::Values(values) => values
            .iter()
            .map(|v| ZoneRec::new(&e.name, ttl, e.rtype, v))
            .collect(),
        Want::AOrCname { ip, .. } => vec![ZoneRec::new(&e.name, ttl, Rtype::A, ip)],
        Want::TxtTag { suggest, .. } => vec![ZoneRec::new(&e.name, ttl, Rtype::TXT, suggest)],
    }
}

/// The zone-file lines of every finding: (to add, to remove), each record once, in one set
/// of columns (name, TTL, class, type, value) so that both read as one table.
pub(super) fn zone_lines(findings: &[Finding]) -> (Vec<String>, Vec<String>) {
    let mut add: Vec<&ZoneRec> = Vec::new();
    let mut remove: Vec<&ZoneRec> = Vec::new();
    for f in findings {
        for r in &f.remove {
            if !remove.contains(&r) {
                remove.push(r);
            }
        }
    }
    for f in findings {
        for r in &f.add {
            let same = |x: &&ZoneRec| x.name == r.name && x.rtype == r.rtype && x.value == r.value;
            if !add.iter().any(same) && !remove.iter().any(same) {
                add.push(r);
            }
        }
    }
    let row = |r: &&ZoneRec| ZoneLine {
        name: format!("{}.", r.name),
        ttl: r.ttl,
        rtype: r.rtype.to_string(),
        value: r.value.clone(),
    };
    let mut lines = zone_file_lines(&add.iter().chain(&remove).map(row).collect::<Vec<_>>());
    let remove = lines.split_off(add.len());
    (lines, remove)
}

/// One record as a zone file line shows it: the name with its final dot, the value in
/// zone-file syntax.
pub struct ZoneLine {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub value: String,
}

/// Records as zone-file lines in one set of columns (name, TTL, class, type, value), so that
/// lists shown together (to add, to remove; to add, replaced) read as one table. The one
/// renderer of zone lines: the dns-check snippet and the RFC 2136 plan both use it.
pub fn zone_file_lines(rows: &[ZoneLine]) -> Vec<String> {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let ttl_w = rows
        .iter()
        .map(|r| r.ttl.to_string().len())
        .max()
        .unwrap_or(0);
    let type_w = rows.iter().map(|r| r.rtype.len()).max().unwrap_or(0);
    rows.iter()
        .map(|r| {
            format!(
                "{:<name_w$} {:>ttl_w$} IN {:<type_w$} {}",
                r.name, r.ttl, r.rtype, r.value
            )
        })
        .collect()
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

/// The answers of the authoritative servers, for the diagnoses.
struct Auth<'a> {
    obs: &'a Observations,
}

impl Auth<'_> {
    /// The first usable authoritative answer.
    fn answer(&self, name: &str, t: Rtype) -> Option<&Answer> {
        self.obs
            .iter()
            .filter(|((_, r), _)| *r == Role::Authoritative)
            .filter_map(|(_, a)| a.get(&(name.to_owned(), t)))
            .find(|a| !a.is_server_trouble())
    }

    /// The values an authoritative server answers for (name, t), with their TTL and whether
    /// the name holds them itself (not reached through a CNAME).
    fn records(&self, name: &str, t: Rtype) -> Option<(&[String], u32, bool)> {
        match self.answer(name, t)? {
            Answer::Records { values, ttl, via } => Some((values, *ttl, via.is_none())),
            _ => None,
        }
    }

    /// The records the name itself holds, to remove.
    fn own(&self, name: &str, t: Rtype, keep: impl Fn(&str) -> bool) -> Vec<ZoneRec> {
        match self.records(name, t) {
            Some((values, ttl, true)) => values
                .iter()
                .filter(|v| !keep(v))
                .map(|v| ZoneRec::new(name, ttl, t, v))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The CNAME target at `name`, if it has one.
    fn cname(&self, name: &str) -> Option<(&str, u32)> {
        self.records(name, Rtype::CNAME)
            .and_then(|(v, ttl, _)| v.first().map(|t| (t.as_str(), ttl)))
    }
}

/// The usual mistakes, each with its fix and its records.
pub(super) fn diagnose(
    domain: &str,
    expected: &[Expected],
    obs: &Observations,
    records: &[RecordReport],
    snippet_ttl: u32,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    #[allow(clippy::too_many_arguments)]
    fn push(
        out: &mut Vec<Finding>,
        severity: Severity,
        name: &str,
        record: Option<(String, Rtype)>,
        problem: String,
        fix: String,
        add: Vec<ZoneRec>,
        remove: Vec<ZoneRec>,
    ) {
        let diagnosis = Diagnosis {
            name: name.to_owned(),
            problem,
            fix,
            severity,
            record,
        };
        if !out.iter().any(|f| f.diagnosis == diagnosis) {
            out.push(Finding {
                diagnosis,
                add,
                remove,
            });
        }
    }
    let auth = Auth { obs };
    let asked = queries(expected);
    // Server trouble, per server, on the queries of the records themselves (a follow-up
    // that fails is judged where it is used), leaving out what a CNAME out of the zone causes.
    for ((server, role), answers) in obs {
        let has_cname = |n: &str| {
            matches!(
                answers.get(&(n.to_owned(), Rtype::CNAME)),
                Some(Answer::Records { .. })
            )
        };
        let failed: Vec<&Answer> = answers
            .iter()
            .filter(|(q, a)| a.is_server_trouble() && asked.contains(q) && !has_cname(&q.0))
            .map(|(_, a)| a)
            .collect();
        if failed.is_empty() {
            continue;
        }
        let trouble: Vec<String> = answers
            .iter()
            .filter(|(q, a)| a.is_server_trouble() && asked.contains(q) && !has_cname(&q.0))
            .map(|((n, t), a)| format!("{n} {t}: {}", a.describe()))
            .collect();
        let (severity, role) = match role {
            Role::Authoritative => (Severity::Blocking, "authoritative"),
            Role::Recursive => (Severity::Resolver, "recursive"),
        };
        push(
            &mut out,
            severity,
            domain,
            None,
            format!("{role} server {server}: {}", trouble.join("; ")),
            match failed[0] {
                Answer::ServFail => "the server cannot serve the zone: check the zone is loaded and valid there".into(),
                Answer::Refused => "the server refuses: it is not authoritative for this zone, or refuses recursion".into(),
                _ => "the server did not answer: check it is up and reachable on UDP and TCP port 53".into(),
            },
            Vec::new(),
            Vec::new(),
        );
    }
    // Each record that is missing or wrong.
    for r in records {
        let e = &r.expected;
        let key = Some(r.key());
        let blocking = |out: &mut Vec<Finding>, problem, fix, add, remove| {
            push(
                out,
                Severity::Blocking,
                &e.name,
                key.clone(),
                problem,
                fix,
                add,
                remove,
            )
        };
        match (r.status, &e.want) {
            (Status::WrongValue, Want::AOrCname { ip, target }) => {
                let (problem, remove) = match auth.cname(&e.name) {
                    Some((to, ttl)) => {
                        let problem = match known(obs, to, Rtype::A) {
                            Some(Answer::Records { values, .. }) => format!(
                                "{} points at {} through CNAME {to}, not the apex {target} or the VPS {ip}",
                                e.name,
                                values.join(", ")
                            ),
                            Some(_) => format!(
                                "{} is a CNAME to {to}, which has no address, not the apex {target} or the VPS {ip}",
                                e.name
                            ),
                            None => format!(
                                "{} is a CNAME to {to}, whose address could not be looked up, not the apex {target}",
                                e.name
                            ),
                        };
                        (problem, vec![ZoneRec::new(&e.name, ttl, Rtype::CNAME, to)])
                    }
                    None => (
                        format!(
                            "{} points at {}, not the apex {target} or the VPS {ip}",
                            e.name,
                            auth.records(&e.name, Rtype::A)
                                .map(|(v, _, _)| v.join(", "))
                                .unwrap_or_default()
                        ),
                        auth.own(&e.name, Rtype::A, |v| v == ip),
                    ),
                };
                blocking(
                    &mut out,
                    problem,
                    format!(
                        "point {} at {ip} (A) or make it a CNAME to {target}",
                        e.name
                    ),
                    wanted(e, snippet_ttl),
                    remove,
                );
            }
            (Status::WrongValue, Want::Values(want)) => {
                let got = auth
                    .records(&e.name, e.rtype)
                    .map(|(v, _, _)| v.to_vec())
                    .unwrap_or_default();
                let add = want
                    .iter()
                    .filter(|w| !got.contains(w))
                    .map(|w| ZoneRec::new(&e.name, snippet_ttl, e.rtype, w))
                    .collect();
                let remove = auth.own(&e.name, e.rtype, |v| want.iter().any(|w| w == v));
                let (problem, fix) = if e.rtype == Rtype::A {
                    (
                        format!(
                            "A for {} points at {}, not the VPS {}",
                            e.name,
                            got.join(", "),
                            want.join(", ")
                        ),
                        format!("change the A record of {} to {}", e.name, want.join(", ")),
                    )
                } else {
                    (
                        format!("{} {} does not match {}", e.name, e.rtype, want.join(", ")),
                        format!(
                            "set the {} records of {} to {}",
                            e.rtype,
                            e.name,
                            want.join(", ")
                        ),
                    )
                };
                blocking(&mut out, problem, fix, add, remove);
            }
            (Status::Missing, _) => {
                let what = match auth.answer(&e.name, e.rtype) {
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
                blocking(&mut out, problem, fix, wanted(e, snippet_ttl), Vec::new());
            }
            _ => {}
        }
    }
    let row_of = |name: &str, t: Rtype| {
        records
            .iter()
            .find(|r| r.expected.name == name && r.expected.rtype == t)
            .map(RecordReport::key)
    };
    // CNAME at the apex: forbidden next to SOA/NS/MX.
    if let Some((to, ttl)) = auth.cname(domain) {
        let apex_a = expected
            .iter()
            .find(|e| e.name == domain && e.rtype == Rtype::A);
        push(
            &mut out,
            Severity::Blocking,
            domain,
            row_of(domain, Rtype::A),
            format!("CNAME at the apex {domain} (→ {to}): not allowed beside SOA, NS and MX"),
            "replace the apex CNAME by an A record to the VPS (ALIAS/flattening if the DNS host offers it)".into(),
            apex_a.map(|e| wanted(e, snippet_ttl)).unwrap_or_default(),
            vec![ZoneRec::new(domain, ttl, Rtype::CNAME, to)],
        );
    }
    // A CNAME beside other records at one name (RFC 1034 §3.6.2 forbids it; some DNS hosts
    // let it through): resolvers see one or the other.
    let mut names: Vec<&str> = expected.iter().map(|e| e.name.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names.into_iter().filter(|n| *n != domain) {
        let Some((to, ttl)) = auth.cname(name) else {
            continue;
        };
        let beside = expected
            .iter()
            .filter(|e| e.name == name)
            .find(|e| matches!(auth.records(name, e.rtype), Some((_, _, true))));
        if let Some(e) = beside {
            push(
                &mut out,
                Severity::Blocking,
                name,
                row_of(name, e.rtype),
                format!(
                    "CNAME beside other records at {name}: it is a CNAME to {to} and has its own {} records, so resolvers see one or the other",
                    e.rtype
                ),
                format!(
                    "remove the CNAME at {name} (a name with a CNAME can have no other record)"
                ),
                Vec::new(),
                vec![ZoneRec::new(name, ttl, Rtype::CNAME, to)],
            );
        }
    }
    // Each MX target needs an address.
    for e in expected.iter().filter(|e| e.rtype == Rtype::MX) {
        let Some((values, _, _)) = auth.records(&e.name, Rtype::MX) else {
            continue;
        };
        for mx in values {
            let host = mx_host(mx);
            let none = |t| known_values(obs, host, t).is_some_and(|v| v.is_empty());
            if none(Rtype::A) && none(Rtype::AAAA) {
                push(
                    &mut out,
                    Severity::Blocking,
                    &e.name,
                    Some((e.name.clone(), e.rtype)),
                    format!(
                        "MX target {host} has no A or AAAA record: mail for {} cannot be delivered to it",
                        e.name
                    ),
                    format!(
                        "give {host} the mail server's address (an A record), or point the MX at a host that has one"
                    ),
                    if in_zone(host, domain) {
                        vec![ZoneRec {
                            name: host.to_owned(),
                            ttl: snippet_ttl,
                            rtype: Rtype::A,
                            value: "<the mail server's IPv4 address>".into(),
                        }]
                    } else {
                        Vec::new()
                    },
                    Vec::new(),
                );
            }
        }
    }
    // SPF and DMARC: syntax, one record each, the 10-lookup limit, +all, report authorization.
    for e in expected.iter().filter(|e| e.rtype == Rtype::TXT) {
        let Some((values, _, _)) = auth.records(&e.name, Rtype::TXT) else {
            continue;
        };
        let key = Some((e.name.clone(), Rtype::TXT));
        match &e.want {
            Want::TxtTag { tag: "v=spf1", .. } => {
                let spf: Vec<&String> =
                    values.iter().filter(|v| txt_has_tag(v, "v=spf1")).collect();
                if spf.len() > 1 {
                    let merged = merge_spf(&spf);
                    push(
                        &mut out,
                        Severity::Blocking,
                        &e.name,
                        key.clone(),
                        format!(
                            "{} SPF records at {} (receivers treat this as a permanent error)",
                            spf.len(),
                            e.name
                        ),
                        match &merged {
                            Some(m) => format!("replace them by one record: `{m}`"),
                            None => "merge them into a single `v=spf1 ...` TXT record".into(),
                        },
                        merged
                            .iter()
                            .map(|m| ZoneRec::new(&e.name, snippet_ttl, Rtype::TXT, m))
                            .collect(),
                        if merged.is_some() {
                            auth.own(&e.name, Rtype::TXT, |v| !txt_has_tag(v, "v=spf1"))
                        } else {
                            Vec::new()
                        },
                    );
                }
                for v in &spf {
                    match spf_lookups(v) {
                        Err(term) => push(
                            &mut out,
                            Severity::Blocking,
                            &e.name,
                            key.clone(),
                            format!("SPF syntax error in `{v}`: `{term}` is not a valid SPF term"),
                            "fix the term (mechanisms: all, include:, a, mx, ptr, ip4:, ip6:, exists:; modifiers redirect=, exp=)"
                                .into(),
                            Vec::new(),
                            Vec::new(),
                        ),
                        Ok(_) => {
                            let count = spf_lookups_through(v, &|n| known_values(obs, n, Rtype::TXT));
                            if count.lookups > SPF_LOOKUP_LIMIT {
                                push(
                                    &mut out,
                                    Severity::Blocking,
                                    &e.name,
                                    key.clone(),
                                    format!(
                                        "SPF of {} needs {}{} DNS lookups counting its includes; the limit is {SPF_LOOKUP_LIMIT}",
                                        e.name,
                                        if count.complete { "" } else { "at least " },
                                        count.lookups
                                    ),
                                    "flatten includes into ip4:/ip6: ranges or drop unused ones".into(),
                                    Vec::new(),
                                    Vec::new(),
                                );
                            }
                            if let Some(fixed) = spf_without_plus_all(v) {
                                let single = spf.len() == 1;
                                push(
                                    &mut out,
                                    Severity::Blocking,
                                    &e.name,
                                    key.clone(),
                                    format!("SPF `{v}` ends in +all: it lets anyone send mail as {domain}"),
                                    format!("end it with -all: `{fixed}`"),
                                    if single {
                                        vec![ZoneRec::new(&e.name, snippet_ttl, Rtype::TXT, &fixed)]
                                    } else {
                                        Vec::new()
                                    },
                                    if single {
                                        auth.own(&e.name, Rtype::TXT, |x| x != v.as_str())
                                    } else {
                                        Vec::new()
                                    },
                                );
                            }
                        }
                    }
                }
            }
            Want::TxtTag {
                tag: "v=DMARC1",
                suggest,
            } => {
                for v in values.iter().filter(|v| txt_has_tag(v, "v=DMARC1")) {
                    if let Err(problem) = check_dmarc(v) {
                        push(
                            &mut out,
                            Severity::Blocking,
                            &e.name,
                            key.clone(),
                            format!("DMARC `{v}`: {problem}"),
                            format!("publish e.g. `{suggest}`"),
                            vec![ZoneRec::new(&e.name, snippet_ttl, Rtype::TXT, suggest)],
                            auth.own(&e.name, Rtype::TXT, |x| x != v.as_str()),
                        );
                        continue;
                    }
                    for receiver in dmarc_report_domains(v, domain) {
                        let at = dmarc_authorization(domain, &receiver);
                        let authorized = match known_values(obs, &at, Rtype::TXT) {
                            None => continue, // could not be looked up: nothing to say
                            Some(txt) => txt.iter().any(|t| txt_has_tag(t, "v=DMARC1")),
                        };
                        if !authorized {
                            push(
                                &mut out,
                                Severity::Warning,
                                &e.name,
                                key.clone(),
                                format!(
                                    "DMARC reports go to {receiver}, but {receiver} has not authorized DMARC reports for {domain} (no v=DMARC1 TXT at {at}): receivers will not send them"
                                ),
                                format!(
                                    "have {receiver} publish `{at}. TXT \"v=DMARC1\"`, or send the reports to an address at {domain}"
                                ),
                                Vec::new(),
                                Vec::new(),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// RFC 7208 §4.6.4: an SPF check may cause at most 10 DNS lookups.
const SPF_LOOKUP_LIMIT: usize = 10;

/// How far the count follows includes: past the limit it is wrong anyway, and this bounds
/// the lookups an include loop could ask for.
const SPF_COUNT_CAP: usize = 30;

/// An SPF record's DNS lookups counted through its includes and redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfCount {
    /// Lookups counted (include, a, mx, ptr, exists, redirect, at every level).
    pub lookups: usize,
    /// Every include and redirect was followed (else `lookups` is a lower bound).
    pub complete: bool,
    /// The names whose TXT records are still needed to count further.
    pub unresolved: Vec<String>,
}

/// Counts the DNS lookups of an SPF record as a receiver makes them (RFC 7208 §4.6.4):
/// `txt` gives the TXT records of a name (`None`: not known). A redirect is followed only in
/// a record without `all`; a name with a macro cannot be followed.
pub fn spf_lookups_through(record: &str, txt: &dyn Fn(&str) -> Option<Vec<String>>) -> SpfCount {
    let mut count = SpfCount {
        lookups: 0,
        complete: true,
        unresolved: Vec::new(),
    };
    spf_walk(record, txt, &mut count);
    count
}

fn spf_walk(record: &str, txt: &dyn Fn(&str) -> Option<Vec<String>>, count: &mut SpfCount) {
    let terms: Vec<(String, Option<String>)> = record
        .split_whitespace()
        .skip(1)
        .map(|term| {
            let t = term
                .trim_start_matches(['+', '-', '~', '?'])
                .to_ascii_lowercase();
            match t.find([':', '=']) {
                Some(i) => (t[..i].to_owned(), Some(t[i + 1..].to_owned())),
                None => (t.split('/').next().unwrap_or("").to_owned(), None),
            }
        })
        .collect();
    let has_all = terms.iter().any(|(n, _)| n == "all");
    for (name, arg) in &terms {
        if count.lookups >= SPF_COUNT_CAP {
            count.complete = false;
            return;
        }
        if !matches!(
            name.as_str(),
            "include" | "a" | "mx" | "ptr" | "exists" | "redirect"
        ) || (name == "redirect" && has_all)
        {
            continue;
        }
        count.lookups += 1;
        let Some(target) = arg
            .as_deref()
            .filter(|_| name == "include" || name == "redirect")
        else {
            continue;
        };
        let target = target.trim_end_matches('.');
        if target.contains('%') {
            count.complete = false;
            continue;
        }
        match txt(target) {
            None => {
                count.complete = false;
                count.unresolved.push(target.to_owned());
            }
            Some(values) => {
                if let Some(next) = values.iter().find(|v| txt_has_tag(v, "v=spf1")) {
                    spf_walk(next, txt, count);
                }
            }
        }
    }
}

/// The record with its `+all` (or bare `all`) made `-all`; `None` when it has none.
fn spf_without_plus_all(record: &str) -> Option<String> {
    let mut changed = false;
    let terms: Vec<&str> = record
        .split_whitespace()
        .map(|t| {
            if t.eq_ignore_ascii_case("all") || t.eq_ignore_ascii_case("+all") {
                changed = true;
                "-all"
            } else {
                t
            }
        })
        .collect();
    changed.then(|| terms.join(" "))
}

/// Several SPF records as one: their terms in order, each once, and the strictest `all`
/// (`+all` becomes `-all`). `None` when one has a `redirect=` (that cannot be merged blindly).
fn merge_spf(records: &[&String]) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut all: Option<char> = None;
    for r in records {
        for t in r.split_whitespace().skip(1) {
            let lower = t.to_ascii_lowercase();
            if lower.starts_with("redirect=") {
                return None;
            }
            if let Some(q) = lower.strip_suffix("all").filter(|q| q.len() <= 1) {
                let q = q.chars().next().unwrap_or('+');
                let rank = |c: Option<char>| match c {
                    Some('-') => 0,
                    Some('~') => 1,
                    Some('?') => 2,
                    Some(_) => 3,
                    None => 4,
                };
                if rank(Some(q)) < rank(all) {
                    all = Some(q);
                }
            } else if !terms.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                terms.push(t.to_owned());
            }
        }
    }
    let all = match all {
        Some('+') => Some('-'),
        a => a,
    };
    Some(
        std::iter::once("v=spf1".to_owned())
            .chain(terms)
            .chain(all.map(|q| format!("{q}all")))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The domains of a DMARC record's `rua=` and `ruf=` addresses that lie outside `domain`'s
/// organization (neither is a subdomain of the other): those must authorize the reports.
pub(super) fn dmarc_report_domains(record: &str, domain: &str) -> Vec<String> {
    let related = |a: &str, b: &str| in_zone(a, b) || in_zone(b, a);
    let mut out: Vec<String> = record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| matches!(k.trim().to_ascii_lowercase().as_str(), "rua" | "ruf"))
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|uri| {
            let addr = uri.trim().strip_prefix("mailto:")?;
            let host = addr.rsplit_once('@')?.1;
            // A size limit may follow: `mailto:d@x.net!10m`.
            let host = host
                .split('!')
                .next()?
                .trim_end_matches('.')
                .to_ascii_lowercase();
            (!host.is_empty() && !related(&host, domain)).then_some(host)
        })
        .collect();
    out.sort();
    out.dedup();
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
