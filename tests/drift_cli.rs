//! `mlops drift compare` on the built binary: the table and the JSON report on CSV and Parquet,
//! exit codes (0 no drift, 2 drift, 1 error), and every bad input answered with a message that
//! names the file or column and the fix — never a panic.

mod common;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use common::{mlops, stderr, stdout, TempDir};
use parquet::arrow::ArrowWriter;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A CSV file of `amount` (numeric), `merchant` (categorical) and `items` (whole numbers).
fn csv(dir: &TempDir, name: &str, rows: &[(f64, &str, i64)]) -> PathBuf {
    let mut text = String::from("amount,merchant,items\n");
    for (a, m, i) in rows {
        text.push_str(&format!("{a},{m},{i}\n"));
    }
    dir.write(name, &text)
}

/// 400 rows: amounts 0..400 (shifted by `shift`), merchants cycling through `merchants`.
fn rows<'a>(shift: f64, merchants: &[&'a str]) -> Vec<(f64, &'a str, i64)> {
    (0..400).map(|i| (f64::from(i) + shift, merchants[i as usize % merchants.len()], i64::from(i % 5))).collect()
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn run(args: &[&str]) -> std::process::Output {
    mlops().arg("drift").arg("compare").args(args).output().unwrap()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(out)))
}

/// The report's entry for `column`.
fn column<'a>(report: &'a Value, column: &str) -> &'a Value {
    report["columns"].as_array().unwrap().iter().find(|c| c["feature"] == column).unwrap()
}

#[track_caller]
fn assert_error(out: &std::process::Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}\nstderr:\n{err}", stdout(out));
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

