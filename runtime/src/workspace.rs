//! Where the runtime keeps things for one configuration: the configuration root (relative data
//! paths resolve against it) and the data directory of the local target, holding the feature
//! store and the model registry.

use mlops_compiler::model::Target;
use mlops_compiler::spec::SystemSpec;
use std::path::{Path, PathBuf};

/// Directories of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The configuration directory (where the `*.mlops.hcl` files are).
    pub root: PathBuf,
    /// The local target's data directory (`target "local" { data_dir }`, default `.mlops/data`).
    pub data_dir: PathBuf,
}

impl Workspace {
    /// The workspace of `spec`, compiled from the configuration in `root`.
    pub fn new(root: &Path, spec: &SystemSpec) -> Workspace {
        let data_dir = match &spec.system.target {
            Target::Local { data_dir, .. } => data_dir.clone(),
            // Kubernetes pods mount their volume at the same relative place.
            Target::Kubernetes { .. } => ".mlops/data".to_string(),
        };
        Workspace { root: root.to_path_buf(), data_dir: root.join(data_dir) }
    }

    /// The workspace of `spec` run from its compiled form (a pod): relative source paths resolve
    /// against `root`; the data directory is `data_dir` when given (the pod's mounted volume),
    /// else the target's default under `root`, as [`Workspace::new`].
    pub fn at(root: &Path, data_dir: Option<&Path>, spec: &SystemSpec) -> Workspace {
        match data_dir {
            Some(d) => Workspace { root: root.to_path_buf(), data_dir: root.join(d) },
            None => Workspace::new(root, spec),
        }
    }

    /// The feature store's directory.
    pub fn features_dir(&self) -> PathBuf {
        self.data_dir.join("features")
    }

    /// The model registry's directory.
    pub fn registry_dir(&self) -> PathBuf {
        self.data_dir.join("registry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_compiler::model::{Backend, System};

    #[test]
    fn data_dir_is_relative_to_the_configuration() {
        let spec = SystemSpec {
            format_version: 1,
            system: System {
                name: "x".into(),
                backend: Backend::Local { path: ".mlops/state".into() },
                target: Target::Local { address: "127.0.0.1:8080".into(), data_dir: "store".into() },
            },
            resources: vec![],
            outputs: Default::default(),
        };
        let ws = Workspace::new(Path::new("/cfg"), &spec);
        assert_eq!(ws.features_dir(), Path::new("/cfg/store/features"));
        assert_eq!(ws.registry_dir(), Path::new("/cfg/store/registry"));
        let pod = Workspace::at(Path::new("/var/lib/mlops"), Some(Path::new("/mnt/data")), &spec);
        assert_eq!(pod.registry_dir(), Path::new("/mnt/data/registry"));
        assert_eq!(pod.root, Path::new("/var/lib/mlops"));
        assert_eq!(Workspace::at(Path::new("/cfg"), None, &spec), ws);
    }
}
