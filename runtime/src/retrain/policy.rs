//! When a retrain policy retrains, as a pure function of its configuration, its history and
//! the clock. In: a [`Trigger`] (a monitor breached, the schedule came due, enough new rows) and
//! the policy's [`History`]. Out: retrain now, or skip with the guardrail that said no —
//! one already running, the cooldown since the last retrain, the budget of retrains per period.

use mlops_compiler::model::RetrainPolicy;
use serde::{Deserialize, Serialize};

/// Why a retrain is asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum Trigger {
    /// A monitor the policy is `on` breached.
    Breach {
        /// The monitor's address.
        monitor: String,
        /// What breached, in words.
        reason: String,
    },
    /// The `schedule` came due.
    Schedule {
        /// The schedule's text.
        cron: String,
    },
    /// The source gained at least `new_data.rows` rows since the last retrain.
    NewData {
        /// Rows added.
        rows: u64,
    },
}

impl Trigger {
    /// In words, for events: "monitor.fraud_health breached: psi(amount) 0.31 > 0.2".
    pub fn describe(&self) -> String {
        match self {
            Trigger::Breach { monitor, reason } => format!("{monitor} breached: {reason}"),
            Trigger::Schedule { cron } => format!("schedule \"{cron}\" came due"),
            Trigger::NewData { rows } => format!("{rows} new rows"),
        }
    }
}

/// What a policy did so far (persisted by the runtime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When each retrain started, Unix milliseconds, oldest first (pruned to what the budget
    /// and cooldown need).
    pub started_ms: Vec<u64>,
    /// Whether one is running now.
    pub running: bool,
    /// The last minute the schedule fired for, Unix seconds.
    pub schedule_fired_s: Option<u64>,
    /// The source's row count at the last retrain (for `new_data`).
    pub rows_at_last: Option<u64>,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Retrain now.
    Retrain,
    /// Do not, because of this guardrail (in words).
    Skip(String),
}

fn human(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// Whether `trigger` may start a retrain at `now_ms`.
pub fn decide(policy: &RetrainPolicy, history: &History, now_ms: u64) -> Decision {
    if history.running {
        return Decision::Skip("a retrain of this policy is already running".into());
    }
    if let Some(&last) = history.started_ms.last() {
        let since = now_ms.saturating_sub(last);
        let cooldown = policy.cooldown.as_millis();
        if since < cooldown {
            return Decision::Skip(format!(
                "cooldown: the last retrain started {} ago, the cooldown is {} ({} left)",
                human(since),
                human(cooldown),
                human(cooldown - since)
            ));
        }
    }
    if let Some(b) = &policy.budget {
        let per = b.per.as_millis();
        let recent = history.started_ms.iter().filter(|&&t| now_ms.saturating_sub(t) < per).count();
        if recent >= b.max_runs as usize {
            return Decision::Skip(format!(
                "budget: {recent} retrain{} in the last {} (at most {} per {})",
                if recent == 1 { "" } else { "s" },
                human(per),
                b.max_runs,
                human(per)
            ));
        }
    }
    Decision::Retrain
}

/// The schedule's trigger at `now_ms`, once per due minute: the last minute at or before now
/// that matches, if the policy has not fired for it (nor for a later one) yet. A policy created
/// after a due minute does not fire for it.
pub fn schedule_due(policy: &RetrainPolicy, history: &History, created_s: u64, now_ms: u64) -> Option<(u64, Trigger)> {
    let cron = policy.schedule.as_ref()?;
    let now_s = now_ms / 1000;
    let after = history.schedule_fired_s.unwrap_or(created_s).max(created_s);
    let next = u64::try_from(cron.next_after(i64::try_from(after).ok()?)?).ok()?;
    (next <= now_s).then(|| (next, Trigger::Schedule { cron: cron.to_string() }))
}

/// Keeps only the start times the guardrails can still need.
pub fn prune(policy: &RetrainPolicy, history: &mut History, now_ms: u64) {
    let keep = policy.budget.as_ref().map_or(0, |b| b.per.as_millis()).max(policy.cooldown.as_millis());
    let last = history.started_ms.last().copied();
    history.started_ms.retain(|&t| now_ms.saturating_sub(t) < keep);
    if history.started_ms.is_empty() {
        history.started_ms.extend(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_compiler::model::Budget;
    use mlops_compiler::units::{Cron, Duration};

    fn policy(cooldown_s: u64, budget: Option<(u32, u64)>) -> RetrainPolicy {
        RetrainPolicy {
            job: "training_job.j".into(),
            on: vec!["monitor.m".into()],
            schedule: None,
            new_data: None,
            cooldown: Duration::from_millis(cooldown_s * 1000),
            budget: budget.map(|(max_runs, per)| Budget { max_runs, per: Duration::from_millis(per * 1000) }),
            promote: None,
        }
    }

    #[test]
    fn cooldown_and_budget_say_no_with_their_reason() {
        let p = policy(3600, Some((2, 86_400)));
        let mut h = History::default();
        assert_eq!(decide(&p, &h, 1_000_000), Decision::Retrain);
        h.started_ms.push(1_000_000);
        let Decision::Skip(why) = decide(&p, &h, 1_000_000 + 600_000) else { panic!() };
        assert_eq!(why, "cooldown: the last retrain started 10m ago, the cooldown is 60m (50m left)");
        assert_eq!(decide(&p, &h, 1_000_000 + 3_600_000), Decision::Retrain);
        h.started_ms.push(1_000_000 + 3_600_000);
        let Decision::Skip(why) = decide(&p, &h, 1_000_000 + 7_300_000) else { panic!() };
        assert_eq!(why, "budget: 2 retrains in the last 24h00m (at most 2 per 24h00m)");
        // A day after the first, one slot is free again.
        assert_eq!(decide(&p, &h, 1_000_000 + 86_400_000), Decision::Retrain);
        h.running = true;
        assert!(matches!(decide(&p, &h, 1_000_000 + 90_000_000), Decision::Skip(w) if w.contains("already running")));
    }

    #[test]
    fn the_schedule_fires_once_per_due_minute_and_not_for_the_past() {
        let mut p = policy(0, None);
        p.schedule = Some(Cron::parse("*/10 * * * *").unwrap());
        let created = 1_800_000_030; // 30 s after a due minute (1_800_000_000 is a multiple of 600)
        let mut h = History::default();
        assert_eq!(schedule_due(&p, &h, created, created * 1000), None, "the minute before creation is past");
        let due = created - 30 + 600;
        assert_eq!(schedule_due(&p, &h, created, (due - 1) * 1000), None);
        let (minute, trigger) = schedule_due(&p, &h, created, (due + 5) * 1000).unwrap();
        assert_eq!(minute, due);
        assert_eq!(trigger.describe(), "schedule \"*/10 * * * *\" came due");
        h.schedule_fired_s = Some(minute);
        assert_eq!(schedule_due(&p, &h, created, (due + 59) * 1000), None, "fires once");
        assert_eq!(schedule_due(&p, &h, created, (due + 600) * 1000).map(|d| d.0), Some(due + 600));
    }

    #[test]
    fn pruning_keeps_what_the_guardrails_need() {
        let p = policy(3600, Some((3, 86_400)));
        let mut h = History { started_ms: vec![0, 50_000_000, 90_000_000], ..History::default() };
        prune(&p, &mut h, 100_000_000);
        assert_eq!(h.started_ms, vec![50_000_000, 90_000_000]);
        let q = policy(60, None);
        prune(&q, &mut h, 500_000_000);
        assert_eq!(h.started_ms, vec![90_000_000], "the last start is always kept");
    }
}
