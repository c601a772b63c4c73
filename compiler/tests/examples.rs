//! Every example compiles without errors, its SystemSpec is snapshotted (a change to the spec
//! format or to an example shows up in review), and compiling twice gives the same bytes.

#[path = "support/examples.rs"]
mod examples_dir;

use examples_dir::{examples, root};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::{compile, Options};
use std::path::Path;

fn compile_ok(dir: &Path) -> String {
    let options = Options { display_base: Some(root()), ..Options::default() };
    let c = compile(dir, &options);
    assert!(
        !c.diagnostics.has_errors(),
        "{} does not compile:\n{}",
        dir.display(),
        c.diagnostics.render(&c.sources, false)
    );
    c.spec.expect("no errors, so a spec").to_json()
}

#[test]
fn every_example_compiles_and_is_snapshotted() {
    let all = examples();
    assert!(all.len() >= 3, "expected at least three examples, found {all:?}");
    for dir in all {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let json = compile_ok(&dir);
        // Determinism: the same input gives the same bytes.
        assert_eq!(json, compile_ok(&dir), "{name}: spec differs between two compilations");
        let back = SystemSpec::from_json(&json).expect("spec parses back");
        assert_eq!(back.to_json(), json, "{name}: spec does not round-trip");
        insta::assert_snapshot!(format!("spec_{name}"), json);
    }
}

#[test]
fn every_module_is_used_by_an_example() {
    let mut used = String::new();
    for dir in examples() {
        for f in mlops_compiler::parse::config_files(&dir).unwrap() {
            used.push_str(&std::fs::read_to_string(f).unwrap());
        }
    }
    for m in std::fs::read_dir(root().join("modules")).unwrap().filter_map(|e| e.ok()) {
        let name = m.file_name().to_string_lossy().into_owned();
        assert!(used.contains(&format!("modules/{name}\"")), "module {name} is not instantiated by any example");
    }
}

#[test]
fn root_variables_override_defaults() {
    let dir = root().join("examples/fraud-detection");
    let mut options = Options::default();
    options.vars.insert("drift_threshold".into(), mlops_compiler::value::Value::Number(0.35));
    options.vars.insert("environment".into(), mlops_compiler::value::Value::String("prod".into()));
    let c = compile(&dir, &options);
    assert!(!c.diagnostics.has_errors(), "{}", c.diagnostics.render(&c.sources, false));
    let spec = c.spec.unwrap();
    let monitor = serde_json::to_value(spec.resource("monitor.fraud_health").unwrap()).unwrap();
    assert_eq!(monitor["config"]["drift"][0]["threshold"], serde_json::json!(0.35));
    // environment = "prod" → local.replicas = 3 → the module's endpoint gets 3 replicas.
    let endpoint = serde_json::to_value(spec.resource("module.fraud.endpoint.api").unwrap()).unwrap();
    assert_eq!(endpoint["config"]["replicas"], serde_json::json!(3));
}

#[test]
fn variable_validation_rejects_bad_input() {
    let dir = root().join("examples/fraud-detection");
    let mut options = Options::default();
    options.vars.insert("drift_threshold".into(), mlops_compiler::value::Value::Number(1.5));
    let c = compile(&dir, &options);
    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec![mlops_compiler::codes::VARIABLE_VALIDATION], "{}", c.diagnostics.render(&c.sources, false));
    assert!(c.spec.is_none());
}
