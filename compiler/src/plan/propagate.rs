//! Propagation through the ML graph. In: a resource's configuration and the effects of the
//! resources planned before it (the spec is in dependency order, so every upstream effect is
//! known). Out: its [`Cause`]s — upstream changes it must react to — and, once its action is
//! decided, its own [`Effect`] on what is downstream.
//!
//! The chain is data → features → training set → model → serving → monitoring:
//! a source change that alters rows, or columns a view reads, rematerialises the view; a view
//! whose feature data changed rebuilds the training set of every job that trains on those
//! features (a retrain: replace); a new model version is rolled out by the endpoints serving the
//! job (update); monitors of those endpoints reset their drift reference (update).

use super::show::number;
use super::Action;
use crate::model::{Config, Feature, FeatureKind, FeatureView, Rollout, Source, TrainingJob};
use std::collections::{BTreeSet, HashMap};

/// Which of the data a resource provides changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Touched {
    /// All of it: new rows, keys, ttl or source.
    All,
    /// These columns (of a source) or features (of a view).
    Some(BTreeSet<String>),
}

impl Touched {
    fn union(a: Option<Touched>, b: Option<Touched>) -> Option<Touched> {
        match (a, b) {
            (Some(Touched::All), _) | (_, Some(Touched::All)) => Some(Touched::All),
            (Some(Touched::Some(mut x)), Some(Touched::Some(y))) => {
                x.extend(y);
                Some(Touched::Some(x))
            }
            (x, None) => x,
            (None, y) => y,
        }
    }

    fn contains(&self, name: &str) -> bool {
        match self {
            Touched::All => true,
            Touched::Some(names) => names.contains(name),
        }
    }
}

/// What a resource's change means downstream.
#[derive(Debug, Clone, Default)]
pub(super) struct Effect {
    /// Data it provides that changed: a source's rows or columns, a view's features.
    pub data: Option<Touched>,
    /// A new model version: a job created or retrained, an endpoint rolling one out.
    pub new_model: bool,
    /// A training job whose configuration changed (retrained or updated in place): the retrain
    /// policies of the job must retrain with the new one.
    pub reconfigured: bool,
}

/// An upstream change a resource reacts to.
#[derive(Debug, Clone)]
pub(super) struct Cause {
    /// The upstream resource.
    pub address: String,
    /// In words: "feature_view.x changed: training set rebuilt".
    pub reason: String,
    /// Does it replace the resource (a retrain)?
    pub replaces: bool,
    /// For a view: which of its features the upstream change reaches.
    touched: Option<Touched>,
}

/// Effects of the resources planned so far, by address.
#[derive(Debug, Default)]
pub(super) struct Effects<'a> {
    map: HashMap<&'a str, Effect>,
}

impl<'a> Effects<'a> {
    fn get(&self, address: &str) -> Option<&Effect> {
        self.map.get(address)
    }

    /// A created resource: downstream resources that now reference it show that in their own
    /// diff; only a new job's model is worth naming as a cause (for its endpoints).
    pub(super) fn record_create(&mut self, address: &'a str, config: &Config) {
        let new_model = matches!(config, Config::TrainingJob(_));
        self.map.insert(address, Effect { data: None, new_model, reconfigured: false });
    }

    /// Records and returns the effect of a resource that was in state.
    pub(super) fn record(
        &mut self,
        address: &'a str,
        before: &Config,
        after: &Config,
        action: Action,
        causes: &[Cause],
    ) -> Effect {
        let changed = matches!(action, Action::Update | Action::Replace);
        let effect = match (before, after) {
            _ if !changed => Effect::default(),
            _ if action == Action::Replace && !matches!(after, Config::TrainingJob(_) | Config::Endpoint(_)) => {
                Effect { data: Some(Touched::All), ..Effect::default() }
            }
            (Config::Source(b), Config::Source(a)) => Effect { data: source_touched(b, a), ..Effect::default() },
            (Config::FeatureView(b), Config::FeatureView(a)) => {
                let upstream = causes.iter().fold(None, |acc, c| Touched::union(acc, c.touched.clone()));
                Effect { data: Touched::union(view_touched(b, a), upstream), ..Effect::default() }
            }
            (_, Config::TrainingJob(_)) => {
                Effect { data: None, new_model: action == Action::Replace, reconfigured: true }
            }
            (b, Config::Endpoint(a)) => {
                let switched = !matches!(b, Config::Endpoint(b) if b.model == a.model);
                Effect { data: None, new_model: switched || !causes.is_empty(), reconfigured: false }
            }
            _ => Effect::default(),
        };
        self.map.insert(address, effect.clone());
        effect
    }
}

