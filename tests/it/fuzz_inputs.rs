//! Bad input, fuzzed: every input parser and the YAML/nginx/shell editors take arbitrary text
//! without panicking, and a corpus of injection attempts is rejected at the edge.
//! (proptest: CI runs the default case count; PROPTEST_CASES raises it for a long run.)

use crate::support::harness::blocking;

use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::domain::{
    Brand, DisplayName, DomainName, Email, HexColor, LogoUrl, OperatingMode, Slug,
};
use onboard_bot::templating;
use proptest::prelude::*;
use std::time::Duration;

/// Ample for what these tests do (no lab service, no network).
const LIMIT: Duration = Duration::from_secs(60);

const TEMPLATE_SERVICES: &str = include_str!(
    "../../lab/fixtures/platform-repo/deployments/@domains/_template/{provider}.com/services.yaml"
);
const TEMPLATE_NGINX: &str = include_str!(
    "../../lab/fixtures/platform-repo/deployments/@domains/_template/{provider}.com/nginx/prod.conf"
);
const TEMPLATE_DEPLOY: &str = include_str!(
    "../../lab/fixtures/platform-repo/deployments/@domains/_template/{provider}.com/deploy.sh"
);
const TEMPLATE_ORG: &str = include_str!(
    "../../lab/fixtures/platform-repo/deployments/@domains/_template/{provider}.com/org-site.yaml"
);

