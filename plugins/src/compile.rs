//! Upload-time work, done once per module: size check, validation and
//! compilation, the import and export checks of ABI v1, the manifest, and a
//! trial instantiation that asks the module its ABI version.

use std::sync::Arc;

use wasmtime::{Config, Engine, ExternType, FuncType, InstancePre, Linker, Module, ValType};

use crate::abi::{
    ABI_VERSION, ABI_VERSION_FN, ALLOC_FN, DEALLOC_FN, DLQ_POLICY_FN, FILTER_FN, IMPORT_MODULE, INIT_FN, LOG_FN, MEMORY,
};
use crate::instance::PluginInstance;
use crate::kind::PluginKind;
use crate::limits::Limits;
use crate::manifest::{Manifest, ManifestError};
use crate::sandbox::{InstanceState, linker};

/// Why a module was refused at upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The module exceeds the size limit.
    #[error("module is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid WebAssembly module (or use a disabled feature).
    #[error("not a valid WebAssembly module: {reason}")]
    Invalid {
        /// What the validator said.
        reason: String,
    },
    /// The manifest section is malformed.
    #[error("bad manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The module imports something the host does not provide.
    #[error("forbidden import `{module}.{name}`: only `weir.log(i32, i32, i32)` is provided")]
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A required export is missing.
    #[error("missing export `{name}` ({expected})")]
    MissingExport {
        /// The export.
        name: &'static str,
        /// Its expected type.
        expected: &'static str,
    },
    /// An ABI export has the wrong type.
    #[error("export `{name}` must be {expected}")]
    ExportType {
        /// The export.
        name: &'static str,
        /// Its expected type.
        expected: &'static str,
    },
    /// The module exports neither entry point, or both.
    #[error("module must export exactly one of `{FILTER_FN}` and `{DLQ_POLICY_FN}`")]
    EntryPoints,
    /// The declared kind (flag or manifest) does not match the entry point.
    #[error("declared as {declared} but exports the entry point of a {exported}")]
    KindMismatch {
        /// The kind declared.
        declared: PluginKind,
        /// The kind its exports implement.
        exported: PluginKind,
    },
    /// `weir_abi_version` returned another version.
    #[error("module implements ABI version {found}; this host implements version {ABI_VERSION}")]
    AbiVersion {
        /// What it returned.
        found: i32,
    },
    /// The trial instantiation or the `weir_abi_version` call failed.
    #[error("trial instantiation failed: {reason}")]
    Instantiation {
        /// Why.
        reason: String,
    },
}

/// The wasmtime engine and linker configured for plugins, and the limits.
/// Cheap to clone; one per broker.
#[derive(Clone)]
pub struct PluginHost {
    shared: Arc<HostShared>,
}

pub(crate) struct HostShared {
    pub(crate) engine: Engine,
    linker: Linker<InstanceState>,
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("limits", &self.shared.limits).finish_non_exhaustive()
    }
}

/// Why the host could not be created (an engine configuration wasmtime refuses).
#[derive(Debug, thiserror::Error)]
#[error("cannot configure the WebAssembly engine: {0}")]
pub struct HostError(String);

impl PluginHost {
    /// A host enforcing `limits`: fuel metering on, no WASI, only `weir.log`.
    pub fn new(limits: Limits) -> Result<Self, HostError> {
        let mut config = Config::new();
        config.consume_fuel(true).max_wasm_stack(limits.max_wasm_stack_bytes);
        let engine = Engine::new(&config).map_err(|e| HostError(e.to_string()))?;
        let linker = linker(&engine).map_err(|e| HostError(e.to_string()))?;
        Ok(Self { shared: Arc::new(HostShared { engine, linker, limits }) })
    }

