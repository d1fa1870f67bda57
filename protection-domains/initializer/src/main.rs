//! The target entry of the initializer: stack, heap, IPC buffer, the blob,
//! then `realize` and the monitor loop (the logic is in the library).
#![cfg_attr(all(target_arch = "aarch64", target_os = "none"), no_std, no_main)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod rt {
    extern crate alloc;

    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::mem::MaybeUninit;

    use septa_abi::bootinfo::BootInfo;
    use septa_abi::init_cap;
    use septa_initializer::frames::Window;
    use septa_initializer::monitor::Monitor;
    use septa_initializer::realize;
    use septa_sel4::bootinfo::BootInfoRef;
    use septa_sel4::{cap_type, debug_println, Cap};
    use septa_test_report as report;

    septa_root_task::entry!(initializer_main, stack = 64 * 1024);

    /// Bytes the spec may take once decoded (names stay in the blob).
    const HEAP_SIZE: usize = 4 << 20;

    /// A bump allocator: the initializer decodes the spec once and keeps
    /// it for ever, so nothing is worth freeing.
    struct Bump {
        next: UnsafeCell<usize>,
    }

    /// The bytes `Bump` hands out.
    struct Memory(UnsafeCell<MaybeUninit<[u8; HEAP_SIZE]>>);

    // SAFETY: only `Bump::alloc` takes the address, and it hands out
    // disjoint ranges; the initializer is one thread (see `Bump`).
    unsafe impl Sync for Memory {}

    /// In `.noinit` (the root-task linker script): the loader leaves it
    /// as it finds it, since an allocator owes no zeroed memory (and
    /// `alloc_zeroed` zeroes what it hands out), which took a seventh of
    /// the boot for 4 MiB that a system mostly does not use.
    #[link_section = ".noinit"]
    static MEMORY: Memory = Memory(UnsafeCell::new(MaybeUninit::uninit()));

    // SAFETY: the initializer is one thread and never re-entered (seL4
    // delivers nothing asynchronously to user level), so the cells are
    // never accessed concurrently.
    unsafe impl Sync for Bump {}

    // SAFETY: `alloc` hands out disjoint, suitably aligned ranges of the
    // static heap (the cursor only moves forward) or null when it is full;
    // `dealloc` does nothing, which is always sound.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: single thread (see `Sync`), so no other reference to
            // the cursor exists during this call.
            let next = unsafe { &mut *self.next.get() };
            let base = MEMORY.0.get() as usize;
            let start = (base + *next).next_multiple_of(layout.align());
            let end = start + layout.size();
            if end > base + HEAP_SIZE {
                return core::ptr::null_mut();
            }
            *next = end - base;
            start as *mut u8
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[global_allocator]
    static HEAP: Bump = Bump {
        next: UnsafeCell::new(0),
    };

    extern "C" {
        static __image_end: u8;
    }

    /// Stops the initializer for good after a failure: it suspends itself.
    fn stop() -> ! {
        let me: Cap<cap_type::Tcb> = Cap::from_bits(init_cap::TCB);
        let _ = me.suspend();
        loop {
            core::hint::spin_loop();
        }
    }

    extern "C" fn initializer_main(bootinfo: *const BootInfo) -> ! {
        // SAFETY: the kernel passes the address of BootInfo, mapped
        // read-only with its extra pages after it, for the life of the
        // root task.
        let bi = unsafe { BootInfoRef::from_ptr(bootinfo) };
        // SAFETY: BootInfo names the IPC buffer the kernel mapped for this
        // thread; nothing else in the initializer touches it.
        unsafe {
            septa_sel4::ipc_buffer::set_ipc_buffer(
                bi.ipc_buffer() as *mut septa_sel4::ipc_buffer::IpcBuffer
            )
        };
        let raw = bi.raw();
        debug_println!(
            "initializer: BootInfo at {:p}, IPC buffer at {:#x}, root CNode 2^{} slots",
            bootinfo,
            raw.ipc_buffer,
            raw.init_thread_cnode_size_bits
        );

        // The blob starts at the first page past our image: the loader put
        // it there and counts it in the user image the kernel maps for us
        // (boot contract: x0..x1 covers it). Its header gives its length.
        let end = core::ptr::addr_of!(__image_end) as usize;
        // SAFETY: the header's bytes lie in the mapped user image (above);
        // read-only data the loader copied, never written while we run.
        let header =
            unsafe { core::slice::from_raw_parts(end as *const u8, septa_spec::BLOB_HEADER_LEN) };
        let len = match septa_spec::blob_len(header) {
            Ok(len) => len,
            Err(e) => {
                debug_println!("initializer: {e}");
                stop();
            }
        };
        // Where the kernel lists the image's frames, the blob must lie in
        // them (Septa's kernel lists none yet; seL4 does).
        let frames = raw.user_image_frames.len() as usize;
        let mapped_end = septa_abi::ROOT_TASK_BASE as usize + (frames << septa_abi::PAGE_BITS);
        if frames > 0 && end + len > mapped_end {
            debug_println!("initializer: the spec blob runs past the mapped image");
            stop();
        }
        // SAFETY: as for the header: the whole blob was copied there and is
        // mapped with the image (checked above where BootInfo says).
        let blob = unsafe { core::slice::from_raw_parts(end as *const u8, len) };
        let (spec, data) = match septa_spec::decode_blob(blob) {
            Ok(x) => x,
            Err(e) => {
                debug_println!("initializer: {e}");
                stop();
            }
        };
        if let Err(e) = spec.check() {
            debug_println!("initializer: the spec is inconsistent: {e}");
            stop();
        }
        septa_initializer::summary(&spec, &bi);
        if spec.test_harness || spec.pds.is_empty() {
            // The kernel booted us and the spec is sound: the boot smoke
            // test, which a system without PDs is all about.
            debug_println!("{}", report::ok("boot"));
        }
        if spec.pds.is_empty() {
            debug_println!("{}", report::DONE);
            stop();
        }
        let mut window = Window {
            vspace: Cap::from_bits(init_cap::VSPACE),
        };
        let caps = match realize::realize(&spec, data, &bi, &mut window) {
            Ok(c) => c,
            Err(f) => {
                debug_println!("initializer: {f}; stopping");
                if spec.test_harness {
                    debug_println!("{}", report::fail("initializer", &f));
                    debug_println!("{}", report::DONE);
                }
                stop();
            }
        };
        debug_println!(
            "initializer: {} PDs started; monitoring faults",
            spec.pds.len()
        );
        Monitor::new(&spec, data, bi, &caps, &mut window).run()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        debug_println!("initializer panicked: {info}");
        stop()
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn main() {
    eprintln!("septa-initializer is a root task for aarch64; the septa tool builds it");
}
