//! The guest's initramfs: busybox, the kernel modules its devices need,
//! and an `/init` that prints [`super::INIT_MARKER`] and starts a shell on
//! the console.
//!
//! ```text
//! /init                          the script below
//! /bin/busybox                   from busybox-static (static, arm64)
//! /bin/sh, /bin/mount, ...       links to busybox for what /init runs before
//!                                `busybox --install -s` links every other applet
//! /dev/console                   char 5:1, so the kernel can give init a console
//! /lib/modules/RELEASE/NAME.ko   the modules, loaded by /init in dependency order
//! /bin/septa-*                   the tool's own programs ([`super::programs`])
//! /lib/modules/septa/            the hostile test module ([`super::module`]), not loaded
//! /proc /sys /tmp /root ...      mount points and folders
//! ```
//!
//! The archive is a newc cpio ([`super::cpio`]) compressed with gzip, both
//! deterministic (times and owners fixed), so the same packages and
//! devices give the same bytes.

use std::io::Write;
use std::path::PathBuf;

use miette::{IntoDiagnostic, Result, WrapErr};

use super::cpio::Writer;
use super::INIT_MARKER;

/// The busybox applets `/init` runs before it has linked the others.
const EARLY_APPLETS: &[&str] = &["sh", "mount", "insmod", "echo", "setsid", "cttyhack"];

/// What goes into one initramfs.
pub struct Contents {
    /// The busybox binary.
    pub busybox: Vec<u8>,
    /// The kernel's `uname -r`.
    pub release: String,
    /// Modules in load order: (name, file).
    pub modules: Vec<(String, PathBuf)>,
    /// The hostile test module ([`super::module`]), if the kernel package
    /// has the module it is modelled on; never loaded by `/init`.
    pub hostile: Option<Vec<u8>>,
}

/// Where busybox's `udhcpc` looks for the script that applies a lease
/// (Debian's build: the string is in its `busybox`).
pub const UDHCPC_SCRIPT_PATH: &str = "etc/udhcpc/default.script";

/// That script: `udhcpc` runs it with the event and the lease in its
/// environment; it sets the interface's address, the default route and
/// the name servers with busybox's `ifconfig` and `route`, and says so on
/// the console (`septa-guest: eth0 has 10.0.2.16`).
pub const UDHCPC_SCRIPT: &str = "#!/bin/sh\n\
# Written by septa (tools/septa/src/guest/initramfs.rs): applies udhcpc's lease.\n\
case \"$1\" in\n\
deconfig)\n\
    ifconfig \"$interface\" 0.0.0.0 up\n\
    ;;\n\
bound|renew)\n\
    ifconfig \"$interface\" \"$ip\" netmask \"${subnet:-255.255.255.0}\" up\n\
    if [ -n \"$router\" ]; then\n\
        while route del default dev \"$interface\" 2>/dev/null; do :; done\n\
        set -- $router\n\
        route add default gw \"$1\" dev \"$interface\"\n\
    fi\n\
    : > /etc/resolv.conf\n\
    for d in $dns; do echo \"nameserver $d\" >> /etc/resolv.conf; done\n\
    echo \"septa-guest: $interface has $ip\"\n\
    ;;\n\
esac\n";

/// What `/init` does, in the background beside the shell, when the
/// kernel's command line asks (the kernel gives `/init` the parameters it
/// does not know as environment variables): `septa_dhcp=ADDRESS` brings
/// `eth0` up and asks DHCP for ADDRESS (the lease is said on the console,
/// [`UDHCPC_SCRIPT`]); then `septa_httpd=PORT` serves a page from `/www`
/// with busybox `httpd` on PORT and says `septa-guest: httpd on port
/// PORT`; then `septa_get=URL` fetches URL with busybox `wget` (once a
/// second for up to 30 s, while the server may still be starting) and says
/// `septa-guest: URL answers` (or `does not answer`): the default system's
/// guest so reaches the native HTTP cell across the virtualisers' switch.
/// Without them, nothing.
pub const NET_ON_BOOT: &str = "if [ -n \"$septa_dhcp\" ]; then\n\
    (ifconfig eth0 up && udhcpc -i eth0 -r \"$septa_dhcp\" -n -q -t 10 &&\n\
     if [ -n \"$septa_httpd\" ]; then\n\
         mkdir -p /www && echo \"hello from the Linux cell: $(uname -sr)\" > /www/index.html &&\n\
         httpd -p \"$septa_httpd\" -h /www && echo \"septa-guest: httpd on port $septa_httpd\"\n\
     fi &&\n\
     if [ -n \"$septa_get\" ]; then\n\
         n=0; until wget -q -O - \"$septa_get\" 2>/dev/null | grep -q .; do\n\
             n=$((n + 1)); [ $n -ge 30 ] && break; sleep 1\n\
         done\n\
         if [ $n -lt 30 ]; then echo \"septa-guest: $septa_get answers\"\n\
         else echo \"septa-guest: $septa_get does not answer\"; fi\n\
     fi) &\n\
fi\n";

