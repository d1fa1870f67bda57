//! # blk-virt: the block virtualiser
//!
//! One disk, many clients, each held to its own partition. The
//! virtualiser sits between the virtio-blk driver and the clients the
//! description names (`[blk.DEVICE]`, expanded by the tool), as sDDF's
//! block virtualiser does, and trusts no client:
//!
//! - **At start** it reads the disk's first and last 64 KiB through the
//!   driver, into its own data region, and finds the partition table in
//!   them (`septa-partition`: GPT with both headers and their checksums,
//!   or MBR). It reports what it finds, damage included (a damaged primary
//!   GPT header read from the backup, say). Client `i` is given the
//!   partition numbered `blk_client_partition[i]`, which must exist, be
//!   sound, be whole 4 KiB blocks, and (GPT) carry the name the
//!   description gives; its storage-info region then says how many blocks
//!   the client has. A client whose partition cannot be given, or every
//!   client when the table is unreadable, is told it has no blocks, every
//!   request it sends is answered `NoDevice`, and the reason is logged with
//!   its name. Nothing read from the disk can fault the virtualiser.
//! - **Each request** is checked ([`rules::check`]): the blocks must lie
//!   inside the client's partition, the buffer inside the client's data
//!   region and on a 4 KiB boundary, the code known, no write to a
//!   read-only disk. A request that passes goes to the driver with the
//!   disk's block number and the buffer's physical address; one that does
//!   not gets an error response at once and a log line naming the client
//!   (the first [`LOGGED`] of each client, then every power of two, so a
//!   hostile client cannot flood the console). A client that breaks the
//!   queue protocol is reported by name once.
//! - **Flushes and barriers** go to the driver as they are: they order the
//!   whole disk, which is never weaker than the client asked.
//!
//! It never maps a client's data: the device moves the bytes in place.
//! What it owns: the bookkeeping of requests in flight. Must not: touch
//! the device, or let one client's requests or faults reach another.
//!
//! Setvars (all set by the tool for a `[blk]` section; `i` is the client):
//! `blk_driver_queues`, `blk_driver_queues_size`, `blk_driver_capacity`,
//! `blk_driver_info`, `blk_driver_channel`; `blk_virt_data`,
//! `blk_virt_data_size`, `blk_virt_data_io`; `blk_client_queues[i]`,
//! `blk_client_queues_size[i]`, `blk_client_capacity[i]`,
//! `blk_client_info[i]`, `blk_client_data_io[i]`, `blk_client_data_size[i]`,
//! `blk_client_partition[i]`, `blk_client_partition_name[i]`,
//! `blk_client_name[i]`, `blk_client_channel[i]`.
#![cfg_attr(target_os = "none", no_std, no_main)]
// `unsafe` only to turn the patched addresses of mapped regions into
// `Shared` windows (`region`).
#![deny(unsafe_code)]

mod rules;

use rules::{Extent, Forward};
use septa_block_protocol::{
    Request, RequestCode, Response, Status, StorageInfo, StorageRegion, TRANSFER_SIZE,
};
use septa_cells::counters::{Counters, Kind};
use septa_partition::{read as read_table, Scheme, Table, Window, HEAD_BYTES, SECTOR, TAIL_BYTES};
use septa_queue::blk::{info_layout, Client as ToDriver, Server as ToClient};
use septa_queue::Shared;
use septa_runtime::{
    println, protection_domain, setvar, setvar_array, setvar_text, Channel, ChannelSet, Handler,
};

/// Clients one virtualiser serves (its arrays' length).
const MAX_CLIENTS: usize = 16;
/// Refusals logged per client before only every power of two is.
const LOGGED: u32 = 16;
/// Requests one client may have at the driver at once, so that a busy
/// client leaves room for the others.
const FAIR_SHARE: u32 = 16;
/// Requests in flight at the driver, at most (ids into `flight`).
const MAX_FLIGHT: usize = 64;

setvar! {
    static DRIVER_QUEUES = "blk_driver_queues";
    static DRIVER_QUEUES_SIZE = "blk_driver_queues_size";
    static DRIVER_CAPACITY = "blk_driver_capacity";
    static DRIVER_INFO = "blk_driver_info";
    static DRIVER_CHANNEL = "blk_driver_channel";
    static OWN_DATA = "blk_virt_data";
    static OWN_DATA_SIZE = "blk_virt_data_size";
    static OWN_DATA_IO = "blk_virt_data_io";
}

setvar! {
    // `septa_cells::counters::VADDR_SYMBOL` and `SIZE_SYMBOL`.
    static COUNTERS = "septa_counters";
    static COUNTERS_SIZE = "septa_counters_size";
}

