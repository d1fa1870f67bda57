//! apt with a private state directory: Debian's arm64 archive without
//! touching the host's apt.
//!
//! Everything apt reads or writes lives under one folder (the `apt/`
//! folder of the guest cache, [`super::cache`]): its own `apt.conf`
//! (handed to apt in `APT_CONFIG`, which apt reads before anything else),
//! which points every `Dir::` at that folder (sources list, parts
//! folders, trusted keys, preferences, lists, archives, dpkg status) and
//! sets `APT::Architecture` and `APT::Architectures` to `arm64`. The
//! host's `/etc/apt` configuration parts, its sources, its foreign
//! architectures and its dpkg database are never read or written, and no
//! root is needed.
//!
//! Two things are taken from the host, the way apt itself would take them:
//! the proxy settings (`Acquire::{http,https,ftp}::Proxy*`, and the
//! Valid-Until and date checks) as `apt-config dump` reports them under the
//! host's own configuration, copied into the private `apt.conf`; and the
//! environment (`http_proxy` and friends), which apt's methods read. The
//! archive's signatures are checked against Debian's keyring
//! (`/usr/share/keyrings/debian-archive-keyring.gpg`, package
//! `debian-archive-keyring`) named in the sources list.

use std::path::{Path, PathBuf};
use std::process::Command;

use miette::{miette, Result};

use super::policy::Policy;

/// The host configuration keys copied into the private configuration.
const HOST_KEYS: &[&str] = &[
    "Acquire::http::Proxy",
    "Acquire::https::Proxy",
    "Acquire::ftp::Proxy",
    "Acquire::http::Proxy-Auto-Detect",
    "Acquire::https::Proxy-Auto-Detect",
    "Acquire::Check-Valid-Until",
    "Acquire::Check-Date",
];

/// One package version as the archive's index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub package: String,
    pub version: String,
    /// The first alternative of each `Depends` entry, without versions.
    pub depends: Vec<String>,
    /// Bytes of the .deb.
    pub size: u64,
    pub filename: String,
}

/// apt under a private directory.
pub struct Apt {
    pub dir: PathBuf,
    /// The `apt-get` and `apt-cache` to run (tests name ones that fail,
    /// to show a step needs no apt at all).
    pub apt_get: PathBuf,
    pub apt_cache: PathBuf,
}

impl Apt {
    pub fn new(dir: &Path) -> Apt {
        Apt {
            dir: dir.to_path_buf(),
            apt_get: "apt-get".into(),
            apt_cache: "apt-cache".into(),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.dir.join("apt.conf")
    }

    /// Writes the private configuration and sources list, creating the
    /// folders apt expects.
    pub fn configure(&self, policy: &Policy) -> Result<()> {
        let d = &self.dir;
        for sub in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/auth.conf.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            super::mkdirs(&d.join(sub))?;
        }
        if !Path::new(policy.keyring).is_file() {
            return Err(miette!(
                "Debian's archive keyring {} is missing: install the package `debian-archive-keyring` (apt-get install debian-archive-keyring)",
                policy.keyring
            ));
        }
        super::write(&d.join("state/status"), b"")?;
        super::write(
            &d.join("etc/sources.list"),
            policy.sources_list().as_bytes(),
        )?;
        let p = |s: &str| d.join(s).display().to_string();
        let mut conf = String::from(
            "// Written by `septa guest`: apt confined to this folder (see tools/septa/src/guest/apt.rs).\n",
        );
        for (key, value) in [
            ("Dir", p("")),
            ("Dir::Etc", p("etc")),
            ("Dir::Etc::main", "/dev/null".into()),
            ("Dir::Etc::parts", p("etc/apt.conf.d")),
            ("Dir::Etc::sourcelist", p("etc/sources.list")),
            ("Dir::Etc::sourceparts", p("etc/sources.list.d")),
            ("Dir::Etc::preferences", p("etc/preferences")),
            ("Dir::Etc::preferencesparts", p("etc/preferences.d")),
            ("Dir::Etc::trusted", p("etc/trusted.gpg")),
            ("Dir::Etc::trustedparts", p("etc/trusted.gpg.d")),
            ("Dir::Etc::netrc", p("etc/auth.conf")),
            ("Dir::Etc::netrcparts", p("etc/auth.conf.d")),
            ("Dir::State", p("state")),
            ("Dir::State::status", p("state/status")),
            ("Dir::Cache", p("cache")),
            ("Dir::Log", p("log")),
            ("APT::Architecture", policy.arch.into()),
            ("Acquire::Languages", "none".into()),
            // Keep the indexes compressed and no binary caches of them:
            // the folder stays about 20 MB instead of 120.
            ("Acquire::GzipIndexes", "true".into()),
            ("Acquire::CompressionTypes::Order::", "gz".into()),
            ("Dir::Cache::pkgcache", "".into()),
            ("Dir::Cache::srcpkgcache", "".into()),
        ] {
            conf.push_str(&format!("{key} \"{value}\";\n"));
        }
        conf.push_str(&format!("APT::Architectures {{ \"{}\"; }};\n", policy.arch));
        conf.push_str("// From the host's configuration (`apt-config dump`):\n");
        for line in host_settings() {
            conf.push_str(&line);
            conf.push('\n');
        }
        super::write(&self.config_file(), conf.as_bytes())
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", self.config_file())
            .env("LC_ALL", "C")
            .env_remove("DEBIAN_FRONTEND");
        c
    }

