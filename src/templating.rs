//! The runbook's "Deploy config": the template site's files, edited for one Provider.
//!
//! Pure functions from the template's text to the new text. YAML goes through `yaml-edit`,
//! a lossless editor, so comments, key order and formatting stay and the diff shows only the
//! values that changed; every result is parsed again to prove it is valid. `deploy.sh` and
//! the nginx file have no such editor: their edits are limited to whole lines the template
//! marks as plain assignments / single directives, and refuse anything else.

use std::str::FromStr;

use anyhow::{Context, bail, ensure};
use yaml_edit::Document;

use crate::domain::{Brand, DisplayName, DomainName};

/// `services.yaml`: domain, feature, aliases and `deploy_state.held_back`.
pub fn services_yaml(
    template: &str,
    domain: &DomainName,
    feature: &str,
    held_back: bool,
) -> anyhow::Result<String> {
    let doc = Document::from_str(template)
        .map_err(|e| anyhow::anyhow!("services.yaml does not parse: {e}"))?;
    ensure!(
        doc.get("domain").is_some() && doc.get("feature").is_some(),
        "services.yaml has no domain or feature key"
    );
    doc.set("domain", domain.as_str());
    doc.set("feature", feature);
    let aliases = doc
        .get_sequence("aliases")
        .context("services.yaml has no aliases list")?;
    let www = domain.www();
    if aliases.is_empty() {
        aliases.push(www.as_str());
    } else {
        aliases.set(0, www.as_str());
        while aliases.len() > 1 {
            aliases.pop();
        }
    }
    set_held_back_in(&doc, held_back)?;
    let out = doc.to_string();
    validate_yaml(&out, "services.yaml")?;
    Ok(out)
}

/// Flips `deploy_state.held_back`, nothing else.
pub fn set_held_back(text: &str, held_back: bool) -> anyhow::Result<String> {
    let doc = Document::from_str(text)
        .map_err(|e| anyhow::anyhow!("services.yaml does not parse: {e}"))?;
    set_held_back_in(&doc, held_back)?;
    let out = doc.to_string();
    validate_yaml(&out, "services.yaml")?;
    Ok(out)
}

fn set_held_back_in(doc: &Document, held_back: bool) -> anyhow::Result<()> {
    let state = doc
        .get_mapping("deploy_state")
        .context("services.yaml has no deploy_state mapping")?;
    state.set("held_back", held_back);
    Ok(())
}

/// Reads `deploy_state.held_back`.
pub fn held_back(text: &str) -> anyhow::Result<bool> {
    let v: serde_norway::Value =
        serde_norway::from_str(text).context("services.yaml does not parse")?;
    v.get("deploy_state")
        .and_then(|s| s.get("held_back"))
        .and_then(|h| h.as_bool())
        .context("services.yaml has no deploy_state.held_back boolean")
}

/// `org-site.yaml`: the brand block of an Org-shaped Provider.
pub fn org_site_yaml(
    template: &str,
    org_name: &DisplayName,
    brand: &Brand,
    logo_path: &str,
) -> anyhow::Result<String> {
    let doc = Document::from_str(template)
        .map_err(|e| anyhow::anyhow!("org-site.yaml does not parse: {e}"))?;
    let b = doc
        .get_mapping("brand")
        .context("org-site.yaml has no brand mapping")?;
    b.set("name", org_name.as_str());
    if !brand.copy.as_str().is_empty() {
        b.set("copy", brand.copy.as_str());
    }
    b.set(
        "logo",
        brand.logo.as_ref().map(|l| l.as_str()).unwrap_or(logo_path),
    );
    if !brand.palette.is_empty() {
        let p = b
            .get_sequence("palette")
            .context("org-site.yaml has no brand.palette list")?;
        for (i, c) in brand.palette.iter().enumerate() {
            if i < p.len() {
                p.set(i, c.as_str());
            } else {
                p.push(c.as_str());
            }
        }
        while p.len() > brand.palette.len() {
            p.pop();
        }
    }
    let out = doc.to_string();
    validate_yaml(&out, "org-site.yaml")?;
    Ok(out)
}

