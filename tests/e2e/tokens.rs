//! `spark tokens`: tokens are printed once, kept only as hashes, listed and revoked
//! by id or name, and bad requests make none.

use std::path::Path;

use serde_json::Value;

use crate::support::Spark;

/// Makes a token with `args` after `tokens add`, asserting success; returns it.
fn add(spark: &Spark, args: &[&str]) -> String {
    let mut all = vec!["tokens", "add"];
    all.extend_from_slice(args);
    let run = spark.run(&all).ok();
    let token = run.stdout.lines().last().unwrap().to_owned();
    assert!(
        is_token(&token),
        "not a token on the last line:\n{}",
        run.stdout
    );
    token
}

/// `spark_<16 lowercase hex>_<64 lowercase hex>`.
fn is_token(text: &str) -> bool {
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let parts: Vec<&str> = text.split('_').collect();
    matches!(parts.as_slice(), ["spark", id, secret] if hex(id, 16) && hex(secret, 64))
}

fn id_of(token: &str) -> &str {
    token.split('_').nth(1).unwrap()
}

fn list(spark: &Spark) -> Vec<Value> {
    spark.run(&["tokens", "list", "--json"]).ok().json_lines()
}

/// Every file under `dir`, as bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

#[test]
fn tokens_are_shown_once_and_kept_only_as_hashes() {
    let spark = Spark::new();
    // The tenant need not exist: there is no data dir at all yet.
    let ci = add(
        &spark,
        &[
            "--tenant", "acme", "--scope", "ingest", "--scope", "read", "--name", "ci",
        ],
    );
    let root = add(&spark, &["--operator", "--name", "root"]);
    assert_ne!(ci, root);

    let listed = list(&spark);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (first, second) = (&listed[0], &listed[1]);
    assert_eq!(first["id"], id_of(&ci));
    assert_eq!(first["name"], "ci");
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["scopes"], serde_json::json!(["ingest", "read"]));
    assert!(first["created_at"].is_string());
    assert_eq!(second["id"], id_of(&root));
    assert_eq!(second["tenant"], Value::Null);
    for record in &listed {
        let mut keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "id", "name", "scopes", "tenant"]);
    }

    let table = spark.run(&["tokens", "list"]).ok().stdout;
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("*operator*") && table.contains("acme"),
        "{table}"
    );
    for shown in [&table, &spark.run(&["tokens", "list", "--json"]).stdout] {
        for token in [&ci, &root] {
            let secret = token.rsplit('_').next().unwrap();
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(!shown.contains("sha256"), "{shown}");
    }

    // Nowhere in the data dir: not the token, not its secret.
    let stored = files(&spark.data_dir());
    assert!(!stored.is_empty());
    for (path, bytes) in &stored {
        let text = String::from_utf8_lossy(bytes);
        for token in [&ci, &root] {
            let secret = token.rsplit('_').next().unwrap();
            assert!(!text.contains(secret), "{path} holds a token:\n{text}");
        }
    }
}

#[test]
fn tokens_are_revoked_by_name_or_id() {
    let spark = Spark::new();
    let ci = add(
        &spark,
        &["--tenant", "acme", "--scope", "admin", "--name", "ci"],
    );
    let deploy = add(
        &spark,
        &["--tenant", "acme", "--scope", "read", "--name", "deploy"],
    );
    let root = add(&spark, &["--operator"]);

    let revoked = spark
        .run(&["tokens", "revoke", "ci", "--json"])
        .ok()
        .json_lines();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], id_of(&ci));
    assert!(revoked[0].get("sha256").is_none());
    let run = spark.run(&["tokens", "revoke", id_of(&root)]).ok();
    assert!(run.stdout.contains(id_of(&root)), "{}", run.stdout);

    let left: Vec<Value> = list(&spark)
        .iter()
        .map(|record| record["id"].clone())
        .collect();
    assert_eq!(left, [id_of(&deploy)]);
    // Gone is gone.
    spark
        .run(&["tokens", "revoke", "ci"])
        .code(2)
        .stderr_has("no token");
    spark.run(&["tokens", "revoke", id_of(&root)]).code(2);
}

#[test]
fn bad_requests_make_no_token() {
    let spark = Spark::new();
    let refused: &[&[&str]] = &[
        &["--tenant", "acme", "--scope", "write"],
        &["--tenant", "Acme", "--scope", "read"],
        &["--tenant", "../acme", "--scope", "read"],
        &["--tenant", "acme"],
        &["--scope", "read"],
        &["--operator", "--scope", "read"],
        &["--operator", "--tenant", "acme"],
        &[],
        &["--tenant", "acme", "--scope", "read", "--name", ""],
        &[
            "--tenant",
            "acme",
            "--scope",
            "read",
            "--name",
            "0123456789abcdef",
        ],
    ];
    for args in refused {
        let mut all = vec!["tokens", "add"];
        all.extend_from_slice(args);
        let run = spark.run(&all).code(2);
        assert!(!run.stdout.contains("spark_"), "{}", run.stdout);
    }
    spark.run(&["tokens", "list"]).ok();
    assert!(list(&spark).is_empty());
    spark
        .run(&["tokens", "revoke", "nobody"])
        .code(2)
        .stderr_has("nobody");
}

#[test]
fn a_name_shared_by_tokens_is_refused_for_revoke() {
    let spark = Spark::new();
    let one = add(
        &spark,
        &["--tenant", "acme", "--scope", "read", "--name", "ci"],
    );
    let two = add(
        &spark,
        &["--tenant", "other", "--scope", "read", "--name", "ci"],
    );
    spark
        .run(&["tokens", "revoke", "ci"])
        .code(2)
        .stderr_has(id_of(&one))
        .stderr_has(id_of(&two));
    assert_eq!(list(&spark).len(), 2, "nothing was revoked");
    spark.run(&["tokens", "revoke", id_of(&one)]).ok();
    spark.run(&["tokens", "revoke", "ci"]).ok();
    assert!(list(&spark).is_empty());
}
