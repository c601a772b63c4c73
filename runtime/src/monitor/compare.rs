//! Ad-hoc drift analysis of two files (`mlops drift compare REFERENCE CURRENT`). In: two CSV or
//! Parquet files and [`CompareOptions`]; out: a [`Report`] with a [`Verdict`] per column — the
//! same statistics and judgement a monitor applies — or a [`CompareError`] naming the file, the
//! column and the fix.
//!
//! - **Formats.** A file starting with Parquet's magic bytes (`PAR1`) is Parquet, anything else
//!   CSV (comma-separated, with a header). Both are read through [`crate::data`], so the same
//!   parsing and error messages apply as for sources.
//! - **Column kinds.** In Parquet, integer and float columns are numeric; strings and booleans
//!   categorical; timestamps and dates are not compared. In CSV a column is numeric when every
//!   non-empty field parses as a number, otherwise categorical (each distinct text a category).
//! - **Missing values** — empty CSV fields, Parquet nulls, and `NaN` / `inf` in CSV — are dropped
//!   and counted per column. (Parquet must store a missing number as null: a NaN there is an
//!   error, as for sources.) A column with no value left on either side is an error.
//! - **Methods.** Numeric columns default to `psi`, categorical ones to `chi2`; `--method` applies
//!   one method to every column. `chi2` also takes a numeric column holding only whole numbers
//!   (each value a category). A column named with `--columns` that does not fit the method is an
//!   error; without `--columns`, such columns are skipped and listed as skipped.
//! - **Columns** compared are those named, or else every column the two files have in common.

use super::drift::{
    judge, CategoryCounts, Check, Correction, DriftError, FeatureData, JudgedOn, Kind, Method, NumericSample, Policy,
    Side, Status, Verdict, DEFAULT_BINS,
};
use crate::data::{self, DataError};
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, BooleanArray, StringArray};
use arrow_schema::DataType;
use mlops_compiler::model::{Column, ColumnType, Source, SourceFormat};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the JSON report (`--json`).
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// What to compare and how to judge it.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Columns to compare (default: every column both files have).
    pub columns: Option<Vec<String>>,
    /// One method for every column (default: psi for numbers, chi2 for categories).
    pub method: Option<Method>,
    /// Threshold of the method (default: the method's [`Method::default_threshold`]).
    pub threshold: Option<f64>,
    /// Judge p-value methods (ks, chi2) on the corrected p-value at this significance level.
    pub alpha: Option<f64>,
    /// Correction over the columns judged by p-value.
    pub correction: Correction,
    /// Values the current file needs in a column before it is judged.
    pub min_samples: u64,
    /// Quantile bins of the reference for psi and js on numbers.
    pub bins: usize,
}

impl Default for CompareOptions {
    fn default() -> CompareOptions {
        CompareOptions {
            columns: None,
            method: None,
            threshold: None,
            alpha: None,
            correction: Correction::Bonferroni,
            min_samples: 1,
            bins: DEFAULT_BINS,
        }
    }
}

