//! Cutting mapped regions into the windows the queue handles attach to.

use septa_queue::net::{Sink, Source};
use septa_queue::{AttachError, Shared};

use crate::wiring::{ACTIVE_OFFSET, BUFFERS};

/// The free and active queues of a queue-pair region.
pub fn pair(mem: Shared) -> Option<(Shared, Shared)> {
    Some((
        mem.window(0, ACTIVE_OFFSET)?,
        mem.window(ACTIVE_OFFSET, ACTIVE_OFFSET)?,
    ))
}

/// The source's end of a queue-pair region (it fills buffers).
pub fn source(mem: Shared) -> Result<Source, AttachError> {
    let (free, active) = pair(mem).ok_or(AttachError::TooSmall {
        need: 2 * ACTIVE_OFFSET,
        have: mem.len(),
    })?;
    Source::attach(free, active, BUFFERS)
}

/// The sink's end of a queue-pair region (it uses filled buffers).
pub fn sink(mem: Shared) -> Result<Sink, AttachError> {
    let (free, active) = pair(mem).ok_or(AttachError::TooSmall {
        need: 2 * ACTIVE_OFFSET,
        have: mem.len(),
    })?;
    Sink::attach(free, active, BUFFERS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wiring::QUEUES_SIZE;
    use septa_queue::net::BuffDesc;

    #[test]
    fn a_pair_region_holds_both_queues_and_they_meet() {
        let mem = septa_queue::host::leak(QUEUES_SIZE as usize);
        let mut src = source(mem).unwrap();
        let mut snk = sink(mem).unwrap();
        let d = BuffDesc {
            io_or_offset: 2048,
            len: 60,
            oid: 0,
        };
        src.active.enqueue(d).unwrap();
        assert_eq!(snk.active.dequeue().unwrap(), Some(d));
        snk.free.enqueue(d).unwrap();
        assert_eq!(src.free.dequeue().unwrap(), Some(d));
        assert!(source(septa_queue::host::leak(0x1000)).is_err());
    }
}
