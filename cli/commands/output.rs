//! `mlops output [NAME]`: the root outputs recorded by the last apply. Sensitive values are
//! shown only when asked for by name, as Terraform does.

use super::{ConfigArgs, VarArgs};
use clap::Args;
use mlops_compiler::state::OutputState;
use mlops_runtime::state;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Print the root outputs of the last apply.
#[derive(Debug, Args)]
pub struct Output {
    /// The configuration directory (default: the current one) and/or one output's name (its
    /// value is printed, even a sensitive one), in any order.
    #[arg(value_name = "DIR|NAME")]
    targets: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
    /// Print JSON (sensitive values only when one output is asked for by name).
    #[arg(long)]
    json: bool,
    /// With a NAME: print a string without quotes, for scripts.
    #[arg(long)]
    raw: bool,
}

/// An output's value as a listing shows it.
pub fn shown(o: &OutputState) -> String {
    match (&o.pending, o.sensitive) {
        (Some(why), _) => format!("(not known yet: {why})"),
        (None, true) => "(sensitive)".to_string(),
        (None, false) => o.value.to_string(),
    }
}

impl Output {
    pub fn run(self) -> Result<ExitCode, String> {
        let (dirs, names): (Vec<&String>, Vec<&String>) = self.targets.iter().partition(|t| Path::new(t).is_dir());
        if dirs.len() > 1 || names.len() > 1 {
            return Err("give at most one configuration directory and one output name".into());
        }
        let dir = dirs.first().map_or_else(|| PathBuf::from("."), PathBuf::from);
        let name = names.first().map(|n| n.to_string());
        if self.raw && name.is_none() {
            return Err("--raw prints one output: name it, e.g. `mlops output endpoint_url --raw`".into());
        }
        let config = ConfigArgs { dir, vars: self.vars.clone() };
        let Some((c, _)) = config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        let backend = state::open(&config.dir, &c.model.system.backend).map_err(|e| e.to_string())?;
        let Some(s) = backend.read().map_err(|e| e.to_string())? else {
            return Err(format!("no state yet in {}: run `mlops apply` first", backend.describe()));
        };
        if let Some(name) = &name {
            let o = s.outputs.get(name).ok_or_else(|| {
                let hint = mlops_compiler::suggest::did_you_mean(name, s.outputs.keys().map(String::as_str))
                    .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
                format!("no output `{name}` in the state{hint}")
            })?;
            if let Some(why) = &o.pending {
                return Err(format!("output `{name}` is not known yet: {why}"));
            }
            match (&o.value, self.raw) {
                (serde_json::Value::String(t), true) => println!("{t}"),
                (v, _) if self.json => println!("{v}"),
                (v, _) => println!("{}", serde_json::to_string_pretty(v).map_err(|e| e.to_string())?),
            }
            return Ok(ExitCode::SUCCESS);
        }
        if self.json {
            let all: serde_json::Map<String, serde_json::Value> = s
                .outputs
                .iter()
                .map(|(k, o)| {
                    let value = if o.sensitive { serde_json::Value::Null } else { o.value.clone() };
                    (k.clone(), serde_json::json!({ "value": value, "sensitive": o.sensitive, "pending": o.pending }))
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?);
        } else if s.outputs.is_empty() {
            println!("No outputs in the state.");
        } else {
            for (name, o) in &s.outputs {
                println!("{name} = {}", shown(o));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
