//! Unit tests of the planner: diff paths and replace flags, propagation, risk notes, redaction
//! of secrets, stale-plan detection, deletion order and the markdown size cap. Configurations
//! are compiled from HCL text, so the specs are the ones the compiler really produces.

use super::*;
use crate::{compile, Options};

const BASE: &str = r#"
mlops {
  name = "shop"
}

source "orders" {
  format    = "csv"
  path      = "data/orders.csv"
  timestamp = "ts"

  schema {
    customer_id = "string"
    amount      = "float"
    items       = "int"
    returned    = "bool"
    ts          = "timestamp"
  }
}

source "feedback" {
  format     = "postgres"
  connection = "postgresql://app:hunter2@db:5432/shop"
  table      = "returns"
  timestamp  = "reported_at"

  schema {
    prediction_id = "string"
    label         = "bool"
    reported_at   = "timestamp"
  }
}

entity "customer" {
  join_keys = ["customer_id"]
}

feature_view "spend" {
  source   = source.orders
  entities = [entity.customer]
  ttl      = "7d"

  feature "amount" {
    column = "amount"
  }

  feature "items" {
    column = "items"
  }

  feature "amount_sum" {
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }
}

training_job "returns" {
  features = [feature_view.spend]
  label    = source.orders.columns.returned
  exclude  = ["items"]

  params = {
    objective = "binary:logistic"
    max_depth = 6
    eta       = 0.1
    rounds    = 100
  }

  gate {
    metric = "auc"
    min    = 0.8
  }
}

endpoint "api" {
  model    = training_job.returns
  replicas = 2

  rollout {
    strategy = "canary"
    steps    = [10, 100]
    interval = "5m"

    rollback {
      metric = "error_rate"
      above  = 0.02
    }
  }
}

monitor "health" {
  endpoint    = endpoint.api
  window      = "1h"
  min_samples = 500

  drift {
    features  = ["amount", "amount_sum"]
    method    = "psi"
    threshold = 0.2
  }

  drift {
    features  = ["prediction"]
    method    = "chi2"
    threshold = 0.05
  }

  performance {
    feedback = source.feedback
    metric   = "f1"
    min      = 0.6
  }
}

retrain_policy "auto" {
  job      = training_job.returns
  on       = [monitor.health]
  cooldown = "6h"

  budget {
    max_runs = 2
    per      = "24h"
  }

  promote {
    compare  = "auc"
    min_gain = 0.01
    via      = endpoint.api
  }
}
"#;

#[track_caller]
fn spec(hcl: &str) -> SystemSpec {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.mlops.hcl"), hcl).unwrap();
    let c = compile(dir.path(), &Options::default());
    assert!(!c.diagnostics.has_errors(), "{}", c.diagnostics.render(&c.sources, false));
    c.spec.unwrap()
}

fn applied(spec: &SystemSpec) -> State {
    let mut state = State::new(&spec.system.name, "lineage-1".into());
    state.serial = 4;
    for r in &spec.resources {
        state.resources.insert(
            r.address.clone(),
            ResourceState { spec: r.clone(), produced: BTreeMap::new(), applied_at: 0, drifted: None },
        );
    }
    state
}

/// The plan from BASE to BASE with `edits` (old, new) applied.
#[track_caller]
fn plan_edit(edits: &[(&str, &str)]) -> Plan {
    let mut after = BASE.to_string();
    for (old, new) in edits {
        assert!(after.contains(old), "{old:?} not in the configuration");
        after = after.replacen(old, new, 1);
    }
    plan(&spec(&after), Some(&applied(&spec(BASE))))
}

#[track_caller]
fn get<'p>(p: &'p Plan, address: &str) -> &'p ResourceChange {
    p.changes.iter().find(|c| c.address == address).unwrap_or_else(|| panic!("{address} not in the plan"))
}

fn actions(p: &Plan) -> Vec<(&str, Action)> {
    p.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.as_str(), c.action)).collect()
}

