//! A plugin's manifest: the `weir-manifest` custom section (`plugins/ABI.md`),
//! one `key=value` per line, read without instantiating the module.

use serde::Serialize;
use weir_sql92::Term;

use crate::abi::{ABI_VERSION, MANIFEST_SECTION};
use crate::kind::PluginKind;

/// What a plugin says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The ABI version it declares (when it declares one).
    pub abi: Option<i32>,
    /// Its name.
    pub name: Option<String>,
    /// The author's version string.
    pub version: Option<String>,
    /// Filter or dlq-policy.
    pub kind: Option<PluginKind>,
    /// One line for listings.
    pub description: Option<String>,
    /// The parameters it accepts, as `name: description` lines (documentation).
    pub params: Vec<String>,
    /// Index hints: `name` or `name=value` terms every delivered message carries.
    pub hints: Vec<String>,
}

/// Why a manifest cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The module has two manifest sections.
    #[error("the module has more than one `{MANIFEST_SECTION}` section")]
    Duplicate,
    /// The section is not UTF-8.
    #[error("the `{MANIFEST_SECTION}` section is not UTF-8")]
    NotUtf8,
    /// A line has no `=`.
    #[error("manifest line {line}: expected `key=value`, found {text:?}")]
    NotKeyValue {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A single-valued key appears twice.
    #[error("manifest line {line}: `{key}` given twice")]
    Repeated {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },
    /// A value is not valid for its key.
    #[error("manifest line {line}: invalid {key} {value:?}: {why}")]
    InvalidValue {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
        /// What is expected.
        why: &'static str,
    },
}

impl Manifest {
    /// Reads the manifest section of `wasm`, if it has one. The module's code
    /// is not validated here (compiling does that).
    pub fn from_module(wasm: &[u8]) -> Result<Option<Manifest>, ManifestError> {
        let mut found = None;
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            // A malformed module is reported by the compiler with a better message.
            let Ok(payload) = payload else { break };
            if let wasmparser::Payload::CustomSection(section) = payload
                && section.name() == MANIFEST_SECTION
            {
                if found.is_some() {
                    return Err(ManifestError::Duplicate);
                }
                found = Some(Manifest::parse(section.data())?);
            }
        }
        Ok(found)
    }

    /// Parses the manifest text format.
    pub fn parse(section: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(section).map_err(|_| ManifestError::NotUtf8)?;
        let mut manifest = Manifest::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (key, value) =
                trimmed.split_once('=').ok_or_else(|| ManifestError::NotKeyValue { line, text: raw.to_owned() })?;
            let (key, value) = (key.trim(), value.trim());
            let invalid = |key, why| ManifestError::InvalidValue { line, key, value: value.to_owned(), why };
            match key {
                "abi" => {
                    let abi = value.parse().map_err(|_| invalid("abi", "an integer"))?;
                    set_once(&mut manifest.abi, abi, line, key)?;
                }
                "name" => {
                    check_name(value).map_err(|why| invalid("name", why))?;
                    set_once(&mut manifest.name, value.to_owned(), line, key)?;
                }
                "version" => set_once(&mut manifest.version, value.to_owned(), line, key)?,
                "kind" => {
                    let kind = value.parse().map_err(|_| invalid("kind", "`filter` or `dlq-policy`"))?;
                    set_once(&mut manifest.kind, kind, line, key)?;
                }
                "description" => set_once(&mut manifest.description, value.to_owned(), line, key)?,
                "param" => manifest.params.push(value.to_owned()),
                "hint" => {
                    hint_term(value).map_err(|why| invalid("hint", why))?;
                    manifest.hints.push(value.to_owned());
                }
                _ => {}
            }
        }
        if let Some(abi) = manifest.abi
            && abi != ABI_VERSION
        {
            let is_abi = |l: &str| l.split_once('=').is_some_and(|(key, _)| key.trim() == "abi");
            let line = text.lines().position(is_abi).map_or(0, |p| p + 1);
            return Err(ManifestError::InvalidValue {
                line,
                key: "abi",
                value: abi.to_string(),
                why: "this host implements ABI version 1",
            });
        }
        Ok(manifest)
    }

    /// The index hints as SQL92 terms (`name` → `Has`, `name=value` → `Equals`).
    pub fn hint_terms(&self) -> Vec<Term> {
        self.hints.iter().filter_map(|hint| hint_term(hint).ok()).collect()
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, line: usize, key: &str) -> Result<(), ManifestError> {
    if slot.is_some() {
        return Err(ManifestError::Repeated { line, key: key.to_owned() });
    }
    *slot = Some(value);
    Ok(())
}

