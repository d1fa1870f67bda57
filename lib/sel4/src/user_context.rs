//! Register sets passed by value in messages.

use septa_abi::TCB_REGISTER_COUNT;

macro_rules! user_context {
    ($($field:ident),* $(,)?) => {
        /// `seL4_UserContext` of aarch64: the 36 registers TCB
        /// ReadRegisters/WriteRegisters transfer, in the kernel's order.
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct UserContext {
            $(pub $field: u64,)*
        }

        impl UserContext {
            /// The registers as message words, in transfer order.
            pub const fn to_words(&self) -> [u64; TCB_REGISTER_COUNT] {
                [$(self.$field,)*]
            }

            /// The inverse of [`to_words`](Self::to_words).
            pub const fn from_words(w: &[u64; TCB_REGISTER_COUNT]) -> Self {
                let mut i = 0;
                $(
                    let $field = w[i];
                    i += 1;
                )*
                let _ = i;
                UserContext { $($field,)* }
            }
        }
    };
}

user_context!(
    pc,
    sp,
    spsr,
    x0,
    x1,
    x2,
    x3,
    x4,
    x5,
    x6,
    x7,
    x8,
    x16,
    x17,
    x18,
    x29,
    x30,
    x9,
    x10,
    x11,
    x12,
    x13,
    x14,
    x15,
    x19,
    x20,
    x21,
    x22,
    x23,
    x24,
    x25,
    x26,
    x27,
    x28,
    tpidr_el0,
    tpidrro_el0,
);

const _: () = assert!(core::mem::size_of::<UserContext>() == TCB_REGISTER_COUNT * 8);

/// `seL4_ARM_SMCContext`: x0..x7 of an SMC call, arguments or results.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmcContext {
    pub x: [u64; SmcContext::WORDS],
}

impl SmcContext {
    /// Registers an SMC call passes each way.
    pub const WORDS: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_kernel_order() {
        let c = UserContext {
            pc: 1,
            sp: 2,
            spsr: 3,
            x0: 4,
            x16: 13,
            x9: 18,
            x19: 25,
            tpidrro_el0: 36,
            ..Default::default()
        };
        let w = c.to_words();
        assert_eq!(&w[..4], &[1, 2, 3, 4]);
        assert_eq!(w[12], 13); // x16 follows x8
        assert_eq!(w[17], 18); // x9 follows x30
        assert_eq!(w[24], 25); // x19 follows x15
        assert_eq!(w[35], 36);
        assert_eq!(UserContext::from_words(&w), c);
    }
}
