//! mlops files read back, for the per-kind resources. In: the text of `*.mlops.hcl` files (the
//! ones the provider generated, or written by hand). Out: each top-level resource block's
//! address, its own text (so one block can be compiled without the rest of its file), the
//! addresses it references, and — for `terraform import` — its Terraform value, shaped by the
//! schema derived from the language (the inverse of [`crate::hclgen`]).
//!
//! Only what a block can say without evaluation is read back: literals, lists, objects and
//! references (`source.transactions`, `source.transactions.columns.is_fraud`). A block using
//! variables, functions or operators cannot be imported; the error names the attribute.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use hcl_edit::expr::{Expression, ObjectKey, TraversalOperator};
use hcl_edit::structure::{Block, Body, Structure};
use hcl_edit::Span;
use mlops_compiler::schema::{self as lang, BlockSchema, Ty as LangTy};

use crate::cty::{Ty, Val};
use crate::tfschema::is_open_block;

/// One top-level resource block of a file.
#[derive(Debug, Clone)]
pub struct FoundBlock {
    /// `kind.name`.
    pub address: String,
    /// Its source text, on its own.
    pub text: String,
}

/// Parses a file; `None` when it is not valid HCL (the compiler says why, where it matters).
pub fn parse(text: &str) -> Option<Body> {
    hcl_edit::parser::parse_body(text).ok()
}

/// The resource blocks of a file's text, with their own text.
pub fn resource_blocks(text: &str) -> Vec<FoundBlock> {
    let Some(body) = parse(text) else { return Vec::new() };
    body.iter()
        .filter_map(|s| match s {
            Structure::Block(b) => Some(b),
            Structure::Attribute(_) => None,
        })
        .filter_map(|b| {
            let kind = b.ident.as_str();
            lang::top_level(kind).filter(|s| s.resource)?;
            let name = b.labels.first()?.as_str().to_string();
            let range: Range<usize> = b.span()?;
            let text = text.get(range)?.to_string();
            Some(FoundBlock { address: format!("{kind}.{name}"), text })
        })
        .collect()
}

/// The resource addresses a block's text references (`kind.name`), sorted.
pub fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(body) = parse(text) {
        body_refs(&body, &mut out);
    }
    out
}

fn body_refs(body: &Body, out: &mut BTreeSet<String>) {
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => expr_refs(&a.value, out),
            Structure::Block(b) => body_refs(&b.body, out),
        }
    }
}

fn expr_refs(e: &Expression, out: &mut BTreeSet<String>) {
    match e {
        Expression::Traversal(t) => {
            if let Some(path) = traversal_path(t) {
                let parts: Vec<&str> = path.split('.').collect();
                if parts.len() >= 2 && lang::resource_kinds().any(|k| k == parts[0]) {
                    out.insert(format!("{}.{}", parts[0], parts[1]));
                }
            }
        }
        Expression::Array(a) => a.iter().for_each(|i| expr_refs(i, out)),
        Expression::Object(o) => o.iter().for_each(|(_, v)| expr_refs(v.expr(), out)),
        Expression::Parenthesis(p) => expr_refs(p.inner(), out),
        _ => {}
    }
}

/// `a.b.c` of a traversal made only of attribute steps.
fn traversal_path(t: &hcl_edit::expr::Traversal) -> Option<String> {
    let Expression::Variable(root) = &t.expr else { return None };
    let mut path = root.as_str().to_string();
    for op in &t.operators {
        match op.value() {
            TraversalOperator::GetAttr(name) => {
                path.push('.');
                path.push_str(name.as_str());
            }
            _ => return None,
        }
    }
    Some(path)
}

/// The Terraform value of a top-level resource block (its label as `name`), or why it cannot
/// be read without evaluating it.
pub fn block_value(schema: &BlockSchema, text: &str) -> Result<Val, String> {
    let body = parse(text).ok_or("the block is not valid HCL")?;
    let block = body
        .iter()
        .find_map(|s| match s {
            Structure::Block(b) if b.ident.as_str() == schema.kind => Some(b),
            _ => None,
        })
        .ok_or_else(|| format!("no `{}` block", schema.kind))?;
    block_val(schema, block, "")
}

