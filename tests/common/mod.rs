//! Helpers for tests that drive the real `mlops` binary as a user would.
#![allow(dead_code)]

pub mod s3;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `mlops` with colour off and no inherited MLOPS_VAR_* variables, run from the repository root.
#[track_caller]
pub fn mlops() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlops"));
    cmd.current_dir(root()).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("MLOPS_VAR_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A fresh temporary directory under target/, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    #[track_caller]
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = root().join("target/test-tmp").join(format!("{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (creating parent directories).
    #[track_caller]
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A serving agent apply started for the fraud example must not outlive the test.
        stop_agent(&self.0.join("examples/fraud-detection/.mlops/data"));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the OS does not hand it out again soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Is process `pid` alive (and not a zombie)?
pub fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

/// The pid in `<data_dir>/agent/agent.json`, if any.
pub fn agent_pid(data_dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(data_dir.join("agent/agent.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_u64()
}

/// Stops the serving agent of `data_dir` if one runs: SIGTERM, then SIGKILL after 5 s.
pub fn stop_agent(data_dir: &Path) {
    let Some(pid) = agent_pid(data_dir) else { return };
    let kill = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    };
    kill("-TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if pid_alive(pid) {
        kill("-KILL");
    }
}

/// Standard output of a finished command as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error of a finished command as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary tree holding the fraud example (configuration and data) and the module it uses,
/// laid out as in the repository; the configuration directory is `examples/fraud-detection`.
/// Its serving agent listens on a free port (see [`fraud_address`]) and is stopped when the
/// tree is dropped.
pub fn fraud_tree(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    for from in ["examples/fraud-detection", "examples/fraud-detection/data", "modules/tabular-classifier"] {
        for entry in std::fs::read_dir(root().join(from)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let target = dir.path().join(from).join(name);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let main = dir.path().join("examples/fraud-detection/main.mlops.hcl");
    let text = std::fs::read_to_string(&main).unwrap();
    assert!(text.contains("address = \"127.0.0.1:8080\""));
    let text = text.replacen("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port()), 1);
    std::fs::write(&main, text).unwrap();
    dir
}

/// The serving agent's address of a [`fraud_tree`] (`127.0.0.1:PORT`).
pub fn fraud_address(tree: &TempDir) -> String {
    let text = std::fs::read_to_string(tree.path().join("examples/fraud-detection/main.mlops.hcl")).unwrap();
    let at = text.find("address = \"").unwrap() + "address = \"".len();
    text[at..].split('"').next().unwrap().to_string()
}

/// The configuration directory inside a [`fraud_tree`].
pub fn fraud_dir(tree: &TempDir) -> PathBuf {
    tree.path().join("examples/fraud-detection")
}

/// `mlops` as a plain [`std::process::Command`], configured as [`mlops`] is, for running it in
/// the background with [`Running`].
pub fn mlops_process() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"));
    cmd.current_dir(root()).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("MLOPS_VAR_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// What a background process has written to one of its pipes so far.
#[derive(Default)]
struct Collected {
    text: String,
    closed: bool,
}

type Shared = std::sync::Arc<(std::sync::Mutex<Collected>, std::sync::Condvar)>;

fn collect(mut from: impl std::io::Read + Send + 'static) -> (Shared, std::thread::JoinHandle<()>) {
    let shared: Shared = Default::default();
    let to = shared.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let (lock, cv) = &*to;
            let mut c = lock.lock().unwrap();
            if n == 0 {
                c.closed = true;
                cv.notify_all();
                return;
            }
            c.text.push_str(&String::from_utf8_lossy(&buf[..n]));
            cv.notify_all();
        }
    });
    (shared, reader)
}

/// A process running in the background with its standard input, output and error piped; its
/// output is collected as it arrives, so a test can act the moment a line (or a prompt without a
/// newline) appears. Killed if dropped while still running.
pub struct Running {
    child: Option<std::process::Child>,
    out: Shared,
    err: Shared,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// A background process that has ended.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    /// Starts `cmd` with all three standard streams piped.
    #[track_caller]
    pub fn spawn(cmd: &mut std::process::Command) -> Running {
        use std::process::Stdio;
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn mlops");
        let (out, r1) = collect(child.stdout.take().unwrap());
        let (err, r2) = collect(child.stderr.take().unwrap());
        Running { child: Some(child), out, err, readers: vec![r1, r2] }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        self.out.0.lock().unwrap().text.clone()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        self.err.0.lock().unwrap().text.clone()
    }

    /// Waits until `ready` holds for the standard output so far, checking again as each piece
    /// arrives. False when `timeout` passes or the output ends first.
    pub fn wait_for(&self, timeout: std::time::Duration, mut ready: impl FnMut(&str) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let (lock, cv) = &*self.out;
        let mut c = lock.lock().unwrap();
        loop {
            if ready(&c.text) {
                return true;
            }
            let now = std::time::Instant::now();
            if c.closed || now >= deadline {
                return false;
            }
            c = cv.wait_timeout(c, deadline - now).unwrap().0;
        }
    }

    /// Whether the standard output has ended (the process exited, or is exiting).
    pub fn output_ended(&self) -> bool {
        self.out.0.lock().unwrap().closed
    }

    /// Writes `text` to the process's standard input.
    #[track_caller]
    pub fn send(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.child.as_mut().and_then(|c| c.stdin.as_mut()).expect("stdin is piped");
        stdin.write_all(text.as_bytes()).and_then(|()| stdin.flush()).expect("write to mlops");
    }

    /// Sends SIGKILL (`Child::kill`); harmless when the process has already exited.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
    }

    /// Waits (at most `timeout`, then kills it) for the process to end and its pipes to close.
    #[track_caller]
    pub fn finish(mut self, timeout: std::time::Duration) -> Finished {
        let mut child = self.child.take().expect("not finished yet");
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for mlops") {
                break s;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mlops did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        drop(child.stdin.take());
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished { status, stdout: self.stdout(), stderr: self.stderr() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `user@host` as the state backends record a lock holder (`USER`, else `LOGNAME`, and the
/// kernel's host name), for checking "locked" messages; `None` when it cannot be told here.
pub fn lock_holder_name() -> Option<String> {
    let user = ["USER", "LOGNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_string();
    Some(format!("{user}@{host}"))
}

/// The id `mlops force-unlock` needs, taken from a "locked" error message.
pub fn lock_id_in(message: &str) -> Option<String> {
    let rest = &message[message.find("mlops force-unlock ")? + "mlops force-unlock ".len()..];
    let id: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (!id.is_empty()).then_some(id)
}

/// The rest of an HTTP/1.1 answer whose status line (`HTTP/1.1 200 OK`) was read: its headers
/// and `Content-Length` body, as (status, body).
pub fn read_answer(
    status_line: &str,
    reader: &mut std::io::BufReader<std::net::TcpStream>,
) -> std::io::Result<(u16, String)> {
    use std::io::{BufRead, Read};
    let code: u16 = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {status_line:?}"))
    })?;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}
