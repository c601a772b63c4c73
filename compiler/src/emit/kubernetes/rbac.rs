//! What the controller may do through the Kubernetes API: the one table of its Role's rules.
//! Today that is nothing. The controller reads its spec from the mounted ConfigMap, retrains in
//! its own pod on the shared volume, and steps rollouts through files on that volume which the
//! endpoint pods follow (`runtime/src/serve/cluster.rs`) — so it gets a ServiceAccount without a
//! token and no Role. A rule added here brings the Role, the RoleBinding and the token back.

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

/// The controller's rules, in the order they are written: none (see the module's comment).
pub const CONTROLLER_RULES: &[Rule] = &[];
