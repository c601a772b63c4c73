//! The training reference of a model version: what a monitor compares production windows
//! against. In: the values of each feature (and of the scores) at training time, streamed in any
//! number of pieces; out: a compact [`Reference`] saved as `reference.json` next to the model.
//!
//! A numeric feature keeps its finite values sorted — all of them up to `sample_cap` (100,000
//! by default), so statistics against it are exactly those of the training data; beyond that a
//! uniform random sample of `sample_cap` values, drawn by reservoir sampling with a fixed seed so
//! the same data always gives the same reference (its p-values are then those of the sample).
//! Mean and standard deviation are of every value. A categorical feature keeps its count per
//! category, in full. Missing values (null, NaN, ±∞) are counted, never stored.

use super::drift::{mean_std, CategoryCounts, FeatureData, Kind, NumericSample};
use crate::train::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name of a reference, in a model version's directory.
pub const REFERENCE_FILE: &str = "reference.json";
/// Version of the reference file format.
pub const FORMAT_VERSION: u32 = 1;
/// Numeric values kept per feature unless told otherwise.
pub const DEFAULT_SAMPLE_CAP: usize = 100_000;
/// Seed of the reservoir sampling unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x6d6c_6f70_7321;

/// The reference of every feature of a model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Most numeric values kept per feature.
    pub sample_cap: usize,
    /// Seed of the reservoir sampling.
    pub seed: u64,
    /// Per feature (and `prediction` for scores), by name.
    pub features: BTreeMap<String, FeatureReference>,
}

/// The reference of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReference {
    /// Non-missing values the feature had at training time.
    pub count: u64,
    /// Whether `data` holds a sample of them (numeric features above the cap) or all.
    pub sampled: bool,
    /// Mean of all values (numeric features).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Population standard deviation of all values (numeric features).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// The sorted values (or sample) or the category counts, as the statistics take them.
    pub data: FeatureData,
}

/// Why a reference could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Reading or writing the file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a reference this version understands.
    #[error("{} is not a valid drift reference: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Reference {
    /// An empty reference with the given cap and seed.
    pub fn new(sample_cap: usize, seed: u64) -> Reference {
        Reference { format_version: FORMAT_VERSION, sample_cap, seed, features: BTreeMap::new() }
    }

    /// The reference of `feature`, if recorded.
    pub fn feature(&self, feature: &str) -> Option<&FeatureReference> {
        self.features.get(feature)
    }

    /// Writes `dir/reference.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, ReferenceError> {
        let path = dir.join(REFERENCE_FILE);
        let json = serde_json::to_vec(self).expect("a reference always serialises");
        crate::fsio::write_atomic(&path, &json).map_err(|e| ReferenceError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        })?;
        Ok(path)
    }

    /// Reads `dir/reference.json`, checking its version and that numeric samples are sorted
    /// and finite.
    pub fn load(dir: &Path) -> Result<Reference, ReferenceError> {
        let path = dir.join(REFERENCE_FILE);
        let bytes =
            std::fs::read(&path).map_err(|source| ReferenceError::Io { action: "read", path: path.clone(), source })?;
        let invalid = |message: String| ReferenceError::Invalid { path: path.clone(), message };
        let r: Reference = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if r.format_version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format_version {} (this mlops reads {FORMAT_VERSION}); retrain to rebuild it",
                r.format_version
            )));
        }
        for (name, f) in &r.features {
            if let FeatureData::Numeric(s) = &f.data {
                if NumericSample::from_sorted(s.values().to_vec(), s.missing()).is_none() {
                    return Err(invalid(format!("the values of `{name}` are not sorted finite numbers")));
                }
            }
        }
        Ok(r)
    }
}

/// Builds the reference of one numeric feature from values streamed in pieces.
#[derive(Debug, Clone)]
pub struct NumericReferenceBuilder {
    cap: usize,
    rng: SplitMix64,
    values: Vec<f64>,
    seen: u64,
    missing: u64,
    // Welford's running mean and sum of squared deviations, over every finite value.
    mean: f64,
    m2: f64,
}

impl NumericReferenceBuilder {
    /// Keeps at most `cap` values, sampled with `seed` beyond that.
    pub fn new(cap: usize, seed: u64) -> NumericReferenceBuilder {
        NumericReferenceBuilder {
            cap,
            rng: SplitMix64::new(seed),
            values: Vec::new(),
            seen: 0,
            missing: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// Adds one value (non-finite values count as missing).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            self.missing += 1;
            return;
        }
        self.seen += 1;
        let delta = x - self.mean;
        self.mean += delta / self.seen as f64;
        self.m2 += delta * (x - self.mean);
        if self.values.len() < self.cap {
            self.values.push(x);
        } else {
            // Algorithm R: the i-th value replaces a kept one with probability cap / i.
            let j = self.rng.below(self.seen);
            if (j as usize) < self.cap {
                self.values[j as usize] = x;
            }
        }
    }

