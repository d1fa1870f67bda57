//! # timer: a driver PD for the Arm generic timer
//!
//! It gives its clients the time and timeouts, one-shot and periodic, each
//! client its own, from the EL1 physical timer as seL4 exports it to EL0
//! on QEMU virt (Microkit 2.3.0's configuration: the physical count and
//! timer registers, and the timer's PPI, INTID 30, through an IRQ
//! handler), so it runs on Septa's kernel and on a real seL4 16.0.0
//! configured that way. The protocol is sDDF 0.7's (`SET_TIMEOUT` and
//! `GET_TIME` labels, a notification when a timeout falls due), plus
//! periodic timeouts and cancelling (`septa-timer-protocol`).
//!
//! The time is nanoseconds of the physical count since it started (62.5 MHz
//! on QEMU, a 16 ns tick): the clock every client and the kernel share.
//! Timeouts live in a table indexed by the client's channel; the hardware
//! compare value is always the earliest of them, so the timer interrupts
//! only when something is due. On the interrupt it notifies every client
//! whose timeout fell due (in channel order), moves periodic timeouts to
//! their next period on the same grid (a late driver skips what went by
//! rather than bursting), and sets the next compare value. A deadline is
//! never early: it is rounded up to the next tick.
//!
//! Owns: the EL1 physical timer and its interrupt. Must not: use any
//! other timer (the kernel's is the EL2 one). Dependencies:
//! `septa-runtime` (entry, channels, calls), `septa-timer-protocol`
//! (labels, wiring, the timeout table).
//!
//! ## Wiring (what `[timer]` generates; by hand, the same)
//!
//! ```toml
//! [pd.timer_driver]
//! program = "timer"
//! priority = 254                # above every client: they call it
//! irqs = [{ irq = 30, id = 0 }] # the EL1 physical timer's PPI
//!
//! [[channel]]                   # client i on the driver's channel 1 + i
//! a = { pd = "client", id = 0, pp = true }
//! b = { pd = "timer_driver", id = 1 }
//! ```
//!
//! A client linking `septa-runtime` learns its channel from the symbol
//! `septa_timer_channel` (the id plus one), which `[timer]` patches.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

mod counter;

use septa_runtime::{
    mr_get, mr_set, msginfo_new, protection_domain, Channel, ChannelSet, Handler, MessageInfo,
};
use septa_timer_protocol::{self as protocol, ns_to_ticks, ticks_to_ns, wiring, Timeouts};

const IRQ: Channel = Channel::new(wiring::IRQ);

/// One slot per channel id, the interrupt's included (it never has a
/// timeout).
const CHANNELS: usize = 1 + wiring::MAX_CLIENTS;

struct Driver {
    hz: u64,
    timeouts: Timeouts<CHANNELS>,
    /// The compare value last written.
    compare: u64,
}

impl Driver {
    fn now(&self) -> u64 {
        ticks_to_ns(counter::count(), self.hz)
    }

    /// Points the hardware at the earliest timeout (or nowhere).
    fn program(&mut self) {
        let ticks = self
            .timeouts
            .next()
            .map_or(u64::MAX, |ns| ns_to_ticks(ns, self.hz));
        if ticks != self.compare {
            counter::set_compare(ticks);
            self.compare = ticks;
        }
    }

    /// Notifies the clients whose timeouts fell due, then re-programs.
    fn expire(&mut self) {
        let now = self.now();
        self.timeouts.expire(now, |ch| {
            let _ = Channel::new(ch as u8).notify();
        });
        self.program();
    }
}

impl Handler for Driver {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(IRQ) {
            self.expire();
            // The compare value no longer matches (or the next timeout is
            // due already, and the line rises again at once).
            let _ = IRQ.deferred_irq_ack();
        }
    }

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        let ch = usize::from(channel.id());
        let now = self.now();
        let ok = match msg.label() {
            protocol::GET_TIME => {
                mr_set(0, now);
                return msginfo_new(protocol::OK, 1);
            }
            protocol::SET_TIMEOUT => {
                self.timeouts.set_once(ch, now, mr_get(0));
                true
            }
            protocol::SET_PERIODIC => self.timeouts.set_periodic(ch, now, mr_get(0)),
            protocol::CANCEL => {
                self.timeouts.cancel(ch);
                true
            }
            _ => false,
        };
        if !ok {
            return msginfo_new(protocol::ERROR, 0);
        }
        // A timeout already due (zero, say) is notified now.
        self.expire();
        msginfo_new(protocol::OK, 0)
    }
}

fn init() -> Driver {
    let hz = counter::frequency();
    counter::set_compare(u64::MAX);
    counter::set_control(counter::CTL_ENABLE);
    Driver {
        hz,
        timeouts: Timeouts::new(),
        compare: u64::MAX,
    }
}

protection_domain!(init);
