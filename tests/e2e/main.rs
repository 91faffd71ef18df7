//! End-to-end tests: guests built from source (`tests/guests`), the real `spark`
//! binary, real sled data dirs in temporary directories.

mod bad_input;
mod example;
mod failures;
mod ledger;
mod routing;
mod sandbox;
mod support;
