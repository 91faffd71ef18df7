// A context function without descriptions, alone in its crate.
mod plain {
    #[spark_guest::context]
    fn context(record: spark_guest::Value) -> spark_guest::Value {
        record
    }
}

fn main() {}
