use spark_guest::Event;

struct Module;

impl Module {
    #[spark_guest::source]
    fn events(&self, record: serde_json::Value) -> Vec<Event> {
        let _ = record;
        Vec::new()
    }
}

fn main() {}
