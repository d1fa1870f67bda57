//! Rules that relate the items of a system to each other and to the board.
//!
//! The front ends have already checked single values; this stage sees the
//! whole model, whichever format it came from, so both formats obey exactly
//! the same rules. It covers everything Microkit 2.3.0's tool rejects for an
//! aarch64 board, plus Septa's own checks (board memory map, kernel-owned
//! interrupts and devices, restart policies, forwards, passive PDs that could
//! never run, warnings for likely mistakes).

use std::collections::{HashMap, HashSet};

use crate::board::{Arch, Board, Owner};
use crate::check::{self, MAX_PDS, MONITOR_NAME};
use crate::diag::{Kind, Sink, Span};
use crate::model::*;
use crate::units::fmt_size;

pub(crate) fn validate(system: &System, sink: &mut Sink) {
    system_rules(system, sink);
    pd_rules(system, sink);
    board_features(system, sink);
    domain_rules(system, sink);
    irq_rules(system, sink);
    channel_rules(system, sink);
    region_rules(system, sink);
    map_rules(system, sink);
    setvar_rules(system, sink);
    cap_rules(system, sink);
    passive_rules(system, sink);
    forward_rules(system, sink);
    crate::guest::validate(system, sink);
}

fn system_rules(s: &System, sink: &mut Sink) {
    if s.pds.is_empty() {
        sink.emit(Kind::NoPd, None);
    }
    if s.pds.len() > MAX_PDS {
        sink.emit(
            Kind::TooManyPds {
                count: s.pds.len(),
                max: MAX_PDS,
            },
            s.pds[MAX_PDS].src.at("name"),
        );
    }
}

fn pd_rules(s: &System, sink: &mut Sink) {
    let mut seen: HashSet<&str> = HashSet::new();
    for pd in &s.pds {
        if !seen.insert(&pd.name) {
            sink.emit(Kind::DuplicatePd(pd.name.clone()), pd.src.at("name"));
        }
        if pd.name == MONITOR_NAME {
            sink.emit(Kind::ReservedPdName(pd.name.clone()), pd.src.at("name"));
        }
        if pd.parent.is_some() && pd.restart != Restart::default() {
            sink.emit(Kind::RestartOnChild(pd.name.clone()), pd.src.at("restart"));
        }
        if let Some(g) = &pd.restart.generation {
            generation_rules(s, sink, pd, g);
        }
    }

    // Children and vCPUs share their parent's id space.
    for (idx, pd) in s.pds.iter().enumerate() {
        let mut ids: HashSet<u64> = HashSet::new();
        for (_, child) in s.children(idx) {
            let Some(id) = child.child_id else { continue };
            if !ids.insert(id) {
                sink.emit(
                    Kind::DuplicateChildId {
                        id,
                        pd: pd.name.clone(),
                    },
                    child.src.at("id"),
                );
            }
            if let Some(vm) = &pd.vm {
                if vm.vcpus.iter().any(|v| v.id == id) {
                    sink.emit(
                        Kind::ChildVcpuClash {
                            id,
                            pd: pd.name.clone(),
                        },
                        child.src.at("id"),
                    );
                }
            }
        }
    }

    let mut vm_names: HashSet<&str> = HashSet::new();
    for pd in &s.pds {
        let Some(vm) = &pd.vm else { continue };
        if !vm_names.insert(&vm.name) {
            sink.emit(Kind::DuplicateVm(vm.name.clone()), vm.src.at("name"));
        }
        check::name_length(sink, &vm.name, vm.src.at("name"));
        if vm.vcpus.is_empty() {
            sink.emit(Kind::NoVcpu(vm.name.clone()), vm.src.at("name"));
        }
        let mut ids = HashSet::new();
        for v in &vm.vcpus {
            if !ids.insert(v.id) {
                sink.emit(
                    Kind::DuplicateVcpu {
                        id: v.id,
                        vm: vm.name.clone(),
                    },
                    v.src.at("id"),
                );
            }
        }
    }
}

/// The region where the monitor publishes a PD's restart count.
fn generation_rules(s: &System, sink: &mut Sink, pd: &Pd, region: &str) {
    let at = pd.src.at("restart.generation");
    let Some(r) = s.region(region) else {
        sink.emit(Kind::UnknownRegion(region.to_string()), at);
        return;
    };
    if is_device_region(&s.board, r) {
        sink.emit(
            Kind::GenerationDevice {
                pd: pd.name.clone(),
                region: region.to_string(),
            },
            at,
        );
    }
    if let Some(m) = pd.maps.iter().find(|m| m.region == region && m.perms.write) {
        sink.emit(
            Kind::GenerationWritable {
                pd: pd.name.clone(),
                region: region.to_string(),
            },
            m.src.at("perms"),
        );
    }
}

