//! The server. In: an address, the shared [`Endpoints`] and [`ServerOptions`]. Out: a
//! [`RunningServer`] answering HTTP/1.1 on a tokio runtime until [`RunningServer::shutdown`],
//! which stops accepting (new connections are refused), lets the requests in flight finish up to
//! a deadline, then flushes and closes the prediction log.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::endpoints::Endpoints;
use super::http::{router_with, AppState};
use super::predlog::{PredictionLog, PredictionLogOptions, PredictionLogStats};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The prediction log directory cannot be used.
    #[error("cannot start the prediction log in {}: {source}", dir.display())]
    PredictionLog {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Log predictions here (`None`: no log).
    pub prediction_log: Option<PredictionLogOptions>,
    /// How long [`RunningServer::shutdown`] waits for requests in flight.
    pub drain_timeout: Duration,
    /// More routes served on the same listener (the agent's control API), outside the data
    /// plane's metrics and fallback.
    pub control: Option<axum::Router>,
    /// Keep labels posted to `/v1/endpoints/{name}/feedback` under this data directory
    /// (`None`: the route answers 404).
    pub feedback_dir: Option<std::path::PathBuf>,
    /// This replica's name when several share `feedback_dir` (pods): it appends to its own files.
    pub feedback_pod: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            prediction_log: None,
            drain_timeout: Duration::from_secs(30),
            control: None,
            feedback_dir: None,
            feedback_pod: None,
        }
    }
}

/// Starts servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds `addr` (port 0 picks a free one; see [`RunningServer::local_addr`]) and serves
    /// `endpoints` on the current tokio runtime.
    pub async fn start(
        addr: SocketAddr,
        endpoints: Arc<Endpoints>,
        options: ServerOptions,
    ) -> Result<RunningServer, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
        let log = match &options.prediction_log {
            None => None,
            Some(o) => Some(
                PredictionLog::start(o.clone(), endpoints.metrics().clone())
                    .map_err(|source| ServeError::PredictionLog { dir: o.dir.clone(), source })?,
            ),
        };
        let mut state = AppState::new(endpoints.clone(), log.as_ref().map(PredictionLog::logger));
        if let Some(dir) = &options.feedback_dir {
            let store = match &options.feedback_pod {
                Some(pod) => crate::monitor::feedback::FeedbackStore::for_pod(dir, pod),
                None => crate::monitor::feedback::FeedbackStore::open(dir),
            };
            state = state.with_feedback(Arc::new(store));
        }
        let app = match &options.control {
            Some(control) => control.clone().merge(router_with(state.clone())),
            None => router_with(state.clone()),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        // Small answers must not wait for Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the server stopped with an error");
            }
        });
        Ok(RunningServer { addr: local_addr, endpoints, stop: Some(stop), task, log, state, options })
    }
}

/// What shutting down did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every request in flight finished before the deadline (otherwise the rest were cut).
    pub drained: bool,
    /// The prediction log's final counts, when there was one.
    pub prediction_log: Option<PredictionLogStats>,
}

/// A server answering requests.
pub struct RunningServer {
    addr: SocketAddr,
    endpoints: Arc<Endpoints>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    log: Option<PredictionLog>,
    state: AppState,
    options: ServerOptions,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its endpoints.
    pub fn endpoints(&self) -> &Arc<Endpoints> {
        &self.endpoints
    }

    /// The prediction log's counts so far.
    pub fn prediction_log_stats(&self) -> Option<PredictionLogStats> {
        self.log.as_ref().map(PredictionLog::stats)
    }

    /// Answers `/readyz` with 503 from now on while still serving every request and accepting
    /// connections: the first step of a pod's shutdown, so the Service stops sending it traffic
    /// before [`RunningServer::shutdown`] stops accepting.
    pub fn unready(&self) {
        self.state.draining().store(true, Ordering::SeqCst);
    }

    /// Stops accepting connections (readiness turns 503 at once), waits up to the drain
    /// timeout for requests in flight — those still running then are answered 503 — and
    /// flushes and closes the prediction log.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.state.draining().store(true, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let drained = match tokio::time::timeout(self.options.drain_timeout, &mut self.task).await {
            Ok(_) => true,
            Err(_) => {
                tracing::warn!(
                    timeout = ?self.options.drain_timeout,
                    "requests still in flight at the drain deadline are answered 503"
                );
                self.state.cut_requests();
                // Their connections close once the 503s are written.
                if tokio::time::timeout(Duration::from_secs(1), &mut self.task).await.is_err() {
                    self.task.abort();
                }
                false
            }
        };
        let prediction_log = match self.log.take() {
            None => None,
            Some(log) => Some(tokio::task::spawn_blocking(move || log.close()).await.unwrap_or_default()),
        };
        ShutdownReport { drained, prediction_log }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Dropped without shutdown: stop serving; the log flushes when dropped.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
