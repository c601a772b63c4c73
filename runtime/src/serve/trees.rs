//! Native prediction for XGBoost tree models, for the serving hot path. In: XGBoost's JSON model
//! (as the trainer and the registry hold it) and dense row-major `f32` features, NaN for missing.
//! Out: what XGBoost's own CPU predictor returns for the same rows, bit for bit.
//!
//! [`Forest`] is `Send + Sync` and predicts through `&self`, without locks and without allocating
//! (apart from growing the caller's output vector), so one loaded model serves every thread.
//!
//! How XGBoost (3.x CPU predictor) predicts, and so how this does:
//!
//! - every row starts from `base_score` per output group, turned into a margin by the
//!   objective's link (logit, `ln` or none; the `objective` submodule has the details);
//! - trees are visited in model order and each tree's leaf value is added in `f32` to its group's
//!   margin (dart: the leaf value times the tree's `weight_drop`);
//! - at a numeric split a value goes left when `value < threshold`; NaN (missing) takes the
//!   node's default direction;
//! - at a categorical split a value goes **right** when its category — the value truncated to an
//!   integer — is in the node's category set; a value outside the set, negative, or at or above
//!   2^24 goes left (so does an unseen or out-of-range code); NaN takes the default direction;
//! - the objective's transform turns margins into predictions (sigmoid, `exp`, softmax, …);
//! - XGBoost refuses ±infinity in its input matrix; so does [`Forest::predict`].
//!
//! Layout and traversal: the nodes of all trees live in one flat array of 16-byte records (an
//! array of small structs rather than one array per field: a step down a tree needs the feature,
//! threshold, child and flags of one node together, so it reads one record instead of four
//! cache lines), breadth-first per tree with each node's two children side by side, so a node
//! stores one child index and a tree's top levels share cache lines. A leaf steps to itself,
//! so a row can take exactly as many steps as the tree is deep, with the direction computed
//! rather than branched on: no mispredicted branches, and independent traversals overlap in the
//! CPU. A single row goes down 8 trees in lockstep; a batch goes through the trees in blocks of
//! 64 rows in lockstep, so a tree stays in cache while a block traverses it. Blocks without
//! NaN skip the missing-value logic. Trees deeper than 16 (lopsided, from `lossguide`) are walked
//! to each row's leaf instead. None of this changes a sum: each row's leaves are still added in
//! tree order.

mod load;
mod objective;

use objective::Kind;

/// Why a model could not be loaded or rows could not be predicted. Never a panic.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The bytes are not JSON, or not shaped like an XGBoost model.
    #[error("not an XGBoost JSON model: {0}")]
    Json(String),
    /// An XGBoost-shaped model with inconsistent contents (an index out of range, a cycle, …).
    #[error("malformed XGBoost model: {0}")]
    Malformed(String),
    /// A valid model this predictor does not handle (gblinear, vector-leaf trees, an objective
    /// outside the supported list, …).
    #[error("unsupported XGBoost model: {0}")]
    Unsupported(String),
    /// Feature values that do not fill `rows × cols`.
    #[error("expected {rows} rows × {cols} features = {} values, got {got}", rows.saturating_mul(*cols))]
    Features {
        /// Rows.
        rows: usize,
        /// The model's feature count.
        cols: usize,
        /// Values given.
        got: usize,
    },
    /// An infinite feature value, which XGBoost refuses too (NaN is the missing value).
    #[error("row {row}, feature {col} is infinite: XGBoost refuses infinite inputs (NaN means missing)")]
    Infinite {
        /// Row index.
        row: usize,
        /// Feature index.
        col: usize,
    },
}

/// `Node::info` of a leaf.
const LEAF: u32 = 1 << 31;
/// Missing values go left.
const DEFAULT_LEFT: u32 = 1 << 30;
/// A categorical split: `Node::cats` names its category set.
const CATEGORICAL: u32 = 1 << 29;
/// The split feature, in the low bits of `Node::info`.
const FEATURE_MASK: u32 = CATEGORICAL - 1;

/// One tree node, 16 bytes. A leaf is a numeric split on feature 0 at +∞ with missing values
/// going left and itself as left child: every row steps from a leaf to the leaf (infinite
/// inputs are refused), so rows can take a fixed number of steps down a tree.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    /// The split feature with the `DEFAULT_LEFT` and `CATEGORICAL` flags; leaves add `LEAF`.
    info: u32,
    /// The threshold of a numeric split; +∞ at a leaf.
    value: f32,
    /// Index of the left child in `Forest::nodes`; the right child is the next node. A leaf's
    /// own index at a leaf.
    left: u32,
    /// Index of a categorical split's category set in `Forest::cat_sets`; the bits of the
    /// value at a leaf.
    cats: u32,
}

impl Node {
    fn leaf(at: usize, value: f32) -> Node {
        Node { info: LEAF | DEFAULT_LEFT, value: f32::INFINITY, left: at as u32, cats: value.to_bits() }
    }
}

