//! Text made safe for chat: truncated to a limit, mentions that ping nobody, and any text
//! fenced or defused so it cannot break out of its code block or format.

/// `text` cut to at most `max` characters, marked with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `discord:123` as a mention people can click; other actors as they are.
pub fn mention(actor_id: &str) -> String {
    match actor_id.strip_prefix("discord:") {
        Some(id) if id.bytes().all(|b| b.is_ascii_digit()) => format!("<@{id}>"),
        _ => format!("`{actor_id}`"),
    }
}

/// Zero-width space: invisible, and never in user input (the domain types refuse it), so what
/// it breaks up reads the same.
const ZWSP: char = '\u{200b}';

/// `text` with nothing in it that Discord acts on inside or outside a code block: every run of
/// three or more backticks is broken up (Discord ends a block at the first ``` whatever the
/// opener's length), and `@everyone`, `@here` and `<@…>` are no longer mentions. Idempotent.
pub fn defuse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            if run == 2 {
                out.push(ZWSP);
                run = 0;
            }
            run += 1;
        } else {
            run = 0;
        }
        out.push(c);
    }
    out.replace("@everyone", "@\u{200b}everyone")
        .replace("@here", "@\u{200b}here")
        .replace("<@", "<\u{200b}@")
}

/// The longest run of backticks in `text`.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `text` as one code block that nothing in it can end or escape, at most `max` characters
/// with its fences. The text is [`defuse`]d, and the fence is longer than any backtick run left
/// in it (CommonMark closes a block only with a run at least as long as the opener). A text
/// too long is cut inside the block, marked with `…`: the fences are never cut.
pub fn fence(text: &str, max: usize) -> String {
    let body = defuse(text);
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    let room = max.saturating_sub(2 * fence.chars().count() + 2).max(1);
    let body = if body.is_empty() {
        // Discord shows a block with nothing in it as its raw backticks.
        " ".to_owned()
    } else {
        truncate(&body, room)
    };
    format!("{fence}\n{body}\n{fence}")
}
