//! The IO task of one client: opens the transport (TCP, or TLS through rustls), then moves
//! bytes between it and the session until the link ends, and reconnects with a backoff.
//!
//! Design: the task owns no protocol rule. Per wake-up (a read, the session's timer, or a
//! wake from a Python thread that queued something) it takes the lock once, feeds the
//! session, applies the session's events to the device, pumps, and takes every byte queued
//! so far, then writes them with one write outside the lock. Reads go into one buffer per IO
//! thread (a current-thread runtime runs one task at a time, and the bytes are consumed
//! before the next await), so an idle connection holds no read buffer; it wakes only for its
//! keepalive.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::client::{Link, Shared, Signals, State, LOG};
use crate::firmware;
use crate::runtime;
use crate::session::{Close, Event};

/// At most this many connection attempts (TCP + CONNECT/CONNACK) at once, process-wide.
///
/// Design: mosquitto listens with a backlog of 100; 10,000 clients connecting at once overflow
/// it, and dropped SYNs are retried only after a second or more (10,000 connects took 9-12 s
/// here). Holding attempts to the backlog's size connects them all in well under a second.
static CONNECTING: Semaphore = Semaphore::const_new(100);

type Permit = tokio::sync::SemaphorePermit<'static>;

/// The first bound on a TCP handshake; it doubles with each handshake abandoned in a row.
///
/// Design: a SYN dropped by a full listen backlog is sent again by the kernel only after
/// 1 s, then 3 s, 7 s..., and all that while the attempt holds one of the [`CONNECTING`]
/// permits, so a storm of connects waits behind its unlucky attempts (10,000 connects to a
/// loaded mosquitto took 10.4 s). A new socket after a short bound goes to the back of the
/// permit queue and sends a fresh SYN at once. 500 ms is above any handshake's round trip on
/// a working path but the satellite's; doubling still reaches that within the attempt.
const TCP_CONNECT_FIRST: Duration = Duration::from_millis(500);

/// How long a reconnect attempt (TCP, TLS, CONNECT/CONNACK) may take before it is abandoned
/// and tried again. Design: a path that swallows packets holds an attempt forever; a short
/// bound with a prompt retry lets traffic flow soon after the path is back.
const RECONNECT_ATTEMPT: Duration = Duration::from_secs(4);

/// How much longer than the caller's connect timeout the first attempt may run.
const FIRST_ATTEMPT_SLACK: Duration = Duration::from_secs(1);

/// Bytes read per system call at most (one buffer per IO thread).
const READ_BUF: usize = 64 * 1024;

thread_local! {
    static READ: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

enum Transport {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>, Box<[u8]>),
}