fn validate_yaml(text: &str, file: &str) -> anyhow::Result<()> {
    serde_norway::from_str::<serde_norway::Value>(text)
        .with_context(|| format!("the edited {file} is not valid YAML"))?;
    Ok(())
}

/// `deploy.sh`: rewrites the `REMOTE_DEST=` and `REMOTE_NGINX_CONF=` assignment lines.
pub fn deploy_sh(
    template: &str,
    remote_dest: &str,
    remote_nginx_conf: &str,
) -> anyhow::Result<String> {
    let mut out = set_assignment(template, "REMOTE_DEST", remote_dest)?;
    out = set_assignment(&out, "REMOTE_NGINX_CONF", remote_nginx_conf)?;
    Ok(out)
}

/// Replaces the single `NAME=...` line (no leading spaces, not `export`) with a quoted value.
fn set_assignment(text: &str, name: &str, value: &str) -> anyhow::Result<String> {
    ensure!(
        !value.chars().any(char::is_control),
        "the value of {name} must be one line of printable text"
    );
    let prefix = format!("{name}=");
    let hits = text.lines().filter(|l| l.starts_with(&prefix)).count();
    ensure!(
        hits == 1,
        "deploy.sh must have exactly one `{name}=` line, found {hits}"
    );
    let mut out: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with(&prefix) {
            let eol = if line.ends_with('\n') { "\n" } else { "" };
            out.push(format!("{name}={}{eol}", shell_quote(value)));
        } else {
            out.push(line.to_owned());
        }
    }
    Ok(out.concat())
}

/// A value for a POSIX shell: bare when it only holds safe characters, else single-quoted.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-@:+,=".contains(c))
    {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// `nginx/prod.conf`: `server_name` (apex and www) and `root`. Each directive must appear once.
pub fn nginx_conf(template: &str, domain: &DomainName, root: &str) -> anyhow::Result<String> {
    ensure!(
        nginx_safe(root),
        "webroot `{root}` has characters nginx would misread"
    );
    let mut out = set_directive(
        template,
        "server_name",
        &format!("{} {}", domain, domain.www()),
    )?;
    out = set_directive(&out, "root", root)?;
    Ok(out)
}

/// Nginx values from validated parts: no spaces, quotes, semicolons, braces or `$`.
fn nginx_safe(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-@:+".contains(c))
}

fn set_directive(text: &str, directive: &str, value: &str) -> anyhow::Result<String> {
    let is_it = |l: &str| {
        let t = l.trim_start();
        t.starts_with(directive) && t[directive.len()..].starts_with([' ', '\t'])
    };
    let hits = text.lines().filter(|l| is_it(l)).count();
    if hits != 1 {
        bail!("nginx/prod.conf must have exactly one `{directive}` directive, found {hits}");
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if is_it(line) {
            let indent: String = line
                .chars()
                .take_while(|c| c.is_whitespace() && *c != '\n')
                .collect();
            let eol = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!("{indent}{directive} {value};{eol}"));
        } else {
            out.push_str(line);
        }
    }
    Ok(out)
}

/// The brand-mail config: appends `brand <domain> <mode> dkim-selector=<selector>` unless the
/// domain is already listed (then the text is returned unchanged).
pub fn brand_mail_conf(
    text: &str,
    domain: &DomainName,
    mode: &str,
    selector: &str,
) -> anyhow::Result<String> {
    ensure!(
        matches!(mode, "mailbox" | "forward"),
        "brand-mail mode `{mode}` is not mailbox or forward"
    );
    ensure!(
        selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "DKIM selector `{selector}` is not a DNS label"
    );
    let listed = text
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(domain.as_str()) && l.starts_with("brand "));
    if listed {
        return Ok(text.to_owned());
    }
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("brand {domain} {mode} dkim-selector={selector}\n"));
    Ok(out)
}

/// A unified diff of one file, for the plan a person approves.
pub fn unified_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let old_text = old.unwrap_or("");
    let diff = similar::TextDiff::from_lines(old_text, new);
    let from = if old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".into()
    };
    diff.unified_diff()
        .context_radius(3)
        .header(&from, &format!("b/{path}"))
        .to_string()
}

