//! Serving: the in-process HTTP data plane for registered models. In: [`ServingModel`]s loaded
//! from the registry, grouped into named endpoints with traffic weights ([`Endpoints`], changed
//! live by the control plane). Out: an HTTP server ([`Server`]) answering predictions (a JSON API
//! and the Open Inference Protocol), Prometheus metrics and a prediction log.
//!
//! ```text
//! registry ─ModelVersion + model.json─▶ ServingModel ─┐
//!                       control plane ─upsert/set_weights─▶ Endpoints ─▶ http (router) ─▶ Server
//!   request ─route (weight | sticky key)─▶ decode by feature name ─▶ Predict ─▶ response
//!                                                    └─▶ metrics ─▶ /metrics   └─▶ predlog ─▶ JSON lines
//! ```

pub mod agent;
pub mod cluster;
pub mod control;
pub mod endpoints;
pub mod external;
pub mod http;
pub mod metrics;
pub mod model;
pub mod online;
pub mod predlog;
pub mod rollout;
pub mod server;
pub mod trees;
pub(crate) mod util;

pub use endpoints::{BearerToken, EndpointError, EndpointSettings, EndpointSnapshot, Endpoints, VersionSnapshot};
pub use metrics::Metrics;
pub use model::{FeatureValue, ModelError, Output, Predict, PredictError, PredictorPool, ServingModel};
pub use online::{FeatureSource, OnlineStoreFeatures};
pub use predlog::{PredictionLog, PredictionLogOptions, PredictionLogStats, PredictionLogger};
pub use server::{RunningServer, ServeError, Server, ServerOptions, ShutdownReport};
