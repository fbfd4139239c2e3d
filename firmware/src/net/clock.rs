//! Milliseconds since boot from a hardware timer: General-Purpose Timer 0 runs periodic at
//! 1 kHz and its interrupt bumps a counter. The same interrupt wakes the main loop from WFI,
//! so deadlines are met within a millisecond without the loop spinning.
//!
//! Design: not SysTick. qemu 7.2's `lm3s6965evb` leaves SysTick without a clock (it warns
//! "Timer with period zero, disabling" and the counter never moves), while its GPTM model
//! counts on the system clock. The system clock is set first: PLL (200 MHz) divided by 4,
//! 50 MHz, which qemu models as 200 MHz / (SYSDIV + 1) and the chip gives once its PLL locks.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

/// System clock after [`start`].
pub const SYSCLK_HZ: u32 = 50_000_000;

/// Interrupt number of Timer 0A.
pub const IRQ: u16 = 19;

const SYSCTL_RCC: usize = 0x400f_e060;
/// RCC: USESYSDIV, SYSDIV = 3 (/4), 8 MHz crystal, main oscillator, PLL on (LM3S6965
/// datasheet, "Run-Mode Clock Configuration").
const RCC_50MHZ: u32 = 1 << 22 | 3 << 23 | 0x0e << 6;
const SYSCTL_RCGC1: usize = 0x400f_e104;
const RCGC1_TIMER0: u32 = 1 << 16;

const TIMER0: usize = 0x4003_0000;
const GPTMCFG: usize = 0x000;
const GPTMTAMR: usize = 0x004;
const GPTMCTL: usize = 0x00c;
const GPTMIMR: usize = 0x018;
const GPTMICR: usize = 0x024;
const GPTMTAILR: usize = 0x028;
const TAMR_PERIODIC: u32 = 0x2;
const CTL_TAEN: u32 = 0x1;
const INT_TATO: u32 = 0x1;

static MILLIS: AtomicU32 = AtomicU32::new(0);

fn write(addr: usize, value: u32) {
    // SAFETY: a system-control or Timer 0 register of this chip, only written here.
    unsafe { write_volatile(addr as *mut u32, value) }
}

fn read(addr: usize) -> u32 {
    // SAFETY: as in `write`; reading these registers has no side effect.
    unsafe { read_volatile(addr as *const u32) }
}

/// Sets the system clock, then starts Timer 0A as a 1 kHz periodic interrupt (the caller
/// unmasks [`IRQ`] in the NVIC).
pub fn start() {
    write(SYSCTL_RCC, RCC_50MHZ);
    write(SYSCTL_RCGC1, read(SYSCTL_RCGC1) | RCGC1_TIMER0);
    write(TIMER0 + GPTMCTL, 0);
    write(TIMER0 + GPTMCFG, 0); // one 32-bit timer
    write(TIMER0 + GPTMTAMR, TAMR_PERIODIC);
    write(TIMER0 + GPTMTAILR, SYSCLK_HZ / 1000 - 1);
    write(TIMER0 + GPTMICR, INT_TATO);
    write(TIMER0 + GPTMIMR, INT_TATO);
    write(TIMER0 + GPTMCTL, CTL_TAEN);
}

/// Milliseconds since [`start`] (wraps after 49 days, far beyond a run).
pub fn now() -> u64 {
    u64::from(MILLIS.load(Ordering::Relaxed))
}

/// The Timer 0A interrupt: one millisecond passed.
pub fn on_interrupt() {
    write(TIMER0 + GPTMICR, INT_TATO);
    MILLIS.fetch_add(1, Ordering::Relaxed);
}
