//! Writes the PD linker script (template `pd.ld.in`, at the PD image base
//! septa-abi names) as `image.ld` on the linker's search path of every crate
//! that depends on this one: the workspace's `.cargo/config.toml` links
//! every aarch64-unknown-none program with `-Timage.ld`, so each PD (and
//! this crate's examples) links with it and needs no build script.

fn main() {
    septa_link_script::publish_image_script(
        "pd.ld.in",
        &[("IMAGE_BASE", septa_abi::microkit::IMAGE_BASE)],
    );
}