/// The upstream changes `config` (applied before as `before`) must react to. An upstream change
/// is moot when the resource itself no longer reads the same thing (a new label, a new source):
/// its own diff already says so.
pub(super) fn causes(before: &Config, config: &Config, effects: &Effects) -> Vec<Cause> {
    let mut out = Vec::new();
    match config {
        Config::FeatureView(v) if matches!(before, Config::FeatureView(b) if b.source == v.source) => {
            let reads = effects.get(&v.source).and_then(|e| e.data.as_ref()).and_then(|t| view_reads(v, t));
            if let Some(touched) = reads {
                out.push(Cause {
                    address: v.source.clone(),
                    reason: format!("{} changed: features rematerialised", v.source),
                    replaces: false,
                    touched: Some(touched),
                });
            }
        }
        Config::TrainingJob(j) => {
            for view in &j.features {
                if effects.get(view).and_then(|e| e.data.as_ref()).is_some_and(|t| trains_on(j, t)) {
                    out.push(retrain(view, format!("{view} changed: training set rebuilt")));
                }
            }
            let label = &j.label;
            let same_label = matches!(before, Config::TrainingJob(b) if b.label == *label);
            if let Some(t) = effects.get(&label.source).and_then(|e| e.data.as_ref()).filter(|_| same_label) {
                match t {
                    Touched::All => {
                        out.push(retrain(&label.source, format!("{} changed: training set rebuilt", label.source)))
                    }
                    t if t.contains(&label.column) => out.push(retrain(
                        &label.source,
                        format!("label column {}.{} changed: training set rebuilt", label.source, label.column),
                    )),
                    _ => {}
                }
            }
        }
        Config::Endpoint(e) if effects.get(&e.model).is_some_and(|x| x.new_model) => out.push(Cause {
            address: e.model.clone(),
            reason: format!("new model version from {}, rolled out {}", e.model, rollout(&e.rollout)),
            replaces: false,
            touched: None,
        }),
        Config::RetrainPolicy(p) if effects.get(&p.job).is_some_and(|x| x.reconfigured) => out.push(Cause {
            address: p.job.clone(),
            reason: format!("{} changed: the policy retrains with its new configuration", p.job),
            replaces: false,
            touched: None,
        }),
        Config::Monitor(m) if effects.get(&m.endpoint).is_some_and(|x| x.new_model) => out.push(Cause {
            address: m.endpoint.clone(),
            reason: format!("{} serves a new model version: drift reference reset", m.endpoint),
            replaces: false,
            touched: None,
        }),
        _ => {}
    }
    out
}

/// How an endpoint takes a new version, in words.
fn rollout(r: &Rollout) -> String {
    let steps: Vec<String> = r.steps.iter().map(|s| format!("{}%", number(*s))).collect();
    let pace = r.interval.map(|i| format!(", {i} per step")).unwrap_or_default();
    match r.strategy.as_str() {
        "immediate" => "immediately to all traffic".into(),
        "canary" if !steps.is_empty() => format!("as a canary ({}{pace})", steps.join(" → ")),
        other => other.replace('_', "-"),
    }
}

fn retrain(address: &str, reason: String) -> Cause {
    Cause { address: address.to_string(), reason, replaces: true, touched: None }
}

/// Produced values an in-place update recomputes (they become "known after apply").
pub(super) fn recomputed(config: &Config, effect: &Effect, caused: bool) -> Vec<&'static str> {
    match config {
        Config::Source(_) if effect.data == Some(Touched::All) => vec!["rows", "watermark"],
        Config::FeatureView(_) if effect.data.is_some() => vec!["watermark"],
        Config::Endpoint(_) if effect.new_model => vec!["version"],
        Config::Monitor(_) if caused => vec!["status"],
        _ => Vec::new(),
    }
}

/// What a source change alters for its readers. Where the rows come from changes everything;
/// the connection string is left out on purpose: it carries credentials and host, which are
/// rotated without the rows changing (the table or query says which rows).
fn source_touched(b: &Source, a: &Source) -> Option<Touched> {
    let rows = |s: &Source| {
        (s.format, s.path.clone(), s.table.clone(), s.query.clone(), s.timestamp.clone(), s.delimiter.clone(), s.header)
    };
    if rows(b) != rows(a) {
        return Some(Touched::All);
    }
    let names: BTreeSet<String> =
        b.columns.iter().chain(&a.columns).map(|c| c.name.clone()).filter(|n| b.column(n) != a.column(n)).collect();
    (!names.is_empty()).then_some(Touched::Some(names))
}

/// Columns a feature reads.
fn reads(f: &Feature) -> Vec<&str> {
    match &f.kind {
        FeatureKind::Column { column } | FeatureKind::Aggregate { column, .. } => vec![column.as_str()],
        FeatureKind::Expression { columns, .. } => columns.iter().map(String::as_str).collect(),
    }
}

/// Which features of a view a change to its source reaches.
fn view_reads(v: &FeatureView, touched: &Touched) -> Option<Touched> {
    let Touched::Some(columns) = touched else { return Some(Touched::All) };
    if v.join_keys.iter().any(|k| columns.contains(k)) {
        return Some(Touched::All);
    }
    let features: BTreeSet<String> =
        v.features.iter().filter(|f| reads(f).iter().any(|c| columns.contains(*c))).map(|f| f.name.clone()).collect();
    (!features.is_empty()).then_some(Touched::Some(features))
}

/// Which of a view's features changed definition (descriptions aside), or all of them.
fn view_touched(b: &FeatureView, a: &FeatureView) -> Option<Touched> {
    if b.source != a.source || b.entities != a.entities || b.join_keys != a.join_keys || b.ttl != a.ttl {
        return Some(Touched::All);
    }
    let definition = |v: &FeatureView, name: &str| {
        v.features.iter().find(|f| f.name == name).map(|f| Feature { description: None, ..f.clone() })
    };
    let names: BTreeSet<String> = b
        .features
        .iter()
        .chain(&a.features)
        .map(|f| f.name.clone())
        .filter(|n| definition(b, n) != definition(a, n))
        .collect();
    (!names.is_empty()).then_some(Touched::Some(names))
}

/// Does a job train on any of the touched features (`exclude`d ones do not count)?
fn trains_on(j: &TrainingJob, touched: &Touched) -> bool {
    match touched {
        Touched::All => true,
        Touched::Some(features) => features.iter().any(|f| !j.exclude.contains(f)),
    }
}
