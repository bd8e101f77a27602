//! Edge inputs to the public API (empty, zero, maximum sizes, shapes that cannot
//! work, expressions that cannot compile) are answered with a value or a typed
//! error, never a panic, an overflow or an allocation sized by the input.

mod support;

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{SHADOW, TOPIC, config, shape};
use weir_filters::bloom::{BloomCondition, TermHash, message_terms};
use weir_filters::{
    BloomIndex, BloomShape, Expression, FilterCounts, FilterStats, IndexShape, IndexShapeError, PageLimits, ReadPath,
    Subscription, SubscriptionError, TagFilter, TagFilterError, TrafficRole,
};
use weir_sql92::{Filter, ParseErrorKind};
use weir_storage::{CqEntry, MapBudget, Message, Store, tag_hash};

/// The shape error `BloomIndex::open` answers for `shape` (`None`: it opened).
fn open_error(shape: IndexShape) -> Option<IndexShapeError> {
    let dir = tempfile::tempdir().expect("tempdir");
    match BloomIndex::open(&dir.path().join("bloomindex"), shape, MapBudget::unlimited()) {
        Ok(_) => None,
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
            let source = error.into_inner().expect("a source").downcast::<IndexShapeError>().expect("a shape error");
            Some(*source)
        }
    }
}

fn sub(expression: Expression) -> Result<Subscription, SubscriptionError> {
    Subscription::compile(expression, TrafficRole::Production, &shape())
}

#[test]
fn edge_inputs_are_answered_not_panicked_on() {
    // Index shapes that cannot work are refused with what is wrong, not asserted on.
    let with = |f: fn(&mut IndexShape)| {
        let mut s = shape();
        f(&mut s);
        s
    };
    assert_eq!(open_error(shape()), None);
    assert_eq!(open_error(with(|s| s.message.bytes = 0)), None, "a zero-byte bloom knows nothing but works");
    assert_eq!(
        open_error(with(|s| s.message.bytes = 12)),
        Some(IndexShapeError::BloomBytes { which: "message", bytes: 12 })
    );
    assert_eq!(
        open_error(with(|s| s.block.bytes = usize::MAX - 7)),
        Some(IndexShapeError::BloomBytes { which: "block", bytes: usize::MAX - 7 })
    );
    assert_eq!(
        open_error(with(|s| s.message.hashes = u32::MAX)),
        Some(IndexShapeError::Hashes { which: "message", hashes: u32::MAX })
    );
    assert_eq!(open_error(with(|s| s.block_entries = 0)), Some(IndexShapeError::Zero { what: "block_entries" }));
    assert_eq!(open_error(with(|s| s.entries_per_file = 0)), Some(IndexShapeError::Zero { what: "entries_per_file" }));
    assert_eq!(
        open_error(with(|s| s.entries_per_file = u64::MAX)),
        Some(IndexShapeError::FileTooLarge { entries_per_file: u64::MAX })
    );
    assert_eq!(open_error(with(|s| s.block_entries = u64::MAX)), None, "blocks that never complete skip nothing");

    // Bloom shapes at the extremes: no overflow, no allocation of `hashes` words,
    // and a probe never denies a term that was inserted.
    let term = TermHash::name("region");
    for shape in [
        BloomShape { bytes: usize::MAX, hashes: u32::MAX },
        BloomShape { bytes: 32, hashes: u32::MAX },
        BloomShape { bytes: 32, hashes: 0 },
        BloomShape { bytes: 12, hashes: 4 },
        BloomShape { bytes: 0, hashes: 4 },
    ] {
        for len in [0, 5, 32, 4096] {
            let mut filter = vec![0u8; len];
            shape.insert(&mut filter, term);
            assert!(shape.probe(term).may_be_in(&filter), "{shape:?} over {len} bytes");
        }
        let rate = shape.false_positive_rate(usize::MAX);
        assert!((0.0..=1.0).contains(&rate), "{shape:?}: {rate}");
    }
    // A filter shorter than its shape (a torn or foreign one) cannot skip anything.
    let shape = BloomShape { bytes: 32, hashes: 4 };
    assert!(shape.probe(TermHash::name("absent")).may_be_in(&[]));
    let mut full = vec![0u8; 32];
    message_terms("TagA", [("a", "1")], |t| shape.insert(&mut full, t));
    assert!(!shape.probe(TermHash::name("absent")).may_be_in(&full), "a whole filter still skips");

    // Tag expressions: empty parts are refused, a huge one parses in linear-ish time.
    assert!(TagFilter::parse("").expect("everything").is_all());
    for (bad, want) in [
        ("||", TagFilterError::EmptyTag("||".into())),
        ("A || || B", TagFilterError::EmptyTag("A || || B".into())),
        ("* || *", TagFilterError::MixedWildcard("* || *".into())),
    ] {
        assert_eq!(TagFilter::parse(bad), Err(want));
    }
    let tags: Vec<String> = (0..200_000).map(|i| format!("tag{i}")).collect();
    let started = Instant::now();
    let many = TagFilter::parse(&tags.join(" || ")).expect("valid");
    assert!(started.elapsed() < Duration::from_secs(5), "200 000 tags took {:?}", started.elapsed());
    assert!(many.matches("tag199999") && many.may_match_hash(tag_hash("tag0")) && !many.matches("tag200000"));
    let odd = TagFilter::parse(" 多字节 || a b ||多字节").expect("valid");
    assert!(odd.matches("多字节") && odd.matches("a b") && !odd.matches(""));
    assert_eq!(odd, TagFilter::parse("a b || 多字节").expect("valid"), "order and repeats do not matter");

    // Subscriptions whose SQL cannot compile are typed errors, however deep.
    assert!(matches!(sub(Expression::Sql(String::new())), Err(SubscriptionError::Sql(_))));
    let deep = format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000));
    match sub(Expression::Sql(deep)) {
        Err(SubscriptionError::Sql(error)) => assert!(matches!(error.kind(), ParseErrorKind::TooDeep { .. })),
        other => panic!("{other:?}"),
    }
    assert!(sub(Expression::Tag("A ||".into())).is_err());
    let condition = Filter::parse(&vec!["a = '1'"; weir_sql92::MAX_DEPTH - 1].join(" OR ")).expect("valid");
    let compiled = BloomCondition::compile(condition.necessary_condition(), BloomShape { bytes: 0, hashes: 0 });
    assert!(compiled.may_match(&[]));

    // Counters add up without overflowing.
    let mut total = FilterCounts { examined: u64::MAX, ..FilterCounts::default() };
    total += FilterCounts { examined: 1, delivered: 1, ..FilterCounts::default() };
    assert_eq!((total.examined, total.delivered), (u64::MAX, 1));
    assert_eq!(FilterCounts::default().bloom_false_positive_rate(), 0.0);
    let stats = FilterStats::default();
    FilterStats::add(&stats.examined, u64::MAX);
    FilterStats::add(&stats.examined, 0);
    assert_eq!(stats.snapshot().examined, u64::MAX);
}