impl Transport {
    /// Opens TCP, holding a [`CONNECTING`] permit (the caller's first one, `permit`) while
    /// the handshake runs, then TLS if configured. Returns the transport and the permit
    /// (kept until CONNACK). A handshake that takes longer than its bound (starting at
    /// [`TCP_CONNECT_FIRST`], doubling each time) is abandoned, its permit released, and
    /// tried again on a new socket; the caller bounds the whole attempt.
    async fn open(
        shared: &Shared,
        mut permit: Option<Permit>,
    ) -> Result<(Transport, Option<Permit>), Ended> {
        let s = &shared.settings;
        let net = |e: io::Error| Ended::Failed {
            reason: format!("network error: {e}"),
            timed_out: false,
            refused: false,
        };
        let mut bound = TCP_CONNECT_FIRST;
        let tcp = loop {
            let connect = TcpStream::connect((s.host.as_str(), s.port));
            match tokio::time::timeout(bound, connect).await {
                Ok(r) => break r.map_err(net)?,
                Err(_) => {
                    log::debug!(
                        target: LOG,
                        "no TCP handshake with {}:{} within {} ms (a lost SYN?); trying again",
                        s.host,
                        s.port,
                        bound.as_millis()
                    );
                    // Back to the end of the queue, so others go first.
                    drop(permit.take());
                    bound *= 2;
                    permit = CONNECTING.acquire().await.ok();
                }
            }
        };
        tcp.set_nodelay(true).map_err(net)?;
        let Some(cfg) = &s.tls else {
            return Ok((Transport::Tcp(tcp), permit));
        };
        let name =
            rustls::pki_types::ServerName::try_from(s.host.clone()).map_err(|e| Ended::Failed {
                reason: format!("TLS error: {:?} is not a valid server name: {e}", s.host),
                timed_out: false,
                refused: true,
            })?;
        let tls = tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| Ended::Failed {
                // rustls reports a refused certificate or handshake as InvalidData: a setting
                // to fix, not a network blip, so the first attempt is not retried.
                refused: e.kind() == io::ErrorKind::InvalidData,
                reason: format!("TLS error: {e}"),
                timed_out: false,
            })?;
        let buf = vec![0; 16 * 1024].into_boxed_slice();
        Ok((Transport::Tls(Box::new(tls), buf), permit))
    }

    /// Waits for bytes and reads them; `Ok(0)` is the peer's end of stream. Cancel safe.
    async fn read(&mut self) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => loop {
                s.readable().await?;
                let r = READ.with(|b| {
                    let mut b = b.borrow_mut();
                    if b.len() < READ_BUF {
                        b.resize(READ_BUF, 0);
                    }
                    s.try_read(&mut b[..])
                });
                match r {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Ok(n) if n > 0 && n < READ_BUF => {
                        // Design: a short read drained the socket; forget its readiness now
                        // (no system call) rather than learn it from one more read that
                        // fails with EAGAIN: one read per wake-up, not two. Bytes that come
                        // later raise a fresh readiness event. Tokio's own poll_read does
                        // the same.
                        let _ = s.try_io(Interest::READABLE, || {
                            Err::<(), _>(io::ErrorKind::WouldBlock.into())
                        });
                        return Ok(n);
                    }
                    other => return other,
                }
            },
            Transport::Tls(s, buf) => s.read(&mut buf[..]).await,
        }
    }

    /// Calls `f` with the `n` bytes the last [`read`](Transport::read) returned.
    fn received<R>(&self, n: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Transport::Tcp(_) => READ.with(|b| f(&b.borrow()[..n])),
            Transport::Tls(_, buf) => f(&buf[..n]),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(data).await,
            Transport::Tls(s, _) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Transport::Tcp(s) => s.shutdown().await,
            Transport::Tls(s, _) => s.shutdown().await,
        };
    }
}

/// How a connection ended.
enum Ended {
    /// `abort()` or a newer generation: leave without touching the state.
    Stopped,
    /// `disconnect()`: DISCONNECT went out.
    Closed,
    /// The link failed; `timed_out` when the path was silent (no prompt error), `refused`
    /// when the server answered CONNACK with a refusal.
    Failed {
        reason: String,
        timed_out: bool,
        refused: bool,
    },
}

/// What one locked step decided.
struct Step {
    out: Option<bytes::Bytes>,
    deadline: Option<u64>,
    ended: Option<Ended>,
    firmware: bool,
    log: Option<(log::Level, String)>,
}

