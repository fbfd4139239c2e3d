//! Entry points for the cargo-fuzz targets in `crates/tb-devserver/fuzz` (feature `fuzzing`,
//! off in every normal build): they reach the session and the JSON parser, which are private.
//! Each call builds a fresh server state, so inputs do not influence one another.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::watch;

use crate::config::{Config, RateLimits};
use crate::json::parse_lenient;
use crate::ratelimit::{Limits, RateLimitSpec};
use crate::session::{ClientCert, Session};
use crate::shared::Shared;
use crate::store::*;
use crate::value::{parse_payload, type_object, TypingOptions};

/// Access token of the plain device every input may use.
pub const DEVICE_TOKEN: &str = "T";
/// Access token of the gateway device.
pub const GATEWAY_TOKEN: &str = "G";
/// The PEM body of the X.509 device's certificate (a stand-in; it is only compared).
pub const X509_BODY: &str = "MIIBfuzz";

/// Inputs served by one runtime before it is replaced.
const RUNTIME_USES: u32 = 4096;

thread_local! {
    static RUNTIME: std::cell::RefCell<Option<(tokio::runtime::Runtime, u32)>> =
        const { std::cell::RefCell::new(None) };
}

fn connect(client_id: &str, username: &str, v5: bool) -> Vec<u8> {
    let s = |t: &str| {
        let mut v = (t.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(t.as_bytes());
        v
    };
    let mut body = s("MQTT");
    body.push(if v5 { 5 } else { 4 });
    body.push(0x82); // username, clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    if v5 {
        body.push(0); // no properties
    }
    body.extend(s(client_id));
    body.extend(s(username));
    let mut out = vec![0x10, body.len() as u8];
    out.extend(body);
    out
}

/// The configuration and its parsed rate limits, made once per thread (they are only read).
fn config() -> Option<(Config, Limits)> {
    let config = Config {
        rate_limits: RateLimits {
            messages: None,
            telemetry_messages: Some("1000:1".into()),
            telemetry_data_points: Some("5000:1".into()),
        },
        max_telemetry_per_device: 64,
        ..Config::default()
    };
    let limits = Limits {
        device: RateLimitSpec::parse_all(&config.rate_limits).ok()?,
        gateway: RateLimitSpec::parse_all(&config.gateway_rate_limits).ok()?,
    };
    Some((config, limits))
}

fn state() -> Option<Arc<Shared>> {
    thread_local! {
        static CONFIG: Option<(Config, Limits)> = config();
    }
    let (config, limits) = CONFIG.with(Clone::clone)?;
    let mut store = Store::default();
    store.insert_device(DeviceSpec::access_token("dev", DEVICE_TOKEN));
    store.insert_device(DeviceSpec::access_token("gw", GATEWAY_TOKEN).gateway(true));
    store.insert_device(DeviceSpec {
        name: "x509".into(),
        credentials: Credentials::X509(X509_BODY.into()),
        gateway: false,
        profile: None,
    });
    store.insert_device(DeviceSpec::mqtt_basic(
        "basic",
        Some("cid".into()),
        Some("user".into()),
        Some("pw".into()),
    ));
    store.put_profile(ProvisionProfile {
        key: "k".into(),
        secret: "s".into(),
        strategy: ProvisionStrategy::AllowCreateNewDevices,
    });
    if let Some(d) = store.devices.get_mut("dev") {
        d.firmware = Some(AssignedFirmware {
            data: Bytes::from_static(&[7u8; 300]),
            package: None,
        });
    }
    let (shutdown, _) = watch::channel(false);
    Some(Arc::new(Shared::new(config, limits, shutdown, store, None)))
}

/// Feeds `data` to a fresh session as bytes read from a socket, then lets time pass.
///
/// The first byte steers: bits 0-1 prepend a CONNECT (none, the device's over MQTT 3.1.1,
/// over MQTT 5, the gateway's), bit 2 presents the X.509 certificate, bits 3-7 give the size
/// of the reads the rest is cut into (1 to 32 bytes, 0 = all at once).
pub fn session(data: &[u8]) {
    let Some((&steer, rest)) = data.split_first() else {
        return;
    };
    // Feature code spawns tasks (client RPC answers); they need a runtime, never run here.
    // Design: one runtime per thread, replaced every RUNTIME_USES inputs, so that the tasks
    // left behind stay few and building a runtime does not dominate each run.
    let Some(rt) = RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some((rt, uses)) if *uses < RUNTIME_USES => {
                *uses += 1;
                Some(rt.handle().clone())
            }
            _ => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .ok()?;
                let handle = rt.handle().clone();
                *slot = Some((rt, 1));
                Some(handle)
            }
        }
    }) else {
        return;
    };
    let _guard = rt.enter();
    let Some(shared) = state() else {
        return;
    };
    let mut input = match steer & 3 {
        1 => connect("fuzz", DEVICE_TOKEN, false),
        2 => connect("fuzz", DEVICE_TOKEN, true),
        3 => connect("fuzz-gw", GATEWAY_TOKEN, false),
        _ => Vec::new(),
    };
    input.extend_from_slice(rest);
    let chunk = match steer >> 3 {
        0 => input.len().max(1),
        n => n as usize,
    };
    let (tx, mut rx) = unbounded_channel();
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
    let mut s = Session::new(shared.clone(), 1, peer, tx);
    if steer & 4 != 0 {
        s.set_client_certificate(Some(ClientCert {
            body: X509_BODY.into(),
            invalid: None,
        }));
    }
    let mut now = Instant::now();
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        s.handle_data(&mut buf, now);
        while let Ok(cmd) = rx.try_recv() {
            s.handle_cmd(cmd);
        }
        s.flush_logs();
        let _ = s.poll_transmit().len();
        s.transmitted();
        if s.is_closed() {
            break;
        }
        now += Duration::from_millis(10);
    }
    if !s.is_closed() {
        s.handle_timeout(s.deadline().max(now));
        s.flush_logs();
    }
    s.finish();
    s.flush_logs();
}

/// Parses `data` with the lenient JSON parser and the payload typing, and checks that what
/// the parser accepts it writes back as JSON it accepts again, unchanged.
///
/// # Panics
/// When that round trip fails: a bug for the fuzzer to report.
pub fn json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(v) = parse_lenient(text) {
            let out = v.to_json();
            let again = parse_lenient(&out);
            assert!(again.is_ok(), "{text:?} -> {out:?} does not parse");
            if let Ok(w) = again {
                assert_eq!(w.to_json(), out, "{text:?} -> {out:?} is not stable");
            }
        }
    }
    if let Ok(crate::json::JVal::Obj(members)) = parse_payload(data) {
        for type_cast in [false, true] {
            let opts = TypingOptions {
                type_cast,
                max_string_len: 8,
            };
            if let Ok(values) = type_object(&members, opts) {
                for (_, v) in values {
                    let _ = v.to_json();
                }
            }
        }
    }
}
