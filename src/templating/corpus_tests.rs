//! The template corpus (`tests/fixtures/templates/<style>/`): for templates written in several
//! styles, the edited files are byte for byte the expected ones, and every byte outside the
//! runbook's values is the template's.

use std::path::{Path, PathBuf};

use super::*;

const FEATURE: &str = "agency-site";
const LAB_TEMPLATE: &str =
    "lab/fixtures/platform-repo/deployments/@domains/_template/{provider}.com";
const FILES: [&str; 3] = ["services.yaml", "deploy.sh", "nginx/prod.conf"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Each style: its name, the domain it is onboarded for, and its template's folder (the lab's
/// own template where the style has none).
fn styles() -> Vec<(String, DomainName, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let domain = DomainName::parse(read(&dir.join("domain")).trim()).unwrap();
            let template = dir.join("template");
            let template = if template.exists() {
                template
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(LAB_TEMPLATE)
            };
            (name, domain, template)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 7, "the corpus is missing styles: {out:?}");
    out
}

fn webroot(d: &DomainName) -> String {
    format!("/var/www/{d}")
}

fn nginx_site(d: &DomainName) -> String {
    format!("/etc/nginx/sites-available/{d}")
}

fn edit(file: &str, template: &str, d: &DomainName) -> anyhow::Result<String> {
    match file {
        "services.yaml" => services_yaml(template, d, FEATURE, true),
        "deploy.sh" => deploy_sh(template, None, &webroot(d), &nginx_site(d)),
        "nginx/prod.conf" => nginx_conf(template, d, &webroot(d)),
        _ => unreachable!(),
    }
}

/// Lines with their line ends (`\n`, `\r\n` or none at the end of the file) apart.
fn lines(text: &str) -> Vec<(&str, &str)> {
    text.split_inclusive('\n')
        .map(|l| {
            let body = l.trim_end_matches(['\r', '\n']);
            (body, &l[body.len()..])
        })
        .collect()
}

/// A line's text after its value, with the blanks before a trailing `#` made one space (YAML
/// moves them to keep the comment's column).
fn tail_norm(s: &str) -> String {
    match s.find('#') {
        Some(i) if s[..i].trim().is_empty() || s[..i].ends_with([' ', '\t']) => {
            let before = s[..i].trim_end_matches([' ', '\t']);
            if before.len() < i && !s[before.len()..i].contains('\t') {
                format!("{before} {}", &s[i..])
            } else {
                s.to_owned()
            }
        }
        _ => s.to_owned(),
    }
}

/// On a changed line of `new`: the span from the first to the last occurrence of the
/// runbook's values (with the quotes around them).
fn values_span(line: &str, values: &[String]) -> Option<(usize, usize)> {
    let mut span: Option<(usize, usize)> = None;
    // Not in a trailing comment (which may name a value too).
    let code = &line[..line.find(" #").or(line.find("\t#")).unwrap_or(line.len())];
    for v in values {
        for (i, _) in code.match_indices(v.as_str()) {
            let (mut s, mut e) = (i, i + v.len());
            let b = line.as_bytes();
            if s > 0 && e < b.len() && matches!(b[s - 1], b'"' | b'\'') && b[e] == b[s - 1] {
                s -= 1;
                e += 1;
            }
            span = Some(span.map_or((s, e), |(a, z)| (a.min(s), z.max(e))));
        }
    }
    span
}

/// Every line of `new` is the template's line, or the template's line with one value (a
/// word, or a directive's words) replaced by the runbook's values, its comment and line end
/// kept.
fn only_values_changed(style: &str, file: &str, template: &str, new: &str, values: &[String]) {
    let (t, n) = (lines(template), lines(new));
    assert_eq!(
        t.len(),
        n.len(),
        "{style}/{file}: lines were added or removed:\n{new}"
    );
    for ((tl, te), (nl, ne)) in t.iter().zip(&n) {
        assert_eq!(te, ne, "{style}/{file}: a line end changed on `{nl}`");
        if tl == nl {
            continue;
        }
        let (s, e) = values_span(nl, values)
            .unwrap_or_else(|| panic!("{style}/{file}: `{nl}` changed but holds no runbook value"));
        let (prefix, tail) = (&nl[..s], &nl[e..]);
        assert!(
            tl.starts_with(prefix),
            "{style}/{file}: before the value: `{tl}` -> `{nl}`"
        );
        let rest = &tl[prefix.len()..];
        let t_tail = (0..=rest.len())
            .filter(|&i| rest.is_char_boundary(i))
            .map(|i| &rest[i..])
            .find(|r| tail_norm(r) == tail_norm(tail))
            .unwrap_or_else(|| panic!("{style}/{file}: after the value: `{tl}` -> `{nl}`"));
        let old_value = &rest[..rest.len() - t_tail.len()];
        assert!(
            !old_value.trim().is_empty() && !old_value.contains('#'),
            "{style}/{file}: `{tl}` -> `{nl}` replaced `{old_value}`"
        );
    }
}

