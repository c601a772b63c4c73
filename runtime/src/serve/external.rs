//! Rollback metrics read from outside the serving process. In: a rollback rule with
//! `metric = "prometheus"` (a PromQL `query` sent to the server at `url`, `/api/v1/query`) or
//! `metric = "scrape"` (a series selector `query` looked up in the text exposition at `url`,
//! parsed with `prometheus-parse`), and the values of `$endpoint`, `$candidate`, `$previous`.
//! Out: one number, or why there is none ("the query returned 3 series: aggregate them …").
//! A rollout whose metric cannot be read does not advance (see [`super::rollout`]).

use std::time::Duration;

use mlops_compiler::model::Rollback;
use mlops_compiler::selector::Selector;
use serde::Deserialize;

/// How long one read may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What `$…` in a query stands for.
#[derive(Debug, Clone)]
pub struct QueryVars<'a> {
    /// The endpoint's name.
    pub endpoint: &'a str,
    /// The version being rolled out.
    pub candidate: u32,
    /// The version it replaces, if any.
    pub previous: Option<u32>,
}

/// The rule's query with `$endpoint`, `$candidate` and `$previous` replaced (`$previous` is
/// empty without a previous version). Longer names first, so `$previousX` is not cut.
pub fn expand(query: &str, vars: &QueryVars<'_>) -> String {
    query
        .replace("$candidate", &vars.candidate.to_string())
        .replace("$previous", &vars.previous.map(|p| p.to_string()).unwrap_or_default())
        .replace("$endpoint", vars.endpoint)
}

/// Reads the rule's metric now.
pub async fn read(client: &reqwest::Client, rule: &Rollback, vars: &QueryVars<'_>) -> Result<f64, String> {
    let (Some(query), Some(url)) = (&rule.query, &rule.url) else {
        return Err(format!("metric \"{}\" needs `query` and `url`", rule.metric));
    };
    let query = expand(query, vars);
    match rule.metric.as_str() {
        "prometheus" => prometheus(client, url, &query).await,
        "scrape" => scrape(client, url, &query).await,
        other => Err(format!("metric \"{other}\" is not read from outside")),
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
}

/// `data` of a query answer: `result`'s shape depends on `resultType`.
#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct ApiSample {
    metric: serde_json::Map<String, serde_json::Value>,
    value: (f64, String),
}

/// Prometheus' number syntax: Go floats, with `NaN`, `+Inf`, `-Inf`.
fn number(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse().map_err(|_| format!("`{t}` is not a number")),
    }
}

/// An instant query: its result must be a scalar or a vector of exactly one sample.
pub async fn prometheus(client: &reqwest::Client, url: &str, query: &str) -> Result<f64, String> {
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let resp = client
        .get(&endpoint)
        .query(&[("query", query)])
        .timeout(READ_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("cannot reach Prometheus at {url}: {}", error_chain(&e)))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("reading Prometheus' answer: {e}"))?;
    let parsed: ApiResponse = serde_json::from_str(&body).map_err(|_| {
        format!("{endpoint} answered {status} with something that is not Prometheus' query API: {}", clip(&body))
    })?;
    if parsed.status != "success" {
        return Err(format!("Prometheus rejected the query: {}", parsed.error.unwrap_or_else(|| status.to_string())));
    }
    let Some(data) = parsed.data else { return Err("Prometheus' answer has no data".into()) };
    let value = match data.result_type.as_str() {
        "scalar" => {
            let (_, v): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| format!("a malformed scalar: {e}"))?;
            number(&v)?
        }
        "vector" => {
            let samples: Vec<ApiSample> =
                serde_json::from_value(data.result).map_err(|e| format!("a malformed vector: {e}"))?;
            match samples.as_slice() {
                [] => return Err("the query returned no series (nothing scraped yet, or no series matches)".into()),
                [one] => number(&one.value.1)?,
                many => {
                    let labels: Vec<String> = many.iter().take(3).map(|s| labels(&s.metric)).collect();
                    return Err(format!(
                        "the query returned {} series ({}{}): aggregate them to one, e.g. with sum(…)",
                        many.len(),
                        labels.join(", "),
                        if many.len() > 3 { ", …" } else { "" }
                    ));
                }
            }
        }
        "matrix" => return Err("the query returned a range vector: use an instant query".into()),
        other => return Err(format!("the query returned a {other}, not a number")),
    };
    if value.is_nan() {
        return Err("the query returned NaN (e.g. a rate over no requests)".into());
    }
    Ok(value)
}

