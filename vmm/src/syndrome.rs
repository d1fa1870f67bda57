//! The exception syndrome (ESR_EL2) of a guest's trap, decoded, and the
//! syndromes the VMM writes into ESR_EL1 when it injects an exception.
//!
//! Layout (Arm ARM D17.2.37, ESR_ELx): EC bits 31:26, IL bit 25, ISS bits
//! 24:0. For a data abort (EC 0x24 from a lower level) the ISS is
//!
//! | bits | field | meaning |
//! |---|---|---|
//! | 24 | ISV | bits 23:14 hold a valid instruction syndrome |
//! | 23:22 | SAS | access size: byte, halfword, word, doubleword |
//! | 21 | SSE | a load sign-extends |
//! | 20:16 | SRT | the register transferred (31: xzr) |
//! | 15 | SF | the register is 64 bits wide (else 32: Wt) |
//! | 14 | AR | acquire/release semantics |
//! | 10 | FnV | FAR is not valid |
//! | 8 | CM | a cache maintenance instruction |
//! | 7 | S1PTW | the fault came from a stage 1 table walk |
//! | 6 | WnR | a write |
//! | 5:0 | DFSC | fault status |
//!
//! Without ISV (load/store pair, writeback forms, SIMD registers) the VMM
//! cannot tell which register to move, and answers with an abort.

/// Exception classes the VMM meets (ESR EC field).
pub mod ec {
    pub const UNKNOWN: u32 = 0x00;
    pub const WFX: u32 = 0x01;
    pub const HVC64: u32 = 0x16;
    pub const SMC64: u32 = 0x17;
    pub const SYSREG: u32 = 0x18;
    pub const IABT_LOWER: u32 = 0x20;
    pub const IABT_SAME: u32 = 0x21;
    pub const DABT_LOWER: u32 = 0x24;
    pub const DABT_SAME: u32 = 0x25;
}

const EC_SHIFT: u32 = 26;
const IL: u64 = 1 << 25;
const ISV: u64 = 1 << 24;
const SSE: u64 = 1 << 21;
const SF: u64 = 1 << 15;
const FNV: u64 = 1 << 10;
const CM: u64 = 1 << 8;
const S1PTW: u64 = 1 << 7;
const WNR: u64 = 1 << 6;
/// Fault status "synchronous External abort, not on a translation table
/// walk" (DFSC/IFSC 0b010000).
const FSC_SEA: u64 = 0x10;

/// The exception class of a syndrome.
pub const fn class(esr: u64) -> u32 {
    ((esr >> EC_SHIFT) & 0x3f) as u32
}

/// One guest load or store, as the syndrome describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Bytes moved: 1, 2, 4 or 8.
    pub size: u8,
    pub write: bool,
    /// The general-purpose register (0..=30; 31 is xzr).
    pub reg: u8,
    /// A load sign-extends the value.
    pub sign_extend: bool,
    /// The register is Xt (64 bits), else Wt.
    pub wide: bool,
}

/// Why a data abort cannot be emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undecodable {
    /// No valid instruction syndrome (ISV clear).
    NoSyndrome,
    /// The fault is on the guest's own page table walk.
    TableWalk,
    /// A cache maintenance instruction, not a load or store.
    CacheMaintenance,
}

impl Access {
    /// Decodes the ISS of a data abort.
    pub fn decode(esr: u64) -> Result<Access, Undecodable> {
        if esr & S1PTW != 0 {
            return Err(Undecodable::TableWalk);
        }
        if esr & CM != 0 {
            return Err(Undecodable::CacheMaintenance);
        }
        if esr & ISV == 0 {
            return Err(Undecodable::NoSyndrome);
        }
        Ok(Access {
            size: 1 << ((esr >> 22) & 3),
            write: esr & WNR != 0,
            reg: ((esr >> 16) & 0x1f) as u8,
            sign_extend: esr & SSE != 0,
            wide: esr & SF != 0,
        })
    }

    /// The register value a store writes: the low `size` bytes.
    pub fn store_value(&self, reg_value: u64) -> u64 {
        reg_value & self.mask()
    }

    /// What a load puts in its register, from the `size` bytes read:
    /// sign-extended if asked, to 64 bits (Xt) or to 32 with the upper half
    /// zero (Wt).
    pub fn load_value(&self, data: u64) -> u64 {
        let data = data & self.mask();
        let bits = u32::from(self.size) * 8;
        let v = if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            (((data << shift) as i64) >> shift) as u64
        } else {
            data
        };
        if self.wide {
            v
        } else {
            v & 0xffff_ffff
        }
    }

    fn mask(&self) -> u64 {
        if self.size >= 8 {
            u64::MAX
        } else {
            (1u64 << (u32::from(self.size) * 8)) - 1
        }
    }
}

/// Where the guest was when it trapped, from its saved PSTATE (SPSR_EL2):
/// which vector of VBAR_EL1 an exception taken to EL1 enters, and whether
/// it comes from a lower level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// EL1 on SP_EL0 (vector offset 0x000).
    El1Sp0,
    /// EL1 on SP_EL1 (0x200).
    El1SpX,
    /// EL0, AArch64 (0x400).
    El0A64,
    /// EL0, AArch32 (0x600).
    El0A32,
}

/// PSTATE of a guest entering its EL1 exception vector: EL1h, with D, A, I
/// and F masked.
pub const PSTATE_EL1H_MASKED: u64 = 0x3c5;

impl Origin {
    pub fn from_spsr(spsr: u64) -> Origin {
        if spsr & 0x10 != 0 {
            return Origin::El0A32;
        }
        match spsr & 0xf {
            0b0100 => Origin::El1Sp0,
            0b0101 => Origin::El1SpX,
            // EL0t, and anything else an EL1 guest could not be in.
            _ => Origin::El0A64,
        }
    }

