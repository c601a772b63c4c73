//! The compiler driver: a directory in, every stage run in order, one [`Compilation`] out.
//! Later stages run on what earlier stages could make sense of, so one run reports as many
//! problems as possible; a spec is produced only when there are no errors.

use crate::check;
use crate::diagnostic::Diagnostics;
use crate::graph::Graph;
use crate::lower::{self, Options};
use crate::model::{self, Model};
use crate::source::SourceMap;
use crate::spec::SystemSpec;
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
    let model = model::build(lowered);
    check::check(&model, &mut diagnostics);
    let graph = Graph::build(&model, &mut diagnostics);
    diagnostics.snap_spans(&sources);
    diagnostics.sort();
    let spec = (!diagnostics.has_errors()).then(|| SystemSpec::build(&model, &graph));
    Compilation { sources, diagnostics, model, graph, spec }
}
