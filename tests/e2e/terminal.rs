//! What only a terminal gets: a progress line while `apply` compiles, which a pipe
//! never sees. The terminal is script(1)'s pseudo-terminal.

use std::process::Command;

use crate::support::{Spark, guests};

fn write_manifest(spark: &Spark) -> String {
    let manifest = spark.write(
        "spark.toml",
        format!(
            "[[modules]]\nname = \"source\"\npath = {:?}\nsources = [\"thing\"]\n\n\
             [[modules]]\nname = \"broken\"\npath = {:?}\nhandlers = [\"^job\"]\n",
            guests::RECORDER,
            guests::HOSTILE
        ),
    );
    manifest.to_str().unwrap().to_owned()
}

#[test]
fn apply_says_which_module_it_compiles_on_a_terminal_and_nothing_in_a_pipe() {
    let spark = Spark::new();
    let manifest = write_manifest(&spark);
    // A cache of its own, empty: each module is compiled, which takes long enough to
    // be shown.
    let cache = spark.data_dir().with_file_name("fresh-cache");
    let command = format!(
        "SPARK_CACHE_DIR={} {} --data-dir {} apply {manifest}",
        cache.display(),
        env!("CARGO_BIN_EXE_spark"),
        spark.data_dir().display()
    );
    let typescript = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .output()
        .expect("script(1) is needed for the terminal tests");
    let shown = String::from_utf8_lossy(&typescript.stdout);
    assert!(typescript.status.success(), "{shown}");
    assert!(
        shown.contains("checking and compiling module `source` (1 of 2)")
            || shown.contains("checking and compiling module `broken` (2 of 2)"),
        "no progress on the terminal:\n{shown}"
    );
    assert!(shown.contains("tenant `default` matches"), "{shown}");

    let piped = Spark::new();
    let run = piped.run(&["apply", &write_manifest(&piped)]).ok();
    assert!(
        !run.stderr.contains("checking and compiling"),
        "progress in a pipe: {}",
        run.stderr
    );
}
