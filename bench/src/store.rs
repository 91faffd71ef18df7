//! The store's ceiling: what sled alone takes, writing the same keys and value sizes
//! as a run of the pipeline, in the same groups, with nothing else to do.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Keys and value sizes of one pipeline run, as written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Shape {
    pub records: u64,
    pub events: u64,
    pub record_bytes: usize,
    pub ledger_bytes: usize,
    pub outbox_bytes: usize,
}

/// New events per second that sled alone can store, for data of this shape.
pub fn ceiling(shape: Shape) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new().path(dir.path()).open()?;
    let tree = db.open_tree("data")?;
    let events_per_record = shape.events as f64 / shape.records as f64;
    let value = |bytes: usize| vec![b'x'; bytes];
    let started = Instant::now();
    let mut event = 0u64;
    for group in 0..shape.records.div_ceil(1_000) {
        let mut batch = sled::Batch::default();
        let first = group * 1_000;
        let first_event = event;
        for record in first..(first + 1_000).min(shape.records) {
            batch.insert(
                format!("rchallenge\0{record}").into_bytes(),
                value(shape.record_bytes),
            );
            let until = ((record + 1) as f64 * events_per_record) as u64;
            while event < until {
                batch.insert(
                    format!("lchallenge_event_{event}").into_bytes(),
                    value(shape.ledger_bytes),
                );
                event += 1;
            }
        }
        // The group's outbox items, one mail per event, are one value.
        let mut key = vec![b'o'];
        key.extend_from_slice(&first_event.to_be_bytes());
        batch.insert(
            key,
            value(shape.outbox_bytes * (event - first_event) as usize),
        );
        tree.apply_batch(batch)?;
    }
    db.flush()?;
    Ok(event as f64 / started.elapsed().as_secs_f64())
}
