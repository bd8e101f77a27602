//! One live instance of a compiled plugin: its store (fuel, limits, logs),
//! the input buffer it lent the host, and one call per message.

use std::time::Duration;

use wasmtime::{Instance, Memory, Store, Trap, TypedFunc, WasmParams, WasmResults};
use weir_filters::FilterInput;

use crate::abi::{
    ABI_VERSION_FN, ALLOC_FN, DEALLOC_FN, DLQ_POLICY_FN, EncodeError, FILTER_FN, INIT_FN, LenCounter, MEMORY,
    SliceSink, dlq_decision, encode_failed_delivery, encode_message, filter_verdict,
};
use crate::compile::{CompiledPlugin, chain};
use crate::dlq::{FailedDelivery, RetryDecision};
use crate::kind::PluginKind;
use crate::sandbox::{GuestLog, GuestLogLevel, InstanceState};

/// The smallest input buffer the host asks for, so small messages reuse one.
const MIN_INPUT_BUFFER: usize = 1024;

/// Why one plugin call gave no decision. The call's instance is discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The call used its whole fuel budget (an endless or too long computation).
    #[error("CPU budget exhausted ({budget} fuel units)")]
    BudgetExhausted {
        /// The budget.
        budget: u64,
    },
    /// The guest trapped after the host refused to grow its memory.
    #[error("memory limit of {limit} bytes reached")]
    MemoryLimit {
        /// The limit.
        limit: usize,
    },
    /// The guest's stack overflowed (deep recursion).
    #[error("stack overflow (limit {limit} bytes)")]
    StackOverflow {
        /// The stack limit.
        limit: usize,
    },
    /// The guest trapped (a panic, an out-of-bounds access, `unreachable`, ...).
    #[error("trap: {message}")]
    Trap {
        /// The trap, and the last error the guest logged (a Rust panic's message).
        message: String,
    },
    /// An entry point returned a value ABI v1 does not define.
    #[error("`{function}` returned {value}, which ABI v1 does not define")]
    BadResult {
        /// The export.
        function: &'static str,
        /// What it returned.
        value: i64,
    },
    /// `weir_alloc` failed or returned a range outside the module's memory.
    #[error("`weir_alloc({size})` returned {ptr}, not a usable buffer")]
    BadAlloc {
        /// The size asked for.
        size: usize,
        /// What it returned.
        ptr: i32,
    },
    /// `weir_init` rejected the subscription's parameters.
    #[error("`weir_init` rejected the parameters {params:?} (returned {code})")]
    ParamsRejected {
        /// The parameters.
        params: String,
        /// What it returned.
        code: i32,
    },
    /// The module could not be instantiated (start function, memory limit, ...).
    #[error("instantiation failed: {reason}")]
    Instantiation {
        /// Why.
        reason: String,
    },
    /// The message is too large for the ABI's 32-bit lengths.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The plugin is disabled for this subscription after repeated failures.
    #[error("disabled: {reason}")]
    Disabled {
        /// Why (the failure count and the last failure).
        reason: String,
    },
    /// The plugin was removed from the registry.
    #[error("plugin `{name}` was removed")]
    Removed {
        /// Its name.
        name: String,
    },
}

/// The buffer the guest lent for inputs, reused while inputs fit.
#[derive(Debug, Clone, Copy)]
struct InputBuffer {
    ptr: i32,
    capacity: usize,
}

enum EntryPoint {
    Filter(TypedFunc<(i32, i32), i32>),
    DlqPolicy(TypedFunc<(i32, i32), i64>),
}

/// An instantiated plugin, used by one thread at a time.
pub(crate) struct PluginInstance {
    entry: EntryPoint,
    core: InstanceCore,
}

/// Everything of an instance but its entry point, so a call borrows the
/// entry point and the store separately.
struct InstanceCore {
    plugin: CompiledPlugin,
    store: Store<InstanceState>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    dealloc: TypedFunc<(i32, i32), ()>,
    buffer: Option<InputBuffer>,
    last_fuel_used: u64,
}

impl PluginInstance {
    /// Instantiates `plugin` and calls `weir_abi_version` (the upload check).
    pub(crate) fn abi_version(plugin: &CompiledPlugin) -> Result<i32, CallError> {
        let mut instance = Self::instantiate(plugin)?;
        let core = &mut instance.core;
        let version = core.typed::<(), i32>(ABI_VERSION_FN)?;
        core.refuel();
        let result = version.call(&mut core.store, ());
        result.map_err(|e| core.classify(e))
    }

