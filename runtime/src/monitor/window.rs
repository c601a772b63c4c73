//! A monitor's window of production traffic. In: the prediction log's hourly files of one
//! endpoint (`<data dir>/predictions/<endpoint>/YYYY-MM-DDTHH.jsonl`, written by
//! [`crate::serve::PredictionLog`]) and a time range. Out: the predictions logged in it — their
//! ids, versions, feature values as received and scores — as columns a drift statistic or a
//! performance metric reads.
//!
//! Lines that cannot be read (a torn last line while the writer is mid-flush) are counted and
//! skipped, never fatal: a monitor judges what was logged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::serve::predlog::{hour_file, pods_dir};
use crate::serve::util::rfc3339_micros;

/// One logged prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// The id the client got.
    pub id: String,
    /// The model version that answered.
    pub version: u32,
    /// Feature values as received, by name (`null` for missing).
    pub features: serde_json::Map<String, Value>,
    /// The score (probability of the positive class, or the regression value), when it has one.
    pub score: Option<f64>,
    /// The predicted class of a multi-class model.
    pub class: Option<String>,
}

/// The predictions of one endpoint in `[from, to)`.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Start, Unix microseconds (inclusive).
    pub from_us: i64,
    /// End, Unix microseconds (exclusive).
    pub to_us: i64,
    /// The predictions, in log order.
    pub rows: Vec<Logged>,
    /// Lines skipped as unreadable.
    pub skipped: u64,
}

/// A numeric or categorical column taken from a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers (and booleans as 0/1).
    Numeric(Vec<f64>),
    /// Strings.
    Categorical(Vec<String>),
}

