//! The net-bulk benchmark's cell. The host sends a stream to tcp/9; this
//! cell reads and discards it. From the connection's first byte to its
//! end it counts instructions: all of them (the PMU's cycle counter with
//! the kernel counted too; under `-icount` a cycle is an instruction), its
//! own thread's and the stack's (the kernel's utilisation tracking), so
//! the figures per KiB received split into cell, stack and the rest
//! (driver, virtualisers, timer, kernel entries between them). The kernel
//! counts threads' cycles between BenchmarkResetLog and
//! BenchmarkFinalizeLog, which the cell calls at the stream's first byte
//! and at its end.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_net_client::{Listener, Net, Read, Stream};
use septa_pmu::{count_kernel_too, cycles};
use septa_runtime::{own_cycles, println, protection_domain, ChannelSet, Handler};
use septa_test_report as report;

const PORT: u16 = 9;

/// Counters when the stream began.
#[derive(Clone, Copy)]
struct Start {
    all: u64,
    own: u64,
    stack: u64,
}

struct Sink {
    net: Net,
    listener: Listener,
    stream: Option<Stream>,
    start: Option<Start>,
    bytes: u64,
}

impl Sink {
    fn snapshot(net: &Net) -> Start {
        Start {
            all: cycles(),
            own: own_cycles().unwrap_or(0),
            stack: net.stats().map_or(0, |s| s.cycles),
        }
    }

    fn finish(&mut self) {
        let end = Self::snapshot(&self.net);
        let _ = septa_runtime::septa_sel4::syscall::benchmark_finalize_log();
        let Some(start) = self.start else { return };
        let kib = (self.bytes / 1024).max(1);
        let all = end.all - start.all;
        let own = end.own - start.own;
        let stack = end.stack - start.stack;
        let rest = all.saturating_sub(own + stack);
        println!("net-sink: {} bytes, {all} instructions", self.bytes);
        for (name, v) in [
            ("instructions-per-kib", all),
            ("cell-per-kib", own),
            ("stack-per-kib", stack),
            ("driver-virt-kernel-per-kib", rest),
        ] {
            println!("{}", report::figure(name, v * 100 / kib));
        }
        println!("{}", report::figure("kib", kib * 100));
        println!("{}", report::ok("net-bulk"));
        println!("{}", report::DONE);
    }

    fn run(&mut self) {
        if self.stream.is_none() {
            if let Ok(Some(s)) = self.listener.accept() {
                self.stream = Some(s);
            }
        }
        let Some(s) = &mut self.stream else { return };
        let mut buf = [0u8; 8192];
        loop {
            match s.recv(&mut buf) {
                Ok(Read::Data(n)) => {
                    if self.start.is_none() {
                        // The kernel counts threads' cycles from here.
                        let _ = septa_runtime::septa_sel4::syscall::benchmark_reset_log();
                        self.start = Some(Self::snapshot(&self.net));
                    }
                    self.bytes += n as u64;
                }
                Ok(Read::WouldBlock) => return,
                Ok(Read::Eof) | Err(_) => {
                    if let Some(s) = self.stream.take() {
                        s.close();
                    }
                    self.finish();
                    return;
                }
            }
        }
    }
}

impl Handler for Sink {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.net.channel()) {
            self.run();
        }
    }
}

fn init() -> Sink {
    count_kernel_too();
    let net = Net::get().expect("net-sink: not a cell of [net]");
    let listener = net.listen(PORT).expect("net-sink: cannot listen on tcp/9");
    println!("net-sink: discarding tcp/{PORT}");
    Sink {
        net,
        listener,
        stream: None,
        start: None,
        bytes: 0,
    }
}

protection_domain!(init);
