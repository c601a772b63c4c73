//! PostgreSQL tables and queries. In: a postgres source (connection or the environment variable
//! holding it, a table or a query, declared columns). Out: batches of at most
//! [`DEFAULT_BATCH_ROWS`] rows, fetched through a portal inside a read-only transaction so a
//! large table is never held whole, with values decoded from PostgreSQL's binary format.
//!
//! The synchronous client's transaction borrows its connection, so the portal lives on a
//! thread of its own that hands batches over a channel holding one batch; the reader is then
//! an ordinary owned iterator, and dropping it ends the thread and rolls the transaction back.

use super::builder::{BatchBuilder, ColumnBuilder};
use super::error::{truncate, Cell, Row};
use super::files::hex;
use super::time::MICROS_PER_DAY;
use super::{arrow_schema, BatchReader, DataError, DEFAULT_BATCH_ROWS};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use mlops_compiler::model::{ColumnType, Source};
use postgres::types::{FromSql, Kind, Type};
use postgres::{Client, NoTls, Statement, Transaction};
use sha2::{Digest, Sha256};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i64 = 10_957;

/// What the reading thread says.
enum Msg {
    Batch(RecordBatch),
    Failed(DataError),
    /// Every row was read; without it, a closed channel means the thread died.
    End,
}

/// Reads a postgres source; the rows come from a thread holding the connection.
pub(crate) struct PostgresReader {
    address: String,
    schema: SchemaRef,
    batches: Receiver<Msg>,
    done: bool,
}

/// Everything the reading thread needs, owned.
struct Job {
    source: Source,
    address: String,
    connection: String,
    what: What,
}

/// What is read.
struct What {
    /// `table NAME` or `query`, for messages.
    origin: String,
    /// `SELECT *` of a table, or the query: prepared to learn the result's columns.
    discover: String,
    /// For a table, the `SELECT` of the declared columns only.
    projected: Option<String>,
}

impl What {
    fn of(source: &Source, address: &str) -> Result<What, DataError> {
        let config = |message: String| DataError::Config { address: address.to_string(), message };
        match (&source.table, &source.query) {
            (Some(table), None) => {
                let name = quote_table(table).map_err(|why| {
                    config(format!("table `{table}` {why}; write `name` or `schema.name`, quoting with \" if needed"))
                })?;
                let columns: Vec<String> = source.columns.iter().map(|c| quote_ident(&c.name)).collect();
                Ok(What {
                    origin: format!("table {table}"),
                    discover: format!("SELECT * FROM {name}"),
                    projected: Some(format!("SELECT {} FROM {name}", columns.join(", "))),
                })
            }
            (None, Some(query)) => {
                // A trailing `;` is natural to write but breaks the query as a subquery.
                let query = query.trim().trim_end_matches(';').trim_end();
                Ok(What { origin: "query".to_string(), discover: query.to_string(), projected: None })
            }
            (Some(_), Some(_)) => Err(config("set either `table` or `query`, not both".to_string())),
            (None, None) => Err(config("a postgres source needs `table` or `query`".to_string())),
        }
    }

    /// The SQL whose rows are read.
    fn sql(&self) -> &str {
        self.projected.as_deref().unwrap_or(&self.discover)
    }
}

impl PostgresReader {
    /// Connects, checks the result's columns against the declaration, and starts streaming.
    pub(crate) fn open(source: &Source, address: &str) -> Result<PostgresReader, DataError> {
        let job = Job {
            source: source.clone(),
            address: address.to_string(),
            connection: connection_string(source, address)?,
            what: What::of(source, address)?,
        };
        let (ready_tx, ready_rx) = sync_channel(1);
        // One batch in the channel while the thread decodes the next: reading overlaps the
        // consumer's work, and memory stays at about two batches.
        let (batch_tx, batch_rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("mlops-postgres-reader".to_string())
            .spawn(move || stream(job, ready_tx, batch_tx))
            .map_err(|source| DataError::Thread { address: address.to_string(), source })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(DataError::ReaderStopped { address: address.to_string() }),
        }
        Ok(PostgresReader {
            address: address.to_string(),
            schema: arrow_schema(source),
            batches: batch_rx,
            done: false,
        })
    }
}

impl Iterator for PostgresReader {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let msg = self.batches.recv();
        if !matches!(msg, Ok(Msg::Batch(_))) {
            self.done = true;
        }
        match msg {
            Ok(Msg::Batch(b)) => Some(Ok(b)),
            Ok(Msg::Failed(e)) => Some(Err(e)),
            Ok(Msg::End) => None,
            Err(_) => Some(Err(DataError::ReaderStopped { address: self.address.clone() })),
        }
    }
}