/// A loaded XGBoost tree ensemble (gbtree or dart). See the module documentation.
pub struct Forest {
    num_features: usize,
    /// Margins per row: classes, targets, or 1.
    groups: usize,
    kind: Kind,
    objective: String,
    /// The margin each row starts from, per group.
    base_margin: Vec<f32>,
    nodes: Vec<Node>,
    /// Index of each tree's root in `nodes`, in model order.
    roots: Vec<u32>,
    /// Depth of each tree (0: a single leaf).
    depths: Vec<u32>,
    /// Largest depth of each `LANES` consecutive trees.
    lane_depths: Vec<u32>,
    /// Output group of each tree.
    tree_groups: Vec<u32>,
    /// Dart: each tree's weight.
    tree_weights: Option<Vec<f32>>,
    /// (first word in `cat_words`, word count) of each categorical split.
    cat_sets: Vec<(u32, u32)>,
    /// Category bit sets: bit `c % 32` of word `c / 32` is set when category `c` goes right.
    cat_words: Vec<u32>,
}

// Shared between serving threads: must stay Send + Sync.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Forest>();
};

impl std::fmt::Debug for Forest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forest")
            .field("objective", &self.objective)
            .field("num_features", &self.num_features)
            .field("groups", &self.groups)
            .field("trees", &self.roots.len())
            .field("nodes", &self.nodes.len())
            .field("dart", &self.tree_weights.is_some())
            .finish_non_exhaustive()
    }
}

/// Rows traversing a tree together in a batch.
const BLOCK_ROWS: usize = 64;
/// Trees a single row goes down at once.
const LANES: usize = 8;
/// Trees up to this deep are traversed in a fixed number of steps.
const MAX_STEPPED_DEPTH: u32 = 16;

impl Forest {
    /// Number of feature values per row.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Values per row from [`Forest::predict`]: the class count for `multi:softprob`, 1 for
    /// `multi:softmax` (the class index), the target count for multi-target models, else 1.
    pub fn num_outputs_per_row(&self) -> usize {
        self.kind.outputs(self.groups)
    }

    /// Values per row from [`Forest::predict_margin`]: one per class or target.
    pub fn num_margins_per_row(&self) -> usize {
        self.groups
    }

