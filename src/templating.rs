//! The runbook's "Deploy config": the template site's files, edited for one Provider.
//!
//! Pure functions from the template's text to the new text. An edit changes the bytes of a
//! value and nothing else: the value keeps the quoting the template used where that quoting
//! can hold it ([`quoting`]), a trailing comment stays (in YAML at its column), and every other
//! byte, line ends included, is the template's. `services.yaml` is read with `yaml-edit` to
//! find each value's bytes; the result is parsed again and must read as the template with
//! exactly the runbook's values set. `deploy.sh` and the nginx file are edited on the one line
//! that assigns the value, which must be a plain assignment / a single directive.
//!
//! A template may hold the sample value (`provider.com`) or the placeholder `{provider}` in the
//! values the runbook sets: either way the value is replaced. A `{provider}` anywhere else
//! stays and is reported ([`placeholders_left`]). See docs/templates.md.

mod quoting;

#[cfg(test)]
mod corpus_tests;

use std::ops::Range;
use std::str::FromStr;

use anyhow::{Context, bail, ensure};
use yaml_edit::Document;

use crate::domain::{Brand, DisplayName, DomainName};

pub use quoting::{Quote, nginx_word, shell_quote, shell_word, yaml_string};

/// The placeholder a template may use for the Provider's name, as the runbook spells the
/// template's own path (`_template/{provider}.com`).
pub const PLACEHOLDER: &str = "{provider}";

/// A placeholder the edits leave as it is: it is not in a value the runbook sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceholderLeft {
    /// The file's path.
    pub path: String,
    /// Its line, from 1.
    pub line: usize,
    /// The line's text, trimmed.
    pub text: String,
}

/// Every line of `text` still holding [`PLACEHOLDER`].
pub fn placeholders_left(path: &str, text: &str) -> Vec<PlaceholderLeft> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(PLACEHOLDER))
        .map(|(i, l)| PlaceholderLeft {
            path: path.to_owned(),
            line: i + 1,
            text: l.trim().to_owned(),
        })
        .collect()
}

/// Bytes of the template replaced by new text.
struct Splice {
    range: Range<usize>,
    text: String,
}

/// `text` with the splices (in any order, not overlapping) applied.
fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| s.range.start);
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for s in splices {
        out.push_str(&text[at..s.range.start]);
        out.push_str(&s.text);
        at = s.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The line of `text` holding byte `at`: its start and its end (before `\r\n` or `\n`).
fn line_of(text: &str, at: usize) -> Range<usize> {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let end = if text[..end].ends_with('\r') {
        end - 1
    } else {
        end
    };
    start..end
}

/// In `rest` (a line's text after a value): where a trailing ` # comment` starts, as the
/// range of the blanks before its `#`. Quotes in `rest` are skipped.
fn comment_gap(rest: &str) -> Option<Range<usize>> {
    let mut quote = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => {
                let blanks = rest[..i].len() - rest[..i].trim_end_matches([' ', '\t']).len();
                return (blanks > 0).then(|| i - blanks..i);
            }
            _ => {}
        }
    }
    None
}

/// YAML: value splices plus, on each edited line with a trailing comment, the spaces before it
/// set so the comment keeps its column (at least one space; a gap with a tab is kept).
fn with_comment_columns(text: &str, mut splices: Vec<Splice>) -> Vec<Splice> {
    splices.sort_by_key(|s| s.range.start);
    let mut extra = Vec::new();
    let mut i = 0;
    while i < splices.len() {
        let line = line_of(text, splices[i].range.start);
        let mut j = i;
        let mut shift: isize = 0;
        while j < splices.len() && splices[j].range.start < line.end {
            let s = &splices[j];
            shift +=
                s.text.chars().count() as isize - text[s.range.clone()].chars().count() as isize;
            j += 1;
        }
        let last_end = splices[j - 1].range.end;
        if last_end <= line.end
            && let Some(gap) = comment_gap(&text[last_end..line.end])
        {
            let gap = last_end + gap.start..last_end + gap.end;
            if shift != 0 && !text[gap.clone()].contains('\t') {
                let width = text[gap.clone()].chars().count() as isize - shift;
                extra.push(Splice {
                    range: gap,
                    text: " ".repeat(width.max(1) as usize),
                });
            }
        }
        i = j;
    }
    splices.extend(extra);
    splices
}

