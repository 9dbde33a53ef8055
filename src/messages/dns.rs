//! `/dns-check`'s answer in Discord: an embed with one field per record, coloured by the overall
//! verdict, the zone snippet in a code block. It is laid out from the same
//! [`dnscheck::View`](crate::dnscheck::View) as the console's table, so both say the same thing.
//!
//! Discord's limits are kept here: a title of 256 characters, a description of 4096, 25 fields
//! of 256 (name) and 1024 (value), and 6000 in all. What does not fit is cut, and the card says
//! the full report is attached.

use super::chat::{Card, CardField};
use super::text::{defuse, fence, truncate};
use crate::dnscheck::{Problem, Row, Severity, Verdict, View};

/// Discord's limit on all of an embed's text together.
const EMBED_TOTAL_MAX: usize = 6000;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_VALUE_MAX: usize = 1024;
const FIELD_NAME_MAX: usize = 256;
/// Discord allows 25 fields; the last is kept for the domain's own problems.
const RECORD_FIELDS_MAX: usize = 24;
/// Room kept for the footer that says the report is attached.
const FOOTER_ROOM: usize = 120;
/// The snippet's share of the description (the rest is the headline and notes).
const SNIPPET_MAX: usize = 3000;

/// The embed of one check, and whether it holds the whole report (when it does not, the caller
/// attaches the console's table as a file; the footer says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportCard {
    pub card: Card,
    pub complete: bool,
    /// The name the card gives the attached full report (used when `complete` is false).
    pub attachment: String,
}

/// The embed's colour for a verdict.
pub fn verdict_colour(v: Verdict) -> u32 {
    match v {
        Verdict::Ok => 0x2ecc71,
        Verdict::Warning => 0xe67e22,
        Verdict::Waiting => 0xf1c40f,
        Verdict::Failing => 0xe74c3c,
        Verdict::ServerTrouble => 0x95a5a6,
    }
}

fn mark_icon(mark: &str) -> &'static str {
    match mark {
        "ok" => "✅",
        "warn" => "⚠️",
        "wait" => "⏳",
        _ => "❌",
    }
}

/// The name of the file the full report is attached as.
pub fn dns_report_file(domain: &str) -> String {
    format!("dns-check-{domain}.txt")
}

/// The `/dns-check` embed for `view`, with the mail plan it was checked for and the records the
/// bot wrote itself (`messages::dns_written_by_bot`, empty when none).
pub fn dns_card(view: &View, mail_plan: &str, written: &str) -> ReportCard {
    let mut complete = true;
    let headline = format!(
        "**{}** · mail plan checked: {mail_plan}",
        verdict_headline(view.verdict)
    );
    let mut description = headline.clone();
    // The records to add, then those to remove, sharing the snippet's room.
    let blocks = [
        ("Add these records at the DNS provider:", &view.snippet),
        ("Remove these existing records:", &view.remove),
    ];
    let lines: usize = blocks
        .iter()
        .map(|(_, l)| l.join("\n").chars().count() + 10)
        .sum();
    for (title, block) in blocks.iter().filter(|(_, l)| !l.is_empty()) {
        let text = block.join("\n");
        let room = if lines > SNIPPET_MAX {
            complete = false;
            SNIPPET_MAX / 2
        } else {
            SNIPPET_MAX
        };
        description.push_str(&format!("\n\n{title}\n{}", fence(&text, room)));
    }
    let mut fields: Vec<CardField> = Vec::new();
    for row in view.rows.iter().take(RECORD_FIELDS_MAX) {
        let (field, cut) = record_field(row, true);
        complete &= !cut;
        fields.push(field);
    }
    if view.rows.len() > RECORD_FIELDS_MAX {
        complete = false;
    }
    if !view.problems.is_empty() {
        fields.push(CardField {
            name: "Other problems".into(),
            value: truncate(&problem_lines(&view.problems), FIELD_VALUE_MAX),
        });
    }
    if let Some((_, lines)) = written
        .split_once('\n')
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let block = fence(lines.trim_end(), FIELD_VALUE_MAX);
        complete &= block.chars().count() < FIELD_VALUE_MAX;
        fields.push(CardField {
            name: "Written by the bot (dns.update)".into(),
            value: block,
        });
    }
    let title = truncate(&format!("DNS check for {}", view.domain), 256);
    let mut card = Card {
        title,
        description: truncate(&description, DESCRIPTION_MAX),
        footer: String::new(),
        colour: verdict_colour(view.verdict),
        fields,
    };
    // Over the total (with room for the footer): drop the servers' answers first (the
    // attached table has them), then the snippet, then cut the longest plain values.
    let over = |card: &Card| total(card) + FOOTER_ROOM > EMBED_TOTAL_MAX;
    if over(&card) {
        complete = false;
        for (field, row) in card.fields.iter_mut().zip(&view.rows) {
            *field = record_field(row, false).0;
        }
    }
    if over(&card) && !(view.snippet.is_empty() && view.remove.is_empty()) {
        card.description = format!(
            "{headline}\n\nThe records to add and remove are in the attached file, `{}`.",
            dns_report_file(&view.domain)
        );
    }
    while over(&card) {
        let Some(longest) = card
            .fields
            .iter_mut()
            .max_by_key(|f| f.value.chars().count())
        else {
            break;
        };
        let len = longest.value.chars().count();
        longest.value = truncate(&longest.value, len / 2);
        if len < 8 {
            break;
        }
    }
    if view.rows.iter().any(|r| r.answers.len() > 1) || !complete {
        card.footer = if complete {
            "every server's answers: onboard-bot dns-check on the console".into()
        } else {
            format!(
                "the full report is attached as {}",
                dns_report_file(&view.domain)
            )
        };
    }
    ReportCard {
        card,
        complete,
        attachment: dns_report_file(&view.domain),
    }
}

