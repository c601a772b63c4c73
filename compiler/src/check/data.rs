//! Data checks: sources are complete for their format, schemas use known types, feature views
//! read columns their source has, entities' join keys exist, aggregates fit their columns and
//! windows fit the view's ttl.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::featexpr;
use crate::lower::node::Node;
use crate::model::{column_of, Aggregate, ColumnType, Config, Model, Source, SourceFormat};
use crate::schema::COLUMN_TYPES;
use crate::source::Span;
use crate::suggest::did_you_mean;
use crate::units::Duration;
use crate::value::Value;

pub(super) fn check(model: &Model, diags: &mut Diagnostics) {
    for r in &model.resources {
        match &r.config {
            // Source checks look at separate attributes, so they run even next to other errors.
            Config::Source(s) => source(&r.node, s, diags),
            // Features are checked one by one (each skipped if its own block has errors), so a
            // mistake in one feature does not hide mistakes in its siblings.
            Config::FeatureView(_) => feature_view(model, &r.node, diags),
            _ => {}
        }
    }
}

fn missing(node: &Node, what: &str, help: &str) -> Diagnostic {
    Diagnostic::error(codes::MISSING_ATTRIBUTE, node.header, format!("{} `{}` {what}", node.kind(), node.name()))
        .label("incomplete")
        .help(help.to_string())
}

fn conflict(node: &Node, a: &str, b: &str, help: &str) -> Diagnostic {
    Diagnostic::error(codes::CONFLICT, node.key_span_of(b), format!("`{a}` and `{b}` cannot both be set"))
        .label(format!("`{b}` set here"))
        .with(node.key_span_of(a), format!("`{a}` set here"))
        .help(help.to_string())
}

fn source(node: &Node, s: &Source, diags: &mut Diagnostics) {
    // An unknown format was reported already; its format-specific rules would only add noise.
    let format_known = node.str("format").is_some_and(|f| ["csv", "parquet", "postgres"].contains(&f));
    match s.format {
        _ if !format_known => {}
        SourceFormat::Csv | SourceFormat::Parquet => {
            if s.path.is_none() {
                diags.push(missing(
                    node,
                    "needs a `path`",
                    "add `path = \"data/<file>\"` (relative to the configuration)",
                ));
            }
            for a in ["connection", "connection_env", "table", "query"] {
                if node.get(a).is_some() {
                    diags.push(
                        Diagnostic::error(
                            codes::CONFLICT,
                            node.key_span_of(a),
                            format!("`{a}` is only for postgres sources"),
                        )
                        .label("not used by a file source")
                        .with(node.span_of("format"), "format set here")
                        .help(format!("remove `{a}`, or set `format = \"postgres\"`")),
                    );
                }
            }
        }
        SourceFormat::Postgres => {
            if s.connection.is_none() && s.connection_env.is_none() {
                diags.push(missing(
                    node,
                    "needs a connection",
                    "add `connection_env = \"<ENV_VAR>\"` (or `connection = \"postgres://…\"`)",
                ));
            }
            if s.connection.is_some() && s.connection_env.is_some() {
                diags.push(conflict(
                    node,
                    "connection",
                    "connection_env",
                    "keep one: `connection_env` keeps the secret out of the file",
                ));
            }
            match (&s.table, &s.query) {
                (None, None) => diags.push(missing(node, "needs a `table` or a `query`", "add `table = \"<name>\"`")),
                (Some(_), Some(_)) => {
                    diags.push(conflict(node, "table", "query", "read a table or run a query, not both"))
                }
                _ => {}
            }
            if node.get("path").is_some() {
                diags.push(
                    Diagnostic::error(
                        codes::CONFLICT,
                        node.key_span_of("path"),
                        "`path` is only for csv and parquet sources",
                    )
                    .label("not used by a postgres source")
                    .help("remove `path`; postgres sources read `table` or `query`"),
                );
            }
        }
    }
    if s.format == SourceFormat::Csv && s.delimiter.chars().count() != 1 {
        diags.push(
            Diagnostic::error(codes::OUT_OF_RANGE, node.span_of("delimiter"), "`delimiter` must be one character")
                .label("not a single character")
                .help("use e.g. \",\", \";\" or \"\\t\""),
        );
    }
    if let Some(schema) = node.block("schema") {
        if schema.attrs.is_empty() {
            diags.push(
                Diagnostic::error(
                    codes::MISSING_ATTRIBUTE,
                    schema.header,
                    format!("source `{}` declares no columns", node.name()),
                )
                .label("empty schema")
                .help("declare each column: `amount = \"float\"`"),
            );
        }
        for (name, a) in &schema.attrs {
            if column_of(name, &a.value).is_some() {
                continue;
            }
            let given = match &a.value {
                Value::String(t) => t.trim_end_matches('?').to_string(),
                Value::Object(m) => m.get("type").and_then(Value::as_str).unwrap_or("").to_string(),
                other => other.type_name().to_string(),
            };
            let help = match did_you_mean(&given, COLUMN_TYPES.iter().copied()) {
                Some(t) => format!("did you mean \"{t}\"? column types: {}", COLUMN_TYPES.join(", ")),
                None => format!(
                    "column types: {}; write `{name} = \"float\"` or `{name} = {{ type = \"float\", nullable = true }}`",
                    COLUMN_TYPES.join(", ")
                ),
            };
            diags.push(
                Diagnostic::error(codes::INVALID_CHOICE, a.span, format!("column `{name}` has unknown type `{given}`"))
                    .label("not a column type")
                    .help(help),
            );
        }
    }
    if let Some(ts) = &s.timestamp {
        if let Some(c) = s.column(ts) {
            if c.ty != ColumnType::Timestamp {
                let at = node.block("schema").and_then(|b| b.attr(ts)).map_or(node.span_of("timestamp"), |a| a.span);
                diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        at,
                        format!("timestamp column `{ts}` is declared as {}", c.ty.name()),
                    )
                    .label("should be \"timestamp\"")
                    .with(node.span_of("timestamp"), "used as the event time here")
                    .help(format!("declare it as `{ts} = \"timestamp\"`, or leave it out of the schema")),
                );
            }
        }
    }
}