fn board_features(s: &System, sink: &mut Sink) {
    let b = &s.board;
    let x86 = |sink: &mut Sink, what: &str, span: Option<Span>| {
        if b.arch != Arch::X86_64 {
            sink.emit(
                Kind::X86Only {
                    what: what.to_string(),
                    board: b.name.clone(),
                    arch: b.arch.to_string(),
                },
                span,
            );
        }
    };
    for pd in &s.pds {
        for p in &pd.ioports {
            x86(sink, "I/O ports", p.src.whole());
        }
        for irq in &pd.irqs {
            match irq.kind {
                IrqKind::IoApic { .. } => x86(sink, "I/O APIC interrupts", irq.src.whole()),
                IrqKind::Msi { .. } => x86(sink, "MSI interrupts", irq.src.whole()),
                IrqKind::Arm { .. } => {
                    if b.arch == Arch::X86_64 {
                        sink.emit(
                            Kind::BadValue(
                                "GIC interrupt numbers do not exist on x86-64".to_string(),
                            ),
                            irq.src.at("irq"),
                        );
                    }
                }
            }
        }
        if pd.smc && !b.kernel.smc {
            sink.emit(Kind::NoSmc(b.name.clone()), pd.src.at("smc"));
        }
        if let Some(vm) = &pd.vm {
            if !b.kernel.hypervisor {
                sink.emit(Kind::NoHypervisor(b.name.clone()), vm.src.at("name"));
            }
        }
    }
    for r in &s.regions {
        if let Some(Prefill::BootInfo(k)) = &r.prefill {
            if k.is_x86() {
                x86(sink, "x86 boot-info prefills", r.src.at("prefill_bootinfo"));
            }
        }
    }
    for io in &s.io_spaces {
        if !b.kernel.iommu {
            sink.emit(Kind::NoIommu(b.name.clone()), io.src.at("name"));
        }
    }
}

fn domain_rules(s: &System, sink: &mut Sink) {
    let Some(d) = &s.domains else {
        for pd in &s.pds {
            if pd.domain.is_some() {
                sink.emit(Kind::DomainUndeclared, pd.src.at("domain"));
            }
        }
        return;
    };
    let k = &s.board.kernel;
    let whole = d
        .domains
        .first()
        .and_then(|x| x.src.whole())
        .or(d.schedule.as_ref().and_then(|x| x.src.whole()));
    if k.cores != 1 {
        sink.emit(Kind::DomainSmp, whole);
    }
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for dom in &d.domains {
        if !names.insert(dom.name.as_str()) {
            sink.emit(Kind::DuplicateDomain(dom.name.clone()), dom.src.at("name"));
        }
        if let Some(id) = dom.id {
            if id >= k.domains {
                sink.emit(
                    Kind::DomainIdRange {
                        id: id as i64,
                        max: k.domains,
                    },
                    dom.src.at("id"),
                );
            } else if !ids.insert(id) {
                sink.emit(Kind::DuplicateDomainId { id }, dom.src.at("id"));
            }
        }
    }
    if d.domains.len() as u64 > k.domains {
        sink.emit(
            Kind::TooManyDomains { max: k.domains },
            d.domains[k.domains as usize].src.at("name"),
        );
    }
    match &d.schedule {
        None => sink.emit(Kind::NoDomainSchedule, whole),
        Some(sch) => {
            for (e, src) in sch.entries.iter().zip(&sch.entry_src) {
                if let ScheduleEntry::Run { domain, .. } = e {
                    if !names.contains(domain.as_str()) {
                        sink.emit(Kind::UnknownDomain(domain.clone()), src.at("domain"));
                    }
                }
            }
            let len = sch.entries.len() as u64;
            if len >= k.domain_schedule {
                sink.emit(
                    Kind::ScheduleTooLong {
                        len,
                        max: k.domain_schedule,
                    },
                    sch.src.whole(),
                );
            }
            if sch.start_index >= len {
                sink.emit(
                    Kind::ScheduleStart {
                        index: sch.start_index,
                        len,
                    },
                    sch.src.at("start_index"),
                );
            }
            if let Some(shift) = sch.index_shift {
                if shift.saturating_add(len) >= k.domain_schedule {
                    sink.emit(
                        Kind::ScheduleShift {
                            shift,
                            len,
                            max: k.domain_schedule,
                        },
                        sch.src.at("index_shift"),
                    );
                }
            }
        }
    }
    for pd in &s.pds {
        match &pd.domain {
            None => sink.emit(Kind::PdWithoutDomain(pd.name.clone()), pd.src.at("name")),
            Some(name) if !names.contains(name.as_str()) => {
                sink.emit(Kind::UnknownDomain(name.clone()), pd.src.at("domain"))
            }
            Some(_) => {}
        }
    }
}