/// Why two files could not be compared. Each message says where and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A file cannot be opened.
    #[error("cannot read the {side} file {}: {source}", path.display())]
    Open {
        /// Which file.
        side: Side,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be parsed.
    #[error("the {side} file {}: {message}", path.display())]
    Format {
        /// Which file.
        side: Side,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading the data failed (a bad value, a broken file).
    #[error("{0}")]
    Data(#[from] DataError),
    /// A named column is not in a file.
    #[error(
        "the {side} file {} has no column `{column}`{}; its columns are: {}",
        path.display(),
        suggestion.as_ref().map_or(String::new(), |s| format!(" (did you mean `{s}`?)")),
        available.join(", ")
    )]
    UnknownColumn {
        /// Which file.
        side: Side,
        /// Its path.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The closest column name, if one is close.
        suggestion: Option<String>,
        /// The file's columns.
        available: Vec<String>,
    },
    /// The files have no column in common.
    #[error("{} and {} have no column in common; name the columns to compare with --columns", reference.display(), current.display())]
    NoCommonColumns {
        /// The reference file.
        reference: PathBuf,
        /// The current file.
        current: PathBuf,
    },
    /// A column holds nothing to compare.
    #[error(
        "column `{column}` of the {side} file {} has no values ({missing} missing); drop it from --columns or fix the data",
        path.display()
    )]
    EmptyColumn {
        /// Which file.
        side: Side,
        /// Its path.
        path: PathBuf,
        /// The column.
        column: String,
        /// Missing values it had.
        missing: u64,
    },
    /// A column's kind differs between the files.
    #[error(
        "column `{column}` holds numbers in the {numeric_side} file but text in the other (for example {example:?}); \
         clean the data so both sides agree"
    )]
    KindMismatch {
        /// The column.
        column: String,
        /// The side where it is numeric.
        numeric_side: Side,
        /// A value of the other side that is not a number.
        example: String,
    },
    /// A column's type cannot be compared.
    #[error("column `{column}` of the {side} file is a {found} column; drift compare handles numbers and categories")]
    Unsupported {
        /// Which file.
        side: Side,
        /// The column.
        column: String,
        /// Its stored type.
        found: String,
    },
    /// The method does not fit a named column.
    #[error("column `{column}`: {source}")]
    Method {
        /// The column.
        column: String,
        /// Why it does not fit.
        source: DriftError,
    },
    /// The options contradict each other or the data.
    #[error("{0}")]
    Options(String),
}

/// One compared file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The path as given.
    pub path: String,
    /// `csv` or `parquet`.
    pub format: String,
    /// Rows read.
    pub rows: u64,
}

/// One column's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    /// Numbers or categories.
    pub kind: Kind,
    /// Statistic, p-value, threshold, status and counts.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// A column left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The column.
    pub column: String,
    /// Why.
    pub reason: String,
}

/// The result of comparing two files (`--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The reference file.
    pub reference: FileSummary,
    /// The current file.
    pub current: FileSummary,
    /// Correction over the columns judged by p-value.
    pub correction: Correction,
    /// Values a column needed in the current file to be judged.
    pub min_samples: u64,
    /// Quantile bins for psi and js on numbers.
    pub bins: usize,
    /// Compared columns, in order.
    pub columns: Vec<ColumnReport>,
    /// Columns left out (only when no `--columns` were named).
    pub skipped: Vec<Skipped>,
    /// Names of the drifted columns.
    pub drifted: Vec<String>,
}

impl Report {
    /// Did any column drift?
    pub fn any_drifted(&self) -> bool {
        !self.drifted.is_empty()
    }
}

/// The stored type of a column, before values are looked at.
#[derive(Debug, Clone, PartialEq)]
enum Stored {
    /// CSV text: numeric or categorical depending on the values.
    Text,
    /// Parquet integers or floats.
    Number,
    /// Parquet booleans.
    Bool,
    /// Parquet strings.
    String,
    /// Anything else (the type's name).
    Other(String),
}

/// One file, opened.
struct Input {
    side: Side,
    path: PathBuf,
    format: SourceFormat,
    columns: Vec<(String, Stored)>,
}