impl BatchReader for PostgresReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// The body of the reading thread: reports readiness (or the setup error) on `ready`, then
/// batches on `out`, and stops as soon as the reader is dropped.
fn stream(job: Job, ready: SyncSender<Result<(), DataError>>, out: SyncSender<Msg>) {
    let mut ready = Some(ready);
    let result = stream_rows(&job, &mut ready, &out);
    // A failed send means the reader is gone and nobody is listening.
    let _ = match (result, ready.take()) {
        (Err(e), Some(ready)) => ready.send(Err(e)).map_err(drop),
        (Err(e), None) => out.send(Msg::Failed(e)).map_err(drop),
        (Ok(()), _) => out.send(Msg::End).map_err(drop),
    };
}

fn stream_rows(
    job: &Job,
    ready: &mut Option<SyncSender<Result<(), DataError>>>,
    out: &SyncSender<Msg>,
) -> Result<(), DataError> {
    let pg = |action| move |source| DataError::postgres(&job.address, action, source);
    let mut client = connect(job)?;
    // Read-only: a configured query can read but never change the database.
    let mut tx = client.build_transaction().read_only(true).start().map_err(pg("starting a transaction"))?;
    let plan = prepare(&mut tx, job)?;
    let portal = tx.bind(&plan.statement, &[]).map_err(pg("running the query"))?;
    if let Some(ready) = ready.take() {
        if ready.send(Ok(())).is_err() {
            return Ok(());
        }
    }
    let mut first_row = 0u64;
    loop {
        let rows = tx.query_portal(&portal, DEFAULT_BATCH_ROWS as i32).map_err(pg("reading rows"))?;
        if rows.is_empty() {
            return Ok(());
        }
        let batch = decode(&rows, &plan, job, first_row)?;
        first_row += rows.len() as u64;
        if out.send(Msg::Batch(batch)).is_err() || rows.len() < DEFAULT_BATCH_ROWS {
            return Ok(());
        }
    }
}

fn connect(job: &Job) -> Result<Client, DataError> {
    Client::connect(&job.connection, NoTls).map_err(|source| DataError::postgres(&job.address, "connecting", source))
}

/// The connection string, from `connection` or the variable `connection_env` names.
fn connection_string(source: &Source, address: &str) -> Result<String, DataError> {
    if let Some(c) = &source.connection {
        return Ok(c.clone());
    }
    let Some(var) = &source.connection_env else {
        return Err(DataError::Config {
            address: address.to_string(),
            message: "a postgres source needs `connection` or `connection_env`".to_string(),
        });
    };
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(DataError::EnvUnset { address: address.to_string(), var: var.clone() }),
    }
}

/// The prepared statement and where each declared column is in its rows.
struct Plan {
    statement: Statement,
    positions: Vec<usize>,
}

fn prepare(tx: &mut Transaction<'_>, job: &Job) -> Result<Plan, DataError> {
    let pg = |source| DataError::postgres(&job.address, "preparing the query", source);
    let discovered = tx.prepare(&job.what.discover).map_err(pg)?;
    let found: Vec<&postgres::Column> = discovered.columns().iter().collect();
    for c in &job.source.columns {
        let Some(col) = found.iter().find(|f| f.name() == c.name) else {
            return Err(DataError::MissingColumn {
                address: job.address.clone(),
                origin: job.what.origin.clone(),
                column: c.name.clone(),
                found: found.iter().map(|f| f.name().to_string()).collect(),
            });
        };
        if !compatible(col.type_(), c.ty) {
            return Err(DataError::IncompatibleType {
                address: job.address.clone(),
                origin: job.what.origin.clone(),
                column: c.name.clone(),
                found: col.type_().name().to_string(),
                expected: c.ty,
            });
        }
    }
    let statement = match &job.what.projected {
        Some(sql) => tx.prepare(sql).map_err(pg)?,
        None => discovered,
    };
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    let positions =
        job.source.columns.iter().map(|c| names.iter().position(|n| *n == c.name).unwrap_or_default()).collect();
    Ok(Plan { statement, positions })
}

