//! Values: what expressions evaluate to. Besides HCL's null, bool, number, string, list and
//! object there is [`Value::Ref`], a reference to another resource (`source.transactions`,
//! `endpoint.api.url`): references are not evaluated into data but kept as typed edges, because
//! they become the dependency graph and may name values known only after apply.

use crate::source::Span;
use indexmap::IndexMap;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::fmt;

/// A resource address: optional module path, kind, name and instance key.
/// `module.fraud.training_job.model`, `source.shard["eu"]`, `endpoint.api[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// Module instances from the root down, e.g. `["fraud"]` or `["shard[\"eu\"]"]`.
    pub module: Vec<String>,
    /// Block kind (`source`, `training_job`, …).
    pub kind: String,
    /// Block name.
    pub name: String,
    /// Instance key, for resources with `count` or `for_each`.
    pub key: Option<InstanceKey>,
}

/// The key of one instance of a resource or module with `count` / `for_each`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceKey {
    /// `count` index.
    Index(usize),
    /// `for_each` key.
    Key(String),
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceKey::Index(i) => write!(f, "[{i}]"),
            InstanceKey::Key(k) => write!(f, "[{k:?}]"),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.module {
            write!(f, "module.{m}.")?;
        }
        write!(f, "{}.{}", self.kind, self.name)?;
        if let Some(k) = &self.key {
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A reference to a resource, possibly into one of its attributes
/// (`source.transactions.columns.is_fraud` → path `["columns", "is_fraud"]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The resource referred to.
    pub address: Address,
    /// Attribute path below it.
    pub path: Vec<String>,
    /// Where the reference was written.
    pub span: Span,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        for p in &self.path {
            write!(f, ".{p}")?;
        }
        Ok(())
    }
}

/// An evaluated value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Any number (HCL numbers are arbitrary precision; f64 is enough for ML configuration).
    Number(f64),
    /// A string.
    String(String),
    /// A list or tuple.
    List(Vec<Value>),
    /// An object or map, in source order.
    Object(IndexMap<String, Value>),
    /// A reference to a resource (or one of its attributes).
    Ref(Box<Reference>),
}

impl Value {
    /// A value given on a command line (`--var name=VALUE`) or by a Terraform variable map: an
    /// HCL or JSON literal (number, bool, list, object, quoted string) if it parses as one
    /// without references, otherwise the raw text as a string.
    pub fn parse_literal(raw: &str) -> Value {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(raw) {
            return Value::from_json(&json);
        }
        if let Ok(body) = hcl_edit::parser::parse_body(&format!("v = {raw}\n")) {
            if let Some(Ok(v)) = body.get_attribute("v").map(|a| Value::from_literal_expr(&a.value)) {
                return v;
            }
        }
        Value::String(raw.to_string())
    }

    /// The value of an HCL expression that is a literal (no references, functions or
    /// operators); `Err` otherwise.
    #[allow(clippy::result_unit_err)]
    pub fn from_literal_expr(expr: &hcl_edit::expr::Expression) -> Result<Value, ()> {
        use hcl_edit::expr::{Expression, ObjectKey};
        Ok(match expr {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => Value::Bool(*b.value()),
            Expression::Number(n) => Value::Number(n.value().as_f64().ok_or(())?),
            Expression::String(s) => Value::String(s.value().clone()),
            Expression::Array(a) => Value::List(a.iter().map(Value::from_literal_expr).collect::<Result<_, _>>()?),
            Expression::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            ObjectKey::Ident(i) => i.as_str().to_string(),
                            ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                            _ => return Err(()),
                        };
                        Ok((key, Value::from_literal_expr(v.expr())?))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(()),
        })
    }

    /// The type name used in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Object(_) => "object",
            Value::Ref(_) => "reference",
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if it is one.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Is it null?
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// HCL's string conversion for templates and string parameters: strings as they are,
    /// numbers and bools in their literal form; nothing else converts.
    pub fn to_template_string(&self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(format_number(*n)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Does this value (or anything inside it) contain a reference?
    pub fn contains_ref(&self) -> bool {
        match self {
            Value::Ref(_) => true,
            Value::List(v) => v.iter().any(Value::contains_ref),
            Value::Object(m) => m.values().any(Value::contains_ref),
            _ => false,
        }
    }

    /// Converts to JSON; references become their address string.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Converts from JSON (used for `jsondecode`-like inputs and `-var` values).
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect())
            }
        }
    }
}

/// Numbers print as integers when they are whole (so `6` stays `6`, not `6.0`).
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    s.serialize_i64(*n as i64)
                } else {
                    s.serialize_f64(*n)
                }
            }
            Value::String(v) => s.serialize_str(v),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Ref(r) => s.collect_str(r),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Ref(r) => write!(f, "{r}"),
            other => write!(f, "{}", serde_json::to_string(other).unwrap_or_default()),
        }
    }
}