fn risk_texts(c: &ResourceChange) -> Vec<(RiskLevel, &str)> {
    c.risks.iter().map(|r| (r.level, r.text.as_str())).collect()
}

// ---- diff --------------------------------------------------------------------------------

#[test]
fn unchanged_configuration_plans_nothing() {
    let p = plan_edit(&[]);
    assert!(!p.has_changes());
    assert_eq!(p.summary.noop, 8);
    assert_eq!(p.state_serial, Some(4));
    assert_eq!(p.state_lineage.as_deref(), Some("lineage-1"));
    assert!(render_text(&p).ends_with("No changes. The ML system matches the configuration.\n"));
}

#[test]
fn param_change_replaces_the_job_with_a_json_path_and_reason() {
    let p = plan_edit(&[("max_depth = 6", "max_depth = 8")]);
    let job = get(&p, "training_job.returns");
    assert_eq!(job.action, Action::Replace);
    assert_eq!(job.reasons, vec!["max_depth 6 → 8".to_string()]);
    let a = &job.attributes[0];
    assert_eq!(a.path, "config.params.max_depth");
    assert_eq!((&a.before, &a.after), (&AttrValue::Known(6.into()), &AttrValue::Known(8.into())));
    assert!(a.forces_replace);
    // The new model version and its metrics exist only after training.
    let produced: Vec<(&str, &AttrValue)> = job
        .attributes
        .iter()
        .filter(|a| a.path.starts_with("produced."))
        .map(|a| (a.path.as_str(), &a.after))
        .collect();
    assert_eq!(
        produced,
        vec![
            ("produced.version", &AttrValue::Unknown),
            ("produced.metrics", &AttrValue::Unknown),
            ("produced.model_uri", &AttrValue::Unknown)
        ]
    );
    assert!(render_text(&p).contains("~ params.max_depth: 6 → 8  # forces retraining"));
    assert!(render_text(&p).contains("~ version: (known after apply)"));
}

#[test]
fn objective_is_governed_by_params_and_replaces() {
    let p = plan_edit(&[("objective = \"binary:logistic\"", "objective = \"binary:hinge\"")]);
    let job = get(&p, "training_job.returns");
    assert_eq!(job.action, Action::Replace);
    assert!(job.attributes.iter().any(|a| a.path == "config.objective" && a.forces_replace));
}

#[test]
fn replicas_update_in_place_without_propagation() {
    let p = plan_edit(&[("replicas = 2", "replicas = 1")]);
    assert_eq!(actions(&p), vec![("endpoint.api", Action::Update)]);
    let c = get(&p, "endpoint.api");
    assert_eq!(c.attributes.len(), 1, "no new model version, so no unknown version: {:?}", c.attributes);
    assert_eq!(risk_texts(c), vec![(RiskLevel::Info, "replicas reduced 2 → 1")]);
}

#[test]
fn named_list_elements_are_keyed_by_name() {
    let p = plan_edit(&[(
        "  feature \"items\" {\n    column = \"items\"\n  }\n",
        "  feature \"items\" {\n    column = \"amount\"\n  }\n\n  feature \"big\" {\n    expression = \"amount * 2\"\n  }\n",
    )]);
    let view = get(&p, "feature_view.spend");
    let paths: Vec<&str> = view.attributes.iter().map(|a| a.path.as_str()).collect();
    assert!(paths.contains(&"config.features[items].column"), "{paths:?}");
    assert!(paths.contains(&"config.features[big]"), "{paths:?}");
    let big = view.attributes.iter().find(|a| a.path == "config.features[big]").unwrap();
    assert_eq!(big.before, AttrValue::Absent);
    // The name is in the path, so the rendering leaves it out of the value.
    assert!(render_text(&p).contains("+ features[big]: { type = \"expression\""), "{}", render_text(&p));
}

