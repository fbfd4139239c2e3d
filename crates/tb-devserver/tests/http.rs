//! The HTTP side over real sockets: login and tokens, ThingsBoard's error shapes, devices,
//! attributes pushed to an MQTT session, RPC round trips, the event stream. HTTP/1.1 is
//! written by hand (`Connection: close`), so the server is checked without a client library.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tb_devserver::{Config, DevServer, DeviceSpec};

struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| {
        format!("X-Authorization: Bearer {t}\r\n")
    });
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    request(addr, "GET", path, token, b"")
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

fn http_server() -> (DevServer, SocketAddr) {
    let s = server_with(Config {
        http_port: Some(0),
        ..Config::default()
    });
    let addr = s.http_addr().unwrap();
    (s, addr)
}

/// Logs in as the default tenant; the raw answer.
fn tenant_login(addr: SocketAddr) -> Resp {
    request(
        addr,
        "POST",
        "/api/auth/login",
        None,
        br#"{"username":"tenant@thingsboard.org","password":"tenant"}"#,
    )
}

fn login(addr: SocketAddr) -> String {
    let r = tenant_login(addr);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

fn device_id(addr: SocketAddr, token: &str, name: &str) -> String {
    let r = get(
        addr,
        &format!("/api/tenant/device?deviceName={name}"),
        Some(token),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"]["id"].as_str().unwrap().to_string()
}

#[test]
fn login_gives_a_jwt_pair_and_bad_logins_get_thingsboard_errors() {
    let (_s, addr) = http_server();
    let r = tenant_login(addr);
    assert_eq!(r.status, 200);
    let pair = r.json();
    assert_eq!(pair["token"].as_str().unwrap().split('.').count(), 3);
    assert!(pair["refreshToken"].is_string());
    for (body, msg) in [
        (
            &br#"{"username":"tenant@thingsboard.org","password":"nope"}"#[..],
            "Invalid username or password",
        ),
        (b"{not json", "Authentication failed"),
        (
            br#"{"username":"tenant@thingsboard.org"}"#,
            "Authentication failed",
        ),
    ] {
        let r = request(addr, "POST", "/api/auth/login", None, body);
        assert_eq!(r.status, 401);
        let e = r.json();
        assert_eq!(e["status"], 401);
        assert_eq!(e["errorCode"], 10);
        assert_eq!(e["message"], msg);
        assert!(e["timestamp"].is_i64());
    }
    // A refresh token buys a new pair.
    let body = json!({"refreshToken": pair["refreshToken"]}).to_string();
    let r = request(addr, "POST", "/api/auth/token", None, body.as_bytes());
    assert_eq!(r.status, 200);
    assert!(r.json()["token"].is_string());
}

#[test]
fn every_api_path_needs_a_valid_token() {
    let (_s, addr) = http_server();
    let r = get(addr, "/api/tenant/devices?pageSize=10&page=0", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Authentication failed");
    let r = get(
        addr,
        "/api/tenant/devices?pageSize=10&page=0",
        Some("garbage"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], 10);
    // A well-formed token of another server: signature mismatch, answered as expired.
    let (_other, other_addr) = http_server();
    let foreign = login(other_addr);
    let r = get(
        addr,
        "/api/tenant/devices?pageSize=10&page=0",
        Some(&foreign),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], 11);
    // The page needs none.
    let r = get(addr, "/", None);
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
}

#[test]
fn devices_list_by_name_create_delete_and_errors() {
    let (s, addr) = http_server();
    let t = login(addr);
    let r = get(addr, "/api/tenant/devices?pageSize=10&page=0", Some(&t));
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["totalElements"], 1);
    assert_eq!(page["data"][0]["name"], DEVICE);
    assert_eq!(page["data"][0]["id"]["entityType"], "DEVICE");
    // Missing pageSize: 400/31.
    let r = get(addr, "/api/tenant/devices?page=0", Some(&t));
    assert_eq!((r.status, r.json()["errorCode"].clone()), (400, json!(31)));
    let r = get(addr, "/api/tenant/device?deviceName=nope", Some(&t));
    assert_eq!((r.status, r.json()["errorCode"].clone()), (404, json!(32)));
    // Create with a given token: it connects over MQTT at once.
    let r = request(
        addr,
        "POST",
        "/api/device?accessToken=NEWTOKEN",
        Some(&t),
        br#"{"name":"lamp"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"]["id"].as_str().unwrap().to_string();
    let r = get(addr, &format!("/api/device/{id}/credentials"), Some(&t));
    assert_eq!(r.json()["credentialsId"], "NEWTOKEN");
    let _c = Client::device_token(s.local_addr(), "NEWTOKEN");
    let r = request(addr, "POST", "/api/device", Some(&t), br#"{"name":"lamp"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Device with such name already exists!");
    let r = request(addr, "POST", "/api/device", Some(&t), b"{oops");
    assert_eq!(r.status, 400);
    let r = request(addr, "DELETE", &format!("/api/device/{id}"), Some(&t), b"");
    assert_eq!(r.status, 200);
    let r = get(addr, &format!("/api/device/{id}"), Some(&t));
    assert_eq!(r.status, 404);
    let r = get(addr, "/api/device/not-a-uuid", Some(&t));
    assert_eq!(r.status, 400);
}

#[test]
fn shared_attributes_written_over_rest_reach_the_device_once() {
    let (s, addr) = http_server();
    let t = login(addr);
    let id = device_id(addr, &t, DEVICE);
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[("v1/devices/me/attributes", 1)]));
    assert_eq!(c.frame()[0], 0x90);
    let path = format!("/api/plugins/telemetry/DEVICE/{id}/SHARED_SCOPE");
    let r = request(
        addr,
        "POST",
        &path,
        Some(&t),
        br#"{"targetTemp":22.5,"mode":"eco"}"#,
    );
    assert_eq!((r.status, r.body.len()), (200, 0));
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/attributes");
    assert_eq!(p.payload, r#"{"targetTemp":22.5,"mode":"eco"}"#);
    // Server scope is never pushed; errors are plain text in ThingsBoard's order.
    let server = format!("/api/plugins/telemetry/DEVICE/{id}/SERVER_SCOPE");
    assert_eq!(
        request(addr, "POST", &server, Some(&t), br#"{"x":1}"#).status,
        200
    );
    c.expect_silence_then_alive(300);
    let r = request(addr, "POST", &path, Some(&t), br#"{"a":"#);
    assert_eq!((r.status, r.text()), (400, "Invalid JSON".to_string()));
    let r = request(addr, "POST", &path, Some(&t), b"[1,2]");
    assert_eq!(
        (r.status, r.text()),
        (400, "Request is not a JSON object".to_string())
    );
    let unknown = "/api/plugins/telemetry/DEVICE/5a3f0c1e-7c0e-11ee-b962-0242ac120002/SHARED_SCOPE";
    let r = request(addr, "POST", unknown, Some(&t), br#"{"a":1}"#);
    assert_eq!(
        (r.status, r.text()),
        (404, "Device with requested id wasn't found!".to_string())
    );
    // Read back with native types, then delete: {"deleted":[..]}.
    let r = get(
        addr,
        &format!("/api/plugins/telemetry/DEVICE/{id}/values/attributes/SHARED_SCOPE"),
        Some(&t),
    );
    let values: Vec<(String, Value)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
        .collect();
    assert!(
        values.contains(&("targetTemp".into(), json!(22.5))),
        "{values:?}"
    );
    let r = request(addr, "DELETE", &format!("{path}?keys=mode"), Some(&t), b"");
    assert_eq!(r.status, 200);
    assert_eq!(c.publish().payload, r#"{"deleted":["mode"]}"#);
}

#[test]
fn telemetry_latest_is_text_unless_strict_and_history_is_a_half_open_range() {
    let (s, addr) = http_server();
    let t = login(addr);
    let id = device_id(addr, &t, DEVICE);
    let mut c = Client::device(s.local_addr());
    let body = br#"[{"ts":1000,"values":{"t":21.5,"n":40}},{"ts":2000,"values":{"t":42.0}}]"#;
    c.send(&publish("v1/devices/me/telemetry", 1, 1, body));
    assert_eq!(c.frame()[0], 0x40);
    let base = format!("/api/plugins/telemetry/DEVICE/{id}/values/timeseries");
    let latest = get(addr, &base, Some(&t)).json();
    assert_eq!(latest["t"], json!([{"ts": 2000, "value": "42.0"}]));
    assert_eq!(latest["n"], json!([{"ts": 1000, "value": "40"}]));
    let strict = get(
        addr,
        &format!("{base}?keys=t,none&useStrictDataTypes=True"),
        Some(&t),
    )
    .json();
    assert_eq!(strict["t"][0]["value"], json!(42.0));
    assert!(strict["none"][0]["value"].is_null());
    let hist = get(
        addr,
        &format!("{base}?keys=t&startTs=1000&endTs=2000"),
        Some(&t),
    )
    .json();
    assert_eq!(hist, json!({"t": [{"ts": 1000, "value": "21.5"}]}));
    let hist = get(
        addr,
        &format!("{base}/history?keys=t&startTs=0&endTs=3000&orderBy=ASC&limit=1"),
        Some(&t),
    )
    .json();
    assert_eq!(hist, json!({"t": [{"ts": 1000, "value": "21.5"}]}));
}

#[test]
fn history_refuses_unknown_agg_and_order_even_with_no_points() {
    // ThingsBoard parses both before reading (Aggregation.valueOf, Sort.Direction.fromString)
    // and answers a plain-text 400; the dev server has no points for this device at all.
    let (_s, addr) = http_server();
    let t = login(addr);
    let id = device_id(addr, &t, DEVICE);
    let base = format!(
        "/api/plugins/telemetry/DEVICE/{id}/values/timeseries?keys=t&startTs=0&endTs=99999999999999"
    );
    let r = get(addr, &format!("{base}&agg=FOO"), Some(&t));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.text(),
        "No enum constant org.thingsboard.server.common.data.kv.Aggregation.FOO"
    );
    let r = get(addr, &format!("{base}&orderBy=FOO"), Some(&t));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("'FOO'"), "{}", r.text());
    // Known values, any case for the order: 200 and no points.
    for q in ["&agg=NONE", "&agg=AVG", "&orderBy=asc", "&orderBy=DESC"] {
        let r = get(addr, &format!("{base}{q}"), Some(&t));
        assert_eq!((r.status, r.json()), (200, json!({})), "{q}");
    }
}

#[test]
fn two_way_rpc_returns_the_reply_and_expiry_gets_thingsboard_statuses() {
    let (s, addr) = http_server();
    let t = login(addr);
    let id = device_id(addr, &t, DEVICE);
    // Offline: v2 504, v1 409, empty bodies.
    let soon = |ms: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        json!({"method": "m", "params": {}, "expirationTime": now + ms}).to_string()
    };
    let r = request(
        addr,
        "POST",
        &format!("/api/rpc/twoway/{id}"),
        Some(&t),
        soon(300).as_bytes(),
    );
    assert_eq!((r.status, r.body.len()), (504, 0));
    let r = request(
        addr,
        "POST",
        &format!("/api/plugins/rpc/twoway/{id}"),
        Some(&t),
        soon(300).as_bytes(),
    );
    assert_eq!(r.status, 409);
    let r = request(
        addr,
        "POST",
        &format!("/api/rpc/twoway/{id}"),
        Some(&t),
        b"{bad",
    );
    assert_eq!((r.status, r.json()["errorCode"].clone()), (400, json!(31)));
    // Online: the device gets the request and its reply is the HTTP body.
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[("v1/devices/me/rpc/request/+", 1)]));
    assert_eq!(c.frame()[0], 0x90);
    let path = format!("/api/rpc/twoway/{id}");
    let caller = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            &path,
            Some(&t),
            br#"{"method":"getTemp","params":{"unit":"C"}}"#,
        )
    });
    let p = c.publish();
    assert!(
        p.topic.starts_with("v1/devices/me/rpc/request/"),
        "{}",
        p.topic
    );
    assert_eq!(p.payload, r#"{"method":"getTemp","params":{"unit":"C"}}"#);
    c.send(&puback(p.pkid));
    let rid = p.topic.rsplit('/').next().unwrap().to_string();
    c.send(&publish(
        &format!("v1/devices/me/rpc/response/{rid}"),
        1,
        7,
        br#"{"temp":21.5}"#,
    ));
    let r = caller.join().unwrap();
    assert_eq!((r.status, r.text()), (200, r#"{"temp":21.5}"#.to_string()));
}

#[test]
fn the_event_stream_reports_a_device_coming_online() {
    let (s, addr) = http_server();
    let t = login(addr);
    let mut reader = open_stream(addr, &format!("token={t}"));
    let _c = Client::device(s.local_addr());
    let event = next_event(&mut reader);
    assert_eq!(event["type"], "device");
    assert_eq!(event["device"]["name"], DEVICE);
    assert_eq!(event["device"]["active"], true);
}

/// Opens the event stream (`query` after `token=`) and returns a reader past the headers.
fn open_stream(addr: SocketAddr, query: &str) -> BufReader<TcpStream> {
    let mut sse = TcpStream::connect(addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        sse,
        "GET /api/devserver/events?{query} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(sse);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return reader;
        }
    }
}

fn next_event(reader: &mut BufReader<TcpStream>) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            return serde_json::from_str(data).unwrap();
        }
    }
}

