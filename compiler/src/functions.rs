//! The language's built-in functions (`lower("A")`, `merge(a, b)`, `file("query.sql")`). A
//! function name, its already-evaluated argument [`Value`]s and a [`FunctionContext`] go in; the
//! result [`Value`] comes out, or a [`FunctionError`] that names the offending argument so the
//! diagnostic can point at it.
//!
//! Semantics follow Terraform's functions of the same name, with the differences noted on
//! [`FUNCTIONS`] entries and below. References ([`Value::Ref`]) are opaque: they can be moved
//! around by collection functions (`concat`, `merge`, `lookup`, `element`, `toset`, `coalesce`,
//! `length` of a list), but their text is not known while compiling, so string functions reject
//! them. [`FUNCTIONS`] lists every function, sorted by name, for documentation and "did you mean".

use crate::value::{format_number, Reference, Value};
use indexmap::IndexMap;
use std::fmt;
use std::path::Path;

/// What functions may know about where they are called from.
#[derive(Debug, Clone, Copy)]
pub struct FunctionContext<'a> {
    /// The directory of the module being evaluated; `file()` paths are relative to it.
    pub base_dir: &'a Path,
}

/// Why a function call failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionError {
    /// What went wrong, naming the function and (1-based) argument.
    pub message: String,
    /// The 0-based index of the offending argument, to point the diagnostic at it; `None`
    /// when the call as a whole is wrong (too few arguments, unknown function).
    pub arg: Option<usize>,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
}

impl FunctionError {
    fn new(message: impl Into<String>, arg: Option<usize>) -> FunctionError {
        FunctionError { message: message.into(), arg, help: None }
    }

    fn help(mut self, help: impl Into<String>) -> FunctionError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FunctionError {}

/// One function's entry in the reference documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionDoc {
    /// The name it is called by.
    pub name: &'static str,
    /// Parameters and result, e.g. `lookup(object, key, default?) -> any`.
    pub signature: &'static str,
    /// One sentence saying what it does.
    pub summary: &'static str,
}

const fn doc(name: &'static str, signature: &'static str, summary: &'static str) -> FunctionDoc {
    FunctionDoc { name, signature, summary }
}

/// Every function, sorted by name.
pub const FUNCTIONS: &[FunctionDoc] = &[
    doc("abs", "abs(number) -> number", "The number without its sign."),
    doc("ceil", "ceil(number) -> number", "The smallest whole number not less than the number."),
    doc("coalesce", "coalesce(value...) -> any", "The first argument that is neither null nor an empty string."),
    doc("concat", "concat(list...) -> list", "The lists joined end to end."),
    doc("contains", "contains(list, value) -> bool", "Whether the list has an element equal to the value."),
    doc(
        "distinct",
        "distinct(list) -> list",
        "The list without repeated elements, keeping each first occurrence in place.",
    ),
    doc(
        "element",
        "element(list, index) -> any",
        "The element at a non-negative index, wrapping around past the end of the list.",
    ),
    doc("endswith", "endswith(string, suffix) -> bool", "Whether the string ends with the suffix."),
    doc(
        "file",
        "file(path) -> string",
        "The contents of a UTF-8 text file; relative paths start at the module's directory.",
    ),
    doc("flatten", "flatten(list) -> list", "The list with nested lists replaced by their elements, recursively."),
    doc("floor", "floor(number) -> number", "The largest whole number not greater than the number."),
    doc(
        "format",
        "format(spec, value...) -> string",
        "The spec with its verbs (%s %d %f %.Nf %v %q %t, and %% for %) replaced by the values.",
    ),
    doc(
        "join",
        "join(separator, list...) -> string",
        "The strings (or numbers and bools) of the lists, with the separator between them.",
    ),
    doc("jsondecode", "jsondecode(string) -> any", "The value a JSON text describes."),
    doc(
        "jsonencode",
        "jsonencode(value) -> string",
        "The value as compact JSON with object keys sorted; references become their address.",
    ),
    doc("keys", "keys(object) -> list", "The object's keys, sorted."),
    doc(
        "length",
        "length(string | list | object) -> number",
        "The number of characters of a string, or of elements of a list or object.",
    ),
    doc(
        "lookup",
        "lookup(object, key, default?) -> any",
        "The value at a key of an object, or the default when the key is absent.",
    ),
    doc("lower", "lower(string) -> string", "The string in lower case."),
    doc("max", "max(number...) -> number", "The largest of the numbers."),
    doc(
        "merge",
        "merge(object...) -> object",
        "The objects combined; a key in a later object replaces the same key in an earlier one.",
    ),
    doc("min", "min(number...) -> number", "The smallest of the numbers."),
    doc(
        "range",
        "range(start?, limit, step?) -> list",
        "Numbers from start (default 0) towards limit, excluded, by step (default 1 or -1); \
         at most 1024.",
    ),
    doc(
        "replace",
        "replace(string, search, replacement) -> string",
        "The string with every occurrence of search replaced.",
    ),
    doc(
        "split",
        "split(separator, string) -> list",
        "The parts of the string between separators; an empty separator splits into characters.",
    ),
    doc("startswith", "startswith(string, prefix) -> bool", "Whether the string starts with the prefix."),
    doc(
        "substr",
        "substr(string, offset, length) -> string",
        "Up to length characters from offset (negative counts from the end; length -1 = the rest).",
    ),
    doc("sum", "sum(list) -> number", "The total of a non-empty list of numbers."),
    doc("title", "title(string) -> string", "The string with the first letter of each word in upper case."),
    doc("tobool", "tobool(value) -> bool", "A bool, or the string \"true\" or \"false\", as a bool."),
    doc("tolist", "tolist(value) -> list", "The value as a list."),
    doc("tomap", "tomap(value) -> object", "The value as an object."),
    doc("tonumber", "tonumber(value) -> number", "A number, or a string holding one, as a number."),
    doc(
        "toset",
        "toset(list) -> list",
        "The distinct elements; all-number or all-string (including mixed primitive) sets are \
         sorted, others keep first-occurrence order.",
    ),
    doc("tostring", "tostring(value) -> string", "A string, number or bool as a string."),
    doc("trimspace", "trimspace(string) -> string", "The string without leading and trailing whitespace."),
    doc("upper", "upper(string) -> string", "The string in upper case."),
    doc("values", "values(object) -> list", "The object's values, in the order of its sorted keys."),
    doc(
        "zipmap",
        "zipmap(keys, values) -> object",
        "An object built from a list of keys and a list of values of the same length.",
    ),
];

/// Calls the function `name` with evaluated arguments.
///
/// An unknown name gives a [`FunctionError`] whose message is exactly `"unknown function"`
/// (with a "did you mean" help when a known name is close).
pub fn call(name: &str, args: &[Value], ctx: &FunctionContext) -> Result<Value, FunctionError> {
    let a = Args { name, values: args };
    match name {
        "abs" => a.math(f64::abs),
        "ceil" => a.math(f64::ceil),
        "coalesce" => coalesce(&a),
        "concat" => concat(&a),
        "contains" => contains(&a),
        "distinct" => {
            a.exactly(1)?;
            Ok(Value::List(distinct(a.list(0)?)))
        }
        "element" => element(&a),
        "endswith" => {
            a.exactly(2)?;
            Ok(Value::Bool(a.string(0)?.ends_with(a.string(1)?)))
        }
        "file" => file(&a, ctx),
        "flatten" => {
            a.exactly(1)?;
            let mut out = Vec::new();
            flatten_into(a.list(0)?, &mut out);
            Ok(Value::List(out))
        }
        "floor" => a.math(f64::floor),
        "format" => format(&a),
        "join" => join(&a),
        "jsondecode" => jsondecode(&a),
        "jsonencode" => {
            a.exactly(1)?;
            let json = sorted_json(a.get(0)?.to_json());
            Ok(Value::String(json.to_string()))
        }
        "keys" => {
            a.exactly(1)?;
            let keys = sorted_entries(a.object(0)?).into_iter().map(|(k, _)| Value::String(k.clone()));
            Ok(Value::List(keys.collect()))
        }
        "length" => length(&a),
        "lookup" => lookup(&a),
        "lower" => {
            a.exactly(1)?;
            Ok(Value::String(a.string(0)?.to_lowercase()))
        }
        "max" => a.fold_numbers(f64::max),
        "merge" => merge(&a),
        "min" => a.fold_numbers(f64::min),
        "range" => range(&a),
        "replace" => replace(&a),
        "split" => split(&a),
        "startswith" => {
            a.exactly(2)?;
            Ok(Value::Bool(a.string(0)?.starts_with(a.string(1)?)))
        }
        "substr" => substr(&a),
        "sum" => sum(&a),
        "title" => {
            a.exactly(1)?;
            Ok(Value::String(title_case(a.string(0)?)))
        }
        "tobool" => tobool(&a),
        "tolist" => {
            a.exactly(1)?;
            match a.get(0)? {
                v @ (Value::List(_) | Value::Null) => Ok(v.clone()),
                _ => Err(a.expected(0, "a list")),
            }
        }
        "tomap" => {
            a.exactly(1)?;
            match a.get(0)? {
                v @ (Value::Object(_) | Value::Null) => Ok(v.clone()),
                _ => Err(a.expected(0, "an object")),
            }
        }
        "tonumber" => tonumber(&a),
        "toset" => {
            a.exactly(1)?;
            match a.get(0)? {
                Value::Null => Ok(Value::Null),
                _ => Ok(Value::List(to_set(a.list(0)?))),
            }
        }
        "tostring" => {
            a.exactly(1)?;
            match a.get(0)? {
                Value::Null => Ok(Value::Null),
                Value::Ref(r) => Err(a.ref_as_string(0, r)),
                v => v.to_template_string().map(Value::String).ok_or_else(|| a.expected(0, "a string, number or bool")),
            }
        }
        "trimspace" => {
            a.exactly(1)?;
            Ok(Value::String(a.string(0)?.trim().to_string()))
        }
        "upper" => {
            a.exactly(1)?;
            Ok(Value::String(a.string(0)?.to_uppercase()))
        }
        "values" => {
            a.exactly(1)?;
            let values = sorted_entries(a.object(0)?).into_iter().map(|(_, v)| v.clone());
            Ok(Value::List(values.collect()))
        }
        "zipmap" => zipmap(&a),
        _ => Err(unknown_function(name)),
    }
}

