//! The rollout of a new model version on an endpoint, as a pure state machine: the serving
//! process feeds it the clock and what it measured of the candidate since the current step
//! began, and applies the [`Decision`] it returns (new weights, promotion, rollback). In: an
//! endpoint's `rollout` block and the versions involved. Out: decisions, with reasons in words.
//!
//! - `immediate` (or no previous version to protect): the candidate takes all traffic at once.
//! - `canary`: the candidate takes each step's share of traffic (`steps = [10, 50, 100]`) for
//!   `interval`; a step passes when its interval is over and, with a rollback rule, at least
//!   `min_requests` requests were judged; after the last step it is promoted.
//! - `blue_green`: the candidate takes all traffic at once, with the previous version kept ready
//!   for `interval`; a tripped rule switches back, otherwise the previous version is retired.
//!
//! The rollback rule trips as soon as it has `min_requests` requests of the candidate in the
//! current step and its metric is above the threshold: `error_rate` (5xx answers / answers),
//! `latency_p50|p95|p99` (seconds, interpolated within histogram buckets as Prometheus'
//! `histogram_quantile` does), `score_drift` (measured by the caller: the population stability
//! index of the candidate's scores against the previous version's over the same window; never
//! trips unknown), or `prometheus` / `scrape` (read by the caller from outside, see
//! [`super::external`]): a step whose external metric cannot be read does not pass — a
//! candidate is never promoted on a health check nobody could make.

use mlops_compiler::model::{Rollback, Rollout as RolloutConfig};
use serde::{Deserialize, Serialize};

/// What was measured of the candidate since the current step began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Requests answered.
    pub requests: u64,
    /// Of which answered with a 5xx status.
    pub errors: u64,
    /// Latency histogram: (upper bound in seconds, cumulative count), ascending; the last
    /// bucket may be `f64::INFINITY`.
    pub latency: Vec<(f64, u64)>,
    /// Shift of the candidate's scores from the previous version's, when measured.
    pub score_drift: Option<f64>,
    /// The rule's `prometheus` / `scrape` metric read during this step, or why it could not be.
    pub external: Option<Result<f64, String>>,
}

impl Window {
    /// The value of a rollback metric over this window (`None`: not measurable).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "error_rate" if self.requests > 0 => Some(self.errors as f64 / self.requests as f64),
            "latency_p50" => quantile(0.50, &self.latency),
            "latency_p95" => quantile(0.95, &self.latency),
            "latency_p99" => quantile(0.99, &self.latency),
            "score_drift" => self.score_drift,
            "prometheus" | "scrape" => self.external.as_ref().and_then(|r| r.as_ref().ok()).copied(),
            _ => None,
        }
    }
}

/// The `q` quantile of a cumulative histogram, interpolating linearly inside the bucket it falls
/// in (from the previous bound, 0 for the first); in the open last bucket, the last finite bound.
pub fn quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(upper, count) in buckets {
        if count as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let inside = (count - below) as f64;
            let fraction = if inside > 0.0 { (rank - below as f64) / inside } else { 1.0 };
            return Some(lower + (upper - lower) * fraction);
        }
        (lower, below) = (upper, count);
    }
    Some(lower)
}

/// What to do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep the weights as they are.
    Hold,
    /// Give the candidate this share of traffic (percent); the previous version gets the rest.
    Weights {
        /// The candidate's percentage.
        candidate: f64,
    },
    /// The candidate takes all traffic and the previous version is retired.
    Promote,
    /// All traffic back to the previous version; the candidate is retired.
    Rollback {
        /// Why, in words: "error_rate 0.0412 > 0.02 over 340 requests at 10%".
        reason: String,
    },
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// On step `step` (index into the steps) since `since_ms`.
    Stepping {
        /// Index of the current step.
        step: usize,
        /// When it began, Unix milliseconds.
        since_ms: u64,
    },
    /// Done: the candidate serves all traffic.
    Promoted,
    /// Done: the previous version serves all traffic.
    RolledBack {
        /// Why.
        reason: String,
    },
}

/// One rollout in progress: its rule and where it stands. Serialisable, so the serving process
/// can persist it and resume after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The version being rolled out.
    pub candidate: u32,
    /// The version it replaces.
    pub previous: Option<u32>,
    /// Candidate traffic per step, percent (ends at 100).
    pub steps: Vec<f64>,
    /// Time per step, milliseconds.
    pub interval_ms: u64,
    /// When to go back.
    pub rule: Option<Rollback>,
    /// Where it stands.
    pub phase: Phase,
}

