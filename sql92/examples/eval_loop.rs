//! Evaluates `region = 'SH' AND amount > 100` N times (first argument,
//! default 1,000,000), for counting instructions per evaluation under
//! `valgrind --tool=callgrind`: run with two values of N and divide the
//! difference in instructions by the difference in N.

use std::hint::black_box;

use weir_sql92::{Filter, Truth};

fn main() {
    let iterations: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let filter = Filter::parse("region = 'SH' AND amount > 100").expect("valid expression");
    let message = [("TAGS", "order"), ("KEYS", "o-1"), ("channel", "app"), ("region", "SH"), ("amount", "150")];
    let mut delivered = 0u64;
    for _ in 0..iterations {
        if filter.evaluate(black_box(&message)) == Ok(Truth::True) {
            delivered += 1;
        }
    }
    println!("{delivered} of {iterations} delivered");
}
