//! How big a message bloom should be: the observed false-positive rate of an
//! exact condition (`region = '<absent value>'`, 64 different values) against the bytes each
//! message costs in the index, for messages of 5 properties (10 terms) and
//! of 10 properties (20 terms).
//!
//! ```text
//! cargo run --release -p weir-filters --example bloom_sizing
//! ```

use weir_filters::BloomShape;
use weir_filters::bloom::{TermHash, message_terms};

const MESSAGES: u64 = 50_000;

fn properties(i: u64, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|p| match p {
            0 => ("region".to_owned(), format!("r{}", i % 100)),
            1 => ("amount".to_owned(), (i % 1000).to_string()),
            p => (format!("p{p}"), format!("v{}", (i * 31 + p as u64) % 997)),
        })
        .collect()
}

fn main() {
    println!("{:>6} {:>6} {:>7} {:>10} {:>12} {:>12}", "props", "bytes", "hashes", "entry B", "expected", "observed");
    for props in [5usize, 10] {
        for (bytes, hashes) in [(8, 2), (16, 3), (16, 4), (32, 3), (32, 4), (32, 6), (64, 4), (64, 6)] {
            let shape = BloomShape { bytes, hashes };
            // 64 different absent terms, so no single term's bit positions decide the rate.
            let absent: Vec<_> = (0..64).map(|j| shape.probe(TermHash::pair("region", &format!("x{j}")))).collect();
            let mut hits = 0u64;
            let mut filter = vec![0u8; bytes];
            for i in 0..MESSAGES {
                filter.fill(0);
                let p = properties(i, props);
                message_terms("", p.iter().map(|(k, v)| (k.as_str(), v.as_str())), |t| shape.insert(&mut filter, t));
                hits += absent.iter().filter(|probe| probe.may_be_in(&filter)).count() as u64;
            }
            println!(
                "{props:>6} {bytes:>6} {hashes:>7} {:>10} {:>11.4}% {:>11.4}%",
                12 + bytes,
                100.0 * shape.false_positive_rate(2 * props),
                100.0 * hits as f64 / (MESSAGES * 64) as f64
            );
        }
    }
}
