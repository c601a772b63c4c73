//! Terraform's value model (cty) as far as the plugin protocol carries it. In: a schema's
//! [`Ty`] and the bytes Terraform sends (MessagePack, or JSON for stored state). Out: a [`Val`]
//! the provider works on, and back to MessagePack for Terraform.
//!
//! The encoding: null is nil; an unknown value is MessagePack extension type 0; numbers are
//! integers when whole, else decimal strings (Terraform sends `0.2` as the text "0.2": a
//! float64 would not equal the configuration's value); lists, sets and tuples
//! are arrays; maps and objects are maps; a value of the dynamic pseudo-type is a two-element
//! array of its type (cty's JSON type notation) and its value.

use std::collections::BTreeMap;

use rmpv::Value as Mp;
use serde_json::{json, Value as Json};

/// A cty type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// A string.
    String,
    /// A number.
    Number,
    /// A boolean.
    Bool,
    /// Any type, decided by the value (`any` in configurations).
    Dynamic,
    /// A list of one element type.
    List(Box<Ty>),
    /// A set of one element type.
    Set(Box<Ty>),
    /// A map from strings to one element type.
    Map(Box<Ty>),
    /// An object with these attributes.
    Object(BTreeMap<String, Ty>),
    /// A tuple of these element types.
    Tuple(Vec<Ty>),
}

impl Ty {
    /// A list of `t`.
    pub fn list(t: Ty) -> Ty {
        Ty::List(Box::new(t))
    }

    /// A map of `t`.
    pub fn map(t: Ty) -> Ty {
        Ty::Map(Box::new(t))
    }

    /// cty's JSON notation: `"string"`, `["list","number"]`, `["object",{…}]`.
    pub fn to_json(&self) -> Json {
        match self {
            Ty::String => json!("string"),
            Ty::Number => json!("number"),
            Ty::Bool => json!("bool"),
            Ty::Dynamic => json!("dynamic"),
            Ty::List(t) => json!(["list", t.to_json()]),
            Ty::Set(t) => json!(["set", t.to_json()]),
            Ty::Map(t) => json!(["map", t.to_json()]),
            Ty::Object(attrs) => {
                let m: serde_json::Map<String, Json> = attrs.iter().map(|(k, t)| (k.clone(), t.to_json())).collect();
                json!(["object", m])
            }
            Ty::Tuple(items) => json!(["tuple", items.iter().map(Ty::to_json).collect::<Vec<_>>()]),
        }
    }

    /// Parses cty's JSON notation.
    pub fn from_json(j: &Json) -> Result<Ty, String> {
        match j {
            Json::String(s) => match s.as_str() {
                "string" => Ok(Ty::String),
                "number" => Ok(Ty::Number),
                "bool" => Ok(Ty::Bool),
                "dynamic" => Ok(Ty::Dynamic),
                other => Err(format!("unknown type {other:?}")),
            },
            Json::Array(parts) if parts.len() == 2 => {
                let kind = parts[0].as_str().unwrap_or_default();
                match kind {
                    "list" => Ok(Ty::list(Ty::from_json(&parts[1])?)),
                    "set" => Ok(Ty::Set(Box::new(Ty::from_json(&parts[1])?))),
                    "map" => Ok(Ty::map(Ty::from_json(&parts[1])?)),
                    "object" => {
                        let m = parts[1].as_object().ok_or("object type without attributes")?;
                        Ok(Ty::Object(
                            m.iter().map(|(k, v)| Ok((k.clone(), Ty::from_json(v)?))).collect::<Result<_, String>>()?,
                        ))
                    }
                    "tuple" => {
                        let items = parts[1].as_array().ok_or("tuple type without elements")?;
                        Ok(Ty::Tuple(items.iter().map(Ty::from_json).collect::<Result<_, _>>()?))
                    }
                    other => Err(format!("unknown type {other:?}")),
                }
            }
            // `["object", {…}, ["optional"…]]` carries optional-attribute markers we do not need.
            Json::Array(parts) if parts.len() == 3 && parts[0] == "object" => {
                Ty::from_json(&json!([parts[0].clone(), parts[1].clone()]))
            }
            other => Err(format!("not a type: {other}")),
        }
    }

    /// Does the type contain the dynamic pseudo-type anywhere?
    pub fn has_dynamic(&self) -> bool {
        match self {
            Ty::Dynamic => true,
            Ty::List(t) | Ty::Set(t) | Ty::Map(t) => t.has_dynamic(),
            Ty::Object(m) => m.values().any(Ty::has_dynamic),
            Ty::Tuple(ts) => ts.iter().any(Ty::has_dynamic),
            Ty::String | Ty::Number | Ty::Bool => false,
        }
    }

