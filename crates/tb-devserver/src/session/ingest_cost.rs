//! What the ingest path costs per data point: a session fed telemetry as a socket would feed
//! it. A measurement, not a check:
//! `cargo test --release -p tb-devserver --lib ingest_cost -- --ignored --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::watch;

use super::Session;
use crate::config::Config;
use crate::ratelimit::{Limits, RateLimitSpec};
use crate::shared::Shared;
use crate::store::{DeviceSpec, Store};

/// Counts heap allocations (and reallocations) of the test binary: unlike time on a shared
/// machine, a count that does not vary from run to run.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn mqtt_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(out: &mut Vec<u8>, first: u8, body: &[u8]) {
    out.push(first);
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
}

fn connect(out: &mut Vec<u8>, token: &str) {
    let mut body = Vec::new();
    mqtt_string(&mut body, "MQTT");
    body.extend_from_slice(&[4, 0x82, 0, 60]);
    mqtt_string(&mut body, "bench");
    mqtt_string(&mut body, token);
    packet(out, 0x10, &body);
}

fn publish(out: &mut Vec<u8>, topic: &str, pkid: u16, payload: &str) {
    let mut body = Vec::new();
    mqtt_string(&mut body, topic);
    body.extend_from_slice(&pkid.to_be_bytes());
    body.extend_from_slice(payload.as_bytes());
    packet(out, 0x32, &body);
}

fn values(r: usize) -> String {
    let kv: Vec<String> = (0..10)
        .map(|j| format!("\"k{j}\":{}", r * 1000 + j))
        .collect();
    format!("{{{}}}", kv.join(","))
}

/// CPU seconds this thread has run (Linux; wall time elsewhere). Design: the machine is
/// shared, and CPU time is what the ingest path costs whatever else runs.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(
            || {
                static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                T0.get_or_init(Instant::now).elapsed().as_secs_f64()
            },
            |ns| ns / 1e9,
        )
}

/// Feeds `input` in reads of 16 KiB; returns the CPU seconds spent.
fn feed(s: &mut Session, input: &[u8]) -> f64 {
    let t0 = cpu_seconds();
    let mut buf = BytesMut::new();
    for piece in input.chunks(16 * 1024) {
        buf.extend_from_slice(piece);
        s.handle_data(&mut buf, Instant::now());
        s.flush_logs();
        assert!(!s.is_closed(), "closed: {:?}", s.closed);
        s.transmitted();
    }
    cpu_seconds() - t0
}

#[test]
#[ignore]
fn ingest_cost() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let (devices, rounds) = (1000, 20);
    // (name, devices per message)
    for (name, per_msg) in [
        ("device API", 0),
        ("gateway, 1 device/msg", 1),
        ("gateway, 10 devices/msg", 10),
    ] {
        let config = Config {
            max_telemetry_per_device: 1_000_000,
            ..Config::default()
        };
        let limits = Limits {
            device: RateLimitSpec::parse_all(&config.rate_limits).expect("limits"),
            gateway: RateLimitSpec::parse_all(&config.gateway_rate_limits).expect("limits"),
        };
        let mut store = Store::default();
        store.insert_device(DeviceSpec::access_token("gw", "G").gateway(true));
        store.insert_device(DeviceSpec::access_token("dev", "D"));
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, limits, shutdown, store, None));
        let (tx, _rx) = unbounded_channel();
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let mut s = Session::new(shared.clone(), 1, peer, tx);
        let names: Vec<String> = (0..devices).map(|i| format!("bench-sub-{i:05}")).collect();
        let mut setup = Vec::new();
        connect(&mut setup, if per_msg == 0 { "D" } else { "G" });
        if per_msg > 0 {
            for (i, n) in names.iter().enumerate() {
                let payload = format!("{{\"device\":\"{n}\",\"type\":\"bench\"}}");
                publish(
                    &mut setup,
                    "v1/gateway/connect",
                    (i % 60_000) as u16 + 1,
                    &payload,
                );
            }
        }
        feed(&mut s, &setup);
        let mut input = Vec::new();
        let mut pkid = 0u16;
        let mut next = || {
            pkid = pkid % 60_000 + 1;
            pkid
        };
        let mut points = 0usize;
        for r in 0..rounds {
            if per_msg == 0 {
                for _ in 0..devices {
                    publish(&mut input, "v1/devices/me/telemetry", next(), &values(r));
                    points += 10;
                }
                continue;
            }
            for group in names.chunks(per_msg) {
                let parts: Vec<String> = group
                    .iter()
                    .map(|n| {
                        format!(
                            "\"{n}\":[{{\"ts\":{},\"values\":{}}}]",
                            1_700_000_000_000u64 + r as u64,
                            values(r)
                        )
                    })
                    .collect();
                let payload = format!("{{{}}}", parts.join(","));
                publish(&mut input, "v1/gateway/telemetry", next(), &payload);
                points += 10 * group.len();
            }
        }
        let mut secs = f64::MAX;
        let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..3 {
            secs = secs.min(feed(&mut s, &input));
        }
        points *= 3;
        let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;
        let st = shared.state.lock();
        let stored: usize = st.store.devices.values().map(|d| d.telemetry.len()).sum();
        assert_eq!(stored, points, "{name}: all points stored");
        println!(
            "{name:24} {:5.2} allocations/point {:6.1} CPU ns/point {:9.0} points per CPU s \
             (best of 3 runs of {} points)",
            allocs as f64 / points as f64,
            secs * 3e9 / points as f64,
            points as f64 / 3.0 / secs,
            points / 3
        );
    }
}
