//! The `log` backend: every record becomes one line on the PD's console,
//! `<pd name>|<LEVEL>: <message>`, through the same sink as `println!`.

use log::{LevelFilter, Log, Metadata, Record};

struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::println!("{}|{}: {}", crate::pd_name(), record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// The level a PD starts with; change it with `log::set_max_level`.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::Info;

/// Installs the backend (the runtime does this before `init`). A second
/// call changes nothing.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(DEFAULT_LEVEL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::test_sink;
    use crate::symbols::test_support;

    #[test]
    fn records_are_prefixed_with_the_pd_name_and_level() {
        let _g = test_support::lock();
        test_support::patch("net", 0, 0, 0);
        test_sink::start();
        init();
        log::info!("link up at {} Mb/s", 1000);
        log::debug!("not shown at the default level");
        assert_eq!(test_sink::take(), "net|INFO: link up at 1000 Mb/s\n");
    }
}
