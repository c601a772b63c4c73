//! Mutation fuzzing of the whole compiler: N mutants of the valid corpus in, a summary out.
//!
//! ```text
//! cargo run --release -p mlops-compiler --example fuzz_compile -- 100000 [--seed S]
//! cargo run --release -p mlops-compiler --example fuzz_compile -- --check DIR
//! ```
//!
//! Each case takes a configuration of the corpus (`tests/support/mutate.rs`, shared with the
//! proptest `tests/no_panic.rs`), applies 1–5 random mutations, writes it to a temporary tree and
//! checks every promise of the compiler (no panic, spans inside their files, known codes, a
//! spec that round-trips, determinism). Failures are saved under `target/fuzz-failures/` with a
//! line-minimised copy; the exit status is non-zero if there was any. `--check DIR` runs the
//! same check on one directory (to replay a saved failure).

#[path = "../tests/support/mutate.rs"]
mod mutate;

use mutate::{check, corpus, Config, Failure, Mutation, Rng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

thread_local! {
    // The last panic's message with its location, recorded by a quiet hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Args {
    cases: u64,
    seed: u64,
    check: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut out = Args { cases: 10_000, seed: 0x006d_6c6f_7073, check: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => out.seed = it.next().and_then(|v| v.parse().ok()).ok_or("--seed needs a number")?,
            "--check" => out.check = Some(it.next().ok_or("--check needs a directory")?.into()),
            "-h" | "--help" => return Err("usage: fuzz_compile [CASES] [--seed S] | --check DIR".into()),
            n => out.cases = n.parse().map_err(|_| format!("not a number of cases: {n}"))?,
        }
    }
    Ok(out)
}

/// A failure's kind and message with its location: equal signatures are the same bug.
fn signature(f: &Failure) -> String {
    match f {
        Failure::Panic(m) => {
            let located = LAST_PANIC.with(|l| l.borrow_mut().take());
            format!("panic: {}", located.unwrap_or_else(|| m.clone()))
        }
        Failure::Invariant(m) => format!("invariant: {m}"),
    }
}

