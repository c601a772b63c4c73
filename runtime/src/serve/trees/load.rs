//! XGBoost's JSON model → [`Forest`]. Every index in the file is checked before it is used, and
//! only nodes reachable from a tree's root are taken (pruning leaves deleted nodes behind), each
//! exactly once, so a cycle or a shared child is an error rather than a hang.
//!
//! Where things are in the file (XGBoost 3.x, also read by 1.x/2.x's layout):
//!
//! ```text
//! learner.learner_model_param   base_score ("[5E-1]", "5E-1" or "[a,b,c]", probability space),
//!                               num_feature, num_class, num_target (strings)
//! learner.objective.name
//! learner.gradient_booster      {name: gbtree, model} | {name: dart, gbtree: {model}, weight_drop}
//!   model.trees[i]              left_children, right_children (-1: leaf), split_indices,
//!                               split_conditions (threshold, or the leaf's value), default_left,
//!                               split_type (1: categorical), categories + categories_nodes/
//!                               _segments/_sizes (the categories of each categorical node)
//!   model.tree_info[i]          output group (class or target) of tree i
//!   model.cats.enc              category re-encoding tables (not supported)
//! ```

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use super::objective::Kind;
use super::{Forest, Node, TreeError, CATEGORICAL, DEFAULT_LEFT, FEATURE_MASK, LANES};

/// Categories at or above 2^24 cannot be told apart as `f32`; XGBoost sends such values left.
pub(super) const MAX_CATEGORY: f32 = 16_777_216.0;

#[derive(Deserialize)]
struct ModelFile {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    learner_model_param: ModelParam,
    objective: Objective,
    gradient_booster: Value,
}

#[derive(Deserialize)]
struct ModelParam {
    base_score: String,
    num_feature: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct GbTreeModel {
    trees: Vec<JsonTree>,
    tree_info: Vec<i64>,
    #[serde(default)]
    gbtree_model_param: Option<GbTreeParam>,
    #[serde(default)]
    cats: Option<Cats>,
}

#[derive(Deserialize)]
struct GbTreeParam {
    num_trees: String,
}

#[derive(Deserialize)]
struct Cats {
    #[serde(default)]
    enc: Vec<Value>,
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    num_nodes: Option<String>,
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

#[derive(Deserialize)]
struct JsonTree {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    tree_param: Option<TreeParam>,
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    categories: Vec<i64>,
    #[serde(default)]
    categories_nodes: Vec<i64>,
    #[serde(default)]
    categories_segments: Vec<i64>,
    #[serde(default)]
    categories_sizes: Vec<i64>,
}

/// `default_left` is written as 0/1 by XGBoost, as booleans by some older writers.
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Flag(b)),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(Flag(false)),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(Flag(true)),
            other => Err(de::Error::custom(format!("default_left holds {other}, expected 0 or 1"))),
        }
    }
}

fn malformed(msg: impl Into<String>) -> TreeError {
    TreeError::Malformed(msg.into())
}

fn count(what: &str, s: &str) -> Result<usize, TreeError> {
    s.trim().parse().map_err(|_| malformed(format!("{what} is {s:?}, not a count")))
}

/// `base_score` as XGBoost writes it: a JSON number or array of numbers inside a string
/// (`"[5E-1]"`, `"5E-1"`; parentheses are accepted for brackets as XGBoost does).
fn base_scores(s: &str) -> Result<Vec<f32>, TreeError> {
    let bad = || malformed(format!("learner_model_param.base_score is {s:?}, not a number or list of numbers"));
    let t = s.trim();
    let t = match (t.strip_prefix('('), t.strip_suffix(')')) {
        (Some(_), Some(_)) => format!("[{}]", &t[1..t.len() - 1]),
        _ => t.to_string(),
    };
    let v: Value = serde_json::from_str(&t).map_err(|_| bad())?;
    let items = match v {
        Value::Array(items) => items,
        n @ Value::Number(_) => vec![n],
        _ => return Err(bad()),
    };
    let values: Vec<f32> = items.iter().map(|i| i.as_f64().map(|f| f as f32)).collect::<Option<_>>().ok_or_else(bad)?;
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return Err(bad());
    }
    Ok(values)
}

