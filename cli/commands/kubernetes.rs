//! The kubernetes target on the command line: `mlops build` (manifests into a folder, no state)
//! and what `plan`, `apply` and `destroy` do when the configuration's target is `kubernetes`
//! (the folder's files are the record of what was applied; apply holds the state lock while it
//! writes them).

use super::{print_diagnostics, summary, ConfigArgs};
use clap::{Args, ValueEnum};
use mlops_compiler::compile::KubernetesOverride;
use mlops_compiler::emit::kubernetes::{emit, Manifest};
use mlops_compiler::model::Backend;
use mlops_compiler::spec::SystemSpec;
use mlops_runtime::state;
use mlops_runtime::targets::kubernetes as manifests;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildTarget {
    /// Kubernetes manifests and a kustomization.yaml.
    Kubernetes,
}

/// Generate the manifests of a configuration into a folder.
#[derive(Debug, Args)]
pub struct Build {
    #[command(flatten)]
    config: ConfigArgs,
    /// What to build for (whatever target the configuration declares).
    #[arg(long, value_enum, default_value = "kubernetes")]
    target: BuildTarget,
    /// The runtime image (default: `image` of the configuration's `target "kubernetes"`).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// The namespace (default: the configuration's, else "mlops").
    #[arg(long, value_name = "NAME")]
    namespace: Option<String>,
    /// The folder to write (default: `out` of `target "kubernetes"`, else .mlops/kubernetes in
    /// the configuration directory).
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl Build {
    pub fn run(self) -> Result<ExitCode, String> {
        let BuildTarget::Kubernetes = self.target;
        let over = KubernetesOverride { image: self.image.clone(), namespace: self.namespace.clone() };
        let c = self.config.compile_with(Some(over))?;
        print_diagnostics(&c.diagnostics, &c.sources);
        let Some(spec) = c.spec else {
            eprintln!("the configuration has errors: {}", summary(&c.diagnostics));
            return Ok(ExitCode::from(1));
        };
        let generated = emit(&spec).map_err(|e| e.to_string())?;
        let dir = self.out.unwrap_or_else(|| manifests::out_dir(&self.config.dir, &spec));
        let p = manifests::plan(&dir, &generated).map_err(|e| e.to_string())?;
        manifests::write(&p).map_err(|e| e.to_string())?;
        let (add, change, remove) = p.counts();
        println!(
            "Wrote {} manifests to {} ({add} added, {change} changed, {remove} removed); apply them with `kubectl apply -k {}`.",
            generated.len(),
            dir.display(),
            dir.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

fn generate(spec: &SystemSpec) -> Result<Vec<Manifest>, String> {
    emit(spec).map_err(|e| e.to_string())
}

/// `mlops plan` for the kubernetes target: the objects that apply would add, change or remove.
pub fn plan(dir: &Path, spec: &SystemSpec, detailed_exitcode: bool) -> Result<ExitCode, String> {
    let p = manifests::plan(&manifests::out_dir(dir, spec), &generate(spec)?).map_err(|e| e.to_string())?;
    print!("{}", manifests::render(&p));
    Ok(if detailed_exitcode && p.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// `mlops apply` for the kubernetes target: plan, ask, write, under the state lock.
pub fn apply(dir: &Path, backend: &Backend, spec: &SystemSpec, auto_approve: bool) -> Result<ExitCode, String> {
    let backend = state::open(dir, backend).map_err(|e| e.to_string())?;
    let lock = backend.lock("apply").map_err(|e| e.to_string())?;
    let p = manifests::plan(&manifests::out_dir(dir, spec), &generate(spec)?).map_err(|e| e.to_string())?;
    print!("{}", manifests::render(&p));
    if !p.has_changes() {
        lock.release().map_err(|e| e.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    if !auto_approve && !super::apply::confirm("\nDo you want to write these manifests?")? {
        println!("Apply cancelled.");
        return Ok(ExitCode::from(1));
    }
    manifests::write(&p).map_err(|e| e.to_string())?;
    lock.release().map_err(|e| e.to_string())?;
    let (add, change, remove) = p.counts();
    println!(
        "\nApply complete! Manifests: {add} added, {change} changed, {remove} removed in {}.\nRun `kubectl apply -k {}` to apply them to the cluster.",
        p.dir.display(),
        p.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `mlops destroy` for the kubernetes target: removes the generated files (the cluster's objects
/// are `kubectl delete -k`'s to remove, before this).
pub fn destroy(dir: &Path, backend: &Backend, spec: &SystemSpec, auto_approve: bool) -> Result<ExitCode, String> {
    let backend = state::open(dir, backend).map_err(|e| e.to_string())?;
    let lock = backend.lock("destroy").map_err(|e| e.to_string())?;
    let p = manifests::plan(&manifests::out_dir(dir, spec), &[]).map_err(|e| e.to_string())?;
    print!("{}", manifests::render(&p));
    if p.has_changes() {
        if !auto_approve
            && !super::apply::confirm(&format!(
                "\nRemove these files? Run `kubectl delete -k {}` first to remove the objects from the cluster.",
                p.dir.display()
            ))?
        {
            println!("Destroy cancelled.");
            return Ok(ExitCode::from(1));
        }
        manifests::write(&p).map_err(|e| e.to_string())?;
        println!("\nDestroy complete! {} manifests removed from {}.", p.changes.len(), p.dir.display());
    }
    lock.release().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
