//! The durable event log of the monitoring and retraining loop. In: every decision the loop
//! makes — a monitor judged (ok, breached, not enough data), a retrain started or skipped (by
//! cooldown or budget), its gate and comparison, the rollout promoted or rolled back. Out: one
//! JSON line per event in `<data dir>/events/events.jsonl`, appended and fsynced before the
//! loop acts on the decision, read back by `mlops events` and counted in `/metrics`.
//!
//! A crash can leave a torn last line; readers skip it (and say so) rather than fail, and the
//! next append starts on a fresh line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A monitor's window was judged and every check passed.
    MonitorOk,
    /// A monitor's window had fewer samples than its `min_samples`: no verdict.
    InsufficientData,
    /// A monitor's check breached its threshold.
    Breach,
    /// A retrain policy started a retrain (with its trigger).
    RetrainStarted,
    /// A trigger fired but the policy did not retrain (cooldown, budget, one running).
    RetrainSkipped,
    /// The retrain failed (data, training); production is unchanged.
    RetrainFailed,
    /// The candidate's gates and its comparison with production.
    GateResult,
    /// The candidate did not pass: production keeps serving.
    CandidateRejected,
    /// The candidate started rolling out through the endpoint's rollout rule.
    RolloutStarted,
    /// The candidate took all traffic and became production.
    Promoted,
    /// The rollout's rule tripped (or `mlops rollback`): the previous version serves again.
    RolledBack,
}

impl EventKind {
    /// The name used in files, metrics and `--kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MonitorOk => "monitor_ok",
            EventKind::InsufficientData => "insufficient_data",
            EventKind::Breach => "breach",
            EventKind::RetrainStarted => "retrain_started",
            EventKind::RetrainSkipped => "retrain_skipped",
            EventKind::RetrainFailed => "retrain_failed",
            EventKind::GateResult => "gate_result",
            EventKind::CandidateRejected => "candidate_rejected",
            EventKind::RolloutStarted => "rollout_started",
            EventKind::Promoted => "promoted",
            EventKind::RolledBack => "rolled_back",
        }
    }

    /// Every kind, in the order of the loop.
    pub const ALL: [EventKind; 11] = [
        EventKind::MonitorOk,
        EventKind::InsufficientData,
        EventKind::Breach,
        EventKind::RetrainStarted,
        EventKind::RetrainSkipped,
        EventKind::RetrainFailed,
        EventKind::GateResult,
        EventKind::CandidateRejected,
        EventKind::RolloutStarted,
        EventKind::Promoted,
        EventKind::RolledBack,
    ];

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, Unix milliseconds.
    pub time_ms: u64,
    /// What.
    pub kind: EventKind,
    /// The resource it is about (`monitor.fraud_health`, `retrain_policy.fraud_auto`, an
    /// endpoint's address).
    pub subject: String,
    /// In words: "psi(amount) 0.31 > 0.2 over 1,204 predictions".
    pub message: String,
    /// Machine-readable details (values, thresholds, versions).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The log of one data directory. Appends are serialised within the process; across processes
/// each event is one `write` to a file opened with `O_APPEND`, so lines do not interleave.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    lock: Mutex<()>,
}

/// What [`EventLog::read`] found.
#[derive(Debug, Default)]
pub struct EventRead {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Lines that could not be read (a torn last line after a crash), by line number.
    pub skipped: Vec<usize>,
}

impl EventLog {
    /// The log under `data_dir` (created on the first append).
    pub fn open(data_dir: &Path) -> EventLog {
        EventLog { path: data_dir.join("events").join("events.jsonl"), lock: Mutex::new(()) }
    }

    /// Where the events are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` and syncs it to disk before returning.
    pub fn append(&self, event: &Event) -> Result<(), EventError> {
        let io = |action, source| EventError::Io { action, path: self.path.clone(), source };
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        let mut file =
            OpenOptions::new().create(true).append(true).read(true).open(&self.path).map_err(|e| io("open", e))?;
        let mut line = serde_json::to_vec(event).map_err(|e| io("serialise an event for", std::io::Error::other(e)))?;
        line.push(b'\n');
        // After a torn write the file does not end in a newline: start a fresh line.
        if ends_without_newline(&mut file).map_err(|e| io("read", e))? {
            line.insert(0, b'\n');
        }
        file.write_all(&line).map_err(|e| io("append to", e))?;
        file.sync_data().map_err(|e| io("sync", e))
    }

    /// Every event, oldest first (an absent log has none).
    pub fn read(&self) -> Result<EventRead, EventError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(EventRead::default()),
            Err(e) => return Err(EventError::Io { action: "open", path: self.path.clone(), source: e }),
        };
        let mut out = EventRead::default();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| EventError::Io { action: "read", path: self.path.clone(), source: e })?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => out.events.push(e),
                Err(_) => out.skipped.push(i + 1),
            }
        }
        Ok(out)
    }
}

fn ends_without_newline(file: &mut File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, n: u64) -> Event {
        Event {
            time_ms: n,
            kind,
            subject: "monitor.m".into(),
            message: format!("event {n}"),
            details: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn appends_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path());
        assert!(log.read().unwrap().events.is_empty());
        for (n, k) in EventKind::ALL.into_iter().enumerate() {
            log.append(&event(k, n as u64)).unwrap();
        }
        let read = log.read().unwrap();
        assert_eq!(read.events.len(), EventKind::ALL.len());
        assert_eq!(read.events[2], event(EventKind::Breach, 2));
        assert!(read.skipped.is_empty());
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn a_torn_line_is_skipped_and_the_next_event_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path());
        log.append(&event(EventKind::Breach, 1)).unwrap();
        // A crash in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(br#"{"time_ms":2,"kind":"retr"#).unwrap();
        drop(f);
        log.append(&event(EventKind::Promoted, 3)).unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.events, vec![event(EventKind::Breach, 1), event(EventKind::Promoted, 3)]);
        assert_eq!(read.skipped, vec![2]);
    }
}
