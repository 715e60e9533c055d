//! Outgoing mail: builds a message from the `meta` and `smtp` settings (the password from the
//! separate secrets row) and sends it over SMTP with lettre on tokio.
//!
//! It owns the SMTP connection parameters, the From header and template rendering
//! ([`templates`]). It must not be called inside a database transaction — every caller sends
//! only after its COMMIT, so a slow or dead mail server can neither hold the write lock nor
//! undo an account change — and it must not know HTTP: [`MailError`] is mapped to an API error
//! (or just logged) by the handler that asked for mail.

pub mod templates;

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as LettreMessage, Tokio1Executor};

use crate::shared::db::{Db, DbError};
use crate::worker::settings::{self, SettingsCache, SettingsError};

/// How long one SMTP exchange (connect, each command) may take, in seconds. A mail server
/// that does not answer must not keep a request open for minutes.
pub const SMTP_TIMEOUT_SECS: u64 = 10;

/// One message to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// An address with an optional display name (PocketBase's `mail.Address`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Address {
    pub address: String,
    pub name: String,
}

/// A full message in PocketBase's `MailerMessage` shape, as JS hooks see and change it. An
/// empty `from` means the settings' sender.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Message {
    pub from: Address,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

impl From<Mail> for Message {
    fn from(m: Mail) -> Message {
        Message { to: vec![Address { address: m.to, name: String::new() }], subject: m.subject, html: m.html, ..Message::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP is not enabled in the settings")]
    Disabled,
    #[error("reading the mail settings: {0}")]
    Settings(#[from] SettingsError),
    #[error("reading the mail settings: {0}")]
    Db(#[from] DbError),
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("a message needs at least one recipient")]
    NoRecipient,
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Whether SMTP is switched on: flows that only mail as a courtesy (login alerts) skip their
/// work entirely when it is not.
pub async fn enabled(settings: &SettingsCache, db: &Db) -> bool {
    match settings.fresh(db).await {
        Ok(loaded) => loaded.settings.smtp.enabled,
        Err(e) => {
            tracing::warn!(error = %e, "reading settings to check SMTP failed");
            false
        }
    }
}

/// Sends `mail` with the current settings. Awaits the SMTP server's answer.
pub async fn send(settings: &SettingsCache, db: &Db, mail: Mail) -> Result<(), MailError> {
    send_message(settings, db, mail.into()).await
}

fn mailbox(a: &Address) -> Result<Mailbox, MailError> {
    let address = a.address.trim().parse().map_err(|_| MailError::Address(a.address.clone()))?;
    Ok(Mailbox::new(Some(a.name.clone()).filter(|n| !n.is_empty()), address))
}

/// Sends `msg` with the current settings: the settings' sender unless `msg.from` names one,
/// HTML with a plain-text alternative when both are given. Awaits the SMTP server's answer.
pub async fn send_message(settings: &SettingsCache, db: &Db, msg: Message) -> Result<(), MailError> {
    let loaded = settings.fresh(db).await?;
    let (meta, smtp) = (&loaded.settings.meta, &loaded.settings.smtp);
    if !smtp.enabled {
        return Err(MailError::Disabled);
    }
    if msg.to.is_empty() && msg.cc.is_empty() && msg.bcc.is_empty() {
        return Err(MailError::NoRecipient);
    }
    let password = db.read(|c| settings::load_secrets(c).map(|s| s.smtp_password)).await?;

    let from = if msg.from.address.trim().is_empty() {
        Address { address: meta.sender_address.clone(), name: meta.sender_name.clone() }
    } else {
        msg.from.clone()
    };
    let mut builder = LettreMessage::builder().from(mailbox(&from)?).subject(msg.subject.clone());
    for a in &msg.to {
        builder = builder.to(mailbox(a)?);
    }
    for a in &msg.cc {
        builder = builder.cc(mailbox(a)?);
    }
    for a in &msg.bcc {
        builder = builder.bcc(mailbox(a)?);
    }
    for (name, value) in &msg.headers {
        if let Ok(name) = lettre::message::header::HeaderName::new_from_ascii(name.clone()) {
            builder = builder.raw_header(lettre::message::header::HeaderValue::new(name, value.clone()));
        }
    }
    let message = match (msg.html.is_empty(), msg.text.is_empty()) {
        (false, false) => builder.multipart(lettre::message::MultiPart::alternative_plain_html(msg.text, msg.html))?,
        (true, false) => builder.header(ContentType::TEXT_PLAIN).body(msg.text)?,
        _ => builder.header(ContentType::TEXT_HTML).body(msg.html)?,
    };

    // `tls: true` is implicit TLS from the first byte (port 465 style), as PocketBase; otherwise
    // STARTTLS when the server offers it, plain text when it does not.
    let builder = if smtp.tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .tls(Tls::Opportunistic(TlsParameters::new(smtp.host.clone())?))
    };
    let mut builder = builder.port(smtp.port).timeout(Some(Duration::from_secs(SMTP_TIMEOUT_SECS)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(Credentials::new(smtp.username.clone(), password));
        match smtp.auth_method.to_ascii_uppercase().as_str() {
            "PLAIN" => builder = builder.authentication(vec![Mechanism::Plain]),
            "LOGIN" => builder = builder.authentication(vec![Mechanism::Login]),
            _ => {}
        }
    }
    if !smtp.local_name.is_empty() {
        builder = builder.hello_name(ClientId::Domain(smtp.local_name.clone()));
    }
    builder.build().send(message).await?;
    Ok(())
}
