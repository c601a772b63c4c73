//! Name resolution for one scope: what `var.x`, `local.y`, `module.m.out`, `path.module` and
//! resource addresses (`source.transactions`, `endpoint.api[0].url`) mean while evaluating an
//! expression of that scope. In: a root name and its traversal steps. Out: a value (references
//! stay [`Reference`]s) or a reported diagnostic.

use super::{node, Instances, Lowerer, Repetition};
use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::eval::{EvalResult, Op, Reported, Resolver};
use crate::schema;
use crate::source::Span;
use crate::suggest::did_you_mean;
use crate::value::{Address, InstanceKey, Reference, Value};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// Resolves names for one scope.
pub(super) struct ScopeResolver<'a> {
    pub(super) low: &'a mut Lowerer,
    pub(super) scope: usize,
}

impl ScopeResolver<'_> {
    fn attr_op<'o>(&mut self, root: &str, ops: &'o [Op], span: Span) -> Result<(&'o str, Span), Reported> {
        match ops.first() {
            Some(Op::Attr(a, s)) => Ok((a.as_str(), *s)),
            _ => {
                self.low.diags.push(
                    Diagnostic::error(
                        codes::UNSUPPORTED_EXPRESSION,
                        span,
                        format!("`{root}` must be followed by `.name`"),
                    )
                    .help(format!("write `{root}.<name>`")),
                );
                Err(Reported)
            }
        }
    }
}

