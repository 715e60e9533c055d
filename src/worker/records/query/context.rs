//! What a filter or rule may read about the request ([`RequestContext`]: auth record, body,
//! query, headers, method, context, clock) and the datetime macros computed from its clock.
//! It owns the PocketBase datetime text layout used by `@now` & co. It must not parse HTTP:
//! the API layer fills a `RequestContext` from whatever it decoded (headers already
//! lower-cased with `-` turned into `_`, multipart values already inferred).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub use crate::worker::records::values::datetime::format_datetime;
use crate::worker::records::values::datetime::{civil_from_days, days_from_civil};

use crate::worker::records::filter::Macro;

use super::sql::SqlValue;

/// The value of `@request.context` for an ordinary API request.
pub const DEFAULT_CONTEXT: &str = "default";

/// Milliseconds in a day, for `@yesterday`/`@tomorrow` and day boundaries.
const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_SECOND: i64 = 1_000;

/// The authenticated record behind `@request.auth.*`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthContext {
    pub collection_id: String,
    pub collection_name: String,
    /// The auth record's fields by name, hidden ones included and `email` regardless of
    /// `emailVisibility` (PocketBase unhides everything for rule evaluation).
    pub record: Map<String, Value>,
}

impl AuthContext {
    /// The auth record as rules see it: every field but the password hash and `tokenKey`,
    /// which no rule, filter or hook may read. The one place that strips them.
    pub fn of_record(collection_id: &str, collection_name: &str, record: &Map<String, Value>) -> AuthContext {
        AuthContext {
            collection_id: collection_id.to_owned(),
            collection_name: collection_name.to_owned(),
            record: record.iter().filter(|(k, _)| k.as_str() != "password" && k.as_str() != "tokenKey").map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// The record id (`record["id"]`), or empty when missing.
    pub fn id(&self) -> &str {
        self.record.get("id").and_then(Value::as_str).unwrap_or("")
    }
}

/// Everything `@request.*` and the datetime macros can see.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestContext {
    /// `None` for a guest: every `@request.auth.*` is then NULL.
    pub auth: Option<AuthContext>,
    /// The submitted body (modifiers like `field+` already applied by the write path).
    pub body: Map<String, Value>,
    pub query: HashMap<String, String>,
    /// Header names lower-cased with `-` replaced by `_` (`X-Token` → `x_token`).
    pub headers: HashMap<String, String>,
    /// The HTTP method as received (`GET`, `POST`, …).
    pub method: String,
    /// `default`, `oauth2`, `otp`, `password`, `realtime`, `protectedFile`, `batch` or `expand`.
    pub context: String,
    /// The clock the datetime macros read; fixed per request so one query sees one instant.
    pub now: SystemTime,
}

impl RequestContext {
    /// A guest request with nothing submitted, at instant `now`.
    pub fn new(now: SystemTime) -> RequestContext {
        RequestContext {
            auth: None,
            body: Map::new(),
            query: HashMap::new(),
            headers: HashMap::new(),
            method: String::new(),
            context: DEFAULT_CONTEXT.to_owned(),
            now,
        }
    }

    /// `now` as milliseconds since the Unix epoch (negative before 1970), saturating.
    fn now_unix_ms(&self) -> i64 {
        match self.now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map(|ms| -ms).unwrap_or(i64::MIN),
        }
    }