    /// The model's objective, as XGBoost names it.
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.roots.len()
    }

    /// Number of nodes reachable in all trees.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Predicts `rows` rows of [`Forest::num_features`] values each (row-major, NaN for missing)
    /// into `out`, replacing its contents with [`Forest::num_outputs_per_row`] values per row:
    /// what XGBoost's `predict` returns. On error `out` is left as it was.
    pub fn predict(&self, features: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), TreeError> {
        self.check(features, rows)?;
        self.margins(features, rows, out);
        self.kind.transform(out, self.groups);
        out.truncate(rows * self.num_outputs_per_row());
        Ok(())
    }

    /// Like [`Forest::predict`], but the raw margins (XGBoost's `output_margin`): the intercept
    /// plus the trees' sum, [`Forest::num_margins_per_row`] values per row.
    pub fn predict_margin(&self, features: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), TreeError> {
        self.check(features, rows)?;
        self.margins(features, rows, out);
        Ok(())
    }

    fn check(&self, features: &[f32], rows: usize) -> Result<(), TreeError> {
        let cols = self.num_features;
        if rows.checked_mul(cols) != Some(features.len()) || rows.checked_mul(self.groups).is_none() {
            return Err(TreeError::Features { rows, cols, got: features.len() });
        }
        if let Some(i) = features.iter().position(|v| v.is_infinite()) {
            return Err(TreeError::Infinite { row: i / cols, col: i % cols });
        }
        Ok(())
    }

    /// `out` ← `rows × groups` margins. Each row's sum runs in tree order, whatever the blocking.
    fn margins(&self, features: &[f32], rows: usize, out: &mut Vec<f32>) {
        let (k, cols) = (self.groups, self.num_features);
        out.clear();
        out.reserve(rows * k);
        for _ in 0..rows {
            out.extend_from_slice(&self.base_margin);
        }
        let mut at = [0u32; BLOCK_ROWS];
        let mut leaves = [0f32; BLOCK_ROWS];
        let mut start = 0;
        while start < rows {
            let end = (start + BLOCK_ROWS).min(rows);
            let block = &features[start * cols..end * cols];
            let acc = &mut out[start * k..end * k];
            // Without missing values a step skips the default-direction logic.
            let missing = block.iter().any(|v| v.is_nan());
            if end - start < LANES {
                // Few rows: each row goes down LANES trees at a time instead.
                for (r, acc) in acc.chunks_exact_mut(k).enumerate() {
                    let row = &block[r * cols..(r + 1) * cols];
                    if missing {
                        self.row_margins::<true>(row, acc);
                    } else {
                        self.row_margins::<false>(row, acc);
                    }
                }
                start = end;
                continue;
            }
            let (at, leaves) = (&mut at[..end - start], &mut leaves[..end - start]);
            for tree in 0..self.roots.len() {
                if missing {
                    self.leaves::<true>(tree, block, cols, at, leaves);
                } else {
                    self.leaves::<false>(tree, block, cols, at, leaves);
                }
                let g = self.tree_groups[tree] as usize;
                match &self.tree_weights {
                    None if k == 1 => acc.iter_mut().zip(leaves.iter()).for_each(|(m, &v)| *m += v),
                    None => acc.chunks_exact_mut(k).zip(leaves.iter()).for_each(|(m, &v)| m[g] += v),
                    Some(weights) => {
                        let w = weights[tree];
                        // XGBoost predicts the tree alone into zeros, then adds it weighted.
                        acc.chunks_exact_mut(k).zip(leaves.iter()).for_each(|(m, &v)| m[g] += (0.0 + v) * w);
                    }
                }
            }
            start = end;
        }
    }

    /// Adds one row's leaf values to its margins `acc`, going down `LANES` trees in lockstep:
    /// their steps are independent, so a single row still keeps several memory loads in flight.
    fn row_margins<const MISSING: bool>(&self, row: &[f32], acc: &mut [f32]) {
        let mut at = [0u32; LANES];
        for (c, roots) in self.roots.chunks(LANES).enumerate() {
            let first = c * LANES;
            let at = &mut at[..roots.len()];
            let depth = self.lane_depths[c];
            if depth <= MAX_STEPPED_DEPTH {
                at.copy_from_slice(roots);
                for _ in 0..depth {
                    for i in at.iter_mut() {
                        *i = self.step::<MISSING>(*i, row, 0);
                    }
                }
            } else {
                for (i, &root) in at.iter_mut().zip(roots) {
                    *i = root;
                    while self.nodes[*i as usize].info & LEAF == 0 {
                        *i = self.step::<MISSING>(*i, row, 0);
                    }
                }
            }
            // In tree order, as XGBoost adds them.
            for (j, &i) in at.iter().enumerate() {
                let tree = first + j;
                let v = f32::from_bits(self.nodes[i as usize].cats);
                let g = self.tree_groups[tree] as usize;
                match &self.tree_weights {
                    None => acc[g] += v,
                    Some(weights) => acc[g] += (0.0 + v) * weights[tree],
                }
            }
        }
    }

    /// The leaf value each row of `block` reaches in tree `tree`, into `leaves` (`at` is scratch).
    #[inline]
    fn leaves<const MISSING: bool>(&self, tree: usize, block: &[f32], cols: usize, at: &mut [u32], leaves: &mut [f32]) {
        let root = self.roots[tree];
        let depth = self.depths[tree];
        if depth <= MAX_STEPPED_DEPTH {
            // Every row takes exactly `depth` steps (a leaf steps to itself), level by level: no
            // branch depends on the data, and the rows' steps are independent of each other.
            at.fill(root);
            for _ in 0..depth {
                for (r, i) in at.iter_mut().enumerate() {
                    *i = self.step::<MISSING>(*i, block, r * cols);
                }
            }
            for (v, &i) in leaves.iter_mut().zip(at.iter()) {
                *v = f32::from_bits(self.nodes[i as usize].cats);
            }
        } else {
            // Deep (typically lopsided) trees: each row stops at its leaf.
            for (r, v) in leaves.iter_mut().enumerate() {
                let mut i = root;
                while self.nodes[i as usize].info & LEAF == 0 {
                    i = self.step::<MISSING>(i, block, r * cols);
                }
                *v = f32::from_bits(self.nodes[i as usize].cats);
            }
        }
    }

    /// The node the row starting at `rows[at]` goes to from node `i` (from a leaf: the leaf).
    /// `MISSING`: whether the row may hold NaN.
    #[inline(always)]
    fn step<const MISSING: bool>(&self, i: u32, rows: &[f32], at: usize) -> u32 {
        let n = self.nodes[i as usize];
        let x = rows[at + (n.info & FEATURE_MASK) as usize];
        let missing = MISSING && x.is_nan();
        // Non-short-circuit operators: the direction is computed, not branched on (it is what a
        // branch predictor cannot guess).
        let default_right = missing & (n.info & DEFAULT_LEFT == 0);
        let right = if n.info & CATEGORICAL == 0 {
            // XGBoost goes left when `x < threshold`; NaN fails `>=` too, so only its default
            // direction can send it right.
            default_right | (x >= n.value)
        } else if missing {
            default_right
        } else {
            self.in_category_set(n.cats, x)
        };
        n.left + u32::from(right)
    }

    /// Whether `x` (not NaN) is one of the categories of set `set`: XGBoost's categorical
    /// decision, negated (true goes right).
    fn in_category_set(&self, set: u32, x: f32) -> bool {
        // Negative values and values from 2^24 on are invalid categories: they go left.
        if !(0.0..load::MAX_CATEGORY).contains(&x) {
            return false;
        }
        let c = x as u32;
        let (start, words) = self.cat_sets[set as usize];
        let w = c / 32;
        w < words && (self.cat_words[(start + w) as usize] >> (c % 32)) & 1 == 1
    }
}
