//! Values with units, checked at compile time. Text as the user wrote it goes in (`"1h30m"`,
//! `"1.5Gi"`, `"0 3 * * *"`, `"10%"`, or a number for probabilities); a typed value comes out
//! ([`Duration`], [`Memory`], [`Cron`], or a checked `f64`), or a [`UnitError`] whose message
//! says what is wrong with the text and whose help shows what a valid value looks like.
//!
//! Nothing here panics on any input: numbers are accumulated with checked arithmetic and text is
//! only split at character boundaries. Durations, memory sizes and schedules serialise as their
//! text, so the compiled spec shows them as the user would write them.

use crate::value::{format_number, Value};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// Why a value with a unit was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    /// What is wrong with the given text, quoting it.
    pub message: String,
    /// What a valid value looks like.
    pub help: String,
}

impl UnitError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> UnitError {
        UnitError { message: message.into(), help: help.into() }
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UnitError {}

/// Deserialises any of the string-typed units through its `FromStr`, so a spec read back from
/// JSON is checked exactly like source text.
struct TextVisitor<T> {
    expecting: &'static str,
    marker: PhantomData<T>,
}

impl<T> TextVisitor<T> {
    fn new(expecting: &'static str) -> TextVisitor<T> {
        TextVisitor { expecting, marker: PhantomData }
    }
}

impl<T: FromStr<Err = UnitError>> de::Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|e: UnitError| E::custom(e.message))
    }
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// Duration units from largest to smallest, with their length in milliseconds. The order is the
/// order compounds must be written in (`"1h30m"`, not `"30m1h"`).
const DURATION_UNITS: [(&str, u64); 6] = [
    ("w", 7 * 24 * 60 * 60 * 1000),
    ("d", 24 * 60 * 60 * 1000),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

const DURATION_HELP: &str = "use a number followed by a unit (ms, s, m, h, d, w): \"30s\", \"10m\", \
                             \"24h\", \"7d\"; combine units largest first, e.g. \"1h30m\"";

/// A length of time such as `"30s"`, `"24h"` or `"1h30m"`, held in whole milliseconds.
///
/// Units are `ms`, `s`, `m`, `h`, `d` (24 hours) and `w` (7 days). A compound lists each unit at
/// most once, largest first. Zero (`"0s"`) parses; whether it is allowed is the caller's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    /// A duration of `millis` milliseconds.
    pub fn from_millis(millis: u64) -> Duration {
        Duration { millis }
    }

    /// Parses duration text; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Duration, UnitError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(UnitError::new("a duration cannot be empty", DURATION_HELP));
        }
        if s.starts_with('-') {
            return Err(UnitError::new(format!("duration \"{s}\" is negative"), DURATION_HELP));
        }
        let mut total: u64 = 0;
        let mut previous: Option<usize> = None;
        let mut rest = s;
        while !rest.is_empty() {
            // `find` returns a char boundary, so these splits cannot panic.
            let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let (digits, after) = rest.split_at(digits_end);
            if digits.is_empty() {
                return Err(duration_missing_number(s, after));
            }
            if after.starts_with('.') {
                return Err(duration_fraction(s));
            }
            if after.starts_with(char::is_whitespace) {
                let word = after.trim_start();
                let word = &word[..word.find(|c: char| !c.is_alphabetic()).unwrap_or(word.len())];
                let help = match unit_synonym(word) {
                    Some(unit) => format!("write \"{digits}{unit}\"; {DURATION_HELP}"),
                    None => DURATION_HELP.to_string(),
                };
                return Err(UnitError::new(
                    format!("duration \"{s}\" has a space; write the number and unit together"),
                    help,
                ));
            }
            let unit_end = after.find(|c: char| !c.is_alphabetic()).unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_end);
            if unit.is_empty() {
                return Err(if after.is_empty() {
                    UnitError::new(
                        format!("duration \"{s}\" has no unit after {digits}"),
                        format!(
                            "add a unit, e.g. \"{digits}s\" for seconds or \"{digits}m\" for minutes; \
                             units are ms, s, m, h, d, w"
                        ),
                    )
                } else {
                    let c = after.chars().next().unwrap_or(' ');
                    UnitError::new(format!("duration \"{s}\" has an unexpected character '{c}'"), DURATION_HELP)
                });
            }
            let Some(rank) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
                let help = match unit_synonym(unit) {
                    Some(u) => format!("write \"{digits}{u}\"; {DURATION_HELP}"),
                    None => DURATION_HELP.to_string(),
                };
                return Err(UnitError::new(format!("duration \"{s}\" has an unknown unit \"{unit}\""), help));
            };
            if let Some(prev) = previous {
                if rank == prev {
                    return Err(UnitError::new(
                        format!("duration \"{s}\" gives the unit \"{unit}\" twice"),
                        "give each unit once, largest first, e.g. \"1h30m\"",
                    ));
                }
                if rank < prev {
                    return Err(UnitError::new(
                        format!(
                            "duration \"{s}\" has \"{unit}\" after \"{}\"; units go largest first",
                            DURATION_UNITS[prev].0
                        ),
                        "write compounds largest unit first, e.g. \"1h30m\" rather than \"30m1h\"",
                    ));
                }
            }
            let too_large = || UnitError::new(format!("duration \"{s}\" is too large"), DURATION_HELP);
            // Only digits reach this parse, so its only failure is overflow.
            let n: u64 = digits.parse().map_err(|_| too_large())?;
            total = n.checked_mul(DURATION_UNITS[rank].1).and_then(|ms| total.checked_add(ms)).ok_or_else(too_large)?;
            previous = Some(rank);
            rest = next;
        }
        Ok(Duration { millis: total })
    }

    /// The length in milliseconds.
    pub fn as_millis(&self) -> u64 {
        self.millis
    }

    /// The length in seconds, with any milliseconds as the fraction.
    pub fn as_secs_f64(&self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

/// Explains a duration piece that starts with something other than a number (`"h"`, `"1h-5m"`).
fn duration_missing_number(whole: &str, at: &str) -> UnitError {
    let c = at.chars().next().unwrap_or(' ');
    if c.is_alphabetic() {
        let unit_end = at.find(|c: char| !c.is_alphabetic()).unwrap_or(at.len());
        let unit = &at[..unit_end];
        UnitError::new(format!("duration \"{whole}\" has no number before \"{unit}\""), DURATION_HELP)
    } else if c == '.' {
        duration_fraction(whole)
    } else if c.is_whitespace() {
        UnitError::new(format!("duration \"{whole}\" has a space"), DURATION_HELP)
    } else {
        UnitError::new(format!("duration \"{whole}\" has an unexpected character '{c}'"), DURATION_HELP)
    }
}

fn duration_fraction(whole: &str) -> UnitError {
    UnitError::new(
        format!("duration \"{whole}\" has a fraction; durations are whole numbers of a unit"),
        "write a compound instead, e.g. \"1h30m\" rather than \"1.5h\", or a smaller unit",
    )
}

/// The unit a user probably meant by a spelled-out or differently-cased unit (`"hours"` → `h`).
fn unit_synonym(word: &str) -> Option<&'static str> {
    let lower = word.to_lowercase();
    let unit = match lower.as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "w" | "wk" | "wks" | "week" | "weeks" => "w",
        _ => return None,
    };
    Some(unit)
}

