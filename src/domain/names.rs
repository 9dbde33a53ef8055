//! Names: a Provider's or an org's slug, and a domain name.

use serde::{Deserialize, Serialize};

use super::{InputError, describe_char, printable, text_type};

/// Shortest and longest slug accepted. Two characters keeps `qa`-style slugs possible; 40 keeps
/// `{slug}.my` and `{slug}.com` well under DNS's 63-character label limit.
pub const SLUG_MIN: usize = 2;

pub const SLUG_MAX: usize = 40;

/// A kebab-case identifier: lowercase a-z and 0-9 in groups joined by single hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    /// Parses a slug for the named field (`slug`, `org`, ...). Reserved words are checked
    /// separately against the configured list, see [`Slug::check_not_reserved`].
    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, InputError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(InputError::new(
                field,
                "is empty; give a kebab-case name such as `merche-biche`",
            ));
        }
        let len = s.chars().count();
        if !(SLUG_MIN..=SLUG_MAX).contains(&len) {
            return Err(InputError::new(
                field,
                format!(
                    "`{}` is {len} characters; it must be {SLUG_MIN} to {SLUG_MAX}",
                    printable(s)
                ),
            ));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(InputError::new(
                field,
                format!(
                    "`{}` contains {}; only lowercase a-z, 0-9 and single hyphens are allowed",
                    printable(s),
                    describe_char(bad)
                ),
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(InputError::new(
                field,
                format!("`{s}` starts or ends with a hyphen"),
            ));
        }
        if s.contains("--") {
            return Err(InputError::new(
                field,
                format!("`{s}` has two hyphens in a row"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn parse(raw: &str) -> Result<Self, InputError> {
        Self::parse_field("slug", raw)
    }

    /// Refuses a slug on the configured reserved list (`www`, `api`, `_template`, ...).
    pub fn check_not_reserved(
        &self,
        field: &'static str,
        reserved: &[String],
    ) -> Result<(), InputError> {
        if reserved.iter().any(|r| r == &self.0) {
            return Err(InputError::new(
                field,
                format!("`{}` is reserved; choose another name", self.0),
            ));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_type!(Slug, Self::parse);

/// The name of a VPS of the fleet (`vps-0`): kebab-case like a slug. Which names exist is the
/// config's business; the edges check the name against it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VpsName(String);

impl VpsName {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        Slug::parse_field("vps", raw).map(|s| Self(s.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_type!(VpsName, Self::parse);

/// A fully qualified DNS name in its ASCII (punycode) form, lowercase, without the final dot.
/// Never a wildcard and never an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        const F: &str = "domain";
        let s = raw.trim();
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(InputError::new(
                F,
                "is empty; give a name such as `merche-biche.com`",
            ));
        }
        if s.contains('*') {
            return Err(InputError::new(
                F,
                format!("`{}` is a wildcard; give one exact name", printable(s)),
            ));
        }
        if s.parse::<std::net::IpAddr>().is_ok()
            || s.trim_matches(['[', ']'])
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
        {
            return Err(InputError::new(
                F,
                format!("`{s}` is an IP address; give a domain name"),
            ));
        }
        if let Some(bad) = s.chars().find(|c| {
            c.is_whitespace() || c.is_control() || "/\\:;'\"`$@,{}()<>|&#%?=+!~^[]".contains(*c)
        }) {
            return Err(InputError::new(
                F,
                format!("`{}` contains {}", printable(s), describe_char(bad)),
            ));
        }
        // UTS-46 maps internationalised names to their ASCII form (and lowercases them).
        let ascii = idna::domain_to_ascii(s).map_err(|_| {
            InputError::new(
                F,
                format!(
                    "`{}` is not a valid internationalised domain name",
                    printable(s)
                ),
            )
        })?;
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(InputError::new(
                F,
                format!("`{ascii}` has no dot; give the full name, e.g. `{ascii}.com`"),
            ));
        }
        if ascii.len() > 253 {
            return Err(InputError::new(F, "is longer than 253 characters"));
        }
        for label in &labels {
            if label.is_empty() {
                return Err(InputError::new(
                    F,
                    format!("`{ascii}` has an empty label (two dots in a row)"),
                ));
            }
            if label.len() > 63 {
                return Err(InputError::new(
                    F,
                    format!("`{ascii}` has a label longer than 63 characters"),
                ));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(InputError::new(
                    F,
                    format!("`{ascii}`: labels may hold only a-z, 0-9 and hyphens"),
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(InputError::new(
                    F,
                    format!("`{ascii}`: a label starts or ends with a hyphen"),
                ));
            }
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.chars().all(|c| c.is_ascii_digit()) {
            return Err(InputError::new(
                F,
                format!("`{ascii}` ends in a numeric label; give a domain name"),
            ));
        }
        // A top-level domain is letters (or an internationalised one, `xn--…`). This also keeps
        // folders of the platform repo that are not Provider sites, like `quinn.www`, from ever
        // passing for a domain: `www` names a host, never a TLD.
        if tld == "www" {
            return Err(InputError::new(
                F,
                format!("`{ascii}` ends in `www`: `www` is a host name, not a top-level domain"),
            ));
        }
        if !tld.starts_with("xn--") {
            if !tld.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(InputError::new(
                    F,
                    format!("`{ascii}` ends in `{tld}`: a top-level domain is letters only"),
                ));
            }
            if tld.len() < 2 {
                return Err(InputError::new(
                    F,
                    format!(
                        "`{ascii}` ends in `{tld}`: a top-level domain has at least two letters"
                    ),
                ));
            }
        }
        Ok(Self(ascii))
    }

    /// Refuses a name that cannot be a Provider site of its own: the runbook serves a site's
    /// apex and `www.` together, so `www.x` is always part of the site `x`.
    pub fn check_site_name(&self, field: &'static str) -> Result<(), InputError> {
        match self.0.strip_prefix("www.") {
            Some(apex) if apex.contains('.') => Err(InputError::new(
                field,
                format!(
                    "`{}`: give the apex `{apex}`; www.{apex} is always served with it",
                    self.0
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `www.{domain}`: the runbook always serves the apex and www.
    pub fn www(&self) -> DomainName {
        DomainName(format!("www.{}", self.0))
    }
}

text_type!(DomainName, Self::parse);
