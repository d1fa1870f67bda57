//! `[serial]` (Septa's addition): the serial subsystem in a few lines.
//!
//! ```toml
//! [serial]
//! clients = ["greeter", { pd = "shell", prefix = "sh| ", colour = "cyan" }]
//! input = ["shell"]
//! ```
//!
//! becomes what `septa_serial_protocol::wiring` describes, with least
//! authority: a PL011 driver PD (`serial_driver`, program `pl011`) that
//! alone maps the UART and takes its interrupt; a transmit virtualiser
//! (`serial_virt_tx`) and, if any client takes input, a receive
//! virtualiser (`serial_virt_rx`), each mapping only its queues; and per
//! client one queue region each way, shared with that virtualiser alone,
//! mapped into the client at the first free addresses from
//! [`CLIENT_VADDR`], with the client's channels on its lowest free ids and
//! the runtime's symbols patched to name them. The virtualisers' labels
//! (names, prefixes, colours) are written into their images as a
//! [`Const`]. The receive virtualiser is a client of the transmit one (it
//! prints who has the keyboard).
//!
//! Errors are reported at the key that causes them and nothing is added,
//! so a mistake never cascades into errors about generated items.

use septa_serial_protocol::config::{Colour, Config, Label, PREFIX_LEN, SIZE as CONFIG_SIZE};
use septa_serial_protocol::region as qregion;
use septa_serial_protocol::wiring::{self, MAX_CLIENTS};

use crate::check::SMALL_PAGE;
use crate::diag::{Kind, Sink, Span};
use crate::expand::{channel, end, free_ids, map, pd, region, room};
use crate::model::*;

/// The PDs the expansion adds.
pub const DRIVER: &str = "serial_driver";
pub const VIRT_TX: &str = "serial_virt_tx";
pub const VIRT_RX: &str = "serial_virt_rx";
/// Their programs.
pub const DRIVER_PROGRAM: &str = "pl011";
pub const VIRT_TX_PROGRAM: &str = "serial-virt-tx";
pub const VIRT_RX_PROGRAM: &str = "serial-virt-rx";
/// Their priorities: the driver above the virtualisers, the virtualisers
/// above their clients (sDDF's order), so a client that notifies is
/// served before it runs on.
pub const DRIVER_PRIORITY: u8 = 254;
pub const VIRT_TX_PRIORITY: u8 = 253;
pub const VIRT_RX_PRIORITY: u8 = 252;

/// The driver's and the virtualisers' own maps (they have no others).
const UART_VADDR: u64 = 0x2000_0000;
const DRIVER_TX_VADDR: u64 = 0x2001_0000;
const DRIVER_RX_VADDR: u64 = 0x2010_0000;
const VIRT_DRIVER_VADDR: u64 = 0x2000_0000;
const VIRT_CLIENTS_VADDR: u64 = 0x2010_0000;

/// Smallest and largest client queue.
const MIN_CAPACITY: u64 = SMALL_PAGE;
const MAX_CAPACITY: u64 = 1 << 20;

/// What the front end read for one client.
pub(crate) struct WantedClient {
    pub pd: String,
    pub span: Option<Span>,
    pub prefix: Option<(String, Option<Span>)>,
    pub colour: Option<(String, Option<Span>)>,
}

/// What the front end read from `[serial]`.
pub(crate) struct Wanted {
    pub clients: Vec<WantedClient>,
    pub input: Vec<(String, Option<Span>)>,
    pub colour: bool,
    pub device: Option<(String, Option<Span>)>,
    pub capacity: Option<(u64, Option<Span>)>,
    pub whole: Span,
}