impl fmt::Display for Duration {
    /// The canonical form: largest units first up to days (weeks would turn `"30d"` into
    /// `"4w2d"`, which reads badly in plans), zero units left out (`"1h30m"`, `"1s500ms"`), and
    /// `"0s"` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.millis;
        for (unit, ms) in DURATION_UNITS.iter().filter(|(u, _)| *u != "w") {
            let n = rest / ms;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest %= ms;
            }
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Duration, UnitError> {
        Duration::parse(s)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(TextVisitor::new("a duration such as \"30s\" or \"1h30m\""))
    }
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/// Kubernetes quantity suffixes accepted for memory, with their multipliers.
const MEMORY_SUFFIXES: [(&str, u128); 13] = [
    ("", 1),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
];

const MEMORY_HELP: &str = "use a Kubernetes quantity: bytes (\"1024\"), a binary suffix Ki Mi Gi Ti Pi \
                           (\"512Mi\", \"1.5Gi\") or a decimal suffix k M G T P (\"8G\")";

/// A memory size written as a Kubernetes quantity (`"8Gi"`, `"512Mi"`, `"1.5Gi"`, `"8G"`,
/// `"1024"`), held in bytes together with the text as written.
///
/// A fraction that does not come to a whole number of bytes is rounded up, as Kubernetes does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Memory {
    bytes: u64,
    text: String,
}

impl Memory {
    /// A size of `bytes` bytes, written as a plain number.
    pub fn from_bytes(bytes: u64) -> Memory {
        Memory { bytes, text: bytes.to_string() }
    }

    /// Parses a Kubernetes quantity; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Memory, UnitError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(UnitError::new("a memory size cannot be empty", MEMORY_HELP));
        }
        if s.starts_with('-') {
            return Err(UnitError::new(format!("memory size \"{s}\" is negative"), MEMORY_HELP));
        }
        let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        if number.is_empty() {
            return Err(UnitError::new(format!("memory size \"{s}\" does not start with a number"), MEMORY_HELP));
        }
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
            return Err(UnitError::new(
                format!("memory size \"{s}\" has a malformed number \"{number}\""),
                "write the number as digits with at most one decimal point, e.g. \"1.5Gi\"",
            ));
        }
        let Some(&(_, multiplier)) = MEMORY_SUFFIXES.iter().find(|(x, _)| *x == suffix) else {
            return Err(memory_suffix_error(s, number, suffix));
        };
        let too_large = || {
            UnitError::new(
                format!("memory size \"{s}\" is too large"),
                "the largest size is 16Ei (2^64 - 1 bytes); check the number and suffix",
            )
        };
        // Exact integer arithmetic: mantissa × multiplier / 10^fraction_digits, rounded up.
        let mut mantissa: u128 = 0;
        for d in whole.bytes().chain(fraction.bytes()) {
            mantissa =
                mantissa.checked_mul(10).and_then(|m| m.checked_add(u128::from(d - b'0'))).ok_or_else(too_large)?;
        }
        let scale = u32::try_from(fraction.len()).ok().and_then(|n| 10u128.checked_pow(n)).ok_or_else(too_large)?;
        let scaled = mantissa.checked_mul(multiplier).ok_or_else(too_large)?;
        let bytes = scaled.div_ceil(scale);
        let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
        Ok(Memory { bytes, text: s.to_string() })
    }

    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Explains an unknown memory suffix, suggesting the quantity the user most likely meant.
fn memory_suffix_error(whole: &str, number: &str, suffix: &str) -> UnitError {
    let message = format!("memory size \"{whole}\" has an unknown suffix \"{suffix}\"");
    if suffix.starts_with(char::is_whitespace) {
        return UnitError::new(
            format!("memory size \"{whole}\" has a space; write the number and suffix together"),
            format!("write e.g. \"{number}{}\"; {MEMORY_HELP}", suffix.trim()),
        );
    }
    // "8GB", "8GiB", "8gb", "8KB": byte suffixes from other tools.
    let stem = suffix.strip_suffix(['B', 'b']).unwrap_or(suffix);
    let binary = stem.len() == 2 && stem.ends_with(['i', 'I']);
    let prefix = stem.chars().next().map(|c| c.to_ascii_uppercase());
    let suggestion = match prefix {
        Some(p @ ('K' | 'M' | 'G' | 'T' | 'P' | 'E')) if stem.len() == 1 || binary => {
            let decimal = if p == 'K' { 'k' } else { p };
            if suffix == "m" {
                // "m" is milli in Kubernetes, which for memory is almost certainly a mistake.
                return UnitError::new(
                    format!("memory size \"{whole}\" uses \"m\", which means milli (1/1000 of a byte)"),
                    format!("for mebibytes write \"{number}Mi\"; for megabytes \"{number}M\""),
                );
            }
            if binary {
                format!("\"{number}{p}i\"")
            } else {
                format!("\"{number}{p}i\" (binary) or \"{number}{decimal}\" (decimal)")
            }
        }
        _ => return UnitError::new(message, MEMORY_HELP),
    };
    let help = format!(
        "use a Kubernetes quantity such as {suggestion}; suffixes are case-sensitive \
         and have no \"B\""
    );
    UnitError::new(message, help)
}