    /// Adds missing values (nulls).
    pub fn push_missing(&mut self, n: u64) {
        self.missing += n;
    }

    /// The feature's reference.
    pub fn finish(self) -> FeatureReference {
        let sampled = self.seen > self.values.len() as u64;
        let sample = NumericSample::new(self.values).with_missing(self.missing);
        let (mean, std) = if sampled {
            (self.mean, (self.m2 / self.seen as f64).sqrt())
        } else {
            // Without sampling, the exact two-pass values (as NumPy computes them).
            mean_std(sample.values())
        };
        let finite = |x: f64| x.is_finite().then_some(x);
        FeatureReference {
            count: self.seen,
            sampled,
            mean: finite(mean),
            std: finite(std),
            data: FeatureData::Numeric(sample),
        }
    }
}

impl FeatureReference {
    /// The reference of a numeric column given whole.
    pub fn numeric(values: impl IntoIterator<Item = f64>, cap: usize, seed: u64) -> FeatureReference {
        let mut b = NumericReferenceBuilder::new(cap, seed);
        values.into_iter().for_each(|x| b.push(x));
        b.finish()
    }

    /// The reference of a categorical column.
    pub fn categorical(counts: CategoryCounts) -> FeatureReference {
        FeatureReference {
            count: counts.total(),
            sampled: false,
            mean: None,
            std: None,
            data: FeatureData::Categorical(counts),
        }
    }

    /// Numbers or categories.
    pub fn kind(&self) -> Kind {
        self.data.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_columns_are_kept_whole_and_sorted() {
        let f = FeatureReference::numeric([3.0, f64::NAN, 1.0, 2.0], 10, 1);
        assert!(!f.sampled);
        assert_eq!(f.count, 3);
        let FeatureData::Numeric(s) = &f.data else { panic!() };
        assert_eq!(s.values(), &[1.0, 2.0, 3.0]);
        assert_eq!(s.missing(), 1);
        assert_eq!(f.mean, Some(2.0));
    }

    #[test]
    fn large_columns_are_sampled_reproducibly_and_uniformly() {
        let values: Vec<f64> = (0..100_000).map(f64::from).collect();
        let a = FeatureReference::numeric(values.iter().copied(), 1_000, 7);
        let b = FeatureReference::numeric(values.iter().copied(), 1_000, 7);
        assert_eq!(a, b, "same data and seed, same reference");
        assert!(a.sampled);
        assert_eq!(a.count, 100_000);
        let FeatureData::Numeric(s) = &a.data else { panic!() };
        assert_eq!(s.len(), 1_000);
        // Uniform: the sample's median is near the column's (49,999.5); its sd ≈ 2,900 / √1000 · 1.25.
        assert!((s.quantile(0.5) - 49_999.5).abs() < 5_000.0, "{}", s.quantile(0.5));
        // Moments are of every value, not of the sample.
        assert!((a.std.unwrap() - 28_867.513_458_037_913).abs() < 1e-6);
        let c = FeatureReference::numeric(values.iter().copied(), 1_000, 8);
        assert_ne!(a, c, "another seed, another sample");
    }

    #[test]
    fn saves_and_loads_and_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reference::new(DEFAULT_SAMPLE_CAP, DEFAULT_SEED);
        r.features.insert("amount".into(), FeatureReference::numeric([1.5, 0.5], 10, 1));
        r.features.insert(
            "merchant".into(),
            FeatureReference::categorical(CategoryCounts::from_values([Some("a"), Some("b"), None])),
        );
        r.save(dir.path()).unwrap();
        assert_eq!(Reference::load(dir.path()).unwrap(), r);

        let path = dir.path().join(REFERENCE_FILE);
        let text = std::fs::read_to_string(&path).unwrap().replace("[0.5,1.5]", "[1.5,0.5]");
        std::fs::write(&path, text).unwrap();
        let e = Reference::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`amount` are not sorted"), "{e}");
        std::fs::write(&path, "{}").unwrap();
        assert!(Reference::load(dir.path()).unwrap_err().to_string().contains("not a valid drift reference"));
        let missing = Reference::load(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