/// The bytes of a YAML node that is a one-line plain or quoted scalar.
fn scalar_span(
    node: Option<yaml_edit::YamlNode>,
    text: &str,
    what: &str,
) -> anyhow::Result<Range<usize>> {
    scalar_span_in(node, text, "services.yaml", what)
}

/// The bytes of a YAML node of `file` that is a one-line plain or quoted scalar.
fn scalar_span_in(
    node: Option<yaml_edit::YamlNode>,
    text: &str,
    file: &str,
    what: &str,
) -> anyhow::Result<Range<usize>> {
    let node = node.with_context(|| format!("{file} has no {what}"))?;
    let r = node.byte_range();
    let span = r.start as usize..r.end as usize;
    let spelled = &text[span.clone()];
    ensure!(
        node.as_scalar().is_some()
            && !spelled.contains('\n')
            && !spelled.starts_with(['|', '>', '&', '*', '!']),
        "{file}: {what} must be a one-line plain or quoted value, not `{spelled}`"
    );
    Ok(span)
}

/// A string value where the template has `span`, in its quoting when that holds it.
fn yaml_value(text: &str, span: Range<usize>, value: &str) -> Splice {
    let style = Quote::of(&text[span.clone()]);
    Splice {
        range: span,
        text: yaml_string(value, style),
    }
}

fn parse_doc(text: &str) -> anyhow::Result<Document> {
    Document::from_str(text).map_err(|e| anyhow::anyhow!("services.yaml does not parse: {e}"))
}

fn parse_value(text: &str, what: &str) -> anyhow::Result<serde_norway::Value> {
    serde_norway::from_str(text).with_context(|| format!("{what} is not valid YAML"))
}

/// `services.yaml`: domain, feature, aliases (`[www.<domain>]`) and `deploy_state.held_back`.
pub fn services_yaml(
    template: &str,
    domain: &DomainName,
    feature: &str,
    held_back: bool,
) -> anyhow::Result<String> {
    let doc = parse_doc(template)?;
    ensure!(
        doc.get("domain").is_some() && doc.get("feature").is_some(),
        "services.yaml has no domain or feature key"
    );
    let www = domain.www();
    // The list is made one long first (yaml-edit: an empty one gets the item, extra items go),
    // so that its one item is then a value edited in place like the others.
    let aliases = doc
        .get_sequence("aliases")
        .context("services.yaml has no aliases list")?;
    let text = if aliases.len() == 1 {
        template.to_owned()
    } else {
        if aliases.is_empty() {
            aliases.push(www.as_str());
        }
        while aliases.len() > 1 {
            aliases.pop();
        }
        doc.to_string()
    };
    let doc = parse_doc(&text)?;
    let alias = doc.get_sequence("aliases").and_then(|a| a.get(0));
    let splices = vec![
        yaml_value(
            &text,
            scalar_span(doc.get("domain"), &text, "domain")?,
            domain.as_str(),
        ),
        yaml_value(
            &text,
            scalar_span(doc.get("feature"), &text, "feature")?,
            feature,
        ),
        yaml_value(
            &text,
            scalar_span(alias, &text, "aliases item")?,
            www.as_str(),
        ),
        held_back_splice(&doc, &text, held_back)?,
    ];
    let out = apply(&text, with_comment_columns(&text, splices));

    // The result reads as the template with exactly these values set, nothing else.
    let mut expected = parse_value(template, "services.yaml")?;
    let map = expected
        .as_mapping_mut()
        .context("services.yaml is not a mapping")?;
    map.insert("domain".into(), domain.as_str().into());
    map.insert("feature".into(), feature.into());
    map.insert(
        "aliases".into(),
        vec![serde_norway::Value::from(www.as_str())].into(),
    );
    set_held_back_value(&mut expected, held_back)?;
    ensure_reads_as(&out, &expected)?;
    Ok(out)
}

