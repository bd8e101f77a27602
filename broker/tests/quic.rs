//! The broker over real QUIC on loopback, driven with raw protocol frames:
//! the wire behaviour every client relies on, including bad input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use weir_broker::{Broker, BrokerConfig, FlushKind};
use weir_protocol::{
    CommitOffsetRequest, ErrorCode, FetchOffsetRequest, FilterExpression, GroupConfig, GroupStatsRequest, Message,
    MessageQuery, PullRequest, PullStatus, Request, Response, SendRequest, SubscribeRequest, TopicConfig,
    TopicPermissions, decode_frame,
};

struct Harness {
    broker: Broker,
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    _dir: tempfile::TempDir,
}

async fn start(flush: FlushKind) -> Harness {
    start_with(|config| config.flush = flush).await
}

async fn start_with(tune: impl FnOnce(&mut BrokerConfig)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.segment_size = 64 << 20;
    config.max_message_size = 64 * 1024;
    tune(&mut config);
    let broker = Broker::start(config).await.expect("start broker");
    let (endpoint, conn) = connect(&broker).await;
    Harness { broker, conn, _endpoint: endpoint, _dir: dir }
}

async fn connect(broker: &Broker) -> (quinn::Endpoint, quinn::Connection) {
    let (endpoint, conn) = try_connect(broker).await;
    (endpoint, conn.expect("handshake"))
}

async fn try_connect(broker: &Broker) -> (quinn::Endpoint, Result<quinn::Connection, quinn::ConnectionError>) {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(broker.cert_path()).expect("cert");
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![weir_protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint.connect(broker.local_addr(), "localhost").expect("connect").await;
    (endpoint, conn)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().expect("pem")
}

/// Sends raw bytes on a new stream and decodes the response frame.
async fn raw(conn: &quinn::Connection, bytes: &[u8]) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
    // The broker may stop reading early (bad header); that is part of the contract.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let data = recv.read_to_end(16 << 20).await.expect("response");
    Response::decode(decode_frame(data.into(), 16 << 20).expect("frame")).expect("response decodes")
}

async fn call(conn: &quinn::Connection, request: Request) -> Response {
    let mut buf = BytesMut::new();
    request.encode(&mut buf).expect("encode");
    raw(conn, &buf).await
}

async fn create_topic(conn: &quinn::Connection, name: &str, queues: u32) {
    let config = TopicConfig {
        name: name.into(),
        read_queues: queues,
        write_queues: queues,
        permissions: TopicPermissions::READ_WRITE,
    };
    assert!(matches!(call(conn, Request::CreateTopic(config)).await, Response::CreateTopic(_)));
}

fn message(topic: &str, queue_id: u32, body: &str) -> Message {
    let mut m = Message::new(topic, body.as_bytes().to_vec());
    m.queue_id = Some(queue_id);
    m.tag = Some("TagA".into());
    m.keys = vec!["order-1".into()];
    m.properties = vec![("region".into(), "SH".into())];
    m.born_timestamp_ms = 1_700_000_000_000;
    m
}

fn pull(topic: &str, queue_id: u32, offset: u64, wait_ms: u32) -> Request {
    Request::Pull(PullRequest {
        member: None,
        consumer_group: "g".into(),
        topic: topic.into(),
        queue_id,
        offset,
        max_messages: 32,
        max_wait_ms: wait_ms,
        filter: FilterExpression::All,
    })
}

