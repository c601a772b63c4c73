//! The language as data for other tools, generated from [`crate::schema`]: a JSON Schema of a
//! configuration written in HCL's JSON syntax (what `mlops schema` prints, and what the
//! Terraform provider derives its resource schemas from), and the Markdown block reference
//! that docs/language.md is made of.

use crate::codes;
use crate::functions::FUNCTIONS;
use crate::schema::{AttrSchema, BlockSchema, NestedSchema, Ty, META_ATTRS, TOP_LEVEL};
use serde_json::{json, Map, Value};

const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";

/// The hand-written part of the language reference (syntax, expressions, modules, units).
pub const LANGUAGE_GUIDE: &str = include_str!("../docs/language-guide.md");

fn ty_schema(ty: Ty) -> Value {
    match ty {
        Ty::String => json!({ "type": "string" }),
        Ty::Number => json!({ "type": "number" }),
        Ty::Integer => json!({ "type": "integer" }),
        Ty::PositiveInteger => json!({ "type": "integer", "minimum": 1 }),
        Ty::NonNegative => json!({ "type": "number", "minimum": 0 }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Duration => json!({ "type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w))+$", "x-mlops-unit": "duration" }),
        Ty::Memory => {
            json!({ "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$", "x-mlops-unit": "memory" })
        }
        Ty::Cron => json!({ "type": "string", "x-mlops-unit": "cron" }),
        Ty::Percentage => json!({ "oneOf": [
            { "type": "number", "minimum": 0, "maximum": 100 },
            { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$" }
        ], "x-mlops-unit": "percentage" }),
        Ty::Probability => json!({ "type": "number", "minimum": 0, "maximum": 1 }),
        Ty::OpenFraction => json!({ "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 }),
        Ty::Ref(kinds) => json!({
            "type": "string",
            "pattern": format!("^\\$\\{{(module\\.[^}}]+\\.)?({})\\.[A-Za-z_][A-Za-z0-9_-]*(\\[[^\\]]+\\])?\\}}$", kinds.join("|")),
            "x-mlops-reference": kinds,
        }),
        Ty::Column => json!({
            "type": "string",
            "pattern": "^\\$\\{(module\\.[^}]+\\.)?source\\.[A-Za-z_][A-Za-z0-9_-]*\\.columns\\.[A-Za-z_][A-Za-z0-9_-]*\\}$",
            "x-mlops-reference": ["source"],
        }),
        Ty::List(inner) => json!({ "type": "array", "items": ty_schema(*inner) }),
        Ty::Map(inner) => json!({ "type": "object", "additionalProperties": ty_schema(*inner) }),
        Ty::Any => json!({}),
    }
}

fn attr_schema(a: &AttrSchema) -> Value {
    let mut s = ty_schema(a.ty);
    let obj = s.as_object_mut().expect("type schemas are objects");
    obj.insert("description".into(), a.doc.into());
    if !a.choices.is_empty() {
        obj.insert("enum".into(), a.choices.into());
    }
    if let Some(d) = a.default {
        let v: Value = serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string()));
        obj.insert("default".into(), v);
    }
    if a.replace {
        obj.insert("x-mlops-requires-replace".into(), true.into());
    }
    if a.sensitive {
        obj.insert("x-mlops-sensitive".into(), true.into());
    }
    s
}

/// JSON Schema of one block's body.
pub fn block_body_schema(b: &BlockSchema) -> Value {
    if !b.variants.is_empty() {
        // `backend "postgres" { … }`: an object keyed by the variant label.
        let mut props = Map::new();
        for v in b.variants {
            props.insert(v.kind.to_string(), block_body_schema(v));
        }
        return json!({ "type": "object", "description": b.doc, "properties": props, "additionalProperties": false,
                       "minProperties": 1, "maxProperties": 1 });
    }
    let mut props = Map::new();
    let mut required: Vec<&str> = Vec::new();
    for a in b.attrs {
        props.insert(a.name.to_string(), attr_schema(a));
        if a.required {
            required.push(a.name);
        }
    }
    if b.resource {
        for a in META_ATTRS {
            props.insert(a.name.to_string(), attr_schema(a));
        }
    }
    for n in b.blocks {
        props.insert(n.block.kind.to_string(), nested_schema(n));
        if n.min > 0 {
            required.push(n.block.kind);
        }
    }
    let mut s = json!({ "type": "object", "description": b.doc, "properties": props });
    let obj = s.as_object_mut().expect("object");
    match b.open {
        Some(t) => {
            obj.insert("additionalProperties".into(), ty_schema(t));
        }
        None => {
            obj.insert("additionalProperties".into(), false.into());
        }
    }
    if !required.is_empty() {
        obj.insert("required".into(), required.into());
    }
    if !b.exports.is_empty() {
        let exports: Vec<Value> =
            b.exports.iter().map(|e| json!({ "name": e.name, "description": e.doc, "computed": e.computed })).collect();
        obj.insert("x-mlops-exports".into(), exports.into());
    }
    s
}

fn labelled(b: &BlockSchema, body: Value) -> Value {
    // Each label adds one level of object keyed by the label's value.
    let mut s = body;
    for _ in b.labels {
        s = json!({ "type": "object", "propertyNames": { "pattern": NAME_PATTERN }, "additionalProperties": s });
    }
    s
}

fn nested_schema(n: &NestedSchema) -> Value {
    let body = block_body_schema(n.block);
    if !n.block.labels.is_empty() {
        return labelled(n.block, body);
    }
    if n.max == Some(1) || !n.block.variants.is_empty() {
        body
    } else {
        json!({ "type": "array", "items": body, "minItems": n.min })
    }
}

/// The JSON Schema of a whole configuration in HCL's JSON syntax.
pub fn json_schema() -> Value {
    let mut props = Map::new();
    for b in TOP_LEVEL {
        let body = block_body_schema(b);
        props.insert(b.kind.to_string(), labelled(b, body));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mlops.dev/schema/language/v1.json",
        "title": "mlops configuration",
        "description": "An ML system described in the mlops language (HCL JSON syntax). References are written \"${kind.name}\".",
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    })
}

fn ty_doc(a: &AttrSchema) -> String {
    let mut t = a.ty.describe();
    if !a.choices.is_empty() {
        t = a.choices.iter().map(|c| format!("`\"{c}\"`")).collect::<Vec<_>>().join(" \\| ");
    }
    t
}

fn block_doc(out: &mut String, b: &BlockSchema, path: &str, depth: usize) {
    let hashes = "#".repeat(depth.min(6));
    let labels: String = b.labels.iter().map(|l| format!(" \"<{l}>\"")).collect();
    out.push_str(&format!("{hashes} `{path}{labels}`\n\n{}\n\n", b.doc));
    if !b.variants.is_empty() {
        for v in b.variants {
            block_doc(out, v, &format!("{} \"{}\"", b.kind, v.kind), depth + 1);
        }
        return;
    }
    let mut attrs: Vec<&AttrSchema> = b.attrs.iter().collect();
    if b.resource {
        attrs.extend(META_ATTRS.iter());
    }
    if !attrs.is_empty() {
        out.push_str("| attribute | type | required | default | description |\n| --- | --- | --- | --- | --- |\n");
        for a in attrs {
            let mut notes = String::new();
            if a.replace {
                notes.push_str(" Changing it retrains / replaces.");
            }
            if a.sensitive {
                notes.push_str(" Sensitive: never printed.");
            }
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {}{} |\n",
                a.name,
                ty_doc(a),
                if a.required { "yes" } else { "no" },
                a.default.map_or("".to_string(), |d| format!("`{d}`")),
                a.doc.replace('|', "\\|"),
                notes
            ));
        }
        out.push('\n');
    }
    if let Some(t) = b.open {
        out.push_str(&format!("Any attribute name is accepted, of type {}.\n\n", t.describe()));
    }
    if !b.exports.is_empty() {
        out.push_str("Referenceable attributes:\n\n");
        for e in b.exports {
            out.push_str(&format!(
                "- `{}.<name>.{}`{}: {}\n",
                b.kind,
                e.name,
                if e.computed { " (known after apply)" } else { "" },
                e.doc
            ));
        }
        out.push('\n');
    }
    for n in b.blocks {
        let count = match (n.min, n.max) {
            (0, Some(1)) => "optional, at most one",
            (1, Some(1)) => "required, exactly one",
            (0, None) => "optional, any number",
            (_, None) => "required, one or more",
            _ => "",
        };
        out.push_str(&format!("Nested block `{}` ({count}).\n\n", n.block.kind));
    }
    for n in b.blocks {
        block_doc(out, n.block, &format!("{path} › {}", n.block.kind), depth + 1);
    }
}

/// The language reference in Markdown: the guide, every block, the functions and every
/// diagnostic code. docs/language.md is exactly this text.
pub fn markdown_reference() -> String {
    let mut out = String::new();
    out.push_str(LANGUAGE_GUIDE);
    out.push_str(
        "\n## Blocks\n\n<!-- Generated from compiler/src/schema.rs by `mlops schema --format markdown`. -->\n\n",
    );
    for b in TOP_LEVEL {
        block_doc(&mut out, b, b.kind, 3);
    }
    out.push_str("## Functions\n\n| function | signature | what it does |\n| --- | --- | --- |\n");
    for f in FUNCTIONS {
        out.push_str(&format!("| `{}` | `{}` | {} |\n", f.name, f.signature, f.summary.replace('|', "\\|")));
    }
    out.push_str("\n## Diagnostic codes\n\nErrors stop compilation; `lint` codes are warnings.\n\n| code | meaning |\n| --- | --- |\n");
    for (code, summary) in codes::ALL {
        out.push_str(&format!("| `{code}` | {summary} |\n"));
    }
    out
}
