//! Variable type constraints (`type = list(string)`): parsed from the expression syntax and
//! applied to values with Terraform's safe conversions (number ↔ string, bool ↔ string).

use crate::value::{format_number, Value};
use hcl_edit::expr::{Expression, ObjectKey};
use indexmap::IndexMap;
use std::fmt;

/// A type constraint of a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeConstraint {
    /// `any`
    Any,
    /// `string`
    String,
    /// `number`
    Number,
    /// `bool`
    Bool,
    /// `list(T)`
    List(Box<TypeConstraint>),
    /// `set(T)`
    Set(Box<TypeConstraint>),
    /// `map(T)`
    Map(Box<TypeConstraint>),
    /// `object({ a = T, b = optional(T, default), … })`
    Object(IndexMap<String, Field>),
    /// `tuple([T, …])`
    Tuple(Vec<TypeConstraint>),
}

/// An attribute of an object type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its type.
    pub ty: TypeConstraint,
    /// Declared with `optional(…)`: may be left out.
    pub optional: bool,
    /// The value used when an optional attribute is left out (null without one).
    pub default: Option<Value>,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.optional, &self.default) {
            (false, _) => write!(f, "{}", self.ty),
            (true, None) => write!(f, "optional({})", self.ty),
            (true, Some(d)) => write!(f, "optional({}, {d})", self.ty),
        }
    }
}

impl fmt::Display for TypeConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeConstraint::Any => f.write_str("any"),
            TypeConstraint::String => f.write_str("string"),
            TypeConstraint::Number => f.write_str("number"),
            TypeConstraint::Bool => f.write_str("bool"),
            TypeConstraint::List(t) => write!(f, "list({t})"),
            TypeConstraint::Set(t) => write!(f, "set({t})"),
            TypeConstraint::Map(t) => write!(f, "map({t})"),
            TypeConstraint::Object(m) => {
                let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                write!(f, "object({{ {} }})", fields.join(", "))
            }
            TypeConstraint::Tuple(t) => {
                let items: Vec<String> = t.iter().map(|v| v.to_string()).collect();
                write!(f, "tuple([{}])", items.join(", "))
            }
        }
    }
}

/// Parses a type expression; `Err` is a message for the user.
pub fn parse(expr: &Expression) -> Result<TypeConstraint, String> {
    match expr {
        Expression::Variable(v) => match v.as_str() {
            "any" => Ok(TypeConstraint::Any),
            "string" => Ok(TypeConstraint::String),
            "number" => Ok(TypeConstraint::Number),
            "bool" => Ok(TypeConstraint::Bool),
            other => Err(format!("`{other}` is not a type")),
        },
        Expression::FuncCall(call) => {
            let name = call.name.name.as_str();
            let args: Vec<&Expression> = call.args.iter().collect();
            if args.len() != 1 {
                return Err(format!("`{name}(…)` takes exactly one argument"));
            }
            match name {
                "list" => Ok(TypeConstraint::List(Box::new(parse(args[0])?))),
                "set" => Ok(TypeConstraint::Set(Box::new(parse(args[0])?))),
                "map" => Ok(TypeConstraint::Map(Box::new(parse(args[0])?))),
                "object" => match args[0] {
                    Expression::Object(o) => {
                        let mut fields = IndexMap::new();
                        for (k, v) in o.iter() {
                            let key = match k {
                                ObjectKey::Ident(i) => i.as_str().to_string(),
                                ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                                ObjectKey::Expression(_) => return Err("object type keys must be names".into()),
                            };
                            fields.insert(key, field(v.expr())?);
                        }
                        Ok(TypeConstraint::Object(fields))
                    }
                    _ => Err("`object(…)` takes an object of attribute types: object({ name = string })".into()),
                },
                "tuple" => match args[0] {
                    Expression::Array(a) => Ok(TypeConstraint::Tuple(a.iter().map(parse).collect::<Result<_, _>>()?)),
                    _ => Err("`tuple(…)` takes a list of types: tuple([string, number])".into()),
                },
                other => Err(format!("`{other}(…)` is not a type constructor")),
            }
        }
        Expression::String(s) => Err(format!("types are written without quotes: type = {}", s.value())),
        _ => Err("expected a type such as string, number, bool, any, list(string) or map(number)".into()),
    }
}

fn field(expr: &Expression) -> Result<Field, String> {
    if let Expression::FuncCall(call) = expr {
        if call.name.name.as_str() == "optional" {
            let args: Vec<&Expression> = call.args.iter().collect();
            return match args.as_slice() {
                [t] => Ok(Field { ty: parse(t)?, optional: true, default: None }),
                [t, d] => {
                    let ty = parse(t)?;
                    let default = literal(d).ok_or("the default of `optional(…)` must be a literal value")?;
                    let default = convert(default, &ty).map_err(|e| format!("default of `optional(…)`: {e}"))?;
                    Ok(Field { ty, optional: true, default: Some(default) })
                }
                _ => Err("`optional(…)` takes a type and an optional default".into()),
            };
        }
    }
    Ok(Field { ty: parse(expr)?, optional: false, default: None })
}

