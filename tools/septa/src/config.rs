//! Which kernel configuration a build uses (release, debug or benchmark:
//! `septa_abi::Config`), and which one a given kernel ELF was built in.
//!
//! The choice, first that applies: the `--config` flag, the description's
//! `[system] config`, the configuration of a real seL4 ELF given with
//! `--kernel`, the command's default (debug for build, run, report and
//! test; benchmark for bench). A flag or key that contradicts the given
//! kernel is an error: user code built for one configuration does not run
//! on a kernel of another (labels, TCB size and debug calls differ).

use std::path::Path;

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use object::{Object, ObjectSymbol};
use septa_abi::Config;

/// A function seL4 16.0.0 has only in a configuration, and that
/// configuration: the hardware debug API is debug's, utilisation tracking
/// benchmark's. An seL4 ELF with neither is release.
const SEL4_MARKERS: [(&str, Config); 2] = [
    ("Arch_initHardwareBreakpoints", Config::Debug),
    ("benchmark_track_utilisation_dump", Config::Benchmark),
];

/// A function every seL4 16.0.0 kernel of this platform has.
const SEL4_ALWAYS: &str = "handleVCPUFault";

/// The configuration a real seL4 kernel ELF was built in, read from its
/// symbols; `None` for anything else (Septa's kernel, a stripped ELF).
pub fn of_sel4_elf(data: &[u8]) -> Option<Config> {
    let file = object::File::parse(data).ok()?;
    let names: Vec<&str> = file.symbols().filter_map(|s| s.name().ok()).collect();
    if !names.contains(&SEL4_ALWAYS) {
        return None;
    }
    Some(
        SEL4_MARKERS
            .iter()
            .find(|(sym, _)| names.contains(sym))
            .map_or(Config::Release, |&(_, c)| c),
    )
}

/// The configuration of a build: see the module header. `flag` is the
/// command line's, `described` the description's, `kernel` the ELF given
/// with `--kernel`.
pub fn resolve(
    flag: Option<Config>,
    described: Option<Config>,
    kernel: Option<&Path>,
    default: Config,
) -> Result<Config> {
    let of_kernel = match kernel {
        Some(k) => {
            let data = std::fs::read(k)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", k.display()))?;
            of_sel4_elf(&data).map(|c| (k, c))
        }
        None => None,
    };
    let chosen = flag.or(described);
    match (chosen, of_kernel) {
        (Some(c), Some((k, kc))) if c != kc => Err(miette!(
            "{} is an seL4 kernel built in the {} configuration, but the {} configuration was asked for{}",
            k.display(),
            kc.name(),
            c.name(),
            if flag.is_some() {
                " (--config)"
            } else {
                " (the description's [system] config)"
            }
        )),
        (Some(c), _) => Ok(c),
        (None, Some((_, kc))) => Ok(kc),
        (None, None) => Ok(default),
    }
}

/// `clap`'s parser for `--config`.
pub fn parse(name: &str) -> std::result::Result<Config, String> {
    Config::from_name(name).ok_or_else(|| {
        format!("unknown configuration `{name}`: the configurations are release, debug, benchmark")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_given_choice_wins_and_the_default_comes_last() {
        use Config::*;
        assert_eq!(resolve(None, None, None, Debug).unwrap(), Debug);
        assert_eq!(resolve(None, Some(Release), None, Debug).unwrap(), Release);
        assert_eq!(
            resolve(Some(Benchmark), Some(Release), None, Debug).unwrap(),
            Benchmark
        );
    }

    #[test]
    fn a_kernel_that_is_no_sel4_elf_has_no_configuration() {
        assert_eq!(of_sel4_elf(b"not an elf"), None);
    }

    #[test]
    fn names_parse_and_others_are_refused() {
        assert_eq!(parse("benchmark"), Ok(Config::Benchmark));
        assert!(parse("legacy")
            .unwrap_err()
            .contains("release, debug, benchmark"));
    }
}
