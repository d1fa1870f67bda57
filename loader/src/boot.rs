//! The loader's hardware half: entry, UART, EL2 MMU, copying, and the jump.

use core::fmt::{self, Write};
use core::panic::PanicInfo;

use septa_image::elf::Elf;
use septa_image::{Header, HEADER_LEN};

use crate::plan::{self, Range, Segment};

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    msr     daifset, #0xf
    mov     x19, x0
    ldr     x1, =__stack_top
    mov     sp, x1
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  mov     x0, x19
    bl      loader_main
3:  wfe
    b       3b
"#
);

extern "C" {
    static __payload_start: u8;
    static __stack_top: u8;
}

/// The seL4 hyp kernel's window onto physical memory (its `PPTR_BASE`,
/// 2^39), where a real seL4 kernel is linked. Septa's own kernel uses the
/// identity (`septa_abi::KERNEL_WINDOW_BASE`), which the loader maps as
/// well.
const SEL4_KERNEL_WINDOW: u64 = 0x80_0000_0000;
const _: () = assert!(septa_abi::KERNEL_WINDOW_BASE == 0);
/// Largest address the loader maps (identity and window): 16 GiB.
const MAPPED_GIB: usize = 16;
const FDT_MAGIC: u32 = 0xd00d_feed;

/// A PL011 we may print on; a base of 0 makes it silent.
struct Uart(u64);

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.0 == 0 {
            return Ok(());
        }
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

impl Uart {
    fn put(&self, b: u8) {
        const FR: u64 = 0x18;
        const FR_TXFF: u32 = 1 << 5;
        // SAFETY: the tool sets `uart_base` from the board profile to a PL011
        // data register, identity-mapped as device memory (or the MMU is off).
        unsafe {
            while core::ptr::read_volatile((self.0 + FR) as *const u32) & FR_TXFF != 0 {}
            core::ptr::write_volatile(self.0 as *mut u32, b as u32);
        }
    }
}

static mut UART_BASE: u64 = 0;

fn uart() -> Uart {
    // SAFETY: one core, no interrupts; written once before any reader.
    Uart(unsafe { UART_BASE })
}

macro_rules! say {
    ($($t:tt)*) => { let _ = writeln!(uart(), $($t)*); };
}

fn fail(what: &dyn fmt::Display) -> ! {
    say!("septa-loader: error: {what}");
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: waiting for an event has no effect on memory.
        unsafe { core::arch::asm!("wfe") };
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    say!("septa-loader: panic: {info}");
    halt()
}

fn current_el() -> u64 {
    let el: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { core::arch::asm!("mrs {}, CurrentEL", out(reg) el) };
    (el >> 2) & 3
}

/// The loader's one run: find the payload, check the exception level, find
/// the device tree, turn the MMU on, plan where everything goes, copy it
/// there, and enter the kernel.
#[no_mangle]
extern "C" fn loader_main(dtb_from_firmware: u64) -> ! {
    let (payload, header) = payload();
    let el = current_el();
    if el != 2 {
        fail(&format_args!(
            "entered at EL{el}; Septa's kernel runs at EL2: start QEMU with -machine virt,virtualization=on"
        ));
    }
    let dtb = find_dtb(dtb_from_firmware, header.dtb_hint).map(|d| (d, fdt_len(d)));

    enable_mmu();

    let kernel_elf = Header::slice(payload, header.kernel);
    let user_elf = Header::slice(payload, header.user);
    let extra = Header::slice(payload, header.extra);
    let mut kbuf = [Segment {
        addr: 0,
        file_offset: 0,
        file_size: 0,
        mem_size: 0,
        zero_fill: true,
    }; 16];
    let mut ubuf = kbuf;
    let (kernel_segs, kernel_entry) = segments(kernel_elf, true, &mut kbuf, "kernel");
    let (user_segs, user_entry) = segments(user_elf, false, &mut ubuf, "root task");
    let dtb_len = dtb.map_or(0, |(_, len)| len);
    let p = match plan::make(
        kernel_segs,
        user_segs,
        extra.len() as u64,
        dtb_len,
        header_ram(&header),
        &busy(payload),
    ) {
        Ok(p) => p,
        Err(e) => fail(&e),
    };
    copy_into_place(
        &p,
        dtb,
        [
            (kernel_elf, kernel_segs, 0),
            (user_elf, user_segs, p.pv_offset),
        ],
        extra,
    );
    say!(
        "septa-loader: kernel {:#x}..{:#x}, root task {:#x}..{:#x}, dtb {:#x} ({} bytes)",
        p.kernel.start,
        p.kernel.end,
        p.user.start,
        p.user.end,
        p.dtb,
        dtb_len
    );
    let dtb_addr = if dtb.is_some() { p.dtb } else { 0 };
    // SAFETY: the kernel's code is in place at its physical addresses and
    // mapped at its link addresses (identity, or seL4's window); the registers carry
    // the seL4 boot contract. The kernel never returns.
    unsafe {
        core::arch::asm!(
            "br {entry}",
            entry = in(reg) kernel_entry,
            in("x0") p.user.start,
            in("x1") p.user.end,
            in("x2") p.pv_offset,
            in("x3") user_entry,
            in("x4") dtb_addr,
            in("x5") dtb_len,
            options(noreturn)
        )
    }
}

