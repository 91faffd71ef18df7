//! `spark serve`: every tenant of a data dir served by one long-running process over
//! HTTP, with tokens, background work and metrics. A face over the library: it adds no
//! semantics of its own and never writes to the store itself.
//!
//! - `api.rs`: the routes, who may call them, what they answer.
//! - `owners.rs`: one thread per open tenant does its work in turn; ingest requests
//!   waiting together are committed together.
//! - `background.rs`: what an owner does between requests: due retries, schedules,
//!   forgetting idempotency keys; `sender.rs`: each open tenant's outbox sent on a
//!   thread of its own.
//! - `tokens.rs`: access tokens (`spark tokens`), checked on every request.
//! - `errors.rs`: failed requests as JSON with the right status.
//! - `metrics.rs`: `/metrics` in Prometheus's text format.
//! - `lock.rs`: one server per data dir, and the CLI told where it is.
//! - `console/`: the web console, server-rendered pages under `/console`.
//! - `cluster/`: several servers over NATS JetStream (`--cluster`), each tenant owned
//!   by one node at a time.

mod api;
mod background;
pub mod cluster;
mod console;
mod errors;
mod flusher;
mod listing;
pub mod lock;
mod metrics;
mod owners;
mod sender;
pub mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use spark_host::Spark;
use tokio::sync::Semaphore;

use api::{App, BodyLimits};
use metrics::Metrics;
use owners::{OwnerSettings, Owners};
use tokens::Tokens;

/// The address `spark serve` listens on unless told: loopback only, so that nothing is
/// exposed before an operator decides to (7411 is unassigned by IANA).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7411";

/// How a server is run: `spark serve`'s options (`cli/serve.rs` says what each does).
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: String,
    pub max_open_tenants: usize,
    pub queue: usize,
    pub idle: Duration,
    /// The largest body of records, in bytes (a module's may be 4 times that).
    pub max_body: usize,
    pub request_timeout: Duration,
    /// How often tenants that are not open are given a look; `None`: never.
    pub sweep: Option<Duration>,
    /// Page cache per open tenant, in bytes.
    pub store_cache: u64,
    /// The cluster to join, if any.
    pub cluster: Option<cluster::ClusterOptions>,
}

/// How long stopping waits for requests in flight, then for tenants to close.
const DRAIN: Duration = Duration::from_secs(30);
/// How long stopping waits for the tenants to close: a sender may be waiting for a
/// receiver that hangs, up to its 30 s timeout.
const CLOSE_PATIENCE: Duration = Duration::from_secs(60);

/// Serves every tenant of `spark`'s data dir until SIGTERM or SIGINT, then answers the
/// requests in flight, closes every tenant and returns.
pub fn run(mut spark: Spark, options: Options) -> anyhow::Result<()> {
    if options.max_open_tenants == 0 || options.queue == 0 || options.max_body == 0 {
        anyhow::bail!("--max-open-tenants, --queue and --max-body must be at least 1");
    }
    spark.set_store_cache(options.store_cache);
    let lock = lock::ServeLock::acquire(spark.data_dir())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spark-http")
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("cannot listen on `{}`", options.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        let cluster = match &options.cluster {
            Some(cluster_options) => {
                let cluster =
                    cluster::Cluster::connect(cluster_options, spark.data_dir(), &url).await?;
                spark.set_journal(cluster.journal());
                Some(cluster)
            }
            None => None,
        };
        serve(Arc::new(spark), options, lock, listener, url, cluster).await
    })
}

async fn serve(
    spark: Arc<Spark>,
    options: Options,
    mut lock: lock::ServeLock,
    listener: tokio::net::TcpListener,
    url: String,
    cluster: Option<Arc<cluster::Cluster>>,
) -> anyhow::Result<()> {
    lock.announce(&url)?;
    let metrics = Arc::new(Metrics::new());
    let owners = Owners::new(
        Arc::clone(&spark),
        OwnerSettings {
            max_open: options.max_open_tenants,
            queue: options.queue,
            idle: options.idle,
        },
        Arc::clone(&metrics),
    );
    let mut max_body = options.max_body;
    if let Some(cluster) = &cluster {
        cluster.start(Arc::clone(&spark), Arc::clone(&owners));
        // A request's records travel the log whole, and their commit takes some three
        // times their size (records, events, effects): bodies stay well under its
        // largest message.
        let fits = cluster.max_message() / 4;
        if max_body > fits {
            tracing::info!(
                "bodies of records are limited to {fits} bytes: a quarter of the cluster's \
                 largest message"
            );
            max_body = fits;
        }
    }
    let ready = Arc::new(AtomicBool::new(true));
    let app = App {
        tokens: Arc::new(Tokens::new(spark.data_dir())),
        spark: Arc::clone(&spark),
        owners: Arc::clone(&owners),
        metrics,
        compiling: Arc::new(Semaphore::new(1)),
        ready: Arc::clone(&ready),
        sessions: Arc::new(console::Sessions::default()),
        limits: BodyLimits {
            records: max_body,
            module: options.max_body.saturating_mul(4),
            other: 1 << 20,
        },
        cluster: cluster.clone(),
        request_timeout: options.request_timeout,
    };
    let router = api::router(app).layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        options.request_timeout,
    ));
    if let Some(every) = options.sweep {
        tokio::spawn(sweep(Arc::clone(&spark), Arc::clone(&owners), every));
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut stopping = stopped.clone();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );
    let signals = ShutdownSignals::listen()?;
    eprintln!("listening on {url}");
    let broken = tokio::select! {
        () = signals.received() => None,
        why = owners.broken() => Some(why),
    };
    tracing::info!("stopping: answering the requests in flight");
    ready.store(false, Ordering::Relaxed);
    let _ = stop.send(true);
    match tokio::time::timeout(DRAIN, server).await {
        Ok(result) => result??,
        Err(_) => tracing::warn!("requests still in flight after {DRAIN:?} are dropped"),
    }
    tracing::info!("closing the tenants");
    let closed = tokio::task::spawn_blocking(move || owners.close_all(CLOSE_PATIENCE)).await?;
    if let Some(cluster) = &cluster {
        // After the tenants closed (their last commits are in the log): the other
        // nodes take the shards at once instead of after the leases lapse.
        cluster.leave().await;
    }
    if let Some(why) = broken {
        anyhow::bail!(
            "{why}; the server stopped so that it starts again on the store as the disk \
             has it (the failed write is rolled back then): free space or fix the disk, \
             and start it again"
        );
    }
    if !closed {
        anyhow::bail!("some tenants did not close within {CLOSE_PATIENCE:?}");
    }
    drop(lock);
    tracing::info!("stopped");
    Ok(())
}

/// Gives each tenant that is not open a look at its background work, every `every`.
async fn sweep(spark: Arc<Spark>, owners: Arc<Owners>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let spark = Arc::clone(&spark);
        let owners = Arc::clone(&owners);
        let swept = tokio::task::spawn_blocking(move || {
            let open = owners.open_tenants();
            for tenant in spark.tenant_names()? {
                if !open.contains(&tenant) {
                    owners.wake(&tenant);
                }
            }
            Ok::<_, spark_host::Error>(())
        })
        .await;
        if let Ok(Err(error)) = swept {
            tracing::error!("the sweep over the tenants failed: {error}");
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from before the server says that it
/// listens: a signal sent as soon as that line is out stops it gracefully too (before,
/// one sent in that moment killed it).
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the first of them.
    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