/// A constant written in a type expression (`optional(number, 2)`).
fn literal(expr: &Expression) -> Option<Value> {
    Some(match expr {
        Expression::Null(_) => Value::Null,
        Expression::Bool(b) => Value::Bool(*b.value()),
        Expression::Number(n) => Value::Number(n.value().as_f64()?),
        Expression::String(s) => Value::String(s.value().clone()),
        Expression::Array(a) => Value::List(a.iter().map(literal).collect::<Option<_>>()?),
        Expression::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let key = match k {
                        ObjectKey::Ident(i) => i.as_str().to_string(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(_) => return None,
                    };
                    Some((key, literal(v.expr())?))
                })
                .collect::<Option<_>>()?,
        ),
        Expression::UnaryOp(u) => match (u.operator.value(), literal(&u.expr)?) {
            (hcl_edit::expr::UnaryOperator::Neg, Value::Number(n)) => Value::Number(-n),
            _ => return None,
        },
        _ => return None,
    })
}

/// Converts `value` to the constraint, or says why it cannot.
pub fn convert(value: Value, ty: &TypeConstraint) -> Result<Value, String> {
    match (ty, value) {
        (_, Value::Null) => Ok(Value::Null),
        (TypeConstraint::Any, v) => Ok(v),
        (_, Value::Ref(r)) => Err(format!("expected {ty}, got a reference to {}", r.address)),
        (TypeConstraint::String, Value::String(s)) => Ok(Value::String(s)),
        (TypeConstraint::String, Value::Number(n)) => Ok(Value::String(format_number(n))),
        (TypeConstraint::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (TypeConstraint::Number, Value::Number(n)) => Ok(Value::Number(n)),
        (TypeConstraint::Number, Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::Number(n)),
            _ => Err(format!("expected number, got string {s:?}")),
        },
        (TypeConstraint::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (TypeConstraint::Bool, Value::String(s)) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
        (TypeConstraint::List(t), Value::List(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| convert(v, t).map_err(|e| format!("element {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        (TypeConstraint::Set(t), Value::List(items)) => {
            let mut out: Vec<Value> = Vec::new();
            for (i, v) in items.into_iter().enumerate() {
                let v = convert(v, t).map_err(|e| format!("element {i}: {e}"))?;
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(Value::List(out))
        }
        (TypeConstraint::Map(t), Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| convert(v, t).map(|v| (k.clone(), v)).map_err(|e| format!("key {k:?}: {e}")))
            .collect::<Result<IndexMap<_, _>, _>>()
            .map(Value::Object),
        (TypeConstraint::Object(fields), Value::Object(mut m)) => {
            let mut out = IndexMap::new();
            for (k, f) in fields {
                let v = match m.swap_remove(k) {
                    Some(v) if !v.is_null() => v,
                    _ if f.optional => f.default.clone().unwrap_or(Value::Null),
                    _ if matches!(f.ty, TypeConstraint::Any) => Value::Null,
                    _ => return Err(format!("attribute `{k}` is required")),
                };
                out.insert(k.clone(), convert(v, &f.ty).map_err(|e| format!("attribute `{k}`: {e}"))?);
            }
            if let Some(extra) = m.keys().next() {
                return Err(format!("unexpected attribute `{extra}`"));
            }
            Ok(Value::Object(out))
        }
        (TypeConstraint::Tuple(ts), Value::List(items)) => {
            if ts.len() != items.len() {
                return Err(format!("expected a tuple of {} elements, got {}", ts.len(), items.len()));
            }
            items.into_iter().zip(ts).map(|(v, t)| convert(v, t)).collect::<Result<Vec<_>, _>>().map(Value::List)
        }
        (ty, v) => Err(format!("expected {ty}, got {}", v.type_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(s: &str) -> TypeConstraint {
        parse(&hcl_edit::parser::parse_expr(s).unwrap()).unwrap()
    }

    #[test]
    fn parses_and_converts() {
        assert_eq!(ty("list(string)"), TypeConstraint::List(Box::new(TypeConstraint::String)));
        assert_eq!(convert(Value::Number(3.0), &ty("string")), Ok(Value::String("3".into())));
        assert_eq!(convert(Value::String("0.5".into()), &ty("number")), Ok(Value::Number(0.5)));
        assert!(convert(Value::String("abc".into()), &ty("number")).is_err());
        let obj = ty("object({ a = number, b = string })");
        let v = Value::Object([("a".to_string(), Value::Number(1.0))].into_iter().collect());
        assert_eq!(convert(v, &obj), Err("attribute `b` is required".into()));
        assert!(parse(&hcl_edit::parser::parse_expr("\"string\"").unwrap()).unwrap_err().contains("without quotes"));
        let opt = ty("object({ name = string, replicas = optional(number, 2), zone = optional(string) })");
        let v = Value::Object([("name".to_string(), Value::String("eu".into()))].into_iter().collect());
        let want = Value::Object(
            [
                ("name".to_string(), Value::String("eu".into())),
                ("replicas".to_string(), Value::Number(2.0)),
                ("zone".to_string(), Value::Null),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(convert(v, &opt), Ok(want));
        assert!(parse(&hcl_edit::parser::parse_expr("object({ a = optional(number, \"x\") })").unwrap()).is_err());
        assert_eq!(
            convert(Value::List(vec![Value::Number(1.0), Value::Number(1.0)]), &ty("set(number)")),
            Ok(Value::List(vec![Value::Number(1.0)]))
        );
    }
}