/// Reads the metrics page and sums the counter, gauge or untyped samples the selector picks.
pub async fn scrape(client: &reqwest::Client, url: &str, query: &str) -> Result<f64, String> {
    let selector = Selector::parse(query).map_err(|(_, e)| format!("the series selector `{query}`: {e}"))?;
    let resp = client
        .get(url)
        .timeout(READ_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("cannot scrape {url}: {}", error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let text = resp.text().await.map_err(|e| format!("reading {url}: {e}"))?;
    sum_selected(&text, &selector).map_err(|e| format!("{url}: {e}"))
}

/// The sum of the samples `selector` picks from a text exposition.
pub fn sum_selected(text: &str, selector: &Selector) -> Result<f64, String> {
    use prometheus_parse::Value;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| format!("not a Prometheus text exposition: {e}"))?;
    let mut sum = 0.0;
    let mut found = 0usize;
    for s in &scrape.samples {
        if !selector.matches(&s.metric, |k| s.labels.get(k)) {
            continue;
        }
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                sum += v;
                found += 1;
            }
            Value::Histogram(_) | Value::Summary(_) => {
                return Err(format!(
                    "`{}` is a histogram or summary: select its `_sum` or `_count`, or ask Prometheus for a quantile (metric = \"prometheus\")",
                    s.metric
                ))
            }
        }
    }
    if found == 0 {
        let same_name = scrape.samples.iter().any(|s| s.metric == selector.name);
        return Err(if same_name {
            format!("no `{}` series has the labels {:?}", selector.name, selector.labels())
        } else {
            format!("no series named `{}`", selector.name)
        });
    }
    Ok(sum)
}

fn labels(m: &serde_json::Map<String, serde_json::Value>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn clip(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP queue_depth Items waiting.\n# TYPE queue_depth gauge\nqueue_depth{endpoint=\"a\",shard=\"1\"} 3\nqueue_depth{endpoint=\"a\",shard=\"2\"} 4.5\nqueue_depth{endpoint=\"b\",shard=\"1\"} 100\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 0.3\nlat_count 2\n";

    #[test]
    fn expands_the_placeholders() {
        let v = QueryVars { endpoint: "fraud", candidate: 3, previous: Some(2) };
        assert_eq!(
            expand(r#"x{endpoint="$endpoint",version=~"$candidate|$previous"}"#, &v),
            r#"x{endpoint="fraud",version=~"3|2"}"#
        );
        assert_eq!(expand("$previous", &QueryVars { previous: None, ..v }), "");
    }

    #[test]
    fn sums_the_selected_series() {
        let sel = |q: &str| Selector::parse(q).unwrap();
        assert_eq!(sum_selected(TEXT, &sel(r#"queue_depth{endpoint="a"}"#)), Ok(7.5));
        assert_eq!(sum_selected(TEXT, &sel(r#"queue_depth{shard="1"}"#)), Ok(103.0));
        assert_eq!(sum_selected(TEXT, &sel(r#"queue_depth{endpoint!="a"}"#)), Ok(100.0));
        let e = sum_selected(TEXT, &sel(r#"queue_depth{endpoint="c"}"#)).unwrap_err();
        assert!(e.contains("no `queue_depth` series has the labels"), "{e}");
        assert!(sum_selected(TEXT, &sel("nope")).unwrap_err().contains("no series named `nope`"));
        assert!(sum_selected(TEXT, &sel("lat")).unwrap_err().contains("histogram"));
    }

    #[test]
    fn reads_prometheus_numbers() {
        assert_eq!(number("+Inf"), Ok(f64::INFINITY));
        assert_eq!(number("0.25"), Ok(0.25));
        assert!(number("x").is_err());
    }
}