/// Flips `deploy_state.held_back`, nothing else.
pub fn set_held_back(text: &str, held_back: bool) -> anyhow::Result<String> {
    let doc = parse_doc(text)?;
    let splice = held_back_splice(&doc, text, held_back)?;
    let out = apply(text, with_comment_columns(text, vec![splice]));
    let mut expected = parse_value(text, "services.yaml")?;
    set_held_back_value(&mut expected, held_back)?;
    ensure_reads_as(&out, &expected)?;
    Ok(out)
}

fn held_back_splice(doc: &Document, text: &str, held_back: bool) -> anyhow::Result<Splice> {
    let state = doc
        .get_mapping("deploy_state")
        .context("services.yaml has no deploy_state mapping")?;
    let span = scalar_span(state.get("held_back"), text, "deploy_state.held_back")?;
    Ok(Splice {
        range: span,
        text: held_back.to_string(),
    })
}

fn set_held_back_value(v: &mut serde_norway::Value, held_back: bool) -> anyhow::Result<()> {
    v.get_mut("deploy_state")
        .and_then(|s| s.as_mapping_mut())
        .context("services.yaml has no deploy_state mapping")?
        .insert("held_back".into(), held_back.into());
    Ok(())
}

fn ensure_reads_as(out: &str, expected: &serde_norway::Value) -> anyhow::Result<()> {
    ensure_file_reads_as(out, expected, "services.yaml")
}

