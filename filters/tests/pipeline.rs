//! The pipeline's promise: with every pre-filter on, a subscription receives
//! exactly what evaluating it on every message gives, in order, once each.
//!
//! Messages go through a real store with the bloom index as a dispatch hook;
//! blooms are tiny (8 bytes, so false positives happen) and blocks short (so
//! block summaries decide often).

mod support;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use support::{SHADOW, TOPIC, config, shape};
use weir_filters::{BloomIndex, Expression, FilterStats, PageLimits, ReadPath, Subscription, TrafficRole};
use weir_storage::{MapBudget, Message, ReadError, Store, StoreConfig};

#[derive(Debug, Clone)]
struct Msg {
    tag: String,
    properties: Vec<(String, String)>,
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["SH", "BJ", "GZ", "", "abc", "true", "TRUE"]).prop_map(str::to_owned),
        (-5i64..20).prop_map(|n| n.to_string()),
        (0.0f64..10.0).prop_map(|f| format!("{f:.1}")),
        Just("1e3".to_owned()),
        Just("12abc".to_owned()),
    ]
}

fn message() -> impl Strategy<Value = Msg> {
    let tag = prop::sample::select(vec!["", "TagA", "TagB", "TagC"]).prop_map(str::to_owned);
    let names = prop::sample::subsequence(vec!["region", "amount", "kind", SHADOW], 0..=4);
    (tag, names, prop::collection::vec(value(), 4)).prop_map(|(tag, names, values)| Msg {
        tag,
        properties: names.into_iter().zip(values).map(|(n, v)| (n.to_owned(), v)).collect(),
    })
}

fn atom() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["region", "amount", "kind", "TAGS", "missing", SHADOW]);
    let literal = prop_oneof![
        prop::sample::select(vec!["'SH'", "'BJ'", "'TagA'", "'true'", "''"]).prop_map(str::to_owned),
        (-5i64..20).prop_map(|n| n.to_string()),
        Just("2.5".to_owned()),
        Just("TRUE".to_owned()),
    ];
    (name, literal, 0..9usize).prop_map(|(name, lit, form)| match form {
        0 => format!("{name} = {lit}"),
        1 => format!("{name} <> {lit}"),
        2 => format!("{name} > {lit}"),
        3 => format!("{name} <= {lit}"),
        4 => format!("{name} IS NULL"),
        5 => format!("{name} IS NOT NULL"),
        6 => format!("{name} IN ('SH', 'GZ', {lit})"),
        7 => format!("{name} BETWEEN 1 AND {lit}"),
        _ => format!("{name} NOT IN ('SH', {lit})"),
    })
}

fn sql() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

fn expression() -> impl Strategy<Value = Expression> {
    prop_oneof![
        1 => Just(Expression::All),
        2 => prop::sample::select(vec!["TagA", "TagB || TagC", "TagA || TagZ", "*"])
            .prop_map(|t| Expression::Tag(t.to_owned())),
        6 => sql().prop_map(Expression::Sql),
    ]
}

fn open(dir: &std::path::Path) -> (Store, Arc<BloomIndex>) {
    let index = Arc::new(BloomIndex::open(&dir.join("bloomindex"), shape(), MapBudget::unlimited()).expect("index"));
    let store = Store::open_with_hooks(config(dir), MapBudget::unlimited(), vec![index.clone()]).expect("store");
    (store, index)
}

fn store_messages(store: &Store, messages: &[Msg]) {
    for m in messages {
        store
            .append(&Message {
                topic: TOPIC.to_owned(),
                queue_id: 0,
                tag: m.tag.clone(),
                keys: Vec::new(),
                properties: m.properties.clone(),
                body: bytes::Bytes::from_static(b"body"),
                born_timestamp_ms: 0,
                born_host: "127.0.0.1:1".parse().expect("addr"),
                flags: 0,
            })
            .expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(10)));
}

/// Pages through the queue from 0 with `max` entries per pass and returns the delivered queue offsets.
fn deliver(store: &Store, index: &BloomIndex, sub: &Subscription, prefilter: bool, max: usize) -> Vec<u64> {
    let stats = FilterStats::default();
    let blooms = index.queue(TOPIC, 0);
    let (_, end) = store.queue_offsets(TOPIC, 0);
    let mut offset = 0;
    let mut delivered = Vec::new();
    while offset < end {
        let entries = store.queue_entries(TOPIC, 0, offset, max).expect("entries");
        let path = ReadPath {
            subscription: sub,
            stats: &stats,
            blooms: blooms.as_deref(),
            prefilter,
            shadow_property: SHADOW,
            limits: PageLimits { max_messages: 3, max_bytes: 1 << 20 },
        };
        let page = path
            .run(offset, (offset + max as u64).min(end), &entries, |e| match store.read_entry(e) {
                Ok(r) => Ok(Some(r)),
                Err(ReadError::OffsetOutOfRange(_)) => Ok(None),
                Err(err) => Err(err),
            })
            .expect("read");
        assert!(page.next_offset > offset, "every pass makes progress");
        delivered.extend(page.records.iter().map(|r| r.view().queue_offset()));
        offset = page.next_offset;
    }
    let counts = stats.snapshot();
    assert_eq!(counts.examined, end, "each entry is examined once: {counts:?}");
    assert_eq!(counts.delivered, delivered.len() as u64);
    assert!(counts.body_reads <= counts.examined && counts.delivered <= counts.body_reads, "{counts:?}");
    if !prefilter {
        assert_eq!(counts.body_reads, end, "without pre-filters every body is read");
    }
    delivered
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prefilters_never_change_what_is_delivered(
        messages in prop::collection::vec(message(), 0..40),
        expression in expression(),
        shadow_group in any::<bool>(),
        scan in prop::sample::select(vec![1usize, 3, 7, 64]),
    ) {
        let role = if shadow_group { TrafficRole::Shadow } else { TrafficRole::Production };
        let Ok(sub) = Subscription::compile(expression, role, &shape()) else {
            return Err(TestCaseError::reject("expression refused by the parser"));
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, index) = open(dir.path());
        store_messages(&store, &messages);
        let expected: Vec<u64> = store
            .queue_entries(TOPIC, 0, 0, messages.len()).expect("entries")
            .iter()
            .filter(|(_, e)| sub.matches(&store.read_entry(e).expect("read").view(), SHADOW))
            .map(|(q, _)| *q)
            .collect();
        prop_assert_eq!(&deliver(&store, &index, &sub, true, scan), &expected);
        prop_assert_eq!(&deliver(&store, &index, &sub, false, scan), &expected);
    }
}

