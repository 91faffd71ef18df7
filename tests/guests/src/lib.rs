//! Paths of guest components built from source by this crate's build script:
//! the challenges example (`CHALLENGES_SOURCE`, `CHALLENGES_MAILER`) and the test
//! guests in this directory (`RECORDER`, `HOSTILE`, `RAW`).

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
