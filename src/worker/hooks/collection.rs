//! PocketBase's `Collection`, `Field` and the typed `XxxField` constructors for hooks and
//! migrations (`collection.js`): a JS object over the collection's API JSON, its fields a
//! FieldsList (`getByName`, `fieldNames`, `add`, `addAt`, `removeById`…). Other modules build
//! one with `__vb.makeCollection(json)` (shared per runtime, keyed by id and `updated`) or
//! `new Collection(json)` (a private copy to edit). It owns the in-memory shape only: lookups
//! and saves are `$app` members (`app.rs`, migrations).

use rquickjs::Ctx;

use super::bindings;

const COLLECTION_JS: &str = include_str!("collection.js");

/// Defines `Collection`, `Field`, the typed field constructors and `__vb.makeCollection`.
pub fn install(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    bindings::eval_internal(ctx, COLLECTION_JS, "<vaultbase collection>")?;
    Ok(())
}