    /// Offset of the synchronous exception vector.
    pub fn vector(self) -> u64 {
        match self {
            Origin::El1Sp0 => 0x000,
            Origin::El1SpX => 0x200,
            Origin::El0A64 => 0x400,
            Origin::El0A32 => 0x600,
        }
    }

    fn lower(self) -> bool {
        matches!(self, Origin::El0A64 | Origin::El0A32)
    }
}

/// ESR_EL1 of a synchronous external abort on a data access the VMM does
/// not emulate. FAR_EL1 is marked not valid: the VMM knows the
/// guest-physical address, not the virtual one.
pub fn data_abort(origin: Origin, write: bool) -> u64 {
    let ec = if origin.lower() {
        ec::DABT_LOWER
    } else {
        ec::DABT_SAME
    };
    (u64::from(ec) << EC_SHIFT) | IL | FNV | if write { WNR } else { 0 } | FSC_SEA
}

/// ESR_EL1 of a synchronous external abort on an instruction fetch (FAR_EL1
/// is the faulting PC, so it is valid).
pub fn instruction_abort(origin: Origin) -> u64 {
    let ec = if origin.lower() {
        ec::IABT_LOWER
    } else {
        ec::IABT_SAME
    };
    (u64::from(ec) << EC_SHIFT) | IL | FSC_SEA
}

/// ESR_EL1 of an undefined instruction (exception class "unknown").
pub fn undefined() -> u64 {
    (u64::from(ec::UNKNOWN) << EC_SHIFT) | IL
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data abort syndrome from a lower level with these fields.
    fn dabt(size_log2: u64, write: bool, reg: u64, sse: bool, sf: bool) -> u64 {
        0x24 << 26
            | IL
            | ISV
            | size_log2 << 22
            | if sse { SSE } else { 0 }
            | reg << 16
            | if sf { SF } else { 0 }
            | if write { WNR } else { 0 }
            | 0x07 // translation fault, level 3
    }

    #[test]
    fn loads_and_stores_decode_from_the_syndrome() {
        // `ldr w3, [x0]`
        let a = Access::decode(dabt(2, false, 3, false, false)).unwrap();
        assert_eq!(
            a,
            Access {
                size: 4,
                write: false,
                reg: 3,
                sign_extend: false,
                wide: false
            }
        );
        // `strb w21, [x1]`
        let a = Access::decode(dabt(0, true, 21, false, false)).unwrap();
        assert_eq!((a.size, a.write, a.reg), (1, true, 21));
        // `str xzr, [x2]`
        let a = Access::decode(dabt(3, true, 31, false, true)).unwrap();
        assert_eq!((a.size, a.reg, a.wide), (8, 31, true));
        assert_eq!(class(dabt(3, true, 31, false, true)), ec::DABT_LOWER);
    }

    #[test]
    fn what_cannot_be_emulated_says_why() {
        let no_isv = 0x24 << 26 | IL | WNR | 0x07;
        assert_eq!(Access::decode(no_isv), Err(Undecodable::NoSyndrome));
        assert_eq!(
            Access::decode(dabt(2, false, 0, false, false) | S1PTW),
            Err(Undecodable::TableWalk)
        );
        assert_eq!(
            Access::decode(dabt(2, true, 0, false, false) | CM),
            Err(Undecodable::CacheMaintenance)
        );
    }

    #[test]
    fn loads_extend_as_the_register_width_says() {
        let ld = |size, sse, wide| Access {
            size,
            write: false,
            reg: 0,
            sign_extend: sse,
            wide,
        };
        // ldrsb x0: 0x80 -> -128 in 64 bits
        assert_eq!(ld(1, true, true).load_value(0x80), 0xffff_ffff_ffff_ff80);
        // ldrsb w0: -128 in 32 bits, upper half zero
        assert_eq!(ld(1, true, false).load_value(0x80), 0xffff_ff80);
        // ldrsh x0 of a positive value stays positive
        assert_eq!(ld(2, true, true).load_value(0x7fff), 0x7fff);
        // ldrsw x0
        assert_eq!(
            ld(4, true, true).load_value(0x8000_0000),
            0xffff_ffff_8000_0000
        );
        // ldrb w0 ignores bytes past the access
        assert_eq!(ld(1, false, false).load_value(0x1234), 0x34);
        // ldr x0
        assert_eq!(ld(8, false, true).load_value(u64::MAX), u64::MAX);
        // a store takes the low bytes of the register
        let st = Access {
            write: true,
            ..ld(2, false, false)
        };
        assert_eq!(st.store_value(0xdead_beef), 0xbeef);
    }

    #[test]
    fn exceptions_enter_the_vector_of_where_the_guest_was() {
        assert_eq!(Origin::from_spsr(0x3c5), Origin::El1SpX);
        assert_eq!(Origin::from_spsr(0x3c4), Origin::El1Sp0);
        assert_eq!(Origin::from_spsr(0x0), Origin::El0A64);
        assert_eq!(Origin::from_spsr(0x10), Origin::El0A32);
        assert_eq!(Origin::El0A64.vector(), 0x400);
        assert_eq!(Origin::El1SpX.vector(), 0x200);
        // A store from user space: data abort from a lower level, WnR,
        // FnV, synchronous external abort.
        assert_eq!(data_abort(Origin::El0A64, true), 0x9200_0450);
        assert_eq!(data_abort(Origin::El1SpX, false), 0x9600_0410);
        assert_eq!(instruction_abort(Origin::El1SpX), 0x8600_0010);
        assert_eq!(undefined(), 0x0200_0000);
    }
}
