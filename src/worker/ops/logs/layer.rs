//! Application logs from `tracing`: events with target [`APP_LOG_TARGET`] (what the JS
//! `$app.logger()` binding emits) become `_logs` entries through [`super::app_log`].
//!
//! The event carries `level` (PocketBase's number, or a level name; the event's own level when
//! absent), `message`, and `data` (a JSON object as text; any other field joins `data` as is).
//! The layer is installed with a filter on that target, so every other event in the program
//! costs it nothing (its callsites are never enabled for it).

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::{LEVEL_DEBUG, LEVEL_ERROR, LEVEL_INFO, LEVEL_WARN};

/// The `tracing` target application log lines are emitted with.
pub const APP_LOG_TARGET: &str = "vaultbase::app_log";

/// Where a captured entry goes: [`super::app_log`] in the program.
pub type Sink = fn(i32, &str, Map<String, Value>);

/// Sends [`APP_LOG_TARGET`] events to its sink.
pub struct AppLogLayer {
    pub sink: Sink,
}

/// `layer` filtered on [`APP_LOG_TARGET`].
pub fn with_target_filter<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>(layer: AppLogLayer) -> impl Layer<S> {
    layer.with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() == APP_LOG_TARGET))
}

/// The layer feeding the logs thread, with its target filter, ready for `telemetry::init_with`.
pub fn filtered() -> Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> {
    boxed(AppLogLayer { sink: super::app_log })
}

fn boxed(layer: AppLogLayer) -> Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> {
    Box::new(with_target_filter(layer))
}

fn level_of(tracing_level: &tracing::Level) -> i32 {
    match *tracing_level {
        tracing::Level::ERROR => LEVEL_ERROR,
        tracing::Level::WARN => LEVEL_WARN,
        tracing::Level::INFO => LEVEL_INFO,
        // slog has nothing below debug; trace is debug's neighbour below it.
        tracing::Level::DEBUG => LEVEL_DEBUG,
        tracing::Level::TRACE => LEVEL_DEBUG - 4,
    }
}

fn level_named(name: &str) -> Option<i32> {
    match name.to_ascii_lowercase().as_str() {
        "error" => Some(LEVEL_ERROR),
        "warn" | "warning" => Some(LEVEL_WARN),
        "info" => Some(LEVEL_INFO),
        "debug" => Some(LEVEL_DEBUG),
        other => other.parse().ok(),
    }
}

#[derive(Default)]
struct Collect {
    level: Option<i32>,
    message: String,
    data: Map<String, Value>,
}

impl Visit for Collect {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "level" => self.level = i32::try_from(value).ok(),
            name => {
                self.data.insert(name.to_owned(), Value::from(value));
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "level" => self.level = i32::try_from(value).ok(),
            name => {
                self.data.insert(name.to_owned(), Value::from(value));
            }
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.data.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.data.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "level" => self.level = level_named(value),
            "message" => self.message = value.to_owned(),
            "data" => match serde_json::from_str::<Value>(value) {
                Ok(Value::Object(m)) => self.data.extend(m),
                _ => {
                    self.data.insert("data".into(), Value::from(value));
                }
            },
            name => {
                self.data.insert(name.to_owned(), Value::from(value));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            // `tracing::info!(target: …, "text")` records the text as a debug `message`.
            "message" => self.message = format!("{value:?}"),
            name => {
                self.data.insert(name.to_owned(), Value::from(format!("{value:?}")));
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for AppLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != APP_LOG_TARGET {
            return;
        }
        let mut c = Collect::default();
        event.record(&mut c);
        let level = c.level.unwrap_or_else(|| level_of(event.metadata().level()));
        (self.sink)(level, &c.message, c.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Captured = (i32, String, Map<String, Value>);
    static CAPTURED: std::sync::Mutex<Vec<Captured>> = std::sync::Mutex::new(Vec::new());

    fn capture(level: i32, message: &str, data: Map<String, Value>) {
        CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).push((level, message.to_owned(), data));
    }

    #[test]
    fn only_app_log_events_are_captured_with_their_level_message_and_data() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(with_target_filter(AppLogLayer { sink: capture }));
        tracing::subscriber::with_default(subscriber, || {
            tracing::event!(target: APP_LOG_TARGET, tracing::Level::INFO, level = 4i64, data = "{\"user\":\"u1\",\"n\":2}", "hello");
            tracing::event!(target: APP_LOG_TARGET, tracing::Level::DEBUG, "no level field");
            tracing::info!(ignored = true, "an ordinary event");
        });
        let captured = CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(captured.len(), 2, "{captured:?}");
        assert_eq!(captured[0].0, LEVEL_WARN);
        assert_eq!(captured[0].1, "hello");
        assert_eq!(Value::Object(captured[0].2.clone()), serde_json::json!({"user": "u1", "n": 2}));
        assert_eq!((captured[1].0, captured[1].1.as_str()), (LEVEL_DEBUG, "no level field"));
    }

    static BESIDE: std::sync::Mutex<Vec<Captured>> = std::sync::Mutex::new(Vec::new());

    fn capture_beside(level: i32, message: &str, data: Map<String, Value>) {
        BESIDE.lock().unwrap_or_else(|p| p.into_inner()).push((level, message.to_owned(), data));
    }

    #[test]
    fn boxed_beside_a_stricter_formatter_it_still_sees_every_app_log_level() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer as _;
        // The shape `telemetry::init_with` builds: the boxed layer, then a formatter filtered
        // to errors only, whose filter must not hide info and debug app logs from this layer.
        let formatter = tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(tracing_subscriber::filter::LevelFilter::ERROR);
        let subscriber = tracing_subscriber::registry().with(Some(boxed(AppLogLayer { sink: capture_beside }))).with(formatter);
        tracing::subscriber::with_default(subscriber, || {
            tracing::event!(target: APP_LOG_TARGET, tracing::Level::DEBUG, "quiet");
            tracing::debug!("not an app log");
        });
        let seen = BESIDE.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!((seen[0].0, seen[0].1.as_str()), (LEVEL_DEBUG, "quiet"));
    }

    #[test]
    fn level_names_and_numbers() {
        assert_eq!(level_named("WARN"), Some(LEVEL_WARN));
        assert_eq!(level_named("-4"), Some(LEVEL_DEBUG));
        assert_eq!(level_named("loud"), None);
        assert_eq!(level_of(&tracing::Level::ERROR), LEVEL_ERROR);
    }
}