/// Can a PostgreSQL column of type `found` be read as `ty`?
fn compatible(found: &Type, ty: ColumnType) -> bool {
    let is_int = [Type::INT2, Type::INT4, Type::INT8].contains(found);
    match ty {
        ColumnType::String | ColumnType::Category => {
            [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(found)
                || matches!(found.kind(), Kind::Enum(_))
        }
        ColumnType::Int => is_int,
        ColumnType::Float => is_int || [Type::FLOAT4, Type::FLOAT8, Type::NUMERIC].contains(found),
        ColumnType::Bool => *found == Type::BOOL,
        ColumnType::Timestamp => [Type::TIMESTAMPTZ, Type::TIMESTAMP, Type::DATE].contains(found),
    }
}

/// A value's bytes in PostgreSQL's binary format, whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Raw<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn decode(rows: &[postgres::Row], plan: &Plan, job: &Job, first_row: u64) -> Result<RecordBatch, DataError> {
    let mut batch = BatchBuilder::new(&job.source, rows.len());
    let types: Vec<&Type> = plan.positions.iter().map(|&p| plan.statement.columns()[p].type_()).collect();
    for (r, row) in rows.iter().enumerate() {
        for (i, (column, &pos)) in job.source.columns.iter().zip(&plan.positions).enumerate() {
            let cell = || {
                Box::new(Cell {
                    origin: job.what.origin.clone(),
                    row: Row::Index(first_row + r as u64),
                    column: column.name.clone(),
                })
            };
            let raw: Option<Raw<'_>> =
                row.try_get(pos).map_err(|source| DataError::postgres(&job.address, "decoding a value", source))?;
            let result = match raw {
                Some(Raw(raw)) => append(&mut batch.columns[i], types[i], raw),
                None if column.nullable => {
                    batch.columns[i].append_null();
                    Ok(())
                }
                None => {
                    return Err(DataError::Null { address: job.address.clone(), cell: cell(), expected: column.ty })
                }
            };
            result.map_err(|(value, reason)| DataError::Value {
                address: job.address.clone(),
                cell: cell(),
                value: truncate(&value),
                expected: column.ty,
                reason,
            })?;
        }
        batch.end_row();
    }
    batch.finish(&job.address)
}

/// Decodes one binary value of type `ty` into the column; on failure, the value as text and why.
fn append(builder: &mut ColumnBuilder, ty: &Type, raw: &[u8]) -> Result<(), (String, String)> {
    let malformed = || (format!("{} bytes", raw.len()), format!("malformed binary {}", ty.name()));
    match builder {
        ColumnBuilder::Utf8(b) => {
            let s = std::str::from_utf8(raw)
                .map_err(|_| (String::from_utf8_lossy(raw).into_owned(), "not UTF-8".into()))?;
            b.append_value(s);
        }
        ColumnBuilder::Int(b) => b.append_value(int(ty, raw).ok_or_else(malformed)?),
        ColumnBuilder::Float(b) => {
            let x = if *ty == Type::FLOAT8 {
                f64::from_be_bytes(raw.try_into().map_err(|_| malformed())?)
            } else if *ty == Type::FLOAT4 {
                f64::from(f32::from_be_bytes(raw.try_into().map_err(|_| malformed())?))
            } else if *ty == Type::NUMERIC {
                // Through its decimal text, so the float is the one nearest the exact value.
                let text = numeric_text(raw).ok_or_else(malformed)?;
                text.parse::<f64>().map_err(|_| (text.clone(), "not a number".to_string()))?
            } else {
                int(ty, raw).ok_or_else(malformed)? as f64
            };
            if !x.is_finite() {
                return Err((x.to_string(), "not a finite number; store a missing value as NULL".into()));
            }
            b.append_value(x);
        }
        ColumnBuilder::Bool(b) => match raw {
            [v] => b.append_value(*v != 0),
            _ => return Err(malformed()),
        },
        ColumnBuilder::Timestamp(b) => {
            let infinite = || ("infinity".to_string(), "an infinite timestamp has no place in time".to_string());
            let micros = if *ty == Type::DATE {
                let days = i32::from_be_bytes(raw.try_into().map_err(|_| malformed())?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(infinite());
                }
                (i64::from(days) + PG_EPOCH_DAYS) * MICROS_PER_DAY
            } else {
                let t = i64::from_be_bytes(raw.try_into().map_err(|_| malformed())?);
                if t == i64::MAX || t == i64::MIN {
                    return Err(infinite());
                }
                // Plain `timestamp` has no zone and is read as UTC, like CSV text without one.
                t.checked_add(PG_EPOCH_MICROS).ok_or_else(malformed)?
            };
            b.append_value(micros);
        }
    }
    Ok(())
}

fn int(ty: &Type, raw: &[u8]) -> Option<i64> {
    Some(if *ty == Type::INT2 {
        i64::from(i16::from_be_bytes(raw.try_into().ok()?))
    } else if *ty == Type::INT4 {
        i64::from(i32::from_be_bytes(raw.try_into().ok()?))
    } else {
        i64::from_be_bytes(raw.try_into().ok()?)
    })
}

