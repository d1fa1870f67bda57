//! The guest's device tree, written with `vm-fdt` from the description's
//! VM and the layout in `septa_vm_layout::map` (the VMM emulates exactly
//! what this tree describes).
//!
//! ```text
//! /                 compatible "septa,virtual-machine", "linux,dummy-virt"
//!   chosen          bootargs, stdout-path, linux,initrd-start/-end
//!   memory@40000000 the VM's RAM
//!   cpus/cpu@N      one per vCPU, enable-method "psci"
//!   psci            method "hvc": the VMM answers
//!   intc@8000000    GICv2: distributor and CPU interface
//!   timer           the architected timer's four PPIs
//!   apb-pclk        the PL011's fixed clock
//!   pl011@9000000   the console (SPI 1)
//!   virtio_mmio@... one per guest device (SPI 16 + slot)
//! ```
//!
//! Every address is where QEMU `virt` has the same device, so this tree
//! boots the guest on bare QEMU (`-machine virt,virtualization=off`) too:
//! the yardstick of [`super::bare`].

use miette::{miette, Result};
use septa_sysdesc::VirtioKind;
use septa_vm_layout::map::{self as m, IRQ_TYPE_EDGE_RISING, IRQ_TYPE_LEVEL_HIGH};
use septa_vm_layout::place::DTB_MAX;
use vm_fdt::FdtWriter;

/// The kernel command line when the description gives none.
pub const DEFAULT_BOOTARGS: &str = "console=ttyAMA0";

/// GICv2 targets eight CPU interfaces at most.
pub const MAX_VCPUS: u32 = 8;

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;
/// Device tree interrupt specifier types (the GIC binding's first cell).
const SPI: u32 = 0;
const PPI: u32 = 1;

/// What one guest's tree says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestTree {
    pub vcpus: u32,
    /// Guest RAM: base and size.
    pub ram: (u64, u64),
    pub bootargs: String,
    /// Where the VMM puts the initrd: `[start, end)`.
    pub initrd: Option<(u64, u64)>,
    /// (name, kind, slot) of each virtio device.
    pub devices: Vec<(String, VirtioKind, u32)>,
    /// A sealed guest's shared window (base, size): memory of its own,
    /// and the only memory the virtio devices may reach (`dma-ranges` of
    /// the bus they sit on).
    pub shared: Option<(u64, u64)>,
}

/// The path of the console node, for `stdout-path`.
pub fn uart_path() -> String {
    format!("/pl011@{:x}", m::UART_BASE)
}

/// The flattened device tree.
pub fn build(t: &GuestTree) -> Result<Vec<u8>> {
    if !(1..=MAX_VCPUS).contains(&t.vcpus) {
        return Err(miette!(
            "a guest on GICv2 has 1 to {MAX_VCPUS} vCPUs, not {}",
            t.vcpus
        ));
    }
    if let Some((name, _, slot)) = t.devices.iter().find(|d| m::virtio_mmio(d.2).is_none()) {
        return Err(miette!(
            "guest device `{name}` is on slot {slot}, past the last transport"
        ));
    }
    write(t)
        .map_err(|e| miette!("writing the guest device tree: {e}"))
        .and_then(|b| {
            if b.len() as u64 > DTB_MAX {
                Err(miette!(
                    "the guest device tree is {} bytes; Linux takes at most {DTB_MAX}",
                    b.len()
                ))
            } else {
                Ok(b)
            }
        })
}

fn reg(base: u64, size: u64) -> [u64; 2] {
    [base, size]
}