fn unknown_function(name: &str) -> FunctionError {
    let error = FunctionError::new("unknown function", None);
    let closest = FUNCTIONS
        .iter()
        .map(|f| (strsim::damerau_levenshtein(name, f.name), f.name))
        .min_by_key(|(distance, _)| *distance);
    match closest {
        // Only suggest names close enough that they were probably meant.
        Some((distance, best)) if distance <= 2 && distance < name.chars().count() => {
            error.help(format!("did you mean `{best}`?"))
        }
        _ => error,
    }
}

/// The arguments of one call, with checked accessors that produce the right error.
struct Args<'a> {
    name: &'a str,
    values: &'a [Value],
}

impl<'a> Args<'a> {
    fn error(&self, i: usize, message: impl Into<String>) -> FunctionError {
        FunctionError::new(message, Some(i))
    }

    /// Checks the argument count is within `min..=max` (`max` `None`: no upper limit).
    fn count(&self, min: usize, max: Option<usize>) -> Result<(), FunctionError> {
        let got = self.values.len();
        let too_many = max.is_some_and(|max| got > max);
        if got >= min && !too_many {
            return Ok(());
        }
        let expected = match max {
            Some(max) if max == min => plural(min, "argument"),
            Some(max) => format!("{min} to {max} arguments"),
            None => format!("at least {}", plural(min, "argument")),
        };
        // Too many: point at the first extra argument. Too few: the call itself is wrong.
        let arg = if too_many { max } else { None };
        let error = FunctionError::new(format!("{}() expects {expected}, got {got}", self.name), arg);
        Err(match FUNCTIONS.iter().find(|f| f.name == self.name) {
            Some(doc) => error.help(format!("usage: {}", doc.signature)),
            None => error,
        })
    }

    fn exactly(&self, n: usize) -> Result<(), FunctionError> {
        self.count(n, Some(n))
    }

    fn get(&self, i: usize) -> Result<&'a Value, FunctionError> {
        self.values
            .get(i)
            .ok_or_else(|| FunctionError::new(format!("{}() is missing argument {}", self.name, i + 1), None))
    }

    /// "lower() expects a string as argument 1, got number".
    fn expected(&self, i: usize, what: &str) -> FunctionError {
        let value = self.values.get(i);
        let got = value.map_or("nothing", Value::type_name);
        let error = self.error(i, format!("{}() expects {what} as argument {}, got {got}", self.name, i + 1));
        match value {
            Some(Value::Ref(r)) => error.help(ref_help(r)),
            _ => error,
        }
    }

    fn ref_as_string(&self, i: usize, r: &Reference) -> FunctionError {
        self.error(
            i,
            format!(
                "references cannot be used as strings here: argument {} of {}() is the reference `{r}`",
                i + 1,
                self.name
            ),
        )
        .help(ref_help(r))
    }

    fn string(&self, i: usize) -> Result<&'a str, FunctionError> {
        match self.get(i)? {
            Value::String(s) => Ok(s),
            Value::Ref(r) => Err(self.ref_as_string(i, r)),
            _ => Err(self.expected(i, "a string")),
        }
    }

    fn number(&self, i: usize) -> Result<f64, FunctionError> {
        self.get(i)?.as_number().ok_or_else(|| self.expected(i, "a number"))
    }

    /// A whole number small enough to be exact in an f64.
    fn integer(&self, i: usize) -> Result<i64, FunctionError> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let n = self.number(i)?;
        if n.fract() != 0.0 || !n.is_finite() || n.abs() > EXACT {
            return Err(self.error(
                i,
                format!("{}() expects a whole number as argument {}, got {}", self.name, i + 1, format_number(n)),
            ));
        }
        // In range and whole, so the conversion is exact.
        Ok(n as i64)
    }

    fn list(&self, i: usize) -> Result<&'a [Value], FunctionError> {
        match self.get(i)? {
            Value::List(items) => Ok(items),
            _ => Err(self.expected(i, "a list")),
        }
    }

    fn object(&self, i: usize) -> Result<&'a IndexMap<String, Value>, FunctionError> {
        match self.get(i)? {
            Value::Object(map) => Ok(map),
            _ => Err(self.expected(i, "an object")),
        }
    }

    /// A one-number function such as `abs`.
    fn math(&self, f: fn(f64) -> f64) -> Result<Value, FunctionError> {
        self.exactly(1)?;
        Ok(Value::Number(f(self.number(0)?)))
    }

    /// `min` / `max`: one or more numbers.
    fn fold_numbers(&self, f: fn(f64, f64) -> f64) -> Result<Value, FunctionError> {
        self.count(1, None)?;
        let mut result = self.number(0)?;
        for i in 1..self.values.len() {
            result = f(result, self.number(i)?);
        }
        Ok(Value::Number(result))
    }

    /// An element of a list argument as a string, converting numbers and bools as Terraform's
    /// `list(string)` parameters do.
    fn element_string(&self, i: usize, j: usize, item: &Value, what: &str) -> Result<String, FunctionError> {
        match item {
            Value::Ref(r) => Err(self
                .error(
                    i,
                    format!(
                        "references cannot be used as strings here: element {} of argument {} of {}() \
                         is the reference `{r}`",
                        j + 1,
                        i + 1,
                        self.name
                    ),
                )
                .help(ref_help(r))),
            other => other.to_template_string().ok_or_else(|| {
                self.error(
                    i,
                    format!(
                        "{}() expects {what} as argument {}, but element {} is {}",
                        self.name,
                        i + 1,
                        j + 1,
                        other.type_name()
                    ),
                )
            }),
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn ref_help(r: &Reference) -> String {
    format!("`{r}` is resolved when the system is applied, so its value is not known while compiling")
}

/// Structural equality that ignores where references were written (their spans).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Ref(x), Value::Ref(y)) => x.address == y.address && x.path == y.path,
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn distinct(items: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        if !out.iter().any(|seen| same(seen, item)) {
            out.push(item.clone());
        }
    }
    out
}

/// Terraform's set ordering where it has one: numbers ascending, strings lexically (a mix of
/// strings, numbers and bools is converted to strings first, as Terraform unifies it to a set
/// of strings), false before true. Anything else (nulls, collections, references) keeps
/// first-occurrence order, which is deterministic.
fn to_set(items: &[Value]) -> Vec<Value> {
    let all = |f: fn(&Value) -> bool| items.iter().all(f);
    if all(|v| matches!(v, Value::Number(_))) {
        let mut numbers: Vec<f64> = items.iter().filter_map(Value::as_number).collect();
        numbers.sort_by(f64::total_cmp);
        numbers.dedup_by(|a, b| a == b);
        numbers.into_iter().map(Value::Number).collect()
    } else if all(|v| matches!(v, Value::Bool(_))) {
        [false, true].into_iter().filter(|b| items.contains(&Value::Bool(*b))).map(Value::Bool).collect()
    } else if all(|v| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))) {
        let mut strings: Vec<String> = items.iter().filter_map(Value::to_template_string).collect();
        strings.sort();
        strings.dedup();
        strings.into_iter().map(Value::String).collect()
    } else {
        distinct(items)
    }
}

