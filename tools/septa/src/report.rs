//! The report stage: `report.txt` next to the image, for people. It says
//! where everything went: each PD with its program, scheduling, patched
//! symbols, every capability slot and every mapping; each region; the
//! channels, the virtio devices (transport, interrupt, host end) and IRQs;
//! the memory estimate; and every object with its size
//! and the address the build-time simulation gave it (the initializer may
//! choose differently for objects without a fixed address: it sees the
//! real untyped list).
//!
//! Input: the model, the built spec, the patches, the fit. Output: text.

use std::fmt::Write as _;

use septa_abi::microkit::slot;
use septa_spec::{Cap, ObjectKind, Policy};
use septa_sysdesc::System;

use crate::alloc::{human, Fit};
use crate::patch::Write;
use crate::spec::Built;

/// What a report covers besides the spec.
pub struct Inputs<'a> {
    pub system: &'a System,
    pub built: &'a Built,
    /// Per PD: the program path and the patches written into it.
    pub programs: &'a [(String, Vec<Write>)],
    pub fit: &'a Fit,
    pub kernel: &'a str,
    pub image_len: u64,
    /// The guests the tool prepared for its VMMs ([`crate::guests`]).
    pub guests: &'a [crate::guests::Prepared],
}

fn kind(k: ObjectKind) -> String {
    match k {
        ObjectKind::Tcb => "TCB".into(),
        ObjectKind::Endpoint => "endpoint".into(),
        ObjectKind::Notification => "notification".into(),
        ObjectKind::Reply => "reply".into(),
        ObjectKind::SchedContext { size_bits } => format!("scheduling context (2^{size_bits})"),
        ObjectKind::CNode { radix } => format!("CNode ({} slots)", 1u64 << radix),
        ObjectKind::VSpace => "VSpace".into(),
        ObjectKind::PageTable => "page table".into(),
        ObjectKind::Frame { size_bits } => format!("frame ({})", human(1 << size_bits)),
        ObjectKind::Vcpu => "vCPU".into(),
    }
}

/// What a Microkit CNode slot is for.
fn slot_role(index: u64) -> String {
    let range = |base: u64, what: &str| {
        (base..base + 64)
            .contains(&index)
            .then(|| format!("{what} {}", index - base))
    };
    match index {
        slot::INPUT => "input".into(),
        slot::FAULT_EP => "fault endpoint".into(),
        slot::VSPACE => "own VSpace".into(),
        slot::REPLY => "reply".into(),
        slot::MONITOR_EP => "monitor endpoint".into(),
        slot::TCB => "own TCB".into(),
        slot::SMC => "SMC".into(),
        _ => range(slot::BASE_OUTPUT_NOTIFICATION, "notify channel")
            .or_else(|| range(slot::BASE_ENDPOINT, "pp channel"))
            .or_else(|| range(slot::BASE_IRQ, "IRQ channel"))
            .or_else(|| range(slot::BASE_TCB, "child TCB"))
            .or_else(|| range(slot::BASE_VM_TCB, "VM TCB"))
            .or_else(|| range(slot::BASE_VCPU, "vCPU"))
            .unwrap_or_else(|| "user".into()),
    }
}

