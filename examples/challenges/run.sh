#!/usr/bin/env bash
# The challenges example, end to end, from a fresh checkout:
#   1. builds the `spark` binary and the example's two modules from source;
#   2. applies the example's manifest to a fresh data dir (target/example-data);
#   3. ingests the sample challenges as of 2024-05-10, shows the events and the
#      mails waiting in the outbox, and sends them to .eml files;
#   4. ingests them again: every event is a duplicate (the source, whose clock is
#      `day`, is not even called), nothing is sent twice;
#   5. runs the manifest's generator (stalled challenges, a rule without code);
#   6. runs the sources again ten days later: only the events time has brought.
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building spark and the example modules"
rustup target add wasm32-wasip2
cargo build --release -p spark-host
cargo build --release --target wasm32-wasip2 -p challenges-source -p challenges-mailer

export SPARK_DATA_DIR=target/example-data
rm -rf "$SPARK_DATA_DIR"
spark=target/release/spark

step "spark apply examples/challenges/spark.toml"
$spark apply examples/challenges/spark.toml
$spark module list

step "spark ingest --model challenge examples/challenges/challenges.jsonl --now 2024-05-10"
$spark ingest --model challenge examples/challenges/challenges.jsonl --now 2024-05-10

step "spark events list --group '^challenge_ended'"
$spark events list --group '^challenge_ended'

step "spark outbox list (first 10): the mails, rendered with templates/GROUP.txt"
$spark outbox list | head -n 11

step "spark mails preview challenge_ended --context examples/challenges/sample-context.json"
$spark mails preview challenge_ended --context examples/challenges/sample-context.json

step "spark outbox send: one .eml per mail in target/example-mails"
rm -rf target/example-mails
$spark outbox send
first=$(ls target/example-mails | sort -n | head -n 1)
printf -- '--- target/example-mails/%s\n' "$first"
cat "target/example-mails/$first"

step "spark generate --now 2024-05-10: the manifest's generator, stalled challenges"
$spark generators list
$spark generate --now 2024-05-10
$spark events list --group '^challenge_stalled'

step "the same records again: only duplicates, found without calling the source (clock = day)"
$spark ingest --model challenge examples/challenges/challenges.jsonl --now 2024-05-10 --json

step "spark process-sources --now 2024-05-20: what ten days bring"
$spark process-sources --now 2024-05-20

printf '\nThe data dir is %s; try `%s events show challenge_ended_8`.\n' "$SPARK_DATA_DIR" "$spark"
