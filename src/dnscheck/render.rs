//! The report as people read it. One pure function, [`view`], turns a [`Report`] into rows,
//! each with its own problems attached, and one overall verdict; the console's table
//! ([`render`]) and the Discord embed (`messages::dns_card`) are two layouts of that view, so
//! they cannot disagree about a record.

use super::*;

/// The overall verdict of one domain, worst first in [`Verdict::of`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every record holds everywhere, no problem found.
    Ok,
    /// Every record holds everywhere; a warning asks someone to look (nothing waits for it).
    Warning,
    /// Every record holds on the authoritative servers; only warnings, or resolvers that have
    /// not seen them yet.
    Waiting,
    /// A record is missing or wrong, or a blocking problem was found.
    Failing,
    /// No authoritative server gave a usable answer: nothing can be said about the records.
    ServerTrouble,
}

impl Verdict {
    fn of(report: &Report) -> Self {
        if report.all_ok() && report.diagnoses.is_empty() {
            Verdict::Ok
        } else if report.all_ok() {
            Verdict::Warning
        } else if !report.records.is_empty()
            && report
                .records
                .iter()
                .all(|r| r.status == Status::ServerTrouble)
        {
            Verdict::ServerTrouble
        } else if report.authoritative_ok() {
            Verdict::Waiting
        } else {
            Verdict::Failing
        }
    }

    /// The verdict in words, for a headline.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Ok => "every record holds",
            Verdict::Warning => "every record holds; see the warnings",
            Verdict::Waiting => "the records hold on the authoritative servers; see the notes",
            Verdict::Failing => "records are missing or wrong",
            Verdict::ServerTrouble => "no authoritative server answered usably",
        }
    }
}

/// One problem, as shown under its record or among the domain's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub problem: String,
    pub fix: String,
    pub severity: Severity,
}

/// One record's row: its verdict, what each server answered, and the problems that name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub name: String,
    pub rtype: Rtype,
    pub status: Status,
    /// `ok`, `warn`, `wait` or `FAIL`: never `ok` while a problem names the record.
    pub mark: &'static str,
    pub ttl: Option<u32>,
    /// One line per server: its role, address and answer.
    pub answers: Vec<String>,
    pub problems: Vec<Problem>,
}

/// The report as rows, ready to lay out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub domain: String,
    pub verdict: Verdict,
    pub rows: Vec<Row>,
    /// Problems that name no expected record (server trouble, a record at another name).
    pub problems: Vec<Problem>,
    /// Zone-file lines of the records to add (new values of records to change included).
    pub snippet: Vec<String>,
    /// Zone-file lines of the existing records to remove.
    pub remove: Vec<String>,
}

/// Builds the view of one report: the single source of the console table and the embed.
pub fn view(report: &Report) -> View {
    let mut attached = vec![false; report.diagnoses.len()];
    let rows = report
        .records
        .iter()
        .map(|r| {
            let problems: Vec<Problem> = report
                .diagnoses
                .iter()
                .enumerate()
                .filter(|(_, d)| d.record.as_ref() == Some(&r.key()))
                .map(|(i, d)| {
                    attached[i] = true;
                    problem(d)
                })
                .collect();
            let blocked = problems.iter().any(|p| p.severity == Severity::Blocking);
            let mark = match r.status {
                _ if blocked => "FAIL",
                Status::Ok => "ok",
                Status::Warning => "warn",
                Status::NotYetPropagated => "wait",
                _ => "FAIL",
            };
            Row {
                name: r.expected.name.clone(),
                rtype: r.expected.rtype,
                status: r.status,
                mark,
                ttl: r.ttl,
                answers: r
                    .found
                    .iter()
                    .map(|(server, role, text)| {
                        let role = match role {
                            Role::Authoritative => "auth",
                            Role::Recursive => "recursive",
                        };
                        format!("{role:<9} {server:<21} {text}")
                    })
                    .collect(),
                problems,
            }
        })
        .collect();
    let problems = report
        .diagnoses
        .iter()
        .zip(&attached)
        .filter(|(_, a)| !**a)
        .map(|(d, _)| problem(d))
        .collect();
    View {
        domain: report.domain.clone(),
        verdict: Verdict::of(report),
        rows,
        problems,
        snippet: report.snippet.clone(),
        remove: report.remove.clone(),
    }
}

fn problem(d: &Diagnosis) -> Problem {
    Problem {
        problem: d.problem.clone(),
        fix: d.fix.clone(),
        severity: d.severity,
    }
}

/// The report as text for the console: one row per record, the answers under it, the problems
/// and the zone snippet.
pub fn render(report: &Report) -> String {
    table(&view(report))
}

/// The console's layout of a [`View`].
pub fn table(view: &View) -> String {
    let mut out = format!("DNS check for {}\n", view.domain);
    for r in &view.rows {
        out.push_str(&format!(
            "  {:<4} {:<40} {:<5} {:<18} ttl {}\n",
            r.mark,
            r.name,
            r.rtype.to_string(),
            r.status.as_str(),
            r.ttl.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
        ));
        for a in &r.answers {
            out.push_str(&format!("         {a}\n"));
        }
        for p in &r.problems {
            out.push_str(&format!(
                "         {}{}\n           fix: {}\n",
                match p.severity {
                    Severity::Blocking => "! ",
                    other => severity_word(other),
                },
                p.problem,
                p.fix
            ));
        }
    }
    if !view.problems.is_empty() {
        out.push_str("Problems:\n");
        for p in &view.problems {
            let word = severity_word(p.severity);
            out.push_str(&format!("  - {word}{}\n    fix: {}\n", p.problem, p.fix));
        }
    }
    if !view.snippet.is_empty() {
        out.push_str("Add these records at the DNS provider:\n");
        for l in &view.snippet {
            out.push_str(&format!("  {l}\n"));
        }
    }
    if !view.remove.is_empty() {
        out.push_str("Remove these existing records:\n");
        for l in &view.remove {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

/// How a problem's severity is written before it (a blocking one needs no word).
pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Blocking => "",
        Severity::Resolver => "resolver: ",
        Severity::Warning => "warning: ",
    }
}
