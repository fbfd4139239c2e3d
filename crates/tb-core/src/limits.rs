//! Session limits and pacing: what the server allows, and when the next message may go.
//!
//! ThingsBoard answers the client-side RPC `getSessionLimits` (spec thingsboard-mqtt.md 8;
//! thingsboard-gateway.md A.11) with the largest packet it accepts and its rate limits as
//! `"capacity:seconds,capacity:seconds"` strings. A session that exceeds a limit is closed
//! (thingsboard-mqtt.md 2.9), so the device paces itself: [`Pacer`] says when the next message
//! may leave, and the message waits in the queue until then.
//!
//! Which windows a message counts against (A.11, and how the server's transport charges it):
//!
//! | message | windows |
//! |---|---|
//! | device telemetry / attributes | `telemetryMessages` 1, `telemetryDataPoints` N |
//! | any other device message | `messages` 1 |
//! | gateway telemetry / attributes | gateway `telemetryMessages` 1, gateway `telemetryDataPoints` N |
//! | gateway connect, attribute request, RPC reply, claim | gateway `messages` 1 |
//! | gateway disconnect | nothing |
//!
//! N is the number of key/values, summed over timestamps.
//!
//! Design: the server counts with greedy token buckets that start full (bucket4j). The pacer
//! keeps a sliding log per window instead and lets at most `capacity` units leave within any
//! stretch of `seconds` (plus a small margin for the clock and the network). Such traffic is
//! always accepted by the server's buckets (a bucket that starts full admits at most
//! `capacity + rate * t` in any stretch `t`, and a sliding window admits less), and it is also
//! what a user reading "3000 per 60 s" expects to see on the wire.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::Value;

use crate::error::{PeerError, UsageError};
use crate::payload::kind;
use crate::topics;
use crate::Millis;

/// The windows of one rate-limit string: every `(capacity, length)` pair applies at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    windows: Vec<(u32, Millis)>,
}

impl RateLimit {
    /// Parses a limit the user gave, e.g. `"100:1,3000:60"`. An empty string or `"0:0"`
    /// means no limit (`None`), as on the server.
    ///
    /// # Errors
    /// [`UsageError::Invalid`] naming the part that is not `capacity:seconds` with both
    /// numbers positive integers.
    pub fn parse(text: &str) -> Result<Option<RateLimit>, UsageError> {
        let mut windows = Vec::new();
        for part in text
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let bad = || {
                UsageError::Invalid(format!(
                    "rate limit {text:?}: {part:?} is not capacity:seconds (e.g. \"100:1,3000:60\")"
                ))
            };
            let (cap, secs) = part.split_once(':').ok_or_else(bad)?;
            let cap: u32 = cap.trim().parse().map_err(|_| bad())?;
            let secs: u32 = secs.trim().parse().map_err(|_| bad())?;
            match (cap, secs) {
                (0, 0) => continue,
                (0, _) | (_, 0) => return Err(bad()),
                _ => windows.push((cap, Millis::from(secs) * 1000)),
            }
        }
        Ok(RateLimit::from_windows(windows))
    }

    /// Parses a limit the server sent; entries that are not `capacity:seconds` are skipped
    /// (the peer's data never raises).
    pub fn parse_lenient(text: &str) -> Option<RateLimit> {
        let windows = text
            .split([',', ';'])
            .filter_map(|part| {
                let (cap, secs) = part.trim().split_once(':')?;
                let cap: u32 = cap.trim().parse().ok()?;
                let secs: u32 = secs.trim().parse().ok()?;
                (cap > 0 && secs > 0).then(|| (cap, Millis::from(secs) * 1000))
            })
            .collect();
        RateLimit::from_windows(windows)
    }

    fn from_windows(windows: Vec<(u32, Millis)>) -> Option<RateLimit> {
        (!windows.is_empty()).then_some(RateLimit { windows })
    }

    /// The `(capacity, length in ms)` pairs.
    pub fn windows(&self) -> &[(u32, Millis)] {
        &self.windows
    }

    /// The smallest capacity: no single message may carry more units than this.
    pub fn smallest_capacity(&self) -> u32 {
        self.windows.iter().map(|w| w.0).min().unwrap_or(u32::MAX)
    }
}