    /// Downloads the archive's indexes (the network).
    pub fn update(&self) -> Result<()> {
        let mut c = self.command(&self.apt_get);
        c.args(["update", "-q"]);
        run(&mut c, "apt-get update")
    }

    /// The candidate version of `package` in the downloaded indexes.
    pub fn show(&self, package: &str) -> Result<Record> {
        let mut c = self.command(&self.apt_cache);
        c.args(["show", "--no-all-versions", package]);
        let out = output(&mut c, &format!("apt-cache show {package}"))?;
        parse_record(&out).ok_or_else(|| {
            miette!("apt-cache show {package}: no usable package record in its output:\n{out}")
        })
    }

    /// Downloads `package` at `version` into `into` (the network).
    pub fn download(&self, package: &str, version: &str, into: &Path) -> Result<()> {
        super::mkdirs(into)?;
        let mut c = self.command(&self.apt_get);
        c.current_dir(into)
            .args(["download", "-q", &format!("{package}={version}")]);
        run(&mut c, &format!("apt-get download {package}={version}"))
    }
}

/// The proxy and checking settings of the host's apt configuration, as
/// lines of apt.conf syntax.
fn host_settings() -> Vec<String> {
    match Command::new("apt-config").arg("dump").output() {
        Ok(out) => pick_host_settings(&String::from_utf8_lossy(&out.stdout)),
        Err(_) => Vec::new(),
    }
}

/// The lines of an `apt-config dump` that set one of [`HOST_KEYS`] or a
/// key below it (`Acquire::http::Proxy::HOST`).
fn pick_host_settings(dump: &str) -> Vec<String> {
    dump.lines()
        .filter(|l| {
            HOST_KEYS.iter().any(|k| {
                l.strip_prefix(k)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with("::"))
            })
        })
        .map(String::from)
        .collect()
}

fn run(c: &mut Command, what: &str) -> Result<()> {
    output(c, what).map(|_| ())
}