#[test]
fn a_device_stream_carries_its_telemetry_traffic_and_rpcs_only() {
    let (s, addr) = http_server();
    s.add_device(DeviceSpec::access_token("other", "OTHER_TOKEN"))
        .unwrap();
    let t = login(addr);
    let id = device_id(addr, &t, DEVICE);
    let mut c = Client::device(s.local_addr());
    let mut other = Client::device_token(s.local_addr(), "OTHER_TOKEN");
    let mut stream = open_stream(addr, &format!("token={t}&deviceId={id}"));
    other.send(&publish("v1/devices/me/telemetry", 1, 1, br#"{"x":1}"#));
    assert_eq!(other.frame()[0], 0x40);
    c.send(&publish(
        "v1/devices/me/telemetry",
        1,
        1,
        br#"{"temp":21.5}"#,
    ));
    assert_eq!(c.frame()[0], 0x40);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = next_event(&mut stream);
        if e["type"] == "device" {
            continue; // activity of either device
        }
        assert_eq!(e["deviceId"], id.as_str(), "another device's event: {e}");
        seen.push(e);
    }
    assert_eq!(seen[0]["type"], "log");
    assert_eq!(seen[0]["dir"], "up");
    assert_eq!(seen[0]["payload"], r#"{"temp":21.5}"#);
    assert_eq!(seen[1]["type"], "telemetry");
    assert_eq!(seen[1]["values"], json!({"temp": 21.5}));
    // A one-way RPC to an offline-for-RPC device is QUEUED, then SENT once it subscribes.
    let call = s
        .start_rpc(DEVICE, "blink", "3", Duration::from_secs(5), true)
        .unwrap();
    let e = loop {
        let e = next_event(&mut stream);
        if e["type"] == "rpc" {
            break e;
        }
    };
    assert_eq!(
        (e["id"].clone(), e["method"].clone(), e["status"].clone()),
        (json!(call.id()), json!("blink"), json!("QUEUED"))
    );
    assert_eq!(e["params"], json!(3));
    // Unknown device: 404, never a stream.
    let r = get(
        addr,
        &format!("/api/devserver/events?token={t}&deviceId=5a3f0c1e-7c0e-11ee-b962-0242ac120002"),
        None,
    );
    assert_eq!(r.status, 404);
}