impl fmt::Display for Memory {
    /// The quantity as written (trimmed), e.g. `8Gi`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Memory {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Memory, UnitError> {
        Memory::parse(s)
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Memory, D::Error> {
        d.deserialize_str(TextVisitor::new("a memory size such as \"8Gi\""))
    }
}

// ---------------------------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------------------------

/// One of the five cron fields: its name for messages, its range, and the names it accepts.
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names standing for `name_base`, `name_base + 1`, ….
    names: &'static [&'static str],
    name_base: u32,
    help: &'static str,
}

const MINUTE: CronField =
    CronField { name: "minute", min: 0, max: 59, names: &[], name_base: 0, help: "minutes are 0–59" };
const HOUR: CronField = CronField { name: "hour", min: 0, max: 23, names: &[], name_base: 0, help: "hours are 0–23" };
const DAY_OF_MONTH: CronField =
    CronField { name: "day-of-month", min: 1, max: 31, names: &[], name_base: 0, help: "days of the month are 1–31" };
const MONTH: CronField = CronField {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    name_base: 1,
    help: "months are 1–12 or JAN–DEC",
};
const DAY_OF_WEEK: CronField = CronField {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    name_base: 0,
    help: "days of the week are 0–7 (0 and 7 are Sunday) or SUN–SAT",
};

const CRON_HELP: &str = "use five fields \"minute hour day-of-month month day-of-week\", e.g. \
                         \"0 3 * * *\" (03:00 every day) or \"*/15 * * * MON-FRI\", or a macro \
                         such as @daily";

const CRON_MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// How many days [`Cron::next_after`] looks ahead: a little over eight years, because Feb 29
/// can be eight years from the next (2096 → 2104), the longest gap of any satisfiable schedule.
const CRON_SEARCH_DAYS: i64 = 9 * 366;

/// A standard five-field cron schedule (minute, hour, day-of-month, month, day-of-week), in UTC.
///
/// Fields take `*`, numbers, lists (`1,15`), ranges (`1-5`) and steps (`*/15`, `1-30/5`); months
/// and weekdays also take names (`JAN`, `mon-fri`, any case), and day-of-week 7 is Sunday.
/// Macros `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly` and `@annually` are
/// accepted. As in Vixie cron, when both day fields are restricted (neither starts with `*`) a
/// day matches if *either* does; otherwise both must.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bit 0 is Sunday; 7 is folded into 0 when parsing.
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

impl Cron {
    /// Parses a cron schedule; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Cron, UnitError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(UnitError::new("a cron schedule cannot be empty", CRON_HELP));
        }
        let expanded = if s.starts_with('@') {
            let known = CRON_MACROS.iter().find(|(name, _)| name.eq_ignore_ascii_case(s));
            match known {
                Some((_, fields)) => *fields,
                None => {
                    let message = if s.eq_ignore_ascii_case("@reboot") {
                        "cron macro \"@reboot\" has no meaning for a schedule".to_string()
                    } else {
                        format!("\"{s}\" is not a cron macro")
                    };
                    return Err(UnitError::new(
                        message,
                        "macros are @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually",
                    ));
                }
            }
        } else {
            s
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            let help = if fields.len() == 6 {
                format!("a seconds field is not supported; {CRON_HELP}")
            } else {
                CRON_HELP.to_string()
            };
            return Err(UnitError::new(
                format!(
                    "cron schedule \"{s}\" has {} field{}; it needs 5 (minute hour day-of-month month day-of-week)",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" }
                ),
                help,
            ));
        };
        let mut days_of_week = parse_cron_field(&DAY_OF_WEEK, dow)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Cron {
            text: s.to_string(),
            minutes: parse_cron_field(&MINUTE, minute)?,
            hours: parse_cron_field(&HOUR, hour)?,
            days_of_month: parse_cron_field(&DAY_OF_MONTH, dom)?,
            months: parse_cron_field(&MONTH, month)?,
            days_of_week,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        })
    }

    /// The first minute matching the schedule strictly after `unix_secs` (seconds since the
    /// Unix epoch, UTC), as Unix seconds. `None` if the schedule never fires (`0 0 30 2 *`) or
    /// the answer is beyond the range of `i64`.
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let start = unix_secs.div_euclid(60).checked_add(1)?.checked_mul(60)?;
        let first_day = start.div_euclid(86_400);
        let second_of_day = start.rem_euclid(86_400);
        let mut from = (second_of_day / 3600, (second_of_day % 3600) / 60);
        for offset in 0..CRON_SEARCH_DAYS {
            let day = first_day.checked_add(offset)?;
            if self.day_matches(day) {
                if let Some((h, m)) = self.first_time_from(from.0, from.1) {
                    // Counted from `start` rather than from midnight, so that a start near the
                    // lower limit of i64 cannot overflow through its own day's midnight.
                    return start.checked_add(offset * 86_400 + h * 3600 + m * 60 - second_of_day);
                }
            }
            from = (0, 0);
        }
        None
    }

    /// Does the schedule fire on this day (days since the epoch)?
    fn day_matches(&self, day: i64) -> bool {
        let (_, month, dom) = civil_from_days(day);
        // 1970-01-01 was a Thursday (4); bit 0 is Sunday.
        let weekday = (day.rem_euclid(7) + 4) % 7;
        if !bit(self.months, month) {
            return false;
        }
        let dom_ok = bit(self.days_of_month, dom);
        let dow_ok = bit(self.days_of_week, weekday);
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }

    /// The first (hour, minute) at or after `(hour, minute)` within one day.
    fn first_time_from(&self, hour: i64, minute: i64) -> Option<(i64, i64)> {
        for h in hour..24 {
            if !bit(self.hours, h) {
                continue;
            }
            let first = if h == hour { minute } else { 0 };
            if let Some(m) = (first..60).find(|m| bit(self.minutes, *m)) {
                return Some((h, m));
            }
        }
        None
    }
}

