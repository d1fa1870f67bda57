//! Just enough of a flattened device tree reader (Devicetree Specification
//! 0.4, chapter 5) for the VMM to check the tree it loads: the header, and
//! the `/chosen` properties that must agree with where the VMM puts the
//! initrd. Every offset is checked; a malformed tree is an error, never a
//! panic.

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FdtError {
    #[error("too short for a device tree header")]
    TooShort,
    #[error("no device tree magic (found {0:#010x})")]
    BadMagic(u32),
    #[error("its header says {total} bytes but {len} are there")]
    Truncated { total: usize, len: usize },
    #[error("its structure block is malformed at byte {0}")]
    Malformed(usize),
}

fn be32(b: &[u8], at: usize) -> Result<u32, FdtError> {
    b.get(at..at + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .ok_or(FdtError::Malformed(at))
}

/// Checks the header; returns the tree's size.
pub fn check(b: &[u8]) -> Result<usize, FdtError> {
    if b.len() < HEADER_LEN {
        return Err(FdtError::TooShort);
    }
    let magic = be32(b, 0)?;
    if magic != MAGIC {
        return Err(FdtError::BadMagic(magic));
    }
    let total = be32(b, 4)? as usize;
    if total > b.len() || total < HEADER_LEN {
        return Err(FdtError::Truncated {
            total,
            len: b.len(),
        });
    }
    Ok(total)
}

/// The value of property `name` of the node `/chosen`, read as a 32- or
/// 64-bit big-endian number; `None` if there is no such property.
pub fn chosen_number(b: &[u8], name: &str) -> Result<Option<u64>, FdtError> {
    let total = check(b)?;
    let b = &b[..total];
    let structs = be32(b, 8)? as usize;
    let strings = be32(b, 12)? as usize;
    let mut at = structs;
    // Depth of the node we are in (0: outside the root), and whether the
    // node at depth 2 we are in is `chosen`.
    let mut depth = 0usize;
    let mut in_chosen = false;
    loop {
        let token = be32(b, at)?;
        at += 4;
        match token {
            BEGIN_NODE => {
                let rest = b.get(at..).ok_or(FdtError::Malformed(at))?;
                let len = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or(FdtError::Malformed(at))?;
                depth += 1;
                if depth == 2 {
                    in_chosen = &rest[..len] == b"chosen";
                }
                at += (len + 1).next_multiple_of(4);
            }
            END_NODE => {
                if depth == 0 {
                    return Err(FdtError::Malformed(at - 4));
                }
                if depth == 2 {
                    in_chosen = false;
                }
                depth -= 1;
            }
            PROP => {
                let len = be32(b, at)? as usize;
                let nameoff = be32(b, at + 4)? as usize;
                let value = at + 8;
                let end = value.checked_add(len).ok_or(FdtError::Malformed(at))?;
                let bytes = b.get(value..end).ok_or(FdtError::Malformed(at))?;
                if in_chosen && depth == 2 {
                    let s = b.get(strings + nameoff..).ok_or(FdtError::Malformed(at))?;
                    let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                    if &s[..n] == name.as_bytes() {
                        return Ok(match len {
                            4 => Some(u64::from(be32(bytes, 0)?)),
                            8 => Some(
                                (u64::from(be32(bytes, 0)?) << 32) | u64::from(be32(bytes, 4)?),
                            ),
                            _ => return Err(FdtError::Malformed(at)),
                        });
                    }
                }
                at = value + len.next_multiple_of(4);
            }
            NOP => {}
            END => return Ok(None),
            _ => return Err(FdtError::Malformed(at - 4)),
        }
    }
}

/// A tree `/ { chosen { PROPS } }`, for tests.
#[cfg(test)]
pub(crate) fn tree_with_chosen(props: &[(&str, &[u8])]) -> std::vec::Vec<u8> {
    use std::vec::Vec;
    let w = |s: &mut Vec<u8>, v: u32| s.extend_from_slice(&v.to_be_bytes());
    let mut strings = Vec::new();
    let mut s = Vec::new();
    w(&mut s, BEGIN_NODE);
    s.extend_from_slice(&[0, 0, 0, 0]);
    w(&mut s, BEGIN_NODE);
    s.extend_from_slice(b"chosen\0\0");
    for (name, value) in props {
        w(&mut s, PROP);
        w(&mut s, value.len() as u32);
        w(&mut s, strings.len() as u32);
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        s.extend_from_slice(value);
        s.resize(s.len().next_multiple_of(4), 0);
        w(&mut s, NOP);
    }
    w(&mut s, END_NODE);
    w(&mut s, END_NODE);
    w(&mut s, END);
    let structs = HEADER_LEN as u32;
    let strs = structs + s.len() as u32;
    let total = strs + strings.len() as u32;
    let mut b = Vec::new();
    for v in [
        MAGIC,
        total,
        structs,
        strs,
        0,
        17,
        16,
        0,
        strings.len() as u32,
        s.len() as u32,
    ] {
        w(&mut b, v);
    }
    b.extend_from_slice(&s);
    b.extend_from_slice(&strings);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn tree() -> Vec<u8> {
        tree_with_chosen(&[
            ("linux,initrd-start", &0x41e0_0000u64.to_be_bytes()),
            ("x", &7u32.to_be_bytes()),
        ])
    }

    #[test]
    fn chosen_properties_are_found() {
        let t = tree();
        assert_eq!(check(&t), Ok(t.len()));
        assert_eq!(
            chosen_number(&t, "linux,initrd-start"),
            Ok(Some(0x41e0_0000))
        );
        assert_eq!(chosen_number(&t, "x"), Ok(Some(7)));
        assert_eq!(chosen_number(&t, "linux,initrd-end"), Ok(None));
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let t = tree();
        assert_eq!(check(&t[..10]), Err(FdtError::TooShort));
        let mut bad = t.clone();
        bad[0] = 0;
        assert!(matches!(check(&bad), Err(FdtError::BadMagic(_))));
        assert!(matches!(
            check(&t[..t.len() - 1]),
            Err(FdtError::Truncated { .. })
        ));
        // Every single-byte corruption of the structure block either still
        // reads or says where it broke.
        for i in HEADER_LEN..t.len() {
            for v in [0u8, 0xff, 3, 9] {
                let mut c = t.clone();
                c[i] = v;
                let _ = chosen_number(&c, "linux,initrd-start");
            }
        }
    }
}
