//! The control API between `mlops apply` / `status` / `rollback` and the serving agent
//! ([`super::agent`]). In: the local target's data directory. Out: the agent found (or started),
//! and blocking calls to its control routes.
//!
//! The agent writes `<data_dir>/agent/agent.json` (mode 0600: pid, address, control token) once
//! it listens; clients read it, check the process is alive and `GET /healthz` answers, then call
//! `/_mlops/v1/…` with `Authorization: Bearer <token>`.
//!
//! The client is a minimal HTTP/1.1 client over [`std::net::TcpStream`] (one request per
//! connection, `Connection: close`): the agent is always local, the bodies are small JSON, and
//! the target trait is synchronous — so no async runtime or extra HTTP stack is needed here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_compiler::model::{Config, Endpoint as EndpointSpec};
use mlops_compiler::spec::SystemSpec;
use serde::{Deserialize, Serialize};

/// Control routes' prefix.
pub const PREFIX: &str = "/_mlops/v1";

/// What the agent publishes about itself in `<data_dir>/agent/agent.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentFile {
    /// Process id.
    pub pid: u32,
    /// Address it listens on.
    pub address: String,
    /// Control token.
    pub token: String,
}

/// The agent's directory under a data directory.
pub fn agent_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent")
}

/// `<data_dir>/agent/agent.json`.
pub fn agent_file(data_dir: &Path) -> PathBuf {
    agent_dir(data_dir).join("agent.json")
}

/// `<data_dir>/agent/agent.log` (the output of an agent apply started).
pub fn agent_log(data_dir: &Path) -> PathBuf {
    agent_dir(data_dir).join("agent.log")
}

/// A feature view an endpoint reads online features from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineViewRef {
    /// View address.
    pub address: String,
    /// Its join keys.
    pub join_keys: Vec<String>,
}

/// The body of `PUT /_mlops/v1/endpoints/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// Endpoint resource address (`module.fraud.endpoint.api`).
    pub address: String,
    /// Training job address.
    pub job: String,
    /// Registry version to roll out.
    pub version: u32,
    /// The compiled endpoint block (settings and rollout).
    pub spec: EndpointSpec,
    /// Directory relative token files resolve against.
    pub base_dir: PathBuf,
    /// Online views for `entities` requests (empty: none); the first join key is the sticky key.
    #[serde(default)]
    pub online: Vec<OnlineViewRef>,
    /// The bearer token's SHA-256 (hex), resolved by apply from `token_env` / `token_file`: the
    /// agent checks tokens without ever holding one, and needs no environment of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

impl DeployRequest {
    /// What deploys `version` of the endpoint at `address` of `spec` — the same request whether
    /// `apply` sends it to a local agent or a pod's agent publishes it itself: the endpoint's
    /// compiled block, the online views of its job (for `entities` requests) and its bearer
    /// token's digest, the token read here, in the caller's environment (`token_env`, or
    /// `token_file` relative to `root`).
    pub fn for_endpoint(spec: &SystemSpec, address: &str, root: &Path, version: u32) -> Result<DeployRequest, String> {
        let endpoint = match spec.resource(address).map(|r| &r.config) {
            Some(Config::Endpoint(e)) => e,
            _ => return Err(format!("`{address}` is not an endpoint of this configuration")),
        };
        let online = spec
            .resources
            .iter()
            .find(|r| r.address == endpoint.model)
            .and_then(|r| match &r.config {
                Config::TrainingJob(job) => Some(job.features.clone()),
                _ => None,
            })
            .unwrap_or_default()
            .iter()
            .filter_map(|view| spec.resources.iter().find(|r| &r.address == view))
            .filter_map(|r| match &r.config {
                Config::FeatureView(v) if v.online => {
                    Some(OnlineViewRef { address: r.address.clone(), join_keys: v.join_keys.clone() })
                }
                _ => None,
            })
            .collect();
        let token_sha256 = match &endpoint.auth {
            Some(auth) if auth.kind != "none" => {
                let settings = super::EndpointSettings::from_spec(endpoint, root)
                    .map_err(|e| format!("the endpoint's token: {e}"))?;
                settings.token.map(|t| t.sha256_hex())
            }
            _ => None,
        };
        Ok(DeployRequest {
            token_sha256,
            address: address.to_string(),
            job: endpoint.model.clone(),
            version,
            spec: endpoint.clone(),
            base_dir: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
            online,
        })
    }
}

/// One version in [`EndpointStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionStatus {
    /// Registry version.
    pub version: u32,
    /// Traffic share, percent.
    pub percent: f64,
    /// Requests routed to it.
    pub requests: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
}

/// One endpoint in [`StatusReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointStatus {
    /// Endpoint name (in URLs).
    pub name: String,
    /// Resource address.
    pub address: String,
    /// Training job.
    pub job: String,
    /// The version apply asked for.
    pub desired_version: u32,
    /// The version that takes all traffic when no rollout runs (or the candidate's base).
    pub stable_version: Option<u32>,
    /// Loaded versions and their traffic.
    pub versions: Vec<VersionStatus>,
    /// Requests to the endpoint.
    pub requests: u64,
    /// Does a version take traffic?
    pub healthy: bool,
    /// The rollout, in words.
    pub rollout: Option<String>,
    /// Is a rollout in progress?
    pub rolling_out: bool,
}

