//! Outbox delivery: the example's mails sent by `outbox send` to a real SMTP server on
//! loopback (aiosmtpd, the tests' `tests/e2e/smtp_server.py`), one at a time and
//! several at once, in the same run, so that the ratios hold on any machine.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use spark_host::{Destinations, Spark, parse_time};

use crate::measure::{Mode, example_manifest};
use crate::workload;

/// How long sending the same mails took at each concurrency.
pub struct Delivery {
    pub mails: u64,
    /// (concurrency, seconds), in the order measured.
    pub seconds: Vec<(usize, f64)>,
}

/// Sends the mails of `challenges` challenges at each of `concurrency`, each time from a
/// fresh data dir with the same outbox. `None` when there is no SMTP server to send to
/// (python3 with aiosmtpd, `pip install -r tests/requirements.txt`).
pub fn measure(
    challenges: u64,
    seed: u64,
    cache: &Path,
    concurrency: &[usize],
) -> anyhow::Result<Option<Delivery>> {
    let dir = tempfile::tempdir()?;
    let Some(server) = SmtpServer::start(&dir.path().join("maildir")) else {
        return Ok(None);
    };
    let input = workload::challenges(challenges, seed);
    let mut delivery = Delivery {
        mails: 0,
        seconds: Vec::new(),
    };
    for (run, &concurrency) in concurrency.iter().enumerate() {
        let spark = Spark::open_with_cache(dir.path().join(format!("data-{run}")), cache)?;
        let mut tenant = spark.tenant("bench")?;
        let (manifest, manifest_path) = example_manifest(Mode::Wasm)?;
        tenant.apply(&manifest, &manifest_path)?;
        let now = parse_time(workload::TODAY)?;
        tenant.ingest("challenge", &mut input.as_bytes(), now, &mut |_| {})?;
        let smtp = format!("smtp://127.0.0.1:{}", server.port).parse()?;
        let destinations = Destinations::new(&tenant.settings()?, Some(smtp), [])?;
        let started = Instant::now();
        let report = tenant.send_outbox(&destinations, concurrency, &mut |_, _| {})?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.failed == 0 && report.parked == 0 && report.sent > 0,
            "sending failed: {:?}",
            report.problems.first()
        );
        delivery.mails = report.sent;
        delivery.seconds.push((concurrency, seconds));
    }
    Ok(Some(delivery))
}

/// aiosmtpd on loopback, storing what it accepts in a maildir, until dropped.
struct SmtpServer {
    child: Child,
    port: u16,
}

impl SmtpServer {
    fn start(maildir: &Path) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(maildir)
            .arg("accept")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut ready = String::new();
        BufReader::new(child.stdout.as_mut()?)
            .read_line(&mut ready)
            .ok()?;
        let server = SmtpServer { child, port };
        (ready.trim() == "ready").then_some(server)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
