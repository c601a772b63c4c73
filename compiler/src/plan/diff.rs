//! Attribute-level diff of one resource: two typed configurations in (as the JSON the SystemSpec
//! holds), [`AttrChange`]s out — each with its path, before and after values, and whether the
//! schema says a change there replaces the resource. Sensitive values are replaced here, so they
//! never reach a plan. Also the values apply produces (`produced.*`), which a plan can only call
//! "known after apply".

use super::show;
use super::{AttrChange, AttrValue};
use crate::model::Config;
use crate::schema::{self, AttrSchema};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Fields that identify an element of a list of objects, tried in order.
const KEY_FIELDS: [&str; 3] = ["name", "metric", "param"];

/// One step of a path below `config`.
#[derive(Debug, Clone)]
enum Seg {
    Field(String),
    Key(String),
    Index(usize),
}

fn path_text(segs: &[Seg]) -> String {
    let mut s = String::from("config");
    for seg in segs {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Key(k) => {
                s.push('[');
                s.push_str(k);
                s.push(']');
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn config_json(config: &Config) -> Value {
    // A config always serialises (string keys, finite numbers); Null only diffs as "everything".
    match serde_json::to_value(config) {
        Ok(Value::Object(mut m)) => m.remove("config").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Every configured attribute of a new resource, as additions.
pub(super) fn listing(config: &Config) -> Vec<AttrChange> {
    let mut d = Differ { kind: config.kind(), out: Vec::new() };
    let after = config_json(config);
    d.walk(&mut Vec::new(), None, Some(&after), true);
    d.out
}

/// What changed between two configurations of one resource.
pub(super) fn diff(before: &Config, after: &Config) -> Vec<AttrChange> {
    let mut d = Differ { kind: after.kind(), out: Vec::new() };
    let (b, a) = (config_json(before), config_json(after));
    d.walk(&mut Vec::new(), Some(&b), Some(&a), false);
    d.out
}

struct Differ<'k> {
    kind: &'k str,
    out: Vec<AttrChange>,
}

impl Differ<'_> {
    /// `expand`: list the leaves of a one-sided object (a whole new resource) rather than
    /// showing it as one value.
    fn walk(&mut self, segs: &mut Vec<Seg>, before: Option<&Value>, after: Option<&Value>, expand: bool) {
        if before == after {
            return;
        }
        // A new resource's empty lists say nothing.
        if expand && before.is_none() && after.is_some_and(|a| a.as_array().is_some_and(Vec::is_empty)) {
            return;
        }
        match (before, after) {
            (Some(Value::Object(b)), Some(Value::Object(a))) => self.objects(segs, Some(b), Some(a), expand),
            (None, Some(Value::Object(a))) if expand => self.objects(segs, None, Some(a), expand),
            (Some(Value::Array(b)), Some(Value::Array(a))) if !is_plain(b) || !is_plain(a) => {
                self.arrays(segs, b, a, expand)
            }
            (None, Some(Value::Array(a))) if expand && !is_plain(a) => self.arrays(segs, &[], a, expand),
            _ => self.leaf(segs, before, after),
        }
    }

    fn objects(
        &mut self,
        segs: &mut Vec<Seg>,
        before: Option<&Map<String, Value>>,
        after: Option<&Map<String, Value>>,
        expand: bool,
    ) {
        // The after side's field order (the model's declaration order), then removed fields.
        let mut keys: Vec<&String> = after.map(|a| a.keys().collect()).unwrap_or_default();
        if let Some(b) = before {
            keys.extend(b.keys().filter(|k| after.is_none_or(|a| !a.contains_key(*k))));
        }
        for k in keys {
            segs.push(Seg::Field(k.clone()));
            self.walk(segs, before.and_then(|b| b.get(k)), after.and_then(|a| a.get(k)), expand);
            segs.pop();
        }
    }

    fn arrays(&mut self, segs: &mut Vec<Seg>, before: &[Value], after: &[Value], expand: bool) {
        if let Some(key) = key_field(before, after) {
            let id = |v: &Value| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
            for a in after {
                let k = id(a);
                let b = before.iter().find(|b| id(b) == k);
                segs.push(Seg::Key(k));
                match b {
                    Some(b) => self.walk(segs, Some(b), Some(a), expand),
                    None => self.leaf(segs, None, Some(a)),
                }
                segs.pop();
            }
            for b in before.iter().filter(|b| !after.iter().any(|a| id(a) == id(b))) {
                segs.push(Seg::Key(id(b)));
                self.leaf(segs, Some(b), None);
                segs.pop();
            }
        } else {
            for i in 0..before.len().max(after.len()) {
                segs.push(Seg::Index(i));
                match (before.get(i), after.get(i)) {
                    (Some(b), Some(a)) => self.walk(segs, Some(b), Some(a), expand),
                    (b, a) => self.leaf(segs, b, a),
                }
                segs.pop();
            }
        }
    }

    fn leaf(&mut self, segs: &[Seg], before: Option<&Value>, after: Option<&Value>) {
        let value = |v: Option<&Value>| match v {
            None => AttrValue::Absent,
            Some(v) if sensitive(self.kind, segs, v) => AttrValue::Sensitive,
            Some(v) => AttrValue::Known(v.clone()),
        };
        self.out.push(AttrChange {
            path: path_text(segs),
            before: value(before),
            after: value(after),
            forces_replace: before.is_some() && forces_replace(self.kind, segs),
        });
    }
}

/// A list of plain values (or empty), which changes as a whole.
fn is_plain(items: &[Value]) -> bool {
    items.iter().all(|v| !v.is_object())
}

/// The field that names every element of both lists uniquely, if one does.
fn key_field(before: &[Value], after: &[Value]) -> Option<&'static str> {
    if before.is_empty() && after.is_empty() {
        return None;
    }
    KEY_FIELDS.into_iter().find(|key| {
        [before, after].iter().all(|list| {
            let names: Vec<&str> = list.iter().filter_map(|v| v.get(*key).and_then(Value::as_str)).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            names.len() == list.len() && unique.len() == names.len()
        })
    })
}

/// The schema attribute governing a path: the first attribute met walking down from the
/// resource's block (`params.max_depth` is governed by `params`).
fn attr_schema(kind: &str, segs: &[Seg]) -> Option<&'static AttrSchema> {
    let mut block = schema::top_level(kind)?;
    let mut top = true;
    for seg in segs {
        let Seg::Field(name) = seg else { continue };
        // Model fields that come from a differently named attribute or block.
        let name = match (top, kind, name.as_str()) {
            (true, "training_job", "objective" | "rounds" | "task") => "params",
            (true, "source", "columns") => "schema",
            _ => name.as_str(),
        };
        top = false;
        if let Some(a) = block.attr(name) {
            return Some(a);
        }
        let nested = block.block(name).or_else(|| name.strip_suffix('s').and_then(|n| block.block(n)))?;
        block = nested.block;
    }
    None
}

fn forces_replace(kind: &str, segs: &[Seg]) -> bool {
    // A view's join keys are derived from its entities; they key its store, so new keys mean a
    // new store, like an entity's own join_keys.
    if kind == "feature_view" && matches!(segs.first(), Some(Seg::Field(f)) if f == "join_keys") {
        return true;
    }
    attr_schema(kind, segs).is_some_and(|a| a.replace)
}

/// Is the value at this path a secret, or an object holding one?
fn sensitive(kind: &str, segs: &[Seg], value: &Value) -> bool {
    if attr_schema(kind, segs).is_some_and(|a| a.sensitive) {
        return true;
    }
    let Value::Object(m) = value else { return false };
    m.iter().any(|(k, v)| {
        let mut deeper = segs.to_vec();
        deeper.push(Seg::Field(k.clone()));
        sensitive(kind, &deeper, v)
    })
}

/// Every value apply produces for a kind (the schema's computed exports).
pub(super) fn computed(kind: &str) -> Vec<&'static str> {
    schema::top_level(kind).map_or_else(Vec::new, |b| b.exports.iter().filter(|e| e.computed).map(|e| e.name).collect())
}

