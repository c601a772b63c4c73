//! Terraform values back into the mlops language. In: a block kind's schema (the compiler's)
//! and a Terraform object value shaped by the schema derived from it. Out: the HCL text of the
//! block, and for every attribute written the byte range it occupies with its Terraform
//! attribute path — so the compiler's diagnostics, which point at byte ranges, arrive in
//! Terraform at the attribute the user wrote.

use std::ops::Range;

use mlops_compiler::schema::{BlockSchema, Ty as LangTy};

use crate::cty::Val;
use crate::diag::Step;
use crate::tfschema::is_open_block;

/// A block rendered as HCL.
#[derive(Debug, Default, Clone)]
pub struct Rendered {
    /// The text.
    pub text: String,
    /// Byte ranges of what was written, with the Terraform attribute path of each.
    pub spans: Vec<(Range<usize>, Vec<Step>)>,
}

impl Rendered {
    /// The path of the innermost written attribute containing `offset` (empty: none).
    pub fn path_at(&self, offset: usize) -> Vec<Step> {
        self.spans
            .iter()
            .filter(|(r, _)| r.start <= offset && offset < r.end.max(r.start + 1))
            .min_by_key(|(r, _)| r.end - r.start)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }
}

/// Renders a top-level block: `kind "label" { … }` from `val` (whose label attributes name it).
pub fn render_top(schema: &BlockSchema, val: &Val) -> Rendered {
    let mut r = Rendered::default();
    block(&mut r, schema, val, &[], 0, &[]);
    r
}

fn block(r: &mut Rendered, schema: &BlockSchema, val: &Val, path: &[Step], depth: usize, keyword: &[&str]) {
    let pad = "  ".repeat(depth);
    let start = r.text.len();
    r.text.push_str(&pad);
    r.text.push_str(keyword.first().copied().unwrap_or(schema.kind));
    for extra in keyword.iter().skip(1) {
        r.text.push_str(&format!(" {}", quote(extra)));
    }
    for label in schema.labels {
        r.text.push_str(&format!(" {}", quote(val.get(label).as_str().unwrap_or_default())));
    }
    r.text.push_str(" {\n");
    // The labels' own ranges point at the label attributes.
    if let Some(label) = schema.labels.first() {
        let end = r.text.len() - 3;
        r.spans.push((start + pad.len() + schema.kind.len()..end, with(path, Step::Attr(label.to_string()))));
    }
    for a in schema.attrs {
        let v = val.get(a.name);
        if v.is_null() {
            continue;
        }
        let at = r.text.len();
        r.text.push_str(&format!("{pad}  {} = ", a.name));
        let here = with(path, Step::Attr(a.name.to_string()));
        expr(r, &here, &a.ty, v);
        r.text.push('\n');
        r.spans.push((at..r.text.len(), here));
    }
    for n in schema.blocks {
        let b = n.block;
        if is_open_block(b) {
            let v = val.get(b.kind);
            let Some(entries) = v.entries() else { continue };
            let at = r.text.len();
            r.text.push_str(&format!("{pad}  {} {{\n", b.kind));
            for (k, item) in entries {
                let line = r.text.len();
                r.text.push_str(&format!("{pad}    {} = ", key(k)));
                let p = with(&with(path, Step::Attr(b.kind.to_string())), Step::Key(k.clone()));
                expr(r, &p, &b.open.unwrap_or(LangTy::Any), item);
                r.text.push('\n');
                r.spans.push((line..r.text.len(), p));
            }
            r.text.push_str(&format!("{pad}  }}\n"));
            r.spans.push((at..r.text.len(), with(path, Step::Attr(b.kind.to_string()))));
        } else if !b.variants.is_empty() {
            for v in b.variants {
                let name = format!("{}_{}", b.kind, v.kind);
                for (i, item) in val.get(&name).items().iter().enumerate() {
                    let p = with(&with(path, Step::Attr(name.clone())), Step::Index(i as i64));
                    block(r, v, item, &p, depth + 1, &[b.kind, v.kind]);
                }
            }
        } else {
            for (i, item) in val.get(b.kind).items().iter().enumerate() {
                let p = with(&with(path, Step::Attr(b.kind.to_string())), Step::Index(i as i64));
                block(r, b, item, &p, depth + 1, &[]);
            }
        }
    }
    r.text.push_str(&pad);
    r.text.push_str("}\n");
    r.spans.push((start..r.text.len(), path.to_vec()));
}

fn with(path: &[Step], step: Step) -> Vec<Step> {
    let mut p = path.to_vec();
    p.push(step);
    p
}

/// Is `s` an mlops address or column reference that can be written as a traversal?
fn is_traversal(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// Writes `v` (at `path`) as an expression of type `ty`: references as traversals, the rest as
/// literals; list elements and map entries get spans of their own (`features[0]`,
/// `params["max_depth"]`).
fn expr(r: &mut Rendered, path: &[Step], ty: &LangTy, v: &Val) {
    match (ty, v.inner()) {
        (LangTy::Ref(_) | LangTy::Column, Val::String(s)) if is_traversal(s) => r.text.push_str(s),
        (LangTy::List(inner), Val::List(items)) => {
            r.text.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    r.text.push_str(", ");
                }
                let at = r.text.len();
                let p = with(path, Step::Index(i as i64));
                expr(r, &p, inner, item);
                r.spans.push((at..r.text.len(), p));
            }
            r.text.push(']');
        }
        (LangTy::Map(inner), Val::Map(m)) => {
            r.text.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                r.text.push_str(if i == 0 { " " } else { ", " });
                let at = r.text.len();
                r.text.push_str(&key(k));
                r.text.push_str(" = ");
                let p = with(path, Step::Key(k.clone()));
                expr(r, &p, inner, item);
                r.spans.push((at..r.text.len(), p));
            }
            r.text.push_str(if m.is_empty() { "}" } else { " }" });
        }
        (_, v) => literal(&mut r.text, v),
    }
}

fn literal(out: &mut String, v: &Val) {
    match v.inner() {
        Val::Null | Val::Unknown | Val::Typed(..) => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Number(n) => out.push_str(&n.to_string()),
        Val::String(s) => out.push_str(&quote(s)),
        Val::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                literal(out, item);
            }
            out.push(']');
        }
        Val::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                out.push_str(&key(k));
                out.push_str(" = ");
                literal(out, item);
            }
            out.push_str(if m.is_empty() { "}" } else { " }" });
        }
    }
}

fn key(k: &str) -> String {
    let ident = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ident {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A quoted HCL string, with template sequences escaped so the text is taken literally.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
