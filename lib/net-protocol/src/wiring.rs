//! How the network subsystem is wired: channels, where each PD finds each
//! region, their sizes, and the symbols the tool patches.
//!
//! The generated PDs (driver, virtualisers, stack) find their regions at
//! the fixed addresses below; only a cell, whose address space the
//! description shapes, is told where its socket region is (a `setvar`).

/// Buffers in each data region, and entries in each queue.
pub const BUFFERS: u32 = 256;
/// Bytes per buffer (sDDF's `NET_BUFFER_SIZE`).
pub const BUFFER_SIZE: u32 = 2048;
/// Bytes of a data region.
pub const DATA_SIZE: u64 = BUFFERS as u64 * BUFFER_SIZE as u64;
/// Buffers in the data regions of a guest's card (a VMM's, as a client
/// of the virtualisers). Receiving, half the stack's: they absorb what
/// arrives faster than the guest takes it (256 measured no faster on
/// `vm-tcp`, and no frame was dropped for want of one). Transmitting,
/// fewer: the guest's own frames wait in its virtio ring until a buffer
/// is free, so a few in flight is enough. Together 384 KiB, so that a VMM
/// with a console, a network card and a disk stays under 1 MiB
/// (docs/performance.md).
pub const GUEST_RX_BUFFERS: u32 = 128;
pub const GUEST_TX_BUFFERS: u32 = 64;
/// Bytes of a guest card's receive and transmit data regions.
pub const GUEST_RX_DATA_SIZE: u64 = GUEST_RX_BUFFERS as u64 * BUFFER_SIZE as u64;
pub const GUEST_TX_DATA_SIZE: u64 = GUEST_TX_BUFFERS as u64 * BUFFER_SIZE as u64;
/// Buffers in the loopback data region (the transmit virtualiser's, lent
/// to the receive virtualiser for frames from one client to another): as
/// many as its queues hold, so a burst of a whole client queue's frames
/// to a neighbour fits while the receive virtualiser has not run yet.
pub const LOOPBACK_BUFFERS: u32 = 256;
/// Bytes of the loopback data region.
pub const LOOPBACK_DATA_SIZE: u64 = LOOPBACK_BUFFERS as u64 * BUFFER_SIZE as u64;
/// Bytes of a queue-pair region: the free queue at 0, the active queue at
/// [`ACTIVE_OFFSET`] (each holds [`BUFFERS`] descriptors).
pub const QUEUES_SIZE: u64 = 0x4000;
/// Where the active queue starts in a queue-pair region.
pub const ACTIVE_OFFSET: usize = 0x2000;
/// Where a frame starts in a buffer of the driver's data regions: after the
/// virtio-net header the device reads and writes (`virtio_net_hdr`, 12
/// bytes with VIRTIO_F_VERSION_1). In a client's buffers frames start at 0.
pub const DRIVER_FRAME_OFFSET: usize = 12;
/// The longest frame a buffer holds (no FCS): the Ethernet MTU and its
/// header, as the device delivers it.
pub const MAX_FRAME: usize = 1514;

/// The most clients a virtualiser serves (its channels 1 to 16).
pub const MAX_CLIENTS: usize = 16;
/// The most cells a stack serves.
pub const MAX_CELLS: usize = 16;

/// The driver's channels and addresses.
pub mod driver {
    /// The device's interrupt.
    pub const IRQ: u8 = 0;
    /// To the receive virtualiser.
    pub const VIRT_RX: u8 = 1;
    /// To the transmit virtualiser.
    pub const VIRT_TX: u8 = 2;
    /// The transport's registers (setvar `regs_vaddr`).
    pub const REGS: u64 = 0x2000_0000;
    /// The DMA pool of virtqueues (setvars `dma_vaddr`, `dma_paddr`).
    pub const DMA: u64 = 0x2100_0000;
    /// Bytes of the DMA pool: two virtqueues of 256 entries.
    pub const DMA_SIZE: u64 = 0x1_0000;
    /// The receive queue pair with the receive virtualiser (the driver
    /// fills buffers: it is the pair's source).
    pub const RX_QUEUES: u64 = 0x2200_0000;
    /// The receive data region (setvar [`RX_DATA_PADDR`]).
    pub const RX_DATA: u64 = 0x2300_0000;
    /// The transmit queue pair (the driver is the pair's sink).
    pub const TX_QUEUES: u64 = 0x2400_0000;
    /// The transmit data region (setvar [`TX_DATA_PADDR`]).
    pub const TX_DATA: u64 = 0x2500_0000;
    /// Symbols patched with the data regions' physical addresses.
    pub const RX_DATA_PADDR: &str = "net_rx_data_paddr";
    pub const TX_DATA_PADDR: &str = "net_tx_data_paddr";
}

