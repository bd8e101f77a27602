//! Times on the command line: Unix milliseconds or RFC 3339, parsed and printed in UTC.

/// A point in time from the command line: Unix milliseconds, or an RFC 3339 time such as
/// `2026-12-02T10:00:00Z` or `2026-12-02T12:00:00.5+02:00`.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("{text} is out of range for Unix milliseconds"));
    }
    parse_rfc3339_ms(text)
        .map_err(|why| format!("expected Unix milliseconds or an RFC 3339 time like 2026-12-02T10:00:00Z: {why}"))
}

/// Parses an RFC 3339 date-time (`2026-12-02T10:00:00Z`, `2026-12-02T10:00:00.5+02:00`;
/// `t`, `z` and a space for `T` are accepted) into Unix milliseconds. Fractions finer than
/// a millisecond are truncated; times before 1970 are refused.
fn parse_rfc3339_ms(s: &str) -> Result<u64, String> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        let digits = b.get(range).filter(|d| d.iter().all(u8::is_ascii_digit));
        let digits = digits.ok_or_else(|| format!("{s:?}: bad {what}"))?;
        Ok(digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(format!("{s:?} is not of the form YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)"));
    }
    let (year, month, day) = (num(0..4, "year")?, num(5..7, "month")?, num(8..10, "day")?);
    let (hour, minute, second) = (num(11..13, "hour")?, num(14..16, "minute")?, num(17..19, "second")?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("{s:?}: no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{s:?}: no such time of day"));
    }
    let mut i = 19;
    let mut millis = 0i64;
    if sep(i, b".") {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(format!("{s:?}: empty fraction of a second"));
        }
        let frac = &s[start..i.min(start + 3)];
        millis = num(start..start + frac.len(), "fraction")? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_minutes = match &s[i..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) && sep(i + 3, b":") => {
            let (h, m) = (num(i + 1..i + 3, "offset hours")?, num(i + 4..i + 6, "offset minutes")?);
            if h > 23 || m > 59 {
                return Err(format!("{s:?}: bad offset"));
            }
            if zone.starts_with('-') { -(h * 60 + m) } else { h * 60 + m }
        }
        "" => return Err(format!("{s:?}: missing the time zone (Z or ±HH:MM)")),
        _ => return Err(format!("{s:?}: bad time zone (expected Z or ±HH:MM)")),
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    let ms = seconds * 1000 + millis;
    u64::try_from(ms).map_err(|_| format!("{s:?} is before 1970"))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds.
pub fn format_utc_ms(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (seconds, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_inverts_parsing() {
        for ms in [0, 1_796_205_600_250, 1_709_164_800_000, 951_868_799_999, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339_ms(&format_utc_ms(ms)), Ok(ms), "{}", format_utc_ms(ms));
        }
        assert_eq!(format_utc_ms(1_796_205_600_250), "2026-12-02T10:00:00.250Z");
    }

    #[test]
    fn rfc3339_times_parse_to_unix_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms("2026-12-02T10:00:00Z"), Ok(1_796_205_600_000));
        assert_eq!(parse_rfc3339_ms("2026-12-02t10:00:00.25z"), Ok(1_796_205_600_250));
        assert_eq!(parse_rfc3339_ms("2026-12-02 12:00:00.1239+02:00"), Ok(1_796_205_600_123));
        assert_eq!(parse_rfc3339_ms("2026-12-02T05:30:00-04:30"), Ok(1_796_205_600_000));
        assert_eq!(parse_rfc3339_ms("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        for bad in [
            "2026-12-02",
            "2026-12-02T10:00:00",
            "2026-13-02T10:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T10:00:00.Z",
            "2026-12-02T10:00:00+2:00",
            "1969-12-31T23:59:59Z",
            "2026-12-02T10:00:00Zjunk",
            "２026-12-02T10:00:00Z",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }
}
