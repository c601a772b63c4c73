//! `mlops agent [DIR]` (the serving agent, in the foreground; in a pod
//! `mlops agent --spec FILE --endpoint ADDRESS`), `mlops status [DIR]` and
//! `mlops rollback endpoint.NAME [DIR]`: the serving control plane from the command line.

use super::{parse_seconds, split_dir_and_addresses, ConfigArgs, SpecArgs, VarArgs};
use clap::Args;
use mlops_compiler::model::Target;
use mlops_runtime::monitor::evaluate::CheckStatus;
use mlops_runtime::retrain::controller::MonitorStatus;
use mlops_runtime::serve::agent::{self, AgentOptions};
use mlops_runtime::serve::control::{self, Agent, EndpointStatus};
use mlops_runtime::workspace::Workspace;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the serving agent in the foreground.
#[derive(Debug, Args)]
pub struct AgentCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen here instead of the local target's `address`.
    #[arg(long)]
    address: Option<String>,
    /// Use this data directory instead of the local target's `data_dir` (with --spec: env
    /// MLOPS_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Serve from a compiled SystemSpec (`mlops compile DIR` output, a pod's ConfigMap) instead
    /// of waiting for `apply` [env: MLOPS_SPEC, with --endpoint].
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// With --spec: the endpoint to publish (its address, e.g. endpoint.fraud_api); repeatable.
    #[arg(long = "endpoint", value_name = "ADDRESS")]
    endpoints: Vec<String>,
    /// With --spec: where the spec's relative paths resolve [env: MLOPS_ROOT; default: the
    /// current directory].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// With --spec: how often the registry is read for a new production version.
    #[arg(long, value_name = "SECONDS", default_value = "2s", value_parser = parse_seconds)]
    poll_interval: std::time::Duration,
    /// With --spec: on SIGTERM, how long to keep serving (not ready) before refusing new
    /// connections, while Kubernetes takes the pod out of its Service.
    #[arg(long, value_name = "SECONDS", default_value = "5s", value_parser = parse_seconds)]
    shutdown_delay: std::time::Duration,
}

/// The local target's data directory and address of the configuration.
fn local(config: &ConfigArgs) -> Result<Option<(PathBuf, String)>, String> {
    let Some((_, spec)) = config.compile_spec()? else { return Ok(None) };
    let address = match &spec.system.target {
        Target::Local { address, .. } => address.clone(),
        Target::Kubernetes { .. } => return Err("the serving agent runs for the local target only".into()),
    };
    Ok(Some((Workspace::new(&config.dir, &spec).data_dir, address)))
}

