//! Timer store figures (filled in below).
fn main() {}
