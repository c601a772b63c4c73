//! The drift report: one self-contained HTML page (inline CSS and SVG, nothing fetched) showing
//! a monitor's judgement of a window — every check against its threshold — and, per drift
//! feature, the training reference's distribution over the window's. In: a [`MonitorReport`],
//! the [`Window`] and the [`Reference`] it was judged on. Out: the page, rendered from the
//! embedded `templates/drift_report.html.tera`.

use serde::Serialize;

use super::drift::FeatureData;
use super::evaluate::{CheckStatus, MonitorReport};
use super::reference::Reference;
use super::window::{Column, Window};

const TEMPLATE: &str = include_str!("../../templates/drift_report.html.tera");

/// Bins of a numeric feature's histogram.
const BINS: usize = 24;
/// Most categories drawn (the most frequent in either sample).
const MAX_CATEGORIES: usize = 14;

#[derive(Serialize)]
struct CheckRow {
    check: String,
    name: String,
    method: String,
    value: String,
    threshold: String,
    samples: u64,
    status: &'static str,
    status_text: &'static str,
}

#[derive(Serialize)]
struct Plot {
    name: String,
    caption: String,
    svg: String,
}

/// Renders the page for the monitor watching `endpoint`; `generated` is the time to print.
pub fn render(
    report: &MonitorReport,
    endpoint: &str,
    window: &Window,
    reference: Option<&Reference>,
    generated: &str,
) -> Result<String, String> {
    let checks: Vec<CheckRow> = report
        .checks
        .iter()
        .map(|c| {
            let shown = if c.threshold.starts_with("p ") { c.p_value } else { c.value };
            let (status, status_text) = match c.status {
                CheckStatus::Ok => ("ok", "ok"),
                CheckStatus::Breached => ("breached", "BREACHED"),
                CheckStatus::InsufficientData => ("insufficient_data", "not enough data"),
                CheckStatus::Error => ("error", "error"),
            };
            CheckRow {
                check: c.check.clone(),
                name: c.name.clone(),
                method: c.method.clone(),
                value: shown.map_or_else(|| "—".into(), |v| format!("{v:.4}")),
                threshold: c.threshold.clone(),
                samples: c.samples,
                status,
                status_text,
            }
        })
        .collect();
    let mut plots = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in report.checks.iter().filter(|c| c.check == "drift") {
        if !seen.insert(c.name.clone()) {
            continue;
        }
        let Some(fr) = reference.and_then(|r| r.feature(&c.name)) else { continue };
        let (current, missing) = window.column(&c.name);
        let svg = match (&fr.data, &current) {
            (FeatureData::Numeric(r), Column::Numeric(v)) => numeric_svg(r.values(), v),
            (FeatureData::Categorical(r), Column::Categorical(v)) => {
                let reference: Vec<(String, u64)> = r.counts().iter().map(|(k, n)| (k.clone(), *n)).collect();
                categorical_svg(&reference, v)
            }
            _ => continue,
        };
        let caption = format!(
            "{} training values, {} in the window ({} missing) · {}",
            fr.count,
            match &current {
                Column::Numeric(v) => v.len(),
                Column::Categorical(v) => v.len(),
            },
            missing,
            c.message
        );
        plots.push(Plot { name: c.name.clone(), caption, svg });
    }
    let breached = report.breaches().len();
    let (verdict, verdict_class) = if breached > 0 {
        (format!("{breached} check(s) breached"), "breached")
    } else if report.insufficient() {
        ("not enough data to judge".to_string(), "insufficient_data")
    } else {
        ("no drift".to_string(), "ok")
    };
    let mut ctx = tera::Context::new();
    ctx.insert("monitor", &report.monitor);
    ctx.insert("endpoint", endpoint);
    ctx.insert("version", &report.version.map_or_else(|| "—".to_string(), |v| v.to_string()));
    ctx.insert("from", &crate::state::rfc3339(report.from_ms / 1000));
    ctx.insert("to", &crate::state::rfc3339(report.to_ms / 1000));
    ctx.insert("predictions", &report.predictions);
    ctx.insert("generated", generated);
    ctx.insert("verdict", &verdict);
    ctx.insert("verdict_class", verdict_class);
    ctx.insert("checks", &checks);
    ctx.insert("plots", &plots);
    tera::Tera::one_off(TEMPLATE, &ctx, true).map_err(|e| format!("rendering the report: {e}"))
}

