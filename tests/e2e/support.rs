//! What every end-to-end test needs: a fresh data dir, the real `spark` binary run on
//! it, and readable failures.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use spark_test_guests as guests;

/// A temporary data dir and the `spark` binary pointed at it. Compiled modules are
/// cached in one directory shared by all tests, as an operator would share it.
pub struct Spark {
    dir: tempfile::TempDir,
}

impl Spark {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("cannot create a temporary directory"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file next to the data dir and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("cannot write a test file");
        path
    }

    /// Runs `spark ARGS` on this data dir.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, "")
    }

    /// Runs `spark ARGS` with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        self.run_command(self.command(args), args, input)
    }

    /// Runs `spark ARGS` with `input` on stdin and the environment variables `vars`.
    pub fn run_with_env(&self, vars: &[(&str, &str)], args: &[&str], input: &str) -> Run {
        let mut command = self.command(args);
        command.envs(vars.iter().copied());
        self.run_command(command, args, input)
    }

    /// Runs `spark ARGS` with `input` on stdin, in a process that may reserve at most
    /// `kib` KiB of address space (`ulimit -v`).
    pub fn run_with_address_space(&self, kib: u64, args: &[&str], input: &str) -> Run {
        let spark = self.command(args);
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
            .arg(spark.get_program())
            .args(spark.get_args());
        for (name, value) in spark.get_envs() {
            match value {
                Some(value) => shell.env(name, value),
                None => shell.env_remove(name),
            };
        }
        self.run_command(shell, args, input)
    }

    /// Runs `spark ARGS` with `input` on stdin, failing the test if it has not ended
    /// within `bound` (it is killed then): for runs that once went on for ever.
    pub fn run_bounded(&self, bound: Duration, args: &[&str], input: &str) -> Run {
        self.run_bounded_with_env(bound, &[], args, input)
    }

    /// [`run_bounded`](Self::run_bounded) with the environment variables `vars`.
    pub fn run_bounded_with_env(
        &self,
        bound: Duration,
        vars: &[(&str, &str)],
        args: &[&str],
        input: &str,
    ) -> Run {
        let mut child = self
            .command(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start spark");
        // Read and write while it runs, so that no full pipe can stall it or the test.
        let read = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                pipe.read_to_end(&mut text)
                    .expect("cannot read spark's output");
                String::from_utf8_lossy(&text).into_owned()
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("stdout is piped")));
        let stderr = read(Box::new(child.stderr.take().expect("stderr is piped")));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_owned();
        // A run that stops reading early (an error) closes the pipe: not the test's error.
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot wait for spark") {
                break status;
            }
            if started.elapsed() > bound {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`spark {}` had not ended after {bound:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            args: args.join(" "),
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().expect("the reader does not panic"),
            stderr: stderr.join().expect("the reader does not panic"),
        }
    }

    fn run_command(&self, mut command: Command, args: &[&str], input: &str) -> Run {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start spark");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("cannot write to spark's stdin");
        let output = child.wait_with_output().expect("cannot wait for spark");
        Run {
            args: args.join(" "),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The command, for tests that need to control the process themselves.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spark"));
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env("SPARK_CACHE_DIR", cache_dir())
            .env_remove("SPARK_TENANT")
            .env_remove("SPARK_DATA_DIR")
            .env_remove("SPARK_OUTPUT_SECRET")
            .env_remove("SPARK_SMTP_TLS")
            .env_remove("SPARK_SMTP_USERNAME")
            .env_remove("SPARK_SMTP_PASSWORD")
            .env_remove("SPARK_SMTP_CA_FILE")
            .env_remove("SPARK_DISK_RESERVE")
            // A developer's own server must never receive the tests' commands.
            .env_remove("SPARK_SERVER")
            .env_remove("SPARK_TOKEN")
            .env_remove("SPARK_LISTEN")
            .env_remove("RUST_LOG");
        command
    }

    /// A data dir set up by a manifest: the recorder as the source of `thing`, the
    /// component `wasm` as the handler `name` of `^job`, and `retry` (a `[retry]` table,
    /// or nothing).
    pub fn with_job_handler(name: &str, wasm: &str, retry: &str) -> Self {
        let spark = Self::new();
        let manifest = spark.write(
            "spark.toml",
            format!(
                "{retry}\n\n[[modules]]\nname = \"source\"\npath = {:?}\nsources = [\"thing\"]\n\n\
                 [[modules]]\nname = {name:?}\npath = {wasm:?}\nhandlers = [\"^job\"]\n",
                guests::RECORDER
            ),
        );
        spark.run(&["apply", manifest.to_str().unwrap()]).ok();
        spark
    }

    /// Registers a module, asserting success.
    pub fn add(&self, wasm: &str, name: &str, registration: &[&str]) {
        let mut args = vec!["module", "add", wasm, "--name", name];
        args.extend_from_slice(registration);
        self.run(&args).ok();
    }

    /// The ledger, as `events list --json` prints it.
    pub fn events(&self) -> Vec<Value> {
        self.run(&["events", "list", "--json"]).ok().json_lines()
    }

    /// The keys in the ledger, in key order.
    pub fn event_keys(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|event| event["key"].as_str().expect("key is text").to_owned())
            .collect()
    }

    /// The outbox, as `outbox list --json` prints it.
    pub fn outbox(&self) -> Vec<Value> {
        self.run(&["outbox", "list", "--json"]).ok().json_lines()
    }

    /// The dead letters, as `dead list --json` prints them.
    pub fn dead(&self) -> Vec<Value> {
        self.run(&["dead", "list", "--json"]).ok().json_lines()
    }
}

