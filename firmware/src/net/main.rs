//! Networked example firmware for qemu's `lm3s6965evb` (Cortex-M3): tb-core over MQTT 3.1.1
//! over TCP over the board's Ethernet controller, talking to the dev server.
//!
//! Layers, each a plain struct the main loop drives (no executor, no threads):
//! `eth.rs` (the MAC as a smoltcp `phy::Device`) -> smoltcp (DHCP, TCP) -> `link.rs` (one TCP
//! socket, a `fw_mqtt::Session`, the `tb_core::Device`) -> `scenario.rs` (the application:
//! what it sends, what it checks). Time is a hardware timer's millisecond counter (`clock.rs`); when a
//! loop turn moved nothing, the core sleeps in WFI until the next tick or received frame.
//!
//! The access token comes in on the semihosting command line (`firmware/run --net` passes the
//! one the dev server issued). Output goes out through semihosting; the exit status is 0 only
//! if every check passed within the deadline.
#![no_std]
#![no_main]

extern crate alloc;

mod clock;
mod eth;
#[path = "../exit.rs"]
mod exit;
#[path = "../heap.rs"]
mod heap;
mod link;
mod scenario;

use alloc::string::String;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr};
use tb_core::{Config, Device, FirmwareConfig, Mode};

#[global_allocator]
static HEAP: heap::TrackingHeap = heap::TrackingHeap::empty();

/// The whole session must end within this (board clock) time, or the run fails.
const DEADLINE_MS: u64 = 150_000;
/// TCP buffers: a 1 KiB firmware chunk plus its MQTT header fits the receive side whole.
const TCP_RX: usize = 2048;
const TCP_TX: usize = 2048;
/// The MQTT receive limit and tb-core's packet limit.
const MAX_PACKET: usize = 2048;
/// What the stack is painted with, to measure its peak use.
const PAINT: u32 = 0xdead_beef;

/// An interrupt number of the LM3S6965 (there is no peripheral access crate for it here).
#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: only the chip's Timer 0A (19) and Ethernet (42) numbers are used, both below the
// 48 interrupts it has.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

#[entry]
fn main() -> ! {
    static mut SOCKETS: [SocketStorage<'static>; 2] = [SocketStorage::EMPTY; 2];
    static mut TCP_RX_BUF: [u8; TCP_RX] = [0; TCP_RX];
    static mut TCP_TX_BUF: [u8; TCP_TX] = [0; TCP_TX];
    static mut ETH: Option<eth::Eth> = None;

    paint_stack();
    HEAP.init();
    hprintln!("tb-core firmware: MQTT session with the dev server over qemu's Ethernet");
    let Some(token) = token_from_cmdline() else {
        hprintln!("FAIL: no access token on the semihosting command line");
        finish(false);
    };
    clock::start();
    let eth = ETH.insert(eth::Eth::new());
    // SAFETY: the handler (DefaultHandler below) only acknowledges these two interrupts and
    // bumps the clock; it shares no data with the main loop but an atomic counter.
    unsafe {
        NVIC::unmask(Irq(clock::IRQ));
        NVIC::unmask(Irq(eth::IRQ));
    }

    let mac = eth.mac();
    let mut cfg = IfaceConfig::new(EthernetAddress(mac).into());
    // TCP initial sequence numbers and DHCP transaction ids come from this seed; the token
    // differs per run, the emulated board has no other entropy.
    cfg.random_seed = token.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let now = clock::now();
    let mut iface = Interface::new(cfg, eth, Instant::from_millis(now as i64));
    let mut sockets = SocketSet::new(&mut SOCKETS[..]);
    let dhcp = sockets.add(dhcpv4::Socket::new());
    let tcp = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut TCP_RX_BUF[..]),
        tcp::SocketBuffer::new(&mut TCP_TX_BUF[..]),
    ));
    hprintln!(
        "eth: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}; DHCP...",
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );

    let mut dev = Device::new(Config {
        // A gateway is a device too: the session runs every device step, and relays for two
        // sub-devices (scenario.rs, step 5).
        mode: Mode::Gateway,
        max_queued: 32,
        max_packet_size: MAX_PACKET,
        firmware: FirmwareConfig {
            chunk_size: 1024,
            chunk_timeout_ms: 20_000,
            ..FirmwareConfig::default()
        },
        ..Config::default()
    });
    let session = fw_mqtt::Session::new(fw_mqtt::Config {
        keep_alive_s: scenario::KEEP_ALIVE_S,
        max_packet_size: MAX_PACKET,
        connack_timeout_ms: 10_000,
    });
    let mut link = link::Link::new(tcp, session, "qemu-lm3s6965", token);
    HEAP.reset_peak();
    let mut scenario = scenario::Scenario::start(now, &mut dev);

    let mut has_address = false;
    let (mut turns, mut sleeps) = (0u32, 0u32);

    loop {
        let now = clock::now();
        let ts = Instant::from_millis(now as i64);
        turns += 1;
        let mut busy =
            iface.poll(ts, eth, &mut sockets) == smoltcp::iface::PollResult::SocketStateChanged;
        match sockets.get_mut::<dhcpv4::Socket>(dhcp).poll() {
            Some(dhcpv4::Event::Configured(c)) => {
                hprintln!("dhcp: address {}, router {:?}", c.address, c.router);
                iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(c.address));
                });
                match c.router {
                    Some(r) => {
                        let _ = iface.routes_mut().add_default_ipv4_route(r);
                    }
                    None => {
                        iface.routes_mut().remove_default_ipv4_route();
                    }
                }
                has_address = true;
            }
            Some(dhcpv4::Event::Deconfigured) => {
                if has_address {
                    hprintln!("dhcp: address lost");
                }
                iface.update_ip_addrs(|addrs| addrs.clear());
                has_address = false;
            }
            None => {}
        }
        link.receive(now, &mut iface, &mut sockets, &mut dev, has_address);
        if dev.poll_timeout().is_some_and(|t| t <= now) {
            dev.handle_timeout(now);
        }
        scenario.step(now, &mut dev, &mut link);
        link.transmit(now, &mut sockets, &mut dev);
        busy |= link.was_busy();
        busy |= iface.poll(ts, eth, &mut sockets) == smoltcp::iface::PollResult::SocketStateChanged;

        if scenario.finished() {
            break;
        }
        if now >= DEADLINE_MS {
            hprintln!(
                "FAIL timeout: still waiting for {} after {} ms",
                scenario.waiting_for(),
                now
            );
            break;
        }
        if !busy {
            // Sleep until the next timer tick (1 ms) or received frame. An interrupt that came
            // after this turn's checks costs at most one tick of latency.
            cortex_m::asm::wfi();
            sleeps += 1;
        }
    }

    let report = scenario.report();
    let stats = eth.stats();
    hprintln!(
        "eth: {} frames received, {} sent, {} dropped; {} loop turns, {} WFI sleeps in {} ms",
        stats.rx_frames,
        stats.tx_frames,
        stats.rx_dropped,
        turns,
        sleeps,
        clock::now()
    );
    hprintln!(
        "heap: peak {} bytes requested, peak {} bytes in use (block rounding included), {} allocations; heap size {}",
        HEAP.peak_requested(),
        HEAP.peak_used(),
        HEAP.allocations(),
        heap::HEAP_SIZE
    );
    hprintln!("stack: peak {} bytes", stack_peak());
    let ok = report.failed == 0 && scenario.finished();
    hprintln!(
        "firmware: {} passed, {} failed",
        report.passed,
        report.failed
    );
    finish(ok)
}

