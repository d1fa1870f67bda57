//! smoltcp's `Device` over the virtualisers' queues: received frames are
//! checked here (so the counters say what was dropped, and why), copied out
//! of the stack's receive buffers, which go straight back; frames to send
//! are built in a copy and written into a free transmit buffer.

use septa_net_protocol::calls::Stats;
use septa_net_protocol::wiring;
use septa_queue::net::{Buffers, Sink, Source};
use septa_queue::{Idle, Shared};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// Why a received frame was not given to smoltcp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Too short, or a header that does not parse.
    Malformed,
    /// An IPv4 or TCP/UDP checksum that does not match.
    Checksum,
    /// Not ARP or IPv4, or an IP protocol the stack does not speak.
    Protocol,
    /// An IPv4 fragment (the stack does not reassemble).
    Fragment,
    /// For another host.
    NotForUs,
}

/// Whether smoltcp should see `frame`, received by a host at `mac`.
pub fn classify(frame: &[u8], mac: &EthernetAddress) -> Result<(), Drop> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| Drop::Malformed)?;
    let dst = eth.dst_addr();
    if dst != *mac && !dst.is_broadcast() && !dst.is_multicast() {
        return Err(Drop::NotForUs);
    }
    match eth.ethertype() {
        EthernetProtocol::Arp => Ok(()),
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| Drop::Malformed)?;
            if ip.version() != 4 {
                return Err(Drop::Malformed);
            }
            if !ip.verify_checksum() {
                return Err(Drop::Checksum);
            }
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Err(Drop::Fragment);
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let payload = ip.payload();
            match ip.next_header() {
                IpProtocol::Icmp => Ok(()),
                IpProtocol::Tcp => {
                    let t = TcpPacket::new_checked(payload).map_err(|_| Drop::Malformed)?;
                    check(t.verify_checksum(&src.into(), &dst.into()))
                }
                IpProtocol::Udp => {
                    let u = UdpPacket::new_checked(payload).map_err(|_| Drop::Malformed)?;
                    // A zero UDP checksum means "none" (RFC 768).
                    check(u.checksum() == 0 || u.verify_checksum(&src.into(), &dst.into()))
                }
                _ => Err(Drop::Protocol),
            }
        }
        _ => Err(Drop::Protocol),
    }
}

fn check(ok: bool) -> Result<(), Drop> {
    if ok {
        Ok(())
    } else {
        Err(Drop::Checksum)
    }
}

/// The receive side.
pub struct RxSide {
    pub q: Sink,
    pub data: Shared,
    pub frame: [u8; wiring::MAX_FRAME],
    pub len: usize,
    /// Buffers were given back since the virtualiser was last told.
    pub freed: bool,
}

/// The transmit side.
pub struct TxSide {
    pub q: Source,
    pub data: Shared,
    /// Frames were queued since the virtualiser was last told.
    pub sent: bool,
}

pub struct QueueDevice {
    pub rx: RxSide,
    pub tx: TxSide,
    pub mac: EthernetAddress,
    pub stats: Stats,
    pub drops: [u64; 5],
}

/// The buffers of a data region (named by offset).
fn buffers() -> Buffers {
    Buffers::new(0, wiring::DATA_SIZE as usize)
}

impl QueueDevice {
    /// Takes the next frame smoltcp should see into `rx.frame`, giving its
    /// buffer back; frames it should not see are counted and dropped.
    fn next_frame(&mut self) -> bool {
        loop {
            let desc = match self.rx.q.active.dequeue() {
                Ok(Some(d)) => d,
                Ok(None) => return false,
                Err(_) => {
                    self.stats.faults += 1;
                    return false;
                }
            };
            let Ok(index) = buffers().check(&desc) else {
                self.stats.faults += 1;
                continue;
            };
            let len = (desc.len as usize).min(wiring::MAX_FRAME);
            let ok = self
                .rx
                .data
                .read(buffers().offset(index), &mut self.rx.frame[..len])
                .is_ok();
            let back = buffers().desc(index).expect("checked");
            if self.rx.q.free.enqueue(back).is_err() {
                self.stats.faults += 1;
            }
            self.rx.freed = true;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += len as u64;
            if !ok {
                self.stats.faults += 1;
                continue;
            }
            match classify(&self.rx.frame[..len], &self.mac) {
                Ok(()) => {
                    self.rx.len = len;
                    return true;
                }
                Err(why) => {
                    self.stats.rx_dropped += 1;
                    self.drops[why as usize] += 1;
                }
            }
        }
    }

