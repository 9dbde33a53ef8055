use super::*;

fn server(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn recs(v: &[&str]) -> Answer {
    Answer::Records {
        values: v.iter().map(|s| s.to_string()).collect(),
        ttl: 300,
        via: None,
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

/// Every record of merche.com with a mailbox, as a good zone answers (also the messages' tests').
pub(crate) fn good_answers() -> BTreeMap<(String, Rtype), Answer> {
    let mut a = BTreeMap::new();
    a.insert(("merche.com".into(), Rtype::A), recs(&["127.0.0.1"]));
    a.insert(("merche.com".into(), Rtype::CNAME), Answer::NoData);
    // www is a CNAME to the apex: its A records are the apex's, reached through it.
    a.insert(
        ("www.merche.com".into(), Rtype::A),
        Answer::Records {
            values: vec!["127.0.0.1".into()],
            ttl: 300,
            via: Some("merche.com".into()),
        },
    );
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
        s.contains("merche.com.") && s.contains("IN A   127.0.0.1"),
        "{s}"
    );
    assert!(s.contains("IN MX  10 mail.merche.com."), "{s}");
    // One column each: every value starts where the first line's does.
    let col = r.snippet[0].find("127.0.0.1").unwrap();
    assert!(
        r.snippet
            .iter()
            .all(|l| l.len() > col && l.as_bytes()[col - 1] == b' ' && l.as_bytes()[col] != b' '),
        "{s}"
    );
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

/// The report of `answers` from one authoritative server.
fn report_of(a: BTreeMap<(String, Rtype), Answer>) -> Report {
    let (exp, p) = setup(MailPlan::Mailbox);
    let mut obs = Observations::new();
    obs.insert((server(53), Role::Authoritative), a);
    evaluate("merche.com", &exp, &obs, &p)
}

fn row<'a>(r: &'a Report, name: &str, t: Rtype) -> &'a RecordReport {
    r.records
        .iter()
        .find(|x| x.expected.name == name && x.expected.rtype == t)
        .unwrap_or_else(|| panic!("no row {name} {t}"))
}

/// The diagnosis whose problem contains `text`, checked to name the row `name t`.
fn diag<'a>(r: &'a Report, text: &str) -> &'a Diagnosis {
    r.diagnoses
        .iter()
        .find(|d| d.problem.contains(text))
        .unwrap_or_else(|| panic!("no problem with {text:?} in:\n{}", render(r)))
}

fn assert_row_shows(r: &Report, name: &str, t: Rtype, status: Status, text: &str) {
    let x = row(r, name, t);
    assert_eq!(x.status, status, "{name} {t}:\n{}", render(r));
    assert!(
        x.problems.iter().any(|p| p.contains(text)),
        "{name} {t} should show {text:?}: {:?}",
        x.problems
    );
    let d = diag(r, text);
    assert_eq!(d.record, Some((name.to_owned(), t)), "{d:?}");
}

#[test]
fn a_good_zone_has_no_follow_up_problems_and_asks_for_its_mx_target() {
    let (exp, _) = setup(MailPlan::Mailbox);
    let mut obs = Observations::new();
    obs.insert((server(53), Role::Authoritative), good_answers());
    let q = follow_ups("merche.com", &exp, &obs);
    assert!(q.contains(&("mail.merche.com".into(), Rtype::A)), "{q:?}");
    assert!(
        q.contains(&("mail.merche.com".into(), Rtype::AAAA)),
        "{q:?}"
    );
    let r = report_of(good_answers());
    assert!(r.all_ok(), "{}", render(&r));
    assert!(r.snippet.is_empty() && r.remove.is_empty());
}

#[test]
fn an_mx_target_without_an_address_is_a_problem_of_the_mx_row() {
    let mut a = good_answers();
    a.insert(("mail.merche.com".into(), Rtype::A), Answer::NxDomain);
    a.insert(("mail.merche.com".into(), Rtype::AAAA), Answer::NxDomain);
    let r = report_of(a);
    assert!(!r.authoritative_ok(), "{}", render(&r));
    assert_row_shows(
        &r,
        "merche.com",
        Rtype::MX,
        Status::Invalid,
        "MX target mail.merche.com has no A or AAAA record",
    );
    assert!(diag(&r, "MX target").blocking());
    assert_eq!(
        r.snippet,
        vec!["mail.merche.com. 300 IN A <the mail server's IPv4 address>"]
    );
    assert!(r.remove.is_empty(), "{:?}", r.remove);
    // An address on either family is enough.
    let mut a = good_answers();
    a.insert(("mail.merche.com".into(), Rtype::A), Answer::NoData);
    a.insert(("mail.merche.com".into(), Rtype::AAAA), recs(&["::1"]));
    assert!(report_of(a).all_ok());
}