fn flatten_into(items: &[Value], out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::List(inner) => flatten_into(inner, out),
            other => out.push(other.clone()),
        }
    }
}

fn sorted_entries(map: &IndexMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Sorts object keys at every level, so `jsonencode` output does not depend on the order the
/// attributes were written in (as Terraform's does not).
fn sorted_json(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_json(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_json).collect()),
        other => other,
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word_start = true;
    for c in s.chars() {
        if word_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        // Go's strings.Title rule, which Terraform uses: ASCII punctuation and whitespace
        // separate words; letters, digits and '_' do not.
        word_start = if c.is_ascii() { !(c.is_ascii_alphanumeric() || c == '_') } else { c.is_whitespace() };
    }
    out
}

fn coalesce(a: &Args) -> Result<Value, FunctionError> {
    a.count(1, None)?;
    a.values.iter().find(|v| !matches!(v, Value::Null) && v.as_str() != Some("")).cloned().ok_or_else(|| {
        FunctionError::new("coalesce() got only null values and empty strings", None)
            .help("give at least one argument that is neither null nor \"\"")
    })
}

fn concat(a: &Args) -> Result<Value, FunctionError> {
    a.count(1, None)?;
    let mut out = Vec::new();
    for i in 0..a.values.len() {
        out.extend_from_slice(a.list(i)?);
    }
    Ok(Value::List(out))
}

fn contains(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(2)?;
    let needle = a.get(1)?;
    Ok(Value::Bool(a.list(0)?.iter().any(|item| same(item, needle))))
}

fn element(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(2)?;
    let items = a.list(0)?;
    let index = a.integer(1)?;
    if items.is_empty() {
        return Err(a.error(0, "element() cannot take an element of an empty list"));
    }
    if index < 0 {
        return Err(a
            .error(1, format!("element() got the negative index {index}"))
            .help("element() wraps indexes past the end, but not below zero; use 0 or more"));
    }
    // Wraps modulo the length, as Terraform does.
    let position = u64::try_from(index)
        .ok()
        .zip(u64::try_from(items.len()).ok())
        .and_then(|(i, len)| i.checked_rem(len))
        .and_then(|p| usize::try_from(p).ok())
        .and_then(|p| items.get(p));
    position.cloned().ok_or_else(|| a.error(1, format!("element() index {index} is out of range")))
}

/// The largest file `file()` reads: configuration snippets, not data.
const MAX_FILE_BYTES: u64 = 16 << 20;

fn file(a: &Args, ctx: &FunctionContext) -> Result<Value, FunctionError> {
    a.exactly(1)?;
    let relative = a.string(0)?;
    if relative.is_empty() {
        return Err(a.error(0, "file() expects a path, got an empty string"));
    }
    let path = ctx.base_dir.join(relative);
    let shown = path.display();
    // Only regular files of a sane size: `file("/dev/zero")` must be an error, not a hang.
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() {
            return Err(a.error(0, format!("file() reads regular files; {shown} is not one")));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(a.error(
                0,
                format!("file() reads files up to {} MiB; {shown} has {} bytes", MAX_FILE_BYTES >> 20, meta.len()),
            ));
        }
    }
    let bytes = std::fs::read(&path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => format!("file() found no file at {shown}"),
            _ => format!("file() cannot read {shown}: {e}"),
        };
        a.error(0, message).help(format!("relative paths start at the module's directory, {}", ctx.base_dir.display()))
    })?;
    String::from_utf8(bytes).map(Value::String).map_err(|e| {
        a.error(
            0,
            format!(
                "file() read {shown}, but it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .help("file() reads text files only")
    })
}

/// The largest `%.Nf` precision; larger ones would only build huge strings.
const MAX_PRECISION: usize = 100;

const FORMAT_VERBS: &str = "verbs are %s (string), %d (whole number), %f or %.2f (number), %v (any value), \
                            %q (quoted string), %t (bool), and %% for a literal %";

fn format(a: &Args) -> Result<Value, FunctionError> {
    a.count(1, None)?;
    let spec = a.string(0)?;
    let mut out = String::with_capacity(spec.len());
    let mut next = 1;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p: usize = 0;
            let mut digits = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                chars.next();
                digits += 1;
                p = p
                    .checked_mul(10)
                    .and_then(|p| p.checked_add(d as usize))
                    .filter(|p| *p <= MAX_PRECISION)
                    .ok_or_else(|| a.error(0, format!("format() precision is larger than {MAX_PRECISION}")))?;
            }
            if digits == 0 {
                return Err(a.error(0, "format() expects digits after \"%.\"").help("write e.g. \"%.2f\""));
            }
            precision = Some(p);
        }
        let Some(verb) = chars.next() else {
            return Err(a
                .error(0, "format() spec ends with an unfinished verb \"%\"")
                .help("write %% for a literal percent sign"));
        };
        if verb == '%' && precision.is_none() {
            out.push('%');
            continue;
        }
        if precision.is_some() && verb != 'f' {
            return Err(a
                .error(0, format!("format() allows a precision only with %f, not with %{verb}"))
                .help(FORMAT_VERBS));
        }
        if !"sdfvqt".contains(verb) {
            return Err(a.error(0, format!("format() does not support the verb %{verb}")).help(FORMAT_VERBS));
        }
        let i = next;
        let Some(value) = a.values.get(i) else {
            let given = a.values.len().saturating_sub(1);
            return Err(a.error(0, format!("format() spec has more verbs than the {} given", plural(given, "value"))));
        };
        next += 1;
        format_verb(a, i, value, verb, precision, &mut out)?;
    }
    if next < a.values.len() {
        return Err(a.error(
            next,
            format!("format() got {} but the spec uses only {}", plural(a.values.len() - 1, "value"), next - 1),
        ));
    }
    Ok(Value::String(out))
}

fn format_verb(
    a: &Args,
    i: usize,
    value: &Value,
    verb: char,
    precision: Option<usize>,
    out: &mut String,
) -> Result<(), FunctionError> {
    if value.is_null() {
        return Err(a.error(i, format!("format() cannot format null (argument {}) with %{verb}", i + 1)));
    }
    if let Value::Ref(r) = value {
        return Err(a.ref_as_string(i, r));
    }
    let text = match (verb, value) {
        ('s', v) => v.to_template_string().ok_or_else(|| a.expected(i, "a string, number or bool for %s"))?,
        ('d', Value::Number(n)) => {
            if n.fract() != 0.0 || !n.is_finite() {
                return Err(a.error(
                    i,
                    format!("format() %d expects a whole number as argument {}, got {}", i + 1, format_number(*n)),
                ));
            }
            // `+ 0.0` turns -0 into 0.
            format!("{:.0}", n + 0.0)
        }
        ('d', _) => return Err(a.expected(i, "a number for %d")),
        ('f', Value::Number(n)) => format!("{:.*}", precision.unwrap_or(6), n),
        ('f', _) => return Err(a.expected(i, "a number for %f")),
        ('v', v @ (Value::List(_) | Value::Object(_))) => {
            if v.contains_ref() {
                let message = format!(
                    "references cannot be used as strings here: argument {} of format() \
                     contains one",
                    i + 1
                );
                return Err(a.error(i, message).help(
                    "references are resolved when the system is applied, so their values \
                     are not known while compiling",
                ));
            }
            sorted_json(v.to_json()).to_string()
        }
        ('v', v) => v.to_template_string().unwrap_or_default(),
        ('q', v) => match v.to_template_string() {
            Some(s) => serde_json::Value::String(s).to_string(),
            None => return Err(a.expected(i, "a string for %q")),
        },
        ('t', Value::Bool(b)) => b.to_string(),
        ('t', _) => return Err(a.expected(i, "a bool for %t")),
        _ => return Err(a.error(0, format!("format() does not support the verb %{verb}")).help(FORMAT_VERBS)),
    };
    out.push_str(&text);
    Ok(())
}

fn join(a: &Args) -> Result<Value, FunctionError> {
    a.count(2, None)?;
    let separator = a.string(0)?;
    let mut parts = Vec::new();
    for i in 1..a.values.len() {
        for (j, item) in a.list(i)?.iter().enumerate() {
            parts.push(a.element_string(i, j, item, "a list of strings")?);
        }
    }
    Ok(Value::String(parts.join(separator)))
}