fn ensure_file_reads_as(
    out: &str,
    expected: &serde_norway::Value,
    file: &str,
) -> anyhow::Result<()> {
    let got = parse_value(out, &format!("the edited {file}"))?;
    ensure!(
        &got == expected,
        "editing {file} would change more than the runbook's values (is one of them an anchor another key refers to?)"
    );
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

/// `org-site.yaml`: the brand block of an Org-shaped Provider: `brand.name`, `copy` (when
/// given), `logo` and the `palette` items, each value edited in place as in `services.yaml`.
pub fn org_site_yaml(
    template: &str,
    org_name: &DisplayName,
    brand: &Brand,
    logo_path: &str,
) -> anyhow::Result<String> {
    const FILE: &str = "org-site.yaml";
    let parse =
        |t: &str| Document::from_str(t).map_err(|e| anyhow::anyhow!("{FILE} does not parse: {e}"));
    let doc = parse(template)?;
    let b = doc
        .get_mapping("brand")
        .context("org-site.yaml has no brand mapping")?;
    // The list is made as long as the palette first (yaml-edit adds or drops items), so that
    // each item is then a value edited in place like the others.
    let text = match b.get_sequence("palette") {
        Some(p) if !brand.palette.is_empty() && p.len() != brand.palette.len() => {
            while p.len() < brand.palette.len() {
                p.push(brand.palette[p.len()].as_str());
            }
            while p.len() > brand.palette.len() {
                p.pop();
            }
            doc.to_string()
        }
        None if !brand.palette.is_empty() => bail!("org-site.yaml has no brand.palette list"),
        _ => template.to_owned(),
    };
    let doc = parse(&text)?;
    let b = doc
        .get_mapping("brand")
        .context("org-site.yaml has no brand mapping")?;
    let span = |key: &str| scalar_span_in(b.get(key), &text, FILE, &format!("brand.{key}"));
    let logo = brand.logo.as_ref().map(|l| l.as_str()).unwrap_or(logo_path);
    let mut splices = vec![
        yaml_value(&text, span("name")?, org_name.as_str()),
        yaml_value(&text, span("logo")?, logo),
    ];
    if !brand.copy.as_str().is_empty() {
        splices.push(yaml_value(&text, span("copy")?, brand.copy.as_str()));
    }
    if !brand.palette.is_empty() {
        let p = b
            .get_sequence("palette")
            .context("org-site.yaml has no brand.palette list")?;
        for (i, c) in brand.palette.iter().enumerate() {
            let item = scalar_span_in(p.get(i), &text, FILE, "brand.palette item")?;
            splices.push(yaml_value(&text, item, c.as_str()));
        }
    }
    let out = apply(&text, with_comment_columns(&text, splices));

    // The result reads as the template with exactly these values set, nothing else.
    let mut expected = parse_value(template, FILE)?;
    let map = expected
        .get_mut("brand")
        .and_then(|b| b.as_mapping_mut())
        .context("org-site.yaml has no brand mapping")?;
    map.insert("name".into(), org_name.as_str().into());
    map.insert("logo".into(), logo.into());
    if !brand.copy.as_str().is_empty() {
        map.insert("copy".into(), brand.copy.as_str().into());
    }
    if !brand.palette.is_empty() {
        map.insert(
            "palette".into(),
            brand
                .palette
                .iter()
                .map(|c| serde_norway::Value::from(c.as_str()))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    ensure_file_reads_as(&out, &expected, FILE)?;
    Ok(out)
}

/// `deploy.sh`: the values of the `REMOTE_DEST=` and `REMOTE_NGINX_CONF=` assignments, and
/// of `REMOTE_HOST=` (the VPS's ssh host) when `remote_host` is given.
pub fn deploy_sh(
    template: &str,
    remote_host: Option<&str>,
    remote_dest: &str,
    remote_nginx_conf: &str,
) -> anyhow::Result<String> {
    let mut splices = vec![
        assignment(template, "REMOTE_DEST", remote_dest)?,
        assignment(template, "REMOTE_NGINX_CONF", remote_nginx_conf)?,
    ];
    if let Some(host) = remote_host {
        splices.push(assignment(template, "REMOTE_HOST", host)?);
    }
    Ok(apply(template, splices))
}

/// The value of the single `NAME=value` line (no leading spaces, not `export`), replaced by
/// `value` in the template's quoting where it holds it. The line must be a plain assignment:
/// one bare, `"..."` (without `$`, `` ` `` or `\`) or `'...'` word, then at most blanks and a
/// `# comment`.
fn assignment(text: &str, name: &str, value: &str) -> anyhow::Result<Splice> {
    ensure!(
        !value.chars().any(char::is_control),
        "the value of {name} must be one line of printable text"
    );
    let prefix = format!("{name}=");
    let mut hits = text
        .split_inclusive('\n')
        .scan(0, |at, l| {
            let start = *at;
            *at += l.len();
            Some(start)
        })
        .filter(|&start| text[start..].starts_with(&prefix));
    let (Some(start), None) = (hits.next(), hits.next()) else {
        let n = text.lines().filter(|l| l.starts_with(&prefix)).count();
        bail!("deploy.sh must have exactly one `{name}=` line, found {n}");
    };
    let line = line_of(text, start);
    let v_start = start + prefix.len();
    let rest = &text[v_start..line.end];
    let not_plain = || {
        anyhow::anyhow!(
            "deploy.sh: `{}` is not a plain `{name}=value` assignment",
            &text[line.clone()]
        )
    };
    let len = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let close = rest[1..].find(q).ok_or_else(not_plain)? + 2;
            if q == '"' && rest[..close].contains(['$', '`', '\\']) {
                return Err(not_plain());
            }
            close
        }
        _ => rest.find([' ', '\t']).unwrap_or(rest.len()),
    };
    let word = &rest[..len];
    let after = &rest[len..];
    let after_ok = after.trim_start_matches([' ', '\t']);
    let comment_ok =
        after_ok.is_empty() || (after_ok.starts_with('#') && after.len() > after_ok.len());
    let word_ok = Quote::of(word) != Quote::Bare
        || !word.contains(['"', '\'', '$', '`', '\\', ';', '&', '|', '<', '>', '(', ')']);
    if !(comment_ok && word_ok) {
        return Err(not_plain());
    }
    Ok(Splice {
        range: v_start..v_start + len,
        text: shell_word(value, Quote::of(word)),
    })
}

/// `nginx/prod.conf`: `server_name` (apex and www) and `root`. Each directive must appear once.
pub fn nginx_conf(template: &str, domain: &DomainName, root: &str) -> anyhow::Result<String> {
    let splices = vec![
        directive(
            template,
            "server_name",
            &[domain.as_str(), domain.www().as_str()],
        )?,
        directive(template, "root", &[root])?,
    ];
    Ok(apply(template, splices))
}

/// Whether an nginx conf has a `listen` on port 80 of every IPv6 address (`[::]:80`) or of
/// `addr` (`[addr]:80`), outside comments.
pub fn nginx_listens_ipv6(conf: &str, addr: std::net::Ipv6Addr) -> bool {
    conf.lines().any(|l| {
        let l = l.split('#').next().unwrap_or_default().trim_start();
        let Some(rest) = l.strip_prefix("listen") else {
            return false;
        };
        let Some(first) = rest.split_whitespace().next() else {
            return false;
        };
        let first = first.trim_end_matches(';');
        let Some((host, port)) = first.strip_prefix('[').and_then(|h| h.split_once("]:")) else {
            return false;
        };
        port == "80"
            && host
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|h| h.is_unspecified() || h == addr)
    })
}

