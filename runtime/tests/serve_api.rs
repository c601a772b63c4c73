//! The serving API in process (the router driven with `tower::ServiceExt::oneshot`), with real
//! XGBoost models trained and registered in a temporary registry: predictions (single, batch,
//! multi-class, categories, nulls, online features), the Open Inference Protocol, every kind of
//! bad request with its status and message, traffic splits, timeouts and the metrics exposition.

mod serve_support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use std::collections::HashMap;

use mlops_runtime::monitor::feedback::FeedbackStore;
use mlops_runtime::serve::http::{router, router_with, AppState};
use mlops_runtime::serve::{BearerToken, EndpointSettings, Endpoints};
use mlops_runtime::train::Predictor;
use serde_json::{json, Value};
use serve_support::*;

const PREDICT: &str = "/v1/endpoints/fraud/predict";

fn fraud_endpoints(settings: EndpointSettings) -> Arc<Endpoints> {
    let e = Arc::new(Endpoints::new());
    e.upsert("fraud", settings, vec![(load(&models().fraud_v1), 100)]).unwrap();
    e.upsert("segment", EndpointSettings::default(), vec![(load(&models().segment), 100)]).unwrap();
    e.set_ready(true);
    e
}

/// The score XGBoost itself gives a dense row (merchant as its code).
fn direct_score(x: &[f32]) -> f32 {
    let json = models().registry.model_json(&models().fraud_v1).unwrap();
    Predictor::load(&json).unwrap().predict(x, 1).unwrap()[0]
}

fn score(p: &Value) -> f32 {
    p["score"].as_f64().unwrap_or_else(|| panic!("no score in {p}")) as f32
}

