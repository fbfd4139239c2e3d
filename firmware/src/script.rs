//! The scripted exchange: this file plays both the firmware's MQTT client (what it feeds into
//! the `Device` and what it sends out) and the ThingsBoard server (what comes back), and checks
//! every topic and payload byte on the way.
//!
//! Without `std`, serde_json keeps object keys sorted (its `preserve_order` needs `std`), so
//! the payloads below list keys alphabetically; ThingsBoard does not care about key order.

mod ota;

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt::Debug;

use cortex_m_semihosting::hprintln;
use tb_core::serde_json::{json, Value};
use tb_core::{
    Config, Device, Event, FirmwareConfig, MessageId, Millis, Mode, PeerError, ProvisionOutcome,
    QoS, RequestId, SubscriptionId, TimedOut, Transmit,
};

/// Counts of checks.
pub struct Report {
    pub passed: u32,
    pub failed: u32,
}

struct Checker {
    report: Report,
    step: &'static str,
}

impl Checker {
    fn step(&mut self, name: &'static str) {
        self.step = name;
        hprintln!("-- {}", name);
    }

    fn check(&mut self, what: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.report.passed += 1;
        } else {
            self.report.failed += 1;
            hprintln!("FAIL [{}] {}: {}", self.step, what, detail());
        }
    }

    fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        let ok = got == want;
        self.check(what, ok, || format!("got {:?}, want {:?}", got, want));
    }

    fn bytes(&mut self, what: &str, got: &[u8], want: &[u8]) {
        self.check(what, got == want, || {
            format!(
                "got {:?}, want {:?}",
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(want)
            )
        });
    }

    /// The next transmit must be this SUBSCRIBE.
    fn subscribe(&mut self, dev: &mut Device, now: Millis, filters: &[&str], qos: QoS) {
        match dev.poll_transmit(now) {
            Some(Transmit::Subscribe { filters: f, qos: q }) => {
                self.eq("subscribe filters", f, filters);
                self.eq("subscribe qos", q, qos);
            }
            other => self.check("subscribe", false, || format!("got {:?}", other)),
        }
    }

    /// The next transmit must be a device session's SUBSCRIBE: the reference's four filters.
    fn device_subscribe(&mut self, dev: &mut Device, now: Millis) {
        self.subscribe(
            dev,
            now,
            &[
                "v1/devices/me/attributes",
                "v1/devices/me/attributes/response/+",
                "v1/devices/me/rpc/request/+",
                "v1/devices/me/rpc/response/+",
            ],
            QoS::AtLeastOnce,
        );
    }

    /// The next transmit must be the SUBSCRIBE to the firmware filters that comes once per
    /// connection, before its first chunk request (spec 11.2: chunks come without a
    /// subscription on ThingsBoard, but a broker such as mosquitto routes only what is
    /// subscribed).
    fn firmware_subscribe(&mut self, dev: &mut Device, now: Millis) {
        self.subscribe(
            dev,
            now,
            &["v2/fw/response/+/chunk/+", "v2/fw/error"],
            QoS::AtLeastOnce,
        );
    }

    /// The next transmit must be a QoS 1 PUBLISH of exactly `topic` and `payload`; the broker
    /// acknowledges it at once. Returns its id.
    fn publish(&mut self, dev: &mut Device, now: Millis, topic: &str, payload: &[u8]) -> MessageId {
        match dev.poll_transmit(now) {
            Some(Transmit::Publish(p)) => {
                self.eq("topic", &*p.topic, topic);
                self.bytes("payload", &p.payload, payload);
                self.eq("qos", p.qos, QoS::AtLeastOnce);
                // The MQTT client reports the PUBACK.
                self.check("puback", dev.handle_puback(p.id), || {
                    "not pending".to_string()
                });
                p.id
            }
            other => {
                self.check("publish", false, || format!("got {:?}", other));
                MessageId(0)
            }
        }
    }

    /// Nothing more to send.
    fn idle(&mut self, dev: &mut Device, now: Millis) {
        let extra = dev.poll_transmit(now);
        self.check("nothing more to send", extra.is_none(), || {
            format!("got {:?}", extra)
        });
        self.eq("all acknowledged", dev.unacknowledged(), 0);
    }

    /// The next event, which must exist.
    fn event(&mut self, dev: &mut Device) -> Option<Event> {
        let ev = dev.poll_event();
        self.check("event", ev.is_some(), || "no event".to_string());
        ev
    }

    fn no_event(&mut self, dev: &mut Device) {
        let ev = dev.poll_event();
        self.check("no further event", ev.is_none(), || format!("got {:?}", ev));
    }
}

