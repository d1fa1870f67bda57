//! A cell's key-value namespace (`{ kind = "kv", namespace, quota }`):
//! what the tool patches into the key-value cell for each cell client, and
//! how the store confines it.
//!
//! The store keeps a cell's key `K` as `NAMESPACE/K` ([`stored_key`]): the
//! cell never names the prefix and cannot leave it (the namespace has no
//! [`SEPARATOR`]), its `LIST` sees only its own keys with the prefix taken
//! off, and its keys and values together may take at most its quota in
//! bytes ([`charge`]). The wiring beside `septa-kv-protocol`'s:
//! `kv_client_namespace[CH]` (text) and `kv_client_quota[CH]` (bytes) at
//! the store's end CH.

/// The longest namespace.
pub const MAX_NAMESPACE: usize = 16;
/// Between the namespace and the cell's key.
pub const SEPARATOR: u8 = b'/';
/// The store's symbols for a cell client's namespace and quota.
pub const NAMESPACE_SYMBOL: &str = "kv_client_namespace";
pub const QUOTA_SYMBOL: &str = "kv_client_quota";
/// A client's buffer: a page for the key, then the largest value (as
/// `septa-kv-protocol` lays it out; it checks the two agree).
pub const BUFFER_BYTES: usize = 4096 + (64 << 10);

/// Whether `ns` is a namespace: 1..=[`MAX_NAMESPACE`] bytes of `a-z`,
/// `0-9`, `_`, `-`.
pub fn valid_namespace(ns: &[u8]) -> bool {
    !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE
        && ns
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// The key the store keeps for key `key` of namespace `ns`, written into
/// `out`; `None` if it would be longer than `out` (the store's longest
/// key) or `key` is empty.
pub fn stored_key<'a>(ns: &[u8], key: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
    let n = ns.len() + 1 + key.len();
    if key.is_empty() || n > out.len() {
        return None;
    }
    out[..ns.len()].copy_from_slice(ns);
    out[ns.len()] = SEPARATOR;
    out[ns.len() + 1..n].copy_from_slice(key);
    Some(&out[..n])
}

/// The cell's key of a stored key, if it is in namespace `ns`.
pub fn strip<'a>(ns: &[u8], stored: &'a [u8]) -> Option<&'a [u8]> {
    let rest = stored.strip_prefix(ns)?;
    rest.strip_prefix(&[SEPARATOR])
}

/// What one key and its value cost against a quota.
pub fn charge(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_their_namespace() {
        let mut buf = [0u8; 64];
        let k = stored_key(b"app", b"x/y", &mut buf).unwrap();
        assert_eq!(k, b"app/x/y");
        assert_eq!(strip(b"app", k), Some(&b"x/y"[..]));
        // Another namespace's keys, and its prefix without the separator,
        // are not this one's.
        assert_eq!(strip(b"ap", k), None);
        assert_eq!(strip(b"app", b"appx/y"), None);
        assert_eq!(strip(b"app", b"other/app/x"), None);
        // Too long for the store, or empty.
        assert!(stored_key(b"app", &[b'k'; 61], &mut buf).is_none());
        assert!(stored_key(b"app", &[b'k'; 60], &mut buf).is_some());
        assert!(stored_key(b"app", b"", &mut buf).is_none());
    }

    #[test]
    fn namespaces_have_no_separator() {
        assert!(valid_namespace(b"app-1_x"));
        for bad in [&b""[..], b"a/b", b"A", b"a b", &[b'a'; 17]] {
            assert!(!valid_namespace(bad), "{bad:?}");
        }
    }
}