    /// The type of a value built by the provider for a dynamic attribute.
    pub fn infer(v: &Val) -> Ty {
        match v {
            Val::Null | Val::Unknown => Ty::Dynamic,
            Val::Bool(_) => Ty::Bool,
            Val::Number(_) => Ty::Number,
            Val::String(_) => Ty::String,
            Val::List(items) => Ty::Tuple(items.iter().map(Ty::infer).collect()),
            Val::Map(m) => Ty::Object(m.iter().map(|(k, v)| (k.clone(), Ty::infer(v))).collect()),
            Val::Typed(t, _) => t.clone(),
        }
    }
}

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Null (unset).
    Null,
    /// Known only after apply.
    Unknown,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A list, set or tuple.
    List(Vec<Val>),
    /// A map or object.
    Map(BTreeMap<String, Val>),
    /// A value of a dynamic attribute, with the type it arrived with (kept so it goes back to
    /// Terraform unchanged).
    Typed(Ty, Box<Val>),
}

impl Val {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Val {
        Val::String(s.into())
    }

    /// A number value.
    pub fn num(n: f64) -> Val {
        serde_json::Number::from_f64(n).map_or(Val::Null, Val::Number)
    }

    /// An object from pairs.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Val)>) -> Val {
        Val::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Without a dynamic wrapper.
    pub fn inner(&self) -> &Val {
        match self {
            Val::Typed(_, v) => v.inner(),
            v => v,
        }
    }

    /// Is it null?
    pub fn is_null(&self) -> bool {
        matches!(self.inner(), Val::Null)
    }

    /// Is it, or anything in it, unknown?
    pub fn is_unknown(&self) -> bool {
        match self {
            Val::Unknown => true,
            Val::List(items) => items.iter().any(Val::is_unknown),
            Val::Map(m) => m.values().any(Val::is_unknown),
            Val::Typed(_, v) => v.is_unknown(),
            _ => false,
        }
    }

