//! # virtio-console: a driver PD for a virtio console, and its client protocol
//!
//! The binary (`src/main.rs`) is the driver: it owns one virtio console on a
//! virtio-mmio transport (modern interface), its interrupt (channel
//! [`protocol::IRQ`]) and a DMA region, and serves one client on channel
//! [`protocol::CLIENT`]. This library is what both sides share, without
//! unsafe code and tested on the host: the protocol ([`protocol`]) and the
//! arithmetic of the DMA pool ([`pool`]).
//!
//! What the driver owns: the device's registers and queues, the DMA region.
//! What it must not touch: anything else; it makes no policy (what input
//! means is the client's business).
//!
//! ## Wiring (system.toml)
//!
//! ```toml
//! [pd.console]
//! program = "virtio-console"
//! priority = 200                 # above its client, which calls it
//! maps = [
//!     { region = "console_regs", vaddr = 0x2000_0000, cached = false, setvar_device = "regs_vaddr" },
//!     { region = "console_dma", vaddr = 0x2100_0000, setvar_vaddr = "dma_vaddr", setvar_size = "dma_size" },
//! ]
//! irqs = [{ device = "console", id = 0 }]
//! setvars = [{ symbol = "dma_paddr", region = "console_dma" }]
//!
//! [region.console_regs]
//! device = "console"
//!
//! [region.console_dma]
//! size = "64 KiB"
//!
//! [[virtio]]
//! name = "console"
//! kind = "console"
//!
//! [[channel]]
//! a = { pd = "client", id = 0, pp = true }
//! b = { pd = "console", id = 1 }
//! ```
#![no_std]
#![forbid(unsafe_code)]

pub mod pool;
pub mod protocol;