impl Input {
    fn open(side: Side, path: &Path) -> Result<Input, CompareError> {
        use std::io::Read;
        let open_err = |source| CompareError::Open { side, path: path.to_path_buf(), source };
        let mut file = std::fs::File::open(path).map_err(open_err)?;
        if file.metadata().map_err(open_err)?.is_dir() {
            return Err(CompareError::Format {
                side,
                path: path.to_path_buf(),
                message: "is a directory; give a CSV or Parquet file".into(),
            });
        }
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(open_err)?;
        let format = if n == 4 && &magic == b"PAR1" { SourceFormat::Parquet } else { SourceFormat::Csv };
        let format_err = |message: String| CompareError::Format { side, path: path.to_path_buf(), message };
        let columns = match format {
            SourceFormat::Parquet => {
                let file = std::fs::File::open(path).map_err(open_err)?;
                let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| format_err(format!("not a readable Parquet file: {e}")))?;
                builder.schema().fields().iter().map(|f| (f.name().clone(), stored(f.data_type()))).collect()
            }
            _ => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .from_path(path)
                    .map_err(|e| format_err(format!("not a readable CSV file: {e}")))?;
                let header = reader.headers().map_err(|e| format_err(format!("cannot read the CSV header: {e}")))?;
                header
                    .iter()
                    .enumerate()
                    .map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}') } else { h }.trim().to_string())
                    .map(|h| (h, Stored::Text))
                    .collect()
            }
        };
        let input = Input { side, path: path.to_path_buf(), format, columns };
        if input.columns.iter().all(|(n, _)| n.is_empty()) {
            return Err(format_err("has no columns; a CSV file needs a header line naming its columns".into()));
        }
        Ok(input)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| n.as_str())
    }

    fn stored(&self, column: &str) -> Option<&Stored> {
        self.columns.iter().find(|(n, _)| n == column).map(|(_, s)| s)
    }

    fn unknown(&self, column: &str) -> CompareError {
        CompareError::UnknownColumn {
            side: self.side,
            path: self.path.clone(),
            column: column.to_string(),
            suggestion: mlops_compiler::suggest::did_you_mean(column, self.names()).map(str::to_string),
            available: self.names().map(str::to_string).collect(),
        }
    }

    /// Reads `columns` (all of a supported type) through [`data::open`].
    fn read(&self, columns: &[String]) -> Result<(u64, Vec<Values>), CompareError> {
        let declared: Vec<Column> = columns
            .iter()
            .map(|name| {
                let ty = match self.stored(name) {
                    Some(Stored::Number) => ColumnType::Float,
                    Some(Stored::Bool) => ColumnType::Bool,
                    _ => ColumnType::String,
                };
                Column { name: name.clone(), ty, nullable: true }
            })
            .collect();
        let (root, file) = match (self.path.parent(), self.path.file_name()) {
            (Some(dir), Some(name)) => (dir.to_path_buf(), name.to_string_lossy().into_owned()),
            _ => (PathBuf::from("."), self.path.to_string_lossy().into_owned()),
        };
        // A name with glob characters would be taken as a glob by the reader.
        if file.contains(['*', '?']) {
            return Err(CompareError::Format {
                side: self.side,
                path: self.path.clone(),
                message: "has `*` or `?` in its name; rename the file".into(),
            });
        }
        let source = Source {
            format: self.format,
            path: Some(file),
            connection: None,
            connection_env: None,
            table: None,
            query: None,
            timestamp: None,
            delimiter: ",".into(),
            header: true,
            columns: declared.clone(),
            description: None,
        };
        let root = if root.as_os_str().is_empty() { PathBuf::from(".") } else { root };
        let reader = data::open(&source, &self.side.to_string(), &root)?;
        let mut values: Vec<Values> = declared
            .iter()
            .map(|c| match c.ty {
                ColumnType::Float => Values::Numbers(Vec::new(), 0),
                ColumnType::Bool => Values::Bools([0, 0], 0),
                _ => Values::Text(Vec::new()),
            })
            .collect();
        let mut rows = 0u64;
        for batch in reader {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            for (v, array) in values.iter_mut().zip(batch.columns()) {
                match v {
                    Values::Numbers(out, nulls) => {
                        let a = array.as_primitive::<Float64Type>();
                        *nulls += a.null_count() as u64;
                        out.extend(a.iter().flatten());
                    }
                    Values::Bools(counts, nulls) => {
                        let a: &BooleanArray = array.as_boolean();
                        *nulls += a.null_count() as u64;
                        for b in a.iter().flatten() {
                            counts[usize::from(b)] += 1;
                        }
                    }
                    Values::Text(arrays) => arrays.push(array.as_string::<i32>().clone()),
                }
            }
        }
        Ok((rows, values))
    }

    fn summary(&self, rows: u64) -> FileSummary {
        FileSummary {
            path: self.path.display().to_string(),
            format: if self.format == SourceFormat::Parquet { "parquet" } else { "csv" }.into(),
            rows,
        }
    }
}

fn stored(t: &DataType) -> Stored {
    match t {
        t if t.is_integer() || t.is_floating() => Stored::Number,
        DataType::Boolean => Stored::Bool,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Stored::String,
        DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            Stored::String
        }
        other => Stored::Other(other.to_string()),
    }
}

/// A column's values as read.
enum Values {
    /// Numbers (Parquet), with the number of nulls.
    Numbers(Vec<f64>, u64),
    /// Counts of false and true (Parquet), with the number of nulls.
    Bools([u64; 2], u64),
    /// Text (CSV, Parquet strings); nulls inside.
    Text(Vec<StringArray>),
}