    /// The limits this host enforces.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Validates and compiles `wasm` once. `kind`, when given, must match the
    /// entry point; otherwise the manifest's kind or the entry point decides.
    pub fn compile(&self, wasm: &[u8], kind: Option<PluginKind>) -> Result<CompiledPlugin, LoadError> {
        let limit = self.shared.limits.max_module_bytes;
        if wasm.len() > limit {
            return Err(LoadError::TooLarge { size: wasm.len(), limit });
        }
        let manifest = Manifest::from_module(wasm)?;
        let module = Module::new(&self.shared.engine, wasm).map_err(|e| LoadError::Invalid { reason: chain(&e) })?;
        check_imports(&module)?;
        let exported = check_exports(&module)?;
        for declared in [kind, manifest.as_ref().and_then(|m| m.kind)].into_iter().flatten() {
            if declared != exported {
                return Err(LoadError::KindMismatch { declared, exported });
            }
        }
        let has_init = module.get_export(INIT_FN).is_some();
        let instance_pre =
            self.shared.linker.instantiate_pre(&module).map_err(|e| LoadError::Instantiation { reason: chain(&e) })?;
        let plugin = CompiledPlugin {
            inner: Arc::new(PluginCode {
                host: self.shared.clone(),
                kind: exported,
                manifest,
                size: wasm.len(),
                has_init,
                instance_pre,
            }),
        };
        let found =
            PluginInstance::abi_version(&plugin).map_err(|e| LoadError::Instantiation { reason: e.to_string() })?;
        if found != ABI_VERSION {
            return Err(LoadError::AbiVersion { found });
        }
        Ok(plugin)
    }
}

/// A validated, compiled module, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct CompiledPlugin {
    pub(crate) inner: Arc<PluginCode>,
}

pub(crate) struct PluginCode {
    pub(crate) host: Arc<HostShared>,
    pub(crate) kind: PluginKind,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) size: usize,
    pub(crate) has_init: bool,
    pub(crate) instance_pre: InstancePre<InstanceState>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("kind", &self.inner.kind)
            .field("size", &self.inner.size)
            .field("manifest", &self.inner.manifest)
            .finish_non_exhaustive()
    }
}

impl CompiledPlugin {
    /// Its kind (from its entry point).
    pub fn kind(&self) -> PluginKind {
        self.inner.kind
    }

    /// Its manifest, if it has one.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.inner.manifest.as_ref()
    }

    /// The module's size in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The limits it runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.host.limits
    }

    /// Whether two handles hold the very same compiled module.
    pub fn same_as(&self, other: &CompiledPlugin) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// The error and its causes on one line.
pub(crate) fn chain(error: &wasmtime::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

fn check_imports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let allowed = import.module() == IMPORT_MODULE
            && import.name() == LOG_FN
            && matches!(import.ty(), ExternType::Func(ty) if has_type(&ty, &[ValType::I32, ValType::I32, ValType::I32], &[]));
        if !allowed {
            return Err(LoadError::ForbiddenImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks the ABI exports; returns the kind the entry point implements.
fn check_exports(module: &Module) -> Result<PluginKind, LoadError> {
    match module.get_export(MEMORY) {
        Some(ExternType::Memory(memory)) if !memory.is_64() && !memory.is_shared() => {}
        Some(_) => return Err(LoadError::ExportType { name: MEMORY, expected: "a 32-bit, unshared memory" }),
        None => return Err(LoadError::MissingExport { name: MEMORY, expected: "a memory" }),
    }
    use ValType::{I32, I64};
    check_func(module, ABI_VERSION_FN, &[], &[I32], "() -> i32", true)?;
    check_func(module, ALLOC_FN, &[I32], &[I32], "(i32) -> i32", true)?;
    check_func(module, DEALLOC_FN, &[I32, I32], &[], "(i32, i32) -> ()", true)?;
    check_func(module, INIT_FN, &[I32, I32], &[I32], "(i32, i32) -> i32", false)?;
    let filter = check_func(module, FILTER_FN, &[I32, I32], &[I32], "(i32, i32) -> i32", false)?;
    let policy = check_func(module, DLQ_POLICY_FN, &[I32, I32], &[I64], "(i32, i32) -> i64", false)?;
    match (filter, policy) {
        (true, false) => Ok(PluginKind::Filter),
        (false, true) => Ok(PluginKind::DlqPolicy),
        _ => Err(LoadError::EntryPoints),
    }
}

/// Whether the function export `name` exists; an error if it has another
/// type, or is required and missing.
fn check_func(
    module: &Module,
    name: &'static str,
    params: &[ValType],
    results: &[ValType],
    expected: &'static str,
    required: bool,
) -> Result<bool, LoadError> {
    match module.get_export(name) {
        Some(ExternType::Func(ty)) if has_type(&ty, params, results) => Ok(true),
        Some(_) => Err(LoadError::ExportType { name, expected }),
        None if required => Err(LoadError::MissingExport { name, expected }),
        None => Ok(false),
    }
}

fn has_type(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: ValType, b: &ValType| ValType::eq(&a, b);
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(a, b)| same(a, b))
        && ty.results().zip(results).all(|(a, b)| same(a, b))
}
