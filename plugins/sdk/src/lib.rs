//! The guest side of Weir's WebAssembly plugins (ABI v1, see `plugins/ABI.md`).
