//! What a plugin instance can reach: its resource limiter and the one host
//! function, `weir.log`, whose lines are kept for the caller to read.

use wasmtime::{Caller, Engine, Linker, ResourceLimiter};

use crate::abi::{IMPORT_MODULE, LOG_FN, MEMORY};
use crate::limits::Limits;

/// Lines a call may log; later ones are dropped.
pub const MAX_LOG_LINES_PER_CALL: usize = 32;
/// Bytes kept of one log line.
pub const MAX_LOG_LINE_BYTES: usize = 1024;

/// The level of a guest's log line (`weir.log`'s first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestLogLevel {
    /// 0.
    Error,
    /// 1.
    Warn,
    /// 2.
    Info,
    /// 3.
    Debug,
    /// 4 and anything else.
    Trace,
}

impl GuestLogLevel {
    fn from_abi(level: i32) -> Self {
        match level {
            0 => Self::Error,
            1 => Self::Warn,
            2 => Self::Info,
            3 => Self::Debug,
            _ => Self::Trace,
        }
    }
}

/// One line a guest logged during a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuestLog {
    /// Its level.
    pub level: GuestLogLevel,
    /// Its text (truncated to `MAX_LOG_LINE_BYTES`, 1024 bytes).
    pub text: String,
}

/// The data a plugin's wasmtime `Store` carries.
#[derive(Debug)]
pub(crate) struct InstanceState {
    limiter: Limiter,
    /// Lines logged since the last [`InstanceState::take_logs`].
    logs: Vec<GuestLog>,
}

impl InstanceState {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            limiter: Limiter {
                max_memory_bytes: limits.max_memory_bytes,
                max_table_elements: limits.max_table_elements,
                memory_denied: false,
            },
            logs: Vec::new(),
        }
    }

    /// The limiter the store must use.
    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// Whether a memory growth was refused since the last [`InstanceState::take_logs`].
    pub(crate) fn memory_denied(&self) -> bool {
        self.limiter.memory_denied
    }

    /// The lines logged since the last [`InstanceState::take_logs`].
    pub(crate) fn logs(&self) -> &[GuestLog] {
        &self.logs
    }

    /// The lines logged so far; resets the log and the denied-growth flag.
    pub(crate) fn take_logs(&mut self) -> Vec<GuestLog> {
        self.limiter.memory_denied = false;
        std::mem::take(&mut self.logs)
    }
}

/// Caps memory and tables, and remembers a refused memory growth so a trap
/// that follows it is reported as the memory limit.
#[derive(Debug)]
struct Limiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    memory_denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory_bytes;
        self.memory_denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The linker offering exactly the documented imports.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    linker.func_wrap(IMPORT_MODULE, LOG_FN, log)?;
    Ok(linker)
}

/// `weir.log(level, ptr, len)`: keeps the line; a range outside memory traps.
fn log(mut caller: Caller<'_, InstanceState>, level: i32, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let memory = caller.get_export(MEMORY).and_then(|export| export.into_memory());
    let Some(memory) = memory else { wasmtime::bail!("weir.log called by a module without memory") };
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize);
    let Some(text) = end.and_then(|end| data.get(start..end)) else {
        wasmtime::bail!("weir.log: range {start}+{len} is outside the module's memory");
    };
    if state.logs.len() < MAX_LOG_LINES_PER_CALL {
        let kept = &text[..text.len().min(MAX_LOG_LINE_BYTES)];
        let text = String::from_utf8_lossy(kept).into_owned();
        state.logs.push(GuestLog { level: GuestLogLevel::from_abi(level), text });
    }
    Ok(())
}

/// Writes what a guest logged to the broker's log, under the plugin's name.
pub(crate) fn emit_logs(plugin: &str, logs: &[GuestLog]) {
    for log in logs {
        let text = log.text.as_str();
        match log.level {
            GuestLogLevel::Error => tracing::error!(plugin, "{text}"),
            GuestLogLevel::Warn => tracing::warn!(plugin, "{text}"),
            GuestLogLevel::Info => tracing::info!(plugin, "{text}"),
            GuestLogLevel::Debug => tracing::debug!(plugin, "{text}"),
            GuestLogLevel::Trace => tracing::trace!(plugin, "{text}"),
        }
    }
}
