//! Schema-checked blocks: a block's body evaluated and checked against its [`BlockSchema`] —
//! unknown attributes and blocks, missing required ones, duplicates, wrong types, bad choices,
//! malformed units. What comes out is a [`Node`]: values with the spans they were written at.

use super::Lowerer;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::eval::{span_of, Evaluator, Resolver};
use crate::schema::{AttrSchema, BlockSchema, Ty, META_ATTRS};
use crate::source::{FileId, Span};
use crate::suggest::did_you_mean;
use crate::units;
use crate::value::{format_number, Value};
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Structure};
use indexmap::IndexMap;

/// An evaluated attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// Its value.
    pub value: Value,
    /// Where the value expression is.
    pub span: Span,
    /// Where the attribute name is.
    pub key_span: Span,
    /// Spans of the elements, when the value was written as a list literal.
    pub items: Vec<Span>,
    /// Spans of the entries (key, value), when the value was written as an object literal.
    pub entries: IndexMap<String, (Span, Span)>,
}

impl Attr {
    /// The span of list element `i`, or of the whole value.
    pub fn item_span(&self, i: usize) -> Span {
        self.items.get(i).copied().unwrap_or(self.span)
    }

    /// The span of the value of entry `key`, or of the whole value.
    pub fn entry_span(&self, key: &str) -> Span {
        self.entries.get(key).map_or(self.span, |(_, v)| *v)
    }

    /// The span of the key of entry `key`, or of the whole value.
    pub fn entry_key_span(&self, key: &str) -> Span {
        self.entries.get(key).map_or(self.span, |(k, _)| *k)
    }
}

/// A block after evaluation and schema checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its schema.
    pub schema: &'static BlockSchema,
    /// Labels with their spans.
    pub labels: Vec<(String, Span)>,
    /// The keyword and labels (`source "transactions"`): where block-level findings point.
    pub header: Span,
    /// Attributes by name, in source order.
    pub attrs: IndexMap<String, Attr>,
    /// Nested blocks, in source order.
    pub blocks: Vec<Node>,
    /// Did the schema check find errors in this block (or below)? Later checks skip such blocks
    /// to avoid reporting consequences of the same mistake.
    pub errors: bool,
}

impl Node {
    /// The block's keyword.
    pub fn kind(&self) -> &'static str {
        self.schema.kind
    }

    /// First label (the name of named blocks).
    pub fn name(&self) -> &str {
        self.labels.first().map_or("", |(l, _)| l)
    }

    /// An attribute's value, if set (and not null).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.attrs.get(name).map(|a| &a.value)
    }

    /// An attribute.
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.get(name)
    }

    /// The span of an attribute's value, or of the block header if it is not set.
    pub fn span_of(&self, name: &str) -> Span {
        self.attrs.get(name).map_or(self.header, |a| a.span)
    }

    /// The span of an attribute's name, or of the block header if it is not set.
    pub fn key_span_of(&self, name: &str) -> Span {
        self.attrs.get(name).map_or(self.header, |a| a.key_span)
    }

    /// A string attribute.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// A number attribute.
    pub fn num(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Value::as_number)
    }

    /// A bool attribute.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }

    /// Nested blocks of one kind.
    pub fn blocks_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.blocks.iter().filter(move |b| b.kind() == kind)
    }

    /// The first nested block of one kind.
    pub fn block(&self, kind: &str) -> Option<&Node> {
        self.blocks.iter().find(|b| b.kind() == kind)
    }
}

/// Labels of a block with spans.
pub fn labels(file: FileId, block: &Block) -> Vec<(String, Span)> {
    block.labels.iter().map(|l| (l.as_str().to_string(), span_of(file, l))).collect()
}

/// `kind "label" …` span of a block.
pub fn header(file: FileId, block: &Block) -> Span {
    let start = span_of(file, &block.ident);
    match block.labels.last() {
        Some(l) => start.to(span_of(file, l)),
        None => start,
    }
}

