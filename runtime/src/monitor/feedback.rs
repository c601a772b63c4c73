//! Delayed ground truth, joined back to the predictions it judges. In: labels by prediction id
//! — posted to `POST /v1/endpoints/{name}/feedback` (kept in `<data dir>/feedback/<endpoint>.jsonl`,
//! or by each replica sharing the volume in `feedback/pods/<pod>/<endpoint>.jsonl`, synced before
//! the request is answered) or read from the monitor's declared feedback source —
//! and a [`Window`] of logged predictions. Out: (label, score) pairs and the monitor's metric on
//! them (precision, recall, f1, accuracy at threshold 0.5, auc, logloss for binary classifiers;
//! rmse, mae, r2 for regression).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::window::Window;
use crate::train::metrics;

/// One label for one prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The prediction's id, as the endpoint answered it.
    pub prediction_id: String,
    /// The true outcome: a boolean or a number (a class index or a regression target).
    pub label: f64,
}

/// Labels posted to an endpoint, one file per endpoint.
#[derive(Debug)]
pub struct FeedbackStore {
    dir: PathBuf,
    lock: Mutex<()>,
    /// This replica's name when several share the volume: it writes its own files.
    pod: Option<String>,
}

impl FeedbackStore {
    /// The store under `data_dir`.
    pub fn open(data_dir: &Path) -> FeedbackStore {
        FeedbackStore { dir: data_dir.join("feedback"), lock: Mutex::new(()), pod: None }
    }

    /// The store of replica `pod` under a shared `data_dir`: it appends to files of its own (no
    /// two processes append to one file) and reads everyone's.
    pub fn for_pod(data_dir: &Path, pod: &str) -> FeedbackStore {
        FeedbackStore { pod: Some(pod.to_string()), ..FeedbackStore::open(data_dir) }
    }

    fn file_name(endpoint: &str) -> String {
        // Endpoint names are plain (letters, digits, `_`, `-`, `.`); a leading dot is escaped.
        match endpoint.strip_prefix('.') {
            Some(rest) => format!("%2E{rest}.jsonl"),
            None => format!("{endpoint}.jsonl"),
        }
    }

    /// Where this store appends the endpoint's labels.
    fn file(&self, endpoint: &str) -> PathBuf {
        match &self.pod {
            Some(pod) => self.dir.join("pods").join(pod).join(Self::file_name(endpoint)),
            None => self.dir.join(Self::file_name(endpoint)),
        }
    }

    /// Appends `items` for `endpoint` in one write and syncs it.
    pub fn append(&self, endpoint: &str, items: &[Feedback]) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = self.file(endpoint);
        std::fs::create_dir_all(file.parent().unwrap_or(&self.dir))?;
        let mut buf = Vec::with_capacity(64 * items.len());
        for f in items {
            serde_json::to_writer(&mut buf, f).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let mut file = OpenOptions::new().create(true).append(true).open(file)?;
        file.write_all(&buf)?;
        file.sync_data()
    }

    /// Every label posted for `endpoint`, to any replica, by prediction id (a later label for
    /// the same id in one file wins).
    pub fn read(&self, endpoint: &str) -> std::io::Result<HashMap<String, f64>> {
        let name = Self::file_name(endpoint);
        let mut files = vec![self.dir.join(&name)];
        match std::fs::read_dir(self.dir.join("pods")) {
            Ok(pods) => {
                let mut pods: Vec<PathBuf> = pods.filter_map(|e| Some(e.ok()?.path().join(&name))).collect();
                pods.sort();
                files.extend(pods);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut out = HashMap::new();
        for path in files {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).lines() {
                if let Ok(f) = serde_json::from_str::<Feedback>(&line?) {
                    out.insert(f.prediction_id, f.label);
                }
            }
        }
        Ok(out)
    }
}

/// Reads one posted item: `{"prediction_id": "…", "label": true | 0 | 1.5}`; the error names
/// what is wrong.
pub fn parse_item(v: &Value) -> Result<Feedback, String> {
    let obj = v.as_object().ok_or("each feedback item must be an object with `prediction_id` and `label`")?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "prediction_id" | "label")) {
        return Err(format!("unknown field `{k}` (an item has `prediction_id` and `label`)"));
    }
    let id = match obj.get("prediction_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => s.clone(),
        Some(Value::String(_)) => return Err("`prediction_id` must be 1–128 characters".into()),
        Some(other) => return Err(format!("`prediction_id` must be a string, got {other}")),
        None => return Err("missing `prediction_id`".into()),
    };
    let label = match obj.get("label") {
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().filter(|x| x.is_finite()).ok_or("`label` must be a finite number")?,
        Some(other) => return Err(format!("`label` must be a boolean or a number, got {other}")),
        None => return Err("missing `label`".into()),
    };
    Ok(Feedback { prediction_id: id, label })
}

/// The labelled predictions of a window: (label, score) for every logged prediction with a
/// label and a score.
pub fn join(window: &Window, labels: &HashMap<String, f64>) -> Vec<(f64, f64)> {
    window.rows.iter().filter_map(|r| Some((*labels.get(&r.id)?, r.score?))).collect()
}

/// Metrics a performance check may compute.
pub const METRICS: &[&str] = &["precision", "recall", "f1", "accuracy", "auc", "logloss", "rmse", "mae", "r2"];