fn irq_rules(s: &System, sink: &mut Sink) {
    let b = &s.board;
    let mut owner_of: HashMap<u64, &str> = HashMap::new();
    for pd in &s.pds {
        for irq in &pd.irqs {
            let n = irq.number();
            if let Some(other) = owner_of.get(&n) {
                sink.emit(
                    Kind::DuplicateIrq {
                        irq: n,
                        other: other.to_string(),
                    },
                    irq.src.at_any(&["irq", "device"]),
                );
                continue;
            }
            owner_of.insert(n, &pd.name);
            let IrqKind::Arm {
                irq: num,
                trigger,
                device,
            } = &irq.kind
            else {
                continue;
            };
            let span = irq.src.at_any(&["irq", "device"]);
            if *num < b.kernel.min_irq || *num > b.kernel.max_irq {
                sink.emit(
                    Kind::IrqRange {
                        irq: *num,
                        min: b.kernel.min_irq,
                        max: b.kernel.max_irq,
                        board: b.name.clone(),
                    },
                    span,
                );
                continue;
            }
            match b.irq_source(*num) {
                Some((name, _, Owner::Kernel | Owner::Secure)) => {
                    sink.emit(Kind::KernelIrq { irq: *num, name }, span)
                }
                Some((name, Some(bt), _)) => {
                    let bt_s = bt.to_string();
                    if bt_s != trigger.to_string() {
                        sink.emit(
                            Kind::TriggerMismatch {
                                irq: *num,
                                given: trigger.to_string(),
                                device: device.clone().unwrap_or(name),
                                board: bt_s,
                            },
                            span,
                        );
                    }
                }
                Some(_) => {}
                None => sink.emit(
                    Kind::IrqUnwired {
                        irq: *num,
                        board: b.name.clone(),
                    },
                    span,
                ),
            }
        }
    }
}

fn channel_rules(s: &System, sink: &mut Sink) {
    // Channel and IRQ ids of one PD share one space (they are badge bits).
    let mut ids: Vec<HashSet<u64>> = vec![HashSet::new(); s.pds.len()];
    for (i, pd) in s.pds.iter().enumerate() {
        for irq in &pd.irqs {
            if !ids[i].insert(irq.id) {
                sink.emit(
                    Kind::DuplicateChannelId {
                        id: irq.id,
                        pd: pd.name.clone(),
                    },
                    irq.src.at("id"),
                );
            }
        }
    }
    for ch in &s.channels {
        for end in [&ch.a, &ch.b] {
            if !ids[end.pd].insert(end.id) {
                sink.emit(
                    Kind::DuplicateChannelId {
                        id: end.id,
                        pd: s.pds[end.pd].name.clone(),
                    },
                    end.src.at("id"),
                );
            }
        }
        if ch.a.pp && ch.b.pp {
            sink.emit(Kind::PpcBothWays, ch.src.whole());
            continue;
        }
        for (from, to) in [(&ch.a, &ch.b), (&ch.b, &ch.a)] {
            let (f, t) = (&s.pds[from.pd], &s.pds[to.pd]);
            if from.pp && f.priority >= t.priority {
                sink.emit(
                    Kind::PpcPriority {
                        from: f.name.clone(),
                        from_prio: f.priority,
                        to: t.name.clone(),
                        to_prio: t.priority,
                    },
                    from.src.whole(),
                );
            }
        }
        if !(ch.a.pp || ch.b.pp || ch.a.notify || ch.b.notify) {
            sink.emit(Kind::InertChannel, ch.src.whole());
        }
    }
}

/// Pages of the board's devices, merged.
fn in_device(board: &Board, start: u64, end: u64) -> bool {
    board
        .device_windows(check::SMALL_PAGE)
        .iter()
        .any(|&(s, e)| start >= s && end <= e)
}

