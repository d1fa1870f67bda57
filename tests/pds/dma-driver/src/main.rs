//! # test-dma-driver: a driver's use of the cache and the timer at EL0
//!
//! What a Microkit device driver does without the kernel (the system is a
//! Microkit `.system` file, tests/systems/dma-driver): it owns a DMA region
//! at a fixed physical address, mapped twice, cached (the CPU's view) and
//! uncached (standing in for the device, which reads and writes memory
//! directly), and keeps time with the EL1 physical timer, which Microkit's
//! kernel exports to EL0.
//!
//! The `client` puts a request in the region it shares with the `driver`
//! and calls it (protected procedure, channel 0). The driver, like a
//! network driver handing a buffer to its device:
//! 1. copies the request into the DMA buffer through the cached view and
//!    cleans those lines to the point of coherency (`dc cvac`), after
//!    which the device's view holds it;
//! 2. waits 1 ms of "device latency" on the physical timer
//!    (CNTP_TVAL_EL0, CNTP_CTL_EL0, polled: no interrupt), timing it with
//!    the physical counter;
//! 3. lets the "device" write its answer through the uncached view, then
//!    cleans and invalidates the cached lines (`dc civac`) before reading
//!    the answer through the cached view (the instruction cache is touched
//!    too, `ic ivau`, as a driver loading firmware would);
//! 4. answers the client with the answer's length, and the time waited.
//!
//! The client checks the answer and the time, and reports. Line sizes come
//! from CTR_EL0, read at EL0.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{
    mr_get, mr_set, msginfo_new, println, protection_domain, setvar, Channel, Handler, MessageInfo,
};
use septa_test_report as report;

/// Client and driver (id 0 at both ends, protected procedure to the driver).
const DRIVER: Channel = Channel::new(0);
/// Bytes of a request.
const REQUEST: usize = 1024;
/// The device's latency the driver waits for.
const LATENCY_US: u64 = 1000;
const TICKS_PER_US: u64 = septa_abi::kernel_config::mcs::TIMER_CLOCK_HZ / 1_000_000;

setvar! {
    /// The region client and driver share (requests and answers).
    static SHARED = "shared_vaddr";
    /// The DMA buffer, cached: the driver's view.
    static DMA = "dma_vaddr";
    /// The same memory uncached: the device's view.
    static DEVICE = "dma_device_vaddr";
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod el0 {
    use core::arch::asm;

    /// CTR_EL0.DminLine as bytes.
    pub fn dcache_line() -> usize {
        let ctr: u64;
        // SAFETY: reads CTR_EL0, which the kernel lets EL0 read (SCTLR_EL1.UCT).
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
        4 << ((ctr >> 16) & 0xf)
    }

    /// CTR_EL0.IminLine as bytes.
    pub fn icache_line() -> usize {
        let ctr: u64;
        // SAFETY: as in `dcache_line`.
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
        4 << (ctr & 0xf)
    }

    /// `dc cvac` on each line of `[start, start + len)`, then `dsb sy`.
    pub fn clean(start: usize, len: usize) {
        let line = dcache_line();
        let mut a = start & !(line - 1);
        while a < start + len {
            // SAFETY: cache maintenance by address on memory this PD maps
            // (SCTLR_EL1.UCI lets EL0 do it); no contents change.
            unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack)) };
            a += line;
        }
        // SAFETY: a barrier.
        unsafe { asm!("dsb sy", options(nostack)) };
    }

    /// `dc civac` on each line, then `dsb sy`.
    pub fn clean_invalidate(start: usize, len: usize) {
        let line = dcache_line();
        let mut a = start & !(line - 1);
        while a < start + len {
            // SAFETY: as in `clean`; clean then invalidate loses nothing.
            unsafe { asm!("dc civac, {}", in(reg) a, options(nostack)) };
            a += line;
        }
        // SAFETY: a barrier.
        unsafe { asm!("dsb sy", options(nostack)) };
    }

    /// `dc cvau` and `ic ivau` on each line (code written as data).
    pub fn unify(start: usize, len: usize) {
        let (d, i) = (dcache_line(), icache_line());
        let mut a = start & !(d - 1);
        while a < start + len {
            // SAFETY: as in `clean`.
            unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack)) };
            a += d;
        }
        // SAFETY: a barrier.
        unsafe { asm!("dsb ish", options(nostack)) };
        let mut a = start & !(i - 1);
        while a < start + len {
            // SAFETY: instruction cache invalidation by address.
            unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack)) };
            a += i;
        }
        // SAFETY: barriers.
        unsafe { asm!("dsb ish", "isb", options(nostack)) };
    }

    /// Arms the EL1 physical timer `ticks` ahead, masked, waits until it
    /// fires, disarms it; false if it never did within `spins` reads.
    pub fn wait_ticks(ticks: u64, mut spins: u64) -> bool {
        // SAFETY: programs the EL1 physical timer (CNTKCTL_EL1.EL0PTEN),
        // which the kernel leaves to EL0 (it uses the EL2 one).
        unsafe {
            asm!(
                "msr cntp_tval_el0, {t}",
                "msr cntp_ctl_el0, {on}",
                "isb",
                t = in(reg) ticks,
                on = in(reg) 3u64, // ENABLE | IMASK
                options(nomem, nostack),
            )
        };
        let fired = loop {
            let ctl: u64;
            // SAFETY: reads the timer's control register.
            unsafe { asm!("mrs {}, cntp_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
            if ctl & 4 != 0 {
                break true;
            }
            spins -= 1;
            if spins == 0 {
                break false;
            }
        };
        // SAFETY: switches the timer off.
        unsafe { asm!("msr cntp_ctl_el0, xzr", "isb", options(nomem, nostack)) };
        fired
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod el0 {
    const HOST: &str = "EL0 instructions run on the target only";
    pub fn clean(_: usize, _: usize) {
        unreachable!("{HOST}")
    }
    pub fn clean_invalidate(_: usize, _: usize) {
        unreachable!("{HOST}")
    }
    pub fn unify(_: usize, _: usize) {
        unreachable!("{HOST}")
    }
    pub fn wait_ticks(_: u64, _: u64) -> bool {
        unreachable!("{HOST}")
    }
}

/// `len` bytes of a mapped region at `vaddr`.
fn bytes(vaddr: u64, len: usize) -> &'static mut [u8] {
    // SAFETY: the tool maps each region read-write at its setvar address in
    // this PD for its whole life, at least REQUEST * 2 bytes; client and
    // driver take turns (a protected call), never touching it at once.
    unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u8, len) }
}