/// An index built after the messages (the broker upgraded, or the shape changed) is rebuilt from the CommitLog.
#[test]
fn the_index_is_rebuilt_from_the_commitlog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let messages: Vec<Msg> = (0..10)
        .map(|i| Msg {
            tag: String::new(),
            properties: vec![("region".into(), if i == 7 { "SH" } else { "BJ" }.into())],
        })
        .collect();
    {
        let store = Store::open(config(dir.path())).expect("store");
        store_messages(&store, &messages);
        store.close().expect("close");
    }
    let (store, index) = open(dir.path());
    let blooms = index.queue(TOPIC, 0).expect("rebuilt");
    assert_eq!(blooms.max_offset(), 10);
    let sub = Subscription::compile(Expression::Sql("region = 'SH'".into()), TrafficRole::Production, &shape())
        .expect("valid");
    assert_eq!(deliver(&store, &index, &sub, true, 64), vec![7]);
}

/// A selective subscription reads few bodies: the bloom and block stages do the skipping.
#[test]
fn selective_subscriptions_skip_without_reading_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = open(dir.path());
    let messages: Vec<Msg> = (0..400)
        .map(|i| Msg {
            tag: String::new(),
            properties: vec![("region".into(), format!("r{}", i % 10)), ("amount".into(), (i % 7).to_string())],
        })
        .collect();
    store_messages(&store, &messages);
    let counts = |expression: &str| {
        let sub = Subscription::compile(Expression::Sql(expression.into()), TrafficRole::Production, &shape())
            .expect("valid");
        let stats = FilterStats::default();
        let entries = store.queue_entries(TOPIC, 0, 0, 400).expect("entries");
        let blooms = index.queue(TOPIC, 0);
        let path = ReadPath {
            subscription: &sub,
            stats: &stats,
            blooms: blooms.as_deref(),
            prefilter: true,
            shadow_property: SHADOW,
            limits: PageLimits { max_messages: 400, max_bytes: 1 << 20 },
        };
        let page = path.run(0, 400, &entries, |e| store.read_entry(e).map(Some)).expect("read");
        (page.records.len(), stats.snapshot())
    };
    let (delivered, c) = counts("region = 'r7'");
    assert_eq!(delivered, 40);
    assert_eq!(c.examined, 400);
    assert!(c.skipped_by_bloom > 50 && c.skipped_by_bloom + c.skipped_by_block >= 340, "{c:?}");
    assert_eq!(c.body_reads, c.evaluated_sql);
    assert_eq!(c.evaluated_sql - c.sql_false, 40);
    let (delivered, c) = counts("region = 'nowhere'");
    assert_eq!(delivered, 0);
    assert!(c.skipped_by_block > 300, "absent terms skip whole blocks: {c:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// After a crash cuts the CommitLog anywhere, the index drops what was cut; new
    /// messages reuse those queue offsets, and pre-filters still change nothing.
    #[test]
    fn the_index_follows_a_commitlog_cut(
        before in prop::collection::vec(message(), 1..30),
        after in prop::collection::vec(message(), 0..20),
        cut in 0.0f64..1.0,
        expression in expression(),
    ) {
        let Ok(sub) = Subscription::compile(expression, TrafficRole::Production, &shape()) else {
            return Err(TestCaseError::reject("expression refused by the parser"));
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let end = {
            let (store, _) = open(dir.path());
            store_messages(&store, &before);
            let end = store.stats().max_offset;
            store.close().expect("close");
            end
        };
        // Zero the CommitLog from a random record boundary-or-not position to its end.
        let segment = dir.path().join("commitlog").join(format!("{:020}", 0));
        let mut bytes = std::fs::read(&segment).expect("segment");
        let from = (end as f64 * cut) as usize;
        bytes[from..end as usize].fill(0);
        std::fs::write(&segment, &bytes).expect("damage");
        let index = Arc::new(BloomIndex::open(&dir.path().join("bloomindex"), shape(), MapBudget::unlimited()).expect("index"));
        let config = StoreConfig { recovery: weir_storage::RecoveryMode::Full, ..config(dir.path()) };
        let store = Store::open_with_hooks(config, MapBudget::unlimited(), vec![index.clone()]).expect("reopen");
        store_messages(&store, &after);
        let (_, queue_end) = store.queue_offsets(TOPIC, 0);
        let expected: Vec<u64> = store
            .queue_entries(TOPIC, 0, 0, queue_end as usize).expect("entries")
            .iter()
            .filter(|(_, e)| sub.matches(&store.read_entry(e).expect("read").view(), SHADOW))
            .map(|(q, _)| *q)
            .collect();
        prop_assert_eq!(&deliver(&store, &index, &sub, true, 5), &expected);
    }
}
