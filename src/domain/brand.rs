//! An Org-shaped Provider's brand: its copy, logo and palette.

use serde::{Deserialize, Serialize};

use super::{DomainName, InputError, describe_char, is_invisible, printable, text_type};

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

text_type!(HexColor, Self::parse);

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

text_type!(LogoUrl, Self::parse);

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

text_type!(BrandCopy, Self::parse);

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
