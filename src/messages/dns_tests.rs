//! The `/dns-check` embed and the console table, laid out from one view (snapshots).

use std::collections::BTreeMap;

use crate::dnscheck::tests::recs;
use std::net::SocketAddr;

use super::*;
use crate::dnscheck::{
    self, Answer, MailPattern, Observations, Report, Role, Rtype, evaluate, expected_records,
};
use crate::domain::{DomainName, MailPlan};

/// merche.com with a mailbox, checked on one authoritative server and one resolver; `edit`
/// changes the authoritative answers.
fn report(edit: impl FnOnce(&mut BTreeMap<(String, Rtype), Answer>)) -> Report {
    let p = MailPattern::default();
    let expected = expected_records(
        &DomainName::parse("merche.com").unwrap(),
        "127.0.0.1".parse().unwrap(),
        None,
        MailPlan::Mailbox,
        &p,
    );
    let mut a = crate::dnscheck::tests::good_answers();
    let resolver = a.clone();
    edit(&mut a);
    let mut obs = Observations::new();
    obs.insert(
        (SocketAddr::from(([127, 0, 0, 1], 53)), Role::Authoritative),
        a,
    );
    obs.insert(
        (SocketAddr::from(([127, 0, 0, 1], 5353)), Role::Recursive),
        resolver,
    );
    evaluate("merche.com", &expected, &obs, &p)
}

fn both(r: &Report) -> String {
    let view = dnscheck::view(r);
    let card = dns_card(&view, "mailbox", "");
    format!(
        "--- console ---\n{}--- embed (complete: {}) ---\ntitle: {}\ncolour: {:06x}\ndescription:\n{}\n{}footer: {}\n",
        dnscheck::table(&view),
        card.complete,
        card.card.title,
        card.card.colour,
        card.card.description,
        card.card
            .fields
            .iter()
            .map(|f| format!("[field] {}\n{}\n", f.name, f.value))
            .collect::<String>(),
        card.card.footer
    )
}

#[test]
fn a_good_zone_is_green_with_one_field_per_record() {
    let r = report(|_| {});
    let view = dnscheck::view(&r);
    let card = dns_card(&view, "mailbox", "");
    assert_eq!(card.card.colour, verdict_colour(dnscheck::Verdict::Ok));
    assert_eq!(card.card.fields.len(), r.records.len());
    assert!(card.complete);
    insta::assert_snapshot!("dns_check_good", both(&r));
}

#[test]
fn a_broken_zone_is_red_and_each_row_shows_its_own_problem() {
    let r = report(|a| {
        a.insert(("merche.com".into(), Rtype::A), recs(&["10.9.9.9"]));
        a.insert(
            ("merche.com".into(), Rtype::TXT),
            recs(&["v=spf1 mx -all", "v=spf1 a -all"]),
        );
        a.remove(&("default._domainkey.merche.com".to_string(), Rtype::TXT));
        a.insert(
            ("default._domainkey.merche.com".into(), Rtype::TXT),
            Answer::NxDomain,
        );
    });
    let view = dnscheck::view(&r);
    let card = dns_card(&view, "mailbox", "");
    assert_eq!(card.card.colour, verdict_colour(dnscheck::Verdict::Failing));
    let apex_a = view
        .rows
        .iter()
        .find(|row| row.name == "merche.com" && row.rtype == Rtype::A)
        .unwrap();
    assert_eq!(apex_a.mark, "FAIL");
    assert!(
        apex_a.problems.iter().all(|p| !p.problem.contains("SPF")),
        "the SPF problem is not the A record's: {apex_a:?}"
    );
    let spf = view
        .rows
        .iter()
        .find(|row| row.name == "merche.com" && row.rtype == Rtype::TXT)
        .unwrap();
    assert!(
        spf.problems.iter().any(|p| p.problem.contains("SPF")),
        "{spf:?}"
    );
    assert_ne!(
        spf.mark, "ok",
        "a row is never ok while its problem is listed"
    );
    assert!(
        card.card.description.contains("```"),
        "the snippet is a code block"
    );
    insta::assert_snapshot!("dns_check_broken", both(&r));
}

#[test]
fn an_embed_stays_inside_discords_limits_and_says_the_rest_is_attached() {
    let long: Vec<String> = (0..40)
        .map(|i| format!("v=spf1 include:_spf{i}.{} -all", "x".repeat(200)))
        .collect();
    let r = report(|a| {
        let refs: Vec<&str> = long.iter().map(String::as_str).collect();
        a.insert(("merche.com".into(), Rtype::TXT), recs(&refs));
        a.insert(("_dmarc.merche.com".into(), Rtype::TXT), recs(&refs));
        a.insert(("merche.com".into(), Rtype::A), recs(&["10.9.9.9"]));
    });
    let card = dns_card(&dnscheck::view(&r), "mailbox", "");
    let c = &card.card;
    let total = c.title.chars().count()
        + c.description.chars().count()
        + c.footer.chars().count()
        + c.fields
            .iter()
            .map(|f| f.name.chars().count() + f.value.chars().count())
            .sum::<usize>();
    assert!(total <= 6000, "{total}");
    assert!(c.description.chars().count() <= 4096);
    assert!(c.fields.len() <= 25);
    assert!(
        c.fields
            .iter()
            .all(|f| f.value.chars().count() <= 1024 && !f.value.is_empty())
    );
    assert!(!card.complete);
    assert_eq!(
        c.footer,
        format!(
            "the full report is attached as {}",
            dns_report_file("merche.com")
        )
    );
    // Every code block that was opened is closed.
    for text in std::iter::once(&c.description).chain(c.fields.iter().map(|f| &f.value)) {
        assert_eq!(text.matches("```").count() % 2, 0, "{text}");
    }
}

#[test]
fn dns_text_cannot_ping_or_break_out_of_the_embed() {
    let r = report(|a| {
        a.insert(
            ("merche.com".into(), Rtype::TXT),
            recs(&["v=spf1 @everyone ``` <@123> -all", "v=spf1 a -all"]),
        );
    });
    let card = dns_card(&dnscheck::view(&r), "mailbox", "");
    for f in &card.card.fields {
        assert!(
            !f.value.contains("@everyone") && !f.value.contains("<@1"),
            "{}",
            f.value
        );
        assert_eq!(f.value.matches("```").count() % 2, 0, "{}", f.value);
    }
}

#[test]
fn a_record_with_a_warning_counts_as_ok_in_every_count() {
    let mut r = report(|_| {});
    let total = r.records.len();
    r.records[0].status = dnscheck::Status::Warning;
    assert_eq!(r.records_ok(), total);
    assert_eq!(
        dns_attempt(2, r.records_ok(), total),
        format!("attempt 2: {total}/{total} records ok")
    );
    r.records[1].status = dnscheck::Status::Missing;
    assert_eq!(
        dns_records_ok("merche.com", r.records_ok(), total),
        format!("merche.com: {}/{total} records ok", total - 1)
    );
}

#[test]
fn what_a_person_must_do_lists_problems_records_to_add_then_to_remove() {
    let r = report(|a| {
        a.insert(("merche.com".into(), Rtype::A), recs(&["10.9.9.9"]));
    });
    let text = dns_waiting_for(&[&r]);
    assert!(text.starts_with("- "), "{text}");
    assert!(
        text.contains("10.9.9.9") || text.contains("127.0.0.1"),
        "{text}"
    );
    insta::assert_snapshot!("dns_waiting_for_wrong_a", text);
}
