//! Registry documentation generated from the schemas the provider serves. In: the provider,
//! resource and data source schemas. Out: `index.md`, `resources/<name>.md` and
//! `data-sources/<name>.md` in the Terraform registry layout (`terraform-provider-mlops docs
//! DIR` writes them; a test checks `provider/docs` is up to date).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::tfschema::{self, TfBlock};

const EXAMPLE_SYSTEM: &str = r#"resource "mlops_system" "fraud" {
  dir = "${path.module}/fraud"

  variables = {
    rounds    = 30
    max_depth = 4
  }
}

output "model_version" {
  value = mlops_system.fraud.models["module.fraud.training_job.model"]
}"#;

const EXAMPLE_PROVIDER: &str = r#"provider "mlops" {
  # The system the per-kind resources form (its generated files, state and data).
  name = "fraud"
  dir  = "${path.module}/system"

  # Optional: the state backend and target (for mlops_system: overriding its directory's).
  backend_local {
    path = ".mlops/state"
  }

  target_local {
    address = "127.0.0.1:8080"
  }
}"#;

/// The complete per-kind configuration the acceptance tests apply; each resource's page shows
/// its blocks from it.
const EXAMPLE_PER_KIND: &str = include_str!("../../examples/terraform/per-kind/main.tf");

/// The `resource "TYPE" "…" { … }` blocks of the per-kind example.
fn example_blocks(type_name: &str) -> Vec<String> {
    let start = format!("resource \"{type_name}\" ");
    let mut out = Vec::new();
    let mut lines = EXAMPLE_PER_KIND.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with(&start) {
            continue;
        }
        let mut block = vec![line];
        for l in lines.by_ref() {
            block.push(l);
            if l == "}" {
                break;
            }
        }
        out.push(block.join("\n"));
    }
    out
}

/// Every generated file: path under the docs directory → text.
pub fn render() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut index = String::from(
        "---\npage_title: \"Provider: mlops\"\ndescription: |-\n  Manage ML systems described in mlops HCL from Terraform.\n---\n\n\
         # mlops Provider\n\n\
         Manages machine-learning systems described in the mlops language — sources, feature views, \
         XGBoost training jobs, serving endpoints, monitors and retraining policies — from Terraform, with the \
         same compiler and runtime as `mlops plan` / `mlops apply`. Generated from the provider's schema \
         (`terraform-provider-mlops docs provider/docs`); do not edit by hand.\n\n\
         Two ways to manage a system:\n\n\
         - **One resource per block** — [`mlops_source`](resources/source.md), \
         [`mlops_entity`](resources/entity.md), [`mlops_feature_view`](resources/feature_view.md), \
         [`mlops_training_job`](resources/training_job.md), [`mlops_endpoint`](resources/endpoint.md), \
         [`mlops_monitor`](resources/monitor.md), [`mlops_retrain_policy`](resources/retrain_policy.md): their \
         schemas are the language's (labels become `name`, nested blocks stay blocks, `schema { }` is a map), \
         references are the other resource's `address` (`source = mlops_source.transactions.address`), and \
         together they form the one system kept in the provider's `dir`. Each resource is compiled with the \
         blocks it references and planned by the mlops planner: `last_change` is its ML-aware plan line, upstream \
         changes reach it as in `mlops apply` (a new model version is rolled out by its endpoint, whose monitors \
         reset their drift reference), and a change that means a new model replaces the `mlops_training_job` \
         (mlops trains the next version). Errors fail `terraform plan` with the compiler's message and help at the \
         attribute they are about.\n\
         - **A whole directory** of `*.mlops.hcl` files is one [`mlops_system`](resources/system.md): the \
         ML-aware plan is in `last_changes`, errors arrive at the variable they are about.\n\n\
         Either way apply runs the same runtime as `mlops apply` (sources read, views materialised, models \
         trained, registered and promoted, endpoints deployed to the local serving agent, monitors and retrain \
         policies handed to its controller), and refresh finds changes made outside Terraform (a deleted model \
         file, a stopped serving agent, new source data): the next apply repairs them.\n\n\
         ## Example Usage\n\n```terraform\n",
    );
    index.push_str(EXAMPLE_PROVIDER);
    index.push_str(
        "\n```\n\nThe per-kind resources of one provider configuration form the system in `dir` — an ordinary \
         mlops configuration the provider writes (`mlops.mlops.hcl` from this block, one `KIND.NAME.mlops.hcl` per \
         applied resource), with its state and data under it, so `mlops plan DIR` and `mlops status DIR` show the \
         same system. A complete configuration: `examples/terraform/per-kind/main.tf`.\n\n",
    );
    block_reference(&mut index, &tfschema::provider(), "Schema");
    files.insert("index.md".to_string(), index);

    for (name, block) in crate::provider::resource_schemas() {
        let short = name.trim_start_matches("mlops_");
        let mut text = format!(
            "---\npage_title: \"{name} Resource - mlops\"\ndescription: |-\n  {}\n---\n\n# {name} (Resource)\n\n{}\n\n",
            first_sentence(&block.description),
            block.description
        );
        if name == crate::system::TYPE {
            text.push_str(&format!("## Example Usage\n\n```terraform\n{EXAMPLE_SYSTEM}\n```\n\n"));
            text.push_str(
                "## Import\n\nThe import id is the directory, optionally followed by the variables as a query:\n\n\
                 ```shell\nterraform import mlops_system.fraud './fraud?rounds=30&max_depth=4'\n```\n\n",
            );
        } else {
            let examples = example_blocks(&name);
            text.push_str(&format!(
                "## Example Usage\n\nFrom the fraud-detection system, one resource per block \
                 (`examples/terraform/per-kind/main.tf`):\n\n```terraform\n{}\n```\n\n",
                examples.join("\n\n")
            ));
            let example_name = examples.first().and_then(|b| b.split('"').nth(3)).unwrap_or("NAME").to_string();
            text.push_str(&format!(
                "## Import\n\nThe import id is the block's mlops address (or just its name); the block is read back \
                 from the files of the provider's `dir`:\n\n\
                 ```shell\nterraform import {name}.{example_name} {short}.{example_name}\n```\n\n"
            ));
        }
        block_reference(&mut text, &block, "Schema");
        files.insert(format!("resources/{short}.md"), text);
    }
    for (name, block) in crate::data::schemas() {
        let short = name.trim_start_matches("mlops_");
        let mut text = format!(
            "---\npage_title: \"{name} Data Source - mlops\"\ndescription: |-\n  {}\n---\n\n# {name} (Data Source)\n\n{}\n\n",
            first_sentence(&block.description),
            block.description
        );
        block_reference(&mut text, &block, "Schema");
        files.insert(format!("data-sources/{short}.md"), text);
    }
    files
}

