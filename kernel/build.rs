//! Writes the kernel's linker script (template `link.ld.in`) to OUT_DIR
//! with its two addresses filled in from where each is named: the kernel
//! window's base from septa-abi, and the kernel's physical address, the
//! start of RAM, from the board profile the kernel is built for
//! (`qemu/qemu-virt.toml`); links the kernel with it on the target only.

/// The board profile this kernel is built for.
const PROFILE: &str = "../qemu/qemu-virt.toml";

fn main() {
    println!("cargo::rerun-if-changed={PROFILE}");
    let profile: toml::Table = std::fs::read_to_string(PROFILE)
        .expect("read the board profile")
        .parse()
        .expect("the board profile is TOML");
    let ram_base = profile
        .get("ram")
        .and_then(|r| r.get("base"))
        .and_then(toml::Value::as_integer)
        .expect("the board profile has [ram] base");
    let script = septa_link_script::fill(
        "link.ld.in",
        &[
            ("KERNEL_PHYS", ram_base as u64),
            ("KERNEL_WINDOW", septa_abi::KERNEL_WINDOW_BASE),
        ],
    );
    let path = septa_link_script::write("link.ld", &script);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg-bins=-T{}", path.display());
    }
}
