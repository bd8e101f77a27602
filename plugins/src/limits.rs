//! The sandbox's limits: what one plugin call or instance may use.

use serde::Serialize;

/// Limits applied to every plugin a [`PluginHost`](crate::PluginHost) runs.
/// The defaults are the broker's (`plugins/ABI.md`, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Largest module accepted at upload, in bytes (default 10 MiB).
    pub max_module_bytes: usize,
    /// Fuel for one call (default 10 000 000 units, about 10 ms of guest
    /// code). Set before every call, never refilled during it.
    pub fuel_per_call: u64,
    /// Largest linear memory of one instance, in bytes (default 16 MiB).
    pub max_memory_bytes: usize,
    /// Largest table of one instance, in elements (default 10 000).
    pub max_table_elements: usize,
    /// WebAssembly stack of a call, in bytes (default 512 KiB). The thread
    /// making the call needs this much stack on top of its own use.
    pub max_wasm_stack_bytes: usize,
    /// Consecutive failed calls after which a subscription's plugin is
    /// disabled (default 5).
    pub max_consecutive_failures: u32,
    /// Idle instances a subscription's plugin keeps for its next calls (default 2).
    pub max_idle_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_module_bytes: 10 << 20,
            fuel_per_call: 10_000_000,
            max_memory_bytes: 16 << 20,
            max_table_elements: 10_000,
            max_wasm_stack_bytes: 512 << 10,
            max_consecutive_failures: 5,
            max_idle_instances: 2,
        }
    }
}