fn first_sentence(s: &str) -> String {
    s.split(". ").next().unwrap_or(s).trim_end_matches('.').to_string() + "."
}

fn block_reference(out: &mut String, block: &TfBlock, title: &str) {
    let _ = writeln!(out, "## {title}\n");
    let groups = [
        ("Required", block.attrs.iter().filter(|a| a.required).collect::<Vec<_>>()),
        ("Optional", block.attrs.iter().filter(|a| a.optional).collect()),
        ("Read-Only", block.attrs.iter().filter(|a| a.computed && !a.optional).collect()),
    ];
    for (heading, attrs) in groups {
        let has_blocks = heading == "Optional" && !block.blocks.is_empty();
        if attrs.is_empty() && !has_blocks {
            continue;
        }
        let _ = writeln!(out, "### {heading}\n");
        for a in attrs {
            let sensitive = if a.sensitive { ", Sensitive" } else { "" };
            let replaces = if a.replace { " Changing it replaces the resource." } else { "" };
            let _ = writeln!(out, "- `{}` ({}{sensitive}) {}{replaces}", a.name, type_name(&a.ty), a.description);
        }
        if heading == "Optional" {
            for b in &block.blocks {
                let max = b.max.map_or(String::new(), |m| format!(", Max: {m}"));
                let _ = writeln!(
                    out,
                    "- `{}` (Block List{max}) {} (see [below](#nested-{}))",
                    b.name, b.block.description, b.name
                );
            }
        }
        out.push('\n');
    }
    for b in &block.blocks {
        let _ = writeln!(out, "<a id=\"nested-{}\"></a>", b.name);
        block_reference(out, &b.block, &format!("Nested block `{}`", b.name));
    }
}

fn type_name(t: &crate::cty::Ty) -> String {
    use crate::cty::Ty;
    match t {
        Ty::String => "String".into(),
        Ty::Number => "Number".into(),
        Ty::Bool => "Boolean".into(),
        Ty::Dynamic => "Dynamic".into(),
        Ty::List(i) => format!("List of {}", type_name(i)),
        Ty::Set(i) => format!("Set of {}", type_name(i)),
        Ty::Map(i) => format!("Map of {}", type_name(i)),
        Ty::Object(_) => "Object".into(),
        Ty::Tuple(_) => "Tuple".into(),
    }
}

/// Writes the documentation under `dir`.
pub fn write(dir: &str) -> Result<(), String> {
    for (path, text) in render() {
        let p = Path::new(dir).join(&path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `provider/docs` is what the schemas generate (`BLESS=1` rewrites it).
    #[test]
    fn the_registry_docs_match_the_schemas() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        if std::env::var_os("BLESS").is_some() {
            super::write(dir.to_str().unwrap()).unwrap();
        }
        for (path, text) in super::render() {
            let on_disk = std::fs::read_to_string(dir.join(&path)).unwrap_or_default();
            assert!(
                on_disk == text,
                "provider/docs/{path} is out of date: run `terraform-provider-mlops docs provider/docs` (or BLESS=1 cargo test -p terraform-provider-mlops)"
            );
        }
    }
}