fn write(t: &GuestTree) -> vm_fdt::FdtWriterResult<Vec<u8>> {
    let mut f = FdtWriter::new()?;
    let root = f.begin_node("")?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 2)?;
    f.property_string_list(
        "compatible",
        vec!["septa,virtual-machine".into(), "linux,dummy-virt".into()],
    )?;
    f.property_string("model", "Septa virtual machine")?;
    f.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = f.begin_node("chosen")?;
    f.property_string("bootargs", &t.bootargs)?;
    f.property_string("stdout-path", &uart_path())?;
    if let Some((start, end)) = t.initrd {
        f.property_u64("linux,initrd-start", start)?;
        f.property_u64("linux,initrd-end", end)?;
    }
    f.end_node(chosen)?;

    let aliases = f.begin_node("aliases")?;
    f.property_string("serial0", &uart_path())?;
    f.end_node(aliases)?;

    if let Some((base, size)) = t.shared {
        let mem = f.begin_node(&format!("memory@{base:x}"))?;
        f.property_string("device_type", "memory")?;
        f.property_array_u64("reg", &reg(base, size))?;
        f.end_node(mem)?;
    }
    let mem = f.begin_node(&format!("memory@{:x}", t.ram.0))?;
    f.property_string("device_type", "memory")?;
    f.property_array_u64("reg", &reg(t.ram.0, t.ram.1))?;
    f.end_node(mem)?;

    let cpus = f.begin_node("cpus")?;
    f.property_u32("#address-cells", 1)?;
    f.property_u32("#size-cells", 0)?;
    for i in 0..t.vcpus {
        let cpu = f.begin_node(&format!("cpu@{i}"))?;
        f.property_string("device_type", "cpu")?;
        f.property_string("compatible", "arm,cortex-a53")?;
        f.property_u32("reg", i)?;
        f.property_string("enable-method", "psci")?;
        f.end_node(cpu)?;
    }
    f.end_node(cpus)?;

    let psci = f.begin_node("psci")?;
    f.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    f.property_string("method", m::PSCI_METHOD)?;
    f.end_node(psci)?;

    let gic = f.begin_node(&format!("intc@{:x}", m::GICD_BASE))?;
    f.property_string("compatible", "arm,cortex-a15-gic")?;
    f.property_u32("#interrupt-cells", 3)?;
    // No children: what dtc asks of an interrupt provider.
    f.property_u32("#address-cells", 0)?;
    f.property_null("interrupt-controller")?;
    f.property_array_u64(
        "reg",
        &[m::GICD_BASE, m::GICD_SIZE, m::GICC_BASE, m::GICC_SIZE],
    )?;
    f.property_phandle(GIC_PHANDLE)?;
    f.end_node(gic)?;

    // GICv2 PPI flags carry a mask of the CPUs the interrupt goes to.
    let ppi_flags = (((1u32 << t.vcpus) - 1) << 8) | IRQ_TYPE_LEVEL_HIGH;
    let timer = f.begin_node("timer")?;
    f.property_string("compatible", "arm,armv8-timer")?;
    let mut irqs = Vec::new();
    for ppi in [
        m::TIMER_SECURE_PHYS_PPI,
        m::TIMER_PHYS_PPI,
        m::TIMER_VIRT_PPI,
        m::TIMER_HYP_PPI,
    ] {
        irqs.extend([PPI, ppi, ppi_flags]);
    }
    f.property_array_u32("interrupts", &irqs)?;
    f.property_null("always-on")?;
    f.end_node(timer)?;

    let clk = f.begin_node("apb-pclk")?;
    f.property_string("compatible", "fixed-clock")?;
    f.property_u32("#clock-cells", 0)?;
    f.property_u32("clock-frequency", m::UART_CLOCK_HZ)?;
    f.property_string("clock-output-names", "clk24mhz")?;
    f.property_phandle(CLOCK_PHANDLE)?;
    f.end_node(clk)?;

    let uart = f.begin_node(&format!("pl011@{:x}", m::UART_BASE))?;
    f.property_string_list(
        "compatible",
        vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    f.property_array_u64("reg", &reg(m::UART_BASE, m::UART_SIZE))?;
    f.property_array_u32("interrupts", &[SPI, m::UART_SPI, IRQ_TYPE_LEVEL_HIGH])?;
    f.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    f.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])?;
    f.end_node(uart)?;

    let mut devices = t.devices.clone();
    devices.sort_by_key(|d| d.2);
    // A sealed guest's devices sit on a bus whose `dma-ranges` is the
    // shared window, one to one: Linux then allocates their rings in it
    // (ZONE_DMA is the window) and bounces every buffer outside it
    // through swiotlb, which it allocates there too.
    let bus = match t.shared {
        Some((base, size)) if !devices.is_empty() => {
            let bus = f.begin_node("virtio-bus")?;
            f.property_string("compatible", "simple-bus")?;
            f.property_u32("#address-cells", 2)?;
            f.property_u32("#size-cells", 2)?;
            f.property_null("ranges")?;
            f.property_array_u64("dma-ranges", &[base, base, size])?;
            Some(bus)
        }
        _ => None,
    };
    for (_, _, slot) in &devices {
        let Some((base, spi)) = m::virtio_mmio(*slot) else {
            continue; // refused by `build`
        };
        let v = f.begin_node(&format!("virtio_mmio@{base:x}"))?;
        f.property_string("compatible", "virtio,mmio")?;
        f.property_array_u64("reg", &reg(base, m::VIRTIO_MMIO_SIZE))?;
        f.property_array_u32("interrupts", &[SPI, spi, IRQ_TYPE_EDGE_RISING])?;
        f.property_null("dma-coherent")?;
        f.end_node(v)?;
    }
    if let Some(bus) = bus {
        f.end_node(bus)?;
    }

    f.end_node(root)?;
    f.finish()
}

