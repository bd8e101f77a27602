//! `weir`: the single binary operators run.

fn main() {}