/// Checks `[serial]` against the system and, if it is sound, adds the
/// subsystem to it.
pub(crate) fn expand(system: &mut System, w: Wanted, sink: &mut Sink) {
    let errors = sink.out.len();
    let device = device(system, &w, sink);
    let capacity = match w.capacity {
        Some((c, span)) => {
            if !c.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&c) {
                sink.emit(Kind::SerialCapacity(c), span);
            }
            c as u32
        }
        None => qregion::CLIENT_CAPACITY,
    };

    // Clients: PDs of the system, each once.
    let mut clients: Vec<(usize, Label, Option<String>, Option<Span>)> = Vec::new();
    for (i, c) in w.clients.iter().enumerate() {
        let Some(pd) = system.pd_index(&c.pd) else {
            sink.emit(Kind::SerialUnknownClient(c.pd.clone()), c.span);
            continue;
        };
        if clients.iter().any(|(p, ..)| *p == pd) {
            sink.emit(
                Kind::SerialDuplicateClient {
                    pd: c.pd.clone(),
                    list: "clients",
                },
                c.span,
            );
            continue;
        }
        let prefix = match &c.prefix {
            Some((p, span)) if p.len() > PREFIX_LEN => {
                sink.emit(
                    Kind::SerialPrefixTooLong {
                        prefix: p.clone(),
                        len: p.len(),
                        max: PREFIX_LEN,
                    },
                    *span,
                );
                ""
            }
            Some((p, _)) => p.as_str(),
            None => "",
        };
        let colour = match &c.colour {
            Some((name, span)) => {
                let col = Colour::parse(name);
                if col.is_none() {
                    sink.emit(Kind::SerialColour(name.clone()), *span);
                }
                col
            }
            None => w.colour.then(|| Colour::nth(i)),
        };
        let label = Label::new(&c.pd, prefix, colour).unwrap_or(Label::EMPTY);
        clients.push((pd, label, colour.map(|c| c.name().to_string()), c.span));
    }

    // Input: clients, each once, able to run when input comes.
    let mut input: Vec<usize> = Vec::new();
    for (name, span) in &w.input {
        let Some(pd) = system.pd_index(name) else {
            sink.emit(Kind::SerialUnknownClient(name.clone()), *span);
            continue;
        };
        if !clients.iter().any(|(p, ..)| *p == pd) {
            sink.emit(Kind::SerialInputNotClient(name.clone()), *span);
            continue;
        }
        if input.contains(&pd) {
            sink.emit(
                Kind::SerialDuplicateClient {
                    pd: name.clone(),
                    list: "input",
                },
                *span,
            );
            continue;
        }
        if system.pds[pd].passive {
            sink.emit(Kind::SerialPassiveInput(name.clone()), *span);
        }
        input.push(pd);
    }
    let rx = !input.is_empty();
    let tx_clients = clients.len() + usize::from(rx);
    if tx_clients > MAX_CLIENTS {
        sink.emit(
            Kind::SerialTooManyClients {
                count: tx_clients,
                max: MAX_CLIENTS,
            },
            w.clients
                .get(MAX_CLIENTS)
                .or(w.clients.last())
                .and_then(|c| c.span),
        );
    }

    // Names the expansion adds must be free.
    let mut pd_names = vec![DRIVER, VIRT_TX];
    if rx {
        pd_names.push(VIRT_RX);
    }
    for n in pd_names {
        if let Some(p) = system.pd_index(n) {
            sink.emit(
                Kind::SerialNameTaken {
                    name: n.into(),
                    what: "PD",
                },
                system.pds[p].src.at("name"),
            );
        }
    }
    let mut region_names = vec![uart_region(), driver_tx_region()];
    if rx {
        region_names.push(driver_rx_region());
    }
    for (pd, ..) in &clients {
        region_names.push(tx_region(&system.pds[*pd].name));
    }
    for pd in &input {
        region_names.push(rx_region(&system.pds[*pd].name));
    }
    if rx {
        region_names.push(tx_region(VIRT_RX));
    }
    for n in &region_names {
        if let Some(r) = system.region(n) {
            sink.emit(
                Kind::SerialNameTaken {
                    name: n.clone(),
                    what: "region",
                },
                r.src.at("name"),
            );
        }
    }

    // Each client's channels on its lowest free ids.
    let mut ids: Vec<(u64, Option<u64>)> = Vec::new();
    for (pd, ..) in &clients {
        let wants_rx = input.contains(pd);
        let mut free = free_ids(system, *pd);
        let tx_id = free.next();
        let rx_id = if wants_rx { free.next() } else { None };
        let name = &system.pds[*pd].name;
        match (tx_id, wants_rx, rx_id) {
            (None, ..) => sink.emit(
                Kind::SerialNoFreeChannel {
                    pd: name.clone(),
                    what: "output",
                },
                w.clients
                    .iter()
                    .find(|c| &c.pd == name)
                    .and_then(|c| c.span),
            ),
            (Some(_), true, None) => sink.emit(
                Kind::SerialNoFreeChannel {
                    pd: name.clone(),
                    what: "input",
                },
                w.input
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, s)| *s),
            ),
            _ => {}
        }
        ids.push((tx_id.unwrap_or(0), rx_id));
    }

    let Some(device) = device else { return };
    if sink.out[errors..].iter().any(|d| !d.is_warning()) {
        return;
    }
    for (pd, _, _, span) in &clients {
        let p = &system.pds[*pd];
        if p.priority >= VIRT_TX_PRIORITY {
            sink.emit(
                Kind::SerialClientPriority {
                    pd: p.name.clone(),
                    priority: p.priority,
                    virt: VIRT_TX_PRIORITY,
                },
                *span,
            );
        }
    }

    build(
        system,
        Plan {
            device,
            capacity,
            clients,
            ids,
            input,
            src: Src::new(w.whole),
        },
    );
}