impl Forest {
    /// Parses an XGBoost JSON model (as [`crate::train::TrainedModel::model_json`] holds it).
    pub fn from_json(model_json: &[u8]) -> Result<Forest, TreeError> {
        let file: ModelFile = serde_json::from_slice(model_json).map_err(|e| TreeError::Json(e.to_string()))?;
        let learner = file.learner;
        let param = &learner.learner_model_param;
        let objective = learner.objective.name;
        let kind = Kind::of(&objective)?;

        let num_features = count("learner_model_param.num_feature", &param.num_feature)?;
        if num_features > FEATURE_MASK as usize {
            return Err(TreeError::Unsupported(format!("{num_features} features")));
        }
        let num_class = param.num_class.as_deref().map(|s| count("learner_model_param.num_class", s)).transpose()?;
        let num_target = param.num_target.as_deref().map(|s| count("learner_model_param.num_target", s)).transpose()?;
        // XGBoost's OutputLength: one margin per class or target.
        let groups = num_class.unwrap_or(0).max(num_target.unwrap_or(1)).max(1);
        if matches!(kind, Kind::Softmax | Kind::Softprob) && num_class.unwrap_or(0) < 2 {
            return Err(malformed(format!("`{objective}` with num_class {}", num_class.unwrap_or(0))));
        }
        if groups > u32::MAX as usize {
            return Err(TreeError::Unsupported(format!("{groups} outputs per row")));
        }

        // Models saved before XGBoost 3.1 hold one intercept for all outputs.
        let scores = base_scores(&param.base_score)?;
        let scores = match scores.len() {
            1 => vec![scores[0]; groups],
            n if n == groups => scores,
            n => return Err(malformed(format!("{n} base_score values for {groups} outputs per row"))),
        };
        let base_margin = scores.iter().map(|&s| kind.link(&objective, s)).collect::<Result<Vec<_>, _>>()?;

        let mut booster = learner.gradient_booster;
        let name = booster.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let (model, weights) = match name.as_str() {
            "gbtree" => (booster.get_mut("model").map(Value::take), None),
            "dart" => {
                let model = booster.get_mut("gbtree").and_then(|g| g.get_mut("model")).map(Value::take);
                let weights: Vec<f32> = booster
                    .get_mut("weight_drop")
                    .map(Value::take)
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| malformed(format!("dart weight_drop: {e}")))?
                    .ok_or_else(|| malformed("a dart booster without weight_drop"))?;
                (model, Some(weights))
            }
            "" => return Err(malformed("learner.gradient_booster has no name")),
            other => return Err(TreeError::Unsupported(format!("booster `{other}` (only gbtree and dart)"))),
        };
        let model = model.ok_or_else(|| malformed(format!("the {name} booster has no model")))?;
        let model: GbTreeModel =
            serde_json::from_value(model).map_err(|e| TreeError::Json(format!("gradient_booster model: {e}")))?;

        if model.cats.as_ref().is_some_and(|c| !c.enc.is_empty()) {
            return Err(TreeError::Unsupported(
                "the model re-encodes categories by name (trained on pandas/arrow categoricals); \
                 only category codes are supported"
                    .into(),
            ));
        }
        let n_trees = model.trees.len();
        if let Some(p) = &model.gbtree_model_param {
            let declared = count("gbtree_model_param.num_trees", &p.num_trees)?;
            if declared != n_trees {
                return Err(malformed(format!("num_trees is {declared} but there are {n_trees} trees")));
            }
        }
        if n_trees == 0 {
            // XGBoost treats a model without trees as unfitted and predicts from a default
            // intercept rather than the stored one.
            return Err(TreeError::Unsupported("a model without trees".into()));
        }
        if model.tree_info.len() != n_trees {
            return Err(malformed(format!("tree_info has {} entries for {n_trees} trees", model.tree_info.len())));
        }
        if let Some(w) = &weights {
            if w.len() != n_trees {
                return Err(malformed(format!("weight_drop has {} entries for {n_trees} trees", w.len())));
            }
        }

        // Trees go where their id says, as XGBoost places them.
        let mut order: Vec<Option<usize>> = vec![None; n_trees];
        for (i, t) in model.trees.iter().enumerate() {
            let id = t.id.unwrap_or(i as i64);
            let slot = usize::try_from(id)
                .ok()
                .and_then(|id| order.get_mut(id))
                .ok_or_else(|| malformed(format!("tree {i} has id {id}, outside 0..{n_trees}")))?;
            if slot.replace(i).is_some() {
                return Err(malformed(format!("two trees have id {id}")));
            }
        }