fn region_rules(s: &System, sink: &mut Sink) {
    let b = &s.board;
    let mut names = HashSet::new();
    for r in &s.regions {
        if !names.insert(r.name.as_str()) {
            sink.emit(Kind::DuplicateRegion(r.name.clone()), r.src.at("name"));
        }
    }
    let mut fixed: Vec<(&Region, u64, u64)> = Vec::new();
    for r in &s.regions {
        let Some(phys) = r.phys else { continue };
        let span = r.src.at_any(&["phys", "device"]);
        if !phys.is_multiple_of(r.page_size) {
            sink.emit(
                Kind::PhysAlign {
                    phys,
                    page: fmt_size(r.page_size),
                },
                span,
            );
        }
        let Some(end) = phys.checked_add(r.size) else {
            sink.emit(
                Kind::OutsideBoard {
                    name: r.name.clone(),
                    start: phys,
                    end: u64::MAX,
                    board: b.name.clone(),
                },
                span,
            );
            continue;
        };
        for (o, os, oe) in &fixed {
            if phys < *oe && *os < end {
                sink.emit(
                    Kind::RegionOverlap {
                        name: r.name.clone(),
                        start: phys,
                        end,
                        other: o.name.clone(),
                        other_start: *os,
                        other_end: *oe,
                    },
                    span,
                );
            }
        }
        fixed.push((r, phys, end));
        if b.is_ram(phys, end) {
            if let Some(res) = b.reserved.iter().find(|x| x.range.overlaps(phys, end)) {
                sink.emit(
                    Kind::ReservedRam {
                        name: r.name.clone(),
                        start: phys,
                        end,
                        what: res.name.clone(),
                        why: res.why.clone(),
                    },
                    span,
                );
            }
        } else if !in_device(b, phys, end) {
            sink.emit(
                Kind::OutsideBoard {
                    name: r.name.clone(),
                    start: phys,
                    end,
                    board: b.name.clone(),
                },
                span,
            );
        } else if let Some(d) = b
            .devices
            .iter()
            .find(|d| d.owner != Owner::User && d.range.overlaps(phys, end))
        {
            sink.emit(
                Kind::KernelDevice {
                    name: r.name.clone(),
                    start: phys,
                    end,
                    device: d.name.clone(),
                },
                span,
            );
        }
    }
    // Unused regions: never mapped into a PD, a VM or an IO space.
    let mut used: HashSet<&str> = HashSet::new();
    for pd in &s.pds {
        used.extend(pd.maps.iter().map(|m| m.region.as_str()));
        if let Some(vm) = &pd.vm {
            used.extend(vm.maps.iter().map(|m| m.region.as_str()));
        }
    }
    for io in &s.io_spaces {
        used.extend(io.maps.iter().map(|m| m.region.as_str()));
    }
    for r in &s.regions {
        if !used.contains(r.name.as_str()) {
            sink.emit(Kind::UnusedRegion(r.name.clone()), r.src.at("name"));
        }
    }
}

fn is_device_region(b: &Board, r: &Region) -> bool {
    match r.phys {
        Some(p) => {
            let end = p.saturating_add(r.size);
            !b.is_ram(p, end) && in_device(b, p, end)
        }
        None => false,
    }
}

fn check_maps(s: &System, sink: &mut Sink, maps: &[Map], limit: u64, why: &str, space: &str) {
    let mut placed: Vec<(&str, u64, u64)> = Vec::new();
    for m in maps {
        let Some(r) = s.region(&m.region) else {
            sink.emit(Kind::UnknownRegion(m.region.clone()), m.src.at("region"));
            continue;
        };
        let vspan = m.src.at("vaddr");
        if !m.vaddr.is_multiple_of(r.page_size) {
            sink.emit(
                Kind::VaddrAlign {
                    vaddr: m.vaddr,
                    page: fmt_size(r.page_size),
                    region: r.name.clone(),
                },
                vspan,
            );
        }
        if m.vaddr >= limit {
            sink.emit(
                Kind::VaddrTooHigh {
                    vaddr: m.vaddr,
                    max: limit,
                    why: why.to_string(),
                },
                vspan,
            );
            continue;
        }
        // vaddr < limit < 2^40, so the end cannot overflow.
        let end = m.vaddr.saturating_add(r.size);
        if end > limit {
            sink.emit(
                Kind::MapTooHigh {
                    region: r.name.clone(),
                    start: m.vaddr,
                    end,
                    max: limit,
                    why: why.to_string(),
                },
                vspan,
            );
        }
        for (other, os, oe) in &placed {
            if m.vaddr < *oe && *os < end {
                sink.emit(
                    Kind::MapOverlap {
                        region: r.name.clone(),
                        start: m.vaddr,
                        end,
                        other: other.to_string(),
                        other_start: *os,
                        other_end: *oe,
                        space: space.to_string(),
                    },
                    vspan,
                );
            }
        }
        placed.push((&m.region, m.vaddr, end));
        if m.cached && is_device_region(&s.board, r) {
            sink.emit(Kind::CachedDevice(r.name.clone()), m.src.whole());
        }
    }
}

