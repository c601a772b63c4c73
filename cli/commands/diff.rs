//! `mlops diff --base GIT_REV [DIR]`: the plan between the configuration at a git revision and
//! the working tree, needing no state — what a CI job posts on a pull request.
//!
//! The tree at the revision is extracted whole (`git archive | tar -x`) into a temporary
//! directory, because modules (`source = "../../modules/…"`) and files read with `file()` live
//! outside DIR; DIR is compiled there and in the working tree with the same variables, and the
//! working tree is planned against [`State::assumed`] of the base: the state the base would
//! leave if it had been applied. Values produced at apply are "known after apply".

use super::{plan::PlanFormat, print_diagnostics, summary, ConfigArgs};
use clap::Args;
use mlops_compiler::plan::{plan, render_markdown, render_text, Plan, MARKDOWN_LIMIT};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::state::State;
use mlops_compiler::Options;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Plan the working tree against the configuration at a git revision (no state needed).
#[derive(Debug, Args)]
pub struct Diff {
    #[command(flatten)]
    config: ConfigArgs,
    /// The git revision to compare against (a branch, tag or commit), e.g. `origin/main`.
    #[arg(long, value_name = "GIT_REV")]
    base: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Same as `--format json`.
    #[arg(long)]
    json: bool,
    /// Exit 0 when there are no changes, 2 when there are (1 on errors).
    #[arg(long)]
    detailed_exitcode: bool,
}

impl Diff {
    pub fn run(self) -> Result<ExitCode, String> {
        let dir = &self.config.dir;
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        let repo = Repo::containing(dir)?;
        let commit = repo.resolve(&self.base)?;
        let base = Base { rev: &self.base, commit: &commit, prefix: &repo.prefix };

        // The working tree first: its errors are the author's to fix, reported as `plan` does.
        let Some((_, head)) = self.config.compile_spec()? else { return Ok(ExitCode::from(1)) };

        let base_spec = if repo.has_config_at(&commit)? {
            let tree = TempTree::new()?;
            repo.extract(&commit, tree.path())?;
            Some(self.compile_base(&tree.path().join(&repo.prefix), tree.path(), &base)?)
        } else {
            None
        };

        let assumed = base_spec.as_ref().map(State::assumed);
        let mut p = plan(&head, assumed.as_ref());
        // "not in state" is the planner's reason for a create; here there is no state.
        let new_reason = format!("not configured at {}", self.base);
        for reason in p.changes.iter_mut().flat_map(|c| c.reasons.iter_mut()).filter(|r| *r == "not in state") {
            reason.clone_from(&new_reason);
        }
        let format = if self.json { PlanFormat::Json } else { self.format };
        print!("{}", render(&p, format, &base, base_spec.is_some())?);
        Ok(if self.detailed_exitcode && p.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
    }

    /// Compiles DIR as it was at the base revision, extracted under `root`. A variable given a
    /// value but not declared at the base (the change under review adds it) is left out there,
    /// rather than failing the base as undeclared.
    fn compile_base(&self, dir: &Path, root: &Path, base: &Base) -> Result<SystemSpec, String> {
        let mut vars = self.config.variables()?;
        let mut c = mlops_compiler::compile(
            dir,
            &Options { vars: vars.clone(), display_base: Some(root.into()), kubernetes: None },
        );
        if c.spec.is_none() {
            let declared: Vec<&str> = c.model.variables.iter().map(|v| v.name.as_str()).collect();
            let undeclared: Vec<String> = vars.keys().filter(|k| !declared.contains(&k.as_str())).cloned().collect();
            if !undeclared.is_empty() {
                let names = undeclared.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
                eprintln!(
                    "note: {} does not declare {names} at {}; the base is compiled without {}",
                    base.dir(),
                    base.rev,
                    if undeclared.len() == 1 { "that value" } else { "those values" }
                );
                vars.retain(|k, _| !undeclared.contains(k));
                c = mlops_compiler::compile(dir, &Options { vars, display_base: Some(root.into()), kubernetes: None });
            }
        }
        match c.spec.take() {
            Some(spec) => Ok(spec),
            None => {
                eprintln!(
                    "The base configuration ({} at {}, commit {}) has errors:",
                    base.dir(),
                    base.rev,
                    base.short()
                );
                print_diagnostics(&c.diagnostics, &c.sources);
                Err(format!(
                    "the configuration at revision `{}` (commit {}) has errors: {}; the diff needs both sides to \
                     compile — fix the base or compare against another revision",
                    base.rev,
                    base.short(),
                    summary(&c.diagnostics)
                ))
            }
        }
    }
}

/// The revision compared against, for messages and headers.
struct Base<'a> {
    /// As given (`origin/main`).
    rev: &'a str,
    /// The commit it names.
    commit: &'a str,
    /// DIR relative to the top of the repository, `/`-separated; empty for the top itself.
    prefix: &'a str,
}