#[test]
fn entity_join_keys_replace_entity_view_and_retrain() {
    let p = plan_edit(&[("join_keys = [\"customer_id\"]", "join_keys = [\"customer_id\", \"items\"]")]);
    assert_eq!(get(&p, "entity.customer").action, Action::Replace);
    let view = get(&p, "feature_view.spend");
    assert_eq!(view.action, Action::Replace);
    assert!(view.attributes.iter().any(|a| a.path == "config.join_keys" && a.forces_replace));
    assert_eq!(get(&p, "training_job.returns").action, Action::Replace);
}

#[test]
fn view_source_change_replaces_the_view() {
    let extra = "\nsource \"orders_v2\" {\n  format    = \"parquet\"\n  path      = \"data/orders.parquet\"\n  timestamp = \"ts\"\n\n  schema {\n    customer_id = \"string\"\n    amount      = \"float\"\n    items       = \"int\"\n    returned    = \"bool\"\n    ts          = \"timestamp\"\n  }\n}\n";
    let mut after = BASE.replacen("  source   = source.orders\n", "  source   = source.orders_v2\n", 1);
    after.push_str(extra);
    let p = plan(&spec(&after), Some(&applied(&spec(BASE))));
    assert_eq!(get(&p, "source.orders_v2").action, Action::Create);
    let view = get(&p, "feature_view.spend");
    assert_eq!(view.action, Action::Replace);
    assert_eq!(view.reasons[0], "source source.orders → source.orders_v2");
    assert_eq!(get(&p, "training_job.returns").action, Action::Replace);
}

// ---- propagation -------------------------------------------------------------------------

#[test]
fn feature_change_retrains_rolls_out_and_resets_monitors_in_order() {
    let p = plan_edit(&[("window    = \"24h\"", "window    = \"48h\"")]);
    assert_eq!(
        actions(&p),
        vec![
            ("feature_view.spend", Action::Update),
            ("training_job.returns", Action::Replace),
            ("endpoint.api", Action::Update),
            ("monitor.health", Action::Update),
            ("retrain_policy.auto", Action::Update),
        ]
    );
    let policy = get(&p, "retrain_policy.auto");
    assert_eq!(
        policy.reasons,
        vec!["training_job.returns changed: the policy retrains with its new configuration".to_string()]
    );
    let job = get(&p, "training_job.returns");
    assert_eq!(job.reasons, vec!["feature_view.spend changed: training set rebuilt".to_string()]);
    assert_eq!(job.caused_by, vec!["feature_view.spend".to_string()]);
    let endpoint = get(&p, "endpoint.api");
    assert_eq!(
        endpoint.reasons,
        vec![
            "new model version from training_job.returns, rolled out as a canary (10% → 100%, 5m per step)".to_string()
        ]
    );
    assert_eq!(
        get(&p, "monitor.health").reasons,
        vec!["endpoint.api serves a new model version: drift reference reset".to_string()]
    );
    let view = get(&p, "feature_view.spend");
    assert_eq!(
        risk_texts(view),
        vec![(RiskLevel::Warn, "training data window changed → full retrain (amount_sum window 1d → 2d)")]
    );
    // The retrain policy takes the new definition, or its next retrain would rebuild the old one.
    assert_eq!(get(&p, "retrain_policy.auto").action, Action::Update);
}

#[test]
fn source_column_read_by_a_view_propagates_but_an_unread_one_does_not() {
    let p = plan_edit(&[("    items       = \"int\"\n", "    items       = \"int\"\n    coupon      = \"string\"\n")]);
    assert_eq!(actions(&p), vec![("source.orders", Action::Update)]);

    let p = plan_edit(&[("amount      = \"float\"", "amount      = \"int\"")]);
    assert_eq!(get(&p, "feature_view.spend").action, Action::Update);
    // The view's feature type follows its column; the reason names both.
    assert_eq!(
        get(&p, "feature_view.spend").reasons,
        vec![
            "features[amount].dtype float → int".to_string(),
            "source.orders changed: features rematerialised".to_string()
        ]
    );
    assert_eq!(get(&p, "training_job.returns").action, Action::Replace);
}

