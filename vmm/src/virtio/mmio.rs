//! The virtio-mmio register block of one device (virtio 1.2, 4.2.2),
//! modern interface (version 2) only: what Linux's `virtio_mmio` reads and
//! writes to find a device, agree on features, set up its queues and take
//! its interrupts. The device behind it (its id, features, queues and
//! configuration space) is the caller's.
//!
//! Registers are 32-bit; the configuration space from 0x100 takes 1, 2 and
//! 4-byte accesses. Anything else is refused (the guest gets an abort).

use super::mem::GuestMem;
use super::queue::{Queue, QueueError, MAX_SIZE};

/// The most queues a device here has.
pub const MAX_QUEUES: usize = 2;

/// The largest configuration space of a device here (the disk's is 24
/// bytes).
pub const CONFIG_MAX: usize = 32;

/// Feature bits every device offers: VIRTIO_F_VERSION_1 (the modern
/// interface, required).
pub const F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_ACCESS_PLATFORM: the guest must map its buffers for the device
/// (Linux then bounces them through swiotlb when told to).
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;

/// Register offsets.
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// Device status bits.
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// InterruptStatus bits.
pub const INT_USED: u32 = 1;
pub const INT_CONFIG: u32 = 2;

/// "virt".
pub const MAGIC: u32 = 0x7472_6976;
/// The vendor id the VMM reports (QEMU's, which no driver cares about).
pub const VENDOR: u32 = 0x554d_4551;

/// What a register write asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The guest notified queue `n`.
    Notify(u16),
    /// The guest reset the device (status 0): the device drops what it
    /// holds of the guest's.
    Reset,
    /// The guest set DRIVER_OK: the device may start.
    Started,
    /// A write the device ignores, and why (for the log).
    Ignored(&'static str),
    /// A queue the guest made ready whose rings are not in its RAM.
    BadQueue(QueueError),
}

/// What a device is: the transport asks it these.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    /// Virtio device id (1 network, 2 block, 3 console).
    pub id: u32,
    /// Feature bits offered (with [`F_VERSION_1`]).
    pub features: u64,
    /// Queues the device has.
    pub queues: usize,
}

/// One device's transport state.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    pub ident: Identity,
    /// Feature bits the driver must accept, or FEATURES_OK does not stick
    /// (a sealed VM's [`F_ACCESS_PLATFORM`]).
    pub required: u64,
    pub device_features_sel: u32,
    pub driver_features_sel: u32,
    pub driver_features: u64,
    pub queue_sel: u32,
    pub queues: [Queue; MAX_QUEUES],
    pub status: u32,
    pub interrupt: u32,
}

impl Transport {
    pub fn new(ident: Identity) -> Self {
        let mut t = Transport {
            ident,
            required: F_VERSION_1,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: [Queue::default(); MAX_QUEUES],
            status: 0,
            interrupt: 0,
        };
        t.reset();
        t
    }

    /// Offers `bits` and refuses FEATURES_OK unless the driver accepts
    /// them.
    pub fn require(&mut self, bits: u64) {
        self.ident.features |= bits;
        self.required |= bits;
    }

    /// The device as after power-on (status 0).
    pub fn reset(&mut self) {
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.interrupt = 0;
    }

    /// The driver has finished setting up (DRIVER_OK) and nothing asked
    /// for a reset.
    pub fn running(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.status & status::NEEDS_RESET == 0
    }

    /// The device found the guest's queues broken: it says so (a
    /// configuration change with NEEDS_RESET) and does nothing more until
    /// the guest resets it.
    pub fn needs_reset(&mut self) {
        self.status |= status::NEEDS_RESET;
        self.interrupt |= INT_CONFIG;
    }

    fn selected(&mut self) -> Option<&mut Queue> {
        let n = self.ident.queues;
        self.queues[..n].get_mut(self.queue_sel as usize)
    }

