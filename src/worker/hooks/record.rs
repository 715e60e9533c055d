//! PocketBase's `Record` for hooks (`record.js`): Go-shaped reads (`get` answers a DateTime
//! for dates and a JSONRaw byte array for json fields), `set` with its modifiers (`field+`,
//! `+field`, `field-`), visibility (`hide`, `unhide`, `withCustomData`), the API JSON a record
//! serializes to (`publicExport`, `JSON.stringify(record)`), and the auth helpers. It replaces
//! the prelude's read-only `__vb.makeRecord`. It owns the in-memory record only: loading and
//! saving are `$app` members (`app.rs`).

use rquickjs::Ctx;

use super::bindings;

const RECORD_JS: &str = include_str!("record.js");

/// Defines `Record`, `__vb.toRecord` and the real `__vb.makeRecord` (after `collection.js`).
pub fn install(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    bindings::eval_internal(ctx, RECORD_JS, "<vaultbase record>")?;
    Ok(())
}
