//! # test-ppc: protected calls into a passive server over shared memory
//!
//! As PD `client` it fills the shared buffer with a pattern and calls
//! `server`, [`ROUNDS`] times with growing lengths; the server (passive:
//! it runs on the client's time) sums the bytes, inverts them in place and
//! returns the sum. The client checks both. Owns the shared buffer's
//! contents for the duration of a call, nothing else.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{
    mr_get, mr_set, msginfo_new, println, protection_domain, setvar, Channel, Handler, MessageInfo,
};
use septa_test_report as report;

/// Calls the client makes.
const ROUNDS: u64 = 100;
/// Both ends name the other end channel 0.
const PEER: Channel = Channel::new(0);
/// The buffer's size (the region's, set by the tool too; checked).
const BUF_LEN: usize = 4096;
/// Bytes after each request that the server must leave alone, and what
/// the client puts there.
const GUARD: usize = 16;
const SENTINEL: u8 = 0x5a;
/// The label of a "sum and invert" request.
const SUM_AND_INVERT: u64 = 1;

setvar! {
    /// Where the shared buffer is mapped in this PD.
    static BUF = "buf_vaddr";
    static BUF_SIZE = "buf_size";
}

/// The shared buffer.
fn buffer() -> &'static mut [u8] {
    assert!(
        BUF_SIZE.get() as usize >= BUF_LEN,
        "the buffer is too small"
    );
    // SAFETY: the tool maps the region `buf` read-write at BUF for
    // BUF_SIZE bytes in both PDs, for their whole life. Client and server
    // never touch it at the same time: the server only while it handles a
    // call, the client only while no call is in flight (it is blocked in
    // it otherwise). Each use takes a fresh slice and drops it before the
    // next system call.
    unsafe { core::slice::from_raw_parts_mut(BUF.as_ptr::<u8>(), BUF_LEN) }
}

fn pattern(round: u64, i: usize) -> u8 {
    (round as usize * 7 + i * 3) as u8
}

struct Server;

impl Handler for Server {
    fn protected(&mut self, _ch: Channel, msg: MessageInfo) -> MessageInfo {
        let len = mr_get(0) as usize;
        if msg.label() != SUM_AND_INVERT || len > BUF_LEN {
            return msginfo_new(1, 0);
        }
        let buf = &mut buffer()[..len];
        let sum: u64 = buf.iter().map(|b| u64::from(*b)).sum();
        for b in buf.iter_mut() {
            *b = !*b;
        }
        mr_set(0, sum);
        msginfo_new(0, 1)
    }
}

struct Client;

impl Handler for Client {}

/// One round: returns an error text if anything is off.
fn round(r: u64) -> Result<(), &'static str> {
    let len = 64 + r as usize * 16;
    let mut expect = 0u64;
    for (i, b) in buffer()[..len].iter_mut().enumerate() {
        *b = pattern(r, i);
        expect += u64::from(*b);
    }
    buffer()[len..len + GUARD].fill(SENTINEL);
    mr_set(0, len as u64);
    let reply = PEER
        .pp_call(msginfo_new(SUM_AND_INVERT, 1))
        .map_err(|_| "the call was refused")?;
    if reply.label() != 0 || reply.length() != 1 {
        return Err("the server answered with an error");
    }
    if mr_get(0) != expect {
        return Err("the server's sum is wrong");
    }
    let buf = buffer();
    if buf[..len]
        .iter()
        .enumerate()
        .any(|(i, b)| *b != !pattern(r, i))
    {
        return Err("the server did not invert the bytes in place");
    }
    if buf[len..len + GUARD].iter().any(|b| *b != SENTINEL) {
        return Err("the server wrote past the length");
    }
    Ok(())
}

enum Role {
    Client(Client),
    Server(Server),
}

impl Handler for Role {
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        match self {
            Role::Server(s) => s.protected(ch, msg),
            Role::Client(c) => c.protected(ch, msg),
        }
    }
}

fn init() -> Role {
    if septa_runtime::pd_name().as_str() == "server" {
        return Role::Server(Server);
    }
    for r in 0..ROUNDS {
        if let Err(why) = round(r) {
            println!("{}", report::fail("ppc", &format_args!("round {r}: {why}")));
            println!("{}", report::DONE);
            return Role::Client(Client);
        }
    }
    println!("client: {ROUNDS} protected calls checked");
    println!("{}", report::ok("ppc"));
    println!("{}", report::DONE);
    Role::Client(Client)
}

protection_domain!(init);
