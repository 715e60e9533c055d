//! `vaultbase superuser create|update|upsert EMAIL PASSWORD`, `vaultbase superuser delete
//! EMAIL` and `vaultbase superuser otp EMAIL`, as in PocketBase: run against the data dir
//! directly, whether or not a server is running on it. `otp` stores a one-time password for
//! the superuser (when `_superusers` has OTP enabled) and prints it, as PocketBase does; it is
//! redeemed with the API's `auth-with-otp`.
//!
//! If no server holds the data dir, this takes its lock for the duration and runs the system
//! migrations (so it works on a fresh dir); if one does, the database is already migrated and
//! SQLite's own locking serialises the write. A changed password rotates the tokenKey, so
//! every token issued before stops working at once, on every worker.

use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::shared::cli::SuperuserAction;
use crate::shared::config::Config;
use crate::shared::data_dir::DataDir;
use crate::shared::db::{migrate, open};
use crate::shared::lock::{DirLock, LockError};
use crate::worker::auth::password::{length_ok, PasswordPool, PASSWORD_MAX_CHARS_LIMIT, PASSWORD_MIN_CHARS_DEFAULT};
use crate::worker::auth::random;

#[derive(Debug, thiserror::Error)]
pub enum SuperuserCliError {
    #[error("opening data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Lock(LockError),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database has pending migrations; start vaultbase once or stop the running server")]
    Unmigrated,
    #[error("invalid email address {0:?}")]
    BadEmail(String),
    #[error("the password must be {PASSWORD_MIN_CHARS_DEFAULT} to {PASSWORD_MAX_CHARS_LIMIT} characters")]
    BadPassword,
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error("no superuser with email {0:?}")]
    NotFound(String),
    #[error("you can't delete the only existing superuser")]
    LastSuperuser,
    #[error("failed to create new superuser account: email {0:?} is already in use")]
    Exists(String),
    #[error("superuser with email {0:?} doesn't exist")]
    NoSuchSuperuser(String),
    #[error("OTP auth is not enabled for the _superusers collection")]
    OtpDisabled,
    #[error("reading the collections: {0}")]
    Collections(String),
    #[error("creating the logs database: {0}")]
    Logs(String),
}

/// The email check the CLI and the setup link share.
pub(crate) fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !email.contains(char::is_whitespace)
}

