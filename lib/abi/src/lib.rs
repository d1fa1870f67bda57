//! # septa-abi: the numbers of the seL4 16.0.0 ABI that Septa implements
//!
//! One platform: aarch64, kernel at EL2 (hypervisor support), MCS, one
//! core, 40-bit physical addresses, in Microkit 2.3.0's three kernel
//! configurations ([`config`]: release, debug, benchmark; the cargo
//! features `debug` and `benchmark` choose the one a build describes, for
//! the kernel and every program on the target). Every constant here comes from the
//! seL4 16.0.0 interface definitions (`libsel4/include/interfaces/*.xml`,
//! `api/syscall.xml`, the `.bf` files) and is shared by the kernel, the
//! user-level bindings and the host tool, so a number is written down once.
//!
//! This crate owns plain data only: no system calls, no memory access, no
//! `unsafe`. It must stay `no_std` and dependency-free.
#![no_std]
#![forbid(unsafe_code)]

pub mod bootinfo;
pub mod config;
pub mod fault;
pub mod kernel_config;
pub mod microkit;

pub use config::{Config, CONFIG};

/// System call numbers (MCS numbering), passed in x7.
pub mod syscall {
    pub const CALL: i64 = -1;
    pub const REPLY_RECV: i64 = -2;
    pub const NB_SEND_RECV: i64 = -3;
    pub const NB_SEND_WAIT: i64 = -4;
    pub const SEND: i64 = -5;
    pub const NB_SEND: i64 = -6;
    pub const RECV: i64 = -7;
    pub const NB_RECV: i64 = -8;
    pub const WAIT: i64 = -9;
    pub const NB_WAIT: i64 = -10;
    pub const YIELD: i64 = -11;
    pub const DEBUG_PUT_CHAR: i64 = -12;
    pub const DEBUG_DUMP_SCHEDULER: i64 = -13;
    pub const DEBUG_HALT: i64 = -14;
    pub const DEBUG_CAP_IDENTIFY: i64 = -15;
    pub const DEBUG_SNAPSHOT: i64 = -16;
    pub const DEBUG_NAME_THREAD: i64 = -17;
    // The benchmark configuration's (`KernelBenchmarks=track_utilisation`;
    // -24, BenchmarkSetLogBuffer, needs a kernel log buffer, which Microkit
    // does not configure: an unknown system call there too).
    pub const BENCHMARK_FLUSH_CACHES: i64 = -21;
    pub const BENCHMARK_RESET_LOG: i64 = -22;
    pub const BENCHMARK_FINALIZE_LOG: i64 = -23;
    pub const BENCHMARK_SET_LOG_BUFFER: i64 = -24;
    pub const BENCHMARK_NULL_SYSCALL: i64 = -25;
    pub const BENCHMARK_GET_THREAD_UTILISATION: i64 = -26;
    pub const BENCHMARK_RESET_THREAD_UTILISATION: i64 = -27;
}

/// Where BenchmarkGetThreadUtilisation puts each counter: the message word
/// (seL4's `benchmark_track_util_ipc_index`). Times are PMU cycles.
pub mod benchmark_utilisation {
    /// Cycles the thread named was scheduled for.
    pub const TCB_UTILISATION: usize = 0;
    /// Times it was scheduled.
    pub const TCB_NUMBER_SCHEDULES: usize = 1;
    /// Cycles it spent in the kernel.
    pub const TCB_KERNEL_UTILISATION: usize = 2;
    /// Times it entered the kernel.
    pub const TCB_NUMBER_KERNEL_ENTRIES: usize = 3;
    /// The idle thread's cycles (this core's, and the thread's core's).
    pub const IDLE_LOCALCPU_UTILISATION: usize = 4;
    pub const IDLE_TCBCPU_UTILISATION: usize = 5;
    pub const IDLE_NUMBER_SCHEDULES: usize = 6;
    pub const IDLE_KERNEL_UTILISATION: usize = 7;
    pub const IDLE_NUMBER_KERNEL_ENTRIES: usize = 8;
    /// Cycles from BenchmarkResetLog to BenchmarkFinalizeLog.
    pub const TOTAL_UTILISATION: usize = 9;
    /// Switches of thread (the current one again included).
    pub const TOTAL_NUMBER_SCHEDULES: usize = 10;
    pub const TOTAL_KERNEL_UTILISATION: usize = 11;
    pub const TOTAL_NUMBER_KERNEL_ENTRIES: usize = 12;
    /// How many words the call writes.
    pub const WORDS: usize = 13;
}

