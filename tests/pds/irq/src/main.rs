//! # test-irq: a device interrupt, end to end
//!
//! The PD maps the PL031 real-time clock (QEMU `virt`, uncached) and has
//! its interrupt (34, level) on channel 0. It sets the RTC's match register
//! one second ahead and unmasks the alarm; the interrupt must arrive as a
//! notification on channel 0. It clears the alarm in the device,
//! acknowledges the IRQ, and does it again: a second delivery proves the
//! acknowledgement works. Owns the RTC's registers.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler};
use septa_test_report as report;

const RTC_IRQ: Channel = Channel::new(0);
/// Alarms to take.
const ALARMS: u32 = 2;

/// PL031 registers (ARM PrimeCell RTC technical reference manual), as
/// byte offsets of 32-bit registers.
mod reg {
    /// Data register: the current time in seconds.
    pub const DR: usize = 0x00;
    /// Match register: the alarm time.
    pub const MR: usize = 0x04;
    /// Interrupt mask set/clear: bit 0 unmasks the alarm.
    pub const IMSC: usize = 0x10;
    /// Interrupt clear: writing bit 0 clears the alarm.
    pub const ICR: usize = 0x1c;
}

setvar! {
    static RTC = "rtc_vaddr";
}

fn write(r: usize, v: u32) {
    // SAFETY: the tool maps the RTC's 4 KiB register page uncached at RTC
    // in this PD alone; `r` is the offset of one of the PL031's aligned
    // 32-bit registers in it.
    unsafe { core::ptr::write_volatile(RTC.as_ptr::<u8>().add(r).cast::<u32>(), v) }
}

fn read(r: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile(RTC.as_ptr::<u8>().add(r).cast::<u32>()) }
}

fn arm() {
    write(reg::MR, read(reg::DR).wrapping_add(1));
    write(reg::IMSC, 1);
}

struct Irq {
    alarms: u32,
}

impl Handler for Irq {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(RTC_IRQ) {
            println!(
                "{}",
                report::fail("irq", &format_args!("notified on {channels}"))
            );
            return;
        }
        self.alarms += 1;
        println!("irq: RTC alarm {} at {} s", self.alarms, read(reg::DR));
        write(reg::ICR, 1);
        if let Err(e) = RTC_IRQ.irq_ack() {
            println!("{}", report::fail("irq", &e));
            println!("{}", report::DONE);
            return;
        }
        if self.alarms == ALARMS {
            println!("{}", report::ok("irq"));
            println!("{}", report::DONE);
        } else {
            arm();
        }
    }
}

fn init() -> Irq {
    arm();
    Irq { alarms: 0 }
}

protection_domain!(init);
