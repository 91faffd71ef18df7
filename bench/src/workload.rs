//! The challenges workload, generated from a seed: N challenges, 5% inactive, started
//! 0 to 10 days before today, ending 5 days before to 6 days after it, with 0 to 3
//! donations: about 2.3 events per challenge under the django-spark README rules.

/// The run's logical day.
pub const TODAY: &str = "2024-05-10";

/// JSON Lines of `count` challenges, the same for the same seed.
pub fn challenges(count: u64, seed: u64) -> String {
    let today: jiff::civil::Date = TODAY.parse().expect("a valid date");
    let mut rng = SplitMix(seed);
    let mut out = String::with_capacity(count as usize * 200);
    for id in 1..=count {
        let active = rng.below(100) >= 5;
        let start = today - jiff::Span::new().days(rng.below(11) as i64);
        let end = today + jiff::Span::new().days(rng.below(12) as i64 - 5);
        let donations = rng.below(4);
        let record = serde_json::json!({
            "id": id,
            "title": format!("Challenge {id}"),
            "owner": { "name": format!("Owner {}", id % 997), "email": format!("owner{}@example.com", id % 997) },
            "is_active": active,
            "start_date": start.to_string(),
            "end_date": end.to_string(),
            "donations": donations,
        });
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}

/// splitmix64: tiny and deterministic.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
