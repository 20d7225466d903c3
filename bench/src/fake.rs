//! A loopback broker that answers every produce request at once, without
//! looking at it: what the generator reaches against it is its own ceiling.

use crate::wire::response_correlation_id;
use anyhow::Context;
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ProduceResponse};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use weir_net::codec::encode_response;

/// Starts the fake broker on an ephemeral loopback port; returns its address.
/// `answer_produce` is false for acks=0. Its threads end with their connections.
pub fn start(answer_produce: bool) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the fake broker")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::Builder::new().name("fake-broker".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = std::thread::Builder::new().name("fake-conn".into()).spawn(move || serve(stream, answer_produce));
        }
    })?;
    Ok(addr)
}

fn serve(mut stream: TcpStream, answer_produce: bool) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    // Answers are encoded once per version and only get their correlation id patched.
    let mut produce_answers: Vec<Option<Vec<u8>>> = vec![None; 16];
    let mut buf = Vec::new();
    let mut len = [0u8; 4];
    loop {
        if stream.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let n = i32::from_be_bytes(len).clamp(0, 256 << 20) as usize;
        buf.resize(n, 0);
        stream.read_exact(&mut buf)?;
        let (key, version) = (i16::from_be_bytes([buf[0], buf[1]]), i16::from_be_bytes([buf[2], buf[3]]));
        let correlation_id = response_correlation_id(&buf[4..])?;
        if key == ApiKey::ApiVersions as i16 {
            let response = ApiVersionsResponse::default().with_api_keys(vec![
                ApiVersion::default().with_api_key(ApiKey::Produce as i16).with_min_version(3).with_max_version(9),
                ApiVersion::default().with_api_key(ApiKey::ApiVersions as i16).with_min_version(0).with_max_version(3),
            ]);
            let version = version.clamp(0, 3);
            stream.write_all(&encode_response(ApiKey::ApiVersions, version, correlation_id, &response)?)?;
        } else if key == ApiKey::Produce as i16 && answer_produce {
            let slot = &mut produce_answers[version.clamp(0, 15) as usize];
            let answer = match slot {
                Some(a) => a,
                None => {
                    let a: Bytes = encode_response(ApiKey::Produce, version, 0, &ProduceResponse::default())?;
                    slot.insert(a.to_vec())
                }
            };
            answer[4..8].copy_from_slice(&correlation_id.to_be_bytes());
            stream.write_all(answer)?;
        }
    }
}
