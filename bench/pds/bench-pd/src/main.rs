//! # bench-pd: the PDs of the benchmark systems (bench/systems)
//!
//! The role comes from the PD's name, which the tool patches in:
//! - `first`: the only PD of the boot benchmark; prints instructions from
//!   QEMU's start to its `init` (system counter x 16, read as CNTPCT_EL0,
//!   which every Microkit configuration exports);
//! - `server`: answers protected calls at once and returns from `notified`
//!   at once;
//! - `client-ppc`: times protected calls on channel 0;
//! - `client-notify`: times notifications on channel 0, each of which runs
//!   the higher-priority server to completion before the client resumes.
//!
//! Method (docs/architecture.md): count the kernel too (PMCCFILTR.NSH),
//! warm up with 100 operations, time 10,000, report instructions per
//! operation as `[septa-bench] NAME VALUE`, where NAME comes from the
//! `bench_name` setvar-free convention: the system's directory name is not
//! known to the PD, so the client prints its own operation kind and the
//! runner prefixes the system name.
//!
//! Output: the benchmark configuration has no kernel printing, so the PDs
//! that report map the board's PL011 (a device region, `uart_regs`) and
//! print there themselves; with kernel printing they use it as usual.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_pmu::{count_kernel_too, cycles, system_counter, INSTRUCTIONS_PER_TICK};
use septa_runtime::{
    println, protection_domain, setvar, Channel, ChannelSet, Handler, MessageInfo,
};
use septa_test_report as report;

const WARM_UP: u64 = 100;
const TIMED: u64 = 10_000;
const CHANNEL: Channel = Channel::new(0);

struct Server;

impl Handler for Server {
    fn notified(&mut self, _channels: ChannelSet) {}

    fn protected(&mut self, _channel: Channel, _msg: MessageInfo) -> MessageInfo {
        MessageInfo::new(0, 0, 0, 0)
    }
}

/// Runs `op` WARM_UP times, then TIMED times under the cycle counter, and
/// returns instructions per operation in hundredths.
fn time(mut op: impl FnMut()) -> u64 {
    for _ in 0..WARM_UP {
        op();
    }
    let start = cycles();
    for _ in 0..TIMED {
        op();
    }
    (cycles() - start) * 100 / TIMED
}

setvar! {
    /// Where the PL011's registers are mapped (0: not mapped).
    static UART = "uart_regs";
}

fn init() -> Server {
    if !septa_abi::CONFIG.printing() && UART.get() != 0 {
        // SAFETY: the tool maps the `uart` device region uncached and
        // read-write at UART in this PD for its whole life.
        unsafe { septa_runtime::print::print_to_pl011(UART.addr()) };
    }
    let name = septa_runtime::pd_name();
    match name.as_str() {
        "first" => {
            let boot = system_counter() * INSTRUCTIONS_PER_TICK;
            println!("{}", report::figure("boot", boot * 100));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
        }
        "server" => {}
        "client-ppc" => {
            count_kernel_too();
            let per_call = time(|| {
                let _ = CHANNEL.pp_call(MessageInfo::new(0, 0, 0, 0));
            });
            println!("{}", report::figure("round-trip", per_call));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
        }
        "client-notify" => {
            count_kernel_too();
            let per_signal = time(|| {
                let _ = CHANNEL.notify();
            });
            println!("{}", report::figure("round-trip", per_signal));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
        }
        other => println!(
            "{}",
            report::fail("bench", &format_args!("no benchmark role for PD {other:?}"))
        ),
    }
    Server
}

protection_domain!(init);
