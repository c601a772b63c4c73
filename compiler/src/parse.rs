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
            let at = e.location().offset().min(text.len());
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            diags.push(
                Diagnostic::error(codes::SYNTAX, Span::new(file, at..end), format!("syntax error: {}", e.message()))
                    .label("here")
                    .help(syntax_help(e.message())),
            );
            None
        }
    }
}

// The parser's messages name what it expected; add the fix people usually need.
fn syntax_help(message: &str) -> String {
    if message.contains("expected `}`") || message.contains("unexpected end") {
        "a block or object is not closed: check that every `{` has a matching `}`".into()
    } else if message.contains("expected `=`") {
        "attributes are written `name = value`; blocks are written `kind \"label\" { … }`".into()
    } else if message.contains("newline") {
        "put each attribute on its own line".into()
    } else {
        "fix the syntax here; the rest of the file is checked once it parses".into()
    }
}
