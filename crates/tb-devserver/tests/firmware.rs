//! Spec/thingsboard-mqtt.md section 17, items 41-44 (firmware), talking raw MQTT bytes over
//! TCP to the dev server.

mod common;

use common::*;
use tb_devserver::*;

const ATTRS: &str = "v1/devices/me/attributes";
const SHA256_0_TO_9: &str = "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882";

/// A device subscribed to shared-attribute pushes.
fn subscribed(s: &DevServer) -> Client {
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[(ATTRS, 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    c
}

/// The next `n` publishes' payloads, PUBACKed, sorted (spec 17.41: order not fixed).
fn pushes(c: &mut Client, n: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..n)
        .map(|_| {
            let p = c.publish();
            assert_eq!(p.topic, ATTRS);
            c.send(&puback(p.pkid));
            p.payload
        })
        .collect();
    out.sort();
    out
}

fn image(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Sends a chunk request at QoS 1 and returns the response after checking the PUBACK.
fn chunk(c: &mut Client, pkid: u16, req: &str, index: &str, size: &str) -> Pub {
    let topic = format!("v2/fw/request/{req}/chunk/{index}");
    c.send(&publish(&topic, 1, pkid, size.as_bytes()));
    let [hi, lo] = pkid.to_be_bytes();
    assert_eq!(c.frame(), [0x40, 2, hi, lo], "PUBACK for {topic}");
    c.publish()
}

#[test]
fn item41_assignment_pushes_fw_attributes_and_deletes_tag_and_url() {
    let s = server();
    let mut c = subscribed(&s);
    let pkg = FirmwarePackage::new("lamp", "1.1", &b"0123456789"[..]);
    assert_eq!(
        s.set_firmware(DEVICE, Some(pkg)).unwrap().as_deref(),
        Some(SHA256_0_TO_9)
    );
    let set = format!(
        r#"{{"fw_title":"lamp","fw_version":"1.1","fw_size":10,"fw_checksum_algorithm":"SHA256","fw_checksum":"{SHA256_0_TO_9}"}}"#
    );
    assert_eq!(
        pushes(&mut c, 2),
        vec![r#"{"deleted":["fw_tag","fw_url"]}"#.to_string(), set]
    );
    c.expect_silence_then_alive(100);
    let shared = s.shared_attributes(DEVICE).unwrap();
    assert_eq!(shared["fw_size"], TbValue::Long(10));
    assert_eq!(shared["fw_title"], TbValue::String("lamp".into()));
    assert_eq!(
        s.latest_telemetry(DEVICE).unwrap()["fw_state"].value,
        TbValue::String("INITIATED".into())
    );
    // Readable with an attribute request too (spec 11.1).
    c.send(&publish(
        "v1/devices/me/attributes/request/3",
        1,
        9,
        b"{\"sharedKeys\":\"fw_version,fw_checksum_algorithm\"}",
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 9]);
    assert_eq!(
        c.publish().payload,
        r#"{"shared":{"fw_version":"1.1","fw_checksum_algorithm":"SHA256"}}"#
    );
}

#[test]
fn item41_tag_given_checksum_and_numeric_looking_version_stay_as_given() {
    let s = server();
    let mut c = subscribed(&s);
    let mut pkg =
        FirmwarePackage::new("lamp", "007", &b"abc"[..]).with_algorithm(ChecksumAlgorithm::Md5);
    pkg.tag = Some("lamp 007".into());
    pkg.checksum = Some("not-a-real-md5".into());
    s.set_firmware(DEVICE, Some(pkg)).unwrap();
    assert_eq!(
        pushes(&mut c, 2),
        vec![
            r#"{"deleted":["fw_url"]}"#.to_string(),
            r#"{"fw_title":"lamp","fw_version":"007","fw_size":3,"fw_checksum_algorithm":"MD5","fw_checksum":"not-a-real-md5","fw_tag":"lamp 007"}"#.to_string(),
        ]
    );
}

#[test]
fn item41_every_algorithm_sets_its_own_checksum() {
    let s = server();
    let data = b"123456789";
    let expected = [
        ("MD5", "25f9e794323b453885f5181f1b624d0b"),
        (
            "SHA256",
            "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
        ),
        ("CRC32", "2639f4cb"),
    ];
    for (name, hex) in expected {
        let alg: ChecksumAlgorithm = name.parse().unwrap();
        let pkg = FirmwarePackage::new("t", "v", &data[..]).with_algorithm(alg);
        assert_eq!(
            s.set_firmware(DEVICE, Some(pkg)).unwrap().as_deref(),
            Some(hex)
        );
        let shared = s.shared_attributes(DEVICE).unwrap();
        assert_eq!(shared["fw_checksum"], TbValue::String(hex.into()));
        assert_eq!(
            shared["fw_checksum_algorithm"],
            TbValue::String(name.into())
        );
    }
    for alg in ChecksumAlgorithm::ALL {
        let pkg = FirmwarePackage::new("t", "v", &data[..]).with_algorithm(alg);
        let sum = s.set_firmware(DEVICE, Some(pkg)).unwrap().unwrap();
        assert_eq!(sum, alg.checksum(data));
        assert!(sum
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}

#[test]
fn item41_removal_deletes_all_fw_keys_in_one_push_and_bad_input_is_refused() {
    let s = server();
    let mut c = subscribed(&s);
    assert_eq!(s.set_firmware(DEVICE, None).unwrap(), None);
    c.expect_silence_then_alive(100); // nothing assigned: nothing to remove
    s.set_firmware(DEVICE, Some(FirmwarePackage::new("a", "1", &b"x"[..])))
        .unwrap();
    pushes(&mut c, 2);
    s.set_firmware(DEVICE, None).unwrap();
    assert_eq!(
        pushes(&mut c, 1),
        vec![r#"{"deleted":["fw_title","fw_version","fw_ts","fw_state","fw_size","fw_checksum","fw_checksum_algorithm","fw_url","fw_tag"]}"#.to_string()]
    );
    assert!(!s
        .shared_attributes(DEVICE)
        .unwrap()
        .keys()
        .any(|k| k.starts_with("fw_")));
    let empty = FirmwarePackage::new("", "1", &b"x"[..]);
    assert!(matches!(
        s.set_firmware(DEVICE, Some(empty)),
        Err(DevServerError::InvalidFirmware(_))
    ));
    let pkg = FirmwarePackage::new("a", "1", &b"x"[..]);
    assert!(matches!(
        s.set_firmware("nobody", Some(pkg)),
        Err(DevServerError::UnknownDevice(_))
    ));
    // Unsubscribed devices get no push, the attributes are set all the same.
    let s = server();
    let mut c = Client::device(s.local_addr());
    s.set_firmware(DEVICE, Some(FirmwarePackage::new("a", "1", &b"x"[..])))
        .unwrap();
    c.expect_silence_then_alive(100);
    assert_eq!(
        s.shared_attributes(DEVICE).unwrap()["fw_size"],
        TbValue::Long(1)
    );
}

#[test]
fn item42_chunks_sliced_remembered_size_whole_image_and_past_the_end() {
    let s = server();
    let data = image(10_000);
    s.set_firmware(DEVICE, Some(FirmwarePackage::new("t", "v", data.clone())))
        .unwrap();
    let mut c = Client::device(s.local_addr());
    let p = chunk(&mut c, 1, "5", "0", "4096");
    assert_eq!((p.topic.as_str(), p.qos), ("v2/fw/response/5/chunk/0", 1));
    assert_eq!(p.bytes, data[..4096]);
    // Empty payload reuses the size remembered for request 5; "0" and "-1" do too.
    assert_eq!(chunk(&mut c, 2, "5", "1", "").bytes, data[4096..8192]);
    assert_eq!(chunk(&mut c, 3, "5", "2", "0").bytes, data[8192..]);
    assert_eq!(chunk(&mut c, 4, "5", "3", "-1").bytes, b"");
    // Another request id has no size: the whole image; "+1000" is a size (parseInt).
    assert_eq!(chunk(&mut c, 5, "6", "0", "").bytes, data);
    assert_eq!(chunk(&mut c, 6, "7", "9", "+1000").bytes, data[9000..]);
    // The index is an int: "007" answers on .../chunk/7; digits after it end the match.
    let p = chunk(&mut c, 7, "8", "007", "1000");
    assert_eq!(
        (p.topic.as_str(), p.bytes.as_slice()),
        ("v2/fw/response/8/chunk/7", &data[7000..8000])
    );
    let p = chunk(&mut c, 8, "8", "1x", "");
    assert_eq!(
        (p.topic.as_str(), p.bytes.as_slice()),
        ("v2/fw/response/8/chunk/1", &data[1000..2000])
    );
    // QoS 0 request: no PUBACK; the response follows a subscription's QoS.
    c.send(&subscribe(9, &[("v2/fw/response/+/chunk/+", 0)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 9, 0]);
    c.send(&publish("v2/fw/request/9/chunk/1", 0, 0, b"3"));
    let p = c.publish();
    assert_eq!((p.qos, p.bytes.as_slice()), (0, &data[3..6]));
    // Malformed request id: an unknown topic (PUBACK 0x90 is 0 on 3.1.1), nothing else.
    c.send(&publish("v2/fw/request/a/chunk/0", 1, 10, b""));
    assert_eq!(c.frame(), [0x40, 2, 0, 10]);
    c.expect_silence_then_alive(100);
}

#[test]
fn item42_a_running_download_keeps_its_image_after_reassignment() {
    let s = server();
    s.set_firmware(
        DEVICE,
        Some(FirmwarePackage::new("t", "1", &b"old image"[..])),
    )
    .unwrap();
    let mut c = Client::device(s.local_addr());
    assert_eq!(chunk(&mut c, 1, "1", "0", "3").bytes, b"old");
    s.set_firmware(
        DEVICE,
        Some(FirmwarePackage::new("t", "2", &b"NEW IMAGE"[..])),
    )
    .unwrap();
    assert_eq!(chunk(&mut c, 2, "1", "1", "").bytes, b" im");
    assert_eq!(chunk(&mut c, 3, "2", "0", "3").bytes, b"NEW");
    s.set_firmware(DEVICE, None).unwrap();
    assert_eq!(chunk(&mut c, 4, "2", "1", "").bytes, b" IM");
}

#[test]
fn item43_too_large_and_not_found_publish_on_fw_error_then_close() {
    let s = server();
    s.set_firmware(DEVICE, Some(FirmwarePackage::new("t", "v", image(200_000))))
        .unwrap();
    let mut c = Client::device(s.local_addr());
    let p = chunk(&mut c, 1, "1", "0", "65536"); // the limit itself is served
    assert_eq!(p.bytes, image(200_000)[..65536]);
    c.send(&publish("v2/fw/request/2/chunk/0", 1, 2, b"65537"));
    let p = c.publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_str()),
        ("v2/fw/error", "PAYLOAD_TOO_LARGE")
    );
    c.expect_closed(); // and no PUBACK before the close
                       // No firmware: NOT_FOUND, also for software requests (still on v2/fw/error).
    let s = server();
    for topic in ["v2/fw/request/1/chunk/0", "v2/sw/request/1/chunk/0"] {
        let mut c = Client::device(s.local_addr());
        c.send(&publish(topic, 1, 1, b"100"));
        let p = c.publish();
        assert_eq!(
            (p.topic.as_str(), p.payload.as_str()),
            ("v2/fw/error", "NOT_FOUND")
        );
        c.expect_closed();
    }
}

#[test]
fn item44_non_numeric_size_or_index_past_int_closes_without_puback() {
    let s = server();
    s.set_firmware(DEVICE, Some(FirmwarePackage::new("t", "v", &b"data"[..])))
        .unwrap();
    for (index, size) in [
        ("0", "{\"size\":4096}"),
        ("0", " 4096"),
        ("0", "4096\n"),
        ("0", "99999999999"),
        ("2147483648", "10"),
    ] {
        let mut c = Client::device(s.local_addr());
        let topic = format!("v2/fw/request/1/chunk/{index}");
        c.send(&publish(&topic, 1, 1, size.as_bytes()));
        c.expect_closed();
    }
}
