//! `[timer]` (Septa's addition): the timer subsystem in a line.
//!
//! ```toml
//! [timer]
//! clients = ["net", "shell"]
//! ```
//!
//! becomes a timer driver PD (`timer_driver`, program `timer`, above every
//! client so that they can call it) that alone takes the EL1 physical
//! timer's interrupt (the board's `phys-timer` PPI), and per client one
//! channel: the client may call the driver (sDDF 0.7's timer protocol,
//! `septa-timer-protocol`) and the driver notifies it when its timeout
//! falls due. Client `i` is on the driver's channel `1 + i`, on its own
//! lowest free id, which the tool writes into the client's
//! `septa_timer_channel` (the id plus one) for `septa_runtime::timer`.
//! There is nothing to share but the channel: the timer has no queues.

use septa_timer_protocol::wiring::{self, MAX_CLIENTS};

use crate::board::Owner;
use crate::diag::{Kind, Sink, Span};
use crate::expand::{channel, end, free_ids, pd};
use crate::model::*;

/// The PD the expansion adds, its program and priority (above any client:
/// clients call it).
pub const DRIVER: &str = "timer_driver";
pub const DRIVER_PROGRAM: &str = "timer";
pub const DRIVER_PRIORITY: u8 = 254;

/// The board's PPI the driver takes.
const PPI: &str = "phys-timer";

/// What the front end read from `[timer]`.
pub(crate) struct Wanted {
    pub clients: Vec<(String, Option<Span>)>,
    pub whole: Span,
}

/// Checks `[timer]` against the system and, if it is sound, adds the
/// subsystem to it.
pub(crate) fn expand(system: &mut System, w: Wanted, sink: &mut Sink) {
    let errors = sink.out.len();
    let irq = match system
        .board
        .ppis
        .iter()
        .find(|p| p.name == PPI && p.owner == Owner::User)
    {
        Some(p) => Some(p.irq),
        None => {
            sink.emit(
                Kind::TimerNoDevice {
                    board: system.board.name.clone(),
                },
                Some(w.whole),
            );
            None
        }
    };
    if let Some(p) = system.pd_index(DRIVER) {
        sink.emit(
            Kind::TimerNameTaken {
                name: DRIVER.into(),
            },
            system.pds[p].src.at("name"),
        );
    }
    let mut clients: Vec<(usize, u64)> = Vec::new();
    for (name, span) in &w.clients {
        let Some(p) = system.pd_index(name) else {
            sink.emit(Kind::TimerUnknownClient(name.clone()), *span);
            continue;
        };
        if clients.iter().any(|(c, _)| *c == p) {
            sink.emit(Kind::TimerDuplicateClient(name.clone()), *span);
            continue;
        }
        let pd = &system.pds[p];
        if pd.priority >= DRIVER_PRIORITY {
            sink.emit(
                Kind::TimerClientPriority {
                    pd: name.clone(),
                    priority: pd.priority,
                    driver: DRIVER_PRIORITY,
                },
                *span,
            );
        }
        if pd.passive {
            sink.emit(Kind::TimerPassiveClient(name.clone()), *span);
        }
        let Some(id) = free_ids(system, p).next() else {
            sink.emit(Kind::TimerNoFreeChannel(name.clone()), *span);
            continue;
        };
        clients.push((p, id));
    }
    if clients.len() > MAX_CLIENTS {
        sink.emit(
            Kind::TimerTooManyClients {
                count: clients.len(),
                max: MAX_CLIENTS,
            },
            w.clients.get(MAX_CLIENTS).and_then(|c| c.1),
        );
    }
    let Some(irq) = irq else { return };
    if sink.out[errors..].iter().any(|d| !d.is_warning()) {
        return;
    }

    let src = Src::new(w.whole);
    let d = system.pds.len();
    let mut driver = pd(
        DRIVER,
        DRIVER_PROGRAM,
        DRIVER_PRIORITY,
        Subsystem::Timer,
        &src,
    );
    driver.irqs.push(Irq {
        id: u64::from(wiring::IRQ),
        kind: IrqKind::Arm {
            irq,
            trigger: Trigger::Level,
            device: Some(PPI.into()),
        },
        setvar_id: None,
        src: src.clone(),
    });
    system.pds.push(driver);
    for (i, (p, id)) in clients.iter().enumerate() {
        let driver_id = wiring::client_channel(i).map_or(0, u64::from);
        system.channels.push(channel(
            End {
                pp: true,
                ..end(*p, *id, None, &src)
            },
            end(d, driver_id, None, &src),
            &src,
        ));
        system.pds[*p].consts.push(Const {
            symbol: wiring::CLIENT.into(),
            bytes: (id + 1).to_le_bytes().to_vec(),
            what: "timer channel + 1".into(),
        });
    }
    system.timer = Some(Timer {
        driver: d,
        irq,
        clients: clients.iter().map(|(p, _)| *p).collect(),
        src,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, Format};

    #[test]
    fn clients_call_the_driver_which_alone_takes_the_timer() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.a]
program = "a"
priority = 10

[pd.b]
program = "b"
priority = 20

[[channel]]
a = { pd = "a", id = 0 }
b = { pd = "b", id = 0 }

[timer]
clients = ["b", "a"]
"#;
        let s = parse_str("t.toml", text, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system;
        let t = s.timer.as_ref().unwrap();
        let driver = &s.pds[t.driver];
        assert_eq!((driver.name.as_str(), driver.priority), (DRIVER, 254));
        assert_eq!(driver.irqs[0].number(), 30);
        assert!(driver.maps.is_empty(), "the timer maps nothing");
        // b is client 0 (driver channel 1), a client 1 (channel 2); each on
        // its own first free id, 1, and may call.
        let ends: Vec<(String, u64, u64, bool)> = s
            .channels
            .iter()
            .filter(|c| c.b.pd == t.driver)
            .map(|c| (s.pds[c.a.pd].name.clone(), c.a.id, c.b.id, c.a.pp))
            .collect();
        assert_eq!(ends, [("b".into(), 1, 1, true), ("a".into(), 1, 2, true)]);
        let a = &s.pds[s.pd_index("a").unwrap()];
        assert_eq!(a.consts[0].symbol, wiring::CLIENT);
        assert_eq!(a.consts[0].bytes, 2u64.to_le_bytes(), "channel 1, plus one");
    }
}
