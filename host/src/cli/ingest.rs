//! `spark ingest`: records in, events out.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read as _};
use std::path::PathBuf;

use super::progress::Progress;
use super::remote::{Remote, Request, segment};
use super::report;
use super::{Context, Outcome, PartlyDone};
use anyhow::Context as _;
use clap::Args;
use spark_host::{MAX_RECORD_BYTES, Problem, RunReport};

use crate::views;

/// Store JSON Lines records of a model and run each through the model's sources;
/// new events go to their handlers. Bad lines are reported and skipped.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark ingest --model challenge challenges.jsonl\n  cat changes.jsonl | spark ingest --model challenge --json\n  spark ingest --model challenge sample.jsonl --now 2024-05-10 --dry-run"
)]
pub struct Ingest {
    /// The model the records belong to (one a source is registered for).
    #[arg(long)]
    model: String,
    /// The records, one JSON object with an `id` per line; `-` or nothing for stdin.
    file: Option<PathBuf>,
    /// The logical time of the run (e.g. 2024-05-01 or 2024-05-01T12:00:00Z), which
    /// sources see instead of a clock; default: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Store nothing: run the records through the sources and handlers and show what
    /// the ingest would do (events new and duplicate, the handlers each matched, the
    /// outbox items they would make, rendered). Failed deliveries are not retried: one
    /// that would be makes the exit status 1.
    #[arg(long)]
    dry_run: bool,
}

/// Records sent to a server per request at most, and the size after which a request is
/// sent with fewer: a large input goes as several requests, each committed apart.
const CHUNK_LINES: usize = 10_000;
const CHUNK_BYTES: usize = 8 << 20;

impl Ingest {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let now_ms = report::logical_now(self.now.as_deref())?;
        let mut input: Box<dyn BufRead> = match &self.file {
            Some(path) if path.as_os_str() != "-" => Box::new(BufReader::new(
                File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?,
            )),
            _ => Box::new(io::stdin().lock()),
        };
        if let Some(remote) = context.remote() {
            if self.dry_run {
                return self.run_remote_dry(remote, &mut *input);
            }
            return self.run_remote(remote, &mut *input);
        }
        let mut tenant = context.tenant()?;
        if self.dry_run {
            let dry_run = tenant.ingest_dry_run(&self.model, &mut input, now_ms, &mut |_| {})?;
            let shown = views::ingest_dry_run(&dry_run, &tenant.settings()?.mail);
            return report::finish_dry_run(&dry_run.report, &shown, self.json);
        }
        report::run(self.json, |progress| {
            tenant.ingest(&self.model, &mut input, now_ms, progress)
        })
    }

    /// Through a server: the input is sent in requests of [`CHUNK_LINES`] records at
    /// most, each with an `Idempotency-Key` of its own (random per command, numbered
    /// per request), so that a request tried again after a broken connection is stored
    /// once; the reports are summed. Lines that cannot be records (not UTF-8, too large,
    /// not an object) are reported here with their line numbers and not sent; the
    /// server counts the others it refuses, without naming them. Without `--now`, each
    /// request runs at the server's time. A request that fails after others were stored
    /// stops the command with exit status 1, saying what was stored: ingesting the
    /// input again is safe (stored records make duplicates, not new events).
    fn run_remote(&self, remote: &Remote, input: &mut dyn BufRead) -> anyhow::Result<Outcome> {
        let mut sender = Sender {
            remote,
            ingest: self,
            // 16 random bytes: the base of the idempotency keys of this command.
            keys: crate::serve::tokens::random_hex::<16>()?,
            requests: 0,
            lines_sent: 0,
            served: RunReport::default(),
            progress: Progress::new(),
        };
        let mut chunk = Vec::new();
        let mut records = 0;
        let (refused, lines) = read_records(input, |line, number| {
            chunk.extend_from_slice(line);
            records += 1;
            if records == CHUNK_LINES || chunk.len() >= CHUNK_BYTES {
                sender.send(&chunk, number)?;
                chunk.clear();
                records = 0;
            }
            Ok(())
        })?;
        // An empty input is sent too: the server says whether the model is known.
        if records > 0 || sender.requests == 0 {
            sender.send(&chunk, lines)?;
        }
        drop(sender.progress);
        let served_failures = sender.served.has_failures();
        let mut report = sender.served;
        report.invalid += refused.invalid;
        report.problems = refused.problems;
        report::finish_served(&report, served_failures, self.json)
    }

    /// A dry run through a server: the input's records in one request (a dry run is
    /// for a sample: the server's body limit applies), lines that cannot be records
    /// reported here as in [`run_remote`](Self::run_remote).
    fn run_remote_dry(&self, remote: &Remote, input: &mut dyn BufRead) -> anyhow::Result<Outcome> {
        let mut body = Vec::new();
        let (refused, _) = read_records(input, |line, _| {
            body.extend_from_slice(line);
            Ok(())
        })?;
        let request = Request::new(
            "POST",
            remote.path(&format!("/records/{}", segment(&self.model))),
        )
        .query_opt("now", self.now.as_deref())
        .query("dry_run", "true")
        .header("Content-Type", "application/x-ndjson")
        .body(&body);
        let mut shown = remote.call(&request)?;
        let mut report = report::from_answer(&shown)?;
        report.invalid += refused.invalid;
        report.problems = refused.problems;
        shown["invalid"] = report.invalid.into();
        report::finish_dry_run(&report, &shown, self.json)
    }
}

