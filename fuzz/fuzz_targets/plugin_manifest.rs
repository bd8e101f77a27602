//! Plugin manifests and module headers from untrusted uploads: parsing never
//! panics, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_plugins::Manifest;

fuzz_target!(|data: &[u8]| {
    let _ = Manifest::parse(data);
    let _ = Manifest::from_module(data);
});
