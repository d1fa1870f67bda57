//! The guest-physical memory map and interrupts of a Septa virtual machine.
//!
//! Where a device exists both here and on QEMU's `virt` board, it sits at
//! the same address with the same interrupt (QEMU 7.2 hw/arm/virt.c,
//! `base_memmap[]` and `a15irqmap[]`; the board profile
//! `qemu/qemu-virt.toml` cites the same source). So a guest built for a
//! Septa VM also boots, device tree and all, on bare QEMU with
//! `-machine virt,virtualization=off`, which is the yardstick the VMM is
//! measured against, and its console and virtio devices are where a person
//! who knows QEMU expects them.
//!
//! What the VMM does with each (the guest cannot tell the difference):
//!
//! | device | guest-physical | VMM |
//! |---|---|---|
//! | GICv2 distributor | [`GICD_BASE`] | emulates it (every access traps) |
//! | GICv2 CPU interface | [`GICC_BASE`] | maps the hardware's virtual CPU interface (GICV) there |
//! | PL011 UART | [`UART_BASE`] | emulates it: the guest's console |
//! | virtio-mmio transport `n` | [`virtio_mmio`]`(n)` | emulates the devices the description gives the guest |
//! | RAM | from [`RAM_BASE`] | the VM's RAM maps |
//!
//! Interrupt numbers are GIC INTIDs: SPI `n` is INTID 32 + `n`, PPI `n` is
//! INTID 16 + `n`. In a device tree an SPI is written `<0 n flags>` and a
//! PPI `<1 n flags>`.

/// The first INTID of the shared peripheral interrupts.
pub const SPI_BASE: u32 = 32;
/// The first INTID of the private peripheral interrupts.
pub const PPI_BASE: u32 = 16;

/// Guest RAM starts here (QEMU `virt`'s VIRT_MEM). The VM's maps at and
/// above it are its RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The least guest RAM a description may give a Linux guest: the Debian
/// cloud kernel alone takes about 28 MiB of it (its `image_size`), and
/// Linux needs room for its page tables, the unpacked initramfs and a
/// shell beside that. The build checks the real kernel's fit
/// ([`crate::place()`]).
pub const RAM_MIN: u64 = 64 << 20;
/// The highest guest-physical address (exclusive) RAM may reach: a 40-bit
/// intermediate physical address space, as seL4 gives a VM on this board.
pub const GUEST_PA_LIMIT: u64 = 1 << 40;

/// GICv2 distributor (GICD), emulated by the VMM.
pub const GICD_BASE: u64 = 0x0800_0000;
/// The distributor's architected register frame (GICv2: 4 KiB).
pub const GICD_SIZE: u64 = 0x1000;
/// GICv2 CPU interface (GICC): the VMM maps the hardware's virtual CPU
/// interface (GICV) here.
pub const GICC_BASE: u64 = 0x0801_0000;
/// The CPU interface's architected frame: 8 KiB (GICC_DIR is at 0x1000).
pub const GICC_SIZE: u64 = 0x2000;
/// Every INTID the emulated distributor implements (its GICD_TYPER reports
/// 32 * (ITLinesNumber + 1)): enough for every SPI below.
pub const GIC_NUM_IRQS: u32 = 128;

/// The PL011 UART of the guest's console, emulated by the VMM.
pub const UART_BASE: u64 = 0x0900_0000;
pub const UART_SIZE: u64 = 0x1000;
/// Its SPI number (INTID 33), level-triggered.
pub const UART_SPI: u32 = 1;
/// The clock the guest is told drives the PL011 (QEMU's `apb-pclk`); the
/// emulated UART ignores baud rates, but Linux's driver wants a clock.
pub const UART_CLOCK_HZ: u32 = 24_000_000;

/// The virtio-mmio transports: `VIRTIO_MMIO_COUNT` of them, each
/// `VIRTIO_MMIO_SIZE` bytes, `VIRTIO_MMIO_STRIDE` apart from
/// `VIRTIO_MMIO_BASE`, transport `n` on SPI `VIRTIO_MMIO_FIRST_SPI + n`
/// (edge-triggered), as on QEMU `virt`.
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x200;
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
pub const VIRTIO_MMIO_COUNT: u32 = 32;
pub const VIRTIO_MMIO_FIRST_SPI: u32 = 16;

/// Transport `slot`'s registers and SPI, or `None` past the last one.
pub const fn virtio_mmio(slot: u32) -> Option<(u64, u32)> {
    if slot >= VIRTIO_MMIO_COUNT {
        return None;
    }
    Some((
        VIRTIO_MMIO_BASE + slot as u64 * VIRTIO_MMIO_STRIDE,
        VIRTIO_MMIO_FIRST_SPI + slot,
    ))
}

/// The ARM architected timer's PPIs (the Arm BSA's numbers, which QEMU
/// wires): a guest at EL1 uses the virtual timer, which seL4 delivers to
/// the VMM as a virtual PPI event.
pub const TIMER_SECURE_PHYS_PPI: u32 = 13;
pub const TIMER_PHYS_PPI: u32 = 14;
pub const TIMER_VIRT_PPI: u32 = 11;
pub const TIMER_HYP_PPI: u32 = 10;

/// How the guest calls PSCI: `hvc` traps to the hypervisor, where seL4
/// hands it to the VMM (bare QEMU with `virtualization=off` answers `hvc`
/// PSCI calls itself, so the same device tree works there).
pub const PSCI_METHOD: &str = "hvc";

/// Device tree interrupt flags (include/dt-bindings/interrupt-controller).
pub const IRQ_TYPE_EDGE_RISING: u32 = 1;
pub const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// Does `[base, base + size)` touch a device the VMM emulates (by trapping
/// every access)? A VM map there would hide the device from the VMM.
/// Returns the device's name.
pub fn emulated_device_at(base: u64, size: u64) -> Option<&'static str> {
    let end = base.saturating_add(size);
    let hits = |b: u64, s: u64| base < b + s && b < end;
    if hits(GICD_BASE, GICD_SIZE) {
        return Some("the GIC distributor");
    }
    if hits(UART_BASE, UART_SIZE) {
        return Some("the PL011 UART");
    }
    let virtio_len = VIRTIO_MMIO_STRIDE * VIRTIO_MMIO_COUNT as u64;
    if hits(VIRTIO_MMIO_BASE, virtio_len) {
        return Some("the virtio-mmio transports");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio_transports_are_qemu_virts() {
        assert_eq!(virtio_mmio(0), Some((0x0a00_0000, 16)));
        assert_eq!(virtio_mmio(31), Some((0x0a00_3e00, 47)));
        assert_eq!(virtio_mmio(32), None);
    }

    #[test]
    fn emulated_devices_are_found_by_overlap() {
        assert_eq!(
            emulated_device_at(GICD_BASE, 4),
            Some("the GIC distributor")
        );
        assert_eq!(emulated_device_at(GICC_BASE, 0x1000), None);
        assert_eq!(
            emulated_device_at(0x08ff_f000, 0x2000),
            Some("the PL011 UART")
        );
        assert_eq!(
            emulated_device_at(0x0a00_3000, 0x1000),
            Some("the virtio-mmio transports")
        );
        assert_eq!(emulated_device_at(RAM_BASE, 1 << 30), None);
    }
}
