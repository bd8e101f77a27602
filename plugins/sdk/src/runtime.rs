//! The guest half of ABI v1 behind the SDK's macros: buffers handed to the
//! host, parameters, and the calls into the user's function. Not public API:
//! the macros call it, users do not.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::log::{Level, log};
use crate::message::{Decision, Failure, Message};

/// The ABI version this SDK implements.
pub const ABI_VERSION: i32 = 1;

/// Result of `weir_init` when the parameters are accepted.
const INIT_OK: i32 = 0;
/// Result of `weir_init` when the parameters are rejected.
const INIT_REJECTED: i32 = 1;
/// Result of an entry point that cannot decide (the host counts an error).
const CALL_ERROR: i32 = -1;

thread_local! {
    /// Buffers handed out by `weir_alloc`, owned here until `weir_dealloc`,
    /// so the SDK reads the host's input through safe slices.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

static PARAMS: OnceLock<String> = OnceLock::new();

/// The address a buffer is known by across the ABI (a 32-bit offset on wasm32).
fn address(buffer: &[u8]) -> i32 {
    // Truncation is intended: on wasm32 an address is 32 bits and fits exactly.
    buffer.as_ptr() as usize as u32 as i32
}

/// `weir_alloc`: a zeroed buffer of `size` bytes, kept until [`dealloc`].
pub fn alloc(size: i32) -> i32 {
    let Ok(size) = usize::try_from(size) else { return 0 };
    // At least one byte, so every live buffer has its own address.
    let buffer = vec![0; size.max(1)];
    let ptr = address(&buffer);
    BUFFERS.with_borrow_mut(|buffers| buffers.push(buffer));
    ptr
}

/// `weir_dealloc`: frees the buffer [`alloc`] returned at `ptr`.
pub fn dealloc(ptr: i32, _size: i32) {
    BUFFERS.with_borrow_mut(|buffers| buffers.retain(|buffer| address(buffer) != ptr));
}

/// Runs `f` over the first `len` bytes of the buffer at `ptr`, or returns
/// `None` if the host passed a range it did not allocate.
fn with_input<R>(ptr: i32, len: i32, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let len = usize::try_from(len).ok()?;
    BUFFERS.with_borrow(|buffers| {
        let buffer = buffers.iter().find(|buffer| address(buffer) == ptr)?;
        buffer.get(..len).map(f)
    })
}

/// `weir_init`: installs a panic hook that logs the panic, stores the
/// parameters and lets the plugin's `accept` check them.
pub fn init(ptr: i32, len: i32, accept: fn(&str) -> Result<(), String>) -> i32 {
    std::panic::set_hook(Box::new(|info| log(Level::Error, &info.to_string())));
    let params = with_input(ptr, len, |bytes| String::from_utf8_lossy(bytes).into_owned()).unwrap_or_default();
    // A second init of the same instance keeps the first parameters: the host never sends two.
    let params = PARAMS.get_or_init(|| params);
    match accept(params) {
        Ok(()) => INIT_OK,
        Err(why) => {
            log(Level::Error, &format!("parameters rejected: {why}"));
            INIT_REJECTED
        }
    }
}

/// Accepts any parameters (the default `init`).
pub fn accept_any_params(_params: &str) -> Result<(), String> {
    Ok(())
}

/// The parameter string the subscription passed (empty when none).
pub fn params() -> &'static str {
    PARAMS.get().map_or("", String::as_str)
}

/// The value of `name` in parameters written as `name=value` pairs separated
/// by commas (`min_amount=100,field=region`).
pub fn param(name: &str) -> Option<&'static str> {
    params().split(',').filter_map(|pair| pair.split_once('=')).find(|(n, _)| n.trim() == name).map(|(_, v)| v.trim())
}

/// `weir_filter`: decodes the message and asks `filter`.
pub fn filter(ptr: i32, len: i32, filter: fn(&Message<'_>) -> bool) -> i32 {
    let verdict = with_input(ptr, len, |input| Message::decode(input).map(|message| filter(&message)));
    match verdict {
        Some(Ok(deliver)) => i32::from(deliver),
        Some(Err(error)) => fail(&error.to_string()),
        None => fail("input range was not allocated by weir_alloc"),
    }
}

/// `weir_dlq_policy`: decodes the failed delivery and asks `policy`.
pub fn dlq_policy(ptr: i32, len: i32, policy: fn(&Failure<'_>) -> Decision) -> i64 {
    let decision = with_input(ptr, len, |input| Failure::decode(input).map(|failure| policy(&failure)));
    match decision {
        Some(Ok(decision)) => decision.to_abi(),
        Some(Err(error)) => fail(&error.to_string()).into(),
        None => fail("input range was not allocated by weir_alloc").into(),
    }
}

fn fail(why: &str) -> i32 {
    log(Level::Error, why);
    CALL_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::TestMessage;

    fn write(ptr: i32, bytes: &[u8]) {
        BUFFERS.with_borrow_mut(|buffers| {
            let buffer = buffers.iter_mut().find(|buffer| address(buffer) == ptr).expect("allocated");
            buffer[..bytes.len()].copy_from_slice(bytes);
        });
    }

    fn is_sh(message: &Message<'_>) -> bool {
        message.property("region") == Some("SH")
    }

    #[test]
    fn filter_reads_what_the_host_wrote() {
        let input = TestMessage::new("t").property("region", "SH").encode();
        let len = i32::try_from(input.len()).expect("small");
        let ptr = alloc(len + 16);
        write(ptr, &input);
        assert_eq!(filter(ptr, len, is_sh), 1);
        let other = TestMessage::new("t").property("region", "BJ").encode();
        write(ptr, &other);
        assert_eq!(filter(ptr, len, is_sh), 0);
        assert_eq!(filter(ptr, len + 16, is_sh), CALL_ERROR, "trailing zeros are not a message");
        assert_eq!(filter(ptr, len + 17, is_sh), CALL_ERROR, "past the buffer");
        dealloc(ptr, len + 16);
        assert_eq!(filter(ptr, len, is_sh), CALL_ERROR, "freed");
    }

    #[test]
    fn negative_sizes_are_refused() {
        assert_eq!(alloc(-1), 0);
    }
}
