//! Raw MQTT over TCP for the integration tests: packets are built by hand, byte by byte, so
//! the server is checked independently of any client library.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tb_devserver::{Config, DevServer, DeviceSpec};

pub const TOKEN: &str = "TOKEN_1";
pub const DEVICE: &str = "dev1";

/// A server with device `dev1` (token `TOKEN_1`) and short test timeouts.
pub fn server_with(mut config: Config) -> DevServer {
    config.port = 0;
    let s = DevServer::start(config).unwrap();
    s.add_device(DeviceSpec::access_token(DEVICE, TOKEN))
        .unwrap();
    s
}

pub fn server() -> DevServer {
    server_with(Config::default())
}

fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

fn mqtt_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn frame(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![byte1];
    v.extend(remaining_length(body.len()));
    v.extend_from_slice(body);
    v
}

/// CONNECT with protocol `name`/`level`; `username`/`password` `None` leave the flags clear.
pub fn connect_raw(
    name: &str,
    level: u8,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
    clean: bool,
) -> Vec<u8> {
    let mut body = mqtt_str(name);
    body.push(level);
    let mut flags = 0u8;
    if clean {
        flags |= 0x02;
    }
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&[0, 60]); // keep alive
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(mqtt_str(client_id));
    if let Some(u) = username {
        body.extend(mqtt_str(u));
    }
    if let Some(p) = password {
        body.extend(mqtt_str(p));
    }
    frame(0x10, &body)
}

pub fn connect(client_id: &str, username: Option<&str>, password: Option<&str>) -> Vec<u8> {
    connect_raw("MQTT", 4, client_id, username, password, true)
}

pub fn publish(topic: &str, qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    publish_v(topic, qos, pkid, payload, false)
}

pub fn publish_v(topic: &str, qos: u8, pkid: u16, payload: &[u8], v5: bool) -> Vec<u8> {
    let mut body = mqtt_str(topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1), &body)
}

pub fn subscribe(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    subscribe_v(pkid, filters, false)
}

pub fn subscribe_v(pkid: u16, filters: &[(&str, u8)], v5: bool) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for (f, q) in filters {
        body.extend(mqtt_str(f));
        body.push(*q);
    }
    frame(0x82, &body)
}

pub fn unsubscribe(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for f in filters {
        body.extend(mqtt_str(f));
    }
    frame(0xa2, &body)
}

pub fn puback(pkid: u16) -> Vec<u8> {
    let mut v = vec![0x40, 2];
    v.extend_from_slice(&pkid.to_be_bytes());
    v
}

pub const PINGREQ: [u8; 2] = [0xc0, 0];
pub const PINGRESP: [u8; 2] = [0xd0, 0];

/// A decoded server PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pkid: u16,
    pub payload: String,
    /// The payload bytes as sent (firmware chunks are binary).
    pub bytes: Vec<u8>,
}

pub struct Client {
    pub stream: TcpStream,
    pub v5: bool,
    /// Every byte sent, for the fuzz seeds (see `Drop`).
    sent: Vec<u8>,
}

/// With `TB_DEVSERVER_FUZZ_SEEDS=DIR`, each client writes the bytes it sent to
/// `DIR/<hash>` when dropped: the conformance cases become the seed corpus of the
/// `session` fuzz target (crates/tb-devserver/fuzz/seeds.sh).
impl Drop for Client {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("TB_DEVSERVER_FUZZ_SEEDS") else {
            return;
        };
        if self.sent.is_empty() {
            return;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.sent.hash(&mut h);
        let path = std::path::Path::new(&dir).join(format!("{:016x}", h.finish()));
        let _ = std::fs::write(path, &self.sent);
    }
}

impl Client {
    pub fn open(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            v5: false,
            sent: Vec::new(),
        }
    }

    /// Connects with the test token and checks CONNACK 0.
    pub fn device(addr: SocketAddr) -> Client {
        Self::device_token(addr, TOKEN)
    }

    pub fn device_token(addr: SocketAddr, token: &str) -> Client {
        let mut c = Client::open(addr);
        c.send(&connect("c1", Some(token), None));
        assert_eq!(c.frame(), vec![0x20, 2, 0, 0]);
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.sent.extend_from_slice(bytes);
        self.stream.write_all(bytes).unwrap();
    }

    /// Next frame within 5 s, raw bytes; `None` if the connection closed.
    pub fn try_frame(&mut self, timeout: Duration) -> Result<Vec<u8>, &'static str> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut first = [0u8; 1];
        match self.stream.read(&mut first) {
            Ok(0) => return Err("closed"),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("timeout")
            }
            Err(_) => return Err("closed"),
        }
        let mut out = vec![first[0]];
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).map_err(|_| "closed")?;
            out.push(b[0]);
            len |= ((b[0] & 0x7f) as usize) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(|_| "closed")?;
        out.extend(body);
        Ok(out)
    }

    pub fn frame(&mut self) -> Vec<u8> {
        self.try_frame(Duration::from_secs(5)).unwrap()
    }

    /// The next frame, decoded as a PUBLISH.
    pub fn publish(&mut self) -> Pub {
        let f = self.frame();
        parse_publish(&f, self.v5)
    }

    /// Asserts the server closes the connection (within 5 s) without sending anything.
    pub fn expect_closed(&mut self) {
        match self.try_frame(Duration::from_secs(5)) {
            Err("closed") => {}
            other => panic!("expected close, got {other:?}"),
        }
    }

    /// Asserts nothing arrives for `ms` and the connection still answers PINGREQ.
    pub fn expect_silence_then_alive(&mut self, ms: u64) {
        match self.try_frame(Duration::from_millis(ms)) {
            Err("timeout") => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.send(&PINGREQ);
        assert_eq!(self.frame(), PINGRESP.to_vec());
    }
}

pub fn parse_publish(f: &[u8], v5: bool) -> Pub {
    assert_eq!(f[0] & 0xf0, 0x30, "not a PUBLISH: {f:?}");
    let qos = (f[0] >> 1) & 3;
    let mut i = 1;
    while f[i] & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let tl = u16::from_be_bytes([f[i], f[i + 1]]) as usize;
    let topic = String::from_utf8(f[i + 2..i + 2 + tl].to_vec()).unwrap();
    i += 2 + tl;
    let mut pkid = 0;
    if qos > 0 {
        pkid = u16::from_be_bytes([f[i], f[i + 1]]);
        i += 2;
    }
    if v5 {
        i += 1 + f[i] as usize;
    }
    Pub {
        qos,
        retain: f[0] & 1 == 1,
        topic,
        pkid,
        payload: String::from_utf8_lossy(&f[i..]).into_owned(),
        bytes: f[i..].to_vec(),
    }
}

/// Polls `f` until it returns `Some`, waiting on store changes (no sleeps), up to 5 s.
pub fn wait_for<T>(server: &DevServer, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let gen = server.generation();
        if let Some(v) = f() {
            return v;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "condition not met within 5 s");
        server.wait_for_change(gen, left);
    }
}