fn rights(r: septa_spec::Rights) -> String {
    let mut s = String::new();
    for (on, c) in [
        (r.read, 'R'),
        (r.write, 'W'),
        (r.grant, 'G'),
        (r.grant_reply, 'P'),
    ] {
        if on {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// `report.txt`: a summary, then a section per PD, then regions, channels,
/// virtio devices, IRQs and objects.
pub fn render(i: &Inputs) -> String {
    let mut o = String::new();
    summary(&mut o, i);
    cells(&mut o, i.system);
    for p in 0..i.system.pds.len() {
        pd_section(&mut o, i, p);
    }
    virtual_machines(&mut o, i);
    regions(&mut o, i);
    channels(&mut o, i.system);
    serial(&mut o, i.system);
    timer(&mut o, i.system);
    virtio_devices(&mut o, i.system);
    block_subsystems(&mut o, i.system);
    irqs(&mut o, i.built);
    objects(&mut o, i);
    o
}

/// A section title, underlined, after a blank line.
fn title(o: &mut String, title: &str) {
    let _ = writeln!(o);
    let _ = writeln!(o, "{title}\n{}", "-".repeat(title.len()));
}

/// The board, the kernel, the counts and the memory estimate.
fn summary(o: &mut String, i: &Inputs) {
    let b = i.built;
    let sys = i.system;
    let _ = writeln!(o, "Septa build report");
    let _ = writeln!(o, "==================");
    let _ = writeln!(o, "board: {}", sys.board.name);
    let _ = writeln!(o, "kernel: {}", i.kernel);
    let _ = writeln!(
        o,
        "protection domains: {}, regions: {}, channels: {}, objects: {}, data area: {}, image: {}",
        sys.pds.len(),
        sys.regions.len(),
        sys.channels.len(),
        b.objects.len(),
        human(b.data.len() as u64),
        human(i.image_len)
    );
    title(o, "Memory (build-time estimate)");
    let _ = writeln!(
        o,
        "free RAM at least {} in {} untyped blocks; objects take {}; left {}",
        human(i.fit.free),
        i.fit.untypeds.len(),
        human(i.fit.used),
        human(i.fit.free.saturating_sub(i.fit.used))
    );
}

/// PD `p`: program, scheduling, faults, patched symbols, CNodes, mappings.
fn pd_section(o: &mut String, i: &Inputs, p: usize) {
    let b = i.built;
    let pd = &i.system.pds[p];
    let (_, rec) = &b.pds[p];
    let (_, th) = &b.threads[rec.thread as usize];
    let objs = b.pd_objects[p];
    title(o, &format!("PD {}", pd.name));
    let (path, patches) = &i.programs[p];
    if let Some(sub) = pd.subsystem {
        let _ = writeln!(o, "added by [{sub}]");
    }
    let _ = writeln!(o, "program: {path}");
    let _ = writeln!(
        o,
        "entry: {:#x}, stack: {:#x}..{:#x}",
        th.entry, rec.stack.0, rec.stack.1
    );
    let sched = th
        .sched_context
        .map(|s| format!("budget {} us, period {} us", s.budget_us, s.period_us))
        .unwrap_or_else(|| "no scheduling context".into());
    let _ = writeln!(
        o,
        "priority: {}, {sched}{}",
        th.priority,
        if rec.passive { ", passive" } else { "" }
    );
    faults(o, b, rec);
    let _ = writeln!(o, "patched symbols:");
    for w in patches {
        let _ = writeln!(o, "  {:<28} = {}", w.symbol, w.describe());
    }
    for (cnode, what) in [
        (objs.root_cnode, "root CNode"),
        (objs.cnode, "Microkit CNode"),
    ] {
        cnode_slots(o, b, cnode, what, cnode == objs.cnode);
    }
    mappings(o, b, objs.vspace);
}

/// Where a PD's faults go and what the monitor does about them.
fn faults(o: &mut String, b: &Built, rec: &septa_spec::Pd) {
    if let Some(parent) = rec.parent {
        let _ = writeln!(
            o,
            "child of {}; faults to its parent with badge {:#x}",
            b.pds[parent as usize].0, rec.fault_badge
        );
        return;
    }
    let policy = match rec.policy {
        Policy::Stop => "stop".to_string(),
        Policy::Halt => "halt the system".to_string(),
        Policy::Restart {
            limit,
            backoff_us,
            reset_memory,
        } => format!(
            "restart (at most {}, back-off {backoff_us} us, {})",
            if limit == u32::MAX {
                "unlimited".to_string()
            } else {
                limit.to_string()
            },
            if reset_memory {
                "memory reloaded"
            } else {
                "memory kept"
            }
        ),
    };
    let _ = writeln!(
        o,
        "faults to the monitor with badge {:#x}; on a fault: {policy}",
        rec.fault_badge
    );
    if let Some((frame, word)) = rec.generation {
        let _ = writeln!(
            o,
            "restart count published in word {word} of {}",
            b.name(frame)
        );
    }
}

/// Every filled slot of `cnode` with what it is for (`microkit`: the
/// Microkit CNode, whose slots have fixed roles; else the root CNode).
fn cnode_slots(o: &mut String, b: &Built, cnode: septa_spec::ObjId, what: &str, microkit: bool) {
    let spec = b.spec();
    let _ = writeln!(o, "{what} ({}):", b.name(cnode));
    let mut slots: Vec<_> = spec.slots.iter().filter(|s| s.cnode == cnode).collect();
    slots.sort_by_key(|s| s.index);
    for s in slots {
        let cap = match s.cap {
            Cap::Object {
                obj,
                rights: r,
                badge,
                guard_size,
            } => {
                let mut t = format!("{} [{}]", b.name(obj), rights(r));
                if badge != 0 {
                    let _ = write!(t, " badge {badge:#x}");
                }
                if guard_size != 0 {
                    let _ = write!(t, " guard {guard_size} bits");
                }
                t
            }
            Cap::IrqHandler { irq } => format!("IRQ handler {irq}"),
            Cap::Smc => "SMC".into(),
        };
        let role = if microkit {
            slot_role(s.index)
        } else if s.index == 0 {
            "Microkit CNode".into()
        } else {
            format!("extra cap (CPtr {:#x})", s.index << 58)
        };
        let _ = writeln!(o, "  {:>4}  {:<22} {cap}", s.index, role);
    }
}

/// Every page table and frame mapped in `vspace`.
fn mappings(o: &mut String, b: &Built, vspace: septa_spec::ObjId) {
    let spec = b.spec();
    let _ = writeln!(o, "mappings ({}):", b.name(vspace));
    for m in spec.mappings.iter().filter(|m| m.vspace == vspace) {
        let obj = &spec.objects[m.object as usize];
        let size = match obj.kind {
            ObjectKind::Frame { size_bits } => 1u64 << size_bits,
            _ => 0,
        };
        if size == 0 {
            let _ = writeln!(
                o,
                "  {:#014x}              page table {}",
                m.vaddr, obj.name
            );
            continue;
        }
        let a = m.attrs;
        let perms: String = [(a.read, 'r'), (a.write, 'w'), (a.execute, 'x')]
            .iter()
            .map(|&(on, c)| if on { c } else { '-' })
            .collect();
        let _ = writeln!(
            o,
            "  {:#014x}..{:#014x} {perms}{} {}",
            m.vaddr,
            m.vaddr + size,
            if a.cached { "  " } else { " u" },
            obj.name
        );
    }
}

/// Each region: size, pages, address, and who maps it.
fn regions(o: &mut String, i: &Inputs) {
    let sys = i.system;
    let spec = i.built.spec();
    title(o, "Regions");
    for r in &sys.regions {
        // A fixed or tool-chosen address is final; any other is the
        // initializer's choice, which the build-time simulation predicts.
        let first = format!("region.{}.0", r.name);
        let first = spec.objects.iter().position(|ob| ob.name == first);
        let fixed = r
            .phys
            .or_else(|| first.and_then(|id| spec.objects[id].paddr));
        let simulated = first.and_then(|id| i.fit.paddrs.get(id).copied().flatten());
        let phys = match (fixed, simulated) {
            (Some(p), _) => format!("at {p:#x}"),
            (None, Some(p)) => format!("address chosen at boot (simulated at {p:#x})"),
            (None, None) => "address chosen at boot".into(),
        };
        let users: Vec<String> = sys
            .pds
            .iter()
            .flat_map(|p| {
                p.maps
                    .iter()
                    .filter(|m| m.region == r.name)
                    .map(move |m| format!("{}@{:#x} {}", p.name, m.vaddr, m.perms))
            })
            .collect();
        let _ = writeln!(
            o,
            "{}: {} in {} pages, {phys}; mapped by: {}",
            r.name,
            human(r.size),
            human(r.page_size),
            if users.is_empty() {
                "nobody".into()
            } else {
                users.join(", ")
            }
        );
    }
}

/// Each channel's two ends and what each may do.
fn channels(o: &mut String, sys: &System) {
    title(o, "Channels");
    for c in &sys.channels {
        let end = |e: &septa_sysdesc::End| {
            let mut s = format!("{}:{}", sys.pds[e.pd].name, e.id);
            if e.notify {
                s.push_str(" notify");
            }
            if e.pp {
                s.push_str(" pp");
            }
            s
        };
        let _ = writeln!(o, "{} <-> {}", end(&c.a), end(&c.b));
    }
}

/// What `[serial]` expanded into: the UART, the PDs, the clients as the
/// virtualisers number them, and how to move the keyboard.
fn serial(o: &mut String, sys: &System) {
    let Some(s) = &sys.serial else { return };
    title(o, "Serial subsystem ([serial])");
    let name = |p: usize| sys.pds[p].name.as_str();
    let (base, irq) = sys
        .device(&s.device)
        .map(|d| (d.range.base, d.irqs.first().copied().unwrap_or(0)))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "UART `{}` at {base:#x}, IRQ {irq}: driver {}",
        s.device,
        name(s.driver)
    );
    let _ = writeln!(
        o,
        "output: {} multiplexes, {} bytes per client queue",
        name(s.virt_tx),
        s.capacity
    );
    for (i, c) in s.clients.iter().enumerate() {
        let mut extra = String::new();
        if !c.prefix.is_empty() {
            extra += &format!(", prefix {:?}", c.prefix);
        }
        if let Some(col) = &c.colour {
            extra += &format!(", {col}");
        }
        let _ = writeln!(o, "  client {i}: {}{extra}", name(c.pd));
    }
    if let Some(rx) = s.virt_rx {
        let _ = writeln!(
            o,
            "input: {} routes it; `{}` has the keyboard first; {} switches",
            name(rx),
            name(s.input[0]),
            septa_serial_protocol::keys::HOW
        );
        for (i, p) in s.input.iter().enumerate() {
            let _ = writeln!(o, "  client {i}: {}", name(*p));
        }
    } else {
        let _ = writeln!(o, "input: none (no client takes it)");
    }
}

/// What each `[cell.*]` expanded into and may reach.
fn cells(o: &mut String, sys: &System) {
    if sys.cells.is_empty() {
        return;
    }
    title(o, "Cells ([cell.*])");
    o.push_str(&septa_sysdesc::cells::explain(sys));
}

/// What `[timer]` expanded into.
fn timer(o: &mut String, sys: &System) {
    let Some(t) = &sys.timer else { return };
    title(o, "Timer subsystem ([timer])");
    let _ = writeln!(
        o,
        "EL1 physical timer, IRQ {}: driver {}",
        t.irq, sys.pds[t.driver].name
    );
    for (i, p) in t.clients.iter().enumerate() {
        let _ = writeln!(
            o,
            "  client {i}: {} (driver channel {})",
            sys.pds[*p].name,
            1 + i
        );
    }
}

/// Each virtio device: its transport, interrupt and host end.
fn virtio_devices(o: &mut String, sys: &System) {
    if sys.virtio.is_empty() {
        return;
    }
    title(o, "Virtio devices");
    for v in &sys.virtio {
        let (base, irq) = sys
            .device(&v.name)
            .map(|d| (d.range.base, d.irqs.first().copied().unwrap_or(0)))
            .unwrap_or_default();
        let host = match v.kind {
            septa_sysdesc::VirtioKind::Console => {
                format!("host end: socket console-{}.sock", v.name)
            }
            septa_sysdesc::VirtioKind::Net => {
                let fwd: Vec<String> = sys
                    .forwards
                    .iter()
                    .filter(|f| sys.forward_device(f).is_some_and(|d| d.name == v.name))
                    .map(|f| format!("{} 127.0.0.1:{} -> {}", f.proto, f.host, f.guest))
                    .collect();
                if fwd.is_empty() {
                    "no forwarded ports".into()
                } else {
                    format!("forwards {}", fwd.join(", "))
                }
            }
            septa_sysdesc::VirtioKind::Blk => format!(
                "backed by {}",
                v.file
                    .as_deref()
                    .unwrap_or(std::path::Path::new("?"))
                    .display()
            ),
        };
        let _ = writeln!(
            o,
            "{}: {} on transport {} ({} at {base:#x}, IRQ {irq}); {host}",
            v.name, v.kind, v.slot, v.transport
        );
    }
}

/// Each `[blk]` section: the PDs made for it, and every partition with
/// where it lies and who has it.
fn block_subsystems(o: &mut String, sys: &System) {
    if sys.blk.is_empty() {
        return;
    }
    title(o, "Block subsystems");
    for d in &sys.blk {
        let _ = writeln!(
            o,
            "{}: {} table; driver PD {}, virtualiser PD {}",
            d.device, d.table, d.driver, d.virt
        );
        for p in &d.partitions {
            let who = match &p.client {
                Some(c) => {
                    let channel = sys
                        .pd_index(c)
                        .and_then(|ci| {
                            sys.channels.iter().flat_map(|ch| [&ch.a, &ch.b]).find(|e| {
                                e.pd == ci && e.setvar_id.as_deref() == Some("blk_channel")
                            })
                        })
                        .map_or("?".to_string(), |e| e.id.to_string());
                    format!(
                        "client {c} (channel {channel}, queue {}, data {})",
                        p.queue,
                        septa_sysdesc::units::fmt_size(p.data)
                    )
                }
                None => "no client".to_string(),
            };
            let _ = writeln!(
                o,
                "  partition {} `{}`: sectors {}..{} ({}); {who}",
                p.index,
                p.name,
                p.first_sector,
                p.first_sector + p.sectors,
                septa_sysdesc::units::fmt_size(p.sectors * 512)
            );
        }
    }
}

/// Each IRQ, its trigger, and the notification it signals.
fn irqs(o: &mut String, b: &Built) {
    let spec = b.spec();
    if spec.irqs.is_empty() {
        return;
    }
    title(o, "IRQs");
    for q in &spec.irqs {
        let _ = writeln!(
            o,
            "IRQ {} ({}) to {} with badge {:#x}",
            q.irq,
            if q.edge { "edge" } else { "level" },
            b.name(q.notification),
            q.badge
        );
    }
}

/// Every object, its kind and size, and its address (fixed, or as the
/// build-time simulation placed it).
fn objects(o: &mut String, i: &Inputs) {
    let spec = i.built.spec();
    title(o, "Objects");
    for (id, ob) in spec.objects.iter().enumerate() {
        let at = match (ob.paddr, i.fit.paddrs.get(id).copied().flatten()) {
            (Some(p), _) => format!("fixed at {p:#x}"),
            (None, Some(p)) => format!("simulated at {p:#x}"),
            (None, None) => String::new(),
        };
        let fill = if ob.fill.is_empty() {
            String::new()
        } else {
            format!(
                ", {} filled",
                human(ob.fill.iter().map(|f| u64::from(f.len)).sum())
            )
        };
        let _ = writeln!(o, "{id:>6} {:<40} {}{fill} {at}", ob.name, kind(ob.kind));
    }
}

/// Each VM: its guest-physical memory, run by run, with the physical
/// memory behind it; what the VMM emulates; and the guest the tool
/// prepared, if it did.
fn virtual_machines(o: &mut String, i: &Inputs) {
    let spec = i.built.spec();
    for (p, pd) in i.system.pds.iter().enumerate() {
        let Some(vm) = &pd.vm else { continue };
        title(o, &format!("VM {} (run by PD {})", vm.name, pd.name));
        let _ = writeln!(
            o,
            "{} vCPU{} (ids {}), priority {}, budget {} us, period {} us",
            vm.vcpus.len(),
            if vm.vcpus.len() == 1 { "" } else { "s" },
            vm.vcpus
                .iter()
                .map(|v| v.id.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            vm.priority,
            vm.budget_us,
            vm.period_us
        );
        let space = format!("vm.{}.vspace", vm.name);
        let Some(vs) = spec.objects.iter().position(|ob| ob.name == space) else {
            continue;
        };
        let _ = writeln!(o, "guest-physical to physical:");
        // Consecutive frames of one region at consecutive addresses on both
        // sides make one line.
        let mut runs: Vec<(u64, u64, u64, String, bool, String)> = Vec::new();
        for m in spec.mappings.iter().filter(|m| m.vspace == vs as u32) {
            let id = m.object as usize;
            let ob = &spec.objects[id];
            let ObjectKind::Frame { size_bits } = ob.kind else {
                continue;
            };
            let size = 1u64 << size_bits;
            let (phys, fixed) = match (ob.paddr, i.fit.paddrs.get(id).copied().flatten()) {
                (Some(p), _) => (p, true),
                (None, Some(p)) => (p, false),
                (None, None) => (0, false),
            };
            let region = ob
                .name
                .strip_prefix("region.")
                .and_then(|r| r.rsplit_once('.'))
                .map_or(ob.name.to_string(), |(r, _)| r.to_string());
            let a = m.attrs;
            let perms: String = [(a.read, 'r'), (a.write, 'w'), (a.execute, 'x')]
                .iter()
                .map(|&(on, c)| if on { c } else { '-' })
                .collect();
            if let Some(last) = runs.last_mut() {
                if last.3 == region
                    && last.1 == m.vaddr
                    && last.2 + (last.1 - last.0) == phys
                    && last.5 == perms
                {
                    last.1 += size;
                    continue;
                }
            }
            runs.push((m.vaddr, m.vaddr + size, phys, region, fixed, perms));
        }
        for (start, end, phys, region, fixed, perms) in runs {
            let _ = writeln!(
                o,
                "  {start:#012x}..{end:#012x} {perms} {region:<16} -> {phys:#x}..{:#x} ({})",
                phys + (end - start),
                if fixed { "fixed" } else { "simulated" }
            );
        }
        use septa_vm_layout::map as m;
        let _ = writeln!(
            o,
            "emulated by the VMM: GICv2 distributor at {:#x}, PL011 at {:#x} (INTID {}), virtio-mmio transports from {:#x}",
            m::GICD_BASE,
            m::UART_BASE,
            m::SPI_BASE + m::UART_SPI,
            m::VIRTIO_MMIO_BASE
        );
        if let Some((base, size)) = vm.guest.shared {
            let ram: u64 = vm
                .ram(|n| i.system.region(n).map(|r| r.size))
                .iter()
                .map(|r| r.1)
                .sum();
            let _ = writeln!(
                o,
                "sealed: the VMM maps only the shared window {base:#x}..{:#x} ({} KiB of {} KiB guest memory, {:.1}%); the guest's RAM it never maps (the initializer loads the guest), and its devices' rings and buffers must lie in the window",
                base + size,
                size >> 10,
                (size + ram) >> 10,
                size as f64 * 100.0 / (size + ram) as f64
            );
        }
        for d in &vm.guest.devices {
            let _ = writeln!(
                o,
                "guest device {}: {} on transport {} (not emulated yet: the guest finds no device there)",
                d.name, d.kind, d.slot
            );
        }
        if let Some(g) = i.guests.iter().find(|g| g.pd == p) {
            let a = &g.artefacts;
            let len = |f: &std::path::Path| std::fs::metadata(f).map_or(0, |m| m.len());
            let _ = writeln!(
                o,
                "guest kernel: {} ({} bytes{}), at {:#x}",
                a.kernel.display(),
                len(&a.kernel),
                a.release
                    .as_deref()
                    .map(|r| format!(", Debian {r}"))
                    .unwrap_or_default(),
                a.placement.kernel
            );
            let _ = writeln!(
                o,
                "guest initrd: {} ({} bytes), at {:#x}",
                a.initrd.display(),
                len(&a.initrd),
                a.placement.initrd
            );
            let _ = writeln!(
                o,
                "guest device tree: {} ({} bytes), at {:#x}; bootargs {:?}",
                a.dtb.display(),
                len(&a.dtb),
                a.placement.dtb,
                a.tree.bootargs
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use std::path::{Path, PathBuf};

    /// The descriptions a report is checked on: the default system, every
    /// test system the initializer realises, and the two-format pairs.
    fn descriptions() -> Vec<PathBuf> {
        let root = testkit::repo();
        let mut out = vec![root.join("system.toml")];
        for folder in ["tests/systems", "tests/sysdesc/same-spec"] {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(folder))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for d in dirs {
                let Some(file) = crate::harness::description_in(&d) else {
                    continue;
                };
                // A system that is its own root task has no spec; one
                // without PDs has an empty one.
                if crate::pack::root_task(&file).unwrap().is_some() {
                    continue;
                }
                match septa_sysdesc::load(&file) {
                    Ok(l) if !l.system.pds.is_empty() => out.push(file),
                    Ok(_) => {}
                    Err(r) => assert!(
                        r.errors().all(|d| d.code() == "septa::system::no_pd"),
                        "{}: {}",
                        file.display(),
                        r.render()
                    ),
                }
            }
        }
        out
    }

    /// The lines of a report's section, from its title to the blank line.
    fn section<'a>(report: &'a str, title: &str) -> &'a str {
        let start = report
            .find(&format!("\n{title}\n"))
            .unwrap_or_else(|| panic!("no section {title:?} in\n{report}"));
        let rest = &report[start + 1..];
        &rest[..rest.find("\n\n").unwrap_or(rest.len())]
    }

    fn report_of(file: &Path) -> (System, String) {
        let (sys, composed) = testkit::compose(file);
        let text = composed.report(&sys, "kernel.elf", 0, &[]);
        (sys, text)
    }

    #[test]
    fn every_pd_region_and_mapping_is_reported_with_its_address() {
        let files = descriptions();
        // The default system, nine test systems, two pairs at least.
        assert!(files.len() >= 10, "{files:?}");
        for file in &files {
            let (sys, text) = report_of(file);
            let at = |what: &str| format!("{}: {what}", file.display());
            for pd in &sys.pds {
                let sec = section(&text, &format!("PD {}", pd.name));
                let program = match &pd.program {
                    septa_sysdesc::Program::Crate(c) => c.clone(),
                    septa_sysdesc::Program::Elf(p) => p.display().to_string(),
                };
                assert!(
                    sec.contains(&format!("program: {program}\n")),
                    "{}",
                    at(sec)
                );
                assert!(sec.contains("entry: 0x200000, stack: "), "{}", at(sec));
                assert!(
                    sec.contains(&format!("priority: {},", pd.priority)),
                    "{}",
                    at(sec)
                );
                for m in &pd.maps {
                    let region = sys.region(&m.region).unwrap();
                    // The first frame of the region, mapped at the map's
                    // address, a page long, with the map's permissions.
                    let perms: String = [
                        (m.perms.read, 'r'),
                        (m.perms.write, 'w'),
                        (m.perms.execute, 'x'),
                    ]
                    .iter()
                    .map(|&(on, c)| if on { c } else { '-' })
                    .collect();
                    let line = format!(
                        "  {:#014x}..{:#014x} {perms}{} region.{}.0",
                        m.vaddr,
                        m.vaddr + region.page_size,
                        if m.cached { "  " } else { " u" },
                        m.region
                    );
                    assert!(
                        sec.contains(&line),
                        "{}",
                        at(&format!("no {line:?} in\n{sec}"))
                    );
                }
                if pd.passive {
                    assert!(sec.contains(", passive\n"), "{}", at(sec));
                }
            }
            let regions = section(&text, "Regions");
            for r in &sys.regions {
                let line = regions
                    .lines()
                    .find(|l| l.starts_with(&format!("{}: ", r.name)))
                    .unwrap_or_else(|| panic!("{}", at(&format!("no region {}", r.name))));
                // Where it is: fixed, chosen by the tool for a setvar, or
                // the allocation simulation's prediction; never unknown.
                let addr = line
                    .split(" at 0x")
                    .nth(1)
                    .map(|rest| {
                        &rest[..rest
                            .find(|c: char| !c.is_ascii_hexdigit())
                            .unwrap_or(rest.len())]
                    })
                    .unwrap_or_else(|| panic!("{}", at(&format!("no address in {line:?}"))));
                let addr = u64::from_str_radix(addr, 16).unwrap();
                if let Some(p) = r.phys {
                    assert_eq!(addr, p, "{}", at(line));
                }
                assert_eq!(addr % r.page_size, 0, "{}", at(line));
                for pd in &sys.pds {
                    for m in pd.maps.iter().filter(|m| m.region == r.name) {
                        let user = format!("{}@{:#x} {}", pd.name, m.vaddr, m.perms);
                        assert!(
                            line.contains(&user),
                            "{}",
                            at(&format!("no {user:?} in {line:?}"))
                        );
                    }
                }
            }
            let channels = section(&text, "Channels");
            assert_eq!(
                channels.lines().count(),
                2 + sys.channels.len(),
                "{}",
                at(channels)
            );
            for c in &sys.channels {
                let a = format!("{}:{}", sys.pds[c.a.pd].name, c.a.id);
                let b = format!("{}:{}", sys.pds[c.b.pd].name, c.b.id);
                assert!(
                    channels
                        .lines()
                        .any(|l| l.starts_with(&a) && l.contains(&format!("<-> {b}"))),
                    "{}",
                    at(&format!("no channel {a} <-> {b} in\n{channels}"))
                );
            }
            let irqs: usize = sys.pds.iter().map(|p| p.irqs.len()).sum();
            if irqs > 0 {
                assert_eq!(
                    section(&text, "IRQs").lines().count(),
                    2 + irqs,
                    "{}",
                    at(&text)
                );
            }
        }
    }

    #[test]
    fn a_region_set_by_a_setvar_is_reported_where_the_pd_was_told() {
        // `stats_paddr` in the `calls` pair: the address the counter's
        // image was patched with is the one the report gives the region.
        let file = testkit::repo().join("tests/sysdesc/same-spec/calls/system.toml");
        let (_, text) = report_of(&file);
        let sec = section(&text, "PD counter");
        let told = sec
            .lines()
            .find_map(|l| l.trim().strip_prefix("stats_paddr"))
            .and_then(|rest| rest.trim().strip_prefix("= "))
            .unwrap_or_else(|| panic!("no stats_paddr patch in\n{sec}"));
        let regions = section(&text, "Regions");
        let line = regions.lines().find(|l| l.starts_with("stats: ")).unwrap();
        assert!(
            line.contains(&format!("8 KiB in 4 KiB pages, at {told};")),
            "{line} / {told}"
        );
    }

    #[test]
    fn virtio_devices_are_reported_on_their_transports() {
        let (_, text) = report_of(&testkit::repo().join("tests/systems/console-probe/system.toml"));
        let sec = section(&text, "Virtio devices");
        assert!(
            sec.contains(
                "console: console on transport 31 (virtio-mmio31 at 0xa003e00, IRQ 79); \
                 host end: socket console-console.sock"
            ),
            "{sec}"
        );
    }

    #[test]
    fn a_vms_guest_memory_is_reported_with_the_physical_memory_behind_it() {
        let (_, text) = report_of(&testkit::repo().join("tests/systems/vm-boot/system.toml"));
        let sec = section(&text, "VM linux (run by PD vmm)");
        assert!(sec.contains("1 vCPU (ids 0), priority 100"), "{sec}");
        // 128 MiB of RAM in runs of contiguous physical memory that cover
        // 0x4000_0000..0x4800_0000 with no gap; the GIC's virtual CPU
        // interface at its fixed address.
        let mut at = 0x4000_0000u64;
        for l in sec.lines().filter(|l| l.contains(" rwx guest_ram ")) {
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            let (from, to) = l
                .trim()
                .split_once(' ')
                .unwrap()
                .0
                .split_once("..")
                .unwrap();
            assert_eq!(hex(from), at, "{sec}");
            at = hex(to);
            assert!(l.ends_with("(simulated)"), "{l}");
        }
        assert_eq!(at, 0x4800_0000, "{sec}");
        assert!(
            sec.contains(
                "0x0008010000..0x0008012000 rw- gic_vcpu         -> 0x8040000..0x8042000 (fixed)"
            ),
            "{sec}"
        );
        assert!(sec.contains("PL011 at 0x9000000 (INTID 33)"), "{sec}");
    }

    #[test]
    fn slot_roles_follow_the_microkit_layout() {
        assert_eq!(slot_role(1), "input");
        assert_eq!(slot_role(15), "notify channel 5");
        assert_eq!(slot_role(74 + 61), "pp channel 61");
        assert_eq!(slot_role(138), "IRQ channel 0");
        assert_eq!(slot_role(202 + 3), "child TCB 3");
        assert_eq!(slot_role(9), "user");
    }

    #[test]
    fn rights_print_compactly() {
        assert_eq!(rights(septa_spec::Rights::RWG), "RWG");
        assert_eq!(rights(septa_spec::Rights::default()), "-");
    }
}
