//! The server on a real socket (127.0.0.1, a free port), driven by an HTTP client: swapping
//! versions under concurrent load, the prediction log under a flood and at shutdown, graceful
//! shutdown with a request in flight, and a real Prometheus scraping `/metrics`.

#[path = "support/prometheus.rs"]
mod prometheus;
mod serve_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_compiler::model::Rollback;
use mlops_runtime::serve::external::{self, QueryVars};
use mlops_runtime::serve::{EndpointSettings, Endpoints, PredictionLogOptions, RunningServer, Server, ServerOptions};
use serde_json::{json, Value};
use serve_support::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn start(endpoints: Arc<Endpoints>, options: ServerOptions) -> RunningServer {
    endpoints.set_ready(true);
    Server::start("127.0.0.1:0".parse().unwrap(), endpoints, options).await.unwrap()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn predict(c: &reqwest::Client, addr: SocketAddr, endpoint: &str, body: &Value) -> (u16, Value) {
    let r = c.post(url(addr, &format!("/v1/endpoints/{endpoint}/predict"))).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every line of every file under `dir`, parsed.
fn log_lines(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert_eq!(p.extension().unwrap(), "jsonl", "{}", p.display());
                for line in std::fs::read_to_string(&p).unwrap().lines() {
                    out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_versions_under_concurrent_load_loses_no_request() {
    let e = Arc::new(Endpoints::new());
    let v1 = load(&models().fraud_v1);
    let v2 = load(&models().fraud_v2);
    e.upsert("fraud", EndpointSettings::default(), vec![(v1.clone(), 100)]).unwrap();
    let server = start(e.clone(), ServerOptions::default()).await;
    let addr = server.local_addr();

    let done = Arc::new(AtomicBool::new(false));
    let control = {
        let (e, done, v1, v2) = (e.clone(), done.clone(), v1.clone(), v2.clone());
        tokio::spawn(async move {
            let mut swaps = 0u32;
            while !done.load(Ordering::SeqCst) {
                let d = EndpointSettings::default;
                match swaps % 4 {
                    0 => e.upsert("fraud", d(), vec![(v1.clone(), 50), (v2.clone(), 50)]).unwrap(),
                    1 => e.set_weights("fraud", &[(2, 100)]).unwrap(),
                    // v1 unloaded while requests may be running on it.
                    2 => e.upsert("fraud", d(), vec![(v2.clone(), 100)]).unwrap(),
                    _ => e.upsert("fraud", d(), vec![(v1.clone(), 100)]).unwrap(),
                }
                swaps += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            swaps
        })
    };
    let (clients, per_client) = (8, 100);
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut answered = Vec::new();
            for i in 0..per_client {
                let (status, body) =
                    predict(&http, addr, "fraud", &json!({ "row": row(f64::from(c * 10 + i), 2, true, "web") })).await;
                answered.push((status, body["model_version"].as_u64()));
            }
            answered
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let swaps = control.await.unwrap();

    let sent = (clients * per_client) as usize;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        ok,
        sent,
        "non-2xx answers: {:?}",
        results.iter().filter(|(s, _)| *s != 200).take(5).collect::<Vec<_>>()
    );
    let on_v1 = results.iter().filter(|(_, v)| *v == Some(1)).count();
    let on_v2 = results.iter().filter(|(_, v)| *v == Some(2)).count();
    assert_eq!(on_v1 + on_v2, sent);
    assert!(on_v1 > 0 && on_v2 > 0, "v1 {on_v1}, v2 {on_v2} over {swaps} swaps");
    assert!(swaps >= 8, "only {swaps} swaps happened during the load");
    assert_eq!(e.snapshot()[0].requests, sent as u64, "the endpoint's count survives redeployments");
    let report = server.shutdown().await;
    assert!(report.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_prediction_is_logged_with_its_inputs_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(Endpoints::new());
    let settings = EndpointSettings { sticky_key: Some("account_id".into()), ..EndpointSettings::default() };
    e.upsert("fraud", settings, vec![(load(&models().fraud_v1), 100)]).unwrap();
    e.upsert("segment", EndpointSettings::default(), vec![(load(&models().segment), 100)]).unwrap();
    let options =
        ServerOptions { prediction_log: Some(PredictionLogOptions::new(dir.path())), ..ServerOptions::default() };
    let server = start(e, options).await;
    let http = client();
    let mut r = row(90.0, 2, false, "never-seen");
    // 90.0 is sent as 90: whole numbers are logged as integers.
    r["account_id"] = json!("acct_7");
    let (status, answer) = predict(
        &http,
        server.local_addr(),
        "fraud",
        &json!({ "rows": [r, { "amount": null, "n_items": 1, "is_new": true, "merchant": "web" }] }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, seg) =
        predict(&http, server.local_addr(), "segment", &json!({ "row": row(300.0, 9, true, "web") })).await;
    assert_eq!(status, 200);
    let report = server.shutdown().await;
    assert_eq!(report.prediction_log.unwrap().written, 3);
    assert_eq!(report.prediction_log.unwrap().dropped, 0);

    let mut lines = log_lines(dir.path());
    lines.sort_by_key(|l| {
        (l["endpoint"].as_str().unwrap().to_string(), l["prediction_id"].as_str().unwrap().to_string())
    });
    assert_eq!(lines.len(), 3);
    let first = lines.iter().find(|l| l["prediction_id"] == answer["predictions"][0]["prediction_id"]).unwrap();
    assert_eq!(first["endpoint"], "fraud");
    assert_eq!(first["job"], "training_job.fraud");
    assert_eq!(first["model_version"], 1);
    assert_eq!(first["entity"], "acct_7");
    assert_eq!(first["features"], json!({ "amount": 90, "n_items": 2, "is_new": false, "merchant": "never-seen" }));
    assert_eq!(first["output"]["score"], answer["predictions"][0]["score"]);
    assert_eq!(first["sample_rate"], 1);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let second = lines.iter().find(|l| l["prediction_id"] == answer["predictions"][1]["prediction_id"]).unwrap();
    assert!(second.get("entity").is_none());
    assert_eq!(second["features"]["amount"], Value::Null);
    let s = lines.iter().find(|l| l["endpoint"] == "segment").unwrap();
    assert_eq!(s["output"]["class"], seg["predictions"][0]["class"]);
    assert_eq!(s["output"]["probabilities"], seg["predictions"][0]["probabilities"]);
    // One file per endpoint per hour.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("fraud")).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_through_a_tiny_log_queue_is_sampled_counted_and_never_fails_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(Endpoints::new());
    e.upsert(
        "fraud",
        EndpointSettings { max_body: 8 << 20, ..EndpointSettings::default() },
        vec![(with_predictor(&models().fraud_v1, ConstPredict(0.25)), 100)],
    )
    .unwrap();
    let log = PredictionLogOptions {
        capacity: 1,
        max_sample_rate: 16,
        flush_interval: Duration::from_millis(50),
        ..PredictionLogOptions::new(dir.path())
    };
    let server = start(e.clone(), ServerOptions { prediction_log: Some(log), ..ServerOptions::default() }).await;
    let addr = server.local_addr();
    let (clients, requests, rows) = (8u64, 30u64, 300usize);
    let body = json!({ "rows": vec![row(12.5, 3, true, "web"); rows] });
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut ok = 0u64;
            for _ in 0..requests {
                if predict(&http, addr, "fraud", &body).await.0 == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, clients * requests, "every request succeeds whatever the log does");
    let report = server.shutdown().await;
    let stats = report.prediction_log.unwrap();
    let sent = clients * requests * rows as u64;
    let logged = log_lines(dir.path());
    assert_eq!(logged.len() as u64, stats.written, "everything accepted was flushed at shutdown");
    assert!(stats.dropped > 0, "the flood never filled a 1-request queue: {stats:?}");
    assert_eq!(stats.dropped, sent - stats.written, "{stats:?}");
    assert_eq!(e.metrics().predlog_dropped(), stats.dropped);
    // Lines queued while sampling say so.
    let rates: std::collections::BTreeSet<u64> = logged.iter().map(|l| l["sample_rate"].as_u64().unwrap()).collect();
    assert!(rates.iter().all(|r| (1..=16).contains(r)), "{rates:?}");
    let text = e.metrics().encode_text();
    assert!(text.contains("mlops_predlog_dropped_total{reason=\"full\"}"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(Endpoints::new());
    let slow = with_predictor(&models().fraud_v1, SlowPredict { delay: Duration::from_millis(800), score: 0.5 });
    e.upsert("slow", EndpointSettings::default(), vec![(slow, 100)]).unwrap();
    let options = ServerOptions {
        prediction_log: Some(PredictionLogOptions::new(dir.path())),
        drain_timeout: Duration::from_secs(20),
        ..ServerOptions::default()
    };
    let server = start(e.clone(), options).await;
    let addr = server.local_addr();

    let in_flight =
        tokio::spawn(
            async move { predict(&client(), addr, "slow", &json!({ "row": row(1.0, 1, true, "web") })).await },
        );
    // Wait until the request is being handled.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !e.metrics().encode_text().contains("mlops_endpoint_requests_in_flight{endpoint=\"slow\"} 1") {
        assert!(Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "a new connection was accepted while draining");
    assert!(!in_flight.is_finished(), "the slow request should still be running");

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["predictions"][0]["score"], 0.5);
    let report = shutdown.await.unwrap();
    assert!(report.drained);
    assert_eq!(report.prediction_log.unwrap().written, 1, "the request finished during the drain is logged");
    assert_eq!(log_lines(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_requests_at_the_drain_deadline() {
    let e = Arc::new(Endpoints::new());
    let slow = with_predictor(&models().fraud_v1, SlowPredict { delay: Duration::from_secs(3), score: 0.5 });
    let settings = EndpointSettings { timeout: Duration::from_secs(10), ..EndpointSettings::default() };
    e.upsert("slow", settings, vec![(slow, 100)]).unwrap();
    let server =
        start(e.clone(), ServerOptions { drain_timeout: Duration::from_millis(200), ..ServerOptions::default() }).await;
    let addr = server.local_addr();
    let in_flight = tokio::spawn(async move {
        client()
            .post(url(addr, "/v1/endpoints/slow/predict"))
            .json(&json!({ "row": row(1.0, 1, true, "web") }))
            .send()
            .await
    });
    while !e.metrics().encode_text().contains("mlops_endpoint_requests_in_flight{endpoint=\"slow\"} 1") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let report = server.shutdown().await;
    assert!(!report.drained);
    assert!(started.elapsed() < Duration::from_secs(2));
    let cut = in_flight.await.unwrap().unwrap();
    assert_eq!(cut.status(), 503);
    let body: Value = cut.json().await.unwrap();
    assert_eq!(body["error"], "the server shut down before this request finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_request_counters() {
    let e = Arc::new(Endpoints::new());
    e.upsert("fraud", EndpointSettings::default(), vec![(load(&models().fraud_v1), 100)]).unwrap();
    let server = start(e, ServerOptions::default()).await;
    let addr = server.local_addr();
    let http = client();
    for i in 0..7 {
        assert_eq!(predict(&http, addr, "fraud", &json!({ "row": row(f64::from(i), 1, true, "web") })).await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(predict(&http, addr, "fraud", &json!({ "row": { "amount": "x" } })).await.0, 400);
    }

    let prom = tokio::task::spawn_blocking(move || prometheus::TestPrometheus::start(&[addr]))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let prom = Arc::new(prom);
    let value = |query: &'static str| {
        let prom = prom.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let result = prom.query(query).unwrap();
                result.as_array().and_then(|r| r.first()).and_then(|s| s["value"][1].as_str()).map(str::to_string)
            })
            .await
            .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = value(r#"mlops_endpoint_requests_total{endpoint="fraud",version="1",code="200"}"#).await;
        if ok.as_deref() == Some("7") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never saw 7 requests (last: {ok:?}); targets: {}",
            prom.targets()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(value(r#"mlops_endpoint_requests_total{endpoint="fraud",code="400"}"#).await.as_deref(), Some("2"));
    assert_eq!(
        value(r#"sum(mlops_endpoint_request_duration_seconds_count{endpoint="fraud"})"#).await.as_deref(),
        Some("9")
    );
    assert_eq!(value(r#"mlops_predictions_total{endpoint="fraud"}"#).await.as_deref(), Some("7"));
    assert_eq!(value(r#"up{job="mlops"}"#).await.as_deref(), Some("1"));

    // Rollback rules read the same numbers: from this Prometheus, and from the server's own page.
    let url = format!("http://127.0.0.1:{}", prom.port());
    let read = |metric: &'static str, url: String, query: &'static str| {
        let http = http.clone();
        async move {
            let rule = Rollback {
                metric: metric.into(),
                above: 0.0,
                min_requests: 1,
                query: Some(query.into()),
                url: Some(url),
            };
            external::read(&http, &rule, &QueryVars { endpoint: "fraud", candidate: 1, previous: None }).await
        }
    };
    let q = |query| read("prometheus", url.clone(), query);
    assert_eq!(
        q(r#"sum(mlops_endpoint_requests_total{endpoint="$endpoint",version="$candidate",code="200"})"#).await,
        Ok(7.0)
    );
    assert_eq!(q("scalar(vector(2.5))").await, Ok(2.5));
    let e = q(r#"mlops_endpoint_requests_total{endpoint="fraud"}"#).await.unwrap_err();
    assert!(e.contains("returned 2 series") && e.contains("aggregate them"), "{e}");
    let e = q(r#"mlops_endpoint_requests_total{endpoint="nope"}"#).await.unwrap_err();
    assert!(e.contains("no series"), "{e}");
    let e = q("up[1m]").await.unwrap_err();
    assert!(e.contains("range vector"), "{e}");
    let e = q(r#""text""#).await.unwrap_err();
    assert!(e.contains("returned a string"), "{e}");
    let e = q("sum(").await.unwrap_err();
    assert!(e.starts_with("Prometheus rejected the query: "), "{e}");
    let e = read("prometheus", format!("http://{addr}"), "up").await.unwrap_err();
    assert!(e.contains("not Prometheus' query API"), "{e}");
    let e = read("prometheus", "http://127.0.0.1:1".into(), "up").await.unwrap_err();
    assert!(e.starts_with("cannot reach Prometheus at http://127.0.0.1:1"), "{e}");
    let page = format!("http://{addr}/metrics");
    let scrape = |query| read("scrape", page.clone(), query);
    assert_eq!(scrape(r#"mlops_predictions_total{endpoint="$endpoint",version="$candidate"}"#).await, Ok(7.0));
    // The 200s and the 400s, summed.
    assert_eq!(scrape(r#"mlops_endpoint_requests_total{endpoint="fraud"}"#).await, Ok(9.0));
    let e = scrape(r#"mlops_endpoint_request_duration_seconds{endpoint="fraud"}"#).await.unwrap_err();
    assert!(e.contains("histogram"), "{e}");
    drop(prom);
    server.shutdown().await;
}