fn bit(mask: u64, n: i64) -> bool {
    (0..64).contains(&n) && mask & (1u64 << n) != 0
}

/// Parses one cron field into a bitmask of the values it allows.
fn parse_cron_field(field: &CronField, text: &str) -> Result<u64, UnitError> {
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(UnitError::new(
                format!("{} field \"{text}\" has an empty list item", field.name),
                format!("separate values with single commas, e.g. \"1,15\"; {}", field.help),
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_cron_step(field, item, step)?)),
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (low, high) = (cron_value(field, a, item)?, cron_value(field, b, item)?);
            if low > high {
                return Err(UnitError::new(
                    format!("{} range \"{range}\" goes backwards", field.name),
                    format!(
                        "write ranges low to high, e.g. \"1-5\"; to wrap around, list two ranges \
                         such as \"22-23,0-2\"; {}",
                        field.help
                    ),
                ));
            }
            (low, high)
        } else {
            let value = cron_value(field, range, item)?;
            if step.is_some() {
                return Err(UnitError::new(
                    format!("{} \"{item}\" has a step but no range", field.name),
                    format!("write \"*/N\" or a range with a step, e.g. \"{range}-{}/N\"", field.max),
                ));
            }
            (value, value)
        };
        // Values are at most 59, so the shifts stay inside the u64.
        for v in (low..=high).step_by(step.unwrap_or(1)) {
            mask |= 1u64 << v;
        }
    }
    Ok(mask)
}

fn parse_cron_step(field: &CronField, item: &str, step: &str) -> Result<usize, UnitError> {
    let bad = |why: &str| {
        UnitError::new(
            format!("{} step in \"{item}\" {why}", field.name),
            format!("a step is a whole number of at least 1, e.g. \"*/15\"; {}", field.help),
        )
    };
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not a number"));
    }
    let n: usize = step.parse().map_err(|_| bad("is too large"))?;
    if n == 0 {
        return Err(bad("is zero"));
    }
    Ok(n)
}

/// Parses one number or name of a field and checks its range.
fn cron_value(field: &CronField, text: &str, item: &str) -> Result<u32, UnitError> {
    if text.is_empty() {
        return Err(UnitError::new(
            format!("{} \"{item}\" is missing a value", field.name),
            format!("ranges are written \"low-high\", e.g. \"1-5\"; {}", field.help),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = || {
            UnitError::new(
                format!("{} {text} is out of range {}–{}", field.name, field.min, field.max),
                field.help.to_string(),
            )
        };
        let n: u32 = text.parse().map_err(|_| out_of_range())?;
        if !(field.min..=field.max).contains(&n) {
            return Err(out_of_range());
        }
        return Ok(n);
    }
    if let Some(i) = field.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        // `names` has at most 12 entries, so the index fits.
        return Ok(field.name_base + i as u32);
    }
    let what = if field.names.is_empty() { "a number" } else { "a number or a name" };
    Err(UnitError::new(format!("{} \"{text}\" is not {what}", field.name), field.help.to_string()))
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month 1–12, day 1–31).
/// The algorithm counts 400-year eras from 0000-03-01, so that leap days end each year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // `days` comes from Unix seconds / 86400, so it is far from i64's limits; saturating keeps
    // even a direct call with an extreme value from overflowing.
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era.saturating_add(era.saturating_mul(400)) + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Cron {
    /// The schedule as written (trimmed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Cron {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Cron, UnitError> {
        Cron::parse(s)
    }
}

impl Serialize for Cron {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cron, D::Error> {
        d.deserialize_str(TextVisitor::new("a cron schedule such as \"0 3 * * *\""))
    }
}

// ---------------------------------------------------------------------------------------------
// Percentages and fractions
// ---------------------------------------------------------------------------------------------

const PERCENTAGE_HELP: &str = "use a number from 0 to 100 (e.g. 10) or a string such as \"10%\"";

/// Percentages: a number from 0 to 100 (`10`) or a string with a percent sign (`"12.5%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentage;

impl Percentage {
    /// Reads a percentage, returning it on the 0–100 scale (`"10%"` → `10.0`).
    pub fn from_value(value: &Value) -> Result<f64, UnitError> {
        match value {
            Value::Number(n) => check_percentage(*n, &format_number(*n)),
            Value::String(text) => {
                let s = text.trim();
                let Some(number) = s.strip_suffix('%') else {
                    let help = if is_decimal(s) {
                        format!("write \"{s}%\" or the number {s}")
                    } else {
                        PERCENTAGE_HELP.to_string()
                    };
                    return Err(UnitError::new(format!("percentage \"{s}\" has no % sign"), help));
                };
                let number = number.trim_end();
                if !is_decimal(number) {
                    return Err(UnitError::new(format!("percentage \"{s}\" is not a number"), PERCENTAGE_HELP));
                }
                let n: f64 = number
                    .parse()
                    .map_err(|_| UnitError::new(format!("percentage \"{s}\" is not a number"), PERCENTAGE_HELP))?;
                check_percentage(n, s)
            }
            other => Err(UnitError::new(
                format!("a percentage must be a number or a string, got {}", other.type_name()),
                PERCENTAGE_HELP,
            )),
        }
    }
}