    /// Whether frames wait (asking the virtualiser for a signal if not).
    pub fn idle(&mut self) -> bool {
        !matches!(self.rx.q.active.try_idle(), Ok(Idle::Reprocess))
    }
}

pub struct RxToken<'a>(&'a [u8]);

pub struct TxToken<'a> {
    tx: &'a mut TxSide,
    stats: &'a mut Stats,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; wiring::MAX_FRAME];
        let len = len.min(wiring::MAX_FRAME);
        let r = f(&mut frame[..len]);
        let desc = match self.tx.q.free.dequeue() {
            Ok(Some(d)) => d,
            _ => {
                self.stats.tx_dropped += 1;
                return r;
            }
        };
        let Ok(index) = buffers().check(&desc) else {
            self.stats.faults += 1;
            return r;
        };
        let mut out = buffers().desc(index).expect("checked");
        out.len = len as u16;
        if self
            .tx
            .data
            .write(buffers().offset(index), &frame[..len])
            .is_err()
            || self.tx.q.active.enqueue(out).is_err()
        {
            self.stats.faults += 1;
            return r;
        }
        self.tx.sent = true;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        r
    }
}

impl phy::Device for QueueDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !self.next_frame() {
            return None;
        }
        let len = self.rx.len;
        Some((
            RxToken(&self.rx.frame[..len]),
            TxToken {
                tx: &mut self.tx,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.tx.q.free.is_empty().unwrap_or(true) {
            // The virtualiser gives buffers back after the driver sends
            // them; it signals when asked.
            self.tx.q.free.request_signal();
            if self.tx.q.free.is_empty().unwrap_or(true) {
                return None;
            }
            self.tx.q.free.cancel_signal();
        }
        Some(TxToken {
            tx: &mut self.tx,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = wiring::MAX_FRAME;
        caps.max_burst_size = Some(wiring::BUFFERS as usize / 2);
        // `classify` has checked every received checksum already.
        let mut sums = ChecksumCapabilities::default();
        sums.ipv4 = Checksum::Tx;
        sums.udp = Checksum::Tx;
        sums.tcp = Checksum::Tx;
        caps.checksum = sums;
        caps
    }
}

/// The names of [`Drop`]'s reasons, in order.
pub const DROP_NAMES: [&str; 5] = [
    "malformed",
    "bad checksum",
    "protocol",
    "fragment",
    "not for us",
];

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{EthernetRepr, Ipv4Address, Ipv4Repr, UdpRepr};

    const ME: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn udp_frame(corrupt: bool) -> Vec<u8> {
        let src = Ipv4Address::new(10, 0, 2, 2);
        let dst = Ipv4Address::new(10, 0, 2, 15);
        let udp = UdpRepr {
            src_port: 1234,
            dst_port: 7,
        };
        let payload = b"hello";
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
            dst_addr: ME,
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
        let mut f = EthernetFrame::new_unchecked(&mut buf);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &ChecksumCapabilities::default());
        let mut u = UdpPacket::new_unchecked(p.payload_mut());
        udp.emit(
            &mut u,
            &src.into(),
            &dst.into(),
            payload.len(),
            |b| b.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        );
        if corrupt {
            let n = buf.len();
            buf[n - 1] ^= 0xff;
        }
        buf
    }

    #[test]
    fn good_frames_pass_and_bad_ones_say_why() {
        assert_eq!(classify(&udp_frame(false), &ME), Ok(()));
        assert_eq!(classify(&udp_frame(true), &ME), Err(Drop::Checksum));
        assert_eq!(classify(&udp_frame(false)[..20], &ME), Err(Drop::Malformed));
        let mut other = udp_frame(false);
        other[5] = 0x99;
        assert_eq!(classify(&other, &ME), Err(Drop::NotForUs));
        let mut ipv6 = udp_frame(false);
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(classify(&ipv6, &ME), Err(Drop::Protocol));
        let mut frag = udp_frame(false);
        frag[14 + 6] |= 0x20; // more fragments
        assert!(matches!(
            classify(&frag, &ME),
            Err(Drop::Fragment | Drop::Checksum)
        ));
        let mut ip_sum = udp_frame(false);
        ip_sum[14 + 8] ^= 1; // TTL changed, header checksum now wrong
        assert_eq!(classify(&ip_sum, &ME), Err(Drop::Checksum));
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            assert!(classify(&junk, &ME).is_err());
        }
    }
}
