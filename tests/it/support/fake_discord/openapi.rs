//! A small JSON-Schema validator for Discord's official OpenAPI 3.1 spec.
//!
//! The spec is reference data that lives OUTSIDE the project (in `../shared/discord-api-spec/`
//! next to the crate root, overridable with `DISCORD_OPENAPI_SPEC`); it is loaded once per test
//! process and never copied into the repository.
//!
//! Supported keywords (everything the spec's `components/schemas` use that matters for request
//! bodies): `$ref` (any local JSON pointer), `allOf`, `anyOf`, `oneOf` (exactly one), `type`
//! (string or list, incl. `"null"`), `const`, `enum`, `properties`, `required`,
//! `additionalProperties` (bool or schema), `minProperties`/`maxProperties`, `items`,
//! `minItems`/`maxItems`, `uniqueItems`, `minLength`/`maxLength` (Unicode scalar values),
//! `minimum`/`maximum`, `format` (`int32`/`int64` ranges) and the two `pattern`s the spec uses
//! (snowflake and hex colour; any other pattern is ignored). Integers with `format: int64` or
//! `snowflake` are also accepted as decimal strings, and snowflake strings as non-negative JSON
//! integers, as Discord does. `oneOf` failures report the one plausible alternative's errors
//! (nullable / `type`-tagged unions) or the closest alternative's.

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where the spec is expected, and why, for the loud panic.
pub fn spec_path() -> PathBuf {
    if let Ok(p) = std::env::var("DISCORD_OPENAPI_SPEC") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/discord-api-spec/openapi.json")
}

/// The process-wide parsed spec (parsing 1.2 MB once is enough).
pub fn spec() -> Arc<Spec> {
    static SPEC: OnceLock<Arc<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = spec_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "\n\n=== FakeDiscord: Discord's OpenAPI spec is missing ===\n\
                 Expected it at {} ({e}).\n\
                 The fake Discord validates every REST request the bot makes against Discord's \
                 official OpenAPI spec (github.com/discord/discord-api-spec, file \
                 specs/openapi.json). It is reference data kept OUTSIDE this repository, in \
                 `shared/discord-api-spec/openapi.json` next to the crate directory; it is \
                 deliberately not copied into the project. Put it there, or point the \
                 DISCORD_OPENAPI_SPEC environment variable at a copy.\n\n",
                path.display()
            )
        });
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("FakeDiscord: {} is not valid JSON: {e}", path.display()));
        Arc::new(Spec::from_value(doc))
    })
    .clone()
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub method: String,
    /// The spec's path template, e.g. `/channels/{channel_id}/messages`.
    pub template: String,
    pub operation_id: String,
    segments: Vec<Segment>,
    /// Path + operation level parameters: (name, location, schema, required).
    pub params: Vec<(String, String, Value, bool)>,
    /// `requestBody.content`: media type -> schema.
    pub body: Vec<(String, Value)>,
    pub body_required: bool,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

/// Result of matching a concrete request path against the spec.
#[derive(Debug)]
pub enum PathMatch<'a> {
    Found(&'a Operation, HashMap<String, String>),
    /// The path exists but not with this method; lists the allowed methods.
    MethodNotAllowed(String, Vec<String>),
    NotFound,
}

pub struct Spec {
    doc: Value,
    ops: Vec<Operation>,
}

