use spark_guest::Value;

#[spark_guest::context]
fn context(record: Value) -> Vec<String> {
    let _ = record;
    Vec::new()
}

fn main() {}
