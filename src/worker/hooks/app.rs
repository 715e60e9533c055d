//! `$app`'s data members for hooks: the natives behind `app.js` — `__native.data(op, args)`
//! (one JSON-in, JSON-out entry over [`crate::worker::app::data`]), `__native.dataTx(fn)`
//! (`runInTransaction`) and `__native.hookHandlers(name, tags)` (the compiled handlers of an
//! event, for the model hooks `app.js` fires around a save).
//!
//! It owns the mapping of data errors to PocketBase's thrown errors (a missing row is a 404
//! ApiError, a failed validation a 400 with its field errors) and the open transactions of
//! this thread, by id (a txApp carries its id into every call). It must run only on a JS
//! thread (it blocks on the worker's runtime) and never from inside a writer closure.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use rquickjs::{Array, Ctx, Function, Object, Value as JsValue};
use serde_json::{json, Map, Value};

use super::{bindings, chain, engine};
use crate::worker::app::data::{Data, DataError, RecordData};
use crate::worker::auth::jwt::{self, Claims, TokenKind};
use crate::worker::records::crud::{self, Requester, Shape};
use crate::worker::records::expand::ExpandTree;
use crate::worker::records::query::{AuthContext, RequestContext};
use crate::worker::records::write;

const APP_JS: &str = include_str!("app.js");

thread_local! {
    /// The open transactions of this thread's `runInTransaction` calls, by id.
    static TXS: RefCell<HashMap<u64, Data>> = RefCell::new(HashMap::new());
    static NEXT_TX: Cell<u64> = const { Cell::new(1) };
}

/// Adds the natives, then evaluates `app.js` (after `record.js`).
pub fn install<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    let native: Object = ctx.globals().get("__native")?;
    native.set("data", Function::new(ctx.clone(), |ctx: Ctx<'js>, op: String, args: String| data_op(&ctx, &op, &args))?)?;
    native.set("dataTx", Function::new(ctx.clone(), |ctx: Ctx<'js>, f: Function<'js>| data_tx(&ctx, f))?)?;
    native.set("hookHandlers", Function::new(ctx.clone(), |ctx: Ctx<'js>, name: String, tags: Vec<String>| hook_handlers(&ctx, &name, &tags))?)?;
    bindings::eval_internal(ctx, APP_JS, "<vaultbase app>")?;
    Ok(())
}

/// The app of the running dispatch (None outside a server, e.g. in the loader of a unit test).
pub fn base_app() -> Option<Data> {
    let ts = engine::current()?;
    let (state, handle) = (ts.env.state.clone()?, ts.env.handle.clone()?);
    Some(Data::new(state, handle))
}

/// The app a native call names: its transaction (`tx`), else the base app.
pub fn app_for(args: &Map<String, Value>) -> Option<Data> {
    match args.get("tx").and_then(Value::as_u64) {
        Some(id) if id > 0 => TXS.with(|t| t.borrow().get(&id).cloned()),
        _ => base_app(),
    }
}

/// Throws the error PocketBase's host function would: a missing row is answered 404, a
/// failed validation 400 with its fields, anything else a plain Error (400 when unhandled).
pub fn throw_data_error<'js>(ctx: &Ctx<'js>, e: DataError) -> rquickjs::Error {
    match e {
        DataError::NotFound => chain::throw_api_error(ctx, 404, "The requested resource wasn't found.", None),
        DataError::Invalid { message, errors } => throw_with_data(ctx, 400, &message, errors.to_data()),
        DataError::Bad(m) => rquickjs::Exception::throw_message(ctx, &m),
        DataError::Internal(m) => {
            tracing::warn!(error = %m, "a hook's data operation failed");
            rquickjs::Exception::throw_message(ctx, "Something went wrong while processing your request.")
        }
    }
}

/// Throws PocketBase's ApiError with field errors in `data` (kept as ValidationErrors).
pub fn throw_with_data<'js>(ctx: &Ctx<'js>, status: u16, message: &str, data: Map<String, Value>) -> rquickjs::Error {
    if data.is_empty() {
        return chain::throw_api_error(ctx, status, message, None);
    }
    let build = || -> rquickjs::Result<JsValue<'js>> {
        let d = ctx.json_parse(Value::Object(data).to_string())?;
        bindings::call_vb(ctx, "apiError", (status, message, d))
    };
    match build() {
        Ok(v) => ctx.throw(v),
        Err(e) => e,
    }
}

fn record_json(r: &RecordData) -> Value {
    json!({"c": collection_json(&r.collection), "d": r.fields})
}

fn records_json(c: Option<&std::sync::Arc<crate::worker::records::schema::Collection>>, list: Vec<RecordData>) -> Value {
    let c = c.map(|c| collection_json(c)).unwrap_or(Value::Null);
    json!({"c": c, "list": list.into_iter().map(|r| Value::Object(r.fields)).collect::<Vec<_>>()})
}

pub fn collection_json(c: &crate::worker::records::schema::Collection) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn s<'a>(args: &'a Map<String, Value>, k: &str) -> &'a str {
    args.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn obj(args: &Map<String, Value>, k: &str) -> Map<String, Value> {
    args.get(k).and_then(Value::as_object).cloned().unwrap_or_default()
}