/// Declares [`Label`] and [`Label::ALL`] from one list of the methods.
macro_rules! labels {
    ($(#[$m:meta])* $($name:ident,)*) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Label {
            $($name,)*
        }

        impl Label {
            /// Every method, in order (the discriminants index this table).
            pub const ALL: [Label; [$(stringify!($name)),*].len()] = [$(Label::$name),*];
        }
    };
}

labels! {
    /// Invocation methods of seL4 16.0.0 for this kernel (generic, then aarch64,
    /// then arm), in the interface files' order. The number a method is sent
    /// with depends on the configuration (the hardware debug API's four TCB
    /// methods are present only in debug): [`Label::number`] gives it for the
    /// configuration of this build, [`Config::label_number`] for any.
    InvalidInvocation,
    UntypedRetype,
    TcbReadRegisters,
    TcbWriteRegisters,
    TcbCopyRegisters,
    TcbConfigure,
    TcbSetPriority,
    TcbSetMcPriority,
    TcbSetSchedParams,
    TcbSetTimeoutEndpoint,
    TcbSetIpcBuffer,
    TcbSetSpace,
    TcbSuspend,
    TcbResume,
    TcbBindNotification,
    TcbUnbindNotification,
    TcbSetBreakpoint,
    TcbGetBreakpoint,
    TcbUnsetBreakpoint,
    TcbConfigureSingleStepping,
    TcbSetTlsBase,
    TcbSetFlags,
    CNodeRevoke,
    CNodeDelete,
    CNodeCancelBadgedSends,
    CNodeCopy,
    CNodeMint,
    CNodeMove,
    CNodeMutate,
    CNodeRotate,
    IrqIssueIrqHandler,
    IrqAckIrq,
    IrqSetIrqHandler,
    IrqClearIrqHandler,
    DomainSetSet,
    DomainScheduleConfigure,
    DomainScheduleSetStart,
    SchedControlConfigureFlags,
    SchedContextBind,
    SchedContextUnbind,
    SchedContextUnbindObject,
    SchedContextConsumed,
    SchedContextYieldTo,
    ArmVSpaceCleanData,
    ArmVSpaceInvalidateData,
    ArmVSpaceCleanInvalidateData,
    ArmVSpaceUnifyInstruction,
    ArmSmcCall,
    ArmPageTableMap,
    ArmPageTableUnmap,
    ArmPageMap,
    ArmPageUnmap,
    ArmPageCleanData,
    ArmPageInvalidateData,
    ArmPageCleanInvalidateData,
    ArmPageUnifyInstruction,
    ArmPageGetAddress,
    ArmAsidControlMakePool,
    ArmAsidPoolAssign,
    ArmVcpuSetTcb,
    ArmVcpuInjectIrq,
    ArmVcpuReadReg,
    ArmVcpuWriteReg,
    ArmVcpuAckVppi,
    ArmIrqIssueIrqHandlerTrigger,
    ArmIrqIssueSgiSignal,
}

impl Label {
    /// One of the hardware debug API's methods.
    pub const fn is_hardware_debug(self) -> bool {
        matches!(
            self,
            Label::TcbSetBreakpoint
                | Label::TcbGetBreakpoint
                | Label::TcbUnsetBreakpoint
                | Label::TcbConfigureSingleStepping
        )
    }

    /// The label this method is sent with in [`CONFIG`]. A method the
    /// configuration lacks is sent as InvalidInvocation (0), which every
    /// kernel refuses with IllegalOperation, as it would the missing method.
    pub const fn number(self) -> u64 {
        match CONFIG.label_number(self) {
            Some(n) => n,
            None => 0,
        }
    }