/// A column's values ready for the statistics, and for a text column that turned out
/// categorical, its first value that is not a number.
struct Prepared {
    data: FeatureData,
    first_text: Option<String>,
    /// Whether every value is a whole number (so chi2 may take it as categories).
    integral: bool,
}

fn prepare(values: Values, csv: bool) -> Prepared {
    match values {
        Values::Numbers(v, nulls) => {
            let integral = v.iter().all(|x| x.fract() == 0.0);
            Prepared {
                data: FeatureData::Numeric(NumericSample::unsorted(v).with_missing(nulls)),
                first_text: None,
                integral,
            }
        }
        Values::Bools([f, t], nulls) => {
            let mut c = CategoryCounts::default();
            c.add("false", f);
            c.add("true", t);
            c.add_missing(nulls);
            Prepared { data: FeatureData::Categorical(c), first_text: None, integral: false }
        }
        Values::Text(arrays) => {
            let texts = || arrays.iter().flat_map(|a| a.iter());
            if csv {
                // Numeric if every non-empty field parses as a number.
                let mut numbers = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
                let mut nulls = 0u64;
                let mut first_text = None;
                for t in texts() {
                    match t.map(str::trim) {
                        None | Some("") => nulls += 1,
                        Some(s) => match s.parse::<f64>() {
                            Ok(x) => numbers.push(x),
                            Err(_) => {
                                first_text = Some(s.to_string());
                                break;
                            }
                        },
                    }
                }
                if first_text.is_none() {
                    let integral = numbers.iter().all(|x| !x.is_finite() || x.fract() == 0.0);
                    let data = FeatureData::Numeric(NumericSample::unsorted(numbers).with_missing(nulls));
                    return Prepared { data, first_text: None, integral };
                }
                let data = FeatureData::Categorical(CategoryCounts::from_values(texts()));
                return Prepared { data, first_text, integral: false };
            }
            let data = FeatureData::Categorical(CategoryCounts::from_values(texts()));
            Prepared { data, first_text: None, integral: false }
        }
    }
}

/// A numeric column of whole numbers as categories (`3.0` → `"3"`).
fn as_categories(data: &FeatureData) -> FeatureData {
    match data {
        FeatureData::Numeric(s) => {
            let mut c = CategoryCounts::default();
            let values = s.sorted_values();
            let mut i = 0;
            while i < values.len() {
                let j = values.partition_point(|v| *v <= values[i]);
                c.add(&format!("{}", values[i]), (j - i) as u64);
                i = j;
            }
            c.add_missing(s.missing());
            FeatureData::Categorical(c)
        }
        other => other.clone(),
    }
}

