//! A real Prometheus server for tests. In: Debian's `prometheus` binary (`scripts/setup.sh`
//! installs it; `MLOPS_PROMETHEUS_BIN` may name another) and the addresses to scrape. Out: a
//! running Prometheus on 127.0.0.1 with its own configuration file and storage directory,
//! scraping every second, and [`TestPrometheus::query`] for its HTTP API; killed when dropped.
//!
//! Unlike PostgreSQL, Prometheus runs as root without complaint, so it is started directly (no
//! `runuser`, whose child would outlive a kill). A watchdog process kills it if the test process
//! dies without dropping it.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus.
pub struct TestPrometheus {
    child: Child,
    watchdog: Option<Child>,
    port: u16,
    // Removed after the process is gone (fields drop after `drop`).
    _dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Starts Prometheus scraping `targets` every second, and waits until it is ready.
    pub fn start(targets: &[SocketAddr]) -> Result<TestPrometheus, String> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new().prefix("mlops-prom-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mlops\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| format!("writing {}: {e}", config_path.display()))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
        // A free port can be taken between asking and listening; try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let log_path = dir.path().join("prometheus.log");
            let log = std::fs::File::create(&log_path).map_err(|e| format!("creating the log: {e}"))?;
            let args = [
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn".to_string(),
            ];
            let mut cmd = Command::new(&bin);
            cmd.args(&args);
            cmd.current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log));
            let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", bin.display()))?;
            match wait_ready(&mut child, port, Duration::from_secs(60)) {
                Ok(()) => {
                    let watchdog = spawn_watchdog(child.id()).ok();
                    return Ok(TestPrometheus { child, watchdog, port, _dir: dir });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last_error = format!("{e}\nprometheus log:\n{tail}");
                }
            }
        }
        Err(last_error)
    }

    /// The port of its HTTP API on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs an instant query; returns the `data.result` array.
    pub fn query(&self, promql: &str) -> Result<serde_json::Value, String> {
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={}", percent_encode(promql)))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("query answer is not JSON ({e}): {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("query {promql:?} failed ({status}): {body}"));
        }
        Ok(v["data"]["result"].clone())
    }

    /// The health of its scrape targets, from `/api/v1/targets` (for failure messages).
    pub fn targets(&self) -> String {
        http_get(self.port, "/api/v1/targets").map(|(_, b)| b).unwrap_or_else(|e| e)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("prometheus exited with {status}"));
        }
        if let Ok((200, _)) = http_get(port, "/-/ready") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("prometheus was not ready within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A process that kills Prometheus once this process has gone (a test killed by a timeout never
/// drops its server).
fn spawn_watchdog(pid: u32) -> Result<Child, String> {
    let script = format!("while [ -d /proc/{me} ]; do sleep 1; done; kill {pid} 2>/dev/null", me = std::process::id());
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the watchdog: {e}"))
}

/// `MLOPS_PROMETHEUS_BIN`, else `/usr/bin/prometheus` (Debian's package).
fn find_bin() -> Result<PathBuf, String> {
    let bin =
        std::env::var_os("MLOPS_PROMETHEUS_BIN").map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "Prometheus is not installed: no {}. Run scripts/setup.sh (it installs Debian's `prometheus` \
             package, as CI does), or set MLOPS_PROMETHEUS_BIN to a prometheus binary.",
            bin.display()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A plain HTTP/1.0 GET to 127.0.0.1 (the API is tiny; no client library needed).
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connecting to prometheus: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("reading from prometheus: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("malformed answer: {text}"))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {head}"))?;
    Ok((status, body.to_string()))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