impl Base<'_> {
    fn short(&self) -> &str {
        self.commit.get(..12).unwrap_or(self.commit)
    }

    fn dir(&self) -> &str {
        if self.prefix.is_empty() {
            "."
        } else {
            self.prefix
        }
    }
}

/// The plan rendered like `mlops plan`'s, but with a header that says what was compared: the
/// planner's header would describe the state assumed from the base ("state serial 0, lineage
/// assumed") or "no state: nothing has been applied yet", which says nothing true about a diff.
/// The JSON is the planner's own: its `state_lineage` "assumed" (or null when the base had no
/// configuration) keeps such a plan from ever being applied to a real state.
fn render(p: &Plan, format: PlanFormat, base: &Base, existed: bool) -> Result<String, String> {
    Ok(match format {
        PlanFormat::Text => text(p, base, existed),
        PlanFormat::Markdown => markdown(p, base, existed),
        PlanFormat::Json => p.to_json().map_err(|e| e.to_string())?,
    })
}

fn text(p: &Plan, base: &Base, existed: bool) -> String {
    let header = if existed {
        format!(
            "mlops diff for {}: {} in the working tree against {} (commit {}), planned without state.",
            p.system,
            base.dir(),
            base.rev,
            base.short()
        )
    } else {
        format!(
            "mlops diff for {}: {} has no configuration at {} (commit {}), so everything in the working tree is new.",
            p.system,
            base.dir(),
            base.rev,
            base.short()
        )
    };
    let rendered = render_text(p);
    let body = match rendered.split_once('\n') {
        Some((first, rest)) if first.starts_with("mlops plan for ") => rest.to_string(),
        _ => format!("\n{rendered}"),
    };
    format!("{header}\n{body}").replace(
        "No changes. The ML system matches the configuration.",
        &format!("No changes. The working tree configures the same ML system as {}.", base.rev),
    )
}

fn markdown(p: &Plan, base: &Base, existed: bool) -> String {
    let what = if existed {
        format!(
            "{} in the working tree against {} (commit {}), planned without state: values produced by apply \
             are known after apply.",
            code(base.dir()),
            code(base.rev),
            code(base.short())
        )
    } else {
        format!(
            "{} has no configuration at {} (commit {}): everything is new.",
            code(base.dir()),
            code(base.rev),
            code(base.short())
        )
    };
    let rendered = render_markdown(p);
    // The planner's rendering: a title, a paragraph on the state planned against, the rest.
    let (title, rest) = match rendered.split_once("\n\n") {
        Some((title, after)) => match after.split_once("\n\n") {
            Some((para, rest)) if para.starts_with("Planned against") => (title, rest),
            _ => (title, after),
        },
        None => (rendered.as_str(), ""),
    };
    let rest = rest.replace(
        "**No changes.** The ML system matches the configuration.",
        &format!("**No changes.** The working tree configures the same ML system as {}.", code(base.rev)),
    );
    let out = format!("{title}\n\n{what}\n\n{rest}");
    if out.len() < MARKDOWN_LIMIT {
        out
    } else {
        // Only near GitHub's limit: dropping the paragraph keeps it shorter than the planner's.
        format!("{title}\n\n{rest}")
    }
}

/// Inline code, whatever backticks the text holds.
fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// The git repository holding DIR.
struct Repo {
    /// Its top directory.
    top: PathBuf,
    /// DIR relative to `top`, `/`-separated, no trailing slash; empty when DIR is the top.
    prefix: String,
}

