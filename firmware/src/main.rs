//! Example firmware for qemu's `lm3s6965evb` (Cortex-M3): drives tb-core through a scripted
//! ThingsBoard exchange, checks every topic and payload byte, measures peak heap use, reports
//! through semihosting and exits qemu with the result (0 = pass).
//!
//! There is no network here: `script.rs` plays the MQTT client and the ThingsBoard server, as a
//! firmware's MQTT client would, and a fake clock stands in for SysTick.
#![no_std]
#![no_main]

extern crate alloc;

mod exit;
mod heap;
mod script;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;

#[global_allocator]
static HEAP: heap::TrackingHeap = heap::TrackingHeap::empty();

#[entry]
fn main() -> ! {
    HEAP.init();
    hprintln!("tb-core firmware: scripted ThingsBoard exchange on lm3s6965evb");
    let before = HEAP.requested();
    HEAP.reset_peak();
    let report = script::run();
    let leaked = HEAP.requested() - before;
    hprintln!(
        "heap: peak {} bytes requested, peak {} bytes in use (block rounding included), {} allocations; heap size {}",
        HEAP.peak_requested(),
        HEAP.peak_used(),
        HEAP.allocations(),
        heap::HEAP_SIZE
    );
    let mut failed = report.failed;
    if leaked != 0 {
        hprintln!(
            "FAIL leak: {} bytes still allocated after the exchange",
            leaked
        );
        failed += 1;
    }
    if failed == 0 {
        hprintln!("PASS");
        hprintln!("firmware: {} passed, 0 failed", report.passed);
    } else {
        hprintln!("FAIL");
        hprintln!("firmware: {} passed, {} failed", report.passed, failed);
    }
    exit::exit(failed == 0)
}
