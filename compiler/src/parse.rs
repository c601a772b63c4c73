//! Parsing: files in, hcl-edit syntax trees out (with byte spans into each file). A
//! configuration is a directory of `*.mlops.hcl` files, read in name order so that everything
//! downstream is deterministic.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{FileId, SourceMap, Span};
use hcl_edit::structure::Body;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file extension of configuration files.
pub const EXTENSION: &str = ".mlops.hcl";

/// One parsed file.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// Which file.
    pub file: FileId,
    /// Its syntax tree.
    pub body: Arc<Body>,
}

/// The configuration files of a directory, sorted by name (not recursive: subdirectories are
/// modules or data, like Terraform).
pub fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(EXTENSION)))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and parses every configuration file of `dir`. `name_of` gives the name a file is shown
/// under. Unreadable files and syntax errors become diagnostics; `span` is where to point when
/// the directory itself is the problem (a module call), if anywhere.
pub fn load_dir(
    dir: &Path,
    name_of: &dyn Fn(&Path) -> String,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Result<Vec<ParsedFile>, std::io::Error> {
    let mut out = Vec::new();
    for path in config_files(dir)? {
        let file_id = match sources.find(&path) {
            Some(id) => id,
            None => match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = match String::from_utf8(bytes) {
                        Ok(t) => t,
                        Err(e) => {
                            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                            let id = sources.add(name_of(&path), &path, lossy);
                            let at = e.utf8_error().valid_up_to();
                            diags.push(
                                Diagnostic::error(codes::SYNTAX, Span::new(id, at..at + 1), "file is not valid UTF-8")
                                    .label("invalid byte here")
                                    .help("save the file as UTF-8"),
                            );
                            continue;
                        }
                    };
                    sources.add(name_of(&path), &path, text)
                }
                Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            },
        };
        if let Some(parsed) = parse_file(file_id, sources, diags) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// Parses one loaded file; a syntax error becomes a diagnostic and `None`.
pub fn parse_file(file: FileId, sources: &SourceMap, diags: &mut Diagnostics) -> Option<ParsedFile> {
    let text = &sources.get(file).text;
    match hcl_edit::parser::parse_body(text) {
        Ok(body) => Some(ParsedFile { file, body: Arc::new(body) }),
        Err(e) => {
            let at = floor_boundary(text, e.location().offset().min(text.len()));
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            let mut d =
                Diagnostic::error(codes::SYNTAX, Span::new(file, at..end), format!("syntax error: {}", e.message()))
                    .label("here")
                    .help(syntax_help(e.message()));
            // At the end of the file, the useful place is the block that was never closed.
            if text[at..].trim().is_empty() {
                if let Some(open) = unclosed_brace(text) {
                    d = d
                        .with(Span::new(file, open..open + 1), "this `{` is never closed")
                        .help("a block or object is not closed: add the missing `}`".to_string());
                }
            }
            diags.push(d);
            None
        }
    }
}

// The parser's messages name what it expected; add the fix people usually need.
fn syntax_help(message: &str) -> String {
    if message.contains("redefined attribute") {
        "an attribute can be set only once in a block: remove one of them".into()
    } else if message.contains("expected `}`") || message.contains("unexpected end") {
        "a block or object is not closed: check that every `{` has a matching `}`".into()
    } else if message.contains("`=`") {
        "attributes are written `name = value`; blocks are written `kind \"label\" { … }`: a `=` or `{` is missing"
            .into()
    } else if message.contains("newline") {
        "put each attribute on its own line (a one-line block holds a single attribute)".into()
    } else {
        "fix the syntax here; the rest of the file is checked once it parses".into()
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Byte offset of the innermost `{` that is never closed, skipping strings and comments
/// (a heuristic for pointing at the right block; heredocs are not special-cased).
fn unclosed_brace(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' => stack.push(i),
            b'}' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    stack.pop()
}