/// The payload the tool appended after the loader, and its header; the
/// UART the header names is the loader's console from here on.
fn payload() -> (&'static [u8], Header) {
    // SAFETY: the linker places `__payload_start` after the loader's BSS and
    // stack; the tool appends the payload exactly there.
    let base = unsafe { &__payload_start as *const u8 };
    // SAFETY: the header is at least HEADER_LEN bytes when a payload exists;
    // when it does not, the magic check below fails first.
    let head = unsafe { core::slice::from_raw_parts(base, HEADER_LEN) };
    let total = match Header::peek_total_len(head) {
        Ok(t) => t,
        Err(e) => fail(&e),
    };
    // SAFETY: the payload covers `total` bytes from its start (its header says
    // so, and the tool wrote both); nothing writes it while the loader runs.
    let payload = unsafe { core::slice::from_raw_parts(base, total as usize) };
    let header = match Header::parse(payload) {
        Ok(h) => h,
        Err(e) => fail(&e),
    };
    // SAFETY: single-threaded, before any other use of UART_BASE.
    unsafe { UART_BASE = header.uart_base };
    say!(
        "septa-loader: payload of {total} bytes at {:#x}",
        base as u64
    );
    (payload, header)
}

/// Bytes of the device tree at `d` that are in use.
fn fdt_len(d: u64) -> u64 {
    let header = core::array::from_fn(|i| {
        // SAFETY: `find_dtb` checked the FDT magic at `d`; the ten
        // header words follow it in the tree QEMU or the firmware wrote.
        u32::from_be(unsafe { core::ptr::read_volatile((d as *const u32).add(i)) })
    });
    plan::fdt_used_len(header)
}

/// RAM, as the payload's header gives it.
fn header_ram(header: &Header) -> Range {
    Range {
        start: header.ram_base,
        end: header.ram_base + header.ram_size,
    }
}