impl Window {
    /// Reads the predictions of `endpoint` logged under `predictions_dir` in `[from_us, to_us)`.
    pub fn read(predictions_dir: &Path, endpoint: &str, from_us: i64, to_us: i64) -> std::io::Result<Window> {
        let mut w = Window { from_us, to_us, ..Window::default() };
        if to_us <= from_us {
            return Ok(w);
        }
        // Times in the log are fixed-width RFC 3339 in UTC, so they compare as text.
        let (from, to) = (rfc3339_micros(from_us), rfc3339_micros(to_us));
        const HOUR_US: i64 = 3_600_000_000;
        // The endpoint's own files (one serving agent), then every pod's (replicas on a shared
        // volume each write their own directory).
        let mut pods: Vec<PathBuf> = match std::fs::read_dir(pods_dir(predictions_dir, endpoint)) {
            Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        pods.sort();
        for hour in from_us.div_euclid(HOUR_US)..=(to_us - 1).div_euclid(HOUR_US) {
            let name = hour_file(predictions_dir, endpoint, hour);
            let in_pods = pods.iter().filter_map(|p| Some(p.join(name.file_name()?)));
            for path in std::iter::once(name.clone()).chain(in_pods) {
                w.read_file(&path, &from, &to)?;
            }
        }
        Ok(w)
    }

    /// Adds the lines of one log file that fall in `[from, to)` (RFC 3339 texts).
    fn read_file(&mut self, path: &Path, from: &str, to: &str) -> std::io::Result<()> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            let line = line?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                self.skipped += 1;
                continue;
            };
            let Some(time) = v["time"].as_str() else {
                self.skipped += 1;
                continue;
            };
            if time < from || time >= to {
                continue;
            }
            match parse(&v) {
                Some(row) => self.rows.push(row),
                None => self.skipped += 1,
            }
        }
        Ok(())
    }

    /// Number of predictions.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no prediction.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The values of feature `name` (missing ones left out, with their count), or of the
    /// model's scores for `"prediction"`. Numbers and booleans make a numeric column, strings
    /// a categorical one; a feature seen as both is categorical (numbers as their text).
    pub fn column(&self, name: &str) -> (Column, u64) {
        if name == "prediction" {
            let scores: Vec<f64> = self.rows.iter().filter_map(|r| r.score).collect();
            let missing = (self.rows.len() - scores.len()) as u64;
            return (Column::Numeric(scores), missing);
        }
        let values: Vec<&Value> =
            self.rows.iter().filter_map(|r| r.features.get(name)).filter(|v| !v.is_null()).collect();
        let missing = (self.rows.len() - values.len()) as u64;
        if values.iter().any(|v| v.is_string()) {
            let texts = values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            return (Column::Categorical(texts), missing);
        }
        let numbers = values
            .iter()
            .map(|v| match v {
                Value::Bool(b) => f64::from(u8::from(*b)),
                other => other.as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        (Column::Numeric(numbers), missing)
    }

    /// Predictions per model version.
    pub fn versions(&self) -> BTreeMap<u32, usize> {
        let mut out = BTreeMap::new();
        for r in &self.rows {
            *out.entry(r.version).or_default() += 1;
        }
        out
    }
}

fn parse(v: &Value) -> Option<Logged> {
    let output = &v["output"];
    let score = output["score"].as_f64();
    Some(Logged {
        id: v["prediction_id"].as_str()?.to_string(),
        version: u32::try_from(v["model_version"].as_u64()?).ok()?,
        features: v["features"].as_object().cloned().unwrap_or_default(),
        score,
        class: output["class"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HOUR: i64 = 3_600_000_000;

    fn write_line(dir: &Path, t: i64, id: &str, features: Value, score: Value) {
        let path = hour_file(dir, "api", t.div_euclid(HOUR));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        let line = serde_json::json!({
            "prediction_id": id, "time": rfc3339_micros(t), "endpoint": "api", "job": "training_job.j",
            "model_version": 2, "features": features, "output": { "score": score }, "sample_rate": 1
        });
        writeln!(f, "{line}").unwrap();
    }

    #[test]
    fn reads_the_range_across_hour_files_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_790_000_000_000_000 - 1_790_000_000_000_000 % HOUR;
        write_line(dir.path(), t0 - 1, "before", serde_json::json!({"a": 1}), serde_json::json!(0.1));
        write_line(dir.path(), t0, "first", serde_json::json!({"a": 2, "m": "x"}), serde_json::json!(0.2));
        write_line(
            dir.path(),
            t0 + HOUR + 5,
            "second",
            serde_json::json!({"a": null, "m": "y"}),
            serde_json::json!(0.3),
        );
        write_line(dir.path(), t0 + 2 * HOUR, "after", serde_json::json!({"a": 9}), serde_json::json!(0.9));
        let torn = hour_file(dir.path(), "api", t0.div_euclid(HOUR));
        std::fs::OpenOptions::new().append(true).open(torn).unwrap().write_all(b"{\"prediction_id\":").unwrap();

        let w = Window::read(dir.path(), "api", t0, t0 + 2 * HOUR).unwrap();
        let ids: Vec<&str> = w.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["first", "second"]);
        assert_eq!(w.skipped, 1);
        assert_eq!(w.column("a"), (Column::Numeric(vec![2.0]), 1));
        assert_eq!(w.column("m"), (Column::Categorical(vec!["x".into(), "y".into()]), 0));
        assert_eq!(w.column("prediction"), (Column::Numeric(vec![0.2, 0.3]), 0));
        assert_eq!(w.versions(), BTreeMap::from([(2, 2)]));
        assert!(Window::read(dir.path(), "other", t0, t0 + HOUR).unwrap().is_empty());
    }

    #[test]
    fn every_pods_log_is_read_with_the_endpoints_own() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_790_000_000_000_000 - 1_790_000_000_000_000 % HOUR;
        write_line(dir.path(), t0 + 1, "agent", serde_json::json!({"a": 1}), serde_json::json!(0.1));
        for (pod, id) in [("api-0", "from-0"), ("api-1", "from-1")] {
            let pod_dir = dir.path().join("api/pods").join(pod);
            std::fs::create_dir_all(&pod_dir).unwrap();
            // Same layout below the pod's directory: reuse the writer by pointing it there.
            let tmp = tempfile::tempdir().unwrap();
            write_line(tmp.path(), t0 + 2, id, serde_json::json!({"a": 2}), serde_json::json!(0.2));
            let name = hour_file(tmp.path(), "api", t0.div_euclid(HOUR));
            std::fs::copy(&name, pod_dir.join(name.file_name().unwrap())).unwrap();
        }
        // Another endpoint's pods are not this one's.
        let other = dir.path().join("other/pods/x");
        std::fs::create_dir_all(&other).unwrap();
        let w = Window::read(dir.path(), "api", t0, t0 + HOUR).unwrap();
        let mut ids: Vec<&str> = w.rows.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["agent", "from-0", "from-1"]);
        assert_eq!(w.column("prediction").0, Column::Numeric(vec![0.1, 0.2, 0.2]));
    }
}
