//! A cron expression as PocketBase accepts it: five space-separated fields (minute, hour, day
//! of month, month, day of week) of numbers, `*`, ranges, steps and lists, or one of the
//! macros, which are expanded (the listing shows the expansion, as PocketBase's does).
//!
//! Matching is croner's, in UTC, with day of month AND day of week both required when both
//! are given (PocketBase's rule, not Vixie cron's OR). What croner accepts beyond PocketBase —
//! names (`MON`), `L`, `W`, `#`, `?`, a seconds field, Sunday as 7 — is refused here first, so
//! an expression that works on vaultbase also works on PocketBase.

use chrono::{DateTime, Utc};

/// PocketBase's macros and what they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Each field's name and inclusive bounds, in expression order.
const FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6)];

/// A parsed expression: what the listing shows and how it matches.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: croner::Cron,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Schedule").field(&self.expression).finish()
    }
}

impl Schedule {
    /// Parses `expr`; the error says what is wrong in words an operator can act on.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expression = match MACROS.iter().find(|(name, _)| *name == expr) {
            Some((_, expanded)) => (*expanded).to_owned(),
            None => expr.to_owned(),
        };
        let segments: Vec<&str> = expression.split(' ').collect();
        if segments.len() != FIELDS.len() {
            return Err("must be a valid macro or have exactly 5 space separated segments".to_owned());
        }
        for (segment, (name, min, max)) in segments.iter().zip(FIELDS) {
            check_segment(segment, min, max).map_err(|why| format!("invalid {name} segment {segment:?}: {why}"))?;
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .dom_and_dow(true)
            .build()
            .parse(&expression)
            .map_err(|e| e.to_string())?;
        Ok(Schedule { expression, cron })
    }

    /// The expression as listed: macros expanded, anything else as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the minute starting at `minute` (seconds ignored) is one this schedule runs in.
    pub fn matches(&self, minute: &DateTime<Utc>) -> bool {
        // Seconds are not a field here: croner pins them to 0, so ask about the minute's start.
        let start = minute.timestamp() - minute.timestamp().rem_euclid(60);
        DateTime::from_timestamp(start, 0).is_some_and(|t| self.cron.is_time_matching(&t).unwrap_or(false))
    }
}

/// One field: a comma list of `*` or `n` or `n-m`, each with an optional `/step`; numbers
/// within the field's bounds.
fn check_segment(segment: &str, min: u32, max: u32) -> Result<(), String> {
    if segment.is_empty() {
        return Err("empty".to_owned());
    }
    for item in segment.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(n) if n >= 1 && n <= max.max(1) => {}
                _ => return Err(format!("step {step:?} is not a number from 1 to {}", max.max(1))),
            }
        }
        if base == "*" {
            continue;
        }
        let (lo, hi) = match base.split_once('-') {
            Some((lo, hi)) => (number(lo, min, max)?, number(hi, min, max)?),
            None => {
                let n = number(base, min, max)?;
                if step.is_some() {
                    return Err("a step needs `*` or a range before it".to_owned());
                }
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("range {lo}-{hi} runs backwards"));
        }
    }
    Ok(())
}

fn number(text: &str, min: u32, max: u32) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("{text:?} is not a number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn macros_are_expanded_as_pocketbase_lists_them() {
        for (m, e) in MACROS {
            assert_eq!(Schedule::parse(m).expect(m).expression(), e);
        }
        assert_eq!(Schedule::parse("1-5,7 0 * * 1-5").expect("plain").expression(), "1-5,7 0 * * 1-5");
    }

    #[test]
    fn fields_steps_ranges_and_lists_match_in_utc() {
        let s = Schedule::parse("*/15 9-17 * * 1-5").expect("parse");
        assert!(s.matches(&at("2026-12-07T09:45:00Z")), "a Monday, 09:45");
        assert!(s.matches(&at("2026-12-07T09:45:59Z")), "seconds are ignored");
        assert!(!s.matches(&at("2026-12-07T09:46:00Z")));
        assert!(!s.matches(&at("2026-12-06T09:45:00Z")), "a Sunday");
        let list = Schedule::parse("1,2,30 0 * * *").expect("list");
        assert!(list.matches(&at("2026-01-01T00:30:00Z")));
        assert!(!list.matches(&at("2026-01-01T01:30:00Z")));
        let weekly = Schedule::parse("@weekly").expect("weekly");
        assert!(weekly.matches(&at("2026-12-06T00:00:00Z")), "Sunday midnight");
        assert!(!weekly.matches(&at("2026-12-07T00:00:00Z")));
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        // PocketBase requires both; Vixie cron would run on every 13th and every Friday.
        let s = Schedule::parse("0 0 13 * 5").expect("parse");
        assert!(s.matches(&at("2026-11-13T00:00:00Z")), "Friday the 13th");
        assert!(!s.matches(&at("2026-12-13T00:00:00Z")), "a Sunday the 13th");
        assert!(!s.matches(&at("2026-12-11T00:00:00Z")), "a Friday the 11th");
    }

    #[test]
    fn invalid_expressions_are_refused_with_a_reason() {
        for bad in ["", "* * * *", "* * * * * *", "@every 5m", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
            "* * * * 7", "0 0 * * MON", "*/0 * * * *", "5-1 * * * *", "0  0 * * *", "? * * * *", "1/5 * * * *", "L * * * *"]
        {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let why = Schedule::parse("* * * *").expect_err("four fields");
        assert!(why.contains("5 space separated"), "{why}");
        let why = Schedule::parse("61 * * * *").expect_err("minute");
        assert!(why.contains("minute"), "{why}");
    }
}
