//! The templates and the filters that keep their YAML valid whatever the user wrote. Every value
//! a template interpolates goes through `q`, which writes a double-quoted scalar (JSON's escapes,
//! which YAML shares, plus the characters YAML treats as line breaks), so no name, key or command
//! line can change the document's structure. `block` writes a long text as a literal block when
//! that keeps it byte for byte, and `indent` places a pre-rendered fragment (a pod template)
//! under its parent key.

use std::collections::HashMap;
use tera::{Tera, Value};

/// The templates, embedded in the binary: `(name, text)`.
const TEMPLATES: &[(&str, &str)] = &[
    ("namespace", include_str!("../../../templates/kubernetes/namespace.yaml.tera")),
    ("configmap", include_str!("../../../templates/kubernetes/configmap.yaml.tera")),
    ("pvc", include_str!("../../../templates/kubernetes/pvc.yaml.tera")),
    ("serviceaccount", include_str!("../../../templates/kubernetes/serviceaccount.yaml.tera")),
    ("role", include_str!("../../../templates/kubernetes/role.yaml.tera")),
    ("rolebinding", include_str!("../../../templates/kubernetes/rolebinding.yaml.tera")),
    ("pod", include_str!("../../../templates/kubernetes/pod.yaml.tera")),
    ("deployment", include_str!("../../../templates/kubernetes/deployment.yaml.tera")),
    ("service", include_str!("../../../templates/kubernetes/service.yaml.tera")),
    ("hpa", include_str!("../../../templates/kubernetes/hpa.yaml.tera")),
    ("pdb", include_str!("../../../templates/kubernetes/pdb.yaml.tera")),
    ("servicemonitor", include_str!("../../../templates/kubernetes/servicemonitor.yaml.tera")),
    ("job", include_str!("../../../templates/kubernetes/job.yaml.tera")),
    ("cronjob", include_str!("../../../templates/kubernetes/cronjob.yaml.tera")),
    ("kustomization", include_str!("../../../templates/kubernetes/kustomization.yaml.tera")),
];

/// The template engine with every template and filter registered.
pub fn engine() -> Tera {
    let mut tera = Tera::default();
    tera.autoescape_on(Vec::new());
    tera.add_raw_templates(TEMPLATES.iter().copied()).expect("the embedded templates parse (a unit test renders them)");
    tera.register_filter("q", q);
    tera.register_filter("block", block);
    tera.register_filter("indent", indent);
    tera
}

/// A double-quoted YAML scalar holding exactly `s`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Control characters, and the Unicode characters YAML 1.1 readers take for line breaks or a
/// byte-order mark: written as `\uXXXX` (all in the Basic Multilingual Plane).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// `q`: any value as a YAML scalar — strings quoted, numbers and booleans as they are, lists and
/// maps as JSON flow collections (valid YAML).
fn q(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(match value {
        Value::String(s) => quote(s),
        Value::Null => "null".into(),
        other => serde_json::to_string(other).map_err(tera::Error::msg)?,
    }))
}

/// `block(indent=N)`: a string as a literal block scalar (`|` or `|-`) indented by N when that
/// reads back byte for byte; otherwise as a quoted scalar.
fn block(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = value.as_str().ok_or_else(|| tera::Error::msg("block: expects a string"))?;
    let n = args.get("indent").and_then(Value::as_u64).unwrap_or(2) as usize;
    Ok(Value::String(literal_block(s, n).unwrap_or_else(|| quote(s))))
}

fn literal_block(s: &str, indent: usize) -> Option<String> {
    let (body, chomp) = match s.strip_suffix('\n') {
        Some(b) if !b.ends_with('\n') => (b, "|"),
        Some(_) => return None,
        None => (s, "|-"),
    };
    let safe = !body.is_empty()
        && !body.starts_with([' ', '\t'])
        && !body.chars().any(|c| c == '\r' || c == '\t' || needs_escape(c) && c != '\n')
        && body.split('\n').all(|l| l.is_empty() || !l.trim().is_empty());
    if !safe {
        return None;
    }
    let pad = " ".repeat(indent);
    let mut out = String::from(chomp);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    Some(out)
}

/// `indent(n=N)`: every non-empty line of a rendered fragment indented by N spaces.
fn indent(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = value.as_str().ok_or_else(|| tera::Error::msg("indent: expects a string"))?;
    let n = args.get("n").and_then(Value::as_u64).unwrap_or(2) as usize;
    let pad = " ".repeat(n);
    let lines: Vec<String> =
        s.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect();
    Ok(Value::String(lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_everything_that_could_break_yaml() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c\nd: e # f"), r#""a\"b\\c\nd: e # f""#);
        assert_eq!(quote("x\u{2028}y\u{7}"), r#""x\u2028y\u0007""#);
        assert_eq!(quote("né"), "\"né\"");
    }

    #[test]
    fn literal_blocks_only_when_exact() {
        assert_eq!(literal_block("{\n  \"a\": 1\n}\n", 4).unwrap(), "|\n    {\n      \"a\": 1\n    }");
        assert_eq!(literal_block("x", 2).unwrap(), "|-\n  x");
        assert!(literal_block("x\n\n", 2).is_none());
        assert!(literal_block(" x\n", 2).is_none());
        assert!(literal_block("a\n  \nb\n", 2).is_none());
        assert!(literal_block("a\u{2028}b\n", 2).is_none());
    }
}