impl Spec {
    pub fn from_value(doc: Value) -> Spec {
        let mut ops = Vec::new();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for (template, item) in &paths {
            let segments = template
                .trim_start_matches('/')
                .split('/')
                .map(|s| {
                    if s.starts_with('{') && s.ends_with('}') {
                        Segment::Param(s[1..s.len() - 1].to_string())
                    } else {
                        Segment::Literal(s.to_string())
                    }
                })
                .collect::<Vec<_>>();
            let common = item["parameters"].as_array().cloned().unwrap_or_default();
            for method in ["get", "put", "post", "patch", "delete", "head", "options"] {
                let Some(op) = item.get(method) else { continue };
                let mut params = Vec::new();
                for p in common
                    .iter()
                    .chain(op["parameters"].as_array().into_iter().flatten())
                {
                    params.push((
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["in"].as_str().unwrap_or_default().to_string(),
                        p["schema"].clone(),
                        p["required"].as_bool().unwrap_or(false),
                    ));
                }
                let body = op["requestBody"]["content"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v["schema"].clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                ops.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    operation_id: op["operationId"].as_str().unwrap_or_default().to_string(),
                    segments: segments.clone(),
                    params,
                    body,
                    body_required: op["requestBody"]["required"].as_bool().unwrap_or(false),
                });
            }
        }
        Spec { doc, ops }
    }

    /// A schema from `components/schemas` by name (for tests).
    pub fn schema(&self, name: &str) -> Value {
        let s = &self.doc["components"]["schemas"][name];
        assert!(!s.is_null(), "schema {name} not in the spec");
        s.clone()
    }

    /// Match a path WITHOUT the `/api/v10` prefix, e.g. `/channels/1/messages`.
    /// Among the templates that match, the most specific one (literal segments beat
    /// parameters, compared left to right) that has this method wins.
    pub fn find(&self, method: &str, path: &str) -> PathMatch<'_> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut candidates: Vec<(Vec<bool>, &Operation, HashMap<String, String>)> = Vec::new();
        for op in &self.ops {
            if op.segments.len() != parts.len() {
                continue;
            }
            let mut params = HashMap::new();
            let ok = op.segments.iter().zip(&parts).all(|(seg, part)| match seg {
                Segment::Literal(l) => l == part,
                Segment::Param(name) => {
                    params.insert(name.clone(), (*part).to_string());
                    !part.is_empty()
                }
            });
            if ok {
                let specificity = op
                    .segments
                    .iter()
                    .map(|s| matches!(s, Segment::Literal(_)))
                    .collect();
                candidates.push((specificity, op, params));
            }
        }
        // Most specific first.
        candidates.sort_by(|a, b| b.0.cmp(&a.0));
        let Some(most_specific) = candidates.first().map(|c| c.1.template.clone()) else {
            return PathMatch::NotFound;
        };
        if let Some(i) = candidates
            .iter()
            .position(|c| c.1.method.eq_ignore_ascii_case(method))
        {
            let (_, op, params) = candidates.swap_remove(i);
            return PathMatch::Found(op, params);
        }
        let allowed = candidates
            .iter()
            .filter(|c| c.1.template == most_specific)
            .map(|c| c.1.method.clone())
            .collect();
        PathMatch::MethodNotAllowed(most_specific, allowed)
    }

    /// Validate `value` against `schema`; returns human-readable errors (empty = valid).
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        self.check(schema, value, "$", &mut errs, 0);
        errs
    }

    fn resolve<'a>(&'a self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>, depth: usize) {
        if depth > 64 {
            errs.push(format!("{at}: schema nesting too deep"));
            return;
        }
        let Some(s) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                errs.push(format!("{at}: no value allowed here"));
            }
            return;
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Some(target) => self.check(target, v, at, errs, depth + 1),
                None => errs.push(format!("{at}: unresolvable $ref {r}")),
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, v, at, errs, depth + 1);
            }
        }
        for (kw, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(alts) = s.get(kw).and_then(Value::as_array) else {
                continue;
            };
            let results: Vec<Vec<String>> = alts
                .iter()
                .map(|alt| {
                    let mut e = Vec::new();
                    self.check(alt, v, at, &mut e, depth + 1);
                    e
                })
                .collect();
            let matching = results.iter().filter(|e| e.is_empty()).count();
            if matching == 0 {
                // Rank the alternatives: ones whose type (and `type` discriminator property)
                // fit are "closer" than ones rejected outright, then by error count.
                let type_miss = format!("{at}: expected type");
                let disc_miss = format!("{at}.type:");
                let rank = |e: &Vec<String>| {
                    (
                        e.iter().any(|x| x.starts_with(&type_miss)),
                        e.iter().any(|x| x.starts_with(&disc_miss)),
                        e.len(),
                    )
                };
                let mut ranked: Vec<&Vec<String>> = results.iter().collect();
                ranked.sort_by_key(|e| rank(e));
                let plausible = results.iter().filter(|e| !rank(e).0 && !rank(e).1).count();
                if plausible == 1 {
                    // Effectively a tagged/nullable union: report the one candidate's errors.
                    errs.extend(ranked[0].iter().cloned());
                } else {
                    errs.push(format!(
                        "{at}: matches none of the {} {kw} alternatives; closest one fails with: [{}]",
                        alts.len(),
                        ranked[0].join("; ")
                    ));
                }
            } else if exactly_one && matching > 1 {
                errs.push(format!(
                    "{at}: matches {matching} oneOf alternatives, expected exactly 1"
                ));
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let fmt = s.get("format").and_then(Value::as_str).unwrap_or("");
            let fmt = if fmt.is_empty() && is_bitfield(s) {
                "bitfield"
            } else {
                fmt
            };
            if !types.iter().any(|t| type_matches(t, v, fmt)) {
                errs.push(format!(
                    "{at}: expected type {}, got {}",
                    types.join("|"),
                    describe(v)
                ));
                return;
            }
        }
        if let Some(c) = s.get("const")
            && !json_eq(c, v)
        {
            errs.push(format!("{at}: expected const {c}, got {v}"));
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.iter().any(|x| json_eq(x, v))
        {
            errs.push(format!(
                "{at}: {v} is not one of {}",
                Value::Array(e.clone())
            ));
        }
        match v {
            Value::String(text) => self.check_string(s, text, at, errs),
            Value::Number(_) => check_number(s, v, at, errs),
            Value::Array(items) => self.check_array(s, items, at, errs, depth),
            Value::Object(map) => self.check_object(s, map, at, errs, depth),
            _ => {}
        }
    }

    fn check_string(
        &self,
        s: &serde_json::Map<String, Value>,
        text: &str,
        at: &str,
        errs: &mut Vec<String>,
    ) {
        let len = text.chars().count() as u64;
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            errs.push(format!(
                "{at}: string of {len} chars exceeds maxLength {max}"
            ));
        }
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            errs.push(format!(
                "{at}: string of {len} chars is shorter than minLength {min}"
            ));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let ok = match p {
                "^(0|[1-9][0-9]*)$" => is_snowflake(text),
                "^#(([0-9a-fA-F]{2}){3}|([0-9a-fA-F]){3})$" => {
                    text.strip_prefix('#').is_some_and(|h| {
                        (h.len() == 6 || h.len() == 3) && h.chars().all(|c| c.is_ascii_hexdigit())
                    })
                }
                _ => true, // unknown pattern: not checked
            };
            if !ok {
                errs.push(format!("{at}: {text:?} does not match pattern {p}"));
            }
        }
        // A permission bitfield given as a string: check the spec's bounds.
        if is_bitfield(s)
            && let (Ok(n), Some(max)) = (
                text.parse::<u64>(),
                s.get("maximum").and_then(Value::as_u64),
            )
            && n > max
        {
            errs.push(format!("{at}: {text} is above maximum {max}"));
        }
        // Integer types given as strings (snowflakes): check the int64 range.
        if s.get("format").and_then(Value::as_str) == Some("int64")
            && is_snowflake(text)
            && text.parse::<i64>().is_err()
        {
            errs.push(format!("{at}: {text} is out of int64 range"));
        }
    }

    fn check_array(
        &self,
        s: &serde_json::Map<String, Value>,
        items: &[Value],
        at: &str,
        errs: &mut Vec<String>,
        depth: usize,
    ) {
        let n = items.len() as u64;
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            errs.push(format!("{at}: {n} items exceed maxItems {max}"));
        }
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            errs.push(format!("{at}: {n} items, fewer than minItems {min}"));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| json_eq(a, b)) {
                    errs.push(format!("{at}: items are not unique ({a} repeats)"));
                    break;
                }
            }
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{at}[{i}]"), errs, depth + 1);
            }
        }
    }

    fn check_object(
        &self,
        s: &serde_json::Map<String, Value>,
        map: &serde_json::Map<String, Value>,
        at: &str,
        errs: &mut Vec<String>,
        depth: usize,
    ) {
        let n = map.len() as u64;
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
            && n > max
        {
            errs.push(format!("{at}: {n} properties exceed maxProperties {max}"));
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
            && n < min
        {
            errs.push(format!(
                "{at}: {n} properties, fewer than minProperties {min}"
            ));
        }
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = req.as_str()
                && !map.contains_key(name)
            {
                errs.push(format!("{at}: missing required property {name:?}"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in map {
            let child = format!("{at}.{k}");
            if let Some(ps) = props.and_then(|p| p.get(k)) {
                self.check(ps, val, &child, errs, depth + 1);
            } else {
                match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errs.push(format!("{at}: property {k:?} is not allowed"));
                    }
                    Some(extra @ Value::Object(_)) => {
                        self.check(extra, val, &child, errs, depth + 1);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A permission bitfield: an integer whose `maximum` is beyond what a JSON number carries
/// exactly (2^53). Discord documents these as strings (`default_member_permissions: ?string`)
/// and clients send them so; the spec types the request fields as integers.
fn is_bitfield(s: &serde_json::Map<String, Value>) -> bool {
    let integer = match s.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    integer
        && s.get("maximum")
            .and_then(Value::as_u64)
            .is_some_and(|m| m > 1 << 53)
}

fn is_snowflake(text: &str) -> bool {
    text == "0"
        || (!text.is_empty() && !text.starts_with('0') && text.chars().all(|c| c.is_ascii_digit()))
}

fn type_matches(t: &str, v: &Value, format: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        // Discord parses snowflakes from JSON integers too (serenity sends new-attachment
        // placeholder ids as `0`), although the spec types them as strings.
        "string" => v.is_string() || (format == "snowflake" && v.as_u64().is_some()),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            // int64 values (snowflakes, permissions) may be sent as decimal strings.
            Value::String(s) => {
                matches!(format, "int64" | "snowflake" | "bitfield") && is_snowflake(s)
            }
            _ => false,
        },
        _ => true,
    }
}

fn check_number(s: &serde_json::Map<String, Value>, v: &Value, at: &str, errs: &mut Vec<String>) {
    let x = v.as_f64().unwrap_or(0.0);
    // Compare integers exactly where possible (f64 loses precision above 2^53).
    let below = |bound: &Value| match (v.as_i64(), bound.as_i64()) {
        (Some(a), Some(b)) => a < b,
        _ => bound.as_f64().is_some_and(|b| x < b),
    };
    let above = |bound: &Value| match (v.as_i64(), bound.as_i64(), v.as_u64(), bound.as_u64()) {
        (Some(a), Some(b), _, _) => a > b,
        (_, _, Some(a), Some(b)) => a > b,
        _ => bound.as_f64().is_some_and(|b| x > b),
    };
    if let Some(min) = s.get("minimum")
        && below(min)
    {
        errs.push(format!("{at}: {v} is below minimum {min}"));
    }
    if let Some(max) = s.get("maximum")
        && above(max)
    {
        errs.push(format!("{at}: {v} is above maximum {max}"));
    }
    let range = match s.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i32::MIN as i64, i32::MAX as i64)),
        Some("int64") => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    if let Some((lo, hi)) = range {
        let ok = v.as_i64().is_some_and(|n| n >= lo && n <= hi);
        if !ok && (v.is_i64() || v.is_u64()) {
            errs.push(format!("{at}: {v} is out of range for its format"));
        }
    }
}

/// JSON equality where 1 and 1.0 are equal.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut text = v.to_string();
    if text.len() > 60 {
        let cut = (0..=60)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    format!("{kind} {text}")
}
