//! Warnings: legal but risky choices. An endpoint nobody monitors, a canary without a rollback
//! rule, a credential written into the configuration.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Config, Model};

pub(super) fn check(model: &Model, diags: &mut Diagnostics) {
    let watched: std::collections::HashSet<&str> = model
        .resources
        .iter()
        .filter_map(|m| match &m.config {
            Config::Monitor(m) => Some(m.endpoint.as_str()),
            _ => None,
        })
        .collect();
    // A monitor whose endpoint reference failed watches something; do not guess what.
    let unresolved_monitor =
        model.resources.iter().any(|m| matches!(&m.config, Config::Monitor(m) if m.endpoint.is_empty()));
    for r in &model.resources {
        if r.node.errors {
            continue;
        }
        match &r.config {
            Config::Endpoint(e) => {
                let addr = r.address.to_string();
                if !watched.contains(addr.as_str()) && !unresolved_monitor {
                    diags.push(
                        Diagnostic::warning(
                            codes::UNMONITORED_ENDPOINT,
                            r.node.header,
                            format!("no monitor watches {addr}"),
                        )
                        .label("unmonitored")
                        .help(format!(
                            "add `monitor \"…\" {{ endpoint = {addr} … }}` so drift and quality problems are noticed"
                        )),
                    );
                }
                if e.rollout.strategy == "canary" && e.rollout.rollback.is_none() {
                    let at = r.node.block("rollout").map_or(r.node.header, |b| b.header);
                    diags.push(
                        Diagnostic::warning(codes::NO_ROLLBACK, at, "canary rollout without a rollback rule")
                            .label("a bad version keeps its traffic")
                            .help("add `rollback { metric = \"error_rate\"  above = 0.02 }`"),
                    );
                }
            }
            Config::Source(s) => {
                if let Some(c) = &s.connection {
                    if has_password(c) {
                        diags.push(
                            Diagnostic::warning(
                                codes::PLAINTEXT_SECRET,
                                r.node.span_of("connection"),
                                "connection string contains a password",
                            )
                            .label("secret in the configuration")
                            .help("use `connection_env = \"<ENV_VAR>\"` and keep the secret out of version control"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(b) = model.settings.as_ref().and_then(|s| s.block("backend")) {
        if let Some(c) = b.str("conn_str") {
            if has_password(c) {
                diags.push(
                    Diagnostic::warning(
                        codes::PLAINTEXT_SECRET,
                        b.span_of("conn_str"),
                        "state backend connection string contains a password",
                    )
                    .label("secret in the configuration")
                    .help("use `conn_str_env = \"<ENV_VAR>\"`"),
                );
            }
        }
    }
}

/// `postgres://user:secret@host/db` or `password=secret`.
fn has_password(conn: &str) -> bool {
    let lower = conn.to_ascii_lowercase();
    if lower.contains("password=") {
        return true;
    }
    match conn.split_once("://") {
        Some((_, rest)) => rest.split('@').next().is_some_and(|userinfo| rest.contains('@') && userinfo.contains(':')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_passwords() {
        assert!(super::has_password("postgres://u:p@h/db"));
        assert!(super::has_password("host=h password=x"));
        assert!(!super::has_password("postgres://u@h/db"));
        assert!(!super::has_password("postgres://h:5432/db"));
    }
}
