//! Writes the root-task linker script (template `root-task.ld.in`, at the
//! root-task base septa-abi names) as `image.ld` on the linker's search path
//! of every crate that depends on this one (see lib/runtime/build.rs for
//! the PD's counterpart).

fn main() {
    septa_link_script::publish_image_script(
        "root-task.ld.in",
        &[("ROOT_TASK_BASE", septa_abi::ROOT_TASK_BASE)],
    );
}
