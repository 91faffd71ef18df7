//! `spark serve`: the server's options; the server is `serve/`.

use std::time::Duration;

use clap::Args;

use super::{Context, Outcome};
use crate::serve::cluster::ClusterOptions;
use crate::serve::{DEFAULT_LISTEN, Options};

/// The page cache of each tenant a server keeps open, in MiB, unless `--store-cache`
/// says: a server keeps up to `--max-open-tenants` open.
const TENANT_STORE_CACHE: u64 = 32;

/// Serve every tenant of the data dir over HTTP: applications post records, operators
/// read and repair, and the outbox is sent and failed deliveries retried in the
/// background. Prints `listening on http://ADDR` on stderr once it takes requests;
/// SIGTERM or Ctrl-C stops it after the requests in flight are answered.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark serve\n  spark serve --listen 0.0.0.0:7411 --log-json\n  spark serve --listen 127.0.0.1:0 --max-open-tenants 500 --idle 300\n  spark serve --cluster nats://10.0.0.1:4222,nats://10.0.0.2:4222 --listen 0.0.0.0:7411 --advertise http://10.0.0.5:7411"
)]
pub struct Serve {
    /// The address to listen on, HOST:PORT; port 0 picks a free one.
    #[arg(long, env = "SPARK_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Tenants open at once at most; the least recently used is closed first.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_open_tenants: usize,
    /// Requests waiting per tenant at most; more are answered 429 with Retry-After.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    queue: usize,
    /// Seconds a tenant with nothing to do stays open.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    idle: u64,
    /// The largest body of records taken, in MiB (a module's may be 4 times that).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    max_body: usize,
    /// Seconds a request may take before it is answered 408 (work already queued
    /// still happens: retry with the same Idempotency-Key).
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    request_timeout: u64,
    /// Seconds between looks at the background work of tenants that are not open
    /// (outbox to send, retries due); 0: only when they are opened.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    sweep: u64,
    /// Write logs as JSON lines (for a log collector).
    #[arg(long)]
    pub log_json: bool,
    /// Join a cluster over NATS JetStream: its servers, comma-separated
    /// `nats://HOST:PORT`. Each tenant is then owned by one node at a time; any node
    /// takes requests (docs/cluster.md).
    #[arg(long, env = "SPARK_CLUSTER", value_name = "URLS")]
    cluster: Option<String>,
    /// With --cluster: copies of the cluster's streams (at most its JetStream servers).
    #[arg(long, default_value_t = 3, value_name = "N", requires = "cluster")]
    replicas: usize,
    /// With --cluster: the URL the other nodes reach this node's API at (the listening
    /// address by default; set it when listening on 0.0.0.0).
    #[arg(long, value_name = "URL", requires = "cluster")]
    advertise: Option<String>,
}

impl Serve {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let options = Options {
            listen: self.listen,
            max_open_tenants: self.max_open_tenants,
            queue: self.queue,
            idle: Duration::from_secs(self.idle),
            max_body: self.max_body << 20,
            request_timeout: Duration::from_secs(self.request_timeout),
            sweep: (self.sweep > 0).then(|| Duration::from_secs(self.sweep)),
            store_cache: context.store_cache(TENANT_STORE_CACHE),
            cluster: self.cluster.map(|urls| ClusterOptions {
                urls,
                replicas: self.replicas,
                advertise: self.advertise,
            }),
        };
        crate::serve::run(context.spark()?, options)?;
        Ok(Outcome::Done)
    }
}
