//! The dependency graph: resources are nodes, references and `depends_on` are edges (from the
//! dependency to the dependent: a source points at the feature views that read it). Cycles are
//! errors that label every block on the cycle; the topological order is the order apply runs.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::lower::node::Node;
use crate::model::Model;
use crate::value::Value;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::{BTreeSet, HashMap};

/// The dependency graph of a model.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Nodes are resource addresses; an edge a → b means b depends on a.
    pub graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
}

impl Graph {
    /// Builds the graph; reports cycles.
    pub fn build(model: &Model, diags: &mut Diagnostics) -> Graph {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        let mut sorted: Vec<String> = model.resources.iter().map(|r| r.address.to_string()).collect();
        sorted.sort();
        for a in sorted {
            let i = graph.add_node(a.clone());
            index.insert(a, i);
        }
        for r in &model.resources {
            let to = index[&r.address.to_string()];
            let mut deps = BTreeSet::new();
            collect_node(&r.node, &mut deps);
            deps.extend(r.depends_on.iter().map(|d| d.address.to_string()));
            for d in deps {
                if let Some(&from) = index.get(&d) {
                    if !graph.contains_edge(from, to) {
                        graph.add_edge(from, to, ());
                    }
                }
            }
        }
        let g = Graph { graph, index };
        g.report_cycles(model, diags);
        g
    }

    fn report_cycles(&self, model: &Model, diags: &mut Diagnostics) {
        for scc in tarjan_scc(&self.graph) {
            let self_loop = scc.len() == 1 && self.graph.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            let cycle = self.cycle_in(&scc);
            let names: Vec<&str> = cycle.iter().map(|i| self.graph[*i].as_str()).collect();
            let first = model.get(names[0]).expect("graph nodes are resources");
            let mut d = Diagnostic::error(
                codes::CYCLE,
                first.node.header,
                format!("dependency cycle: {} → {}", names.join(" → "), names[0]),
            )
            .label("on the cycle")
            .help(
                "a resource cannot depend on itself, directly or through others; remove one of the references \
                 (often a `depends_on`)",
            );
            // Label each step with the reference that makes it: where the dependent names its dependency.
            for (k, from) in names.iter().enumerate() {
                let to = names[(k + 1) % names.len()];
                if let Some(r) = model.get(to) {
                    let at = reference_span(r, from).unwrap_or(r.node.header);
                    d = d.with(at, format!("{to} depends on {from}"));
                }
            }
            diags.push(d);
        }
    }

