//! The human rendering of a [`Plan`], as `mlops plan` prints it: in the Terraform manner
//! (`+` create, `~` update in place, `-/+` replace, `-` destroy), grouped by layer of the ML
//! system, each resource with why it changes, its attribute lines and its risk notes, and a
//! closing count. Plan in, text out; unchanged resources are left out.

use super::show::{self, attr_symbol};
use super::{Action, Layer, Plan, ResourceChange, RiskLevel};
use std::fmt::Write;

/// Renders a plan as plain text (no colour).
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", header(plan));
    if !plan.has_changes() {
        out.push_str("\nNo changes. The ML system matches the configuration.\n");
        return out;
    }
    out.push_str("\nSymbols: + create, ~ update in place, -/+ replace, - destroy.\n");
    for layer in Layer::ALL {
        let changes: Vec<&ResourceChange> =
            plan.changes.iter().filter(|c| c.action != Action::NoOp && Layer::of(&c.kind) == layer).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n── {} {}", layer.name(), "─".repeat(60usize.saturating_sub(layer.name().len())));
        for c in changes {
            resource(&mut out, c);
        }
    }
    let risks = plan.risks();
    if !risks.is_empty() {
        let count = |l: RiskLevel| risks.iter().filter(|(_, r)| r.level == l).count();
        let _ = writeln!(
            out,
            "\nRisks: {} danger, {} warn, {} info. Read them before applying.",
            count(RiskLevel::Danger),
            count(RiskLevel::Warn),
            count(RiskLevel::Info)
        );
    }
    let s = plan.summary;
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to replace, {} to destroy.",
        s.create, s.update, s.replace, s.delete
    );
    out
}

/// The first line: which system, against which state.
fn header(plan: &Plan) -> String {
    match (&plan.state_serial, &plan.state_lineage) {
        (Some(serial), Some(lineage)) => {
            format!("mlops plan for {}, against state serial {serial} (lineage {lineage}).", plan.system)
        }
        _ => format!("mlops plan for {}, against no state: nothing has been applied yet.", plan.system),
    }
}

/// The symbol of an action.
pub(super) fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "-/+",
        Action::Delete => "-",
        Action::NoOp => " ",
    }
}

/// What happens, as a phrase after the address ("will be retrained: a new model version").
fn phrase(c: &ResourceChange) -> &'static str {
    match (c.action, c.kind.as_str()) {
        (Action::Create, _) => "will be created",
        (Action::Update, _) => "will be updated in place",
        (Action::Replace, "training_job") => "will be retrained: a new model version replaces the current one",
        (Action::Replace, _) => "must be replaced",
        (Action::Delete, _) => "will be destroyed",
        (Action::NoOp, _) => "is unchanged",
    }
}

/// The note on an attribute line that forces the replacement.
pub(super) fn forces(kind: &str) -> &'static str {
    if kind == "training_job" {
        "forces retraining"
    } else {
        "forces replacement"
    }
}

/// `6 → 8`, `"7d"`, `(known after apply)`: the values of an attribute line.
pub(super) fn values(path: &str, before: &super::AttrValue, after: &super::AttrValue) -> String {
    use super::AttrValue::Absent;
    match (before, after) {
        (Absent, a) => show::value(path, a),
        (b, Absent) => show::value(path, b),
        (b, a) => format!("{} → {}", show::value(path, b), show::value(path, a)),
    }
}

fn resource(out: &mut String, c: &ResourceChange) {
    let _ = writeln!(out, "\n  # {} {}", c.address, phrase(c));
    for (i, r) in c.reasons.iter().enumerate() {
        let _ = writeln!(out, "  #   {} {r}", if i == 0 { "because" } else { "    and" });
    }
    let _ = writeln!(out, "{:>3} {}", symbol(c.action), c.address);
    for a in &c.attributes {
        let note = if a.forces_replace { format!("  # {}", forces(&c.kind)) } else { String::new() };
        let _ = writeln!(
            out,
            "      {} {}: {}{note}",
            attr_symbol(c.action, &a.before, &a.after),
            show::attr_name(&a.path),
            values(&a.path, &a.before, &a.after)
        );
    }
    for r in &c.risks {
        let level = match r.level {
            RiskLevel::Danger => "DANGER",
            RiskLevel::Warn => "warn",
            RiskLevel::Info => "info",
        };
        let _ = writeln!(out, "      ! {level}: {}", r.text);
    }
}
