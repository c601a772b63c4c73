//! The compiler driver: a directory in, every stage run in order, one [`Compilation`] out.
//! Later stages run on what earlier stages could make sense of, so one run reports as many
//! problems as possible; a spec is produced only when there are no errors.

use crate::check;
use crate::diagnostic::Diagnostics;
use crate::graph::Graph;
use crate::lower::{self, Options};
use crate::model::{self, Model, Target};
use crate::source::SourceMap;
use crate::spec::SystemSpec;
use crate::units::Memory;
use std::path::Path;

/// Everything one compilation produced.
#[derive(Debug)]
pub struct Compilation {
    /// Every file read.
    pub sources: SourceMap,
    /// Every finding, sorted by position.
    pub diagnostics: Diagnostics,
    /// The typed model (also when there are errors, for tools that want what there is).
    pub model: Model,
    /// The dependency graph.
    pub graph: Graph,
    /// The spec, when there are no errors.
    pub spec: Option<SystemSpec>,
}

/// Compiles the configuration in `dir`.
pub fn compile(dir: &Path, options: &Options) -> Compilation {
    let (lowered, sources, mut diagnostics) = lower::lower_dir(dir, options);
    let mut model = model::build(lowered);
    if let Some(o) = &options.kubernetes {
        model.system.target = o.apply(&model.system.target);
    }
    check::check(&model, &mut diagnostics);
    let graph = Graph::build(&model, &mut diagnostics);
    diagnostics.snap_spans(&sources);
    diagnostics.sort();
    let spec = (!diagnostics.has_errors()).then(|| SystemSpec::build(&model, &graph));
    Compilation { sources, diagnostics, model, graph, spec }
}

/// Settings given on the command line for the kubernetes target (`mlops build --target
/// kubernetes --image …`); what is not given comes from the configuration's own
/// `target "kubernetes"` block, or the block's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesOverride {
    /// The runtime image.
    pub image: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
}

impl KubernetesOverride {
    /// The kubernetes target: `declared` with these settings applied.
    pub fn apply(&self, declared: &Target) -> Target {
        let mut target = match declared {
            Target::Kubernetes { .. } => declared.clone(),
            Target::Local { .. } => Target::Kubernetes {
                namespace: "mlops".into(),
                image: String::new(),
                storage_class: None,
                storage_size: Memory::parse("10Gi").expect("valid"),
                object_store: None,
                gpu_nodes: false,
                service_monitor: false,
                out: None,
            },
        };
        if let Target::Kubernetes { image, namespace, .. } = &mut target {
            if let Some(i) = &self.image {
                image.clone_from(i);
            }
            if let Some(n) = &self.namespace {
                namespace.clone_from(n);
            }
        }
        target
    }
}