fn block_val(schema: &BlockSchema, block: &Block, at: &str) -> Result<Val, String> {
    let mut m: BTreeMap<String, Val> = BTreeMap::new();
    for (label, value) in schema.labels.iter().zip(&block.labels) {
        m.insert(label.to_string(), Val::str(value.as_str()));
    }
    for label in schema.labels.iter().skip(block.labels.len()) {
        m.insert(label.to_string(), Val::Null);
    }
    for a in schema.attrs {
        m.insert(a.name.to_string(), Val::Null);
    }
    for n in schema.blocks {
        if is_open_block(n.block) {
            m.insert(n.block.kind.to_string(), Val::Null);
        } else if n.block.variants.is_empty() {
            m.insert(n.block.kind.to_string(), Val::List(Vec::new()));
        } else {
            for v in n.block.variants {
                m.insert(format!("{}_{}", n.block.kind, v.kind), Val::List(Vec::new()));
            }
        }
    }
    let path = |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}.{name}") };
    for s in block.body.iter() {
        match s {
            Structure::Attribute(attr) => {
                let name = attr.key.as_str();
                let Some(a) = schema.attr(name) else {
                    // Meta-arguments (`depends_on`) and unknown names have no Terraform attribute.
                    return Err(format!("`{}` has no Terraform attribute", path(name)));
                };
                let v = expr_val(&attr.value, &a.ty).map_err(|e| format!("`{}`: {e}", path(name)))?;
                let v = if crate::tfschema::ty_of(&a.ty) == Ty::Dynamic { typed(v) } else { v };
                m.insert(name.to_string(), v);
            }
            Structure::Block(b) => {
                let kind = b.ident.as_str();
                let Some(n) = schema.block(kind) else {
                    return Err(format!("block `{}` has no Terraform attribute", path(kind)));
                };
                if is_open_block(n.block) {
                    let ty = n.block.open.unwrap_or(LangTy::Any);
                    let mut entries = BTreeMap::new();
                    for s in b.body.iter() {
                        let Structure::Attribute(attr) = s else {
                            return Err(format!("`{}` holds attributes only", path(kind)));
                        };
                        let v = expr_val(&attr.value, &ty)
                            .map_err(|e| format!("`{}.{}`: {e}", path(kind), attr.key.as_str()))?;
                        entries.insert(attr.key.as_str().to_string(), v);
                    }
                    let v = Val::Map(entries);
                    let v = if crate::tfschema::ty_of(&ty) == Ty::Dynamic { typed(v) } else { v };
                    m.insert(kind.to_string(), v);
                } else if n.block.variants.is_empty() {
                    let item = block_val(n.block, b, &path(kind))?;
                    if let Some(Val::List(items)) = m.get_mut(kind) {
                        items.push(item);
                    }
                } else {
                    let variant = b.labels.first().map(|l| l.as_str()).unwrap_or_default();
                    let v = n.block.variant(variant).ok_or_else(|| format!("unknown `{kind}` \"{variant}\""))?;
                    let item = block_val(v, b, &path(kind))?;
                    if let Some(Val::List(items)) = m.get_mut(&format!("{kind}_{variant}")) {
                        items.push(item);
                    }
                }
            }
        }
    }
    Ok(Val::Map(m))
}

/// A value of a dynamic attribute carries its type, as Terraform sends it.
fn typed(v: Val) -> Val {
    if v.is_null() {
        return v;
    }
    Val::Typed(Ty::infer(&v), Box::new(v))
}

