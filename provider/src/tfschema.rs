//! Terraform schemas, derived from the compiler's single definition of the language
//! ([`mlops_compiler::schema`]). In: a block kind's [`BlockSchema`]. Out: a [`TfBlock`] — the
//! attributes and nested blocks Terraform sees, their cty types, which are computed and which
//! force a replacement — and its protocol form.
//!
//! How the language maps onto Terraform's schema model:
//! - a block's label (`training_job "fraud"`) is a required `name` attribute (the nested
//!   `feature "x"` / `search "p"` / `prometheus "q"` blocks get theirs as `name` / `param`);
//! - attributes keep their names; durations, memory sizes, cron schedules, references and
//!   columns are strings (`"source.transactions"`), every numeric kind is a number, and values
//!   of any type (`params`) are dynamic;
//! - nested blocks stay nested blocks (list nesting, with the language's min/max counts); a
//!   block of free-form attributes (`schema { amount = "float" }`) is an attribute of the same
//!   name holding an object (`schema = { amount = "float" }`);
//! - a block kind with variants (`backend "local"`) becomes one block per variant
//!   (`backend_local { }`);
//! - what a resource exports (`version`, `metrics`, `url` …) is computed, plus `address`.

use std::collections::BTreeMap;

use mlops_compiler::schema::{self as lang, AttrSchema, BlockSchema, Ty as LangTy};

use crate::cty::Ty;
use crate::proto::tfplugin6 as pb;

/// One attribute as Terraform sees it.
#[derive(Debug, Clone)]
pub struct TfAttr {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: Ty,
    /// Must the configuration set it?
    pub required: bool,
    /// May the configuration set it?
    pub optional: bool,
    /// Does the provider set it?
    pub computed: bool,
    /// Hidden in Terraform's output.
    pub sensitive: bool,
    /// Does a change replace the resource (a new model)?
    pub replace: bool,
    /// Documentation (Markdown).
    pub description: String,
}

/// A nested block.
#[derive(Debug, Clone)]
pub struct TfNested {
    /// Its keyword.
    pub name: String,
    /// Its contents.
    pub block: TfBlock,
    /// Fewest occurrences.
    pub min: usize,
    /// Most occurrences (`None`: any number).
    pub max: Option<usize>,
}

/// A block: a resource's, a data source's, the provider's, or a nested one.
#[derive(Debug, Clone, Default)]
pub struct TfBlock {
    /// Attributes.
    pub attrs: Vec<TfAttr>,
    /// Nested blocks.
    pub blocks: Vec<TfNested>,
    /// Documentation (Markdown).
    pub description: String,
}

impl TfAttr {
    /// A computed attribute.
    pub fn computed(name: &str, ty: Ty, description: &str) -> TfAttr {
        TfAttr {
            name: name.into(),
            ty,
            required: false,
            optional: false,
            computed: true,
            sensitive: false,
            replace: false,
            description: description.into(),
        }
    }

    /// A required attribute.
    pub fn required(name: &str, ty: Ty, description: &str) -> TfAttr {
        TfAttr { required: true, computed: false, ..TfAttr::computed(name, ty, description) }
    }

    /// An optional attribute.
    pub fn optional(name: &str, ty: Ty, description: &str) -> TfAttr {
        TfAttr { optional: true, computed: false, ..TfAttr::computed(name, ty, description) }
    }
}

impl TfBlock {
    /// The object type of the block's values (nested blocks are lists of objects). As in
    /// Terraform, a list of nested blocks whose type contains a dynamic attribute (`tuning`,
    /// through `search.values`) is itself dynamic: its elements may differ in type.
    pub fn ty(&self) -> Ty {
        let mut m: BTreeMap<String, Ty> = self.attrs.iter().map(|a| (a.name.clone(), a.ty.clone())).collect();
        for b in &self.blocks {
            let inner = b.block.ty();
            m.insert(b.name.clone(), if inner.has_dynamic() { Ty::Dynamic } else { Ty::list(inner) });
        }
        Ty::Object(m)
    }