impl Resolver for ScopeResolver<'_> {
    fn diags(&mut self) -> &mut Diagnostics {
        &mut self.low.diags
    }

    fn base_dir(&self) -> &Path {
        &self.low.scopes[self.scope].dir
    }

    fn known_roots(&self) -> Vec<String> {
        let mut roots: Vec<String> = ["var", "local", "module", "path"].iter().map(|s| s.to_string()).collect();
        roots.extend(schema::resource_kinds().map(str::to_string));
        roots
    }

    fn resolve(&mut self, name: &str, name_span: Span, ops: &[Op]) -> Result<Option<(Value, usize)>, Reported> {
        let scope = self.scope;
        match name {
            "var" => {
                let (var, span) = self.attr_op("var", ops, name_span)?;
                let s = &mut self.low.scopes[scope];
                match s.vars.get_mut(var) {
                    Some(v) => {
                        if !s.in_validation {
                            v.used = true;
                        }
                        match &v.value {
                            Some(val) => Ok(Some((val.clone(), 1))),
                            None => Err(Reported), // its own problem was reported
                        }
                    }
                    None => {
                        let names: Vec<String> = s.vars.keys().cloned().collect();
                        self.low.diags.push(
                            Diagnostic::error(
                                codes::UNKNOWN_VARIABLE,
                                name_span.to(span),
                                format!("unknown variable `{var}`"),
                            )
                            .label("not declared")
                            .help(
                                match did_you_mean(var, names.iter().map(String::as_str)) {
                                    Some(s) => format!("did you mean `var.{s}`?"),
                                    None => format!("declare it: `variable \"{var}\" {{ type = … }}`"),
                                },
                            ),
                        );
                        Err(Reported)
                    }
                }
            }
            "local" => {
                let (local, span) = self.attr_op("local", ops, name_span)?;
                let local = local.to_string();
                self.low.local_value(scope, &local, name_span.to(span)).map(|v| Some((v, 1)))
            }
            "path" => {
                let (what, span) = self.attr_op("path", ops, name_span)?;
                let s = &self.low.scopes[scope];
                let dir = match what {
                    "module" => s.dir.clone(),
                    "root" => self.low.scopes[0].dir.clone(),
                    _ => {
                        self.low.diags.push(
                            Diagnostic::error(codes::UNKNOWN_NAME, span, format!("unknown `path.{what}`"))
                                .help("use `path.module` or `path.root`"),
                        );
                        return Err(Reported);
                    }
                };
                Ok(Some((Value::String(dir.to_string_lossy().into_owned()), 1)))
            }
            "module" => {
                let (m, span) = self.attr_op("module", ops, name_span)?;
                let m = m.to_string();
                let instances = self.low.module_instances(scope, &m, name_span.to(span))?;
                let repeated = !matches!(instances.as_slice(), [(None, _)]);
                let (chosen, used) = if repeated {
                    match ops.get(1) {
                        Some(Op::Index(k, s)) => {
                            let found = instances.iter().find(|(key, _)| key_matches(key.as_ref(), k));
                            match found {
                                Some((_, child)) => (vec![*child], 2),
                                None => {
                                    self.low.diags.push(
                                        Diagnostic::error(
                                            codes::INVALID_INDEX,
                                            *s,
                                            format!("module `{m}` has no instance {k}"),
                                        )
                                        .help(format!("instances: {}", instance_list(&instances))),
                                    );
                                    return Err(Reported);
                                }
                            }
                        }
                        _ => {
                            // All instances: a list (count) or map (for_each) of output objects.
                            let mut list = Vec::new();
                            let mut map = IndexMap::new();
                            for (key, child) in &instances {
                                let obj = self.all_outputs(*child)?;
                                match key {
                                    Some(InstanceKey::Key(k)) => {
                                        map.insert(k.clone(), obj);
                                    }
                                    _ => list.push(obj),
                                }
                            }
                            let v = if map.is_empty() { Value::List(list) } else { Value::Object(map) };
                            return Ok(Some((v, 1)));
                        }
                    }
                } else {
                    (vec![instances[0].1], 1)
                };
                let child = chosen[0];
                match ops.get(used) {
                    Some(Op::Attr(out, s)) => {
                        if !self.low.scopes[child].outputs.contains_key(out.as_str()) {
                            let names: Vec<String> = self.low.scopes[child].outputs.keys().cloned().collect();
                            self.low.diags.push(
                                Diagnostic::error(
                                    codes::MODULE_UNKNOWN_OUTPUT,
                                    *s,
                                    format!("module `{m}` has no output `{out}`"),
                                )
                                .label("not an output of the module")
                                .help(
                                    match did_you_mean(out, names.iter().map(String::as_str)) {
                                        Some(s) => format!("did you mean `{s}`?"),
                                        None => format!(
                                            "its outputs: {}",
                                            if names.is_empty() { "none".into() } else { names.join(", ") }
                                        ),
                                    },
                                ),
                            );
                            return Err(Reported);
                        }
                        let v = self.low.output_value(child, out)?;
                        Ok(Some((v, used + 1)))
                    }
                    _ => Ok(Some((self.all_outputs(child)?, used))),
                }
            }
            kind if schema::resource_kinds().any(|k| k == kind) => {
                let (rname, span) = self.attr_op(kind, ops, name_span)?;
                let key = (kind.to_string(), rname.to_string());
                let s = &self.low.scopes[scope];
                if !s.resources.contains_key(&key) {
                    let same_kind: Vec<&str> =
                        s.resources.keys().filter(|(k, _)| k == kind).map(|(_, n)| n.as_str()).collect();
                    let other_kind: Option<&str> =
                        s.resources.keys().find(|(k, n)| n == rname && k != kind).map(|(k, _)| k.as_str());
                    let help = match (did_you_mean(rname, same_kind.iter().copied()), other_kind) {
                        (Some(s), _) => format!("did you mean `{kind}.{s}`?"),
                        (None, Some(k)) => {
                            format!("`{rname}` is {} {k}: did you mean `{k}.{rname}`?", node::article(k))
                        }
                        (None, None) if same_kind.is_empty() => format!("no {kind} is declared in this configuration"),
                        (None, None) => format!("declared {kind}s: {}", same_kind.join(", ")),
                    };
                    let where_ = if s.is_root { String::new() } else { " in this module".to_string() };
                    self.low.diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN_REFERENCE,
                            name_span.to(span),
                            format!("reference to undeclared {kind} `{rname}`{where_}"),
                        )
                        .label("no such resource")
                        .help(help),
                    );
                    return Err(Reported);
                }
                let rname = rname.to_string();
                let rep = self.low.resource_repetition(scope, kind, &rname)?;
                let module = self.low.scopes[scope].module_path.clone();
                let mk = |key: Option<InstanceKey>, path: Vec<String>, span: Span| {
                    Value::Ref(Box::new(Reference {
                        address: Address { module: module.clone(), kind: kind.to_string(), name: rname.clone(), key },
                        path,
                        span,
                    }))
                };
                let (key, mut used) = match &rep {
                    Repetition::Single => (None, 1),
                    _ => match ops.get(1) {
                        Some(Op::Index(k, s)) => {
                            let instances = rep.instances();
                            match instances.iter().find(|(key, _)| key_matches(key.as_ref(), k)) {
                                Some((key, _)) => (key.clone(), 2),
                                None => {
                                    let list: Vec<String> = instances
                                        .iter()
                                        .filter_map(|(k, _)| k.as_ref().map(|k| k.to_string()))
                                        .collect();
                                    self.low.diags.push(
                                        Diagnostic::error(
                                            codes::INVALID_INDEX,
                                            *s,
                                            format!("{kind} `{rname}` has no instance {k}"),
                                        )
                                        .help(format!(
                                            "instances: {}",
                                            if list.is_empty() { "none".into() } else { list.join(", ") }
                                        )),
                                    );
                                    return Err(Reported);
                                }
                            }
                        }
                        _ => {
                            let whole = name_span.to(span);
                            let v = match &rep {
                                Repetition::Count(n) => Value::List(
                                    (0..*n).map(|i| mk(Some(InstanceKey::Index(i)), vec![], whole)).collect(),
                                ),
                                Repetition::ForEach(m) => Value::Object(
                                    m.keys()
                                        .map(|k| (k.clone(), mk(Some(InstanceKey::Key(k.clone())), vec![], whole)))
                                        .collect(),
                                ),
                                Repetition::Single => Value::Null,
                            };
                            return Ok(Some((v, 1)));
                        }
                    },
                };
                let mut path = Vec::new();
                let mut end = ops.get(used - 1).map_or(span, Op::span);
                while let Some(op) = ops.get(used) {
                    match op {
                        Op::Attr(a, s) => {
                            path.push(a.clone());
                            end = *s;
                        }
                        Op::Index(Value::String(a), s) => {
                            path.push(a.clone());
                            end = *s;
                        }
                        _ => break,
                    }
                    used += 1;
                }
                Ok(Some((mk(key, path, name_span.to(end)), used)))
            }
            "each" | "count" => {
                let help = if name == "each" {
                    "`each` is only available in blocks with `for_each`"
                } else {
                    "`count.index` is only available in blocks with `count`"
                };
                self.low.diags.push(
                    Diagnostic::error(codes::UNKNOWN_NAME, name_span, format!("`{name}` is not available here"))
                        .label("not in a repeated block")
                        .help(help),
                );
                Err(Reported)
            }
            _ => Ok(None),
        }
    }
}