impl Lowerer {
    /// Evaluates and checks a block against `schema`. `meta` allows resource meta-arguments
    /// (count, for_each, depends_on), which are handled by the caller and skipped here.
    pub(crate) fn build_node<R: Resolver + ?Sized>(
        ev: &mut Evaluator<'_, R>,
        file: FileId,
        block: &Block,
        schema: &'static BlockSchema,
        meta: bool,
    ) -> Node {
        let mut node = Node {
            schema,
            labels: labels(file, block),
            header: header(file, block),
            attrs: IndexMap::new(),
            blocks: Vec::new(),
            errors: false,
        };
        let mut errors = false;
        // Variant blocks (`backend "postgres"`) take their body schema from the first label.
        let body_schema = if schema.variants.is_empty() {
            schema
        } else {
            let label = node.labels.first().map(|(l, s)| (l.clone(), *s));
            match label.as_ref().and_then(|(l, _)| schema.variant(l)) {
                Some(v) => v,
                None => {
                    let names: Vec<&str> = schema.variants.iter().map(|v| v.kind).collect();
                    let (given, span) = label.unwrap_or_else(|| (String::new(), node.header));
                    report(
                        ev,
                        &mut errors,
                        Diagnostic::error(
                            codes::INVALID_CHOICE,
                            span,
                            format!("unknown {} type `{given}`", schema.kind),
                        )
                        .label("not a known type")
                        .help(suggest_choice(&given, &names)),
                    );
                    node.errors = true;
                    return node;
                }
            }
        };
        let mut block_counts: IndexMap<&'static str, (usize, Span)> = IndexMap::new();
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let name = a.key.as_str();
                    let key_span = span_of(file, &a.key);
                    if meta && META_ATTRS.iter().any(|m| m.name == name) {
                        continue;
                    }
                    if let Some(prev) = node.attrs.get(name) {
                        report(
                            ev,
                            &mut errors,
                            Diagnostic::error(
                                codes::DUPLICATE_ATTRIBUTE,
                                key_span,
                                format!("attribute `{name}` is set twice"),
                            )
                            .label("set again here")
                            .with(prev.key_span, "first set here")
                            .help("remove one of them"),
                        );
                        continue;
                    }
                    let ty = match body_schema.attr(name) {
                        Some(s) => Some((s.ty, Some(s))),
                        None => body_schema.open.map(|t| (t, None)),
                    };
                    let Some((ty, attr_schema)) = ty else {
                        let d = unknown_attribute(body_schema, name, key_span, meta);
                        report(ev, &mut errors, d);
                        continue;
                    };
                    let span = span_of(file, &a.value);
                    let Ok(value) = ev.eval(&a.value) else {
                        errors = true;
                        continue;
                    };
                    if value.is_null() {
                        continue; // null means unset, as in Terraform
                    }
                    let attr = Attr {
                        value,
                        span,
                        key_span,
                        items: item_spans(file, &a.value),
                        entries: entry_spans(file, &a.value),
                    };
                    if let Err(d) = check_value(&attr, ty, attr_schema, name) {
                        report(ev, &mut errors, d);
                    }
                    node.attrs.insert(name.to_string(), attr);
                }
                Structure::Block(b) => {
                    let kind = b.ident.as_str();
                    let span = header(file, b);
                    let Some(nested) = body_schema.block(kind) else {
                        let d = unknown_block_in(body_schema, kind, span);
                        report(ev, &mut errors, d);
                        continue;
                    };
                    let expected = nested.block.labels.len();
                    let expected = if nested.block.variants.is_empty() { expected } else { 1 };
                    if b.labels.len() != expected {
                        report(ev, &mut errors, label_count_error(nested.block, b.labels.len(), file, b));
                        continue;
                    }
                    let entry = block_counts.entry(nested.block.kind).or_insert((0, span));
                    entry.0 += 1;
                    if nested.max.is_some_and(|m| entry.0 > m) {
                        let first = entry.1;
                        report(
                            ev,
                            &mut errors,
                            Diagnostic::error(
                                codes::DUPLICATE_ATTRIBUTE,
                                span,
                                format!("`{kind}` block given more than once"),
                            )
                            .label("again here")
                            .with(first, "first given here")
                            .help(format!("a {} takes at most one `{kind}` block", body_schema.kind)),
                        );
                        continue;
                    }
                    let child = Self::build_node(ev, file, b, nested.block, false);
                    if child.errors {
                        errors = true;
                    }
                    // Named nested blocks must be unique (two `feature "x"`).
                    if !child.labels.is_empty() {
                        if let Some(prev) =
                            node.blocks.iter().find(|o| o.kind() == child.kind() && o.name() == child.name())
                        {
                            let prev_span = prev.header;
                            report(
                                ev,
                                &mut errors,
                                Diagnostic::error(
                                    codes::DUPLICATE_NAME,
                                    child.header,
                                    format!("`{kind} \"{}\"` is defined twice", child.name()),
                                )
                                .label("defined again here")
                                .with(prev_span, "first defined here")
                                .help(format!(
                                    "rename one of them; {kind} names must be unique within a {}",
                                    body_schema.kind
                                )),
                            );
                            continue;
                        }
                    }
                    node.blocks.push(child);
                }
            }
        }
        for a in body_schema.attrs.iter().filter(|a| a.required) {
            if !node.attrs.contains_key(a.name) && !block_sets_attr_with_error(block, a.name) {
                report(
                    ev,
                    &mut errors,
                    Diagnostic::error(
                        codes::MISSING_ATTRIBUTE,
                        node.header,
                        format!(
                            "{} `{}` is missing required attribute `{}`",
                            body_schema_name(schema, body_schema),
                            node.name(),
                            a.name
                        ),
                    )
                    .label(format!("needs `{}`", a.name))
                    .help(format!("add `{} = <{}>`: {}", a.name, a.ty.describe(), a.doc)),
                );
            }
        }
        for n in body_schema.blocks.iter().filter(|n| n.min > 0) {
            if !block.body.blocks().any(|b| b.ident.as_str() == n.block.kind) {
                let example = if n.block.labels.is_empty() {
                    format!("{} {{ … }}", n.block.kind)
                } else {
                    format!("{} \"<{}>\" {{ … }}", n.block.kind, n.block.labels[0])
                };
                report(
                    ev,
                    &mut errors,
                    Diagnostic::error(
                        codes::MISSING_ATTRIBUTE,
                        node.header,
                        format!("{} `{}` needs a `{}` block", body_schema.kind, node.name(), n.block.kind),
                    )
                    .label(format!("no `{}` block", n.block.kind))
                    .help(format!("add `{example}`: {}", n.block.doc)),
                );
            }
        }
        node.errors = errors;
        node
    }
}