/// The device's answer to request byte `b`.
fn answer(b: u8) -> u8 {
    b ^ 0xa5
}

struct Driver;

impl Handler for Driver {
    fn protected(&mut self, _ch: Channel, _msg: MessageInfo) -> MessageInfo {
        let len = (mr_get(0) as usize).min(REQUEST);
        let shared = bytes(SHARED.get(), 2 * REQUEST);
        let dma = bytes(DMA.get(), 2 * REQUEST);
        let device = bytes(DEVICE.get(), 2 * REQUEST);
        // 1. Out to the device.
        dma[..len].copy_from_slice(&shared[..len]);
        el0::clean(DMA.get() as usize, len);
        let seen = device[..len] == shared[..len];
        // 2. Its latency.
        let start = septa_pmu::system_counter();
        let fired = el0::wait_ticks(LATENCY_US * TICKS_PER_US, 1 << 28);
        let waited = septa_pmu::system_counter() - start;
        // 3. Its answer, after the cache forgets the stale lines.
        for i in 0..len {
            device[REQUEST + i] = answer(device[i]);
        }
        el0::clean_invalidate(DMA.get() as usize + REQUEST, len);
        shared[REQUEST..REQUEST + len].copy_from_slice(&dma[REQUEST..REQUEST + len]);
        el0::unify(DMA.get() as usize, len);
        mr_set(0, u64::from(seen));
        mr_set(1, u64::from(fired));
        mr_set(2, waited / TICKS_PER_US);
        msginfo_new(0, 3)
    }
}

fn client() {
    const CASE: &str = "dma-driver";
    let shared = bytes(SHARED.get(), 2 * REQUEST);
    for (i, b) in shared[..REQUEST].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    mr_set(0, REQUEST as u64);
    let _ = DRIVER.pp_call(msginfo_new(0, 1));
    let (seen, fired, waited_us) = (mr_get(0), mr_get(1), mr_get(2));
    let answered = (0..REQUEST).all(|i| shared[REQUEST + i] == answer((i * 7) as u8));
    let verdict = if seen != 1 {
        Err("the device did not see the request after the clean")
    } else if fired != 1 {
        Err("the physical timer never fired")
    } else if waited_us < LATENCY_US {
        Err("the timer fired early")
    } else if !answered {
        Err("the answer read through the cache is not the device's")
    } else {
        Ok(())
    };
    println!("client: the driver waited {waited_us} us for its device");
    match verdict {
        Ok(()) => println!("{}", report::ok(CASE)),
        Err(why) => println!("{}", report::fail(CASE, &why)),
    }
    println!("{}", report::DONE);
}

fn init() -> Driver {
    if septa_runtime::pd_name().as_str() == "client" {
        client();
    }
    Driver
}

protection_domain!(init);