fn expr_val(e: &Expression, ty: &LangTy) -> Result<Val, String> {
    let inner = match ty {
        LangTy::List(t) | LangTy::Map(t) => *t,
        _ => &LangTy::Any,
    };
    Ok(match e {
        Expression::Null(_) => Val::Null,
        Expression::Bool(b) => Val::Bool(*b.value()),
        Expression::Number(n) => {
            let n = n.value();
            match (n.as_i64(), n.as_f64()) {
                (Some(i), _) if !n.is_f64() => Val::Number(i.into()),
                (_, Some(f)) => Val::num(f),
                _ => return Err("a number out of range".into()),
            }
        }
        Expression::String(s) => Val::str(s.value().clone()),
        Expression::StringTemplate(t) => {
            let mut s = String::new();
            for element in t.iter() {
                match element {
                    hcl_edit::template::Element::Literal(l) => s.push_str(l.value()),
                    _ => return Err("a template with interpolations cannot be imported; write a literal".into()),
                }
            }
            Val::str(s)
        }
        Expression::Array(a) => Val::List(a.iter().map(|i| expr_val(i, inner)).collect::<Result<_, _>>()?),
        Expression::Object(o) => {
            let mut m = BTreeMap::new();
            for (k, v) in o.iter() {
                let key = match k {
                    ObjectKey::Ident(i) => i.as_str().to_string(),
                    ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                    ObjectKey::Expression(_) => return Err("an object key must be a name or a string".into()),
                };
                m.insert(key, expr_val(v.expr(), inner)?);
            }
            Val::Map(m)
        }
        Expression::Parenthesis(p) => expr_val(p.inner(), ty)?,
        Expression::UnaryOp(u) => match (u.operator.value(), expr_val(&u.expr, ty)?) {
            (hcl_edit::expr::UnaryOperator::Neg, Val::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    Val::Number((-i).into())
                } else {
                    Val::num(-n.as_f64().unwrap_or_default())
                }
            }
            _ => return Err("an expression cannot be imported; write a literal".into()),
        },
        Expression::Traversal(t) => {
            let path = traversal_path(t).ok_or("a reference with an index cannot be imported; write `kind.name`")?;
            if !lang::resource_kinds().any(|k| path.split('.').next() == Some(k)) {
                return Err(format!("`{path}` cannot be imported: only references to resources are read back"));
            }
            Val::str(path)
        }
        _ => return Err("an expression cannot be imported; write a literal or a reference".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hclgen;

    const VIEW: &str = r#"# a comment
source "transactions" {
  format = "csv"
  path   = "data/t.csv"
  schema {
    amount = "float"
  }
}

feature_view "activity" {
  source   = source.transactions
  entities = [entity.account]
  ttl      = "7d"

  feature "amount_sum_24h" {
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }
}
"#;

    #[test]
    fn blocks_are_found_with_their_text_and_references() {
        let blocks = resource_blocks(VIEW);
        let addresses: Vec<&str> = blocks.iter().map(|b| b.address.as_str()).collect();
        assert_eq!(addresses, ["source.transactions", "feature_view.activity"]);
        assert!(blocks[1].text.starts_with("feature_view \"activity\" {"), "{}", blocks[1].text);
        assert!(blocks[1].text.trim_end().ends_with('}'));
        let refs: Vec<String> = references(&blocks[1].text).into_iter().collect();
        assert_eq!(refs, ["entity.account", "source.transactions"]);
    }

    #[test]
    fn a_generated_block_reads_back_as_the_value_it_came_from() {
        let schema = lang::top_level("training_job").unwrap();
        let text = r#"training_job "fraud" {
  features = [feature_view.activity]
  label    = source.transactions.columns.is_fraud
  params   = { max_depth = 4, eta = 0.1, objective = "binary:logistic" }
  gate {
    metric = "auc"
    min    = 0.8
  }
}
"#;
        let v = block_value(schema, text).unwrap();
        assert_eq!(v.get("name").as_str(), Some("fraud"));
        assert_eq!(v.get("label").as_str(), Some("source.transactions.columns.is_fraud"));
        assert_eq!(v.get("params").get("eta").as_f64(), Some(0.1));
        assert_eq!(v.get("gate").items().len(), 1);
        assert!(v.get("validation").items().is_empty());
        // And back: the same text compiles to the same block.
        let again = hclgen::render_top(schema, &v);
        assert_eq!(block_value(schema, &again.text).unwrap(), v);
    }

    #[test]
    fn expressions_are_refused_with_the_attribute_named() {
        let schema = lang::top_level("entity").unwrap();
        let err = block_value(schema, "entity \"a\" {\n  join_keys = var.keys\n}\n").unwrap_err();
        assert!(err.contains("`join_keys`"), "{err}");
    }
}