fn body_schema_name(schema: &BlockSchema, body: &BlockSchema) -> String {
    if std::ptr::eq(schema, body) {
        schema.kind.to_string()
    } else {
        format!("{} \"{}\"", schema.kind, body.kind)
    }
}

// An attribute whose expression failed to evaluate was reported already; do not also call it
// missing.
fn block_sets_attr_with_error(block: &Block, name: &str) -> bool {
    block.body.attributes().any(|a| a.key.as_str() == name)
}

fn item_spans(file: FileId, expr: &Expression) -> Vec<Span> {
    match expr {
        Expression::Array(a) => a.iter().map(|e| span_of(file, e)).collect(),
        _ => Vec::new(),
    }
}

fn entry_spans(file: FileId, expr: &Expression) -> IndexMap<String, (Span, Span)> {
    let mut out = IndexMap::new();
    if let Expression::Object(o) = expr {
        for (k, v) in o.iter() {
            let key = match k {
                hcl_edit::expr::ObjectKey::Ident(i) => i.as_str().to_string(),
                hcl_edit::expr::ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                hcl_edit::expr::ObjectKey::Expression(_) => continue,
            };
            out.insert(key, (span_of(file, k), span_of(file, v.expr())));
        }
    }
    out
}

fn unknown_attribute(schema: &BlockSchema, name: &str, span: Span, meta: bool) -> Diagnostic {
    let mut names: Vec<&str> = schema.attrs.iter().map(|a| a.name).collect();
    if meta {
        names.extend(META_ATTRS.iter().map(|a| a.name));
    }
    let is_block = schema.block(name).is_some();
    let help = if is_block {
        format!("`{name}` is a block, not an attribute: write `{name} {{ … }}` without `=`")
    } else {
        match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("{} attributes: {}", schema.kind, join_names(&names)),
        }
    };
    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, span, format!("{} has no attribute `{name}`", schema.kind))
        .label("unknown attribute")
        .help(help)
}

fn unknown_block_in(schema: &BlockSchema, kind: &str, span: Span) -> Diagnostic {
    let names: Vec<&str> = schema.blocks.iter().map(|b| b.block.kind).collect();
    let help = if schema.attr(kind).is_some() {
        format!("`{kind}` is an attribute, not a block: write `{kind} = …`")
    } else {
        match did_you_mean(kind, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => format!("{} takes no nested blocks", schema.kind),
            None => format!("{} blocks: {}", schema.kind, join_names(&names)),
        }
    };
    Diagnostic::error(codes::UNKNOWN_BLOCK, span, format!("{} has no `{kind}` block", schema.kind))
        .label("unknown block")
        .help(help)
}