    /// The value of a datetime macro: text in PocketBase's layout, or an integer.
    pub fn macro_value(&self, m: Macro) -> SqlValue {
        let now = self.now_unix_ms();
        let day = now.div_euclid(MS_PER_DAY);
        let (year, month, dom) = civil_from_days(day);
        let text = |ms: i64| SqlValue::Text(format_datetime(ms));
        let end_of = |next_day_start: i64| text(next_day_start.saturating_mul(MS_PER_DAY).saturating_sub(1));
        match m {
            Macro::Now => text(now),
            Macro::Yesterday => text(now.saturating_sub(MS_PER_DAY)),
            Macro::Tomorrow => text(now.saturating_add(MS_PER_DAY)),
            Macro::TodayStart => text(day.saturating_mul(MS_PER_DAY)),
            Macro::TodayEnd => end_of(day.saturating_add(1)),
            Macro::MonthStart => text(days_from_civil(year, month, 1).saturating_mul(MS_PER_DAY)),
            Macro::MonthEnd => {
                let (ny, nm) = if month == 12 { (year.saturating_add(1), 1) } else { (year, month + 1) };
                end_of(days_from_civil(ny, nm, 1))
            }
            Macro::YearStart => text(days_from_civil(year, 1, 1).saturating_mul(MS_PER_DAY)),
            Macro::YearEnd => end_of(days_from_civil(year.saturating_add(1), 1, 1)),
            Macro::Second => SqlValue::Integer(now.rem_euclid(MS_PER_MINUTE) / MS_PER_SECOND),
            Macro::Minute => SqlValue::Integer(now.rem_euclid(MS_PER_HOUR) / MS_PER_MINUTE),
            Macro::Hour => SqlValue::Integer(now.rem_euclid(MS_PER_DAY) / MS_PER_HOUR),
            Macro::Day => SqlValue::Integer(dom),
            Macro::Month => SqlValue::Integer(month),
            // 1970-01-01 was a Thursday (4).
            Macro::Weekday => SqlValue::Integer(day.saturating_add(4).rem_euclid(7)),
            Macro::Year => SqlValue::Integer(year),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> RequestContext {
        RequestContext::new(UNIX_EPOCH + Duration::from_millis(ms))
    }

    fn text(v: SqlValue) -> String {
        match v {
            SqlValue::Text(s) => s,
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn datetime_layout_matches_pocketbase() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00:00.000Z");
        // 2024-02-29 13:14:15.678 UTC (a leap day)
        assert_eq!(format_datetime(1_709_212_455_678), "2024-02-29 13:14:15.678Z");
        assert_eq!(format_datetime(-1), "1969-12-31 23:59:59.999Z");
        for days in [-800_000_i64, -1, 0, 59, 365, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn macros_from_a_fixed_clock() {
        let ctx = at(1_709_212_455_678); // Thursday 2024-02-29 13:14:15.678
        assert_eq!(text(ctx.macro_value(Macro::Now)), "2024-02-29 13:14:15.678Z");
        assert_eq!(text(ctx.macro_value(Macro::Yesterday)), "2024-02-28 13:14:15.678Z");
        assert_eq!(text(ctx.macro_value(Macro::Tomorrow)), "2024-03-01 13:14:15.678Z");
        assert_eq!(text(ctx.macro_value(Macro::TodayStart)), "2024-02-29 00:00:00.000Z");
        assert_eq!(text(ctx.macro_value(Macro::TodayEnd)), "2024-02-29 23:59:59.999Z");
        assert_eq!(text(ctx.macro_value(Macro::MonthStart)), "2024-02-01 00:00:00.000Z");
        assert_eq!(text(ctx.macro_value(Macro::MonthEnd)), "2024-02-29 23:59:59.999Z");
        assert_eq!(text(ctx.macro_value(Macro::YearStart)), "2024-01-01 00:00:00.000Z");
        assert_eq!(text(ctx.macro_value(Macro::YearEnd)), "2024-12-31 23:59:59.999Z");
        assert_eq!(ctx.macro_value(Macro::Second), SqlValue::Integer(15));
        assert_eq!(ctx.macro_value(Macro::Minute), SqlValue::Integer(14));
        assert_eq!(ctx.macro_value(Macro::Hour), SqlValue::Integer(13));
        assert_eq!(ctx.macro_value(Macro::Day), SqlValue::Integer(29));
        assert_eq!(ctx.macro_value(Macro::Month), SqlValue::Integer(2));
        assert_eq!(ctx.macro_value(Macro::Weekday), SqlValue::Integer(4));
        assert_eq!(ctx.macro_value(Macro::Year), SqlValue::Integer(2024));
        let december = at(1_735_603_200_000); // 2024-12-31 00:00:00
        assert_eq!(text(december.macro_value(Macro::MonthEnd)), "2024-12-31 23:59:59.999Z");
    }
}