#[test]
fn change_to_an_excluded_feature_does_not_retrain() {
    // `items` is excluded from the model: rematerialised, but the training set is the same.
    let p = plan_edit(&[("    items       = \"int\"\n", "    items       = \"float\"\n")]);
    assert_eq!(actions(&p), vec![("source.orders", Action::Update), ("feature_view.spend", Action::Update)]);
}

#[test]
fn new_data_location_rebuilds_everything_downstream() {
    let p = plan_edit(&[("path      = \"data/orders.csv\"", "path      = \"data/orders-2025.csv\"")]);
    let job = get(&p, "training_job.returns");
    assert_eq!(job.action, Action::Replace);
    assert_eq!(job.caused_by, vec!["feature_view.spend".to_string(), "source.orders".to_string()]);
    let source = get(&p, "source.orders");
    assert!(source.attributes.iter().any(|a| a.path == "produced.watermark" && a.after == AttrValue::Unknown));
}

#[test]
fn online_flag_and_descriptions_do_not_retrain() {
    let p = plan_edit(&[(
        "  ttl      = \"7d\"\n",
        "  ttl      = \"7d\"\n  online   = false\n  description = \"Spend.\"\n",
    )]);
    assert_eq!(actions(&p), vec![("feature_view.spend", Action::Update)]);
}

#[test]
fn label_change_retrains_once_with_a_warning() {
    let p = plan_edit(&[
        ("    returned    = \"bool\"\n", "    returned    = \"bool\"\n    disputed    = \"bool\"\n"),
        ("label    = source.orders.columns.returned", "label    = source.orders.columns.disputed"),
    ]);
    let job = get(&p, "training_job.returns");
    assert_eq!(job.action, Action::Replace);
    assert_eq!(job.reasons, vec!["label.column returned → disputed".to_string()]);
    assert!(risk_texts(job).iter().any(|(l, t)| *l == RiskLevel::Warn && t.starts_with("label changed")));
}

// ---- risks -------------------------------------------------------------------------------

#[test]
fn gate_risks() {
    let p = plan_edit(&[("min    = 0.8", "min    = 0.7")]);
    let job = get(&p, "training_job.returns");
    assert_eq!(job.action, Action::Update, "a gate applies at the next promotion, it does not retrain");
    assert_eq!(risk_texts(job), vec![(RiskLevel::Warn, "gate lowered auc 0.8 → 0.7")]);

    // A policy that promotes needs some gate, so the auc gate is swapped for an f1 one.
    let p = plan_edit(&[("    metric = \"auc\"\n    min    = 0.8", "    metric = \"f1\"\n    min    = 0.5")]);
    assert_eq!(
        risk_texts(get(&p, "training_job.returns")),
        vec![
            (RiskLevel::Danger, "gate removed: auc ≥ 0.8 is no longer required before a model is promoted"),
            (RiskLevel::Info, "gate added: f1 ≥ 0.5")
        ]
    );
}

#[test]
fn drift_threshold_direction_depends_on_the_method() {
    let p = plan_edit(&[("threshold = 0.2", "threshold = 0.3")]);
    assert_eq!(
        risk_texts(get(&p, "monitor.health")),
        vec![(RiskLevel::Warn, "drift threshold loosened 0.2 → 0.3 (psi on amount, amount_sum): fewer drift alerts")]
    );
    let p = plan_edit(&[("threshold = 0.2", "threshold = 0.1")]);
    assert_eq!(get(&p, "monitor.health").risks[0].level, RiskLevel::Info);
    // chi2's threshold is a significance level: a smaller α alerts less.
    let p = plan_edit(&[("threshold = 0.05", "threshold = 0.01")]);
    assert_eq!(
        risk_texts(get(&p, "monitor.health")),
        vec![(RiskLevel::Warn, "drift threshold loosened 0.05 → 0.01 (chi2 on prediction): fewer drift alerts")]
    );
}