setvar_array! {
    static CLIENT_QUEUES: [MAX_CLIENTS] = "blk_client_queues";
    static CLIENT_QUEUES_SIZE: [MAX_CLIENTS] = "blk_client_queues_size";
    static CLIENT_CAPACITY: [MAX_CLIENTS] = "blk_client_capacity";
    static CLIENT_INFO: [MAX_CLIENTS] = "blk_client_info";
    static CLIENT_DATA_IO: [MAX_CLIENTS] = "blk_client_data_io";
    static CLIENT_DATA_SIZE: [MAX_CLIENTS] = "blk_client_data_size";
    static CLIENT_PARTITION: [MAX_CLIENTS] = "blk_client_partition";
    static CLIENT_CHANNEL: [MAX_CLIENTS] = "blk_client_channel";
}

setvar_text! {
    static CLIENT_NAME: [MAX_CLIENTS] = "blk_client_name";
    static CLIENT_PARTITION_NAME: [MAX_CLIENTS] = "blk_client_partition_name";
}

/// The bytes read for the table, copied out of the shared data region
/// (the parser takes plain slices): too large for the stack.
static mut TABLE_BYTES: [u8; HEAD_BYTES + TAIL_BYTES] = [0; HEAD_BYTES + TAIL_BYTES];

#[allow(unsafe_code)]
fn region(vaddr: u64, len: u64, what: &str) -> Shared {
    if vaddr == 0 || len == 0 {
        panic!("blk-virt: {what} is not wired (its setvars are unset)");
    }
    // SAFETY: the tool patched `vaddr` and `len` from a map of this PD in
    // the system description, which lasts the PD's life; this PD touches it
    // only through `Shared` (read-only maps only read).
    unsafe { Shared::new(vaddr as *mut u8, len as usize) }.expect("a mapped region")
}

struct Client {
    name: septa_runtime::Text,
    queues: ToClient,
    info: StorageRegion,
    channel: Channel,
    data_io: u64,
    data_size: u64,
    /// The partition, once the table gave it.
    extent: Option<Extent>,
    /// Requests at the driver.
    outstanding: u32,
    refused: u32,
    faulted: bool,
    answered: bool,
}

/// A request at the driver: whose it is.
#[derive(Clone, Copy)]
struct Flight {
    client: usize,
    id: u32,
    count: u16,
    code: RequestCode,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the driver to publish the disk.
    NoDisk,
    /// Reading the table: responses still to come.
    Reading(u8),
    Serving,
}

struct Virt {
    driver: ToDriver,
    driver_channel: Channel,
    disk: StorageRegion,
    own: Shared,
    own_io: u64,
    clients: [Option<Client>; MAX_CLIENTS],
    flight: [Option<Flight>; MAX_FLIGHT],
    phase: Phase,
    blocks: u64,
    read_only: bool,
    /// Each client's counters (`septa_cells::counters`, kind blk), by
    /// the queues its requests come on, and the page `[stats]` exports
    /// them in, if it does.
    counters: Counters<MAX_CLIENTS>,
    entry: [Option<usize>; MAX_CLIENTS],
    page: Option<Shared>,
}

/// The counters' fields (`septa_cells::counters::Kind::Blk`).
const READS: usize = 0;
const WRITES: usize = 1;
const FLUSHES: usize = 2;
const REFUSED: usize = 3;
const READ_BYTES: usize = 4;
const WRITTEN_BYTES: usize = 5;

impl Virt {
    /// Adds to client `i`'s counter `field`.
    fn count(&mut self, i: usize, field: usize, by: u64) {
        if let Some(e) = self.entry[i] {
            self.counters.add_to(e, field, by);
        }
    }

    fn publish(&mut self) {
        let Some(page) = &self.page else { return };
        let name = septa_runtime::pd_name();
        self.counters.publish(name.as_str(), |at, bytes| {
            let _ = page.write(at, bytes);
        });
    }

    fn name(&self, i: usize) -> septa_runtime::Text {
        self.clients[i]
            .as_ref()
            .map_or(CLIENT_NAME.get(i), |c| c.name)
    }