fn map_rules(s: &System, sink: &mut Sink) {
    for pd in &s.pds {
        let limit = check::pd_map_limit(pd.stack_size);
        let why = format!(
            "the stack ({}) and the IPC buffer of PD `{}` fill the top of its address space",
            fmt_size(pd.stack_size),
            pd.name
        );
        check_maps(s, sink, &pd.maps, limit, &why, &format!("PD `{}`", pd.name));
        if let Some(vm) = &pd.vm {
            check_maps(
                s,
                sink,
                &vm.maps,
                check::vm_map_limit(),
                "a guest's physical addresses end where the user address space does",
                &format!("VM `{}`", vm.name),
            );
        }
    }
    for io in &s.io_spaces {
        for m in &io.maps {
            if s.region(&m.region).is_none() {
                sink.emit(Kind::UnknownRegion(m.region.clone()), m.src.at("region"));
            }
        }
    }
}

fn setvar_rules(s: &System, sink: &mut Sink) {
    // Every symbol a PD's image gets patched with, wherever it was asked for.
    let mut per_pd: Vec<Vec<(&str, Option<Span>)>> = vec![Vec::new(); s.pds.len()];
    for (i, pd) in s.pds.iter().enumerate() {
        let list = &mut per_pd[i];
        for m in &pd.maps {
            for (key, v) in [
                ("setvar_vaddr", &m.setvar_vaddr),
                ("setvar_size", &m.setvar_size),
                ("setvar_prefill_size", &m.setvar_prefill_size),
                ("setvar_device", &m.setvar_device),
                ("setvar_device_size", &m.setvar_device_size),
            ] {
                if let Some(sym) = v {
                    list.push((sym, m.src.at(key)));
                }
            }
            for (key, v) in [
                ("setvar_device", &m.setvar_device),
                ("setvar_device_size", &m.setvar_device_size),
            ] {
                let Some(r) = v.as_ref().and_then(|_| s.region(&m.region)) else {
                    continue;
                };
                if r.device.is_none() {
                    sink.emit(
                        Kind::SetvarNoDevice {
                            key,
                            region: r.name.clone(),
                        },
                        m.src.at(key),
                    );
                }
            }
            if m.setvar_prefill_size.is_some() {
                if let Some(r) = s.region(&m.region) {
                    if !matches!(r.prefill, Some(Prefill::File { .. })) {
                        sink.emit(
                            Kind::SetvarNoPrefill(r.name.clone()),
                            m.src.at("setvar_prefill_size"),
                        );
                    }
                }
            }
        }
        for irq in &pd.irqs {
            if let Some(sym) = &irq.setvar_id {
                list.push((sym, irq.src.whole()));
            }
        }
        for p in &pd.ioports {
            for sym in [&p.setvar_id, &p.setvar_addr].into_iter().flatten() {
                list.push((sym, p.src.whole()));
            }
        }
        for sv in &pd.setvars {
            list.push((&sv.symbol, sv.src.at("symbol")));
            if let Some(r) = sv.value.region().filter(|r| s.region(r).is_none()) {
                sink.emit(Kind::UnknownRegion(r.to_string()), sv.src.at("region"));
            }
        }
        if let Some(vm) = &pd.vm {
            for v in &vm.vcpus {
                if let Some(sym) = &v.setvar_id {
                    list.push((sym, v.src.whole()));
                }
            }
        }
        for c in &pd.consts {
            list.push((&c.symbol, pd.src.whole()));
        }
    }
    for (i, pd) in s.pds.iter().enumerate() {
        if let (Some(parent), Some(sym)) = (pd.parent, &pd.setvar_id) {
            per_pd[parent].push((sym, pd.src.at("setvar_id")));
        }
        let _ = i;
    }
    for ch in &s.channels {
        for e in [&ch.a, &ch.b] {
            if let Some(sym) = &e.setvar_id {
                per_pd[e.pd].push((sym, e.src.whole()));
            }
        }
    }
    let mut dups: Vec<(Kind, Option<Span>)> = Vec::new();
    for (i, list) in per_pd.iter().enumerate() {
        let mut seen = HashSet::new();
        for (sym, span) in list {
            // `NAME` and `NAME[0]` are the same bytes.
            let key = check::split_symbol(sym).map(|(n, i)| (n, i.unwrap_or(0)));
            if !seen.insert(key.unwrap_or((sym, 0))) {
                dups.push((
                    Kind::DuplicateSetvar {
                        symbol: sym.to_string(),
                        pd: s.pds[i].name.clone(),
                    },
                    *span,
                ));
            }
        }
    }
    for (k, span) in dups {
        sink.emit(k, span);
    }
}

