//! A writer of the "newc" cpio format (the SVR4 portable format without
//! checksums), which is what Linux unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Written here rather than taken from a crate: the format is a 110-byte
//! ASCII header, the name and the data, each padded to four bytes, and an
//! initramfs needs files, folders, symbolic links and a device node with
//! chosen owners and times, which the cpio crates either lack (no device
//! nodes, owners taken from the host file) or bury under reading support
//! this tool has no use for. Every field is set by the caller or fixed
//! (owner root, time 0), so the same inputs give the same bytes.
//!
//! ```text
//! "070701"  then 13 fields of 8 lowercase hex digits:
//! ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
//! name, NUL, padding to 4;  data, padding to 4
//! ... the last entry is named "TRAILER!!!"
//! ```

use std::io::{self, Write};

pub const MAGIC: &str = "070701";
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `mode` (`S_IFMT` and friends).
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Why an entry cannot go into the archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio entry name {0:?} must be relative, without `..`, empty parts or NUL")]
    BadName(String),
    #[error("cpio entry {name:?}: {len} bytes does not fit the format's 32-bit size")]
    TooLarge { name: String, len: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub struct Writer<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        self.entry(name, S_IFDIR | perm, 2, (0, 0), b"")
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    pub fn char_device(
        &mut self,
        name: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), b"")
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.header(0, 0, 1, (0, 0), 0, TRAILER)?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let bad = name.is_empty()
            || name.starts_with('/')
            || name.contains('\0')
            || name.split('/').any(|p| p.is_empty() || p == "..")
            || name == TRAILER;
        if bad {
            return Err(CpioError::BadName(name.to_string()));
        }
        let len = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            name: name.to_string(),
            len: data.len(),
        })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(ino, mode, nlink, rdev, len, name)?;
        self.put(data)?;
        self.pad()
    }

    fn header(
        &mut self,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        filesize: u32,
        name: &str,
    ) -> Result<(), CpioError> {
        let namesize = name.len() as u32 + 1;
        let fields = [
            ino, mode, 0, 0, nlink, 0, filesize, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let mut h = String::with_capacity(110);
        h.push_str(MAGIC);
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(b"\0")?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fields: [u32; 13]) -> String {
        let mut h = String::from(MAGIC);
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        h
    }

    #[test]
    fn entries_are_byte_exact() {
        let mut w = Writer::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        let got = w.finish().unwrap();

        let mut want = Vec::new();
        // 110-byte header + "bin\0" = 114, padded to 116.
        want.extend(header([1, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0]).bytes());
        want.extend(b"bin\0\0\0");
        // 110 + "init\0" = 115 -> 116; 10 bytes of data -> 12.
        want.extend(header([2, 0o100755, 0, 0, 1, 0, 10, 0, 0, 0, 0, 5, 0]).bytes());
        want.extend(b"init\0\0");
        want.extend(b"#!/bin/sh\n\0\0");
        // 110 + "bin/sh\0" = 117 -> 120; "busybox" 7 -> 8.
        want.extend(header([3, 0o120777, 0, 0, 1, 0, 7, 0, 0, 0, 0, 7, 0]).bytes());
        want.extend(b"bin/sh\0\0\0\0");
        want.extend(b"busybox\0");
        // 110 + "dev/console\0" = 122 -> 124.
        want.extend(header([4, 0o20600, 0, 0, 1, 0, 0, 0, 0, 5, 1, 12, 0]).bytes());
        want.extend(b"dev/console\0\0\0");
        // The trailer: 110 + "TRAILER!!!\0" = 121 -> 124.
        want.extend(header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0]).bytes());
        want.extend(b"TRAILER!!!\0\0\0\0");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(got.len() % 4, 0);
    }

    #[test]
    fn the_header_is_110_bytes() {
        let mut w = Writer::new(Vec::new());
        w.file("a", 0o644, b"").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..118], b"070701");
    }

    #[test]
    fn unsafe_names_are_refused() {
        let mut w = Writer::new(Vec::new());
        for name in ["", "/etc", "a/../b", "a//b", "x\0y", "TRAILER!!!"] {
            assert!(
                matches!(w.file(name, 0o644, b""), Err(CpioError::BadName(_))),
                "{name:?}"
            );
        }
    }
}
