//! The provider's configuration (`provider "mlops" { … }`): the `mlops { }` block's settings,
//! and the directory of the system the per-kind resources form. In: the Terraform value of the
//! provider block. Out: [`Settings`] — checked by the compiler itself, by compiling the
//! equivalent `mlops { }` block, so its diagnostics (a bad address, an unknown backend
//! attribute) are the language's, at the right attribute.

use std::path::PathBuf;

use mlops_compiler::model::{Backend, System, Target};
use mlops_compiler::schema;

use crate::cty::Val;
use crate::diag::Diag;
use crate::hclgen;

/// What the provider block sets (`None`: not set, the system's own `mlops { }` block decides).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The state backend.
    pub backend: Option<Backend>,
    /// Where apply runs.
    pub target: Option<Target>,
    /// The directory of the system the per-kind resources form (`dir`).
    pub dir: Option<PathBuf>,
    /// The `mlops { }` block of that system: the provider block's settings (name `terraform`
    /// unless set).
    pub mlops_block: String,
    /// The same settings compiled, defaults filled in (`None` before the provider is configured).
    pub system: Option<System>,
}

impl Settings {
    /// Reads and checks the provider block.
    pub fn from_config(config: &Val) -> Result<Settings, Vec<Diag>> {
        let mlops = schema::top_level("mlops").expect("the language has an mlops block");
        let mut val = config.clone();
        if val.get("name").is_null() {
            val.set("name", Val::str("terraform"));
        }
        let has = |prefix: &str| {
            mlops
                .blocks
                .iter()
                .filter(|n| n.block.kind == prefix)
                .flat_map(|n| n.block.variants.iter())
                .any(|v| !config.get(&format!("{prefix}_{}", v.kind)).items().is_empty())
        };
        let (set_backend, set_target) = (has("backend"), has("target"));
        let rendered = hclgen::render_top(mlops, &val);
        let dir = scratch_dir("provider")?;
        let result = (|| {
            std::fs::write(dir.join("provider.mlops.hcl"), &rendered.text)
                .map_err(|e| vec![Diag::error(format!("cannot write a scratch file: {e}"))])?;
            let c = mlops_compiler::compile(&dir, &mlops_compiler::Options::default());
            let errors: Vec<Diag> = c
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| Diag::from_compiler(d, &c.sources, rendered.path_at(d.primary.span.start), false))
                .collect();
            if !errors.is_empty() {
                return Err(errors);
            }
            let dir = config.get("dir").as_str().filter(|d| !d.is_empty()).map(PathBuf::from);
            Ok(Settings {
                backend: set_backend.then(|| c.model.system.backend.clone()),
                target: set_target.then(|| c.model.system.target.clone()),
                dir,
                mlops_block: rendered.text.clone(),
                system: Some(c.model.system.clone()),
            })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

/// A fresh empty directory under the system's temporary directory.
pub fn scratch_dir(tag: &str) -> Result<PathBuf, Vec<Diag>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "terraform-provider-mlops-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| vec![Diag::error(format!("cannot create a scratch directory {}: {e}", dir.display()))])?;
    Ok(dir)
}