/// The `/init` script for `modules` of kernel `release`.
pub fn init_script(release: &str, modules: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # Written by septa (tools/septa/src/guest/initramfs.rs).\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         /bin/busybox --install -s\n",
    );
    for m in modules {
        s.push_str(&format!(
            "insmod /lib/modules/{release}/{m}.ko || echo \"septa-guest: cannot load {m}\"\n"
        ));
    }
    // The console the kernel gave /init is the one it had at boot: none
    // when it is a virtio console (`console=hvc0`), whose driver is one
    // of the modules just loaded. Open it again now that it is there.
    s.push_str("(: <>/dev/console) 2>/dev/null && exec <>/dev/console >&0 2>&0\n");
    // Into the kernel log too, where its timestamp is the guest's clock
    // at the marker (`dmesg` shows it).
    s.push_str(&format!("echo \"{INIT_MARKER}\" > /dev/kmsg\n"));
    s.push_str(&format!("echo \"{INIT_MARKER}\"\n"));
    s.push_str(NET_ON_BOOT);
    // cttyhack gives the shell the console as its controlling terminal, so
    // that Ctrl-C works; setsid makes it a session leader first.
    s.push_str("exec setsid cttyhack /bin/sh\n");
    s
}

/// The uncompressed cpio archive.
pub fn cpio(c: &Contents) -> Result<Vec<u8>> {
    let mut w = Writer::new(Vec::new());
    let err = |e| miette::miette!("building the initramfs: {e}");
    for d in [
        "bin",
        "dev",
        "etc",
        "lib",
        "proc",
        "root",
        "sbin",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc/udhcpc",
        "lib/modules",
    ] {
        w.dir(d, 0o755).map_err(err)?;
    }
    w.char_device("dev/console", 0o600, 5, 1).map_err(err)?;
    w.file("bin/busybox", 0o755, &c.busybox).map_err(err)?;
    for a in EARLY_APPLETS {
        w.symlink(&format!("bin/{a}"), "busybox").map_err(err)?;
    }
    let dir = format!("lib/modules/{}", c.release);
    w.dir(&dir, 0o755).map_err(err)?;
    for (name, path) in &c.modules {
        let data = std::fs::read(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {}", path.display()))?;
        w.file(&format!("{dir}/{name}.ko"), 0o644, &data)
            .map_err(err)?;
    }
    w.file(UDHCPC_SCRIPT_PATH, 0o755, UDHCPC_SCRIPT.as_bytes())
        .map_err(err)?;
    w.file("bin/septa-mmio-loop", 0o755, &super::programs::mmio_loop())
        .map_err(err)?;
    if let Some(m) = &c.hostile {
        w.dir("lib/modules/septa", 0o755).map_err(err)?;
        w.file(super::module::PATH, 0o644, m).map_err(err)?;
    }
    let names: Vec<String> = c.modules.iter().map(|(n, _)| n.clone()).collect();
    w.file("init", 0o755, init_script(&c.release, &names).as_bytes())
        .map_err(err)?;
    w.finish().map_err(err)
}

/// The gzip-compressed archive.
pub fn build(c: &Contents) -> Result<Vec<u8>> {
    let raw = cpio(c)?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).into_diagnostic()?;
    gz.finish().into_diagnostic()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_loads_modules_in_order_then_prints_the_marker() {
        let s = init_script(
            "6.1.0-57-cloud-arm64",
            &["virtio_ring".into(), "virtio".into()],
        );
        let ring = s
            .find("insmod /lib/modules/6.1.0-57-cloud-arm64/virtio_ring.ko")
            .unwrap();
        let virtio = s.find("/virtio.ko").unwrap();
        let marker = s.find(INIT_MARKER).unwrap();
        assert!(ring < virtio && virtio < marker);
        assert!(marker < s.find("septa_dhcp").unwrap());
        assert!(s.find("septa_httpd").unwrap() < s.find("septa_get").unwrap());
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.ends_with("exec setsid cttyhack /bin/sh\n"));
    }

    #[test]
    fn the_archive_is_deterministic_and_holds_what_init_needs() {
        let dir = crate::guest::tests::tempdir("initramfs");
        let ko = dir.join("virtio.ko");
        std::fs::write(&ko, b"module bytes").unwrap();
        let c = Contents {
            busybox: b"\x7fELF busybox".to_vec(),
            release: "6.1.0-test".into(),
            modules: vec![("virtio".into(), ko)],
            hostile: Some(b"\x7fELF module".to_vec()),
        };
        let a = build(&c).unwrap();
        assert_eq!(a, build(&c).unwrap());
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        let raw = cpio(&c).unwrap();
        let text = String::from_utf8_lossy(&raw);
        for name in [
            "bin/busybox\0",
            "bin/sh\0",
            "dev/console\0",
            "lib/modules/6.1.0-test/virtio.ko\0",
            "init\0",
            "TRAILER!!!\0",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert!(text.contains("module bytes"));
    }
}