fn strings(args: &Map<String, Value>, k: &str) -> Vec<String> {
    args.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
}

fn raw_of(args: &Map<String, Value>) -> Option<(String, Map<String, Value>)> {
    let raw = s(args, "raw");
    (!raw.trim().is_empty()).then(|| (raw.to_owned(), obj(args, "rawParams")))
}

fn data_op<'js>(ctx: &Ctx<'js>, op: &str, args: &str) -> rquickjs::Result<String> {
    let args: Map<String, Value> = serde_json::from_str(args).unwrap_or_default();
    let Some(app) = app_for(&args) else {
        return Err(rquickjs::Exception::throw_message(ctx, "the database is not available here"));
    };
    match run_op(&app, op, &args) {
        Ok(v) => Ok(v.to_string()),
        Err(e) => Err(throw_data_error(ctx, e)),
    }
}

fn run_op(app: &Data, op: &str, args: &Map<String, Value>) -> Result<Value, DataError> {
    let col = s(args, "col");
    Ok(match op {
        "collection" => collection_json(&*app.collection(s(args, "name"))?),
        "collections" => Value::Array(app.collections(&strings(args, "types"))?.iter().map(|c| collection_json(c)).collect()),
        "findById" => record_json(&app.find_by_id(col, s(args, "id"))?),
        "findByIds" => {
            let c = app.collection(col)?;
            records_json(Some(&c), app.find_by_ids(col, &strings(args, "ids"))?)
        }
        "findByFilter" => {
            let c = app.collection(col)?;
            let int = |k: &str| args.get(k).and_then(Value::as_f64).unwrap_or(0.0) as i64;
            let list = app.find_by_filter(col, s(args, "filter"), s(args, "sort"), int("limit"), int("offset"), &obj(args, "params"), raw_of(args))?;
            records_json(Some(&c), list)
        }
        "count" => Value::from(app.count(col, s(args, "filter"), &obj(args, "params"), raw_of(args))?),
        "findAuthByEmail" => record_json(&app.find_auth_by_email(col, s(args, "email"))?),
        "findByToken" => record_json(&find_by_token(app, s(args, "token"), &strings(args, "types"))?),
        "save" => {
            let c = app.collection(col)?;
            let record = RecordData { collection: c, fields: obj(args, "fields") };
            let is_new = args.get("isNew").and_then(Value::as_bool).unwrap_or(true);
            let original = args.get("original").and_then(Value::as_object);
            // `saveNoValidate` sends `validate: false`.
            let check = if args.get("validate").and_then(Value::as_bool) == Some(false) { write::Check::Skip } else { write::Check::Validate };
            record_json(&app.save_as(check, &record, is_new, original)?)
        }
        "delete" => {
            let c = app.collection(col)?;
            app.delete(&c, s(args, "id"))?;
            Value::Null
        }
        "query" => Value::Array(app.query(s(args, "sql"), &obj(args, "params"))?.into_iter().map(Value::Object).collect()),
        "execute" => Value::from(app.execute(s(args, "sql"), &obj(args, "params"))?),
        "verifyPassword" => Value::Bool(app.verify_password(s(args, "hash"), s(args, "password"))),
        "token" => Value::String(token(app, args)?),
        "settings" => settings(app)?,
        "expand" => expand(app, col, &strings(args, "ids"), s(args, "expand"))?,
        "canAccess" => Value::Bool(can_access(app, col, s(args, "id"), s(args, "rule"), args.get("auth"))?),
        other => return Err(DataError::Bad(format!("unknown data operation {other}"))),
    })
}

/// `runInTransaction`: calls `f(txId)` inside a transaction; a throw rolls it back and is
/// thrown on unchanged.
fn data_tx<'js>(ctx: &Ctx<'js>, f: Function<'js>) -> rquickjs::Result<()> {
    let Some(app) = base_app() else {
        return Err(rquickjs::Exception::throw_message(ctx, "the database is not available here"));
    };
    enum Fail {
        Js(rquickjs::Error),
        Data(DataError),
    }
    impl From<DataError> for Fail {
        fn from(e: DataError) -> Self {
            Fail::Data(e)
        }
    }
    let out = app.transaction(|tx| -> Result<(), Fail> {
        let id = NEXT_TX.with(|n| {
            let id = n.get();
            n.set(id + 1);
            id
        });
        TXS.with(|t| t.borrow_mut().insert(id, tx.clone()));
        let r = f.call::<_, JsValue>((id,));
        TXS.with(|t| t.borrow_mut().remove(&id));
        r.map(|_| ()).map_err(Fail::Js)
    });
    match out {
        Ok(()) => Ok(()),
        Err(Fail::Js(e)) => Err(e),
        Err(Fail::Data(e)) => Err(throw_data_error(ctx, e)),
    }
}

