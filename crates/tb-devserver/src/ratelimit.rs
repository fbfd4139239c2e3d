//! Token buckets for `capacity:seconds` rate-limit strings. spec: 2.9, 17.45.

use std::time::Instant;

use crate::config::RateLimits;
use crate::error::DevServerError;

/// One limit string: all its buckets apply at once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateLimitSpec {
    /// (capacity, period in seconds).
    pairs: Vec<(f64, f64)>,
}

impl RateLimitSpec {
    pub(crate) fn parse(text: &str) -> Result<RateLimitSpec, DevServerError> {
        let mut pairs = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let bad = || {
                DevServerError::Config(format!(
                    "bad rate limit {text:?}: want capacity:seconds pairs"
                ))
            };
            let (cap, secs) = part.trim().split_once(':').ok_or_else(bad)?;
            let cap: u64 = cap.trim().parse().map_err(|_| bad())?;
            let secs: u64 = secs.trim().parse().map_err(|_| bad())?;
            if cap == 0 || secs == 0 {
                return Err(bad());
            }
            pairs.push((cap as f64, secs as f64));
        }
        Ok(RateLimitSpec { pairs })
    }

    pub(crate) fn parse_all(
        limits: &RateLimits,
    ) -> Result<[Option<RateLimitSpec>; 3], DevServerError> {
        let p = |o: &Option<String>| o.as_deref().map(RateLimitSpec::parse).transpose();
        Ok([
            p(&limits.messages)?,
            p(&limits.telemetry_messages)?,
            p(&limits.telemetry_data_points)?,
        ])
    }
}

/// Parsed limits of the server.
#[derive(Clone)]
pub(crate) struct Limits {
    pub(crate) device: [Option<RateLimitSpec>; 3],
    /// `gatewayRateLimits`: what a gateway relays for its sub-devices.
    pub(crate) gateway: [Option<RateLimitSpec>; 3],
}

/// Buckets of one limit string (greedy refill).
#[derive(Debug)]
pub(crate) struct Buckets {
    /// (capacity, refill per second, tokens).
    buckets: Vec<(f64, f64, f64)>,
    last: Instant,
}

impl Buckets {
    pub(crate) fn new(spec: &RateLimitSpec, now: Instant) -> Buckets {
        Buckets {
            buckets: spec
                .pairs
                .iter()
                .map(|&(cap, secs)| (cap, cap / secs, cap))
                .collect(),
            last: now,
        }
    }

    /// Takes `n` tokens from every bucket; `false` (and nothing taken) if any lacks them.
    pub(crate) fn try_take(&mut self, n: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        for b in &mut self.buckets {
            b.2 = (b.2 + dt * b.1).min(b.0);
        }
        if self.buckets.iter().any(|b| b.2 < n) {
            return false;
        }
        for b in &mut self.buckets {
            b.2 -= n;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_capacity_then_refuses() {
        let spec = RateLimitSpec::parse("3:1,100:60").unwrap();
        let now = Instant::now();
        let mut b = Buckets::new(&spec, now);
        assert!(b.try_take(1.0, now));
        assert!(b.try_take(1.0, now));
        assert!(b.try_take(1.0, now));
        assert!(!b.try_take(1.0, now));
        assert!(b.try_take(1.0, now + std::time::Duration::from_millis(400)));
    }

    #[test]
    fn bad_strings_are_config_errors() {
        assert!(RateLimitSpec::parse("abc").is_err());
        assert!(RateLimitSpec::parse("0:1").is_err());
    }
}
