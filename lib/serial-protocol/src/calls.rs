//! The call protocol: a client makes protected procedure calls on its
//! channel to a driver that serves it alone (`drivers/virtio-console`
//! today).
//!
//! | label | request | reply |
//! |---|---|---|
//! | [`WRITE`] | MR0 = byte count n (at most [`MAX_BYTES`]), MR1.. = the bytes | label [`OK`], MR0 = n, once the device has taken them |
//! | [`READ`] | none | label [`OK`], MR0 = n, MR1.. = up to [`MAX_BYTES`] bytes of input (n = 0: none waiting) |
//!
//! Any other request gets label [`ERROR`]. The driver notifies the client
//! when input arrives; the client then reads until a reply holds no bytes.
//! Bytes are packed eight to a message register, little-endian, so a call
//! moves at most [`MAX_BYTES`].

/// Request labels.
pub const WRITE: u64 = 1;
pub const READ: u64 = 2;
/// Reply labels.
pub const OK: u64 = 0;
pub const ERROR: u64 = 1;

/// Message registers of a message (seL4's `seL4_MsgMaxLength`).
pub const MESSAGE_REGISTERS: usize = septa_abi::ipc_buffer::MSG_MAX_LENGTH;
/// Bytes one call carries: every register but the count.
pub const MAX_BYTES: usize = (MESSAGE_REGISTERS - 1) * WORD;

const WORD: usize = core::mem::size_of::<u64>();

/// Message registers that `n` bytes take after the count.
pub const fn words(n: usize) -> usize {
    n.div_ceil(WORD)
}

/// Packs `bytes` (at most [`MAX_BYTES`]) into registers 1.., through `set`;
/// returns the number of registers used, count included.
pub fn pack(bytes: &[u8], mut set: impl FnMut(usize, u64)) -> usize {
    let n = bytes.len().min(MAX_BYTES);
    set(0, n as u64);
    for (i, chunk) in bytes[..n].chunks(WORD).enumerate() {
        let mut w = [0u8; WORD];
        w[..chunk.len()].copy_from_slice(chunk);
        set(1 + i, u64::from_le_bytes(w));
    }
    1 + words(n)
}

/// Unpacks a message packed by [`pack`] into `out`, reading registers
/// through `get`; returns the bytes, or `None` if the count is larger than
/// `out` or than a message holds.
pub fn unpack(out: &mut [u8], get: impl Fn(usize) -> u64) -> Option<&[u8]> {
    let n = usize::try_from(get(0)).ok()?;
    if n > MAX_BYTES || n > out.len() {
        return None;
    }
    for i in 0..words(n) {
        let w = get(1 + i).to_le_bytes();
        let at = i * WORD;
        let len = WORD.min(n - at);
        out[at..at + len].copy_from_slice(&w[..len]);
    }
    Some(&out[..n])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn bytes_survive_a_round_trip_at_every_length() {
        for n in [0, 1, 7, 8, 9, 100, MAX_BYTES] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut mrs = [0u64; MESSAGE_REGISTERS];
            let used = pack(&data, |i, v| mrs[i] = v);
            assert_eq!(used, 1 + words(n));
            let mut out = [0u8; MAX_BYTES];
            assert_eq!(unpack(&mut out, |i| mrs[i]), Some(&data[..]));
        }
    }

    #[test]
    fn packing_is_little_endian_and_cut_at_the_maximum() {
        let mut mrs = [0u64; MESSAGE_REGISTERS];
        pack(b"ABCDEFGHI", |i, v| mrs[i] = v);
        assert_eq!(
            mrs[..3],
            [9, u64::from_le_bytes(*b"ABCDEFGH"), u64::from(b'I')]
        );
        let long = [b'x'; MAX_BYTES + 10];
        let used = pack(&long, |i, v| mrs[i] = v);
        assert_eq!((used, mrs[0]), (MESSAGE_REGISTERS, MAX_BYTES as u64));
    }

    #[test]
    fn counts_too_large_are_refused() {
        let mut out = [0u8; 4];
        assert_eq!(unpack(&mut out, |i| if i == 0 { 5 } else { 0 }), None);
        let mut big = [0u8; MAX_BYTES + 8];
        let n = (MAX_BYTES + 1) as u64;
        assert_eq!(unpack(&mut big, |i| if i == 0 { n } else { 0 }), None);
    }
}