fn hook_handlers<'js>(ctx: &Ctx<'js>, name: &str, tags: &[String]) -> rquickjs::Result<Array<'js>> {
    let out = Array::new(ctx.clone())?;
    let Some(ts) = engine::current() else { return Ok(out) };
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    for (i, h) in ts.env.registry.handlers(name, &tags).into_iter().enumerate() {
        out.set(i, engine::handler(ctx, h.handler)?)?;
    }
    Ok(out)
}

fn token(app: &Data, args: &Map<String, Value>) -> Result<String, DataError> {
    let c = app.collection(s(args, "collection"))?;
    let auth = c.auth.clone().unwrap_or_default();
    let extra = obj(args, "extra");
    let (kind, secs) = match s(args, "kind") {
        "auth" => match extra.get("seconds").and_then(Value::as_u64).filter(|n| *n > 0) {
            Some(n) => (TokenKind::Auth { refreshable: false }, n),
            None => (TokenKind::Auth { refreshable: true }, auth.auth_token.duration),
        },
        "verification" => (TokenKind::Verification { email: s(args, "email").to_owned() }, auth.verification_token.duration),
        "passwordReset" => (TokenKind::PasswordReset { email: s(args, "email").to_owned() }, auth.password_reset_token.duration),
        "emailChange" => (
            TokenKind::EmailChange { email: s(args, "email").to_owned(), new_email: extra.get("newEmail").and_then(Value::as_str).unwrap_or_default().to_owned() },
            auth.email_change_token.duration,
        ),
        "file" => (TokenKind::File, auth.file_token.duration),
        other => return Err(DataError::Bad(format!("unknown token kind {other}"))),
    };
    let claims = Claims { id: s(args, "id").to_owned(), collection_id: c.id.clone(), kind, exp: jwt::expires_at(jwt::unix_now(), std::time::Duration::from_secs(secs)) };
    // With the collection's own secret when it has one, as every other token vaultbase signs.
    let collection_secret = crate::worker::actor::token_secret(&c, claims.token_type());
    jwt::sign_for(&app.state().jwt_secret, collection_secret, &claims, s(args, "tokenKey")).map_err(|e| DataError::Bad(e.to_string()))
}

fn find_by_token(app: &Data, token: &str, types: &[String]) -> Result<RecordData, DataError> {
    let claims = jwt::peek(token).map_err(|e| DataError::Bad(e.to_string()))?;
    if !types.is_empty() && !types.iter().any(|t| t == claims.token_type.as_str()) {
        return Err(DataError::Bad("invalid token type".into()));
    }
    if claims.is_expired(jwt::unix_now()) {
        return Err(DataError::Bad("token expired".into()));
    }
    let record = app.find_by_id(&claims.collection_id, &claims.id)?;
    let key = record.fields.get("tokenKey").and_then(Value::as_str).unwrap_or_default().to_owned();
    let c = app.collection(&claims.collection_id)?;
    let collection_secret = crate::worker::actor::token_secret(&c, claims.token_type);
    jwt::verify_for(&app.state().jwt_secret, collection_secret, token, claims.token_type, &claims.collection_id, &key, jwt::unix_now())
        .map_err(|e| DataError::Bad(e.to_string()))?;
    Ok(record)
}

fn settings(app: &Data) -> Result<Value, DataError> {
    let state = app.state().clone();
    let loaded = app.block_on(async move { state.settings.fresh(&state.db).await }).map_err(|e| DataError::Internal(e.to_string()))?;
    serde_json::to_value(&loaded.settings).map_err(|e| DataError::Internal(e.to_string()))
}

/// The `expand` of each record `ids` of `col` as a superuser sees it: {id: {rel: json}}.
fn expand(app: &Data, col: &str, ids: &[String], paths: &str) -> Result<Value, DataError> {
    let c = app.collection(col)?;
    let shape = Shape { expand: ExpandTree::parse(paths), fields: Default::default() };
    let req = Requester { ctx: RequestContext::new(std::time::SystemTime::now()), superuser: true };
    let ids = ids.to_vec();
    let out = app.read_with(move |conn, snap| {
        let mut out = Map::new();
        for id in &ids {
            let bytes = crud::view(conn, snap, &c, &req, id, &shape)?;
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if let Some(x) = v.get("expand") {
                out.insert(id.clone(), x.clone());
            }
        }
        Ok(Value::Object(out))
    })?;
    Ok(out)
}

fn can_access(app: &Data, col: &str, id: &str, rule: &str, auth: Option<&Value>) -> Result<bool, DataError> {
    let c = app.collection(col)?;
    let mut ctx = RequestContext::new(std::time::SystemTime::now());
    if let Some(a) = auth.and_then(Value::as_object) {
        let ac = app.collection(s(a, "collectionId"))?;
        let record = app.find_by_id(&ac.id, s(a, "id"))?;
        ctx.auth = Some(AuthContext::of_record(&ac.id, &ac.name, &record.fields));
    }
    if rule.trim().is_empty() {
        return Ok(true);
    }
    let req = Requester { ctx, superuser: false };
    let (rule, id) = (rule.to_owned(), id.to_owned());
    app.read_with(move |conn, snap| Ok(crud::passes(conn, snap, &c, &req, &id, Some(&rule))?))
}