    /// Decodes a message label under [`CONFIG`]; labels past the table are
    /// `None`.
    pub fn from_u64(n: u64) -> Option<Label> {
        CONFIG.label(n)
    }
}

/// Kernel object types, as passed to `Untyped_Retype`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Untyped = 0,
    Tcb = 1,
    Endpoint = 2,
    Notification = 3,
    CNode = 4,
    SchedContext = 5,
    Reply = 6,
    HugePage = 7,
    VSpace = 8,
    SmallPage = 9,
    LargePage = 10,
    PageTable = 11,
    Vcpu = 12,
}

impl ObjectType {
    pub const COUNT: u64 = 13;

    pub fn from_u64(n: u64) -> Option<ObjectType> {
        use ObjectType::*;
        Some(match n {
            0 => Untyped,
            1 => Tcb,
            2 => Endpoint,
            3 => Notification,
            4 => CNode,
            5 => SchedContext,
            6 => Reply,
            7 => HugePage,
            8 => VSpace,
            9 => SmallPage,
            10 => LargePage,
            11 => PageTable,
            12 => Vcpu,
            _ => return None,
        })
    }

    /// Size in bits of one object of this type; for the variable-sized
    /// types (Untyped, CNode, SchedContext) the size of one slot or the
    /// minimum, and the caller adds the user's `size_bits` argument.
    pub const fn fixed_size_bits(self) -> Option<u32> {
        use ObjectType::*;
        match self {
            Tcb => Some(TCB_SIZE_BITS),
            Endpoint => Some(ENDPOINT_SIZE_BITS),
            Notification => Some(NOTIFICATION_SIZE_BITS),
            Reply => Some(REPLY_SIZE_BITS),
            HugePage => Some(HUGE_PAGE_BITS),
            VSpace => Some(VSPACE_SIZE_BITS),
            SmallPage => Some(PAGE_BITS),
            LargePage => Some(LARGE_PAGE_BITS),
            PageTable => Some(PAGE_TABLE_SIZE_BITS),
            Vcpu => Some(VCPU_SIZE_BITS),
            Untyped | CNode | SchedContext => None,
        }
    }
}

/// `seL4_TCBBits` of this build's configuration (see [`Config::tcb_size_bits`]).
pub const TCB_SIZE_BITS: u32 = CONFIG.tcb_size_bits();
pub const ENDPOINT_SIZE_BITS: u32 = 4;
pub const NOTIFICATION_SIZE_BITS: u32 = 6;
pub const SLOT_SIZE_BITS: u32 = 5;
pub const MIN_SCHED_CONTEXT_BITS: u32 = 7;
pub const REPLY_SIZE_BITS: u32 = 5;
pub const PAGE_BITS: u32 = 12;
pub const LARGE_PAGE_BITS: u32 = 21;
pub const HUGE_PAGE_BITS: u32 = 30;
pub const VSPACE_SIZE_BITS: u32 = 13;
pub const PAGE_TABLE_SIZE_BITS: u32 = 12;
pub const VCPU_SIZE_BITS: u32 = 12;
pub const ASID_POOL_SIZE_BITS: u32 = 12;
pub const MIN_UNTYPED_BITS: u32 = 4;
pub const MAX_UNTYPED_BITS: u32 = 47;
/// Bits of an ASID that select the pool (`seL4_NumASIDPoolsBits`).
pub const NUM_ASID_POOLS_BITS: u32 = 7;
/// Bits of an ASID that index within a pool (`seL4_ASIDPoolIndexBits`).
pub const ASID_POOL_INDEX_BITS: u32 = 9;
/// Highest user virtual address, inclusive.
pub const USER_TOP: u64 = 0x0000_00ff_ffff_ffff;
/// Physical address bits of this configuration.
pub const PHYS_ADDR_BITS: u32 = 40;
/// Base of Septa's kernel's window onto physical memory: the kernel sees
/// physical address `p` at `KERNEL_WINDOW_BASE + p`. The kernel's linker
/// script and its EL2 page tables are made from it. It is 0, the identity:
/// the EL2 regime has address space of its own (user level runs in the
/// EL1&0 regime), so nothing else wants the low addresses, and a kernel
/// address is then the object's physical address itself, with no offset
/// to add at each of the kernel's ~600 object accesses. (The seL4 hyp
/// kernel has its window at 2^39 instead; the loader maps that one too, for
/// a real seL4 kernel, see `septa-loader`.)
pub const KERNEL_WINDOW_BASE: u64 = 0;
/// Where this project's root tasks (the initializer, the kernel conformance
/// suite) are linked. A kernel maps a root task wherever its ELF file says,
/// so this is a convention of Septa's own root tasks, not of the seL4 ABI;
/// `septa-root-task`'s linker script is made from it.
pub const ROOT_TASK_BASE: u64 = 0x40_0000;
/// Root CNode size of the initial thread.
pub const ROOT_CNODE_SIZE_BITS: u32 = 17;
pub const WORD_BITS: u32 = 64;