/// The IO task of generation `gen`: connects, serves, reconnects until stopped.
pub async fn run(shared: Arc<Shared>, gen: u64, sig: Arc<Signals>, first_timeout: Duration) {
    let min_delay = shared.settings.min_delay;
    let mut delay = min_delay;
    let mut was_up = false;
    // Design: the caller's timeout decides what connect() reports; the first attempt's own
    // bound is a backstop just after it, so the two never race.
    let mut attempt = first_timeout + FIRST_ATTEMPT_SLACK;
    loop {
        let ended = tokio::select! {
            biased;
            _ = sig.stop.notified() => return,
            e = attempt_once(&shared, gen, &sig, attempt, &mut was_up) => e,
        };
        let (reason, timed_out, refused) = match ended {
            Ended::Stopped => return,
            Ended::Closed => {
                let mut st = shared.state.lock();
                if st.gen == gen {
                    st.link = Link::Idle;
                    st.signals = None;
                    st.core.handle_disconnected();
                    st.session.reset();
                    shared.cond.notify_all();
                }
                return;
            }
            Ended::Failed {
                reason,
                timed_out,
                refused,
            } => (reason, timed_out, refused),
        };
        let peer_closed = was_up && !timed_out && !refused;
        let (retry, first_failure, gave_up) =
            on_error(&shared, gen, reason.clone(), was_up, refused, peer_closed);
        if let Some(msg) = gave_up {
            log::error!(target: LOG, "{msg}");
        }
        if !retry {
            return;
        }
        if was_up || timed_out {
            // After a session the backoff starts over; a silent path already cost its wait.
            delay = min_delay;
        }
        if first_failure {
            log::warn!(
                target: LOG,
                "connection to {}:{} lost ({reason}); reconnecting",
                shared.settings.host,
                shared.settings.port,
            );
        }
        was_up = false;
        attempt = RECONNECT_ATTEMPT;
        tokio::select! {
            biased;
            _ = sig.stop.notified() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        // Design: an attempt that timed out (a silent path holding it) already waited its
        // bound and put no load on the server: it does not grow the delay, so the reset or
        // refusal that ends a silent path is retried after the shortest wait.
        if !timed_out {
            delay = (delay * 2).min(shared.settings.max_delay);
        }
    }
}

/// The link failed: the device keeps what is unacknowledged, but for a message the server
/// keeps closing the connection on (`peer_closed`: the server ended a live session; see
/// `tb_core::refusal`). Returns whether to try again, whether this is the first failure since
/// the link was last up (worth a log line), and the ERROR line for a message given up.
fn on_error(
    shared: &Shared,
    gen: u64,
    reason: String,
    was_up: bool,
    refused: bool,
    peer_closed: bool,
) -> (bool, bool, Option<String>) {
    let mut st = shared.state.lock();
    if st.gen != gen {
        return (false, false, None);
    }
    let gave_up = if peer_closed && !st.closing {
        let r = st.core.handle_closed_by_peer();
        r.map(|r| shared.refuse(&mut st, &r))
    } else {
        st.core.handle_disconnected();
        None
    };
    st.session.reset();
    st.last_error = Some(reason);
    let first_failure = was_up || st.link == Link::Connecting;
    let retry = if st.closing {
        st.link = Link::Idle;
        false
    } else if refused && st.link == Link::Connecting {
        // The first attempt was refused (bad token): retrying would only repeat it.
        st.link = Link::Failed;
        false
    } else if shared.settings.reconnect {
        st.link = Link::Down;
        true
    } else {
        st.link = if was_up { Link::Down } else { Link::Failed };
        false
    };
    if !retry {
        st.signals = None;
    }
    shared.cond.notify_all();
    (retry, first_failure && retry, gave_up)
}

async fn attempt_once(
    shared: &Arc<Shared>,
    gen: u64,
    sig: &Signals,
    timeout: Duration,
    was_up: &mut bool,
) -> Ended {
    let permit = CONNECTING.acquire().await.ok();
    let opened = tokio::time::timeout(timeout, Transport::open(shared, permit)).await;
    let (transport, permit) = match opened {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return e,
        Err(_) => {
            return Ended::Failed {
                reason: format!(
                    "timed out while connecting ({:.1} s)",
                    timeout.as_secs_f64()
                ),
                timed_out: true,
                refused: false,
            }
        }
    };
    serve(shared, gen, sig, transport, timeout, permit, was_up).await
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Arc<Shared>,
    gen: u64,
    sig: &Signals,
    mut t: Transport,
    connack_timeout: Duration,
    mut permit: Option<Permit>,
    was_up: &mut bool,
) -> Ended {
    {
        let mut st = shared.state.lock();
        if st.gen != gen {
            return Ended::Stopped;
        }
        st.session
            .connect(runtime::now_ms(), connack_timeout.as_millis() as u64);
    }
    let mut sleep: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep(Duration::ZERO));
    let mut armed: Option<u64> = None;
    let mut input: Option<usize> = None;
    let mut timer_fired = false;
    loop {
        let step = match input.take() {
            Some(n) => t.received(n, |data| drive(shared, gen, Some(data), false, was_up)),
            None => drive(shared, gen, None, timer_fired, was_up),
        };
        timer_fired = false;
        if step.firmware {
            let s = shared.clone();
            // Design: file writes, fsync and rename never run on an IO thread.
            tokio::task::spawn_blocking(move || firmware::process(&s));
        }
        if *was_up && permit.is_some() {
            permit = None;
        }
        if let Some((level, msg)) = step.log {
            log::log!(target: LOG, level, "{msg}");
        }
        if let Some(out) = step.out {
            if let Err(e) = t.write_all(&out).await {
                return Ended::Failed {
                    reason: format!("network error: {e}"),
                    timed_out: false,
                    refused: false,
                };
            }
        }
        match step.ended {
            Some(Ended::Closed) => {
                t.shutdown().await;
                return Ended::Closed;
            }
            Some(e) => return e,
            None => {}
        }
        if step.deadline != armed {
            armed = step.deadline;
            if let Some(ms) = armed {
                sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(runtime::instant_at(ms)));
            }
        }
        tokio::select! {
            biased;
            _ = sig.stop.notified() => return Ended::Stopped,
            r = t.read() => match r {
                Ok(0) => return Ended::Failed {
                    reason: "the server closed the connection".into(),
                    timed_out: false,
                    refused: false,
                },
                Ok(n) => input = Some(n),
                Err(e) => return Ended::Failed {
                    reason: format!("network error: {e}"),
                    timed_out: false,
                    refused: false,
                },
            },
            _ = sig.wake.notified() => {}
            _ = sleep.as_mut(), if armed.is_some() => {
                timer_fired = true;
                armed = None;
            }
        }
    }
}

