//! The key-value API over HTTP: what a path under `/kv` names, which keys
//! a URL may carry, and what each answer of the store becomes. Portable
//! and host-tested; the calls themselves are `main.rs`'s.
//!
//! | request | answer |
//! |---|---|
//! | `GET /kv/` (or `/kv`) | `200`, JSON: the cell's keys, the bytes they take, its quota |
//! | `GET /kv/KEY` | `200`, the value as `application/octet-stream`; `404` if absent |
//! | `HEAD /kv/KEY` | the same head, no body |
//! | `PUT /kv/KEY` with `Content-Length` | `200` once the store says the value is durable |
//! | `DELETE /kv/KEY` | `200` once durable; `404` if absent |

use core::fmt::Write as _;

use septa_kv_protocol::{KvError, Status, MAX_KEY};
use septa_runtime::ChannelError;

/// The API's root.
pub const ROOT: &str = "/kv";

/// What a path under [`ROOT`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/kv` or `/kv/`: the list.
    List,
    /// `/kv/KEY`, KEY as sent (checked by [`key_error`]).
    Key(&'a [u8]),
}

/// The route of `path`, if it is the API's.
pub fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix(ROOT)?;
    match rest {
        "" | "/" => Some(Route::List),
        _ => rest.strip_prefix('/').map(|k| Route::Key(k.as_bytes())),
    }
}

/// Why `key` cannot be a key here: keys are 1 to [`MAX_KEY`] bytes of
/// URL-safe characters (`A-Z a-z 0-9 . _ - ~`), taken as they are (no
/// percent-decoding), so a key is the same bytes in a URL and in the
/// store. The store may refuse a shorter one still: the cell's
/// namespace and its separator come before it there.
pub fn key_error(key: &[u8]) -> Option<&'static str> {
    if key.is_empty() {
        Some("a key is 1 or more bytes\n")
    } else if key.len() > MAX_KEY {
        Some("the key is longer than the store's 64 bytes\n")
    } else if !key
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b".-_~".contains(b))
    {
        Some("a key is made of A-Z a-z 0-9 . _ - ~ only\n")
    } else {
        None
    }
}

/// What the store's refusal becomes: the status line and a text that says
/// why. `usage` is the namespace's (bytes, quota), for [`Status::Quota`].
pub fn failure(e: KvError, usage: Option<(u64, u64)>) -> (&'static str, heapless::String<200>) {
    let mut t = heapless::String::new();
    let code = match e {
        KvError::Status(Status::NotFound) => {
            let _ = t.push_str("no such key\n");
            "404 Not Found"
        }
        KvError::Status(Status::KeyLength) => {
            let _ = t.push_str("the key is too long for this cell's namespace\n");
            "400 Bad Request"
        }
        KvError::Status(Status::ValueLength) | KvError::Buffer { .. } => {
            let _ = t.push_str("the value is longer than the store's 65536 bytes\n");
            "413 Content Too Large"
        }
        KvError::Status(Status::Quota) => {
            let _ = match usage {
                Some((bytes, quota)) => writeln!(
                    t,
                    "over quota: this cell's namespace may hold {quota} bytes of keys and values, {bytes} are in use; nothing was stored"
                ),
                None => t.write_str("over quota: nothing was stored\n"),
            };
            "507 Insufficient Storage"
        }
        KvError::Status(Status::Full) => {
            let _ = t.push_str("the store is full; nothing was stored\n");
            "507 Insufficient Storage"
        }
        KvError::Status(Status::Corrupt) => {
            let _ =
                t.push_str("the stored value failed its checksum (the store reports the damage)\n");
            "500 Internal Server Error"
        }
        KvError::Status(Status::Unavailable) => {
            let _ = t.push_str(
                "the key-value store is unavailable: it has no disk, or refused the one it has\n",
            );
            "503 Service Unavailable"
        }
        KvError::Status(Status::Io) => {
            let _ = t.push_str("the disk failed the operation; it was not done\n");
            "503 Service Unavailable"
        }
        KvError::Call(ChannelError::ServerFaulted) => {
            let _ = t.push_str("the key-value store faulted during the call; retry\n");
            "503 Service Unavailable"
        }
        KvError::Status(s) => {
            let _ = writeln!(t, "the store answered {s}");
            "500 Internal Server Error"
        }
        KvError::Call(c) => {
            let _ = writeln!(t, "the call to the store failed: {c}");
            "500 Internal Server Error"
        }
    };
    (code, t)
}

/// Writes `key` as a JSON string into `out` at `at`; returns the new end,
/// or `None` if it does not fit.
pub fn json_string(out: &mut [u8], mut at: usize, key: &[u8]) -> Option<usize> {
    let mut put = |bytes: &[u8], at: &mut usize| -> Option<()> {
        out.get_mut(*at..*at + bytes.len())?.copy_from_slice(bytes);
        *at += bytes.len();
        Some(())
    };
    put(b"\"", &mut at)?;
    for &b in key {
        match b {
            b'"' | b'\\' => put(&[b'\\', b], &mut at)?,
            0x20..=0x7e => put(&[b], &mut at)?,
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                put(
                    &[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 15)],
                    ],
                    &mut at,
                )?
            }
        }
    }
    put(b"\"", &mut at)?;
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_the_list_or_a_key() {
        assert_eq!(route("/kv"), Some(Route::List));
        assert_eq!(route("/kv/"), Some(Route::List));
        assert_eq!(route("/kv/name"), Some(Route::Key(b"name")));
        assert_eq!(route("/kv/a/b"), Some(Route::Key(b"a/b")));
        assert_eq!(route("/kvx"), None);
        assert_eq!(route("/api/status"), None);
    }

    #[test]
    fn keys_are_url_safe_bytes_within_the_store_limit() {
        assert_eq!(key_error(b"photo-1.jpg_~"), None);
        assert_eq!(key_error(&[b'k'; 64]), None);
        assert!(key_error(&[b'k'; 65]).is_some());
        assert!(key_error(b"").is_some());
        for bad in [&b"a/b"[..], b"a%20b", b"a?b", b"a b", b"\xff"] {
            assert!(key_error(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_become_http_errors_that_say_why() {
        let (c, t) = failure(KvError::Status(Status::Quota), Some((900, 1024)));
        assert_eq!(c, "507 Insufficient Storage");
        assert!(
            t.contains("1024 bytes") && t.contains("900 are in use"),
            "{t}"
        );
        let code = |e| failure(e, None).0;
        assert_eq!(code(KvError::Status(Status::NotFound)), "404 Not Found");
        assert_eq!(code(KvError::Status(Status::KeyLength)), "400 Bad Request");
        assert_eq!(
            code(KvError::Status(Status::Unavailable)),
            "503 Service Unavailable"
        );
        assert_eq!(
            code(KvError::Call(ChannelError::ServerFaulted)),
            "503 Service Unavailable"
        );
        assert_eq!(
            code(KvError::Status(Status::ValueLength)),
            "413 Content Too Large"
        );
    }

    #[test]
    fn keys_are_json_strings() {
        let mut out = [0u8; 32];
        let n = json_string(&mut out, 0, b"a\"b\\\x01").unwrap();
        assert_eq!(&out[..n], b"\"a\\\"b\\\\\\u0001\"");
        assert_eq!(json_string(&mut out[..3], 0, b"abc"), None);
    }
}
