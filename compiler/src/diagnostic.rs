//! Diagnostics: what the compiler says about a configuration. Every stage pushes into one
//! [`Diagnostics`] list so that a run reports every problem, not only the first; rendering goes
//! through miette (a graphical report for people, JSON for editors and CI).

use crate::source::{FileId, SourceMap, Span};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;
use std::fmt;

/// How bad a diagnostic is. Only errors stop compilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Legal but risky; compilation goes on.
    Warning,
    /// Invalid; nothing is compiled.
    Error,
}

/// A message attached to a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One finding, with a stable code (`mlops::check::unknown_reference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, one of [`crate::codes::ALL`].
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One-line message.
    pub message: String,
    /// The primary location.
    pub primary: Label,
    /// Other relevant locations ("first defined here").
    pub secondary: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label { span, message: String::new() },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, span, message) }
    }

    /// Sets the text of the primary label.
    pub fn label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn with(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line if there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Is this an error?
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The diagnostics of one run.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    // (code, file, start, end, message) of each item, to drop repeats in O(1).
    seen: std::collections::HashSet<(&'static str, FileId, usize, usize, String)>,
}

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        // The same finding can be reached twice (e.g. a module instantiated with count = 2);
        // report it once.
        let key = (d.code, d.primary.span.file, d.primary.span.start, d.primary.span.end, d.message.clone());
        if self.seen.insert(key) {
            self.items.push(d);
        }
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d);
        }
    }

    /// Is any of them an error?
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// None at all?
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves every span onto character boundaries of its file and within it. Spans computed
    /// inside string values (a feature expression's error offset) may not map onto the source
    /// byte for byte; this keeps every span valid for rendering and for editors.
    pub fn snap_spans(&mut self, sources: &SourceMap) {
        let snap = |span: &mut Span| {
            let text = &sources.get(span.file).text;
            let mut start = span.start.min(text.len());
            while start > 0 && !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = span.end.clamp(start, text.len());
            while end < text.len() && !text.is_char_boundary(end) {
                end += 1;
            }
            span.start = start;
            span.end = end;
        };
        for d in &mut self.items {
            snap(&mut d.primary.span);
            for l in &mut d.secondary {
                snap(&mut l.span);
            }
        }
    }

    /// Sorted by file, position, then code: the order they are shown in.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            (a.primary.span.file, a.primary.span.start, a.code, &a.message).cmp(&(
                b.primary.span.file,
                b.primary.span.start,
                b.code,
                &b.message,
            ))
        });
    }

    /// Renders every diagnostic as a graphical report (`color` for terminals), in order.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
        let mut out = String::new();
        for d in &self.items {
            let report = Report::new(d, sources);
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, &report);
        }
        out
    }

    /// The machine-readable form (`--format json`).
    pub fn to_json(&self, sources: &SourceMap) -> Vec<JsonDiagnostic> {
        self.items.iter().map(|d| JsonDiagnostic::new(d, sources)).collect()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// A location in the JSON form: file, 1-based line and column of start and end.
#[derive(Debug, Clone, Serialize)]
pub struct JsonLocation {
    /// File name as shown to users.
    pub file: String,
    /// Start line (1-based).
    pub line: usize,
    /// Start column (1-based, in characters).
    pub column: usize,
    /// End line.
    pub end_line: usize,
    /// End column.
    pub end_column: usize,
    /// Byte offsets.
    pub start_byte: usize,
    /// End byte offset (exclusive).
    pub end_byte: usize,
    /// Label text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One diagnostic in the JSON form.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    /// Stable code.
    pub code: &'static str,
    /// "error" or "warning".
    pub severity: Severity,
    /// Message.
    pub message: String,
    /// Help line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Primary location.
    pub location: JsonLocation,
    /// Secondary locations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<JsonLocation>,
}

impl JsonDiagnostic {
    fn new(d: &Diagnostic, sources: &SourceMap) -> JsonDiagnostic {
        let loc = |l: &Label| {
            let (line, column) = sources.line_col(l.span.file, l.span.start);
            let (end_line, end_column) = sources.line_col(l.span.file, l.span.end);
            JsonLocation {
                file: sources.get(l.span.file).name.clone(),
                line,
                column,
                end_line,
                end_column,
                start_byte: l.span.start,
                end_byte: l.span.end,
                message: l.message.clone(),
            }
        };
        JsonDiagnostic {
            code: d.code,
            severity: d.severity,
            message: d.message.clone(),
            help: d.help.clone(),
            location: loc(&d.primary),
            related: d.secondary.iter().map(loc).collect(),
        }
    }
}

/// Adapter from a [`Diagnostic`] to miette. Labels in the primary file are drawn together;
/// labels in other files become related notes, each with its own source.
struct Report {
    code: &'static str,
    severity: miette::Severity,
    message: String,
    help: Option<String>,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl Report {
    fn new(d: &Diagnostic, sources: &SourceMap) -> Report {
        let file = sources.get(d.primary.span.file);
        let labeled = |l: &Label, primary: bool| {
            let len = l.span.end.saturating_sub(l.span.start);
            let text = (!l.message.is_empty()).then(|| l.message.clone());
            if primary {
                LabeledSpan::new_primary_with_span(text, (l.span.start, len))
            } else {
                LabeledSpan::new_with_span(text, (l.span.start, len))
            }
        };
        let mut labels = vec![labeled(&d.primary, true)];
        let mut related = Vec::new();
        for l in &d.secondary {
            if l.span.file == d.primary.span.file {
                labels.push(labeled(l, false));
            } else {
                let other = sources.get(l.span.file);
                related.push(Report {
                    code: "",
                    severity: miette::Severity::Advice,
                    message: if l.message.is_empty() { "related location".into() } else { l.message.clone() },
                    help: None,
                    source: NamedSource::new(other.name.clone(), other.text.to_string()),
                    labels: vec![labeled(l, true)],
                    related: Vec::new(),
                });
            }
        }
        Report {
            code: d.code,
            severity: match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            message: d.message.clone(),
            help: d.help.clone(),
            source: NamedSource::new(file.name.clone(), file.text.to_string()),
            labels,
            related,
        }
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(self.code) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)))
    }
}
