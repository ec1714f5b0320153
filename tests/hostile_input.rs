//! Hostile bytes against a real `tallyd`: garbage message bodies for every method, broken
//! gRPC framing (truncated, oversized and bogus length prefixes, bad flags), a message over
//! the size limit, and huge or non-ASCII metadata. Each call must get an error status, the
//! server must keep answering (health check and `GetLedgerInfo`), and the journal must not
//! grow.
//!
//! Bodies are sent two ways: through `tonic::client::Grpc` with a codec that writes raw
//! bytes (tonic frames them correctly), and as raw HTTP/2 request bodies over the channel
//! (the frame header is ours). The raw bodies are `String`s (the one byte-carrying
//! `http_body::Body` reachable from this package), so their bytes are valid UTF-8: length
//! prefixes are chosen from ASCII bytes (`0x7f7f7f7f` is about 2 GiB).

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use prost::Message;
use tally::{Tallyd, ADMIN_TOKEN};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::{self, HeaderName, HeaderValue};
use tonic::codegen::{Body as _, Service as _};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The server's message limit in these tests (`grpc-message-bytes-max`, its minimum).
const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------
// A codec that sends and receives raw bytes.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

// ---------------------------------------------------------------------------
// The server and its methods.
// ---------------------------------------------------------------------------

struct Server {
    tallyd: Tallyd,
    _dir: tempfile::TempDir,
}

/// A `tallyd` at the smallest message limit, with no timed checkpoints (they would grow
/// the journal while the test watches it).
fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tallyd.toml");
    std::fs::write(
        &config,
        format!(
            "grpc-message-bytes-max = {MESSAGE_BYTES_MAX}\n\
             [audit]\ncheckpoint-every-entries = 1000000\ncheckpoint-interval-ms = 3600000\n"
        ),
    )
    .expect("write config");
    let data = dir.path().join("data");
    let tallyd = Tallyd::start_with_args(&data, &["--config", config.to_str().unwrap()]);
    Server { tallyd, _dir: dir }
}

/// Every `/package.Service/Method` served, and whether it streams its answer.
fn methods() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(tally_proto::v1::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        let package = file.package.unwrap_or_default();
        for service in file.service {
            for method in service.method {
                methods.push((
                    format!(
                        "/{package}.{}/{}",
                        service.name.clone().unwrap_or_default(),
                        method.name.unwrap_or_default()
                    ),
                    method.server_streaming.unwrap_or(false),
                ));
            }
        }
    }
    assert!(methods.len() > 20, "{methods:?}");
    methods
}

async fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

/// Calls `method` with `body` as its (correctly framed) message bytes; the answer's status
/// (`Ok` when the call succeeded).
async fn call_raw(channel: &Channel, method: &str, streaming: bool, body: Vec<u8>) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(30));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    let path = method.parse().unwrap();
    let answer = if streaming {
        match grpc.server_streaming(request, path, RawCodec).await {
            Ok(response) => response.into_inner().message().await.map(|_| ()),
            Err(status) => Err(status),
        }
    } else {
        grpc.unary(request, path, RawCodec).await.map(|_| ())
    };
    answer.err().unwrap_or_else(|| Status::ok(""))
}

/// Sends `body` as the raw HTTP/2 body of a gRPC call of `method`, with the usual headers
/// plus `extra`; the gRPC status of the answer, or the transport error.
async fn call_http(
    channel: &Channel,
    method: &str,
    extra: Vec<(HeaderName, HeaderValue)>,
    body: String,
) -> Result<Status, String> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://tallyd{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(tonic::body::Body::new(body))
        .unwrap();
    for (name, value) in extra {
        request.headers_mut().append(name, value);
    }
    let mut channel = channel.clone();
    poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let call = tokio::time::timeout(Duration::from_secs(30), channel.call(request));
    let response = call
        .await
        .map_err(|_| "no answer within 30 s".to_string())?
        .map_err(|e| format!("transport: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    if let Some(status) = Status::from_header_map(response.headers()) {
        return Ok(status); // trailers-only answer
    }
    let mut body = response.into_body();
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Err("the answer ended without a grpc-status".into()),
            Some(Err(status)) => return Ok(status),
            Some(Ok(frame)) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return Status::from_header_map(&trailers)
                        .ok_or_else(|| "trailers without a grpc-status".to_string());
                }
            }
        }
    }
}