/// The three limits of one scope (the session itself, or everything a gateway relays).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSet {
    /// Messages that carry no data points.
    pub messages: Option<RateLimit>,
    /// Telemetry and attribute uploads.
    pub telemetry_messages: Option<RateLimit>,
    /// Data points of telemetry and attribute uploads.
    pub telemetry_data_points: Option<RateLimit>,
}

impl LimitSet {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.messages.is_none()
            && self.telemetry_messages.is_none()
            && self.telemetry_data_points.is_none()
    }

    fn from_json(v: Option<&Value>) -> LimitSet {
        let field = |name: &str| {
            v.and_then(|o| o.get(name))
                .and_then(Value::as_str)
                .and_then(RateLimit::parse_lenient)
        };
        LimitSet {
            messages: field("messages"),
            telemetry_messages: field("telemetryMessages"),
            telemetry_data_points: field("telemetryDataPoints"),
        }
    }
}

/// What `getSessionLimits` answered (or what the user set by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// `maxPayloadSize`: the largest MQTT remaining length the server accepts.
    pub max_payload_size: Option<usize>,
    /// `maxInflightMessages` (informational: the server's pre-authentication queue bound).
    pub max_inflight_messages: Option<u32>,
    /// `rateLimits`: the session's own traffic.
    pub device: LimitSet,
    /// `gatewayRateLimits`: the sum of what a gateway relays for its sub-devices.
    pub gateway: LimitSet,
}

impl SessionLimits {
    /// Reads a `getSessionLimits` response. Missing or `null` fields mean "no limit".
    ///
    /// # Errors
    /// [`PeerError::NotAnObject`] when the response is not an object, or is the server's
    /// `{"error": ...}` (the request timed out on the server).
    pub fn from_json(v: &Value) -> Result<SessionLimits, PeerError> {
        let o = v.as_object().ok_or(PeerError::NotAnObject(kind(v)))?;
        if o.contains_key("error") {
            return Err(PeerError::NotAnObject("an error response"));
        }
        let positive = |name: &str| o.get(name).and_then(Value::as_u64).filter(|n| *n > 0);
        Ok(SessionLimits {
            max_payload_size: positive("maxPayloadSize").map(|n| n as usize),
            max_inflight_messages: positive("maxInflightMessages")
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            device: LimitSet::from_json(o.get("rateLimits")),
            gateway: LimitSet::from_json(o.get("gatewayRateLimits")),
        })
    }
}

/// Whose windows a message counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The session's own traffic (`rateLimits`).
    Own,
    /// Traffic a gateway relays for its sub-devices (`gatewayRateLimits`).
    Gateway,
}

/// What one message costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Which set of windows.
    pub scope: Scope,
    /// Units of `messages`.
    pub messages: u32,
    /// Units of `telemetryMessages`.
    pub telemetry: u32,
    /// Units of `telemetryDataPoints`.
    pub data_points: u32,
}

impl Cost {
    /// A message that costs nothing.
    pub const FREE: Cost = Cost {
        scope: Scope::Own,
        messages: 0,
        telemetry: 0,
        data_points: 0,
    };

    /// One regular message.
    pub fn message(scope: Scope) -> Cost {
        Cost {
            scope,
            messages: 1,
            ..Cost::FREE
        }
    }

    /// One upload carrying `points` data points.
    pub fn upload(scope: Scope, points: u32) -> Cost {
        Cost {
            scope,
            telemetry: 1,
            data_points: points,
            ..Cost::FREE
        }
    }
}

