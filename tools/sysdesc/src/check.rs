//! Checks of single values, shared by the TOML and XML front ends so that both
//! formats accept exactly the same values with the same diagnostics.
//!
//! Limits of the PD ABI come from `septa-abi`; the few that are conventions of
//! the Microkit 2.3.0 tool rather than of the ABI (stack size bounds, the
//! number of PDs, extra cap slots, name length) are named here.

use septa_abi::microkit::{DEFAULT_BUDGET_US, MAX_CHANNELS, MAX_PD_PRIORITY};
use septa_abi::{LARGE_PAGE_BITS, PAGE_BITS, USER_TOP};

use crate::diag::{Kind, Sink, Span};
use crate::model::{BootInfoKind, Perms, Program};
use crate::units::fmt_size;

/// Highest channel, IRQ, child and vCPU id: badges keep two bits for PPC and
/// fault marks, leaving 62 ids.
pub const MAX_ID: u64 = MAX_CHANNELS - 1;
/// The page sizes of aarch64 that regions may use.
pub const PAGE_SIZES: [u64; 2] = [1 << PAGE_BITS, 1 << LARGE_PAGE_BITS];
pub const SMALL_PAGE: u64 = 1 << PAGE_BITS;

/// Microkit 2.3.0 tool: default, smallest and largest PD stack.
pub const DEFAULT_STACK: u64 = 8 << 10;
pub const MIN_STACK: u64 = 4 << 10;
pub const MAX_STACK: u64 = 16 << 20;
/// Microkit 2.3.0 tool: at most 63 PDs (the monitor tracks them in a bitmap
/// of badges) and 64-byte names in the monitor's tables.
pub const MAX_PDS: usize = 63;
pub const MAX_NAME_BYTES: usize = 64;
/// Microkit 2.3.0 tool: extra caps go into slots 1..128 of a PD's user area.
pub const CAP_SLOTS: u64 = 128;
/// The monitor's name, which no PD may take.
pub const MONITOR_NAME: &str = "monitor";

/// The IPC buffer sits in the top page of the user address space, a guard
/// page below it, then the stack: maps must end below the stack.
pub fn ipc_buffer_vaddr() -> u64 {
    USER_TOP & !(SMALL_PAGE - 1)
}

pub fn stack_top() -> u64 {
    ipc_buffer_vaddr() - SMALL_PAGE
}

/// First virtual address a PD's maps may not reach.
pub fn pd_map_limit(stack_size: u64) -> u64 {
    stack_top() - stack_size
}

/// First virtual (guest physical) address a VM's maps may not reach.
pub fn vm_map_limit() -> u64 {
    USER_TOP + 1
}

/// A core number: must exist on the board.
pub fn cpu(sink: &mut Sink, board: &crate::board::Board, value: i64, span: Option<Span>) -> u8 {
    if value < 0 || value as u64 >= board.kernel.cores {
        sink.emit(
            Kind::CpuRange {
                cpu: value,
                cores: board.kernel.cores,
                board: board.name.clone(),
            },
            span,
        );
        return 0;
    }
    value as u8
}

fn range_id(sink: &mut Sink, value: i64, span: Option<Span>, make: fn(i64, u64) -> Kind) -> u64 {
    if value < 0 || value as u64 > MAX_ID {
        sink.emit(make(value, MAX_ID), span);
    }
    value.clamp(0, MAX_ID as i64) as u64
}

pub fn channel_id(sink: &mut Sink, value: i64, span: Option<Span>) -> u64 {
    range_id(sink, value, span, |value, max| Kind::ChannelIdRange {
        value,
        max,
    })
}

pub fn irq_id(sink: &mut Sink, value: i64, span: Option<Span>) -> u64 {
    range_id(sink, value, span, |value, max| Kind::IrqIdRange {
        value,
        max,
    })
}

pub fn child_id(sink: &mut Sink, value: i64, span: Option<Span>) -> u64 {
    range_id(sink, value, span, |value, max| Kind::ChildIdRange {
        value,
        max,
    })
}

pub fn vcpu_id(sink: &mut Sink, value: i64, span: Option<Span>) -> u64 {
    range_id(sink, value, span, |value, max| Kind::VcpuIdRange {
        value,
        max,
    })
}

pub fn ioport_id(sink: &mut Sink, value: i64, span: Option<Span>) -> u64 {
    range_id(sink, value, span, |value, max| Kind::IoPortIdRange {
        value,
        max,
    })
}

