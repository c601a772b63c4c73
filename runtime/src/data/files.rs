//! Which files a file source reads. In: the source's `path` (relative to the configuration root,
//! possibly a glob) and the root. Out: the matching files in sorted order, each with the name to
//! show in messages, and a fingerprint of their paths, sizes and modification times.

use super::DataError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataFile {
    /// Where it is.
    pub path: PathBuf,
    /// How messages name it: the configured path with the glob replaced by the file's name, so
    /// messages read like the configuration rather than like the machine they ran on.
    pub display: String,
}

/// The files of a source, sorted by name. `*` (any run of characters) and `?` (one character)
/// may appear in the last path component only; a glob that matches nothing is an error, and so
/// is a plain path that does not exist.
pub(crate) fn resolve(pattern: Option<&str>, address: &str, root: &Path) -> Result<Vec<DataFile>, DataError> {
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Err(DataError::Config {
            address: address.to_string(),
            message: "a csv or parquet source needs `path`; set it to a file or glob relative to the configuration"
                .to_string(),
        });
    };
    let (dir, name) = match pattern.rfind('/') {
        Some(i) => (&pattern[..i + 1], &pattern[i + 1..]),
        None => ("", pattern),
    };
    if dir.contains(['*', '?']) {
        return Err(DataError::Config {
            address: address.to_string(),
            message: format!(
                "`{pattern}`: `*` and `?` may only appear in the file name, not in directories; \
                 move the data into one directory"
            ),
        });
    }
    let full = |file: &str| root.join(format!("{dir}{file}"));
    if !name.contains(['*', '?']) {
        let path = full(name);
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(vec![DataFile { path, display: pattern.to_string() }]),
            Ok(_) => Err(DataError::Config {
                address: address.to_string(),
                message: format!("`{pattern}` is not a file; point `path` at a file or a glob like `{dir}*.csv`"),
            }),
            Err(source) => Err(DataError::Io { address: address.to_string(), path: pattern.to_string(), source }),
        };
    }

    let dir_path = root.join(if dir.is_empty() { "." } else { dir });
    let io = |source| DataError::Io { address: address.to_string(), path: dir.to_string(), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir_path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue; // a name that is not UTF-8 cannot match a UTF-8 pattern
        };
        // Like a shell, a wildcard does not match hidden files unless the pattern says so.
        if file_name.starts_with('.') && !name.starts_with('.') {
            continue;
        }
        // Follow symlinks: a linked data file is still a data file.
        let is_file = std::fs::metadata(entry.path()).map(|m| m.is_file()).unwrap_or(false);
        if is_file && matches(name.as_bytes(), file_name.as_bytes()) {
            names.push(file_name);
        }
    }
    if names.is_empty() {
        return Err(DataError::NoMatch {
            address: address.to_string(),
            pattern: pattern.to_string(),
            root: root.display().to_string(),
        });
    }
    names.sort();
    Ok(names.into_iter().map(|n| DataFile { path: full(&n), display: format!("{dir}{n}") }).collect())
}

/// Does `name` match the wildcard `pattern`? Works on bytes, so `?` matches one byte; data file
/// names are rarely non-ASCII and a mismatch there only means a file is not picked up.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // Greedy matching with one backtrack point (the last `*`), linear in practice.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// sha256 over each file's displayed path, size and modification time, in order.
pub(crate) fn fingerprint(files: &[DataFile], address: &str) -> Result<String, DataError> {
    let mut hash = Sha256::new();
    hash.update(b"files\n");
    for f in files {
        let meta = std::fs::metadata(&f.path).map_err(|source| DataError::Io {
            address: address.to_string(),
            path: f.display.clone(),
            source,
        })?;
        // A file system without modification times fingerprints by size alone.
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        hash.update(format!("{}\0{}\0{}\n", f.display, meta.len(), mtime).as_bytes());
    }
    Ok(hex(&hash.finalize()))
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell() {
        let m = |p: &str, n: &str| matches(p.as_bytes(), n.as_bytes());
        assert!(m("*.csv", "a.csv"));
        assert!(m("*.csv", ".csv"));
        assert!(!m("*.csv", "a.csv.bak"));
        assert!(m("part-?.csv", "part-1.csv"));
        assert!(!m("part-?.csv", "part-10.csv"));
        assert!(m("a*b*c", "aXXbYYbZc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*", "anything"));
        assert!(m("exact.csv", "exact.csv"));
        assert!(!m("exact.csv", "exact.csvx"));
    }

    #[test]
    fn glob_lists_sorted_files_and_skips_directories_and_hidden_files() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        for n in ["b.csv", "a.csv", ".hidden.csv", "c.txt"] {
            std::fs::write(data.join(n), "x\n").unwrap();
        }
        std::fs::create_dir(data.join("dir.csv")).unwrap();
        let files = resolve(Some("data/*.csv"), "source.s", root.path()).unwrap();
        let shown: Vec<&str> = files.iter().map(|f| f.display.as_str()).collect();
        assert_eq!(shown, ["data/a.csv", "data/b.csv"]);
        assert_eq!(files[0].path, data.join("a.csv"));
    }

    #[test]
    fn wildcards_in_directories_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let err = resolve(Some("d*/x.csv"), "source.s", root.path()).unwrap_err();
        assert!(err.to_string().contains("only appear in the file name"), "{err}");
    }
}