const W: f64 = 320.0;
const H: f64 = 150.0;
const PAD: f64 = 22.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Two overlaid histograms over shared equal-width bins spanning both samples' 1st–99th
/// percentiles (outliers fall into the end bins), as shares of each sample.
fn numeric_svg(reference: &[f64], current: &[f64]) -> String {
    let mut all: Vec<f64> = reference.iter().chain(current).copied().filter(|x| x.is_finite()).collect();
    if all.is_empty() {
        return String::from("<p>no values</p>");
    }
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize];
    let (lo, mut hi) = (q(0.01), q(0.99));
    if hi <= lo {
        hi = lo + 1.0;
    }
    let shares = |values: &[f64]| {
        let mut counts = vec![0u64; BINS];
        for &x in values.iter().filter(|x| x.is_finite()) {
            let i = (((x - lo) / (hi - lo)) * BINS as f64).floor().clamp(0.0, (BINS - 1) as f64) as usize;
            counts[i] += 1;
        }
        let total = counts.iter().sum::<u64>().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / total).collect::<Vec<f64>>()
    };
    let (r, c) = (shares(reference), shares(current));
    let top = r.iter().chain(&c).copied().fold(0.0f64, f64::max).max(1e-9);
    let bw = (W - 2.0 * PAD) / BINS as f64;
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img">"#);
    for (i, (a, b)) in r.iter().zip(&c).enumerate() {
        let x = PAD + i as f64 * bw;
        for (share, color, dx, w) in [(a, "#9aa5b8", 0.0, bw - 1.0), (b, "#f08a24", bw * 0.25, bw * 0.5)] {
            let h = share / top * (H - 2.0 * PAD);
            svg.push_str(&format!(
                r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{color}" opacity="0.9"/>"#,
                x + dx,
                H - PAD - h,
                w.max(0.5),
                h
            ));
        }
    }
    svg.push_str(&format!(
        r##"<line x1="{PAD}" y1="{y}" x2="{x2}" y2="{y}" stroke="#5b6475"/><text x="{PAD}" y="{t}" font-size="10" fill="#5b6475">{}</text><text x="{x2}" y="{t}" font-size="10" fill="#5b6475" text-anchor="end">{}</text></svg>"##,
        esc(&format!("{lo:.4}")),
        esc(&format!("{hi:.4}")),
        y = H - PAD,
        x2 = W - PAD,
        t = H - 6.0
    ));
    svg
}

/// Side-by-side bars of each category's share, the most frequent first.
fn categorical_svg(reference: &[(String, u64)], current: &[String]) -> String {
    let mut cur: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for v in current {
        *cur.entry(v.as_str()).or_default() += 1;
    }
    let rt = reference.iter().map(|(_, n)| n).sum::<u64>().max(1) as f64;
    let ct = (current.len() as u64).max(1) as f64;
    let mut cats: Vec<(String, f64, f64)> = reference
        .iter()
        .map(|(k, n)| (k.clone(), *n as f64 / rt, cur.get(k.as_str()).copied().unwrap_or(0) as f64 / ct))
        .collect();
    for (k, n) in &cur {
        if !reference.iter().any(|(r, _)| r == k) {
            cats.push((format!("{k} (unseen)"), 0.0, *n as f64 / ct));
        }
    }
    cats.sort_by(|a, b| (b.1.max(b.2)).total_cmp(&a.1.max(a.2)));
    cats.truncate(MAX_CATEGORIES);
    let top = cats.iter().map(|c| c.1.max(c.2)).fold(0.0f64, f64::max).max(1e-9);
    let row = 16.0;
    let height = PAD + row * cats.len() as f64 + 6.0;
    let label_w = 110.0;
    let bar_w = W - label_w - 10.0;
    let mut svg =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="100%" role="img">"#);
    for (i, (name, r, c)) in cats.iter().enumerate() {
        let y = 6.0 + i as f64 * row;
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#1d2330" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{:.2}" height="6" fill="#9aa5b8"/><rect x="{label_w}" y="{:.1}" width="{:.2}" height="6" fill="#f08a24"/>"##,
            label_w - 4.0,
            y + 10.0,
            esc(name),
            y + 1.0,
            r / top * bar_w,
            y + 8.0,
            c / top * bar_w
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::CheckResult;
    use crate::monitor::reference::FeatureReference;
    use crate::monitor::window::Logged;

    #[test]
    fn the_page_is_self_contained_and_shows_every_check_and_plot() {
        let mut reference = Reference::new(1000, 1);
        reference.features.insert("amount".into(), FeatureReference::numeric((0..500).map(f64::from), 1000, 1));
        let rows = (0..50)
            .map(|i| {
                let mut f = serde_json::Map::new();
                f.insert("amount".into(), serde_json::json!(400 + i));
                Logged { id: format!("p{i}"), version: 2, features: f, score: None, class: None }
            })
            .collect();
        let window = Window { from_us: 0, to_us: 3_600_000_000, rows, skipped: 0 };
        let check = |name: &str, status| CheckResult {
            check: "drift".into(),
            name: name.into(),
            method: "psi".into(),
            value: Some(1.25),
            p_value: None,
            threshold: "> 0.2".into(),
            samples: 50,
            status,
            message: format!("psi({name}) 1.25 > 0.2 over 50 values"),
        };
        let report = MonitorReport {
            monitor: "monitor.m<x>".into(),
            from_ms: 0,
            to_ms: 3_600_000,
            predictions: 50,
            version: Some(2),
            checks: vec![check("amount", CheckStatus::Breached), check("missing_feature", CheckStatus::Error)],
        };
        let page = render(&report, "api", &window, Some(&reference), "2026-11-27T00:00:00Z").unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("Drift report: monitor.m&lt;x&gt;"), "names are escaped");
        assert!(page.contains("1 check(s) breached"));
        assert!(page.contains("<td>amount</td>") && page.contains("BREACHED") && page.contains("missing_feature"));
        assert_eq!(page.matches("<svg").count(), 1, "one plot: the feature with a reference");
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "nothing fetched");
    }

    #[test]
    fn categorical_plots_show_unseen_categories() {
        let svg = categorical_svg(&[("web".into(), 5), ("shop".into(), 5)], &["web".into(), "crypto".into()]);
        assert!(svg.contains("crypto (unseen)") && svg.contains(">web<"), "{svg}");
    }
}