/// The UART: the one named, else the board's first PL011.
fn device(system: &System, w: &Wanted, sink: &mut Sink) -> Option<crate::board::Device> {
    let board = &system.board;
    let d = match &w.device {
        Some((name, span)) => {
            let Some(d) = board.device(name) else {
                sink.emit(
                    Kind::SerialUnknownDevice {
                        device: name.clone(),
                        board: board.name.clone(),
                        known: board
                            .devices
                            .iter()
                            .filter(|d| d.compatible != "virtio,mmio")
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    },
                    *span,
                );
                return None;
            };
            if d.compatible != PL011 {
                sink.emit(
                    Kind::SerialNotPl011 {
                        device: name.clone(),
                        compatible: d.compatible.clone(),
                    },
                    *span,
                );
                return None;
            }
            d
        }
        None => match board.devices.iter().find(|d| d.compatible == PL011) {
            Some(d) => d,
            None => {
                sink.emit(
                    Kind::SerialNoDevice {
                        board: board.name.clone(),
                    },
                    Some(w.whole),
                );
                return None;
            }
        },
    };
    Some(d.clone())
}

const PL011: &str = "arm,pl011";

fn uart_region() -> String {
    "serial_uart".into()
}
fn driver_tx_region() -> String {
    "serial_driver_tx".into()
}
fn driver_rx_region() -> String {
    "serial_driver_rx".into()
}
fn tx_region(pd: &str) -> String {
    format!("serial_tx_{pd}")
}
fn rx_region(pd: &str) -> String {
    format!("serial_rx_{pd}")
}

/// What the checks settled.
struct Plan {
    device: crate::board::Device,
    capacity: u32,
    /// (PD, label, colour name, span) per client.
    clients: Vec<(usize, Label, Option<String>, Option<Span>)>,
    /// (output channel id, input channel id) per client.
    ids: Vec<(u64, Option<u64>)>,
    input: Vec<usize>,
    src: Src,
}

fn queue_map(region: String, vaddr: u64, vaddr_sym: &str, size_sym: &str, src: &Src) -> Map {
    Map {
        setvar_vaddr: Some(vaddr_sym.into()),
        setvar_size: Some(size_sym.into()),
        ..map(region, vaddr, src)
    }
}

fn config(first: u8, labels: impl Iterator<Item = Label>) -> Const {
    let mut c = Config::EMPTY;
    c.first = first;
    for (slot, l) in c.labels.iter_mut().zip(labels) {
        *slot = l;
    }
    let bytes = c.encode();
    debug_assert_eq!(bytes.len(), CONFIG_SIZE);
    Const {
        symbol: wiring::virt::CONFIG.into(),
        bytes: bytes.to_vec(),
        what: "serial labels".into(),
    }
}

