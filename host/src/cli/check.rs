//! `spark check FILE.wasm`: what a module is, or why it is not one.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use spark_host::Spark;

use super::{Context, Outcome, output};

/// Tell what a module is (source, handler, interface version), or why it is not one.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark check target/wasm32-wasip2/release/challenges_source.wasm\n  spark check handler.wasm --json"
)]
pub struct Check {
    /// The component to check.
    file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Check {
    pub fn run(self, context: &Context) -> anyhow::Result<Outcome> {
        let wasm = spark_host::read_component(&self.file)?;
        let started = Instant::now();
        let name = format!("`{}`", self.file.display());
        // The cache `module add` and the runs use, so that neither compiles it again; not
        // made for a check where there is no data dir (a check needs none).
        let cache = context.existing_cache_dir();
        let info = Spark::check_with_cache(&name, &wasm, cache)?;
        let compile_ms = started.elapsed().as_millis();
        if self.json {
            output::json_line(&json!({
                "file": self.file,
                "source": info.source,
                "handler": info.handler,
                "interface": format!("spark:engine@{}", info.interface_version),
                "imports": info.imports,
                "bytes": wasm.len(),
                "compile_ms": compile_ms,
            }))?;
        } else {
            output::line(format!(
                "{}: a {} module for spark:engine@{} ({} bytes, compiled in {compile_ms} ms)",
                self.file.display(),
                info.kind(),
                info.interface_version,
                wasm.len(),
            ))?;
            if !info.imports.is_empty() {
                output::line(format!("imports (sandboxed): {}", info.imports.join(", ")))?;
            }
        }
        Ok(Outcome::Done)
    }
}
