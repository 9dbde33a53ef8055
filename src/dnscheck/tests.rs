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
