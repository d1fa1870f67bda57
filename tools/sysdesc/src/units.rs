//! Sizes and durations as people write them: `"4 KiB"`, `"2 MiB"`, `"500 us"`,
//! `"1 ms"`; plain integers are bytes and microseconds (Microkit's units).
//!
//! Parsing is strict: one number, one space-separated optional unit from a
//! fixed list, no overflow. Errors are plain strings here; the front ends turn
//! them into diagnostics with a location.

use std::fmt;

/// The binary size units, smallest first.
const SIZE_UNITS: [(&str, u64); 5] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Time units in microseconds, the unit of the seL4 MCS scheduler as Microkit
/// exposes it.
const DURATION_UNITS: [(&str, u64); 3] = [("us", 1), ("ms", 1_000), ("s", 1_000_000)];

/// Splits `"12 KiB"` into its number and unit; accepts `0x` hex and `_`
/// separators in the number, as TOML integers do.
fn split(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let (num, unit) = match text.find(|c: char| c.is_whitespace()) {
        Some(at) => (&text[..at], text[at..].trim()),
        None => {
            // "4KiB" without the space: split where the digits end.
            let at = text
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len());
            let digits_end = if text.starts_with("0x") {
                at
            } else {
                text.find(|c: char| !(c.is_ascii_digit() || c == '_'))
                    .unwrap_or(text.len())
            };
            (&text[..digits_end], text[digits_end..].trim())
        }
    };
    let clean: String = num.chars().filter(|&c| c != '_').collect();
    let value = match clean.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => clean.parse::<u64>(),
    }
    .map_err(|_| format!("`{num}` is not a whole number"))?;
    Ok((value, unit))
}

fn scaled(value: u64, unit: &str, units: &[(&str, u64)]) -> Result<u64, String> {
    let names: Vec<&str> = units.iter().map(|(n, _)| *n).collect();
    let (_, factor) = units
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(|| {
            format!(
                "unknown unit `{unit}` (expected one of {})",
                names.join(", ")
            )
        })?;
    value
        .checked_mul(*factor)
        .ok_or_else(|| format!("{value} {unit} does not fit in 64 bits"))
}

/// Parses a size such as `"4 KiB"` into bytes. A bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (value, unit) = split(text)?;
    if unit.is_empty() {
        return Ok(value);
    }
    scaled(value, unit, &SIZE_UNITS)
}

/// Parses a duration such as `"1 ms"` into microseconds. A bare number is
/// microseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let (value, unit) = split(text)?;
    if unit.is_empty() {
        return Ok(value);
    }
    scaled(value, unit, &DURATION_UNITS)
}

/// Formats a byte count with the largest binary unit that divides it.
pub fn fmt_size(bytes: u64) -> String {
    SIZE_UNITS
        .iter()
        .rev()
        .find(|(_, f)| bytes != 0 && bytes.is_multiple_of(*f))
        .map(|(n, f)| format!("{} {n}", bytes / f))
        .unwrap_or_else(|| format!("{bytes} B"))
}

/// Formats microseconds with the largest unit that divides them.
pub fn fmt_duration(us: u64) -> String {
    DURATION_UNITS
        .iter()
        .rev()
        .find(|(_, f)| us != 0 && us.is_multiple_of(*f))
        .map(|(n, f)| format!("{} {n}", us / f))
        .unwrap_or_else(|| format!("{us} us"))
}

/// A size in bytes, for display.
pub struct Size(pub u64);
impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_size(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4 KiB"), Ok(4096));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("1_024 B"), Ok(1024));
        assert_eq!(parse_size("2 GiB"), Ok(1 << 31));
        assert!(parse_size("4 KB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("four KiB").is_err());
        assert!(parse_size("99999999999 TiB")
            .unwrap_err()
            .contains("64 bits"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500 us"), Ok(500));
        assert_eq!(parse_duration("1 ms"), Ok(1000));
        assert_eq!(parse_duration("2s"), Ok(2_000_000));
        assert_eq!(parse_duration("250"), Ok(250));
        assert!(parse_duration("1 min").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for s in ["4 KiB", "2 MiB", "3 B", "1 GiB"] {
            assert_eq!(fmt_size(parse_size(s).unwrap()), s);
        }
        for d in ["1 ms", "1500 us", "3 s"] {
            assert_eq!(fmt_duration(parse_duration(d).unwrap()), d);
        }
    }
}
