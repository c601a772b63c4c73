//! The pull-request rendering of a [`Plan`]: a title, a summary table of action counts, the risk
//! notes first, then one collapsible `<details>` per changed resource with its reasons, an
//! attribute table and its risks. Plan in, GitHub-flavoured markdown out.
//!
//! A comment must stay under GitHub's limit of [`MARKDOWN_LIMIT`] characters, so a large plan is
//! summarised, saying so: first details are kept only for resources with warnings (others get one
//! line each), then only addresses are listed, cut off with a count when even that is too long.

use super::render_text::{forces, symbol};
use super::show::{self, attr_symbol};
use super::{Action, AttrChange, Layer, Plan, ResourceChange, RiskLevel};
use std::fmt::Write;

/// GitHub's limit on the length of a comment, in characters.
pub const MARKDOWN_LIMIT: usize = 65_536;

/// Room kept free below the limit for the closing lines of the shortest rendering.
const RESERVE: usize = 2_048;

/// How much of the plan a rendering shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Every changed resource with its attributes.
    Full,
    /// Attributes only for resources with warnings or dangers.
    Risky,
    /// Addresses only.
    Addresses,
}

/// Renders a plan as a pull-request comment, always shorter than [`MARKDOWN_LIMIT`] characters
/// (bytes, in fact, which is stricter).
pub fn render_markdown(plan: &Plan) -> String {
    let full = render(plan, Detail::Full);
    if full.len() < MARKDOWN_LIMIT {
        return full;
    }
    let risky = render(plan, Detail::Risky);
    if risky.len() < MARKDOWN_LIMIT {
        return risky;
    }
    render(plan, Detail::Addresses)
}

fn render(plan: &Plan, detail: Detail) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### mlops plan · {}\n", code(&plan.system));
    match (&plan.state_serial, &plan.state_lineage) {
        (Some(serial), Some(lineage)) => {
            let _ = writeln!(out, "Planned against state serial {serial} (lineage {}).\n", code(lineage));
        }
        _ => out.push_str("Planned against no state: nothing has been applied yet.\n\n"),
    }
    if !plan.has_changes() {
        let _ = writeln!(out, "**No changes.** The ML system matches the configuration.");
        return out;
    }
    summary_table(&mut out, plan);
    match detail {
        Detail::Full => {}
        Detail::Risky => out.push_str(
            "> **Summarised:** this plan is too large for one comment, so attribute details are shown \
             only for resources with warnings; the others get one line each. Run `mlops plan` for the full plan.\n\n",
        ),
        Detail::Addresses => out.push_str(
            "> **Summarised:** this plan is too large for one comment, so only addresses are listed. \
             Run `mlops plan` (or `mlops show` on the saved plan) for the full plan.\n\n",
        ),
    }
    let budget = if detail == Detail::Addresses { MARKDOWN_LIMIT - RESERVE } else { usize::MAX };
    let room = budget.saturating_sub(out.len()) / 2;
    risks(&mut out, plan, room);
    if detail == Detail::Addresses {
        addresses(&mut out, plan, budget);
        return out;
    }
    out.push_str("#### Changes\n\n");
    for layer in Layer::ALL {
        let changes: Vec<&ResourceChange> =
            plan.changes.iter().filter(|c| c.action != Action::NoOp && Layer::of(&c.kind) == layer).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "##### {}\n", layer.name());
        for c in changes {
            let risky = c.risks.iter().any(|r| r.level >= RiskLevel::Warn);
            if detail == Detail::Full || risky {
                resource(&mut out, c);
            } else {
                let _ = writeln!(
                    out,
                    "- {} {} {} — {}",
                    code(symbol(c.action)),
                    code(&c.address),
                    verb(c),
                    text(&reasons(c))
                );
            }
        }
        if detail == Detail::Risky {
            out.push('\n');
        }
    }
    let unchanged: Vec<&ResourceChange> = plan.changes.iter().filter(|c| c.action == Action::NoOp).collect();
    if !unchanged.is_empty() && detail == Detail::Full {
        let _ = writeln!(out, "<details><summary>{} unchanged</summary>\n", count(unchanged.len(), "resource"));
        for c in unchanged {
            let _ = writeln!(out, "- {}", code(&c.address));
        }
        out.push_str("\n</details>\n");
    } else if !unchanged.is_empty() {
        let _ = writeln!(out, "{} unchanged.", count(unchanged.len(), "resource"));
    }
    out
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn summary_table(out: &mut String, plan: &Plan) {
    let s = plan.summary;
    out.push_str("| | action | resources |\n|---|---|---:|\n");
    for (sym, what, n) in [
        ("+", "create", s.create),
        ("~", "update in place", s.update),
        ("-/+", "replace", s.replace),
        ("-", "destroy", s.delete),
    ] {
        let _ = writeln!(out, "| {} | {what} | {n} |", code(sym));
    }
    let _ = writeln!(out, "| | unchanged | {} |\n", s.noop);
    let _ = writeln!(
        out,
        "**Plan: {} to create, {} to update, {} to replace, {} to destroy.**\n",
        s.create, s.update, s.replace, s.delete
    );
}