/// Compiled modules shared by all tests (the cache is keyed by content and engine).
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("spark-module-cache")
}

/// A finished `spark` run.
pub struct Run {
    args: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit status 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        self.code(0)
    }

    /// Asserts an exit status, showing everything the run printed otherwise.
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code, expected,
            "`spark {}` exited with {} (expected {expected})\n--- stdout\n{}--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Stdout as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }

    /// Stdout as JSON Lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
            })
            .collect()
    }

    /// Asserts that stderr mentions `text`.
    #[track_caller]
    pub fn stderr_has(self, text: &str) -> Self {
        assert!(
            self.stderr.contains(text),
            "stderr of `spark {}` lacks {text:?}:\n{}",
            self.args,
            self.stderr
        );
        self
    }
}

/// `len` letters and digits that look random, the same for the same `seed`: padding
/// that the store's compression cannot shrink, for tests that need a run to write a
/// given amount (a disk to fill, a fault to strike).
pub fn noise(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // xorshift64*, seeded away from zero.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
            char::from(ALPHABET[(value % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

/// One JSON Lines record per value.
pub fn jsonl(records: &[Value]) -> String {
    records.iter().map(|record| format!("{record}\n")).collect()
}

/// The integer field `name` of a JSON summary.
#[track_caller]
pub fn count(summary: &Value, name: &str) -> u64 {
    summary[name]
        .as_u64()
        .unwrap_or_else(|| panic!("`{name}` is not an integer in {summary}"))
}

/// A test server of this directory (`smtp_server.py`, `http_server.py`), run with
/// python3 until dropped: a real server on loopback, as a user's would be.
pub struct PythonServer {
    child: Child,
}

impl PythonServer {
    /// Starts `script` with `args` and waits for the line it prints once it listens,
    /// `ready`, perhaps followed by what the test needs to know (returned).
    pub fn start(script: &str, args: &[&str]) -> (Self, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/e2e")
            .join(script);
        let mut child = Command::new("python3")
            .arg(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the server tests");
        let mut ready = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout is piped"))
            .read_line(&mut ready)
            .expect("cannot read the test server's output");
        let Some(rest) = ready.trim().strip_prefix("ready") else {
            panic!("{script} did not start (is tests/requirements.txt installed?): {ready:?}");
        };
        let rest = rest.trim().to_owned();
        (Self { child }, rest)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The words of a shell command line as a shell splits them (single quotes keep
/// spaces): what README snippets are run with.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut started) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => (quoted, started) = (!quoted, true),
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}