impl Rollout {
    /// Starts rolling `candidate` out over `previous` as `config` says, at `now_ms`; returns
    /// the rollout and the first decision to apply.
    pub fn start(config: &RolloutConfig, candidate: u32, previous: Option<u32>, now_ms: u64) -> (Rollout, Decision) {
        let mut steps: Vec<f64> = match config.strategy.as_str() {
            "canary" => config.steps.iter().copied().filter(|s| *s > 0.0).map(|s| s.min(100.0)).collect(),
            _ => Vec::new(),
        };
        if steps.last().is_none_or(|last| *last < 100.0) {
            steps.push(100.0);
        }
        let interval_ms = config.interval.map_or(0, |i| i.as_millis());
        let immediate = config.strategy == "immediate" || previous.is_none() || previous == Some(candidate);
        let mut r = Rollout {
            candidate,
            previous: previous.filter(|p| *p != candidate),
            steps,
            interval_ms,
            rule: config.rollback.clone(),
            phase: Phase::Stepping { step: 0, since_ms: now_ms },
        };
        if immediate {
            r.phase = Phase::Promoted;
            return (r, Decision::Promote);
        }
        let first = r.steps[0];
        (r, Decision::Weights { candidate: first })
    }

    /// Is it over?
    pub fn finished(&self) -> bool {
        !matches!(self.phase, Phase::Stepping { .. })
    }

    /// The candidate's share of traffic now, percent.
    pub fn candidate_percent(&self) -> f64 {
        match &self.phase {
            Phase::Stepping { step, .. } => self.steps[*step],
            Phase::Promoted => 100.0,
            Phase::RolledBack { .. } => 0.0,
        }
    }

    /// Judges the candidate's `window` (since the current step began) at `now_ms`. A new step
    /// starts a new window: the caller resets its counters on [`Decision::Weights`].
    pub fn evaluate(&mut self, now_ms: u64, window: &Window) -> Decision {
        let Phase::Stepping { step, since_ms } = self.phase else { return Decision::Hold };
        let percent = self.steps[step];
        let judged = self.rule.as_ref().map(|rule| (rule, window.requests >= u64::from(rule.min_requests)));
        if let Some((rule, true)) = judged {
            if let Some(value) = window.metric(&rule.metric).filter(|v| *v > rule.above) {
                let reason = format!(
                    "{} {} > {} over {} requests at {}%",
                    rule.metric,
                    round4(value),
                    rule.above,
                    window.requests,
                    round4(percent)
                );
                self.phase = Phase::RolledBack { reason: reason.clone() };
                return Decision::Rollback { reason };
            }
        }
        let elapsed = now_ms.saturating_sub(since_ms) >= self.interval_ms;
        let measured = |rule: &Rollback| !is_external(rule) || window.metric(&rule.metric).is_some();
        let enough = judged.is_none_or(|(rule, enough)| enough && measured(rule));
        if !(elapsed && enough) {
            return Decision::Hold;
        }
        if step + 1 < self.steps.len() {
            self.phase = Phase::Stepping { step: step + 1, since_ms: now_ms };
            Decision::Weights { candidate: self.steps[step + 1] }
        } else {
            self.phase = Phase::Promoted;
            Decision::Promote
        }
    }

    /// When the current step began (Unix milliseconds), while stepping.
    pub fn step_started(&self) -> Option<u64> {
        match self.phase {
            Phase::Stepping { since_ms, .. } => Some(since_ms),
            _ => None,
        }
    }

    /// Rolls back at once (`mlops rollback`).
    pub fn abort(&mut self, reason: &str) -> Decision {
        self.phase = Phase::RolledBack { reason: reason.to_string() };
        Decision::Rollback { reason: reason.to_string() }
    }