#[tokio::test]
async fn a_single_row_scores_as_xgboost_does() {
    let app = router(fraud_endpoints(EndpointSettings::default()), None);
    let r = post(&app, PREDICT, &json!({ "row": row(180.0, 3, true, "web") })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body["endpoint"], "fraud");
    assert_eq!(r.body["model_version"], 1);
    let p = &r.body["predictions"].as_array().unwrap()[0];
    // web is code 3 of the sorted categories.
    assert_eq!(score(p), direct_score(&[180.0, 3.0, 1.0, 3.0]));
    assert!(score(p) > 0.5, "a new account spending a lot on the web is risky: {p}");
    let id = p["prediction_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
}

#[tokio::test]
async fn a_batch_keeps_row_order_and_gives_each_row_an_id() {
    let app = router(fraud_endpoints(EndpointSettings::default()), None);
    let rows = vec![row(20.0, 1, false, "store"), row(250.0, 9, true, "web"), row(100.0, 0, false, "mail")];
    let r = post(&app, PREDICT, &json!({ "rows": rows })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let preds = r.body["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    assert_eq!(score(&preds[0]), direct_score(&[20.0, 1.0, 0.0, 2.0]));
    assert_eq!(score(&preds[1]), direct_score(&[250.0, 9.0, 1.0, 3.0]));
    assert_eq!(score(&preds[2]), direct_score(&[100.0, 0.0, 0.0, 0.0]));
    assert!(score(&preds[0]) < score(&preds[1]));
    let ids: std::collections::BTreeSet<&str> = preds.iter().map(|p| p["prediction_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn a_multiclass_model_answers_the_class_and_every_probability() {
    let app = router(fraud_endpoints(EndpointSettings::default()), None);
    let r = post(
        &app,
        "/v1/endpoints/segment/predict",
        &json!({ "rows": [row(300.0, 9, true, "web"), row(10.0, 0, false, "mail")] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let preds = r.body["predictions"].as_array().unwrap();
    for p in preds {
        let probs = p["probabilities"].as_object().unwrap();
        assert_eq!(probs.keys().collect::<Vec<_>>(), vec!["high", "low", "mid"]);
        let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{p}");
        let best = probs.iter().max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap()).unwrap().0;
        assert_eq!(p["class"], json!(best));
        assert!(p.get("score").is_none());
    }
    assert_eq!(preds[0]["class"], "high");
    assert_eq!(preds[1]["class"], "low");
}

#[tokio::test]
async fn unseen_categories_and_nulls_are_missing_values_as_at_training() {
    let e = fraud_endpoints(EndpointSettings::default());
    let app = router(e.clone(), None);
    let rows = vec![
        row(90.0, 2, false, "mail"),
        row(90.0, 2, false, "a-merchant-never-seen"),
        json!({ "amount": 90.0, "n_items": 2, "is_new": false, "merchant": null }),
        json!({ "amount": null, "n_items": null, "is_new": null, "merchant": null }),
    ];
    let r = post(&app, PREDICT, &json!({ "rows": rows })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s: Vec<f32> = r.body["predictions"].as_array().unwrap().iter().map(score).collect();
    assert_eq!(s[0], direct_score(&[90.0, 2.0, 0.0, 0.0]));
    assert_eq!(s[1], direct_score(&[90.0, 2.0, 0.0, f32::NAN]));
    assert_eq!(s[1], s[2], "an unseen category is a missing value");
    assert_ne!(s[0], s[1]);
    assert_eq!(s[3], direct_score(&[f32::NAN; 4]));
    let text = e.metrics().encode_text();
    assert!(text.contains(r#"mlops_feature_unseen_category_total{endpoint="fraud",feature="merchant"} 1"#), "{text}");
    assert!(text.contains(r#"mlops_feature_missing_total{endpoint="fraud",feature="merchant"} 3"#), "{text}");
    assert!(text.contains(r#"mlops_feature_missing_total{endpoint="fraud",feature="amount"} 1"#), "{text}");
}

#[tokio::test]
async fn booleans_may_be_0_or_1_and_integers_may_be_written_as_floats() {
    let app = router(fraud_endpoints(EndpointSettings::default()), None);
    let a = post(&app, PREDICT, &json!({ "row": row(180.0, 3, true, "web") })).await;
    let b =
        post(&app, PREDICT, &json!({ "row": { "amount": 180, "n_items": 3.0, "is_new": 1, "merchant": "web" } })).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    assert_eq!(score(&a.body["predictions"][0]), score(&b.body["predictions"][0]));
}

/// Every request here is refused with a 4xx whose message names the problem; none reaches a
/// panic or a 5xx.
#[tokio::test]
async fn bad_requests_are_refused_with_the_right_status_and_a_message_naming_the_problem() {
    let settings = EndpointSettings {
        token: Some(BearerToken::new("s3cret-token").unwrap()),
        max_body: 4096,
        ..EndpointSettings::default()
    };
    let e = fraud_endpoints(settings);
    let app = router(e.clone(), None);
    let auth = ("authorization", "Bearer s3cret-token");
    let json_ct = ("content-type", "application/json");
    let call = |body: String| {
        let app = app.clone();
        async move { send(&app, "POST", PREDICT, &[auth, json_ct], body).await }
    };
    let ok_row = row(10.0, 1, false, "web");

    let mut cases: Vec<(&str, Reply, StatusCode, &str)> = Vec::new();
    cases.push(("invalid JSON", call("{\"rows\": [".into()).await, StatusCode::BAD_REQUEST, "invalid JSON"));
    cases.push(("not an object", call("[1, 2]".into()).await, StatusCode::BAD_REQUEST, "invalid request"));
    cases.push((
        "unknown field",
        call(json!({ "rowz": [] }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "unknown field `rowz`",
    ));
    cases.push(("nothing", call("{}".into()).await, StatusCode::BAD_REQUEST, "nothing to predict"));
    cases.push((
        "empty rows",
        call(json!({ "rows": [] }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "`rows` is empty",
    ));
    cases.push((
        "row and rows",
        call(json!({ "row": ok_row, "rows": [ok_row] }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "only one of",
    ));
    cases.push((
        "string for a float",
        call(
            json!({ "rows": [ok_row, { "amount": "12.5", "n_items": 1, "is_new": false, "merchant": "web" }] })
                .to_string(),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "rows[1]: feature `amount` expects a number, got the string \"12.5\"",
    ));
    cases.push((
        "fraction for an int",
        call(json!({ "row": { "amount": 1, "n_items": 1.5, "is_new": false, "merchant": "web" } }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "row: feature `n_items` expects an integer, got the number 1.5",
    ));
    cases.push((
        "string for a bool",
        call(json!({ "row": { "amount": 1, "n_items": 1, "is_new": "yes", "merchant": "web" } }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "feature `is_new` expects a boolean",
    ));
    cases.push((
        "number for a category",
        call(json!({ "row": { "amount": 1, "n_items": 1, "is_new": true, "merchant": 3 } }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "feature `merchant` expects a string (one of its categories), got the number 3",
    ));
    cases.push((
        "array for a float",
        call(json!({ "row": { "amount": [1], "n_items": 1, "is_new": true, "merchant": "web" } }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "feature `amount` expects a number, got an array",
    ));
    cases.push((
        "too big for f32",
        call(r#"{"row": {"amount": 1e300, "n_items": 1, "is_new": true, "merchant": "web"}}"#.into()).await,
        StatusCode::BAD_REQUEST,
        "does not fit a 32-bit float",
    ));
    cases.push((
        "missing feature",
        call(json!({ "row": { "amount": 1, "is_new": true, "merchant": "web" } }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "row: missing feature `n_items` (send null for a missing value)",
    ));
    cases.push((
        "unknown feature",
        call(
            json!({ "row": { "amount": 1, "n_items": 1, "is_new": true, "merchant": "web", "ammount": 2 } })
                .to_string(),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "row: unknown feature `ammount`; did you mean `amount`?",
    ));
    cases.push((
        "row not an object",
        call(json!({ "rows": [1] }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "expected a map",
    ));
    cases.push((
        "entities without a store",
        call(json!({ "entities": [{ "account_id": "a" }] }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "has no online feature store",
    ));
    let huge = json!({ "rows": vec![ok_row.clone(); 200] }).to_string();
    cases.push((
        "huge body",
        call(huge.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than this endpoint's limit of 4096 bytes",
    ));
    // A body streamed without a length is cut at the limit too.
    let chunks: Vec<Result<String, std::io::Error>> =
        huge.as_bytes().chunks(1000).map(|c| Ok(String::from_utf8(c.to_vec()).unwrap())).collect();
    let streamed = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
    cases.push((
        "huge streamed body",
        send(&app, "POST", PREDICT, &[auth, json_ct], streamed).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit of 4096 bytes",
    ));
    cases.push((
        "wrong content type",
        send(&app, "POST", PREDICT, &[auth, ("content-type", "text/plain")], json!({ "row": ok_row }).to_string())
            .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "must be `Content-Type: application/json`, not `text/plain`",
    ));
    cases.push((
        "no content type",
        send(&app, "POST", PREDICT, &[auth], json!({ "row": ok_row }).to_string()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    ));
    let no_token = send(&app, "POST", PREDICT, &[json_ct], json!({ "row": ok_row }).to_string()).await;
    assert_eq!(no_token.headers["www-authenticate"], "Bearer realm=\"mlops\"");
    cases.push(("no token", no_token, StatusCode::UNAUTHORIZED, "needs a bearer token"));
    let wrong = send(
        &app,
        "POST",
        PREDICT,
        &[("authorization", "Bearer guessed-wrong"), json_ct],
        json!({ "row": ok_row }).to_string(),
    )
    .await;
    assert!(wrong.headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert!(!wrong.text.contains("guessed-wrong") && !wrong.text.contains("s3cret"), "{}", wrong.text);
    cases.push(("wrong token", wrong, StatusCode::UNAUTHORIZED, "not valid for endpoint `fraud`"));
    cases.push((
        "basic auth",
        send(&app, "POST", PREDICT, &[("authorization", "Basic czNjcmV0"), json_ct], "{}").await,
        StatusCode::UNAUTHORIZED,
        "not `Bearer <token>`",
    ));
    cases.push((
        "unknown endpoint",
        post(&app, "/v1/endpoints/nope/predict", &json!({ "row": ok_row })).await,
        StatusCode::NOT_FOUND,
        "no endpoint named \"nope\"",
    ));
    cases.push((
        "unknown route",
        send(&app, "GET", "/v1/nothing", &[], "").await,
        StatusCode::NOT_FOUND,
        "no such route",
    ));
    cases.push((
        "GET on predict",
        send(&app, "GET", PREDICT, &[auth], "").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    ));

    for (what, reply, status, message) in &cases {
        assert_eq!(reply.status, *status, "{what}: {}", reply.text);
        assert_eq!(reply.headers["content-type"], "application/json", "{what}");
        assert!(reply.error().contains(message), "{what}: expected {message:?} in {:?}", reply.error());
    }
    assert_eq!(e.metrics().panics(), 0);
    assert!(!e.metrics().encode_text().lines().any(|l| l.contains("code=\"5")), "a 5xx was answered");

    // And the same endpoint still answers a good request.
    let ok = send(&app, "POST", PREDICT, &[auth, json_ct], json!({ "row": ok_row }).to_string()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn entities_get_their_features_from_the_online_store() {
    let source = Arc::new(MemoryFeatures::new(&[("acct_1", 180.0, "web"), ("acct_2", 20.0, "store")]));
    let settings = EndpointSettings { features: Some(source), ..EndpointSettings::default() };
    let e = fraud_endpoints(settings);
    let app = router(e.clone(), None);
    let r = post(
        &app,
        PREDICT,
        &json!({ "entities": [
            { "account_id": "acct_1", "n_items": 3, "is_new": true },
            { "account_id": "acct_2", "n_items": 3, "is_new": true },
            { "account_id": "acct_unknown", "n_items": 3, "is_new": true },
            // A request-time value wins over the store's.
            { "account_id": "acct_2", "n_items": 3, "is_new": true, "amount": 180.0, "merchant": "web" },
        ] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s: Vec<f32> = r.body["predictions"].as_array().unwrap().iter().map(score).collect();
    assert_eq!(s[0], direct_score(&[180.0, 3.0, 1.0, 3.0]));
    assert_eq!(s[1], direct_score(&[20.0, 3.0, 1.0, 2.0]));
    assert_eq!(s[2], direct_score(&[f32::NAN, 3.0, 1.0, f32::NAN]), "an unknown entity has missing features");
    assert_eq!(s[3], s[0]);
    assert!(e.metrics().encode_text().contains(r#"mlops_online_entity_misses_total{endpoint="fraud"} 1"#));

    let missing_key = post(&app, PREDICT, &json!({ "entities": [{ "n_items": 3, "is_new": true }] })).await;
    assert_eq!(missing_key.status, StatusCode::BAD_REQUEST);
    assert!(missing_key.error().contains("entities[0]: missing join key `account_id`"), "{}", missing_key.text);
    let missing_feature = post(&app, PREDICT, &json!({ "entities": [{ "account_id": "acct_1" }] })).await;
    assert_eq!(missing_feature.status, StatusCode::BAD_REQUEST);
    assert!(missing_feature.error().contains("missing features `n_items`, `is_new`"), "{}", missing_feature.text);
    let bad_key =
        post(&app, PREDICT, &json!({ "entities": [{ "account_id": 1.5, "n_items": 3, "is_new": true }] })).await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert!(bad_key.error().contains("join key `account_id` expects a string or an integer"), "{}", bad_key.text);
}

#[tokio::test]
async fn open_inference_protocol_infer_metadata_and_health() {
    let e = fraud_endpoints(EndpointSettings::default());
    let app = router(e.clone(), None);

    // One tensor per feature.
    let req = json!({
        "id": "req-1",
        "inputs": [
            { "name": "amount", "shape": [2], "datatype": "FP32", "data": [180.0, 20.0] },
            { "name": "n_items", "shape": [2, 1], "datatype": "INT64", "data": [[3], [1]] },
            { "name": "is_new", "shape": [2], "datatype": "BOOL", "data": [true, false] },
            { "name": "merchant", "shape": [2], "datatype": "BYTES", "data": ["web", "store"] },
        ]
    });
    let r = post(&app, "/v2/models/fraud/infer", &req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["model_name"], "fraud");
    assert_eq!(r.body["model_version"], "1");
    assert_eq!(r.body["id"], "req-1");
    let score_t = &r.body["outputs"][0];
    assert_eq!(score_t["name"], "score");
    assert_eq!(score_t["datatype"], "FP32");
    assert_eq!(score_t["shape"], json!([2]));
    let got: Vec<f32> = score_t["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(got, vec![direct_score(&[180.0, 3.0, 1.0, 3.0]), direct_score(&[20.0, 1.0, 0.0, 2.0])]);
    assert_eq!(r.body["outputs"][1]["name"], "prediction_id");
    assert_eq!(r.body["outputs"][1]["shape"], json!([2]));

    // One [rows, features] tensor in signature order, categories as codes, null for missing.
    let dense = json!({ "inputs": [{ "name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[180.0, 3, 1, 3], [20.0, 1, 0, null]] }] });
    let r = post(&app, "/v2/models/fraud/versions/1/infer", &dense).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got: Vec<f32> =
        r.body["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(got, vec![direct_score(&[180.0, 3.0, 1.0, 3.0]), direct_score(&[20.0, 1.0, 0.0, f32::NAN])]);

    // Asked-for outputs only.
    let mut only = req.clone();
    only["outputs"] = json!([{ "name": "score" }]);
    let r = post(&app, "/v2/models/fraud/infer", &only).await;
    assert_eq!(r.body["outputs"].as_array().unwrap().len(), 1, "{}", r.text);

    // Multi-class: probabilities [rows, classes] and class names.
    let seg = post(&app, "/v2/models/segment/infer", &req).await;
    assert_eq!(seg.status, StatusCode::OK, "{}", seg.text);
    assert_eq!(seg.body["outputs"][0]["name"], "probabilities");
    assert_eq!(seg.body["outputs"][0]["shape"], json!([2, 3]));
    assert_eq!(seg.body["outputs"][1]["name"], "class");
    assert_eq!(seg.body["outputs"][1]["datatype"], "BYTES");

    // Metadata.
    let m = send(&app, "GET", "/v2/models/fraud", &[], "").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    assert_eq!(m.body["name"], "fraud");
    assert_eq!(m.body["versions"], json!(["1"]));
    assert_eq!(
        m.body["inputs"],
        json!([
            { "name": "amount", "datatype": "FP32", "shape": [-1] },
            { "name": "n_items", "datatype": "INT64", "shape": [-1] },
            { "name": "is_new", "datatype": "BOOL", "shape": [-1] },
            { "name": "merchant", "datatype": "BYTES", "shape": [-1], "parameters": { "categories": MERCHANTS } },
        ])
    );
    assert_eq!(m.body["outputs"][0], json!({ "name": "score", "datatype": "FP32", "shape": [-1] }));
    let sm = send(&app, "GET", "/v2/models/segment/versions/1", &[], "").await;
    assert_eq!(sm.body["outputs"][0], json!({ "name": "probabilities", "datatype": "FP32", "shape": [-1, 3] }));
    assert_eq!(sm.body["parameters"]["classes"], json!(CLASSES));

    for (uri, status) in [
        ("/v2/models/fraud/ready", StatusCode::OK),
        ("/v2/models/fraud/versions/1/ready", StatusCode::OK),
        ("/v2/models/fraud/versions/7/ready", StatusCode::NOT_FOUND),
        ("/v2/models/fraud/versions/x/ready", StatusCode::NOT_FOUND),
        ("/v2/models/nope/ready", StatusCode::NOT_FOUND),
        ("/v2/health/live", StatusCode::OK),
        ("/v2/health/ready", StatusCode::OK),
        ("/v2", StatusCode::OK),
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
    ] {
        let r = send(&app, "GET", uri, &[], "").await;
        assert_eq!(r.status, status, "{uri}: {}", r.text);
    }

    // Bad tensors.
    let bad = |inputs: Value| json!({ "inputs": inputs });
    let mut wrong_type = req.clone();
    wrong_type["inputs"][3]["datatype"] = json!("FP32");
    let mut short = req.clone();
    short["inputs"][0]["data"] = json!([1.0]);
    let mut rows_differ = req.clone();
    rows_differ["inputs"][0]["shape"] = json!([1]);
    rows_differ["inputs"][0]["data"] = json!([1.0]);
    let mut no_merchant = req.clone();
    no_merchant["inputs"].as_array_mut().unwrap().pop();
    let mut unknown_output = req.clone();
    unknown_output["outputs"] = json!([{ "name": "logits" }]);
    let mut bad_bool = req.clone();
    bad_bool["inputs"][2]["data"] = json!([true, "no"]);
    for (what, body, message) in [
        (
            "category as FP32",
            wrong_type,
            "inputs[3] (`merchant`): datatype FP32 does not fit a category feature (expected BYTES)",
        ),
        ("data shorter than shape", short, "inputs[0] (`amount`): shape [2] holds 2 values, `data` has 1"),
        ("rows differ", rows_differ, "inputs[1] (`n_items`) has 2 rows, the inputs before it 1"),
        ("missing tensor", no_merchant, "missing input tensor(s) for feature(s) `merchant`"),
        ("unknown output", unknown_output, "unknown output `logits`; this model has score, prediction_id"),
        ("bad bool", bad_bool, "inputs[2] (`is_new`) row 1: expects a boolean (true or false), got the string \"no\""),
        ("no inputs", bad(json!([])), "`inputs` is empty"),
        (
            "unknown datatype",
            bad(json!([{ "name": "amount", "shape": [1], "datatype": "FP8", "data": [1] }])),
            "unknown datatype `FP8`",
        ),
        (
            "dense with wrong width",
            bad(json!([{ "name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3] }])),
            "a [rows, features] tensor needs 4 columns",
        ),
        (
            "dense with a bad code",
            bad(json!([{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 1, 9] }])),
            "`merchant` is a category column: expects a code from 0 to 3, got 9",
        ),
        (
            "unknown feature",
            bad(json!([{ "name": "amout", "shape": [1], "datatype": "FP32", "data": [1] }])),
            "did you mean `amount`?",
        ),
    ] {
        let r = post(&app, "/v2/models/fraud/infer", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text);
        assert!(r.error().contains(message), "{what}: expected {message:?} in {:?}", r.error());
    }
    let r = post(&app, "/v2/models/fraud/versions/9/infer", &req).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "endpoint `fraud` has no version 9 loaded");
    assert_eq!(e.metrics().panics(), 0);
}

#[tokio::test]
async fn readiness_waits_for_the_endpoints_to_be_loaded() {
    let e = Arc::new(Endpoints::new());
    let app = router(e.clone(), None);
    let r = send(&app, "GET", "/readyz", &[], "").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.error().contains("still loading"));
    assert_eq!(send(&app, "GET", "/v2/health/ready", &[], "").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&app, "GET", "/healthz", &[], "").await.status, StatusCode::OK);
    e.upsert("fraud", EndpointSettings::default(), vec![(load(&models().fraud_v1), 1)]).unwrap();
    e.set_ready(true);
    let r = send(&app, "GET", "/readyz", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["endpoints"], json!(["fraud"]));
}

#[tokio::test]
async fn a_request_over_the_endpoint_timeout_is_answered_504() {
    let e = Arc::new(Endpoints::new());
    let slow = with_predictor(&models().fraud_v1, SlowPredict { delay: Duration::from_millis(400), score: 0.5 });
    let settings = EndpointSettings { timeout: Duration::from_millis(50), ..EndpointSettings::default() };
    e.upsert("fraud", settings, vec![(slow, 1)]).unwrap();
    let app = router(e.clone(), None);
    let r = post(&app, PREDICT, &json!({ "row": row(1.0, 1, true, "web") })).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert_eq!(r.error(), "no answer within this endpoint's timeout of 50ms");
    let snap = e.snapshot();
    assert_eq!(snap[0].versions[0].server_errors, 1);
}

#[tokio::test]
async fn weights_split_traffic_and_a_sticky_key_pins_an_entity() {
    let e = Arc::new(Endpoints::new());
    let v1 = with_predictor(&models().fraud_v1, ConstPredict(0.1));
    let v2 = with_predictor(&models().fraud_v2, ConstPredict(0.2));
    e.upsert("fraud", EndpointSettings::default(), vec![(v1.clone(), 90), (v2.clone(), 10)]).unwrap();
    let app = router(e.clone(), None);
    let n = 2000;
    let mut on_v2 = 0;
    for _ in 0..n {
        let r = post(&app, PREDICT, &json!({ "row": row(1.0, 1, true, "web") })).await;
        assert_eq!(r.status, StatusCode::OK);
        if r.body["model_version"] == 2 {
            on_v2 += 1;
        }
    }
    // Binomial(2000, 0.1): mean 200, sd 13.4; ±5 sd.
    assert!((133..=267).contains(&on_v2), "{on_v2} of {n} on the 10% version");
    let snap = e.snapshot();
    assert_eq!(snap[0].requests, n);
    assert_eq!(snap[0].versions[1].requests, on_v2);
    assert_eq!(snap[0].versions[0].requests + snap[0].versions[1].requests, n);

    // Sticky: the entity key in a row routes by its hash; the key is not a feature.
    let sticky = EndpointSettings { sticky_key: Some("account_id".into()), ..EndpointSettings::default() };
    e.upsert("fraud", sticky, vec![(v2.clone(), 50), (v1.clone(), 50)]).unwrap();
    let version_of = |key: String| {
        let app = app.clone();
        async move {
            let mut r = row(1.0, 1, true, "web");
            r["account_id"] = json!(key);
            let reply = post(&app, PREDICT, &json!({ "rows": [r] })).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            reply.body["model_version"].as_u64().unwrap()
        }
    };
    let mut placed = Vec::new();
    for k in 0..200 {
        let key = format!("acct_{k}");
        let first = version_of(key.clone()).await;
        for _ in 0..5 {
            assert_eq!(version_of(key.clone()).await, first, "{key} moved between versions");
        }
        placed.push((key, first));
    }
    let on_2 = placed.iter().filter(|(_, v)| *v == 2).count();
    assert!((60..=140).contains(&on_2), "{on_2} of 200 entities on a 50% version");

    // The canary (listed first) grows: entities only move onto it, never off it.
    e.set_weights("fraud", &[(2, 90), (1, 10)]).unwrap();
    for (key, before) in &placed {
        let after = version_of(key.clone()).await;
        if *before == 2 {
            assert_eq!(after, 2, "{key} left the growing version");
        }
    }
}

#[tokio::test]
async fn metrics_are_exposed_in_the_prometheus_text_format_with_the_expected_values() {
    let e = fraud_endpoints(EndpointSettings::default());
    let app = router(e.clone(), None);
    for _ in 0..3 {
        assert_eq!(
            post(&app, PREDICT, &json!({ "rows": [row(50.0, 1, true, "web"), row(5000.0, 2, false, "mail")] }))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(post(&app, PREDICT, &json!({ "row": { "amount": "x" } })).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(&app, "/v1/endpoints/segment/predict", &json!({ "row": row(1.0, 1, true, "web") })).await.status,
        StatusCode::OK
    );

    let r = send(&app, "GET", "/metrics", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let scrape = prometheus_parse::Scrape::parse(r.text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |metric: &str, labels: &[(&str, &str)]| -> Vec<&prometheus_parse::Sample> {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect()
    };
    let counter = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        let found = find(metric, labels);
        assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
        match found[0].value {
            prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("{metric} is not a counter: {other:?}"),
        }
    };
    assert_eq!(
        counter("mlops_endpoint_requests_total", &[("endpoint", "fraud"), ("version", "1"), ("code", "200")]),
        3.0
    );
    assert_eq!(
        counter("mlops_endpoint_requests_total", &[("endpoint", "fraud"), ("version", "1"), ("code", "400")]),
        1.0
    );
    assert_eq!(
        counter("mlops_endpoint_requests_total", &[("endpoint", "segment"), ("version", "1"), ("code", "200")]),
        1.0
    );
    assert_eq!(counter("mlops_predictions_total", &[("endpoint", "fraud"), ("version", "1")]), 6.0);
    assert_eq!(counter("mlops_http_requests_total", &[("route", "/v1/endpoints/:name/predict"), ("code", "200")]), 4.0);
    let classes: f64 =
        CLASSES.iter().map(|c| counter("mlops_predicted_class_total", &[("endpoint", "segment"), ("class", c)])).sum();
    assert_eq!(classes, 1.0);

    let histogram = |metric: &str, labels: &[(&str, &str)]| -> prometheus_parse::HistogramCount {
        let found = find(metric, labels);
        assert_eq!(found.len(), 1, "{metric} {labels:?}");
        match &found[0].value {
            prometheus_parse::Value::Histogram(buckets) => buckets.last().unwrap().clone(),
            other => panic!("{metric} is not a histogram: {other:?}"),
        }
    };
    // Every routed request is timed, the bad one included.
    assert_eq!(
        histogram("mlops_endpoint_request_duration_seconds", &[("endpoint", "fraud"), ("version", "1")]).count,
        4.0
    );
    assert_eq!(histogram("mlops_prediction_score", &[("endpoint", "fraud"), ("version", "1")]).count, 6.0);
    // Feature values: 50 three times and 5000 three times, in bounded buckets.
    let amount = find("mlops_feature_value", &[("endpoint", "fraud"), ("feature", "amount")]);
    let prometheus_parse::Value::Histogram(buckets) = &amount[0].value else { panic!() };
    let at = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
    assert_eq!((at(10.0), at(100.0), at(1000.0), at(10000.0), at(f64::INFINITY)), (0.0, 3.0, 3.0, 6.0, 6.0));
    assert!(buckets.len() <= 25);
    assert_eq!(find("mlops_feature_value", &[("feature", "merchant")]).len(), 0, "categories have no value histogram");
    let weight = find("mlops_endpoint_traffic_weight", &[("endpoint", "fraud"), ("version", "1")]);
    assert!(matches!(weight[0].value, prometheus_parse::Value::Gauge(w) if w == 100.0));
    assert!(matches!(find("mlops_http_requests_in_flight", &[])[0].value, prometheus_parse::Value::Gauge(_)));

    // Prometheus asks for OpenMetrics and gets it.
    let om =
        send(&app, "GET", "/metrics", &[("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")], "")
            .await;
    assert_eq!(om.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(om.text.trim_end().ends_with("# EOF"));
    assert!(om.text.contains("# TYPE mlops_endpoint_requests counter"));
}

#[test]
fn settings_come_from_the_compiled_endpoint_block() {
    use mlops_compiler::model::{Auth, Endpoint, Resources, Rollout};
    use mlops_compiler::units::{Duration as Dur, Memory};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "from-a-file\n").unwrap();
    let spec = Endpoint {
        model: "training_job.fraud".into(),
        replicas: 1,
        timeout: Dur::from_millis(1500),
        max_body: Memory::from_bytes(2048),
        autoscaling: None,
        rollout: Rollout { strategy: "immediate".into(), steps: vec![], interval: None, rollback: None },
        auth: Some(Auth { kind: "bearer".into(), token_env: None, token_file: Some("token".into()) }),
        resources: Resources::default(),
        description: None,
    };
    let s = EndpointSettings::from_spec(&spec, dir.path()).unwrap();
    assert_eq!(s.timeout, Duration::from_millis(1500));
    assert_eq!(s.max_body, 2048);
    let token = s.token.unwrap();
    assert!(token.verify("from-a-file"));
    assert!(!token.verify("from-a-file\n") && !token.verify("from-a-fil") && !token.verify(""));
    assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");

    let mut missing = spec.clone();
    missing.auth = Some(Auth {
        kind: "bearer".into(),
        token_env: Some("MLOPS_TEST_TOKEN_THAT_IS_NOT_SET".into()),
        token_file: None,
    });
    let err = EndpointSettings::from_spec(&missing, dir.path()).unwrap_err().to_string();
    assert!(err.contains("MLOPS_TEST_TOKEN_THAT_IS_NOT_SET"), "{err}");
    let mut none = spec;
    none.auth = Some(Auth { kind: "none".into(), token_env: None, token_file: None });
    assert!(EndpointSettings::from_spec(&none, dir.path()).unwrap().token.is_none());
}

#[test]
fn the_control_plane_api_refuses_invalid_changes_and_reports_snapshots() {
    let e = Endpoints::new();
    let v1 = load(&models().fraud_v1);
    let v2 = load(&models().fraud_v2);
    let d = EndpointSettings::default;
    assert!(e.upsert("fraud", d(), vec![]).is_err());
    assert!(e.upsert("bad/name", d(), vec![(v1.clone(), 1)]).is_err());
    assert!(e.upsert("fraud", d(), vec![(v1.clone(), 0)]).unwrap_err().to_string().contains("every weight is 0"));
    assert!(e.upsert("fraud", d(), vec![(v1.clone(), 1), (v1.clone(), 1)]).unwrap_err().to_string().contains("twice"));
    e.upsert("fraud", d(), vec![(v1.clone(), 100)]).unwrap();
    assert_eq!(
        e.set_weights("fraud", &[(2, 50)]).unwrap_err().to_string(),
        "endpoint `fraud` has no version 2 loaded (loaded: 1)"
    );
    assert!(e.set_weights("nope", &[(1, 50)]).is_err());
    e.upsert("fraud", d(), vec![(v1.clone(), 100), (v2.clone(), 0)]).unwrap();
    e.set_weights("fraud", &[(2, 10), (1, 90)]).unwrap();
    let snap = e.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].name, "fraud");
    let vs: Vec<(u32, u32)> = snap[0].versions.iter().map(|v| (v.version, v.weight)).collect();
    assert_eq!(vs, vec![(1, 90), (2, 10)]);
    assert_eq!(snap[0].versions[0].job, "training_job.fraud");
    // Versions not listed drop to 0 but stay loaded.
    e.set_weights("fraud", &[(2, 100)]).unwrap();
    let vs: Vec<(u32, u32)> = e.snapshot()[0].versions.iter().map(|v| (v.version, v.weight)).collect();
    assert_eq!(vs, vec![(1, 0), (2, 100)]);
    assert!(e.remove("fraud"));
    assert!(!e.remove("fraud"));
    assert!(e.snapshot().is_empty());
}

/// `entities` requests against the embedded online store itself: a view materialised from
/// source rows, looked up by account.
#[tokio::test]
async fn entities_are_looked_up_in_a_materialised_online_store() {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use mlops_compiler::model::{Column, ColumnType, Feature, FeatureKind, FeatureView, Source, SourceFormat};
    use mlops_runtime::features::{materialize, FeatureStore};
    use mlops_runtime::serve::OnlineStoreFeatures;

    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path()).unwrap();
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    let source = Source {
        format: SourceFormat::Csv,
        path: Some("events.csv".into()),
        connection: None,
        connection_env: None,
        table: None,
        query: None,
        timestamp: Some("ts".into()),
        delimiter: ",".into(),
        header: true,
        columns: vec![
            col("account_id", ColumnType::String),
            col("ts", ColumnType::Timestamp),
            col("amount", ColumnType::Float),
            col("merchant", ColumnType::Category),
        ],
        description: None,
    };
    let feature = |name: &str, dtype| Feature {
        name: name.into(),
        kind: FeatureKind::Column { column: name.into() },
        dtype,
        description: None,
    };
    let view = FeatureView {
        source: "source.events".into(),
        entities: vec!["entity.account".into()],
        join_keys: vec!["account_id".into()],
        ttl: None,
        online: true,
        features: vec![feature("amount", ColumnType::Float), feature("merchant", ColumnType::Category)],
        description: None,
    };
    // acct_1's latest row is (180, web); acct_2 has one row (20, store).
    let rows = [("acct_1", 1, 5.0, "mail"), ("acct_1", 2, 180.0, "web"), ("acct_2", 1, 20.0, "store")];
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("ts", ts, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("merchant", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1 * 1_000_000)).with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    materialize(&store, "feature_view.activity", &view, &source, [Ok::<_, std::io::Error>(batch)], "fp").unwrap();

    let online = store.online("feature_view.activity").unwrap();
    let features = OnlineStoreFeatures::new(vec![(online, view.join_keys.clone())]).unwrap();
    let settings = EndpointSettings { features: Some(Arc::new(features)), ..EndpointSettings::default() };
    let e = fraud_endpoints(settings);
    let app = router(e.clone(), None);
    let r = post(
        &app,
        PREDICT,
        &json!({ "entities": [
            { "account_id": "acct_1", "n_items": 3, "is_new": true },
            { "account_id": "acct_2", "n_items": 1, "is_new": false },
            { "account_id": "acct_9", "n_items": 1, "is_new": false },
        ] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s: Vec<f32> = r.body["predictions"].as_array().unwrap().iter().map(score).collect();
    assert_eq!(
        s,
        vec![
            direct_score(&[180.0, 3.0, 1.0, 3.0]),
            direct_score(&[20.0, 1.0, 0.0, 2.0]),
            direct_score(&[f32::NAN, 1.0, 0.0, f32::NAN]),
        ]
    );
    assert!(e.metrics().encode_text().contains(r#"mlops_online_entity_misses_total{endpoint="fraud"} 1"#));
}

#[tokio::test]
async fn feedback_is_checked_stored_and_refused_where_none_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FeedbackStore::open(dir.path()));
    let state = AppState::new(fraud_endpoints(EndpointSettings::default()), None).with_feedback(store.clone());
    let app = router_with(state);
    let url = "/v1/endpoints/fraud/feedback";
    let good = json!({ "feedback": [
        { "prediction_id": "p-1", "label": true },
        { "prediction_id": "p-2", "label": 0 }
    ]});
    let r = post(&app, url, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({ "endpoint": "fraud", "accepted": 2 }));
    assert_eq!(store.read("fraud").unwrap(), HashMap::from([("p-1".to_string(), 1.0), ("p-2".to_string(), 0.0)]));

    for (body, words) in [
        (json!({ "feedback": [] }), "`feedback` is empty"),
        (json!({ "labels": [] }), "unknown field `labels`"),
        (
            json!({ "feedback": [{ "prediction_id": "p-3", "label": "yes" }] }),
            "feedback[0]: `label` must be a boolean or a number",
        ),
        (
            json!({ "feedback": [{ "prediction_id": "p-3", "label": 1 }, { "label": 1 }] }),
            "feedback[1]: missing `prediction_id`",
        ),
    ] {
        let r = post(&app, url, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.error().contains(words), "{body}: {}", r.error());
    }
    // A request with one bad item stores none of it.
    assert!(!store.read("fraud").unwrap().contains_key("p-3"));
    let too_many: Vec<Value> = (0..10_001).map(|i| json!({ "prediction_id": format!("q{i}"), "label": 1 })).collect();
    let r = post(&app, url, &json!({ "feedback": too_many })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("send at most 10000"), "{}", r.error());
    let r = post(&app, "/v1/endpoints/nope/feedback", &good).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A server without a store says so instead of dropping labels.
    let bare = router(fraud_endpoints(EndpointSettings::default()), None);
    let r = post(&bare, url, &good).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("keeps no feedback store"), "{}", r.error());
}
