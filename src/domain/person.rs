//! A Person and how they join the platform: their email and display name, the operating mode,
//! the mail plan on their domain.

use serde::{Deserialize, Serialize};

use super::{DomainName, InputError, Slug, describe_char, is_invisible, printable, text_type};

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

text_type!(Email, Self::parse);

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

text_type!(DisplayName, |v: &str| Self::parse_field("name", v));

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