fn finish(ok: bool) -> ! {
    if ok {
        hprintln!("PASS");
    } else {
        hprintln!("FAIL");
    }
    exit::exit(ok)
}

/// The second word of the semihosting command line (qemu's `-semihosting-config
/// arg=tb-firmware-net,arg=TOKEN`).
fn token_from_cmdline() -> Option<String> {
    let mut buf = [0u8; 256];
    // The host writes the length back into the block: UnsafeCell makes that write legal.
    let block = core::cell::UnsafeCell::new([buf.as_mut_ptr() as usize, buf.len() - 1]);
    // SAFETY: SYS_GET_CMDLINE writes at most `block[1]` bytes into `buf` and the length back
    // into `block[1]`; both live until the call returns.
    let r = unsafe { cortex_m_semihosting::syscall(cortex_m_semihosting::nr::GET_CMDLINE, &block) };
    if r != 0 {
        return None;
    }
    let len = block.into_inner()[1].min(buf.len());
    let line = core::str::from_utf8(&buf[..len]).ok()?;
    line.trim_end_matches('\0')
        .split_whitespace()
        .nth(1)
        .map(String::from)
}

extern "C" {
    static mut _stack_end: u32;
    static _stack_start: u32;
}

/// Paints the free stack (from its limit up to a little below the current frame).
fn paint_stack() {
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = core::ptr::addr_of_mut!(_stack_end);
    while (p as usize) + 256 < sp {
        // SAFETY: between the end of .bss/heap (`_stack_end`) and below the live stack.
        unsafe {
            p.write_volatile(PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack ever used: from the top down to the lowest word no longer painted.
fn stack_peak() -> usize {
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = core::ptr::addr_of_mut!(_stack_end) as *const u32;
    // SAFETY: reads inside the stack region, below the live stack pointer.
    while (p as usize) < top && unsafe { p.read_volatile() } == PAINT {
        p = unsafe { p.add(1) };
    }
    top - p as usize
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    match irqn as u16 {
        clock::IRQ => clock::on_interrupt(),
        eth::IRQ => eth::Eth::ack_interrupt(),
        _ => {}
    }
}
