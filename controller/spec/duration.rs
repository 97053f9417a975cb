//! Durations as written in documents: `90s`, `5m`, `1h30m`, `250ms`.
//!
//! The grammar is deliberately small (whole numbers with `ms`, `s`, `m`, `h`
//! or `d`, largest unit first, no spaces) so that every spelling has one
//! meaning and every error can say exactly what was expected.

use std::time::Duration;

/// Parses a duration such as `90s`, `5m` or `1h30m`.
///
/// Returns a message suitable for a diagnostic on failure.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as `90s`, `5m` or `1h30m` (units: ms, s, m, h, d)";
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration; {expected}"));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration `{text}`; {expected}"));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let (rank, millis_per_unit): (usize, u128) = match unit {
            "d" => (0, 86_400_000),
            "h" => (1, 3_600_000),
            "m" => (2, 60_000),
            "s" => (3, 1_000),
            "ms" => (4, 1),
            "" => return Err(format!("duration `{text}` lacks a unit; {expected}")),
            other => return Err(format!("unknown unit `{other}` in `{text}`; {expected}")),
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(format!(
                "duration `{text}` repeats a unit or has them out of order; {expected}"
            ));
        }
        last_rank = rank;
        let n: u128 = num
            .parse()
            .map_err(|_| format!("number too large in duration `{text}`"))?;
        total = n
            .checked_mul(millis_per_unit)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= u128::from(u64::MAX))
            .ok_or_else(|| format!("duration `{text}` is too long"))?;
        rest = tail;
    }
    let millis = u64::try_from(total).map_err(|_| format!("duration `{text}` is too long"))?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way documents write it (`1h30m`, `90ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Formats seconds for people: `42s`, `2m10s`, `1h05m`.
pub fn human_seconds(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".to_string();
    }
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => {
            let (m, r) = (s / 60, s % 60);
            if r == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{r:02}s")
            }
        }
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_spellings() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1d2h"), Ok(Duration::from_secs(93_600)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "1.5h",
            "30m1h",
            "1h1h",
            "5y",
            "-5s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1h30m", "90ms", "0s", "2d", "1m1s"] {
            let d = parse_duration(s).expect("valid");
            assert_eq!(format_duration(d), s);
        }
        assert_eq!(human_seconds(130.0), "2m10s");
        assert_eq!(human_seconds(3900.0), "1h05m");
    }
}