/// Error for a block with the wrong number of labels.
pub fn label_count_error(schema: &BlockSchema, given: usize, file: FileId, b: &Block) -> Diagnostic {
    let expected = if schema.variants.is_empty() { schema.labels.len() } else { 1 };
    let example = if expected == 0 {
        format!("{} {{ … }}", schema.kind)
    } else {
        let labels: Vec<String> = schema.labels.iter().map(|l| format!("\"<{l}>\"")).collect();
        format!("{} {} {{ … }}", schema.kind, labels.join(" "))
    };
    Diagnostic::error(
        codes::LABELS,
        header(file, b),
        format!("`{}` block takes {expected} label(s), got {given}", schema.kind),
    )
    .label("wrong number of labels")
    .help(format!("write it as `{example}`"))
}

fn join_names(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn suggest_choice(given: &str, choices: &[&str]) -> String {
    match did_you_mean(given, choices.iter().copied()) {
        Some(s) => format!("did you mean \"{s}\"? (one of {})", join_quoted(choices)),
        None => format!("use one of {}", join_quoted(choices)),
    }
}

fn join_quoted(choices: &[&str]) -> String {
    choices.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

/// Checks a value against a type (and choices), pointing into list elements where it can.
// The error is the diagnostic itself; it is made once per bad attribute, so its size is moot.
#[allow(clippy::result_large_err)]
fn check_value(attr: &Attr, ty: Ty, schema: Option<&AttrSchema>, name: &str) -> Result<(), Diagnostic> {
    check_ty(&attr.value, ty, attr.span, &attr.items, name)?;
    if let (Some(s), Value::String(v)) = (schema, &attr.value) {
        if !s.choices.is_empty() && !s.choices.contains(&v.as_str()) {
            return Err(Diagnostic::error(
                codes::INVALID_CHOICE,
                attr.span,
                format!("`{name}` must be one of {}, got \"{v}\"", join_quoted(s.choices)),
            )
            .label("not an allowed value")
            .help(suggest_choice(v, s.choices)));
        }
    }
    Ok(())
}

fn type_error(name: &str, ty: Ty, value: &Value, span: Span) -> Diagnostic {
    let help = match (ty, value) {
        (Ty::Ref(kinds), Value::String(s)) => {
            format!("references are written without quotes: `{}.{s}`", kinds[0])
        }
        (Ty::Column, Value::String(s)) => format!("write the column as a reference: `source.<name>.columns.{s}`"),
        (Ty::Number | Ty::Integer | Ty::PositiveInteger | Ty::NonNegative, Value::String(s)) => {
            format!("numbers are written without quotes: `{name} = {s}`")
        }
        (Ty::Bool, Value::String(s)) => format!("bools are written without quotes: `{name} = {s}`"),
        (Ty::List(_), v) if !matches!(v, Value::List(_)) => format!("wrap it in a list: `{name} = [{}]`", value),
        (Ty::Ref(_) | Ty::Column, Value::List(items)) if items.iter().any(|i| matches!(i, Value::Ref(_))) => {
            "that resource has `count`: pick one instance, e.g. `[0]` after its name".to_string()
        }
        (Ty::Ref(_) | Ty::Column, Value::Object(m)) if m.values().any(|i| matches!(i, Value::Ref(_))) => {
            "that resource has `for_each`: pick one instance, e.g. `[\"key\"]` after its name".to_string()
        }
        _ => format!("`{name}` takes a {}", ty.describe()),
    };
    Diagnostic::error(
        codes::TYPE_MISMATCH,
        span,
        format!("`{name}` must be a {}, got {}", ty.describe(), describe_value(value)),
    )
    .label(format!("this is {}", describe_value(value)))
    .help(help)
}

/// "a" or "an" before a block kind.
pub fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Ref(r) => format!("a reference to {}", r.address),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a bool".into(),
        Value::List(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        Value::Null => "null".into(),
    }
}

fn unit_error(code: &'static str, e: units::UnitError, span: Span) -> Diagnostic {
    Diagnostic::error(code, span, e.message).label("invalid value").help(e.help)
}

fn range_error(name: &str, what: &str, v: f64, span: Span) -> Diagnostic {
    Diagnostic::error(codes::OUT_OF_RANGE, span, format!("`{name}` must be {what}, got {}", format_number(v)))
        .label("out of range")
        .help(format!("set `{name}` to {what}"))
}

#[allow(clippy::result_large_err)]
fn check_ty(value: &Value, ty: Ty, span: Span, items: &[Span], name: &str) -> Result<(), Diagnostic> {
    match (ty, value) {
        (Ty::Any, _) => Ok(()),
        (Ty::String, Value::String(_)) => Ok(()),
        (Ty::Number, Value::Number(_)) => Ok(()),
        (Ty::Integer, Value::Number(n)) if n.fract() == 0.0 => Ok(()),
        (Ty::Integer, Value::Number(n)) => Err(range_error(name, "a whole number", *n, span)),
        (Ty::PositiveInteger, Value::Number(n)) if n.fract() == 0.0 && *n >= 1.0 => Ok(()),
        (Ty::PositiveInteger, Value::Number(n)) => Err(range_error(name, "a whole number ≥ 1", *n, span)),
        (Ty::NonNegative, Value::Number(n)) if *n >= 0.0 => Ok(()),
        (Ty::NonNegative, Value::Number(n)) => Err(range_error(name, "≥ 0", *n, span)),
        (Ty::Bool, Value::Bool(_)) => Ok(()),
        (Ty::Duration, Value::String(s)) => {
            units::Duration::parse(s).map(|_| ()).map_err(|e| unit_error(codes::INVALID_DURATION, e, span))
        }
        (Ty::Memory, Value::String(s)) => {
            units::Memory::parse(s).map(|_| ()).map_err(|e| unit_error(codes::INVALID_MEMORY, e, span))
        }
        (Ty::Cron, Value::String(s)) => {
            units::Cron::parse(s).map(|_| ()).map_err(|e| unit_error(codes::INVALID_CRON, e, span))
        }
        (Ty::Percentage, v @ (Value::String(_) | Value::Number(_))) => {
            units::Percentage::from_value(v).map(|_| ()).map_err(|e| unit_error(codes::INVALID_PERCENTAGE, e, span))
        }
        (Ty::Probability, Value::Number(n)) => {
            units::probability(*n).map(|_| ()).map_err(|e| unit_error(codes::INVALID_PROBABILITY, e, span))
        }
        (Ty::OpenFraction, Value::Number(n)) => {
            units::open_fraction(*n).map(|_| ()).map_err(|e| unit_error(codes::INVALID_PROBABILITY, e, span))
        }
        (Ty::Ref(kinds), Value::Ref(r)) => {
            if !kinds.contains(&r.address.kind.as_str()) {
                let expected = kinds.join(" or ");
                let (a_expected, a_kind) = (article(kinds[0]), article(&r.address.kind));
                return Err(Diagnostic::error(
                    codes::WRONG_KIND,
                    r.span,
                    format!(
                        "`{name}` must reference {a_expected} {expected}, but `{}` is {a_kind} {}",
                        r.address, r.address.kind
                    ),
                )
                .label(format!("{a_kind} {}, not {a_expected} {expected}", r.address.kind))
                .help(format!("reference {a_expected} {expected}: `{}.<name>`", kinds[0])));
            }
            if !r.path.is_empty() {
                return Err(Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    r.span,
                    format!("`{name}` must reference the {} itself, not `{r}`", r.address.kind),
                )
                .label("an attribute of it")
                .help(format!("write `{}`", r.address)));
            }
            Ok(())
        }
        (Ty::Column, Value::Ref(r)) => {
            if r.address.kind != "source" || r.path.len() != 2 || r.path[0] != "columns" {
                return Err(Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    r.span,
                    format!("`{name}` must be a source column, got `{r}`"),
                )
                .label("not a column")
                .help("write `source.<name>.columns.<column>`"));
            }
            Ok(())
        }
        (Ty::List(inner), Value::List(vs)) => {
            for (i, v) in vs.iter().enumerate() {
                check_ty(v, *inner, items.get(i).copied().unwrap_or(span), &[], name)?;
            }
            Ok(())
        }
        (Ty::Map(inner), Value::Object(m)) => {
            for v in m.values() {
                check_ty(v, *inner, span, &[], name)?;
            }
            Ok(())
        }
        (ty, v) => Err(type_error(name, ty, v, span)),
    }
}

fn report<R: Resolver + ?Sized>(ev: &mut Evaluator<'_, R>, errors: &mut bool, d: Diagnostic) {
    *errors = true;
    ev.push_diag(d);
}
