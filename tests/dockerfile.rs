//! The runtime image's Dockerfile, checked without Docker: it must agree with the scripts it
//! calls (what `scripts/install-xgboost.sh` installs and where, the rpath `build.rs` bakes from
//! `XGBOOST_LIB_DIR`), copy what exists and what `.dockerignore` lets through, and run the
//! `mlops` binary — whose pod commands and flags are asked of the real binary — as a non-root
//! user in `/var/lib/mlops`. The final stage's library layout is rebuilt in a temporary
//! directory and resolved by the dynamic loader.

mod common;

use common::{root, TempDir};
use std::path::Path;
use std::process::Command;

/// One instruction: keyword (upper case) and its arguments, continuation lines joined and
/// comment lines inside them dropped (as Docker's parser does).
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.trim().split_once(char::is_whitespace).unwrap_or((current.trim(), ""));
                out.push(Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_string() });
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends inside a continued line");
    out
}

/// The stages: (name, instructions), split at each FROM (the FROM itself first).
fn stages(all: &[Instruction]) -> Vec<Vec<Instruction>> {
    let mut out: Vec<Vec<Instruction>> = Vec::new();
    for i in all {
        if i.keyword == "FROM" {
            out.push(Vec::new());
        }
        if let Some(stage) = out.last_mut() {
            stage.push(i.clone());
        }
    }
    out
}

fn dockerfile() -> Vec<Instruction> {
    instructions(&std::fs::read_to_string(root().join("Dockerfile")).expect("a Dockerfile at the root"))
}

/// Whether `.dockerignore` keeps `path` (relative, `/`-separated) out of the build context. The
/// file's patterns are plain paths (excluding everything under them), `**/NAME` and `**/*.EXT`.
fn ignored(patterns: &[String], path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    patterns.iter().any(|p| match p.strip_prefix("**/") {
        Some(glob) => match glob.strip_prefix('*') {
            Some(suffix) => parts.last().is_some_and(|name| name.ends_with(suffix)),
            None => parts.contains(&glob),
        },
        None => {
            let pattern: Vec<&str> = p.trim_end_matches('/').split('/').collect();
            parts.len() >= pattern.len() && parts[..pattern.len()] == pattern[..]
        }
    })
}

fn dockerignore() -> Vec<String> {
    let text = std::fs::read_to_string(root().join(".dockerignore")).expect("a .dockerignore at the root");
    let patterns: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
    for p in &patterns {
        assert!(!p.starts_with('!') && !p[p.starts_with("**/") as usize * 3..].contains("**"), "pattern {p:?}");
    }
    patterns
}

/// `KEY=VALUE` pairs of ENV and ARG instructions (ARG defaults), in order.
fn assignments(stage: &[Instruction], keyword: &str) -> Vec<(String, String)> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .flat_map(|i| {
            i.args
                .split_whitespace()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string())))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn value(pairs: &[(String, String)], key: &str) -> String {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("{key} not set"))
}

/// The assignment `NAME=VALUE` (quotes dropped) in a shell script.
fn script_variable(script: &str, name: &str) -> String {
    let line = script
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} is not assigned in the script"));
    line.trim_matches('"').to_string()
}

