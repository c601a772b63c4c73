//! The compiler never panics, whatever it is given. Valid configurations (the examples with the
//! modules, fraud-detection most often, and a few inline ones in `support/mutate.rs`) are
//! mutated — lines deleted, duplicated, swapped; tokens, snippets and odd numbers or strings
//! inserted; files cut short — and each mutant is compiled twice. The property: no panic, every diagnostic span
//! inside its file on char boundaries, known codes only, a spec exactly when there are no
//! errors that round-trips through JSON, and byte-identical results from both runs.
//!
//! `PROPTEST_CASES=N` sets the number of cases of each property (defaults: 600 mutants of the
//! examples, 1000 of the inline configurations, besides the systematic prefix/line cases).
//! `cargo run --release -p mlops-compiler --example fuzz_compile -- N` runs the same mutator longer.

#[path = "support/mutate.rs"]
mod mutate;

use mutate::{check, corpus, examples, inline_configs, Config, Mutation};
use proptest::prelude::*;

/// Cases of a property: `PROPTEST_CASES` if set, else `default` (sized so that the whole file
/// runs in well under a minute in a debug build).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    // No regression files: a failure prints the shrunk input, which goes into a named test.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(k, f, a, b)| Mutation::from_raw(k, f, a, b)),
        1..6,
    )
}

/// Applies the mutations, compiles the result and reports any broken promise with the input.
fn mutant_holds(base: &Config, mutations: &[Mutation]) -> Result<(), TestCaseError> {
    let mut config = base.clone();
    for m in mutations {
        m.apply(&mut config);
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = config.write(tmp.path()).expect("write the mutant");
    match check(&dir) {
        Ok(_) => Ok(()),
        Err(failure) => Err(TestCaseError::fail(format!(
            "{failure}\nconfiguration `{}` after {mutations:#?}\n{}",
            base.name,
            config.dump_changed(base)
        ))),
    }
}

#[test]
fn the_corpus_is_valid() {
    for config in corpus() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = config.write(tmp.path()).unwrap();
        let c = mlops_compiler::compile(&dir, &mlops_compiler::Options::default());
        assert!(
            !c.diagnostics.has_errors(),
            "corpus entry `{}` does not compile:\n{}",
            config.name,
            c.diagnostics.render(&c.sources, false)
        );
        let outcome = check(&dir).unwrap_or_else(|f| panic!("corpus entry `{}`: {f}", config.name));
        assert!(outcome.ok);
    }
}

#[test]
fn every_prefix_and_every_deleted_line() {
    // Systematic rather than random: each file of fraud-detection (and its module) cut after each
    // line, and each line removed.
    for base in examples().into_iter().take(1) {
        for file in 0..base.files.len() as u32 {
            let lines = base.files[file as usize].1.lines().count() as u32;
            for line in 0..lines {
                let cut_at = base.files[file as usize]
                    .1
                    .split_inclusive('\n')
                    .take(line as usize)
                    .map(|l| l.chars().count())
                    .sum::<usize>();
                for m in [Mutation::Truncate { file, at: cut_at as u32 }, Mutation::DeleteLine { file, line }] {
                    if let Err(e) = mutant_holds(&base, &[m]) {
                        panic!("{e}");
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(600))]
    #[test]
    fn mutated_examples_never_break_the_compiler(which in any::<u32>(), mutations in mutations()) {
        // Half the cases on fraud-detection (examples()[0]), the rest over the other examples.
        let all = examples();
        let base = if which % 2 == 0 { &all[0] } else { &all[which as usize / 2 % all.len()] };
        mutant_holds(base, &mutations)?;
    }

}

proptest! {
    #![proptest_config(config(1000))]
    #[test]
    fn mutated_inline_configurations_never_break_the_compiler(which in any::<u32>(), mutations in mutations()) {
        let all = inline_configs();
        let base = &all[which as usize % all.len()];
        mutant_holds(base, &mutations)?;
    }
}

/// Checks one inline configuration (a single `main.mlops.hcl`) and fails with the broken promise.
#[track_caller]
fn holds(text: &str) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("main.mlops.hcl"), text).unwrap();
    if let Err(failure) = check(tmp.path()) {
        panic!("{failure}\n----- main.mlops.hcl -----\n{text}");
    }
}

// Found by this property: the feature-expression parser walks bytes, so its error offset after a
// non-ASCII character split the character (spans are now snapped onto char boundaries).
#[test]
fn regression_non_ascii_feature_expression_span_is_on_char_boundaries() {
    holds(
        r#"source "s" {
  format = "csv"
  schema {
    x = "float"
  }
}
entity "e" {
  join_keys = ["x"]
}
feature_view "v" {
  source   = source.s
  entities = [entity.e]
  feature "f" {
    expression = "é"
  }
}
"#,
    );
}
