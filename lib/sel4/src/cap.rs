//! Typed capabilities.
//!
//! A [`CPtr`] names a slot in the thread's CSpace; a [`Cap<T>`] is a CPtr
//! that is believed to hold a capability to an object of type `T`, so only
//! the invocations of `T` can be written against it. The belief is not
//! checked (the kernel checks the real type on every invocation and answers
//! `InvalidCapability` or `IllegalOperation`); the types only keep a program
//! from mixing up its own slots.

use core::fmt;
use core::marker::PhantomData;

use septa_abi::ObjectType;

/// A capability pointer: an address in the caller's CSpace.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CPtr(u64);

impl CPtr {
    /// The null capability pointer (slot 0 is always empty).
    pub const NULL: CPtr = CPtr(0);

    /// The one door from an integer to a capability pointer; code outside
    /// this crate and the runtime should not need it.
    pub const fn from_bits(bits: u64) -> Self {
        CPtr(bits)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// The same slot, typed.
    pub const fn cast<T: CapType>(self) -> Cap<T> {
        Cap::from_cptr(self)
    }
}

impl fmt::Debug for CPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPtr({:#x})", self.0)
    }
}

/// An object type a capability can refer to.
pub trait CapType: Copy + 'static {
    /// Name used in `Debug` output.
    const NAME: &'static str;
}

/// Frame capabilities of one page size.
pub trait FrameType: CapType {
    /// log2 of the frame size in bytes.
    const SIZE_BITS: u32;
    /// The object type to pass to `Untyped_Retype`.
    const OBJECT_TYPE: ObjectType;
}

/// Marker types, one per kind of capability of this configuration.
pub mod cap_type {
    use super::{CapType, FrameType};
    use septa_abi::ObjectType;

    macro_rules! cap_types {
        ($($(#[$doc:meta])* $name:ident,)*) => {$(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum $name {}
            impl CapType for $name {
                const NAME: &'static str = stringify!($name);
            }
        )*};
    }

    cap_types! {
        /// Untyped memory.
        Untyped,
        /// A thread control block.
        Tcb,
        /// An IPC endpoint.
        Endpoint,
        /// A notification object.
        Notification,
        /// A CNode (capability table).
        CNode,
        /// An MCS scheduling context.
        SchedContext,
        /// The authority to configure scheduling contexts.
        SchedControl,
        /// An MCS reply object.
        Reply,
        /// The authority to create IRQ handler capabilities.
        IrqControl,
        /// The handler of one interrupt.
        IrqHandler,
        /// The authority to create ASID pools.
        AsidControl,
        /// An ASID pool.
        AsidPool,
        /// A top-level translation table (address space root).
        VSpace,
        /// A translation table below the root.
        PageTable,
        /// A 4 KiB frame.
        SmallPage,
        /// A 2 MiB frame.
        LargePage,
        /// A 1 GiB frame.
        HugePage,
        /// A virtual CPU (hypervisor).
        Vcpu,
        /// The authority to set thread domains and the domain schedule.
        DomainSet,
        /// The authority to make SMC calls.
        Smc,
        /// A capability whose type the program does not track.
        Unspecified,
    }

    impl FrameType for SmallPage {
        const SIZE_BITS: u32 = septa_abi::PAGE_BITS;
        const OBJECT_TYPE: ObjectType = ObjectType::SmallPage;
    }
    impl FrameType for LargePage {
        const SIZE_BITS: u32 = septa_abi::LARGE_PAGE_BITS;
        const OBJECT_TYPE: ObjectType = ObjectType::LargePage;
    }
    impl FrameType for HugePage {
        const SIZE_BITS: u32 = septa_abi::HUGE_PAGE_BITS;
        const OBJECT_TYPE: ObjectType = ObjectType::HugePage;
    }
}

/// A capability pointer typed with the kind of object it names.
pub struct Cap<T: CapType> {
    cptr: CPtr,
    _type: PhantomData<T>,
}

impl<T: CapType> Clone for Cap<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: CapType> Copy for Cap<T> {}
impl<T: CapType> PartialEq for Cap<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cptr == other.cptr
    }
}
impl<T: CapType> Eq for Cap<T> {}

impl<T: CapType> fmt::Debug for Cap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cap<{}>({:#x})", T::NAME, self.cptr.0)
    }
}

impl<T: CapType> Cap<T> {
    pub const fn from_cptr(cptr: CPtr) -> Self {
        Cap {
            cptr,
            _type: PhantomData,
        }
    }

    /// See [`CPtr::from_bits`].
    pub const fn from_bits(bits: u64) -> Self {
        Self::from_cptr(CPtr(bits))
    }

    /// The null capability of this type (for optional arguments).
    pub const fn null() -> Self {
        Self::from_cptr(CPtr::NULL)
    }

    pub const fn cptr(self) -> CPtr {
        self.cptr
    }

    pub const fn bits(self) -> u64 {
        self.cptr.0
    }

    /// The same slot, seen as another type (after a Retype, say).
    pub const fn cast<U: CapType>(self) -> Cap<U> {
        Cap::from_cptr(self.cptr)
    }

    /// The same slot, with its type forgotten.
    pub const fn upcast(self) -> Cap<cap_type::Unspecified> {
        self.cast()
    }
}

/// `Option<Cap<T>>` as the kernel wants it: the null CPtr for `None`.
pub(crate) fn opt_cptr<T: CapType>(cap: Option<Cap<T>>) -> CPtr {
    cap.map_or(CPtr::NULL, Cap::cptr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn caps_print_their_type_and_slot() {
        let ep: Cap<cap_type::Endpoint> = Cap::from_bits(0x4a);
        assert_eq!(format!("{ep:?}"), "Cap<Endpoint>(0x4a)");
        assert_eq!(format!("{:?}", ep.upcast()), "Cap<Unspecified>(0x4a)");
        assert_eq!(ep.cast::<cap_type::Notification>().bits(), 0x4a);
    }

    #[test]
    fn optional_caps_become_null() {
        assert_eq!(opt_cptr::<cap_type::Tcb>(None), CPtr::NULL);
        assert_eq!(opt_cptr(Some(Cap::<cap_type::Tcb>::from_bits(9))).bits(), 9);
    }
}