impl Repo {
    fn containing(dir: &Path) -> Result<Repo, String> {
        let out = git(dir, &["rev-parse", "--show-toplevel", "--show-prefix"])?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("not a git repository") {
                return Err(format!(
                    "{} is not in a git repository: mlops diff compares the configuration with a git revision \
                     (to compare with what was applied, use `mlops plan`)",
                    dir.display()
                ));
            }
            return Err(format!("cannot find the git repository of {}: {}", dir.display(), err.trim()));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(top), prefix) = (lines.next(), lines.next().unwrap_or("")) else {
            return Err(format!(
                "{} is not in a git work tree (a bare repository has no configuration)",
                dir.display()
            ));
        };
        Ok(Repo { top: PathBuf::from(top), prefix: prefix.trim_end_matches('/').to_string() })
    }

    /// The commit `rev` names.
    fn resolve(&self, rev: &str) -> Result<String, String> {
        let unknown =
            || format!("unknown revision `{rev}`: fetch it first (in CI: actions/checkout with fetch-depth: 0)");
        if rev.is_empty() || rev.starts_with('-') {
            return Err(unknown());
        }
        let out = git(&self.top, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])?;
        let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || commit.is_empty() {
            return Err(unknown());
        }
        Ok(commit)
    }

    /// Did DIR hold configuration files at `commit`? (No: it is new since.)
    fn has_config_at(&self, commit: &str) -> Result<bool, String> {
        let tree =
            if self.prefix.is_empty() { format!("{commit}^{{tree}}") } else { format!("{commit}:{}", self.prefix) };
        let kind = git(&self.top, &["cat-file", "-t", &tree])?;
        if !kind.status.success() || String::from_utf8_lossy(&kind.stdout).trim() != "tree" {
            return Ok(false);
        }
        let out = git(&self.top, &["ls-tree", "--name-only", "-z", &tree])?;
        if !out.status.success() {
            return Err(format!("git ls-tree {tree} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(out.stdout.split(|b| *b == 0).any(|name| name.ends_with(mlops_compiler::parse::EXTENSION.as_bytes())))
    }

    /// Writes the whole tree of `commit` into `into` (`git archive | tar -x`).
    fn extract(&self, commit: &str, into: &Path) -> Result<(), String> {
        let mut archive = Command::new("git")
            .arg("-C")
            .arg(&self.top)
            .args(["archive", "--format=tar", commit])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(git_missing)?;
        let stdout = archive.stdout.take().expect("piped");
        let tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(into)
            .stdin(stdout)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let tar = match tar {
            Ok(t) => t,
            Err(e) => {
                let _ = archive.kill();
                let _ = archive.wait();
                return Err(format!("cannot run tar to unpack the base revision: {e}"));
            }
        };
        let tar = tar.wait_with_output().map_err(|e| format!("tar failed: {e}"))?;
        let archive = archive.wait_with_output().map_err(|e| format!("git archive failed: {e}"))?;
        if !archive.status.success() {
            return Err(format!("git archive {commit} failed: {}", String::from_utf8_lossy(&archive.stderr).trim()));
        }
        if !tar.status.success() {
            return Err(format!(
                "tar could not unpack the base revision: {}",
                String::from_utf8_lossy(&tar.stderr).trim()
            ));
        }
        Ok(())
    }
}

/// Runs `git -C dir ARGS…`, output captured.
fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    Command::new("git").arg("-C").arg(dir).args(args).stdin(Stdio::null()).output().map_err(git_missing)
}

fn git_missing(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "git is not installed (or not on PATH): mlops diff reads the base revision with git".to_string()
    } else {
        format!("cannot run git: {e}")
    }
}

/// A temporary directory, removed when dropped (also on every error path).
struct TempTree(PathBuf);

impl TempTree {
    fn new() -> Result<TempTree, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("mlops-diff-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempTree(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::code;

    #[test]
    fn code_spans_survive_backticks() {
        assert_eq!(code("origin/main"), "`origin/main`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("a``b"), "``` a``b ```");
    }
}