#[test]
fn every_style_keeps_every_byte_but_the_values() {
    for (style, d, template_dir) in styles() {
        let values = vec![
            d.as_str().to_owned(),
            d.www().as_str().to_owned(),
            FEATURE.to_owned(),
            webroot(&d),
            nginx_site(&d),
        ];
        for file in FILES {
            let template = read(&template_dir.join(file));
            let out = edit(file, &template, &d).unwrap_or_else(|e| panic!("{style}/{file}: {e:#}"));
            let expected = read(&root().join(&style).join("expected").join(file));
            assert_eq!(out, expected, "{style}/{file}");
            only_values_changed(&style, file, &template, &out, &values);
        }
    }
}

#[test]
fn every_style_reads_back_as_the_runbook_values() {
    for (style, d, template_dir) in styles() {
        let out = edit(
            "services.yaml",
            &read(&template_dir.join("services.yaml")),
            &d,
        )
        .unwrap();
        let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(v["domain"].as_str(), Some(d.as_str()), "{style}");
        assert_eq!(v["feature"].as_str(), Some(FEATURE), "{style}");
        assert_eq!(v["aliases"][0].as_str(), Some(d.www().as_str()), "{style}");
        assert!(held_back(&out).unwrap(), "{style}");
        // Released: one value again, the rest byte for byte.
        let released = set_held_back(&out, false).unwrap();
        assert!(!held_back(&released).unwrap());
        only_values_changed(&style, "services.yaml", &out, &released, &["false".into()]);

        // What bash reads from deploy.sh is exactly the runbook's values.
        let sh = edit("deploy.sh", &read(&template_dir.join("deploy.sh")), &d).unwrap();
        let got = std::process::Command::new("bash")
            .args([
                "-c",
                &format!("{sh}\nprintf '%s\\n%s' \"$REMOTE_DEST\" \"$REMOTE_NGINX_CONF\""),
            ])
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got.stdout).replace('\r', ""),
            format!("{}\n{}", webroot(&d), nginx_site(&d)),
            "{style}"
        );
    }
}

#[test]
fn placeholders_outside_the_values_are_listed() {
    let dir = root().join("placeholders/template");
    let d = DomainName::parse("merche.com").unwrap();
    let mut left = Vec::new();
    for file in FILES {
        let out = edit(file, &read(&dir.join(file)), &d).unwrap();
        left.extend(placeholders_left(file, &out));
    }
    let at: Vec<(&str, usize)> = left.iter().map(|p| (p.path.as_str(), p.line)).collect();
    assert_eq!(
        at,
        [
            ("services.yaml", 1),
            ("services.yaml", 4),
            ("deploy.sh", 1),
            ("nginx/prod.conf", 1)
        ],
        "{left:#?}"
    );
    assert_eq!(
        left[1].text,
        "owner: \"{provider}\"            # another key: left for a person"
    );
}

proptest::proptest! {
    /// Any domain and feature, in every style: the files read back as exactly those values,
    /// and every changed line is the template's with one value replaced.
    #[test]
    fn any_values_in_every_style_change_only_the_values(
        name in "[a-z][a-z0-9-]{0,30}[a-z0-9]",
        tld in "(com|org|co\\.uk|io)",
        feature in "(yes|no|on|true|null|[a-z][a-z0-9-]{0,20})",
    ) {
        let Ok(d) = DomainName::parse(&format!("{name}.{tld}")) else { return Ok(()) };
        let values = vec![d.as_str().to_owned(), d.www().as_str().to_owned(), feature.clone(), webroot(&d), nginx_site(&d)];
        for (style, _, dir) in styles() {
            let template = read(&dir.join("services.yaml"));
            let out = services_yaml(&template, &d, &feature, true).unwrap();
            let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
            proptest::prop_assert_eq!(v["feature"].as_str(), Some(feature.as_str()));
            proptest::prop_assert_eq!(v["domain"].as_str(), Some(d.as_str()));
            only_values_changed(&style, "services.yaml", &template, &out, &values);
            for file in ["deploy.sh", "nginx/prod.conf"] {
                let template = read(&dir.join(file));
                only_values_changed(&style, file, &template, &edit(file, &template, &d).unwrap(), &values);
            }
        }
    }
}