/// `GET /_mlops/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Agent pid.
    pub pid: u32,
    /// Listen address.
    pub address: String,
    /// Endpoints, by name.
    pub endpoints: Vec<EndpointStatus>,
    /// Monitors and their latest judgement.
    #[serde(default)]
    pub monitors: Vec<crate::retrain::controller::MonitorStatus>,
    /// Retrain policies.
    #[serde(default)]
    pub policies: Vec<crate::retrain::controller::PolicyStatus>,
}

/// Why the agent could not be reached or did not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String);

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// The body as JSON `T` when the status is 2xx, else an error with the agent's message.
    pub fn json<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T, ControlError> {
        if !(200..300).contains(&self.status) {
            let message = serde_json::from_str::<serde_json::Value>(&self.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| self.body.clone());
            return Err(ControlError(format!("{what}: the agent answered {}: {message}", self.status)));
        }
        serde_json::from_str(&self.body).map_err(|e| ControlError(format!("{what}: unreadable answer: {e}")))
    }
}

/// One HTTP/1.1 request (`Connection: close`) to `addr`.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Answer> {
    let sock: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad address {addr}")))?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "PUT" || method == "POST" {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Ok(Answer { status, body })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        let (Some(chunk), Some(next)) = (after.get(..n), after.get(n..)) else { break };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        rest = next.trim_start_matches("\r\n");
    }
    out
}

/// Is process `pid` alive (Linux: `/proc/<pid>` exists and is not a zombie)?
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` with `kill(1)`.
pub fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running agent: its file, checked alive and healthy.
#[derive(Debug, Clone)]
pub struct Agent {
    /// What it published.
    pub file: AgentFile,
}

impl Agent {
    /// The agent of `data_dir`, when its file exists, its process is alive and `/healthz`
    /// answers.
    pub fn find(data_dir: &Path) -> Option<Agent> {
        let text = std::fs::read_to_string(agent_file(data_dir)).ok()?;
        let file: AgentFile = serde_json::from_str(&text).ok()?;
        if !pid_alive(file.pid) {
            return None;
        }
        let a = request(&file.address, "GET", "/healthz", None, None, Duration::from_secs(2)).ok()?;
        (a.status == 200).then_some(Agent { file })
    }

    /// A control call.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<Answer, ControlError> {
        request(
            &self.file.address,
            method,
            &format!("{PREFIX}{path}"),
            Some(&self.file.token),
            body,
            Duration::from_secs(60),
        )
        .map_err(|e| ControlError(format!("cannot reach the serving agent at {}: {e}", self.file.address)))
    }

    /// `GET /_mlops/v1/status`.
    pub fn status(&self) -> Result<StatusReport, ControlError> {
        self.call("GET", "/status", None)?.json("status")
    }

    /// Stops it (SIGTERM, then SIGKILL after `wait`), waiting for the process to end.
    pub fn stop(&self, wait: Duration) {
        signal(self.file.pid, "TERM");
        let deadline = Instant::now() + wait;
        while pid_alive(self.file.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if pid_alive(self.file.pid) {
            signal(self.file.pid, "KILL");
        }
    }
}

/// The agent of `data_dir`, started when none runs: `exe agent --address … --data-dir …` as a
/// detached process (its own process group, output to `agent.log`), waited for up to `wait`.
pub fn ensure_agent(
    exe: &Path,
    root: &Path,
    data_dir: &Path,
    address: &str,
    wait: Duration,
) -> Result<Agent, ControlError> {
    if let Some(a) = Agent::find(data_dir) {
        return Ok(a);
    }
    let dir = agent_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| ControlError(format!("cannot create {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(agent_file(data_dir));
    let log_path = agent_log(data_dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| ControlError(format!("cannot open {}: {e}", log_path.display())))?;
    let err = log.try_clone().map_err(|e| ControlError(e.to_string()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("agent").arg(root).arg("--address").arg(address).arg("--data-dir").arg(data_dir);
    cmd.stdin(std::process::Stdio::null()).stdout(log).stderr(err);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child =
        cmd.spawn().map_err(|e| ControlError(format!("cannot start the serving agent ({}): {e}", exe.display())))?;
    let deadline = Instant::now() + wait;
    loop {
        if let Some(a) = Agent::find(data_dir) {
            // Reaped by nobody: it outlives us; its exit status is not ours to collect.
            std::mem::drop(child);
            return Ok(a);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ControlError(format!(
                "the serving agent exited ({status}) before it was ready; see {}",
                log_path.display()
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ControlError(format!(
                "the serving agent did not become healthy on {address} within {}s; see {}",
                wait.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `text` as one URL path segment: everything but letters, digits, `.`, `_`, `-` and `~`
/// percent-encoded (addresses may hold `[`, `"` and `/` from `for_each` keys).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The endpoint's name in URLs: its address without the `endpoint.` segment
/// (`endpoint.fraud_api` → `fraud_api`, `module.fraud.endpoint.api` → `module.fraud.api`).
pub fn endpoint_name(address: &str) -> String {
    let parts: Vec<&str> = address.split('.').collect();
    match parts.iter().rposition(|p| *p == "endpoint") {
        Some(i) if i + 1 < parts.len() => {
            parts.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect::<Vec<_>>().join(".")
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_drop_the_kind_segment() {
        assert_eq!(endpoint_name("endpoint.fraud_api"), "fraud_api");
        assert_eq!(endpoint_name("module.fraud.endpoint.api"), "module.fraud.api");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
    }
}
