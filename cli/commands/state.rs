//! `mlops state list|show|rm` and `mlops force-unlock`: looking into the state and clearing a lock
//! left by a crashed run. Sensitive values are never printed.

use super::ConfigArgs;
use clap::{Args, Subcommand};
use mlops_runtime::state;
use std::process::ExitCode;

/// Inspect the state.
#[derive(Debug, Args)]
pub struct StateCmd {
    #[command(subcommand)]
    command: StateSub,
}

#[derive(Debug, Subcommand)]
enum StateSub {
    /// Addresses of every resource in the state.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Forget resources: remove them from the state without touching what they made (the
    /// next plan creates them again, or adopts nothing — mlops no longer manages them).
    Rm {
        /// Resource addresses and, optionally, the configuration directory, in any order.
        #[arg(value_name = "ADDRESS|DIR", required = true)]
        targets: Vec<String>,
        #[command(flatten)]
        vars: super::VarArgs,
    },
    /// One resource as applied (sensitive values redacted).
    Show {
        /// Resource address, e.g. `source.transactions`.
        address: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn open(config: &ConfigArgs) -> Result<Option<Box<dyn state::StateBackend>>, String> {
    let Some((c, _)) = config.compile_spec()? else { return Ok(None) };
    state::open(&config.dir, &c.model.system.backend).map(Some).map_err(|e| e.to_string())
}

// Attributes whose values are secrets, by the schema's `sensitive` flag.
fn redact(kind: &str, value: &mut serde_json::Value) {
    let Some(schema) = mlops_compiler::schema::top_level(kind) else { return };
    if let Some(config) = value.pointer_mut("/spec/config").and_then(|c| c.as_object_mut()) {
        for a in schema.attrs.iter().filter(|a| a.sensitive) {
            if let Some(v) = config.get_mut(a.name) {
                *v = serde_json::Value::String("(sensitive)".into());
            }
        }
    }
}

impl StateCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            StateSub::List { config } => {
                let Some(backend) = open(&config)? else { return Ok(ExitCode::from(1)) };
                match backend.read().map_err(|e| e.to_string())? {
                    None => println!("No state yet in {}.", backend.describe()),
                    Some(s) => s.resources.keys().for_each(|a| println!("{a}")),
                }
                Ok(ExitCode::SUCCESS)
            }
            StateSub::Rm { targets, vars } => {
                let (config, addresses) = super::split_dir_and_addresses(&targets, &vars)?;
                if addresses.is_empty() {
                    return Err("name the resources to forget, e.g. `mlops state rm feature_view.old`".into());
                }
                let Some(backend) = open(&config)? else { return Ok(ExitCode::from(1)) };
                let lock = backend.lock("state rm").map_err(|e| e.to_string())?;
                let mut s = backend.read().map_err(|e| e.to_string())?.ok_or("no state yet: nothing to remove")?;
                for a in &addresses {
                    if !s.resources.contains_key(a) {
                        let hint = mlops_compiler::suggest::did_you_mean(a, s.resources.keys().map(String::as_str))
                            .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
                        return Err(format!("`{a}` is not in the state{hint}; nothing was removed"));
                    }
                }
                for a in &addresses {
                    s.resources.remove(a);
                }
                s.serial += 1;
                backend.write(&lock, &s).map_err(|e| e.to_string())?;
                lock.release().map_err(|e| e.to_string())?;
                for a in &addresses {
                    println!("Removed {a} from the state (what it made is untouched).");
                }
                Ok(ExitCode::SUCCESS)
            }
            StateSub::Show { address, config } => {
                let Some(backend) = open(&config)? else { return Ok(ExitCode::from(1)) };
                let s = backend.read().map_err(|e| e.to_string())?.ok_or("no state yet: nothing has been applied")?;
                let r = s.resources.get(&address).ok_or_else(|| format!("`{address}` is not in the state"))?;
                let mut v = serde_json::to_value(r).map_err(|e| e.to_string())?;
                redact(r.spec.config.kind(), &mut v);
                println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Remove a lock left behind by a crashed run.
#[derive(Debug, Args)]
pub struct ForceUnlock {
    /// The lock id printed in the "locked" error.
    lock_id: String,
    #[command(flatten)]
    config: ConfigArgs,
}

impl ForceUnlock {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some(backend) = open(&self.config)? else { return Ok(ExitCode::from(1)) };
        backend.force_unlock(&self.lock_id).map_err(|e| e.to_string())?;
        println!("Unlocked {} (lock {}).", backend.describe(), self.lock_id);
        Ok(ExitCode::SUCCESS)
    }
}