#[test]
fn monitor_check_removals_and_loosened_performance() {
    let p = plan_edit(&[
        ("  drift {\n    features  = [\"prediction\"]\n    method    = \"chi2\"\n    threshold = 0.05\n  }\n", ""),
        ("min      = 0.6", "min      = 0.4"),
    ]);
    assert_eq!(
        risk_texts(get(&p, "monitor.health")),
        vec![
            (RiskLevel::Warn, "drift check removed (chi2 on prediction)"),
            (RiskLevel::Warn, "performance alert loosened f1 0.6 → 0.4")
        ]
    );
}

#[test]
fn rollout_risks() {
    let p = plan_edit(&[(
        "    strategy = \"canary\"\n    steps    = [10, 100]\n    interval = \"5m\"\n",
        "    strategy = \"immediate\"\n",
    )]);
    assert_eq!(
        risk_texts(get(&p, "endpoint.api")),
        vec![(RiskLevel::Danger, "canary replaced by immediate rollout: traffic to an untested model")]
    );
    let p = plan_edit(&[("above  = 0.02", "above  = 0.05")]);
    assert_eq!(
        risk_texts(get(&p, "endpoint.api")),
        vec![(RiskLevel::Warn, "rollback threshold loosened error_rate 0.02 → 0.05")]
    );
    let p = plan_edit(&[("\n    rollback {\n      metric = \"error_rate\"\n      above  = 0.02\n    }\n", "")]);
    assert_eq!(get(&p, "endpoint.api").risks[0].level, RiskLevel::Danger);
    assert!(get(&p, "endpoint.api").risks[0].text.starts_with("rollback rule removed"));
}

#[test]
fn a_new_version_rolled_out_immediately_is_a_warning() {
    let p = plan_edit(&[
        (
            "    strategy = \"canary\"\n    steps    = [10, 100]\n    interval = \"5m\"\n",
            "    strategy = \"immediate\"\n",
        ),
        ("max_depth = 6", "max_depth = 4"),
    ]);
    let e = get(&p, "endpoint.api");
    assert!(e.reasons.iter().any(|r| r.ends_with("rolled out immediately to all traffic")), "{:?}", e.reasons);
    assert_eq!(e.risks[0].level, RiskLevel::Danger);

    let immediate = BASE.replacen(
        "    strategy = \"canary\"\n    steps    = [10, 100]\n    interval = \"5m\"\n",
        "    strategy = \"immediate\"\n",
        1,
    );
    let p = plan(&spec(&immediate.replacen("max_depth = 6", "max_depth = 4", 1)), Some(&applied(&spec(&immediate))));
    assert_eq!(
        risk_texts(get(&p, "endpoint.api")),
        vec![(RiskLevel::Warn, "the new model version takes all traffic at once (immediate rollout, no canary)")]
    );
}

#[test]
fn retrain_policy_risks() {
    let p = plan_edit(&[
        ("max_runs = 2", "max_runs = 5"),
        ("cooldown = \"6h\"", "cooldown = \"2h\""),
        ("min_gain = 0.01", "min_gain = 0"),
    ]);
    assert_eq!(
        risk_texts(get(&p, "retrain_policy.auto")),
        vec![
            (RiskLevel::Warn, "retrain budget raised 2 per 1d → 5 per 1d"),
            (RiskLevel::Warn, "cooldown shortened 6h → 2h"),
            (RiskLevel::Warn, "promotion bar lowered: auc gain 0.01 → 0"),
        ]
    );
    // Same rate over a longer period is not a raise.
    let p = plan_edit(&[("max_runs = 2\n    per      = \"24h\"", "max_runs = 4\n    per      = \"48h\"")]);
    assert!(get(&p, "retrain_policy.auto").risks.is_empty());
}

// ---- deletions ---------------------------------------------------------------------------

