use spark_guest::Value;

#[spark_guest::context(age_days)]
fn context(record: Value) -> Value {
    record
}

fn main() {}