/// Errors returned in the label of an invocation's reply.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    NoError = 0,
    InvalidArgument = 1,
    InvalidCapability = 2,
    IllegalOperation = 3,
    RangeError = 4,
    AlignmentError = 5,
    FailedLookup = 6,
    TruncatedMessage = 7,
    DeleteFirst = 8,
    RevokeFirst = 9,
    NotEnoughMemory = 10,
}

impl Error {
    pub fn from_u64(n: u64) -> Option<Error> {
        use Error::*;
        Some(match n {
            0 => NoError,
            1 => InvalidArgument,
            2 => InvalidCapability,
            3 => IllegalOperation,
            4 => RangeError,
            5 => AlignmentError,
            6 => FailedLookup,
            7 => TruncatedMessage,
            8 => DeleteFirst,
            9 => RevokeFirst,
            10 => NotEnoughMemory,
            _ => return None,
        })
    }
}

/// Lookup failure types, carried after an error or in a CapFault.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFailureType {
    NoFailure = 0,
    InvalidRoot = 1,
    MissingCapability = 2,
    DepthMismatch = 3,
    GuardMismatch = 4,
}

/// The message info word: length, extra caps, unwrapped mask, label.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MessageInfo(pub u64);

impl MessageInfo {
    pub const fn new(label: u64, caps_unwrapped: u64, extra_caps: u64, length: u64) -> Self {
        MessageInfo(
            (label << 12)
                | ((caps_unwrapped & 0x7) << 9)
                | ((extra_caps & 0x3) << 7)
                | (length & 0x7f),
        )
    }
    pub const fn label(self) -> u64 {
        self.0 >> 12
    }
    pub const fn caps_unwrapped(self) -> u64 {
        (self.0 >> 9) & 0x7
    }
    pub const fn extra_caps(self) -> u64 {
        (self.0 >> 7) & 0x3
    }
    pub const fn length(self) -> u64 {
        self.0 & 0x7f
    }
}

/// Capability rights as passed to Mint and Retype-free invocations.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CapRights(pub u64);

impl CapRights {
    pub const WRITE: u64 = 1 << 0;
    pub const READ: u64 = 1 << 1;
    pub const GRANT: u64 = 1 << 2;
    pub const GRANT_REPLY: u64 = 1 << 3;
    pub const ALL: CapRights = CapRights(0xf);
    pub const NONE: CapRights = CapRights(0);
    pub const fn new(grant_reply: bool, grant: bool, read: bool, write: bool) -> Self {
        CapRights(
            (grant_reply as u64) << 3 | (grant as u64) << 2 | (read as u64) << 1 | write as u64,
        )
    }
    pub const fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }
    pub const fn read(self) -> bool {
        self.0 & Self::READ != 0
    }
    pub const fn grant(self) -> bool {
        self.0 & Self::GRANT != 0
    }
    pub const fn grant_reply(self) -> bool {
        self.0 & Self::GRANT_REPLY != 0
    }
    pub const fn and(self, other: CapRights) -> CapRights {
        CapRights(self.0 & other.0 & 0xf)
    }
}

/// CNode guard data word (Mint/Mutate of CNode caps, TCB CSpace root data).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CNodeCapData(pub u64);