#[test]
fn deletions_come_last_dependents_first_with_risks() {
    let i = BASE.find("endpoint \"api\"").unwrap();
    let p = plan(&spec(&BASE[..i]), Some(&applied(&spec(BASE))));
    let deleted: Vec<&str> =
        p.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.address.as_str()).collect();
    assert_eq!(deleted, vec!["retrain_policy.auto", "monitor.health", "endpoint.api"]);
    assert!(p.changes.iter().rev().take(3).all(|c| c.action == Action::Delete));
    let e = get(&p, "endpoint.api");
    assert_eq!(e.reasons, vec!["removed from configuration".to_string()]);
    assert_eq!(
        risk_texts(e),
        vec![
            (RiskLevel::Danger, "endpoint removed: requests to it will fail"),
            (
                RiskLevel::Warn,
                "endpoint removed while monitor.health, retrain_policy.auto reference it: they are removed in this plan too"
            ),
        ]
    );
    assert_eq!(
        risk_texts(get(&p, "monitor.health")),
        vec![(RiskLevel::Warn, "monitor removed: endpoint.api is no longer watched for drift or quality")]
    );
}

#[test]
fn a_state_referencing_vanished_resources_still_plans() {
    let full = spec(BASE);
    let mut state = applied(&full);
    // A state written by hand or by an older mlops: the view and job are gone, but the endpoint
    // and monitor still point at them; and a cycle between two leftovers.
    state.resources.remove("feature_view.spend");
    state.resources.remove("training_job.returns");
    let mut a = state.resources["monitor.health"].clone();
    a.spec.address = "monitor.ghost".into();
    a.spec.depends_on = vec!["monitor.ghost2".into(), "endpoint.nowhere".into()];
    let mut b = a.clone();
    b.spec.address = "monitor.ghost2".into();
    b.spec.depends_on = vec!["monitor.ghost".into()];
    state.resources.insert("monitor.ghost".into(), a);
    state.resources.insert("monitor.ghost2".into(), b);
    let i = BASE.find("feature_view \"spend\"").unwrap();
    let p = plan(&spec(&BASE[..i]), Some(&state));
    let deleted: Vec<&str> =
        p.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.address.as_str()).collect();
    assert_eq!(deleted.len(), 5, "{deleted:?}");
    assert!(
        deleted.iter().position(|a| *a == "retrain_policy.auto") < deleted.iter().position(|a| *a == "endpoint.api")
    );
}

// ---- no state, unknown values, secrets ---------------------------------------------------

#[test]
fn against_no_state_everything_is_created_with_unknowns() {
    let s = spec(BASE);
    let p = plan(&s, None);
    assert_eq!(p.summary, Summary { create: 8, ..Summary::default() });
    assert_eq!((p.state_serial, p.state_lineage.as_deref()), (None, None));
    let e = get(&p, "endpoint.api");
    assert!(e.attributes.iter().any(|a| a.path == "produced.url" && a.after == AttrValue::Unknown));
    assert!(e.attributes.iter().any(|a| a.path == "config.rollout.rollback.above"));
    assert!(render_text(&p).contains("+ url: (known after apply)"));
    assert!(render_text(&p).contains("Plan: 8 to create, 0 to update, 0 to replace, 0 to destroy."));
}

#[test]
fn secrets_never_appear_in_any_rendering() {
    let changed = plan_edit(&[("hunter2", "correct-horse")]);
    let c = get(&changed, "source.feedback");
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.attributes[0].path, "config.connection");
    assert_eq!((&c.attributes[0].before, &c.attributes[0].after), (&AttrValue::Sensitive, &AttrValue::Sensitive));
    // Credentials rotate without the rows changing: nothing downstream.
    assert_eq!(actions(&changed), vec![("source.feedback", Action::Update)]);
    let created = plan(&spec(BASE), None);
    for p in [&changed, &created] {
        for out in [render_text(p), render_markdown(p), p.to_json().unwrap()] {
            assert!(!out.contains("hunter2") && !out.contains("correct-horse"), "{out}");
            assert!(out.contains("(sensitive)") || out.contains("\"sensitive\""));
        }
    }
}

// ---- saved plans -------------------------------------------------------------------------