#[test]
fn drift_found_prints_a_table_and_exits_2() {
    let dir = TempDir::new("drift-table");
    let r = csv(&dir, "ref.csv", &rows(0.0, &["a", "b", "c"]));
    let c = csv(&dir, "cur.csv", &rows(150.0, &["a", "b", "c", "d"]));
    let out = run(&[r.to_str().unwrap(), c.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    let line =
        |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    assert!(line("amount").contains("numeric") && line("amount").contains("psi") && line("amount").ends_with("YES"));
    assert!(line("merchant").contains("categorical") && line("merchant").contains("chi2"), "{text}");
    assert!(line("items").ends_with("no"), "{text}");
    assert!(text.contains("2 of 3 columns drifted: amount, merchant"), "{text}");
}

#[test]
fn no_drift_exits_0() {
    let dir = TempDir::new("drift-none");
    let r = csv(&dir, "ref.csv", &rows(0.0, &["a", "b"]));
    let c = csv(&dir, "cur.csv", &rows(0.0, &["b", "a"]));
    let out = run(&[r.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("0 of 3 columns drifted"), "{}", stdout(&out));
}

#[test]
fn json_report_has_statistics_p_values_and_verdicts() {
    let dir = TempDir::new("drift-json");
    // KS by hand: 0..400 against 100..500 — the CDFs differ by 1/4 at most, exactly.
    let r = csv(&dir, "ref.csv", &rows(0.0, &["a", "b"]));
    let c = csv(&dir, "cur.csv", &rows(100.0, &["a", "b", "new"]));
    let out = run(&[r.to_str().unwrap(), c.to_str().unwrap(), "--method", "ks", "--columns", "amount,items", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["reference"]["rows"], 400);
    assert_eq!(report["reference"]["format"], "csv");
    let amount = column(&report, "amount");
    assert_eq!(amount["measurement"]["statistic"], 0.25);
    assert_eq!(amount["measurement"]["details"]["exact"], true);
    let p = amount["measurement"]["p_value"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1e-9, "{p}");
    assert_eq!(amount["status"], "drifted");
    assert_eq!(amount["judged_on"], "statistic");
    assert_eq!(column(&report, "items")["status"], "ok");
    assert_eq!(report["drifted"], serde_json::json!(["amount"]));

    // chi2 over the merchants: a category the reference never saw is counted, not an error;
    // whole numbers can be compared as categories too.
    let out =
        run(&[r.to_str().unwrap(), c.to_str().unwrap(), "--method", "chi2", "--columns", "merchant,items", "--json"]);
    let report = json(&out);
    let merchant = column(&report, "merchant");
    assert_eq!(merchant["measurement"]["details"]["unseen_categories"], serde_json::json!(["new"]));
    assert_eq!(merchant["status"], "drifted");
    let items = column(&report, "items");
    assert_eq!(items["measurement"]["details"]["categories"], 5);
    // Both judged by p-value: Bonferroni over two columns doubles each.
    let raw = merchant["measurement"]["p_value"].as_f64().unwrap();
    let adj = merchant["p_value_adjusted"].as_f64().unwrap();
    assert_eq!(adj, (2.0 * raw).min(1.0));
    let none = run(&[
        r.to_str().unwrap(),
        c.to_str().unwrap(),
        "--method",
        "chi2",
        "--columns",
        "merchant,items",
        "--json",
        "--correction",
        "none",
    ]);
    assert_eq!(column(&json(&none), "merchant")["p_value_adjusted"].as_f64().unwrap(), raw);
}

#[test]
fn thresholds_alpha_and_min_samples_change_the_verdict() {
    let dir = TempDir::new("drift-threshold");
    let r = csv(&dir, "ref.csv", &rows(0.0, &["a"]));
    let c = csv(&dir, "cur.csv", &rows(100.0, &["a"]));
    let args = |extra: &[&str]| {
        let mut a =
            vec![r.to_str().unwrap().to_string(), c.to_str().unwrap().to_string(), "--columns".into(), "amount".into()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let go = |extra: &[&str]| {
        let a = args(extra);
        run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // D = 0.25: drifted above 0.2, not above 0.3.
    assert_eq!(go(&["--method", "ks", "--threshold", "0.2"]).status.code(), Some(2));
    assert_eq!(go(&["--method", "ks", "--threshold", "0.3"]).status.code(), Some(0));
    // Judged on its p-value (tiny here) instead.
    let out = go(&["--method", "ks", "--threshold", "0.3", "--alpha", "0.01", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(column(&json(&out), "amount")["judged_on"], "p_value");
    // A window below --min-samples is not judged.
    let out = go(&["--min-samples", "1000", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(column(&report, "amount")["status"], "insufficient_data");
    assert!(column(&report, "amount")["measurement"].is_null());
    let table = go(&["--min-samples", "1000"]);
    assert!(stdout(&table).contains("insufficient data (400 < 1000 values)"), "{}", stdout(&table));
    // Wasserstein: 100 units away, normalised by the reference's std (≈ 115.47).
    let out = go(&["--method", "wasserstein", "--json"]);
    let report = json(&out);
    let m = &column(&report, "amount")["measurement"];
    assert!((m["details"]["raw_distance"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    let std = (f64::from(400 * 400 - 1) / 12.0).sqrt();
    assert!((m["statistic"].as_f64().unwrap() - 100.0 / std).abs() < 1e-9, "{m}");
}

#[test]
fn parquet_files_with_nulls_and_booleans() {
    let dir = TempDir::new("drift-parquet");
    let amounts = |shift: f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter((0..300).map(|i| (i % 10 != 0).then_some(f64::from(i) + shift))))
    };
    let flags = |every: i32| -> ArrayRef { Arc::new(BooleanArray::from_iter((0..300).map(|i| Some(i % every == 0)))) };
    let counts: ArrayRef = Arc::new(Int64Array::from_iter_values((0..300).map(|i| i % 7)));
    let names: ArrayRef = Arc::new(StringArray::from_iter((0..300).map(|i| Some(["x", "y"][i % 2]))));
    let r = dir.path().join("ref.parquet");
    let c = dir.path().join("cur.parquet");
    write_parquet(
        &r,
        vec![("amount", amounts(0.0)), ("flag", flags(2)), ("n", counts.clone()), ("name", names.clone())],
    );
    write_parquet(&c, vec![("amount", amounts(0.0)), ("flag", flags(3)), ("n", counts), ("name", names)]);
    let out = run(&[r.to_str().unwrap(), c.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["current"]["format"], "parquet");
    let amount = column(&report, "amount");
    assert_eq!(amount["kind"], "numeric");
    assert_eq!(amount["reference_missing"], 30);
    assert_eq!(amount["reference_count"], 270);
    assert_eq!(amount["status"], "ok");
    assert_eq!(amount["measurement"]["statistic"], 0.0);
    let flag = column(&report, "flag");
    assert_eq!(flag["kind"], "categorical");
    assert_eq!(flag["method"], "chi2");
    assert_eq!(flag["status"], "drifted");
    assert_eq!(column(&report, "n")["kind"], "numeric");
    assert_eq!(column(&report, "name")["kind"], "categorical");
    // CSV against Parquet works too.
    let csv_ref =
        dir.write("ref.csv", &(0..300).map(|i| format!("{}\n", i)).fold("amount\n".to_string(), |a, l| a + &l));
    let out = run(&[csv_ref.to_str().unwrap(), c.to_str().unwrap(), "--columns", "amount"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn csv_missing_values_are_dropped_and_counted() {
    let dir = TempDir::new("drift-missing");
    let r = dir.write("ref.csv", "x,y\n1,a\n,b\nNaN,\n2,a\n3,b\n");
    let c = dir.write("cur.csv", "x,y\n1,a\n2,\n3,b\ninf,b\n");
    let out = run(&[r.to_str().unwrap(), c.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    let x = column(&report, "x");
    assert_eq!((x["reference_count"].as_u64(), x["reference_missing"].as_u64()), (Some(3), Some(2)));
    assert_eq!((x["current_count"].as_u64(), x["current_missing"].as_u64()), (Some(3), Some(1)));
    let y = column(&report, "y");
    assert_eq!((y["reference_count"].as_u64(), y["reference_missing"].as_u64()), (Some(4), Some(1)));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = TempDir::new("drift-errors");
    let r = csv(&dir, "ref.csv", &rows(0.0, &["a", "b"]));
    let c = csv(&dir, "cur.csv", &rows(0.0, &["a", "b"]));
    let (r, c) = (r.to_str().unwrap(), c.to_str().unwrap());

    // A missing file names the side and the path.
    let out = run(&[r, "nope/cur.csv"]);
    assert_error(&out, &["cannot read the current file nope/cur.csv", "No such file"]);
    // An unknown column, with a suggestion and the columns there are.
    let out = run(&[r, c, "--columns", "amont"]);
    assert_error(&out, &["has no column `amont`", "did you mean `amount`?", "amount, merchant, items"]);
    // A column present on one side only.
    let other = dir.write("other.csv", "amount,region\n1,eu\n");
    let out = run(&[r, other.to_str().unwrap(), "--columns", "merchant"]);
    assert_error(&out, &["the current file", "other.csv has no column `merchant`"]);
    // A column with no values.
    let empty = dir.write("empty.csv", "amount,merchant,items\n,a,1\n,b,2\n");
    let out = run(&[r, empty.to_str().unwrap(), "--columns", "amount"]);
    assert_error(&out, &["column `amount` of the current file", "has no values (2 missing)"]);
    // A numeric-only method on a categorical column.
    let out = run(&[r, c, "--columns", "merchant", "--method", "ks"]);
    assert_error(&out, &["column `merchant`: ks cannot compare categorical values", "use chi2 or js"]);
    // chi2 on fractional numbers.
    let frac = dir.write("frac.csv", "amount\n0.5\n1.5\n");
    let out = run(&[frac.to_str().unwrap(), frac.to_str().unwrap(), "--method", "chi2", "--columns", "amount"]);
    assert_error(&out, &["chi2 cannot compare numeric values", "use psi, ks, js or wasserstein"]);
    // Numbers on one side, text on the other.
    let text = dir.write("text.csv", "amount\n1\nn/a\n");
    let out = run(&[r, text.to_str().unwrap(), "--columns", "amount"]);
    assert_error(&out, &["column `amount` holds numbers in the reference file", "\"n/a\""]);
    // No column in common.
    let out = run(&[r, dir.write("disjoint.csv", "z\n1\n").to_str().unwrap()]);
    assert_error(&out, &["have no column in common", "--columns"]);
    // Options that make no sense.
    assert_error(&run(&[r, c, "--method", "psi", "--alpha", "0.05"]), &["psi has none"]);
    assert_error(&run(&[r, c, "--threshold", "0.1"]), &["--threshold is ambiguous", "add --method"]);
    assert_error(&run(&[r, c, "--method", "chi2", "--threshold", "3"]), &["significance level"]);
    assert_error(&run(&[r, c, "--bins", "1"]), &["--bins 1 is too few"]);
    // A misspelt method is a usage error, exit 1 (2 means drift), with a suggestion.
    assert_error(&run(&[r, c, "--method", "kss"]), &["unknown drift method `kss`", "did you mean `ks`?"]);
    // A broken Parquet file.
    let broken = dir.write("broken.parquet", "PAR1 this is not parquet");
    assert_error(&run(&[r, broken.to_str().unwrap()]), &["the current file", "not a readable Parquet file"]);
}

#[test]
fn columns_that_do_not_fit_are_skipped_when_none_are_named() {
    let dir = TempDir::new("drift-skip");
    let r = csv(&dir, "ref.csv", &rows(0.0, &["a", "b"]));
    let c = csv(&dir, "cur.csv", &rows(0.0, &["a", "b"]));
    let out = run(&[r.to_str().unwrap(), c.to_str().unwrap(), "--method", "wasserstein", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["columns"].as_array().unwrap().len(), 2);
    assert_eq!(report["skipped"][0]["column"], "merchant");
    let table = run(&[r.to_str().unwrap(), c.to_str().unwrap(), "--method", "wasserstein"]);
    assert!(stdout(&table).contains("skipped `merchant`: wasserstein cannot compare categorical values"));
}