/// The requests of one remote ingest, and what the server stored so far.
struct Sender<'a> {
    remote: &'a Remote,
    ingest: &'a Ingest,
    /// The base of the idempotency keys.
    keys: String,
    requests: u64,
    /// Input lines read up to the end of the last request sent.
    lines_sent: u64,
    /// The server's reports, summed.
    served: RunReport,
    progress: Progress,
}

impl Sender<'_> {
    /// Sends `chunk`, which ends with input line `last_line`.
    fn send(&mut self, chunk: &[u8], last_line: u64) -> anyhow::Result<()> {
        let ingest = self.ingest;
        let request = Request::new(
            "POST",
            self.remote
                .path(&format!("/records/{}", segment(&ingest.model))),
        )
        .query_opt("now", ingest.now.as_deref())
        .header(
            "Idempotency-Key",
            format!("spark-cli-{}-{}", self.keys, self.requests),
        )
        .header("Content-Type", "application/x-ndjson")
        .body(chunk);
        let answer = self
            .remote
            .call(&request)
            .and_then(|answer| report::from_answer(&answer));
        let report = match answer {
            Ok(report) => report,
            Err(error) if self.requests == 0 => return Err(error),
            Err(error) => {
                let done = &self.served;
                return Err(PartlyDone(format!(
                    "{error:#}; before it, the server stored the records of input lines 1 to \
                     {} ({} records, {} new events); ingesting the input again is safe",
                    self.lines_sent, done.records, done.new
                ))
                .into());
            }
        };
        self.requests += 1;
        self.lines_sent = last_line;
        self.served.add(&report);
        let served = &self.served;
        self.progress.show(|| {
            format!(
                "{} records, {} new events, {} duplicates",
                served.records, served.new, served.duplicates
            )
        });
        Ok(())
    }
}

/// Reads `input` to its end: each line that may be a record goes to `record`, ending
/// with `\n`, with its line number; lines that cannot be records are counted and named
/// in the report returned, as a run on a data dir names them, with the lines read.
fn read_records(
    input: &mut dyn BufRead,
    mut record: impl FnMut(&[u8], u64) -> anyhow::Result<()>,
) -> anyhow::Result<(RunReport, u64)> {
    let mut refused = RunReport::default();
    let mut line = Vec::new();
    let mut number = 0;
    while read_line(input, &mut line).context("cannot read the input")? {
        number += 1;
        match check_line(&line) {
            Ok(false) => {}
            Ok(true) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                record(&line, number)?;
            }
            Err(why) => {
                refused.invalid += 1;
                refused
                    .problems
                    .push(Problem::InvalidRecord { line: number, why });
            }
        }
    }
    Ok((refused, number))
}

/// Reads the next line of `input` into `line` (cleared first), with its `\n`: false at
/// the end. A line longer than a record may be is cut short (the rest is read and
/// dropped), as a run on a data dir reads it.
fn read_line(input: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let read = (&mut *input)
        .take(MAX_RECORD_BYTES as u64 + 1)
        .read_until(b'\n', line)?;
    if line.len() > MAX_RECORD_BYTES && !line.ends_with(b"\n") {
        // The rest of the line, dropped.
        loop {
            let (done, used) = match input.fill_buf()? {
                [] => break,
                buffer => match buffer.iter().position(|&byte| byte == b'\n') {
                    Some(end) => (true, end + 1),
                    None => (false, buffer.len()),
                },
            };
            input.consume(used);
            if done {
                break;
            }
        }
    }
    Ok(read > 0)
}

/// Whether a line is sent to the server: `Ok(true)` for what may be a record (the
/// server checks the rest), `Ok(false)` for a blank line, or why it cannot be one, in
/// the words a run on a data dir uses. Checked here so that a line the server would
/// read otherwise (a body starting with `[` is a JSON array to the API) is never sent.
fn check_line(line: &[u8]) -> Result<bool, String> {
    if line.len() > MAX_RECORD_BYTES && !line.ends_with(b"\n") {
        return Err(format!("it is larger than {MAX_RECORD_BYTES} bytes"));
    }
    let text = std::str::from_utf8(line).map_err(|_| "it is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(false);
    }
    if text.len() > MAX_RECORD_BYTES {
        return Err(format!("it is larger than {MAX_RECORD_BYTES} bytes"));
    }
    if !text.starts_with('{') {
        return Err("it is not a JSON object".to_owned());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked_as_a_run_checks_them() {
        assert_eq!(check_line(b"{\"id\": 1}\n"), Ok(true));
        assert_eq!(check_line(b"  \r\n"), Ok(false));
        assert_eq!(
            check_line(b"[{\"id\": 1}]\n"),
            Err("it is not a JSON object".to_owned())
        );
        assert_eq!(check_line(b"{\xff}\n"), Err("it is not UTF-8".to_owned()));
    }

    #[test]
    fn long_lines_are_cut_and_the_next_one_read() {
        let mut input = Vec::new();
        input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        input.extend_from_slice(b"\n{\"id\": 2}\n");
        let mut input = io::Cursor::new(input);
        let mut line = Vec::new();
        assert!(read_line(&mut input, &mut line).unwrap());
        assert!(check_line(&line).unwrap_err().contains("larger than"));
        assert!(read_line(&mut input, &mut line).unwrap());
        assert_eq!(line, b"{\"id\": 2}\n");
        assert!(!read_line(&mut input, &mut line).unwrap());
    }
}