#[test]
fn the_builder_stage_agrees_with_the_scripts_it_runs() {
    let all = dockerfile();
    let stages = stages(&all);
    assert_eq!(stages.len(), 2, "a builder and a final stage");
    let builder = &stages[0];
    assert!(builder[0].args.ends_with("AS builder"), "{:?}", builder[0]);
    let patterns = dockerignore();

    // Every file copied from the context exists and is let through by .dockerignore.
    for copy in builder.iter().filter(|i| i.keyword == "COPY" && !i.args.starts_with("--from")) {
        let words: Vec<&str> = copy.args.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            if *source == "." {
                continue;
            }
            assert!(root().join(source).exists(), "COPY {source}: no such file in the repository");
            assert!(!ignored(&patterns, source), "COPY {source}: excluded by .dockerignore");
        }
    }

    // The scripts it runs are copied first, executable, and provide what it then uses.
    let run = builder.iter().find(|i| i.keyword == "RUN" && i.args.contains("install-xgboost.sh")).unwrap();
    let script_path = root().join("scripts/install-xgboost.sh");
    let script = std::fs::read_to_string(&script_path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert!(std::fs::metadata(&script_path).unwrap().permissions().mode() & 0o111 != 0, "not executable");
    assert!(run.args.starts_with("MLOPS_XGBOOST_NATIVE_ONLY=1 scripts/install-xgboost.sh"), "{}", run.args);
    assert!(script.contains("\"${MLOPS_XGBOOST_NATIVE_ONLY:-}\" = 1"), "the script has no native-only switch");
    assert!(script.contains(". scripts/lib/pip.sh"), "the script's helper moved: copy it");
    let copied: Vec<&str> = builder.iter().filter(|i| i.keyword == "COPY").map(|i| i.args.as_str()).collect();
    assert!(copied.iter().position(|c| c.starts_with("scripts/lib/pip.sh")) < copied.iter().position(|c| *c == ". ."));
    // Where the script puts the library, and the link its RPATH ($ORIGIN/../../xgboost_cpu.libs) needs.
    let deps = script_variable(&script, "deps");
    let lib = script_variable(&script, "lib").replace("$deps", &deps);
    assert_eq!(lib, ".deps/xgboost/lib");
    assert!(script.contains("ln -sfn xgboost/lib \"$deps/xgboost_cpu.libs\""), "the script's link changed");
    assert!(run.args.contains("cp -a .deps/xgboost /opt/mlops/xgboost"), "{}", run.args);
    assert!(run.args.contains("ln -s xgboost/lib /opt/mlops/xgboost_cpu.libs"), "{}", run.args);

    // The build links against the copy, and build.rs bakes that path as the rpath.
    let env = assignments(builder, "ENV");
    assert_eq!(value(&env, "XGBOOST_LIB_DIR"), "/opt/mlops/xgboost/lib");
    for build_rs in ["build.rs", "runtime/build.rs"] {
        let text = std::fs::read_to_string(root().join(build_rs)).unwrap();
        assert!(text.contains("std::env::var_os(\"XGBOOST_LIB_DIR\")") && text.contains("-rpath"), "{build_rs}");
    }
    let config = std::fs::read_to_string(root().join(".cargo/config.toml")).unwrap();
    assert!(!config.contains("force = true"), "cargo's [env] would override the image's XGBOOST_LIB_DIR");
    let build = builder.iter().find(|i| i.keyword == "RUN" && i.args.contains("cargo build")).unwrap();
    assert!(build.args.contains("--release --locked --bin mlops"), "{}", build.args);
    assert!(build.args.contains("install -D -m 0755 target/release/mlops /out/mlops"), "{}", build.args);

    // The Rust it builds with is at least the workspace's rust-version.
    let args = assignments(&all[..1], "ARG");
    let rust = value(&args, "RUST_VERSION");
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let wanted = manifest.lines().find_map(|l| l.strip_prefix("rust-version = ")).unwrap().trim_matches('"');
    let parse = |v: &str| v.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(parse(&rust) >= parse(wanted), "the image builds with Rust {rust}, the workspace needs {wanted}");
    assert!(builder[0].args.contains("rust:${RUST_VERSION}-${DEBIAN_RELEASE}"));
}

#[test]
fn the_final_stage_runs_mlops_as_a_pod_expects() {
    let all = dockerfile();
    let final_stage = &stages(&all)[1];
    assert!(final_stage[0].args.contains("debian:${DEBIAN_RELEASE}-slim"), "{:?}", final_stage[0]);
    let from_builder: Vec<&str> = final_stage
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.args.strip_prefix("--from=builder ").expect("the final stage copies from the builder only"))
        .collect();
    assert_eq!(from_builder, ["/opt/mlops /opt/mlops", "/out/mlops /usr/local/bin/mlops"]);
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[[bin]]\nname = \"mlops\""), "the binary is named mlops");

    let one = |keyword: &str| -> String {
        let found: Vec<&Instruction> = final_stage.iter().filter(|i| i.keyword == keyword).collect();
        assert_eq!(found.len(), 1, "{keyword}: {found:?}");
        found[0].args.clone()
    };
    assert_eq!(one("ENTRYPOINT"), "[\"mlops\"]");
    assert_eq!(one("WORKDIR"), "/var/lib/mlops");
    assert_eq!(one("EXPOSE"), "8080");
    let user = one("USER");
    let (uid, gid) = user.split_once(':').unwrap();
    assert!(uid.parse::<u32>().unwrap() > 0 && gid.parse::<u32>().unwrap() > 0, "numeric, non-root: {user}");
    let setup = final_stage.iter().find(|i| i.keyword == "RUN").unwrap();
    assert!(setup.args.contains(&format!("useradd --system --uid {uid}")), "{}", setup.args);
    assert!(setup.args.contains(&format!("chown -R {uid}:{gid} /var/lib/mlops")), "{}", setup.args);
    let env = assignments(final_stage, "ENV");
    assert_eq!(value(&env, "MLOPS_ROOT"), "/var/lib/mlops");
    assert_eq!(value(&env, "MLOPS_DATA_DIR"), "/var/lib/mlops/data");
    assert_eq!(value(&env, "MLOPS_SPEC"), "/etc/mlops/spec.json");
    let labels = one("LABEL");
    for key in ["org.opencontainers.image.title", "org.opencontainers.image.version"] {
        assert!(labels.contains(key), "{labels}");
    }

    // The commands the manifests run exist, with the flags they pass.
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mlops")).args(args).output().unwrap();
        assert!(out.status.success(), "mlops {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(help(&["--version"]).starts_with("mlops "));
    let agent = help(&["agent", "--help"]);
    for flag in ["--spec <FILE>", "--endpoint <ADDRESS>", "--address <ADDRESS>", "--data-dir", "--root <DIR>"] {
        assert!(agent.contains(flag), "mlops agent has no {flag}:\n{agent}");
    }
    let train = help(&["train", "--help"]);
    for flag in ["--spec <FILE>", "--promote", "--data-dir <DIR>", "--root <DIR>"] {
        assert!(train.contains(flag), "mlops train has no {flag}:\n{train}");
    }
    let controller = help(&["controller", "--help"]);
    for flag in ["--spec <FILE>", "--address <ADDRESS>"] {
        assert!(controller.contains(flag), "mlops controller has no {flag}:\n{controller}");
    }
    assert!(help(&["materialize", "--help"]).contains("--spec <FILE>"));
}