fn verdict_headline(v: Verdict) -> String {
    let icon = match v {
        Verdict::Ok => "✅",
        Verdict::Warning => "⚠️",
        Verdict::Waiting => "⏳",
        Verdict::Failing => "❌",
        Verdict::ServerTrouble => "⚠️",
    };
    format!("{icon} {}", v.words())
}

/// One record's field: its verdict and TTL, what the servers answered (in a code block: DNS
/// answers are anyone's text), and the problems that name it; and whether it had to be cut.
fn record_field(r: &Row, with_answers: bool) -> (CardField, bool) {
    let name = truncate(
        &format!("{} {} {}", mark_icon(r.mark), r.rtype, r.name),
        FIELD_NAME_MAX,
    );
    let mut value = format!(
        "{} · ttl {}",
        r.status.as_str(),
        r.ttl.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
    );
    let problems = problem_lines(&r.problems);
    if !problems.is_empty() {
        value.push('\n');
        value.push_str(&problems);
    }
    let mut cut = value.chars().count() > FIELD_VALUE_MAX;
    if with_answers && !r.answers.is_empty() {
        let answers = r.answers.join("\n");
        // The fences and their newlines take 9 characters.
        let room = FIELD_VALUE_MAX.saturating_sub(value.chars().count() + 1);
        cut |= answers.chars().count() + 9 > room;
        if room > 20 {
            value.push('\n');
            value.push_str(&fence(&answers, room));
        }
    }
    let field = CardField {
        name,
        value: truncate(&value, FIELD_VALUE_MAX),
    };
    (field, cut)
}

fn problem_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let lead = match p.severity {
                Severity::Blocking => "❗",
                Severity::Resolver => "⚠️ resolver:",
                Severity::Warning => "⚠️ warning:",
            };
            format!("{lead} {}\n↳ fix: {}", defuse(&p.problem), defuse(&p.fix))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn total(card: &Card) -> usize {
    card.title.chars().count()
        + card.description.chars().count()
        + card.footer.chars().count()
        + card
            .fields
            .iter()
            .map(|f| f.name.chars().count() + f.value.chars().count())
            .sum::<usize>()
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;

/// One `/dns-check --wait` attempt: how many records are ok.
pub fn dns_attempt(n: u32, ok: usize, total: usize) -> String {
    format!("attempt {n}: {ok}/{total} records ok")
}

/// A domain's records, counted: the evidence of a dns-records step that holds.
pub fn dns_records_ok(domain: &str, ok: usize, total: usize) -> String {
    format!("{domain}: {ok}/{total} records ok")
}

/// What a person must still do at the registrar for the domains that do not hold: the
/// blocking problems with their fixes, the records to add, then the records to remove.
pub fn dns_waiting_for(reports: &[&crate::dnscheck::Report]) -> String {
    let mut reason = String::new();
    for r in reports {
        for d in r.diagnoses.iter().filter(|d| d.blocking()) {
            reason.push_str(&format!("- {} (fix: {})\n", d.problem, d.fix));
        }
        for l in &r.snippet {
            reason.push_str(&format!("  {l}\n"));
        }
        if !r.remove.is_empty() {
            reason.push_str("and remove these records:\n");
            for l in &r.remove {
                reason.push_str(&format!("  {l}\n"));
            }
        }
    }
    reason
}
