//! What the controller may do in the cluster: the one table of its Role's rules. The controller
//! runs monitors and retrain policies; after promoting a model it restarts (annotates) the
//! Deployments of the endpoints it rolls out through, and it reads its own spec. Nothing else:
//! endpoint pods and training Jobs get no token at all. README's RBAC table mirrors this.

/// Which object names a rule is restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// The Deployments of the endpoints the controller watches or rolls out through.
    EndpointDeployments,
    /// The system's spec ConfigMap.
    SpecConfigMap,
}

/// One rule of the controller's Role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// API group (`""` is the core group).
    pub api_group: &'static str,
    /// Resource type.
    pub resource: &'static str,
    /// Verbs allowed.
    pub verbs: &'static [&'static str],
    /// The only object names it applies to.
    pub names: Names,
}

/// The controller's rules, in the order they are written.
pub const CONTROLLER_RULES: &[Rule] = &[
    Rule {
        api_group: "apps",
        resource: "deployments",
        verbs: &["get", "list", "watch"],
        names: Names::EndpointDeployments,
    },
    Rule { api_group: "apps", resource: "deployments", verbs: &["patch"], names: Names::EndpointDeployments },
    Rule { api_group: "", resource: "configmaps", verbs: &["get"], names: Names::SpecConfigMap },
];
