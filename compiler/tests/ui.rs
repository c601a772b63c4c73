//! The golden corpus of invalid configurations. Each case is a directory under `tests/ui/`
//! holding `*.mlops.hcl` files (and any modules it uses); its expected diagnostics, rendered
//! with miette's no-colour theme, are in `tests/ui/<case>.stderr`. Run with `BLESS=1` to
//! write the expected files after checking the new output by eye.
//!
//! Cases named `warn_*` must produce warnings and no errors; every other case must produce at
//! least one error. Every diagnostic code must be exercised by some case.

use mlops_compiler::{codes, compile, Options};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ui_dir())
        .expect("tests/ui exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Renders a case's diagnostics exactly as `mlops validate` shows them (without colour).
fn render(case: &Path) -> (String, BTreeSet<&'static str>, usize, usize) {
    let options = Options { display_base: Some(ui_dir()), ..Options::default() };
    let c = compile(case, &options);
    let text = c.diagnostics.render(&c.sources, false);
    let codes: BTreeSet<&'static str> = c.diagnostics.iter().map(|d| d.code).collect();
    (text, codes, c.diagnostics.error_count(), c.diagnostics.warning_count())
}

#[test]
fn golden_diagnostics() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    let all = cases();
    assert!(all.len() >= 40, "the corpus should hold at least 40 cases, has {}", all.len());
    for case in &all {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (text, codes, errors, warnings) = render(case);
        seen.extend(codes);
        if name.starts_with("warn_") {
            if errors != 0 || warnings == 0 {
                failures.push(format!("{name}: expected only warnings, got {errors} errors and {warnings} warnings"));
            }
        } else if errors == 0 {
            failures.push(format!("{name}: expected errors, got none"));
        }
        let expected_path = ui_dir().join(format!("{name}.stderr"));
        if bless {
            std::fs::write(&expected_path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == text => {}
            Ok(expected) => failures.push(format!(
                "{name}: diagnostics differ from {name}.stderr (BLESS=1 to update)\n--- expected\n{expected}\n--- actual\n{text}"
            )),
            Err(_) => failures.push(format!("{name}: no {name}.stderr (BLESS=1 to create)\n--- actual\n{text}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Codes that cannot come from a configuration directory in the corpus.
    let untestable = [codes::IO];
    let missing: Vec<&str> =
        codes::ALL.iter().map(|(c, _)| *c).filter(|c| !seen.contains(c) && !untestable.contains(c)).collect();
    assert!(missing.is_empty(), "no ui case exercises: {missing:?}");
}

#[test]
fn no_stale_expectations() {
    let names: BTreeSet<String> =
        cases().iter().map(|c| c.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for e in std::fs::read_dir(ui_dir()).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "stderr") {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(names.contains(&stem), "{} has no case directory", p.display());
        }
    }
}