    /// Asks the driver for the table's bytes: the first and last
    /// 64 KiB of the disk (or all of it, if smaller).
    fn read_table(&mut self) {
        let Some(info) = self.disk.read() else {
            return;
        };
        self.blocks = info.capacity;
        self.read_only = info.read_only;
        let per = (HEAD_BYTES / TRANSFER_SIZE as usize) as u64;
        let n = per.min(self.blocks) as u16;
        let tail_first = self.blocks.saturating_sub(per);
        let reqs = [
            (0u64, 0u64, n, 0u32),
            (HEAD_BYTES as u64, tail_first, n, 1u32),
        ];
        for (offset, block, count, id) in reqs {
            let r = Request {
                code: RequestCode::Read,
                io_or_offset: self.own_io + offset,
                block_number: block,
                count,
                id: MAX_FLIGHT as u32 + id,
            };
            if self.driver.requests.enqueue(r).is_err() {
                println!("blk-virt: the driver's queue refused the table read");
            }
        }
        self.phase = Phase::Reading(2);
        let _ = self.driver_channel.notify();
    }

    /// Finds the table and gives each client its partition.
    #[allow(unsafe_code)]
    fn table_read(&mut self, ok: bool) {
        self.phase = Phase::Serving;
        let sectors = self.blocks * (TRANSFER_SIZE as u64 / SECTOR);
        let have = (self.blocks * TRANSFER_SIZE as u64).min(HEAD_BYTES as u64) as usize;
        // SAFETY: TABLE_BYTES is this PD's own buffer, used here alone (one
        // thread, called once, and no reference to it outlives this call).
        let bytes = unsafe { &mut *core::ptr::addr_of_mut!(TABLE_BYTES) };
        let (head, tail) = bytes.split_at_mut(HEAD_BYTES);
        let copied = self.own.read(0, &mut head[..have]).is_ok()
            && self
                .own
                .read(HEAD_BYTES, &mut tail[TAIL_BYTES - have..])
                .is_ok();
        let window = Window {
            head: &head[..have],
            tail: &tail[TAIL_BYTES - have..],
            sectors,
        };
        let table = if ok && copied {
            read_table(&window).map_err(|e| {
                println!("blk-virt: the disk's partition table is unusable: {e}");
            })
        } else {
            println!("blk-virt: reading the partition table failed");
            Err(())
        };
        if let Ok(t) = &table {
            self.report(t);
        }
        for i in 0..MAX_CLIENTS {
            if self.clients[i].is_none() {
                continue;
            }
            let extent = table.as_ref().ok().and_then(|t| self.partition_of(i, t));
            let read_only = self.read_only;
            let Some(c) = self.clients[i].as_mut() else {
                continue;
            };
            c.extent = extent;
            c.info.publish(&StorageInfo {
                read_only,
                sector_size: SECTOR as u16,
                block_size: 1,
                queue_depth: FAIR_SHARE as u16,
                capacity: extent.map_or(0, |e| e.blocks),
                ..StorageInfo::default()
            });
            c.info.set_ready(true);
            let _ = c.channel.notify();
        }
    }

    fn report(&self, t: &Table<'_>) {
        let used = t.partitions().count();
        println!(
            "blk-virt: {} MiB disk, {} table, {used} partition{}",
            (self.blocks * TRANSFER_SIZE as u64) >> 20,
            t.scheme,
            if used == 1 { "" } else { "s" }
        );
        if let Some(e) = t.notes.primary {
            println!("blk-virt: the primary GPT header is damaged ({e}); using the backup");
        }
        if let Some(e) = t.notes.backup {
            println!("blk-virt: the backup GPT header is damaged ({e})");
        }
        if t.notes.mismatch {
            println!("blk-virt: the GPT's two copies disagree; using the primary");
        }
    }

    /// Client `i`'s partition, checked; logs why not.
    fn partition_of(&self, i: usize, t: &Table<'_>) -> Option<Extent> {
        let name = self.name(i);
        let index = CLIENT_PARTITION.get(i) as u32;
        let want = CLIENT_PARTITION_NAME.get(i);
        let p = match t.partition(index) {
            Ok(p) => p,
            Err(e) => {
                println!("blk-virt: client `{name}` gets no partition: partition {index}: {e}");
                return None;
            }
        };
        if t.scheme == Scheme::Gpt && !want.as_str().is_empty() && !p.name.is(want.as_str()) {
            println!(
                "blk-virt: client `{name}` gets no partition: partition {index} is named `{}`, not `{want}`",
                p.name
            );
            return None;
        }
        match Extent::of(&p) {
            Ok(e) => {
                println!(
                    "blk-virt: client `{name}` gets partition {index} `{want}`: blocks {}..{} of the disk",
                    e.first,
                    e.first + e.blocks
                );
                Some(e)
            }
            Err(err) => {
                println!("blk-virt: client `{name}` gets no partition: partition {index}: {err}");
                None
            }
        }
    }

