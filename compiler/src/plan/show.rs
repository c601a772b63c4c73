//! How plan values read in human renderings: JSON values and attribute paths in, short text
//! out. Shared by reasons, risk notes and the text and markdown renderings, so all of them say
//! the same thing the same way.

use super::{Action, AttrValue};
use serde_json::Value;

/// What an unknown-until-apply value reads as.
pub(super) const UNKNOWN: &str = "(known after apply)";
/// What a secret reads as.
pub(super) const SENSITIVE: &str = "(sensitive)";

/// The path as people read it: `params.max_depth`, `version` (no `config.` / `produced.`).
pub(super) fn attr_name(path: &str) -> &str {
    path.strip_prefix("config.").or_else(|| path.strip_prefix("produced.")).unwrap_or(path)
}

/// A number without float noise: `10` rather than `10.0`.
pub(super) fn number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A JSON value in HCL-like notation; `quote` puts strings in quotes (attribute lines) or not
/// (sentences).
pub(super) fn json(v: &Value, quote: bool) -> String {
    json_without(v, quote, None)
}

/// Like [`json`], leaving out one `field = value` pair of an object (the key already shown in
/// the path, as in `features[amount]`).
fn json_without(v: &Value, quote: bool, skip: Option<(&str, &str)>) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => number(f),
            _ => n.to_string(),
        },
        Value::String(s) if quote => serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\"")),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(|i| json_without(i, quote, None)).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .filter(|(k, v)| skip.is_none_or(|(f, name)| k.as_str() != f || v.as_str() != Some(name)))
                .map(|(k, v)| format!("{k} = {}", json_without(v, quote, None)))
                .collect();
            if inner.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", inner.join(", "))
            }
        }
    }
}

/// A plan value on an attribute line: quoted strings, `(known after apply)`, `(sensitive)`.
/// `path` lets an element of a named list leave out its name.
pub(super) fn value(path: &str, v: &AttrValue) -> String {
    match v {
        AttrValue::Absent => "(none)".into(),
        AttrValue::Unknown => UNKNOWN.into(),
        AttrValue::Sensitive => SENSITIVE.into(),
        AttrValue::Known(j) => {
            let skip = path.strip_suffix(']').and_then(|p| p.rsplit_once('[')).map(|(_, key)| key);
            let skip = skip.and_then(|key| {
                ["name", "metric", "param"]
                    .into_iter()
                    .find(|f| j.get(*f).and_then(Value::as_str) == Some(key))
                    .map(|f| (f, key))
            });
            clip(&json_without(j, true, skip), 160)
        }
    }
}

/// At most `max` characters, with an ellipsis when cut.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The symbol of an attribute line: `+` added, `-` removed, `~` changed. A value produced by
/// apply that state did not record is still a change, not an addition, on an existing resource.
pub(super) fn attr_symbol(action: Action, before: &AttrValue, after: &AttrValue) -> &'static str {
    match (before, after) {
        (AttrValue::Absent, AttrValue::Unknown) if action != Action::Create => "~",
        (AttrValue::Absent, _) => "+",
        (_, AttrValue::Absent) => "-",
        _ => "~",
    }
}