/// One pass with `limits` over the queue's entries in `[from, end)`, as given.
fn run(
    store: &Store,
    index: &BloomIndex,
    entries: &[(u64, CqEntry)],
    (from, end): (u64, u64),
    limits: PageLimits,
) -> (Vec<u64>, u64, FilterCounts) {
    let sub = sub(Expression::Sql("region = 'SH'".into())).expect("valid");
    let stats = FilterStats::default();
    let blooms = index.queue(TOPIC, 0);
    let path = ReadPath {
        subscription: &sub,
        stats: &stats,
        blooms: blooms.as_deref(),
        prefilter: true,
        shadow_property: SHADOW,
        limits,
    };
    let page = path.run(from, end, entries, |e| store.read_entry(e).map(Some)).expect("read");
    let offsets = page.records.iter().map(|r| r.view().queue_offset()).collect();
    (offsets, page.next_offset, stats.snapshot())
}

#[test]
fn read_path_edges_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index =
        Arc::new(BloomIndex::open(&dir.path().join("bloomindex"), shape(), MapBudget::unlimited()).expect("index"));
    let store = Store::open_with_hooks(config(dir.path()), MapBudget::unlimited(), vec![index.clone()]).expect("store");
    for i in 0..10u32 {
        let region = if i % 2 == 0 { "SH" } else { "BJ" };
        let message = Message {
            topic: TOPIC.to_owned(),
            queue_id: 0,
            tag: String::new(),
            keys: Vec::new(),
            properties: vec![("region".into(), region.into())],
            body: bytes::Bytes::from_static(b"body"),
            born_timestamp_ms: 0,
            born_host: "127.0.0.1:1".parse().expect("addr"),
            flags: 0,
        };
        store.append(&message).expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let entries = store.queue_entries(TOPIC, 0, 0, 10).expect("entries");
    let roomy = PageLimits { max_messages: usize::MAX, max_bytes: usize::MAX };

    assert_eq!(run(&store, &index, &entries, (0, 10), roomy).0, [0, 2, 4, 6, 8]);
    // Nothing to look at: the next pass starts at `end`.
    let (delivered, next, counts) = run(&store, &index, &[], (3, 3), roomy);
    assert_eq!((delivered.len(), next, counts.examined), (0, 3, 0));
    // `from` past `end`, and a range at the very top of the offsets.
    assert_eq!(run(&store, &index, &entries, (10, 4), roomy).1, 4);
    assert_eq!(run(&store, &index, &[], (u64::MAX - 1, u64::MAX), roomy).1, u64::MAX);
    // Entries past `end` are left for the next pass.
    let (delivered, next, _) = run(&store, &index, &entries, (0, 5), roomy);
    assert_eq!((delivered, next), (vec![0, 2, 4], 5));
    // A page of no messages takes nothing and resumes where it stopped.
    let none = PageLimits { max_messages: 0, max_bytes: usize::MAX };
    let (delivered, next, _) = run(&store, &index, &entries, (0, 10), none);
    assert_eq!((delivered.len(), next), (0, 0));
    // A page of no bytes still takes one record (always progress).
    let one = PageLimits { max_messages: usize::MAX, max_bytes: 0 };
    let (delivered, next, _) = run(&store, &index, &entries, (0, 10), one);
    assert_eq!((delivered, next), (vec![0], 1));
}