#[test]
fn a_cname_beside_other_records_is_shown_on_the_row_and_removed() {
    let mut a = good_answers();
    a.insert(
        ("_dmarc.merche.com".into(), Rtype::CNAME),
        recs(&["dmarc.provider.net"]),
    );
    let r = report_of(a);
    assert_row_shows(
        &r,
        "_dmarc.merche.com",
        Rtype::TXT,
        Status::Invalid,
        "CNAME beside other records at _dmarc.merche.com",
    );
    assert_eq!(
        r.remove,
        vec!["_dmarc.merche.com. 300 IN CNAME dmarc.provider.net."]
    );
    // A CNAME alone, its target holding the record, is fine (a DKIM key at the mail host).
    let mut a = good_answers();
    a.insert(
        ("default._domainkey.merche.com".into(), Rtype::CNAME),
        recs(&["key.provider.net"]),
    );
    a.insert(
        ("default._domainkey.merche.com".into(), Rtype::TXT),
        Answer::Records {
            values: vec!["v=DKIM1; k=rsa; p=abc".into()],
            ttl: 300,
            via: Some("key.provider.net".into()),
        },
    );
    let r = report_of(a);
    assert!(r.all_ok(), "{}", render(&r));
}

#[test]
fn spf_lookups_are_counted_through_includes() {
    let mut a = good_answers();
    a.insert(
        ("merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 include:_a.merche.com include:_b.merche.com -all"]),
    );
    let (exp, _) = setup(MailPlan::Mailbox);
    let mut obs = Observations::new();
    obs.insert((server(53), Role::Authoritative), a.clone());
    let q = follow_ups("merche.com", &exp, &obs);
    assert!(
        q.contains(&("_a.merche.com".into(), Rtype::TXT))
            && q.contains(&("_b.merche.com".into(), Rtype::TXT)),
        "{q:?}"
    );
    a.insert(
        ("_a.merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 a mx ptr exists:x.merche.com include:_c.merche.com ~all"]),
    );
    a.insert(
        ("_b.merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 ip4:192.0.2.0/24 ~all"]),
    );
    a.insert(
        ("_c.merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 a mx a:x.merche.com mx:y.merche.com ~all"]),
    );
    let r = report_of(a.clone());
    assert_row_shows(
        &r,
        "merche.com",
        Rtype::TXT,
        Status::Invalid,
        "SPF of merche.com needs 11 DNS lookups",
    );
    // Ten is within the limit.
    a.insert(
        ("_c.merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 a mx a:x.merche.com ~all"]),
    );
    assert!(report_of(a).all_ok());
}

#[test]
fn spf_plus_all_is_changed_to_minus_all() {
    for spf in ["v=spf1 mx +all", "v=spf1 mx all"] {
        let mut a = good_answers();
        a.insert(("merche.com".into(), Rtype::TXT), recs(&[spf]));
        let r = report_of(a);
        assert_row_shows(
            &r,
            "merche.com",
            Rtype::TXT,
            Status::Invalid,
            "lets anyone send mail as merche.com",
        );
        assert_eq!(r.snippet, vec!["merche.com. 300 IN TXT \"v=spf1 mx -all\""]);
        assert_eq!(r.remove, vec![format!("merche.com. 300 IN TXT \"{spf}\"")]);
    }
}

#[test]
fn two_spf_records_are_merged_into_one() {
    let mut a = good_answers();
    a.insert(
        ("merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 a ~all", "v=spf1 mx include:_spf.merche.com -all"]),
    );
    a.insert(
        ("_spf.merche.com".into(), Rtype::TXT),
        recs(&["v=spf1 ip4:192.0.2.1 -all"]),
    );
    let r = report_of(a);
    assert_row_shows(
        &r,
        "merche.com",
        Rtype::TXT,
        Status::Invalid,
        "2 SPF records",
    );
    assert_eq!(
        r.snippet,
        vec!["merche.com. 300 IN TXT \"v=spf1 a mx include:_spf.merche.com -all\""]
    );
    assert_eq!(
        r.remove,
        vec![
            "merche.com. 300 IN TXT \"v=spf1 a ~all\"",
            "merche.com. 300 IN TXT \"v=spf1 mx include:_spf.merche.com -all\"",
        ]
    );
}

#[test]
fn a_dmarc_that_does_not_parse_is_replaced() {
    let mut a = good_answers();
    a.insert(
        ("_dmarc.merche.com".into(), Rtype::TXT),
        recs(&["v=DMARC1; rua=mailto:x@merche.com"]),
    );
    let r = report_of(a);
    assert_row_shows(
        &r,
        "_dmarc.merche.com",
        Rtype::TXT,
        Status::Invalid,
        "has no p= policy",
    );
    assert_eq!(
        r.snippet,
        vec![
            "_dmarc.merche.com. 300 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@merche.com\""
        ]
    );
    assert_eq!(
        r.remove,
        vec!["_dmarc.merche.com. 300 IN TXT \"v=DMARC1; rua=mailto:x@merche.com\""]
    );
}

