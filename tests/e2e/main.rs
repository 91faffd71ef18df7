//! End-to-end tests: guests built from source (`tests/guests`), the real `spark`
//! binary, real sled data dirs in temporary directories.

// A test's helpers may unwrap like its test functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod architecture;
mod bad_input;
mod call;
mod clock;
mod cluster;
mod console;
mod crash;
mod disk;
mod dry_run;
mod example;
mod failures;
mod generators;
mod guide;
mod host;
mod hostile;
mod io_faults;
mod languages;
mod ledger;
mod limits;
mod mails;
mod model;
mod native;
mod new;
mod outputs;
mod polyglot;
mod readme;
mod repair;
mod rng;
mod routing;
mod sandbox;
mod sending;
mod serve;
mod servers;
mod support;
mod templates;
mod tenants;
mod terminal;
mod tokens;
mod traces;