fn cap_rules(s: &System, sink: &mut Sink) {
    for pd in &s.pds {
        let mut slots = HashSet::new();
        for c in &pd.caps {
            if s.pd_index(&c.pd).is_none() {
                sink.emit(Kind::UnknownPd(c.pd.clone()), c.src.at("pd"));
            } else if c.kind == CapKind::Notification && c.pd != pd.name {
                sink.emit(
                    Kind::CapNotificationOther {
                        pd: pd.name.clone(),
                        other: c.pd.clone(),
                    },
                    c.src.at("pd"),
                );
            }
            if !slots.insert(c.slot) {
                sink.emit(
                    Kind::CapOverlap {
                        slot: c.slot,
                        pd: pd.name.clone(),
                    },
                    c.src.at("slot"),
                );
            }
        }
    }
}

fn passive_rules(s: &System, sink: &mut Sink) {
    for (i, pd) in s.pds.iter().enumerate() {
        if !pd.passive {
            continue;
        }
        let by_channel = s.channels.iter().any(|ch| {
            (ch.a.pd == i && (ch.b.notify || ch.b.pp)) || (ch.b.pd == i && (ch.a.notify || ch.a.pp))
        });
        let reachable =
            by_channel || !pd.irqs.is_empty() || pd.vm.is_some() || s.children(i).next().is_some();
        if !reachable {
            sink.emit(Kind::PassiveUnreachable(pd.name.clone()), pd.src.at("name"));
        }
    }
}

fn forward_rules(s: &System, sink: &mut Sink) {
    let mut seen = HashSet::new();
    for f in &s.forwards {
        if f.host == 0 {
            sink.emit(Kind::ForwardPortZero, f.src.at("host"));
        }
        if f.guest == 0 {
            sink.emit(Kind::ForwardPortZero, f.src.at("guest"));
        }
        if !seen.insert((f.host, f.proto)) {
            sink.emit(
                Kind::DuplicateForward {
                    port: f.host,
                    proto: f.proto.to_string(),
                },
                f.src.at("host"),
            );
        }
        if f.host != 0 && f.host < 1024 {
            sink.emit(Kind::PrivilegedPort(f.host), f.src.at("host"));
        }
        if s.forward_device(f).is_some() {
            continue;
        }
        let nets = s
            .virtio
            .iter()
            .filter(|v| v.kind == VirtioKind::Net)
            .count();
        match &f.device {
            Some(d) => sink.emit(Kind::ForwardDevice(d.clone()), f.src.at("device")),
            None if nets == 0 => sink.emit(Kind::ForwardNoNet, f.src.whole()),
            None => sink.emit(Kind::ForwardAmbiguous(nets), f.src.whole()),
        }
    }
}

/// After validation: raise the page size of regions whose author left it
/// open, as Microkit does, when the size, the physical address and every
/// mapping allow large pages.
pub(crate) fn choose_page_sizes(s: &mut System) {
    let large = *check::PAGE_SIZES.last().expect("page sizes");
    let mut addrs: HashMap<String, Vec<u64>> = HashMap::new();
    for pd in &s.pds {
        let vm_maps = pd.vm.iter().flat_map(|v| v.maps.iter());
        for m in pd.maps.iter().chain(vm_maps) {
            addrs.entry(m.region.clone()).or_default().push(m.vaddr);
        }
    }
    let io_regions: HashSet<String> = s
        .io_spaces
        .iter()
        .flat_map(|i| i.maps.iter().map(|m| m.region.clone()))
        .collect();
    for r in &mut s.regions {
        if r.page_size_given || io_regions.contains(&r.name) || !r.size.is_multiple_of(large) {
            continue;
        }
        let ok = addrs
            .get(&r.name)
            .map(|v| v.iter().all(|a| a.is_multiple_of(large)))
            .unwrap_or(true)
            && r.phys.is_none_or(|p| p.is_multiple_of(large));
        if ok {
            r.page_size = large;
        }
    }
}