/// The signature with every number replaced by `N`, so that one bug at different offsets (or
/// a smaller input of it) counts as the same failure. A panic's location line is kept.
fn normalise(sig: &str) -> String {
    let (keep, sig) = match sig.split_once('\n') {
        Some((first, rest)) if first.starts_with("panic: panicked at ") => (first, rest),
        _ => ("", sig),
    };
    let mut out = String::from(keep);
    let mut in_number = false;
    for c in sig.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn run_check(config: &Config, dir: &Path) -> Result<mutate::Outcome, String> {
    let root = config.write(dir).map_err(|e| format!("io: cannot write the mutant: {e}"))?;
    check(&root).map_err(|f| signature(&f))
}

/// Greedy line-chunk deletion over every file while the failure keeps its signature.
fn minimise(config: &Config, sig: &str, scratch: &Path) -> Config {
    let mut best = config.clone();
    for file in 0..best.files.len() {
        let mut chunk = best.files[file].1.lines().count().max(1);
        while chunk >= 1 {
            let mut start = 0;
            loop {
                let lines: Vec<&str> = best.files[file].1.split_inclusive('\n').collect();
                if start >= lines.len() {
                    break;
                }
                let end = (start + chunk).min(lines.len());
                let mut candidate = best.clone();
                candidate.files[file].1 = [&lines[..start], &lines[end..]].concat().concat();
                let dir = scratch.join(format!("m{file}"));
                let _ = std::fs::remove_dir_all(&dir);
                match run_check(&candidate, &dir) {
                    Err(s) if normalise(&s) == normalise(sig) => best = candidate,
                    _ => start += chunk,
                }
            }
            chunk /= 2;
        }
    }
    best
}

fn save(config: &Config, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = config.write(dir) {
        eprintln!("cannot save {}: {e}", dir.display());
    }
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|l| *l.borrow_mut() = Some(info.to_string()));
    }));
    if let Some(dir) = args.check {
        return match check(&dir) {
            Ok(o) => {
                println!("ok: compiled {}; codes {:?}", if o.ok { "without errors" } else { "with errors" }, o.codes);
                ExitCode::SUCCESS
            }
            Err(f) => {
                println!("{}", signature(&f));
                ExitCode::FAILURE
            }
        };
    }

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let out_dir = target.join("fuzz-failures");
    let bases = corpus();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut rng = Rng(args.seed);
    let mut codes: BTreeSet<&'static str> = BTreeSet::new();
    // Normalised signature -> (count, first case).
    let mut failures: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut panics, mut violations, mut valid) = (0u64, 0u64, 0u64);
    let mut slowest = (Duration::ZERO, 0u64);
    let mut slowest_input: Option<Config> = None;
    println!(
        "fuzz_compile: {} cases, seed {}, corpus: {}",
        args.cases,
        args.seed,
        bases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let start = Instant::now();
    for case in 0..args.cases {
        let which = rng.next_u32() as usize % bases.len();
        let base = &bases[which];
        let n = 1 + rng.next_u32() % 5;
        let mutations: Vec<Mutation> = (0..n).map(|_| rng.mutation()).collect();
        let mut config = base.clone();
        for m in &mutations {
            m.apply(&mut config);
        }
        // One directory per corpus entry, rewritten in full each case: no stale files.
        let dir = tmp.path().join(format!("c{which}"));
        let t = Instant::now();
        let result = run_check(&config, &dir);
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, case);
            slowest_input = Some(config.clone());
        }
        match result {
            Ok(o) => {
                valid += u64::from(o.ok);
                codes.extend(o.codes);
            }
            Err(sig) => {
                if sig.starts_with("panic") {
                    panics += 1;
                } else {
                    violations += 1;
                }
                let entry = failures.entry(normalise(&sig)).or_insert((0, case));
                entry.0 += 1;
                if entry.0 == 1 {
                    let case_dir = out_dir.join(format!("case-{case}"));
                    save(&config, &case_dir.join("input"));
                    let small = minimise(&config, &sig, &tmp.path().join("min"));
                    save(&small, &case_dir.join("minimised"));
                    let report = format!(
                        "{sig}\n\nconfiguration `{}` after {mutations:#?}\n\nminimised:\n{}",
                        base.name,
                        small.dump()
                    );
                    let _ = std::fs::write(case_dir.join("report.txt"), &report);
                    eprintln!("case {case}: {sig}\n  saved under {}", case_dir.display());
                }
            }
        }
        if (case + 1) % 10_000 == 0 {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "  {:>8} cases  {:>6.1}s  {:>7.0} cases/s  panics {panics}  violations {violations}  codes {}",
                case + 1,
                secs,
                (case + 1) as f64 / secs,
                codes.len()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("summary");
    println!("  cases                 {}", args.cases);
    println!("  still valid           {valid}");
    println!("  panics                {panics}");
    println!("  invariant violations  {violations}");
    println!("  distinct failures     {}", failures.len());
    for (sig, (count, first)) in &failures {
        println!("    {count:>6} × (first: case {first}) {}", sig.lines().next().unwrap_or(""));
    }
    println!("  distinct codes seen   {} of {}", codes.len(), mlops_compiler::codes::ALL.len());
    println!("    {}", codes.iter().copied().collect::<Vec<_>>().join(" "));
    println!("  slowest case          {:.1} ms (case {})", slowest.0.as_secs_f64() * 1e3, slowest.1);
    if let Some(config) = &slowest_input {
        // Not a failure, but worth a look when it is far above the rest.
        let dir = target.join("fuzz-slowest");
        save(config, &dir);
        println!("                        input saved under {}", dir.display());
    }
    println!("  time                  {secs:.1} s, {:.0} cases/s (each case compiled twice)", args.cases as f64 / secs);
    if panics + violations > 0 {
        println!("failures saved under {}", out_dir.display());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