fn level(l: RiskLevel) -> &'static str {
    match l {
        RiskLevel::Danger => "**DANGER**",
        RiskLevel::Warn => "**warn**",
        RiskLevel::Info => "info",
    }
}

/// The risk section, most serious first, in at most `budget` bytes.
fn risks(out: &mut String, plan: &Plan, budget: usize) {
    let all = plan.risks();
    if all.is_empty() {
        return;
    }
    let start = out.len();
    out.push_str("#### Risks\n\n");
    for (i, (address, r)) in all.iter().enumerate() {
        let line = format!("- {} {}: {}\n", level(r.level), code(address), text(&r.text));
        if out.len() - start + line.len() > budget {
            let _ = writeln!(out, "- … and {} more", all.len() - i);
            break;
        }
        out.push_str(&line);
    }
    out.push('\n');
}

/// Addresses per action, in at most `budget` bytes of the whole comment.
fn addresses(out: &mut String, plan: &Plan, budget: usize) {
    for (action, title) in [
        (Action::Create, "To create"),
        (Action::Update, "To update in place"),
        (Action::Replace, "To replace"),
        (Action::Delete, "To destroy"),
    ] {
        let list: Vec<&str> = plan.changes.iter().filter(|c| c.action == action).map(|c| c.address.as_str()).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "#### {title} ({})\n", list.len());
        for (i, a) in list.iter().enumerate() {
            let line = format!("- {}\n", code(a));
            if out.len() + line.len() > budget {
                let _ = writeln!(out, "- … and {} more", list.len() - i);
                break;
            }
            out.push_str(&line);
        }
        out.push('\n');
    }
}

fn reasons(c: &ResourceChange) -> String {
    c.reasons.join("; ")
}

fn resource(out: &mut String, c: &ResourceChange) {
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code> <code>{}</code> {} — {}</summary>\n",
        html(symbol(c.action)),
        html(&c.address),
        verb(c),
        html(&reasons(c))
    );
    if !c.attributes.is_empty() {
        out.push_str("| | attribute | before | after |\n|---|---|---|---|\n");
        for a in &c.attributes {
            attribute(out, c, a);
        }
        out.push('\n');
    }
    for r in &c.risks {
        let _ = writeln!(out, "- {}: {}", level(r.level), text(&r.text));
    }
    if !c.risks.is_empty() {
        out.push('\n');
    }
    out.push_str("</details>\n\n");
}

/// The action in a word or two, for a summary line.
fn verb(c: &ResourceChange) -> &'static str {
    match (c.action, c.kind.as_str()) {
        (Action::Create, _) => "create",
        (Action::Update, _) => "update in place",
        (Action::Replace, "training_job") => "retrain (new model version)",
        (Action::Replace, _) => "replace",
        (Action::Delete, _) => "destroy",
        (Action::NoOp, _) => "unchanged",
    }
}

fn attribute(out: &mut String, c: &ResourceChange, a: &AttrChange) {
    use super::AttrValue::Absent;
    let cell = |v: &super::AttrValue| match v {
        Absent => String::new(),
        v => cell_code(&show::value(&a.path, v)),
    };
    let note = if a.forces_replace { format!(" ({})", forces(&c.kind)) } else { String::new() };
    let _ = writeln!(
        out,
        "| {} | {} | {} | {}{note} |",
        cell_code(attr_symbol(c.action, &a.before, &a.after)),
        cell_code(show::attr_name(&a.path)),
        cell(&a.before),
        cell(&a.after)
    );
}

/// Inline code outside tables.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Inline code in a table cell, where a `|` would end the cell.
fn cell_code(s: &str) -> String {
    code(&s.replace('|', "\\|"))
}

/// Text inside HTML (`<summary>`).
fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Plain text in markdown: characters that would start markup are escaped. An underscore inside
/// a word (`max_depth`) starts nothing in GitHub's markdown, so it is left alone for readability.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    for ch in s.chars() {
        let escape = match ch {
            '\\' | '`' | '*' | '<' | '>' | '|' => true,
            '_' => !prev.is_some_and(char::is_alphanumeric),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(ch);
        prev = Some(ch);
    }
    out
}
