//! Example Weir plugins (see `examples/`); this library is empty. Build them with
//! `cargo build --release --target wasm32-unknown-unknown --examples`.
