//! # test-vmm-peek: a VMM that tries to read its guest's memory
//!
//! The production VMM (`vmm`) reads guest memory only where a virtio
//! descriptor points, and only inside what it maps. This test binary is
//! the same VMM with one hook, the hostile VMM of `tests/systems/vm-sealed`:
//! a 32-bit write to the unmapped guest-physical address [`CUE_GPA`]
//! (where no device is) names a guest-physical address, and the VMM reads
//! 32 bytes there through [`RAM_VADDR`], where a Linux cell's VMM maps its
//! guest's RAM, and prints them. In a sealed VM nothing is mapped there
//! (the VMM never had the guest's RAM), so the read faults and the monitor
//! reports it; unsealed, the VMM prints what the guest keeps there.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::println;

/// Where the cue is written: nothing is mapped or emulated there.
const CUE_GPA: u64 = 0x0c00_0000;
/// Where a Linux cell's VMM maps its guest's RAM (unsealed).
const RAM_VADDR: u64 = 0x2_0000_0000;
/// The guest's RAM, guest-physical (`septa_vm_layout::map::RAM_BASE`).
const RAM_BASE: u64 = 0x4000_0000;
/// Guest RAM a Linux cell may have, at most (the board's).
const RAM_MAX: u64 = 1 << 30;
const LEN: usize = 32;

struct PeekOnCue;

impl vmm::Hooks for PeekOnCue {
    fn unhandled_mmio(&mut self, gpa: u64, write: bool, value: u64) {
        if gpa != CUE_GPA || !write {
            return;
        }
        let Some(off) = value
            .checked_sub(RAM_BASE)
            .filter(|o| o + LEN as u64 <= RAM_MAX)
        else {
            println!("peek: {value:#x} is not guest RAM");
            return;
        };
        let at = RAM_VADDR + off;
        println!("peek: reading guest-physical {value:#x} at {at:#x} of the VMM");
        let mut text = [0u8; LEN];
        for (i, t) in text.iter_mut().enumerate() {
            // SAFETY: none, on purpose: this is the hostile read the test
            // is about. In an unsealed VM the guest's RAM is mapped here
            // read-write for the VMM's life (the tool's map); in a sealed
            // one nothing is, and the load faults, which stops this PD
            // before any byte is used. A volatile read of plain bytes has
            // no other effect.
            let b = unsafe { core::ptr::read_volatile((at + i as u64) as *const u8) };
            *t = if b.is_ascii_graphic() { b } else { b'.' };
        }
        println!(
            "peek: guest-physical {value:#x} holds \"{}\"",
            core::str::from_utf8(&text).unwrap_or("?")
        );
    }
}

septa_runtime::protection_domain!(|| vmm::pd::init(PeekOnCue));
