//! Codec micro-benchmarks with kafka-protocol: decode a ProduceRequest as the
//! broker receives it, encode a FetchResponse as kafka-protocol does (one
//! buffer) and as the broker answers (records passed through as chunks).
//! Run: `cargo bench -p weir-bench --bench codec`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use weir_bench::batch::{Shape, Template};
use weir_bench::params::{CompressionKind, KeyDistribution};

fn produce_frame(records: usize, message_size: usize) -> Bytes {
    let shape = Shape {
        topic: "bench".into(),
        message_size,
        records,
        compression: CompressionKind::None,
        keys: KeyDistribution::None,
        acks: 1,
        timeout_ms: 30_000,
        stamp: false,
    };
    let mut template = Template::new(&shape, 0, 9, 1).expect("template");
    Bytes::copy_from_slice(template.frame(1, 0, 0).expect("frame"))
}

fn bench_decode_produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    let frame = produce_frame(100, 1024);
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("decode_produce_request_v9_100x1KiB", |b| {
        b.iter(|| {
            let decoded = weir_net::codec::decode_header(frame.slice(4..)).expect("header");
            let mut body = decoded.body;
            ProduceRequest::decode(&mut body, decoded.header.request_api_version).expect("body")
        })
    });
    let records: Bytes = {
        let one = produce_frame(100, 1024);
        let decoded = weir_net::codec::decode_header(one.slice(4..)).expect("header");
        let mut body = decoded.body;
        let request = ProduceRequest::decode(&mut body, 9).expect("body");
        let batch = request.topic_data[0].partition_data[0].records.clone().expect("records");
        let mut all = BytesMut::new();
        while all.len() + batch.len() <= 1 << 20 {
            all.extend_from_slice(&batch);
        }
        all.freeze()
    };
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(1_000_000)
            .with_records(Some(records.clone()))])]);
    group.throughput(Throughput::Bytes(records.len() as u64));
    // kafka-protocol's own encoding into one buffer (the records copied), and
    // the broker's: small chunks around the records, passed through.
    group.bench_function("encode_fetch_response_v12_1MiB_copied", |b| {
        b.iter(|| weir_net::codec::encode_response(ApiKey::Fetch, 12, 7, &response).expect("encode"))
    });
    group.bench_function("encode_fetch_response_v12_1MiB_chunked", |b| {
        b.iter(|| weir_net::codec::encode_fetch_response(12, 7, &response).expect("encode"))
    });
    // The same bytes spread over 100 partitions (10 KiB each) of 10 topics:
    // the chunked encoding's cost per partition.
    let spread = FetchResponse::default().with_responses(
        (0..10)
            .map(|t| {
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(format!("bench-{t}"))))
                    .with_partitions(
                        (0..10)
                            .map(|p| {
                                let at = (t * 10 + p) * 10_240;
                                PartitionData::default()
                                    .with_partition_index(p as i32)
                                    .with_high_watermark(1_000_000)
                                    .with_records(Some(records.slice(at..at + 10_240)))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    group.bench_function("encode_fetch_response_v12_100x10KiB_copied", |b| {
        b.iter(|| weir_net::codec::encode_response(ApiKey::Fetch, 12, 7, &spread).expect("encode"))
    });
    group.bench_function("encode_fetch_response_v12_100x10KiB_chunked", |b| {
        b.iter(|| weir_net::codec::encode_fetch_response(12, 7, &spread).expect("encode"))
    });
    group.finish();
}

criterion_group!(benches, bench_decode_produce);
criterion_main!(benches);
