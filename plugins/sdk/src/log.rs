//! Logging through the host's `weir.log` import (on wasm32) or standard error
//! (on the host, for a plugin's own tests).

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// Something looks wrong.
    Warn = 1,
    /// Worth knowing.
    Info = 2,
    /// For the plugin's author.
    Debug = 3,
    /// Very detailed.
    Trace = 4,
}

/// Logs `text` at `level`. The host keeps at most 32 lines of 1024 bytes per call.
pub fn log(level: Level, text: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        #[link(wasm_import_module = "weir")]
        unsafe extern "C" {
            #[link_name = "log"]
            fn weir_log(level: i32, ptr: *const u8, len: usize);
        }
        // SAFETY: the host only reads `len` bytes at `ptr`, which `text` owns
        // for the duration of the call.
        unsafe { weir_log(level as i32, text.as_ptr(), text.len()) }
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {text}");
}
