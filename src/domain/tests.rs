use super::*;

#[test]
fn slugs() {
    for ok in ["merche-biche", "transquinnftw", "cocotte", "a1", "x-2-y"] {
        assert_eq!(Slug::parse(ok).unwrap().as_str(), ok);
    }
    let cases = [
        ("", "is empty"),
        ("a", "must be 2 to 40"),
        ("Merche", "contains `M`"),
        ("merche_biche", "contains `_`"),
        ("-merche", "starts or ends with a hyphen"),
        ("merche-", "starts or ends with a hyphen"),
        ("mer--che", "two hyphens"),
        ("x'; drop table users; --", "contains `'`"),
        ("mérche", "contains U+00E9"),
        ("a\nb", "contains U+000A"),
        (&"a".repeat(41), "must be 2 to 40"),
    ];
    for (input, want) in cases {
        let err = Slug::parse(input).unwrap_err();
        assert_eq!(err.field, "slug");
        assert!(err.message.contains(want), "{input:?}: {err}");
    }
    let reserved = vec!["www".to_owned(), "admin".to_owned()];
    assert!(
        Slug::parse("www")
            .unwrap()
            .check_not_reserved("slug", &reserved)
            .is_err()
    );
    assert!(
        Slug::parse("merche")
            .unwrap()
            .check_not_reserved("slug", &reserved)
            .is_ok()
    );
}

#[test]
fn domains() {
    assert_eq!(
        DomainName::parse("Merche-Biche.COM.").unwrap().as_str(),
        "merche-biche.com"
    );
    assert_eq!(
        DomainName::parse("bücher.de").unwrap().as_str(),
        "xn--bcher-kva.de"
    );
    assert_eq!(
        DomainName::parse("merche.com").unwrap().www().as_str(),
        "www.merche.com"
    );
    let cases = [
        ("*.merche.com", "wildcard"),
        ("127.0.0.1", "IP address"),
        ("::1", "IP address"),
        ("merche", "has no dot"),
        ("merche..com", "empty label"),
        ("-merche.com", "hyphen"),
        ("merche.com; rm -rf /", "contains"),
        ("merche.com\nserver_name evil", "contains"),
        ("a.123", "numeric"),
        ("", "is empty"),
    ];
    for (input, want) in cases {
        let err = DomainName::parse(input).unwrap_err();
        assert!(err.message.contains(want), "{input:?}: {err}");
    }
}

#[test]
fn a_domain_ends_in_a_top_level_label_of_letters() {
    // `quinn.www` is a folder of the platform repo, not a domain: www is never a TLD.
    let cases = [
        ("quinn.www", "`www` is a host name"),
        ("cocotte.com.WWW", "`www` is a host name"),
        ("merche.c0m", "letters only"),
        ("merche.x", "at least two letters"),
        ("_template", "has no dot"),
        ("_template.com", "labels may hold only"),
    ];
    for (input, want) in cases {
        let err = DomainName::parse(input).unwrap_err();
        assert_eq!(err.field, "domain");
        assert!(err.message.contains(want), "{input:?}: {err}");
    }
    for ok in ["merche.co", "merche.studio", "пример.рф", "www.merche.com"] {
        DomainName::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    assert_eq!(
        DomainName::parse("пример.рф").unwrap().as_str(),
        "xn--e1afmkfd.xn--p1ai"
    );
}

#[test]
fn emails() {
    assert_eq!(
        Email::parse("Merche@Example.COM").unwrap().as_str(),
        "Merche@example.com"
    );
    let cases = [
        ("merche", "has no @"),
        ("@example.com", "1 to 64"),
        ("a b@example.com", "contains U+0020"),
        ("a$(id)@example.com", "contains `$`"),
        ("a..b@example.com", "repeat"),
        ("a@localhost", "has no dot"),
    ];
    for (input, want) in cases {
        let err = Email::parse(input).unwrap_err();
        assert_eq!(err.field, "email");
        assert!(err.message.contains(want), "{input:?}: {err}");
    }
}

#[test]
fn modes() {
    assert_eq!(
        OperatingMode::from_parts("person-only", None, None).unwrap(),
        OperatingMode::PersonOnly
    );
    let owns = OperatingMode::from_parts(
        "person-owns-org",
        Some("merche-collective"),
        Some("Merche Collective"),
    )
    .unwrap();
    assert_eq!(owns.org_slug().unwrap().as_str(), "merche-collective");
    assert!(OperatingMode::from_parts("person-owns-org", Some("x-y"), None).is_err());
    assert!(OperatingMode::from_parts("person-joins-org", None, None).is_err());
    assert!(OperatingMode::from_parts("person-only", Some("cocotte"), None).is_err());
    let err = OperatingMode::from_parts("agency", None, None).unwrap_err();
    assert_eq!(err.field, "mode");
}

#[test]
fn brand() {
    let b = Brand::parse(
        "Hello\nworld",
        Some("https://cdn.example.com/logo.png"),
        "#AABBCC, 112233",
    )
    .unwrap();
    assert_eq!(b.palette[1].as_str(), "#112233");
    assert!(Brand::parse("x", Some("http://x.com/l.png"), "").is_err());
    assert!(Brand::parse("x", None, "#12345").is_err());
    assert!(Brand::parse("a\u{202e}b", None, "").is_err());
}

#[test]
fn serde_round_trip_refuses_invalid() {
    let s: Slug = serde_json::from_str("\"cocotte\"").unwrap();
    assert_eq!(s.as_str(), "cocotte");
    assert!(serde_json::from_str::<Slug>("\"Bad Slug\"").is_err());
    assert!(serde_json::from_str::<DomainName>("\"*.x.com\"").is_err());
}