    /// The protocol form.
    pub fn to_proto(&self) -> pb::schema::Block {
        pb::schema::Block {
            version: 0,
            attributes: self
                .attrs
                .iter()
                .map(|a| pb::schema::Attribute {
                    name: a.name.clone(),
                    r#type: a.ty.to_json().to_string().into_bytes(),
                    description: a.description.clone(),
                    required: a.required,
                    optional: a.optional,
                    computed: a.computed,
                    sensitive: a.sensitive,
                    description_kind: pb::StringKind::Markdown as i32,
                    deprecated: false,
                })
                .collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.clone(),
                    block: Some(b.block.to_proto()),
                    nesting: pb::schema::nested_block::NestingMode::List as i32,
                    min_items: b.min as i64,
                    max_items: b.max.unwrap_or(0) as i64,
                })
                .collect(),
            description: self.description.clone(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }

    /// A schema with this block.
    pub fn to_schema(&self) -> pb::Schema {
        pb::Schema { version: 0, block: Some(self.to_proto()) }
    }
}

/// The cty type of a language type.
pub fn ty_of(t: &LangTy) -> Ty {
    match t {
        LangTy::String | LangTy::Duration | LangTy::Memory | LangTy::Cron | LangTy::Ref(_) | LangTy::Column => {
            Ty::String
        }
        LangTy::Number
        | LangTy::Integer
        | LangTy::PositiveInteger
        | LangTy::NonNegative
        | LangTy::Probability
        | LangTy::OpenFraction
        | LangTy::Percentage => Ty::Number,
        LangTy::Bool => Ty::Bool,
        LangTy::List(inner) if !contains_any(inner) => Ty::list(ty_of(inner)),
        LangTy::Map(inner) if !contains_any(inner) => Ty::map(ty_of(inner)),
        LangTy::List(_) | LangTy::Map(_) | LangTy::Any => Ty::Dynamic,
    }
}

fn contains_any(t: &LangTy) -> bool {
    match t {
        LangTy::Any => true,
        LangTy::List(i) | LangTy::Map(i) => contains_any(i),
        _ => false,
    }
}