#[test]
fn dmarc_reports_to_another_domain_need_its_authorization_as_a_warning() {
    let dmarc = "v=DMARC1; p=reject; rua=mailto:d@reports.net,mailto:dmarc@merche.com";
    let mut a = good_answers();
    a.insert(("_dmarc.merche.com".into(), Rtype::TXT), recs(&[dmarc]));
    let (exp, _) = setup(MailPlan::Mailbox);
    let mut obs = Observations::new();
    obs.insert((server(53), Role::Authoritative), a.clone());
    let auth = "merche.com._report._dmarc.reports.net".to_owned();
    assert!(follow_ups("merche.com", &exp, &obs).contains(&(auth.clone(), Rtype::TXT)));
    a.insert((auth.clone(), Rtype::TXT), Answer::NxDomain);
    let r = report_of(a.clone());
    assert_row_shows(
        &r,
        "_dmarc.merche.com",
        Rtype::TXT,
        Status::Warning,
        "reports.net has not authorized DMARC reports for merche.com",
    );
    let d = diag(&r, "has not authorized");
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.fix.contains(&auth), "{}", d.fix);
    assert!(
        r.authoritative_ok() && r.all_ok(),
        "a warning parks nothing"
    );
    assert!(r.snippet.is_empty() && r.remove.is_empty());
    a.insert((auth, Rtype::TXT), recs(&["v=DMARC1"]));
    let r = report_of(a);
    assert!(r.diagnoses.is_empty(), "{}", render(&r));
}

#[test]
fn www_must_reach_the_apex_or_the_vps() {
    // A CNAME to another name that points at the VPS is fine.
    let mut a = good_answers();
    a.insert(
        ("www.merche.com".into(), Rtype::CNAME),
        recs(&["vps.platform.net"]),
    );
    a.insert(("www.merche.com".into(), Rtype::A), Answer::Refused);
    let (exp, _) = setup(MailPlan::Mailbox);
    let mut obs = Observations::new();
    obs.insert((server(53), Role::Authoritative), a.clone());
    assert!(follow_ups("merche.com", &exp, &obs).contains(&("vps.platform.net".into(), Rtype::A)));
    a.insert(("vps.platform.net".into(), Rtype::A), recs(&["127.0.0.1"]));
    let r = report_of(a.clone());
    assert!(r.all_ok(), "{}", render(&r));
    // One that points elsewhere is not.
    a.insert(("vps.platform.net".into(), Rtype::A), recs(&["10.9.9.9"]));
    let r = report_of(a);
    assert_row_shows(
        &r,
        "www.merche.com",
        Rtype::A,
        Status::WrongValue,
        "www.merche.com points at 10.9.9.9 through CNAME vps.platform.net, not the apex merche.com or the VPS 127.0.0.1",
    );
    assert_eq!(
        r.remove,
        vec!["www.merche.com. 300 IN CNAME vps.platform.net."]
    );
    assert_eq!(r.snippet, vec!["www.merche.com. 300 IN A     127.0.0.1"]);
    // An A record elsewhere is replaced.
    let mut a = good_answers();
    a.insert(("www.merche.com".into(), Rtype::CNAME), Answer::NoData);
    a.insert(("www.merche.com".into(), Rtype::A), recs(&["10.9.9.9"]));
    let r = report_of(a);
    assert_row_shows(
        &r,
        "www.merche.com",
        Rtype::A,
        Status::WrongValue,
        "www.merche.com points at 10.9.9.9, not the apex merche.com or the VPS 127.0.0.1",
    );
    assert_eq!(r.remove, vec!["www.merche.com. 300 IN A 10.9.9.9"]);
    assert_eq!(r.snippet, vec!["www.merche.com. 300 IN A 127.0.0.1"]);
}

#[test]
fn a_changed_record_is_removed_and_added_and_the_snippet_is_aligned() {
    let mut a = good_answers();
    a.insert(("merche.com".into(), Rtype::A), recs(&["10.9.9.9"]));
    a.insert(
        ("default._domainkey.merche.com".into(), Rtype::TXT),
        Answer::NxDomain,
    );
    a.insert(
        ("merche.com".into(), Rtype::MX),
        recs(&["10 mail.merche.com", "20 old.mx.net"]),
    );
    let r = report_of(a);
    assert_row_shows(
        &r,
        "merche.com",
        Rtype::A,
        Status::WrongValue,
        "points at 10.9.9.9",
    );
    assert_eq!(
        r.snippet,
        vec![
            "merche.com.                    300 IN A   127.0.0.1",
            "default._domainkey.merche.com. 300 IN TXT \"v=DKIM1; k=rsa; p=<public key from the mail server>\"",
        ]
    );
    assert_eq!(
        r.remove,
        vec![
            "merche.com.                    300 IN A   10.9.9.9",
            "merche.com.                    300 IN MX  20 old.mx.net.",
        ]
    );
}