impl CNodeCapData {
    pub const fn new(guard: u64, guard_size: u64) -> Self {
        CNodeCapData((guard << 6) | (guard_size & 0x3f))
    }
    pub const fn guard_size(self) -> u64 {
        self.0 & 0x3f
    }
    pub const fn guard(self) -> u64 {
        self.0 >> 6
    }
}

/// IPC buffer layout.
pub mod ipc_buffer {
    pub const SIZE: usize = 1024;
    pub const SIZE_BITS: u32 = 10;
    pub const TAG_OFFSET: usize = 0;
    pub const MSG_OFFSET: usize = 8;
    pub const USER_DATA_OFFSET: usize = 968;
    pub const CAPS_OR_BADGES_OFFSET: usize = 976;
    pub const RECEIVE_CNODE_OFFSET: usize = 1000;
    pub const RECEIVE_INDEX_OFFSET: usize = 1008;
    pub const RECEIVE_DEPTH_OFFSET: usize = 1016;
    /// Maximum message length in words.
    pub const MSG_MAX_LENGTH: usize = 120;
    pub const MSG_MAX_EXTRA_CAPS: usize = 3;
    /// Message registers passed in machine registers (x2..x5).
    pub const FAST_MESSAGE_REGISTERS: usize = 4;
}

/// Interrupt numbers of the platform (QEMU `virt`, GICv2) as seL4 16.0.0
/// configures it: what IRQControl accepts and which IRQs the kernel keeps.
pub mod irq {
    /// Highest IRQ user level may ask for (seL4's `maxIRQ`, `MAX_IRQ` in
    /// the qemu-arm-virt platform configuration); RangeError reports it.
    pub const MAX_IRQ: u64 = 159;
    /// Software-generated interrupts of the GIC (`NUM_SGIS`).
    pub const NUM_SGIS: u64 = 16;
    /// CPU interfaces a GICv2 SGI can target (`GIC_SGI_NUM_TARGETS`).
    pub const SGI_TARGETS: u64 = 8;
    /// The kernel's timer: the EL2 physical timer PPI (`KERNEL_TIMER_IRQ`).
    pub const KERNEL_TIMER: u64 = 26;
    /// The virtual GIC maintenance PPI (`INTERRUPT_VGIC_MAINTENANCE`).
    pub const VGIC_MAINTENANCE: u64 = 25;
    /// The EL1 virtual timer PPI, delivered as a VPPI event
    /// (`INTERRUPT_VTIMER_EVENT`).
    pub const VTIMER_EVENT: u64 = 27;
}

/// Frame mapping attributes (`seL4_ARM_VMAttributes`).
pub mod vm_attributes {
    pub const PAGE_CACHEABLE: u64 = 1;
    pub const PARITY_ENABLED: u64 = 2;
    pub const DEFAULT: u64 = 3;
    pub const EXECUTE_NEVER: u64 = 4;
}

/// Slots of the initial thread's CNode.
pub mod init_cap {
    pub const NULL: u64 = 0;
    pub const TCB: u64 = 1;
    pub const CNODE: u64 = 2;
    pub const VSPACE: u64 = 3;
    pub const IRQ_CONTROL: u64 = 4;
    pub const ASID_CONTROL: u64 = 5;
    pub const ASID_POOL: u64 = 6;
    pub const IO_PORT_CONTROL: u64 = 7;
    pub const IO_SPACE: u64 = 8;
    pub const BOOT_INFO_FRAME: u64 = 9;
    pub const IPC_BUFFER: u64 = 10;
    pub const DOMAIN: u64 = 11;
    pub const SMMU_SID_CONTROL: u64 = 12;
    pub const SMMU_CB_CONTROL: u64 = 13;
    pub const SCHED_CONTEXT: u64 = 14;
    pub const SMC: u64 = 15;
    /// First slot the kernel fills with further boot caps.
    pub const FIRST_FREE: u64 = 16;
}