fn feature_view(model: &Model, node: &Node, diags: &mut Diagnostics) {
    let Some(Value::Ref(src_ref)) = node.get("source") else { return };
    let src_addr = src_ref.address.to_string();
    let Some(src_res) = model.get(&src_addr) else { return };
    let Some(src) = model.reliable_source(&src_addr) else { return };
    let schema_span = src_res.node.block("schema").map_or(src_res.node.header, |b| b.header);
    // Every entity's join keys must be columns of the source.
    if let Some(Value::List(ents)) = node.get("entities") {
        for (i, e) in ents.iter().enumerate() {
            let Value::Ref(er) = e else { continue };
            let Some(Config::Entity(ent)) = model.get(&er.address.to_string()).map(|r| &r.config) else { continue };
            for k in &ent.join_keys {
                if src.column(k).is_none() {
                    diags.push(
                        Diagnostic::error(
                            codes::JOIN_KEY_MISSING,
                            node.attr("entities").map_or(node.header, |a| a.item_span(i)),
                            format!(
                                "join key `{k}` of entity `{}` is not a column of source `{}`",
                                er.address.name, src_ref.address.name
                            ),
                        )
                        .label(format!("needs column `{k}`"))
                        .with(schema_span, "source schema declared here")
                        .help(format!(
                            "add `{k}` to the schema of {src_addr}, or use an entity whose keys the source has"
                        )),
                    );
                }
            }
        }
    }
    let ttl = node.str("ttl").and_then(|t| Duration::parse(t).ok());
    for f in node.blocks_of("feature") {
        if f.errors {
            continue;
        }
        feature(f, src, &src_addr, schema_span, ttl, node, diags);
    }
}

fn unknown_column(src: &Source, src_addr: &str, col: &str, at: Span, schema_span: Span) -> Diagnostic {
    let names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();
    Diagnostic::error(codes::UNKNOWN_COLUMN, at, format!("column `{col}` is not in the schema of {src_addr}"))
        .label("unknown column")
        .with(schema_span, "schema declared here")
        .help(match did_you_mean(col, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("columns: {}", names.join(", ")),
        })
}