/// Adds the subsystem the plan describes.
fn build(system: &mut System, plan: Plan) {
    use wiring::{client, driver, virt};
    let src = &plan.src;
    let queue_size = qregion::size(plan.capacity);
    let driver_tx_size = qregion::size(qregion::driver_tx_capacity(plan.capacity));
    let driver_rx_size = qregion::size(qregion::DRIVER_RX_CAPACITY);
    let rx = !plan.input.is_empty();
    let dev = &plan.device;

    // Regions.
    let page_base = dev.range.base / SMALL_PAGE * SMALL_PAGE;
    let page_end = dev.range.end().div_ceil(SMALL_PAGE) * SMALL_PAGE;
    system.regions.push(Region {
        phys: Some(page_base),
        device: Some(dev.name.clone()),
        ..region(uart_region(), page_end - page_base, src)
    });
    system
        .regions
        .push(region(driver_tx_region(), driver_tx_size, src));
    if rx {
        system
            .regions
            .push(region(driver_rx_region(), driver_rx_size, src));
    }

    // The driver.
    let d = system.pds.len();
    let mut drv = pd(
        DRIVER,
        DRIVER_PROGRAM,
        DRIVER_PRIORITY,
        Subsystem::Serial,
        src,
    );
    drv.maps.push(Map {
        cached: false,
        setvar_device: Some(driver::REGS.into()),
        ..map(uart_region(), UART_VADDR, src)
    });
    drv.maps.push(queue_map(
        driver_tx_region(),
        DRIVER_TX_VADDR,
        driver::TX,
        driver::TX_SIZE,
        src,
    ));
    if rx {
        drv.maps.push(queue_map(
            driver_rx_region(),
            DRIVER_RX_VADDR,
            driver::RX,
            driver::RX_SIZE,
            src,
        ));
    }
    drv.irqs.push(Irq {
        id: u64::from(driver::IRQ),
        kind: IrqKind::Arm {
            irq: dev.irqs.first().copied().unwrap_or(0),
            trigger: match dev.trigger {
                Some(crate::board::BoardTrigger::Edge) => Trigger::Edge,
                _ => Trigger::Level,
            },
            device: Some(dev.name.clone()),
        },
        setvar_id: None,
        src: src.clone(),
    });
    system.pds.push(drv);

    // The transmit virtualiser's clients: the description's, then the
    // receive virtualiser.
    let tx = system.pds.len();
    let rxv = rx.then_some(tx + 1);
    let mut tx_clients: Vec<SerialClient> = plan
        .clients
        .iter()
        .map(|(pd, label, colour, _)| SerialClient {
            pd: *pd,
            prefix: String::from_utf8_lossy(label.prefix()).into_owned(),
            colour: colour.clone(),
        })
        .collect();
    let mut labels: Vec<Label> = plan.clients.iter().map(|c| c.1).collect();
    if let Some(r) = rxv {
        tx_clients.push(SerialClient {
            pd: r,
            prefix: String::new(),
            colour: None,
        });
        labels.push(Label::new(VIRT_RX, "", None).unwrap_or(Label::EMPTY));
    }

    let mut vtx = pd(
        VIRT_TX,
        VIRT_TX_PROGRAM,
        VIRT_TX_PRIORITY,
        Subsystem::Serial,
        src,
    );
    vtx.maps.push(queue_map(
        driver_tx_region(),
        VIRT_DRIVER_VADDR,
        virt::DRIVER_QUEUE,
        virt::DRIVER_QUEUE_SIZE,
        src,
    ));
    vtx.consts.push(config(0, labels.into_iter()));
    system.pds.push(vtx);
    system.channels.push(channel(
        end(d, u64::from(driver::TX_VIRT), None, src),
        end(tx, u64::from(virt::DRIVER), None, src),
        src,
    ));

    if let Some(r) = rxv {
        let mut vrx = pd(
            VIRT_RX,
            VIRT_RX_PROGRAM,
            VIRT_RX_PRIORITY,
            Subsystem::Serial,
            src,
        );
        vrx.maps.push(queue_map(
            driver_rx_region(),
            VIRT_DRIVER_VADDR,
            virt::DRIVER_QUEUE,
            virt::DRIVER_QUEUE_SIZE,
            src,
        ));
        let names = plan
            .input
            .iter()
            .map(|p| Label::new(&system.pds[*p].name, "", None).unwrap_or(Label::EMPTY));
        vrx.consts.push(config(0, names));
        system.pds.push(vrx);
        system.channels.push(channel(
            end(d, u64::from(driver::RX_VIRT), None, src),
            end(r, u64::from(virt::DRIVER), None, src),
            src,
        ));
    }

    // Each client's output queue, in the transmit virtualiser at its slot.
    for (i, c) in tx_clients.iter().enumerate() {
        let name = system.pds[c.pd].name.clone();
        let region_name = tx_region(&name);
        system
            .regions
            .push(region(region_name.clone(), queue_size, src));
        let slot = VIRT_CLIENTS_VADDR + i as u64 * queue_size;
        let virt_map = if i == 0 {
            queue_map(
                region_name.clone(),
                slot,
                virt::CLIENT_QUEUES,
                virt::CLIENT_QUEUE_SIZE,
                src,
            )
        } else {
            map(region_name.clone(), slot, src)
        };
        system.pds[tx].maps.push(virt_map);
        // A description's client takes its lowest free id; the receive
        // virtualiser its own, past its client channels.
        let id = match plan.clients.get(i) {
            Some(_) => plan.ids[i].0,
            None => u64::from(wiring::virt::OUTPUT),
        };
        let at = room(system, c.pd, queue_size);
        system.pds[c.pd]
            .maps
            .push(queue_map(region_name, at, client::TX, client::TX_SIZE, src));
        let virt_id = wiring::virt::client_channel(i).map_or(0, u64::from);
        system.channels.push(channel(
            end(tx, virt_id, None, src),
            end(c.pd, id, Some(client::TX_CHANNEL), src),
            src,
        ));
    }

    // Each input client's queue, in the receive virtualiser at its slot.
    if let Some(r) = rxv {
        for (i, p) in plan.input.iter().enumerate() {
            let name = system.pds[*p].name.clone();
            let region_name = rx_region(&name);
            system
                .regions
                .push(region(region_name.clone(), queue_size, src));
            let slot = VIRT_CLIENTS_VADDR + i as u64 * queue_size;
            let virt_map = if i == 0 {
                queue_map(
                    region_name.clone(),
                    slot,
                    virt::CLIENT_QUEUES,
                    virt::CLIENT_QUEUE_SIZE,
                    src,
                )
            } else {
                map(region_name.clone(), slot, src)
            };
            system.pds[r].maps.push(virt_map);
            let k = plan.clients.iter().position(|c| c.0 == *p).unwrap_or(0);
            let id = plan.ids[k].1.unwrap_or(0);
            let at = room(system, *p, queue_size);
            system.pds[*p]
                .maps
                .push(queue_map(region_name, at, client::RX, client::RX_SIZE, src));
            let virt_id = wiring::virt::client_channel(i).map_or(0, u64::from);
            system.channels.push(channel(
                end(r, virt_id, None, src),
                end(*p, id, Some(client::RX_CHANNEL), src),
                src,
            ));
        }
    }

    system.serial = Some(Serial {
        device: dev.name.clone(),
        driver: d,
        virt_tx: tx,
        virt_rx: rxv,
        clients: tx_clients,
        input: plan.input,
        capacity: plan.capacity,
        src: plan.src,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expand::mappers;
    use crate::{parse_str, Format};

    const SYSTEM: &str = r#"
[system]
board = "qemu-virt"

[pd.shell]
program = "shell"
priority = 100
maps = [{ region = "scratch", vaddr = 0x10_0000_0000 }]

[pd.log]
program = "log"
priority = 90

[region.scratch]
size = "8 KiB"

[[channel]]
a = { pd = "shell", id = 0 }
b = { pd = "log", id = 1 }

[serial]
clients = ["log", { pd = "shell", prefix = "sh| " }]
input = ["shell"]
"#;

    fn system() -> System {
        parse_str("s.toml", SYSTEM, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system
    }

    #[test]
    fn each_queue_is_shared_by_its_two_ends_alone() {
        let s = system();
        assert_eq!(mappers(&s, "serial_uart"), [DRIVER]);
        assert_eq!(mappers(&s, "serial_driver_tx"), [DRIVER, VIRT_TX]);
        assert_eq!(mappers(&s, "serial_driver_rx"), [DRIVER, VIRT_RX]);
        assert_eq!(mappers(&s, "serial_tx_log"), ["log", VIRT_TX]);
        assert_eq!(mappers(&s, "serial_tx_shell"), ["shell", VIRT_TX]);
        assert_eq!(mappers(&s, "serial_rx_shell"), ["shell", VIRT_RX]);
        assert_eq!(mappers(&s, "serial_tx_serial_virt_rx"), [VIRT_TX, VIRT_RX]);
        assert!(s.region("serial_rx_log").is_none(), "log takes no input");
        let driver = &s.pds[s.pd_index(DRIVER).unwrap()];
        assert_eq!(driver.irqs.len(), 1);
        assert_eq!(driver.irqs[0].number(), 33);
    }

    #[test]
    fn clients_get_their_queues_where_they_have_room_and_free_channel_ids() {
        let s = system();
        let shell = &s.pds[s.pd_index("shell").unwrap()];
        let tx = shell
            .maps
            .iter()
            .find(|m| m.region == "serial_tx_shell")
            .unwrap();
        // The description's own map holds the first 8 KiB from 0x10_0000_0000.
        assert_eq!(tx.vaddr, crate::expand::CLIENT_VADDR + 0x2000);
        assert_eq!(tx.setvar_vaddr.as_deref(), Some(wiring::client::TX));
        let rx = shell
            .maps
            .iter()
            .find(|m| m.region == "serial_rx_shell")
            .unwrap();
        assert_eq!(rx.vaddr, crate::expand::CLIENT_VADDR + 0x4000);
        // shell's channel 0 is the description's: the serial ones are 1 and 2.
        let ends: Vec<(u64, Option<&str>)> = s
            .channels
            .iter()
            .flat_map(|c| [&c.a, &c.b])
            .filter(|e| s.pds[e.pd].name == "shell")
            .map(|e| (e.id, e.setvar_id.as_deref()))
            .collect();
        assert_eq!(
            ends,
            [
                (0, None),
                (1, Some(wiring::client::TX_CHANNEL)),
                (2, Some(wiring::client::RX_CHANNEL))
            ]
        );
    }

    #[test]
    fn the_virtualisers_find_client_i_at_its_slot_with_its_label() {
        let s = system();
        let serial = s.serial.as_ref().unwrap();
        let names: Vec<&str> = serial
            .clients
            .iter()
            .map(|c| s.pds[c.pd].name.as_str())
            .collect();
        assert_eq!(names, ["log", "shell", VIRT_RX]);
        let vtx = &s.pds[serial.virt_tx];
        let size = qregion::size(qregion::CLIENT_CAPACITY);
        for (i, name) in names.iter().enumerate() {
            let m = vtx
                .maps
                .iter()
                .find(|m| m.region == tx_region(name))
                .unwrap();
            assert_eq!(m.vaddr, VIRT_CLIENTS_VADDR + i as u64 * size, "{name}");
        }
        let config = Config::decode(vtx.consts[0].bytes.as_slice().try_into().unwrap());
        assert_eq!(config.labels[1].name(), b"shell");
        assert_eq!(config.labels[1].prefix(), b"sh| ");
        assert_eq!(config.labels[2].name(), VIRT_RX.as_bytes());
        let vrx = &s.pds[serial.virt_rx.unwrap()];
        let config = Config::decode(vrx.consts[0].bytes.as_slice().try_into().unwrap());
        assert_eq!(config.labels[0].name(), b"shell");
        // Channel ids: the driver on 0, client i on 1 + i.
        let ids: Vec<(String, u64)> = s
            .channels
            .iter()
            .filter(|c| c.a.pd == serial.virt_tx)
            .map(|c| (s.pds[c.b.pd].name.clone(), c.a.id))
            .collect();
        assert_eq!(
            ids,
            [
                ("log".to_string(), 1),
                ("shell".to_string(), 2),
                (VIRT_RX.to_string(), 3)
            ]
        );
    }

    #[test]
    fn without_input_there_is_no_receive_virtualiser() {
        let text = SYSTEM.replace("input = [\"shell\"]\n", "");
        let s = parse_str("s.toml", &text, Format::Toml).unwrap().system;
        let serial = s.serial.clone().unwrap();
        assert!(serial.virt_rx.is_none() && serial.input.is_empty());
        assert!(s.pd_index(VIRT_RX).is_none());
        assert!(s.region("serial_driver_rx").is_none());
        let driver = &s.pds[serial.driver];
        assert!(driver
            .maps
            .iter()
            .all(|m| m.setvar_vaddr.as_deref() != Some(wiring::driver::RX)));
    }
}
