//! The report as text, for the console and chat.

use super::*;

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