/// What nothing may be placed over: the loader itself and the payload.
fn busy(payload: &[u8]) -> [(&'static str, Range); 2] {
    // SAFETY: `__stack_top` is a linker symbol; only its address is used.
    let loader_start = unsafe { &__stack_top as *const u8 as u64 } & !0xfff_ffff;
    let base = payload.as_ptr() as u64;
    [
        (
            "loader",
            Range {
                start: loader_start,
                end: base,
            },
        ),
        (
            "payload",
            Range {
                start: base,
                end: base + payload.len() as u64,
            },
        ),
    ]
}

/// Copies the device tree (`dtb`: its address and used length), the
/// kernel's and the root task's segments (`images`: each ELF, its segments,
/// and the offset from segment address to physical address) and the extra
/// blob where plan `p` puts them, then makes the copied code visible to
/// instruction fetch. Called once; inlined, so that splitting it out of
/// `loader_main` costs no instruction at boot (out of line: 32 more).
#[inline(always)]
fn copy_into_place(
    p: &plan::Plan,
    dtb: Option<(u64, u64)>,
    images: [(&[u8], &[Segment], u64); 2],
    extra: &[u8],
) {
    // The DTB may sit where the kernel goes (QEMU puts it at the base of
    // RAM), so it moves first; `copy` has memmove semantics.
    if let Some((d, dtb_len)) = dtb {
        // SAFETY: source is the firmware's DTB; the destination was checked
        // by `plan::make` to lie in RAM clear of the loader and payload.
        unsafe { core::ptr::copy(d as *const u8, p.dtb as *mut u8, dtb_len as usize) };
        // The copy ends where the used part ends: say so in its header
        // (totalsize, big-endian, at offset 4).
        // SAFETY: the destination holds the copied header (40 bytes or more).
        unsafe { core::ptr::write_volatile((p.dtb + 4) as *mut u32, (dtb_len as u32).to_be()) };
    }
    for (elf, segs, offset) in images {
        load(elf, segs, offset);
    }
    // SAFETY: as above, `plan::make` placed the extra blob clear of the payload.
    unsafe { core::ptr::copy(extra.as_ptr(), p.extra as *mut u8, extra.len()) };
    // Only bytes copied from the files can be code; bss and the extra blob
    // are data the caches already hold coherently (same attributes in the
    // loader's and the kernel's mappings).
    for (_, segs, offset) in images {
        for s in segs {
            let start = s.addr.wrapping_add(offset);
            clean_data_cache(Range {
                start,
                end: start + s.file_size,
            });
        }
    }
    invalidate_instruction_cache();
}

fn find_dtb(from_firmware: u64, hint: u64) -> Option<u64> {
    [from_firmware, hint].into_iter().find(|&a| {
        // SAFETY: a nonzero candidate is either the firmware's x0 or the
        // board's documented DTB place, both in RAM; the MMU is off.
        a != 0 && u32::from_be(unsafe { core::ptr::read_volatile(a as *const u32) }) == FDT_MAGIC
    })
}

/// Reads the loadable segments of an ELF into `buf`; returns them and the entry.
fn segments<'a>(
    elf: &[u8],
    physical: bool,
    buf: &'a mut [Segment; 16],
    what: &str,
) -> (&'a [Segment], u64) {
    let file = match Elf::parse(elf) {
        Ok(f) => f,
        Err(e) => fail(&format_args!("the {what}: {e}")),
    };
    let mut n = 0;
    for l in file.loads() {
        if n == buf.len() {
            fail(&format_args!(
                "the {what} has more than {} loadable segments",
                buf.len()
            ));
        }
        buf[n] = Segment {
            addr: if physical { l.paddr } else { l.vaddr },
            file_offset: l.offset,
            file_size: l.file_size,
            mem_size: l.mem_size,
            zero_fill: l.zero_fill(),
        };
        n += 1;
    }
    (&buf[..n], file.entry)
}

fn load(elf: &[u8], segs: &[Segment], offset: u64) {
    for s in segs {
        let dst = s.addr.wrapping_add(offset) as *mut u8;
        // SAFETY: `plan::make` checked that every destination lies in RAM,
        // clear of the loader and the payload; sources are inside `elf`
        // (checked in `segments`).
        unsafe {
            copy(
                elf.as_ptr().add(s.file_offset as usize),
                dst,
                s.file_size as usize,
            );
        }
        // A segment its program initializes itself (the initializer's heap,
        // 4 MiB: zeroing it was a seventh of the boot) is left as it is.
        if s.zero_fill {
            // SAFETY: as above; the MMU is on and RAM is mapped Normal, so
            // DC ZVA may zero.
            unsafe {
                septa_zva::zero(
                    dst.add(s.file_size as usize),
                    (s.mem_size - s.file_size) as usize,
                );
            }
        }
    }
}

