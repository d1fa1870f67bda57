//! # septa-vm-layout: what a Linux guest sees of its virtual machine
//!
//! One place for the facts the host tool (which writes the guest's device
//! tree and builds its initramfs) and the VMM PD (which loads the guest and
//! emulates its devices) must agree on:
//!
//! - [`map`]: guest-physical addresses and interrupt numbers of everything
//!   the VMM emulates or maps for the guest (RAM, the GICv2 distributor and
//!   CPU interface, the PL011 console, the virtio-mmio transports, the
//!   architected timer's PPIs, PSCI's conduit);
//! - [`image`]: the arm64 Linux `Image` header (magic, text offset, image
//!   size, flags), checked with a clear error for a bad image;
//! - [`place`]: where kernel, device tree and initrd go in guest RAM, so
//!   that the tool can write `/chosen/linux,initrd-*` for the very addresses
//!   the VMM will load the initrd at.
//!
//! Owns: numbers and pure functions over byte slices. Must not: touch memory,
//! devices or the host; it is `no_std` with no allocation, for the VMM.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod image;
pub mod map;
pub mod place;

pub use image::{ImageError, ImageHeader, PageSize};
pub use place::{place, PlaceError, Placement};