/// The tree in source form, if `dtc` is installed.
pub fn to_dts(dtb: &std::path::Path) -> Option<std::result::Result<String, String>> {
    let out = std::process::Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(dtb)
        .output()
        .ok()?;
    Some(if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> GuestTree {
        GuestTree {
            vcpus: 1,
            ram: (m::RAM_BASE, 256 << 20),
            bootargs: DEFAULT_BOOTARGS.into(),
            initrd: Some((0x41e0_0000, 0x4210_0000)),
            devices: vec![
                ("eth0".into(), VirtioKind::Net, 1),
                ("hvc".into(), VirtioKind::Console, 0),
            ],
            shared: None,
        }
    }

    /// A node's path and its properties (name, value).
    type Node = (String, Vec<(String, Vec<u8>)>);

    /// A flattened tree read back: every node path with its properties.
    fn walk(b: &[u8]) -> Vec<Node> {
        let be = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(be(0), 0xd00d_feed, "FDT magic");
        assert_eq!(be(4) as usize, b.len(), "totalsize");
        let (structs, strings) = (be(8) as usize, be(12) as usize);
        assert_eq!(be(20), 17, "version");
        let name_at = |off: usize| {
            let s = &b[strings + off..];
            String::from_utf8(s[..s.iter().position(|&c| c == 0).unwrap()].to_vec()).unwrap()
        };
        let mut at = structs;
        let mut path: Vec<String> = Vec::new();
        let mut nodes = Vec::new();
        loop {
            let token = be(at);
            at += 4;
            match token {
                1 => {
                    let end = at + b[at..].iter().position(|&c| c == 0).unwrap();
                    path.push(String::from_utf8(b[at..end].to_vec()).unwrap());
                    at = (end + 1 + 3) & !3;
                    nodes.push((format!("/{}", path[1..].join("/")), Vec::new()));
                }
                2 => {
                    path.pop();
                }
                3 => {
                    let (len, name) = (be(at) as usize, be(at + 4) as usize);
                    let value = b[at + 8..at + 8 + len].to_vec();
                    let node: &mut Node = nodes.last_mut().unwrap();
                    node.1.push((name_at(name), value));
                    at = (at + 8 + len + 3) & !3;
                }
                4 => {}
                9 => break,
                t => panic!("bad token {t}"),
            }
        }
        assert!(path.is_empty(), "unbalanced nodes");
        nodes
    }

    fn prop<'a>(nodes: &'a [Node], node: &str, p: &str) -> &'a [u8] {
        let n = nodes
            .iter()
            .find(|n| n.0 == node)
            .unwrap_or_else(|| panic!("no node {node}"));
        &n.1.iter()
            .find(|x| x.0 == p)
            .unwrap_or_else(|| panic!("no {node}:{p}"))
            .1
    }

    fn cells(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn the_tree_has_what_linux_needs_where_the_layout_says() {
        let dtb = build(&sample()).unwrap();
        let nodes = walk(&dtb);
        let paths: Vec<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/",
                "/chosen",
                "/aliases",
                "/memory@40000000",
                "/cpus",
                "/cpus/cpu@0",
                "/psci",
                "/intc@8000000",
                "/timer",
                "/apb-pclk",
                "/pl011@9000000",
                "/virtio_mmio@a000000",
                "/virtio_mmio@a000200",
            ]
        );
        assert_eq!(
            cells(prop(&nodes, "/memory@40000000", "reg")),
            [0, 0x4000_0000, 0, 0x1000_0000]
        );
        assert_eq!(prop(&nodes, "/psci", "method"), b"hvc\0");
        assert_eq!(
            cells(prop(&nodes, "/intc@8000000", "reg")),
            [0, 0x0800_0000, 0, 0x1000, 0, 0x0801_0000, 0, 0x2000]
        );
        assert_eq!(
            cells(prop(&nodes, "/timer", "interrupts")),
            [1, 13, 0x104, 1, 14, 0x104, 1, 11, 0x104, 1, 10, 0x104]
        );
        assert_eq!(
            cells(prop(&nodes, "/pl011@9000000", "interrupts")),
            [0, 1, 4]
        );
        assert_eq!(
            cells(prop(&nodes, "/virtio_mmio@a000200", "interrupts")),
            [0, 17, 1]
        );
        assert_eq!(
            cells(prop(&nodes, "/chosen", "linux,initrd-start")),
            [0, 0x41e0_0000]
        );
        assert_eq!(prop(&nodes, "/chosen", "stdout-path"), b"/pl011@9000000\0");
    }

    #[test]
    fn a_sealed_guests_devices_dma_only_into_its_window() {
        let mut t = sample();
        t.shared = Some((0x3f00_0000, 16 << 20));
        let nodes = walk(&build(&t).unwrap());
        assert_eq!(
            cells(prop(&nodes, "/memory@3f000000", "reg")),
            [0, 0x3f00_0000, 0, 0x0100_0000]
        );
        assert_eq!(prop(&nodes, "/virtio-bus", "compatible"), b"simple-bus\0");
        assert!(prop(&nodes, "/virtio-bus", "ranges").is_empty());
        assert_eq!(
            cells(prop(&nodes, "/virtio-bus", "dma-ranges")),
            [0, 0x3f00_0000, 0, 0x3f00_0000, 0, 0x0100_0000]
        );
        for d in [
            "/virtio-bus/virtio_mmio@a000000",
            "/virtio-bus/virtio_mmio@a000200",
        ] {
            assert!(prop(&nodes, d, "dma-coherent").is_empty());
        }
        assert!(!nodes.iter().any(|n| n.0 == "/virtio_mmio@a000000"));
        assert_eq!(
            super::super::sealed_bootargs("console=ttyAMA0".into(), t.shared),
            "console=ttyAMA0 swiotlb=4096 cma=0 sysctl.vm.lowmem_reserve_ratio=1"
        );
    }

    #[test]
    fn more_vcpus_widen_the_timer_cpu_mask() {
        let mut t = sample();
        t.vcpus = 4;
        t.initrd = None;
        let nodes = walk(&build(&t).unwrap());
        assert_eq!(cells(prop(&nodes, "/timer", "interrupts"))[2], 0xf04);
        assert!(nodes.iter().any(|n| n.0 == "/cpus/cpu@3"));
        assert!(!nodes
            .iter()
            .find(|n| n.0 == "/chosen")
            .unwrap()
            .1
            .iter()
            .any(|p| p.0 == "linux,initrd-start"));
        t.vcpus = 9;
        assert!(build(&t).is_err());
    }

    #[test]
    fn dtc_reads_the_tree_without_a_warning() {
        let dir = crate::guest::tests::tempdir("dtc");
        let path = dir.join("guest.dtb");
        std::fs::write(&path, build(&sample()).unwrap()).unwrap();
        // dtc is in .ci/run's packages; without it the structural test
        // above still stands.
        let Ok(out) = std::process::Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null"])
            .arg(&path)
            .output()
        else {
            eprintln!("dtc not installed: skipping its check");
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "dtc: {err}");
    }
}
