//! Expression evaluation: hcl-edit expressions in, [`Value`]s out. Names that are not local
//! bindings (`var.x`, `local.y`, `module.m.out`, `source.transactions`) are handed to a
//! [`Resolver`], which the lowering stage implements; errors are pushed as diagnostics and
//! surface here only as [`Reported`], so one bad expression never hides the next.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::functions::{self, FunctionContext};
use crate::source::{FileId, Span};
use crate::suggest::did_you_mean;
use crate::value::{format_number, Value};
use hcl_edit::expr::{BinaryOperator, Expression, ForExpr, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Directive, Element, Template};
use indexmap::IndexMap;
use std::path::Path;

/// An error that has already been reported as a diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported;

/// Result of evaluation.
pub type EvalResult = Result<Value, Reported>;

/// One step of a traversal after its root name, with index expressions already evaluated.
#[derive(Debug, Clone)]
pub enum Op {
    /// `.name`
    Attr(String, Span),
    /// `[value]`
    Index(Value, Span),
    /// `[*]` or `.*`
    Splat(Span),
}

impl Op {
    /// Where the step was written.
    pub fn span(&self) -> Span {
        match self {
            Op::Attr(_, s) | Op::Index(_, s) | Op::Splat(s) => *s,
        }
    }
}

/// What root names that are not local bindings mean.
pub trait Resolver {
    /// Resolves `name` followed by `ops`. Returns the value and how many ops it consumed
    /// (the evaluator applies the rest), `Ok(None)` if the name means nothing here (the
    /// evaluator reports it), or `Err` if it reported a problem itself.
    fn resolve(&mut self, name: &str, name_span: Span, ops: &[Op]) -> Result<Option<(Value, usize)>, Reported>;
    /// Where diagnostics go.
    fn diags(&mut self) -> &mut Diagnostics;
    /// Directory for `file()` and `path.module`.
    fn base_dir(&self) -> &Path;
    /// Root names the resolver knows, for "did you mean".
    fn known_roots(&self) -> Vec<String>;
}

/// Evaluates expressions of one file against a resolver and local bindings.
pub struct Evaluator<'r, R: Resolver + ?Sized> {
    resolver: &'r mut R,
    file: FileId,
    bindings: Vec<(String, Value)>,
}

/// The span of a syntax node in `file` (empty at 0 if the parser gave none).
pub fn span_of(file: FileId, node: &impl hcl_edit::Span) -> Span {
    node.span().map_or(Span::new(file, 0..0), |r| Span::new(file, r))
}

impl<'r, R: Resolver + ?Sized> Evaluator<'r, R> {
    /// An evaluator for expressions of `file`.
    pub fn new(resolver: &'r mut R, file: FileId) -> Self {
        Evaluator { resolver, file, bindings: Vec::new() }
    }

    /// Adds a binding (`each`, `count`, a `for` variable) visible to later evaluations.
    pub fn bind(&mut self, name: impl Into<String>, value: Value) {
        self.bindings.push((name.into(), value));
    }

    fn span(&self, node: &impl hcl_edit::Span) -> Span {
        span_of(self.file, node)
    }

    fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        let _ = self;
        Diagnostic::error(code, span, message)
    }

    fn report(&mut self, d: Diagnostic) -> Reported {
        self.push_diag(d)
    }

    /// Pushes a diagnostic found while evaluating (e.g. by a schema check).
    pub fn push_diag(&mut self, d: Diagnostic) -> Reported {
        self.resolver.diags().push(d);
        Reported
    }

    /// The resolver.
    pub fn resolver(&mut self) -> &mut R {
        self.resolver
    }

    /// Evaluates an expression.
    pub fn eval(&mut self, expr: &Expression) -> EvalResult {
        match expr {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::Number(n) => {
                let n = n.value().as_f64().ok_or(Reported);
                match n {
                    Ok(v) if v.is_finite() => Ok(Value::Number(v)),
                    _ => {
                        let d = self.error(codes::OUT_OF_RANGE, self.span(expr), "number is too large");
                        Err(self.report(d))
                    }
                }
            }
            Expression::String(s) => Ok(Value::String(s.value().clone())),
            Expression::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                let mut failed = false;
                for e in a.iter() {
                    match self.eval(e) {
                        Ok(v) => out.push(v),
                        Err(_) => failed = true,
                    }
                }
                if failed {
                    Err(Reported)
                } else {
                    Ok(Value::List(out))
                }
            }
            Expression::Object(o) => {
                let mut out = IndexMap::new();
                let mut failed = false;
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => Ok(i.as_str().to_string()),
                        ObjectKey::Expression(e) => self.eval(e).and_then(|kv| self.key_string(&kv, self.span(e))),
                    };
                    match (key, self.eval(v.expr())) {
                        (Ok(k), Ok(v)) => {
                            out.insert(k, v);
                        }
                        _ => failed = true,
                    }
                }
                if failed {
                    Err(Reported)
                } else {
                    Ok(Value::Object(out))
                }
            }
            Expression::StringTemplate(t) => self.template(t),
            Expression::HeredocTemplate(h) => {
                let s = self.template(&h.template)?;
                match (h.indent(), s) {
                    (Some(indent), Value::String(s)) => Ok(Value::String(dedent(&s, indent))),
                    (_, v) => Ok(v),
                }
            }
            Expression::Parenthesis(p) => self.eval(p.inner()),
            Expression::Variable(v) => self.traversal(v.as_str(), self.span(v), &[], self.span(expr)),
            Expression::Conditional(c) => {
                let cond = self.eval(&c.cond_expr)?;
                match cond {
                    Value::Bool(true) => self.eval(&c.true_expr),
                    Value::Bool(false) => self.eval(&c.false_expr),
                    other => {
                        let d = self
                            .error(
                                codes::INVALID_OPERATION,
                                self.span(&c.cond_expr),
                                format!("condition must be a bool, got {}", other.type_name()),
                            )
                            .help("use a comparison such as `var.env == \"prod\"`");
                        Err(self.report(d))
                    }
                }
            }
            Expression::FuncCall(f) => self.call(f, self.span(expr)),
            Expression::Traversal(t) => {
                let mut ops = Vec::with_capacity(t.operators.len());
                for op in &t.operators {
                    let span = self.span(op);
                    ops.push(match op.value() {
                        TraversalOperator::GetAttr(i) => Op::Attr(i.as_str().to_string(), span),
                        TraversalOperator::Index(e) => Op::Index(self.eval(e)?, span),
                        TraversalOperator::LegacyIndex(i) => Op::Index(Value::Number(*i.value() as f64), span),
                        TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => Op::Splat(span),
                    });
                }
                match &t.expr {
                    Expression::Variable(v) => self.traversal(v.as_str(), self.span(v), &ops, self.span(expr)),
                    other => {
                        let base = self.eval(other)?;
                        self.apply_ops(base, &ops)
                    }
                }
            }
            Expression::UnaryOp(u) => {
                let v = self.eval(&u.expr)?;
                match (u.operator.value(), v) {
                    (UnaryOperator::Neg, Value::Number(n)) => Ok(Value::Number(-n)),
                    (UnaryOperator::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                    (op, v) => {
                        let d = self.error(
                            codes::INVALID_OPERATION,
                            self.span(expr),
                            format!("operator `{}` cannot be applied to {}", op.as_str(), v.type_name()),
                        );
                        Err(self.report(d))
                    }
                }
            }
            Expression::BinaryOp(b) => {
                let lhs = self.eval(&b.lhs_expr);
                let rhs = self.eval(&b.rhs_expr);
                let (lhs, rhs) = (lhs?, rhs?);
                self.binary(*b.operator.value(), lhs, rhs, self.span(expr))
            }
            Expression::ForExpr(f) => self.for_expr(f),
        }
    }

    fn key_string(&mut self, v: &Value, span: Span) -> Result<String, Reported> {
        match v.to_template_string() {
            Some(s) => Ok(s),
            None => {
                let d = self.error(
                    codes::INVALID_OPERATION,
                    span,
                    format!("object keys must be strings, got {}", v.type_name()),
                );
                Err(self.report(d))
            }
        }
    }

    fn traversal(&mut self, name: &str, name_span: Span, ops: &[Op], whole: Span) -> EvalResult {
        if let Some((_, v)) = self.bindings.iter().rev().find(|(n, _)| n == name) {
            let v = v.clone();
            return self.apply_ops(v, ops);
        }
        match self.resolver.resolve(name, name_span, ops)? {
            Some((v, used)) => self.apply_ops(v, &ops[used.min(ops.len())..]),
            None => {
                let mut known = self.resolver.known_roots();
                known.extend(self.bindings.iter().map(|(n, _)| n.clone()));
                let d = self
                    .error(codes::UNKNOWN_NAME, name_span, format!("unknown name `{name}`"))
                    .label("not defined here")
                    .help(match did_you_mean(name, known.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => bare_word_help(name, whole),
                    });
                Err(self.report(d))
            }
        }
    }

    /// Applies attribute, index and splat steps to a value.
    pub fn apply_ops(&mut self, mut value: Value, ops: &[Op]) -> EvalResult {
        for (i, op) in ops.iter().enumerate() {
            value = match (value, op) {
                (Value::Ref(mut r), Op::Attr(a, s)) => {
                    r.path.push(a.clone());
                    r.span = r.span.to(*s);
                    Value::Ref(r)
                }
                (Value::Ref(mut r), Op::Index(Value::String(a), s)) => {
                    r.path.push(a.clone());
                    r.span = r.span.to(*s);
                    Value::Ref(r)
                }
                (Value::Object(mut m), Op::Attr(a, s)) | (Value::Object(mut m), Op::Index(Value::String(a), s)) => {
                    match m.swap_remove(a) {
                        Some(v) => v,
                        None => {
                            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                            let d = self
                                .error(codes::INVALID_INDEX, *s, format!("object has no attribute or key `{a}`"))
                                .label("no such key")
                                .help(match did_you_mean(a, keys.iter().copied()) {
                                    Some(k) => format!("did you mean `{k}`?"),
                                    None => format!("available keys: {}", list_or_none(&keys)),
                                });
                            return Err(self.report(d));
                        }
                    }
                }
                (Value::List(l), Op::Index(Value::Number(n), s)) => {
                    let len = l.len();
                    if n.fract() != 0.0 || *n < 0.0 || (*n as usize) >= len {
                        let d = self.error(
                            codes::INVALID_INDEX,
                            *s,
                            format!("index {} is out of range for a list of {len} elements", format_number(*n)),
                        );
                        return Err(self.report(d));
                    }
                    l.into_iter().nth(*n as usize).unwrap_or_default()
                }
                (Value::List(l), Op::Splat(_)) => {
                    let rest = &ops[i + 1..];
                    let mut out = Vec::with_capacity(l.len());
                    for item in l {
                        out.push(self.apply_ops(item, rest)?);
                    }
                    return Ok(Value::List(out));
                }
                (v, Op::Splat(_)) => {
                    // Splat on a single value treats it as a one-element list, as HCL does.
                    let rest = &ops[i + 1..];
                    if v.is_null() {
                        return Ok(Value::List(vec![]));
                    }
                    return Ok(Value::List(vec![self.apply_ops(v, rest)?]));
                }
                (v, op) => {
                    let what = match op {
                        Op::Attr(a, _) => format!("attribute `{a}`"),
                        Op::Index(k, _) => format!("index {k}"),
                        Op::Splat(_) => "splat".into(),
                    };
                    let d = self.error(
                        codes::INVALID_INDEX,
                        op.span(),
                        format!("cannot take {what} of a {}", v.type_name()),
                    );
                    return Err(self.report(d));
                }
            };
        }
        Ok(value)
    }

    fn binary(&mut self, op: BinaryOperator, lhs: Value, rhs: Value, span: Span) -> EvalResult {
        use BinaryOperator as B;
        let result = match (op, &lhs, &rhs) {
            (B::Eq, a, b) => Some(Value::Bool(a == b)),
            (B::NotEq, a, b) => Some(Value::Bool(a != b)),
            (B::And, Value::Bool(a), Value::Bool(b)) => Some(Value::Bool(*a && *b)),
            (B::Or, Value::Bool(a), Value::Bool(b)) => Some(Value::Bool(*a || *b)),
            (_, Value::Number(a), Value::Number(b)) => {
                let (a, b) = (*a, *b);
                match op {
                    B::Plus => Some(Value::Number(a + b)),
                    B::Minus => Some(Value::Number(a - b)),
                    B::Mul => Some(Value::Number(a * b)),
                    B::Div | B::Mod if b == 0.0 => {
                        let d = self
                            .error(codes::INVALID_OPERATION, span, "division by zero")
                            .help("make sure the divisor cannot be 0");
                        return Err(self.report(d));
                    }
                    B::Div => Some(Value::Number(a / b)),
                    B::Mod => Some(Value::Number(a % b)),
                    B::Less => Some(Value::Bool(a < b)),
                    B::LessEq => Some(Value::Bool(a <= b)),
                    B::Greater => Some(Value::Bool(a > b)),
                    B::GreaterEq => Some(Value::Bool(a >= b)),
                    _ => None,
                }
            }
            _ => None,
        };
        match result {
            Some(Value::Number(n)) if !n.is_finite() => {
                let d = self.error(codes::INVALID_OPERATION, span, "arithmetic overflow");
                Err(self.report(d))
            }
            Some(v) => Ok(v),
            None => {
                let help = if op == B::Plus && (lhs.as_str().is_some() || rhs.as_str().is_some()) {
                    Some("join strings with a template: \"${a}${b}\"".to_string())
                } else {
                    None
                };
                let d = self
                    .error(
                        codes::INVALID_OPERATION,
                        span,
                        format!(
                            "operator `{}` cannot be applied to {} and {}",
                            op.as_str(),
                            lhs.type_name(),
                            rhs.type_name()
                        ),
                    )
                    .label("operands of the wrong type")
                    .maybe_help(help);
                Err(self.report(d))
            }
        }
    }

    fn call(&mut self, f: &hcl_edit::expr::FuncCall, span: Span) -> EvalResult {
        let name = f.name.name.as_str();
        let name_span = self.span(&f.name.name);
        if f.name.is_namespaced() || !functions::FUNCTIONS.iter().any(|d| d.name == name) {
            let d = self
                .error(codes::UNKNOWN_FUNCTION, name_span, format!("unknown function `{name}`"))
                .label("no such function")
                .help(match did_you_mean(name, functions::FUNCTIONS.iter().map(|d| d.name)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "see the function list in docs/language.md".into(),
                });
            return Err(self.report(d));
        }
        let mut args = Vec::new();
        let mut spans = Vec::new();
        let mut failed = false;
        let n = f.args.len();
        for (i, a) in f.args.iter().enumerate() {
            let s = self.span(a);
            match self.eval(a) {
                // `f(list...)` expands the final argument.
                Ok(Value::List(items)) if i + 1 == n && f.args.expand_final() => {
                    for it in items {
                        args.push(it);
                        spans.push(s);
                    }
                }
                Ok(v) => {
                    args.push(v);
                    spans.push(s);
                }
                Err(_) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        let base = self.resolver.base_dir().to_path_buf();
        match functions::call(name, &args, &FunctionContext { base_dir: &base }) {
            Ok(v) => Ok(v),
            Err(e) => {
                let at = e.arg.and_then(|i| spans.get(i).copied()).unwrap_or(span);
                // The library's messages usually name the function already.
                let message = if e.message.starts_with(&format!("{name}(")) {
                    e.message
                } else {
                    format!("{name}(): {}", e.message)
                };
                let d = self.error(codes::FUNCTION_ERROR, at, message).label("invalid argument").maybe_help(e.help);
                Err(self.report(d))
            }
        }
    }

    fn for_expr(&mut self, f: &ForExpr) -> EvalResult {
        let coll = self.eval(&f.intro.collection_expr)?;
        let items: Vec<(Value, Value)> = match coll {
            Value::List(l) => l.into_iter().enumerate().map(|(i, v)| (Value::Number(i as f64), v)).collect(),
            Value::Object(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            other => {
                let d = self.error(
                    codes::INVALID_OPERATION,
                    self.span(&f.intro.collection_expr),
                    format!("a `for` expression needs a list or object, got {}", other.type_name()),
                );
                return Err(self.report(d));
            }
        };
        let key_var = f.intro.key_var.as_ref().map(|k| k.as_str().to_string());
        let value_var = f.intro.value_var.as_str().to_string();
        let mark = self.bindings.len();
        let mut list = Vec::new();
        let mut obj: IndexMap<String, Value> = IndexMap::new();
        let mut result = Ok(());
        for (k, v) in items {
            self.bindings.truncate(mark);
            if let Some(kv) = &key_var {
                self.bindings.push((kv.clone(), k));
            }
            self.bindings.push((value_var.clone(), v));
            if let Some(c) = &f.cond {
                match self.eval(&c.expr) {
                    Ok(Value::Bool(true)) => {}
                    Ok(Value::Bool(false)) => continue,
                    Ok(other) => {
                        let d = self.error(
                            codes::INVALID_OPERATION,
                            self.span(&c.expr),
                            format!("a `for` condition must be a bool, got {}", other.type_name()),
                        );
                        result = Err(self.report(d));
                        break;
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let value = match self.eval(&f.value_expr) {
                Ok(v) => v,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            match &f.key_expr {
                None => list.push(value),
                Some(ke) => {
                    let key = match self.eval(ke).and_then(|k| self.key_string(&k, self.span(ke))) {
                        Ok(k) => k,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    };
                    if f.grouping {
                        if let Value::List(l) = obj.entry(key).or_insert_with(|| Value::List(vec![])) {
                            l.push(value);
                        }
                    } else if obj.contains_key(&key) {
                        let d = self
                            .error(
                                codes::INVALID_OPERATION,
                                self.span(ke),
                                format!("duplicate key `{key}` in `for` expression"),
                            )
                            .help("use `...` after the value to group values with the same key");
                        result = Err(self.report(d));
                        break;
                    } else {
                        obj.insert(key, value);
                    }
                }
            }
        }
        self.bindings.truncate(mark);
        result?;
        Ok(if f.key_expr.is_some() { Value::Object(obj) } else { Value::List(list) })
    }

    fn template(&mut self, t: &Template) -> EvalResult {
        // A template that is one interpolation keeps the value's type (`"${var.n}"` is a number).
        if let Some(Element::Interpolation(i)) = t.as_single_element() {
            return self.eval(&i.expr);
        }
        let mut out = String::new();
        self.template_into(t, &mut out)?;
        Ok(Value::String(out))
    }

    fn template_into(&mut self, t: &Template, out: &mut String) -> Result<(), Reported> {
        for el in t.iter() {
            match el {
                Element::Literal(l) => out.push_str(l.value()),
                Element::Interpolation(i) => {
                    let v = self.eval(&i.expr)?;
                    self.push_template_value(&v, self.span(&i.expr), out)?;
                }
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(ifd) => {
                        let c = self.eval(&ifd.if_expr.cond_expr)?;
                        match c {
                            Value::Bool(true) => self.template_into(&ifd.if_expr.template, out)?,
                            Value::Bool(false) => {
                                if let Some(e) = &ifd.else_expr {
                                    self.template_into(&e.template, out)?;
                                }
                            }
                            other => {
                                let d = self.error(
                                    codes::INVALID_OPERATION,
                                    self.span(&ifd.if_expr.cond_expr),
                                    format!("template `if` needs a bool, got {}", other.type_name()),
                                );
                                return Err(self.report(d));
                            }
                        }
                    }
                    Directive::For(ford) => {
                        let fe = &ford.for_expr;
                        let coll = self.eval(&fe.collection_expr)?;
                        let items: Vec<(Value, Value)> = match coll {
                            Value::List(l) => {
                                l.into_iter().enumerate().map(|(i, v)| (Value::Number(i as f64), v)).collect()
                            }
                            Value::Object(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
                            other => {
                                let d = self.error(
                                    codes::INVALID_OPERATION,
                                    self.span(&fe.collection_expr),
                                    format!("template `for` needs a list or object, got {}", other.type_name()),
                                );
                                return Err(self.report(d));
                            }
                        };
                        let mark = self.bindings.len();
                        for (k, v) in items {
                            self.bindings.truncate(mark);
                            if let Some(kv) = &fe.key_var {
                                self.bindings.push((kv.as_str().to_string(), k));
                            }
                            self.bindings.push((fe.value_var.as_str().to_string(), v));
                            let r = self.template_into(&fe.template, out);
                            if r.is_err() {
                                self.bindings.truncate(mark);
                                return r;
                            }
                        }
                        self.bindings.truncate(mark);
                    }
                },
            }
        }
        Ok(())
    }

    fn push_template_value(&mut self, v: &Value, span: Span, out: &mut String) -> Result<(), Reported> {
        if let Some(s) = v.to_template_string() {
            out.push_str(&s);
            return Ok(());
        }
        // An attribute of a resource (`endpoint.api.url`) is known only after apply: keep it as a
        // `${…}` placeholder that apply fills in, as Terraform's JSON syntax does.
        if let Value::Ref(r) = v {
            if !r.path.is_empty() {
                out.push_str(&format!("${{{r}}}"));
                return Ok(());
            }
        }
        let help = match v {
            Value::Ref(r) => format!(
                "`{}` is a resource, not text; interpolate one of its attributes (e.g. `${{endpoint.api.url}}`) or write its name",
                r.address
            ),
            _ => "convert it first, e.g. with jsonencode() or join()".to_string(),
        };
        let d = self
            .error(codes::INVALID_OPERATION, span, format!("cannot interpolate a {} into a string", v.type_name()))
            .label("not a string")
            .help(help);
        Err(self.report(d))
    }
}

fn list_or_none(keys: &[&str]) -> String {
    if keys.is_empty() {
        "none".into()
    } else {
        keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    }
}

// A bare word where a string was meant (`format = csv`) is the most common slip.
fn bare_word_help(name: &str, whole: Span) -> String {
    let _ = whole;
    format!("if `{name}` is meant as text, quote it: \"{name}\"")
}

// `<<-EOT` heredocs strip the common leading whitespace.
fn dedent(s: &str, indent: usize) -> String {
    s.split_inclusive('\n')
        .map(|line| {
            let strip = line.chars().take(indent).take_while(|c| *c == ' ' || *c == '\t').count();
            &line[strip..]
        })
        .collect()
}