    /// What the step waits for, in words, for `mlops status`.
    pub fn describe(&self, now_ms: u64, window: &Window) -> String {
        match &self.phase {
            Phase::Promoted => format!("version {} promoted", self.candidate),
            Phase::RolledBack { reason } => format!("version {} rolled back: {reason}", self.candidate),
            Phase::Stepping { step, since_ms } => {
                let left = self.interval_ms.saturating_sub(now_ms.saturating_sub(*since_ms));
                let mut s = format!(
                    "version {} at {}% (step {} of {}), {}s left in the step",
                    self.candidate,
                    round4(self.steps[*step]),
                    step + 1,
                    self.steps.len(),
                    left.div_ceil(1000)
                );
                if let Some(rule) = &self.rule {
                    let seen = window.requests.min(u64::from(rule.min_requests));
                    s.push_str(&format!("; {seen}/{} requests judged on {}", rule.min_requests, rule.metric));
                    match (window.metric(&rule.metric), &window.external) {
                        (Some(v), _) => s.push_str(&format!(" = {} (rolls back above {})", round4(v), rule.above)),
                        (None, Some(Err(e))) if is_external(rule) => {
                            s.push_str(&format!(" — cannot read it, so the step waits: {e}"));
                        }
                        (None, None) if is_external(rule) => s.push_str(" — not read yet"),
                        _ => {}
                    }
                }
                s
            }
        }
    }
}

