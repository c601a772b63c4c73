//! Kubernetes object names from HCL names. One mapping, used by the checks (which report a name
//! that cannot be mapped, or two that map to the same object) and by the emitter (which then
//! cannot fail on names): HCL's `_` becomes `-`, the module path, block name and instance key
//! are joined with `-`, and everything is prefixed with the system's name. Nothing else is
//! rewritten — an upper-case letter or a dot is reported, not silently lowered or dropped, so
//! two different HCL names never become one object by accident.

/// Longest DNS-1123 label (object names of Services, pods' `job-name` label, label values).
pub const MAX_LABEL: usize = 63;
/// Longest CronJob name: the controller appends `-<minutes since epoch>` (11 characters) to name
/// its Jobs, which must stay DNS-1123 labels.
pub const MAX_CRONJOB: usize = 52;
/// Length of the content hash that suffixes a training Job's name (`-` plus 8 hex digits).
pub const JOB_SUFFIX: usize = 9;
/// Object names the system itself uses, so no endpoint may map to them.
pub const RESERVED: &[&str] = &["controller"];

/// Why a name is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A character outside `a-z`, `0-9`, `-` (after `_` → `-`).
    Character(char),
    /// Empty, or starts or ends with `-`.
    Edge,
    /// Does not start with a letter (Service names are DNS-1035 labels).
    NotLetterFirst,
    /// Longer than allowed once prefixed and suffixed.
    TooLong {
        /// The full object name.
        name: String,
        /// The limit.
        max: usize,
    },
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Character(c) if c.is_ascii_uppercase() => {
                write!(f, "has the upper-case letter `{c}` (Kubernetes names are lower case)")
            }
            NameError::Character(c) => write!(f, "has the character {c:?}, which Kubernetes names cannot contain"),
            NameError::Edge => f.write_str("is empty or starts or ends with `-`"),
            NameError::NotLetterFirst => f.write_str("does not start with a letter"),
            NameError::TooLong { name, max } => {
                write!(f, "becomes the object name `{name}` ({} characters, at most {max})", name.len())
            }
        }
    }
}

/// Maps one name (a block name, a module name, an instance key): `_` → `-`, then it must be
/// lower-case letters, digits and `-`.
pub fn map(name: &str) -> Result<String, NameError> {
    let mapped: String = name.chars().map(|c| if c == '_' { '-' } else { c }).collect();
    if let Some(c) = mapped.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::Character(c));
    }
    if mapped.is_empty() || mapped.starts_with('-') || mapped.ends_with('-') {
        return Err(NameError::Edge);
    }
    Ok(mapped)
}

/// Is `s` a DNS-1123 label (a namespace name): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63?
pub fn check_label(s: &str) -> Result<(), NameError> {
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::Character(c));
    }
    if s.is_empty() || s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::Edge);
    }
    if s.len() > MAX_LABEL {
        return Err(NameError::TooLong { name: s.to_string(), max: MAX_LABEL });
    }
    Ok(())
}

/// The system's prefix: its mapped name, which must start with a letter (it begins every
/// Service name, a DNS-1035 label) and leave room for `-controller`.
pub fn system(name: &str) -> Result<String, NameError> {
    let mapped = map(name)?;
    if !mapped.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(NameError::NotLetterFirst);
    }
    let longest = format!("{mapped}-controller");
    if longest.len() > MAX_LABEL {
        return Err(NameError::TooLong { name: longest, max: MAX_LABEL });
    }
    Ok(mapped)
}

/// The part of an object name that names a resource: module instances, block name and instance
/// key, each mapped, joined with `-` (`module.fraud.endpoint.api` → `fraud-api`,
/// `endpoint.scoring["eu-west"]` → `scoring-eu-west`).
pub fn stem(module: &[String], name: &str, key: Option<&str>) -> Result<String, NameError> {
    let mut parts = Vec::new();
    for m in module {
        // Module instances are written `name` or `name["key"]` / `name[0]`.
        let (m_name, m_key) = match m.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']').trim_matches('"'))),
            None => (m.as_str(), None),
        };
        parts.push(map(m_name)?);
        if let Some(k) = m_key {
            parts.push(map(k)?);
        }
    }
    parts.push(map(name)?);
    if let Some(k) = key {
        parts.push(map(k)?);
    }
    Ok(parts.join("-"))
}

/// `prefix-stem`, checked against `max` once `extra` more characters are appended.
pub fn object(prefix: &str, stem: &str, extra: usize, max: usize) -> Result<String, NameError> {
    let name = format!("{prefix}-{stem}");
    if name.len() + extra > max {
        let shown = if extra > 0 { format!("{name}-{}", "x".repeat(extra - 1)) } else { name };
        return Err(NameError::TooLong { name: shown, max });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_map_to_dashes_and_nothing_else_is_rewritten() {
        assert_eq!(map("fraud_api").unwrap(), "fraud-api");
        assert_eq!(map("Fraud"), Err(NameError::Character('F')));
        assert_eq!(map("a.b"), Err(NameError::Character('.')));
        assert_eq!(map("_a"), Err(NameError::Edge));
        assert_eq!(map(""), Err(NameError::Edge));
    }

    #[test]
    fn stems_join_modules_names_and_keys() {
        assert_eq!(stem(&["fraud".into()], "api", None).unwrap(), "fraud-api");
        assert_eq!(stem(&[], "scoring", Some("eu-west")).unwrap(), "scoring-eu-west");
        assert_eq!(
            stem(&["drift_retrain[\"ap-south\"]".into()], "drift", None).unwrap(),
            "drift-retrain-ap-south-drift"
        );
        assert_eq!(stem(&["m[0]".into()], "x", Some("1")).unwrap(), "m-0-x-1");
    }

    #[test]
    fn system_names_start_with_a_letter_and_leave_room() {
        assert_eq!(system("fraud-detection").unwrap(), "fraud-detection");
        assert_eq!(system("1fraud"), Err(NameError::NotLetterFirst));
        assert!(matches!(system(&"a".repeat(53)), Err(NameError::TooLong { .. })));
        assert!(system(&"a".repeat(52)).is_ok());
    }

    #[test]
    fn labels() {
        assert!(check_label("churn-scoring").is_ok());
        assert!(check_label("Churn").is_err());
        assert!(check_label("-a").is_err());
        assert!(check_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn object_names_count_what_is_appended() {
        assert_eq!(object("s", "job", 9, 63).unwrap(), "s-job");
        assert!(object(&"s".repeat(50), "job", 9, 63).is_ok());
        assert!(object(&"s".repeat(51), "job", 9, 63).is_err());
    }
}