/// Copies `len` bytes from `src` to `dst` (not overlapping), 32 bytes an
/// iteration where both are 16-byte aligned alike: the generic `memcpy`
/// took about 1.3 instructions a byte here, this loop 0.2.
///
/// # Safety
///
/// `src..src + len` readable, `dst..dst + len` writable Normal memory, the
/// two disjoint.
unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    const ALIGN: usize = 16;
    const CHUNK: usize = 32;
    if !(src as usize ^ dst as usize).is_multiple_of(ALIGN) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    let head = ((ALIGN - dst as usize % ALIGN) % ALIGN).min(len);
    let body = (len - head) / CHUNK * CHUNK;
    let tail = len - head - body;
    // SAFETY: head, body and tail split `0..len` in order; the caller's
    // contract covers each piece. In the body both pointers are 16-byte
    // aligned (same remainder, `head` bytes skipped), as LDP/STP of two
    // registers need on a strict-alignment target.
    unsafe {
        core::ptr::copy_nonoverlapping(src, dst, head);
        let (mut s, mut d, n) = (src.add(head), dst.add(head), body);
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldp {a}, {b}, [{s}], #16",
                "ldp {c}, {e}, [{s}], #16",
                "stp {a}, {b}, [{d}], #16",
                "stp {c}, {e}, [{d}], #16",
                "subs {n}, {n}, #32",
                "b.ne 2b",
                s = inout(reg) s,
                d = inout(reg) d,
                n = inout(reg) n => _,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                e = out(reg) _,
                options(nostack),
            );
        }
        core::ptr::copy_nonoverlapping(s, d, tail);
    }
}

/// Cleans the data cache over `r` to the point of unification, so that
/// instruction fetches (after [`invalidate_instruction_cache`]) see the code
/// just copied.
fn clean_data_cache(r: Range) {
    const LINE: u64 = 64;
    let mut a = r.start & !(LINE - 1);
    while a < r.end {
        // SAFETY: cache maintenance by address on identity-mapped RAM.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) a) };
        a += LINE;
    }
}

fn invalidate_instruction_cache() {
    // SAFETY: barriers and instruction cache invalidation have no memory effects.
    unsafe { core::arch::asm!("dsb ish", "ic iallu", "dsb ish", "isb") };
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut L0: Table = Table([0; 512]);
static mut L1_IDENTITY: Table = Table([0; 512]);
static mut L1_WINDOW: Table = Table([0; 512]);

use septa_image::el2::{ATTR_DEVICE, ATTR_NORMAL, MAIR, TCR};

/// Turns on the EL2 stage-1 MMU: 48-bit VA, 4 KiB granule, two 1 GiB-block
/// maps of the first `MAPPED_GIB` GiB, one at 0 (identity, where Septa's
/// kernel is linked) and one at the seL4 kernel's window. The first GiB
/// holds the devices and is device memory.
fn enable_mmu() {
    const VALID_BLOCK: u64 = 0b01;
    const VALID_TABLE: u64 = 0b11;
    const SH_INNER: u64 = 3 << 8;
    const AF: u64 = 1 << 10;
    const XN: u64 = 1 << 54;
    const SCTLR_M: u64 = 1 << 0;
    const SCTLR_C: u64 = 1 << 2;
    const SCTLR_I: u64 = 1 << 12;

    // SAFETY: single-threaded, MMU off: nothing else reads these tables yet.
    unsafe {
        let l0 = &raw mut L0;
        let li = &raw mut L1_IDENTITY;
        let lw = &raw mut L1_WINDOW;
        for g in 0..MAPPED_GIB {
            let pa = (g as u64) << 30;
            let d = if g == 0 {
                pa | VALID_BLOCK | ATTR_DEVICE | AF | XN
            } else {
                pa | VALID_BLOCK | ATTR_NORMAL | SH_INNER | AF
            };
            (*li).0[g] = d;
            (*lw).0[g] = d;
        }
        (*l0).0[0] = li as u64 | VALID_TABLE;
        (*l0).0[(SEL4_KERNEL_WINDOW >> 39) as usize] = lw as u64 | VALID_TABLE;
        let mut sctlr: u64;
        core::arch::asm!("mrs {}, sctlr_el2", out(reg) sctlr);
        sctlr |= SCTLR_M | SCTLR_C | SCTLR_I;
        core::arch::asm!(
            "dsb ish",
            "msr mair_el2, {mair}",
            "msr tcr_el2, {tcr}",
            "msr ttbr0_el2, {ttbr}",
            "isb",
            "tlbi alle2",
            "dsb ish",
            "isb",
            "msr sctlr_el2, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) TCR,
            ttbr = in(reg) l0 as u64,
            sctlr = in(reg) sctlr,
        );
    }
}