fn feature(
    f: &Node,
    src: &Source,
    src_addr: &str,
    schema_span: Span,
    ttl: Option<Duration>,
    view: &Node,
    diags: &mut Diagnostics,
) {
    let name = f.name();
    match (f.str("column"), f.str("expression")) {
        (Some(_), Some(_)) => {
            diags.push(conflict(
                f,
                "column",
                "expression",
                "a feature is either a column (optionally aggregated) or an expression",
            ));
        }
        (None, None) => {
            diags.push(
                Diagnostic::error(codes::MISSING_ATTRIBUTE, f.header, format!("feature `{name}` needs `column` or `expression`"))
                    .label("no column or expression")
                    .help("add `column = \"<column>\"` (with `aggregate` and `window` for an aggregate), or `expression = \"…\"`"),
            );
        }
        (None, Some(e)) => {
            if f.get("aggregate").is_some() || f.get("window").is_some() {
                diags.push(
                    Diagnostic::error(
                        codes::CONFLICT,
                        f.key_span_of(if f.get("aggregate").is_some() { "aggregate" } else { "window" }),
                        "expressions are row-level and cannot be aggregated",
                    )
                    .help("make a row-level feature in one view, or aggregate a column"),
                );
            }
            match featexpr::parse(e) {
                Err(err) => {
                    let base = f.span_of("expression");
                    // Point into the string literal (past its opening quote) where the parser stopped.
                    let start = (base.start + 1 + err.offset).min(base.end.saturating_sub(1)).max(base.start);
                    let at = Span { file: base.file, start, end: (start + 1).min(base.end) };
                    diags.push(
                        Diagnostic::error(codes::UNSUPPORTED_EXPRESSION, at, format!("invalid feature expression: {}", err.message))
                            .label("here")
                            .help("expressions use columns, numbers, + - * / ( ) and log, log1p, exp, sqrt, abs, hour, day_of_week, is_null, min, max"),
                    );
                }
                Ok(expr) => {
                    for c in expr.columns() {
                        if src.column(&c).is_none() {
                            diags.push(unknown_column(src, src_addr, &c, f.span_of("expression"), schema_span));
                        }
                    }
                }
            }
        }
        (Some(col), None) => {
            let Some(column) = src.column(col) else {
                diags.push(unknown_column(src, src_addr, col, f.span_of("column"), schema_span));
                return;
            };
            let agg = f.str("aggregate").and_then(Aggregate::parse);
            let window = f.str("window").and_then(|w| Duration::parse(w).ok());
            match (agg, window) {
                (Some(_), None) => diags.push(
                    Diagnostic::error(
                        codes::MISSING_ATTRIBUTE,
                        f.key_span_of("aggregate"),
                        format!("aggregate feature `{name}` needs a `window`"),
                    )
                    .label("aggregate without window")
                    .help("add `window = \"24h\"`: the span of event time aggregated"),
                ),
                (None, Some(_)) => diags.push(
                    Diagnostic::error(
                        codes::MISSING_ATTRIBUTE,
                        f.key_span_of("window"),
                        format!("feature `{name}` has a `window` but no `aggregate`"),
                    )
                    .label("window without aggregate")
                    .help("add `aggregate = \"sum\"` (sum, count, mean, min, max, stddev, last), or remove `window`"),
                ),
                (Some(a), Some(w)) => {
                    let numeric_only = matches!(a, Aggregate::Sum | Aggregate::Mean | Aggregate::Stddev);
                    let ordered = matches!(a, Aggregate::Min | Aggregate::Max);
                    let fits = if numeric_only {
                        column.ty.is_numeric() || column.ty == ColumnType::Bool
                    } else if ordered {
                        column.ty.is_numeric() || column.ty == ColumnType::Timestamp
                    } else {
                        true
                    };
                    if !fits {
                        diags.push(
                            Diagnostic::error(
                                codes::AGGREGATE_TYPE,
                                f.span_of("aggregate"),
                                format!(
                                    "`{}` cannot aggregate column `{col}` of type {}",
                                    f.str("aggregate").unwrap_or(""),
                                    column.ty.name()
                                ),
                            )
                            .label("does not fit the column")
                            .with(f.span_of("column"), format!("{} column", column.ty.name()))
                            .help("use `count` or `last` for non-numeric columns, or aggregate a numeric column"),
                        );
                    }
                    if src.timestamp.is_none() {
                        diags.push(
                            Diagnostic::error(
                                codes::MISSING_ATTRIBUTE,
                                f.span_of("window"),
                                format!(
                                    "windowed feature `{name}` needs event time, but {src_addr} has no `timestamp`"
                                ),
                            )
                            .label("window over event time")
                            .help(format!("set `timestamp = \"<column>\"` on {src_addr}")),
                        );
                    }
                    if let Some(ttl) = ttl {
                        if w.as_millis() > ttl.as_millis() {
                            diags.push(
                                Diagnostic::error(
                                    codes::WINDOW_EXCEEDS_TTL,
                                    f.span_of("window"),
                                    format!("window {w} of feature `{name}` is longer than the view's ttl {ttl}"),
                                )
                                .label(format!("{w} window"))
                                .with(view.span_of("ttl"), format!("ttl {ttl}"))
                                .help(format!("values older than the ttl are dropped, so the window can never fill: shorten the window to ≤ {ttl} or raise the ttl")),
                            );
                        }
                    }
                }
                (None, None) => {}
            }
        }
    }
}