/// `metric` over labelled predictions (binary classifiers at threshold 0.5).
pub fn metric(metric: &str, pairs: &[(f64, f64)]) -> Result<f64, String> {
    if pairs.is_empty() {
        return Err("no labelled prediction in the window".into());
    }
    let labels: Vec<f32> = pairs.iter().map(|p| p.0 as f32).collect();
    let scores: Vec<f32> = pairs.iter().map(|p| p.1 as f32).collect();
    let predicted = || metrics::binary_classes(&scores);
    let r = match metric {
        "precision" => metrics::precision(&labels, &predicted()),
        "recall" => metrics::recall(&labels, &predicted()),
        "f1" => metrics::f1(&labels, &predicted()),
        "accuracy" => metrics::accuracy(&labels, &predicted()),
        "auc" => metrics::auc(&labels, &scores),
        "logloss" => metrics::logloss(&labels, &scores),
        "rmse" => metrics::rmse(&labels, &scores),
        "mae" => metrics::mae(&labels, &scores),
        "r2" => metrics::r2(&labels, &scores),
        other => {
            return Err(format!(
                "performance metric `{other}` is not computed from feedback (one of {})",
                METRICS.join(", ")
            ))
        }
    };
    r.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::window::Logged;

    #[test]
    fn posted_labels_are_kept_and_the_last_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(dir.path());
        assert!(store.read("api").unwrap().is_empty());
        let f = |id: &str, label| Feedback { prediction_id: id.into(), label };
        store.append("api", &[f("a", 1.0), f("b", 0.0)]).unwrap();
        store.append("api", &[f("a", 0.0)]).unwrap();
        store.append(".odd", &[f("c", 1.0)]).unwrap();
        let read = store.read("api").unwrap();
        assert_eq!(read, HashMap::from([("a".to_string(), 0.0), ("b".to_string(), 0.0)]));
        assert_eq!(store.read(".odd").unwrap().len(), 1);
        assert!(dir.path().join("feedback/%2Eodd.jsonl").exists());
    }

    #[test]
    fn each_pod_appends_its_own_file_and_every_store_reads_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let f = |id: &str, label| Feedback { prediction_id: id.into(), label };
        FeedbackStore::open(dir.path()).append("api", &[f("local", 1.0)]).unwrap();
        FeedbackStore::for_pod(dir.path(), "api-0").append("api", &[f("a", 1.0)]).unwrap();
        FeedbackStore::for_pod(dir.path(), "api-1").append("api", &[f("b", 0.0)]).unwrap();
        FeedbackStore::for_pod(dir.path(), "api-1").append("other", &[f("c", 0.0)]).unwrap();
        assert!(dir.path().join("feedback/pods/api-0/api.jsonl").exists());
        let expected = HashMap::from([("local".to_string(), 1.0), ("a".to_string(), 1.0), ("b".to_string(), 0.0)]);
        assert_eq!(FeedbackStore::open(dir.path()).read("api").unwrap(), expected);
        assert_eq!(FeedbackStore::for_pod(dir.path(), "api-0").read("api").unwrap(), expected);
    }

    #[test]
    fn items_are_checked_field_by_field() {
        let ok = parse_item(&serde_json::json!({"prediction_id": "p1", "label": true})).unwrap();
        assert_eq!(ok, Feedback { prediction_id: "p1".into(), label: 1.0 });
        for (item, words) in [
            (serde_json::json!(3), "must be an object"),
            (serde_json::json!({"label": 1}), "missing `prediction_id`"),
            (serde_json::json!({"prediction_id": 7, "label": 1}), "must be a string"),
            (serde_json::json!({"prediction_id": "", "label": 1}), "1–128"),
            (serde_json::json!({"prediction_id": "p"}), "missing `label`"),
            (serde_json::json!({"prediction_id": "p", "label": "yes"}), "a boolean or a number"),
            (serde_json::json!({"prediction_id": "p", "label": 1, "x": 2}), "unknown field `x`"),
        ] {
            let e = parse_item(&item).unwrap_err();
            assert!(e.contains(words), "{item}: {e}");
        }
    }

    #[test]
    fn joins_labels_to_logged_predictions_and_scores_them() {
        let row = |id: &str, score| Logged {
            id: id.into(),
            version: 1,
            features: serde_json::Map::new(),
            score: Some(score),
            class: None,
        };
        let w = Window { rows: vec![row("a", 0.9), row("b", 0.2), row("c", 0.7), row("d", 0.4)], ..Window::default() };
        let labels = HashMap::from([("a".into(), 1.0), ("b".into(), 0.0), ("c".into(), 0.0), ("z".into(), 1.0)]);
        let pairs = join(&w, &labels);
        assert_eq!(pairs, vec![(1.0, 0.9), (0.0, 0.2), (0.0, 0.7)]);
        // Predicted positive: a (right), c (wrong) → precision 0.5, recall 1.
        assert_eq!(metric("precision", &pairs), Ok(0.5));
        assert_eq!(metric("recall", &pairs), Ok(1.0));
        assert!((metric("f1", &pairs).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(metric("auc", &pairs), Ok(1.0));
        assert!(metric("f1", &[]).unwrap_err().contains("no labelled prediction"));
        assert!(metric("merror", &pairs).unwrap_err().contains("not computed from feedback"));
        let reg = [(1.0, 1.5), (2.0, 2.0), (3.0, 2.5)];
        assert!((metric("rmse", &reg).unwrap() - (0.5f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((metric("r2", &reg).unwrap() - 0.75).abs() < 1e-12);
    }
}
