//! `mlops diff --base GIT_REV [DIR]` through the binary, on real git repositories made in
//! temporary directories, and the GitHub Actions example that runs it (`examples/ci/`).

mod common;

use common::{mlops, stderr, stdout, TempDir};
use std::path::{Path, PathBuf};
use std::process::Output;

const FRAUD: &str = "examples/fraud-detection";

/// A temporary git repository holding the fraud example and its module, committed on `main`.
struct Repo {
    tmp: TempDir,
}

impl Repo {
    fn new(tag: &str) -> Repo {
        let tmp = TempDir::new(tag);
        std::fs::create_dir_all(tmp.path().join("repo")).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        std::fs::create_dir_all(tmp.path().join("tmp")).unwrap();
        let repo = Repo { tmp };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["config", "user.name", "mlops tests"]);
        repo.git(&["config", "user.email", "tests@mlops.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        for (from, to) in [(FRAUD, FRAUD), ("modules/tabular-classifier", "modules/tabular-classifier")] {
            for f in mlops_compiler::parse::config_files(&common::root().join(from)).unwrap() {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                repo.write(&format!("{to}/{name}"), &std::fs::read_to_string(&f).unwrap());
            }
        }
        repo.commit("the fraud example");
        repo
    }

    /// The work tree.
    fn path(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn dir(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces `from` by `to` in a file of the work tree (which must contain it).
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.dir(rel)).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.write(rel, &text.replace(from, to));
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
    }

