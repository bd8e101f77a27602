//! Fuzzes the SQL92 parser, compiler and evaluator with arbitrary text: no
//! input may panic, and an accepted expression prints back to itself.
//! `sql92/tests/properties.rs` runs the same body as a property test.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_sql92::{Filter, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data)
        && let Ok(expr) = parse(source)
    {
        let _ = Filter::compile(&expr).evaluate(&[("a", "1"), ("b", "x"), ("TAGS", "t")]);
        assert_eq!(parse(&expr.to_string()), Ok(expr));
    }
});