#[test]
fn saved_plan_round_trips_and_detects_staleness() {
    let before = applied(&spec(BASE));
    let after = spec(&BASE.replacen("max_depth = 6", "max_depth = 7", 1));
    let p = plan(&after, Some(&before));
    let back = Plan::from_json(&p.to_json().unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.check_current(&after, Some(&before)), Ok(()));

    let mut moved = before.clone();
    moved.serial += 1;
    let err = back.check_current(&after, Some(&moved)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the state moved since the plan was made (serial 4 then, 5 now): someone applied in between; \
         run `mlops plan` again and review the new plan"
    );
    let other = spec(BASE);
    assert!(matches!(back.check_current(&other, Some(&before)), Err(StalePlan::SpecChanged { .. })));

    let fresh = plan(&after, None);
    assert_eq!(fresh.check_current(&after, None), Ok(()));
    let err = fresh.check_current(&after, Some(&before)).unwrap_err();
    assert!(err.to_string().contains("lineage (none), but the state is now lineage lineage-1"), "{err}");
}

#[test]
fn plans_of_other_format_versions_are_refused() {
    let p = plan(&spec(BASE), None);
    let json = p.to_json().unwrap().replacen("\"format_version\": 1", "\"format_version\": 9", 1);
    assert!(matches!(Plan::from_json(&json), Err(PlanFormatError::Version { found: 9, expected: 1 })));
    assert!(matches!(Plan::from_json("{"), Err(PlanFormatError::Json(_))));
}

// ---- markdown size cap -------------------------------------------------------------------

fn big_plan(n: usize, risky_every: usize) -> Plan {
    let changes: Vec<ResourceChange> = (0..n)
        .map(|i| {
            let kinds = ["source", "feature_view", "training_job", "endpoint", "monitor"];
            let kind = kinds[i % kinds.len()];
            let action = [Action::Update, Action::NoOp, Action::Replace, Action::Create][i % 4];
            let risks = if risky_every > 0 && i % risky_every == 0 {
                vec![Risk {
                    level: RiskLevel::Warn,
                    text: format!("drift threshold loosened 0.1 → 0.3 on feature_{i}"),
                }]
            } else {
                Vec::new()
            };
            ResourceChange {
                address: format!("module.team_{}.{kind}.resource_{i}", i % 50),
                kind: kind.into(),
                action,
                reasons: vec![format!("params.max_depth {} → {}", i % 10, i % 10 + 1)],
                caused_by: Vec::new(),
                attributes: (0..3)
                    .map(|j| AttrChange {
                        path: format!("config.params.p{j}"),
                        before: AttrValue::Known(j.into()),
                        after: AttrValue::Known((j + 1).into()),
                        forces_replace: j == 0,
                    })
                    .collect(),
                risks,
            }
        })
        .collect();
    let mut summary = Summary::default();
    for c in &changes {
        summary.count(c.action);
    }
    Plan {
        format_version: FORMAT_VERSION,
        system: "huge".into(),
        state_serial: Some(1),
        state_lineage: Some("l".into()),
        spec_hash: "0".repeat(64),
        changes,
        summary,
    }
}

#[test]
fn markdown_of_5000_resources_is_summarised_under_the_limit() {
    for risky_every in [0, 50, 1] {
        let p = big_plan(5_000, risky_every);
        let md = render_markdown(&p);
        assert!(md.len() < MARKDOWN_LIMIT, "{} bytes with risks every {risky_every}", md.len());
        assert!(md.chars().count() < MARKDOWN_LIMIT);
        assert!(md.contains("**Summarised:**"), "risks every {risky_every}");
        assert!(md.contains("**Plan: 1250 to create, 1250 to update, 1250 to replace, 0 to destroy.**"));
    }
    // A few risky resources among many: their details survive the first summarising step.
    let md = render_markdown(&big_plan(400, 100));
    assert!(md.contains("attribute details are shown only for resources with warnings"), "{}", &md[..2000]);
    assert!(md.contains("<details><summary><code>~</code> <code>module.team_0.source.resource_0</code>"));
    // Everything risky at that scale: only addresses, cut off with a count.
    let md = render_markdown(&big_plan(5_000, 1));
    assert!(md.contains("only addresses are listed"));
    assert!(md.contains("more"));
}

