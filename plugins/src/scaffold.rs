//! Generating a ready-to-build plugin crate (`weir plugin new`): Cargo.toml,
//! `src/lib.rs` with a working example and its test, a README.
//!
//! The crate depends on the SDK by path: by default the `plugins/sdk` folder
//! of the Weir checkout this library was built from
//! ([`bundled_sdk_path`]), so a fresh clone builds plugins offline. It builds
//! with `cargo build --target wasm32-unknown-unknown --release` and tests
//! with `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::kind::PluginKind;
use crate::manifest::check_name;

/// Why a crate could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name is not a valid plugin name.
    #[error("invalid plugin name {name:?}: 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The target folder exists.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct NewPlugin<'a> {
    /// The plugin's (and crate's) name.
    pub name: &'a str,
    /// Filter or dlq-policy.
    pub kind: PluginKind,
    /// The folder to create the crate in (the crate is `<dir>/<name>`).
    pub dir: &'a Path,
    /// The SDK crate's folder.
    pub sdk_path: &'a Path,
}

/// The SDK of the Weir checkout this library was built from.
pub fn bundled_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk")
}

/// Creates `<dir>/<name>/` with a plugin crate; returns its path.
pub fn scaffold(new: NewPlugin<'_>) -> Result<PathBuf, ScaffoldError> {
    check_name(new.name).map_err(|_| ScaffoldError::InvalidName { name: new.name.to_owned() })?;
    let root = new.dir.join(new.name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let sdk = new.sdk_path.canonicalize().unwrap_or_else(|_| new.sdk_path.to_owned());
    let files = [
        ("Cargo.toml", cargo_toml(new.name, &sdk)),
        ("src/lib.rs", lib_rs(new.name, new.kind)),
        ("README.md", readme(new.name, new.kind)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (relative, text) in files {
        let path = root.join(relative);
        let parent = path.parent().unwrap_or(&root);
        fs::create_dir_all(parent)
            .and_then(|()| fs::write(&path, text))
            .map_err(|source| ScaffoldError::Io { path, source })?;
    }
    Ok(root)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    // A TOML basic string: escape backslashes and quotes of the path.
    let sdk = sdk.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-plugin-sdk = {{ path = "{sdk}" }}

# Small, self-contained modules: the manifest section survives stripping.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# Not part of any enclosing workspace.
[workspace]
"#
    )
}

fn lib_rs(name: &str, kind: PluginKind) -> String {
    match kind {
        PluginKind::Filter => format!(
            r#"//! `{name}`: a Weir filter plugin. It sees each message a subscription's
//! tag and SQL92 stages let through and says whether to deliver it.

use weir_plugin_sdk::{{Message, filter, manifest}};

manifest! {{
    name = "{name}",
    version = env!("CARGO_PKG_VERSION"),
    kind = "filter",
    description = "Delivers messages whose region property is SH",
    // A promise: every delivered message has region=SH, so the broker skips
    // the others with its bloom index without calling the plugin.
    hint = "region=SH",
}}

/// `true` delivers the message, `false` skips it.
fn deliver(message: &Message) -> bool {{
    message.property("region") == Some("SH")
}}

filter!(deliver);

#[cfg(test)]
mod tests {{
    use weir_plugin_sdk::TestMessage;

    use super::*;

    fn decide(message: TestMessage) -> bool {{
        deliver(&Message::decode(&message.encode()).expect("decodes"))
    }}

    #[test]
    fn delivers_region_sh_only() {{
        assert!(decide(TestMessage::new("orders").property("region", "SH")));
        assert!(!decide(TestMessage::new("orders").property("region", "BJ")));
        assert!(!decide(TestMessage::new("orders")));
    }}
}}
"#
        ),
        PluginKind::DlqPolicy => format!(
            r#"//! `{name}`: a Weir dead-letter policy plugin. It decides what happens to
//! a message whose consumption failed: retry later, dead-letter, or discard.

use std::time::Duration;

use weir_plugin_sdk::{{Decision, Failure, dlq_policy, manifest}};

manifest! {{
    name = "{name}",
    version = env!("CARGO_PKG_VERSION"),
    kind = "dlq-policy",
    description = "Validation errors to the DLQ at once; others retried 3 times, 5 s apart",
}}

fn decide(failure: &Failure) -> Decision {{
    if failure.reason.starts_with("validation") || failure.attempt > 3 {{
        Decision::DeadLetter
    }} else {{
        Decision::RetryAfter(Duration::from_secs(5))
    }}
}}

dlq_policy!(decide);

#[cfg(test)]
mod tests {{
    use weir_plugin_sdk::TestMessage;

    use super::*;

    fn decide_for(attempt: u32, reason: &str) -> Decision {{
        let bytes = TestMessage::new("orders").encode_failure(attempt, "group", reason);
        decide(&Failure::decode(&bytes).expect("decodes"))
    }}

    #[test]
    fn validation_errors_go_straight_to_the_dlq() {{
        assert_eq!(decide_for(1, "validation: no amount"), Decision::DeadLetter);
        assert_eq!(decide_for(1, "timeout"), Decision::RetryAfter(Duration::from_secs(5)));
        assert_eq!(decide_for(4, "timeout"), Decision::DeadLetter);
    }}
}}
"#
        ),
    }
}

fn readme(name: &str, kind: PluginKind) -> String {
    let (kind_flag, what) = match kind {
        PluginKind::Filter => ("filter", "decides, per message, whether a subscription receives it"),
        PluginKind::DlqPolicy => ("dlq-policy", "decides what happens to a message whose consumption failed"),
    };
    format!(
        r#"# {name}

A Weir `{kind_flag}` plugin: it {what}. It runs in the broker's WebAssembly
sandbox (ABI v1, see `plugins/ABI.md` in Weir), written with `weir-plugin-sdk`.

```sh
cargo test                                                  # unit tests, on the host
cargo build --target wasm32-unknown-unknown --release       # the plugin
weir plugin test target/wasm32-unknown-unknown/release/{file}.wasm --messages samples.jsonl
weir plugin upload target/wasm32-unknown-unknown/release/{file}.wasm
```

`samples.jsonl` holds one message a line, e.g.
`{{"topic": "orders", "tag": "paid", "props": {{"region": "SH"}}, "body": "..."}}`.
The name, kind and version come from the `manifest!` in `src/lib.rs`.

Limits (the broker's defaults): 10 000 000 fuel units (about 10 ms) per call,
16 MiB of memory, 10 MiB of module; 5 failed calls in a row disable the plugin
for that subscription until it is re-enabled or re-uploaded.
"#,
        file = name.replace('-', "_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_names_and_existing_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = |name| NewPlugin { name, kind: PluginKind::Filter, dir: dir.path(), sdk_path: Path::new("sdk") };
        assert!(matches!(scaffold(new("a b")), Err(ScaffoldError::InvalidName { .. })));
        let root = scaffold(new("mine")).expect("generated");
        assert!(root.join("src/lib.rs").is_file() && root.join("README.md").is_file());
        assert!(matches!(scaffold(new("mine")), Err(ScaffoldError::Exists(_))));
    }

    #[test]
    fn the_sdk_path_is_a_toml_string() {
        let toml = cargo_toml("x", Path::new(r#"C:\a "b""#));
        assert!(toml.contains(r#"weir-plugin-sdk = { path = "C:\\a \"b\"" }"#), "{toml}");
    }
}
