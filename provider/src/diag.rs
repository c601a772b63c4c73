//! Diagnostics as Terraform shows them. In: compiler diagnostics (message, help, span) or the
//! provider's own errors. Out: protocol diagnostics with summary = the message, detail = the help
//! (and where in the mlops files it is), at an attribute path of the Terraform configuration.

use mlops_compiler::diagnostic::{Diagnostic, Severity};
use mlops_compiler::source::SourceMap;

use crate::proto::tfplugin6 as pb;

/// One step of an attribute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An attribute or nested block, by name.
    Attr(String),
    /// A map key.
    Key(String),
    /// A list index (nested blocks are lists).
    Index(i64),
}

/// A diagnostic for Terraform.
#[derive(Debug, Clone, PartialEq)]
pub struct Diag {
    /// An error (else a warning).
    pub error: bool,
    /// One line.
    pub summary: String,
    /// More, possibly several lines.
    pub detail: String,
    /// Where in the Terraform configuration (empty: the whole resource).
    pub path: Vec<Step>,
}

impl Diag {
    /// An error.
    pub fn error(summary: impl Into<String>) -> Diag {
        Diag { error: true, summary: summary.into(), detail: String::new(), path: Vec::new() }
    }

    /// A warning.
    pub fn warning(summary: impl Into<String>) -> Diag {
        Diag { error: false, ..Diag::error(summary) }
    }

    /// With a detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Diag {
        self.detail = detail.into();
        self
    }

    /// At an attribute.
    pub fn at(mut self, path: Vec<Step>) -> Diag {
        self.path = path;
        self
    }

    /// A compiler diagnostic at `path`: summary = message, detail = help and the place in the
    /// mlops files.
    pub fn from_compiler(d: &Diagnostic, sources: &SourceMap, path: Vec<Step>, show_location: bool) -> Diag {
        let mut detail = d.help.clone().unwrap_or_default();
        if show_location {
            let file = sources.get(d.primary.span.file);
            let (line, col) = sources.line_col(d.primary.span.file, d.primary.span.start);
            if !detail.is_empty() {
                detail.push_str("\n\n");
            }
            detail.push_str(&format!("{} ({}:{line}:{col})", d.code, file.name));
        }
        Diag { error: d.severity == Severity::Error, summary: d.message.clone(), detail, path }
    }

    /// The protocol form.
    pub fn to_proto(&self) -> pb::Diagnostic {
        use pb::attribute_path::step::Selector;
        let steps = self
            .path
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    Step::Attr(a) => Selector::AttributeName(a.clone()),
                    Step::Key(k) => Selector::ElementKeyString(k.clone()),
                    Step::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect::<Vec<_>>();
        pb::Diagnostic {
            severity: if self.error { pb::diagnostic::Severity::Error } else { pb::diagnostic::Severity::Warning }
                as i32,
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: (!steps.is_empty()).then_some(pb::AttributePath { steps }),
        }
    }
}

/// Protocol diagnostics.
pub fn to_proto(diags: &[Diag]) -> Vec<pb::Diagnostic> {
    diags.iter().map(Diag::to_proto).collect()
}

/// An attribute path of plain names.
pub fn attr(name: &str) -> Vec<Step> {
    vec![Step::Attr(name.to_string())]
}