/// What the application keeps: the shared attribute its callbacks update.
struct App {
    frequency: i64,
    all_updates: u32,
}

pub fn run() -> Report {
    let mut c = Checker {
        report: Report {
            passed: 0,
            failed: 0,
        },
        step: "",
    };
    let token = provisioning(&mut c);
    device_session(&mut c, &token);
    c.report
}

/// A provisioning-only session (spec 10): subscribe, request, read the credentials.
fn provisioning(c: &mut Checker) -> String {
    c.step("provisioning request and response");
    let mut dev = Device::new(Config {
        mode: Mode::Provisioning,
        ..Config::default()
    });
    let request = json!({
        "deviceName": "lm3s6965-01",
        "provisionDeviceKey": "key-abc",
        "provisionDeviceSecret": "secret-xyz",
        "credentialsType": null,
    });
    c.check(
        "provision accepted",
        dev.provision(&request).is_ok(),
        String::new,
    );
    // The host connects with username "provision" and reports the CONNACK.
    dev.handle_connected();
    c.subscribe(&mut dev, 0, &["/provision/response"], QoS::AtLeastOnce);
    c.publish(
        &mut dev,
        0,
        "/provision/request",
        br#"{"deviceName":"lm3s6965-01","provisionDeviceKey":"key-abc","provisionDeviceSecret":"secret-xyz"}"#,
    );
    c.idle(&mut dev, 0);
    dev.handle_publish(
        50,
        "/provision/response",
        br#"{"credentialsValue":"A1_TEST_TOKEN","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
    );
    let mut token = String::new();
    match c.event(&mut dev) {
        Some(Event::ProvisionResponse(ProvisionOutcome::Success(m))) => {
            c.eq(
                "credentialsType",
                m.get("credentialsType"),
                Some(&json!("ACCESS_TOKEN")),
            );
            if let Some(Value::String(t)) = m.get("credentialsValue") {
                token = t.clone();
            }
        }
        other => c.check("provision success", false, || format!("got {:?}", other)),
    }
    c.eq("token", token.as_str(), "A1_TEST_TOKEN");
    c.no_event(&mut dev);
    token
}