#[test]
fn small_markdown_is_complete() {
    let p = plan_edit(&[("max_depth = 6", "max_depth = 8")]);
    let md = render_markdown(&p);
    assert!(!md.contains("Summarised"));
    assert!(md.contains("| `~` | `params.max_depth` | `6` | `8` (forces retraining) |"), "{md}");
    assert!(md.contains("<details><summary>4 resources unchanged</summary>"), "{md}");
}

#[test]
fn markdown_escapes_what_would_break_it() {
    let mut p = big_plan(1, 1);
    p.changes[0].address = "source.x[\"a|b\"]".into();
    p.changes[0].attributes[0].after = AttrValue::Known("x|`y`".into());
    p.changes[0].risks[0].text = "<script> *bold*".into();
    let md = render_markdown(&p);
    assert!(md.contains("<code>source.x[\"a|b\"]</code>"));
    assert!(md.contains("`` \"x\\|`y`\" ``"), "{md}");
    assert!(md.contains("\\<script\\> \\*bold\\*"), "{md}");
}

/// BASE copied `n` times under distinct addresses (references renamed along), as one spec.
fn replicated(base: &SystemSpec, n: usize) -> SystemSpec {
    let mut out = base.clone();
    out.resources.clear();
    for i in 0..n {
        for r in &base.resources {
            let mut json = serde_json::to_string(r).unwrap();
            for other in &base.resources {
                json = json.replace(&format!("\"{}\"", other.address), &format!("\"{}_{i}\"", other.address));
            }
            out.resources.push(serde_json::from_str(&json).unwrap());
        }
    }
    out
}

#[test]
fn a_plan_of_5000_real_resources_renders_a_summarised_comment() {
    let before = replicated(&spec(BASE), 625);
    let after = replicated(&spec(&BASE.replacen("max_depth = 6", "max_depth = 8", 1)), 625);
    assert_eq!(after.resources.len(), 5_000);
    let p = plan(&after, Some(&applied(&before)));
    assert_eq!(p.summary, Summary { update: 1_875, replace: 625, noop: 2_500, ..Summary::default() });
    assert_eq!(get(&p, "endpoint.api_624").caused_by, vec!["training_job.returns_624".to_string()]);
    let md = render_markdown(&p);
    assert!(md.chars().count() < MARKDOWN_LIMIT, "{}", md.len());
    assert!(md.contains("**Summarised:**"));
    assert!(render_text(&p).ends_with("Plan: 0 to create, 1875 to update, 625 to replace, 0 to destroy.\n"));
}

#[test]
fn lost_model_found_by_refresh_is_retrained_and_rolled_out() {
    let s = spec(BASE);
    let mut state = applied(&s);
    state.resources.get_mut("training_job.returns").unwrap().drifted =
        Some(crate::state::Drifted { reason: "model file of version 3 is missing".into(), replace: true });
    let p = plan(&s, Some(&state));
    let job = get(&p, "training_job.returns");
    assert_eq!(job.action, Action::Replace);
    assert_eq!(job.reasons, ["changed outside mlops: model file of version 3 is missing"]);
    assert_eq!(get(&p, "endpoint.api").action, Action::Update);
    assert_eq!(get(&p, "feature_view.spend").action, Action::NoOp);
}

#[test]
fn new_source_rows_rematerialise_without_retraining() {
    let s = spec(BASE);
    let mut state = applied(&s);
    state.resources.get_mut("feature_view.spend").unwrap().drifted =
        Some(crate::state::Drifted { reason: "source data changed since materialised".into(), replace: false });
    let p = plan(&s, Some(&state));
    let view = get(&p, "feature_view.spend");
    assert_eq!(view.action, Action::Update);
    assert!(view.attributes.iter().any(|a| a.path == "produced.watermark" && a.after == AttrValue::Unknown));
    assert_eq!(get(&p, "training_job.returns").action, Action::NoOp, "new data alone does not retrain");
}