/// Characters that break out of SQL, shells, nginx and YAML, plus unicode look-alikes.
fn nasty() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            any::<char>().prop_map(|c| c.to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just(";".to_string()),
            Just("\n".to_string()),
            Just("$(".to_string()),
            Just("`".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just(": ".to_string()),
            Just("#".to_string()),
            Just("\u{202e}".to_string()),
            Just("\u{0430}".to_string()), // Cyrillic a
            "[a-z0-9-]{1,8}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

#[test]
fn parsers_never_panic() {
    blocking(LIMIT, || {
        proptest!(|(s in nasty())| {
            let _ = Slug::parse(&s);
            let _ = DomainName::parse(&s);
            let _ = Email::parse(&s);
            let _ = DisplayName::parse_field("name", &s);
            let _ = HexColor::parse(&s);
            let _ = LogoUrl::parse(&s);
            let _ = Brand::parse(&s, Some(&s), &s);
            let _ = OperatingMode::from_parts(&s, Some(&s), Some(&s));
            let _ = OnboardArgs { slug: s.clone(), name: s.clone(), email: s.clone(), mode: s.clone(), domains: vec![s.clone()], ..Default::default() }
                .parse(&OnboardingConfig::default());
        });
    });
}

#[test]
fn accepted_identifiers_hold_no_metacharacters() {
    blocking(LIMIT, || {
        proptest!(|(s in nasty())| {
            if let Ok(slug) = Slug::parse(&s) {
                prop_assert!(slug.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            }
            if let Ok(d) = DomainName::parse(&s) {
                prop_assert!(d.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
            }
            if let Ok(e) = Email::parse(&s) {
                prop_assert!(!e.as_str().chars().any(|c| "'\"`$;{}()<>|&\\ \n".contains(c)), "{}", e.as_str());
            }
            if let Ok(n) = DisplayName::parse_field("name", &s) {
                let bidi = '\u{202e}';
                prop_assert!(!n.as_str().contains('\n') && !n.as_str().contains(bidi));
            }
        });
    });
}

#[test]
fn editors_keep_yaml_valid_and_values_exact() {
    blocking(LIMIT, || {
        proptest!(|(name in nasty(), copy in nasty())| {
            let domain = DomainName::parse("fuzz.com").unwrap();
            let services = templating::services_yaml(TEMPLATE_SERVICES, &domain, "provider-site", true).unwrap();
            prop_assert!(serde_norway::from_str::<serde_norway::Value>(&services).is_ok());
            if let (Ok(name), Ok(brand)) = (DisplayName::parse_field("org-name", &name), Brand::parse(&copy, None, "#112233")) {
                let out = templating::org_site_yaml(TEMPLATE_ORG, &name, &brand, "public/logo.svg").unwrap();
                let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
                // Whatever the text, it is one YAML string holding exactly that text: no new keys.
                prop_assert_eq!(v["brand"]["name"].as_str(), Some(name.as_str()));
                if !brand.copy.as_str().is_empty() {
                    prop_assert_eq!(v["brand"]["copy"].as_str(), Some(brand.copy.as_str()));
                }
                prop_assert_eq!(v["brand"].as_mapping().unwrap().len(), 4);
            }
        });
    });
}

/// `text` without its quoted strings.
fn unquoted(text: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, c) => out.push(c),
        }
    }
    out
}

#[test]
fn nginx_and_shell_edits_cannot_be_steered() {
    blocking(LIMIT, || {
        proptest!(|(root in nasty(), value in nasty())| {
            let domain = DomainName::parse("fuzz.com").unwrap();
            match templating::nginx_conf(TEMPLATE_NGINX, &domain, &root) {
                Ok(out) => {
                    // Accepted roots add no directive: outside quotes, the same number of `;`
                    // and braces as the template, and the root line is the one argument.
                    prop_assert_eq!(unquoted(&out).matches(';').count(), TEMPLATE_NGINX.matches(';').count());
                    prop_assert_eq!(unquoted(&out).matches('{').count(), TEMPLATE_NGINX.matches('{').count());
                    let line = out.lines().find(|l| l.trim_start().starts_with("root ")).unwrap();
                    let arg = line.trim_start()["root ".len()..].strip_suffix(';').unwrap();
                    let inner = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"'))
                        .or_else(|| arg.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')))
                        .unwrap_or(arg);
                    prop_assert_eq!(inner, root.as_str());
                }
                // Refused: something no nginx quoting holds as it is.
                Err(_) => prop_assert!(
                    root.is_empty() || root.contains(['$', '\\']) || root.chars().any(char::is_control)
                        || (root.contains('"') && root.contains('\'')),
                    "refused {root:?}"
                ),
            }
            match templating::deploy_sh(TEMPLATE_DEPLOY, None, &value, "/x") {
                Err(_) => prop_assert!(value.chars().any(char::is_control), "refused a printable value {value:?}"),
                Ok(out) => {
                    let line = out.lines().find(|l| l.starts_with("REMOTE_DEST=")).unwrap().to_owned();
                    // The value is one shell word on one line: quoted unless it is plain.
                    prop_assert_eq!(&line["REMOTE_DEST=".len()..], templating::shell_quote(&value));
                    prop_assert_eq!(out.lines().count(), TEMPLATE_DEPLOY.lines().count());
                }
            }
        });
    });
}

#[test]
fn injection_corpus_is_rejected_at_the_edge() {
    blocking(LIMIT, || {
        let cfg = OnboardingConfig::default();
        let base = || OnboardArgs {
            slug: "good-slug".into(),
            name: "Good Name".into(),
            email: "good@example.com".into(),
            mode: "person-only".into(),
            ..Default::default()
        };
        let attempts: Vec<(&str, OnboardArgs)> = vec![
            (
                "slug SQL",
                OnboardArgs {
                    slug: "x'; DROP TABLE users; --".into(),
                    ..base()
                },
            ),
            (
                "slug shell",
                OnboardArgs {
                    slug: "x$(reboot)".into(),
                    ..base()
                },
            ),
            (
                "slug newline",
                OnboardArgs {
                    slug: "x\nserver_name evil".into(),
                    ..base()
                },
            ),
            (
                "slug look-alike",
                OnboardArgs {
                    slug: "m\u{0435}rche".into(),
                    ..base()
                },
            ),
            (
                "slug path",
                OnboardArgs {
                    slug: "../../etc".into(),
                    ..base()
                },
            ),
            (
                "slug template",
                OnboardArgs {
                    slug: "_template".into(),
                    ..base()
                },
            ),
            (
                "email shell",
                OnboardArgs {
                    email: "a`id`@example.com".into(),
                    ..base()
                },
            ),
            (
                "email header",
                OnboardArgs {
                    email: "a@example.com\nBcc: x@evil.com".into(),
                    ..base()
                },
            ),
            (
                "email quote",
                OnboardArgs {
                    email: "\"a b\"@example.com".into(),
                    ..base()
                },
            ),
            (
                "domain nginx",
                OnboardArgs {
                    domains: vec!["evil.com; include /etc/passwd".into()],
                    ..base()
                },
            ),
            (
                "domain yaml",
                OnboardArgs {
                    domains: vec!["evil.com\nheld_back: false".into()],
                    ..base()
                },
            ),
            (
                "domain wildcard",
                OnboardArgs {
                    domains: vec!["*.evil.com".into()],
                    ..base()
                },
            ),
            (
                "domain ip",
                OnboardArgs {
                    domains: vec!["169.254.169.254".into()],
                    ..base()
                },
            ),
            (
                "domain braces",
                OnboardArgs {
                    domains: vec!["{provider}.com".into()],
                    ..base()
                },
            ),
            (
                "org SQL",
                OnboardArgs {
                    mode: "person-joins-org".into(),
                    org: Some("cocotte' OR '1'='1".into()),
                    ..base()
                },
            ),
            (
                "mode",
                OnboardArgs {
                    mode: "person-only; rm -rf /".into(),
                    ..base()
                },
            ),
            (
                "feature",
                OnboardArgs {
                    feature: Some("provider-site\nextra: 1".into()),
                    ..base()
                },
            ),
            (
                "palette yaml",
                OnboardArgs {
                    mode: "person-owns-org".into(),
                    org: Some("o-org".into()),
                    org_name: Some("O".into()),
                    palette: Some("#fff000\n- evil".into()),
                    ..base()
                },
            ),
            (
                "logo javascript",
                OnboardArgs {
                    mode: "person-owns-org".into(),
                    org: Some("o-org".into()),
                    org_name: Some("O".into()),
                    logo: Some("javascript:alert(1)".into()),
                    ..base()
                },
            ),
            (
                "name bidi",
                OnboardArgs {
                    name: "Admin\u{202e}nimdA".into(),
                    ..base()
                },
            ),
            (
                "name newline",
                OnboardArgs {
                    name: "Good\nApproved by: ops".into(),
                    ..base()
                },
            ),
        ];
        for (what, args) in attempts {
            assert!(args.parse(&cfg).is_err(), "{what}: accepted {args:?}");
        }
        // Names may hold quotes (O'Brien): they are only ever bound or YAML-quoted, never spliced.
        assert!(
            OnboardArgs {
                name: "Robert'); DROP TABLE users;--".into(),
                ..base()
            }
            .parse(&cfg)
            .is_ok()
        );
    });
}
