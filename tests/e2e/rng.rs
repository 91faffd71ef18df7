//! A small seeded random generator for tests that explore: the seed is printed, so a
//! failure can be replayed with `SPARK_TEST_SEED=<seed>`.

pub struct Rng(u64);

impl Rng {
    /// From `SPARK_TEST_SEED`, or from the clock; prints the seed either way.
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("SPARK_TEST_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: SPARK_TEST_SEED={seed}");
        Self(seed | 1)
    }

    /// xorshift64*.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `range`.
    pub fn between(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