    /// A read of a register below the configuration space.
    pub fn read(&mut self, offset: u64, size: u8) -> Result<u32, &'static str> {
        if size != 4 || !offset.is_multiple_of(4) {
            return Err("virtio-mmio registers take aligned 4-byte accesses");
        }
        let feats = self.ident.features;
        Ok(match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.ident.id,
            reg::VENDOR_ID => VENDOR,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => feats as u32,
                1 => (feats >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected().map_or(0, |_| u32::from(MAX_SIZE)),
            reg::QUEUE_READY => self.selected().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt,
            reg::STATUS => self.status,
            // No shared memory regions: a length of all ones says so.
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => {
                u32::MAX
            }
            reg::CONFIG_GENERATION => 0,
            _ => return Err("not a readable virtio-mmio register"),
        })
    }

    /// A guest write anywhere in the register block of a device whose
    /// configuration space is read-only (`what` says whose, in the log).
    pub fn guest_write(
        &mut self,
        mem: &GuestMem,
        offset: u64,
        size: u8,
        value: u32,
        what: &'static str,
    ) -> Result<Effect, &'static str> {
        if offset >= reg::CONFIG {
            return Ok(Effect::Ignored(what));
        }
        self.write(mem, offset, size, value)
    }

    /// A write of a register below the configuration space.
    pub fn write(
        &mut self,
        mem: &GuestMem,
        offset: u64,
        size: u8,
        v: u32,
    ) -> Result<Effect, &'static str> {
        if size != 4 || !offset.is_multiple_of(4) {
            return Err("virtio-mmio registers take aligned 4-byte accesses");
        }
        let v64 = u64::from(v);
        Ok(match offset {
            reg::DEVICE_FEATURES_SEL => {
                self.device_features_sel = v;
                Effect::None
            }
            reg::DRIVER_FEATURES_SEL => {
                self.driver_features_sel = v;
                Effect::None
            }
            reg::DRIVER_FEATURES => {
                if self.status & status::FEATURES_OK != 0 {
                    return Ok(Effect::Ignored("features written after FEATURES_OK"));
                }
                match self.driver_features_sel {
                    0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v64,
                    1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v64 << 32),
                    _ => return Ok(Effect::Ignored("features past bit 63")),
                }
                Effect::None
            }
            reg::QUEUE_SEL => {
                self.queue_sel = v;
                Effect::None
            }
            reg::QUEUE_NUM
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => {
                let Some(q) = self.selected() else {
                    return Ok(Effect::Ignored("no such queue"));
                };
                if q.ready {
                    return Ok(Effect::Ignored("a ready queue's configuration"));
                }
                let lo = |x: u64| (x & !0xffff_ffff) | v64;
                let hi = |x: u64| (x & 0xffff_ffff) | (v64 << 32);
                match offset {
                    reg::QUEUE_NUM => q.size = v.min(u32::from(u16::MAX)) as u16,
                    reg::QUEUE_DESC_LOW => q.desc = lo(q.desc),
                    reg::QUEUE_DESC_HIGH => q.desc = hi(q.desc),
                    reg::QUEUE_DRIVER_LOW => q.avail = lo(q.avail),
                    reg::QUEUE_DRIVER_HIGH => q.avail = hi(q.avail),
                    reg::QUEUE_DEVICE_LOW => q.used = lo(q.used),
                    _ => q.used = hi(q.used),
                }
                Effect::None
            }
            reg::QUEUE_READY => {
                let Some(q) = self.selected() else {
                    return Ok(Effect::Ignored("no such queue"));
                };
                if v & 1 == 0 {
                    q.ready = false;
                    return Ok(Effect::None);
                }
                match q.check(mem) {
                    Ok(()) => {
                        q.ready = true;
                        q.last_avail = 0;
                        q.used_idx = 0;
                        Effect::None
                    }
                    Err(e) => Effect::BadQueue(e),
                }
            }
            reg::QUEUE_NOTIFY => {
                if (v as usize) < self.ident.queues {
                    Effect::Notify(v as u16)
                } else {
                    Effect::Ignored("a notification for a queue the device does not have")
                }
            }
            reg::INTERRUPT_ACK => {
                self.interrupt &= !v;
                Effect::None
            }
            reg::STATUS => {
                if v == 0 {
                    self.reset();
                    return Ok(Effect::Reset);
                }
                let mut s = v & 0xff;
                if s & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0 {
                    let f = self.driver_features;
                    if f & !self.ident.features != 0 || f & self.required != self.required {
                        // Features the device did not offer, the legacy
                        // interface, or a required feature declined
                        // (ACCESS_PLATFORM in a sealed VM): FEATURES_OK
                        // does not stick, and the driver gives up.
                        s &= !status::FEATURES_OK;
                    }
                }
                let started = s & status::DRIVER_OK != 0 && self.status & status::DRIVER_OK == 0;
                self.status = s | (self.status & status::NEEDS_RESET);
                if started {
                    Effect::Started
                } else {
                    Effect::None
                }
            }
            reg::SHM_SEL => Effect::None,
            _ => return Err("not a writable virtio-mmio register"),
        })
    }
}

