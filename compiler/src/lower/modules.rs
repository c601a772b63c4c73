//! Module expansion: a `module` block in, its instances out — each a new scope whose variables
//! get the block's inputs (checked against the module's declared variables), expanded once and
//! on demand so that references to module outputs work in any order and cycles are reported.

use super::{canonical, node, Instances, Lowerer, ModuleDecl, State};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::eval::{span_of, Reported};
use crate::parse;
use crate::source::Span;
use crate::suggest::did_you_mean;
use crate::value::Value;
use std::path::Path;

impl Lowerer {
    /// Expands a module block into its instances (each a scope), once.
    pub(super) fn module_instances(&mut self, scope: usize, name: &str, span: Span) -> Result<Instances, Reported> {
        let Some(decl) = self.scopes[scope].modules.get(name).cloned() else {
            let names: Vec<String> = self.scopes[scope].modules.keys().cloned().collect();
            self.diags.push(
                Diagnostic::error(codes::UNKNOWN_REFERENCE, span, format!("unknown module `{name}`"))
                    .label("no module block with this name")
                    .help(match did_you_mean(name, names.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `module.{s}`?"),
                        None => format!("declare it: `module \"{name}\" {{ source = \"…\" }}`"),
                    }),
            );
            return Err(Reported);
        };
        match decl.state {
            State::Done(i) => return Ok(i),
            State::Failed => return Err(Reported),
            State::InProgress => {
                self.diags.push(
                    Diagnostic::error(codes::EVAL_CYCLE, span, format!("module `{name}` depends on its own outputs"))
                        .with(decl.span, "module declared here")
                        .help("a module's inputs cannot use its outputs"),
                );
                return Err(Reported);
            }
            State::Pending => {}
        }
        self.scopes[scope].modules[name].state = State::InProgress;
        let r = self.expand_module(scope, name, &decl);
        self.scopes[scope].modules[name].state = match &r {
            Ok(v) => State::Done(v.clone()),
            Err(_) => State::Failed,
        };
        r
    }

    fn expand_module(&mut self, scope: usize, name: &str, decl: &ModuleDecl) -> Result<Instances, Reported> {
        let file = decl.file;
        let header = node::header(file, &decl.block);
        let Some(src_attr) = decl.block.body.get_attribute("source") else {
            self.diags.push(
                Diagnostic::error(
                    codes::MISSING_ATTRIBUTE,
                    header,
                    format!("module `{name}` is missing required attribute `source`"),
                )
                .label("needs `source`")
                .help("add `source = \"../modules/<name>\"`: the module's directory"),
            );
            return Err(Reported);
        };
        let src_span = span_of(file, &src_attr.value);
        let src = match self.eval_in(scope, file, &src_attr.value, &[])? {
            Value::String(s) => s,
            other => {
                self.diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        src_span,
                        format!("module `source` must be a string, got {}", other.type_name()),
                    )
                    .help("source = \"../modules/<name>\""),
                );
                return Err(Reported);
            }
        };
        let base = self.sources.get(file).path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Canonical, so files show as `modules/x/main.mlops.hcl`, not `examples/a/../../modules/…`.
        let canon = canonical(&base.join(&src));
        let dir = canon.clone();
        if self.scopes[scope].chain.contains(&canon) {
            self.diags.push(
                Diagnostic::error(codes::MODULE_RECURSION, src_span, format!("module `{name}` instantiates itself"))
                    .label("this directory is already being expanded")
                    .help("modules cannot include themselves, directly or through other modules"),
            );
            return Err(Reported);
        }
        let files = match self.load(&dir) {
            Ok(f) if !parse::config_files(&dir).map(|v| v.is_empty()).unwrap_or(true) => f,
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        codes::MODULE_NOT_FOUND,
                        src_span,
                        format!("module directory `{src}` has no *.mlops.hcl files"),
                    )
                    .label("cannot load this module")
                    .help(format!(
                        "`source` is relative to this file's directory; looked in {}",
                        self.display_name(&dir)
                    )),
                );
                return Err(Reported);
            }
        };
        let rep = self.repetition(scope, file, &decl.block, &format!("module `{name}`"))?;
        let mut out = Vec::new();
        let reserved = ["source", "count", "for_each", "depends_on"];
        for (key, bindings) in rep.instances() {
            let mut path = self.scopes[scope].module_path.clone();
            path.push(match &key {
                None => name.to_string(),
                Some(k) => format!("{name}{k}"),
            });
            let mut chain = self.scopes[scope].chain.clone();
            chain.push(canon.clone());
            let child = self.new_scope(dir.clone(), path, chain, false);
            self.declare(child, &files);
            for a in decl.block.body.attributes() {
                let input = a.key.as_str();
                if reserved.contains(&input) {
                    continue;
                }
                let key_span = span_of(file, &a.key);
                if !self.scopes[child].vars.contains_key(input) {
                    let names: Vec<String> = self.scopes[child].vars.keys().cloned().collect();
                    self.diags.push(
                        Diagnostic::error(
                            codes::MODULE_UNKNOWN_INPUT,
                            key_span,
                            format!("module `{name}` has no input `{input}`"),
                        )
                        .label("not a variable of the module")
                        .help(match did_you_mean(input, names.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "the module's variables: {}",
                                if names.is_empty() { "none".into() } else { names.join(", ") }
                            ),
                        }),
                    );
                    continue;
                }
                if let Ok(v) = self.eval_in(scope, file, &a.value, &bindings) {
                    self.scopes[child].vars[input].input = Some((v, Some(span_of(file, &a.value))));
                }
            }
            for b in decl.block.body.blocks() {
                self.diags.push(
                    Diagnostic::error(
                        codes::UNKNOWN_BLOCK,
                        node::header(file, b),
                        "blocks are not allowed in a module call",
                    )
                    .help("module inputs are attributes: `name = value`"),
                );
            }
            self.resolve_vars(child, Some(header));
            out.push((key, child));
        }
        Ok(out)
    }
}