/// The documentation of a language attribute, with its choices and default.
fn describe(a: &AttrSchema) -> String {
    let mut d = a.doc.to_string();
    if let LangTy::Ref(kinds) = a.ty {
        let examples: Vec<String> = kinds.iter().map(|k| format!("`{k}.<name>`")).collect();
        d.push_str(&format!(" An mlops address: {} (e.g. `mlops_{}.x.address`).", examples.join(" or "), kinds[0]));
    }
    if let LangTy::List(LangTy::Ref(kinds)) = a.ty {
        d.push_str(&format!(" mlops addresses `{}.<name>` (e.g. `[mlops_{}.x.address]`).", kinds[0], kinds[0]));
    }
    if matches!(a.ty, LangTy::Column) {
        d.push_str(" E.g. `mlops_source.x.columns[\"label\"]`.");
    }
    if !a.choices.is_empty() {
        d.push_str(&format!(" One of: {}.", a.choices.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")));
    }
    if let Some(def) = a.default {
        d.push_str(&format!(" Default: `{def}`."));
    }
    d
}

/// Is this nested block only free-form attributes (`schema { col = "float" }`)?
pub fn is_open_block(b: &BlockSchema) -> bool {
    b.open.is_some() && b.attrs.is_empty() && b.blocks.is_empty() && b.labels.is_empty()
}

/// The Terraform block of a language block (its labels become attributes).
pub fn derive(b: &BlockSchema, top: bool) -> TfBlock {
    let mut attrs = Vec::new();
    for label in b.labels {
        let what = if top { "Name of the block in mlops (its address is `KIND.NAME`)." } else { "The block's label." };
        attrs.push(TfAttr { replace: top, ..TfAttr::required(label, Ty::String, what) });
    }
    for a in b.attrs {
        attrs.push(TfAttr {
            name: a.name.to_string(),
            ty: ty_of(&a.ty),
            required: a.required,
            optional: !a.required,
            computed: false,
            sensitive: a.sensitive,
            replace: a.replace,
            description: describe(a),
        });
    }
    let mut blocks = Vec::new();
    for n in b.blocks {
        if is_open_block(n.block) {
            let ty = n.block.open.map_or(Ty::Dynamic, |t| ty_of(&t));
            let ty = if ty == Ty::Dynamic { Ty::Dynamic } else { Ty::map(ty) };
            let doc = n.block.doc;
            attrs.push(if n.min > 0 {
                TfAttr::required(n.block.kind, ty, doc)
            } else {
                TfAttr::optional(n.block.kind, ty, doc)
            });
        } else if !n.block.variants.is_empty() {
            for v in n.block.variants {
                blocks.push(TfNested {
                    name: format!("{}_{}", n.block.kind, v.kind),
                    block: derive(v, false),
                    min: 0,
                    max: Some(1),
                });
            }
        } else {
            blocks.push(TfNested {
                name: n.block.kind.to_string(),
                block: derive(n.block, false),
                min: n.min,
                max: n.max,
            });
        }
    }
    TfBlock { attrs, blocks, description: b.doc.to_string() }
}

/// The cty type of what a resource exports (the language documents exports, not their types).
pub fn export_ty(name: &str) -> Ty {
    match name {
        "version" | "rows" => Ty::Number,
        "metrics" => Ty::map(Ty::Number),
        "columns" => Ty::map(Ty::String),
        _ => Ty::String,
    }
}

/// The schema of the per-kind resource `mlops_<kind>`.
pub fn kind_resource(kind: &str) -> Option<TfBlock> {
    let b = lang::top_level(kind).filter(|b| b.resource)?;
    let mut block = derive(b, true);
    block.attrs.push(TfAttr::computed(
        "address",
        Ty::String,
        "The block's mlops address (`KIND.NAME`): what other resources reference it by.",
    ));
    block.attrs.push(TfAttr::computed("id", Ty::String, "Same as `address`."));
    for e in b.exports {
        let doc = if e.computed { e.doc.to_string() } else { format!("{} Known at plan time.", e.doc) };
        let doc = if e.name == "columns" {
            format!("{doc} Column name → its reference (`source.NAME.columns.COLUMN`), for a training job's `label`.")
        } else {
            doc
        };
        block.attrs.push(TfAttr::computed(e.name, export_ty(e.name), &doc));
    }
    block.attrs.push(TfAttr::computed(
        "last_change",
        Ty::String,
        "The ML-aware plan line of this resource's last change, as `mlops plan` words it: `replace \
         training_job.fraud: max_depth 4 → 5`, `update endpoint.api: new model version from training_job.fraud, \
         rolled out immediately to all traffic`.",
    ));
    block.attrs.push(TfAttr::computed(
        "pending",
        Ty::String,
        "What refresh found changed outside Terraform that the next apply repairs (`changed outside mlops: \
         the serving agent is not running`); null when the world matches.",
    ));
    block.description = format!(
        "{} One `{kind}` block of the mlops system the provider's `dir` holds: planned by the mlops compiler and \
         planner together with the blocks it references, applied by the same runtime as `mlops apply`.",
        b.doc
    );
    if kind == "training_job" {
        block.description.push_str(
            " A change that means a new model — to an attribute marked below, or upstream data the planner retrains \
             on — replaces it (through `version` when no attribute of its own changed): mlops trains the next \
             version, and the endpoints serving the job roll it out.",
        );
    }
    Some(block)
}

/// The provider's own configuration: the `mlops { }` block's settings, plus where per-kind
/// resources keep their generated configuration.
pub fn provider() -> TfBlock {
    let b = lang::top_level("mlops").expect("the language has an mlops block");
    let mut block = derive(b, false);
    for a in &mut block.attrs {
        // The system's name comes from `mlops_system`'s directory; here it only names the
        // system of per-kind resources.
        a.required = false;
        a.optional = true;
        a.description = format!(
            "{} Names the system of the per-kind resources (default `terraform`); not used by `mlops_system`, \
             whose directory names its system.",
            a.description
        );
    }
    block.attrs.push(TfAttr::optional(
        "dir",
        Ty::String,
        "Directory of the system the per-kind resources (`mlops_source` …) form, relative to Terraform's \
         working directory; needed by those resources only. The provider keeps it an mlops configuration: one \
         generated `KIND.NAME.mlops.hcl` per applied resource and `mlops.mlops.hcl` from this block, so `mlops \
         plan DIR` and `mlops status DIR` see the same system. Paths in blocks (a source's `path`) are relative \
         to it, and state and data live under it unless `backend_*` / `target_*` say otherwise.",
    ));
    block.description = "Where state is kept and where apply runs, as in the `mlops { }` block, and the directory \
        of the system the per-kind resources form. Set here, the `backend_*` and `target_*` blocks override those \
        of every `mlops_system` directory."
        .to_string();
    block
}

/// The resource kinds that have a per-kind resource type, in pipeline order.
pub fn kinds() -> Vec<&'static str> {
    lang::resource_kinds().collect()
}