/// Checks a plugin name: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let valid =
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid { Ok(()) } else { Err("1 to 64 of A-Z a-z 0-9 _ -") }
}

fn hint_term(hint: &str) -> Result<Term, &'static str> {
    let term = match hint.split_once('=') {
        Some((name, value)) => Term::Equals { name: name.trim().into(), value: value.trim().into() },
        None => Term::Has(hint.trim().into()),
    };
    let name = match &term {
        Term::Has(name) | Term::Equals { name, .. } => name,
    };
    if name.is_empty() { Err("`name` or `name=value` with a non-empty name") } else { Ok(term) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let text = "abi=1\n# comment\n\nname = payments\nversion=0.3.1\nkind=filter\ndescription=Payments = money\n\
                    param=min: smallest\nhint=kind=payment\nhint= tenant \nfuture_key=whatever\n";
        let manifest = Manifest::parse(text.as_bytes()).expect("parses");
        assert_eq!(
            manifest,
            Manifest {
                abi: Some(1),
                name: Some("payments".into()),
                version: Some("0.3.1".into()),
                kind: Some(PluginKind::Filter),
                description: Some("Payments = money".into()),
                params: vec!["min: smallest".into()],
                hints: vec!["kind=payment".into(), "tenant".into()],
            }
        );
        assert_eq!(
            manifest.hint_terms(),
            [Term::Equals { name: "kind".into(), value: "payment".into() }, Term::Has("tenant".into())]
        );
    }

    #[test]
    fn rejects_what_is_wrong_with_the_line_number() {
        let cases: [(&[u8], &str); 8] = [
            (b"abi=2", "manifest line 1: invalid abi \"2\": this host implements ABI version 1"),
            (b"abi=x", "manifest line 1: invalid abi \"x\": an integer"),
            (b"\nname", "manifest line 2: expected `key=value`, found \"name\""),
            (b"name=a\nname=b", "manifest line 2: `name` given twice"),
            (b"name=a b", "manifest line 1: invalid name \"a b\": 1 to 64 of A-Z a-z 0-9 _ -"),
            (b"kind=map", "manifest line 1: invalid kind \"map\": `filter` or `dlq-policy`"),
            (b"hint==x", "manifest line 1: invalid hint \"=x\": `name` or `name=value` with a non-empty name"),
            (b"\xff", "the `weir-manifest` section is not UTF-8"),
        ];
        for (text, expected) in cases {
            assert_eq!(Manifest::parse(text).expect_err("rejected").to_string(), expected);
        }
    }

    #[test]
    fn reads_the_custom_section_of_a_module() {
        let wasm = wat::parse_str(r#"(module (@custom "weir-manifest" "name=x\nkind=dlq-policy"))"#).expect("wat");
        let manifest = Manifest::from_module(&wasm).expect("reads").expect("present");
        assert_eq!((manifest.name.as_deref(), manifest.kind), (Some("x"), Some(PluginKind::DlqPolicy)));
        assert_eq!(Manifest::from_module(&wat::parse_str("(module)").expect("wat")), Ok(None));
        let twice = wat::parse_str(r#"(module (@custom "weir-manifest" "") (@custom "weir-manifest" ""))"#);
        assert_eq!(Manifest::from_module(&twice.expect("wat")), Err(ManifestError::Duplicate));
    }

    #[test]
    fn names() {
        assert!(check_name("a-b_C9").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("../x").is_err());
    }

    proptest::proptest! {
        /// Any bytes, as a manifest section or as a whole module, give a manifest
        /// or a typed error, never a panic (twin of the `plugin_manifest` fuzz target).
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = Manifest::parse(&bytes);
            let _ = Manifest::from_module(&bytes);
        }

        /// Text made of manifest-like lines parses or is refused with its line number.
        #[test]
        fn line_errors_point_at_their_line(lines in proptest::collection::vec("[a-z]{0,6}(=[ -~]{0,12})?", 0..8)) {
            let text = lines.join("\n");
            if let Err(ManifestError::NotKeyValue { line, .. } | ManifestError::InvalidValue { line, .. }) =
                Manifest::parse(text.as_bytes())
            {
                proptest::prop_assert!(line <= lines.len().max(1));
            }
        }
    }
}