/// Compares every chosen column of `current` against `reference`.
pub fn compare(reference: &Path, current: &Path, options: &CompareOptions) -> Result<Report, CompareError> {
    if options.bins < 2 {
        return Err(CompareError::Options(format!("--bins {} is too few; use at least 2 (default 10)", options.bins)));
    }
    if let Some(a) = options.alpha {
        if !(a > 0.0 && a < 1.0) {
            return Err(CompareError::Options(format!(
                "--alpha {a} is not a significance level; use a value in (0, 1) such as 0.05"
            )));
        }
        if let Some(m) = options.method.filter(|m| !m.has_p_value()) {
            return Err(CompareError::Options(format!(
                "--alpha judges p-values, but {m} has none; use --threshold for {m}, or --method ks or chi2"
            )));
        }
    }
    if let Some(t) = options.threshold {
        if !t.is_finite() || t <= 0.0 {
            return Err(CompareError::Options(format!(
                "--threshold {t} can never be crossed as intended; use a positive number"
            )));
        }
        if options.method == Some(Method::Chi2) && t >= 1.0 {
            return Err(CompareError::Options(format!(
                "chi2's threshold is a significance level; --threshold {t} must be in (0, 1), such as 0.05"
            )));
        }
    }

    let ref_in = Input::open(Side::Reference, reference)?;
    let cur_in = Input::open(Side::Current, current)?;
    let named = options.columns.is_some();
    let mut skipped = Vec::new();
    let mut wanted: Vec<String> = match &options.columns {
        Some(cols) => {
            if cols.is_empty() {
                return Err(CompareError::Options("--columns names no column".into()));
            }
            for c in cols {
                for input in [&ref_in, &cur_in] {
                    if input.stored(c).is_none() {
                        return Err(input.unknown(c));
                    }
                }
            }
            let mut seen = std::collections::HashSet::new();
            cols.iter().filter(|c| seen.insert(c.as_str())).cloned().collect()
        }
        None => {
            let common: Vec<String> =
                ref_in.names().filter(|n| cur_in.stored(n).is_some()).map(str::to_string).collect();
            if common.is_empty() {
                return Err(CompareError::NoCommonColumns {
                    reference: reference.to_path_buf(),
                    current: current.to_path_buf(),
                });
            }
            common
        }
    };
    // Types no statistic takes.
    let mut supported = Vec::with_capacity(wanted.len());
    for c in wanted.drain(..) {
        let bad = [&ref_in, &cur_in].into_iter().find_map(|i| match i.stored(&c) {
            Some(Stored::Other(t)) => Some((i.side, t.clone())),
            _ => None,
        });
        match bad {
            Some((side, found)) if named => return Err(CompareError::Unsupported { side, column: c, found }),
            Some((_, found)) => skipped.push(Skipped { column: c, reason: format!("{found} values are not compared") }),
            None => supported.push(c),
        }
    }
    if supported.is_empty() {
        return Err(CompareError::Options(
            "no column left to compare (every common column has a type drift compare does not handle)".into(),
        ));
    }

    let (ref_rows, ref_values) = ref_in.read(&supported)?;
    let (cur_rows, cur_values) = cur_in.read(&supported)?;
    let ref_csv = ref_in.format == SourceFormat::Csv;
    let cur_csv = cur_in.format == SourceFormat::Csv;

    let mut columns = Vec::new();
    let mut data = Vec::new();
    for ((name, rv), cv) in supported.into_iter().zip(ref_values).zip(cur_values) {
        let r = prepare(rv, ref_csv);
        let c = prepare(cv, cur_csv);
        for (side, input, p) in [(Side::Reference, &ref_in, &r), (Side::Current, &cur_in, &c)] {
            if p.data.count() == 0 {
                return Err(CompareError::EmptyColumn {
                    side,
                    path: input.path.clone(),
                    column: name.clone(),
                    missing: p.data.missing(),
                });
            }
        }
        if r.data.kind() != c.data.kind() {
            let (numeric_side, example) = if r.data.kind() == Kind::Numeric {
                (Side::Reference, c.first_text.clone())
            } else {
                (Side::Current, r.first_text.clone())
            };
            return Err(CompareError::KindMismatch {
                column: name,
                numeric_side,
                example: example.unwrap_or_else(|| "a category".into()),
            });
        }
        let kind = r.data.kind();
        let method = options.method.unwrap_or(match kind {
            Kind::Numeric => Method::Psi,
            Kind::Categorical => Method::Chi2,
        });
        let (mut rd, mut cd) = (r.data, c.data);
        if method == Method::Chi2 && kind == Kind::Numeric && r.integral && c.integral {
            rd = as_categories(&rd);
            cd = as_categories(&cd);
        } else if !method.accepts(kind) {
            let source = DriftError::WrongKind { method, found: kind };
            if named {
                return Err(CompareError::Method { column: name, source });
            }
            skipped.push(Skipped { column: name, reason: source.to_string() });
            continue;
        }
        columns.push((name, kind, method));
        data.push((rd, cd));
    }
    if columns.is_empty() {
        let m = options.method.map_or("the default method".to_string(), |m| m.to_string());
        return Err(CompareError::Options(format!(
            "no column fits {m}; name columns with --columns or choose another --method"
        )));
    }
    let kinds: std::collections::BTreeSet<Method> = columns.iter().map(|(_, _, m)| *m).collect();
    if options.threshold.is_some() && kinds.len() > 1 {
        return Err(CompareError::Options(format!(
            "--threshold is ambiguous here: the columns use {} (psi's threshold is a PSI value, chi2's a significance \
             level); add --method, or compare numeric and categorical columns separately",
            kinds.iter().map(|m| m.name()).collect::<Vec<_>>().join(" and ")
        )));
    }

    let checks: Vec<Check<'_>> = columns
        .iter()
        .zip(&data)
        .map(|((name, _, method), (r, c))| {
            let (threshold, judged_on) = match options.alpha {
                Some(a) if method.has_p_value() => (a, JudgedOn::PValue),
                _ => (options.threshold.unwrap_or(method.default_threshold()), method.judged_on()),
            };
            Check { feature: name, method: *method, threshold, judged_on, reference: r, current: c }
        })
        .collect();
    let policy = Policy { correction: options.correction, min_samples: options.min_samples, bins: options.bins };
    let verdicts =
        judge(&checks, &policy).map_err(|e| CompareError::Options(format!("cannot judge the columns: {e}")))?;
    let drifted = verdicts.iter().filter(|v| v.status == Status::Drifted).map(|v| v.feature.clone()).collect();
    let columns =
        columns.iter().zip(verdicts).map(|((_, kind, _), verdict)| ColumnReport { kind: *kind, verdict }).collect();
    Ok(Report {
        format_version: REPORT_FORMAT_VERSION,
        reference: ref_in.summary(ref_rows),
        current: cur_in.summary(cur_rows),
        correction: options.correction,
        min_samples: options.min_samples.max(1),
        bins: options.bins,
        columns,
        skipped,
        drifted,
    })
}

