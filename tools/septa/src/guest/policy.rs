//! Which Debian packages make the guest, named once.
//!
//! The version policy: the newest `linux-image-cloud-arm64` of Debian 12
//! "bookworm" with its security updates (the `bookworm-security` suite,
//! where Debian publishes each new stable kernel first), so the guest
//! runs the kernel a Debian bookworm cloud machine installs today. That
//! metapackage depends on exactly one versioned kernel package
//! (`linux-image-6.1.0-N-cloud-arm64`), which is what the tool fetches.
//! Once fetched, the versions are pinned in the cache (`pin.toml`): later
//! builds use the same packages without the network until
//! `cargo septa guest --refresh` looks for newer ones.
//!
//! Debian's cloud flavour is the one made for virtual machines: the PL011
//! console, the GIC, the architected timer and PSCI are built in, virtio
//! drivers are modules, and it has few other drivers to probe, so it boots
//! quickly.

/// Where and what to fetch. `Policy::default()` is the project's choice;
/// change it here, nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `(archive URL, suite)` pairs, all with component [`Policy::component`].
    pub sources: Vec<(&'static str, &'static str)>,
    pub component: &'static str,
    /// Debian's name of the guest's architecture.
    pub arch: &'static str,
    /// The metapackage that names the current kernel package.
    pub kernel_meta: &'static str,
    /// A statically linked busybox: the initramfs's whole userland.
    pub busybox: &'static str,
    /// The keyring the archive's signatures are checked against.
    pub keyring: &'static str,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            sources: vec![
                ("http://deb.debian.org/debian", "bookworm"),
                ("http://deb.debian.org/debian-security", "bookworm-security"),
            ],
            component: "main",
            arch: "arm64",
            kernel_meta: "linux-image-cloud-arm64",
            busybox: "busybox-static",
            keyring: "/usr/share/keyrings/debian-archive-keyring.gpg",
        }
    }
}

impl Policy {
    /// The private apt's sources.list.
    pub fn sources_list(&self) -> String {
        self.sources
            .iter()
            .map(|(url, suite)| {
                format!(
                    "deb [arch={} signed-by={}] {url} {suite} {}\n",
                    self.arch, self.keyring, self.component
                )
            })
            .collect()
    }

    /// The cache folder's name for this policy: a different suite or
    /// architecture never shares a cache.
    pub fn key(&self) -> String {
        format!("{}-{}", self.sources[0].1, self.arch)
    }
}
