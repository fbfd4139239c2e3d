//! Classification of every incoming publish: `Device::handle_publish` with any topic and payload.
//!
//! Input: one flags byte, the topic up to the first `\n` (lossy UTF-8), then the payload.
//! Flags: bit 0 provisioning session, bit 1 connected, bit 2 an attribute request pending,
//! bit 3 a client RPC pending, bit 4 an attribute subscription on "a", bit 5 the device just
//! sent `{"a":1}` on the attributes topic (so an echo of it is expected).
//!
//! Checked: no panic; every publish yields exactly one event; a response event names a request
//! that was pending, and only once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tb_core::{Config, Device, Event, Mode, RequestId};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let topic = String::from_utf8_lossy(&rest[..split]);
    let payload = rest.get(split + 1..).unwrap_or(&[]);

    let mode = if flags & 1 != 0 {
        Mode::Provisioning
    } else {
        Mode::Device
    };
    let mut dev = Device::new(Config {
        mode,
        ..Config::default()
    });
    let now = 1_000;
    let mut pending: Vec<(bool, RequestId)> = Vec::new();
    if flags & 4 != 0 {
        let id = dev
            .request_attributes(now, &["a"], &["b"], 5_000)
            .expect("attribute request");
        pending.push((true, id));
    }
    if flags & 8 != 0 {
        let id = dev
            .send_rpc_call(now, "m", &json!({"p": 1}), 5_000)
            .expect("rpc call");
        pending.push((false, id));
    }
    if flags & 16 != 0 {
        dev.subscribe_to_attribute("a");
    }
    if flags & 32 != 0 {
        dev.send_attributes(&json!({"a": 1})).expect("attributes");
    }
    if flags & 2 != 0 || flags & 32 != 0 {
        dev.handle_connected();
        while dev.poll_transmit(now).is_some() {}
    }

    // The same message twice: the second must not answer a request again.
    for round in 0..2 {
        dev.handle_publish(now + round, &topic, payload);
        let mut events = 0;
        while let Some(ev) = dev.poll_event() {
            events += 1;
            match ev {
                Event::AttributeResponse { id, result } => {
                    assert!(result.is_ok(), "a timeout from handle_publish");
                    let pos = pending
                        .iter()
                        .position(|&(attr, p)| attr && p == id)
                        .expect("attribute response for a request that was not pending");
                    pending.remove(pos);
                }
                Event::RpcResponse { id, result } => {
                    assert!(result.is_ok(), "a timeout from handle_publish");
                    let pos = pending
                        .iter()
                        .position(|&(attr, p)| !attr && p == id)
                        .expect("RPC response for a request that was not pending");
                    pending.remove(pos);
                }
                Event::RpcRequest { id, body } => {
                    assert!(
                        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
                        "{id:?}"
                    );
                    assert!(body.is_object());
                }
                Event::AttributeUpdate { .. } => assert_eq!(topic, "v1/devices/me/attributes"),
                _ => {}
            }
        }
        assert_eq!(events, 1, "one event per incoming publish");
    }
    for (_, id) in pending {
        assert!(dev.is_request_pending(id));
    }
});