/// One sliding window: at most `cap` units within any `len` milliseconds.
#[derive(Debug, Clone)]
struct Window {
    cap: u32,
    len: Millis,
    /// (time sent, units), oldest first; entries older than `len` are dropped.
    log: VecDeque<(Millis, u32)>,
    used: u32,
}

impl Window {
    fn new(cap: u32, len: Millis) -> Window {
        // Design: a margin of 2 % (at least 20 ms) absorbs a late clock tick and the network
        // bunching two bursts together; the achieved rate stays above 95 % of the limit.
        let margin = (len / 50).max(20);
        Window {
            cap,
            len: len + margin,
            log: VecDeque::new(),
            used: 0,
        }
    }

    fn expire(&mut self, now: Millis) {
        while let Some(&(t, n)) = self.log.front() {
            if t.saturating_add(self.len) > now {
                break;
            }
            self.used -= n;
            self.log.pop_front();
        }
    }

    /// When `n` more units fit (`now` or later); `n` above the capacity is treated as the
    /// capacity (the caller splits messages so that this does not happen).
    fn next_time(&self, now: Millis, n: u32) -> Millis {
        let n = n.min(self.cap);
        if n == 0 || self.used + n <= self.cap {
            return now;
        }
        let mut in_use = self.used;
        for &(t, units) in &self.log {
            in_use -= units;
            if in_use + n <= self.cap {
                return t.saturating_add(self.len).max(now);
            }
        }
        now
    }