    /// One cycle through the members of a strongly connected component, in dependency order,
    /// starting from the alphabetically first member.
    fn cycle_in(&self, scc: &[NodeIndex]) -> Vec<NodeIndex> {
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|i| &self.graph[**i]).expect("non-empty component");
        // Breadth-first search back to `start` inside the component gives a shortest cycle.
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self.graph.neighbors(n).filter(|m| members.contains(m)).collect();
            next.sort_by_key(|m| &self.graph[*m]);
            for m in next {
                if m == start {
                    let mut path = vec![n];
                    let mut cur = n;
                    while cur != start {
                        cur = prev[&cur];
                        path.push(cur);
                    }
                    path.reverse();
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                    e.insert(n);
                    queue.push_back(m);
                }
            }
        }
        vec![start]
    }

    /// Direct dependencies of a resource, sorted.
    pub fn dependencies(&self, address: &str) -> Vec<String> {
        let Some(&i) = self.index.get(address) else { return Vec::new() };
        let mut out: Vec<String> = self
            .graph
            .edges_directed(i, petgraph::Direction::Incoming)
            .map(|e| self.graph[e.source()].clone())
            .collect();
        out.sort();
        out
    }

    /// Addresses in an order where every resource comes after its dependencies (ties by
    /// address, so the order is deterministic). `None` if there is a cycle.
    pub fn topological(&self) -> Option<Vec<String>> {
        let mut indegree: HashMap<NodeIndex, usize> = HashMap::new();
        for i in self.graph.node_indices() {
            indegree.insert(i, self.graph.edges_directed(i, petgraph::Direction::Incoming).count());
        }
        let mut ready: BTreeSet<(String, NodeIndex)> =
            indegree.iter().filter(|(_, d)| **d == 0).map(|(i, _)| (self.graph[*i].clone(), *i)).collect();
        let mut out = Vec::with_capacity(self.graph.node_count());
        while let Some(first) = ready.iter().next().cloned() {
            ready.remove(&first);
            out.push(first.0.clone());
            for e in self.graph.edges_directed(first.1, petgraph::Direction::Outgoing) {
                let t = e.target();
                let d = indegree.get_mut(&t).expect("every node has a degree");
                *d -= 1;
                if *d == 0 {
                    ready.insert((self.graph[t].clone(), t));
                }
            }
        }
        (out.len() == self.graph.node_count()).then_some(out)
    }

    /// Graphviz DOT.
    pub fn to_dot(&self, model: &Model) -> String {
        let mut out = String::from("digraph mlops {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
        for i in self.graph.node_indices() {
            let a = &self.graph[i];
            let kind = model.get(a).map_or("", |r| r.address.kind.as_str());
            out.push_str(&format!("  \"{a}\" [label=\"{a}\", style=filled, fillcolor=\"{}\"];\n", color(kind)));
        }
        let mut edges: Vec<(String, String)> = self
            .graph
            .edge_references()
            .map(|e| (self.graph[e.source()].clone(), self.graph[e.target()].clone()))
            .collect();
        edges.sort();
        for (a, b) in edges {
            out.push_str(&format!("  \"{a}\" -> \"{b}\";\n"));
        }
        out.push_str("}\n");
        out
    }

    /// A plain-text rendering: each resource in topological order with what it depends on.
    pub fn to_text(&self) -> String {
        let order = self.topological().unwrap_or_default();
        let mut out = String::new();
        for a in order {
            let deps = self.dependencies(&a);
            if deps.is_empty() {
                out.push_str(&format!("{a}\n"));
            } else {
                out.push_str(&format!("{a}\n  ← {}\n", deps.join(", ")));
            }
        }
        out
    }
}

/// Where `r` refers to `dependency` (an attribute value or a `depends_on` entry).
fn reference_span(r: &crate::model::Resource, dependency: &str) -> Option<crate::source::Span> {
    fn find(v: &Value, dep: &str) -> Option<crate::source::Span> {
        match v {
            Value::Ref(x) if x.address.to_string() == dep => Some(x.span),
            Value::List(items) => items.iter().find_map(|i| find(i, dep)),
            Value::Object(m) => m.values().find_map(|i| find(i, dep)),
            _ => None,
        }
    }
    fn walk(n: &Node, dep: &str) -> Option<crate::source::Span> {
        n.attrs.values().find_map(|a| find(&a.value, dep)).or_else(|| n.blocks.iter().find_map(|b| walk(b, dep)))
    }
    walk(&r.node, dependency)
        .or_else(|| r.depends_on.iter().find(|d| d.address.to_string() == dependency).map(|d| d.span))
}

fn color(kind: &str) -> &'static str {
    match kind {
        "source" => "#dbeafe",
        "entity" => "#e0e7ff",
        "feature_view" => "#dcfce7",
        "training_job" => "#fef9c3",
        "endpoint" => "#fde68a",
        "monitor" => "#fee2e2",
        _ => "#f3e8ff",
    }
}

fn collect_node(node: &Node, out: &mut BTreeSet<String>) {
    for a in node.attrs.values() {
        collect(&a.value, out);
    }
    for b in &node.blocks {
        collect_node(b, out);
    }
}

fn collect(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Ref(r) => {
            out.insert(r.address.to_string());
        }
        Value::List(items) => items.iter().for_each(|i| collect(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect(i, out)),
        _ => {}
    }
}