    /// Instantiates `plugin` and passes `params` to its `weir_init`, if it has one.
    pub(crate) fn start(plugin: &CompiledPlugin, params: &str) -> Result<Self, CallError> {
        let mut instance = Self::instantiate(plugin)?;
        if plugin.inner.has_init {
            let core = &mut instance.core;
            let init = core.typed::<(i32, i32), i32>(INIT_FN)?;
            core.refuel();
            let len = params.len().max(1);
            let ptr = core.allocate(len)?;
            let size = params.len();
            core.memory
                .write(&mut core.store, ptr as u32 as usize, params.as_bytes())
                .map_err(|_| CallError::BadAlloc { size, ptr })?;
            let code = init.call(&mut core.store, (ptr, size as i32)).map_err(|e| core.classify(e))?;
            core.dealloc.call(&mut core.store, (ptr, len as i32)).map_err(|e| core.classify(e))?;
            if code != 0 {
                return Err(CallError::ParamsRejected { params: params.to_owned(), code });
            }
        }
        Ok(instance)
    }

    fn instantiate(plugin: &CompiledPlugin) -> Result<Self, CallError> {
        let code = &plugin.inner;
        let mut store = Store::new(&code.host.engine, InstanceState::new(&code.host.limits));
        store.limiter(|state| state.limiter());
        let instantiation = |reason| CallError::Instantiation { reason };
        store.set_fuel(code.host.limits.fuel_per_call).map_err(|e| instantiation(chain(&e)))?;
        let instance =
            code.instance_pre.instantiate(&mut store).map_err(|e| match classify(&mut store, plugin, e) {
                CallError::Trap { message } => instantiation(message),
                other => other,
            })?;
        let memory = instance.get_memory(&mut store, MEMORY);
        let memory = memory.ok_or_else(|| instantiation(format!("export `{MEMORY}` is missing")))?;
        let typed_error = |e: wasmtime::Error| instantiation(chain(&e));
        let alloc = instance.get_typed_func(&mut store, ALLOC_FN).map_err(typed_error)?;
        let dealloc = instance.get_typed_func(&mut store, DEALLOC_FN).map_err(typed_error)?;
        let entry = match code.kind {
            PluginKind::Filter => {
                EntryPoint::Filter(instance.get_typed_func(&mut store, FILTER_FN).map_err(typed_error)?)
            }
            PluginKind::DlqPolicy => {
                EntryPoint::DlqPolicy(instance.get_typed_func(&mut store, DLQ_POLICY_FN).map_err(typed_error)?)
            }
        };
        let core = InstanceCore {
            plugin: plugin.clone(),
            store,
            instance,
            memory,
            alloc,
            dealloc,
            buffer: None,
            last_fuel_used: 0,
        };
        Ok(Self { entry, core })
    }

    /// The compiled plugin this is an instance of.
    pub(crate) fn plugin(&self) -> &CompiledPlugin {
        &self.core.plugin
    }

    /// Decides one message with a filter plugin.
    pub(crate) fn call_filter(&mut self, message: &FilterInput<'_>) -> Result<bool, CallError> {
        let EntryPoint::Filter(entry) = &self.entry else { return Err(wrong_kind(&self.core.plugin, FILTER_FN)) };
        let encode = |out: &mut SliceSink<'_>| encode_message(message, out);
        let len = encoded_len(|out| encode_message(message, out))?;
        let value = self.core.call_entry(len, encode, |store, ptr, len| entry.call(store, (ptr, len)))?;
        filter_verdict(value).ok_or(CallError::BadResult { function: FILTER_FN, value: value.into() })
    }

    /// Decides one failed delivery with a dlq-policy plugin.
    pub(crate) fn call_dlq_policy(&mut self, failed: &FailedDelivery<'_>) -> Result<RetryDecision, CallError> {
        let EntryPoint::DlqPolicy(entry) = &self.entry else {
            return Err(wrong_kind(&self.core.plugin, DLQ_POLICY_FN));
        };
        let encode = |out: &mut SliceSink<'_>| encode_failed_delivery(failed, out);
        let len = encoded_len(|out| encode_failed_delivery(failed, out))?;
        let value = self.core.call_entry(len, encode, |store, ptr, len| entry.call(store, (ptr, len)))?;
        dlq_decision(value).ok_or(CallError::BadResult { function: DLQ_POLICY_FN, value })
    }

    /// Fuel the last message's call used.
    pub(crate) fn last_fuel_used(&self) -> u64 {
        self.core.last_fuel_used
    }

    /// Lines the guest logged since the last time they were taken.
    pub(crate) fn take_logs(&mut self) -> Vec<GuestLog> {
        self.core.store.data_mut().take_logs()
    }
}

/// The input buffer to ask for when `len` bytes do not fit the current one: the
/// next power of two from [`MIN_INPUT_BUFFER`], or exactly `len` when rounding
/// up would pass the ABI's `i32` sizes (an input of 1 GiB + 1 byte still fits).
fn buffer_capacity(len: usize) -> usize {
    let limit = i32::MAX as usize;
    len.max(MIN_INPUT_BUFFER).checked_next_power_of_two().filter(|capacity| *capacity <= limit).unwrap_or(len)
}

/// The length of an encoding.
fn encoded_len(encode: impl FnOnce(&mut LenCounter) -> Result<(), EncodeError>) -> Result<usize, EncodeError> {
    let mut counter = LenCounter::default();
    encode(&mut counter)?;
    Ok(counter.0)
}

