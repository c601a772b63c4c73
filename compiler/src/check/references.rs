//! References into resources: `source.x.columns.y` must name a declared column, and
//! `endpoint.api.url` an attribute or export the resource has.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::lower::node::Node;
use crate::model::{Config, Model};
use crate::schema;
use crate::suggest::did_you_mean;
use crate::value::{Reference, Value};

pub(super) fn check(model: &Model, diags: &mut Diagnostics) {
    let mut refs: Vec<&Reference> = Vec::new();
    for r in &model.resources {
        collect_node(&r.node, &mut refs);
        refs.extend(r.depends_on.iter());
    }
    for o in &model.outputs {
        collect(&o.value, &mut refs);
    }
    for r in refs {
        check_ref(model, r, diags);
    }
}

fn collect_node<'a>(node: &'a Node, out: &mut Vec<&'a Reference>) {
    for a in node.attrs.values() {
        collect(&a.value, out);
    }
    for b in &node.blocks {
        collect_node(b, out);
    }
}

fn collect<'a>(v: &'a Value, out: &mut Vec<&'a Reference>) {
    match v {
        Value::Ref(r) => out.push(r),
        Value::List(items) => items.iter().for_each(|i| collect(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect(i, out)),
        _ => {}
    }
}

fn check_ref(model: &Model, r: &Reference, diags: &mut Diagnostics) {
    let Some(first) = r.path.first() else { return };
    let Some(target) = model.get(&r.address.to_string()) else { return };
    let schema = schema::top_level(&r.address.kind).expect("resource kinds have schemas");
    if first == "columns" {
        let Config::Source(src) = &target.config else { return };
        match r.path.get(1) {
            None => {}
            Some(col) if src.column(col).is_some() && r.path.len() > 2 => {
                diags.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE_REFERENCE, r.span, format!("`{r}` goes past a column"))
                        .help(format!("a column has no attributes; write `{}.columns.{col}`", r.address)),
                );
            }
            Some(col) if src.column(col).is_some() => {}
            Some(col) => {
                let names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();
                diags.push(
                    Diagnostic::error(
                        codes::UNKNOWN_COLUMN,
                        r.span,
                        format!("source `{}` has no column `{col}`", r.address.name),
                    )
                    .label("not in the source's schema")
                    .with(target.node.block("schema").map_or(target.node.header, |b| b.header), "schema declared here")
                    .help(match did_you_mean(col, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("declare it in the schema block, or use one of: {}", names.join(", ")),
                    }),
                );
            }
        }
        return;
    }
    let known = schema.attrs.iter().any(|a| a.name == first) || schema.exports.iter().any(|e| e.name == first);
    if !known {
        let mut names: Vec<&str> = schema.exports.iter().map(|e| e.name).collect();
        names.extend(schema.attrs.iter().map(|a| a.name));
        diags.push(
            Diagnostic::error(
                codes::UNKNOWN_ATTRIBUTE_REFERENCE,
                r.span,
                format!("{} has no attribute `{first}` to reference", r.address.kind),
            )
            .label("unknown attribute")
            .help(match did_you_mean(first, names.iter().copied()) {
                Some(s) => format!("did you mean `{}.{s}`?", r.address),
                None => format!("{} exports: {}", r.address.kind, names.join(", ")),
            }),
        );
    }
}