    /// Answers the driver's responses.
    fn driver_answers(&mut self) {
        loop {
            let r = match self.driver.responses.dequeue() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    println!("blk-virt: the driver broke its response queue: {e}");
                    break;
                }
            };
            if let Phase::Reading(n) = self.phase {
                if r.id >= MAX_FLIGHT as u32 {
                    if r.status != Status::Ok {
                        println!(
                            "blk-virt: the driver answered the table read with {:?}",
                            r.status
                        );
                    }
                    let ok = r.status == Status::Ok;
                    if n <= 1 || !ok {
                        self.table_read(ok);
                    } else {
                        self.phase = Phase::Reading(n - 1);
                    }
                    continue;
                }
            }
            let Some(f) = self.flight.get_mut(r.id as usize).and_then(Option::take) else {
                println!(
                    "blk-virt: the driver answered request {}, which it does not have",
                    r.id
                );
                continue;
            };
            if r.status == Status::Ok {
                let bytes = u64::from(f.count) * u64::from(TRANSFER_SIZE);
                match f.code {
                    RequestCode::Read => {
                        self.count(f.client, READS, 1);
                        self.count(f.client, READ_BYTES, bytes);
                    }
                    RequestCode::Write => {
                        self.count(f.client, WRITES, 1);
                        self.count(f.client, WRITTEN_BYTES, bytes);
                    }
                    RequestCode::Flush | RequestCode::Barrier => self.count(f.client, FLUSHES, 1),
                    RequestCode::Other(_) => {}
                }
            }
            let Some(c) = self.clients[f.client].as_mut() else {
                continue;
            };
            c.outstanding -= 1;
            let resp = Response {
                status: r.status,
                success_count: if r.status == Status::Ok { f.count } else { 0 },
                id: f.id,
            };
            // Room was checked when the request was taken.
            let _ = c.queues.responses.stage(resp);
            c.answered = true;
        }
    }

    /// Takes client `i`'s requests while it has room for their answers, the
    /// driver room for them, and the client its fair share.
    fn take_requests(&mut self, i: usize) -> bool {
        let mut sent = false;
        let read_only = self.read_only;
        while let Some(slot) = self.flight.iter().position(Option::is_none) {
            if !matches!(self.driver.requests.space(), Ok(n) if n > 0) {
                break;
            }
            let Some(c) = self.clients[i].as_mut() else {
                break;
            };
            let room = match c.queues.responses.space() {
                Ok(n) => n,
                Err(e) => {
                    report_fault(c, e);
                    break;
                }
            };
            if room <= c.outstanding || c.outstanding >= FAIR_SHARE {
                break;
            }
            let r = match c.queues.requests.take() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    report_fault(c, e);
                    break;
                }
            };
            let Some(extent) = c.extent else {
                if let Some(e) = self.entry[i] {
                    self.counters.add_to(e, REFUSED, 1);
                }
                let _ = c.queues.responses.stage(Response {
                    status: Status::NoDevice,
                    success_count: 0,
                    id: r.id,
                });
                c.answered = true;
                continue;
            };
            match rules::check(&r, extent, c.data_io, c.data_size, read_only) {
                Ok(fwd) => {
                    let (block, io) = match fwd {
                        Forward::Transfer { block, io } => (block, io),
                        Forward::Order => (0, 0),
                    };
                    let to_driver = Request {
                        code: r.code,
                        io_or_offset: io,
                        block_number: block,
                        count: if matches!(fwd, Forward::Order) {
                            0
                        } else {
                            r.count
                        },
                        id: slot as u32,
                    };
                    if self.driver.requests.stage(to_driver).is_ok() {
                        self.flight[slot] = Some(Flight {
                            client: i,
                            id: r.id,
                            count: r.count,
                            code: r.code,
                        });
                        c.outstanding += 1;
                        sent = true;
                    }
                }
                Err(why) => {
                    if let Some(e) = self.entry[i] {
                        self.counters.add_to(e, REFUSED, 1);
                    }
                    c.refused += 1;
                    if c.refused <= LOGGED || c.refused.is_power_of_two() {
                        println!(
                            "blk-virt: client `{}`: request {} refused: {why} (refusal {})",
                            c.name, r.id, c.refused
                        );
                    }
                    let _ = c.queues.responses.stage(Response {
                        status: why.status(),
                        success_count: 0,
                        id: r.id,
                    });
                    c.answered = true;
                }
            }
        }
        if let Some(c) = self.clients[i].as_mut() {
            c.queues.requests.commit();
        }
        sent
    }

    fn serve(&mut self) {
        let mut sent = false;
        for i in 0..MAX_CLIENTS {
            if self.clients[i].is_some() {
                sent |= self.take_requests(i);
            }
        }
        if sent {
            self.driver.requests.commit();
            let _ = self.driver_channel.notify();
        }
    }

    fn answer_clients(&mut self) {
        for c in self.clients.iter_mut().flatten() {
            c.queues.responses.commit();
            if core::mem::take(&mut c.answered) {
                let _ = c.channel.notify();
            }
        }
    }
}

