//! Hostile input: each bad connection is closed alone; the server keeps serving the others.

mod common;

use std::time::Duration;

use common::*;
use tb_devserver::{DeviceSpec, TbValue};

#[test]
fn garbage_and_truncated_packets_close_only_their_connection() {
    let s = server();
    let mut good = Client::device(s.local_addr());
    let inputs: Vec<Vec<u8>> = vec![
        vec![0xff; 64],                           // invalid packet type
        vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x7f], // remaining length of 5 bytes
        vec![0x30, 0x02, 0x00, 0x05],             // PUBLISH before CONNECT
        vec![0x10, 0x04, 0x00, 0x10, b'M', b'Q'], // CONNECT shorter than it says
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for bytes in inputs {
        let mut c = Client::open(s.local_addr());
        c.send(&bytes);
        c.stream.shutdown(std::net::Shutdown::Write).ok();
        c.expect_closed();
    }
    // Malformed packets after CONNECT.
    s.add_device(DeviceSpec::access_token("other", "OTHER"))
        .unwrap();
    for bytes in [
        vec![0x36, 0x03, 0x00, 0x01, b'a'],             // QoS 3
        vec![0x82, 0x02, 0x00, 0x01],                   // SUBSCRIBE without filters
        vec![0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00], // packet id 0
        vec![0x30, 0x04, 0x00, 0x02, 0xc3, 0x28],       // topic not UTF-8
    ] {
        let mut c = Client::device_token(s.local_addr(), "OTHER");
        c.send(&bytes);
        c.expect_closed();
    }
    // A client that vanishes mid-packet.
    let mut c = Client::device_token(s.local_addr(), "OTHER");
    let p = publish("v1/devices/me/telemetry", 1, 1, b"{\"a\":1}");
    c.send(&p[..p.len() - 3]);
    drop(c);
    // Deeply nested JSON is a validation failure, not a crash.
    let mut c = Client::device_token(s.local_addr(), "OTHER");
    c.send(&publish("v1/devices/me/telemetry", 1, 1, &[b'['; 60_000]));
    c.expect_closed();
    // The first device never noticed.
    good.send(&publish("v1/devices/me/telemetry", 1, 9, b"{\"ok\":true}"));
    assert_eq!(good.frame(), [0x40, 2, 0, 9]);
    assert_eq!(
        s.latest_telemetry(DEVICE).unwrap()["ok"].value,
        TbValue::Bool(true)
    );
}

#[test]
fn connect_with_the_reserved_flag_set_is_closed_without_connack() {
    // MQTT 3.1.1 3.1.2-3, MQTT 5 3.1.2.3: the server must treat it as malformed and close.
    let s = server();
    for level in [4u8, 5] {
        let mut bytes = connect_raw("MQTT", level, "c1", Some(TOKEN), None, true);
        let flags_at = 2 + 6 + 1; // fixed header, "MQTT", level
        assert_eq!(bytes[flags_at], 0x82);
        bytes[flags_at] |= 0x01;
        let mut c = Client::open(s.local_addr());
        c.send(&bytes);
        c.expect_closed();
    }
    // The same CONNECT without the bit is accepted.
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 4, "c1", Some(TOKEN), None, true));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
}

#[test]
fn raw_connect_then_silence_is_closed_by_inactivity_timeout() {
    let s = server_with(tb_devserver::Config {
        inactivity_timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let mut c = Client::open(s.local_addr());
    c.expect_closed();
}

#[test]
fn log_stream_has_a_line_per_connection_and_upload() {
    let s = server();
    let logs = s.log_stream();
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/telemetry", 1, 1, b"{\"t\":21.5}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let mut lines = Vec::new();
    while let Some(l) = logs.recv_timeout(Duration::from_secs(2)) {
        let done = l.contains("telemetry");
        lines.push(l);
        if done {
            break;
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"dev1\"") && l.contains("connected")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("telemetry (1 values): {\"t\":21.5}")),
        "{lines:?}"
    );
}

static SCOPE_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn counting_scope(forward: &mut dyn FnMut()) {
    SCOPE_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    forward();
}

#[test]
fn pipelined_uploads_are_logged_in_order_before_their_pubacks() {
    let s = server_with(tb_devserver::Config {
        log_scope: Some(counting_scope),
        ..Default::default()
    });
    let mut c = Client::device(s.local_addr());
    let logs = s.log_stream();
    let mut burst = Vec::new();
    for (i, t) in [(1u16, "1"), (2, "2"), (3, "3")] {
        burst.extend(publish(
            "v1/devices/me/telemetry",
            1,
            i,
            format!("{{\"t\":{t}}}").as_bytes(),
        ));
    }
    c.send(&burst);
    for i in 1..=3u8 {
        assert_eq!(c.frame(), [0x40, 2, 0, i]);
    }
    // Lines are emitted before the PUBACKs are written: no waiting needed.
    let lines: Vec<String> = std::iter::from_fn(|| logs.try_recv()).collect();
    let uploads: Vec<&String> = lines.iter().filter(|l| l.contains("telemetry")).collect();
    assert_eq!(uploads.len(), 3, "{lines:?}");
    for (line, t) in uploads.iter().zip(["1", "2", "3"]) {
        assert!(
            line.ends_with(&format!("telemetry (1 values): {{\"t\":{t}}}")),
            "{line}"
        );
    }
    let calls = SCOPE_CALLS.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=lines.len() + 2).contains(&calls), "{calls} scopes");
}

#[test]
fn shutdown_closes_connections_and_frees_the_port() {
    let s = server();
    let addr = s.local_addr();
    let mut c = Client::device(addr);
    s.shutdown();
    c.expect_closed();
    drop(s);
    // The port is free again: a new server binds it.
    let again = tb_devserver::DevServer::start(tb_devserver::Config {
        port: addr.port(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(again.local_addr(), addr);
    let busy = tb_devserver::DevServer::start(tb_devserver::Config {
        port: addr.port(),
        ..Default::default()
    });
    match busy {
        Err(tb_devserver::DevServerError::Bind { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse)
        }
        _ => panic!("expected AddrInUse"),
    }
}