fn check_percentage(n: f64, shown: &str) -> Result<f64, UnitError> {
    if n.is_finite() && (0.0..=100.0).contains(&n) {
        Ok(n)
    } else {
        Err(UnitError::new(format!("percentage {shown} is outside 0–100"), PERCENTAGE_HELP))
    }
}

/// `-?digits(.digits)?`: the only number syntax accepted in percentage strings, so that
/// `"inf%"`, `"1e2%"` and `"+5%"` are rejected rather than surprising.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

/// Checks a probability: a number from 0 to 1 inclusive.
pub fn probability(x: f64) -> Result<f64, UnitError> {
    if x.is_finite() && (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(UnitError::new(
            format!("probability {} is outside 0–1", format_number(x)),
            "use a number from 0 to 1, e.g. 0.05",
        ))
    }
}

/// Checks a fraction that must leave something on both sides, such as a holdout share:
/// strictly between 0 and 1.
pub fn open_fraction(x: f64) -> Result<f64, UnitError> {
    if x.is_finite() && x > 0.0 && x < 1.0 {
        Ok(x)
    } else {
        Err(UnitError::new(
            format!("fraction {} must be strictly between 0 and 1", format_number(x)),
            "use a number above 0 and below 1, e.g. 0.2 for 20%",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- durations -----

    #[test]
    fn durations_parse_single_units() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("2w", 1_209_600_000),
            ("0s", 0),
            ("  5m ", 300_000),
        ];
        for (text, ms) in cases {
            assert_eq!(Duration::parse(text).map(|d| d.as_millis()), Ok(ms), "{text}");
        }
    }

    #[test]
    fn durations_parse_compounds() {
        assert_eq!(Duration::parse("1h30m").unwrap().as_millis(), 5_400_000);
        assert_eq!(Duration::parse("1w2d3h4m5s6ms").unwrap().as_millis(), 788_645_006);
        assert_eq!(Duration::parse("1s500ms").unwrap().as_secs_f64(), 1.5);
    }

    #[test]
    fn durations_display_canonically() {
        let cases = [
            ("90m", "1h30m"),
            ("0s", "0s"),
            ("0h", "0s"),
            ("14d", "14d"),
            ("2w", "14d"),
            ("30d", "30d"),
            ("1500ms", "1s500ms"),
            ("86400s", "1d"),
            ("1h0m", "1h"),
            ("25h", "1d1h"),
        ];
        for (text, canonical) in cases {
            assert_eq!(Duration::parse(text).unwrap().to_string(), canonical, "{text}");
        }
        assert_eq!(Duration::from_millis(u64::MAX).to_string(), "213503982334d14h25m51s615ms");
        assert_eq!(Duration::parse("30500568904w6d14h25m51s615ms").unwrap().as_millis(), u64::MAX);
    }

    #[test]
    fn durations_round_trip_through_serde() {
        let d = Duration::parse("90m").unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"1h30m\"");
        assert_eq!(serde_json::from_str::<Duration>(&json).unwrap(), d);
        let bad = serde_json::from_str::<Duration>("\"5y\"").unwrap_err();
        assert!(bad.to_string().contains("unknown unit"), "{bad}");
        assert!(serde_json::from_str::<Duration>("5").is_err());
    }

    fn duration_err(text: &str) -> UnitError {
        Duration::parse(text).expect_err(text)
    }

    #[test]
    fn durations_reject_bad_text() {
        assert_eq!(duration_err("").message, "a duration cannot be empty");
        assert_eq!(duration_err("   ").message, "a duration cannot be empty");
        assert!(duration_err("-5m").message.contains("negative"));
        let e = duration_err("5y");
        assert_eq!(e.message, "duration \"5y\" has an unknown unit \"y\"");
        assert!(e.help.contains("ms, s, m, h, d, w"));
        let e = duration_err("5 hours");
        assert!(e.message.contains("space"), "{}", e.message);
        assert!(e.help.contains("\"5h\"") && e.help.contains("ms, s, m, h, d, w"), "{}", e.help);
        let e = duration_err("5hours");
        assert!(e.message.contains("unknown unit \"hours\""));
        assert!(e.help.starts_with("write \"5h\""));
        assert!(duration_err("5H").help.starts_with("write \"5h\""));
        let e = duration_err("30");
        assert!(e.message.contains("no unit"));
        assert!(e.help.contains("\"30s\""));
        assert!(duration_err("h").message.contains("no number before \"h\""));
        assert!(duration_err("1.5h").message.contains("fraction"));
        assert!(duration_err(".5h").message.contains("fraction"));
        assert!(duration_err("1h 30m").message.contains("space"));
        assert!(duration_err("1h-30m").message.contains("unexpected character '-'"));
        assert!(duration_err("1h+").message.contains("unexpected character '+'"));
        assert!(duration_err("5µs").message.contains("unknown unit \"µs\""));
        assert!(duration_err("10h€").message.contains("unexpected character '€'"));
        assert!(duration_err("30m1h").message.contains("largest first"));
        assert!(duration_err("1h1h").message.contains("twice"));
        assert!(duration_err("1ms1s").message.contains("largest first"));
        assert!(duration_err("99999999999999999999s").message.contains("too large"));
        assert!(duration_err("30500568905w").message.contains("too large"));
        assert!(duration_err("30500568904w6d14h25m51s616ms").message.contains("too large"));
    }

    // ----- memory -----

    #[test]
    fn memory_parses_kubernetes_quantities() {
        let cases = [
            ("1024", 1024u64),
            ("8Gi", 8 << 30),
            ("512Mi", 512 << 20),
            ("1Ki", 1024),
            ("2Ti", 2 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("8G", 8_000_000_000),
            ("1k", 1000),
            ("3M", 3_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1.5Gi", 1_610_612_736),
            ("0.5Mi", 524_288),
            ("1.3Ki", 1332), // 1331.2 rounded up
            ("0", 0),
            ("0.5", 1),
            (" 8Gi ", 8 << 30),
            ("15Ei", 15 << 60),
        ];
        for (text, bytes) in cases {
            assert_eq!(Memory::parse(text).map(|m| m.bytes()), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn memory_displays_and_serialises_as_written() {
        let m = Memory::parse(" 1.5Gi ").unwrap();
        assert_eq!(m.to_string(), "1.5Gi");
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"1.5Gi\"");
        assert_eq!(serde_json::from_str::<Memory>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Memory>("\"8GB\"").is_err());
        assert_eq!(Memory::from_bytes(2048).to_string(), "2048");
        assert_eq!(Memory::from_bytes(2048).bytes(), 2048);
    }

    fn memory_err(text: &str) -> UnitError {
        Memory::parse(text).expect_err(text)
    }

    #[test]
    fn memory_rejects_bad_text() {
        let e = memory_err("8GB");
        assert!(e.message.contains("unknown suffix \"GB\""));
        assert!(e.help.contains("\"8Gi\"") && e.help.contains("\"8G\""), "{}", e.help);
        let e = memory_err("8gi");
        assert!(e.message.contains("unknown suffix \"gi\""));
        assert!(e.help.contains("\"8Gi\""));
        assert!(memory_err("8GiB").help.contains("\"8Gi\""));
        assert!(memory_err("8K").help.contains("\"8Ki\"") && memory_err("8K").help.contains("\"8k\""));
        assert!(memory_err("8kb").help.contains("\"8k\""));
        assert!(memory_err("8m").message.contains("milli"));
        assert!(memory_err("8 Gi").message.contains("space"));
        assert!(memory_err("8Zi").help.contains("Kubernetes quantity"));
        assert!(memory_err("8Gix").help.contains("Kubernetes quantity"));
        assert!(memory_err("-1Gi").message.contains("negative"));
        assert!(memory_err("").message.contains("empty"));
        assert!(memory_err("Gi").message.contains("does not start with a number"));
        assert!(memory_err("+8Gi").message.contains("does not start with a number"));
        assert!(memory_err("1..5Gi").message.contains("malformed"));
        assert!(memory_err("1.2.3Gi").message.contains("malformed"));
        assert!(memory_err(".5Gi").message.contains("malformed"));
        assert!(memory_err("5.Gi").message.contains("malformed"));
        assert!(memory_err("16Ei").message.contains("too large"));
        assert!(memory_err("18446744073709551616").message.contains("too large"));
        assert!(memory_err("99999999999999999999999999999999999999999Ei").message.contains("too large"));
        assert!(memory_err(&format!("1.{}", "0".repeat(50))).message.contains("too large"));
        assert_eq!(Memory::parse("18446744073709551615").map(|m| m.bytes()), Ok(u64::MAX));
    }

    // ----- cron -----

    /// Days since the epoch of a civil date (the inverse of `civil_from_days`), for tests.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    fn next(schedule: &str, after: i64) -> Option<i64> {
        Cron::parse(schedule).unwrap().next_after(after)
    }

    #[test]
    fn civil_dates_convert_both_ways() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(civil_from_days(days_from_civil(2100, 3, 1)), (2100, 3, 1));
        for day in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        // Extreme inputs must not overflow.
        let _ = civil_from_days(i64::MAX);
        let _ = civil_from_days(i64::MIN);
    }

    #[test]
    fn cron_next_after_daily() {
        let t = at(2026, 11, 27, 7, 0);
        assert_eq!(next("0 3 * * *", t), Some(at(2026, 11, 28, 3, 0)));
        // Strictly after: exactly on a matching minute moves to the next day.
        assert_eq!(next("0 3 * * *", at(2026, 11, 28, 3, 0)), Some(at(2026, 11, 29, 3, 0)));
        // Seconds into the matching minute also count as past it.
        assert_eq!(next("0 3 * * *", at(2026, 11, 28, 2, 59) + 59), Some(at(2026, 11, 28, 3, 0)));
        // Year boundary.
        assert_eq!(next("0 3 * * *", at(2026, 12, 31, 4, 0)), Some(at(2027, 1, 1, 3, 0)));
    }

    #[test]
    fn cron_next_after_steps_and_lists() {
        let t = at(2026, 5, 1, 10, 7);
        assert_eq!(next("*/15 * * * *", t), Some(at(2026, 5, 1, 10, 15)));
        assert_eq!(next("*/15 * * * *", at(2026, 5, 1, 10, 45)), Some(at(2026, 5, 1, 11, 0)));
        assert_eq!(next("*/15 * * * *", at(2026, 5, 1, 23, 50)), Some(at(2026, 5, 2, 0, 0)));
        assert_eq!(next("* * * * *", t + 30), Some(t + 60));
        assert_eq!(next("5,35 9-17/4 * * *", t), Some(at(2026, 5, 1, 13, 5)));
        assert_eq!(next("1-30/10 * * * *", t), Some(at(2026, 5, 1, 10, 11)));
        assert_eq!(next("0 0 1 jan,Jul *", t), Some(at(2026, 7, 1, 0, 0)));
    }

    #[test]
    fn cron_next_after_leap_day() {
        assert_eq!(next("0 0 29 2 *", at(2026, 1, 1, 0, 0)), Some(at(2028, 2, 29, 0, 0)));
        // The longest gap: no Feb 29 in 2100.
        assert_eq!(next("0 0 29 2 *", at(2096, 3, 1, 0, 0)), Some(at(2104, 2, 29, 0, 0)));
    }

    #[test]
    fn cron_next_after_impossible_is_none() {
        assert_eq!(next("0 0 30 2 *", at(2026, 1, 1, 0, 0)), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", at(2026, 1, 1, 0, 0)), None);
        // With OR semantics the weekday still fires (on Mondays in February).
        assert_eq!(next("0 0 30 2 MON", at(2026, 11, 27, 0, 0)), Some(at(2027, 2, 1, 0, 0)));
    }

    #[test]
    fn cron_day_fields_or_when_both_restricted() {
        // 2026-11-27 is a Friday. "1st of the month OR Monday": next is Monday 30th.
        let fri = at(2026, 11, 27, 12, 0);
        assert_eq!(next("0 0 1 * MON", fri), Some(at(2026, 11, 30, 0, 0)));
        // From Tuesday Dec 1st 00:30 the 1st is past; next Monday is Dec 7.
        assert_eq!(next("0 0 1 * MON", at(2026, 12, 1, 0, 30)), Some(at(2026, 12, 7, 0, 0)));
        // From Monday 30th midday, the 1st (Tuesday) comes first.
        assert_eq!(next("0 0 1 * MON", at(2026, 11, 30, 12, 0)), Some(at(2026, 12, 1, 0, 0)));
        // A starred day-of-month means only the weekday counts (AND with "every day").
        assert_eq!(next("0 0 * * MON", fri), Some(at(2026, 11, 30, 0, 0)));
        // "*/2" starts with '*', so as in Vixie cron it is ANDed: odd days that are Mondays.
        assert_eq!(next("0 0 */2 * 1", fri), Some(at(2026, 12, 7, 0, 0)));
    }

    #[test]
    fn cron_weekday_names_and_seven() {
        let fri = at(2026, 11, 27, 12, 0);
        assert_eq!(next("0 9 * * 7", fri), Some(at(2026, 11, 29, 9, 0)));
        assert_eq!(next("0 9 * * 0", fri), Some(at(2026, 11, 29, 9, 0)));
        assert_eq!(next("0 9 * * sun", fri), Some(at(2026, 11, 29, 9, 0)));
        assert_eq!(next("0 9 * * MON-FRI", fri), Some(at(2026, 11, 30, 9, 0)));
        assert_eq!(next("0 9 * * 5-7", fri), Some(at(2026, 11, 28, 9, 0)));
        assert_eq!(Cron::parse("0 0 * * 7").unwrap(), {
            let mut c = Cron::parse("0 0 * * 0").unwrap();
            c.text = "0 0 * * 7".into();
            c
        });
    }

    #[test]
    fn cron_macros() {
        let fri = at(2026, 11, 27, 12, 0);
        assert_eq!(next("@weekly", fri), Some(at(2026, 11, 29, 0, 0)));
        assert_eq!(next("@daily", fri), Some(at(2026, 11, 28, 0, 0)));
        assert_eq!(next("@midnight", fri), Some(at(2026, 11, 28, 0, 0)));
        assert_eq!(next("@hourly", fri), Some(at(2026, 11, 27, 13, 0)));
        assert_eq!(next("@monthly", fri), Some(at(2026, 12, 1, 0, 0)));
        assert_eq!(next("@yearly", fri), Some(at(2027, 1, 1, 0, 0)));
        assert_eq!(next("@ANNUALLY", fri), Some(at(2027, 1, 1, 0, 0)));
        assert_eq!(Cron::parse("@weekly").unwrap().to_string(), "@weekly");
    }

    #[test]
    fn cron_next_after_edges_of_time() {
        assert_eq!(next("* * * * *", i64::MAX), None);
        assert_eq!(next("* * * * *", i64::MAX - 200), Some(9_223_372_036_854_775_620));
        assert_eq!(next("0 0 1 1 *", i64::MAX - 86_400), None);
        assert_eq!(next("* * * * *", i64::MIN), Some(-9_223_372_036_854_775_800));
        assert!(next("0 0 1 1 *", i64::MIN).is_some_and(|t| t > i64::MIN));
        // Before the epoch.
        assert_eq!(next("0 0 1 1 *", at(1969, 6, 1, 0, 0)), Some(at(1970, 1, 1, 0, 0)));
        assert_eq!(next("30 * * * *", -1), Some(30 * 60));
    }

    #[test]
    fn cron_displays_and_serialises_as_written() {
        let c = Cron::parse("  0 3 * * MON-FRI ").unwrap();
        assert_eq!(c.to_string(), "0 3 * * MON-FRI");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"0 3 * * MON-FRI\"");
        assert_eq!(serde_json::from_str::<Cron>(&json).unwrap(), c);
        assert!(serde_json::from_str::<Cron>("\"0 25 * * *\"").is_err());
    }

    fn cron_err(text: &str) -> UnitError {
        Cron::parse(text).expect_err(text)
    }

    #[test]
    fn cron_rejects_bad_text() {
        assert_eq!(cron_err("0 25 * * *").message, "hour 25 is out of range 0–23");
        assert_eq!(cron_err("60 * * * *").message, "minute 60 is out of range 0–59");
        assert_eq!(cron_err("0 0 0 * *").message, "day-of-month 0 is out of range 1–31");
        assert_eq!(cron_err("0 0 32 * *").message, "day-of-month 32 is out of range 1–31");
        assert_eq!(cron_err("0 0 * 13 *").message, "month 13 is out of range 1–12");
        assert_eq!(cron_err("0 0 * 0 *").message, "month 0 is out of range 1–12");
        assert_eq!(cron_err("0 0 * * 8").message, "day-of-week 8 is out of range 0–7");
        assert!(cron_err("0 99999999999 * * *").message.contains("out of range"));
        assert!(cron_err("").message.contains("empty"));
        assert!(cron_err("0 3 * *").message.contains("has 4 fields"));
        let e = cron_err("0 0 3 * * *");
        assert!(e.message.contains("has 6 fields"));
        assert!(e.help.contains("seconds"));
        assert!(cron_err("daily").message.contains("has 1 field;"));
        assert!(cron_err("@often").message.contains("not a cron macro"));
        assert!(cron_err("@reboot").message.contains("@reboot"));
        assert!(cron_err("0 0 * FOO *").message.contains("month \"FOO\" is not a number or a name"));
        assert!(cron_err("0 0 * * FUNDAY").message.contains("day-of-week \"FUNDAY\""));
        assert!(cron_err("0 noon * * *").message.contains("hour \"noon\" is not a number"));
        assert!(cron_err("0 0 MON * *").message.contains("day-of-month \"MON\""));
        assert!(cron_err("*/0 * * * *").message.contains("is zero"));
        assert!(cron_err("*/x * * * *").message.contains("not a number"));
        assert!(cron_err("*/ * * * *").message.contains("not a number"));
        assert!(cron_err("*/99999999999999999999999 * * * *").message.contains("too large"));
        assert!(cron_err("5/15 * * * *").message.contains("step but no range"));
        assert!(cron_err("0 5-1 * * *").message.contains("backwards"));
        assert!(cron_err("0 FRI-MON * * *").message.contains("hour"));
        assert!(cron_err("0 0 * * FRI-MON").message.contains("backwards"));
        assert!(cron_err("1,,2 * * * *").message.contains("empty list item"));
        assert!(cron_err("1, * * * *").message.contains("empty list item"));
        assert!(cron_err("-1 * * * *").message.contains("missing a value"));
        assert!(cron_err("1- * * * *").message.contains("missing a value"));
        assert!(cron_err("1-2-3 * * * *").message.contains("\"2-3\" is not a number"));
        assert!(cron_err("ä * * * *").message.contains("minute \"ä\""));
    }

    #[test]
    fn cron_accepts_full_syntax() {
        for text in [
            "* * * * *",
            "0,15,30,45 0-23/2 1-31 1-12 0-7",
            "59 23 31 DEC SAT",
            "0 0 1 jan-jun/2 *",
            "0 12 * * mon,wed,FRI",
            "*/5 */2 */3 */4 */2",
            "0 0 1-7 * 1",
        ] {
            assert!(Cron::parse(text).is_ok(), "{text}");
        }
    }

    // ----- percentages and fractions -----

    #[test]
    fn percentages() {
        assert_eq!(Percentage::from_value(&Value::Number(10.0)), Ok(10.0));
        assert_eq!(Percentage::from_value(&Value::Number(0.0)), Ok(0.0));
        assert_eq!(Percentage::from_value(&Value::Number(100.0)), Ok(100.0));
        assert_eq!(Percentage::from_value(&Value::String("10%".into())), Ok(10.0));
        assert_eq!(Percentage::from_value(&Value::String(" 12.5 % ".into())), Ok(12.5));
        assert_eq!(Percentage::from_value(&Value::String("100%".into())), Ok(100.0));
        let err = |v: Value| Percentage::from_value(&v).unwrap_err();
        assert_eq!(err(Value::Number(101.0)).message, "percentage 101 is outside 0–100");
        assert!(err(Value::Number(-1.0)).message.contains("outside"));
        assert!(err(Value::Number(f64::NAN)).message.contains("outside"));
        assert!(err(Value::Number(f64::INFINITY)).message.contains("outside"));
        assert!(err(Value::String("150%".into())).message.contains("outside"));
        assert!(err(Value::String("-5%".into())).message.contains("outside"));
        let e = err(Value::String("10".into()));
        assert!(e.message.contains("no % sign"));
        assert!(e.help.contains("\"10%\""));
        assert!(err(Value::String("ten%".into())).message.contains("not a number"));
        assert!(err(Value::String("inf%".into())).message.contains("not a number"));
        assert!(err(Value::String("1e2%".into())).message.contains("not a number"));
        assert!(err(Value::String("%".into())).message.contains("not a number"));
        assert!(err(Value::String("".into())).message.contains("no % sign"));
        assert!(err(Value::String("1.%".into())).message.contains("not a number"));
        assert!(err(Value::Bool(true)).message.contains("got bool"));
        assert!(err(Value::Null).message.contains("got null"));
    }

    #[test]
    fn probabilities_and_fractions() {
        assert_eq!(probability(0.0), Ok(0.0));
        assert_eq!(probability(1.0), Ok(1.0));
        assert_eq!(probability(0.05), Ok(0.05));
        assert_eq!(probability(1.5).unwrap_err().message, "probability 1.5 is outside 0–1");
        assert!(probability(-0.1).is_err());
        assert!(probability(f64::NAN).is_err());
        assert!(probability(f64::INFINITY).is_err());
        assert_eq!(open_fraction(0.2), Ok(0.2));
        assert_eq!(open_fraction(0.0).unwrap_err().message, "fraction 0 must be strictly between 0 and 1");
        assert!(open_fraction(1.0).is_err());
        assert!(open_fraction(-0.5).is_err());
        assert!(open_fraction(f64::NAN).is_err());
        assert!(!open_fraction(1.0).unwrap_err().help.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,24}") {
            let _ = Duration::parse(&text);
            let _ = Memory::parse(&text);
            let _ = Cron::parse(&text);
            let _ = Percentage::from_value(&Value::String(text));
        }

        #[test]
        fn durations_round_trip(ms in proptest::prelude::any::<u64>()) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }

        #[test]
        fn cron_fields_never_panic(fields in proptest::collection::vec("[0-9*/,A-Za-z-]{1,6}", 5)) {
            if let Ok(cron) = Cron::parse(&fields.join(" ")) {
                let _ = cron.next_after(1_800_000_000);
            }
        }

        #[test]
        fn next_after_is_a_later_matching_minute(t in proptest::prelude::any::<i64>()) {
            let cron = Cron::parse("*/7 3-5 * * MON,FRI").unwrap();
            if let Some(next) = cron.next_after(t) {
                proptest::prop_assert!(next > t);
                proptest::prop_assert_eq!(next.rem_euclid(60), 0);
                proptest::prop_assert!(next - t <= 8 * 86_400);
                proptest::prop_assert!(cron.day_matches(next.div_euclid(86_400)));
            }
        }
    }

    #[test]
    fn unit_error_displays_its_message() {
        let e = Duration::parse("5y").unwrap_err();
        assert_eq!(e.to_string(), e.message);
    }
}
