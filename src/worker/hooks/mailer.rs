//! Mail hooks: `onMailerSend` around every mail (system mails and `$app.newMailClient().send`),
//! and `onMailerRecord{Verification,PasswordReset,EmailChange,OTP,AuthAlert}Send` (with
//! `e.record`, `e.meta`) before it for the account flows' mails, as PocketBase chains them.
//! The default action of `onMailerSend` delivers `e.message` as it is then; a handler that does
//! not call `e.next()` suppresses the mail.
//!
//! Zero cost without handlers: [`send`] checks the registry and, when nothing is registered
//! for this mail, sends it directly without going near a JS thread. Delivery from a JS thread
//! blocks that (plain std) thread on the SMTP exchange through the tokio handle.
//!
//! It must not know HTTP; the account flows decide what a failure answers.

use std::sync::Arc;

use rquickjs::{Ctx, Exception, Function, Object, Value};
use serde_json::{Map, Value as Json};

use super::engine::Env;
use super::{bindings, chain, errors, DispatchError};
use crate::worker::mail::{self, MailError, Message};
use crate::worker::records::schema::Collection;
use crate::worker::state::AppState;

const MAILER_JS: &str = include_str!("mailer.js");
/// The hook around every mail.
pub const ON_MAILER_SEND: &str = "onMailerSend";

/// The hook of each account flow's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMailKind {
    Verification,
    PasswordReset,
    EmailChange,
    Otp,
    AuthAlert,
}

impl RecordMailKind {
    pub fn hook(self) -> &'static str {
        match self {
            RecordMailKind::Verification => "onMailerRecordVerificationSend",
            RecordMailKind::PasswordReset => "onMailerRecordPasswordResetSend",
            RecordMailKind::EmailChange => "onMailerRecordEmailChangeSend",
            RecordMailKind::Otp => "onMailerRecordOTPSend",
            RecordMailKind::AuthAlert => "onMailerRecordAuthAlertSend",
        }
    }
}

/// The account a system mail is about: `e.record` (and its collection, the hook's tag) and
/// `e.meta` (PocketBase's: the token, the OTP id and password, the new email…).
pub struct RecordMail {
    pub kind: RecordMailKind,
    pub collection: Arc<Collection>,
    pub record: Map<String, Json>,
    pub meta: Json,
}

/// Why a mail did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Mail(#[from] MailError),
    /// A handler threw, or the hooks could not run.
    #[error("mail hook failed: {0}")]
    Hook(String),
}

/// Installs `MailerMessage`, `$app.newMailClient()` and their native.
pub fn install<'js>(ctx: &Ctx<'js>, env: &Arc<Env>) -> rquickjs::Result<()> {
    let native: Object = ctx.globals().get("__native")?;
    let env = env.clone();
    let send = Function::new(ctx.clone(), move |ctx: Ctx<'js>, json: String| -> rquickjs::Result<()> {
        let e = Object::new(ctx.clone())?;
        e.set("message", bindings::call_vb::<_, Value>(&ctx, "makeMailerMessage", (json,))?)?;
        run_send_chain(&ctx, &env, e)
    })?;
    native.set("mailSend", send.with_name("mailSend")?)?;
    bindings::eval_internal(ctx, MAILER_JS, "<vaultbase mailer>")?;
    Ok(())
}

/// The `onMailerSend` chain over `e` (which holds `message`), delivering at its end.
fn run_send_chain<'js>(ctx: &Ctx<'js>, env: &Arc<Env>, e: Object<'js>) -> rquickjs::Result<()> {
    let base: Value = bindings::vb(ctx)?.get("baseApp")?;
    e.set("app", base.clone())?;
    let client: Function = bindings::app_members(ctx)?.get("newMailClient")?;
    e.set("mailer", client.call::<_, Value>(())?)?;
    let hooks = env.registry.handlers(ON_MAILER_SEND, &[]);
    let env = env.clone();
    let deliver = chain::rust_link(ctx, move |ctx, e| {
        let message: Value = e.get("message")?;
        let json: String = bindings::call_vb(&ctx, "mailerMessageJson", (message,))?;
        let msg: Message = serde_json::from_str(&json).map_err(|err| Exception::throw_message(&ctx, &format!("invalid message: {err}")))?;
        deliver_blocking(&env, msg).map_err(|err| Exception::throw_message(&ctx, &err))
    })?;
    chain::run(ctx, &hooks, e, Some(deliver))
}

fn deliver_blocking(env: &Env, msg: Message) -> Result<(), String> {
    let (Some(state), Some(handle)) = (&env.state, &env.handle) else {
        return Err("mail cannot be sent from here".into());
    };
    handle.block_on(mail::send_message(&state.settings, &state.db, msg)).map_err(|e| e.to_string())
}

/// Sends a system mail through the hooks registered for it, or directly when there are none.
pub async fn send(state: &AppState, msg: Message, about: Option<RecordMail>) -> Result<(), SendError> {
    let loaded = state.hooks.current();
    let reg = &loaded.registry;
    let hooked = reg.has_any(ON_MAILER_SEND) || about.as_ref().is_some_and(|r| reg.has(r.kind.hook(), &r.collection.id, &r.collection.name));
    if !hooked {
        return Ok(mail::send_message(&state.settings, &state.db, msg).await?);
    }
    let what = about.as_ref().map(|r| r.kind.hook()).unwrap_or(ON_MAILER_SEND);
    let env = loaded.env().clone();
    let limits = env.limits;
    let ran = loaded
        .run(limits.timeout, move |ctx| -> Result<(), errors::Failure> {
            let go = || -> rquickjs::Result<()> {
                let message: Value = bindings::call_vb(ctx, "makeMailerMessage", (serde_json::to_string(&msg).unwrap_or_default(),))?;
                let Some(about) = about else {
                    let e = Object::new(ctx.clone())?;
                    e.set("message", message)?;
                    return run_send_chain(ctx, &env, e);
                };
                let e = Object::new(ctx.clone())?;
                e.set("app", bindings::vb(ctx)?.get::<_, Value>("baseApp")?)?;
                e.set("message", message)?;
                let collection = ctx.json_parse(serde_json::to_string(&*about.collection).unwrap_or_default())?;
                let record = ctx.json_parse(Json::Object(about.record).to_string())?;
                e.set("record", bindings::call_vb::<_, Value>(ctx, "makeRecord", (record, collection))?)?;
                e.set("meta", ctx.json_parse(about.meta.to_string())?)?;
                let hooks = env.registry.handlers(about.kind.hook(), &[&about.collection.id, &about.collection.name]);
                let env2 = env.clone();
                let next = chain::rust_link(ctx, move |ctx, e| {
                    let inner = Object::new(ctx.clone())?;
                    inner.set("message", e.get::<_, Value>("message")?)?;
                    run_send_chain(&ctx, &env2, inner)
                })?;
                chain::run(ctx, &hooks, e, Some(next))
            };
            go().map_err(|err| errors::failure_of(ctx, err, what))
        })
        .await;
    match ran {
        Ok((Ok(()), None)) => Ok(()),
        Ok((Err(f), None)) => Err(SendError::Hook(f.message)),
        Ok((_, Some(trap))) => Err(SendError::Hook(errors::trapped(trap, what, "", 0, &limits).message)),
        Err(DispatchError::Saturated) => Err(SendError::Hook(super::SATURATED_MESSAGE.into())),
        Err(e) => Err(SendError::Hook(format!("{e:?}"))),
    }
}
