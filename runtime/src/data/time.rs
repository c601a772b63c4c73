//! Civil dates and timestamps as text. In: a timestamp string as written in a CSV file. Out:
//! microseconds since the Unix epoch, UTC. Written here rather than taken from a date crate
//! because the accepted forms are few and the arithmetic is small.

/// Microseconds in a day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What a timestamp may look like, for error messages.
pub(crate) const ACCEPTED_FORMS: &str = "expected RFC 3339 like `2024-01-31T12:00:00Z` or `…+02:00`, \
    `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) or `YYYY-MM-DD` (midnight UTC)";

/// Days from 1970-01-01 to the proleptic Gregorian date `year-month-day` (may be negative).
/// The caller checks that the date exists.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March so the leap day is the last day of the counted year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let month_from_march = i64::from((month + 9) % 12); // March = 0 … February = 11
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days separate 0000-03-01 (the start of era 0) from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// The number written with exactly the ASCII digits `b`, or `None`.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Parses a timestamp to microseconds since the Unix epoch, UTC.
///
/// Accepted: `YYYY-MM-DD`, `YYYY-MM-DD[T| ]HH:MM:SS[.fraction]` optionally followed by `Z` or an
/// offset `±HH:MM` / `±HHMM`. Without an offset the time is UTC. Fractions beyond microseconds
/// are truncated. On failure, returns why.
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, String> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(ACCEPTED_FORMS.to_string());
    }
    let (Some(year), Some(month), Some(day)) = (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10])) else {
        return Err(ACCEPTED_FORMS.to_string());
    };
    let year = i64::from(year);
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} does not exist"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("day {day} does not exist in {year:04}-{month:02}"));
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Ok(days * MICROS_PER_DAY);
    }

    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return Err(ACCEPTED_FORMS.to_string());
    }
    let (Some(hour), Some(minute), Some(second)) = (digits(&b[11..13]), digits(&b[14..16]), digits(&b[17..19])) else {
        return Err(ACCEPTED_FORMS.to_string());
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("time {hour:02}:{minute:02}:{second:02} does not exist"));
    }

    let mut rest = &b[19..];
    let mut micros: i64 = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err("a `.` must be followed by fractional seconds".to_string());
        }
        // Keep microseconds; finer digits are dropped, not rounded, so a value never moves
        // into the next second.
        for i in 0..6 {
            micros = micros * 10 + frac.get(i).filter(|_| i < n).map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &frac[n..];
    }

    let offset_seconds: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), hh @ ..] => {
            let (h, m) = match hh {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2]), digits(&[*m1, *m2])),
                _ => (None, None),
            };
            let (Some(h), Some(m)) = (h, m) else {
                return Err("the offset must look like `+02:00` or `-0530`".to_string());
            };
            if h > 23 || m > 59 {
                return Err(format!("offset {h:02}:{m:02} does not exist"));
            }
            let s = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return Err(ACCEPTED_FORMS.to_string()),
    };

    let seconds = i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Ok(days * MICROS_PER_DAY + seconds * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017); // 2000 is a leap year
        assert_eq!(days_from_civil(2024, 1, 31), 19_753);
        assert_eq!(days_from_civil(1900, 3, 1), -25_508); // 1900 is not
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
    }

    #[test]
    fn every_accepted_form_parses_to_the_same_instant() {
        let want = 1_706_702_400 * S; // 2024-01-31T12:00:00Z
        for text in [
            "2024-01-31T12:00:00Z",
            "2024-01-31t12:00:00z",
            "2024-01-31 12:00:00",
            "2024-01-31T14:00:00+02:00",
            "2024-01-31T06:30:00-0530",
            "2024-01-31T12:00:00.000000Z",
        ] {
            assert_eq!(parse_timestamp(text), Ok(want), "{text}");
        }
        assert_eq!(parse_timestamp("2024-01-31"), Ok(1_706_659_200 * S));
    }

    #[test]
    fn fractions_keep_microseconds_and_drop_the_rest() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00.5"), Ok(500_000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.1234569Z"), Ok(123_456));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.999999Z"), Ok(-1));
    }

    #[test]
    fn impossible_or_malformed_timestamps_are_rejected() {
        for text in [
            "",
            "2024-1-31",
            "2024/01/31",
            "2023-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-01-31T24:00:00Z",
            "2024-01-31T12:60:00Z",
            "2024-01-31T12:00",
            "2024-01-31T12:00:00.Z",
            "2024-01-31T12:00:00+2",
            "2024-01-31T12:00:00+24:00",
            "2024-01-31T12:00:00 UTC",
            "1706702400",
            "２０２４-01-31",
        ] {
            assert!(parse_timestamp(text).is_err(), "{text} should be rejected");
        }
        assert_eq!(parse_timestamp("2024-02-29"), Ok(days_from_civil(2024, 2, 29) * MICROS_PER_DAY));
    }
}
