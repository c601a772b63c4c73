//! The pull-request rendering of a kubernetes plan, in the local target's style: a title, a
//! summary table of counts, a table of the objects that change, then each changed object's line
//! diff in a collapsed `<details>` block. Like the local target's, it stays under GitHub's limit
//! on a comment ([`MARKDOWN_LIMIT`]): diffs that would not fit are left out, saying so.

use std::fmt::Write;

use mlops_compiler::plan::MARKDOWN_LIMIT;

use super::{Action, PlanDocument};

/// Room kept below the limit for the closing lines and the rows of the table.
const RESERVE: usize = 2_048;

/// Renders a plan document as a pull-request comment; `dir` is the manifest folder as shown.
pub fn render_markdown(doc: &PlanDocument, dir: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### mlops plan · {} · kubernetes\n", code(&doc.system));
    let s = &doc.summary;
    if !doc.has_changes() {
        let _ = writeln!(
            out,
            "**No changes.** The manifests in {} match the configuration ({} objects).",
            code(dir),
            s.unchanged
        );
        return out;
    }
    let _ = writeln!(out, "Manifests in {}.\n", code(dir));
    out.push_str("| | action | objects |\n|---|---|---:|\n");
    for (action, n) in [(Action::Add, s.add), (Action::Change, s.change), (Action::Remove, s.remove)] {
        let _ = writeln!(out, "| {} | {} | {n} |", code(&action.sign().to_string()), action.name());
    }
    let _ = writeln!(out, "| | unchanged | {} |\n", s.unchanged);
    let _ = writeln!(out, "**Plan: {} to add, {} to change, {} to remove.**\n", s.add, s.change, s.remove);

    out.push_str("#### Objects\n\n| | action | kind | name | file |\n|---|---|---|---|---|\n");
    let mut rows = String::new();
    for c in &doc.changes {
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} |",
            code(&c.action.sign().to_string()),
            c.action.name(),
            cell(&c.kind),
            code(&cell(&c.name)),
            code(&cell(&c.file))
        );
    }
    out.push_str(&rows);
    out.push('\n');

    let diffs: Vec<_> = doc.changes.iter().filter_map(|c| c.diff.as_deref().map(|d| (c, d))).collect();
    if diffs.is_empty() {
        return out;
    }
    out.push_str("#### Diffs\n\n");
    let mut left_out = Vec::new();
    for (c, diff) in diffs {
        let fence = "`".repeat(longest_backtick_run(diff).max(2) + 1);
        let block = format!(
            "<details><summary><code>~</code> {} <code>{}</code></summary>\n\n{fence}diff\n{diff}{fence}\n\n</details>\n\n",
            html(&c.kind),
            html(&c.name)
        );
        if out.len() + block.len() + RESERVE < MARKDOWN_LIMIT {
            out.push_str(&block);
        } else {
            left_out.push(c.name.as_str());
        }
    }
    if !left_out.is_empty() {
        let _ = writeln!(
            out,
            "> **Summarised:** the diffs of {} are left out to keep this comment under GitHub's limit; \
             run `mlops plan` for them.",
            left_out.iter().map(|n| code(n)).collect::<Vec<_>>().join(", ")
        );
    }
    out
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Inline code.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// Text in a table cell, where a `|` would end the cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Text inside HTML (`<summary>`).
fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
