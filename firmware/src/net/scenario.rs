//! The session the networked firmware runs against the dev server, and the checks it makes
//! on what it sees. `firmware/net_session.py` drives the server side and checks what the
//! server stored; the two meet through the network only (the firmware reports its progress
//! as `stage` telemetry, the script acts when it sees it).
//!
//! 1. At boot, before any connection: telemetry and client attributes of every ThingsBoard
//!    type, an attribute request (client `model`, shared `targetTemp`), a client-side RPC
//!    `getCurrentTime`; all queue in tb-core until CONNACK.
//! 2. After CONNACK: the four-filter SUBSCRIBE, granted QoS 1; the attribute response
//!    (`model` = "lm3s6965", `targetTemp` = 21.5) and the RPC response (the server's scripted
//!    `{"time": 1767225600000}`); then `stage` = "ready".
//! 3. The server pushes `targetTemp` = 23.5: one update naming our subscription; the
//!    firmware answers with the client attribute `applied_targetTemp`.
//! 4. The server calls `setLed` with `{"on": true}`; the reply is `{"led": true}`.
//! 5. The device is a gateway (tb-core's `Mode::Gateway`, subscribed to the three gateway
//!    topics too): it connects the sub-devices [`SUB1`] (type `sensor`) and [`SUB2`] (no type:
//!    `default`), sends telemetry for both (an object; a `ts` list), client attributes and a
//!    claim for [`SUB1`], subscribes to sub-device attribute pushes (every device; [`SUB1`]'s
//!    `setpoint`; [`SUB2`]'s `setpoint`, which must not fire) and asks for [`SUB1`]'s client
//!    `model`; on the answer, `stage` = "gateway". The server sets [`SUB1`]'s shared
//!    `setpoint` = 65: one push naming the first two subscriptions; the firmware answers with
//!    [`SUB1`]'s client attribute `applied_setpoint` and asks for the shared `setpoint`. The
//!    server calls `getLevel` `{"unit": "%"}` on [`SUB1`]; the firmware replies `{"level": 3}`
//!    and disconnects [`SUB2`]. [`SUB1`] stays connected: after each reconnect below, tb-core
//!    announces it again, between the SUBSCRIBE and the resent messages.
//! 6. The server assigns firmware "net-demo" 1.1.0 (SHA256, [`FW_SIZE`] bytes): tb-core
//!    downloads it in 1 KiB chunks; each chunk is checked against the image's generator
//!    ([`fw_byte`], the same formula as the script's) and written at its offset, tb-core
//!    verifies the checksum, the firmware "installs" it; the reports sent are exactly
//!    DOWNLOADING, DOWNLOADED, VERIFIED, UPDATED. The script has the relay cut the link in the
//!    middle of the first chunk (half of the packet delivered, then closed): the link drops
//!    once, reconnects, and tb-core resumes the download with the missing chunk.
//! 7. Two QoS 1 `resend` telemetry messages go out while the link holds its input, so their
//!    PUBACKs stay unread; the server drops the connection (the script calls
//!    `disconnect_device` once it stored both); after the reconnect the device's first
//!    transmits are the SUBSCRIBE and then exactly those two messages, which are then
//!    acknowledged.
//! 8. `stage` = "resent"; the script makes the path silent (the relay keeps the connection
//!    open and forwards nothing either way). The firmware sends PINGREQ after a keep-alive
//!    period of silence and gives the connection up when no PINGRESP came within another
//!    one, then reconnects.
//! 9. `stage` = "done", acknowledged; the run ends.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Debug;

use cortex_m_semihosting::hprintln;
use tb_core::serde_json::json;
use tb_core::serde_json::Value;
use tb_core::{
    Device, Event, FirmwareEvent, GatewayEvent, MessageId, Millis, QoS, RequestId, SubscriptionId,
};

use crate::link::{Link, LinkEvent};

