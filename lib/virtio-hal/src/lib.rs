//! # septa-virtio-hal: what every virtio driver PD shares
//!
//! A virtio driver PD owns one device on a virtio-mmio transport and one
//! DMA region, the only memory the device may reach. This crate is the
//! part of such a driver that does not depend on the kind of device, so
//! that each driver (console today; net and block next) writes only its
//! device logic on top of `virtio-drivers`:
//!
//! - [`pool`]: the arithmetic of the DMA pool (a bump allocator over the
//!   region, and the translation of its addresses to the device's), with
//!   no `unsafe` and tested on the host;
//! - [`SeptaHal`]: `virtio-drivers`' [`Hal`] over that pool: virtqueues
//!   and buffers come from the region, and the device is given their
//!   physical addresses;
//! - [`DmaHeap`]: a global allocator over the same pool, for what
//!   `virtio-drivers` or the driver allocate (buffers the device reads or
//!   writes must be in the region);
//! - [`transport`]: the device's virtio-mmio transport, checked to hold
//!   the expected kind of device;
//! - [`add_window`]: memory beyond the DMA region that the device may
//!   reach, for a driver whose device reads and writes its clients' data
//!   regions in place (virtio-blk).
//!
//! ## Wiring (system.toml)
//!
//! The crate defines the setvar variables it reads, so every virtio driver
//! is wired the same way (here a console driver, called by its client):
//!
//! ```toml
//! [pd.console]
//! program = "virtio-console"
//! maps = [
//!     { region = "console_regs", vaddr = 0x2000_0000, cached = false,
//!       setvar_device = "regs_vaddr", setvar_device_size = "regs_size" },
//!     { region = "console_dma", vaddr = 0x2100_0000,
//!       setvar_vaddr = "dma_vaddr", setvar_size = "dma_size" },
//! ]
//! setvars = [{ symbol = "dma_paddr", region = "console_dma" }]
//!
//! [region.console_regs]
//! device = "console"        # the page of the device's transport
//!
//! [region.console_dma]
//! size = "64 KiB"
//! ```
//!
//! The size of the transport's registers (`regs_size`) comes from the
//! board profile, like every other fact about the board.
//!
//! Owns: the DMA pool and the transport's registers. Must not: know any
//! device's protocol, or any client's.
#![no_std]

pub mod pool;

use core::ptr::NonNull;

use septa_runtime::{setvar, PdCell};
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use pool::{Pool, Region, Windows};

setvar! {
    /// The device's registers: its transport inside the mapped page.
    static REGS_VADDR = "regs_vaddr";
    /// Bytes of the transport's registers (the board profile's size).
    static REGS_SIZE = "regs_size";
    /// The DMA region, in this PD and for the device.
    static DMA_VADDR = "dma_vaddr";
    static DMA_PADDR = "dma_paddr";
    static DMA_SIZE = "dma_size";
}

/// The DMA region, as the tool patched it in.
fn region() -> Region {
    Region {
        vaddr: DMA_VADDR.addr(),
        paddr: DMA_PADDR.get(),
        size: DMA_SIZE.get() as usize,
    }
}

/// What of the DMA region is handed out (one thread: see `PdCell`).
static POOL: PdCell<Pool> = PdCell::new(Pool::new());

/// The most windows beyond the DMA region a driver may register.
pub const MAX_WINDOWS: usize = 17;

/// Memory outside the DMA region that the device may reach (one thread:
/// see `PdCell`).
static WINDOWS: PdCell<Windows<MAX_WINDOWS>> = PdCell::new(Windows::new());

/// Lets the device reach `size` bytes mapped at `vaddr` in this PD, at
/// physical address `paddr`: a client's data region that a driver hands
/// to the device in place. `false` if there is no room for another
/// window. Buffers in windows pass `SeptaHal::share`, and
/// [`window_at`] finds a device address's place in this PD.
pub fn add_window(vaddr: usize, paddr: u64, size: usize) -> bool {
    let mut w = WINDOWS.get();
    let added = w.add(Region { vaddr, paddr, size });
    WINDOWS.replace(w);
    added
}

/// Where `len` bytes at device address `paddr` lie in this PD, if the DMA
/// region or one window holds them all.
pub fn window_at(paddr: u64, len: usize) -> Option<usize> {
    region()
        .translate_back(paddr, len)
        .or_else(|| WINDOWS.get().translate_back(paddr, len))
}

/// The device's status register (virtio-mmio `Status`, the same offset in
/// the legacy and the modern layout), read past the transport: for a
/// driver whose device library keeps the transport to itself, to notice a
/// device that asks for a reset (`DEVICE_NEEDS_RESET`) or was reset under
/// it (`DRIVER_OK` gone). Empty if `regs_vaddr` was never patched.
pub fn device_status() -> DeviceStatus {
    /// `Status`'s offset in the transport's registers (virtio 1.2, 4.2.2).
    const STATUS: usize = 0x70;
    let Some(regs) = NonNull::new(REGS_VADDR.as_ptr::<u8>()) else {
        return DeviceStatus::empty();
    };
    // SAFETY: the transport's registers are mapped uncached at
    // `regs_vaddr` for the PD's life (see `transport`), `Status` lies
    // inside them and is 32-bit aligned, and reading it has no side effect
    // on the device.
    let bits = unsafe { regs.as_ptr().add(STATUS).cast::<u32>().read_volatile() };
    DeviceStatus::from_bits_truncate(bits)
}

/// Bytes of the DMA region handed out so far, and the region's size.
pub fn dma_usage() -> (usize, usize) {
    (POOL.get().used(), region().size)
}