    /// An attribute of an object (null when absent).
    pub fn get(&self, name: &str) -> &Val {
        static NULL: Val = Val::Null;
        match self.inner() {
            Val::Map(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Sets an attribute of an object.
    pub fn set(&mut self, name: &str, v: Val) {
        if let Val::Map(m) = self {
            m.insert(name.to_string(), v);
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self.inner() {
            Val::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self.inner() {
            Val::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The elements, if it is a list (null: none).
    pub fn items(&self) -> &[Val] {
        match self.inner() {
            Val::List(items) => items,
            _ => &[],
        }
    }

    /// The entries, if it is a map or object.
    pub fn entries(&self) -> Option<&BTreeMap<String, Val>> {
        match self.inner() {
            Val::Map(m) => Some(m),
            _ => None,
        }
    }

    /// As JSON (unknown and null become null).
    pub fn to_json(&self) -> Json {
        match self {
            Val::Null | Val::Unknown => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Number(n) => Json::Number(n.clone()),
            Val::String(s) => Json::String(s.clone()),
            Val::List(items) => Json::Array(items.iter().map(Val::to_json).collect()),
            Val::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Val::Typed(_, v) => v.to_json(),
        }
    }

    /// From JSON, shaped by a type (for values Terraform stored as JSON, and for values the
    /// provider computes).
    pub fn from_json(ty: &Ty, j: &Json) -> Result<Val, String> {
        if j.is_null() {
            return Ok(Val::Null);
        }
        Ok(match ty {
            Ty::String => match j {
                Json::String(s) => Val::String(s.clone()),
                Json::Number(n) => Val::String(n.to_string()),
                Json::Bool(b) => Val::String(b.to_string()),
                other => Val::String(other.to_string()),
            },
            Ty::Number => match j {
                Json::Number(n) => Val::Number(n.clone()),
                Json::String(s) => s.parse::<f64>().map(Val::num).map_err(|_| format!("{s:?} is not a number"))?,
                other => return Err(format!("expected a number, not {other}")),
            },
            Ty::Bool => match j {
                Json::Bool(b) => Val::Bool(*b),
                Json::String(s) if s == "true" || s == "false" => Val::Bool(s == "true"),
                other => return Err(format!("expected a bool, not {other}")),
            },
            Ty::List(t) | Ty::Set(t) => Val::List(
                j.as_array()
                    .ok_or_else(|| format!("expected a list, not {j}"))?
                    .iter()
                    .map(|e| Val::from_json(t, e))
                    .collect::<Result<_, _>>()?,
            ),
            Ty::Tuple(ts) => Val::List(
                j.as_array()
                    .ok_or_else(|| format!("expected a tuple, not {j}"))?
                    .iter()
                    .zip(ts)
                    .map(|(e, t)| Val::from_json(t, e))
                    .collect::<Result<_, _>>()?,
            ),
            Ty::Map(t) => Val::Map(
                j.as_object()
                    .ok_or_else(|| format!("expected a map, not {j}"))?
                    .iter()
                    .map(|(k, e)| Ok((k.clone(), Val::from_json(t, e)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Ty::Object(attrs) => {
                let m = j.as_object().ok_or_else(|| format!("expected an object, not {j}"))?;
                Val::Map(
                    attrs
                        .iter()
                        .map(|(k, t)| Ok((k.clone(), Val::from_json(t, m.get(k).unwrap_or(&Json::Null))?)))
                        .collect::<Result<_, String>>()?,
                )
            }
            Ty::Dynamic => {
                // Stored state writes a dynamic value as {"value": …, "type": …}.
                if let (Some(v), Some(t)) = (j.get("value"), j.get("type")) {
                    let t = Ty::from_json(t)?;
                    Val::Typed(t.clone(), Box::new(Val::from_json(&t, v)?))
                } else {
                    let v = untyped(j);
                    Val::Typed(Ty::infer(&v), Box::new(v))
                }
            }
        })
    }
}

/// JSON to a value without a type.
fn untyped(j: &Json) -> Val {
    match j {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => Val::Number(n.clone()),
        Json::String(s) => Val::String(s.clone()),
        Json::Array(items) => Val::List(items.iter().map(untyped).collect()),
        Json::Object(m) => Val::Map(m.iter().map(|(k, v)| (k.clone(), untyped(v))).collect()),
    }
}

/// Decodes MessagePack bytes of a value of type `ty`.
pub fn decode(ty: &Ty, bytes: &[u8]) -> Result<Val, String> {
    if bytes.is_empty() {
        return Ok(Val::Null);
    }
    let mut reader = bytes;
    let mp = rmpv::decode::read_value(&mut reader).map_err(|e| format!("invalid MessagePack: {e}"))?;
    from_mp(ty, &mp)
}

fn from_mp(ty: &Ty, mp: &Mp) -> Result<Val, String> {
    if let Mp::Ext(0, _) = mp {
        return Ok(Val::Unknown);
    }
    if mp.is_nil() {
        return Ok(Val::Null);
    }
    Ok(match ty {
        Ty::String => Val::String(mp.as_str().ok_or_else(|| format!("expected a string, not {mp}"))?.to_string()),
        Ty::Number => match mp {
            Mp::Integer(i) => {
                if let Some(i) = i.as_i64() {
                    Val::Number(i.into())
                } else if let Some(u) = i.as_u64() {
                    Val::Number(u.into())
                } else {
                    return Err(format!("bad integer {i}"));
                }
            }
            Mp::F64(f) => Val::num(*f),
            Mp::F32(f) => Val::num(f64::from(*f)),
            Mp::String(s) => {
                let s = s.as_str().unwrap_or_default();
                s.parse::<f64>().map(Val::num).map_err(|_| format!("{s:?} is not a number"))?
            }
            other => return Err(format!("expected a number, not {other}")),
        },
        Ty::Bool => Val::Bool(mp.as_bool().ok_or_else(|| format!("expected a bool, not {mp}"))?),
        Ty::List(t) | Ty::Set(t) => Val::List(
            mp.as_array()
                .ok_or_else(|| format!("expected a list, not {mp}"))?
                .iter()
                .map(|e| from_mp(t, e))
                .collect::<Result<_, _>>()?,
        ),
        Ty::Tuple(ts) => Val::List(
            mp.as_array()
                .ok_or_else(|| format!("expected a tuple, not {mp}"))?
                .iter()
                .zip(ts)
                .map(|(e, t)| from_mp(t, e))
                .collect::<Result<_, _>>()?,
        ),
        Ty::Map(t) => Val::Map(entries(mp)?.map(|(k, e)| Ok((k, from_mp(t, e)?))).collect::<Result<_, String>>()?),
        Ty::Object(attrs) => {
            let mut m: BTreeMap<String, Val> = attrs.keys().map(|k| (k.clone(), Val::Null)).collect();
            for (k, e) in entries(mp)? {
                if let Some(t) = attrs.get(&k) {
                    m.insert(k, from_mp(t, e)?);
                }
            }
            Val::Map(m)
        }
        Ty::Dynamic => {
            let pair = mp.as_array().filter(|a| a.len() == 2).ok_or("a dynamic value without its type")?;
            let type_json: Json = match &pair[0] {
                Mp::Binary(b) => serde_json::from_slice(b).map_err(|e| e.to_string())?,
                Mp::String(s) => serde_json::from_str(s.as_str().unwrap_or_default()).map_err(|e| e.to_string())?,
                other => return Err(format!("bad dynamic type {other}")),
            };
            let t = Ty::from_json(&type_json)?;
            let v = from_mp(&t, &pair[1])?;
            Val::Typed(t, Box::new(v))
        }
    })
}

fn entries(mp: &Mp) -> Result<impl Iterator<Item = (String, &Mp)>, String> {
    let m = mp.as_map().ok_or_else(|| format!("expected a map, not {mp}"))?;
    Ok(m.iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v)))
}

/// Encodes a value of type `ty` as MessagePack.
pub fn encode(ty: &Ty, v: &Val) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &to_mp(ty, v));
    out
}

fn to_mp(ty: &Ty, v: &Val) -> Mp {
    match (ty, v) {
        (_, Val::Unknown) => Mp::Ext(0, vec![0]),
        (_, Val::Null) => Mp::Nil,
        (Ty::Dynamic, v) => {
            let (t, inner) = match v {
                Val::Typed(t, inner) => (t.clone(), inner.as_ref()),
                other => (Ty::infer(other), other),
            };
            let type_json = t.to_json().to_string();
            Mp::Array(vec![Mp::Binary(type_json.into_bytes()), to_mp(&t, inner)])
        }
        (t, Val::Typed(_, inner)) => to_mp(t, inner),
        (Ty::String, other) => Mp::String(scalar_text(other).into()),
        (Ty::Number, Val::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Mp::Integer(i.into())
            } else if let Some(u) = n.as_u64() {
                Mp::Integer(u.into())
            } else {
                // As decimal text, the way Terraform sends a number that is not exactly a
                // float64 (`0.2` from a configuration): it parses the text back to the value
                // its configuration holds, where a float64 would differ in the last bits.
                Mp::String(n.as_f64().unwrap_or(0.0).to_string().into())
            }
        }
        (Ty::Number, Val::String(s)) => s.parse::<f64>().map_or(Mp::Nil, Mp::F64),
        (Ty::Bool, Val::Bool(b)) => Mp::Boolean(*b),
        (Ty::List(t) | Ty::Set(t), Val::List(items)) => Mp::Array(items.iter().map(|i| to_mp(t, i)).collect()),
        (Ty::Tuple(ts), Val::List(items)) => Mp::Array(items.iter().zip(ts).map(|(i, t)| to_mp(t, i)).collect()),
        (Ty::Map(t), Val::Map(m)) => {
            Mp::Map(m.iter().map(|(k, v)| (Mp::String(k.as_str().into()), to_mp(t, v))).collect())
        }
        (Ty::Object(attrs), Val::Map(m)) => Mp::Map(
            attrs
                .iter()
                .map(|(k, t)| (Mp::String(k.as_str().into()), to_mp(t, m.get(k).unwrap_or(&Val::Null))))
                .collect(),
        ),
        // A value that does not fit its type: null rather than a corrupt message.
        _ => Mp::Nil,
    }
}

fn scalar_text(v: &Val) -> String {
    match v {
        Val::String(s) => s.clone(),
        Val::Number(n) => n.to_string(),
        Val::Bool(b) => b.to_string(),
        other => other.to_json().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj_ty() -> Ty {
        Ty::Object(BTreeMap::from([
            ("name".to_string(), Ty::String),
            ("n".to_string(), Ty::Number),
            ("tags".to_string(), Ty::list(Ty::String)),
            ("params".to_string(), Ty::Dynamic),
            ("m".to_string(), Ty::map(Ty::Number)),
        ]))
    }

    #[test]
    fn values_round_trip_through_messagepack() {
        let params = Val::Typed(
            Ty::Object(BTreeMap::from([("eta".to_string(), Ty::Number), ("objective".to_string(), Ty::String)])),
            Box::new(Val::object([("eta", Val::num(0.1)), ("objective", Val::str("binary:logistic"))])),
        );
        let v = Val::object([
            ("name", Val::str("fraud")),
            ("n", Val::Number(6.into())),
            ("tags", Val::List(vec![Val::str("a"), Val::Unknown])),
            ("params", params),
            ("m", Val::object([("auc", Val::num(0.93))])),
        ]);
        let back = decode(&obj_ty(), &encode(&obj_ty(), &v)).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.get("params").get("eta").as_f64(), Some(0.1));
        assert!(back.is_unknown());
    }

    #[test]
    fn types_round_trip_through_json_notation() {
        let t = obj_ty();
        assert_eq!(Ty::from_json(&t.to_json()).unwrap(), t);
    }

    #[test]
    fn stored_json_state_is_read_by_type() {
        let j = json!({"name": "x", "n": 3, "tags": ["a"], "params": {"value": {"a": 1}, "type": ["object", {"a": "number"}]}, "m": null});
        let v = Val::from_json(&obj_ty(), &j).unwrap();
        assert_eq!(v.get("params").get("a").as_f64(), Some(1.0));
        assert!(v.get("m").is_null());
    }
}
