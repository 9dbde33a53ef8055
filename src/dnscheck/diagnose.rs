//! The usual mistakes (a record at the wrong name, a second SPF, a DMARC that does not parse,
//! ...), each with its fix, and the zone-file snippet of what to add.

use super::report::txt_has_tag;
use super::*;

pub(super) fn snippet_lines(e: &Expected, ttl: u32) -> Vec<String> {
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
pub(super) fn diagnose(
    domain: &str,
    expected: &[Expected],
    obs: &Observations,
    records: &[RecordReport],
) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let push_as =
        |out: &mut Vec<Diagnosis>, severity: Severity, name: &str, problem: String, fix: String| {
            let d = Diagnosis {
                name: name.to_owned(),
                problem,
                fix,
                severity,
                record: None,
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
            let severity = if blocking {
                Severity::Blocking
            } else {
                Severity::Resolver
            };
            let role = if blocking {
                "authoritative"
            } else {
                "recursive"
            };
            push_as(
                &mut out,
                severity,
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
        push_as(out, Severity::Blocking, name, problem, fix)
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