    fn take(&mut self, now: Millis, n: u32) {
        if n == 0 {
            return;
        }
        let n = n.min(self.cap);
        self.used += n;
        match self.log.back_mut() {
            Some(last) if last.0 == now => last.1 += n,
            _ => self.log.push_back((now, n)),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Windows {
    messages: Vec<Window>,
    telemetry: Vec<Window>,
    data_points: Vec<Window>,
}

impl Windows {
    fn from_set(set: &LimitSet) -> Windows {
        let make = |l: &Option<RateLimit>| -> Vec<Window> {
            l.iter()
                .flat_map(|l| l.windows.iter().map(|&(c, len)| Window::new(c, len)))
                .collect()
        };
        Windows {
            messages: make(&set.messages),
            telemetry: make(&set.telemetry_messages),
            data_points: make(&set.telemetry_data_points),
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Window> {
        self.messages
            .iter_mut()
            .chain(self.telemetry.iter_mut())
            .chain(self.data_points.iter_mut())
    }

    fn next_time(&self, now: Millis, c: &Cost) -> Millis {
        let each = |ws: &[Window], n: u32| ws.iter().map(|w| w.next_time(now, n)).max();
        [
            each(&self.messages, c.messages),
            each(&self.telemetry, c.telemetry),
            each(&self.data_points, c.data_points),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now)
    }

    fn take(&mut self, now: Millis, c: &Cost) {
        self.messages
            .iter_mut()
            .for_each(|w| w.take(now, c.messages));
        self.telemetry
            .iter_mut()
            .for_each(|w| w.take(now, c.telemetry));
        self.data_points
            .iter_mut()
            .for_each(|w| w.take(now, c.data_points));
    }
}

/// Paces messages so that no window of the limits is exceeded.
///
/// Call order: [`set_limits`](Pacer::set_limits) when limits become known; before sending a
/// message, [`ready_at`](Pacer::ready_at) with its [`Cost`]; when it is `<= now`, send it and
/// call [`take`](Pacer::take). Time is passed in; nothing here reads a clock.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    own: Windows,
    gateway: Windows,
}

impl Pacer {
    /// A pacer that lets everything through until limits are set.
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// Replaces the limits. Windows start empty.
    pub fn set_limits(&mut self, limits: &SessionLimits) {
        self.own = Windows::from_set(&limits.device);
        self.gateway = Windows::from_set(&limits.gateway);
    }

    /// Whether any window exists.
    pub fn is_limited(&self) -> bool {
        let any = |w: &Windows| {
            !(w.messages.is_empty() && w.telemetry.is_empty() && w.data_points.is_empty())
        };
        any(&self.own) || any(&self.gateway)
    }

    fn scope(&mut self, s: Scope) -> &mut Windows {
        match s {
            Scope::Own => &mut self.own,
            Scope::Gateway => &mut self.gateway,
        }
    }

    /// The earliest time (`>= now`) a message of this cost may leave.
    pub fn ready_at(&mut self, now: Millis, cost: &Cost) -> Millis {
        let w = self.scope(cost.scope);
        w.all().for_each(|w| w.expire(now));
        w.next_time(now, cost)
    }

    /// Records that a message of this cost left at `now`.
    pub fn take(&mut self, now: Millis, cost: &Cost) {
        self.scope(cost.scope).take(now, cost);
    }
}

/// What a message on `topic` carrying `data_points` costs (see the table in the module doc).
pub fn cost_of(topic: &str, data_points: u32) -> Cost {
    let scope = if topic.starts_with(topics::GATEWAY_PREFIX) {
        Scope::Gateway
    } else {
        Scope::Own
    };
    match topic {
        topics::TELEMETRY
        | topics::ATTRIBUTES
        | topics::GATEWAY_TELEMETRY
        | topics::GATEWAY_ATTRIBUTES => Cost::upload(scope, data_points),
        // A.11: a disconnect does not reach the core, so it is not counted.
        topics::GATEWAY_DISCONNECT => Cost::FREE,
        _ => Cost::message(scope),
    }
}

/// Describes which limits apply, for error messages and logs.
pub fn describe(limits: &SessionLimits) -> String {
    let one = |l: &Option<RateLimit>| match l {
        None => String::from("none"),
        Some(l) => {
            let parts: Vec<String> = l
                .windows
                .iter()
                .map(|(c, ms)| format!("{c}:{}", ms / 1000))
                .collect();
            parts.join(",")
        }
    };
    let set = |s: &LimitSet| {
        format!(
            "messages {}, telemetry messages {}, data points {}",
            one(&s.messages),
            one(&s.telemetry_messages),
            one(&s.telemetry_data_points)
        )
    };
    format!(
        "max payload {:?}; own: {}; gateway: {}",
        limits.max_payload_size,
        set(&limits.device),
        set(&limits.gateway)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_reads_pairs_and_treats_zero_as_no_limit() {
        let l = RateLimit::parse("100:1,3000:60").unwrap().unwrap();
        assert_eq!(l.windows(), &[(100, 1000), (3000, 60_000)]);
        assert_eq!(l.smallest_capacity(), 100);
        assert_eq!(RateLimit::parse("").unwrap(), None);
        assert_eq!(RateLimit::parse("0:0,").unwrap(), None);
        assert_eq!(
            RateLimit::parse(" 5:1 ; 10:2 ").unwrap().unwrap().windows(),
            &[(5, 1000), (10, 2000)]
        );
        let e = RateLimit::parse("100:1,abc").unwrap_err();
        assert!(e.to_string().contains("\"abc\""), "{e}");
        assert!(RateLimit::parse("0:5").is_err());
        assert!(RateLimit::parse("-1:5").is_err());
    }

    #[test]
    fn lenient_parse_skips_bad_entries() {
        let l = RateLimit::parse_lenient("x,10:1,:,7:0,20:60").unwrap();
        assert_eq!(l.windows(), &[(10, 1000), (20, 60_000)]);
        assert_eq!(RateLimit::parse_lenient("nonsense"), None);
    }

    #[test]
    fn session_limits_read_every_field() {
        let v = json!({
            "maxPayloadSize": 65536, "maxInflightMessages": 100,
            "rateLimits": {"messages": "20:1,600:60", "telemetryMessages": null,
                           "telemetryDataPoints": "100:1"},
            "gatewayRateLimits": {"messages": "50:1", "telemetryMessages": "25:1",
                                  "telemetryDataPoints": "500:1"}
        });
        let l = SessionLimits::from_json(&v).unwrap();
        assert_eq!(l.max_payload_size, Some(65536));
        assert_eq!(l.max_inflight_messages, Some(100));
        assert_eq!(
            l.device.messages.as_ref().unwrap().windows(),
            &[(20, 1000), (600, 60_000)]
        );
        assert_eq!(l.device.telemetry_messages, None);
        assert_eq!(
            l.gateway.telemetry_data_points.unwrap().windows(),
            &[(500, 1000)]
        );
        let none = SessionLimits::from_json(&json!({"maxPayloadSize": 65536})).unwrap();
        assert!(none.device.is_empty() && none.gateway.is_empty());
        assert!(SessionLimits::from_json(&json!({"error": "timeout"})).is_err());
        assert!(SessionLimits::from_json(&json!([1])).is_err());
    }

    fn limits(messages: &str, telemetry: &str, points: &str) -> SessionLimits {
        SessionLimits {
            device: LimitSet {
                messages: RateLimit::parse(messages).unwrap(),
                telemetry_messages: RateLimit::parse(telemetry).unwrap(),
                telemetry_data_points: RateLimit::parse(points).unwrap(),
            },
            ..SessionLimits::default()
        }
    }

    #[test]
    fn pacer_admits_the_capacity_then_waits_for_the_window_plus_margin() {
        let mut p = Pacer::new();
        p.set_limits(&limits("3:1", "", ""));
        let c = Cost::message(Scope::Own);
        for t in [0, 10, 20] {
            assert_eq!(p.ready_at(t, &c), t);
            p.take(t, &c);
        }
        // The first unit frees at 0 + 1000 + 20 ms margin.
        assert_eq!(p.ready_at(30, &c), 1020);
        assert_eq!(p.ready_at(1020, &c), 1020);
        p.take(1020, &c);
        assert_eq!(p.ready_at(1020, &c), 1030);
    }

    #[test]
    fn pacer_never_exceeds_any_window_over_a_long_run() {
        // 100:1,3000:60 with a sender that always has something to send: count what left in
        // every window and check the rate is between 95 % and 100 % of the long window.
        let mut p = Pacer::new();
        p.set_limits(&limits("", "100:1,3000:60", ""));
        let c = Cost::upload(Scope::Own, 1);
        let mut sent = Vec::new();
        let mut now = 0;
        while now < 300_000 {
            let t = p.ready_at(now, &c);
            now = t;
            p.take(now, &c);
            sent.push(now);
        }
        for (i, &t) in sent.iter().enumerate() {
            let in_1s = sent[i..].iter().take_while(|&&u| u < t + 1000).count();
            let in_60s = sent[i..].iter().take_while(|&&u| u < t + 60_000).count();
            assert!(in_1s <= 100, "{in_1s} in 1 s from {t}");
            assert!(in_60s <= 3000, "{in_60s} in 60 s from {t}");
        }
        let per_minute = sent.len() as f64 / 5.0;
        assert!(per_minute >= 0.95 * 3000.0, "{per_minute}");
    }

    #[test]
    fn pacer_counts_data_points_and_scopes_apart() {
        let mut p = Pacer::new();
        let mut l = limits("", "", "10:1");
        l.gateway.messages = RateLimit::parse("1:1").unwrap();
        p.set_limits(&l);
        assert!(p.is_limited());
        let up = Cost::upload(Scope::Own, 6);
        assert_eq!(p.ready_at(0, &up), 0);
        p.take(0, &up);
        assert_eq!(p.ready_at(0, &up), 1020);
        // A gateway message uses the gateway's windows only.
        let gw = Cost::message(Scope::Gateway);
        assert_eq!(p.ready_at(0, &gw), 0);
        p.take(0, &gw);
        assert_eq!(p.ready_at(5, &gw), 1020);
        // A message the own windows do not limit goes at once.
        assert_eq!(p.ready_at(5, &Cost::message(Scope::Own)), 5);
    }
}