/// The sub-devices the gateway relays for (`net_session.py` checks them on the server).
pub const SUB1: &str = "qemu-sensor-1";
pub const SUB2: &str = "qemu-sensor-2";
/// The timestamp of [`SUB2`]'s telemetry.
const SUB2_TS: u64 = 1_767_225_600_000;
/// Publishes to `v1/gateway/connect` over the run: [`SUB1`] and [`SUB2`] once each, then
/// [`SUB1`] again after each of the three reconnects.
const ANNOUNCEMENTS: u32 = 5;

/// Size of the image the script assigns.
pub const FW_SIZE: u64 = 5_000;
/// Title and version the script assigns.
const FW_TITLE: &str = "net-demo";
const FW_VERSION: &str = "1.1.0";

/// Byte `i` of the assigned image (the script builds it with the same formula).
pub fn fw_byte(i: u64) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8
}

/// Counts of checks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub passed: u32,
    pub failed: u32,
}

/// The MQTT keep alive: 10 s rather than the usual 60 so that the silent-path step takes
/// about 20 s, not two minutes (PINGREQ after one period of silence, given up after another).
pub const KEEP_ALIVE_S: u16 = 10;

/// Why the link gives up a silent connection (`link::LinkEvent::Down`).
const PING_TIMEOUT: &str = "no PINGRESP within the keep alive";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Basics,
    AwaitPush,
    AwaitRpc,
    AwaitGwResponse,
    AwaitGwPush,
    AwaitGwShared,
    AwaitGwRpc,
    AwaitFirmware,
    AwaitUpdatedAck,
    AwaitDrop,
    AwaitResend,
    AwaitSilentDrop,
    AwaitFinalUp,
    AwaitDoneAck,
    Finished,
}

/// The device side of the session.
pub struct Scenario {
    report: Report,
    stage: Stage,
    sub_temp: SubscriptionId,
    attr_req: RequestId,
    rpc_req: RequestId,
    attr_ok: bool,
    rpc_ok: bool,
    suback_ok: bool,
    connects: u32,
    /// Drops during the firmware download (the relay's cut: exactly one).
    fw_drops: u32,
    /// When the silent path began (the `resent` stage was queued).
    silent_since: Millis,
    fw_written: u64,
    fw_states: Vec<String>,
    updated_id: Option<MessageId>,
    resend: Vec<MessageId>,
    /// Device publishes seen after the reconnect, in order.
    after_reconnect: Vec<MessageId>,
    subscribed_after_reconnect: bool,
    done_id: Option<MessageId>,
    /// The pending sub-device attribute request.
    gw_req: RequestId,
    /// Gateway subscriptions: every device and key; SUB1's `setpoint`; SUB2's `setpoint`.
    gw_subs: [SubscriptionId; 3],
    /// Publishes to `v1/gateway/connect` seen.
    announcements: u32,
    /// Of those, the ones after the reconnect of step 7 (before the resends).
    announced_after_reconnect: u32,
}

impl Scenario {
    /// Queues step 1 (before any connection).
    pub fn start(now: Millis, dev: &mut Device) -> Scenario {
        hprintln!("-- boot: queue telemetry, attributes, an attribute request, a client RPC");
        let sub_temp = dev.subscribe_to_attribute("targetTemp");
        let mut s = Scenario {
            report: Report::default(),
            stage: Stage::Basics,
            sub_temp,
            attr_req: RequestId(0),
            rpc_req: RequestId(0),
            attr_ok: false,
            rpc_ok: false,
            suback_ok: false,
            connects: 0,
            fw_drops: 0,
            silent_since: 0,
            fw_written: 0,
            fw_states: Vec::new(),
            updated_id: None,
            resend: Vec::new(),
            after_reconnect: Vec::new(),
            subscribed_after_reconnect: false,
            done_id: None,
            gw_req: RequestId(0),
            gw_subs: [SubscriptionId(0); 3],
            announcements: 0,
            announced_after_reconnect: 0,
        };
        let telemetry =
            json!({"temperature": 25.5, "humidity": 60, "active": true, "label": "qemu"});
        let r = dev.send_telemetry(&telemetry);
        s.check("queue telemetry", r.is_ok(), || format!("{r:?}"));
        let attributes = json!({
            "model": "lm3s6965",
            "flash_kib": 256,
            "ratio": 0.25,
            "debug": false,
            "limits": {"min": 1, "max": 9},
        });
        let r = dev.send_attributes(&attributes);
        s.check("queue attributes", r.is_ok(), || format!("{r:?}"));
        match dev.request_attributes(now, &["model"], &["targetTemp"], 30_000) {
            Ok(id) => s.attr_req = id,
            Err(e) => s.check("request attributes", false, || format!("{e:?}")),
        }
        match dev.send_rpc_call(now, "getCurrentTime", &json!({}), 30_000) {
            Ok(id) => s.rpc_req = id,
            Err(e) => s.check("client RPC", false, || format!("{e:?}")),
        }
        s
    }

