#[spark_guest::source]
struct Challenge;

fn main() {}
