//! Features looked up by entity for `entities` requests. In: an entity's join key values (e.g.
//! `account_id = "acct_7"`). Out: the latest feature values the online store holds for it, by
//! feature name — none for an entity it does not know or whose row is older than the view's ttl,
//! which the model then sees as missing, exactly as the point-in-time join did at training.
//!
//! [`FeatureSource`] is the seam; [`OnlineStoreFeatures`] reads the embedded online store
//! ([`crate::features::FeatureStore::online`]). Feature names are the views' own, which are the
//! names in a model's signature.

use std::collections::HashMap;

use crate::features::{OnlineValue, OnlineView};

/// Where `entities` requests get their features.
pub trait FeatureSource: Send + Sync {
    /// The join keys an entity must name (all the views' keys, in order, once each).
    fn keys(&self) -> &[String];
    /// The features provided, by name.
    fn features(&self) -> &[String];
    /// The values found for `entity` (join key → value), as (index into [`Self::features`],
    /// value); empty when no view knows the entity. `now` is Unix microseconds (for ttls).
    fn lookup(&self, entity: &HashMap<String, String>, now: i64) -> Vec<(usize, OnlineValue)>;
}

/// Why a source cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(String);

/// The embedded online store: one or more materialised views, each with its join keys.
#[derive(Debug)]
pub struct OnlineStoreFeatures {
    views: Vec<(OnlineView, Vec<String>, usize)>,
    keys: Vec<String>,
    features: Vec<String>,
}

impl OnlineStoreFeatures {
    /// The views (as [`crate::features::FeatureStore::online`] loads them) with their join keys
    /// (the `join_keys` of the compiled view). A feature name two views share is refused, as
    /// training refuses it.
    pub fn new(views: Vec<(OnlineView, Vec<String>)>) -> Result<OnlineStoreFeatures, SourceError> {
        let mut keys: Vec<String> = Vec::new();
        let mut features: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(views.len());
        for (view, join_keys) in views {
            if join_keys.is_empty() {
                return Err(SourceError(format!("feature view `{}` has no join keys", view.view())));
            }
            for k in &join_keys {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            let offset = features.len();
            for f in view.features() {
                if features.contains(f) {
                    return Err(SourceError(format!(
                        "feature `{f}` comes from two views (the second is `{}`)",
                        view.view()
                    )));
                }
                features.push(f.clone());
            }
            out.push((view, join_keys, offset));
        }
        Ok(OnlineStoreFeatures { views: out, keys, features })
    }
}

impl FeatureSource for OnlineStoreFeatures {
    fn keys(&self) -> &[String] {
        &self.keys
    }

    fn features(&self) -> &[String] {
        &self.features
    }

    fn lookup(&self, entity: &HashMap<String, String>, now: i64) -> Vec<(usize, OnlineValue)> {
        let mut out = Vec::new();
        for (view, join_keys, offset) in &self.views {
            let Some(key) = join_keys.iter().map(|k| entity.get(k).cloned()).collect::<Option<Vec<String>>>() else {
                continue;
            };
            if let Some((_, values)) = view.get(&key, now) {
                out.extend(values.into_iter().enumerate().map(|(i, (_, v))| (offset + i, v.clone())));
            }
        }
        out
    }
}