/// The server still answers (health check and `GetLedgerInfo`) and its journal still has
/// `length` entries.
async fn assert_serving_unchanged(url: &str, length: u64, after: &str) {
    let channel = channel(url).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap_or_else(|status| panic!("health check failed after {after}: {status:?}"));
    assert_eq!(
        answer.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
        "after {after}"
    );
    let client = tally::connect(url.to_string()).await.expect("connect");
    let info = client
        .ledger_info()
        .await
        .unwrap_or_else(|e| panic!("GetLedgerInfo failed after {after}: {e}"));
    assert_eq!(
        info.journal_length, length,
        "the journal grew after {after}"
    );
}

async fn journal_length(url: &str) -> u64 {
    let client = tally::connect(url.to_string()).await.expect("connect");
    client
        .ledger_info()
        .await
        .expect("ledger info")
        .journal_length
}

fn assert_error(status: &Status, what: &str) {
    assert_ne!(status.code(), Code::Ok, "{what} was accepted");
    assert_ne!(
        status.code(),
        Code::Unauthenticated,
        "{what}: refused before its body was read: {status:?}"
    );
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

/// Message bodies that are not protobuf for any message.
fn garbage_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut noise = Vec::with_capacity(4096);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    // Noise that starts with an invalid key (field 0), so no message can decode it.
    noise[0] = 0x00;
    vec![
        ("pseudo-random noise", noise),
        ("field number 0", vec![0x00, 0x01]),
        (
            "a varint of 11 bytes",
            vec![0x08; 1].into_iter().chain([0xff; 11]).collect(),
        ),
        ("a truncated varint", vec![0x08, 0xff]),
        (
            "a length past the end",
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x41],
        ),
        (
            "a length of 2^63",
            vec![
                0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ],
        ),
        ("wire type 7", vec![0x0f]),
        ("an end group with no start", vec![0x0c]),
        ("an unclosed group", vec![0x0b]),
        ("groups nested 10,000 deep", [0x0b].repeat(10_000)),
        ("a truncated fixed64", vec![0x09, 0x01, 0x02]),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bodies_are_refused_by_every_method() {
    // Goal: every method of every service answers malformed protobuf with an error
    // status, and the server neither crashes nor records anything.
    let server = start();
    let url = server.tallyd.url.clone();
    let length = journal_length(&url).await;
    let channel = channel(&url).await;
    let methods = methods();
    for (method, streaming) in &methods {
        for (what, body) in garbage_bodies() {
            let status = call_raw(&channel, method, *streaming, body).await;
            assert_error(&status, &format!("{method} with {what}"));
        }
    }
    assert_serving_unchanged(&url, length, "garbage bodies").await;
}

/// Request bodies with a broken gRPC frame (all valid UTF-8; see the module comment).
fn broken_frames() -> Vec<(&'static str, String)> {
    vec![
        ("no message at all", String::new()),
        ("a 3-byte frame header", "\0\0\0".into()),
        ("a length of 100 with 3 bytes", "\0\0\0\0\x64abc".into()),
        (
            "a length of 2 GiB with 3 bytes",
            "\0\x7f\x7f\x7f\x7fabc".into(),
        ),
        (
            "a length of the limit + 1 with 3 bytes",
            "\0\x00\x40\x00\x01abc".into(),
        ),
        (
            "a compressed frame with no grpc-encoding",
            "\x01\0\0\0\x02\x08\x01".into(),
        ),
        ("a frame flag of 0x7f", "\x7f\0\0\0\0".into()),
        ("a frame flag of 0x02", "\x02\0\0\0\x02\x08\x01".into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_framing_is_refused_by_every_unary_method() {
    // Goal: truncated, oversized and bogus length prefixes and flags are refused with an
    // error status, before any allocation of the claimed size, by every unary method.
    let server = start();
    let url = server.tallyd.url.clone();
    let length = journal_length(&url).await;
    let channel = channel(&url).await;
    for (method, streaming) in methods() {
        if streaming {
            continue;
        }
        for (what, body) in broken_frames() {
            let answer = call_http(&channel, &method, Vec::new(), body).await;
            let what = format!("{method} with {what}");
            match answer {
                Ok(status) => assert_error(&status, &what),
                Err(error) => panic!("{what}: no gRPC status: {error}"),
            }
        }
    }
    assert_serving_unchanged(&url, length, "broken frames").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_size_limit_is_refused() {
    // Goal: a message one byte over `grpc-message-bytes-max` (and one far over it) is
    // refused as too large, whatever the method; the server keeps serving.
    let server = start();
    let url = server.tallyd.url.clone();
    let length = journal_length(&url).await;
    let channel = channel(&url).await;
    for method in [
        "/tally.v1.Ledger/CreateTransactions",
        "/tally.v1.Ledger/CreateTransactionsPacked",
        "/tally.v1.Ledger/CreateAccounts",
        "/tally.v1.Admin/CreateApiKey",
        "/tally.v1.Ledger/GetLedgerInfo",
    ] {
        for size in [MESSAGE_BYTES_MAX + 1, 4 * MESSAGE_BYTES_MAX] {
            // A valid protobuf: one unknown bytes field (number 15) holding the rest.
            let mut body = vec![0x7a];
            let payload = size - 1 - prost::encoding::encoded_len_varint(size as u64);
            prost::encoding::encode_varint(payload as u64, &mut body);
            body.resize(size, b'x');
            let status = call_raw(&channel, method, false, body).await;
            assert!(
                matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
                "{method} with {size} bytes: {status:?}"
            );
        }
    }
    assert_serving_unchanged(&url, length, "oversized messages").await;
}

/// Packed batches (`CreateTransactionsPacked`, docs/packed-batch.md) in a well-formed
/// message that no decoder should accept: the batch format is a second parser of client
/// bytes behind the protobuf one.
fn hostile_packed_batches() -> Vec<(&'static str, Vec<u8>)> {
    let header = |items: u32, names: u32| {
        let mut bytes = b"TLYB\x01\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&items.to_le_bytes());
        bytes.extend_from_slice(&names.to_le_bytes());
        bytes
    };
    // One transaction of `postings` postings, each naming name 0.
    let postings = |postings: u16| {
        let mut item = vec![1, 0, 1, 0, b't'];
        item.extend_from_slice(&[0; 8]); // timeout_seconds
        item.extend_from_slice(&[0, 0, 0, 0]); // description, metadata
        item.extend_from_slice(&postings.to_le_bytes());
        for _ in 0..postings {
            item.extend_from_slice(&[0, 0, 0, 0, 1]); // name 0, debit
            item.extend_from_slice(&1u128.to_le_bytes());
            item.extend_from_slice(&[0, 0, 0]); // scale, currency
        }
        item
    };
    let long_name = {
        let mut bytes = header(1, 1);
        bytes.extend_from_slice(&u16::MAX.to_le_bytes());
        bytes.extend(std::iter::repeat_n(b'a', usize::from(u16::MAX)));
        // 60,000 postings naming a 64 KiB name: 4 GB of copies if nothing stopped it.
        bytes.extend_from_slice(&postings(60_000));
        bytes
    };
    let mut truncated = header(1, 0);
    truncated.extend_from_slice(&postings(3)[..40]);
    let mut huge_counts = header(8_190, 0);
    for _ in 0..8_190 {
        huge_counts.extend_from_slice(&[1, 0, 0, 0]);
        huge_counts.extend_from_slice(&[0; 8]);
        huge_counts.extend_from_slice(&[0, 0, 0xff, 0xff, 0xff, 0xff]); // metadata, postings: 65,535
    }
    vec![
        ("an empty batch field", Vec::new()),
        (
            "protobuf where the batch should be",
            vec![0x0a, 0x02, 0x08, 0x01],
        ),
        ("a header claiming 2^32 - 1 items", header(u32::MAX, 0)),
        ("a header claiming 2^32 - 1 names", header(1, u32::MAX)),
        ("an item cut short", truncated),
        ("8,190 items claiming 65,535 metadata entries", huge_counts),
        ("a 64 KiB name named by 60,000 postings", long_name),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_packed_batches_are_refused() {
    // Goal: a well-formed `PackedTransactionsRequest` whose batch is garbage, lies about
    // its counts or would make the server copy gigabytes is refused naming the byte at
    // fault, and the server keeps serving with its journal unchanged.
    let server = start();
    let url = server.tallyd.url.clone();
    let length = journal_length(&url).await;
    let channel = channel(&url).await;
    for (what, batch) in hostile_packed_batches() {
        let body = tally_proto::v1::PackedTransactionsRequest {
            batch: batch.into(),
        }
        .encode_to_vec();
        let status = call_raw(
            &channel,
            "/tally.v1.Ledger/CreateTransactionsPacked",
            false,
            body,
        )
        .await;
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::ResourceExhausted
            ),
            "{what}: {status:?}"
        );
        assert!(
            status.message().starts_with("packed batch, byte "),
            "{what}: {status:?}"
        );
    }
    assert_serving_unchanged(&url, length, "hostile packed batches").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_and_non_ascii_metadata_is_refused() {
    // Goal: non-ASCII bytes in metadata (the key header among them), one huge header and
    // many headers are refused (by the server, or by the HTTP/2 layer before the call),
    // never accepted as a key, and the server keeps serving.
    let server = start();
    let url = server.tallyd.url.clone();
    let length = journal_length(&url).await;
    let channel = channel(&url).await;
    let empty_message = "\0\0\0\0\0".to_string();
    let method = "/tally.v1.Admin/WhoAmI";

    // A token with non-ASCII bytes, sent as the only authorization header.
    let mut bad_token = format!("Bearer {ADMIN_TOKEN}").into_bytes();
    let last = bad_token.len() - 1;
    bad_token[last] = 0xe9;
    let cases: Vec<(&str, Vec<(HeaderName, HeaderValue)>)> = vec![
        (
            "a non-ASCII x-junk header",
            vec![(
                HeaderName::from_static("x-junk"),
                HeaderValue::from_bytes(b"\xff\xfe\x80caf\xc3\xa9").unwrap(),
            )],
        ),
        (
            "a non-ASCII grpc-timeout",
            vec![(
                HeaderName::from_static("grpc-timeout"),
                HeaderValue::from_bytes(b"1\xffS").unwrap(),
            )],
        ),
        (
            "a non-ASCII grpc-encoding",
            vec![(
                HeaderName::from_static("grpc-encoding"),
                HeaderValue::from_bytes(b"gz\xefp").unwrap(),
            )],
        ),
        (
            "an 8 KiB header",
            vec![(
                HeaderName::from_static("x-junk"),
                HeaderValue::from_str(&"x".repeat(8 << 10)).unwrap(),
            )],
        ),
        (
            "a 1 MiB header",
            vec![(
                HeaderName::from_static("x-junk"),
                HeaderValue::from_str(&"x".repeat(1 << 20)).unwrap(),
            )],
        ),
        (
            "10,000 headers",
            (0..10_000)
                .map(|i| {
                    (
                        HeaderName::from_bytes(format!("x-junk-{i}").as_bytes()).unwrap(),
                        HeaderValue::from_static("junk"),
                    )
                })
                .collect(),
        ),
    ];
    for (what, headers) in cases {
        match call_http(&channel, method, headers, empty_message.clone()).await {
            // A header the server does not read is harmless: accepted or refused, it must
            // not take the server down (checked below).
            Ok(status) => eprintln!("{what}: {:?}", status.code()),
            Err(error) => eprintln!("{what}: refused before the call: {error}"),
        }
        assert_serving_unchanged(&url, length, what).await;
    }

    // Headers the server does read: a broken key is never a key.
    let broken_keys: Vec<(&str, HeaderValue)> = vec![
        (
            "a token with a non-ASCII byte",
            HeaderValue::from_bytes(&bad_token).unwrap(),
        ),
        (
            "a non-UTF-8 token",
            HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap(),
        ),
        (
            "an 8 KiB token",
            HeaderValue::from_str(&format!("Bearer tly_{}", "a".repeat(8 << 10))).unwrap(),
        ),
        (
            "a 64 KiB token",
            HeaderValue::from_str(&format!("Bearer tly_{}", "a".repeat(64 << 10))).unwrap(),
        ),
        (
            "a 1 MiB token",
            HeaderValue::from_str(&format!("Bearer {}", "0".repeat(1 << 20))).unwrap(),
        ),
    ];
    for (what, value) in broken_keys {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://tallyd{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", value)
            .body(tonic::body::Body::new(empty_message.clone()))
            .unwrap();
        let mut channel = channel.clone();
        poll_fn(|cx| channel.poll_ready(cx)).await.unwrap();
        match channel.call(request).await {
            Ok(response) => {
                let status = Status::from_header_map(response.headers());
                let code = status.as_ref().map(Status::code);
                eprintln!("{what}: {code:?}");
                assert_eq!(
                    code,
                    Some(Code::Unauthenticated),
                    "{what}: {status:?} (HTTP {})",
                    response.status()
                );
            }
            Err(error) => eprintln!("{what}: refused before the call: {error}"),
        }
        assert_serving_unchanged(&url, length, what).await;
    }
}
