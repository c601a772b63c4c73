//! `mlops events`: the monitoring and retraining loop's decisions, oldest first.

use std::process::ExitCode;

use clap::Args;
use mlops_compiler::units::Duration;
use mlops_runtime::events::{EventKind, EventLog};
use mlops_runtime::workspace::Workspace;

use super::ConfigArgs;

/// Show what the monitors and retrain policies decided.
#[derive(Debug, Args)]
pub struct Events {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only events of these kinds (comma-separated: breach, retrain_started, promoted …).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// Only events about this resource (`monitor.NAME`, `retrain_policy.NAME`).
    #[arg(long)]
    subject: Option<String>,
    /// Only events newer than this (`30m`, `24h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Print JSON lines (one event each).
    #[arg(long)]
    json: bool,
}

impl Events {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((_, spec)) = self.config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        let kinds = self
            .kind
            .iter()
            .map(|k| {
                EventKind::parse(k.trim()).ok_or_else(|| {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    format!("--kind: no event kind `{k}`; the kinds are {}", known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let since_ms = match &self.since {
            None => 0,
            Some(text) => {
                let d = Duration::parse(text).map_err(|e| format!("--since {text}: {e}"))?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                now.saturating_sub(d.as_millis())
            }
        };
        let data_dir = Workspace::new(&self.config.dir, &spec).data_dir;
        let log = EventLog::open(&data_dir);
        let read = log.read().map_err(|e| e.to_string())?;
        if !read.skipped.is_empty() {
            eprintln!(
                "warning: {} unreadable line(s) in {} skipped (line {}): a write cut short by a crash",
                read.skipped.len(),
                log.path().display(),
                read.skipped.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
        }
        let shown: Vec<_> = read
            .events
            .iter()
            .filter(|e| e.time_ms >= since_ms)
            .filter(|e| kinds.is_empty() || kinds.contains(&e.kind))
            .filter(|e| self.subject.as_ref().is_none_or(|s| &e.subject == s))
            .collect();
        if self.json {
            for e in shown {
                println!("{}", serde_json::to_string(e).map_err(|e| e.to_string())?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        if shown.is_empty() {
            println!(
                "No events{} (in {}).",
                if read.events.is_empty() { " yet" } else { " match" },
                log.path().display()
            );
        }
        for e in shown {
            let time = mlops_runtime::state::rfc3339(e.time_ms / 1000);
            println!("{time}  {:<18} {:<28} {}", e.kind.as_str(), e.subject, e.message);
        }
        Ok(ExitCode::SUCCESS)
    }
}