/// A device behind a transport: what it does when the guest writes its
/// register block. The transport decodes the write; the device supplies
/// what happens next (its poll, and what it reports when a queue's rings
/// are not in guest RAM), so every device handles a write the same way.
pub trait Device {
    /// What one round of the device's work asks of the VMM.
    type Work: Default;
    /// The log's reason when the guest writes the (read-only)
    /// configuration space.
    const CONFIG_READ_ONLY: &'static str;

    fn transport(&mut self) -> &mut Transport;

    /// The device's configuration space as it stands (bytes past what the
    /// device has read as zero).
    fn config(&self, space: &mut [u8; CONFIG_MAX]);

    /// Moves what can move.
    fn poll(&mut self, mem: &GuestMem) -> Self::Work;

    /// The guest made a queue ready whose rings are not in its RAM: the
    /// work that reports it (the interrupt raised, the error given).
    fn bad_queue(error: QueueError) -> Self::Work;

    /// The guest reset the device (status 0; the transport is reset
    /// already): what the device holds of the guest's is forgotten.
    fn forget(&mut self) {}

    /// A guest read at `offset` of the transport.
    fn read(&mut self, offset: u64, size: u8) -> Result<u32, &'static str> {
        if offset >= reg::CONFIG {
            let mut space = [0u8; CONFIG_MAX];
            self.config(&mut space);
            return config_read(&space, offset - reg::CONFIG, size);
        }
        self.transport().read(offset, size)
    }

    /// A guest write at `offset` of the transport; then whatever work it
    /// makes possible (a notification or DRIVER_OK polls the device; a
    /// broken queue makes it ask for a reset).
    fn write(
        &mut self,
        mem: &GuestMem,
        offset: u64,
        size: u8,
        value: u32,
    ) -> Result<(Effect, Self::Work), &'static str> {
        let effect =
            self.transport()
                .guest_write(mem, offset, size, value, Self::CONFIG_READ_ONLY)?;
        let work = match effect {
            Effect::Notify(_) | Effect::Started => self.poll(mem),
            Effect::BadQueue(error) => {
                self.transport().needs_reset();
                Self::bad_queue(error)
            }
            Effect::Reset => {
                self.forget();
                Self::Work::default()
            }
            _ => Self::Work::default(),
        };
        Ok((effect, work))
    }
}

/// A read of `size` bytes at `offset` of a configuration space `config`
/// (little-endian, as virtio's modern interface has it); past its end
/// reads as zero.
pub fn config_read(config: &[u8], offset: u64, size: u8) -> Result<u32, &'static str> {
    if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(u64::from(size)) {
        return Err("the configuration space takes aligned 1, 2 or 4-byte accesses");
    }
    let mut b = [0u8; 4];
    for (i, byte) in b.iter_mut().enumerate().take(usize::from(size)) {
        *byte = usize::try_from(offset)
            .ok()
            .and_then(|o| config.get(o + i))
            .copied()
            .unwrap_or(0);
    }
    Ok(u32::from_le_bytes(b))
}
