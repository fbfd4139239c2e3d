//! Seconds from Python, and the deadlines and slices of the waits that keep Ctrl-C working:
//! one home for the client's and the dev server's bindings.
//!
//! Design: a blocking call never waits longer than [`SIGNAL_SLICE`] at a time with the GIL
//! released, then checks for signals, so Ctrl-C interrupts it promptly.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::PyResult;

/// How long a blocked call waits between checks for Ctrl-C.
pub(crate) const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// `v` seconds as a duration, or a `ValueError` naming `what` for NaN, infinity or a negative
/// number. Very long ones are capped at 10^9 s (about 31 years), which `Instant` can add.
pub(crate) fn secs(v: f64, what: &str) -> PyResult<Duration> {
    if !v.is_finite() || v < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a non-negative number of seconds, got {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v.min(1e9)))
}

/// When a wait of `timeout` seconds from now ends; `None` waits without end.
pub(crate) fn deadline(timeout: Option<f64>, what: &str) -> PyResult<Option<Instant>> {
    Ok(match timeout {
        None => None,
        Some(t) => Some(Instant::now() + secs(t, what)?),
    })
}

/// The next slice to wait: at most [`SIGNAL_SLICE`], never past `deadline`.
pub(crate) fn slice(deadline: Option<Instant>) -> Duration {
    match deadline {
        None => SIGNAL_SLICE,
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .min(SIGNAL_SLICE),
    }
}