fn error_code(response: &Response) -> Option<ErrorCode> {
    match response {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn send_then_pull_round_trips_every_field() {
    let h = start(FlushKind::Sync).await;
    create_topic(&h.conn, "orders", 2).await;
    let Response::Send(sent) =
        call(&h.conn, Request::Send(SendRequest { messages: vec![message("orders", 1, "hello")] })).await
    else {
        panic!("send failed")
    };
    assert_eq!(sent.results[0].queue_offset, 0);
    // Messages become visible once dispatched (about a millisecond after the ack): long-poll for it.
    let Response::Pull(page) = call(&h.conn, pull("orders", 1, 0, 5_000)).await else { panic!("pull failed") };
    assert_eq!(page.status, PullStatus::Found);
    let m = &page.messages[0];
    assert_eq!((m.topic.as_str(), m.queue_id, m.queue_offset), ("orders", 1, 0));
    assert_eq!(
        (m.tag.as_deref(), &m.keys[..], &m.properties[..]),
        (Some("TagA"), &["order-1".to_owned()][..], &[("region".to_owned(), "SH".to_owned())][..])
    );
    assert_eq!(
        (&m.body[..], m.born_timestamp_ms, m.msg_id.as_str()),
        (&b"hello"[..], 1_700_000_000_000, sent.results[0].msg_id.as_str())
    );
    assert_eq!(page.next_offset, 1);
    let Response::QueryMessage(found) =
        call(&h.conn, Request::QueryMessage(MessageQuery::ById { msg_id: m.msg_id.clone() })).await
    else {
        panic!("query failed")
    };
    assert_eq!(found.messages[0].body, m.body);
    h.broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_held_pull_is_answered_when_a_message_arrives_and_times_out_empty_otherwise() {
    let h = start(FlushKind::Async).await;
    create_topic(&h.conn, "t", 1).await;
    let started = Instant::now();
    let Response::Pull(empty) = call(&h.conn, pull("t", 0, 0, 300)).await else { panic!("pull failed") };
    assert_eq!(empty.status, PullStatus::NoNewMessage);
    assert!(started.elapsed() >= Duration::from_millis(290), "held for the requested wait");

    let conn = h.conn.clone();
    let held = tokio::spawn(async move {
        let t0 = Instant::now();
        (call(&conn, pull("t", 0, 0, 20_000)).await, t0.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A send on another stream is not blocked by the held pull.
    assert!(matches!(
        call(&h.conn, Request::Send(SendRequest { messages: vec![message("t", 0, "wake")] })).await,
        Response::Send(_)
    ));
    let (response, waited) = held.await.expect("join");
    let Response::Pull(page) = response else { panic!("pull failed") };
    assert_eq!(page.messages.len(), 1);
    assert!(waited < Duration::from_secs(10), "answered on arrival, not at the deadline ({waited:?})");
    h.broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_broker_keeps_serving() {
    let h = start(FlushKind::Async).await;
    create_topic(&h.conn, "t", 1).await;
    // Garbage, a wrong magic, a truncated header, a huge announced length, trailing bytes.
    assert_eq!(error_code(&raw(&h.conn, b"garbage garbage").await), Some(ErrorCode::BadRequest));
    assert_eq!(error_code(&raw(&h.conn, b"WEI").await), Some(ErrorCode::BadRequest));
    let mut huge = b"WEIR\x01\x00\x01\x05".to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(error_code(&raw(&h.conn, &huge).await), Some(ErrorCode::FrameTooLarge));
    let mut ok = BytesMut::new();
    Request::Status.encode(&mut ok).expect("encode");
    let mut trailing = ok.to_vec();
    trailing.push(0);
    assert_eq!(error_code(&raw(&h.conn, &trailing).await), Some(ErrorCode::BadRequest));
    // Oversized message, unknown topic, bad queue, empty batch.
    let big = message("t", 0, &"x".repeat(64 * 1024 + 1));
    assert_eq!(
        error_code(&call(&h.conn, Request::Send(SendRequest { messages: vec![big] })).await),
        Some(ErrorCode::MessageTooLarge)
    );
    assert_eq!(
        error_code(&call(&h.conn, Request::Send(SendRequest { messages: vec![message("nope", 0, "x")] })).await),
        Some(ErrorCode::UnknownTopic)
    );
    assert_eq!(
        error_code(&call(&h.conn, Request::Send(SendRequest { messages: vec![message("t", 5, "x")] })).await),
        Some(ErrorCode::BadRequest)
    );
    assert_eq!(
        error_code(&call(&h.conn, Request::Send(SendRequest { messages: vec![] })).await),
        Some(ErrorCode::BadRequest)
    );
    // Still serving on the same connection.
    assert!(matches!(call(&h.conn, Request::Status).await, Response::Status(_)));
    assert!(matches!(
        call(&h.conn, Request::Send(SendRequest { messages: vec![message("t", 0, "fine")] })).await,
        Response::Send(_)
    ));
    h.broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn many_concurrent_sends_on_one_connection() {
    let h = start(FlushKind::Sync).await;
    create_topic(&h.conn, "t", 4).await;
    let sends: Vec<_> = (0..1000)
        .map(|i| {
            let conn = h.conn.clone();
            tokio::spawn(async move {
                call(&conn, Request::Send(SendRequest { messages: vec![message("t", i % 4, &i.to_string())] })).await
            })
        })
        .collect();
    for send in sends {
        assert!(matches!(send.await.expect("join"), Response::Send(_)));
    }
    let mut total = 0;
    for q in 0..4 {
        let Response::QueueOffsets(o) =
            call(&h.conn, Request::QueueOffsets(weir_protocol::QueueOffsetsRequest { topic: "t".into(), queue_id: q }))
                .await
        else {
            panic!("offsets failed")
        };
        total += o.max_offset;
    }
    assert_eq!(total, 1000);
    h.broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn restart_keeps_messages_topics_and_committed_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.segment_size = 64 << 20;
    config.max_message_size = 64 * 1024;
    {
        let broker = Broker::start(config.clone()).await.expect("start");
        let (_endpoint, conn) = connect(&broker).await;
        create_topic(&conn, "t", 1).await;
        call(&conn, Request::Send(SendRequest { messages: vec![message("t", 0, "a"), message("t", 0, "b")] })).await;
        let commit =
            CommitOffsetRequest { consumer_group: "g".into(), topic: "t".into(), queue_id: 0, offset: 1, member: None };
        assert!(matches!(call(&conn, Request::CommitOffset(commit)).await, Response::CommitOffset));
        broker.shutdown().await.expect("shutdown");
    }
    let broker = Broker::start(config).await.expect("restart");
    let (_endpoint, conn) = connect(&broker).await;
    let fetch = FetchOffsetRequest { consumer_group: "g".into(), topic: "t".into(), queue_id: 0, member: None };
    let Response::FetchOffset(offset) = call(&conn, Request::FetchOffset(fetch)).await else { panic!("fetch failed") };
    assert_eq!(offset.offset, Some(1));
    let Response::Pull(page) = call(&conn, pull("t", 0, 1, 5_000)).await else { panic!("pull failed") };
    assert_eq!(&page.messages[0].body[..], b"b");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn tag_subscriptions_deliver_only_matching_tags() {
    let h = start(FlushKind::Async).await;
    create_topic(&h.conn, "t", 1).await;
    let tagged = |i: usize| {
        let mut m = message("t", 0, &i.to_string());
        m.tag = Some(if i.is_multiple_of(3) { "TagB".into() } else { "TagA".into() });
        m
    };
    let batch: Vec<_> = (0..30).map(tagged).collect();
    assert!(matches!(call(&h.conn, Request::Send(SendRequest { messages: batch })).await, Response::Send(_)));
    let mut request = PullRequest {
        member: None,
        consumer_group: "g".into(),
        topic: "t".into(),
        queue_id: 0,
        offset: 0,
        max_messages: 100,
        max_wait_ms: 5_000,
        filter: FilterExpression::Tag("TagB || TagC".into()),
    };
    // The send is acknowledged before every message is dispatched: pull until the end.
    let mut bodies = Vec::new();
    while request.offset < 30 {
        let Response::Pull(page) = call(&h.conn, Request::Pull(request.clone())).await else { panic!("pull failed") };
        bodies.extend(page.messages.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()));
        assert!(page.next_offset > request.offset);
        request.offset = page.next_offset;
    }
    assert_eq!(bodies, (0..30usize).filter(|i| i.is_multiple_of(3)).map(|i| i.to_string()).collect::<Vec<_>>());
    request.filter = FilterExpression::Tag("A ||".into());
    assert_eq!(error_code(&call(&h.conn, Request::Pull(request)).await), Some(ErrorCode::InvalidFilter));
    h.broker.shutdown().await.expect("shutdown");
}

/// Sends `n` messages with `region = r<i % 10>`, `amount = <i>` and every fifth one shadow traffic.
async fn send_orders(conn: &quinn::Connection, topic: &str, range: std::ops::Range<usize>) {
    let batch: Vec<_> = range
        .map(|i| {
            let mut m = message(topic, 0, &i.to_string());
            m.properties = vec![("region".into(), format!("r{}", i % 10)), ("amount".into(), i.to_string())];
            if i % 5 == 4 {
                m.properties.push(("shadow".into(), "true".into()));
            }
            m
        })
        .collect();
    assert!(matches!(call(conn, Request::Send(SendRequest { messages: batch })).await, Response::Send(_)));
}

/// Pulls with the registered subscription until `end`, returning the delivered bodies.
async fn pull_subscribed(conn: &quinn::Connection, group: &str, topic: &str, end: u64) -> Vec<String> {
    let mut request = PullRequest {
        member: None,
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: 0,
        offset: 0,
        max_messages: 7,
        max_wait_ms: 2_000,
        filter: FilterExpression::Subscribed,
    };
    let mut bodies = Vec::new();
    while request.offset < end {
        let Response::Pull(page) = call(conn, Request::Pull(request.clone())).await else { panic!("pull failed") };
        bodies.extend(page.messages.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()));
        assert!(page.next_offset > request.offset, "a pull never answers with the same range");
        request.offset = page.next_offset;
    }
    bodies
}

#[tokio::test]
async fn sql_subscriptions_shadow_groups_and_their_statistics() {
    let h = start(FlushKind::Async).await;
    create_topic(&h.conn, "orders", 1).await;
    send_orders(&h.conn, "orders", 0..200).await;
    let subscribe = |group: &str, filter: FilterExpression| {
        Request::Subscribe(SubscribeRequest {
            consumer_group: group.into(),
            topic: "orders".into(),
            filter,
            plugin: None,
            plugin_params: String::new(),
        })
    };
    // Pulling by registered subscription needs one.
    let err = tokio::time::timeout(Duration::from_secs(5), async {
        let request = Request::Pull(PullRequest {
            member: None,
            consumer_group: "nobody".into(),
            topic: "orders".into(),
            queue_id: 0,
            offset: 0,
            max_messages: 1,
            max_wait_ms: 0,
            filter: FilterExpression::Subscribed,
        });
        error_code(&call(&h.conn, request).await)
    })
    .await
    .expect("answered");
    assert_eq!(err, Some(ErrorCode::SubscriptionNotFound));
    // A bad expression is refused with its position.
    let Response::Error(bad) = call(&h.conn, subscribe("g", FilterExpression::Sql("region = ".into()))).await else {
        panic!("accepted a bad expression")
    };
    assert_eq!(bad.code, ErrorCode::InvalidFilter);
    assert!(bad.message.contains("column"), "{}", bad.message);

    let sql = FilterExpression::Sql("region = 'r7' AND amount > 100".into());
    let Response::Subscribe(v1) = call(&h.conn, subscribe("g", sql)).await else { panic!("subscribe failed") };
    assert_eq!(v1.version, 1);
    let expected: Vec<String> = (101..200).filter(|i| i % 10 == 7 && i % 5 != 4).map(|i| i.to_string()).collect();
    assert_eq!(pull_subscribed(&h.conn, "g", "orders", 200).await, expected);

    // A shadow group receives only shadow traffic, whatever its subscription says.
    let declared =
        call(&h.conn, Request::CreateGroup(GroupConfig { name: "stress".into(), shadow: true, strategy: None })).await;
    assert_eq!(
        declared,
        Response::CreateGroup(GroupConfig { name: "stress".into(), shadow: true, strategy: Some("average".into()) })
    );
    assert!(matches!(call(&h.conn, subscribe("stress", FilterExpression::All)).await, Response::Subscribe(_)));
    let shadow: Vec<String> = (0..200).filter(|i| i % 5 == 4).map(|i| i.to_string()).collect();
    assert_eq!(pull_subscribed(&h.conn, "stress", "orders", 200).await, shadow);

    let Response::GroupStats(stats) =
        call(&h.conn, Request::GroupStats(GroupStatsRequest { consumer_group: "g".into(), topic: None })).await
    else {
        panic!("stats failed")
    };
    let c = stats.subscriptions[0].counters;
    assert_eq!((c.examined, c.delivered), (200, expected.len() as u64));
    assert!(c.skipped_shadow >= 40 && c.skipped_by_bloom > 100, "{c:?}");
    assert!(c.body_reads < 40, "bodies read: {c:?}");
    let Response::Status(status) = call(&h.conn, Request::Status).await else { panic!("status failed") };
    assert_eq!(status.subscriptions.len(), 2);

    // A held pull is answered by a matching arrival only.
    let held = {
        let conn = h.conn.clone();
        tokio::spawn(async move {
            let request = PullRequest {
                member: None,
                consumer_group: "g".into(),
                topic: "orders".into(),
                queue_id: 0,
                offset: 200,
                max_messages: 10,
                max_wait_ms: 10_000,
                filter: FilterExpression::Subscribed,
            };
            call(&conn, Request::Pull(request)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_orders(&h.conn, "orders", 200..210).await; // r7 at 207, amount 207: a match
    let Response::Pull(page) = held.await.expect("task") else { panic!("pull failed") };
    let bodies: Vec<_> = page.messages.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect();
    assert_eq!(bodies, ["207"]);
    h.broker.shutdown().await.expect("shutdown");
}

fn heartbeat(member: &str, owned: &[u32], known_generation: u64, max_wait_ms: u32) -> Request {
    Request::Heartbeat(weir_protocol::HeartbeatRequest {
        consumer_group: "g".into(),
        member_id: member.into(),
        session: 7,
        mode: weir_protocol::ConsumeMode::Clustering,
        orderly: false,
        strategy: None,
        replace_subscriptions: false,
        subscriptions: vec![weir_protocol::MemberSubscription {
            topic: "t".into(),
            filter: FilterExpression::All,
            plugin: None,
            plugin_params: String::new(),
        }],
        owned: vec![weir_protocol::TopicAssignment {
            topic: "t".into(),
            queues: owned
                .iter()
                .map(|&queue_id| weir_protocol::AssignedQueue { queue_id, since_generation: 0 })
                .collect(),
        }],
        known_generation,
        max_wait_ms,
    })
}

fn assigned(response: &Response) -> (u64, Vec<u32>) {
    let Response::Heartbeat(view) = response else { panic!("not a heartbeat answer: {response:?}") };
    (view.generation, view.assignments.iter().flat_map(|t| t.queues.iter().map(|q| q.queue_id)).collect())
}

/// Two members split a topic's queues; the first one's held heartbeat is answered
/// the moment the second joins, and its pull of a queue it gave up is fenced.
#[tokio::test]
async fn members_split_queues_and_a_stale_owner_is_fenced() {
    let h = start(FlushKind::Async).await;
    create_topic(&h.conn, "t", 4).await;
    let (generation, queues) = assigned(&call(&h.conn, heartbeat("a", &[], 0, 0)).await);
    assert_eq!(queues, [0, 1, 2, 3]);
    let held = tokio::spawn({
        let conn = h.conn.clone();
        async move { call(&conn, heartbeat("a", &[0, 1, 2, 3], generation, 5_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let joined = Instant::now();
    let (_, b_queues) = assigned(&call(&h.conn, heartbeat("b", &[], 0, 0)).await);
    assert!(b_queues.is_empty(), "b waits until a lets its queues go: {b_queues:?}");
    let (a_generation, a_queues) = assigned(&held.await.expect("held heartbeat"));
    assert!(joined.elapsed() < Duration::from_secs(1), "the held heartbeat was answered on the change");
    assert_eq!(a_queues, [0, 1]);
    let Request::Pull(mut stale) = pull("t", 3, 0, 0) else { unreachable!("pull builds a pull") };
    stale.member = Some(weir_protocol::MemberRef { member_id: "a".into(), generation: a_generation });
    assert_eq!(error_code(&call(&h.conn, Request::Pull(stale)).await), Some(ErrorCode::NotAssigned));
    assigned(&call(&h.conn, heartbeat("a", &[0, 1], a_generation, 0)).await);
    let (_, b_queues) = assigned(&call(&h.conn, heartbeat("b", &[], 0, 0)).await);
    assert_eq!(b_queues, [2, 3], "once a let go, b owns the rest");
    let stale_commit = Request::CommitOffset(CommitOffsetRequest {
        consumer_group: "g".into(),
        topic: "t".into(),
        queue_id: 3,
        offset: 1,
        member: Some(weir_protocol::MemberRef { member_id: "a".into(), generation: a_generation }),
    });
    assert_eq!(error_code(&call(&h.conn, stale_commit).await), Some(ErrorCode::NotAssigned));
    h.broker.shutdown().await.expect("shutdown");
}

/// The connection cap is a permit per connection, taken before the handshake: past it
/// a connection is refused, and a closed one frees its permit.
#[tokio::test]
async fn connections_past_the_cap_are_refused_until_one_closes() {
    let h = start_with(|config| config.max_connections = 2).await;
    let (_second_endpoint, second) = connect(&h.broker).await;
    let (_endpoint, refused) = try_connect(&h.broker).await;
    assert!(refused.is_err(), "a third connection is refused: {refused:?}");
    let Response::Status(status) = call(&h.conn, Request::Status).await else { panic!("status") };
    assert_eq!(status.connections, 2);
    second.close(0u32.into(), b"done");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_endpoint, again) = try_connect(&h.broker).await;
        if again.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's permit comes back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.broker.shutdown().await.expect("shutdown");
}