    #[track_caller]
    fn git(&self, args: &[&str]) -> String {
        let mut cmd = std::process::Command::new("git");
        for (k, v) in isolated_env(self.tmp.path()) {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.arg("-C").arg(self.path()).args(args).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// `mlops ARGS…` run from the repository's work tree (git without user or system
    /// configuration); asserts the temporary tree of the base revision was removed.
    #[track_caller]
    fn mlops(&self, args: &[&str]) -> Output {
        let mut cmd = mlops();
        cmd.current_dir(self.path()).args(args);
        isolate(&mut cmd, self.tmp.path());
        let out = cmd.output().unwrap();
        let left: Vec<_> = std::fs::read_dir(self.tmp.path().join("tmp")).unwrap().collect();
        assert!(left.is_empty(), "mlops diff left {left:?} behind");
        out
    }
}

/// The environment of every command: no user or system git configuration; none of the
/// variables by which an outer git (a hook) points at its repository; temporary files under the
/// test's own directory; git's search for a repository stopped at the test's directory (which
/// lies inside this repository's work tree, under target/). `None`: removed.
fn isolated_env(tmp: &Path) -> Vec<(&'static str, Option<PathBuf>)> {
    vec![
        ("GIT_DIR", None),
        ("GIT_WORK_TREE", None),
        ("GIT_INDEX_FILE", None),
        ("GIT_CONFIG_NOSYSTEM", Some(PathBuf::from("1"))),
        ("HOME", Some(tmp.join("home"))),
        ("XDG_CONFIG_HOME", Some(tmp.join("home"))),
        ("TMPDIR", Some(tmp.join("tmp"))),
        ("GIT_CEILING_DIRECTORIES", Some(tmp.to_path_buf())),
    ]
}

fn isolate(cmd: &mut assert_cmd::Command, tmp: &Path) {
    for (k, v) in isolated_env(tmp) {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[track_caller]
fn expect(out: &Output, want: i32) {
    assert_eq!(code(out), Some(want), "stdout:\n{}\nstderr:\n{}", stdout(out), stderr(out));
}

#[test]
fn no_change_is_no_changes() {
    let repo = Repo::new("diff-same");
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--detailed-exitcode"]);
    expect(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("No changes."), "{text}");
    assert!(text.starts_with("mlops diff for fraud-detection: examples/fraud-detection"), "{text}");
    assert!(!text.contains("lineage"), "a state-free diff names no state: {text}");
    // The same variables on both sides: still nothing to do.
    let out = repo.mlops(&["diff", "--base", "HEAD", FRAUD, "--var", "environment=prod", "--detailed-exitcode"]);
    expect(&out, 0);
    // DIR given from inside it, and relative to another working directory.
    let mut cmd = mlops();
    cmd.current_dir(repo.dir(FRAUD)).args(["diff", "--base", "main", "--detailed-exitcode"]);
    isolate(&mut cmd, repo.tmp.path());
    let out = cmd.output().unwrap();
    expect(&out, 0);
}

#[test]
fn a_deeper_tree_retrains_and_rolls_out() {
    let repo = Repo::new("diff-depth");
    repo.edit("examples/fraud-detection/model.mlops.hcl", "max_depth = 6", "max_depth = 8");
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--detailed-exitcode"]);
    expect(&out, 2);
    let text = stdout(&out);
    assert!(text.contains("-/+ module.fraud.training_job.model"), "{text}");
    assert!(text.contains("because max_depth 6 → 8"), "{text}");
    assert!(text.contains("params.max_depth: 6 → 8  # forces retraining"), "{text}");
    assert!(text.contains("~ module.fraud.endpoint.api"), "{text}");
    assert!(text.contains("~ monitor.fraud_health"), "{text}");
    assert!(text.contains("version: (known after apply)"), "{text}");
    assert!(text.contains("Plan: 0 to create, 3 to update, 1 to replace, 0 to destroy."), "{text}");
    assert!(text.contains("the policy retrains with its new configuration"), "{text}");
    assert!(text.contains("against main (commit "), "{text}");
    assert!(!text.contains("lineage"), "{text}");
    // Without --detailed-exitcode a plan with changes still succeeds.
    expect(&repo.mlops(&["diff", "--base", "main", FRAUD]), 0);

    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--format", "markdown"]);
    expect(&out, 0);
    let md = stdout(&out);
    assert!(
        md.starts_with(
            "### mlops plan · `fraud-detection`\n\n`examples/fraud-detection` in the working tree against `main`"
        ),
        "{md}"
    );
    assert!(md.contains("| | action | resources |"), "{md}");
    assert!(md.contains("| `-/+` | replace | 1 |"), "{md}");
    assert!(md.contains("| `~` | update in place | 3 |"), "{md}");
    assert!(md.contains("**Plan: 0 to create, 3 to update, 1 to replace, 0 to destroy.**"), "{md}");
    assert!(!md.contains("Planned against"), "{md}");

    for args in [&["--json"][..], &["--format", "json"][..]] {
        let out = repo.mlops(&[&["diff", "--base", "main", FRAUD][..], args].concat());
        expect(&out, 0);
        let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(plan["format_version"], 1);
        assert_eq!(plan["system"], "fraud-detection");
        assert_eq!(plan["summary"]["replace"], 1);
        assert_eq!(plan["summary"]["update"], 3);
        let job =
            plan["changes"].as_array().unwrap().iter().find(|c| c["address"] == "module.fraud.training_job.model");
        assert_eq!(job.unwrap()["action"], "replace");
        // Never mistaken for a plan against a real state.
        assert_eq!(plan["state_lineage"], "assumed");
    }

    // Committed on a branch, compared with main the same way.
    repo.git(&["checkout", "--quiet", "-b", "deeper"]);
    repo.commit("deeper trees");
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--detailed-exitcode"]);
    expect(&out, 2);
    assert!(stdout(&out).contains("because max_depth 6 → 8"), "{}", stdout(&out));
    expect(&repo.mlops(&["diff", "--base", "HEAD", FRAUD, "--detailed-exitcode"]), 0);
}

#[test]
fn a_removed_resource_is_destroyed() {
    let repo = Repo::new("diff-removed");
    let model = "examples/fraud-detection/model.mlops.hcl";
    let text = std::fs::read_to_string(repo.dir(model)).unwrap();
    let (start, end) =
        (text.find("retrain_policy \"fraud_auto\"").unwrap(), text.find("output \"endpoint_url\"").unwrap());
    repo.write(model, &format!("{}{}", &text[..start], &text[end..]));
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--detailed-exitcode"]);
    expect(&out, 2);
    let text = stdout(&out);
    assert!(text.contains("- retrain_policy.fraud_auto"), "{text}");
    assert!(text.contains("is no longer retrained automatically"), "{text}");
    assert!(text.contains("Plan: 0 to create, 0 to update, 0 to replace, 1 to destroy."), "{text}");
}

#[test]
fn an_unknown_revision_is_named() {
    let repo = Repo::new("diff-unknown");
    let out = repo.mlops(&["diff", "--base", "origin/nope", FRAUD]);
    expect(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("unknown revision `origin/nope`"), "{err}");
    assert!(err.contains("fetch-depth: 0"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_new_directory_is_all_creates() {
    let repo = Repo::new("diff-new");
    for name in ["data.mlops.hcl", "main.mlops.hcl", "model.mlops.hcl"] {
        let text = std::fs::read_to_string(repo.dir(FRAUD).join(name)).unwrap();
        repo.write(&format!("examples/fraud-copy/{name}"), &text.replace("\"fraud-detection\"", "\"fraud-copy\""));
    }
    let out = repo.mlops(&["diff", "--base", "main", "examples/fraud-copy", "--detailed-exitcode"]);
    expect(&out, 2);
    let text = stdout(&out);
    assert!(text.contains("examples/fraud-copy has no configuration at main"), "{text}");
    assert!(text.contains("Plan: 8 to create, 0 to update, 0 to replace, 0 to destroy."), "{text}");
    assert!(text.contains("because not configured at main"), "{text}");
    assert!(!text.contains("not in state"), "{text}");
    let md = stdout(&repo.mlops(&["diff", "--base", "main", "examples/fraud-copy", "--format", "markdown"]));
    assert!(md.contains("`examples/fraud-copy` has no configuration at `main`"), "{md}");
    assert!(!md.contains("nothing has been applied"), "{md}");
    let json = stdout(&repo.mlops(&["diff", "--base", "main", "examples/fraud-copy", "--json"]));
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["summary"]["create"], 8);
    assert_eq!(plan["summary"]["noop"], 0);
}

#[test]
fn a_base_with_errors_is_named() {
    let repo = Repo::new("diff-bad-base");
    repo.edit("examples/fraud-detection/model.mlops.hcl", "max_depth = 6", "max_depth = 99");
    repo.commit("too deep");
    let bad = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    repo.edit("examples/fraud-detection/model.mlops.hcl", "max_depth = 99", "max_depth = 6");
    repo.commit("fixed");
    let out = repo.mlops(&["diff", "--base", "HEAD~1", FRAUD]);
    expect(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("The base configuration (examples/fraud-detection at HEAD~1, commit "), "{err}");
    assert!(err.contains(&bad[..12]), "{err}");
    assert!(err.contains("max_depth must be between 1 and 16"), "the base's diagnostics are shown: {err}");
    assert!(err.contains("error: the configuration at revision `HEAD~1`"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn working_tree_errors_are_reported_like_plan() {
    let repo = Repo::new("diff-bad-head");
    repo.edit("examples/fraud-detection/model.mlops.hcl", "max_depth = 6", "max_depth = 99");
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--detailed-exitcode"]);
    expect(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("max_depth must be between 1 and 16"), "{err}");
    assert!(err.contains("the configuration has errors: 2 errors"), "{err}");
    assert!(!err.contains("base configuration"), "{err}");
}

#[test]
fn a_variable_new_in_the_working_tree_is_left_out_of_the_base() {
    let repo = Repo::new("diff-new-var");
    repo.write("examples/fraud-detection/extra.mlops.hcl", "variable \"owner\" {\n  type    = string\n  default = \"ml\"\n}\n\noutput \"owner\" {\n  value = var.owner\n}\n");
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--var", "owner=fraud-team", "--detailed-exitcode"]);
    expect(&out, 0);
    assert!(stderr(&out).contains("does not declare `owner` at main"), "{}", stderr(&out));
    // A value for a variable neither side declares is the working tree's error.
    let out = repo.mlops(&["diff", "--base", "main", FRAUD, "--var", "nobody=1"]);
    expect(&out, 1);
    assert!(stderr(&out).contains("undeclared variable `nobody`"), "{}", stderr(&out));
}

#[test]
fn outside_a_git_repository_is_a_clear_error() {
    let tmp = TempDir::new("diff-nogit");
    for f in ["home", "tmp"] {
        std::fs::create_dir_all(tmp.path().join(f)).unwrap();
    }
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.mlops.hcl"), "mlops {\n  name = \"x\"\n}\n").unwrap();
    let mut cmd = mlops();
    cmd.args(["diff", "--base", "main"]).arg(&dir);
    isolate(&mut cmd, tmp.path());
    let out = cmd.output().unwrap();
    expect(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("is not in a git repository"), "{err}");
    assert!(err.contains("mlops plan"), "points at the state-based command: {err}");

    let out = mlops().args(["diff", "--base", "main", "no/such/dir"]).output().unwrap();
    expect(&out, 1);
    assert!(stderr(&out).contains("no/such/dir is not a directory"), "{}", stderr(&out));
}

#[test]
fn without_git_the_error_says_so() {
    let repo = Repo::new("diff-no-git-binary");
    let mut cmd = mlops();
    cmd.current_dir(repo.path()).args(["diff", "--base", "main", FRAUD]).env("PATH", repo.tmp.path().join("home"));
    let out = cmd.output().unwrap();
    expect(&out, 1);
    assert!(stderr(&out).contains("git is not installed"), "{}", stderr(&out));
}

/// The `mlops diff` command line of the shipped workflow, as arguments, with the workflow's
/// environment (`$MLOPS_DIR`, `$BASE_REF` ← `${{ github.base_ref }}`) substituted: up to the
/// first redirection.
fn workflow_command(yaml: &str, base_ref: &str) -> Vec<String> {
    let joined = yaml.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            words.next().is_some_and(|w| w.ends_with("mlops")) && words.next() == Some("diff")
        })
        .collect();
    assert_eq!(lines.len(), 1, "the workflow runs `mlops diff` once: {lines:?}");
    let line = lines[0].trim();
    let env = |name: &str| -> String {
        let key = format!("{name}:");
        let value = yaml
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("the workflow sets no {name}"))
            .trim()
            .trim_matches('"')
            .to_string();
        value.replace("${{ github.base_ref }}", base_ref)
    };
    let words = shell_words(line, &env);
    let at = words.iter().position(|w| w == "diff").expect("mlops diff");
    assert!(words[at - 1].ends_with("mlops"), "{words:?}");
    words[at..].to_vec()
}

/// Splits a shell command line into words (quotes, `$NAME` and `${NAME}`), stopping at the
/// first redirection, pipe or command separator.
fn shell_words(line: &str, env: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '\\') => {
                word.get_or_insert_with(String::new).extend(chars.next());
            }
            (Some('"') | None, '$') => {
                let braced = chars.peek() == Some(&'{');
                if braced {
                    chars.next();
                }
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if braced {
                    assert_eq!(chars.next(), Some('}'), "only ${{NAME}} is understood in {line}");
                }
                word.get_or_insert_with(String::new).push_str(&env(&name));
            }
            (None, '>' | '<' | '|' | ';' | '&') => {
                // `2>`: the digits were a file descriptor, not a word.
                if word.as_deref().is_some_and(|w| w.chars().all(|d| d.is_ascii_digit())) {
                    word = None;
                }
                break;
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unterminated quote in {line}");
    words.extend(word);
    words
}

#[test]
fn the_shipped_workflow_runs_a_command_the_cli_accepts() {
    let yaml = std::fs::read_to_string(common::root().join("examples/ci/mlops-plan.yml")).unwrap();
    for needed in [
        "pull_request",
        "fetch-depth: 0",
        "pull-requests: write",
        "contents: read",
        "GITHUB_STEP_SUMMARY",
        "scripts/setup.sh",
        "cargo build --release",
        "<!-- mlops-plan",
    ] {
        assert!(yaml.contains(needed), "the workflow lacks {needed:?}");
    }
    let args = workflow_command(&yaml, "main");
    assert!(args.windows(2).any(|w| w == ["--base", "origin/main"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--format", "markdown"]), "{args:?}");

    // A clone as actions/checkout leaves it: the base branch as origin/main, the pull request
    // checked out on top.
    let repo = Repo::new("diff-workflow");
    repo.git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
    repo.git(&["checkout", "--quiet", "-b", "pr"]);
    repo.edit("examples/fraud-detection/model.mlops.hcl", "max_depth = 6", "max_depth = 8");
    repo.commit("deeper trees");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = repo.mlops(&args);
    expect(&out, 0);
    let md = stdout(&out);
    assert!(md.starts_with("### mlops plan · `fraud-detection`"), "{md}");
    assert!(md.contains("max\\_depth 6 → 8") || md.contains("max_depth 6 → 8"), "{md}");
    assert!(md.contains("**Plan: 0 to create, 3 to update, 1 to replace, 0 to destroy.**"), "{md}");
}

#[test]
fn the_shell_words_of_the_workflow_are_read_right() {
    let env = |n: &str| if n == "D" { "a b".to_string() } else { format!("<{n}>") };
    assert_eq!(
        shell_words(r#"x diff --base "origin/$B" --format markdown "$D" > "$T/p.md" 2> e"#, &env),
        ["x", "diff", "--base", "origin/<B>", "--format", "markdown", "a b"]
    );
    assert_eq!(shell_words("x ${B}/c 2>/dev/null", &env), ["x", "<B>/c"]);
    assert_eq!(shell_words("x 'it''s' y|z", &env), ["x", "its", "y"]);
}
