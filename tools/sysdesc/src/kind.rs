//! Every kind of problem the front end can report, with its stable code.
//!
//! Codes are part of the interface: tools and tests match on them, so a code
//! is never renamed or reused for another meaning. Each variant has at least
//! one fixture under `tests/invalid/` that provokes it.

use miette::Diagnostic;
use thiserror::Error;

#[derive(Debug, Error, Diagnostic, Clone, PartialEq, Eq)]
pub enum Kind {
    // ---------------------------------------------------------------- syntax
    #[error("{0}")]
    #[diagnostic(code(septa::toml::syntax))]
    TomlSyntax(String),
    #[error("unknown key `{key}`")]
    #[diagnostic(code(septa::toml::unknown_key), help("{expected}"))]
    UnknownKey { key: String, expected: String },
    #[error("{0}")]
    #[diagnostic(code("septa::toml::type"))]
    WrongType(String),
    #[error("missing key `{0}`")]
    #[diagnostic(code(septa::toml::missing_key))]
    MissingKey(String),
    #[error("{0}")]
    #[diagnostic(code(septa::toml::value))]
    BadValue(String),
    #[error("invalid size: {0}")]
    #[diagnostic(
        code(septa::size::invalid),
        help("write a size as an integer of bytes or as \"4 KiB\", \"2 MiB\", \"1 GiB\"")
    )]
    BadSize(String),
    #[error("invalid duration: {0}")]
    #[diagnostic(
        code(septa::duration::invalid),
        help("write a duration as an integer of microseconds or as \"500 us\", \"1 ms\", \"1 s\"")
    )]
    BadDuration(String),
    #[error("XML is not well formed: {0}")]
    #[diagnostic(code(septa::xml::syntax))]
    XmlSyntax(String),
    #[error("unknown element <{element}> in <{parent}>")]
    #[diagnostic(code(septa::xml::unknown_element))]
    XmlUnknownElement { element: String, parent: String },
    #[error("unknown attribute `{attribute}` on <{element}>")]
    #[diagnostic(code(septa::xml::unknown_attribute))]
    XmlUnknownAttribute { attribute: String, element: String },
    #[error("missing attribute `{attribute}` on <{element}>")]
    #[diagnostic(code(septa::xml::missing_attribute))]
    XmlMissingAttribute { attribute: String, element: String },
    #[error("missing element <{element}> in <{parent}>")]
    #[diagnostic(code(septa::xml::missing_element))]
    XmlMissingElement { element: String, parent: String },
    #[error("{0}")]
    #[diagnostic(code(septa::xml::value))]
    XmlValue(String),
    #[error("unexpected text in <{0}>")]
    #[diagnostic(code(septa::xml::text))]
    XmlText(String),
    #[error("`{element}` must appear only once in <{parent}>")]
    #[diagnostic(code(septa::xml::repeated))]
    XmlRepeated { element: String, parent: String },
    #[error("the root element must be <system>, not <{0}>")]
    #[diagnostic(code(septa::xml::root))]
    XmlRoot(String),

    #[error("cannot read `{path}`: {reason}")]
    #[diagnostic(code(septa::file::unreadable))]
    Unreadable { path: String, reason: String },

    // ----------------------------------------------------------------- board
    #[error("unknown board `{name}`")]
    #[diagnostic(
        code(septa::board::unknown),
        help("known boards: {known}; or give the path of a profile ending in .toml")
    )]
    UnknownBoard { name: String, known: String },
    #[error("cannot read board profile `{path}`: {reason}")]
    #[diagnostic(code(septa::board::unreadable))]
    BoardUnreadable { path: String, reason: String },
    #[error("board profile is inconsistent: {0}")]
    #[diagnostic(code(septa::board::invalid))]
    BoardInvalid(String),
    #[error("{what} exist only on x86-64, and board `{board}` is {arch}")]
    #[diagnostic(code(septa::board::x86_only))]
    X86Only {
        what: String,
        board: String,
        arch: String,
    },
    #[error("board `{0}` has no IOMMU, so IO address spaces cannot be built")]
    #[diagnostic(code(septa::board::no_iommu))]
    NoIommu(String),
    #[error("the kernel for board `{0}` does not forward SMC calls")]
    #[diagnostic(code(septa::board::no_smc))]
    NoSmc(String),
    #[error("the kernel for board `{0}` is not built as a hypervisor, so virtual machines are unavailable")]
    #[diagnostic(code(septa::board::no_hypervisor))]
    NoHypervisor(String),

    // ---------------------------------------------------------------- system
    #[error("unknown kernel configuration `{0}`")]
    #[diagnostic(
        code(septa::system::config),
        help("the configurations are Microkit's: release, debug, benchmark")
    )]
    UnknownConfig(String),
    #[error("the system has no protection domains")]
    #[diagnostic(code(septa::system::no_pd), help("add one with a [pd.NAME] table"))]
    NoPd,
    #[error("too many protection domains: {count}, at most {max}")]
    #[diagnostic(code(septa::system::too_many_pds))]
    TooManyPds { count: usize, max: usize },

    // -------------------------------------------------- protection domains
    #[error("duplicate protection domain name `{0}`")]
    #[diagnostic(
        code(septa::pd::duplicate_name),
        help("PD names are global, children included")
    )]
    DuplicatePd(String),
    #[error("the name `{0}` is reserved for the monitor")]
    #[diagnostic(code(septa::pd::reserved_name))]
    ReservedPdName(String),
    #[error("name `{name}` is {len} bytes long; at most {max} are kept at run time")]
    #[diagnostic(code(septa::pd::long_name), severity(Warning))]
    LongName {
        name: String,
        len: usize,
        max: usize,
    },
    #[error("`{0}` is neither a crate name nor a path ending in .elf")]
    #[diagnostic(
        code(septa::pd::program),
        help("a crate name has only letters, digits, `-` and `_`; an image path ends in .elf")
    )]
    BadProgram(String),
    #[error("priority {value} is out of range 0..={max}")]
    #[diagnostic(code(septa::sched::priority_range), help("255 belongs to the monitor"))]
    PriorityRange { value: i64, max: u64 },
    #[error("budget ({budget} us) must not exceed period ({period} us)")]
    #[diagnostic(code(septa::sched::budget_period))]
    BudgetOverPeriod { budget: u64, period: u64 },
    #[error("budget must be greater than zero")]
    #[diagnostic(code(septa::sched::zero_budget))]
    ZeroBudget,
    #[error("cpu {cpu} does not exist: board `{board}` has {cores} core(s)")]
    #[diagnostic(code(septa::sched::cpu_range))]
    CpuRange { cpu: i64, cores: u64, board: String },
    #[error("stack size {size} is out of range {min}..={max}")]
    #[diagnostic(code(septa::pd::stack_range))]
    StackRange {
        size: String,
        min: String,
        max: String,
    },
    #[error("stack size {size} is not a multiple of the page size {page}")]
    #[diagnostic(code(septa::pd::stack_align))]
    StackAlign { size: String, page: String },
    #[error("passive PD `{0}` can never run after init: nothing can notify or call it")]
    #[diagnostic(
        code(septa::pd::passive_unreachable),
        help("give it a channel whose other end may notify or PPC into it, an IRQ, or a child; or make it active")
    )]
    PassiveUnreachable(String),
    #[error("child PD `{0}` has no `id`")]
    #[diagnostic(
        code(septa::child::missing_id),
        help("a child needs an id (0..=61) by which its parent names it")
    )]
    ChildMissingId(String),
    #[error("`{key}` is only allowed on a child PD, and `{pd}` has no parent")]
    #[diagnostic(code(septa::child::root_id))]
    RootHasChildKey { key: String, pd: String },
    #[error("child id {value} is out of range 0..={max}")]
    #[diagnostic(code(septa::child::id_range))]
    ChildIdRange { value: i64, max: u64 },
    #[error("child id {id} is used twice in PD `{pd}`")]
    #[diagnostic(code(septa::child::duplicate_id))]
    DuplicateChildId { id: u64, pd: String },
    #[error("child id {id} clashes with a vCPU id of the virtual machine of PD `{pd}`")]
    #[diagnostic(
        code(septa::child::vcpu_clash),
        help("children and vCPUs share one id space in their parent")
    )]
    ChildVcpuClash { id: u64, pd: String },

    // --------------------------------------------------------------- restart
    #[error("`{key}` has no effect unless policy = \"restart\"")]
    #[diagnostic(code(septa::restart::option))]
    RestartOption { key: String },
    #[error("a restart limit of 0 never restarts")]
    #[diagnostic(
        code(septa::restart::zero_limit),
        help("use policy = \"stop\" instead")
    )]
    RestartZeroLimit,
    #[error("child PD `{0}` cannot have a restart policy: its faults go to its parent")]
    #[diagnostic(
        code(septa::restart::child),
        help("the parent's `fault` entry point decides what happens")
    )]
    RestartOnChild(String),
    #[error("the generation of PD `{pd}` cannot live in device region `{region}`")]
    #[diagnostic(
        code(septa::restart::generation_device),
        help("use a RAM region that the PD's clients map read-only")
    )]
    GenerationDevice { pd: String, region: String },
    #[error("PD `{pd}` maps its own generation region `{region}` writable")]
    #[diagnostic(
        code(septa::restart::generation_writable),
        severity(Warning),
        help("its clients cannot trust a count the PD itself can change; map it \"r\"")
    )]
    GenerationWritable { pd: String, region: String },

    // ------------------------------------------------------------------ maps
    #[error("unknown memory region `{0}`")]
    #[diagnostic(code(septa::map::unknown_region))]
    UnknownRegion(String),
    #[error("perms `{0}` may only combine the letters r, w and x")]
    #[diagnostic(code(septa::map::perms))]
    BadPerms(String),
    #[error("write-only mappings are not possible")]
    #[diagnostic(
        code(septa::map::write_only),
        help("use \"rw\": the MMU cannot write without read")
    )]
    WriteOnly,
    #[error("vaddr {vaddr:#x} is not aligned to the page size {page} of region `{region}`")]
    #[diagnostic(code(septa::map::vaddr_align))]
    VaddrAlign {
        vaddr: u64,
        page: String,
        region: String,
    },
    #[error("vaddr {vaddr:#x} must be below {max:#x}")]
    #[diagnostic(code(septa::map::vaddr_too_high), help("{why}"))]
    VaddrTooHigh { vaddr: u64, max: u64, why: String },
    #[error("mapping of `{region}` at [{start:#x}..{end:#x}) runs past {max:#x}")]
    #[diagnostic(code(septa::map::range_too_high), help("{why}"))]
    MapTooHigh {
        region: String,
        start: u64,
        end: u64,
        max: u64,
        why: String,
    },
    #[error("mapping of `{region}` at [{start:#x}..{end:#x}) overlaps the mapping of `{other}` at [{other_start:#x}..{other_end:#x}) in {space}")]
    #[diagnostic(code(septa::map::overlap))]
    MapOverlap {
        region: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
        space: String,
    },
    #[error("device region `{0}` is mapped cached")]
    #[diagnostic(
        code(septa::map::cached_device),
        severity(Warning),
        help("device registers need cached = false, or reads see stale values")
    )]
    CachedDevice(String),

    // --------------------------------------------------------------- setvars
    #[error("symbol `{symbol}` is set twice in PD `{pd}`")]
    #[diagnostic(code(septa::setvar::duplicate))]
    DuplicateSetvar { symbol: String, pd: String },
    #[error("`setvar_prefill_size` names region `{0}`, which has no prefill file")]
    #[diagnostic(code(septa::setvar::no_prefill))]
    SetvarNoPrefill(String),
    #[error("`{key}` names region `{region}`, which covers no device")]
    #[diagnostic(
        code(septa::setvar::no_device),
        help("give the region `device = \"NAME\"` (a board device or a [[virtio]] device)")
    )]
    SetvarNoDevice { key: &'static str, region: String },
    #[error("`{0}` is not a valid symbol name")]
    #[diagnostic(
        code(septa::setvar::symbol),
        help("a symbol is a C identifier, or in system.toml an array element `NAME[INDEX]` with INDEX below 4096")
    )]
    BadSymbol(String),
    #[error("a setvar takes exactly one of `region`, `region_size`, `value` and `text`; this one has {0}")]
    #[diagnostic(code(septa::setvar::value))]
    SetvarValue(usize),
    #[error("the text is {len} bytes long; a text setvar holds at most {max} (and a NUL)")]
    #[diagnostic(code(septa::setvar::text_length))]
    SetvarTextLength { len: usize, max: usize },

    // ------------------------------------------------------------------ irqs
    #[error("IRQ channel id {value} is out of range 0..={max}")]
    #[diagnostic(code(septa::irq::id_range))]
    IrqIdRange { value: i64, max: u64 },
    #[error("IRQ {irq} is already given to PD `{other}`")]
    #[diagnostic(
        code(septa::irq::duplicate),
        help("an interrupt goes to exactly one PD")
    )]
    DuplicateIrq { irq: u64, other: String },
    #[error("IRQ {irq} is out of range {min}..={max} for board `{board}`")]
    #[diagnostic(
        code(septa::irq::range),
        help("IRQ numbers are GIC interrupt ids: SGIs (0..15) cannot be delivered to a PD")
    )]
    IrqRange {
        irq: u64,
        min: u64,
        max: u64,
        board: String,
    },
    #[error("IRQ {irq} ({name}) belongs to the kernel")]
    #[diagnostic(code(septa::irq::kernel))]
    KernelIrq { irq: u64, name: String },
    #[error("an IRQ needs exactly one of `irq` and `device`")]
    #[diagnostic(code(septa::irq::source))]
    IrqSource,
    #[error("board `{board}` has no device `{device}` with an interrupt")]
    #[diagnostic(code(septa::irq::unknown_device))]
    IrqUnknownDevice { device: String, board: String },
    #[error("IRQ {irq} is {given}-triggered here but {device} signals it {board}-triggered")]
    #[diagnostic(code(septa::irq::trigger_mismatch), severity(Warning))]
    TriggerMismatch {
        irq: u64,
        given: String,
        device: String,
        board: String,
    },
    #[error("IRQ {irq} is not wired to any device of board `{board}`")]
    #[diagnostic(code(septa::irq::unwired), severity(Warning))]
    IrqUnwired { irq: u64, board: String },
    #[error("{what} must be within 0..={max}")]
    #[diagnostic(code(septa::irq::x86_range))]
    X86IrqRange { what: String, max: u64 },

    // -------------------------------------------------------------- channels
    #[error("channel id {value} is out of range 0..={max}")]
    #[diagnostic(
        code(septa::channel::id_range),
        help("ids are bits of a 64-bit badge; two bits are reserved")
    )]
    ChannelIdRange { value: i64, max: u64 },
    #[error("id {id} is used twice in PD `{pd}`")]
    #[diagnostic(
        code(septa::channel::duplicate_id),
        help("channels and IRQs of one PD share one id space")
    )]
    DuplicateChannelId { id: u64, pd: String },
    #[error("unknown protection domain `{0}`")]
    #[diagnostic(code(septa::pd::unknown))]
    UnknownPd(String),
    #[error("both ends may PPC: a protected procedure call goes one way only")]
    #[diagnostic(code(septa::channel::ppc_both_ways))]
    PpcBothWays,
    #[error("PPC from `{from}` (priority {from_prio}) to `{to}` (priority {to_prio}): the callee must have strictly higher priority")]
    #[diagnostic(code(septa::channel::ppc_priority))]
    PpcPriority {
        from: String,
        from_prio: u8,
        to: String,
        to_prio: u8,
    },
    #[error("channel carries nothing: neither end may notify or PPC")]
    #[diagnostic(code(septa::channel::inert), severity(Warning))]
    InertChannel,
    #[error("a channel needs exactly two ends, found {0}")]
    #[diagnostic(code(septa::channel::ends))]
    ChannelEnds(usize),

    // --------------------------------------------------------------- regions
    #[error("duplicate memory region name `{0}`")]
    #[diagnostic(code(septa::region::duplicate_name))]
    DuplicateRegion(String),
    #[error("page size {0} is not supported")]
    #[diagnostic(code(septa::region::page_size), help("use 4 KiB or 2 MiB"))]
    PageSize(String),
    #[error("size {size} is not a multiple of the page size {page}")]
    #[diagnostic(code(septa::region::size_multiple))]
    SizeMultiple { size: String, page: String },
    #[error("size must be greater than zero")]
    #[diagnostic(code(septa::region::size_zero))]
    SizeZero,
    #[error("region `{0}` needs a size (or a prefill file to take it from)")]
    #[diagnostic(code(septa::region::size_missing))]
    SizeMissing(String),
    #[error("physical address {phys:#x} is not aligned to the page size {page}")]
    #[diagnostic(code(septa::region::phys_align))]
    PhysAlign { phys: u64, page: String },
    #[error("region `{name}` at [{start:#x}..{end:#x}) overlaps region `{other}` at [{other_start:#x}..{other_end:#x})")]
    #[diagnostic(code(septa::region::overlap))]
    RegionOverlap {
        name: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },
    #[error("region `{name}` at [{start:#x}..{end:#x}) is neither in RAM nor within one device of board `{board}`")]
    #[diagnostic(code(septa::region::outside_board))]
    OutsideBoard {
        name: String,
        start: u64,
        end: u64,
        board: String,
    },
    #[error("region `{name}` at [{start:#x}..{end:#x}) lies in RAM reserved for {what}")]
    #[diagnostic(code(septa::region::reserved), help("{why}"))]
    ReservedRam {
        name: String,
        start: u64,
        end: u64,
        what: String,
        why: String,
    },
    #[error("region `{name}` at [{start:#x}..{end:#x}) covers `{device}`, which the kernel owns")]
    #[diagnostic(code(septa::region::kernel_device))]
    KernelDevice {
        name: String,
        start: u64,
        end: u64,
        device: String,
    },
    #[error("board `{board}` has no device `{device}`")]
    #[diagnostic(
        code(septa::region::unknown_device),
        help("devices of this board: {known}")
    )]
    RegionUnknownDevice {
        device: String,
        board: String,
        known: String,
    },
    #[error("give either `phys` or `device`, not both")]
    #[diagnostic(code(septa::region::phys_and_device))]
    PhysAndDevice,
    #[error("cannot read prefill file `{path}`: {reason}")]
    #[diagnostic(code(septa::region::prefill_unreadable))]
    PrefillUnreadable { path: String, reason: String },
    #[error("prefill file `{0}` is empty")]
    #[diagnostic(code(septa::region::prefill_empty))]
    PrefillEmpty(String),
    #[error("prefill file is {len} bytes, larger than the region ({size} bytes)")]
    #[diagnostic(code(septa::region::prefill_too_big))]
    PrefillTooBig { len: u64, size: u64 },
    #[error("give either a prefill file or a boot-info prefill, not both")]
    #[diagnostic(code(septa::region::prefill_both))]
    PrefillBoth,
    #[error("unknown boot-info kind `{0}`")]
    #[diagnostic(
        code(septa::region::bootinfo),
        help("one of fdt, x86_vbe, x86_mbmmap, x86_acpi_rsdp, x86_framebuffer, x86_tsc_freq")
    )]
    BootInfoKind(String),
    #[error("memory region `{0}` is never mapped")]
    #[diagnostic(code(septa::region::unused), severity(Warning))]
    UnusedRegion(String),

    // ------------------------------------------------------------------- vms
    #[error("duplicate virtual machine name `{0}`")]
    #[diagnostic(code(septa::vm::duplicate_name))]
    DuplicateVm(String),
    #[error("PD `{0}` has more than one virtual machine")]
    #[diagnostic(
        code(septa::vm::more_than_one),
        help("a PD manages at most one VM, to keep it isolated")
    )]
    MoreThanOneVm(String),
    #[error("virtual machine `{0}` has no vCPU")]
    #[diagnostic(code(septa::vm::no_vcpu), help("add vcpus = [{{ id = 0 }}]"))]
    NoVcpu(String),
    #[error("vCPU id {value} is out of range 0..={max}")]
    #[diagnostic(code(septa::vm::vcpu_id_range))]
    VcpuIdRange { value: i64, max: u64 },
    #[error("vCPU id {id} is used twice in virtual machine `{vm}`")]
    #[diagnostic(code(septa::vm::duplicate_vcpu))]
    DuplicateVcpu { id: u64, vm: String },
    #[error("a virtual machine must be the child of a protection domain")]
    #[diagnostic(code(septa::vm::not_child))]
    VmNotChild,

    // ----------------------------------------------------------------- guest
    #[error("guest device name `{0}` may hold only letters, digits, `-` and `_`")]
    #[diagnostic(code(septa::guest::device_name))]
    GuestDeviceName(String),
    #[error("duplicate device name `{name}` in virtual machine `{vm}`")]
    #[diagnostic(code(septa::guest::duplicate_device))]
    DuplicateGuestDevice { name: String, vm: String },
    #[error("slot {slot} is out of range 0..{max}: the guest's virtio-mmio transports")]
    #[diagnostic(code(septa::guest::slot_range))]
    GuestSlotRange { slot: i64, max: u32 },
    #[error("slot {slot} is already taken by guest device `{other}`")]
    #[diagnostic(code(septa::guest::slot_taken))]
    GuestSlotTaken { slot: u32, other: String },
    #[error("virtual machine `{vm}` has more devices than its {max} virtio-mmio transports")]
    #[diagnostic(code(septa::guest::too_many_devices))]
    GuestTooManyDevices { vm: String, max: u32 },
    #[error("guest device `{device}` of virtual machine `{vm}` is a network card, but the system has no [net]: the VMM leaves it unplugged")]
    #[diagnostic(
        code(septa::guest::net_without_net),
        severity(Warning),
        help("the VMM backs the card as a client of the network subsystem's virtualisers: add [net] (and a [[virtio]] net device)")
    )]
    GuestNetWithoutNet { device: String, vm: String },
    #[error("virtual machine `{vm}` has a second network card `{device}`; a VM has at most one")]
    #[diagnostic(code(septa::guest::second_net))]
    GuestSecondNet { device: String, vm: String },
    #[error("the VMM `{pd}` of a guest network card has priority {priority}; it must be below the net virtualisers' {virt}")]
    #[diagnostic(code(septa::guest::net_priority))]
    GuestNetPriority { pd: String, priority: u8, virt: u8 },
    #[error("the VMM `{0}` has no two free channel ids for its guest's network card")]
    #[diagnostic(code(septa::guest::net_no_channel))]
    GuestNetNoChannel(String),
    #[error("virtual machine `{0}` names its own kernel but no initrd")]
    #[diagnostic(
        code(septa::guest::kernel_without_initrd),
        help("the initramfs the tool builds holds Debian's kernel modules, which only Debian's kernel loads: add `initrd = \"PATH\"`")
    )]
    GuestKernelWithoutInitrd(String),
    #[error("cannot read the guest's {what} `{path}`: {reason}")]
    #[diagnostic(code(septa::guest::file_unreadable))]
    GuestFileUnreadable {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("the kernel command line is {len} bytes; Linux takes at most {max}")]
    #[diagnostic(code(septa::guest::bootargs_too_long))]
    GuestBootargsTooLong { len: usize, max: usize },
    #[error("the RAM of virtual machine `{vm}` starts at {at:#x}, not at 0x40000000")]
    #[diagnostic(
        code(septa::guest::ram_start),
        help(
            "a VM's maps at and above 0x40000000 are its RAM, which starts there (as on QEMU virt)"
        )
    )]
    GuestRamStart { vm: String, at: u64 },
    #[error("the RAM of virtual machine `{vm}` has a hole at [{from:#x}..{to:#x})")]
    #[diagnostic(
        code(septa::guest::ram_gap),
        help("a VM's maps at and above 0x40000000 are its RAM: one span, without holes")
    )]
    GuestRamGap { vm: String, from: u64, to: u64 },
    #[error("guest RAM region `{region}` of virtual machine `{vm}` must be mapped readable, writable and cached")]
    #[diagnostic(code(septa::guest::ram_perms))]
    GuestRamPerms { vm: String, region: String },
    #[error(
        "virtual machine `{vm}` has {size:#x} bytes of RAM; a Linux guest needs at least {min:#x}"
    )]
    #[diagnostic(code(septa::guest::ram_too_small))]
    GuestRamTooSmall { vm: String, size: u64, min: u64 },
    #[error("region `{region}` is mapped over {device} of virtual machine `{vm}`, which its VMM emulates")]
    #[diagnostic(
        code(septa::guest::map_on_device),
        help("the guest's GIC distributor is at 0x8000000, its PL011 at 0x9000000 and its virtio-mmio transports from 0xa000000")
    )]
    GuestMapOnDevice {
        vm: String,
        region: String,
        device: &'static str,
    },

    // ------------------------------------------------------------------ caps
    #[error("slot 0 is reserved for the PD's own CNode")]
    #[diagnostic(code(septa::cap::slot_zero))]
    CapSlotZero,
    #[error("slot {slot} is out of range 1..{max}")]
    #[diagnostic(code(septa::cap::slot_range))]
    CapSlotRange { slot: i64, max: u64 },
    #[error("slot {slot} of PD `{pd}` is given twice")]
    #[diagnostic(code(septa::cap::overlap))]
    CapOverlap { slot: u64, pd: String },
    #[error("unknown cap kind `{0}`")]
    #[diagnostic(
        code(septa::cap::kind),
        help("one of tcb, sc, vspace (and, in system.toml, notification)")
    )]
    CapKind(String),
    #[error("PD `{pd}` is given the notification of PD `{other}`; a notification cap may only be a PD's own")]
    #[diagnostic(
        code(septa::cap::foreign_notification),
        help("the kernel lets only the thread a notification is bound to wait on it; write pd = \"{pd}\"")
    )]
    CapNotificationOther { pd: String, other: String },

    // --------------------------------------------------------------- domains
    #[error("domain id {id} is used twice")]
    #[diagnostic(code(septa::domain::duplicate_id))]
    DuplicateDomainId { id: u64 },
    #[error("duplicate domain name `{0}`")]
    #[diagnostic(code(septa::domain::duplicate_name))]
    DuplicateDomain(String),
    #[error("domain id {id} is out of range 0..{max}")]
    #[diagnostic(code(septa::domain::id_range))]
    DomainIdRange { id: i64, max: u64 },
    #[error("more domains than the kernel's {max}")]
    #[diagnostic(code(septa::domain::too_many))]
    TooManyDomains { max: u64 },
    #[error("unknown domain `{0}`")]
    #[diagnostic(code(septa::domain::unknown))]
    UnknownDomain(String),
    #[error("PD `{0}` has no domain, but the system has a domain schedule")]
    #[diagnostic(
        code(septa::domain::missing),
        help("every PD belongs to exactly one domain when domains are declared")
    )]
    PdWithoutDomain(String),
    #[error("`domain` is given but the system declares no domains")]
    #[diagnostic(code(septa::domain::undeclared))]
    DomainUndeclared,
    #[error("domains are declared but there is no domain schedule")]
    #[diagnostic(code(septa::domain::no_schedule))]
    NoDomainSchedule,
    #[error("a schedule entry must last longer than zero")]
    #[diagnostic(code(septa::domain::zero_duration))]
    ZeroDomainDuration,
    #[error("invalid duration `{0}`: write \"N us\", \"N ms\", \"N s\" or \"N ticks\"")]
    #[diagnostic(code(septa::domain::duration))]
    DomainDuration(String),
    #[error("the schedule has {len} entries; the kernel's {max} slots hold at most {}", max - 1)]
    #[diagnostic(code(septa::domain::schedule_too_long))]
    ScheduleTooLong { len: u64, max: u64 },
    #[error("start index {index} is not within the schedule of {len} entries")]
    #[diagnostic(code(septa::domain::start_index))]
    ScheduleStart { index: u64, len: u64 },
    #[error("index shift {shift} plus {len} entries exceeds the kernel's {max} schedule slots")]
    #[diagnostic(code(septa::domain::index_shift))]
    ScheduleShift { shift: u64, len: u64, max: u64 },
    #[error("the domain scheduler needs a single-core kernel")]
    #[diagnostic(code(septa::domain::smp))]
    DomainSmp,

    // -------------------------------------------------------- x86 and IOMMU
    #[error("I/O port id {value} is out of range 0..={max}")]
    #[diagnostic(code(septa::ioport::id_range))]
    IoPortIdRange { value: i64, max: u64 },
    #[error("I/O port size must be greater than zero")]
    #[diagnostic(code(septa::ioport::size))]
    IoPortSize,

    // -------------------------------------------------------------- forwards
    #[error("port 0 cannot be forwarded")]
    #[diagnostic(code(septa::forward::port_zero))]
    ForwardPortZero,
    #[error("host port {port}/{proto} is forwarded twice")]
    #[diagnostic(code(septa::forward::duplicate))]
    DuplicateForward { port: u16, proto: String },
    #[error("host port {0} is below 1024 and needs privileges on the host")]
    #[diagnostic(code(septa::forward::privileged), severity(Warning))]
    PrivilegedPort(u16),
    #[error("a port is forwarded, but the system has no virtio net device to forward it to")]
    #[diagnostic(
        code(septa::forward::no_net),
        help("add [[virtio]] with name = \"net0\", kind = \"net\"")
    )]
    ForwardNoNet,
    #[error("`{0}` is not an IPv4 address (a.b.c.d) on the user network")]
    #[diagnostic(
        code(septa::forward::address),
        help("the address of the machine on the system's side that takes the port, e.g. a guest's \"10.0.2.16\"")
    )]
    ForwardAddress(String),
    #[error("`{0}` is not a virtio net device of this system")]
    #[diagnostic(code(septa::forward::device))]
    ForwardDevice(String),
    #[error("the system has {0} virtio net devices: say which one forwards this port")]
    #[diagnostic(code(septa::forward::ambiguous), help("add `device = \"NAME\"`"))]
    ForwardAmbiguous(usize),

    // ---------------------------------------------------------------- virtio
    #[error("unknown virtio device kind `{0}`")]
    #[diagnostic(code(septa::virtio::kind), help("one of console, net, blk"))]
    VirtioKind(String),
    #[error("virtio device name `{0}` may hold only letters, digits, `-` and `_`")]
    #[diagnostic(
        code(septa::virtio::name),
        help("the name becomes part of file names (a console's socket)")
    )]
    VirtioName(String),
    #[error("duplicate virtio device name `{0}`")]
    #[diagnostic(code(septa::virtio::duplicate_name))]
    DuplicateVirtio(String),
    #[error("virtio device `{name}` has the name of a device of board `{board}`")]
    #[diagnostic(
        code(septa::virtio::name_clash),
        help("regions and IRQs name devices with `device = NAME`, so the names must differ")
    )]
    VirtioNameClash { name: String, board: String },
    #[error("{count} virtio devices, but board `{board}` has {max} virtio-mmio transports")]
    #[diagnostic(code(septa::virtio::too_many))]
    TooManyVirtio {
        count: usize,
        max: usize,
        board: String,
    },
    #[error("slot {slot} is out of range 0..{max}: the board's virtio-mmio transports")]
    #[diagnostic(code(septa::virtio::slot_range))]
    VirtioSlotRange { slot: i64, max: usize },
    #[error("slot {slot} is already taken by virtio device `{other}`")]
    #[diagnostic(code(septa::virtio::slot_taken))]
    VirtioSlotTaken { slot: u64, other: String },
    #[error("virtio block device `{0}` needs a backing `file`")]
    #[diagnostic(code(septa::virtio::file_missing))]
    VirtioFileMissing(String),
    #[error("a virtio {0} device has no backing file")]
    #[diagnostic(
        code(septa::virtio::file_unexpected),
        help("only kind = \"blk\" takes `file` and `size`")
    )]
    VirtioFileUnexpected(String),
    #[error("cannot read backing file `{path}`: {reason}")]
    #[diagnostic(code(septa::virtio::file_unreadable))]
    VirtioFileUnreadable { path: String, reason: String },
    #[error("a disk image of {0} bytes: the tool makes images of whole MiB, at least 2 MiB")]
    #[diagnostic(code(septa::virtio::image_size))]
    VirtioImageSize(u64),

    // ----------------------------------------------------------------- blk
    #[error("[blk.{0}] names no [[virtio]] device `{0}`")]
    #[diagnostic(
        code(septa::blk::unknown_device),
        help("add a [[virtio]] device of kind \"blk\" with this name")
    )]
    BlkUnknownDevice(String),
    #[error("[blk.{device}] names a virtio {kind} device; a block subsystem needs kind = \"blk\"")]
    #[diagnostic(code(septa::blk::not_blk))]
    BlkNotBlk { device: String, kind: String },
    #[error("[blk.{0}]: the virtio device `{0}` gives its image no `size`, so the tool cannot make or partition it")]
    #[diagnostic(
        code(septa::blk::image_size),
        help("give the [[virtio]] device `size = \"64 MiB\"` (say): the image is made when missing, fresh for each test run")
    )]
    BlkImageSize(String),
    #[error("unknown partition table `{0}`")]
    #[diagnostic(code(septa::blk::table), help("\"gpt\" (the default) or \"mbr\""))]
    BlkTable(String),
    #[error("an MBR holds 4 partitions, and {0} are declared")]
    #[diagnostic(code(septa::blk::mbr_partitions), help("use table = \"gpt\""))]
    BlkMbrPartitions(usize),
    #[error("partition name `{0}` must be 1..=36 letters, digits, `-` or `_`")]
    #[diagnostic(code(septa::blk::partition_name))]
    BlkPartitionName(String),
    #[error("partition `{0}` is declared twice")]
    #[diagnostic(code(septa::blk::duplicate_partition))]
    BlkDuplicatePartition(String),
    #[error("a partition of {0} bytes: partitions are whole 4 KiB blocks, at least one")]
    #[diagnostic(code(septa::blk::partition_size))]
    BlkPartitionSize(u64),
    #[error("PD `{0}` is already the client of a partition; a PD holds one block connection")]
    #[diagnostic(code(septa::blk::client_twice))]
    BlkClientTwice(String),
    #[error("a queue of {0} entries: the capacity must be a power of two, 1..=65536")]
    #[diagnostic(code(septa::blk::queue))]
    BlkQueue(i64),
    #[error("a data region of {0} bytes: it must be whole 4 KiB pages, at least one")]
    #[diagnostic(code(septa::blk::data_size))]
    BlkDataSize(u64),
    #[error("the partitions of `{device}` need a disk of {need} bytes, and its image is {have}")]
    #[diagnostic(
        code(septa::blk::too_small),
        help("partitions start at 1 MiB and on MiB boundaries, and a GPT keeps 16.5 KiB at the disk's end")
    )]
    BlkTooSmall {
        device: String,
        need: u64,
        have: u64,
    },
    #[error("[blk.{device}] has {count} clients; a virtualiser serves at most {max}")]
    #[diagnostic(code(septa::blk::too_many_clients))]
    BlkTooManyClients {
        device: String,
        count: usize,
        max: usize,
    },
    #[error("PD `{0}` has no channel id left for its block connection")]
    #[diagnostic(code(septa::blk::no_channel))]
    BlkNoChannel(String),

    // ---------------------------------------------------------------- serial
    #[error("serial client `{0}` is not a PD of this system")]
    #[diagnostic(code(septa::serial::unknown_client))]
    SerialUnknownClient(String),
    #[error("`{pd}` is named twice in [serial] `{list}`")]
    #[diagnostic(code(septa::serial::duplicate_client))]
    SerialDuplicateClient { pd: String, list: &'static str },
    #[error("`{0}` takes serial input but is not one of [serial] `clients`")]
    #[diagnostic(
        code(septa::serial::input_not_client),
        help("a PD that is typed to is a client: list it in `clients` too")
    )]
    SerialInputNotClient(String),
    #[error("serial client `{0}` is passive, so it cannot be woken to take input")]
    #[diagnostic(
        code(septa::serial::passive_input),
        help("a passive PD runs only on its callers' time; leave it out of `input`")
    )]
    SerialPassiveInput(String),
    #[error("board `{board}` has no PL011 UART for the serial subsystem")]
    #[diagnostic(
        code(septa::serial::no_device),
        help("name a device of the board with `device = \"NAME\"`")
    )]
    SerialNoDevice { board: String },
    #[error("board `{board}` has no device `{device}`")]
    #[diagnostic(code(septa::serial::unknown_device), help("its devices: {known}"))]
    SerialUnknownDevice {
        device: String,
        board: String,
        known: String,
    },
    #[error("device `{device}` is `{compatible}`, not a PL011 UART (`arm,pl011`), the only UART Septa drives")]
    #[diagnostic(code(septa::serial::not_pl011))]
    SerialNotPl011 { device: String, compatible: String },
    #[error("{count} serial clients, but a virtualiser serves at most {max}")]
    #[diagnostic(
        code(septa::serial::too_many_clients),
        help("the receive virtualiser counts as one client of the transmit virtualiser when any client takes input")
    )]
    SerialTooManyClients { count: usize, max: usize },
    #[error("prefix {prefix:?} is {len} bytes; a prefix holds at most {max}")]
    #[diagnostic(code(septa::serial::prefix_too_long))]
    SerialPrefixTooLong {
        prefix: String,
        len: usize,
        max: usize,
    },
    #[error("unknown colour `{0}`")]
    #[diagnostic(
        code(septa::serial::colour),
        help("one of red, green, yellow, blue, magenta, cyan")
    )]
    SerialColour(String),
    #[error("serial queue capacity {0} is not a power of two of at least 4 KiB and at most 1 MiB")]
    #[diagnostic(
        code(septa::serial::capacity),
        help("a queue's bytes fill whole pages, and sDDF's index arithmetic needs a power of two")
    )]
    SerialCapacity(u64),
    #[error(
        "`{name}` is a {what} the serial subsystem adds: the description may not use that name"
    )]
    #[diagnostic(
        code(septa::serial::name_taken),
        help("rename the description's {what}, or wire the serial subsystem by hand")
    )]
    SerialNameTaken { name: String, what: &'static str },
    #[error(
        "serial client `{pd}` has no free channel id for its {what}: ids 0..=61 are all in use"
    )]
    #[diagnostic(code(septa::serial::no_free_channel))]
    SerialNoFreeChannel { pd: String, what: &'static str },
    #[error("serial client `{pd}` has priority {priority}, not below the transmit virtualiser's {virt}: when its queue fills, its output is dropped instead of waiting")]
    #[diagnostic(code(septa::serial::client_priority), severity(Warning))]
    SerialClientPriority { pd: String, priority: u8, virt: u8 },

    // ----------------------------------------------------------------- timer
    #[error("timer client `{0}` is not a PD of this system")]
    #[diagnostic(code(septa::timer::unknown_client))]
    TimerUnknownClient(String),
    #[error("`{0}` is named twice in [timer] `clients`")]
    #[diagnostic(code(septa::timer::duplicate_client))]
    TimerDuplicateClient(String),
    #[error("board `{board}` gives user level no EL1 physical timer (a `phys-timer` PPI owned by `user`)")]
    #[diagnostic(
        code(septa::timer::no_device),
        help("the timer driver needs the physical timer the kernel exports to EL0, as Microkit's qemu_virt_aarch64 configuration does")
    )]
    TimerNoDevice { board: String },
    #[error("{count} timer clients, but the driver serves at most {max}")]
    #[diagnostic(code(septa::timer::too_many_clients))]
    TimerTooManyClients { count: usize, max: usize },
    #[error("`{name}` is a PD the timer subsystem adds: the description may not use that name")]
    #[diagnostic(
        code(septa::timer::name_taken),
        help("rename the description's PD, or wire the timer by hand")
    )]
    TimerNameTaken { name: String },
    #[error("timer client `{0}` has no free channel id: ids 0..=61 are all in use")]
    #[diagnostic(code(septa::timer::no_free_channel))]
    TimerNoFreeChannel(String),
    #[error("timer client `{pd}` has priority {priority}, not below the timer driver's {driver}: it could not call the driver")]
    #[diagnostic(
        code(septa::timer::client_priority),
        help("a protected procedure call goes to a strictly higher priority")
    )]
    TimerClientPriority {
        pd: String,
        priority: u8,
        driver: u8,
    },
    #[error("timer client `{0}` is passive, so its timeouts could not wake it")]
    #[diagnostic(
        code(septa::timer::passive_client),
        help("a passive PD runs only on its callers' time")
    )]
    TimerPassiveClient(String),

    // ------------------------------------------------------------------- net
    #[error("[net] needs a virtio net device, and the system has none")]
    #[diagnostic(
        code(septa::net::no_device),
        help("add one: [[virtio]] with name = \"net0\" and kind = \"net\"")
    )]
    NetNoDevice,
    #[error("`{0}` is not a virtio net device of this system")]
    #[diagnostic(code(septa::net::unknown_device))]
    NetUnknownDevice(String),
    #[error("the system has {0} virtio net devices: say which one [net] drives")]
    #[diagnostic(code(septa::net::ambiguous_device), help("add `device = \"NAME\"`"))]
    NetAmbiguousDevice(usize),
    #[error("`{0}` is not a unicast MAC address")]
    #[diagnostic(
        code(septa::net::mac),
        help("six hex bytes with colons, the first even: \"52:54:00:12:34:56\"")
    )]
    NetMac(String),
    #[error("`{0}` is not an address")]
    #[diagnostic(
        code(septa::net::address),
        help("\"dhcp\", or an IPv4 address with its prefix length: \"10.0.2.15/24\"")
    )]
    NetAddress(String),
    #[error("`{0}` is not an IPv4 address")]
    #[diagnostic(code(septa::net::gateway))]
    NetGateway(String),
    #[error("a gateway is given, but the address comes by DHCP (which gives the gateway)")]
    #[diagnostic(
        code(septa::net::gateway_with_dhcp),
        help("give a static `address` too, or drop the gateway")
    )]
    NetGatewayWithDhcp,
    #[error("net cell `{0}` is not a PD of this system")]
    #[diagnostic(code(septa::net::unknown_cell))]
    NetUnknownCell(String),
    #[error("`{0}` is named twice in [net] `cells`")]
    #[diagnostic(code(septa::net::duplicate_cell))]
    NetDuplicateCell(String),
    #[error("net cell `{pd}` has priority {priority}, not below the stack's {stack}: it could not call the stack")]
    #[diagnostic(
        code(septa::net::cell_priority),
        help("a protected procedure call goes to a strictly higher priority")
    )]
    NetCellPriority { pd: String, priority: u8, stack: u8 },
    #[error("`{0}` is not a port rule")]
    #[diagnostic(
        code(septa::net::rule),
        help("a protocol and a port from 1 to 65535: \"tcp/80\", \"udp/53\"")
    )]
    NetRule(String),
    #[error("{count} port rules, but a list holds at most {max}")]
    #[diagnostic(code(septa::net::too_many_rules))]
    NetTooManyRules { count: usize, max: usize },
    #[error("{count} net cells, but the stack serves at most {max}")]
    #[diagnostic(code(septa::net::too_many_cells))]
    NetTooManyCells { count: usize, max: usize },
    #[error("cell `{cell}` claims {port}, which cell `{other}` claims already")]
    #[diagnostic(
        code(septa::net::port_claimed),
        help("a port is one cell's: give each cell its own")
    )]
    NetPortClaimed {
        port: String,
        cell: String,
        other: String,
    },
    #[error(
        "`{name}` is a {what} the network subsystem adds: the description may not use that name"
    )]
    #[diagnostic(code(septa::net::name_taken), help("rename the description's {what}"))]
    NetNameTaken { name: String, what: &'static str },
    #[error("net cell `{0}` has no free channel id: ids 0..=61 are all in use")]
    #[diagnostic(code(septa::net::no_free_channel))]
    NetNoFreeChannel(String),
    // ----------------------------------------------------------------- cells
    #[error("cell `{cell}`: `{name}` is already the name of a {what} of this system")]
    #[diagnostic(
        code(septa::cell::name_taken),
        help("a cell's PD takes the cell's name, and its heap the region `NAME_heap`")
    )]
    CellNameTaken {
        cell: String,
        name: String,
        what: &'static str,
    },
    #[error("unknown priority band `{0}`")]
    #[diagnostic(code(septa::cell::unknown_band), help("the bands are {1}"))]
    CellUnknownBand(String, String),
    #[error("cell `{cell}`: priority {priority} is outside its band `{band}` ({lo}..={hi})")]
    #[diagnostic(code(septa::cell::priority_band))]
    CellPriorityBand {
        cell: String,
        priority: i64,
        band: &'static str,
        lo: u8,
        hi: u8,
    },
    #[error("cell `{cell}`: unknown service `{kind}`")]
    #[diagnostic(code(septa::cell::unknown_service), help("{known}"))]
    CellUnknownService {
        cell: String,
        kind: String,
        known: String,
    },
    #[error("cell `{cell}`: a `{kind}` service takes no key `{key}`")]
    #[diagnostic(
        code(septa::cell::service_key),
        help("a `{kind}` service takes {allowed}")
    )]
    CellServiceKey {
        cell: String,
        kind: &'static str,
        key: &'static str,
        allowed: &'static str,
    },
    #[error("cell `{cell}`: a `{kind}` service needs the key `{key}`")]
    #[diagnostic(code(septa::cell::service_missing_key))]
    CellServiceMissingKey {
        cell: String,
        kind: &'static str,
        key: &'static str,
    },
    #[error("cell `{cell}` declares the `{kind}` service twice")]
    #[diagnostic(code(septa::cell::duplicate_service))]
    CellDuplicateService { cell: String, kind: &'static str },
    #[error("cell `{cell}` asks for the {what}, but this description has no {subsystem}")]
    #[diagnostic(
        code(septa::cell::service_unavailable),
        help("add the {subsystem} to the description, or drop the service")
    )]
    CellServiceUnavailable {
        cell: String,
        what: &'static str,
        subsystem: &'static str,
    },
    #[error("cell `{cell}`: `{namespace}` is not a key-value namespace")]
    #[diagnostic(
        code(septa::cell::kv_namespace),
        help("1 to {max} bytes of a-z, 0-9, `_` and `-`")
    )]
    CellKvNamespace {
        cell: String,
        namespace: String,
        max: usize,
    },
    #[error("cell `{cell}`: the key-value namespace `{namespace}` is another cell's")]
    #[diagnostic(
        code(septa::cell::kv_namespace_taken),
        help("a namespace is one cell's: give each cell its own")
    )]
    CellKvNamespaceTaken { cell: String, namespace: String },
    #[error("cell `{0}`: a key-value quota of 0")]
    #[diagnostic(code(septa::cell::kv_quota))]
    CellKvQuota(String),
    #[error("cell `{cell}`: the key-value cell `{server}` has no free channel id")]
    #[diagnostic(code(septa::cell::kv_no_channel))]
    CellKvNoChannel { cell: String, server: String },
    #[error("cell `{cell}`: channel to `{pd}`, which is not a PD of this system")]
    #[diagnostic(code(septa::cell::unknown_pd))]
    CellUnknownPd { cell: String, pd: String },
    #[error("cell `{cell}`: channel to `{pd}`, which is a cell")]
    #[diagnostic(
        code(septa::cell::channel_to_cell),
        help("cells reach one another through services and PDs, not directly")
    )]
    CellChannelToCell { cell: String, pd: String },
    #[error("cell `{cell}` declares two channels to `{pd}`")]
    #[diagnostic(code(septa::cell::duplicate_channel))]
    CellDuplicateChannel { cell: String, pd: String },
    #[error("cell `{cell}` declares {count} channels; a cell may have at most {max}")]
    #[diagnostic(code(septa::cell::too_many_channels))]
    CellTooManyChannels {
        cell: String,
        count: usize,
        max: usize,
    },
    #[error(
        "cell `{cell}` needs {need} (stack {stack} + heap {heap} + service regions {regions}) but its memory quota is {quota}"
    )]
    #[diagnostic(
        code(septa::cell::over_quota),
        help("raise `memory`, or give the cell a smaller stack or heap; its program image counts too (checked when it is built)")
    )]
    CellOverQuota {
        cell: String,
        need: String,
        stack: String,
        heap: String,
        regions: String,
        quota: String,
    },
    #[error("{what}: {quota}, more than the board's RAM ({ram})")]
    #[diagnostic(
        code(septa::cell::over_board),
        help("the board `{board}` has {ram} of RAM for everything, the kernel included")
    )]
    CellOverBoard {
        what: String,
        quota: String,
        ram: String,
        board: String,
    },
    #[error("cell `{cell}`: heap {size} is not a multiple of {page}")]
    #[diagnostic(code(septa::cell::heap_align))]
    CellHeapAlign {
        cell: String,
        size: String,
        page: String,
    },
    #[error("cell `{cell}` has no `{key}`")]
    #[diagnostic(code(septa::cell::missing_key), help("{help}"))]
    CellMissingKey {
        cell: String,
        key: &'static str,
        help: &'static str,
    },
    #[error("Linux cell `{cell}` takes no `{key}`")]
    #[diagnostic(code(septa::linux::cell_key), help("{why}"))]
    LinuxCellKey {
        cell: String,
        key: &'static str,
        why: &'static str,
    },
    #[error("Linux cell `{cell}`: a guest RAM of {ram} {why}")]
    #[diagnostic(
        code(septa::linux::ram),
        help("a guest's RAM is whole 2 MiB pages, at least {min}, within the board's RAM")
    )]
    LinuxRam {
        cell: String,
        ram: String,
        why: String,
        min: String,
    },
    #[error("Linux cell `{cell}` is sealed and cannot be restarted")]
    #[diagnostic(
        code(septa::linux::sealed_restart),
        help("a sealed guest's VMM never maps its RAM, so a restarted VMM could not load the guest again: use `restart = {{ policy = \"stop\" }}` (the default) or drop `sealed`")
    )]
    LinuxSealedRestart { cell: String },
    #[error("Linux cell `{cell}` is sealed: its `bootargs` may not set `{option}`")]
    #[diagnostic(
        code(septa::linux::sealed_bootargs),
        help("the tool sets `swiotlb=` (the bounce pool in the shared window), `cma=0` and `sysctl.vm.lowmem_reserve_ratio=1` (the window kept for DMA) for a sealed guest itself")
    )]
    LinuxSealedBootargs { cell: String, option: String },
    #[error("Linux cell `{cell}`: `{kernel}` is no kernel source the tool knows")]
    #[diagnostic(
        code(septa::linux::kernel),
        help("\"debian\" (Debian bookworm's cloud kernel, fetched and cached: the default), or the path of an arm64 Linux Image with `initrd`")
    )]
    LinuxKernel { cell: String, kernel: String },
    #[error("Linux cell `{cell}`: a forward to the guest needs the guest's `address`")]
    #[diagnostic(
        code(septa::linux::forward_without_address),
        help("the address the guest asks DHCP for, e.g. \"10.0.2.16\" (the network stack has QEMU's first lease, 10.0.2.15)")
    )]
    LinuxForwardWithoutAddress { cell: String },
    #[error("Linux cell `{cell}`: {what}")]
    #[diagnostic(
        code(septa::linux::disk_unknown),
        help("a disk is a partition of a `[blk.DEVICE]` section: `{{ kind = \"disk\", device = \"DEVICE\", partition = \"NAME\" }}`")
    )]
    LinuxDiskUnknown { cell: String, what: String },
    #[error("Linux cell `{cell}`: partition `{partition}` is already given to `{client}`")]
    #[diagnostic(
        code(septa::linux::disk_taken),
        help("a partition has one client: leave its `client` out, the cell's disk makes the cell its client")
    )]
    LinuxDiskTaken {
        cell: String,
        partition: String,
        client: String,
    },
    #[error("Linux cell `{cell}`: priority {priority} leaves no room in band `{band}` for its VMM, which runs one above its VCPU")]
    #[diagnostic(code(septa::linux::priority_top), help("give the VCPU at most {top}"))]
    LinuxPriorityTop {
        cell: String,
        priority: u8,
        band: &'static str,
        top: u8,
    },
    #[error("cell `{0}`: a memory quota of 0")]
    #[diagnostic(code(septa::cell::zero_memory))]
    CellZeroMemory(String),

    // ----------------------------------------------------------------- stats
    #[error("[stats] `console` names `{0}`, which is not a virtio console of this system")]
    #[diagnostic(
        code(septa::stats::console),
        help("declare a `[[virtio]]` device with `kind = \"console\"` for `cargo septa top` to attach to")
    )]
    StatsConsole(String),
    #[error("[stats] `http` names `{0}`, which is not a PD of this system")]
    #[diagnostic(
        code(septa::stats::unknown_http),
        help("name the PD that serves the dashboard (the HTTP status cell), which gets the table read-only")
    )]
    StatsUnknownHttp(String),
    #[error(
        "`{name}` is a {what} the statistics subsystem adds: the description may not use that name"
    )]
    #[diagnostic(code(septa::stats::name_taken))]
    StatsNameTaken { name: String, what: &'static str },
    #[error(
        "the statistics show at most {max} counter pages: {left_out} left out ({first} and the ones after it)"
    )]
    #[diagnostic(
        code(septa::stats::counters_full),
        severity(Warning),
        help("the servers' pages come first, then one a PD built on the runtime; those left out are shown without IPC counts")
    )]
    StatsCountersFull {
        max: usize,
        left_out: usize,
        first: String,
    },
}
