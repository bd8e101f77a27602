//! The on-disk registry: upload (names, kinds and versions from flags or the
//! manifest), list, remove (refused while in use), enable, reload on open
//! (a corrupt plugin does not stop the others), live replacement.

mod common;

use common::{guest, message, wat_filter};
use weir_filters::MessageFilter;
use weir_plugins::{
    HandleState, Limits, PluginHost, PluginKind, PluginState, Registry, RegistryError, StatsSnapshot, Upload,
};

fn open(dir: &std::path::Path) -> Registry {
    Registry::open(dir, PluginHost::new(Limits::default()).expect("host")).expect("opens")
}

fn upload<'a>(wasm: &'a [u8], name: Option<&'a str>) -> Upload<'a> {
    Upload { wasm, name, kind: None, version: None }
}

#[test]
fn upload_reads_name_kind_and_version_from_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path());
    let region = guest("region_filter");
    let info = registry.upload(upload(&region, None)).expect("uploaded");
    assert_eq!(info.name, "region_filter");
    assert_eq!(info.kind, Some(PluginKind::Filter));
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!((info.revision, info.size_bytes, info.subscriptions), (1, region.len(), 0));
    assert_eq!(info.state, PluginState::Active);
    assert_eq!(info.manifest.and_then(|m| m.description).as_deref().map(|d| d.starts_with("Delivers")), Some(true));
    // Flags win over the manifest; without either the version is the revision.
    let bare = wat_filter("i32.const 1", "");
    assert!(matches!(registry.upload(upload(&bare, None)), Err(RegistryError::NameRequired)));
    let info = registry.upload(upload(&bare, Some("bare"))).expect("uploaded");
    assert_eq!((info.version.as_str(), info.revision), ("1", 1));
    let info = registry.upload(Upload { version: Some("2.0"), ..upload(&bare, Some("bare")) }).expect("uploaded");
    assert_eq!((info.version.as_str(), info.revision), ("2.0", 2));
    let names: Vec<_> = registry.list().into_iter().map(|info| info.name).collect();
    assert_eq!(names, ["bare", "region_filter"]);
    assert!(matches!(registry.upload(upload(&bare, Some("../evil"))), Err(RegistryError::InvalidName { .. })));
    let kind = Upload { kind: Some(PluginKind::DlqPolicy), ..upload(&bare, Some("bare")) };
    assert!(matches!(registry.upload(kind), Err(RegistryError::Load(_))));
    let policy = guest("payment_policy");
    let error = registry.upload(upload(&policy, Some("bare"))).expect_err("kind change");
    assert!(matches!(error, RegistryError::KindChange { .. }), "{error}");
}

#[test]
fn plugins_survive_a_reopen_and_a_corrupt_one_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let registry = open(dir.path());
        registry.upload(upload(&guest("region_filter"), None)).expect("uploaded");
        registry.upload(upload(&guest("payment_policy"), None)).expect("uploaded");
        registry.upload(upload(&wat_filter("i32.const 1", ""), Some("bare"))).expect("uploaded");
    }
    let plugins = dir.path().join("plugins");
    std::fs::write(plugins.join("bare-1.wasm"), b"garbage").expect("corrupt");
    std::fs::write(plugins.join("stray-9.wasm"), b"orphan").expect("orphan");
    let registry = open(dir.path());
    let list = registry.list();
    assert_eq!(list.len(), 3);
    let PluginState::Broken { error } = &list[0].state else { panic!("{:?}", list[0]) };
    assert!(error.contains("not a valid WebAssembly module"), "{error}");
    assert!(matches!(registry.filter("bare", ""), Err(RegistryError::Broken { .. })));
    assert_eq!(list[1].state, PluginState::Active);
    assert_eq!(list[2].state, PluginState::Active);
    let filter = registry.filter("region_filter", "").expect("loaded");
    assert_eq!(filter.decide(&message(&[("region", "SH")], b"")), Ok(true));
    assert!(registry.dlq_policy("payment_policy", "").is_ok());
    assert!(matches!(registry.dlq_policy("region_filter", ""), Err(RegistryError::WrongKind(_))));
    assert!(!plugins.join("stray-9.wasm").exists(), "unreferenced modules are deleted at open");
    // Re-uploading repairs a broken plugin.
    registry.upload(upload(&wat_filter("i32.const 0", ""), Some("bare"))).expect("uploaded");
    assert_eq!(registry.info("bare").expect("listed").state, PluginState::Active);
}