fn jsondecode(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(1)?;
    let text = a.string(0)?;
    serde_json::from_str::<serde_json::Value>(text)
        .map(|json| Value::from_json(&json))
        .map_err(|e| a.error(0, format!("jsondecode() got invalid JSON: {e}")))
}

fn length(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(1)?;
    // Characters are Unicode scalar values (Terraform counts grapheme clusters; the two differ
    // only for combining sequences).
    let n = match a.get(0)? {
        Value::String(s) => s.chars().count(),
        Value::List(items) => items.len(),
        Value::Object(map) => map.len(),
        Value::Ref(r) => {
            return Err(a.error(0, format!("length() cannot measure the reference `{r}`")).help(ref_help(r)))
        }
        _ => return Err(a.expected(0, "a string, list or object")),
    };
    Ok(Value::Number(n as f64))
}

fn lookup(a: &Args) -> Result<Value, FunctionError> {
    a.count(2, Some(3))?;
    let map = a.object(0)?;
    let key = a.string(1)?;
    if let Some(value) = map.get(key) {
        return Ok(value.clone());
    }
    if let Some(default) = a.values.get(2) {
        return Ok(default.clone());
    }
    const SHOWN: usize = 20;
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let help = if keys.is_empty() {
        "the object is empty; pass a default as the third argument".to_string()
    } else {
        let listed: Vec<String> = keys.iter().take(SHOWN).map(|k| format!("{k:?}")).collect();
        let more = keys.len().saturating_sub(SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        format!("available keys: {}{more}; or pass a default as the third argument", listed.join(", "))
    };
    Err(a.error(1, format!("lookup() found no key {key:?} in the object")).help(help))
}

fn merge(a: &Args) -> Result<Value, FunctionError> {
    let mut out = IndexMap::new();
    for i in 0..a.values.len() {
        match a.get(i)? {
            // Terraform skips null arguments.
            Value::Null => {}
            Value::Object(map) => {
                // A repeated key keeps its first position and takes the later value.
                for (k, v) in map {
                    out.insert(k.clone(), v.clone());
                }
            }
            _ => return Err(a.expected(i, "an object")),
        }
    }
    Ok(Value::Object(out))
}

/// Terraform's limit on `range` results.
const MAX_RANGE: usize = 1024;

fn range(a: &Args) -> Result<Value, FunctionError> {
    a.count(1, Some(3))?;
    let mut numbers = [0.0; 3];
    for (i, slot) in numbers.iter_mut().enumerate().take(a.values.len()) {
        *slot = a.number(i)?;
        if !slot.is_finite() {
            return Err(a.error(i, format!("range() expects a finite number as argument {}", i + 1)));
        }
    }
    let (start, limit) = match a.values.len() {
        1 => (0.0, numbers[0]),
        _ => (numbers[0], numbers[1]),
    };
    let step = match a.values.len() {
        3 => numbers[2],
        _ if limit < start => -1.0,
        _ => 1.0,
    };
    if step == 0.0 {
        return Err(a.error(2, "range() step must not be zero"));
    }
    let mut out = Vec::new();
    for i in 0..=MAX_RANGE {
        // start + i·step rather than repeated addition, so rounding errors do not accumulate.
        let n = start + (i as f64) * step;
        let more = if step > 0.0 { n < limit } else { n > limit };
        if !more {
            return Ok(Value::List(out));
        }
        if i == MAX_RANGE {
            break;
        }
        out.push(Value::Number(n));
    }
    Err(FunctionError::new(format!("range() would produce more than {MAX_RANGE} numbers"), None)
        .help("check the limit and step; range() is meant for small sequences"))
}

fn replace(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(3)?;
    let (text, search, replacement) = (a.string(0)?, a.string(1)?, a.string(2)?);
    if search.len() > 1 && search.starts_with('/') && search.ends_with('/') {
        // Terraform would treat this as a regular expression; doing a literal replacement
        // instead would silently give a different result.
        return Err(a
            .error(1, "replace() does not support regular expressions (\"/…/\")")
            .help("pass the literal text to replace"));
    }
    Ok(Value::String(text.replace(search, replacement)))
}

fn split(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(2)?;
    let (separator, text) = (a.string(0)?, a.string(1)?);
    let parts: Vec<Value> = if separator.is_empty() {
        text.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        text.split(separator).map(|p| Value::String(p.to_string())).collect()
    };
    Ok(Value::List(parts))
}

fn substr(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(3)?;
    let text = a.string(0)?;
    let offset = a.integer(1)?;
    let length = a.integer(2)?;
    let chars: Vec<char> = text.chars().collect();
    let total = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    // As Terraform: a negative offset counts from the end (clamped to the start); an offset
    // past the end gives ""; a negative length takes the rest.
    let start = if offset < 0 { offset.saturating_add(total).max(0) } else { offset };
    if start >= total {
        return Ok(Value::String(String::new()));
    }
    let end = if length < 0 { total } else { start.saturating_add(length).min(total) };
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return Ok(Value::String(String::new()));
    };
    Ok(Value::String(chars.get(start..end).unwrap_or_default().iter().collect()))
}

fn sum(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(1)?;
    let items = a.list(0)?;
    if items.is_empty() {
        return Err(a.error(0, "sum() cannot sum an empty list"));
    }
    let mut total = 0.0;
    for (j, item) in items.iter().enumerate() {
        let Value::Number(n) = item else {
            return Err(a.error(
                0,
                format!("sum() expects a list of numbers as argument 1, but element {} is {}", j + 1, item.type_name()),
            ));
        };
        total += n;
    }
    if !total.is_finite() {
        return Err(a.error(0, "sum() result is too large to represent"));
    }
    Ok(Value::Number(total))
}

fn tobool(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(1)?;
    match a.get(0)? {
        v @ (Value::Bool(_) | Value::Null) => Ok(v.clone()),
        Value::String(s) if s == "true" => Ok(Value::Bool(true)),
        Value::String(s) if s == "false" => Ok(Value::Bool(false)),
        Value::String(s) => {
            Err(a.error(0, format!("tobool() cannot convert {s:?} to a bool")).help("use \"true\" or \"false\""))
        }
        _ => Err(a.expected(0, "a bool or the string \"true\" or \"false\"")),
    }
}

fn tonumber(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(1)?;
    match a.get(0)? {
        v @ (Value::Number(_) | Value::Null) => Ok(v.clone()),
        Value::String(s) => parse_number(s).map(Value::Number).ok_or_else(|| {
            a.error(0, format!("tonumber() cannot convert {s:?} to a number"))
                .help("write the number in decimal, e.g. \"42\", \"-1.5\" or \"2e3\"")
        }),
        _ => Err(a.expected(0, "a number or a string holding one")),
    }
}

