//! How a new value is written where a template had a value in some quoting style: the same
//! style when it can hold the value so that the shell, nginx or YAML reads exactly that value,
//! otherwise a safe style. Never a spelling the reader would take differently.

/// The quoting a template used for a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// No quotes.
    Bare,
    /// `"..."`.
    Double,
    /// `'...'`.
    Single,
}

impl Quote {
    /// The style of a value's text as the template spells it (by its first character).
    pub fn of(spelled: &str) -> Self {
        match spelled.chars().next() {
            Some('"') => Quote::Double,
            Some('\'') => Quote::Single,
            _ => Quote::Bare,
        }
    }
}

/// Characters a bare shell word or a bare YAML scalar may hold here: nothing a shell expands,
/// splits on or quotes, nothing YAML reads as an indicator.
fn plain_chars(v: &str, extra: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-@+".contains(c) || extra.contains(c))
}

/// A value for a POSIX shell: bare when it only holds safe characters, else single-quoted.
pub fn shell_quote(v: &str) -> String {
    if plain_chars(v, ":,=") {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// A shell word in the template's `style` when that style reads back as exactly `v`: bare only
/// for safe characters, double quotes only without `$`, `` ` ``, `"`, `\` or `!`, single quotes
/// only without `'`. Otherwise [`shell_quote`]. `v` holds no control characters (the caller
/// refuses them: a shell value is one line).
pub fn shell_word(v: &str, style: Quote) -> String {
    match style {
        Quote::Bare if plain_chars(v, ":,=") => v.to_owned(),
        Quote::Double if !v.contains(['$', '`', '"', '\\', '!']) => format!("\"{v}\""),
        Quote::Single if !v.contains('\'') => format!("'{v}'"),
        _ => shell_quote(v),
    }
}

/// An nginx argument in the template's `style` when that style holds `v` as it is: bare only
/// without spaces, `;`, braces, quotes, `#`, `$` or `\`; quoted only without that quote, `$`
/// (nginx expands variables in quotes too) or `\`. Otherwise double quotes, then single
/// quotes; `None` when no spelling holds it (a `$`, a `\`, a control character, both quotes).
pub fn nginx_word(v: &str, style: Quote) -> Option<String> {
    if v.is_empty() || v.chars().any(char::is_control) || v.contains(['$', '\\']) {
        return None;
    }
    let bare = plain_chars(v, ":");
    let double = !v.contains('"');
    let single = !v.contains('\'');
    Some(match style {
        Quote::Bare if bare => v.to_owned(),
        Quote::Single if single => format!("'{v}'"),
        _ if double => format!("\"{v}\""),
        _ if single => format!("'{v}'"),
        _ => return None,
    })
}

/// A YAML scalar that reads back as the string `v`, in the template's `style` when it holds
/// it: plain only for safe characters with a letter, not a word some YAML reader takes for a
/// boolean or null, and not read as anything but that string; single quotes only on one line.
/// Otherwise double quotes, with escapes.
pub fn yaml_string(v: &str, style: Quote) -> String {
    match style {
        Quote::Bare if yaml_plain_ok(v) => v.to_owned(),
        Quote::Single if !v.chars().any(char::is_control) => format!("'{}'", v.replace('\'', "''")),
        _ => yaml_double(v),
    }
}

/// YAML 1.1 readers (the platform's tools may be one) take these plain words for booleans.
const YAML_WORDS: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

fn yaml_plain_ok(v: &str) -> bool {
    plain_chars(v, "")
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
        && v.chars().any(|c| c.is_ascii_alphabetic())
        && !YAML_WORDS.contains(&v.to_ascii_lowercase().as_str())
        && serde_norway::from_str::<serde_norway::Value>(v).ok()
            == Some(serde_norway::Value::String(v.to_owned()))
}

fn yaml_double(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What bash reads from `NAME=<word>`.
    fn bash_reads(word: &str) -> String {
        let out = Command::new("bash")
            .args(["-c", &format!("V={word}\nprintf %s \"$V\"")])
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success(), "{word}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn shell_keeps_the_style_that_holds_the_value() {
        assert_eq!(shell_word("/var/www/a.com", Quote::Bare), "/var/www/a.com");
        assert_eq!(
            shell_word("/var/www/a.com", Quote::Double),
            "\"/var/www/a.com\""
        );
        assert_eq!(
            shell_word("/var/www/a.com", Quote::Single),
            "'/var/www/a.com'"
        );
    }

    #[test]
    fn shell_bare_falls_back_for_a_space() {
        assert_eq!(shell_word("/var/www/a b", Quote::Bare), "'/var/www/a b'");
    }

    #[test]
    fn shell_double_falls_back_for_dollar_backtick_quote_backslash() {
        for v in ["/a/$HOME", "/a/`id`", "/a/\"b", "/a\\b", "/a/!b"] {
            let w = shell_word(v, Quote::Double);
            assert!(w.starts_with('\''), "{v} -> {w}");
            assert_eq!(bash_reads(&w), v);
        }
    }

    #[test]
    fn shell_single_falls_back_for_a_single_quote() {
        let w = shell_word("/a/it's", Quote::Single);
        assert_eq!(w, r"'/a/it'\''s'");
        assert_eq!(bash_reads(&w), "/a/it's");
    }

    #[test]
    fn every_shell_spelling_reads_back_exactly() {
        for v in [
            "/var/www/a.com",
            "a b",
            "x$y",
            "it's",
            "\"q\"",
            "a;b&c|d",
            "{provider}",
            "~x",
            "*",
        ] {
            for s in [Quote::Bare, Quote::Double, Quote::Single] {
                assert_eq!(bash_reads(&shell_word(v, s)), v, "{v} in {s:?}");
            }
        }
    }

    #[test]
    fn nginx_keeps_the_style_or_falls_back() {
        assert_eq!(nginx_word("a.com", Quote::Bare).unwrap(), "a.com");
        assert_eq!(nginx_word("a.com", Quote::Double).unwrap(), "\"a.com\"");
        assert_eq!(nginx_word("a.com", Quote::Single).unwrap(), "'a.com'");
        // Bare cannot hold a space, `;` or braces: double quotes.
        for v in ["/var/www/a b", "/x;y", "/x{y}", "/x#y"] {
            assert_eq!(nginx_word(v, Quote::Bare).unwrap(), format!("\"{v}\""));
        }
        // A quote of the template's kind: the other kind.
        assert_eq!(nginx_word("/a\"b", Quote::Double).unwrap(), "'/a\"b'");
        assert_eq!(nginx_word("/a'b", Quote::Single).unwrap(), "\"/a'b\"");
        // Nothing holds `$` (a variable, even in quotes), `\`, both quotes or a newline.
        for v in ["/a$b", "/a\\b", "/a'\"b", "/a\nb", ""] {
            assert_eq!(nginx_word(v, Quote::Double), None, "{v:?}");
        }
    }

    #[test]
    fn yaml_keeps_the_style_or_falls_back_to_double_quotes() {
        let reads = |s: &str| -> serde_norway::Value {
            serde_norway::from_str::<serde_norway::Value>(&format!("k: {s}")).unwrap()["k"].clone()
        };
        for v in [
            "a.com",
            "it's",
            "x: y # z",
            "true",
            "null",
            "1.5",
            "0x1f",
            "yes",
            "-a",
            "{provider}.com",
            "a\nb",
            "\"q\\",
        ] {
            for s in [Quote::Bare, Quote::Double, Quote::Single] {
                let w = yaml_string(v, s);
                assert_eq!(
                    reads(&w),
                    serde_norway::Value::String(v.into()),
                    "{v:?} in {s:?}: {w}"
                );
            }
        }
        assert_eq!(yaml_string("a.com", Quote::Bare), "a.com");
        assert_eq!(yaml_string("a.com", Quote::Single), "'a.com'");
        assert_eq!(yaml_string("a.com", Quote::Double), "\"a.com\"");
        // Plain falls back for indicators and words read as another type.
        assert_eq!(yaml_string("yes", Quote::Bare), "\"yes\"");
        assert_eq!(yaml_string("x: y", Quote::Bare), "\"x: y\"");
        // Single quotes double a quote, and fall back for a line break.
        assert_eq!(yaml_string("it's", Quote::Single), "'it''s'");
        assert_eq!(yaml_string("a\nb", Quote::Single), "\"a\\nb\"");
    }
}