/// Takes zeroed memory from the DMA region.
fn take(size: usize, align: usize) -> Option<NonNull<u8>> {
    let mut pool = POOL.get();
    let vaddr = pool.take(&region(), size, align)?;
    POOL.replace(pool);
    let ptr = NonNull::new(vaddr as *mut u8)?;
    // SAFETY: `take` returned `size` bytes inside the DMA region, which the
    // tool maps read-write at DMA_VADDR in this PD alone, and which no one
    // has been given before (the pool only moves forward).
    unsafe { ptr.as_ptr().write_bytes(0, size) };
    Some(ptr)
}

/// A global allocator over the DMA pool. A driver whose device logic
/// allocates (`virtio-drivers`' console allocates its receive buffer) makes
/// it the global allocator, on the target only:
///
/// ```ignore
/// #[cfg(all(target_arch = "aarch64", target_os = "none"))]
/// #[global_allocator]
/// static HEAP: septa_virtio_hal::DmaHeap = septa_virtio_hal::DmaHeap;
/// ```
///
/// Memory is never given back: a driver allocates once, at start-up.
pub struct DmaHeap;

// SAFETY: `alloc` hands out disjoint, aligned blocks of the mapped DMA
// region or null when it is full; `dealloc` never reuses memory, which is
// always sound.
unsafe impl core::alloc::GlobalAlloc for DmaHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        take(layout.size(), layout.align()).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
}

/// `virtio-drivers`' view of Septa: DMA memory is the region, and the
/// device sees physical addresses.
pub struct SeptaHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed memory of the mapped DMA
// region that nothing else uses (see `take`: fresh memory, or a block that
// `dma_dealloc` was given back, which `virtio-drivers` does only once
// neither it nor the device uses the block), with its physical address;
// `share` returns the physical address of a buffer that lies in that
// region or in a window the driver registered with its physical address
// (and panics otherwise), which is where the device must look.
unsafe impl Hal for SeptaHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let size = pages * PAGE_SIZE;
        match take(size, PAGE_SIZE) {
            Some(ptr) => {
                let paddr = region()
                    .translate(ptr.as_ptr() as usize, size)
                    .expect("the pool lies inside the region");
                (paddr, ptr)
            }
            // Physical address 0 tells `virtio-drivers` the allocation failed.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // The virtqueues of a device the driver resets: `virtio-drivers`
        // gives them back once the device no longer uses them (it unset
        // the queues and reset the device), and the same sizes are taken
        // again for the device's new queues. Memory of `DmaHeap`'s is never
        // given back.
        let mut pool = POOL.get();
        pool.give_back(vaddr.as_ptr() as usize, pages * PAGE_SIZE);
        POOL.replace(pool);
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        unreachable!("only the PCI transport asks for this")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.as_ptr().cast::<u8>() as usize;
        region()
            .translate(vaddr, buffer.len())
            .or_else(|| WINDOWS.get().translate(vaddr, buffer.len()))
            .unwrap_or_else(|| panic!("buffer at {vaddr:#x} is outside the DMA region and windows"))
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Why [`transport`] found no usable device.
#[derive(Debug)]
pub enum TransportError {
    /// `regs_vaddr` is 0: the description gives the PD no `setvar_device`.
    NotPatched,
    /// No virtio-mmio transport at the patched address.
    Mmio { vaddr: usize, error: MmioError },
    /// A transport, but holding another kind of device.
    WrongDevice {
        vaddr: usize,
        found: DeviceType,
        want: DeviceType,
    },
}

impl core::fmt::Display for TransportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TransportError::NotPatched => {
                write!(
                    f,
                    "regs_vaddr is not set (no `setvar_device` in the description)"
                )
            }
            TransportError::Mmio { vaddr, error } => {
                write!(f, "no virtio-mmio transport at {vaddr:#x}: {error}")
            }
            TransportError::WrongDevice { vaddr, found, want } => write!(
                f,
                "the transport at {vaddr:#x} holds a {found:?} device, not a {want:?}"
            ),
        }
    }
}

/// The device's transport (registers at `regs_vaddr`, `regs_size` bytes of
/// them), which must hold a device of kind `want`.
pub fn transport(want: DeviceType) -> Result<MmioTransport<'static>, TransportError> {
    let vaddr = REGS_VADDR.addr();
    let error = |error| TransportError::Mmio { vaddr, error };
    let header =
        NonNull::new(REGS_VADDR.as_ptr::<VirtIOHeader>()).ok_or(TransportError::NotPatched)?;
    // SAFETY: the tool maps the transport's page uncached in this PD alone
    // and patches REGS_VADDR with the address of the transport's registers
    // in it (`setvar_device`) and REGS_SIZE with their size from the board
    // profile (`setvar_device_size`); the mapping lasts as long as the PD.
    let transport =
        unsafe { MmioTransport::new(header, REGS_SIZE.get() as usize) }.map_err(error)?;
    let found = transport.device_type();
    if found != want {
        return Err(TransportError::WrongDevice { vaddr, found, want });
    }
    Ok(transport)
}

/// A transport that hides some of the device's feature bits from the
/// driver, for a feature the driver's library offers but does not handle
/// right (see the drivers that use it for which, and why).
pub struct Masked<T> {
    inner: T,
    hide: u64,
}

impl<T: Transport> Masked<T> {
    /// `inner`, with the device's features in `hide` never offered.
    pub fn new(inner: T, hide: u64) -> Self {
        Masked { inner, hide }
    }
}

impl<T: Transport> Transport for Masked<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features() & !self.hide
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.inner
            .write_driver_features(driver_features & !self.hide)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> virtio_drivers::Result<()> {
        self.inner.write_config_space(offset, value)
    }
}
