//! A cell that echoes (`test_net_echo::Echo`, TCP and UDP port 7) and,
//! every [`EVERY`] bytes it echoes, makes the network device fail under
//! its driver, [`FAULTS`] times, two ways in turn:
//!
//! - **Rings the device cannot use**: it points the device's transmit
//!   queue at a descriptor table that runs off the end of a device's
//!   registers into nothing (`QueueSel`, `QueueDescLow/High`,
//!   `QueueReady`). QEMU cannot map it, marks the device broken and sets
//!   `DEVICE_NEEDS_RESET` with a configuration interrupt (its
//!   `virtio_error`): the device stops until the driver resets it.
//! - **A reset under the driver**: it writes 0 to `Status`. The device
//!   forgets its queues and raises nothing: the driver learns of it at its
//!   next event, the system's next frame to send. A transfer under way
//!   makes one soon (TCP sends again what the device dropped), but a fault
//!   that comes as the transfer ends would wait for the next frame forever
//!   (the driver has no watchdog), so the cell sends one itself: a UDP
//!   datagram to the host's discard port.
//!
//! A fault comes only once the driver has the device running again after
//! the last one (`Status` shows `DRIVER_OK` and not `DEVICE_NEEDS_RESET`),
//! so each fault is one reset to recover from. This PD maps the device's
//! registers beside the driver for that alone (the description gives it
//! `regs_vaddr`); it runs below the driver's priority, so it never
//! interrupts the driver in the middle of setting the device up. The host's probe checks that the echo never lost or
//! changed a byte, and that the driver reported each reset.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{println, protection_domain, setvar, ChannelSet, Handler};
use septa_test_report as report;
use test_net_echo::{Echo, PORT};

setvar! {
    /// The device's transport registers, mapped uncached.
    static REGS_VADDR = "regs_vaddr";
}

/// Bytes echoed between two faults (the probe sends 12 MiB, so the six
/// faults come with most of the transfer still to go).
const EVERY: u64 = 512 << 10;
/// Faults in all.
const FAULTS: u32 = 6;

/// The host, as QEMU's user network shows it, and its discard port.
const HOST: [u8; 4] = [10, 0, 2, 2];
const DISCARD: u16 = 9;

/// virtio-mmio registers (virtio 1.2, 4.2.2).
const QUEUE_SEL: usize = 0x030;
const QUEUE_READY: usize = 0x044;
const STATUS: usize = 0x070;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DESC_HIGH: usize = 0x084;
/// `Status` bits (virtio 1.2, 2.1).
const DRIVER_OK: u32 = 4;
const DEVICE_NEEDS_RESET: u32 = 64;
/// The transmit queue of a network device.
const TRANSMIT: u32 = 1;
/// A descriptor table 16 bytes before the end of QEMU virt's PL011 (its
/// registers are the 4 KiB at 0x0900_0000): the table (16 bytes a
/// descriptor) runs off the registers into unassigned space, which QEMU
/// cannot map.
const NOWHERE: u32 = 0x0900_1000 - 16;

/// The device's registers.
fn regs() -> *mut u8 {
    let base = REGS_VADDR.as_ptr::<u8>();
    assert!(!base.is_null(), "net-reset: regs_vaddr is not set");
    base
}

/// The device's `Status`.
fn status() -> u32 {
    // SAFETY: as in `write`; reading `Status` has no side effect.
    unsafe { regs().add(STATUS).cast::<u32>().read_volatile() }
}

/// Whether the driver has the device running (again).
fn running(status: u32) -> bool {
    status & (DRIVER_OK | DEVICE_NEEDS_RESET) == DRIVER_OK
}

fn write(reg: usize, value: u32) {
    let base = regs();
    // SAFETY: the description maps the device's transport uncached at
    // `regs_vaddr` in this PD for its whole life; `reg` is one of the
    // transport's 32-bit registers above, inside that mapping and
    // aligned. What the write does to the device is this PD's purpose.
    unsafe { base.add(reg).cast::<u32>().write_volatile(value) };
}

struct Cell {
    echo: Echo,
    faults: u32,
    /// The fault that was due while the device was not running, last
    /// reported (one line a fault, for a failure's log).
    waited: u32,
}

impl Cell {
    fn fault(&mut self) {
        self.faults += 1;
        if self.faults % 2 == 1 {
            println!(
                "net-reset: fault {} after {} bytes: the transmit queue's descriptors moved off memory",
                self.faults, self.echo.echoed
            );
            write(QUEUE_SEL, TRANSMIT);
            write(QUEUE_DESC_LOW, NOWHERE);
            write(QUEUE_DESC_HIGH, 0);
            write(QUEUE_READY, 1);
        } else {
            println!(
                "net-reset: fault {} after {} bytes: status 0 (a reset)",
                self.faults, self.echo.echoed
            );
            write(STATUS, 0);
            // The system's next frame, at which the driver notices.
            let _ = self.echo.send_datagram(b"reset", HOST, DISCARD);
        }
        if self.faults == FAULTS {
            println!("{}", report::ok("faults-injected"));
        }
    }
}

impl Handler for Cell {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.echo.channel()) {
            self.echo.run();
            if self.faults < FAULTS && self.echo.echoed >= u64::from(self.faults + 1) * EVERY {
                let status = status();
                if running(status) {
                    self.fault();
                } else if self.waited <= self.faults {
                    self.waited = self.faults + 1;
                    println!(
                        "net-reset: fault {} due after {} bytes, the device not running yet (status {status:#x})",
                        self.faults + 1,
                        self.echo.echoed
                    );
                }
            }
        }
    }
}

fn init() -> Cell {
    let echo = Echo::new().unwrap_or_else(|e| {
        println!("{}", report::fail("echo-listening", &e));
        println!("{}", report::DONE);
        panic!("net-reset: {e}");
    });
    println!("net-reset: echoing tcp/{PORT}, {FAULTS} faults to come");
    println!("{}", report::ok("echo-listening"));
    println!("{}", report::DONE);
    Cell {
        echo,
        faults: 0,
        waited: 0,
    }
}

protection_domain!(init);