/// The arguments of the single `directive` line, replaced by `args`, each in the quoting of
/// the template's first argument where it holds it and joined as the template joined its own.
/// Everything from the `;` on (a comment, the line end) stays.
fn directive(text: &str, directive: &str, args: &[&str]) -> anyhow::Result<Splice> {
    let is_it = |l: &str| {
        let t = l.trim_start();
        t.starts_with(directive) && t[directive.len()..].starts_with([' ', '\t'])
    };
    let hits = text.lines().filter(|l| is_it(l)).count();
    if hits != 1 {
        bail!("nginx/prod.conf must have exactly one `{directive}` directive, found {hits}");
    }
    let start = text
        .split_inclusive('\n')
        .scan(0, |at, l| {
            let start = *at;
            *at += l.len();
            Some((start, l))
        })
        .find(|(_, l)| is_it(l))
        .map(|(s, _)| s)
        .expect("counted above");
    let line = line_of(text, start);
    let l = &text[line.clone()];
    let a_start = line.start + (l.len() - l.trim_start().len()) + directive.len();
    let tokens = nginx_args(&text[a_start..line.end]).ok_or_else(|| {
        anyhow::anyhow!(
            "nginx/prod.conf: `{}` is not one `{directive} ...;` directive with plain or quoted arguments (a `{{provider}}` placeholder must be quoted)",
            l.trim()
        )
    })?;
    let (first, last) = (&tokens[0], &tokens[tokens.len() - 1]);
    let style = Quote::of(&text[a_start + first.start..a_start + first.end]);
    let sep = match tokens.get(1) {
        Some(second) => &text[a_start + first.end..a_start + second.start],
        None => " ",
    };
    let words = args
        .iter()
        .map(|a| {
            nginx_word(a, style).with_context(|| {
                format!("`{a}` has characters nginx would misread in `{directive}`")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Splice {
        range: a_start + first.start..a_start + last.end,
        text: words.join(sep),
    })
}

/// The arguments of a directive (`rest`: the line after its name) up to its `;`, as byte
/// ranges in `rest`; `None` unless it is blanks, one or more bare or quoted words, `;`.
fn nginx_args(rest: &str) -> Option<Vec<Range<usize>>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let b = rest.as_bytes();
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        match b.get(i)? {
            b';' => return (!tokens.is_empty()).then_some(tokens),
            q @ (b'"' | b'\'') => {
                let close = rest[i + 1..].find(*q as char)? + i + 2;
                if rest[i..close].contains('\\') {
                    return None;
                }
                tokens.push(i..close);
                i = close;
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t' | b';' | b'{' | b'}' | b'"' | b'\'' | b'#' | b'\r' | b'\n'
                    )
                {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                tokens.push(start..i);
            }
        }
    }
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

/// The brand-mail config without the `brand <domain> ...` line(s) [`brand_mail_conf`] adds;
/// every other byte kept. The text unchanged when the domain is not listed.
pub fn brand_mail_conf_without(text: &str, domain: &DomainName) -> String {
    text.split_inclusive('\n')
        .filter(|l| {
            !(l.starts_with("brand ") && l.split_whitespace().nth(1) == Some(domain.as_str()))
        })
        .collect()
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
            None,
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
        assert!(deploy_sh("REMOTE_DEST=a\nREMOTE_DEST=b\n", None, "x", "y").is_err());

        let conf = "server {\n    listen 80;\n    server_name provider.com www.provider.com;\n    root /var/www/provider.com;\n}\n";
        let out = nginx_conf(conf, &d("merche.com"), "/var/www/merche.com").unwrap();
        assert!(
            out.contains(
                "    server_name merche.com www.merche.com;\n    root /var/www/merche.com;\n"
            ),
            "{out}"
        );
        // A root nginx would split is one quoted argument; one it would expand is refused.
        let out = nginx_conf(conf, &d("merche.com"), "/var/www/x; include /etc/passwd").unwrap();
        assert!(
            out.contains("    root \"/var/www/x; include /etc/passwd\";\n"),
            "{out}"
        );
        assert!(nginx_conf(conf, &d("merche.com"), "/var/www/$host").is_err());
    }

    #[test]
    fn deploy_sh_names_the_chosen_vps_and_nothing_else_changes() {
        let sh = "# c\nREMOTE_HOST='quinn-vps' # the VPS\nREMOTE_DEST=/var/www/provider.com\nREMOTE_NGINX_CONF=/etc/nginx/sites-available/provider.com\n";
        let out = deploy_sh(
            sh,
            Some("quinn-vps-1"),
            "/srv/www/m.com",
            "/srv/nginx/m.com",
        )
        .unwrap();
        assert_eq!(
            out,
            "# c\nREMOTE_HOST='quinn-vps-1' # the VPS\nREMOTE_DEST=/srv/www/m.com\nREMOTE_NGINX_CONF=/srv/nginx/m.com\n"
        );
        // A template without the line cannot say where the site goes.
        let err = deploy_sh("REMOTE_DEST=a\nREMOTE_NGINX_CONF=b\n", Some("h"), "x", "y")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one `REMOTE_HOST=` line"), "{err}");
    }

    #[test]
    fn an_ipv6_listen_is_found_for_any_or_the_vps_address() {
        let v6: std::net::Ipv6Addr = "fd00:201::2".parse().unwrap();
        let conf = |listen: &str| format!("server {{\n    listen 80;\n    {listen}\n}}\n");
        assert!(nginx_listens_ipv6(&conf("listen [::]:80;"), v6));
        assert!(nginx_listens_ipv6(
            &conf("listen [fd00:201::2]:80 default_server;"),
            v6
        ));
        assert!(!nginx_listens_ipv6(&conf("listen [fd00:201::3]:80;"), v6));
        assert!(!nginx_listens_ipv6(&conf("# listen [::]:80;"), v6));
        assert!(!nginx_listens_ipv6(&conf("listen [::]:443 ssl;"), v6));
        assert!(!nginx_listens_ipv6(&conf(""), v6));
    }

    #[test]
    fn brand_mail_line_is_removed_and_nothing_else() {
        let text = "# brands\nbrand quinn.com mailbox dkim-selector=mail\n";
        let added = brand_mail_conf(text, &d("merche.com"), "mailbox", "mail").unwrap();
        assert_eq!(brand_mail_conf_without(&added, &d("merche.com")), text);
        // Another domain's line, and a domain only named in a comment, stay.
        assert_eq!(brand_mail_conf_without(text, &d("merche.com")), text);
        let commented = "# brand merche.com was here\nbrand quinn.com forward dkim-selector=m";
        assert_eq!(
            brand_mail_conf_without(commented, &d("merche.com")),
            commented
        );
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

    #[test]
    fn org_site_changes_only_the_values_keeping_quotes_and_comment_columns() {
        // A name with a space is not left plain (see `quoting`): it is double-quoted, and its
        // comment keeps its column.
        let tpl = "# brand\nbrand:\n  name: Provider Name                 # display name\n  copy: 'Placeholder.'               # hero text\n  logo: public/logo.svg               # path\n  palette:                            # colours\n    - \"#1f2937\"   # primary\n    - \"#f59e0b\"\n    - \"#ffffff\"\n";
        let brand = Brand::parse("Hello there", None, "#112233,#445566,#778899").unwrap();
        let out = org_site_yaml(
            tpl,
            &DisplayName::parse_field("org-name", "Merche Collective").unwrap(),
            &brand,
            "public/logo.svg",
        )
        .unwrap();
        assert_eq!(
            out,
            "# brand\nbrand:\n  name: \"Merche Collective\"           # display name\n  copy: 'Hello there'                # hero text\n  logo: public/logo.svg               # path\n  palette:                            # colours\n    - \"#112233\"   # primary\n    - \"#445566\"\n    - \"#778899\"\n"
        );
    }
}