/// Whether the rule's metric is read from outside the serving process.
pub fn is_external(rule: &Rollback) -> bool {
    mlops_compiler::schema::EXTERNAL_ROLLBACK_METRICS.contains(&rule.metric.as_str())
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_compiler::units::Duration;

    fn config(strategy: &str, steps: &[f64], rule: Option<(&str, f64, u32)>) -> RolloutConfig {
        RolloutConfig {
            strategy: strategy.into(),
            steps: steps.to_vec(),
            interval: Some(Duration::from_millis(60_000)),
            rollback: rule.map(|(metric, above, min_requests)| Rollback {
                metric: metric.into(),
                above,
                min_requests,
                query: None,
                url: None,
            }),
        }
    }

    fn window(requests: u64, errors: u64) -> Window {
        Window { requests, errors, ..Window::default() }
    }

    #[test]
    fn canary_steps_through_and_promotes() {
        let (mut r, first) = Rollout::start(&config("canary", &[10.0, 50.0, 100.0], None), 2, Some(1), 0);
        assert_eq!(first, Decision::Weights { candidate: 10.0 });
        assert_eq!(r.evaluate(59_999, &Window::default()), Decision::Hold);
        assert_eq!(r.evaluate(60_000, &Window::default()), Decision::Weights { candidate: 50.0 });
        assert_eq!(r.evaluate(100_000, &Window::default()), Decision::Hold, "a new step has its own interval");
        assert_eq!(r.evaluate(120_000, &Window::default()), Decision::Weights { candidate: 100.0 });
        assert_eq!(r.evaluate(180_000, &Window::default()), Decision::Promote);
        assert!(r.finished());
        assert_eq!(r.evaluate(999_999, &Window::default()), Decision::Hold);
    }

    #[test]
    fn steps_that_stop_short_of_all_traffic_end_at_100() {
        let (r, _) = Rollout::start(&config("canary", &[5.0, 25.0], None), 2, Some(1), 0);
        assert_eq!(r.steps, [5.0, 25.0, 100.0]);
    }

    #[test]
    fn first_version_or_immediate_goes_live_at_once() {
        let (r, d) = Rollout::start(&config("canary", &[10.0], None), 1, None, 0);
        assert_eq!((d, r.candidate_percent()), (Decision::Promote, 100.0));
        let (_, d) = Rollout::start(&config("immediate", &[], None), 3, Some(2), 0);
        assert_eq!(d, Decision::Promote);
    }

    #[test]
    fn error_rate_rolls_back_once_judged_and_names_why() {
        let (mut r, _) =
            Rollout::start(&config("canary", &[10.0, 100.0], Some(("error_rate", 0.02, 100))), 2, Some(1), 0);
        // Too few requests to judge, even with errors.
        assert_eq!(r.evaluate(1_000, &window(50, 25)), Decision::Hold);
        // Interval over but not enough requests: the step waits.
        assert_eq!(r.evaluate(70_000, &window(99, 0)), Decision::Hold);
        assert!(r.describe(70_000, &window(99, 0)).contains("99/100 requests judged on error_rate"));
        let d = r.evaluate(71_000, &window(340, 14));
        assert_eq!(d, Decision::Rollback { reason: "error_rate 0.0412 > 0.02 over 340 requests at 10%".into() });
        assert_eq!(r.candidate_percent(), 0.0);
        assert!(r.finished());
    }

    #[test]
    fn a_healthy_canary_passes_with_enough_requests() {
        let (mut r, _) = Rollout::start(&config("canary", &[10.0], Some(("error_rate", 0.02, 100))), 2, Some(1), 0);
        assert_eq!(r.evaluate(60_000, &window(100, 2)), Decision::Weights { candidate: 100.0 });
    }

    #[test]
    fn latency_quantiles_interpolate_like_prometheus() {
        let buckets = [(0.001, 50), (0.005, 90), (0.01, 100), (f64::INFINITY, 100)];
        assert_eq!(quantile(0.5, &buckets), Some(0.001));
        let p95 = quantile(0.95, &buckets).unwrap();
        assert!((p95 - 0.0075).abs() < 1e-12, "{p95}");
        assert_eq!(quantile(0.5, &[(0.1, 0), (f64::INFINITY, 0)]), None);
        // All in the open bucket: the highest finite bound.
        assert_eq!(quantile(0.99, &[(0.1, 0), (f64::INFINITY, 10)]), Some(0.1));
        let w = Window { requests: 100, latency: buckets.to_vec(), ..Window::default() };
        let (mut r, _) = Rollout::start(&config("canary", &[10.0], Some(("latency_p95", 0.005, 10))), 2, Some(1), 0);
        assert!(
            matches!(r.evaluate(1, &w), Decision::Rollback { reason } if reason.starts_with("latency_p95 0.0075 > 0.005"))
        );
    }

    #[test]
    fn unknown_score_drift_never_trips() {
        let (mut r, _) = Rollout::start(&config("canary", &[10.0], Some(("score_drift", 0.1, 0))), 2, Some(1), 0);
        assert_eq!(r.evaluate(1, &window(1000, 0)), Decision::Hold);
        let drifted = Window { score_drift: Some(0.3), ..window(1000, 0) };
        assert!(matches!(r.evaluate(2, &drifted), Decision::Rollback { .. }));
    }

    #[test]
    fn an_external_metric_that_cannot_be_read_holds_the_step() {
        let (mut r, _) = Rollout::start(&config("canary", &[10.0, 100.0], Some(("prometheus", 5.0, 1))), 2, Some(1), 0);
        let unread = Window { external: Some(Err("cannot reach Prometheus".into())), ..window(1000, 0) };
        // The interval is long over and enough requests came: still no promotion without the metric.
        assert_eq!(r.evaluate(600_000, &unread), Decision::Hold);
        assert_eq!(r.evaluate(600_000, &window(1000, 0)), Decision::Hold);
        assert!(r.describe(600_000, &unread).contains("cannot read it, so the step waits: cannot reach Prometheus"));
        let healthy = Window { external: Some(Ok(4.0)), ..window(1000, 0) };
        assert!(r.describe(600_000, &healthy).contains("prometheus = 4 (rolls back above 5)"));
        assert_eq!(r.evaluate(600_000, &healthy), Decision::Weights { candidate: 100.0 });
        let sick = Window { external: Some(Ok(7.5)), ..window(1000, 0) };
        assert_eq!(
            r.evaluate(600_001, &sick),
            Decision::Rollback { reason: "prometheus 7.5 > 5 over 1000 requests at 100%".into() }
        );
    }

    #[test]
    fn blue_green_switches_all_traffic_and_keeps_the_old_version_for_the_interval() {
        let (mut r, d) = Rollout::start(&config("blue_green", &[], Some(("error_rate", 0.1, 10))), 2, Some(1), 0);
        assert_eq!(d, Decision::Weights { candidate: 100.0 });
        assert_eq!(r.evaluate(30_000, &window(20, 0)), Decision::Hold);
        assert!(matches!(r.evaluate(31_000, &window(20, 5)), Decision::Rollback { .. }));
        let (mut r, _) = Rollout::start(&config("blue_green", &[], None), 2, Some(1), 0);
        assert_eq!(r.evaluate(60_000, &Window::default()), Decision::Promote);
    }

    #[test]
    fn a_rollout_survives_a_restart() {
        let (mut r, _) =
            Rollout::start(&config("canary", &[10.0, 100.0], Some(("error_rate", 0.02, 1))), 2, Some(1), 5);
        r.evaluate(60_005, &window(10, 0));
        let text = serde_json::to_string(&r).unwrap();
        let back: Rollout = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.candidate_percent(), 100.0);
    }

    #[test]
    fn manual_abort_rolls_back() {
        let (mut r, _) = Rollout::start(&config("canary", &[10.0], None), 2, Some(1), 0);
        assert_eq!(r.abort("mlops rollback"), Decision::Rollback { reason: "mlops rollback".into() });
        assert!(r.describe(0, &Window::default()).contains("rolled back: mlops rollback"));
    }
}
