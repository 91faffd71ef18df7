//! End-to-end tests: guests built from source (`tests/guests`), the real `spark`
//! binary, real sled data dirs in temporary directories.

mod bad_input;
mod example;
mod failures;
mod guide;
mod ledger;
mod readme;
mod routing;
mod sandbox;
mod support;