pub fn priority(sink: &mut Sink, value: i64, span: Option<Span>) -> u8 {
    if !(0..=MAX_PD_PRIORITY as i64).contains(&value) {
        sink.emit(
            Kind::PriorityRange {
                value,
                max: MAX_PD_PRIORITY as u64,
            },
            span,
        );
    }
    value.clamp(0, MAX_PD_PRIORITY as i64) as u8
}

/// Budget and period with Microkit's defaults (1000 us; period = budget).
pub fn budget_period(
    sink: &mut Sink,
    budget: Option<u64>,
    period: Option<u64>,
    budget_span: Option<Span>,
) -> (u64, u64) {
    let budget = budget.unwrap_or(DEFAULT_BUDGET_US);
    let period = period.unwrap_or(budget);
    if budget == 0 {
        sink.emit(Kind::ZeroBudget, budget_span);
    } else if budget > period {
        sink.emit(Kind::BudgetOverPeriod { budget, period }, budget_span);
    }
    (budget, period)
}

pub fn stack(sink: &mut Sink, size: u64, span: Option<Span>) {
    if !(MIN_STACK..=MAX_STACK).contains(&size) {
        sink.emit(
            Kind::StackRange {
                size: fmt_size(size),
                min: fmt_size(MIN_STACK),
                max: fmt_size(MAX_STACK),
            },
            span,
        );
    } else if !size.is_multiple_of(SMALL_PAGE) {
        sink.emit(
            Kind::StackAlign {
                size: fmt_size(size),
                page: fmt_size(SMALL_PAGE),
            },
            span,
        );
    }
}

pub fn perms(sink: &mut Sink, text: &str, span: Option<Span>) -> Perms {
    match Perms::parse(text) {
        Some(p) if p.write && !p.read => {
            sink.emit(Kind::WriteOnly, span);
            p
        }
        Some(p) if !(p.read || p.write || p.execute) => {
            sink.emit(Kind::BadPerms(text.to_string()), span);
            p
        }
        Some(p) => p,
        None => {
            sink.emit(Kind::BadPerms(text.to_string()), span);
            Perms::READ_WRITE
        }
    }
}

pub fn page_size(sink: &mut Sink, size: u64, span: Option<Span>) -> u64 {
    if !PAGE_SIZES.contains(&size) {
        sink.emit(Kind::PageSize(fmt_size(size)), span);
        return SMALL_PAGE;
    }
    size
}

/// A program is a crate name (letters, digits, `-`, `_`) or a path to an ELF.
pub fn program(sink: &mut Sink, text: &str, span: Option<Span>, is_xml: bool) -> Program {
    if is_xml || text.ends_with(".elf") {
        if text.is_empty() {
            sink.emit(Kind::BadProgram(text.to_string()), span);
        }
        return Program::Elf(text.into());
    }
    let crate_like = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && text.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !crate_like {
        sink.emit(Kind::BadProgram(text.to_string()), span);
    }
    Program::Crate(text.to_string())
}

/// A symbol of `system.toml`: a name that looks like a C identifier (it is
/// looked up in an ELF file), or an array element `NAME[INDEX]`.
pub fn symbol(sink: &mut Sink, text: &str, span: Option<Span>) -> String {
    if split_symbol(text).is_none() {
        sink.emit(Kind::BadSymbol(text.to_string()), span);
    }
    text.to_string()
}

/// A symbol of a Microkit `.system` file: a name only, as Microkit's tool
/// takes (array elements are Septa's addition, in `system.toml`).
pub fn plain_symbol(sink: &mut Sink, text: &str, span: Option<Span>) -> String {
    if !matches!(split_symbol(text), Some((_, None))) {
        sink.emit(Kind::BadSymbol(text.to_string()), span);
    }
    text.to_string()
}

/// The most elements a symbol written `NAME[INDEX]` may index.
pub const MAX_SYMBOL_INDEX: u32 = 4096;

