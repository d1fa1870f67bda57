//! Scheduling domains: each domain's id and the kernel's domain schedule,
//! from the description's `[domain.*]` and `[domain_schedule]` (or
//! Microkit's `<domains>`).
//!
//! Ids: a domain keeps the id its author gave it; the others take the
//! smallest ids nobody gave, in the order they are written (Microkit
//! assigns the smallest unused id too, in no fixed order). Durations become
//! timer ticks at the board's frequency, rounded to the nearest tick, as
//! Microkit's initialiser guarantees; an end marker is the entry (0, 0).
//! The front end has already checked names, ranges and lengths.
//!
//! Input: the validated system. Output: the domain of each PD (by name) and
//! the schedule the initializer hands the kernel.

use std::collections::{BTreeSet, HashMap};

use septa_spec::DomainSchedule;
use septa_sysdesc::{DomainDuration, ScheduleEntry, System};

/// What the system's domains come to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Domains {
    /// Each domain's id, by name.
    pub ids: HashMap<String, u8>,
    pub schedule: Option<DomainSchedule>,
}

impl Domains {
    /// The domain of a PD that names `domain` (0 without one).
    pub fn of(&self, domain: Option<&str>) -> u8 {
        domain.and_then(|d| self.ids.get(d)).copied().unwrap_or(0)
    }
}

/// Ticks of a schedule entry's duration at `hz`, to the nearest tick.
pub fn ticks(d: &DomainDuration, hz: u64) -> u64 {
    match *d {
        DomainDuration::Ticks(t) => t,
        DomainDuration::Us(us) => {
            let t = (u128::from(us) * u128::from(hz) + 500_000) / 1_000_000;
            u64::try_from(t).unwrap_or(u64::MAX)
        }
    }
}

/// The ids and the schedule of `sys`'s domains (nothing without any).
pub fn build(sys: &System) -> Domains {
    let Some(d) = &sys.domains else {
        return Domains::default();
    };
    let taken: BTreeSet<u64> = d.domains.iter().filter_map(|x| x.id).collect();
    let mut free = (0u64..).filter(|i| !taken.contains(i));
    let ids = d
        .domains
        .iter()
        .map(|x| {
            let id = x.id.unwrap_or_else(|| free.next().unwrap_or(0));
            (x.name.clone(), id as u8)
        })
        .collect::<HashMap<_, _>>();
    let schedule = d.schedule.as_ref().map(|s| {
        let entries = s
            .entries
            .iter()
            .map(|e| match e {
                ScheduleEntry::Run { domain, duration } => (
                    ids.get(domain).copied().unwrap_or(0),
                    ticks(duration, sys.board.kernel.timer_hz),
                ),
                ScheduleEntry::End => (0, 0),
            })
            .collect();
        let first_index = s.index_shift.unwrap_or(0);
        DomainSchedule {
            entries,
            first_index,
            start_index: first_index + s.start_index,
        }
    });
    Domains { ids, schedule }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> System {
        septa_sysdesc::parse_str("t.toml", src, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system
    }

    #[test]
    fn ids_fill_the_gaps_and_durations_become_ticks() {
        let sys = load(
            r#"
[system]
board = "qemu-virt"

[pd.a]
program = "a"
domain = "red"

[pd.b]
program = "b"
domain = "blue"

[domain.red]
[domain.green]
id = 0
[domain.blue]

[domain_schedule]
start_index = 1
index_shift = 2
entries = [
    { domain = "green", duration = "1 ms" },
    { domain = "red", duration = "3 us" },
    { domain = "blue", duration = "100 ticks" },
]
"#,
        );
        let d = build(&sys);
        assert_eq!(d.ids["green"], 0);
        assert_eq!((d.ids["red"], d.ids["blue"]), (1, 2));
        assert_eq!(d.of(Some("blue")), 2);
        assert_eq!(d.of(None), 0);
        let s = d.schedule.unwrap();
        // 62.5 MHz: 1 ms is 62,500 ticks, 3 us 187.5, rounded to 188.
        assert_eq!(s.entries, vec![(0, 62_500), (1, 188), (2, 100)]);
        assert_eq!((s.first_index, s.start_index), (2, 3));
    }

    #[test]
    fn no_domains_no_schedule() {
        let sys = load("[system]\nboard = \"qemu-virt\"\n\n[pd.a]\nprogram = \"a\"\n");
        assert_eq!(build(&sys), Domains::default());
    }
}
