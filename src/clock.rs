//! Wall-clock dates without a time-zone database: UTC calendar fields and the `YYYYmmdd-HHMMSS`
//! stamps that name run directories.

use std::time::{SystemTime, UNIX_EPOCH};

/// UTC calendar time `(year, month, day, hour, minute, second)` of a Unix timestamp
/// (Howard Hinnant's days-from-civil inverse).
pub fn civil_time(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem / 60) % 60) as u32,
        (rem % 60) as u32,
    )
}

/// The stamp `YYYYmmdd-HHMMSS` (UTC) of a Unix timestamp.
pub fn stamp_of(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil_time(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// `name` without the run stamp it starts with (`20260102-093000-cosine` → `cosine`); a name
/// that does not start with a stamp and a dash comes back whole.
pub fn without_stamp(name: &str) -> &str {
    let b = name.as_bytes();
    let stamped = b.len() > 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-';
    if stamped {
        &name[16..]
    } else {
        name
    }
}

/// The stamp `YYYYmmdd-HHMMSS` (UTC) of now.
pub fn utc_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    stamp_of(secs)
}

/// Formats seconds as `1h02m`, `3m05s` or `12s`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".to_string();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_lose_their_stamp_and_nothing_else() {
        assert_eq!(without_stamp("20260102-093000-cosine"), "cosine");
        assert_eq!(
            without_stamp("20260101-000000-compare/quadratic"),
            "compare/quadratic"
        );
        for whole in [
            "20260102-093000-",
            "my-run",
            "2026010-0930000-x",
            "20260102_093000-x",
        ] {
            assert_eq!(without_stamp(whole), whole);
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(civil_time(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_time(1_795_000_000), (2026, 11, 18, 11, 6, 40));
        // A leap day and the turn of a century that is a leap year.
        assert_eq!(civil_time(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(stamp_of(1_795_000_000), "20261118-110640");
    }
}
