//! Validated domain types: every value a person types is parsed here once, at the edge.
//!
//! After parsing, nothing holds a raw `&str` from a user: a `Slug` cannot contain a quote, a
//! `DomainName` cannot contain a space or a newline, an `Email` cannot carry a shell
//! metacharacter. Each parse error names the field and the rule that was broken, because the
//! error is shown to the person who typed the value.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A bad value typed by a person: shown to them as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    /// Which input was wrong (`slug`, `email`, `domain`, ...).
    pub field: &'static str,
    /// The rule that was broken, written for the person who typed it.
    pub message: String,
}

impl InputError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

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

impl TryFrom<String> for Slug {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> Self {
        value.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

impl TryFrom<String> for DomainName {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DomainName> for String {
    fn from(value: DomainName) -> Self {
        value.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address: a conservative subset of RFC 5322 that every SMTP server and shell
/// quoting handles (no quoted local parts, no comments), with a valid domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        const F: &str = "email";
        let s = raw.trim();
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(InputError::new(
                F,
                format!(
                    "`{}` has no @; give an address like `merche@example.com`",
                    printable(s)
                ),
            ));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(InputError::new(
                F,
                format!(
                    "`{}`: the part before @ must be 1 to 64 characters",
                    printable(s)
                ),
            ));
        }
        if let Some(bad) = local
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._+-".contains(*c)))
        {
            return Err(InputError::new(
                F,
                format!(
                    "`{}` contains {} before the @; use letters, digits, `.`, `_`, `+` or `-`",
                    printable(s),
                    describe_char(bad)
                ),
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InputError::new(
                F,
                format!("`{s}`: dots before the @ cannot lead, trail or repeat"),
            ));
        }
        let domain = DomainName::parse(domain)
            .map_err(|e| InputError::new(F, format!("`{}`: {}", printable(s), e.message)))?;
        Ok(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human name (person or org): printable, one line, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, InputError> {
        let s = raw.trim();
        let len = s.chars().count();
        if len == 0 || len > 100 {
            return Err(InputError::new(
                field,
                format!("must be 1 to 100 characters (got {len})"),
            ));
        }
        if let Some(bad) = s.chars().find(|c| c.is_control() || is_invisible(*c)) {
            return Err(InputError::new(
                field,
                format!("contains {}", describe_char(bad)),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_field("name", &value)
    }
}

impl From<DisplayName> for String {
    fn from(value: DisplayName) -> Self {
        value.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which of the three operating modes, without its org: the choice offered in Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum ModeKind {
    #[name = "person-only"]
    PersonOnly,
    #[name = "person-owns-org"]
    PersonOwnsOrg,
    #[name = "person-joins-org"]
    PersonJoinsOrg,
}

impl ModeKind {
    pub const ALL: [ModeKind; 3] = [Self::PersonOnly, Self::PersonOwnsOrg, Self::PersonJoinsOrg];

    /// The mode's name as typed on the command line and shown in chat.
    pub fn name(self) -> &'static str {
        match self {
            Self::PersonOnly => "person-only",
            Self::PersonOwnsOrg => "person-owns-org",
            Self::PersonJoinsOrg => "person-joins-org",
        }
    }
}

/// The runbook's three operating modes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum OperatingMode {
    /// A standalone Provider: only the `users` row.
    PersonOnly,
    /// Agency-shaped: the Person owns a new Org.
    PersonOwnsOrg {
        org_slug: Slug,
        org_name: DisplayName,
    },
    /// Managed talent: the Person joins an existing Org as a member.
    PersonJoinsOrg { org_slug: Slug },
}

impl OperatingMode {
    /// The mode's name as typed on the command line and shown in chat.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    pub fn kind(&self) -> ModeKind {
        match self {
            Self::PersonOnly => ModeKind::PersonOnly,
            Self::PersonOwnsOrg { .. } => ModeKind::PersonOwnsOrg,
            Self::PersonJoinsOrg { .. } => ModeKind::PersonJoinsOrg,
        }
    }

    /// Builds the mode from its name and the org options that go with it.
    pub fn from_parts(
        mode: &str,
        org: Option<&str>,
        org_name: Option<&str>,
    ) -> Result<Self, InputError> {
        // Exactly the names, as typed (Discord's choices send them so too).
        let kind = ModeKind::ALL.into_iter().find(|k| k.name() == mode.trim());
        match kind {
            Some(ModeKind::PersonOnly) => {
                if org.is_some() {
                    return Err(InputError::new(
                        "org",
                        "person-only takes no org; choose person-owns-org or person-joins-org",
                    ));
                }
                Ok(Self::PersonOnly)
            }
            Some(ModeKind::PersonOwnsOrg) => {
                let org = org.ok_or_else(|| {
                    InputError::new("org", "person-owns-org needs the new org's slug")
                })?;
                let name = org_name.ok_or_else(|| {
                    InputError::new("org-name", "person-owns-org needs the new org's name")
                })?;
                Ok(Self::PersonOwnsOrg {
                    org_slug: Slug::parse_field("org", org)?,
                    org_name: DisplayName::parse_field("org-name", name)?,
                })
            }
            Some(ModeKind::PersonJoinsOrg) => {
                let org = org.ok_or_else(|| {
                    InputError::new("org", "person-joins-org needs the existing org's slug")
                })?;
                if org_name.is_some() {
                    return Err(InputError::new(
                        "org-name",
                        "person-joins-org joins an existing org; its name is not changed",
                    ));
                }
                Ok(Self::PersonJoinsOrg {
                    org_slug: Slug::parse_field("org", org)?,
                })
            }
            None => Err(InputError::new(
                "mode",
                format!(
                    "`{}` is not a mode; choose person-only, person-owns-org or person-joins-org",
                    printable(mode.trim())
                ),
            )),
        }
    }

    pub fn org_slug(&self) -> Option<&Slug> {
        match self {
            Self::PersonOnly => None,
            Self::PersonOwnsOrg { org_slug, .. } | Self::PersonJoinsOrg { org_slug } => {
                Some(org_slug)
            }
        }
    }

    pub fn is_org_shaped(&self) -> bool {
        !matches!(self, Self::PersonOnly)
    }
}

/// What the Provider wants for email on their domain: one enum for the command line (clap),
/// Discord's choices (poise) and the engine.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    poise::ChoiceParameter,
)]
#[serde(rename_all = "kebab-case")]
pub enum MailPlan {
    /// A mailbox on their domain: MX, SPF, DKIM and DMARC (the defensive-coms pattern).
    #[name = "mailbox"]
    Mailbox,
    /// Inbound forwarding only: the forwarder's MX and SPF.
    #[name = "forwarding"]
    Forwarding,
    /// No mail on the domain.
    #[default]
    #[name = "none"]
    None,
}

impl MailPlan {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mailbox => "mailbox",
            Self::Forwarding => "forwarding",
            Self::None => "none",
        }
    }
}

/// A `#rrggbb` colour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexColor(String);

impl HexColor {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let s = raw.trim();
        let hex = s.strip_prefix('#').unwrap_or(s);
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(InputError::new(
                "palette",
                format!("`{}` is not a colour like #1a2b3c", printable(s)),
            ));
        }
        Ok(Self(format!("#{}", hex.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HexColor {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<HexColor> for String {
    fn from(value: HexColor) -> Self {
        value.0
    }
}

/// An https URL for a logo: no credentials, no whitespace, no quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogoUrl(String);

impl LogoUrl {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let s = raw.trim();
        let Some(rest) = s.strip_prefix("https://") else {
            return Err(InputError::new("logo", "must be an https:// URL"));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.contains('@') {
            return Err(InputError::new("logo", "must not carry credentials"));
        }
        DomainName::parse(host)
            .map_err(|e| InputError::new("logo", format!("host {}", e.message)))?;
        if let Some(bad) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "\"'`<>\\{}|^$".contains(*c))
        {
            return Err(InputError::new(
                "logo",
                format!("contains {}", describe_char(bad)),
            ));
        }
        if s.len() > 500 {
            return Err(InputError::new("logo", "is longer than 500 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LogoUrl {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<LogoUrl> for String {
    fn from(value: LogoUrl) -> Self {
        value.0
    }
}

/// Brand assets of an Org-shaped Provider, fed into the template's org-site config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    /// Site copy: free text, at most 2000 characters, stored as a YAML string value.
    pub copy: BrandCopy,
    pub logo: Option<LogoUrl>,
    pub palette: Vec<HexColor>,
}

/// Free text for the org site: printable, newlines allowed, at most 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrandCopy(String);

impl BrandCopy {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let s = raw.trim();
        let len = s.chars().count();
        if len > 2000 {
            return Err(InputError::new(
                "copy",
                format!("is {len} characters; at most 2000"),
            ));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| (c.is_control() && *c != '\n') || is_invisible(*c))
        {
            return Err(InputError::new(
                "copy",
                format!("contains {}", describe_char(bad)),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BrandCopy {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<BrandCopy> for String {
    fn from(value: BrandCopy) -> Self {
        value.0
    }
}

impl Brand {
    pub fn parse(copy: &str, logo: Option<&str>, palette: &str) -> Result<Self, InputError> {
        let palette: Vec<HexColor> = palette
            .split([',', ' '])
            .filter(|p| !p.trim().is_empty())
            .map(HexColor::parse)
            .collect::<Result<_, _>>()?;
        if palette.len() > 8 {
            return Err(InputError::new("palette", "at most 8 colours"));
        }
        Ok(Self {
            copy: BrandCopy::parse(copy)?,
            logo: logo.map(LogoUrl::parse).transpose()?,
            palette,
        })
    }
}

/// Characters that look like nothing or like something else: refused in names so that a
/// look-alike cannot hide in the audit trail.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Names a character so a person can find it in what they typed.
fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("`{c}`")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// The input with control characters escaped, so an error message stays on one line.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out.replace('`', "'")
}

#[cfg(test)]
mod tests {
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
}
