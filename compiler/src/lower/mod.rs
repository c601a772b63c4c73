//! Lowering: parsed files in, evaluated and schema-checked resources out. This stage expands
//! modules (with `count` / `for_each`), gives variables their values (root inputs, module
//! inputs or defaults) and checks them (type, `validation`), evaluates locals and outputs on
//! demand (so order in the files does not matter, and cycles are found), and turns every
//! resource instance into a [`node::Node`] checked against the schema.

mod modules;
pub mod node;
mod resolve;
pub mod types;

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::eval::{span_of, EvalResult, Evaluator, Reported};
use crate::parse::{self, ParsedFile};
use crate::schema::{self, BlockSchema};
use crate::source::{FileId, SourceMap, Span};
use crate::suggest::did_you_mean;
use crate::value::{Address, InstanceKey, Reference, Value};
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Structure};
use indexmap::IndexMap;
use node::Node;
use resolve::{NoRefs, ScopeResolver};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use types::TypeConstraint;

/// Inputs to lowering besides the files.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Values of root variables (from `-var`, `-var-file`, `MLOPS_VAR_*`).
    pub vars: IndexMap<String, Value>,
    /// File names in diagnostics are shown relative to this directory (default: as given).
    pub display_base: Option<PathBuf>,
    /// Compile for the kubernetes target whatever the configuration declares
    /// (`mlops build --target kubernetes`), with these settings on top of the declared ones.
    pub kubernetes: Option<crate::compile::KubernetesOverride>,
}

/// One instance of a resource block.
#[derive(Debug, Clone)]
pub struct ResourceInstance {
    /// Its address.
    pub address: Address,
    /// The evaluated, checked block.
    pub node: Node,
    /// Explicit `depends_on` references.
    pub depends_on: Vec<Reference>,
}

/// A root output.
#[derive(Debug, Clone)]
pub struct OutputValue {
    /// Its name.
    pub name: String,
    /// Its value (references stay references).
    pub value: Value,
    /// Never printed?
    pub sensitive: bool,
    /// Description.
    pub description: Option<String>,
    /// Where it is declared.
    pub span: Span,
}

/// A root variable with its final value.
#[derive(Debug, Clone)]
pub struct VariableValue {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
    /// Never printed?
    pub sensitive: bool,
    /// Where it is declared.
    pub span: Span,
}

/// What lowering produces.
#[derive(Debug, Clone, Default)]
pub struct Lowered {
    /// The root `mlops { }` block, if any.
    pub settings: Option<Node>,
    /// Every resource instance, modules expanded, in declaration order.
    pub resources: Vec<ResourceInstance>,
    /// Root outputs.
    pub outputs: Vec<OutputValue>,
    /// Root variables.
    pub variables: Vec<VariableValue>,
    /// The configuration's root directory.
    pub root: PathBuf,
}

/// Lowers the configuration in `dir`.
pub fn lower_dir(dir: &Path, options: &Options) -> (Lowered, SourceMap, Diagnostics) {
    let mut low = Lowerer::new(dir, options);
    let lowered = low.run(dir, options);
    (lowered, low.sources, low.diags)
}

#[derive(Debug, Clone)]
enum State<T> {
    Pending,
    InProgress,
    Done(T),
    Failed,
}

#[derive(Debug, Clone)]
struct VarDecl {
    file: FileId,
    block: Arc<Block>,
    span: Span,
    ty: TypeConstraint,
    sensitive: bool,
    input: Option<(Value, Option<Span>)>,
    value: Option<Value>,
    used: bool,
}

#[derive(Debug, Clone)]
struct LocalDecl {
    file: FileId,
    key_span: Span,
    expr: Arc<Expression>,
    state: State<Value>,
}

type Instances = Vec<(Option<InstanceKey>, usize)>;

#[derive(Debug, Clone)]
struct ModuleDecl {
    file: FileId,
    block: Arc<Block>,
    span: Span,
    state: State<Instances>,
}

#[derive(Debug, Clone)]
enum Repetition {
    Single,
    Count(usize),
    ForEach(IndexMap<String, Value>),
}

/// Names bound while evaluating one instance (`each`, `count`).
type Bindings = Vec<(String, Value)>;