/// One locked step: feed the session, apply its events to the device, pump, take the bytes.
fn drive(shared: &Shared, gen: u64, data: Option<&[u8]>, timer: bool, was_up: &mut bool) -> Step {
    let mut step = Step {
        out: None,
        deadline: None,
        ended: None,
        firmware: false,
        log: None,
    };
    let mut guard = shared.state.lock();
    let st: &mut State = &mut guard;
    if st.gen != gen {
        step.ended = Some(Ended::Stopped);
        return step;
    }
    st.wake_pending = false;
    let now = runtime::now_ms();
    if let Some(d) = data {
        st.session.handle_data(now, d);
    }
    if timer || st.session.poll_timeout().is_some_and(|t| t <= now) {
        st.session.handle_timeout(now);
    }
    let mut events = false;
    // tb-core's deadlines: pacing (the queue head may go now), the wait for the server's
    // limits, request timeouts.
    if st.core.poll_timeout().is_some_and(|t| t <= now) {
        st.core.handle_timeout(now);
        firmware::take_events(st, &shared.settings.firmware_dir);
        events |= st.core.has_events();
    }
    while let Some(ev) = st.session.poll_event() {
        match ev {
            Event::Connected { session_present } => {
                if *was_up || st.link == Link::Down {
                    step.log = Some((log::Level::Info, "reconnected to the server".into()));
                }
                st.core.handle_connected_at(now);
                st.link = Link::Up;
                st.session_present = session_present;
                st.sessions += 1;
                st.subscribed = false;
                st.last_error = None;
                shared.cond.notify_all();
                *was_up = true;
            }
            Event::Publish { topic, payload } => {
                st.core.handle_publish(now, &topic, &payload);
                // A firmware offer with a title that is no file name is refused here, before
                // its first chunk request goes out with what else this queued.
                firmware::take_events(st, &shared.settings.firmware_dir);
                events = true;
            }
            Event::Acked(id) => shared.complete(st, id),
            Event::Dropped { topic, reason } => {
                step.log = Some((
                    log::Level::Warn,
                    format!("dropped a message on {topic}: {reason}"),
                ));
            }
            Event::Subscribed { refused } => {
                st.subscribed = true;
                shared.cond.notify_all();
                if refused > 0 {
                    step.log = Some((
                        log::Level::Warn,
                        format!("the server refused {refused} subscription(s)"),
                    ));
                }
            }
            Event::Closed(why) => {
                if let Close::Refused(r) = &why {
                    st.refusals += 1;
                    st.last_refusal = Some(r.code());
                    shared.cond.notify_all();
                }
                step.ended = Some(Ended::Failed {
                    timed_out: matches!(why, Close::ConnackTimeout(_) | Close::PingTimeout(_)),
                    refused: matches!(why, Close::Refused(_)),
                    reason: why.to_string(),
                });
            }
        }
    }
    if events {
        shared.notify_events(st);
    }
    step.firmware = !st.firmware_events.is_empty() && !st.firmware_busy;
    shared.pump(st);
    shared.flush_acks(st);
    step.out = st.session.poll_transmit();
    step.deadline = match (st.session.poll_timeout(), st.core.poll_timeout()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if st.closing && !st.session.is_up() && step.ended.is_none() {
        step.ended = Some(Ended::Closed);
    }
    step
}