#[test]
fn remove_is_refused_while_a_subscription_holds_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path());
    registry.upload(upload(&wat_filter("i32.const 1", ""), Some("f"))).expect("uploaded");
    let subscription = registry.filter("f", "").expect("loaded");
    assert_eq!(registry.info("f").expect("listed").subscriptions, 1);
    let error = registry.remove("f").expect_err("in use");
    assert_eq!(error.to_string(), "plugin `f` is used by 1 subscription(s); remove them first or force");
    drop(subscription);
    registry.remove("f").expect("removed");
    assert!(matches!(registry.info("f"), Err(RegistryError::NotFound { .. })));
    assert!(std::fs::read_dir(dir.path().join("plugins")).expect("dir").next().is_none(), "files deleted");
    // Forced removal: the holder's calls fail as removed.
    registry.upload(upload(&wat_filter("i32.const 1", ""), Some("g"))).expect("uploaded");
    let holder = registry.filter("g", "").expect("loaded");
    registry.force_remove("g").expect("removed");
    let error = holder.decide(&message(&[], b"")).expect_err("removed");
    assert_eq!(error.to_string(), "filter is disabled: plugin `g` was removed");
    assert!(open(dir.path()).list().is_empty(), "nothing comes back after a reopen");
}

#[test]
fn a_replacement_is_picked_up_live_and_re_enables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path());
    let looping = wat_filter("(loop $spin (br $spin)) i32.const 1", "");
    registry.upload(upload(&looping, Some("f"))).expect("uploaded");
    let subscription = registry.filter("f", "").expect("loaded");
    for _ in 0..5 {
        assert!(subscription.decide(&message(&[], b"")).is_err());
    }
    assert!(matches!(subscription.handle().state(), HandleState::Disabled { .. }));
    let info = registry.info("f").expect("listed");
    assert!(matches!(info.state, PluginState::Disabled { subscriptions: 1, .. }), "{:?}", info.state);
    assert_eq!((info.stats.calls, info.stats.errors), (5, 5));
    assert_eq!(registry.enable("f").expect("enabled"), 1);
    assert_eq!(subscription.handle().state(), HandleState::Active);
    for _ in 0..5 {
        assert!(subscription.decide(&message(&[], b"")).is_err());
    }
    // Upload a fixed version: the same subscription handle uses it at once.
    let info = registry.upload(upload(&wat_filter("i32.const 0", ""), Some("f"))).expect("replaced");
    assert_eq!(info.revision, 2);
    assert_eq!(subscription.handle().state(), HandleState::Active);
    assert_eq!(subscription.decide(&message(&[], b"")), Ok(false));
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join("plugins")).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(files.len(), 2, "the record and the new module only: {files:?}");
    assert_eq!(open(dir.path()).info("f").expect("listed").revision, 2);
}

#[test]
fn a_replacement_that_drops_a_hint_disables_subscriptions_relying_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path());
    let hinted = wat_filter("i32.const 1", r#"(@custom "weir-manifest" "hint=tenant")"#);
    registry.upload(upload(&hinted, Some("f"))).expect("uploaded");
    let subscription = registry.filter("f", "").expect("loaded");
    assert_eq!(subscription.index_hints().len(), 1);
    let more_hints = wat_filter("i32.const 1", r#"(@custom "weir-manifest" "hint=tenant\nhint=kind=pay")"#);
    registry.upload(upload(&more_hints, Some("f"))).expect("replaced");
    assert_eq!(subscription.handle().state(), HandleState::Active, "still promises `tenant`");
    registry.upload(upload(&wat_filter("i32.const 1", ""), Some("f"))).expect("replaced");
    let HandleState::Disabled { reason } = subscription.handle().state() else { panic!("still active") };
    assert!(reason.contains("index hints"), "{reason}");
    assert_eq!(registry.filter("f", "").expect("new subscription").handle().state(), HandleState::Active);
}

#[test]
fn counters_add_up_over_subscriptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path());
    registry.upload(upload(&wat_filter("i32.const 1", ""), Some("f"))).expect("uploaded");
    let (a, b) = (registry.filter("f", "").expect("a"), registry.filter("f", "").expect("b"));
    for _ in 0..3 {
        a.decide(&message(&[], b"")).expect("decides");
    }
    b.decide(&message(&[], b"")).expect("decides");
    let info = registry.info("f").expect("listed");
    assert_eq!((info.subscriptions, info.stats.calls, info.stats.errors), (2, 4, 0));
    assert!(info.stats.fuel_used > 0 && info.mean_call_nanos > 0);
    assert_eq!(a.handle().stats().calls, 3);
    assert_ne!(info.stats, StatsSnapshot::default());
}