#[test]
fn the_build_context_leaves_out_the_hosts_build_and_keeps_what_the_build_reads() {
    let patterns = dockerignore();
    for out in ["target/release/mlops", ".deps/xgboost/lib/libxgboost.so", ".git/HEAD", "examples/x/.mlops/state"] {
        assert!(ignored(&patterns, out), "{out} would be sent to the builder");
    }
    // The workspace's members, build scripts and every file compiled in with include_str!.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut needed: Vec<String> =
        ["Cargo.toml", "Cargo.lock", "build.rs", "runtime/build.rs", ".cargo/config.toml", "cli/main.rs"]
            .map(String::from)
            .to_vec();
    let members = &manifest[manifest.find("members").unwrap()..];
    let members = &members[..members.find(']').unwrap()];
    needed.extend(members.split('"').skip(1).step_by(2).map(|m| format!("{m}/Cargo.toml")));
    needed.extend(manifest.lines().filter_map(|l| l.strip_prefix("path = ")).map(|p| p.trim_matches('"').to_string()));
    for dir in ["compiler/src", "runtime/src", "provider/src", "cli"] {
        for file in walk(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (at, _) in text.match_indices("include_str!(\"") {
                let rel = text[at + 14..].split('"').next().unwrap();
                let target = file.parent().unwrap().join(rel);
                let target = target.canonicalize().unwrap_or_else(|_| panic!("{} includes {rel}", file.display()));
                needed.push(target.strip_prefix(root()).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(needed.len() > 10, "{needed:?}");
    for path in &needed {
        assert!(root().join(path).exists(), "{path} is missing");
        assert!(!ignored(&patterns, path), "{path} is left out of the build context");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The loader's answer for each library `file` needs: name → resolved path (or "not found").
fn ldd(file: &Path) -> Vec<(String, String)> {
    let out = Command::new("ldd").arg(file).output().expect("ldd (glibc's libc-bin)");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(" => ").unwrap_or((l.split_whitespace().next()?, ""));
            Some((name.to_string(), rest.split(" (").next().unwrap_or("").trim().to_string()))
        })
        .collect()
}

#[test]
fn the_binary_needs_only_what_the_final_stage_has_and_the_library_layout_resolves() {
    // Beyond glibc: libxgboost and its libgomp (copied from the builder), libstdc++ and libgcc_s
    // (in debian:*-slim, which apt itself needs). A new native dependency must be added to the
    // final stage, and here.
    let deps = ldd(Path::new(env!("CARGO_BIN_EXE_mlops")));
    let allowed = |name: &str| {
        name.starts_with("libgomp-")
            || [
                "linux-vdso.so.1",
                "libxgboost.so",
                "libstdc++.so.6",
                "libgcc_s.so.1",
                "libm.so.6",
                "libc.so.6",
                "libpthread.so.0",
                "librt.so.1",
                "libdl.so.2",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .contains(&name)
    };
    for (name, _) in &deps {
        assert!(allowed(name), "the binary needs {name}, which the final stage does not have: {deps:?}");
    }
    // The final stage's layout: /opt/mlops/xgboost/lib and the xgboost_cpu.libs link beside it.
    let lib = deps.iter().find(|(n, _)| n == "libxgboost.so").map(|(_, p)| Path::new(p).to_path_buf()).unwrap();
    let gomp = ldd(&lib).into_iter().find(|(n, _)| n.starts_with("libgomp-")).unwrap();
    let image = TempDir::new("image-layout");
    let opt = image.path().join("opt/mlops");
    std::fs::create_dir_all(opt.join("xgboost/lib")).unwrap();
    std::fs::copy(&lib, opt.join("xgboost/lib/libxgboost.so")).unwrap();
    std::fs::copy(&gomp.1, opt.join("xgboost/lib").join(&gomp.0)).unwrap();
    std::os::unix::fs::symlink("xgboost/lib", opt.join("xgboost_cpu.libs")).unwrap();
    let resolved = ldd(&opt.join("xgboost/lib/libxgboost.so"));
    let (_, at) = resolved.iter().find(|(n, _)| n == &gomp.0).unwrap();
    assert!(at.starts_with(opt.join("xgboost/lib/../../xgboost_cpu.libs").to_str().unwrap()), "{resolved:?}");
    assert!(resolved.iter().all(|(_, p)| p != "not found"), "{resolved:?}");
}
