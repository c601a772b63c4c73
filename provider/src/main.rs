//! `terraform-provider-mlops`: the mlops compiler and runtime as a Terraform provider (plugin
//! protocol 6). Terraform starts it and talks gRPC to it (see [`server`]); the resources are
//! [`system`] (`mlops_system`, a whole directory) and [`kinds`] (`mlops_source` … one block
//! each), the data sources are in [`data`].
//!
//! The same binary is the serving agent the local target starts for endpoints
//! (`terraform-provider-mlops agent DIR --address A --data-dir D`, as `mlops agent`), so the
//! provider needs no `mlops` binary beside it; and `terraform-provider-mlops docs DIR` writes the
//! registry documentation generated from the schemas.

mod cty;
mod data;
mod diag;
mod docs;
mod hclgen;
mod hclparse;
mod kinds;
mod provider;
mod server;
mod settings;
mod system;
mod tfschema;

#[allow(clippy::all, missing_docs, dead_code)]
mod proto {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("agent") => agent(&args[1..]),
        Some("docs") => docs::write(args.get(1).map_or("provider/docs", String::as_str)),
        Some("--version" | "version") => {
            println!("terraform-provider-mlops {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
            .and_then(|rt| rt.block_on(server::serve()).map_err(|e| e.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-mlops: {e}");
            ExitCode::from(1)
        }
    }
}

/// The serving agent, as the local target starts it: `agent ROOT --address A --data-dir D`.
fn agent(args: &[String]) -> Result<(), String> {
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(address), Some(data_dir)) = (flag("--address"), flag("--data-dir")) else {
        return Err("usage: terraform-provider-mlops agent ROOT --address ADDR --data-dir DIR".into());
    };
    let address =
        address.parse().map_err(|e| format!("the agent listens on an IP address and port, not `{address}`: {e}"))?;
    let options = mlops_runtime::serve::agent::AgentOptions { address, data_dir: data_dir.into(), from_spec: None };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(mlops_runtime::serve::agent::run(options, mlops_runtime::serve::agent::termination()))
        .map_err(|e| e.to_string())
}
