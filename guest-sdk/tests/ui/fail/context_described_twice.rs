use spark_guest::Value;

#[spark_guest::context(age = "days", "age" = "again")]
fn context(record: Value) -> Value {
    record
}

fn main() {}