impl ScopeResolver<'_> {
    fn all_outputs(&mut self, child: usize) -> EvalResult {
        let names: Vec<String> = self.low.scopes[child].outputs.keys().cloned().collect();
        let mut m = IndexMap::new();
        for n in names {
            let v = self.low.output_value(child, &n)?;
            m.insert(n, v);
        }
        Ok(Value::Object(m))
    }
}

fn key_matches(key: Option<&InstanceKey>, v: &Value) -> bool {
    match (key, v) {
        (Some(InstanceKey::Index(i)), Value::Number(n)) => *n == *i as f64,
        (Some(InstanceKey::Key(k)), Value::String(s)) => k == s,
        _ => false,
    }
}

fn instance_list(instances: &Instances) -> String {
    instances.iter().filter_map(|(k, _)| k.as_ref().map(|k| k.to_string())).collect::<Vec<_>>().join(", ")
}

/// Resolver for variable defaults, which may not refer to anything.
pub(super) struct NoRefs<'a> {
    pub(super) diags: &'a mut Diagnostics,
    pub(super) dir: PathBuf,
}

impl Resolver for NoRefs<'_> {
    fn resolve(&mut self, name: &str, name_span: Span, _ops: &[Op]) -> Result<Option<(Value, usize)>, Reported> {
        self.diags.push(
            Diagnostic::error(
                codes::UNSUPPORTED_EXPRESSION,
                name_span,
                format!("a variable default cannot refer to `{name}`"),
            )
            .label("reference in a default")
            .help("defaults must be constant; compute derived values in `locals`"),
        );
        Err(Reported)
    }
    fn diags(&mut self) -> &mut Diagnostics {
        self.diags
    }
    fn base_dir(&self) -> &Path {
        &self.dir
    }
    fn known_roots(&self) -> Vec<String> {
        Vec::new()
    }
}