/// VCPU register indices for VCPU ReadReg/WriteReg.
pub mod vcpu_reg {
    pub const SCTLR: u64 = 0;
    pub const CPACR: u64 = 1;
    pub const TTBR0: u64 = 2;
    pub const TTBR1: u64 = 3;
    pub const TCR: u64 = 4;
    pub const MAIR: u64 = 5;
    pub const AMAIR: u64 = 6;
    pub const CIDR: u64 = 7;
    pub const ACTLR: u64 = 8;
    pub const AFSR0: u64 = 9;
    pub const AFSR1: u64 = 10;
    pub const ESR: u64 = 11;
    pub const FAR: u64 = 12;
    pub const PAR: u64 = 13;
    pub const VBAR: u64 = 14;
    pub const TPIDR_EL1: u64 = 15;
    pub const VMPIDR_EL2: u64 = 16;
    pub const SP_EL1: u64 = 17;
    pub const ELR_EL1: u64 = 18;
    pub const SPSR_EL1: u64 = 19;
    pub const CNTV_CTL: u64 = 20;
    pub const CNTV_CVAL: u64 = 21;
    pub const CNTVOFF: u64 = 22;
    pub const CNTKCTL_EL1: u64 = 23;
    pub const COUNT: u64 = 24;
}

/// The hardware debug API of the debug configuration (`libsel4`'s
/// `sel4/constants.h` and `constants_cortex_a53.h`).
pub mod hardware_debug {
    /// `seL4_BreakpointType`: the `type` argument, and the reason of a
    /// DebugException.
    pub const DATA_BREAKPOINT: u64 = 0;
    pub const INSTRUCTION_BREAKPOINT: u64 = 1;
    pub const SINGLE_STEP: u64 = 2;
    pub const SOFTWARE_BREAK_REQUEST: u64 = 3;
    /// `seL4_BreakpointAccess`: the `rw` argument.
    pub const BREAK_ON_READ: u64 = 0;
    pub const BREAK_ON_WRITE: u64 = 1;
    pub const BREAK_ON_READ_WRITE: u64 = 2;
    /// Breakpoint numbers of the Cortex-A53: 0..6 are instruction
    /// breakpoints, 6..10 watchpoints.
    pub const NUM_EXCLUSIVE_BREAKPOINTS: u64 = 6;
    pub const NUM_EXCLUSIVE_WATCHPOINTS: u64 = 4;
    pub const FIRST_BREAKPOINT: u64 = 0;
    pub const FIRST_WATCHPOINT: u64 = 6;
    /// All of them (`seL4_NumHWBreakpoints`).
    pub const NUM_HW_BREAKPOINTS: u64 = 10;
}

/// Thread flags of `TCB_SetFlags` (`seL4_TCBFlag`).
pub mod tcb_flag {
    /// The thread may not use the FPU (and traps if it does).
    pub const FPU_DISABLED: u64 = 1;
}

/// Number of words in the TCB register set for Read/WriteRegisters, in the
/// order pc, sp, spsr, x0-x8, x16, x17, x18, x29, x30, x9-x15, x19-x28,
/// tpidr_el0, tpidrro_el0.
pub const TCB_REGISTER_COUNT: usize = 36;
/// Of those, the "frame" registers (pc through x30) copied by CopyRegisters
/// with `transfer_frame`.
pub const TCB_FRAME_REGISTER_COUNT: usize = 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_end_where_the_table_ends() {
        for n in 0..=CONFIG.last_label() {
            assert_eq!(Label::from_u64(n).unwrap().number(), n);
        }
        assert_eq!(Label::from_u64(CONFIG.last_label() + 1), None);
        for (i, l) in Label::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
        }
    }

    #[test]
    fn message_info_packs_fields_in_their_bits() {
        let m = MessageInfo::new(0x1234, 5, 2, 77);
        assert_eq!(m.0, (0x1234 << 12) | (5 << 9) | (2 << 7) | 77);
        assert_eq!(
            (m.label(), m.caps_unwrapped(), m.extra_caps(), m.length()),
            (0x1234, 5, 2, 77)
        );
    }

    #[test]
    fn object_types_round_trip() {
        for n in 0..ObjectType::COUNT {
            assert_eq!(ObjectType::from_u64(n).unwrap() as u64, n);
        }
        assert!(ObjectType::from_u64(ObjectType::COUNT).is_none());
    }
}
