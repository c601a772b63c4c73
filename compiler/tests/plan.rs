//! Golden plans. Each case is a directory under `tests/plan/` holding a `before/` and an `after/`
//! configuration (no `before/`: the plan is made against no state). `before` is compiled and
//! turned into the state an apply of it would leave (serial 1, lineage "test", nothing produced);
//! `after` is compiled and planned against that state. The text, markdown and JSON renderings
//! are compared with `expected.txt`, `expected.md` and `expected.json` in the case directory.
//! Run with `BLESS=1` to write them, after reading the new output by eye.
//!
//! Most cases start from the same system: their `before` is a symlink to `tests/plan/_base/`,
//! so each case's `after/` differs from one shared file in just the change it is about.

use mlops_compiler::plan::{self, render_markdown, render_text, Plan, StalePlan, MARKDOWN_LIMIT};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::state::{ResourceState, State};
use mlops_compiler::{compile, Options};
use std::path::{Path, PathBuf};

fn plan_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plan")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(plan_dir())
        .expect("tests/plan exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("after").is_dir())
        .collect();
    v.sort();
    v
}

#[track_caller]
fn compile_spec(dir: &Path) -> SystemSpec {
    let c = compile(dir, &Options { display_base: Some(plan_dir()), ..Options::default() });
    assert!(
        !c.diagnostics.has_errors(),
        "{} does not compile:\n{}",
        dir.display(),
        c.diagnostics.render(&c.sources, false)
    );
    c.spec.expect("no errors, so a spec")
}

/// The state an apply of `spec` would leave, with nothing produced.
fn applied(spec: &SystemSpec) -> State {
    let mut state = State::new(&spec.system.name, "test".into());
    state.serial = 1;
    for r in &spec.resources {
        state.resources.insert(
            r.address.clone(),
            ResourceState { spec: r.clone(), produced: Default::default(), applied_at: 0, drifted: None },
        );
    }
    state
}

struct Case {
    before: Option<State>,
    after: SystemSpec,
}

fn load(case: &Path) -> Case {
    let before = case.join("before").is_dir().then(|| applied(&compile_spec(&case.join("before"))));
    Case { before, after: compile_spec(&case.join("after")) }
}

#[test]
fn golden_plans() {
    let bless = std::env::var_os("BLESS").is_some();
    let all = cases();
    assert!(all.len() >= 10, "expected at least 10 plan cases, found {}", all.len());
    let mut failures = Vec::new();
    for case in &all {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let c = load(case);
        let p = plan::plan(&c.after, c.before.as_ref());
        let outputs = [
            ("expected.txt", render_text(&p)),
            ("expected.md", render_markdown(&p)),
            ("expected.json", p.to_json().expect("a plan serialises")),
        ];
        for (file, actual) in outputs {
            let path = case.join(file);
            if bless {
                std::fs::write(&path, &actual).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{name}/{file} differs (BLESS=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}"
                )),
                Err(_) => failures.push(format!("{name}/{file} is missing (BLESS=1 to write it)")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_plan_is_deterministic_round_trips_and_is_current() {
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let c = load(&case);
        let p = plan::plan(&c.after, c.before.as_ref());
        assert_eq!(p, plan::plan(&c.after, c.before.as_ref()), "{name}: two plans differ");
        let json = p.to_json().unwrap();
        let back = Plan::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, p, "{name}: the plan does not round-trip through JSON");
        assert_eq!(back.check_current(&c.after, c.before.as_ref()), Ok(()), "{name}");
        assert!(render_markdown(&p).len() < MARKDOWN_LIMIT, "{name}");
    }
}

#[test]
fn no_changes_case_plans_nothing_and_changed_cases_plan_something() {
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let c = load(&case);
        let p = plan::plan(&c.after, c.before.as_ref());
        assert_eq!(p.has_changes(), name != "no_changes", "{name}");
        if name == "no_changes" {
            assert!(render_text(&p).contains("No changes. The ML system matches the configuration."));
        }
    }
}

#[test]
fn a_saved_plan_is_refused_when_state_or_configuration_moved() {
    let c = load(&plan_dir().join("max_depth_change"));
    let state = c.before.expect("the case has a before");
    let p = plan::plan(&c.after, Some(&state));

    let mut moved = state.clone();
    moved.serial = 2;
    let err = p.check_current(&c.after, Some(&moved)).unwrap_err();
    assert_eq!(err, StalePlan::StateMoved { planned: Some(1), current: Some(2) });
    assert!(err.to_string().contains("serial 1 then, 2 now"), "{err}");

    let mut other = state.clone();
    other.lineage = "another".into();
    assert!(matches!(p.check_current(&c.after, Some(&other)), Err(StalePlan::LineageChanged { .. })));
    assert!(matches!(p.check_current(&c.after, None), Err(StalePlan::LineageChanged { .. })));

    let edited = compile_spec(&plan_dir().join("max_depth_change/before"));
    let err = p.check_current(&edited, Some(&state)).unwrap_err();
    assert!(matches!(err, StalePlan::SpecChanged { .. }));
    assert!(err.to_string().contains("configuration changed since the plan was made"), "{err}");
}

#[test]
fn the_fraud_detection_example_plans_against_no_state_and_against_itself() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fraud-detection");
    let spec = compile_spec(&dir);
    let fresh = plan::plan(&spec, None);
    assert_eq!(fresh.summary.create, spec.resources.len());
    assert!(fresh.changes.iter().all(|c| c.action == plan::Action::Create));
    let same = plan::plan(&spec, Some(&applied(&spec)));
    assert!(!same.has_changes(), "{}", render_text(&same));
}