impl Repetition {
    fn instances(&self) -> Vec<(Option<InstanceKey>, Bindings)> {
        match self {
            Repetition::Single => vec![(None, vec![])],
            Repetition::Count(n) => (0..*n)
                .map(|i| {
                    let count = Value::Object([("index".to_string(), Value::Number(i as f64))].into_iter().collect());
                    (Some(InstanceKey::Index(i)), vec![("count".to_string(), count)])
                })
                .collect(),
            Repetition::ForEach(m) => m
                .iter()
                .map(|(k, v)| {
                    let each = Value::Object(
                        [("key".to_string(), Value::String(k.clone())), ("value".to_string(), v.clone())]
                            .into_iter()
                            .collect(),
                    );
                    (Some(InstanceKey::Key(k.clone())), vec![("each".to_string(), each)])
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct ResourceDecl {
    file: FileId,
    block: Arc<Block>,
    schema: &'static BlockSchema,
    span: Span,
    repetition: State<Repetition>,
}

#[derive(Debug, Clone)]
struct OutputDecl {
    file: FileId,
    block: Arc<Block>,
    span: Span,
    state: State<Value>,
}

#[derive(Debug, Clone, Default)]
struct Scope {
    dir: PathBuf,
    module_path: Vec<String>,
    chain: Vec<PathBuf>,
    is_root: bool,
    vars: IndexMap<String, VarDecl>,
    locals: IndexMap<String, LocalDecl>,
    modules: IndexMap<String, ModuleDecl>,
    resources: IndexMap<(String, String), ResourceDecl>,
    outputs: IndexMap<String, OutputDecl>,
    in_validation: bool,
}

/// The lowering driver (holds all scopes: the root and every module instance).
pub struct Lowerer {
    /// Every file read.
    pub sources: SourceMap,
    /// Everything found.
    pub diags: Diagnostics,
    scopes: Vec<Scope>,
    module_cache: HashMap<PathBuf, Vec<ParsedFile>>,
    display_base: Option<PathBuf>,
    resources: Vec<ResourceInstance>,
    settings: Option<Node>,
    settings_block: Option<(FileId, Arc<Block>)>,
}

impl Lowerer {
    fn new(_dir: &Path, options: &Options) -> Lowerer {
        Lowerer {
            sources: SourceMap::new(),
            diags: Diagnostics::new(),
            scopes: Vec::new(),
            module_cache: HashMap::new(),
            display_base: options.display_base.clone(),
            resources: Vec::new(),
            settings: None,
            settings_block: None,
        }
    }

    fn display_name(&self, path: &Path) -> String {
        let shown = match &self.display_base {
            Some(base) => path.strip_prefix(base).unwrap_or(path),
            None => path,
        };
        shown.to_string_lossy().replace('\\', "/")
    }

    fn load(&mut self, dir: &Path) -> Result<Vec<ParsedFile>, std::io::Error> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if let Some(files) = self.module_cache.get(&key) {
            return Ok(files.clone());
        }
        let base = self.display_base.clone();
        let name_of = move |p: &Path| {
            let shown = match &base {
                Some(b) => p.strip_prefix(b).unwrap_or(p),
                None => p,
            };
            shown.to_string_lossy().replace('\\', "/")
        };
        let files = parse::load_dir(dir, &name_of, &mut self.sources, &mut self.diags)?;
        self.module_cache.insert(key, files.clone());
        Ok(files)
    }

    fn run(&mut self, dir: &Path, options: &Options) -> Lowered {
        let files = match self.load(dir) {
            Ok(f) => f,
            Err(e) => {
                let id = self.sources.add(self.display_name(dir), dir, "");
                self.diags.push(
                    Diagnostic::error(codes::IO, Span::new(id, 0..0), format!("cannot read configuration: {e}"))
                        .help("pass the directory that holds the *.mlops.hcl files"),
                );
                return Lowered { root: dir.to_path_buf(), ..Lowered::default() };
            }
        };
        if parse::config_files(dir).map(|f| f.is_empty()).unwrap_or(true) {
            let id = self.sources.add(self.display_name(dir), dir, "");
            self.diags.push(
                Diagnostic::error(
                    codes::NO_FILES,
                    Span::new(id, 0..0),
                    format!("no *.mlops.hcl files in {}", self.display_name(dir)),
                )
                .help(
                    "configuration files end in .mlops.hcl; run `mlops validate DIR` on the directory that holds them",
                ),
            );
            return Lowered { root: dir.to_path_buf(), ..Lowered::default() };
        }
        let root = self.new_scope(dir.to_path_buf(), Vec::new(), vec![canonical(dir)], true);
        self.declare(root, &files);
        // Root inputs: unknown names are an error, like Terraform's -var for an undeclared variable.
        for (name, value) in &options.vars {
            match self.scopes[root].vars.get_mut(name) {
                Some(v) => v.input = Some((value.clone(), None)),
                None => {
                    let names: Vec<String> = self.scopes[root].vars.keys().cloned().collect();
                    let id = self.sources.add("<command line>", "<command line>", name.clone());
                    self.diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN_VARIABLE,
                            Span::new(id, 0..name.len()),
                            format!("a value was given for undeclared variable `{name}`"),
                        )
                        .help(match did_you_mean(name, names.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("declare it with `variable \"{name}\" {{ }}` or remove the value"),
                        }),
                    );
                }
            }
        }
        self.resolve_vars(root, None);
        self.finish(root);
        if let Some((file, block)) = self.settings_block.clone() {
            let mut r = ScopeResolver { low: self, scope: root };
            let mut ev = Evaluator::new(&mut r, file);
            let node =
                Self::build_node(&mut ev, file, &block, schema::top_level("mlops").expect("mlops schema"), false);
            self.settings = Some(node);
        }
        let mut outputs = Vec::new();
        let names: Vec<String> = self.scopes[root].outputs.keys().cloned().collect();
        for name in names {
            let decl = self.scopes[root].outputs[&name].clone();
            if let Ok(value) = self.output_value(root, &name) {
                let sensitive = decl
                    .block
                    .body
                    .get_attribute("sensitive")
                    .is_some_and(|a| matches!(&a.value, Expression::Bool(b) if *b.value()));
                let description = decl.block.body.get_attribute("description").and_then(|a| match &a.value {
                    Expression::String(s) => Some(s.value().clone()),
                    _ => None,
                });
                outputs.push(OutputValue { name, value, sensitive, description, span: decl.span });
            }
        }
        self.warn_unused_variables(root);
        let variables = self.scopes[root]
            .vars
            .iter()
            .map(|(name, v)| VariableValue {
                name: name.clone(),
                value: v.value.clone().unwrap_or_default(),
                sensitive: v.sensitive,
                span: v.span,
            })
            .collect();
        Lowered {
            settings: self.settings.take(),
            resources: std::mem::take(&mut self.resources),
            outputs,
            variables,
            root: dir.to_path_buf(),
        }
    }

    fn new_scope(&mut self, dir: PathBuf, module_path: Vec<String>, chain: Vec<PathBuf>, is_root: bool) -> usize {
        self.scopes.push(Scope { dir, module_path, chain, is_root, ..Scope::default() });
        self.scopes.len() - 1
    }

    /// Collects the declarations of a scope's files, reporting unknown and duplicate blocks.
    fn declare(&mut self, scope: usize, files: &[ParsedFile]) {
        let mut first_mlops: Option<Span> = None;
        for pf in files {
            let file = pf.file;
            for structure in pf.body.iter() {
                let block = match structure {
                    Structure::Attribute(a) => {
                        let span = span_of(file, &a.key);
                        self.diags.push(
                            Diagnostic::error(
                                codes::UNKNOWN_ATTRIBUTE,
                                span,
                                format!("attribute `{}` at the top level", a.key.as_str()),
                            )
                            .label("not inside a block")
                            .help("top-level values go in a `locals { … }` block or a `variable`"),
                        );
                        continue;
                    }
                    Structure::Block(b) => b,
                };
                let kind = block.ident.as_str();
                let header = node::header(file, block);
                let Some(schema) = schema::top_level(kind) else {
                    let kinds = schema::TOP_LEVEL.iter().map(|b| b.kind);
                    self.diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN_BLOCK,
                            span_of(file, &block.ident),
                            format!("unknown block kind `{kind}`"),
                        )
                        .label("not a block kind of the language")
                        .help(match did_you_mean(kind, kinds) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "block kinds: {}",
                                schema::TOP_LEVEL.iter().map(|b| b.kind).collect::<Vec<_>>().join(", ")
                            ),
                        }),
                    );
                    continue;
                };
                if block.labels.len() != schema.labels.len() {
                    self.diags.push(node::label_count_error(schema, block.labels.len(), file, block));
                    continue;
                }
                let name = block.labels.first().map(|l| l.as_str().to_string()).unwrap_or_default();
                let name_span = block.labels.first().map_or(header, |l| span_of(file, l));
                if !name.is_empty() && !valid_name(&name) {
                    self.diags.push(
                        Diagnostic::error(codes::INVALID_NAME, name_span, format!("`{name}` is not a valid name"))
                            .label("invalid name")
                            .help("names start with a letter or `_` and contain only letters, digits, `_` and `-`"),
                    );
                    continue;
                }
                let arc = Arc::new(block.clone());
                let s = &mut self.scopes[scope];
                let dup = |prev: Span, what: String| {
                    Diagnostic::error(codes::DUPLICATE_NAME, name_span, format!("{what} is defined twice"))
                        .label("defined again here")
                        .with(prev, "first defined here")
                        .help("names must be unique; rename or remove one of them")
                };
                match kind {
                    "mlops" => {
                        if !s.is_root {
                            self.diags.push(
                                Diagnostic::error(codes::UNKNOWN_BLOCK, header, "`mlops` block inside a module")
                                    .label("only allowed in the root configuration")
                                    .help("move backend and target settings to the root configuration"),
                            );
                        } else if let Some(prev) = first_mlops {
                            self.diags.push(
                                Diagnostic::error(codes::DUPLICATE_NAME, header, "`mlops` block is given twice")
                                    .label("again here")
                                    .with(prev, "first given here")
                                    .help("merge them into one `mlops { … }` block"),
                            );
                        } else {
                            first_mlops = Some(header);
                            self.settings_block = Some((file, arc));
                        }
                    }
                    "variable" => {
                        if let Some(prev) = s.vars.get(&name) {
                            let d = dup(prev.span, format!("variable `{name}`"));
                            self.diags.push(d);
                            continue;
                        }
                        let ty = match block.body.get_attribute("type") {
                            None => TypeConstraint::Any,
                            Some(a) => match types::parse(&a.value) {
                                Ok(t) => t,
                                Err(msg) => {
                                    self.diags.push(
                                        Diagnostic::error(codes::TYPE_MISMATCH, span_of(file, &a.value), format!("invalid type: {msg}"))
                                            .label("not a type")
                                            .help("types: string, number, bool, any, list(T), set(T), map(T), object({…}), tuple([…])"),
                                    );
                                    TypeConstraint::Any
                                }
                            },
                        };
                        let sensitive = block
                            .body
                            .get_attribute("sensitive")
                            .is_some_and(|a| matches!(&a.value, Expression::Bool(b) if *b.value()));
                        let s = &mut self.scopes[scope];
                        s.vars.insert(
                            name,
                            VarDecl {
                                file,
                                block: arc,
                                span: name_span,
                                ty,
                                sensitive,
                                input: None,
                                value: None,
                                used: false,
                            },
                        );
                    }
                    "locals" => {
                        for st in block.body.iter() {
                            match st {
                                Structure::Attribute(a) => {
                                    let lname = a.key.as_str().to_string();
                                    let key_span = span_of(file, &a.key);
                                    let s = &mut self.scopes[scope];
                                    if let Some(prev) = s.locals.get(&lname) {
                                        let d = Diagnostic::error(
                                            codes::DUPLICATE_NAME,
                                            key_span,
                                            format!("local `{lname}` is defined twice"),
                                        )
                                        .label("defined again here")
                                        .with(prev.key_span, "first defined here")
                                        .help("names must be unique; rename or remove one of them");
                                        self.diags.push(d);
                                        continue;
                                    }
                                    s.locals.insert(
                                        lname,
                                        LocalDecl {
                                            file,
                                            key_span,
                                            expr: Arc::new(a.value.clone()),
                                            state: State::Pending,
                                        },
                                    );
                                }
                                Structure::Block(b) => self.diags.push(
                                    Diagnostic::error(
                                        codes::UNKNOWN_BLOCK,
                                        node::header(file, b),
                                        "blocks are not allowed in `locals`",
                                    )
                                    .label("a block")
                                    .help("locals hold attributes: `name = value`"),
                                ),
                            }
                        }
                    }
                    "output" => {
                        if let Some(prev) = s.outputs.get(&name) {
                            let d = dup(prev.span, format!("output `{name}`"));
                            self.diags.push(d);
                            continue;
                        }
                        s.outputs.insert(name, OutputDecl { file, block: arc, span: name_span, state: State::Pending });
                    }
                    "module" => {
                        if let Some(prev) = s.modules.get(&name) {
                            let d = dup(prev.span, format!("module `{name}`"));
                            self.diags.push(d);
                            continue;
                        }
                        s.modules.insert(name, ModuleDecl { file, block: arc, span: name_span, state: State::Pending });
                    }
                    _ => {
                        let key = (kind.to_string(), name.clone());
                        if let Some(prev) = s.resources.get(&key) {
                            let d = dup(prev.span, format!("{kind} `{name}`"));
                            self.diags.push(d);
                            continue;
                        }
                        s.resources.insert(
                            key,
                            ResourceDecl { file, block: arc, schema, span: name_span, repetition: State::Pending },
                        );
                    }
                }
            }
        }
    }

    /// Gives every variable of a scope its value and runs its validations. `call` is the module
    /// block that instantiated the scope (where missing inputs are reported).
    fn resolve_vars(&mut self, scope: usize, call: Option<Span>) {
        let names: Vec<String> = self.scopes[scope].vars.keys().cloned().collect();
        for name in &names {
            let decl = self.scopes[scope].vars[name].clone();
            let (raw, origin) = match &decl.input {
                Some((v, span)) => (Some(v.clone()), *span),
                None => match decl.block.body.get_attribute("default") {
                    Some(a) => {
                        let mut r = NoRefs { diags: &mut self.diags, dir: self.scopes[scope].dir.clone() };
                        let mut ev = Evaluator::new(&mut r, decl.file);
                        (ev.eval(&a.value).ok(), Some(span_of(decl.file, &a.value)))
                    }
                    None => {
                        let module = self.scopes[scope].module_path.last().cloned().unwrap_or_default();
                        let (span, msg, help) = match call {
                            Some(c) => (
                                c,
                                format!("module `{module}` is missing input `{name}`"),
                                format!("set `{name} = …` in the module block; the module declares it without a default"),
                            ),
                            None => (
                                decl.span,
                                format!("variable `{name}` has no value"),
                                format!(
                                    "give it a default, or pass a value: `--var {name}=…`, a --var-file, or MLOPS_VAR_{name}"
                                ),
                            ),
                        };
                        let mut d =
                            Diagnostic::error(codes::MISSING_VARIABLE, span, msg).label("needs a value").help(help);
                        if call.is_some() {
                            d = d.with(decl.span, "declared here");
                        }
                        self.diags.push(d);
                        (None, None)
                    }
                },
            };
            let Some(raw) = raw else { continue };
            let value = match types::convert(raw, &decl.ty) {
                Ok(v) => v,
                Err(msg) => {
                    let span = origin.unwrap_or(decl.span);
                    self.diags.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            span,
                            format!("invalid value for variable `{name}`: {msg}"),
                        )
                        .label(format!("not a {}", decl.ty))
                        .with(decl.span, "declared here")
                        .help(format!("variable `{name}` has type {}", decl.ty)),
                    );
                    continue;
                }
            };
            if value.is_null()
                && decl
                    .block
                    .body
                    .get_attribute("nullable")
                    .is_some_and(|a| matches!(&a.value, Expression::Bool(b) if !*b.value()))
            {
                self.diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        origin.unwrap_or(decl.span),
                        format!("variable `{name}` must not be null"),
                    )
                    .label("null")
                    .help("give it a value, or set `nullable = true`"),
                );
                continue;
            }
            self.scopes[scope].vars[name].value = Some(value);
        }
        // Validations run once every variable has its value, so conditions may use several.
        for name in &names {
            let decl = self.scopes[scope].vars[name].clone();
            if decl.value.is_none() {
                continue;
            }
            for vb in decl.block.body.blocks().filter(|b| b.ident.as_str() == "validation") {
                let (Some(cond), Some(msg)) =
                    (vb.body.get_attribute("condition"), vb.body.get_attribute("error_message"))
                else {
                    self.diags.push(
                        Diagnostic::error(
                            codes::MISSING_ATTRIBUTE,
                            node::header(decl.file, vb),
                            "validation needs `condition` and `error_message`",
                        )
                        .label("incomplete validation")
                        .help("validation { condition = <bool expression>  error_message = \"…\" }"),
                    );
                    continue;
                };
                self.scopes[scope].in_validation = true;
                let c = self.eval_in(scope, decl.file, &cond.value, &[]);
                let m = self.eval_in(scope, decl.file, &msg.value, &[]);
                self.scopes[scope].in_validation = false;
                match c {
                    Ok(Value::Bool(true)) | Err(_) => {}
                    Ok(Value::Bool(false)) => {
                        // Point at where the value came from: the module input, the default, or
                        // (for --var / --var-file / MLOPS_VAR_*) the declaration.
                        let (at, origin) = match &decl.input {
                            Some((_, Some(s))) => (*s, ""),
                            Some((_, None)) => (decl.span, " (value from the command line or environment)"),
                            None => (
                                decl.block
                                    .body
                                    .get_attribute("default")
                                    .map_or(decl.span, |a| span_of(decl.file, &a.value)),
                                "",
                            ),
                        };
                        let text = m.ok().and_then(|m| m.to_template_string()).unwrap_or_default();
                        let text = format!("{text}{origin}");
                        self.diags.push(
                            Diagnostic::error(
                                codes::VARIABLE_VALIDATION,
                                at,
                                format!("invalid value for variable `{name}`: {text}"),
                            )
                            .label("fails the validation")
                            .with(span_of(decl.file, &cond.value), "condition")
                            .help(format!(
                                "change the value so that the condition holds ({})",
                                self.sources.slice(span_of(decl.file, &cond.value))
                            )),
                        );
                    }
                    Ok(other) => self.diags.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            span_of(decl.file, &cond.value),
                            format!("validation condition must be a bool, got {}", other.type_name()),
                        )
                        .help("write a comparison, e.g. `var.x > 0`"),
                    ),
                }
            }
        }
    }

    fn eval_in(&mut self, scope: usize, file: FileId, expr: &Expression, bindings: &[(String, Value)]) -> EvalResult {
        let mut r = ScopeResolver { low: self, scope };
        let mut ev = Evaluator::new(&mut r, file);
        for (k, v) in bindings {
            ev.bind(k.clone(), v.clone());
        }
        ev.eval(expr)
    }

    fn local_value(&mut self, scope: usize, name: &str, span: Span) -> EvalResult {
        let Some(decl) = self.scopes[scope].locals.get(name).cloned() else {
            let names: Vec<String> = self.scopes[scope].locals.keys().cloned().collect();
            self.diags.push(
                Diagnostic::error(codes::UNKNOWN_LOCAL, span, format!("unknown local value `{name}`"))
                    .label("not defined")
                    .help(match did_you_mean(name, names.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `local.{s}`?"),
                        None => format!("define it in a `locals {{ {name} = … }}` block"),
                    }),
            );
            return Err(Reported);
        };
        match decl.state {
            State::Done(v) => Ok(v),
            State::Failed => Err(Reported),
            State::InProgress => {
                self.diags.push(
                    Diagnostic::error(codes::EVAL_CYCLE, span, format!("local `{name}` depends on itself"))
                        .label("used here while it is being computed")
                        .with(decl.key_span, "defined here")
                        .help("break the cycle: a local value cannot depend on itself, directly or through others"),
                );
                Err(Reported)
            }
            State::Pending => {
                self.scopes[scope].locals[name].state = State::InProgress;
                let r = self.eval_in(scope, decl.file, &decl.expr, &[]);
                self.scopes[scope].locals[name].state = match &r {
                    Ok(v) => State::Done(v.clone()),
                    Err(_) => State::Failed,
                };
                r
            }
        }
    }

    fn output_value(&mut self, scope: usize, name: &str) -> EvalResult {
        let decl = self.scopes[scope].outputs[name].clone();
        match decl.state {
            State::Done(v) => Ok(v),
            State::Failed => Err(Reported),
            State::InProgress => {
                self.diags.push(
                    Diagnostic::error(codes::EVAL_CYCLE, decl.span, format!("output `{name}` depends on itself"))
                        .help("break the cycle between this output and the module inputs it feeds"),
                );
                Err(Reported)
            }
            State::Pending => {
                self.scopes[scope].outputs[name].state = State::InProgress;
                let r = {
                    let mut r = ScopeResolver { low: self, scope };
                    let mut ev = Evaluator::new(&mut r, decl.file);
                    let node = Self::build_node(
                        &mut ev,
                        decl.file,
                        &decl.block,
                        schema::top_level("output").expect("output"),
                        false,
                    );
                    if node.errors {
                        Err(Reported)
                    } else {
                        Ok(node.get("value").cloned().unwrap_or_default())
                    }
                };
                self.scopes[scope].outputs[name].state = match &r {
                    Ok(v) => State::Done(v.clone()),
                    Err(_) => State::Failed,
                };
                r
            }
        }
    }

    /// Evaluates `count` / `for_each` of a block.
    fn repetition(&mut self, scope: usize, file: FileId, block: &Block, what: &str) -> Result<Repetition, Reported> {
        let count = block.body.get_attribute("count");
        let for_each = block.body.get_attribute("for_each");
        match (count, for_each) {
            (None, None) => Ok(Repetition::Single),
            (Some(c), Some(f)) => {
                self.diags.push(
                    Diagnostic::error(
                        codes::CONFLICT,
                        span_of(file, &f.key),
                        format!("{what} sets both `count` and `for_each`"),
                    )
                    .with(span_of(file, &c.key), "count set here")
                    .help("use one of them"),
                );
                Err(Reported)
            }
            (Some(c), None) => {
                let span = span_of(file, &c.value);
                match self.eval_in(scope, file, &c.value, &[])? {
                    Value::Number(n) if n >= 0.0 && n.fract() == 0.0 && n <= 10_000.0 => {
                        Ok(Repetition::Count(n as usize))
                    }
                    v if v.contains_ref() => Err(self.repetition_ref_error(span)),
                    v => {
                        self.diags.push(
                            Diagnostic::error(
                                codes::INVALID_REPETITION,
                                span,
                                format!("`count` must be a whole number from 0 to 10000, got {v}"),
                            )
                            .label("invalid count")
                            .help("use a whole number, e.g. `count = length(var.regions)`"),
                        );
                        Err(Reported)
                    }
                }
            }
            (None, Some(f)) => {
                let span = span_of(file, &f.value);
                match self.eval_in(scope, file, &f.value, &[])? {
                    v if v.contains_ref() => Err(self.repetition_ref_error(span)),
                    Value::Object(m) => Ok(Repetition::ForEach(m)),
                    Value::List(items) => {
                        let mut m = IndexMap::new();
                        for it in items {
                            match it {
                                Value::String(s) => {
                                    m.insert(s.clone(), Value::String(s));
                                }
                                other => {
                                    self.diags.push(
                                        Diagnostic::error(
                                            codes::INVALID_REPETITION,
                                            span,
                                            format!("`for_each` over a set needs strings, got {}", other.type_name()),
                                        )
                                        .help("use a map, or a set of strings: `for_each = toset([\"a\", \"b\"])`"),
                                    );
                                    return Err(Reported);
                                }
                            }
                        }
                        Ok(Repetition::ForEach(m))
                    }
                    v => {
                        self.diags.push(
                            Diagnostic::error(
                                codes::INVALID_REPETITION,
                                span,
                                format!("`for_each` needs a map or a set of strings, got {}", v.type_name()),
                            )
                            .label("not a map or set")
                            .help("for_each = { eu = …, us = … } or for_each = toset([\"eu\", \"us\"])"),
                        );
                        Err(Reported)
                    }
                }
            }
        }
    }

    fn repetition_ref_error(&mut self, span: Span) -> Reported {
        self.diags.push(
            Diagnostic::error(codes::INVALID_REPETITION, span, "`count` and `for_each` cannot depend on resources")
                .label("refers to a resource")
                .help("derive the instances from variables and locals, which are known before apply"),
        );
        Reported
    }

    fn resource_repetition(&mut self, scope: usize, kind: &str, name: &str) -> Result<Repetition, Reported> {
        let key = (kind.to_string(), name.to_string());
        let decl = self.scopes[scope].resources[&key].clone();
        match decl.repetition {
            State::Done(r) => Ok(r),
            State::Failed | State::InProgress => Err(Reported),
            State::Pending => {
                self.scopes[scope].resources[&key].repetition = State::InProgress;
                let r = self.repetition(scope, decl.file, &decl.block, &format!("{kind} `{name}`"));
                self.scopes[scope].resources[&key].repetition = match &r {
                    Ok(v) => State::Done(v.clone()),
                    Err(_) => State::Failed,
                };
                r
            }
        }
    }

    /// Evaluates everything in a scope that nothing referenced yet, then its resources.
    fn finish(&mut self, scope: usize) {
        let locals: Vec<(String, Span)> =
            self.scopes[scope].locals.iter().map(|(k, v)| (k.clone(), v.key_span)).collect();
        for (name, span) in locals {
            let _ = self.local_value(scope, &name, span);
        }
        let modules: Vec<(String, Span)> =
            self.scopes[scope].modules.iter().map(|(k, v)| (k.clone(), v.span)).collect();
        for (name, span) in modules {
            if let Ok(instances) = self.module_instances(scope, &name, span) {
                for (_, child) in instances {
                    self.finish(child);
                    // Evaluate outputs nobody read, so their errors are reported too.
                    let outs: Vec<String> = self.scopes[child].outputs.keys().cloned().collect();
                    for o in outs {
                        let _ = self.output_value(child, &o);
                    }
                }
            }
        }
        let keys: Vec<(String, String)> = self.scopes[scope].resources.keys().cloned().collect();
        for (kind, name) in keys {
            let Ok(rep) = self.resource_repetition(scope, &kind, &name) else { continue };
            let decl = self.scopes[scope].resources[&(kind.clone(), name.clone())].clone();
            for (key, bindings) in rep.instances() {
                let address = Address {
                    module: self.scopes[scope].module_path.clone(),
                    kind: kind.clone(),
                    name: name.clone(),
                    key,
                };
                let mut r = ScopeResolver { low: self, scope };
                let mut ev = Evaluator::new(&mut r, decl.file);
                for (k, v) in &bindings {
                    ev.bind(k.clone(), v.clone());
                }
                let node = Self::build_node(&mut ev, decl.file, &decl.block, decl.schema, true);
                let mut depends_on = Vec::new();
                if let Some(d) = decl.block.body.get_attribute("depends_on") {
                    let span = span_of(decl.file, &d.value);
                    match ev.eval(&d.value) {
                        Ok(Value::List(items)) => {
                            for it in flatten(items) {
                                match it {
                                    Value::Ref(r) => depends_on.push(*r),
                                    other => {
                                        ev.push_diag(
                                            Diagnostic::error(
                                                codes::TYPE_MISMATCH,
                                                span,
                                                format!("`depends_on` lists resources, got {}", other.type_name()),
                                            )
                                            .help("depends_on = [source.raw, training_job.model]"),
                                        );
                                    }
                                }
                            }
                        }
                        Ok(other) => {
                            ev.push_diag(
                                Diagnostic::error(
                                    codes::TYPE_MISMATCH,
                                    span,
                                    format!("`depends_on` must be a list, got {}", other.type_name()),
                                )
                                .help("depends_on = [source.raw]"),
                            );
                        }
                        Err(_) => {}
                    }
                }
                self.resources.push(ResourceInstance { address, node, depends_on });
            }
        }
    }
}

impl Lowerer {
    /// Unused root variables are worth a warning (module variables are the module's contract).
    /// Only on an otherwise error-free run: a failed expression stops evaluating, so variables it
    /// would have used look unused.
    fn warn_unused_variables(&mut self, scope: usize) {
        if self.diags.has_errors() {
            return;
        }
        let unused: Vec<(String, Span)> =
            self.scopes[scope].vars.iter().filter(|(_, v)| !v.used).map(|(k, v)| (k.clone(), v.span)).collect();
        for (name, span) in unused {
            self.diags.push(
                Diagnostic::warning(codes::UNUSED_VARIABLE, span, format!("variable `{name}` is never used"))
                    .label("declared here")
                    .help(format!("use it as `var.{name}` or remove it")),
            );
        }
    }
}

fn flatten(items: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for it in items {
        match it {
            Value::List(inner) => out.extend(flatten(inner)),
            other => out.push(other),
        }
    }
    out
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| lexical(p))
}

/// `a/./b/../c` → `a/c`, without touching the file system (for paths that do not exist).
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Is `name` a valid block name (an HCL identifier)?
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