fn report_fault(c: &mut Client, e: septa_queue::PeerFault) {
    if !c.faulted {
        c.faulted = true;
        println!(
            "blk-virt: client `{}` broke its queue protocol: {e}",
            c.name
        );
    }
}

impl Handler for Virt {
    fn notified(&mut self, channels: ChannelSet) {
        match self.phase {
            Phase::NoDisk => {
                self.read_table();
                return;
            }
            Phase::Reading(_) | Phase::Serving => {}
        }
        if channels.contains(self.driver_channel) {
            self.driver_answers();
        }
        if self.phase == Phase::Serving {
            self.serve();
        }
        self.answer_clients();
        self.publish();
    }
}

fn init() -> Virt {
    let dcap = DRIVER_CAPACITY.get() as u32;
    let dq = region(
        DRIVER_QUEUES.get(),
        DRIVER_QUEUES_SIZE.get(),
        "the driver's queues",
    );
    let (rq, rs) = septa_block_protocol::rings(&dq, dcap)
        .unwrap_or_else(|| panic!("blk-virt: the driver queue region cannot hold {dcap} entries"));
    let driver = ToDriver::attach(rq, rs, dcap).unwrap_or_else(|e| panic!("blk-virt: {e:?}"));
    let disk = StorageRegion::attach(region(
        DRIVER_INFO.get(),
        info_layout::REGION_SIZE as u64,
        "the disk's info",
    ))
    .unwrap_or_else(|e| panic!("blk-virt: {e:?}"));
    let own = region(OWN_DATA.get(), OWN_DATA_SIZE.get(), "its data region");
    assert!(
        own.len() >= HEAD_BYTES + TAIL_BYTES,
        "blk-virt: its data region is too small"
    );
    let clients = core::array::from_fn(|i| {
        let q = CLIENT_QUEUES.get(i);
        if q == 0 {
            return None;
        }
        let cap = CLIENT_CAPACITY.get(i) as u32;
        let queues = region(q, CLIENT_QUEUES_SIZE.get(i), "a client's queues");
        let (rq, rs) = septa_block_protocol::rings(&queues, cap).unwrap_or_else(|| {
            panic!("blk-virt: client {i}'s queue region cannot hold {cap} entries")
        });
        let info = StorageRegion::attach(region(
            CLIENT_INFO.get(i),
            info_layout::REGION_SIZE as u64,
            "a client's info",
        ))
        .unwrap_or_else(|e| panic!("blk-virt: {e:?}"));
        info.set_ready(false);
        Some(Client {
            name: CLIENT_NAME.get(i),
            queues: ToClient::attach(rq, rs, cap).unwrap_or_else(|e| panic!("blk-virt: {e:?}")),
            info,
            channel: Channel::new(CLIENT_CHANNEL.get(i) as u8),
            data_io: CLIENT_DATA_IO.get(i),
            data_size: CLIENT_DATA_SIZE.get(i),
            extent: None,
            outstanding: 0,
            refused: 0,
            faulted: false,
            answered: false,
        })
    });
    let mut counters = Counters::new(Kind::Blk);
    let mut entry = [None; MAX_CLIENTS];
    for (i, c) in clients.iter().enumerate() {
        if let Some(c) = c {
            entry[i] = counters.add(c.name.as_str());
        }
    }
    let page = (COUNTERS.get() != 0 && COUNTERS_SIZE.get() as usize >= septa_cells::counters::PAGE)
        .then(|| region(COUNTERS.get(), COUNTERS_SIZE.get(), "its counters page"));
    let mut v = Virt {
        driver,
        driver_channel: Channel::new(DRIVER_CHANNEL.get() as u8),
        disk,
        own,
        own_io: OWN_DATA_IO.get(),
        clients,
        flight: [None; MAX_FLIGHT],
        phase: Phase::NoDisk,
        blocks: 0,
        read_only: false,
        counters,
        entry,
        page,
    };
    // The driver (of higher priority) has published the disk by now,
    // unless it failed; then the first notification tries again.
    if v.disk.is_ready() {
        v.read_table();
    } else {
        println!("blk-virt: the driver has not published the disk");
    }
    v
}

protection_domain!(init);