/// Decimal numbers as HCL writes them: optional sign, digits, optional fraction and exponent.
/// Rust's own parser would also accept "inf", "NaN" and ".5", which are not numbers here.
fn parse_number(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    let exponent_ok = match exponent {
        Some(e) => digits(e.strip_prefix(['-', '+']).unwrap_or(e)),
        None => true,
    };
    if !(digits(whole) && digits(fraction) && exponent_ok) {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn zipmap(a: &Args) -> Result<Value, FunctionError> {
    a.exactly(2)?;
    let keys = a.list(0)?;
    let values = a.list(1)?;
    if keys.len() != values.len() {
        return Err(a
            .error(1, format!("zipmap() got {} but {}", plural(keys.len(), "key"), plural(values.len(), "value")))
            .help("give the same number of keys and values"));
    }
    let mut out = IndexMap::new();
    for (j, (key, value)) in keys.iter().zip(values).enumerate() {
        out.insert(a.element_string(0, j, key, "a list of string keys")?, value.clone());
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Span};
    use crate::value::Address;

    fn ctx() -> FunctionContext<'static> {
        FunctionContext { base_dir: Path::new(".") }
    }

    fn s(x: &str) -> Value {
        Value::String(x.to_string())
    }

    fn n(x: f64) -> Value {
        Value::Number(x)
    }

    fn list(items: &[Value]) -> Value {
        Value::List(items.to_vec())
    }

    fn strs(items: &[&str]) -> Value {
        Value::List(items.iter().map(|x| s(x)).collect())
    }

    fn nums(items: &[f64]) -> Value {
        Value::List(items.iter().map(|x| n(*x)).collect())
    }

    fn obj(entries: &[(&str, Value)]) -> Value {
        Value::Object(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    /// A reference to `kind.name`, written at byte `at` (so two can differ only in span).
    fn r(kind: &str, name: &str, at: usize) -> Value {
        Value::Ref(Box::new(Reference {
            address: Address { module: vec![], kind: kind.into(), name: name.into(), key: None },
            path: vec![],
            span: Span::new(FileId(0), at..at + 1),
        }))
    }

    #[track_caller]
    fn ok(name: &str, args: &[Value]) -> Value {
        match call(name, args, &ctx()) {
            Ok(v) => v,
            Err(e) => panic!("{name}({args:?}) failed: {e:?}"),
        }
    }

    #[track_caller]
    fn err(name: &str, args: &[Value]) -> FunctionError {
        match call(name, args, &ctx()) {
            Ok(v) => panic!("{name}({args:?}) = {v:?}, expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn function_list_is_sorted_unique_and_complete() {
        for pair in FUNCTIONS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
        for f in FUNCTIONS {
            assert!(f.signature.starts_with(&format!("{}(", f.name)), "{}", f.signature);
            assert!(f.summary.ends_with('.'), "{}", f.name);
            // Every documented function is callable: with no arguments it either works or
            // complains about its arguments, never that it does not exist.
            if let Err(e) = call(f.name, &[], &ctx()) {
                assert_ne!(e.message, "unknown function", "{}", f.name);
                assert!(e.message.starts_with(&format!("{}()", f.name)), "{}", e.message);
            }
        }
    }

    #[test]
    fn unknown_functions() {
        let e = err("lowr", &[s("A")]);
        assert_eq!(e.message, "unknown function");
        assert_eq!(e.arg, None);
        assert_eq!(e.help.as_deref(), Some("did you mean `lower`?"));
        assert_eq!(err("regexall", &[]).help, None);
        assert_eq!(err("x", &[]).help, None);
        assert_eq!(err("", &[]).message, "unknown function");
    }

    #[test]
    fn arity_errors_point_at_the_first_extra_argument() {
        let e = err("lower", &[s("a"), s("b")]);
        assert_eq!(e.message, "lower() expects 1 argument, got 2");
        assert_eq!(e.arg, Some(1));
        assert_eq!(e.help.as_deref(), Some("usage: lower(string) -> string"));
        let e = err("lower", &[]);
        assert_eq!(e.message, "lower() expects 1 argument, got 0");
        assert_eq!(e.arg, None);
        assert_eq!(err("lookup", &[obj(&[])]).message, "lookup() expects 2 to 3 arguments, got 1");
        assert_eq!(err("lookup", &[obj(&[]), s("a"), n(1.0), n(2.0)]).arg, Some(3));
        assert_eq!(err("concat", &[]).message, "concat() expects at least 1 argument, got 0");
        assert_eq!(err("join", &[s(",")]).message, "join() expects at least 2 arguments, got 1");
        assert_eq!(err("range", &[n(1.0), n(2.0), n(3.0), n(4.0)]).arg, Some(3));
        assert_eq!(err("replace", &[s("a"), s("b")]).message, "replace() expects 3 arguments, got 2");
    }

    #[test]
    fn case_functions() {
        assert_eq!(ok("lower", &[s("HeLLo Ü")]), s("hello ü"));
        assert_eq!(ok("upper", &[s("straße")]), s("STRASSE"));
        assert_eq!(ok("title", &[s("hello world-wide web_site")]), s("Hello World-Wide Web_site"));
        assert_eq!(ok("title", &[s("élan vital")]), s("Élan Vital"));
        assert_eq!(ok("title", &[s("")]), s(""));
        assert_eq!(ok("trimspace", &[s("\n  a b \t")]), s("a b"));
        let e = err("lower", &[n(5.0)]);
        assert_eq!(e.message, "lower() expects a string as argument 1, got number");
        assert_eq!(e.arg, Some(0));
        assert!(err("upper", &[Value::Null]).message.ends_with("got null"));
        assert!(err("title", &[strs(&["a"])]).message.ends_with("got list"));
        assert!(err("trimspace", &[Value::Bool(true)]).message.ends_with("got bool"));
    }

    #[test]
    fn string_functions_reject_references() {
        for name in ["lower", "upper", "title", "trimspace", "tostring", "file", "jsondecode"] {
            let e = err(name, &[r("endpoint", "api", 0)]);
            assert!(e.message.starts_with("references cannot be used as strings here"), "{name}: {}", e.message);
            assert!(e.message.contains("endpoint.api"), "{}", e.message);
            assert_eq!(e.arg, Some(0));
            assert!(e.help.is_some_and(|h| h.contains("applied")));
        }
        let e = err("startswith", &[s("a"), r("source", "x", 0)]);
        assert!(e.message.starts_with("references cannot be used as strings here"));
        assert_eq!(e.arg, Some(1));
        let e = err("join", &[s(","), list(&[s("a"), r("source", "x", 0)])]);
        assert!(e.message.starts_with("references cannot be used as strings here: element 2 of argument 2"));
        assert_eq!(e.arg, Some(1));
        let e = err("format", &[s("%s"), r("source", "x", 0)]);
        assert!(e.message.starts_with("references cannot be used as strings here"));
        assert_eq!(e.arg, Some(1));
        let e = err("format", &[s("%v"), list(&[r("source", "x", 0)])]);
        assert!(e.message.starts_with("references cannot be used as strings here"));
        assert!(err("abs", &[r("source", "x", 0)]).help.is_some());
    }

    #[test]
    fn format_verbs() {
        let f = |spec: &str, args: &[Value]| {
            let mut all = vec![s(spec)];
            all.extend_from_slice(args);
            ok("format", &all)
        };
        assert_eq!(f("plain", &[]), s("plain"));
        assert_eq!(f("%s-%s", &[s("a"), n(2.0)]), s("a-2"));
        assert_eq!(f("%s", &[Value::Bool(true)]), s("true"));
        assert_eq!(f("%d items", &[n(42.0)]), s("42 items"));
        assert_eq!(f("%d", &[n(-0.0)]), s("0"));
        assert_eq!(f("%d", &[n(1e20)]), s("100000000000000000000"));
        assert_eq!(f("%f", &[n(1.5)]), s("1.500000"));
        assert_eq!(f("%.2f", &[n(1.23456)]), s("1.23"));
        assert_eq!(f("%.0f", &[n(2.5)]), s("2"));
        assert_eq!(f("%v %v %v", &[s("x"), n(1.5), Value::Bool(false)]), s("x 1.5 false"));
        assert_eq!(f("%v", &[obj(&[("b", n(1.0)), ("a", strs(&["x"]))])]), s(r#"{"a":["x"],"b":1}"#));
        assert_eq!(f("%q", &[s("say \"hi\"\n")]), s(r#""say \"hi\"\n""#));
        assert_eq!(f("%q", &[n(7.0)]), s("\"7\""));
        assert_eq!(f("%t", &[Value::Bool(true)]), s("true"));
        assert_eq!(f("100%%", &[]), s("100%"));
        assert_eq!(f("ünï %s ✓", &[s("ß")]), s("ünï ß ✓"));
    }

    #[test]
    fn format_errors() {
        let e = |spec: &str, args: &[Value]| {
            let mut all = vec![s(spec)];
            all.extend_from_slice(args);
            err("format", &all)
        };
        let x = e("%s %s", &[s("a")]);
        assert_eq!(x.message, "format() spec has more verbs than the 1 value given");
        assert_eq!(x.arg, Some(0));
        let x = e("%s", &[s("a"), s("b"), s("c")]);
        assert_eq!(x.message, "format() got 3 values but the spec uses only 1");
        assert_eq!(x.arg, Some(2));
        assert!(e("none", &[s("a")]).message.contains("uses only 0"));
        assert_eq!(e("%d", &[n(1.5)]).message, "format() %d expects a whole number as argument 2, got 1.5");
        assert_eq!(e("%d", &[s("5")]).message, "format() expects a number for %d as argument 2, got string");
        assert_eq!(e("%d", &[s("5")]).arg, Some(1));
        assert!(e("%f", &[Value::Bool(true)]).message.contains("a number for %f"));
        assert!(e("%t", &[s("true")]).message.contains("a bool for %t"));
        assert!(e("%s", &[strs(&["a"])]).message.contains("got list"));
        assert!(e("%q", &[strs(&["a"])]).message.contains("a string for %q"));
        assert!(e("%s", &[Value::Null]).message.contains("cannot format null"));
        assert!(e("%x", &[n(1.0)]).message.contains("does not support the verb %x"));
        assert!(e("%x", &[n(1.0)]).help.is_some_and(|h| h.contains("%s")));
        assert!(e("%5d", &[n(1.0)]).message.contains("verb %5"));
        assert!(e("50%", &[]).message.contains("unfinished"));
        assert!(e("%.", &[]).message.contains("digits after"));
        assert!(e("%.f", &[n(1.0)]).message.contains("digits after"));
        assert!(e("%.2d", &[n(1.0)]).message.contains("precision only with %f"));
        assert!(e("%.2%", &[]).message.contains("precision only with %f"));
        assert!(e("%.101f", &[n(1.0)]).message.contains("larger than 100"));
        assert!(e("%.99999999999999999999999f", &[n(1.0)]).message.contains("larger than 100"));
        assert!(err("format", &[n(1.0)]).message.contains("expects a string as argument 1"));
    }

    #[test]
    fn join_and_split() {
        assert_eq!(ok("join", &[s(", "), strs(&["a", "b", "c"])]), s("a, b, c"));
        assert_eq!(ok("join", &[s("-"), list(&[s("a"), n(1.0), Value::Bool(true)])]), s("a-1-true"));
        assert_eq!(ok("join", &[s("-"), strs(&["a"]), strs(&["b"])]), s("a-b"));
        assert_eq!(ok("join", &[s("-"), strs(&[])]), s(""));
        let e = err("join", &[s(","), list(&[s("a"), Value::Null])]);
        assert_eq!(e.message, "join() expects a list of strings as argument 2, but element 2 is null");
        assert_eq!(e.arg, Some(1));
        assert_eq!(err("join", &[s(","), s("a")]).arg, Some(1));
        assert_eq!(err("join", &[n(1.0), strs(&[])]).arg, Some(0));
        assert_eq!(ok("split", &[s(","), s("a,b,,c")]), strs(&["a", "b", "", "c"]));
        assert_eq!(ok("split", &[s(","), s("")]), strs(&[""]));
        assert_eq!(ok("split", &[s(""), s("añb")]), strs(&["a", "ñ", "b"]));
        assert_eq!(ok("split", &[s("::"), s("a::b")]), strs(&["a", "b"]));
        assert_eq!(err("split", &[s(","), n(1.0)]).arg, Some(1));
    }

    #[test]
    fn replace_substr_and_affixes() {
        assert_eq!(ok("replace", &[s("a-b-c"), s("-"), s("+")]), s("a+b+c"));
        assert_eq!(ok("replace", &[s("aaa"), s("aa"), s("b")]), s("ba"));
        assert_eq!(ok("replace", &[s("ab"), s(""), s("-")]), s("-a-b-"));
        assert_eq!(ok("replace", &[s("a/b"), s("/"), s("_")]), s("a_b"));
        let e = err("replace", &[s("abc"), s("/b/"), s("x")]);
        assert!(e.message.contains("regular expressions"));
        assert_eq!(e.arg, Some(1));
        assert_eq!(err("replace", &[s("a"), s("b"), n(1.0)]).arg, Some(2));

        assert_eq!(ok("substr", &[s("hello world"), n(1.0), n(4.0)]), s("ello"));
        assert_eq!(ok("substr", &[s("🤔🤷x"), n(0.0), n(1.0)]), s("🤔"));
        assert_eq!(ok("substr", &[s("hello"), n(-3.0), n(-1.0)]), s("llo"));
        assert_eq!(ok("substr", &[s("hello"), n(-10.0), n(2.0)]), s("he"));
        assert_eq!(ok("substr", &[s("hello"), n(2.0), n(100.0)]), s("llo"));
        assert_eq!(ok("substr", &[s("hello"), n(10.0), n(2.0)]), s(""));
        assert_eq!(ok("substr", &[s("hello"), n(5.0), n(-1.0)]), s(""));
        assert_eq!(ok("substr", &[s("hello"), n(1.0), n(0.0)]), s(""));
        assert_eq!(ok("substr", &[s(""), n(0.0), n(1.0)]), s(""));
        assert_eq!(ok("substr", &[s("hello"), n(9e15), n(9e15)]), s(""));
        let e = err("substr", &[s("hello"), n(1.5), n(1.0)]);
        assert_eq!(e.message, "substr() expects a whole number as argument 2, got 1.5");
        assert_eq!(e.arg, Some(1));
        assert_eq!(err("substr", &[s("hello"), n(0.0), n(1e300)]).arg, Some(2));
        assert_eq!(err("substr", &[s("hello"), n(0.0), n(f64::NAN)]).arg, Some(2));

        assert_eq!(ok("startswith", &[s("hello"), s("he")]), Value::Bool(true));
        assert_eq!(ok("startswith", &[s("hello"), s("lo")]), Value::Bool(false));
        assert_eq!(ok("endswith", &[s("hello"), s("lo")]), Value::Bool(true));
        assert_eq!(ok("endswith", &[s("hello"), s("")]), Value::Bool(true));
        assert_eq!(err("endswith", &[n(1.0), s("")]).arg, Some(0));
    }

    #[test]
    fn concat_merge_and_lookup_carry_references() {
        let reference = r("source", "tx", 3);
        assert_eq!(
            ok("concat", &[strs(&["a"]), list(std::slice::from_ref(&reference)), list(&[])]),
            list(&[s("a"), reference.clone()])
        );
        let e = err("concat", &[strs(&["a"]), s("b")]);
        assert_eq!(e.message, "concat() expects a list as argument 2, got string");
        assert_eq!(e.arg, Some(1));

        let merged = ok(
            "merge",
            &[obj(&[("a", n(1.0)), ("b", n(2.0))]), Value::Null, obj(&[("b", reference.clone()), ("c", n(3.0))])],
        );
        assert_eq!(merged, obj(&[("a", n(1.0)), ("b", reference.clone()), ("c", n(3.0))]));
        assert_eq!(ok("merge", &[]), obj(&[]));
        assert_eq!(err("merge", &[obj(&[]), strs(&[])]).arg, Some(1));

        let map = obj(&[("x", reference.clone()), ("a", n(1.0))]);
        assert_eq!(ok("lookup", &[map.clone(), s("x")]), reference);
        assert_eq!(ok("lookup", &[map.clone(), s("zz"), s("dflt")]), s("dflt"));
        assert_eq!(ok("lookup", &[map.clone(), s("a"), s("dflt")]), n(1.0));
        let e = err("lookup", &[map.clone(), s("y")]);
        assert_eq!(e.message, "lookup() found no key \"y\" in the object");
        assert_eq!(e.arg, Some(1));
        assert_eq!(e.help.as_deref(), Some("available keys: \"a\", \"x\"; or pass a default as the third argument"));
        assert!(err("lookup", &[obj(&[]), s("y")]).help.is_some_and(|h| h.contains("empty")));
        let big: Vec<(String, Value)> = (0..25).map(|i| (format!("k{i:02}"), n(0.0))).collect();
        let big = Value::Object(big.into_iter().collect());
        assert!(err("lookup", &[big, s("y")]).help.is_some_and(|h| h.contains("and 5 more")));
        assert_eq!(err("lookup", &[strs(&[]), s("y")]).arg, Some(0));
        assert_eq!(err("lookup", &[r("source", "tx", 0), s("y")]).arg, Some(0));
        assert_eq!(err("lookup", &[map, n(1.0)]).arg, Some(1));
    }

    #[test]
    fn length_keys_values() {
        assert_eq!(ok("length", &[s("héllo")]), n(5.0));
        assert_eq!(ok("length", &[list(&[r("a", "b", 0), n(1.0)])]), n(2.0));
        assert_eq!(ok("length", &[obj(&[("a", n(1.0))])]), n(1.0));
        assert_eq!(ok("length", &[strs(&[])]), n(0.0));
        let e = err("length", &[r("source", "tx", 0)]);
        assert!(e.message.contains("cannot measure the reference `source.tx`"));
        assert_eq!(
            err("length", &[n(1.0)]).message,
            "length() expects a string, list or object as argument 1, got number"
        );
        assert!(err("length", &[Value::Null]).message.ends_with("got null"));

        let o = obj(&[("b", n(2.0)), ("a", n(1.0)), ("c", r("x", "y", 0))]);
        assert_eq!(ok("keys", std::slice::from_ref(&o)), strs(&["a", "b", "c"]));
        assert_eq!(ok("values", &[o]), list(&[n(1.0), n(2.0), r("x", "y", 0)]));
        assert_eq!(ok("keys", &[obj(&[])]), list(&[]));
        assert_eq!(err("keys", &[strs(&["a"])]).message, "keys() expects an object as argument 1, got list");
        assert_eq!(err("values", &[Value::Null]).arg, Some(0));
    }

    #[test]
    fn contains_distinct_flatten() {
        let refs = list(&[r("source", "a", 0), r("source", "b", 5)]);
        assert_eq!(ok("contains", &[strs(&["a", "b"]), s("b")]), Value::Bool(true));
        assert_eq!(ok("contains", &[strs(&["a", "b"]), s("c")]), Value::Bool(false));
        assert_eq!(ok("contains", &[nums(&[1.0]), s("1")]), Value::Bool(false));
        // The same reference written elsewhere (another span) is the same value.
        assert_eq!(ok("contains", &[refs.clone(), r("source", "b", 99)]), Value::Bool(true));
        assert_eq!(
            ok("contains", &[list(&[obj(&[("a", n(1.0)), ("b", n(2.0))])]), obj(&[("b", n(2.0)), ("a", n(1.0))])]),
            Value::Bool(true)
        );
        assert_eq!(err("contains", &[s("abc"), s("a")]).arg, Some(0));

        assert_eq!(ok("distinct", &[strs(&["b", "a", "b", "c", "a"])]), strs(&["b", "a", "c"]));
        assert_eq!(
            ok("distinct", &[list(&[r("s", "a", 0), r("s", "a", 7), nums(&[1.0]), nums(&[1.0])])]),
            list(&[r("s", "a", 0), nums(&[1.0])])
        );
        assert_eq!(err("distinct", &[obj(&[])]).arg, Some(0));

        assert_eq!(
            ok("flatten", &[list(&[s("a"), list(&[s("b"), list(&[s("c")]), list(&[])]), Value::Null])]),
            list(&[s("a"), s("b"), s("c"), Value::Null])
        );
        assert_eq!(ok("flatten", &[list(&[])]), list(&[]));
        assert_eq!(err("flatten", &[s("a")]).arg, Some(0));
    }

    #[test]
    fn toset_orders_like_terraform() {
        assert_eq!(ok("toset", &[strs(&["c", "a", "c", "b"])]), strs(&["a", "b", "c"]));
        assert_eq!(ok("toset", &[nums(&[10.0, 2.0, 10.0, -1.0])]), nums(&[-1.0, 2.0, 10.0]));
        assert_eq!(
            ok("toset", &[list(&[Value::Bool(true), Value::Bool(false), Value::Bool(true)])]),
            list(&[Value::Bool(false), Value::Bool(true)])
        );
        assert_eq!(ok("toset", &[list(&[s("b"), n(1.0), s("1"), Value::Bool(true)])]), strs(&["1", "b", "true"]));
        assert_eq!(
            ok("toset", &[list(&[r("s", "b", 0), r("s", "a", 0), r("s", "b", 9)])]),
            list(&[r("s", "b", 0), r("s", "a", 0)])
        );
        assert_eq!(ok("toset", &[list(&[])]), list(&[]));
        assert_eq!(ok("toset", &[Value::Null]), Value::Null);
        assert_eq!(err("toset", &[s("a")]).message, "toset() expects a list as argument 1, got string");
    }

    #[test]
    fn conversions() {
        assert_eq!(ok("tolist", &[strs(&["a"])]), strs(&["a"]));
        assert_eq!(ok("tolist", &[Value::Null]), Value::Null);
        assert_eq!(err("tolist", &[obj(&[])]).message, "tolist() expects a list as argument 1, got object");
        assert_eq!(ok("tomap", &[obj(&[("a", n(1.0))])]), obj(&[("a", n(1.0))]));
        assert_eq!(ok("tomap", &[Value::Null]), Value::Null);
        assert_eq!(err("tomap", &[strs(&[])]).arg, Some(0));

        assert_eq!(ok("tostring", &[s("a")]), s("a"));
        assert_eq!(ok("tostring", &[n(1.5)]), s("1.5"));
        assert_eq!(ok("tostring", &[n(3.0)]), s("3"));
        assert_eq!(ok("tostring", &[Value::Bool(false)]), s("false"));
        assert_eq!(ok("tostring", &[Value::Null]), Value::Null);
        assert!(err("tostring", &[strs(&[])]).message.contains("a string, number or bool"));

        assert_eq!(ok("tonumber", &[s("42")]), n(42.0));
        assert_eq!(ok("tonumber", &[s("-1.5")]), n(-1.5));
        assert_eq!(ok("tonumber", &[s("+2e3")]), n(2000.0));
        assert_eq!(ok("tonumber", &[s("1E-2")]), n(0.01));
        assert_eq!(ok("tonumber", &[n(7.0)]), n(7.0));
        assert_eq!(ok("tonumber", &[Value::Null]), Value::Null);
        for bad in ["", "abc", "inf", "NaN", ".5", "5.", "1e", "1e+", "--1", " 1", "1e400", "0x10", "1_000"] {
            let e = err("tonumber", &[s(bad)]);
            assert!(e.message.contains("cannot convert"), "{bad}: {}", e.message);
            assert_eq!(e.arg, Some(0));
        }
        assert!(err("tonumber", &[Value::Bool(true)]).message.ends_with("got bool"));

        assert_eq!(ok("tobool", &[s("true")]), Value::Bool(true));
        assert_eq!(ok("tobool", &[s("false")]), Value::Bool(false));
        assert_eq!(ok("tobool", &[Value::Bool(true)]), Value::Bool(true));
        assert_eq!(ok("tobool", &[Value::Null]), Value::Null);
        assert!(err("tobool", &[s("yes")]).message.contains("cannot convert \"yes\""));
        assert!(err("tobool", &[n(1.0)]).message.ends_with("got number"));
    }

    #[test]
    fn coalesce_and_element() {
        assert_eq!(ok("coalesce", &[Value::Null, s(""), s("b"), s("c")]), s("b"));
        assert_eq!(ok("coalesce", &[Value::Null, r("s", "x", 0)]), r("s", "x", 0));
        assert_eq!(ok("coalesce", &[n(0.0)]), n(0.0));
        let e = err("coalesce", &[Value::Null, s("")]);
        assert!(e.message.contains("only null values and empty strings"));
        assert_eq!(e.arg, None);

        let l = list(&[s("a"), r("s", "x", 0), s("c")]);
        assert_eq!(ok("element", &[l.clone(), n(1.0)]), r("s", "x", 0));
        assert_eq!(ok("element", &[l.clone(), n(5.0)]), s("c"));
        assert_eq!(ok("element", &[l.clone(), n(9e15)]), s("a"));
        let e = err("element", &[l.clone(), n(-1.0)]);
        assert!(e.message.contains("negative index -1"));
        assert_eq!(e.arg, Some(1));
        assert_eq!(err("element", &[l.clone(), n(0.5)]).arg, Some(1));
        assert_eq!(err("element", &[l, s("0")]).arg, Some(1));
        let e = err("element", &[list(&[]), n(0.0)]);
        assert!(e.message.contains("empty list"));
        assert_eq!(e.arg, Some(0));
        assert_eq!(err("element", &[s("abc"), n(0.0)]).arg, Some(0));
    }

    #[test]
    fn ranges() {
        assert_eq!(ok("range", &[n(3.0)]), nums(&[0.0, 1.0, 2.0]));
        assert_eq!(ok("range", &[n(1.0), n(4.0)]), nums(&[1.0, 2.0, 3.0]));
        assert_eq!(ok("range", &[n(1.0), n(8.0), n(2.0)]), nums(&[1.0, 3.0, 5.0, 7.0]));
        assert_eq!(ok("range", &[n(1.0), n(2.0), n(0.25)]), nums(&[1.0, 1.25, 1.5, 1.75]));
        assert_eq!(ok("range", &[n(4.0), n(1.0)]), nums(&[4.0, 3.0, 2.0]));
        assert_eq!(ok("range", &[n(10.0), n(5.0), n(-2.0)]), nums(&[10.0, 8.0, 6.0]));
        assert_eq!(ok("range", &[n(-2.0)]), nums(&[0.0, -1.0]));
        assert_eq!(ok("range", &[n(0.0)]), nums(&[]));
        assert_eq!(ok("range", &[n(1.0), n(4.0), n(-1.0)]), nums(&[]));
        assert_eq!(ok("range", &[n(1024.0)]).to_json().as_array().map(Vec::len), Some(1024));
        let e = err("range", &[n(1025.0)]);
        assert!(e.message.contains("more than 1024"));
        assert!(err("range", &[n(0.0), n(1.0), n(1e-9)]).message.contains("more than 1024"));
        let e = err("range", &[n(0.0), n(5.0), n(0.0)]);
        assert!(e.message.contains("zero"));
        assert_eq!(e.arg, Some(2));
        assert_eq!(err("range", &[n(f64::INFINITY)]).arg, Some(0));
        assert_eq!(err("range", &[n(0.0), s("5")]).arg, Some(1));
    }

    #[test]
    fn numeric_functions() {
        assert_eq!(ok("min", &[n(3.0), n(-1.0), n(2.0)]), n(-1.0));
        assert_eq!(ok("max", &[n(3.0), n(-1.0), n(2.0)]), n(3.0));
        assert_eq!(ok("max", &[n(5.0)]), n(5.0));
        assert_eq!(err("min", &[]).message, "min() expects at least 1 argument, got 0");
        let e = err("max", &[n(1.0), s("2")]);
        assert_eq!(e.message, "max() expects a number as argument 2, got string");
        assert_eq!(e.arg, Some(1));
        assert_eq!(err("min", &[nums(&[1.0])]).arg, Some(0));

        assert_eq!(ok("sum", &[nums(&[1.0, 2.5, -0.5])]), n(3.0));
        let e = err("sum", &[nums(&[])]);
        assert!(e.message.contains("empty list"));
        let e = err("sum", &[list(&[n(1.0), s("2")])]);
        assert_eq!(e.message, "sum() expects a list of numbers as argument 1, but element 2 is string");
        assert!(err("sum", &[nums(&[f64::MAX, f64::MAX])]).message.contains("too large"));
        assert_eq!(err("sum", &[n(1.0)]).arg, Some(0));

        assert_eq!(ok("abs", &[n(-2.5)]), n(2.5));
        assert_eq!(ok("ceil", &[n(1.2)]), n(2.0));
        assert_eq!(ok("ceil", &[n(-1.2)]), n(-1.0));
        assert_eq!(ok("floor", &[n(1.8)]), n(1.0));
        assert_eq!(ok("floor", &[n(-1.2)]), n(-2.0));
        assert_eq!(err("abs", &[s("1")]).message, "abs() expects a number as argument 1, got string");
        assert_eq!(err("ceil", &[]).arg, None);
    }

    #[test]
    fn zipmap_builds_objects() {
        assert_eq!(
            ok("zipmap", &[strs(&["a", "b"]), list(&[n(1.0), r("s", "x", 0)])]),
            obj(&[("a", n(1.0)), ("b", r("s", "x", 0))])
        );
        assert_eq!(
            ok("zipmap", &[list(&[n(1.0), s("a"), n(1.0)]), nums(&[1.0, 2.0, 3.0])]),
            obj(&[("1", n(3.0)), ("a", n(2.0))])
        );
        assert_eq!(ok("zipmap", &[list(&[]), list(&[])]), obj(&[]));
        let e = err("zipmap", &[strs(&["a"]), nums(&[1.0, 2.0])]);
        assert_eq!(e.message, "zipmap() got 1 key but 2 values");
        assert_eq!(e.arg, Some(1));
        let e = err("zipmap", &[list(&[Value::Null]), nums(&[1.0])]);
        assert!(e.message.contains("element 1 is null"));
        assert_eq!(e.arg, Some(0));
        assert!(err("zipmap", &[list(&[r("s", "x", 0)]), nums(&[1.0])]).message.starts_with("references cannot"));
        assert_eq!(err("zipmap", &[strs(&[]), s("x")]).arg, Some(1));
    }

    #[test]
    fn json_round_trips() {
        let v = obj(&[
            ("b", list(&[n(1.0), n(1.5), Value::Null, Value::Bool(true)])),
            ("a", obj(&[("z", s("x")), ("y", r("source", "tx", 0))])),
        ]);
        let encoded = ok("jsonencode", &[v]);
        assert_eq!(encoded, s(r#"{"a":{"y":"source.tx","z":"x"},"b":[1,1.5,null,true]}"#));
        assert_eq!(ok("jsonencode", &[s("a\"b")]), s(r#""a\"b""#));
        assert_eq!(ok("jsonencode", &[Value::Null]), s("null"));

        let decoded = ok("jsondecode", &[s(r#"{"b": [1, 2.5, null], "a": {"c": "x"}, "t": false}"#)]);
        assert_eq!(
            decoded,
            obj(&[
                ("b", list(&[n(1.0), n(2.5), Value::Null])),
                ("a", obj(&[("c", s("x"))])),
                ("t", Value::Bool(false))
            ])
        );
        assert_eq!(ok("jsondecode", &[s("\"hi\"")]), s("hi"));
        let round = ok("jsondecode", &[ok("jsonencode", &[obj(&[("k", nums(&[1.0, 2.0]))])])]);
        assert_eq!(round, obj(&[("k", nums(&[1.0, 2.0]))]));
        let e = err("jsondecode", &[s("{nope")]);
        assert!(e.message.starts_with("jsondecode() got invalid JSON"));
        assert_eq!(e.arg, Some(0));
        assert!(err("jsondecode", &[s("")]).message.contains("invalid JSON"));
        assert!(err("jsondecode", &[s(&"[".repeat(10_000))]).message.contains("invalid JSON"));
        assert_eq!(err("jsondecode", &[n(1.0)]).arg, Some(0));
        assert_eq!(err("jsonencode", &[]).arg, None);
    }

    #[test]
    fn file_reads_utf8_relative_to_the_module() {
        let dir = std::env::temp_dir().join(format!("mlops-functions-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("query.sql"), "SELECT 1;\n").unwrap();
        std::fs::write(dir.join("sub/ü.txt"), "ünïcode").unwrap();
        std::fs::write(dir.join("binary.bin"), [b'o', b'k', 0xff, 0xfe]).unwrap();
        let context = FunctionContext { base_dir: &dir };
        let read = |p: &str| call("file", &[s(p)], &context);

        assert_eq!(read("query.sql"), Ok(s("SELECT 1;\n")));
        assert_eq!(read("sub/ü.txt"), Ok(s("ünïcode")));
        assert_eq!(read("sub/../query.sql"), Ok(s("SELECT 1;\n")));
        assert!(read("/dev/zero").unwrap_err().message.contains("regular files"));
        assert!(read("sub").unwrap_err().message.contains("regular files"));
        let absolute = dir.join("query.sql");
        assert_eq!(read(&absolute.to_string_lossy()), Ok(s("SELECT 1;\n")));

        let e = read("missing.sql").unwrap_err();
        assert!(e.message.starts_with("file() found no file at "), "{}", e.message);
        assert!(e.message.contains(&dir.join("missing.sql").display().to_string()));
        assert_eq!(e.arg, Some(0));
        assert!(e.help.is_some_and(|h| h.contains(&dir.display().to_string())));
        let e = read("binary.bin").unwrap_err();
        assert!(e.message.contains("not UTF-8"), "{}", e.message);
        assert!(e.message.contains("offset 2"), "{}", e.message);
        assert!(read("sub").unwrap_err().message.contains("regular files"));
        assert!(read("").unwrap_err().message.contains("empty string"));
        assert_eq!(call("file", &[n(1.0)], &context).unwrap_err().arg, Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest::proptest! {
        #[test]
        fn string_functions_never_panic(
            a in "\\PC{0,16}",
            b in "\\PC{0,4}",
            i in -20i64..20,
            j in -20i64..20,
        ) {
            let _ = call("format", &[s(&a), n(1.0), s(&b)], &ctx());
            let _ = call("tonumber", &[s(&a)], &ctx());
            let _ = call("jsondecode", &[s(&a)], &ctx());
            let _ = call("substr", &[s(&a), n(i as f64), n(j as f64)], &ctx());
            let _ = call("split", &[s(&b), s(&a)], &ctx());
            let _ = call("replace", &[s(&a), s(&b), s("x")], &ctx());
            let _ = call("title", &[s(&a)], &ctx());
        }

        #[test]
        fn substr_matches_a_char_slice(a in "\\PC{0,12}", offset in 0i64..15, length in 0i64..15) {
            let chars: Vec<char> = a.chars().collect();
            let start = (offset as usize).min(chars.len());
            let end = (start + length as usize).min(chars.len());
            let expected: String = chars[start..end].iter().collect();
            let got = ok("substr", &[s(&a), n(offset as f64), n(length as f64)]);
            proptest::prop_assert_eq!(got, s(&expected));
        }
    }

    #[test]
    fn errors_display_their_message() {
        let e = err("lower", &[]);
        assert_eq!(e.to_string(), e.message);
    }
}
