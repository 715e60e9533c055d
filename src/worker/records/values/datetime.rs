//! Dates as PocketBase stores and accepts them. Storage and output use one form,
//! `YYYY-MM-DD HH:MM:SS.sssZ` (UTC, millisecond precision, a space, a literal `Z`); input may
//! also be RFC 3339 (`T` or space, any fraction, `Z` or a numeric offset), a zone-less date-time
//! (read as UTC), or a plain date. Instants are Unix milliseconds in an `i64`.
//!
//! Pure arithmetic on the proleptic Gregorian calendar: no time-zone database, no clock except
//! [`now_millis`], and years outside 0000–9999 are refused rather than printed in a form no
//! client parses.

/// Milliseconds per unit.
const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// The current time in Unix milliseconds (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month 1–12, day 1–31): Howard
/// Hinnant's `civil_from_days`, saturating so no day count can overflow. The one calendar of
/// the crate: storage formatting, parsing and the filter macros all use it.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe.saturating_add(era.saturating_mul(400)) + i64::from(m <= 2);
    (y, m, d)
}

/// Proleptic Gregorian date → days since 1970-01-01 (inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year.saturating_sub(1) } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.saturating_mul(146_097).saturating_add(doe).saturating_sub(719_468)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The parts of an instant in UTC: (year, month, day, hour, minute, second, millisecond).
fn parts(ms: i64) -> (i64, i64, i64, i64, i64, i64, i64) {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / MS_PER_HOUR, rem % MS_PER_HOUR / MS_PER_MINUTE, rem % MS_PER_MINUTE / MS_PER_SECOND, rem % MS_PER_SECOND)
}

/// The storage and wire form: `2024-01-02 15:04:05.000Z`.
pub fn format_datetime(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Go's `time.Time.String()` of a UTC instant (`2024-01-02 15:04:05.5 +0000 UTC`), which is how
/// PocketBase's min/max date messages print the threshold.
pub fn go_time_string(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    let mut out = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if milli != 0 {
        let frac = format!("{milli:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// A cursor over ASCII input; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Exactly `n` digits as a number.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let mut v: i64 = 0;
        for _ in 0..n {
            let c = self.peek().filter(u8::is_ascii_digit)?;
            v = v * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        Some(v)
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// Parses the accepted input forms into Unix milliseconds; `None` if the text is none of them
/// or names an impossible date. The fraction is truncated to milliseconds, as Go's formatting
/// truncates.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let mut c = Cursor { b: text.as_bytes(), i: 0 };
    let y = c.digits(4)?;
    if !c.eat(b'-') {
        return None;
    }
    let mo = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(2)?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let date_ms = days_from_civil(y, mo, d).checked_mul(MS_PER_DAY)?;
    if c.done() {
        return Some(date_ms);
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let h = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let mi = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let s = c.digits(2)?;
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut milli = 0;
    if c.eat(b'.') {
        let start = c.i;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            let pos = c.i - start;
            if pos < 3 {
                milli += i64::from(c.b.get(c.i).copied().unwrap_or(b'0') - b'0') * [100, 10, 1].get(pos).copied().unwrap_or(0);
            }
            c.i += 1;
        }
        // Go accepts up to nine fractional digits.
        if c.i == start || c.i - start > 9 {
            return None;
        }
    }
    let offset_ms = parse_zone(&mut c)?;
    if !c.done() {
        return None;
    }
    let ms = date_ms + h * MS_PER_HOUR + mi * MS_PER_MINUTE + s * MS_PER_SECOND + milli - offset_ms;
    let (year, ..) = parts(ms);
    (0..=9999).contains(&year).then_some(ms)
}

/// The zone suffix: nothing (UTC), `Z`, `±HH:MM`, `±HHMM`, each optionally after one space, and
/// an optional trailing zone abbreviation (`+0000 UTC`, Go's own `String()` form). Returns the
/// offset east of UTC in milliseconds.
fn parse_zone(c: &mut Cursor<'_>) -> Option<i64> {
    if c.done() {
        return Some(0);
    }
    if c.eat(b'Z') || c.eat(b'z') {
        return Some(0);
    }
    c.eat(b' ');
    let sign = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return None;
    };
    let oh = c.digits(2)?;
    c.eat(b':');
    let om = c.digits(2)?;
    if oh > 23 || om > 59 {
        return None;
    }
    if c.eat(b' ') {
        let start = c.i;
        while c.peek().is_some_and(|b| b.is_ascii_uppercase()) {
            c.i += 1;
        }
        if c.i == start {
            return None;
        }
    }
    Some(sign * (oh * MS_PER_HOUR + om * MS_PER_MINUTE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_normalise_to_storage() {
        let cases = [
            ("2024-01-02 15:04:05.000Z", "2024-01-02 15:04:05.000Z"),
            ("2024-01-02 15:04:05.123Z", "2024-01-02 15:04:05.123Z"),
            ("2024-01-02 15:04:05Z", "2024-01-02 15:04:05.000Z"),
            ("2024-01-02T15:04:05Z", "2024-01-02 15:04:05.000Z"),
            ("2024-01-02T15:04:05.123456789Z", "2024-01-02 15:04:05.123Z"),
            ("2024-01-02T15:04:05.9999Z", "2024-01-02 15:04:05.999Z"),
            ("2024-01-02T15:04:05+02:00", "2024-01-02 13:04:05.000Z"),
            ("2024-01-02T01:00:00-0130", "2024-01-02 02:30:00.000Z"),
            ("2024-01-01T00:30:00+01:00", "2023-12-31 23:30:00.000Z"),
            ("2024-01-02T15:04:05", "2024-01-02 15:04:05.000Z"),
            ("2024-01-02 15:04:05", "2024-01-02 15:04:05.000Z"),
            ("2024-01-02", "2024-01-02 00:00:00.000Z"),
            ("2024-02-29", "2024-02-29 00:00:00.000Z"),
            ("1969-12-31 23:59:59.999Z", "1969-12-31 23:59:59.999Z"),
            ("0001-01-01 00:00:00.000Z", "0001-01-01 00:00:00.000Z"),
            ("2024-01-02 15:04:05 +0000 UTC", "2024-01-02 15:04:05.000Z"),
        ];
        for (input, want) in cases {
            let ms = parse_datetime(input).unwrap_or_else(|| panic!("{input} should parse"));
            assert_eq!(format_datetime(ms), want, "{input}");
        }
    }

    #[test]
    fn impossible_or_foreign_forms_are_refused() {
        for bad in [
            "", "2024", "2024-1-02", "2024-13-01", "2023-02-29", "2024-04-31", "2024-01-00",
            "2024-01-02 24:00:00", "2024-01-02 12:60:00", "2024-01-02 12:00:60", "2024-01-02 12:00",
            "2024-01-02T12:00:00.Z", "2024-01-02T12:00:00.1234567890Z", "2024-01-02T12:00:00+25:00",
            "2024-01-02T12:00:00Zjunk", "02/01/2024", "yesterday", "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:00:00-02:00", "２０２４-01-02",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn calendar_round_trips_and_go_strings() {
        for days in [-800_000_i64, -1, 0, 1, 11_016, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time_string(1_500), "1970-01-01 00:00:01.5 +0000 UTC");
        assert!(now_millis() > 1_600_000_000_000);
    }
}
