//! What every subsystem's expansion (`[serial]`, `[timer]`, `[net]`)
//! builds with: generated PDs, maps, regions and channel ends, with the
//! span of the subsystem's table, the channel ids a PD has free, and room
//! in a client's address space.

use crate::check::{DEFAULT_STACK, MAX_ID, SMALL_PAGE};
use crate::model::*;

/// Channel ids PD `pd` does not use yet, lowest first.
pub(crate) fn free_ids(system: &System, pd: usize) -> impl Iterator<Item = u64> {
    let mut used = [false; MAX_ID as usize + 1];
    for ch in &system.channels {
        for end in [&ch.a, &ch.b] {
            if end.pd == pd && end.id <= MAX_ID {
                used[end.id as usize] = true;
            }
        }
    }
    for irq in &system.pds[pd].irqs {
        if irq.id <= MAX_ID {
            used[irq.id as usize] = true;
        }
    }
    (0..=MAX_ID).filter(move |id| !used[*id as usize])
}

pub(crate) fn map(region: String, vaddr: u64, src: &Src) -> Map {
    Map {
        region,
        vaddr,
        perms: Perms::READ_WRITE,
        cached: true,
        setvar_vaddr: None,
        setvar_size: None,
        setvar_prefill_size: None,
        setvar_device: None,
        setvar_device_size: None,
        src: src.clone(),
    }
}

pub(crate) fn pd(name: &str, program: &str, priority: u8, subsystem: Subsystem, src: &Src) -> Pd {
    Pd {
        name: name.into(),
        parent: None,
        child_id: None,
        setvar_id: None,
        program: Program::Crate(program.into()),
        symbols: None,
        priority,
        budget_us: 1000,
        period_us: 1000,
        passive: false,
        stack_size: DEFAULT_STACK,
        cpu: 0,
        smc: false,
        fpu: true,
        domain: None,
        restart: Restart::default(),
        maps: Vec::new(),
        irqs: Vec::new(),
        setvars: Vec::new(),
        ioports: Vec::new(),
        caps: Vec::new(),
        vm: None,
        consts: Vec::new(),
        subsystem: Some(subsystem),
        src: src.clone(),
    }
}

pub(crate) fn region(name: String, size: u64, src: &Src) -> Region {
    Region {
        name,
        size,
        page_size: SMALL_PAGE,
        page_size_given: false,
        phys: None,
        device: None,
        prefill: None,
        src: src.clone(),
    }
}

pub(crate) fn end(pd: usize, id: u64, setvar_id: Option<&str>, src: &Src) -> End {
    End {
        pd,
        id,
        pp: false,
        notify: true,
        setvar_id: setvar_id.map(String::from),
        src: src.clone(),
    }
}

pub(crate) fn channel(a: End, b: End, src: &Src) -> Channel {
    Channel {
        a,
        b,
        src: src.clone(),
    }
}

/// Where the tool starts looking for room for a client's shared regions.
pub const CLIENT_VADDR: u64 = 0x10_0000_0000;

/// The first address from [`CLIENT_VADDR`] where `size` bytes are free in
/// PD `pd`'s address space.
pub(crate) fn room(system: &System, pd: usize, size: u64) -> u64 {
    let spans: Vec<(u64, u64)> = system.pds[pd]
        .maps
        .iter()
        .filter_map(|m| {
            let r = system.region(&m.region)?;
            Some((m.vaddr, m.vaddr.saturating_add(r.size)))
        })
        .collect();
    let mut at = CLIENT_VADDR;
    while let Some(&(_, end)) = spans
        .iter()
        .find(|(s, e)| at < *e && *s < at.saturating_add(size))
    {
        at = end.next_multiple_of(SMALL_PAGE);
    }
    at
}

/// The PDs that map `region`, by name (for the expansions' tests).
#[cfg(test)]
pub(crate) fn mappers(s: &System, region: &str) -> Vec<String> {
    s.pds
        .iter()
        .filter(|p| p.maps.iter().any(|m| m.region == region))
        .map(|p| p.name.clone())
        .collect()
}