/// A setvar's target: `NAME` (the symbol) or `NAME[INDEX]` (element INDEX
/// of an array symbol, below [`MAX_SYMBOL_INDEX`]), as (name, index);
/// `None` if the text is neither. A name is letters, digits, `_`, `.` and
/// `$`, not starting with a digit.
pub fn split_symbol(text: &str) -> Option<(&str, Option<u32>)> {
    let (name, index) = match text.strip_suffix(']') {
        Some(rest) => {
            let (name, digits) = rest.split_once('[')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let i: u32 = digits.parse().ok()?;
            (name, Some(Some(i).filter(|&i| i < MAX_SYMBOL_INDEX)?))
        }
        None => (text, None),
    };
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
        && !name.chars().next().is_some_and(|c| c.is_ascii_digit());
    ok.then_some((name, index))
}

pub fn cap_slot(sink: &mut Sink, slot: i64, span: Option<Span>) -> u64 {
    if slot == 0 {
        sink.emit(Kind::CapSlotZero, span);
    } else if slot < 0 || slot as u64 >= CAP_SLOTS {
        sink.emit(
            Kind::CapSlotRange {
                slot,
                max: CAP_SLOTS,
            },
            span,
        );
    }
    slot.max(0) as u64
}

pub fn bootinfo(sink: &mut Sink, text: &str, span: Option<Span>) -> Option<BootInfoKind> {
    let k = BootInfoKind::parse(text);
    if k.is_none() {
        sink.emit(Kind::BootInfoKind(text.to_string()), span);
    }
    k
}

pub fn name_length(sink: &mut Sink, name: &str, span: Option<Span>) {
    // The monitor keeps names NUL-terminated in 64-byte slots.
    if name.len() >= MAX_NAME_BYTES {
        sink.emit(
            Kind::LongName {
                name: name.to_string(),
                len: name.len(),
                max: MAX_NAME_BYTES - 1,
            },
            span,
        );
    }
}

/// Region size and prefill: returns the size, taking the prefill file's
/// length when no size is given (rounded up to the page size). `named` says
/// that a prefill, boot-info or device was given, which supplies a size.
pub fn region_size(
    sink: &mut Sink,
    name: &str,
    size: Option<(u64, Option<Span>)>,
    page: u64,
    prefill_len: Option<u64>,
    named: bool,
    whole: Option<Span>,
) -> u64 {
    match size {
        Some((0, span)) => {
            sink.emit(Kind::SizeZero, span);
            page
        }
        Some((s, span)) => {
            if !s.is_multiple_of(page) {
                sink.emit(
                    Kind::SizeMultiple {
                        size: fmt_size(s),
                        page: fmt_size(page),
                    },
                    span,
                );
            }
            if let Some(len) = prefill_len {
                if len > s {
                    sink.emit(Kind::PrefillTooBig { len, size: s }, span);
                }
            }
            s
        }
        None => match prefill_len {
            Some(len) => len.div_ceil(page).max(1) * page,
            None if named => page,
            None => {
                sink.emit(Kind::SizeMissing(name.to_string()), whole);
                page
            }
        },
    }
}

/// Reads a prefill file's length (relative paths are taken from `base`).
pub fn prefill_file(
    sink: &mut Sink,
    base: &std::path::Path,
    path: &str,
    span: Option<Span>,
) -> Option<u64> {
    match std::fs::metadata(base.join(path)) {
        Ok(m) if m.is_file() && m.len() == 0 => {
            sink.emit(Kind::PrefillEmpty(path.to_string()), span);
            None
        }
        Ok(m) if m.is_file() => Some(m.len()),
        Ok(_) => {
            sink.emit(
                Kind::PrefillUnreadable {
                    path: path.to_string(),
                    reason: "not a file".to_string(),
                },
                span,
            );
            None
        }
        Err(e) => {
            sink.emit(
                Kind::PrefillUnreadable {
                    path: path.to_string(),
                    reason: e.kind().to_string(),
                },
                span,
            );
            None
        }
    }
}

/// Parses Microkit's PCI address `bus:dev.func` (hexadecimal).
pub fn pci_address(text: &str) -> Option<(u8, u8, u8)> {
    let (bus, rest) = text.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let bus = u8::from_str_radix(bus.trim(), 16).ok()?;
    let dev = u8::from_str_radix(dev.trim(), 16)
        .ok()
        .filter(|d| *d <= 31)?;
    let func = u8::from_str_radix(func.trim(), 16)
        .ok()
        .filter(|f| *f <= 7)?;
    Some((bus, dev, func))
}

/// Microkit 2.3.0: x86 interrupt vectors run 0..=107.
pub const X86_MAX_VECTOR: u64 = 107;