/// A virtualiser's channels and addresses (the same for both).
pub mod virt {
    /// To the driver.
    pub const DRIVER: u8 = 0;
    /// The queue pair and data region shared with the driver.
    pub const DRIVER_QUEUES: u64 = 0x2200_0000;
    pub const DRIVER_DATA: u64 = 0x2300_0000;
    /// Client i's queue pair, at `CLIENT_QUEUES + i * QUEUES_SIZE`.
    pub const CLIENT_QUEUES: u64 = 0x2800_0000;
    /// Client i's data region, at `CLIENT_DATA + i * DATA_SIZE`.
    pub const CLIENT_DATA: u64 = 0x3000_0000;
    /// The symbol of the configuration ([`crate::config::Clients`]).
    pub const CONFIG: &str = "net_virt_config";
    /// To the other virtualiser, over the loopback queues (a system with
    /// several clients; [`crate::loopback`]).
    pub const LOOPBACK: u8 = 1 + super::MAX_CLIENTS as u8;
    /// The loopback queue pair (the transmit virtualiser is its source,
    /// the receive virtualiser its sink) and data region (read-write in
    /// the transmit virtualiser, read-only in the receive one).
    pub const LOOPBACK_QUEUES: u64 = 0x2600_0000;
    pub const LOOPBACK_DATA: u64 = 0x2700_0000;

    /// The channel to client `i`.
    pub const fn client_channel(i: usize) -> Option<u8> {
        if i < super::MAX_CLIENTS {
            Some(1 + i as u8)
        } else {
            None
        }
    }

    /// Where client `i`'s queue pair and data region are.
    pub const fn client_queues(i: usize) -> u64 {
        CLIENT_QUEUES + i as u64 * super::QUEUES_SIZE
    }
    pub const fn client_data(i: usize) -> u64 {
        CLIENT_DATA + i as u64 * super::DATA_SIZE
    }
}

/// The stack's channels and addresses.
pub mod stack {
    /// To the receive virtualiser.
    pub const VIRT_RX: u8 = 0;
    /// To the transmit virtualiser.
    pub const VIRT_TX: u8 = 1;
    /// Its receive queue pair and data region (it is the pair's sink).
    pub const RX_QUEUES: u64 = 0x2200_0000;
    pub const RX_DATA: u64 = 0x2300_0000;
    /// Its transmit queue pair and data region (it is the pair's source).
    pub const TX_QUEUES: u64 = 0x2400_0000;
    pub const TX_DATA: u64 = 0x2500_0000;
    /// Cell i's socket region, at `CELLS + i * sockets::REGION_SIZE`.
    pub const CELLS: u64 = 0x4000_0000;
    /// The symbol of the configuration ([`crate::config::Stack`]).
    pub const CONFIG: &str = "net_stack_config";

    /// The channel to cell `i`.
    pub const fn cell_channel(i: usize) -> Option<u8> {
        if i < super::MAX_CELLS {
            Some(2 + i as u8)
        } else {
            None
        }
    }

    /// Where cell `i`'s socket region is.
    pub const fn cell_region(i: usize) -> u64 {
        CELLS + i as u64 * crate::sockets::REGION_SIZE
    }
}

/// What a cell (any PD linking `septa-net-client`) is patched with.
pub mod cell {
    /// Its channel to the stack plus one (0: it is no cell of `[net]`).
    pub const CHANNEL: &str = "septa_net_channel";
    /// Where its socket region is mapped, and its size.
    pub const SOCKETS: &str = "septa_net_sockets";
    pub const SOCKETS_SIZE: &str = "septa_net_sockets_size";
    /// The names of the system's PDs, for a cell that reports on the
    /// system ([`crate::config::PdNames`]).
    pub const PDS: &str = "septa_net_pds";
}
