//! How both example firmwares end: qemu exits with the result through semihosting (0 = pass).
//! A panic or a hard fault is a failure, printed and reported the same way, so the host side
//! (`firmware/run`, `net_session.py`) only reads the exit status.

use core::panic::PanicInfo;

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};

/// Exits qemu with success (`ok`) or failure.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Not reached under qemu; on a board without a debugger, stop here.
    loop {
        cortex_m::asm::bkpt();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("FAIL panic: {}", info);
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("FAIL hard fault: {:?}", frame);
    exit(false)
}