/// The decimal text of a binary `numeric`: a digit count, a weight (the power of 10000 of the
/// first digit), a sign, a display scale, then base-10000 digits.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    if raw.len() != 8 + 2 * ndigits {
        return None;
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Some("NaN".to_string()),
        0xD000 => return Some("Infinity".to_string()),
        0xF000 => return Some("-Infinity".to_string()),
        _ => return None,
    };
    let digits: Vec<u16> = (0..ndigits).map(|i| word(8 + 2 * i)).collect::<Option<_>>()?;
    let digit = |i: i64| usize::try_from(i).ok().and_then(|i| digits.get(i).copied()).unwrap_or(0);
    let mut text = String::from(if negative { "-" } else { "" });
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0).to_string());
        for i in 1..=weight {
            text.push_str(&format!("{:04}", digit(i)));
        }
    }
    let fraction_from = weight + 1; // index of the first digit after the point
    if (ndigits as i64) > fraction_from {
        text.push('.');
        for _ in fraction_from..0 {
            text.push_str("0000");
        }
        for i in fraction_from.max(0)..ndigits as i64 {
            text.push_str(&format!("{:04}", digit(i)));
        }
    }
    Some(text)
}

/// `name` or `schema.name` as a quoted SQL identifier. Unquoted parts fold to lower case as
/// PostgreSQL folds them; `"Quoted"` parts keep their case (and may hold dots).
fn quote_table(name: &str) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err("has an unterminated quote"),
                }
            }
        } else {
            while let Some(&c) = chars.peek().filter(|&&c| c != '.') {
                part.push(c);
                chars.next();
            }
            part = part.trim().to_lowercase();
        }
        if part.is_empty() {
            return Err("has an empty name part");
        }
        parts.push(quote_ident(&part));
        match chars.next() {
            None => break,
            Some('.') => {}
            Some(_) => return Err("has text after a closing quote"),
        }
    }
    if parts.len() > 2 {
        return Err("has more than two parts");
    }
    Ok(parts.join("."))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// sha256 over the SQL that is read and the number of rows it returns.
pub(crate) fn fingerprint(source: &Source, address: &str) -> Result<String, DataError> {
    let job = Job {
        source: source.clone(),
        address: address.to_string(),
        connection: connection_string(source, address)?,
        what: What::of(source, address)?,
    };
    let sql = job.what.sql();
    let mut client = connect(&job)?;
    let count = |source| DataError::postgres(address, "counting rows", source);
    // Read-only, like reading: counting must not run anything that writes.
    let mut tx = client.build_transaction().read_only(true).start().map_err(count)?;
    let row = tx.query_one(&format!("SELECT count(*) FROM ({sql}) AS mlops_source"), &[]).map_err(count)?;
    let rows: i64 = row.try_get(0).map_err(count)?;
    let mut hash = Sha256::new();
    hash.update(format!("postgres\n{sql}\n{rows}\n").as_bytes());
    Ok(hex(&hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary numeric from its parts.
    fn numeric(weight: i16, sign: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, 0] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_text_places_the_point_by_weight() {
        assert_eq!(numeric_text(&numeric(0, 0, &[])).as_deref(), Some("0"));
        assert_eq!(numeric_text(&numeric(1, 0, &[12, 3456, 7800])).as_deref(), Some("123456.7800"));
        assert_eq!(numeric_text(&numeric(2, 0x4000, &[5])).as_deref(), Some("-500000000"));
        assert_eq!(numeric_text(&numeric(-2, 0, &[25])).as_deref(), Some("0.00000025"));
        assert_eq!(numeric_text(&numeric(-1, 0, &[5000])).as_deref(), Some("0.5000"));
        assert_eq!(numeric_text(&numeric(0, 0xC000, &[])).as_deref(), Some("NaN"));
        assert_eq!(numeric_text(&[0, 1, 0, 0]), None);
    }

    #[test]
    fn table_names_are_quoted_and_folded_like_sql() {
        assert_eq!(quote_table("Transactions"), Ok("\"transactions\"".to_string()));
        assert_eq!(quote_table("sales.orders"), Ok("\"sales\".\"orders\"".to_string()));
        assert_eq!(quote_table("\"My Schema\".\"a.b\"\"c\""), Ok("\"My Schema\".\"a.b\"\"c\"".to_string()));
        assert_eq!(quote_table("x; DROP TABLE y"), Ok("\"x; drop table y\"".to_string()));
        assert!(quote_table("a.b.c").is_err());
        assert!(quote_table("a.").is_err());
        assert!(quote_table("\"open").is_err());
        assert!(quote_table("\"a\"b").is_err());
    }
}
