//! One live instance of a compiled plugin: its store (fuel, limits, logs),
//! the input buffer it lent the host, and one call per message.

use std::time::Duration;

use wasmtime::{Instance, Memory, Store, Trap, TypedFunc, WasmParams, WasmResults};
use weir_filters::FilterInput;

use crate::abi::{
    ABI_VERSION_FN, ALLOC_FN, DEALLOC_FN, DLQ_POLICY_FN, EncodeError, FILTER_FN, INIT_FN, MEMORY, dlq_decision,
    encode_failed_delivery, encode_message, filter_verdict,
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
    plugin: CompiledPlugin,
    store: Store<InstanceState>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    dealloc: TypedFunc<(i32, i32), ()>,
    entry: EntryPoint,
    buffer: Option<InputBuffer>,
    /// Host-side encoding of the current input, kept to avoid an allocation per call.
    scratch: Vec<u8>,
    last_fuel_used: u64,
}

impl PluginInstance {
    /// Instantiates `plugin` and calls `weir_abi_version` (the upload check).
    pub(crate) fn abi_version(plugin: &CompiledPlugin) -> Result<i32, CallError> {
        let mut instance = Self::instantiate(plugin)?;
        let version = instance.typed::<(), i32>(ABI_VERSION_FN)?;
        instance.refuel();
        let result = version.call(&mut instance.store, ());
        result.map_err(|e| instance.classify(e))
    }

    /// Instantiates `plugin` and passes `params` to its `weir_init`, if it has one.
    pub(crate) fn start(plugin: &CompiledPlugin, params: &str) -> Result<Self, CallError> {
        let mut instance = Self::instantiate(plugin)?;
        if plugin.inner.has_init {
            let init = instance.typed::<(i32, i32), i32>(INIT_FN)?;
            instance.refuel();
            let len = params.len().max(1);
            let ptr = instance.allocate(len)?;
            instance.write(ptr, params.as_bytes())?;
            let code = init.call(&mut instance.store, (ptr, params.len() as i32));
            let code = code.map_err(|e| instance.classify(e))?;
            let freed = instance.dealloc.call(&mut instance.store, (ptr, len as i32));
            freed.map_err(|e| instance.classify(e))?;
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
        Ok(Self {
            plugin: plugin.clone(),
            store,
            instance,
            memory,
            alloc,
            dealloc,
            entry,
            buffer: None,
            scratch: Vec::new(),
            last_fuel_used: 0,
        })
    }

    /// The compiled plugin this is an instance of.
    pub(crate) fn plugin(&self) -> &CompiledPlugin {
        &self.plugin
    }

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

    fn fuel_left(&self) -> u64 {
        self.store.get_fuel().unwrap_or(0)
    }

    /// Decides one message with a filter plugin.
    pub(crate) fn call_filter(&mut self, message: &FilterInput<'_>) -> Result<bool, CallError> {
        let EntryPoint::Filter(entry) = &self.entry else { return Err(self.wrong_kind(FILTER_FN)) };
        let entry = entry.clone();
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = encode_message(message, &mut scratch)
            .map_err(CallError::from)
            .and_then(|()| self.call_entry(&scratch, |store, ptr, len| entry.call(store, (ptr, len))));
        self.scratch = scratch;
        let value = result?;
        filter_verdict(value).ok_or(CallError::BadResult { function: FILTER_FN, value: value.into() })
    }

    /// Decides one failed delivery with a dlq-policy plugin.
    pub(crate) fn call_dlq_policy(&mut self, failed: &FailedDelivery<'_>) -> Result<RetryDecision, CallError> {
        let EntryPoint::DlqPolicy(entry) = &self.entry else { return Err(self.wrong_kind(DLQ_POLICY_FN)) };
        let entry = entry.clone();
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = encode_failed_delivery(failed, &mut scratch)
            .map_err(CallError::from)
            .and_then(|()| self.call_entry(&scratch, |store, ptr, len| entry.call(store, (ptr, len))));
        self.scratch = scratch;
        let value = result?;
        dlq_decision(value).ok_or(CallError::BadResult { function: DLQ_POLICY_FN, value })
    }

    fn wrong_kind(&self, function: &'static str) -> CallError {
        let kind = self.plugin.kind();
        CallError::Instantiation { reason: format!("a {kind} plugin has no `{function}`") }
    }

    /// One message's call: fuel to the budget, the input into the lent
    /// buffer, the entry point; records the fuel used.
    fn call_entry<R>(
        &mut self,
        input: &[u8],
        call: impl FnOnce(&mut Store<InstanceState>, i32, i32) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.refuel();
        let budget = self.plugin.limits().fuel_per_call;
        let result = self.input_buffer(input.len()).and_then(|ptr| {
            self.write(ptr, input)?;
            // input.len() fits in i32: input_buffer checked it.
            call(&mut self.store, ptr, input.len() as i32).map_err(|e| self.classify(e))
        });
        self.last_fuel_used = budget - self.fuel_left().min(budget);
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
        let capacity = len.max(MIN_INPUT_BUFFER).next_power_of_two();
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

    fn write(&mut self, ptr: i32, bytes: &[u8]) -> Result<(), CallError> {
        let size = bytes.len();
        self.memory.write(&mut self.store, ptr as u32 as usize, bytes).map_err(|_| CallError::BadAlloc { size, ptr })
    }

    fn classify(&mut self, error: wasmtime::Error) -> CallError {
        classify(&mut self.store, &self.plugin, error)
    }

    /// Fuel the last message's call used.
    pub(crate) fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used
    }

    /// Lines the guest logged since the last time they were taken.
    pub(crate) fn take_logs(&mut self) -> Vec<GuestLog> {
        self.store.data_mut().take_logs()
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