impl AgentCmd {
    /// The pod's agent: endpoints published from a compiled spec.
    fn run_in_pod(self) -> Result<ExitCode, String> {
        if self.config.dir != std::path::Path::new(".") {
            return Err(format!(
                "give a configuration directory ({}) or --spec FILE, not both",
                self.config.dir.display()
            ));
        }
        let args = SpecArgs { spec: self.spec, root: self.root, data_dir: self.data_dir };
        let Some(from) = args.load(true)? else {
            return Err("--endpoint needs the compiled spec: --spec FILE, or MLOPS_SPEC in the environment".into());
        };
        if self.endpoints.is_empty() {
            return Err(format!(
                "name the endpoint to serve with --endpoint; the endpoints of {}: {}",
                from.file.display(),
                mlops_runtime::pod::endpoints(&from.spec).join(", ")
            ));
        }
        let mut endpoints = Vec::new();
        for wanted in &self.endpoints {
            let (address, _) = mlops_runtime::pod::endpoint(&from.spec, wanted, &from.file)?;
            endpoints.push(address.to_string());
        }
        let address = self.address.unwrap_or_else(|| "0.0.0.0:8080".to_string());
        let address = address.parse().map_err(|e| {
            format!("the agent listens on an IP address and port (`0.0.0.0:8080`), not `{address}`: {e}")
        })?;
        let poll = self.poll_interval.max(std::time::Duration::from_millis(50));
        from.mirror(mlops_runtime::pod::Role::Serving, poll)?;
        let options = AgentOptions {
            address,
            data_dir: from.workspace.data_dir.clone(),
            from_spec: Some(agent::FromSpec {
                spec: from.spec,
                root: from.workspace.root,
                endpoints,
                pod: mlops_runtime::pod::pod_name(),
                poll,
                shutdown_delay: self.shutdown_delay,
            }),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(agent::run(options, agent::termination())).map_err(|e| e.to_string())?;
        super::flush_mirror()?;
        Ok(ExitCode::SUCCESS)
    }

    pub fn run(self) -> Result<ExitCode, String> {
        if self.spec.is_some() || !self.endpoints.is_empty() {
            return self.run_in_pod();
        }
        if self.root.is_some() {
            return Err("--root goes with --spec FILE (a compiled spec)".into());
        }
        let (data_dir, address) = match (self.data_dir, self.address) {
            (Some(d), Some(a)) => (d, a),
            (d, a) => {
                let Some((data_dir, address)) = local(&self.config)? else { return Ok(ExitCode::from(1)) };
                (d.unwrap_or(data_dir), a.unwrap_or(address))
            }
        };
        let address = address.parse().map_err(|e| {
            format!("the agent listens on an IP address and port (`127.0.0.1:8080`), not `{address}`: {e}")
        })?;
        if let Some(a) = Agent::find(&data_dir) {
            return Err(format!(
                "an agent already serves this data directory (pid {} on {})",
                a.file.pid, a.file.address
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime
            .block_on(agent::run(AgentOptions { address, data_dir, from_spec: None }, agent::termination()))
            .map_err(|e| e.to_string())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Show what the serving agent serves.
#[derive(Debug, Args)]
pub struct Status {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn print_endpoint(e: &EndpointStatus) {
    println!(
        "{}  ({}, model {})  {}  {} requests",
        e.name,
        e.address,
        e.job,
        if e.healthy { "healthy" } else { "unhealthy" },
        e.requests
    );
    for v in &e.versions {
        println!(
            "  version {:<4} {:>6.1}%  {} requests, {} 4xx, {} 5xx",
            v.version, v.percent, v.requests, v.client_errors, v.server_errors
        );
    }
    if let Some(r) = &e.rollout {
        println!("  rollout: {r}");
    }
}

fn print_monitor(m: &MonitorStatus) {
    let Some(r) = &m.last else {
        println!("{}  (watches {})  first window not over yet", m.address, m.endpoint);
        return;
    };
    let breached = r.breaches().len();
    let verdict = if breached > 0 {
        format!("BREACHED ({breached} check{})", if breached == 1 { "" } else { "s" })
    } else if r.insufficient() {
        "not enough data".to_string()
    } else {
        "ok".to_string()
    };
    println!(
        "{}  (watches {}, version {})  {verdict}  {} predictions in the last window",
        m.address,
        m.endpoint,
        r.version.map_or_else(|| "—".to_string(), |v| v.to_string()),
        r.predictions
    );
    for c in &r.checks {
        let value = c.p_value.filter(|_| c.threshold.starts_with("p ")).or(c.value);
        println!(
            "  {:<11} {:<24} {:>10}  threshold {:<10} {}",
            c.check,
            format!("{}({})", c.method, c.name),
            value.map_or_else(|| "—".to_string(), |v| format!("{v:.4}")),
            c.threshold,
            match c.status {
                CheckStatus::Ok => "ok",
                CheckStatus::Breached => "BREACHED",
                CheckStatus::InsufficientData => "not enough data",
                CheckStatus::Error => "error",
            }
        );
    }
}

/// What the running monitors see now and what their policies would do about it, for `plan`
/// ("retrain `module.fraud.job`: psi(amount) 0.31 > 0.2 over 1204 values"); `None` without an
/// agent or monitors.
pub(super) fn observations(data_dir: &std::path::Path, markdown: bool) -> Option<String> {
    let status = Agent::find(data_dir)?.status().ok()?;
    if status.monitors.is_empty() {
        return None;
    }
    let mut out = String::new();
    out.push_str(if markdown {
        "\n#### Monitors now\n\n"
    } else {
        "\nMonitors now (the running agent's last windows):\n"
    });
    for m in &status.monitors {
        let bullet = if markdown { "- " } else { "  " };
        let Some(r) = &m.last else {
            out.push_str(&format!("{bullet}{}: first window not over yet\n", m.address));
            continue;
        };
        let breaches = r.breaches();
        let values: Vec<String> = r
            .checks
            .iter()
            .filter(|c| c.value.is_some())
            .map(|c| format!("{}({})={:.4} ({})", c.method, c.name, c.value.unwrap_or_default(), c.threshold))
            .collect();
        out.push_str(&format!(
            "{bullet}{}: {}\n",
            m.address,
            if values.is_empty() { "no values yet".to_string() } else { values.join(", ") }
        ));
        if breaches.is_empty() {
            continue;
        }
        let why: Vec<&str> = breaches.iter().map(|c| c.message.as_str()).collect();
        for p in status.policies.iter().filter(|p| p.on.contains(&m.address)) {
            let line = match &p.would_skip {
                None => format!("would retrain `{}`: {}", p.job, why.join("; ")),
                Some(skip) => format!("would not retrain `{}` ({skip}) despite: {}", p.job, why.join("; ")),
            };
            out.push_str(&format!("{bullet}  → {}: {line}\n", p.address));
        }
    }
    Some(out)
}

impl Status {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((data_dir, _)) = local(&self.config)? else { return Ok(ExitCode::from(1)) };
        let Some(agent) = Agent::find(&data_dir) else {
            if self.json {
                println!("null");
            } else {
                println!("No agent running (data in {}): `mlops apply` starts one.", data_dir.display());
            }
            return Ok(ExitCode::SUCCESS);
        };
        let status = agent.status().map_err(|e| e.to_string())?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("Agent pid {} on {}", status.pid, status.address);
        if status.endpoints.is_empty() {
            println!("No endpoints.");
        }
        for e in &status.endpoints {
            print_endpoint(e);
        }
        for m in &status.monitors {
            print_monitor(m);
        }
        for p in &status.policies {
            let state = match (p.running, p.rolling_out) {
                (true, _) => "retraining now".to_string(),
                (false, Some(v)) => format!("version {v} rolling out"),
                _ => "idle".to_string(),
            };
            println!("{}  (retrains {})  {state}, {} retrain(s) remembered", p.address, p.job, p.retrains);
            if let Some(last) = &p.last {
                println!("  last: {last}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Roll an endpoint back to its previous version at once.
#[derive(Debug, Args)]
pub struct Rollback {
    /// The endpoint's address (`endpoint.NAME`, `module.M.endpoint.NAME`) and the configuration
    /// directory (default: the current one), in any order.
    #[arg(value_name = "ENDPOINT|DIR", required = true)]
    targets: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
}

impl Rollback {
    pub fn run(self) -> Result<ExitCode, String> {
        let (config, addresses) = split_dir_and_addresses(&self.targets, &self.vars)?;
        let [address] = addresses.as_slice() else {
            return Err("name one endpoint: `mlops rollback endpoint.NAME [DIR]`".into());
        };
        if !address.starts_with("endpoint.") && !address.contains(".endpoint.") {
            return Err(format!("`{address}` is not an endpoint address (`endpoint.NAME`)"));
        }
        let Some((data_dir, _)) = local(&config)? else { return Ok(ExitCode::from(1)) };
        let agent = Agent::find(&data_dir).ok_or("no agent running: nothing to roll back")?;
        let name = control::endpoint_name(address);
        let e: EndpointStatus = agent
            .call("POST", &format!("/endpoints/{name}/rollback"), Some(""))
            .and_then(|a| a.json("rollback"))
            .map_err(|e| e.to_string())?;
        println!("Rolled back {address}.");
        print_endpoint(&e);
        Ok(ExitCode::SUCCESS)
    }
}