fn output(c: &mut Command, what: &str) -> Result<String> {
    let out = c.output().map_err(|e| {
        miette!(
            "cannot run {} ({e}): the guest's packages come from Debian's archive through apt",
            c.get_program().to_string_lossy()
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(miette!(
            "{what} failed ({}):\n{}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

/// Reads the first record of `apt-cache show` output.
pub fn parse_record(text: &str) -> Option<Record> {
    let mut fields = std::collections::HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.trim(), v.trim());
        }
    }
    let depends = fields
        .get("Depends")
        .map(|d| {
            d.split(',')
                .filter_map(|alt| alt.split('|').next())
                .map(|p| p.split_whitespace().next().unwrap_or("").to_string())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(Record {
        package: fields.get("Package")?.to_string(),
        version: fields.get("Version")?.to_string(),
        depends,
        size: fields.get("Size")?.parse().ok()?,
        filename: fields.get("Filename")?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_records_are_read() {
        let text = "Package: linux-image-cloud-arm64\nSource: linux-signed-arm64 (6.1.192+3)\nVersion: 6.1.192-3\nArchitecture: arm64\nDepends: linux-image-6.1.0-57-cloud-arm64 (= 6.1.192-3), a | b (>= 1)\nDescription: x\n more\nFilename: pool/updates/main/l/x.deb\nSize: 1452\n\nPackage: other\n";
        assert_eq!(
            parse_record(text),
            Some(Record {
                package: "linux-image-cloud-arm64".into(),
                version: "6.1.192-3".into(),
                depends: vec!["linux-image-6.1.0-57-cloud-arm64".into(), "a".into()],
                size: 1452,
                filename: "pool/updates/main/l/x.deb".into(),
            })
        );
        assert_eq!(parse_record("Package: x\n"), None);
    }

    #[test]
    fn the_hosts_proxy_settings_are_picked_from_its_configuration() {
        let dump = "APT \"\";\nAcquire::http::Proxy \"http://proxy:3128/\";\n\
                    Acquire::http::Proxy::deb.debian.org \"DIRECT\";\n\
                    Acquire::http::Proxy-Auto-Detect \"/usr/bin/detect\";\n\
                    Acquire::http::ProxyX \"no\";\nAcquire::Check-Valid-Until \"false\";\n\
                    Dir::Etc::sourcelist \"sources.list\";\n";
        assert_eq!(
            pick_host_settings(dump),
            [
                "Acquire::http::Proxy \"http://proxy:3128/\";",
                "Acquire::http::Proxy::deb.debian.org \"DIRECT\";",
                "Acquire::http::Proxy-Auto-Detect \"/usr/bin/detect\";",
                "Acquire::Check-Valid-Until \"false\";",
            ]
        );
    }

    #[test]
    fn the_private_configuration_confines_apt_to_its_folder() {
        let dir = crate::guest::tests::tempdir("apt-conf");
        let apt = Apt::new(&dir);
        apt.configure(&Policy::default()).unwrap();
        let conf = std::fs::read_to_string(dir.join("apt.conf")).unwrap();
        for key in [
            "Dir::Etc::parts",
            "Dir::Etc::sourcelist",
            "Dir::Etc::trustedparts",
            "Dir::State::status",
            "Dir::Cache",
        ] {
            let line = conf
                .lines()
                .find(|l| l.starts_with(&format!("{key} ")))
                .unwrap_or_else(|| panic!("{key} not set"));
            assert!(line.contains(&*dir.to_string_lossy()), "{line}");
        }
        assert!(conf.contains("APT::Architectures { \"arm64\"; };"));
        // apt itself reads it so: its folders are ours, and none of the
        // host's configuration parts is read.
        if let Ok(out) = apt.command(Path::new("apt-config")).arg("dump").output() {
            let dump = String::from_utf8_lossy(&out.stdout);
            let value = |key: &str| {
                dump.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key} \"")))
                    .map(|v| v.trim_end_matches("\";").to_string())
            };
            assert_eq!(value("APT::Architecture").as_deref(), Some("arm64"));
            let status = value("Dir::State::status").unwrap();
            assert!(status.starts_with(&*dir.to_string_lossy()), "{status}");
            let parts = value("Dir::Etc::parts").unwrap();
            assert!(parts.starts_with(&*dir.to_string_lossy()), "{parts}");
            assert!(
                !dump.contains("DPkg::Post-Invoke"),
                "host parts read:\n{dump}"
            );
        }
        let sources = std::fs::read_to_string(dir.join("etc/sources.list")).unwrap();
        assert!(sources.contains("signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"));
    }
}