/// `produced.<name>` changes for values that will be known only after apply.
pub(super) fn produced(prior: Option<&BTreeMap<String, Value>>, names: Vec<&'static str>) -> Vec<AttrChange> {
    names
        .into_iter()
        .map(|name| AttrChange {
            path: format!("produced.{name}"),
            before: prior.and_then(|p| p.get(name)).map_or(AttrValue::Absent, |v| AttrValue::Known(v.clone())),
            after: AttrValue::Unknown,
            forces_replace: false,
        })
        .collect()
}

/// Reasons from a resource's own changes: what forces a replacement first, at most three.
pub(super) fn summarise(attrs: &[AttrChange]) -> Vec<String> {
    let mut own: Vec<&AttrChange> = attrs.iter().filter(|a| a.path.starts_with("config")).collect();
    own.sort_by_key(|a| !a.forces_replace);
    let mut out: Vec<String> = own.iter().take(3).map(|a| describe(a)).collect();
    if own.len() > 3 {
        out.push(format!("and {} more attribute changes", own.len() - 3));
    }
    out
}

/// "max_depth 6 → 8", "rollout.rollback removed", "connection changed (sensitive)".
fn describe(a: &AttrChange) -> String {
    let name = show::attr_name(&a.path);
    let name = name.strip_prefix("params.").unwrap_or(name);
    match (&a.before, &a.after) {
        (AttrValue::Sensitive, _) | (_, AttrValue::Sensitive) => format!("{name} changed (sensitive value hidden)"),
        (AttrValue::Absent, _) => format!("{name} added"),
        (_, AttrValue::Absent) => format!("{name} removed"),
        (AttrValue::Known(b), AttrValue::Known(x)) => {
            let (b, x) = (show::json(b, false), show::json(x, false));
            if b.chars().count() + x.chars().count() <= 60 {
                format!("{name} {b} → {x}")
            } else {
                format!("{name} changed")
            }
        }
        _ => format!("{name} changed"),
    }
}
