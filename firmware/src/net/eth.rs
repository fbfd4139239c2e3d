//! A polled driver for the LM3S6965's Ethernet controller (qemu's `stellaris_enet`), as a
//! smoltcp `phy::Device`.
//!
//! The MAC has one FIFO per direction, reached through the 32-bit `MACDATA` register
//! (LM3S6965 datasheet, "Ethernet Controller"):
//!
//! - transmit: the first word carries the frame's data length (the frame minus its 14-byte
//!   header) in bits 15-0 and the first two frame bytes in bits 31-16; the rest of the frame
//!   follows four bytes a word; writing 1 to `MACTR` sends it. The MAC pads short frames and
//!   appends the CRC (`PADEN`, `CRC` in `MACTCTL`).
//! - receive: `MACNP` counts whole frames in the FIFO. A frame's first word holds its FIFO
//!   length (frame + 2 length bytes + 4 CRC bytes) in bits 15-0 and the first two frame bytes;
//!   every word of it must be read, the CRC included, to move on to the next frame.
//!
//! Design: polled, not DMA or interrupt-driven: the MAC has no DMA, and smoltcp pulls frames
//! when it polls. The RX interrupt is enabled only to wake the CPU from WFI (the handler in
//! `main.rs` acknowledges it); frames are read here, in the main loop.

use core::ptr::{read_volatile, write_volatile};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// MAC registers (base of the Ethernet controller).
const BASE: usize = 0x4004_8000;
/// `MACRIS` when read, `MACIACK` when written.
const MACIACK: usize = 0x00;
const MACIM: usize = 0x04;
const MACRCTL: usize = 0x08;
const MACTCTL: usize = 0x0c;
const MACDATA: usize = 0x10;
const MACIA0: usize = 0x14;
const MACIA1: usize = 0x18;
const MACNP: usize = 0x34;
const MACTR: usize = 0x38;

const INT_RX: u32 = 0x01;
const RCTL_RXEN: u32 = 0x01;
const RCTL_BADCRC: u32 = 0x08; // drop frames with a bad CRC
const RCTL_RSTFIFO: u32 = 0x10;
const TCTL_TXEN: u32 = 0x01;
const TCTL_PADEN: u32 = 0x02;
const TCTL_CRC: u32 = 0x04;
const TR_NEWTX: u32 = 0x01;

/// System control: clock gating of the Ethernet MAC and PHY (`RCGC2`, bits 28 and 30).
const SYSCTL_RCGC2: usize = 0x400f_e108;
const RCGC2_EMAC0: u32 = 1 << 28;
const RCGC2_EPHY0: u32 = 1 << 30;

/// Interrupt number of the Ethernet controller in the vector table.
pub const IRQ: u16 = 42;

/// Largest frame handled (without CRC): 1500-byte MTU plus the Ethernet header.
const MAX_FRAME: usize = 1514;

fn reg(offset: usize) -> *mut u32 {
    (BASE + offset) as *mut u32
}

fn read(offset: usize) -> u32 {
    // SAFETY: an aligned MAC register on this chip; reads have no side effect except DATA,
    // which only this driver reads.
    unsafe { read_volatile(reg(offset)) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: an aligned MAC register on this chip, written only by this driver.
    unsafe { write_volatile(reg(offset), value) }
}

/// Counters for the run's report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Frames received and handed to smoltcp.
    pub rx_frames: u32,
    /// Frames dropped because they did not fit the buffer.
    pub rx_dropped: u32,
    /// Frames sent.
    pub tx_frames: u32,
}

/// The Ethernet controller.
pub struct Eth {
    mac: [u8; 6],
    rx: [u8; MAX_FRAME],
    tx: [u8; MAX_FRAME],
    stats: Stats,
}