    /// Whether the session is over (passed or not).
    pub fn finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// The checks so far.
    pub fn report(&self) -> Report {
        self.report
    }

    /// Name of the step the session waits in (for a timeout message).
    pub fn waiting_for(&self) -> &'static str {
        match self.stage {
            Stage::Basics => "SUBACK, attribute response and client RPC response",
            Stage::AwaitPush => "the shared-attribute push",
            Stage::AwaitRpc => "the server-side RPC",
            Stage::AwaitGwResponse => "the sub-device's client attribute response",
            Stage::AwaitGwPush => "the sub-device's shared-attribute push",
            Stage::AwaitGwShared => "the sub-device's shared attribute response",
            Stage::AwaitGwRpc => "the server-side RPC to the sub-device",
            Stage::AwaitFirmware => "the firmware update",
            Stage::AwaitUpdatedAck => "the PUBACK of the UPDATED report",
            Stage::AwaitDrop => "the server to drop the connection",
            Stage::AwaitResend => "the resent messages to be acknowledged",
            Stage::AwaitSilentDrop => "the keep alive to give up the silent connection",
            Stage::AwaitFinalUp => "the reconnect after the silent path",
            Stage::AwaitDoneAck => "the PUBACK of stage done",
            Stage::Finished => "nothing",
        }
    }

    fn check(&mut self, what: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.report.passed += 1;
        } else {
            self.report.failed += 1;
            hprintln!("FAIL [{:?}] {}: {}", self.stage, what, detail());
        }
    }

    fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        let ok = got == want;
        self.check(what, ok, || format!("got {got:?}, want {want:?}"));
    }

    fn enter(&mut self, stage: Stage, note: &str) {
        hprintln!("-- {}", note);
        self.stage = stage;
    }

    /// One turn: reacts to what the link and the device report, issues the next commands.
    pub fn step(&mut self, now: Millis, dev: &mut Device, link: &mut Link) {
        while let Some(ev) = link.poll_event() {
            self.on_link(now, dev, link, ev);
        }
        while let Some(ev) = dev.poll_event() {
            self.on_event(now, dev, ev);
        }
        while let Some(ev) = dev.poll_gateway_event() {
            self.on_gateway(now, dev, ev);
        }
        while let Some(ev) = dev.poll_firmware_event() {
            self.on_firmware(dev, ev);
        }
        self.advance(now, dev, link);
    }

    fn on_link(&mut self, now: Millis, dev: &mut Device, link: &mut Link, ev: LinkEvent) {
        match ev {
            LinkEvent::Up => {
                self.connects += 1;
                hprintln!("link: MQTT session {} up (CONNACK accepted)", self.connects);
                if self.stage == Stage::AwaitFinalUp {
                    self.eq("sessions", self.connects, 4);
                    self.eq("sub-devices announced again", dev.gw_devices().count(), 1);
                    self.done_id = self.stage_telemetry(dev, "done");
                    self.enter(
                        Stage::AwaitDoneAck,
                        "reconnected after the silent path: stage done",
                    );
                }
            }
            LinkEvent::Down(why) => {
                hprintln!("link: down ({}) at {} ms", why, now);
                if self.stage == Stage::AwaitFirmware && self.connects > 0 {
                    // The relay's cut in the middle of a chunk.
                    self.fw_drops += 1;
                    self.eq(
                        "drop reason during the download",
                        why,
                        "connection closed by the server",
                    );
                } else if self.stage == Stage::AwaitSilentDrop {
                    self.eq("drop reason on the silent path", why, PING_TIMEOUT);
                    let silent = now - self.silent_since;
                    let period = u64::from(KEEP_ALIVE_S) * 1000;
                    // PINGREQ after one period without sending, given up one period later.
                    self.check(
                        "gave up after two keep-alive periods",
                        silent >= 2 * period && silent < 3 * period,
                        || format!("after {silent} ms"),
                    );
                    self.enter(Stage::AwaitFinalUp, "silent connection given up: reconnect");
                } else if self.stage == Stage::AwaitDrop {
                    self.eq(
                        "QoS 1 messages unacknowledged at the drop",
                        dev.unacknowledged_qos1(),
                        2,
                    );
                    link.hold_input(false);
                    self.enter(
                        Stage::AwaitResend,
                        "reconnect: expect SUBSCRIBE, then the two resends",
                    );
                } else if self.connects > 0 {
                    self.check("connection kept", false, || why.to_string());
                }
            }
            LinkEvent::Subscribed(n) => {
                // The session's four filters after each CONNACK; the two firmware filters
                // before the first chunk request of a connection.
                let firmware = self.stage == Stage::AwaitFirmware && n == 2;
                let session = tb_core::topics::GATEWAY_ALL_SUBSCRIPTIONS.len();
                self.check("SUBSCRIBE filters", n == session || firmware, || {
                    format!("{n} filters")
                });
                if self.stage == Stage::AwaitResend {
                    self.eq("SUBSCRIBE before resends", self.after_reconnect.len(), 0);
                    self.subscribed_after_reconnect = true;
                }
            }
            LinkEvent::SubAck(codes) => {
                let granted = !codes.is_empty() && codes.iter().all(|&c| c == 1);
                self.check("SUBACK grants QoS 1", granted, || format!("{codes:?}"));
                self.suback_ok = true;
            }
            LinkEvent::Published {
                id,
                fw_state,
                gateway_connect,
            } => {
                if let Some(state) = fw_state {
                    if state == "UPDATED" {
                        self.updated_id = Some(id);
                    }
                    self.fw_states.push(state);
                }
                if gateway_connect {
                    self.announcements += 1;
                    if self.stage == Stage::AwaitResend {
                        // tb-core's re-announcement of SUB1 (id 0: no handle waits for it).
                        self.eq(
                            "announcement before the resends",
                            self.after_reconnect.len(),
                            0,
                        );
                        self.eq("announcement id", id, MessageId(0));
                        self.announced_after_reconnect += 1;
                    }
                } else if self.stage == Stage::AwaitResend {
                    self.after_reconnect.push(id);
                }
            }
        }
    }

    fn on_event(&mut self, now: Millis, dev: &mut Device, ev: Event) {
        match ev {
            Event::AttributeResponse { id, result } => {
                self.eq("attribute response id", id, self.attr_req);
                match result {
                    Ok(v) => {
                        self.eq(
                            "client model",
                            v["client"]["model"].clone(),
                            json!("lm3s6965"),
                        );
                        self.eq(
                            "shared targetTemp",
                            v["shared"]["targetTemp"].clone(),
                            json!(21.5),
                        );
                    }
                    Err(e) => self.check("attribute response", false, || format!("{e:?}")),
                }
                self.attr_ok = true;
            }
            Event::RpcResponse { id, result } => {
                self.eq("client RPC id", id, self.rpc_req);
                self.eq(
                    "client RPC reply",
                    result,
                    Ok(json!({"time": 1_767_225_600_000u64})),
                );
                self.rpc_ok = true;
            }
            Event::AttributeUpdate {
                data,
                subscriptions,
            } => {
                if data.contains_key("targetTemp") {
                    self.eq("push arrives after ready", self.stage, Stage::AwaitPush);
                    self.eq("pushed targetTemp", data["targetTemp"].clone(), json!(23.5));
                    self.eq(
                        "subscriptions named",
                        subscriptions,
                        alloc::vec![self.sub_temp],
                    );
                    let r = dev.send_attributes(&json!({"applied_targetTemp": data["targetTemp"]}));
                    self.check("send applied_targetTemp", r.is_ok(), || format!("{r:?}"));
                    self.enter(Stage::AwaitRpc, "await the server-side RPC setLed");
                } else {
                    // The firmware assignment's fw_* keys and its {"deleted": [...]} push.
                    let fw = data.keys().all(|k| k.starts_with("fw_") || k == "deleted");
                    self.check("only firmware keys besides targetTemp", fw, || {
                        format!("{data:?}")
                    });
                }
            }
            Event::RpcRequest { id, body } => {
                self.eq(
                    "server RPC arrives after the push",
                    self.stage,
                    Stage::AwaitRpc,
                );
                self.eq("server RPC method", body["method"].clone(), json!("setLed"));
                self.eq(
                    "server RPC params",
                    body["params"].clone(),
                    json!({"on": true}),
                );
                let r = dev.send_rpc_reply(&id, &json!({"led": true}));
                self.check("send RPC reply", r.is_ok(), || format!("{r:?}"));
                self.start_gateway(now, dev);
            }
            Event::ProvisionResponse(o) => {
                self.check("no provisioning", false, || format!("{o:?}"))
            }
            Event::Dropped { topic, reason } => {
                self.check("nothing dropped", false, || format!("{topic}: {reason:?}"))
            }
        }
    }

    /// Step 5's commands: two sub-devices connected, their data, subscriptions, a request.
    fn start_gateway(&mut self, now: Millis, dev: &mut Device) {
        let q = QoS::AtLeastOnce;
        let r = dev.gw_connect_device("", "sensor", q);
        self.check("an empty sub-device name is refused", r.is_err(), || {
            format!("{r:?}")
        });
        let results = [
            dev.gw_connect_device(SUB1, "sensor", q),
            dev.gw_connect_device(SUB2, "", q),
            dev.gw_send_telemetry(SUB1, &json!({"temp": 21.25, "ok": true}), q),
            dev.gw_send_telemetry(SUB2, &json!([{"ts": SUB2_TS, "values": {"level": 3}}]), q),
            dev.gw_send_attributes(SUB1, &json!({"model": "s-1", "channels": 2}), q),
            dev.gw_claim(SUB1, Some("qemu-secret"), Some(60_000), q),
        ];
        for r in results {
            self.check("queue sub-device message", r.is_ok(), || format!("{r:?}"));
        }
        let names: Vec<&str> = dev.gw_devices().collect();
        self.eq("connected sub-devices", names.as_slice(), &[SUB1, SUB2][..]);
        self.gw_subs = [
            dev.gw_subscribe_to_attribute("*", "*"),
            dev.gw_subscribe_to_attribute(SUB1, "setpoint"),
            dev.gw_subscribe_to_attribute(SUB2, "setpoint"),
        ];
        self.gw_request(now, dev, "model", true);
        self.enter(
            Stage::AwaitGwResponse,
            "gateway: two sub-devices, their data; await SUB1's client model",
        );
    }

    fn gw_request(&mut self, now: Millis, dev: &mut Device, key: &str, client: bool) {
        match dev.gw_request_attributes(now, SUB1, &[key], client, 30_000) {
            Ok(id) => self.gw_req = id,
            Err(e) => self.check("sub-device attribute request", false, || format!("{e:?}")),
        }
    }

    fn on_gateway(&mut self, now: Millis, dev: &mut Device, ev: GatewayEvent) {
        let q = QoS::AtLeastOnce;
        match ev {
            GatewayEvent::AttributeResponse { id, device, result } => {
                self.eq("sub-device response id", id, self.gw_req);
                self.eq("sub-device response device", device.as_str(), SUB1);
                let (want, next) = match self.stage {
                    Stage::AwaitGwResponse => (json!("s-1"), Stage::AwaitGwPush),
                    _ => (json!(65), Stage::AwaitGwRpc),
                };
                let want = json!({"id": id.0, "device": SUB1, "value": want});
                self.eq("sub-device response", result, Ok(want));
                if next == Stage::AwaitGwPush {
                    self.stage_telemetry(dev, "gateway");
                    self.enter(next, "gateway: stage gateway; await SUB1's shared push");
                } else {
                    self.enter(next, "gateway: await the server-side RPC to SUB1");
                }
            }
            GatewayEvent::AttributeUpdate {
                device,
                data,
                subscriptions,
            } => {
                self.eq(
                    "sub-device push after stage gateway",
                    self.stage,
                    Stage::AwaitGwPush,
                );
                self.eq("pushed sub-device", device.as_str(), SUB1);
                let data = Value::Object(data);
                self.eq("pushed sub-device data", &data, &json!({"setpoint": 65}));
                let want = alloc::vec![self.gw_subs[0], self.gw_subs[1]];
                self.eq("sub-device subscriptions named", subscriptions, want);
                let applied = json!({"applied_setpoint": data["setpoint"]});
                let r = dev.gw_send_attributes(SUB1, &applied, q);
                self.check("send applied_setpoint", r.is_ok(), || format!("{r:?}"));
                self.gw_request(now, dev, "setpoint", false);
                self.enter(
                    Stage::AwaitGwShared,
                    "gateway: await SUB1's shared setpoint",
                );
            }
            GatewayEvent::RpcRequest { device, data } => {
                self.eq(
                    "sub-device RPC after the response",
                    self.stage,
                    Stage::AwaitGwRpc,
                );
                self.eq("sub-device RPC device", device.as_str(), SUB1);
                self.eq("sub-device RPC method", &data["method"], &json!("getLevel"));
                self.eq(
                    "sub-device RPC params",
                    &data["params"],
                    &json!({"unit": "%"}),
                );
                let id = data["id"].as_i64().unwrap_or(-1);
                let results = [
                    dev.gw_send_rpc_reply(SUB1, id, &json!({"level": 3}), q),
                    dev.gw_disconnect_device(SUB2, q),
                ];
                for r in results {
                    self.check("queue RPC reply and disconnect", r.is_ok(), || {
                        format!("{r:?}")
                    });
                }
                let names: Vec<&str> = dev.gw_devices().collect();
                self.eq("sub-devices left", names.as_slice(), &[SUB1][..]);
                self.enter(Stage::AwaitFirmware, "await the firmware assignment");
            }
            GatewayEvent::DeviceDisconnected { device, reason } => {
                self.check("no sub-device disconnected by the server", false, || {
                    format!("{device}: {reason:?}")
                });
            }
        }
    }

    fn on_firmware(&mut self, dev: &mut Device, ev: FirmwareEvent) {
        match ev {
            FirmwareEvent::Started {
                title,
                version,
                size,
                algorithm,
            } => {
                hprintln!(
                    "firmware: {} {} ({} bytes, {}) assigned",
                    title,
                    version,
                    size,
                    algorithm.name()
                );
                self.eq("firmware title", title.as_str(), FW_TITLE);
                self.eq("firmware version", version.as_str(), FW_VERSION);
                self.eq("firmware size", size, FW_SIZE);
                self.eq("firmware algorithm", algorithm.name(), "SHA256");
                self.fw_written = 0;
            }
            FirmwareEvent::Chunk { offset, data } => {
                self.eq("chunk offset (contiguous)", offset, self.fw_written);
                let bad = data
                    .iter()
                    .enumerate()
                    .position(|(i, &b)| b != fw_byte(offset + i as u64));
                self.check("chunk bytes", bad.is_none(), || {
                    format!("byte {} of the chunk at {offset} differs", bad.unwrap_or(0))
                });
                self.fw_written = offset + data.len() as u64;
            }
            FirmwareEvent::Progress { received, total } => {
                hprintln!("firmware: {}/{} bytes", received, total);
            }
            FirmwareEvent::Verified {
                title,
                version,
                size,
            } => {
                self.eq("verified size", size, FW_SIZE);
                self.eq("bytes written", self.fw_written, FW_SIZE);
                self.eq("drops during the download (the cut)", self.fw_drops, 1);
                // A real device would mark the slot bootable and reboot; this one installs at once.
                let r = dev.firmware_installed(&title, &version);
                self.check("firmware_installed", r.is_ok(), || format!("{r:?}"));
                self.eq(
                    "current firmware",
                    dev.current_firmware(),
                    (FW_TITLE, FW_VERSION),
                );
                self.enter(Stage::AwaitUpdatedAck, "firmware verified and installed");
            }
            FirmwareEvent::Failed { error, .. } => {
                self.check("firmware update", false, || error);
            }
        }
    }

    fn advance(&mut self, now: Millis, dev: &mut Device, link: &mut Link) {
        match self.stage {
            Stage::Basics => {
                if self.suback_ok && self.attr_ok && self.rpc_ok {
                    self.stage_telemetry(dev, "ready");
                    self.enter(Stage::AwaitPush, "ready: await the shared-attribute push");
                }
            }
            Stage::AwaitUpdatedAck => {
                if let Some(id) = self.updated_id {
                    if !dev.is_pending(id) {
                        let want = ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATED"];
                        let got = core::mem::take(&mut self.fw_states);
                        let got: Vec<&str> = got.iter().map(String::as_str).collect();
                        self.eq("fw_state reports", got.as_slice(), &want[..]);
                        link.hold_input(true);
                        for n in 1..=2 {
                            match dev.send_telemetry(&json!({ "resend": n })) {
                                Ok(id) => self.resend.push(id),
                                Err(e) => self.check("queue resend", false, || format!("{e:?}")),
                            }
                        }
                        self.enter(
                            Stage::AwaitDrop,
                            "input held: two QoS 1 messages whose PUBACKs stay unread; await the drop",
                        );
                    }
                }
            }
            Stage::AwaitResend => {
                if self.after_reconnect.len() >= self.resend.len()
                    && self.resend.iter().all(|&id| !dev.is_pending(id))
                {
                    self.eq("sessions", self.connects, 3);
                    self.eq(
                        "announcements after the drop",
                        self.announced_after_reconnect,
                        1,
                    );
                    self.check(
                        "SUBSCRIBE after the reconnect",
                        self.subscribed_after_reconnect,
                        String::new,
                    );
                    let first = self.after_reconnect[..self.resend.len()].to_vec();
                    self.eq(
                        "first publishes after the reconnect",
                        first,
                        self.resend.clone(),
                    );
                    self.eq(
                        "unacknowledged after the resend",
                        dev.unacknowledged_qos1(),
                        0,
                    );
                    self.stage_telemetry(dev, "resent");
                    self.silent_since = now;
                    self.enter(
                        Stage::AwaitSilentDrop,
                        "resent and acknowledged: stage resent; await the silent path",
                    );
                }
            }
            Stage::AwaitDoneAck => {
                if self.done_id.is_none_or(|id| !dev.is_pending(id)) {
                    self.eq(
                        "gateway connect publishes",
                        self.announcements,
                        ANNOUNCEMENTS,
                    );
                    self.stage = Stage::Finished;
                }
            }
            Stage::AwaitPush
            | Stage::AwaitRpc
            | Stage::AwaitGwResponse
            | Stage::AwaitGwPush
            | Stage::AwaitGwShared
            | Stage::AwaitGwRpc
            | Stage::AwaitFirmware
            | Stage::AwaitDrop
            | Stage::AwaitSilentDrop
            | Stage::AwaitFinalUp
            | Stage::Finished => {}
        }
    }

    fn stage_telemetry(&mut self, dev: &mut Device, stage: &str) -> Option<MessageId> {
        let r = dev.send_telemetry(&json!({ "stage": stage }));
        self.check("send stage", r.is_ok(), || format!("{r:?}"));
        r.ok()
    }
}
