//! Scale check (ignored by default; needs `ulimit -n` above 2 x the connection count):
//! `cargo test -p tb-devserver --release --test scale -- --ignored --nocapture`
//! Opens N device connections (each with its own token), sends one telemetry message on each,
//! and prints the RSS growth of the process (server plus the client sockets).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use common::{connect, publish};
use tb_devserver::{Config, DevServer, DeviceSpec};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore]
fn ten_thousand_connections() {
    // Client and server sockets share this process's descriptor limit.
    let fd_limit: usize = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024);
    let wanted: usize = std::env::var("TB_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let n = wanted.min(fd_limit.saturating_sub(256) / 2);
    let s = DevServer::start(Config::default()).unwrap();
    for i in 0..n {
        s.add_device(DeviceSpec::access_token(format!("d{i}"), format!("T{i}")))
            .unwrap();
    }
    let before = rss_kib();
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = TcpStream::connect(s.local_addr()).unwrap();
        c.write_all(&connect(&format!("c{i}"), Some(&format!("T{i}")), None))
            .unwrap();
        let mut ack = [0u8; 4];
        c.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0x20, 2, 0, 0]);
        conns.push(c);
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for c in &mut conns {
        c.write_all(&publish(
            "v1/devices/me/telemetry",
            1,
            1,
            b"{\"temperature\":21.5}",
        ))
        .unwrap();
    }
    for c in &mut conns {
        let mut ack = [0u8; 4];
        c.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0x40, 2, 0, 1]);
    }
    let publish_secs = t1.elapsed().as_secs_f64();
    let after = rss_kib();
    println!(
        "{n} connections: connect {:.0}/s, {n} QoS 1 publishes in {:.2}s ({:.0}/s), RSS +{} MiB (total {} MiB)",
        n as f64 / connect_secs,
        publish_secs,
        n as f64 / publish_secs,
        (after.saturating_sub(before)) / 1024,
        after / 1024
    );
}