/// A new file made from a template: `cp template new` followed by the edits, as a diff.
pub fn copy_diff(template_path: &str, path: &str, template: &str, new: &str) -> String {
    let diff = similar::TextDiff::from_lines(template, new);
    let body = diff
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{template_path}"), &format!("b/{path}"))
        .to_string();
    if body.is_empty() {
        format!("copy {template_path} -> {path} (unchanged)\n")
    } else {
        format!("copy {template_path} -> {path}, then:\n{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "# header comment\ndomain: provider.com          # apex\nfeature: provider-site        # generic\naliases:                      # names\n  - www.provider.com\ndeploy_state:\n  held_back: true             # until TLS\n";

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn services_keeps_comments_and_order() {
        let out = services_yaml(SERVICES, &d("merche.com"), "agency-site", true).unwrap();
        assert!(
            out.starts_with("# header comment\ndomain: merche.com"),
            "{out}"
        );
        assert!(
            out.contains("# apex")
                && out.contains("# until TLS")
                && out.contains("- www.merche.com"),
            "{out}"
        );
        let diff = unified_diff("services.yaml", Some(SERVICES), &out);
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .collect();
        assert_eq!(
            changed.len(),
            3,
            "only domain, feature and the alias change:\n{diff}"
        );
        assert!(held_back(&out).unwrap());
        let released = set_held_back(&out, false).unwrap();
        assert!(!held_back(&released).unwrap());
        assert!(released.contains("# until TLS"));
    }

    #[test]
    fn deploy_sh_and_nginx_lines() {
        let sh = "# c\nREMOTE_HOST=quinn-vps\nREMOTE_DEST=/var/www/provider.com\nREMOTE_NGINX_CONF=/etc/nginx/sites-available/provider.com\n";
        let out = deploy_sh(
            sh,
            "/var/www/merche.com",
            "/etc/nginx/sites-available/merche.com",
        )
        .unwrap();
        assert!(
            out.contains("REMOTE_DEST=/var/www/merche.com\n")
                && out.contains("REMOTE_HOST=quinn-vps"),
            "{out}"
        );
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert!(deploy_sh("REMOTE_DEST=a\nREMOTE_DEST=b\n", "x", "y").is_err());

        let conf = "server {\n    listen 80;\n    server_name provider.com www.provider.com;\n    root /var/www/provider.com;\n}\n";
        let out = nginx_conf(conf, &d("merche.com"), "/var/www/merche.com").unwrap();
        assert!(
            out.contains(
                "    server_name merche.com www.merche.com;\n    root /var/www/merche.com;\n"
            ),
            "{out}"
        );
        assert!(nginx_conf(conf, &d("merche.com"), "/var/www/x; include /etc/passwd").is_err());
    }

    #[test]
    fn brand_mail_is_appended_once() {
        let conf = "# header\nbrand quinn.com mailbox dkim-selector=default\n";
        let out = brand_mail_conf(conf, &d("merche.com"), "mailbox", "default").unwrap();
        assert!(out.ends_with("brand merche.com mailbox dkim-selector=default\n"));
        assert_eq!(
            brand_mail_conf(&out, &d("merche.com"), "mailbox", "default").unwrap(),
            out
        );
    }

    #[test]
    fn org_site_takes_the_brand_with_quoting() {
        let tpl = "brand:\n  name: Provider Name                 # display\n  copy: Placeholder.        # hero\n  logo: public/logo.svg\n  palette:\n    - \"#1f2937\"\n    - \"#f59e0b\"\n    - \"#ffffff\"\n";
        let brand = Brand::parse(
            "Hi: \"there\" # not a comment\nline two",
            None,
            "#112233,#445566",
        )
        .unwrap();
        let out = org_site_yaml(
            tpl,
            &DisplayName::parse_field("org-name", "Merche: Collective").unwrap(),
            &brand,
            "public/logo.svg",
        )
        .unwrap();
        let v: serde_norway::Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(v["brand"]["name"].as_str(), Some("Merche: Collective"));
        assert_eq!(
            v["brand"]["copy"].as_str(),
            Some("Hi: \"there\" # not a comment\nline two")
        );
        assert_eq!(v["brand"]["palette"].as_sequence().unwrap().len(), 2);
        assert!(out.contains("# display"), "{out}");
    }
}