/// A number for the table: up to 4 significant decimals, scientific when small.
fn number(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    if x.abs() < 1e-3 || x.abs() >= 1e6 {
        format!("{x:.3e}")
    } else {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// The report as a table for people, one line per column, then a summary line.
pub fn render_table(report: &Report) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "column".into(),
        "kind".into(),
        "method".into(),
        "statistic".into(),
        "p-value".into(),
        "threshold".into(),
        "drifted".into(),
    ]];
    for c in &report.columns {
        let v = &c.verdict;
        let m = v.measurement.as_ref();
        let p = match (m.and_then(|m| m.p_value), v.p_value_adjusted) {
            (Some(p), Some(adj)) if adj != p => format!("{} (adj. {})", number(p), number(adj)),
            (Some(p), _) => number(p),
            (None, _) => "-".into(),
        };
        let threshold = match v.judged_on {
            JudgedOn::Statistic => format!("> {}", number(v.threshold)),
            JudgedOn::PValue => format!("p < {}", number(v.threshold)),
        };
        let status = match v.status {
            Status::Ok => "no".to_string(),
            Status::Drifted => "YES".to_string(),
            Status::InsufficientData => {
                format!("insufficient data ({} < {} values)", v.current_count, report.min_samples)
            }
        };
        rows.push([
            v.feature.clone(),
            c.kind.to_string(),
            v.method.to_string(),
            m.map_or("-".into(), |m| number(m.statistic)),
            p,
            threshold,
            status,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "Drift of {} ({} rows) against {} ({} rows)\n\n",
        report.current.path, report.current.rows, report.reference.path, report.reference.rows
    );
    for r in &rows {
        let line: Vec<String> = r.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped `{}`: {}", s.column, s.reason);
    }
    let judged_by_p = report.columns.iter().filter(|c| c.verdict.judged_on == JudgedOn::PValue).count();
    let correction = if judged_by_p > 1 && report.correction != Correction::None {
        format!(" (p-values corrected by {} over {judged_by_p} columns)", report.correction)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n{} of {} columns drifted{}{correction}",
        report.drifted.len(),
        report.columns.len(),
        if report.drifted.is_empty() { String::new() } else { format!(": {}", report.drifted.join(", ")) },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_readable() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(1.5e-8), "1.500e-8");
        assert_eq!(number(f64::INFINITY), "inf");
    }

    #[test]
    fn whole_numbers_become_categories() {
        let d = FeatureData::Numeric(NumericSample::new(vec![2.0, 1.0, 2.0, f64::NAN]));
        let FeatureData::Categorical(c) = as_categories(&d) else { panic!() };
        assert_eq!(c.counts().iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("1", 1), ("2", 2)]);
        assert_eq!(c.missing(), 1);
    }
}