/// An ordinary device session with the provisioned token.
fn device_session(c: &mut Checker, _token: &str) {
    let mut app = App {
        frequency: 0,
        all_updates: 0,
    };
    let mut dev = Device::new(Config {
        firmware: FirmwareConfig {
            chunk_size: ota::CHUNK,
            ..FirmwareConfig::default()
        },
        ..Config::default()
    });
    let on_frequency = dev.subscribe_to_attribute("frequency");
    let on_all = dev.subscribe_to_attribute("*");
    c.eq(
        "subscription ids",
        (on_frequency, on_all),
        (SubscriptionId(1), SubscriptionId(2)),
    );

    c.step("telemetry queued before the connection");
    c.check(
        "telemetry accepted",
        dev.send_telemetry(&json!({"temperature": 25.5, "humidity": 60}))
            .is_ok(),
        String::new,
    );
    c.check(
        "held while offline",
        dev.poll_transmit(0).is_none(),
        String::new,
    );

    c.step("connect-time subscriptions");
    // The host connected with the token as username and reports the CONNACK.
    dev.handle_connected();
    c.device_subscribe(&mut dev, 100);
    c.publish(
        &mut dev,
        100,
        "v1/devices/me/telemetry",
        br#"{"humidity":60,"temperature":25.5}"#,
    );
    c.idle(&mut dev, 100);

    c.step("telemetry with a timestamp, and client attributes");
    let _ = dev.send_telemetry(&json!({"ts": 1_700_000_000_000u64, "values": {"rssi": -61}}));
    let _ = dev.send_attributes(&json!({"model": "LM3S6965", "fw": "1.0.0"}));
    c.publish(
        &mut dev,
        200,
        "v1/devices/me/telemetry",
        br#"{"ts":1700000000000,"values":{"rssi":-61}}"#,
    );
    c.publish(
        &mut dev,
        200,
        "v1/devices/me/attributes",
        br#"{"fw":"1.0.0","model":"LM3S6965"}"#,
    );
    c.idle(&mut dev, 200);

    c.step("attribute request and response");
    let req = dev.request_attributes(300, &["model", "fw"], &["frequency"], 5_000);
    c.eq("request id", req, Ok(RequestId(1)));
    c.publish(
        &mut dev,
        300,
        "v1/devices/me/attributes/request/1",
        br#"{"clientKeys":"model,fw","sharedKeys":"frequency"}"#,
    );
    c.eq("deadline", dev.poll_timeout(), Some(5_300));
    dev.handle_publish(
        350,
        "v1/devices/me/attributes/response/1",
        br#"{"client":{"model":"LM3S6965","fw":"1.0.0"},"shared":{"frequency":5}}"#,
    );
    match c.event(&mut dev) {
        Some(Event::AttributeResponse { id, result: Ok(v) }) => {
            c.eq("response id", id, RequestId(1));
            c.eq(
                "shared frequency",
                v["shared"]["frequency"].as_i64(),
                Some(5),
            );
            c.eq(
                "client model",
                v["client"]["model"].as_str(),
                Some("LM3S6965"),
            );
            if let Some(f) = v["shared"]["frequency"].as_i64() {
                app.frequency = f;
            }
        }
        other => c.check("attribute response", false, || format!("got {:?}", other)),
    }
    c.eq("no deadline left", dev.poll_timeout(), None);
    c.no_event(&mut dev);

    c.step("attribute update and subscription callbacks");
    dev.handle_publish(
        400,
        "v1/devices/me/attributes",
        br#"{"frequency":10,"label":"lab"}"#,
    );
    match c.event(&mut dev) {
        Some(Event::AttributeUpdate {
            data,
            subscriptions,
        }) => {
            // "*" subscriptions first, then per key in arrival order.
            c.eq(
                "callbacks",
                subscriptions.as_slice(),
                &[on_all, on_frequency][..],
            );
            for sub in subscriptions {
                if sub == on_frequency {
                    if let Some(f) = data.get("frequency").and_then(Value::as_i64) {
                        app.frequency = f;
                    }
                } else if sub == on_all {
                    app.all_updates += 1;
                }
            }
        }
        other => c.check("attribute update", false, || format!("got {:?}", other)),
    }
    c.eq("frequency applied", app.frequency, 10);
    c.eq("catch-all called", app.all_updates, 1);
    c.no_event(&mut dev);

    c.step("server-side RPC request and reply");
    dev.handle_publish(
        500,
        "v1/devices/me/rpc/request/42",
        br#"{"method":"setLed","params":{"on":true}}"#,
    );
    match c.event(&mut dev) {
        Some(Event::RpcRequest { id, body }) => {
            c.eq("rpc id", id.as_str(), "42");
            c.eq("rpc method", body["method"].as_str(), Some("setLed"));
            c.eq("rpc param", body["params"]["on"].as_bool(), Some(true));
            let reply = json!({"led": body["params"]["on"].clone(), "ok": true});
            c.check(
                "reply accepted",
                dev.send_rpc_reply(&id, &reply).is_ok(),
                String::new,
            );
        }
        other => c.check("rpc request", false, || format!("got {:?}", other)),
    }
    c.publish(
        &mut dev,
        500,
        "v1/devices/me/rpc/response/42",
        br#"{"led":true,"ok":true}"#,
    );
    // mosquitto routes the reply back (the device subscribes to rpc/response/+): dropped.
    dev.handle_publish(
        510,
        "v1/devices/me/rpc/response/42",
        br#"{"led":true,"ok":true}"#,
    );
    match c.event(&mut dev) {
        Some(Event::Dropped { reason, .. }) => c.eq("echo dropped", reason, PeerError::Echo),
        other => c.check("echo", false, || format!("got {:?}", other)),
    }
    c.idle(&mut dev, 510);

    c.step("client-side RPC");
    let call = dev.send_rpc_call(600, "getCurrentTime", &json!({}), 5_000);
    c.eq("call id", call, Ok(RequestId(1)));
    c.publish(
        &mut dev,
        600,
        "v1/devices/me/rpc/request/1",
        br#"{"method":"getCurrentTime","params":{}}"#,
    );
    dev.handle_publish(
        650,
        "v1/devices/me/rpc/response/1",
        br#"{"time":1700000000123}"#,
    );
    match c.event(&mut dev) {
        Some(Event::RpcResponse { id, result: Ok(v) }) => {
            c.eq("call response id", id, RequestId(1));
            c.eq("time", v["time"].as_u64(), Some(1_700_000_000_123));
        }
        other => c.check("rpc response", false, || format!("got {:?}", other)),
    }
    c.no_event(&mut dev);

    c.step("request timeout from the host's clock");
    let late = dev.send_rpc_call(700, "slow", &json!([1, 2]), 1_000);
    c.eq("second call id", late, Ok(RequestId(2)));
    c.publish(
        &mut dev,
        700,
        "v1/devices/me/rpc/request/2",
        br#"{"method":"slow","params":[1,2]}"#,
    );
    c.eq("wake-up time", dev.poll_timeout(), Some(1_700));
    dev.handle_timeout(1_699);
    c.no_event(&mut dev);
    dev.handle_timeout(1_700);
    match c.event(&mut dev) {
        Some(Event::RpcResponse { id, result }) => {
            c.eq("timed-out id", id, RequestId(2));
            c.eq("timeout", result, Err(TimedOut { after_ms: 1_000 }));
        }
        other => c.check("rpc timeout", false, || format!("got {:?}", other)),
    }
    dev.handle_publish(1_800, "v1/devices/me/rpc/response/2", b"{}");
    match c.event(&mut dev) {
        Some(Event::Dropped { reason, .. }) => {
            c.eq("late answer dropped", reason, PeerError::UnknownRequest(2))
        }
        other => c.check("late answer", false, || format!("got {:?}", other)),
    }

    c.step("claiming");
    let claim = dev.claim_device(Some("claim-secret"), Some(60_000));
    c.check("claim accepted", claim.is_ok(), String::new);
    c.publish(
        &mut dev,
        1_900,
        "v1/devices/me/claim",
        br#"{"secretKey":"claim-secret","durationMs":60000}"#,
    );
    c.idle(&mut dev, 1_900);

    c.step("bad input from the network is dropped, not fatal");
    dev.handle_publish(2_000, "v1/devices/me/attributes", b"{not json");
    match c.event(&mut dev) {
        Some(Event::Dropped { topic, reason }) => {
            c.eq("dropped topic", topic.as_str(), "v1/devices/me/attributes");
            c.check(
                "invalid json",
                matches!(reason, PeerError::InvalidJson(_)),
                || format!("got {:?}", reason),
            );
        }
        other => c.check("dropped", false, || format!("got {:?}", other)),
    }
    c.check(
        "usage error for a bad reply id",
        dev.send_rpc_reply("1/2", &json!(1)).is_err(),
        String::new,
    );

    c.step("reconnect resends what was not acknowledged");
    let _ = dev.send_telemetry(&json!({"seq": 1}));
    let sent = dev.poll_transmit(2_100);
    c.check(
        "sent once",
        matches!(sent, Some(Transmit::Publish(_))),
        String::new,
    );
    dev.handle_disconnected();
    dev.handle_connected();
    c.device_subscribe(&mut dev, 2_200);
    c.publish(&mut dev, 2_200, "v1/devices/me/telemetry", br#"{"seq":1}"#);
    c.idle(&mut dev, 2_200);
    c.no_event(&mut dev);

    c.step("firmware update: SHA256, 3,500 bytes in 1 KiB chunks");
    c.eq(
        "initial firmware",
        dev.current_firmware(),
        ("Initial", "v0"),
    );
    let now = ota::update(c, &mut dev, 3_000, on_all, 1, &ota::UPDATE);

    c.step("firmware update: CRC32, 700 bytes in one chunk");
    let now = ota::update(c, &mut dev, now + 1_000, on_all, 2, &ota::SMALL_UPDATE);

    c.step("firmware update with a corrupted chunk fails once");
    ota::update(c, &mut dev, now + 1_000, on_all, 3, &ota::CORRUPTED);
}