impl Eth {
    /// Clocks the MAC, resets its receive FIFO and enables receive (with the RX interrupt, to
    /// wake from WFI) and transmit (padding short frames, appending the CRC).
    pub fn new() -> Eth {
        // SAFETY: RCGC2 is a system-control register; setting the two gate bits only enables
        // clocks.
        unsafe {
            let rcgc2 = SYSCTL_RCGC2 as *mut u32;
            write_volatile(rcgc2, read_volatile(rcgc2) | RCGC2_EMAC0 | RCGC2_EPHY0);
        }
        write(MACRCTL, RCTL_RSTFIFO);
        write(MACIACK, 0x7f);
        write(MACIM, INT_RX);
        write(MACRCTL, RCTL_RXEN | RCTL_BADCRC);
        write(MACTCTL, TCTL_TXEN | TCTL_PADEN | TCTL_CRC);
        let ia0 = read(MACIA0).to_le_bytes();
        let ia1 = read(MACIA1).to_le_bytes();
        Eth {
            mac: [ia0[0], ia0[1], ia0[2], ia0[3], ia1[0], ia1[1]],
            rx: [0; MAX_FRAME],
            tx: [0; MAX_FRAME],
            stats: Stats::default(),
        }
    }

    /// The MAC address the board was given (qemu: `52:54:00:12:34:56` by default).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Acknowledges the RX interrupt (from the interrupt handler: frames are read by polling).
    pub fn ack_interrupt() {
        write(MACIACK, INT_RX);
    }

    /// Reads the next frame into `self.rx`; returns its length, or None when the FIFO is
    /// empty. A frame longer than the buffer is read out and dropped.
    fn read_frame(&mut self) -> Option<usize> {
        while read(MACNP) != 0 {
            let first = read(MACDATA);
            let fifo_len = (first & 0xffff) as usize; // frame + 2 length bytes + 4 CRC bytes
            let frame_len = fifo_len.saturating_sub(6);
            let words = fifo_len.div_ceil(4);
            let fits = frame_len <= MAX_FRAME && frame_len >= 14;
            let mut at = 0;
            let mut put = |b: u8, rx: &mut [u8; MAX_FRAME]| {
                if fits && at < frame_len {
                    rx[at] = b;
                }
                at += 1;
            };
            let b = first.to_le_bytes();
            put(b[2], &mut self.rx);
            put(b[3], &mut self.rx);
            for _ in 1..words {
                for b in read(MACDATA).to_le_bytes() {
                    put(b, &mut self.rx);
                }
            }
            if fits {
                self.stats.rx_frames += 1;
                return Some(frame_len);
            }
            self.stats.rx_dropped += 1;
        }
        None
    }
}

/// Writes one frame into the transmit FIFO and starts sending it.
fn send_frame(frame: &[u8]) {
    // Wait for the previous frame to leave the FIFO (qemu sends at once, so this never spins).
    while read(MACTR) & TR_NEWTX != 0 {}
    let data_len = frame.len().saturating_sub(14) as u32;
    let byte = |i: usize| u32::from(frame.get(i).copied().unwrap_or(0));
    write(MACDATA, data_len | byte(0) << 16 | byte(1) << 24);
    let mut i = 2;
    while i < frame.len() {
        write(
            MACDATA,
            byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24,
        );
        i += 4;
    }
    write(MACTR, TR_NEWTX);
}

/// A received frame, lent to smoltcp.
pub struct RxToken<'a>(&'a [u8]);

/// Room to build one frame in, sent when smoltcp is done writing it.
pub struct TxToken<'a> {
    buf: &'a mut [u8; MAX_FRAME],
    sent: &'a mut u32,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp never asks for more than the MTU from `capabilities`.
        let len = len.min(MAX_FRAME);
        let frame = &mut self.buf[..len];
        let r = f(frame);
        send_frame(frame);
        *self.sent += 1;
        r
    }
}

impl phy::Device for Eth {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.read_frame()?;
        Some((
            RxToken(&self.rx[..len]),
            TxToken {
                buf: &mut self.tx,
                sent: &mut self.stats.tx_frames,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            buf: &mut self.tx,
            sent: &mut self.stats.tx_frames,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}