fn wrong_kind(plugin: &CompiledPlugin, function: &'static str) -> CallError {
    let kind = plugin.kind();
    CallError::Instantiation { reason: format!("a {kind} plugin has no `{function}`") }
}

impl InstanceCore {
    fn typed<P: WasmParams, R: WasmResults>(&mut self, name: &'static str) -> Result<TypedFunc<P, R>, CallError> {
        let func = self.instance.get_typed_func(&mut self.store, name);
        func.map_err(|e| CallError::Instantiation { reason: chain(&e) })
    }

    /// Sets the fuel to one call's budget (never more).
    fn refuel(&mut self) {
        let budget = self.plugin.limits().fuel_per_call;
        // Fuel metering is always on in the host's engine, so this cannot fail.
        let _ = self.store.set_fuel(budget);
    }

    /// One message's call: fuel to the budget, the input encoded straight
    /// into the lent buffer, the entry point; records the fuel used.
    fn call_entry<R>(
        &mut self,
        len: usize,
        encode: impl FnOnce(&mut SliceSink<'_>) -> Result<(), EncodeError>,
        call: impl FnOnce(&mut Store<InstanceState>, i32, i32) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.refuel();
        let budget = self.plugin.limits().fuel_per_call;
        let result = self.input_buffer(len).and_then(|ptr| {
            let start = ptr as u32 as usize;
            let target = self.memory.data_mut(&mut self.store).get_mut(start..start + len);
            encode(&mut SliceSink::new(target.ok_or(CallError::BadAlloc { size: len, ptr })?))?;
            // `len` fits in i32: input_buffer allocated it.
            call(&mut self.store, ptr, len as i32).map_err(|e| self.classify(e))
        });
        self.last_fuel_used = budget - self.store.get_fuel().unwrap_or(0).min(budget);
        result
    }

    /// The lent buffer, replaced by a larger one when `len` does not fit.
    fn input_buffer(&mut self, len: usize) -> Result<i32, CallError> {
        if let Some(buffer) = self.buffer
            && buffer.capacity >= len
        {
            return Ok(buffer.ptr);
        }
        if let Some(old) = self.buffer.take() {
            let freed = self.dealloc.call(&mut self.store, (old.ptr, old.capacity as i32));
            freed.map_err(|e| self.classify(e))?;
        }
        let capacity = buffer_capacity(len);
        let ptr = self.allocate(capacity)?;
        self.buffer = Some(InputBuffer { ptr, capacity });
        Ok(ptr)
    }

    /// `weir_alloc(size)`, checked to return a range inside memory.
    fn allocate(&mut self, size: usize) -> Result<i32, CallError> {
        let size32 = i32::try_from(size).map_err(|_| EncodeError { len: size })?;
        let ptr = self.alloc.call(&mut self.store, size32).map_err(|e| self.classify(e))?;
        let end = (ptr as u32 as usize).checked_add(size);
        if ptr == 0 || end.is_none_or(|end| end > self.memory.data_size(&self.store)) {
            return Err(CallError::BadAlloc { size, ptr });
        }
        Ok(ptr)
    }

    fn classify(&mut self, error: wasmtime::Error) -> CallError {
        classify(&mut self.store, &self.plugin, error)
    }
}

/// Turns what wasmtime reported into the reason the call failed.
fn classify(store: &mut Store<InstanceState>, plugin: &CompiledPlugin, error: wasmtime::Error) -> CallError {
    let limits = plugin.limits();
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => return CallError::BudgetExhausted { budget: limits.fuel_per_call },
        Some(Trap::StackOverflow) => return CallError::StackOverflow { limit: limits.max_wasm_stack_bytes },
        _ => {}
    }
    let state = store.data();
    if state.memory_denied() {
        return CallError::MemoryLimit { limit: limits.max_memory_bytes };
    }
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => chain(&error),
    };
    if let Some(last) = state.logs().iter().rev().find(|log| log.level == GuestLogLevel::Error) {
        message.push_str("; the guest logged: ");
        message.push_str(&last.text);
    }
    CallError::Trap { message }
}

/// How long and how much fuel a call took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallCost {
    /// Wall time of the call, including instantiation when it needed a new instance.
    pub elapsed: Duration,
    /// Fuel units the guest consumed.
    pub fuel: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_capacities_round_up_within_the_abi() {
        assert_eq!(buffer_capacity(0), MIN_INPUT_BUFFER);
        assert_eq!(buffer_capacity(MIN_INPUT_BUFFER + 1), 2 * MIN_INPUT_BUFFER);
        assert_eq!(buffer_capacity(1 << 30), 1 << 30);
        assert_eq!(buffer_capacity((1 << 30) + 1), (1 << 30) + 1, "2 GiB would not fit an i32");
        assert_eq!(buffer_capacity(i32::MAX as usize), i32::MAX as usize);
        // Past i32 the size is passed on as is, and `allocate` refuses it as too large.
        assert_eq!(buffer_capacity(usize::MAX), usize::MAX);
    }
}
