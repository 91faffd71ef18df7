//! A tenant's flusher: a thread of its own that answers a group of requests once what
//! the group wrote is durable, so that the tenant's owner runs the next group while the
//! disk syncs the last one, and one sync answers every group that waited for it.
//!
//! The owner hands it each group's [`Flush`] with the group's answers; it runs the
//! latest flush of those waiting (which covers the writes of the others) and sends
//! the answers, or the flush's error to each. Nothing else waits for it: what a group
//! wrote may be read, and its mails sent (a send makes its items durable first),
//! before its answers go out, but no client hears of a write that a crash could lose.

use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use spark_host::{Error, Flush, IngestAnswer};
use tokio::sync::oneshot;

use super::owners::again;

/// Where an ingest request's answer goes.
pub type Reply = oneshot::Sender<Result<IngestAnswer, Error>>;

/// A group's answers, waiting for its flush.
struct Waiting {
    flush: Flush,
    answers: Vec<(Reply, Result<IngestAnswer, Error>)>,
}

/// A running flusher; answers what waits, then stops, when dropped.
pub struct Flusher {
    groups: Option<mpsc::Sender<Waiting>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flusher of `tenant`.
    pub fn start(tenant: &str) -> std::io::Result<Self> {
        let (groups, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("flusher {tenant}"))
            .spawn(move || run(&queue))?;
        Ok(Self {
            groups: Some(groups),
            thread: Some(thread),
        })
    }

    /// Sends `answers` once `flush` (or a later one) has run.
    pub fn answer_after(&self, flush: Flush, answers: Vec<(Reply, Result<IngestAnswer, Error>)>) {
        if let Some(groups) = &self.groups {
            // A flusher that stopped (it cannot, but for a panic) drops the answers:
            // their requests are told that the owner stopped.
            let _ = groups.send(Waiting { flush, answers });
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.groups.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a flusher thread panicked");
        }
    }
}

fn run(queue: &Receiver<Waiting>) {
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        waiting.extend(queue.try_iter());
        let (flushes, answers): (Vec<Flush>, Vec<_>) = waiting
            .into_iter()
            .map(|group| (group.flush, group.answers))
            .unzip();
        // The latest covers the writes of the others.
        let flushed = flushes.into_iter().last().map_or(Ok(()), Flush::run);
        // Each request gets the error (an `Error` is not `Clone`).
        let failed = flushed.as_ref().err().map(again);
        for (reply, answer) in answers.into_iter().flatten() {
            let answer = match &failed {
                None => answer,
                Some(error) => Err(error()),
            };
            let _ = reply.send(answer);
        }
        if let Err(error) = flushed {
            tracing::error!("a group of requests was not made durable: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use spark_host::RunReport;
    use tokio::sync::oneshot::error::TryRecvError;

    use super::*;

    type Answered = oneshot::Receiver<Result<IngestAnswer, Error>>;

    /// Hands `flusher` a group of one request answered `records`, made durable by
    /// `flush`.
    fn group(flusher: &Flusher, records: u64, flush: Flush) -> Answered {
        let (reply, answered) = oneshot::channel();
        let report = RunReport {
            records,
            ..RunReport::default()
        };
        flusher.answer_after(flush, vec![(reply, Ok(IngestAnswer::Ran(report)))]);
        answered
    }

    /// The answer, once it comes.
    fn answer(answered: Answered) -> Result<IngestAnswer, Error> {
        let (done, came) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(answered.blocking_recv());
        });
        came.recv_timeout(Duration::from_secs(60))
            .expect("answered in time")
            .expect("answered, not dropped")
    }

    #[test]
    fn answers_go_once_flushed_and_one_flush_answers_the_groups_that_waited() {
        let flusher = Flusher::start("t").unwrap();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let noting = |n: usize| {
            let ran = Arc::clone(&ran);
            Flush::new(move || {
                ran.lock().unwrap().push(n);
                Ok(())
            })
        };
        // The first flush starts, and waits until the test lets it go on.
        let (started, has_started) = mpsc::channel();
        let (go_on, gate) = mpsc::channel::<()>();
        let first = {
            let ran = Arc::clone(&ran);
            Flush::new(move || {
                started.send(()).unwrap();
                gate.recv().unwrap();
                ran.lock().unwrap().push(0);
                Ok(())
            })
        };
        let mut answered = vec![group(&flusher, 0, first)];
        has_started.recv().unwrap();
        answered.push(group(&flusher, 1, noting(1)));
        answered.push(group(&flusher, 2, noting(2)));
        // Not flushed yet: not answered.
        assert!(matches!(answered[0].try_recv(), Err(TryRecvError::Empty)));

        go_on.send(()).unwrap();
        for (n, answered) in answered.into_iter().enumerate() {
            match answer(answered) {
                Ok(IngestAnswer::Ran(report)) => assert_eq!(report.records, n as u64),
                other => panic!("{other:?}"),
            }
        }
        // The two that waited together: one flush, the later one.
        assert_eq!(*ran.lock().unwrap(), [0, 2]);
    }

    #[test]
    fn a_flush_that_fails_fails_every_answer_waiting_for_it() {
        let flusher = Flusher::start("t").unwrap();
        let failing = || Flush::new(|| Err(Error::Storage("the disk went away".to_owned())));
        let answered = [group(&flusher, 1, failing()), group(&flusher, 2, failing())];
        for answered in answered {
            match answer(answered) {
                Err(error) => assert!(error.to_string().contains("the disk went away"), "{error}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
