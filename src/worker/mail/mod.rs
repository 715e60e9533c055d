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
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
    let loaded = settings.fresh(db).await?;
    let (meta, smtp) = (&loaded.settings.meta, &loaded.settings.smtp);
    if !smtp.enabled {
        return Err(MailError::Disabled);
    }
    let password = db.read(|c| settings::load_secrets(c).map(|s| s.smtp_password)).await?;

    let sender = meta.sender_address.parse().map_err(|_| MailError::Address(meta.sender_address.clone()))?;
    let recipient = mail.to.parse().map_err(|_| MailError::Address(mail.to.clone()))?;
    let message = Message::builder()
        .from(Mailbox::new(Some(meta.sender_name.clone()).filter(|n| !n.is_empty()), sender))
        .to(Mailbox::new(None, recipient))
        .subject(mail.subject)
        .header(ContentType::TEXT_HTML)
        .body(mail.html)?;

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
