//! False alarms: windows of traffic drawn from the very distribution the model was trained on,
//! judged many times over — the share of windows that breach must stay at the configured level
//! (α for checks judged on a p-value, family-wise after the Bonferroni correction; ~0 for PSI
//! and KS at their usual thresholds).

use std::collections::HashMap;

use mlops_compiler::model::{Drift, Monitor};
use mlops_compiler::units::Duration;
use mlops_runtime::monitor::drift::CategoryCounts;
use mlops_runtime::monitor::evaluate::{evaluate, CheckStatus};
use mlops_runtime::monitor::reference::{FeatureReference, Reference};
use mlops_runtime::monitor::window::{Logged, Window};
use serde_json::{json, Map};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn amount(&mut self) -> f64 {
        (3.7 + 0.9 * self.normal()).exp()
    }
    fn merchant(&mut self) -> &'static str {
        const M: [(&str, f64); 5] = [("grocery", 0.4), ("fuel", 0.25), ("web", 0.2), ("travel", 0.1), ("gift", 0.05)];
        let mut u = self.uniform();
        for (name, p) in M {
            if u < p {
                return name;
            }
            u -= p;
        }
        "gift"
    }
}

fn drift(features: &[&str], method: &str, threshold: f64) -> Drift {
    Drift {
        features: features.iter().map(|f| f.to_string()).collect(),
        method: method.into(),
        threshold,
        correction: "bonferroni".into(),
    }
}

#[test]
fn windows_from_the_training_distribution_alarm_at_most_at_the_configured_rate() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut reference = Reference::new(100_000, 7);
    for f in ["amount", "amount_b"] {
        let values: Vec<f64> = (0..20_000).map(|_| rng.amount()).collect();
        reference.features.insert(f.into(), FeatureReference::numeric(values, 100_000, 7));
    }
    for f in ["merchant", "merchant_b", "merchant_c"] {
        let names: Vec<&str> = (0..20_000).map(|_| rng.merchant()).collect();
        reference
            .features
            .insert(f.into(), FeatureReference::categorical(CategoryCounts::from_values(names.into_iter().map(Some))));
    }
    const ALPHA: f64 = 0.05;
    let monitor = Monitor {
        endpoint: "endpoint.api".into(),
        window: Duration::from_millis(3_600_000),
        min_samples: 500,
        drift: vec![
            drift(&["amount", "amount_b"], "psi", 0.2),
            drift(&["amount", "amount_b"], "ks", 0.1),
            drift(&["merchant", "merchant_b", "merchant_c"], "chi2", ALPHA),
        ],
        performance: None,
        prometheus: Vec::new(),
        description: None,
    };
    const WINDOWS: usize = 400;
    let mut alarms: HashMap<&str, usize> = HashMap::new();
    for w in 0..WINDOWS {
        let rows = (0..500)
            .map(|i| {
                let mut f = Map::new();
                f.insert("amount".into(), json!(rng.amount()));
                f.insert("amount_b".into(), json!(rng.amount()));
                for m in ["merchant", "merchant_b", "merchant_c"] {
                    f.insert(m.into(), json!(rng.merchant()));
                }
                Logged { id: format!("{w}-{i}"), version: 1, features: f, score: None, class: None }
            })
            .collect();
        let window = Window { from_us: 0, to_us: 1, rows, skipped: 0 };
        let report = evaluate("monitor.m", &monitor, &window, Some(1), Some(&reference), &HashMap::new());
        assert!(report
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Error && c.status != CheckStatus::InsufficientData));
        for method in ["psi", "ks", "chi2"] {
            if report.checks.iter().any(|c| c.method == method && c.status == CheckStatus::Breached) {
                *alarms.entry(method).or_default() += 1;
            }
        }
    }
    let rate = |m: &str| alarms.get(m).copied().unwrap_or(0) as f64 / WINDOWS as f64;
    // The family of three χ² tests, Bonferroni-corrected, alarms at most α of the time; allow
    // three binomial standard deviations of sampling noise over 400 windows.
    let noise = 3.0 * (ALPHA * (1.0 - ALPHA) / WINDOWS as f64).sqrt();
    assert!(rate("chi2") <= ALPHA + noise, "chi2 false alarm rate {} > {}", rate("chi2"), ALPHA + noise);
    // PSI 0.2 and KS D 0.1 on 500 values: far beyond what sampling alone produces.
    assert!(rate("psi") <= 0.01, "psi false alarm rate {}", rate("psi"));
    assert!(rate("ks") <= 0.01, "ks false alarm rate {}", rate("ks"));
    println!(
        "false alarm rates over {WINDOWS} windows: psi {}, ks {}, chi2 {} (α {ALPHA})",
        rate("psi"),
        rate("ks"),
        rate("chi2")
    );
}

#[test]
fn without_the_correction_three_chi2_tests_alarm_more_often() {
    // The correction is what keeps the family at α: the same windows uncorrected alarm more.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut reference = Reference::new(100_000, 7);
    for f in ["a", "b", "c"] {
        let names: Vec<&str> = (0..20_000).map(|_| rng.merchant()).collect();
        reference
            .features
            .insert(f.into(), FeatureReference::categorical(CategoryCounts::from_values(names.into_iter().map(Some))));
    }
    let make = |correction: &str| Monitor {
        endpoint: "endpoint.api".into(),
        window: Duration::from_millis(1000),
        min_samples: 300,
        drift: vec![Drift { correction: correction.into(), ..drift(&["a", "b", "c"], "chi2", 0.05) }],
        performance: None,
        prometheus: Vec::new(),
        description: None,
    };
    let (corrected, plain) = (make("bonferroni"), make("none"));
    let (mut with, mut without) = (0, 0);
    for w in 0..300 {
        let rows = (0..300)
            .map(|i| {
                let mut f = Map::new();
                for m in ["a", "b", "c"] {
                    f.insert(m.into(), json!(rng.merchant()));
                }
                Logged { id: format!("{w}-{i}"), version: 1, features: f, score: None, class: None }
            })
            .collect();
        let window = Window { from_us: 0, to_us: 1, rows, skipped: 0 };
        let breached =
            |m: &Monitor| !evaluate("m", m, &window, Some(1), Some(&reference), &HashMap::new()).breaches().is_empty();
        with += usize::from(breached(&corrected));
        without += usize::from(breached(&plain));
    }
    assert!(with <= without, "{with} vs {without}");
    assert!(without > with, "uncorrected, three tests at 5 % should alarm more: {without} vs {with}");
}
