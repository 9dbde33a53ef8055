//! Validated domain types: every value a person types is parsed here once, at the edge.
//!
//! After parsing, nothing holds a raw `&str` from a user: a `Slug` cannot contain a quote, a
//! `DomainName` cannot contain a space or a newline, an `Email` cannot carry a shell
//! metacharacter. Each parse error names the field and the rule that was broken, because the
//! error is shown to the person who typed the value.
//!
//! - `names.rs`: `Slug`, `DomainName`;
//! - `person.rs`: `Email`, `DisplayName`, `OperatingMode`, `MailPlan`;
//! - `brand.rs`: `Brand` and its parts.

mod brand;
mod names;
mod person;

pub use brand::*;
pub use names::*;
pub use person::*;

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

/// The conversions every validated text type has: from a `String` through its parser (what
/// serde's `try_from = "String"` uses, so a stored value is validated again when read), back
/// into the `String`, and shown as the text itself.
macro_rules! text_type {
    ($t:ident, $parse:expr) => {
        impl TryFrom<String> for $t {
            type Error = InputError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                let parse: fn(&str) -> Result<Self, InputError> = $parse;
                parse(&value)
            }
        }

        impl From<$t> for String {
            fn from(value: $t) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
use text_type;

/// Characters that look like nothing or like something else: refused in names so that a
/// look-alike cannot hide in the audit trail.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Names a character so a person can find it in what they typed.
pub(crate) fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("`{c}`")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// The input with control characters escaped, so an error message stays on one line.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out.replace('`', "'")
}

#[cfg(test)]
mod tests;
