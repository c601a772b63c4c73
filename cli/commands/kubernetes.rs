//! The kubernetes target on the command line: `mlops build` (manifests into a folder, no state)
//! and what `plan`, `apply` and `destroy` do when the configuration's target is `kubernetes`
//! (the folder's files are the record of what was applied; apply holds the state lock while it
//! writes them).

use super::plan::PlanFormat;
use super::{print_diagnostics, summary, write_atomic, ConfigArgs};
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

/// A plan document rendered as `mlops plan` prints it; `dir` is the folder as shown.
pub fn render(doc: &manifests::PlanDocument, dir: &str, format: PlanFormat) -> Result<String, String> {
    Ok(match format {
        PlanFormat::Text => manifests::render_text(doc, dir),
        PlanFormat::Markdown => manifests::render_markdown(doc, dir),
        PlanFormat::Json => doc.to_json().map_err(|e| e.to_string())?,
    })
}

/// `mlops plan` for the kubernetes target: the objects that apply would add, change or remove,
/// as text, markdown or JSON, optionally saved to `out`.
pub fn plan(
    dir: &Path,
    spec: &SystemSpec,
    format: PlanFormat,
    out: Option<&Path>,
    detailed_exitcode: bool,
) -> Result<ExitCode, String> {
    let p = manifests::plan(&manifests::out_dir(dir, spec), &generate(spec)?).map_err(|e| e.to_string())?;
    let doc = manifests::PlanDocument::new(&p, &spec.system.name, manifests::out_setting(spec));
    print!("{}", render(&doc, &p.dir.display().to_string(), format)?);
    if let Some(out) = out {
        write_atomic(out, &doc.to_json().map_err(|e| e.to_string())?)?;
        super::plan::saved(dir, out);
    }
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
    print_complete(&p);
    Ok(ExitCode::SUCCESS)
}

/// `mlops apply FILE` for the kubernetes target: under the state lock, exactly the files of a
/// plan saved with `mlops plan --out FILE` (nothing is generated again), refused when it is for
/// another system or folder, or when the folder's generated files changed since it was made.
pub fn apply_saved(
    dir: &Path,
    backend: &Backend,
    spec: &SystemSpec,
    file: &Path,
    doc: &manifests::PlanDocument,
) -> Result<ExitCode, String> {
    let out = manifests::out_setting(spec);
    if doc.system != spec.system.name || doc.out != out {
        return Err(format!(
            "{} is a plan for the manifests of system {:?} in `{}`, but this configuration writes those of system {:?} \
             in `{out}`: run `mlops plan {}--out FILE` for it",
            file.display(),
            doc.system,
            doc.out,
            spec.system.name,
            super::shown_dir(dir)
        ));
    }
    let backend = state::open(dir, backend).map_err(|e| e.to_string())?;
    let lock = backend.lock("apply").map_err(|e| e.to_string())?;
    let p = doc.to_plan(&manifests::out_dir(dir, spec)).map_err(|e| e.to_string())?;
    print!("{}", manifests::render(&p));
    if p.has_changes() {
        // The saved plan was reviewed: no question.
        manifests::write(&p).map_err(|e| e.to_string())?;
    }
    lock.release().map_err(|e| e.to_string())?;
    if p.has_changes() {
        print_complete(&p);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_complete(p: &manifests::ManifestPlan) {
    let (add, change, remove) = p.counts();
    println!(
        "\nApply complete! Manifests: {add} added, {change} changed, {remove} removed in {}.\nRun `kubectl apply -k {}` to apply them to the cluster.",
        p.dir.display(),
        p.dir.display()
    );
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