        let mut forest = Forest {
            num_features,
            groups,
            kind,
            objective,
            base_margin,
            nodes: Vec::new(),
            roots: Vec::with_capacity(n_trees),
            depths: Vec::with_capacity(n_trees),
            lane_depths: Vec::new(),
            tree_groups: Vec::with_capacity(n_trees),
            tree_weights: weights.as_ref().map(|_| Vec::with_capacity(n_trees)),
            cat_sets: Vec::new(),
            cat_words: Vec::new(),
        };
        for (id, src) in order.into_iter().enumerate() {
            // Every slot is filled: n_trees distinct ids in 0..n_trees.
            let src = src.ok_or_else(|| malformed(format!("no tree has id {id}")))?;
            let group = model.tree_info[src];
            let group = u32::try_from(group)
                .ok()
                .filter(|&g| (g as usize) < groups)
                .ok_or_else(|| malformed(format!("tree_info[{src}] is {group}, outside 0..{groups}")))?;
            let (root, depth) = add_tree(&mut forest, &model.trees[src], id)?;
            forest.roots.push(root);
            forest.depths.push(depth);
            forest.tree_groups.push(group);
            if let (Some(w), Some(all)) = (forest.tree_weights.as_mut(), &weights) {
                w.push(all[src]);
            }
        }
        forest.lane_depths = forest.depths.chunks(LANES).map(|d| d.iter().copied().max().unwrap_or(0)).collect();
        Ok(forest)
    }
}

/// Appends tree `id`'s reachable nodes to the forest in breadth-first order, each node's two
/// children side by side (so a node only stores its left child's index). Returns the root's index
/// and the tree's depth.
fn add_tree(forest: &mut Forest, t: &JsonTree, id: usize) -> Result<(u32, u32), TreeError> {
    let err = |msg: String| malformed(format!("tree {id}: {msg}"));
    let n = t.left_children.len();
    if n == 0 {
        return Err(err("no nodes".into()));
    }
    if let Some(p) = &t.tree_param {
        if let Some(declared) = &p.num_nodes {
            let declared = count("num_nodes", declared).map_err(|e| err(e.to_string()))?;
            if declared != n {
                return Err(err(format!("num_nodes is {declared} but left_children has {n} entries")));
            }
        }
        if let Some(size) = &p.size_leaf_vector {
            if count("size_leaf_vector", size).map_err(|e| err(e.to_string()))? > 1 {
                return Err(TreeError::Unsupported(format!("tree {id} has vector leaves (multi_strategy)")));
            }
        }
    }
    for (name, len) in [
        ("right_children", t.right_children.len()),
        ("split_indices", t.split_indices.len()),
        ("split_conditions", t.split_conditions.len()),
        ("default_left", t.default_left.len()),
    ] {
        if len != n {
            return Err(err(format!("{name} has {len} entries, left_children {n}")));
        }
    }
    if !t.split_type.is_empty() && t.split_type.len() != n {
        return Err(err(format!("split_type has {} entries, left_children {n}", t.split_type.len())));
    }
    let k = t.categories_nodes.len();
    if t.categories_segments.len() != k || t.categories_sizes.len() != k {
        return Err(err("categories_nodes, categories_segments and categories_sizes differ in length".into()));
    }
    // Node → its position in categories_nodes.
    let mut cat_of: Vec<Option<usize>> = vec![None; n];
    for (j, &node) in t.categories_nodes.iter().enumerate() {
        let slot = usize::try_from(node)
            .ok()
            .and_then(|i| cat_of.get_mut(i))
            .ok_or_else(|| err(format!("categories_nodes names node {node}")))?;
        if slot.replace(j).is_some() {
            return Err(err(format!("categories_nodes names node {node} twice")));
        }
    }

    let base = forest.nodes.len();
    let limit = u32::MAX as usize - 2;
    if base + n > limit {
        return Err(TreeError::Unsupported("more than 2^32 nodes".into()));
    }
    // (source node, slot in forest.nodes, depth), breadth first.
    let mut visited = vec![false; n];
    let mut queue: std::collections::VecDeque<(usize, usize, u32)> = [(0, base, 0)].into();
    let mut depth = 0;
    visited[0] = true;
    forest.nodes.push(Node::default());
    while let Some((src, at, d)) = queue.pop_front() {
        depth = depth.max(d);
        let left = t.left_children[src];
        if left == -1 {
            // The leaf's value is in split_conditions (base_weights may differ: reg:absoluteerror
            // refits leaves after growing the tree).
            forest.nodes[at] = Node::leaf(at, t.split_conditions[src]);
            continue;
        }
        let child = |c: i64| -> Result<usize, TreeError> {
            let c =
                usize::try_from(c).ok().filter(|&c| c < n).ok_or_else(|| err(format!("node {src} has child {c}")))?;
            Ok(c)
        };
        let (l, r) = (child(left)?, child(t.right_children[src])?);
        for c in [l, r] {
            if std::mem::replace(&mut visited[c], true) {
                return Err(err(format!("node {c} is reached twice (a cycle or a shared child)")));
            }
        }
        if l == r {
            return Err(err(format!("node {src} has the same node {l} as both children")));
        }
        let feature = t.split_indices[src];
        let feature = usize::try_from(feature).ok().filter(|&f| f < forest.num_features).ok_or_else(|| {
            err(format!("node {src} splits on feature {feature}, the model has {}", forest.num_features))
        })?;
        let mut info = feature as u32;
        if t.default_left[src].0 {
            info |= DEFAULT_LEFT;
        }
        let split_type = t.split_type.get(src).copied().unwrap_or(0);
        let mut cats = 0;
        match split_type {
            0 => {}
            1 => {
                info |= CATEGORICAL;
                let j = cat_of[src].ok_or_else(|| err(format!("categorical node {src} has no categories")))?;
                cats = add_category_set(forest, t, j).map_err(|m| err(format!("node {src}: {m}")))?;
            }
            other => return Err(err(format!("node {src} has split_type {other}"))),
        }
        let slot = forest.nodes.len();
        forest.nodes.push(Node::default());
        forest.nodes.push(Node::default());
        forest.nodes[at] = Node { info, value: t.split_conditions[src], left: slot as u32, cats };
        queue.push_back((l, slot, d + 1));
        queue.push_back((r, slot + 1, d + 1));
    }
    Ok((base as u32, depth))
}

