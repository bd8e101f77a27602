//! Arbitrary bytes into the CommitLog record decoder: it must never panic,
//! and whatever it accepts must re-encode to exactly the same bytes. The
//! first input byte chooses whether to patch the CRC field first, so the
//! fuzzer also explores the field checks behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_storage::record::{self, Check, Placement, Slot};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 12 {
        let end = (u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize).clamp(12, bytes.len());
        let crc = crc32c::crc32c(&bytes[12..end]);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(Slot::Record(view)) = record::read_slot(&bytes, Check::Crc) {
        let message = view.to_message();
        let placement = Placement {
            queue_offset: view.queue_offset(),
            commitlog_offset: view.commitlog_offset(),
            store_timestamp_ms: view.store_timestamp_ms(),
        };
        let len = record::encoded_len(&message, usize::MAX).expect("a decoded record is valid");
        let mut buf = vec![0; len];
        record::encode(&mut buf, &message, placement);
        assert_eq!(&buf[..], view.bytes());
    }
});