/// Runs the command; returns the line to print on success.
pub fn run(cfg: &Config, action: SuperuserAction) -> Result<String, SuperuserCliError> {
    let dir = DataDir::create(&cfg.data_dir)
        .map_err(|source| SuperuserCliError::DataDir { path: cfg.data_dir.display().to_string(), source })?;
    let _lock = match DirLock::acquire(&dir.lock_path(), dir.root()) {
        Ok(lock) => {
            let mut conn = open::open(&dir.db_path(), open::Role::Writer)?;
            migrate::run(&mut conn)?;
            if migrate::is_pocketbase(&conn)? {
                ensure_logs_table(dir.root())?;
            }
            Some(lock)
        }
        // A running server owns the dir; its migrations are done.
        Err(LockError::Held { .. }) => None,
        Err(e) => return Err(SuperuserCliError::Lock(e)),
    };
    let mut conn = open::open(&dir.db_path(), open::Role::Writer)?;
    if !migrate::pending(&conn)?.is_empty() {
        return Err(SuperuserCliError::Unmigrated);
    }
    // Which of create/update/upsert: may it create, may it update.
    let (email, password, may_create, may_update) = match action {
        SuperuserAction::Upsert { email, password } => (email, password, true, true),
        SuperuserAction::Create { email, password } => (email, password, true, false),
        SuperuserAction::Update { email, password } => (email, password, false, true),
        SuperuserAction::Otp { email } => return otp(&mut conn, email),
        SuperuserAction::Delete { email } => return delete(&mut conn, email),
    };
    if !looks_like_email(&email) {
        return Err(SuperuserCliError::BadEmail(email));
    }
    if !length_ok(&password, PASSWORD_MIN_CHARS_DEFAULT, PASSWORD_MAX_CHARS_LIMIT) {
        return Err(SuperuserCliError::BadPassword);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let pool = PasswordPool::new(1);
    if migrate::is_pocketbase(&conn)? {
        pool.set_scheme(crate::worker::auth::password::HashScheme::Bcrypt);
    }
    let hash = runtime
        .block_on(pool.hash(&password))
        .map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let token_key = random::new_token_key().map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Option<String> =
        tx.query_row("SELECT id FROM _superusers WHERE email = ?1", [&email], |r| r.get(0)).optional()?;
    let message = match existing {
        Some(_) if !may_update => return Err(SuperuserCliError::Exists(email)),
        None if !may_create => return Err(SuperuserCliError::NotFound(email)),
        Some(id) => {
            tx.execute(
                "UPDATE _superusers SET password = ?2, tokenKey = ?3, updated = strftime('%Y-%m-%d %H:%M:%fZ') WHERE id = ?1",
                [&id, &hash, &token_key],
            )?;
            format!("Successfully changed superuser {email:?} password!")
        }
        None => {
            let id = random::new_id().map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
            insert_superuser(&tx, &id, &email, &hash, &token_key)?;
            crate::shared::setup_link::revoke(&tx)?;
            if may_update {
                format!("Successfully saved superuser {email:?}!")
            } else {
                format!("Successfully created new superuser {email:?}!")
            }
        }
    };
    tx.commit()?;
    Ok(message)
}

/// PocketBase's ledger says `auxiliary.db` has its `_logs` table: make sure it does, even on a
/// dir no server has run on yet (the log writer creates the same table when it starts).
fn ensure_logs_table(root: &std::path::Path) -> Result<(), SuperuserCliError> {
    let aux = crate::worker::ops::logs::aux_db_path(root);
    crate::worker::ops::logs::store::create_file(&aux).map_err(|e| SuperuserCliError::Logs(e.to_string()))
}

/// `superuser otp EMAIL`: a new one-time password for the superuser, stored hashed as the
/// API's OTP request stores one (`_superusers`' `otp.length` digits, valid `otp.duration`
/// seconds), printed in PocketBase's words.
fn otp(conn: &mut rusqlite::Connection, email: String) -> Result<String, SuperuserCliError> {
    let id: Option<String> = conn.query_row("SELECT id FROM _superusers WHERE email = ?1", [&email], |r| r.get(0)).optional()?;
    let Some(record_id) = id else { return Err(SuperuserCliError::NoSuchSuperuser(email)) };
    let (_, collections) = crate::worker::records::store::load_all(conn).map_err(|e| SuperuserCliError::Collections(e.to_string()))?;
    let superusers = collections
        .into_iter()
        .find(|c| c.name == "_superusers")
        .ok_or_else(|| SuperuserCliError::Collections("no _superusers collection".into()))?;
    let settings = superusers.auth.as_ref().map(|a| a.otp.clone()).unwrap_or_default();
    if !settings.enabled {
        return Err(SuperuserCliError::OtpDisabled);
    }
    let digits = usize::try_from(settings.length.clamp(4, 32)).unwrap_or(8);
    let code = random::random_string(b"0123456789", digits).map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let pool = PasswordPool::new(1);
    if migrate::is_pocketbase(conn)? {
        pool.set_scheme(crate::worker::auth::password::HashScheme::Bcrypt);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let hash = runtime.block_on(pool.hash(&code)).map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let otp_id = random::new_id().map_err(|e| SuperuserCliError::Hash(e.to_string()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let valid_secs = i64::try_from(settings.duration).unwrap_or(i64::MAX);
    let row = crate::worker::accounts::OtpRow { record_id, hash, sent_to: String::new(), expires: now.saturating_add(valid_secs) };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    crate::worker::accounts::insert_otp(&tx, &otp_id, &superusers, &row, now)?;
    tx.commit()?;
    Ok(format!(
        "Successfully created OTP for superuser {email:?}:\n├─ Id:    {otp_id}\n├─ Pass:  {code}\n└─ Valid: {valid_secs}s\n"
    ))
}

/// `superuser delete EMAIL`; never the last superuser.
fn delete(conn: &mut rusqlite::Connection, email: String) -> Result<String, SuperuserCliError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id: Option<String> = tx.query_row("SELECT id FROM _superusers WHERE email = ?1", [&email], |r| r.get(0)).optional()?;
    let Some(id) = id else { return Err(SuperuserCliError::NotFound(email)) };
    let count: i64 = tx.query_row("SELECT count(*) FROM _superusers", [], |r| r.get(0))?;
    if count <= 1 {
        return Err(SuperuserCliError::LastSuperuser);
    }
    tx.execute("DELETE FROM _superusers WHERE id = ?1", [&id])?;
    tx.commit()?;
    Ok(format!("Successfully deleted superuser {email:?}!"))
}

/// Inserts a new, verified superuser with an already hashed password.
pub(crate) fn insert_superuser(conn: &rusqlite::Connection, id: &str, email: &str, hash: &str, token_key: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO _superusers (id, email, password, tokenKey, verified, emailVisibility, created, updated)
         VALUES (?1, ?2, ?3, ?4, 1, 0, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))",
        [id, email, hash, token_key],
    )
    .map(|_| ())
}