/// Stores the categories of `categories_nodes[j]` as a bit set; returns its index in `cat_sets`.
fn add_category_set(forest: &mut Forest, t: &JsonTree, j: usize) -> Result<u32, String> {
    let (seg, size) = (t.categories_segments[j], t.categories_sizes[j]);
    let range = usize::try_from(seg)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(s, z)| Some(s..s.checked_add(z)?))
        .filter(|r| r.end <= t.categories.len() && !r.is_empty())
        .ok_or_else(|| format!("categories segment {seg} + {size} is outside the {} categories", t.categories.len()))?;
    let cats = &t.categories[range];
    let mut max = 0;
    for &c in cats {
        if !(0..MAX_CATEGORY as i64).contains(&c) {
            return Err(format!("category {c} is not in 0..2^24"));
        }
        max = max.max(c as usize);
    }
    let start = forest.cat_words.len();
    let words = max / 32 + 1;
    forest.cat_words.resize(start + words, 0);
    for &c in cats {
        forest.cat_words[start + c as usize / 32] |= 1 << (c as u32 % 32);
    }
    let index = u32::try_from(forest.cat_sets.len()).map_err(|_| "too many categorical splits".to_string())?;
    let start = u32::try_from(start).map_err(|_| "too many categories".to_string())?;
    forest.cat_sets.push((start, words as u32));
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_forms() {
        assert_eq!(base_scores("[5E-1]").unwrap(), vec![0.5]);
        assert_eq!(base_scores("0.5").unwrap(), vec![0.5]);
        assert_eq!(base_scores(" (1E0, -2.5E-1) ").unwrap(), vec![1.0, -0.25]);
        assert_eq!(base_scores("[3]").unwrap(), vec![3.0]);
        for bad in ["", "[]", "abc", "[1,\"x\"]", "{}", "[1e400]"] {
            assert!(base_scores(bad).is_err(), "{bad}");
        }
    }

    /// Leaf values and thresholds are f32 written as shortest round-trip decimals; read through
    /// f64 (correctly rounded, `float_roundtrip`) and then rounded to f32 they come back exactly.
    #[test]
    fn shortest_f32_decimals_round_trip_through_f64() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f32::from_bits((x >> 32) as u32);
            if !f.is_finite() {
                continue;
            }
            let text = format!("{f:e}");
            let back: f32 = serde_json::from_str::<f32>(&text).unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{text}");
        }
    }
}
