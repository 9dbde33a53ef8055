//! Discord's documented message limits, checked explicitly (the OpenAPI spec is looser in places:
//! e.g. it allows 4000 chars of `content` for channel messages, which only Nitro users get).
//!
//! <https://discord.com/developers/docs/resources/message#create-message>,
//! <https://discord.com/developers/docs/resources/message#embed-object-embed-limits>,
//! <https://discord.com/developers/docs/interactions/message-components>.

use serde_json::Value;

pub const CONTENT_MAX: usize = 2000;
pub const EMBEDS_MAX: usize = 10;
pub const EMBED_TOTAL_MAX: usize = 6000;
pub const EMBED_TITLE_MAX: usize = 256;
pub const EMBED_DESCRIPTION_MAX: usize = 4096;
pub const EMBED_FIELDS_MAX: usize = 25;
pub const EMBED_FIELD_NAME_MAX: usize = 256;
pub const EMBED_FIELD_VALUE_MAX: usize = 1024;
pub const EMBED_FOOTER_MAX: usize = 2048;
pub const EMBED_AUTHOR_MAX: usize = 256;
pub const ACTION_ROWS_MAX: usize = 5;
pub const BUTTONS_PER_ROW_MAX: usize = 5;
pub const CUSTOM_ID_MAX: usize = 100;
pub const BUTTON_LABEL_MAX: usize = 80;
pub const MODAL_TITLE_MAX: usize = 45;
pub const AUTOCOMPLETE_CHOICES_MAX: usize = 25;
pub const THREAD_NAME_MAX: usize = 100;

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Check a message-shaped payload (`content`/`embeds`/`components`).
pub fn check_message(payload: &Value, errs: &mut Vec<String>) {
    let n = chars(&payload["content"]);
    if n > CONTENT_MAX {
        errs.push(format!(
            "content is {n} chars, Discord's limit is {CONTENT_MAX}"
        ));
    }
    if let Some(embeds) = payload["embeds"].as_array() {
        check_embeds(embeds, errs);
    }
    if let Some(rows) = payload["components"].as_array() {
        check_components(rows, errs);
    }
}

pub fn check_embeds(embeds: &[Value], errs: &mut Vec<String>) {
    if embeds.len() > EMBEDS_MAX {
        errs.push(format!("{} embeds, limit is {EMBEDS_MAX}", embeds.len()));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let mut limit = |what: &str, v: &Value, max: usize| {
            let n = chars(v);
            total += n;
            if n > max {
                errs.push(format!("embeds[{i}].{what} is {n} chars, limit is {max}"));
            }
        };
        limit("title", &e["title"], EMBED_TITLE_MAX);
        limit("description", &e["description"], EMBED_DESCRIPTION_MAX);
        limit("footer.text", &e["footer"]["text"], EMBED_FOOTER_MAX);
        limit("author.name", &e["author"]["name"], EMBED_AUTHOR_MAX);
        if let Some(fields) = e["fields"].as_array() {
            for (j, f) in fields.iter().enumerate() {
                limit(
                    &format!("fields[{j}].name"),
                    &f["name"],
                    EMBED_FIELD_NAME_MAX,
                );
                limit(
                    &format!("fields[{j}].value"),
                    &f["value"],
                    EMBED_FIELD_VALUE_MAX,
                );
            }
            if fields.len() > EMBED_FIELDS_MAX {
                errs.push(format!(
                    "embeds[{i}] has {} fields, limit is {EMBED_FIELDS_MAX}",
                    fields.len()
                ));
            }
        }
    }
    if total > EMBED_TOTAL_MAX {
        errs.push(format!(
            "embeds total {total} chars (title+description+fields+footer+author), \
             limit is {EMBED_TOTAL_MAX}"
        ));
    }
}

/// Classic (non "components v2") message components: action rows of buttons / one select.
pub fn check_components(rows: &[Value], errs: &mut Vec<String>) {
    if rows.len() > ACTION_ROWS_MAX {
        errs.push(format!(
            "{} action rows, limit is {ACTION_ROWS_MAX}",
            rows.len()
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        if row["type"] != 1 {
            continue; // components v2 layout: the spec check covers it
        }
        let children = row["components"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let buttons = children.iter().filter(|c| c["type"] == 2).count();
        if buttons > BUTTONS_PER_ROW_MAX {
            errs.push(format!(
                "action row {i} has {buttons} buttons, limit is {BUTTONS_PER_ROW_MAX}"
            ));
        }
        let selects = children
            .iter()
            .filter(|c| matches!(c["type"].as_u64(), Some(3..=8)))
            .count();
        if selects > 0 && children.len() > 1 {
            errs.push(format!(
                "action row {i}: a select menu must be alone in its row"
            ));
        }
        for (j, c) in children.iter().enumerate() {
            check_custom_id(&c["custom_id"], &format!("row {i} component {j}"), errs);
            let label = chars(&c["label"]);
            if c["type"] == 2 && label > BUTTON_LABEL_MAX {
                errs.push(format!(
                    "row {i} button {j} label is {label} chars, limit is {BUTTON_LABEL_MAX}"
                ));
            }
            if c["type"] == 2 {
                let is_link = c["style"] == 5;
                let has_custom_id = c["custom_id"].is_string();
                let has_url = c["url"].is_string();
                if is_link && (!has_url || has_custom_id) {
                    errs.push(format!(
                        "row {i} button {j}: link buttons need url and no custom_id"
                    ));
                }
                if !is_link && c["style"] != 6 && (!has_custom_id || has_url) {
                    errs.push(format!(
                        "row {i} button {j}: non-link buttons need a custom_id"
                    ));
                }
            }
        }
    }
}

pub fn check_custom_id(v: &Value, what: &str, errs: &mut Vec<String>) {
    let n = chars(v);
    if n > CUSTOM_ID_MAX {
        errs.push(format!(
            "{what}: custom_id is {n} chars, limit is {CUSTOM_ID_MAX}"
        ));
    }
}

/// An interaction callback body (`{type, data}`).
pub fn check_callback(body: &Value, errs: &mut Vec<String>) {
    let data = &body["data"];
    match body["type"].as_u64() {
        Some(4 | 7) => check_message(data, errs),
        Some(8) => {
            let n = data["choices"].as_array().map_or(0, Vec::len);
            if n > AUTOCOMPLETE_CHOICES_MAX {
                errs.push(format!(
                    "{n} autocomplete choices, limit is {AUTOCOMPLETE_CHOICES_MAX}"
                ));
            }
        }
        Some(9) => {
            check_custom_id(&data["custom_id"], "modal", errs);
            let n = chars(&data["title"]);
            if n > MODAL_TITLE_MAX {
                errs.push(format!(
                    "modal title is {n} chars, limit is {MODAL_TITLE_MAX}"
                ));
            }
            let rows = data["components"].as_array().map_or(0, Vec::len);
            if !(1..=5).contains(&rows) {
                errs.push(format!("modal has {rows} components, must be 1..=5"));
            }
            for (i, row) in data["components"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                for c in row["components"].as_array().into_iter().flatten() {
                    check_custom_id(&c["custom_id"], &format!("modal row {i}"), errs);
                }
                check_custom_id(
                    &row["component"]["custom_id"],
                    &format!("modal label {i}"),
                    errs,
                );
            }
        }
        _ => {}
    }
}
