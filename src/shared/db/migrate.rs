//! Embedded, versioned system migrations, recorded in vaultbase's own ledger `_vb_migrations`.
//!
//! They run once, in the process holding the data-dir lock (supervisor or `serve`), before any
//! worker starts. A worker only checks that nothing is pending and refuses to start otherwise,
//! so two binaries of different versions can never migrate one file concurrently.
//!
//! A data dir PocketBase (≥ 0.23) made is opened in place: its tables (`_collections`,
//! `_params`, `_superusers`, `_otps`, `_mfas`, `_externalAuths`, `_authOrigins`, `users`, …) are
//! recognised and never created, altered or re-indexed here; only vaultbase's own `_vb_` tables
//! are added. PocketBase's ledger `_migrations` is PocketBase's (and JS migrations') alone: the
//! steps below never write it, so PocketBase still sees exactly its own history when it opens the
//! dir again. Data dirs from before `_vb_migrations` existed have their vaultbase rows moved
//! out of `_migrations` on the first run.
//!
//! A new, empty database is made in PocketBase 0.40.6's layout by the first step (its system
//! tables and collections, and its own ledger rows, written once as PocketBase's first start
//! writes them), so from then on it is a PocketBase dir like any other and opens in PocketBase.
//! Data dirs vaultbase made before that step existed keep vaultbase's older layout.
//!
//! vaultbase's one system collection of its own, `_webhooks`, is added to every data dir
//! (PocketBase's too: PocketBase opens it as any collection).

use rusqlite::Connection;

/// One migration: a unique, ordered name and how it is applied.
pub struct Migration {
    pub name: &'static str,
    pub apply: Apply,
}

/// A migration's body: plain SQL, or a function for steps that need bound parameters.
pub enum Apply {
    Sql(&'static str),
    Fn(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// The `_superusers` system collection as its `_collections` row; a worker-side test checks
/// it against the schema model so the two cannot drift apart.
pub const SUPERUSERS_JSON: &str = include_str!("system/_superusers.json");
/// The `_superusers` table, as the schema model generates it (checked by the same test).
pub const SUPERUSERS_DDL: &str = r#"CREATE TABLE "_superusers" ("id" TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL, "password" TEXT DEFAULT '' NOT NULL, "tokenKey" TEXT DEFAULT '' NOT NULL, "email" TEXT DEFAULT '' NOT NULL, "emailVisibility" BOOLEAN DEFAULT FALSE NOT NULL, "verified" BOOLEAN DEFAULT FALSE NOT NULL, "created" TEXT DEFAULT '' NOT NULL, "updated" TEXT DEFAULT '' NOT NULL)"#;

/// The default `users` auth collection PocketBase creates on first start (same id, fields,
/// rules and indexes), as its `_collections` row; checked against the schema model by the
/// same worker-side test as `_superusers`.
pub const USERS_JSON: &str = include_str!("system/users.json");
/// The `users` table, as the schema model generates it.
pub const USERS_DDL: &str = r#"CREATE TABLE "users" ("id" TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL, "password" TEXT DEFAULT '' NOT NULL, "tokenKey" TEXT DEFAULT '' NOT NULL, "email" TEXT DEFAULT '' NOT NULL, "emailVisibility" BOOLEAN DEFAULT FALSE NOT NULL, "verified" BOOLEAN DEFAULT FALSE NOT NULL, "name" TEXT DEFAULT '' NOT NULL, "avatar" TEXT DEFAULT '' NOT NULL, "created" TEXT DEFAULT '' NOT NULL, "updated" TEXT DEFAULT '' NOT NULL)"#;

/// Every system migration, oldest first. Append only; never change what a released entry does
/// to a data dir vaultbase made (making an entry skip a table PocketBase already has is allowed:
/// such a dir never ran it).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "1763769599_pocketbase_layout",
        // Runs first on a new, empty database only (every older data dir has `_collections`
        // already and skips it): lays down PocketBase 0.40.6's system tables and collections
        // and records its system migrations, so the dir opens in PocketBase and is treated
        // from then on exactly like a dir PocketBase made (see `create_pocketbase_layout`).
        apply: Apply::Fn(create_pocketbase_layout),
    },
    Migration {
        name: "1763769600_init_params",
        // `_params` holds settings as JSON, in PocketBase's layout.
        apply: Apply::Sql(
            "CREATE TABLE IF NOT EXISTS _params (
                id      TEXT PRIMARY KEY NOT NULL,
                value   JSON DEFAULT NULL,
                created TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                updated TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
            );",
        ),
    },
    Migration {
        name: "1763769601_collections",
        // `_collections` in PocketBase's layout; `_vb_versions` is vaultbase's: a counter per
        // cached kind of definition, bumped in the same transaction as the change, which
        // every worker compares before trusting its cache.
        apply: Apply::Sql(
            "CREATE TABLE IF NOT EXISTS _collections (
                id         TEXT PRIMARY KEY NOT NULL,
                system     BOOLEAN DEFAULT FALSE NOT NULL,
                type       TEXT DEFAULT 'base' NOT NULL,
                name       TEXT UNIQUE NOT NULL,
                fields     JSON DEFAULT '[]' NOT NULL,
                indexes    JSON DEFAULT '[]' NOT NULL,
                listRule   TEXT DEFAULT NULL,
                viewRule   TEXT DEFAULT NULL,
                createRule TEXT DEFAULT NULL,
                updateRule TEXT DEFAULT NULL,
                deleteRule TEXT DEFAULT NULL,
                options    JSON DEFAULT '{}' NOT NULL,
                created    TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                updated    TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
            );
            CREATE TABLE _vb_versions (name TEXT PRIMARY KEY NOT NULL, version INTEGER DEFAULT 0 NOT NULL);
            INSERT INTO _vb_versions (name, version) VALUES ('collections', 1);",
        ),
    },
    Migration { name: "1763769602_superusers", apply: Apply::Fn(create_superusers) },
    Migration {
        name: "1763769603_settings_version",
        // Settings live in `_params` (rows `settings` and `settings_secrets`, written on first
        // change); this is their cache-coherence counter.
        apply: Apply::Sql("INSERT INTO _vb_versions (name, version) VALUES ('settings', 1);"),
    },
    Migration {
        name: "1763769604_accounts",
        // On a PocketBase data dir the four account tables are PocketBase's own collections
        // (their layout differs: see `accounts`) and only the `_vb_` tables are added.
        // The account flows' tables, with PocketBase's names where it has one (`_otps`,
        // `_mfas`, `_authOrigins`, `_externalAuths`; plain tables here, not collections).
        // `_vb_limits` holds the abuse counters: in SQLite, not process memory, so a limit
        // holds across every worker of a cluster. `_vb_used_tokens` remembers single-purpose
        // tokens already spent (by SHA-256) until they expire. Times are unix seconds.
        apply: Apply::Fn(create_accounts),
    },
    Migration {
        name: "1763769605_realtime_sequence",
        // The cluster-wide commit sequence of record changes: bumped inside every write that
        // changes records, so SQLite's write lock orders it exactly as the commits, and every
        // worker can put the changes it hears of (its own and the bus's) back in commit order.
        apply: Apply::Sql("INSERT INTO _vb_versions (name, version) VALUES ('realtime', 0);"),
    },
    Migration { name: "1763769606_default_users", apply: Apply::Fn(create_users) },
    Migration {
        name: "1763769620_cron",
        // The cron scheduler's (worker/cron). `_vb_cron_claims`: one row per job and slot (a
        // UTC minute since the epoch), inserted by the worker that will run it; the primary key
        // is what makes a scheduled run happen once cluster-wide. `_vb_cron_runs`: what ran,
        // where, for how long and how it ended (a bounded log; `slot` is NULL for a manual run).
        apply: Apply::Sql(CRON_SQL),
    },
    Migration {
        name: "1763769630_jobs_webhooks",
        // Background jobs (worker/jobs). `_vb_jobs` is the queue and the outbox: a row is
        // inserted in the transaction of the write that wants it, so it exists only if that
        // write commits. `status`: queued | running | done | dead | cancelled. A worker claims a
        // due row with one conditional UPDATE that sets `lease_owner`/`lease_until` (unix ms);
        // an expired lease makes a running row claimable again. `key` makes an enqueue
        // idempotent. `_vb_job_attempts`: one row per attempt (outcome running | ok | failed |
        // timeout | lost | released). `_vb_webhooks`: the webhook definitions (superusers
        // only); `_vb_webhook_deliveries`: the delivery log, one row per HTTP attempt.
        apply: Apply::Sql(JOBS_SQL),
    },
    Migration {
        name: "1763769631_jobs_partial_indexes",
        // The outbox insert is on every webhook-watched write's path, and each index it
        // touches is another page written per transaction. The key's uniqueness, the due
        // index and the lease index now cover only the rows they serve (jobs with a key,
        // queued jobs, running jobs): a queued job without a key touches the due index alone,
        // and done jobs (kept 7 days) leave all three. The table is rebuilt (SQLite cannot
        // drop a column's UNIQUE) WITHOUT ROWID: the rows live in the primary key's b-tree,
        // so an insert (ids grow with time) writes one b-tree, not a table and its key index.
        apply: Apply::Sql(JOBS_PARTIAL_INDEXES_SQL),
    },
    Migration {
        name: "1763769640_webhooks_collection",
        // Webhooks become records of the `_webhooks` system collection (superusers only), so
        // they are managed through the records API; the rows of `_vb_webhooks` move into it
        // with their ids, and `_vb_webhooks` is dropped (see `create_webhooks`).
        apply: Apply::Fn(create_webhooks),
    },
    Migration {
        name: "1763769650_jobs_due_by_name",
        // A runner claims by job name, and the due and lease indexes held only the time: a
        // claim for one name walked every due job of the other names before it, looking each
        // up in the table — under a backlog of 100k webhook deliveries a claim for another
        // name read them all inside the write lock. Keyed by name first, a claim (and the
        // runner's look for the next due time of its names) is one index seek per name.
        apply: Apply::Sql(
            "DROP INDEX _vb_jobs_due;
             DROP INDEX _vb_jobs_lease;
             CREATE INDEX _vb_jobs_due ON _vb_jobs (name, run_at) WHERE status = 'queued';
             CREATE INDEX _vb_jobs_lease ON _vb_jobs (name, lease_until) WHERE status = 'running';",
        ),
    },
    Migration {
        name: "1763769660_jobs_outbox",
        // Webhook deliveries enqueued by a record write land here, not in `_vb_jobs`: a rowid
        // table appended to in `seq` order (SQLite's quick append, one b-tree), where a job
        // row went into a WITHOUT ROWID b-tree split in the middle plus the due index — 18 %
        // of a writer's time per create with one webhook. The lead's runner moves rows into
        // `_vb_jobs` as it claims them (`jobs::store::promote`); the API shows them as queued
        // jobs with their final ids meanwhile.
        apply: Apply::Sql(
            "CREATE TABLE _vb_outbox (
                seq          INTEGER PRIMARY KEY,
                id           TEXT NOT NULL,
                name         TEXT NOT NULL,
                payload      TEXT NOT NULL,
                max_attempts INTEGER NOT NULL,
                backoff_ms   INTEGER NOT NULL,
                run_at       INTEGER NOT NULL,
                created      INTEGER NOT NULL
            );",
        ),
    },
];

const JOBS_PARTIAL_INDEXES_SQL: &str = "CREATE TABLE _vb_jobs_next (
                id           TEXT PRIMARY KEY NOT NULL,
                name         TEXT NOT NULL,
                payload      TEXT DEFAULT 'null' NOT NULL,
                status       TEXT DEFAULT 'queued' NOT NULL,
                attempts     INTEGER DEFAULT 0 NOT NULL,
                max_attempts INTEGER NOT NULL,
                backoff_ms   INTEGER NOT NULL,
                run_at       INTEGER NOT NULL,
                lease_owner  TEXT DEFAULT NULL,
                lease_until  INTEGER DEFAULT NULL,
                key          TEXT DEFAULT NULL,
                last_error   TEXT DEFAULT '' NOT NULL,
                created      INTEGER NOT NULL,
                updated      INTEGER NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO _vb_jobs_next (id, name, payload, status, attempts, max_attempts, backoff_ms, run_at, lease_owner, lease_until, key, last_error, created, updated)
                SELECT id, name, payload, status, attempts, max_attempts, backoff_ms, run_at, lease_owner, lease_until, key, last_error, created, updated FROM _vb_jobs;
            DROP TABLE _vb_jobs;
            ALTER TABLE _vb_jobs_next RENAME TO _vb_jobs;
            CREATE UNIQUE INDEX _vb_jobs_key ON _vb_jobs (key) WHERE key IS NOT NULL;
            CREATE INDEX _vb_jobs_due ON _vb_jobs (run_at) WHERE status = 'queued';
            CREATE INDEX _vb_jobs_lease ON _vb_jobs (lease_until) WHERE status = 'running';";

/// The `_webhooks` system collection as its `_collections` row; a worker-side test checks it
/// against the schema model (`records::webhooks_collection::definition`).
pub const WEBHOOKS_JSON: &str = include_str!("system/_webhooks.json");
/// The `_webhooks` table, as the schema model generates it (checked by the same test).
pub const WEBHOOKS_DDL: &str = r#"CREATE TABLE "_webhooks" ("id" TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL, "name" TEXT DEFAULT '' NOT NULL, "url" TEXT DEFAULT '' NOT NULL, "events" JSON DEFAULT NULL, "secret" TEXT DEFAULT '' NOT NULL, "headers" JSON DEFAULT NULL, "active" BOOLEAN DEFAULT FALSE NOT NULL, "failures" NUMERIC DEFAULT 0 NOT NULL, "pausedReason" TEXT DEFAULT '' NOT NULL, "created" TEXT DEFAULT '' NOT NULL, "updated" TEXT DEFAULT '' NOT NULL)"#;

/// Creates the `_webhooks` collection (unless the dir already has a table or collection of
/// that name, which is left alone) and moves every `_vb_webhooks` row into it, ids, secrets,
/// pause state and timestamps included. Bumps the collections version so caches reload.
fn create_webhooks(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM _collections WHERE lower(name) = '_webhooks')
             OR EXISTS(SELECT 1 FROM sqlite_master WHERE lower(name) = '_webhooks')",
        [],
        |r| r.get(0),
    )?;
    if taken {
        return Ok(());
    }
    tx.execute_batch(WEBHOOKS_DDL)?;
    tx.execute(
        "INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule, options)
         SELECT j->>'$.id', 1, j->>'$.type', j->>'$.name', j->'$.fields', j->'$.indexes', NULL, NULL, NULL, NULL, NULL, '{}'
         FROM (SELECT json(?1) AS j)",
        [WEBHOOKS_JSON],
    )?;
    if has_table(tx, "_vb_webhooks")? {
        tx.execute_batch(
            "INSERT INTO _webhooks (id, name, url, events, secret, headers, active, failures, pausedReason, created, updated)
                 SELECT id, name, url, events, secret, headers, active, failures, paused_reason, created, updated FROM _vb_webhooks;
             DROP TABLE _vb_webhooks;",
        )?;
    }
    tx.execute("UPDATE _vb_versions SET version = version + 1 WHERE name = 'collections'", [])?;
    Ok(())
}

/// The account flows' tables in vaultbase's layout (fresh data dirs).
const ACCOUNTS_SQL: &str = "CREATE TABLE _otps (
                id            TEXT PRIMARY KEY NOT NULL,
                collectionRef TEXT NOT NULL,
                recordRef     TEXT NOT NULL,
                password      TEXT NOT NULL,
                sentTo        TEXT DEFAULT '' NOT NULL,
                expires       INTEGER NOT NULL,
                created       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
            );
            CREATE INDEX _otps_record ON _otps (collectionRef, recordRef);
            CREATE TABLE _mfas (
                id            TEXT PRIMARY KEY NOT NULL,
                collectionRef TEXT NOT NULL,
                recordRef     TEXT NOT NULL,
                method        TEXT NOT NULL,
                expires       INTEGER NOT NULL,
                created       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
            );
            CREATE TABLE _authOrigins (
                id            TEXT PRIMARY KEY NOT NULL,
                collectionRef TEXT NOT NULL,
                recordRef     TEXT NOT NULL,
                fingerprint   TEXT NOT NULL,
                created       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                updated       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                UNIQUE (collectionRef, recordRef, fingerprint)
            );
            CREATE TABLE _externalAuths (
                id            TEXT PRIMARY KEY NOT NULL,
                collectionRef TEXT NOT NULL,
                recordRef     TEXT NOT NULL,
                provider      TEXT NOT NULL,
                providerId    TEXT NOT NULL,
                created       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                updated       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                UNIQUE (collectionRef, provider, providerId),
                UNIQUE (collectionRef, recordRef, provider)
            );";

/// vaultbase's own account state, on every data dir.
const ACCOUNTS_VB_SQL: &str = "CREATE TABLE _vb_limits (key TEXT PRIMARY KEY NOT NULL, window_end INTEGER NOT NULL, hits INTEGER NOT NULL);
            CREATE TABLE _vb_used_tokens (hash TEXT PRIMARY KEY NOT NULL, expires INTEGER NOT NULL);";

const CRON_SQL: &str = "CREATE TABLE _vb_cron_claims (
                job     TEXT NOT NULL,
                slot    INTEGER NOT NULL,
                worker  INTEGER NOT NULL,
                pid     INTEGER NOT NULL,
                claimed INTEGER NOT NULL,
                PRIMARY KEY (job, slot)
            ) WITHOUT ROWID;
            CREATE TABLE _vb_cron_runs (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                job         TEXT NOT NULL,
                slot        INTEGER DEFAULT NULL,
                worker      INTEGER NOT NULL,
                pid         INTEGER NOT NULL,
                started     TEXT NOT NULL,
                duration_ms INTEGER NOT NULL,
                outcome     TEXT NOT NULL,
                error       TEXT DEFAULT '' NOT NULL
            );
            CREATE INDEX _vb_cron_runs_job ON _vb_cron_runs (job, id);";

const JOBS_SQL: &str = "CREATE TABLE _vb_jobs (
                id           TEXT PRIMARY KEY NOT NULL,
                name         TEXT NOT NULL,
                payload      TEXT DEFAULT 'null' NOT NULL,
                status       TEXT DEFAULT 'queued' NOT NULL,
                attempts     INTEGER DEFAULT 0 NOT NULL,
                max_attempts INTEGER NOT NULL,
                backoff_ms   INTEGER NOT NULL,
                run_at       INTEGER NOT NULL,
                lease_owner  TEXT DEFAULT NULL,
                lease_until  INTEGER DEFAULT NULL,
                key          TEXT DEFAULT NULL UNIQUE,
                last_error   TEXT DEFAULT '' NOT NULL,
                created      INTEGER NOT NULL,
                updated      INTEGER NOT NULL
            );
            CREATE INDEX _vb_jobs_due ON _vb_jobs (status, run_at);
            CREATE INDEX _vb_jobs_lease ON _vb_jobs (status, lease_until);
            CREATE TABLE _vb_job_attempts (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                job         TEXT NOT NULL,
                attempt     INTEGER NOT NULL,
                owner       TEXT NOT NULL,
                worker      INTEGER NOT NULL,
                pid         INTEGER NOT NULL,
                started     INTEGER NOT NULL,
                duration_ms INTEGER DEFAULT NULL,
                outcome     TEXT DEFAULT 'running' NOT NULL,
                error       TEXT DEFAULT '' NOT NULL
            );
            CREATE INDEX _vb_job_attempts_job ON _vb_job_attempts (job, id);
            CREATE INDEX _vb_job_attempts_open ON _vb_job_attempts (owner) WHERE outcome = 'running';
            CREATE TABLE _vb_webhooks (
                id            TEXT PRIMARY KEY NOT NULL,
                name          TEXT DEFAULT '' NOT NULL,
                url           TEXT NOT NULL,
                events        TEXT DEFAULT '[]' NOT NULL,
                secret        TEXT NOT NULL,
                headers       TEXT DEFAULT '{}' NOT NULL,
                active        INTEGER DEFAULT 1 NOT NULL,
                failures      INTEGER DEFAULT 0 NOT NULL,
                paused_reason TEXT DEFAULT '' NOT NULL,
                created       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL,
                updated       TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
            );
            CREATE TABLE _vb_webhook_deliveries (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                webhook    TEXT NOT NULL,
                job        TEXT NOT NULL,
                event_id   TEXT NOT NULL,
                event      TEXT NOT NULL,
                attempt    INTEGER NOT NULL,
                status     INTEGER DEFAULT 0 NOT NULL,
                latency_ms INTEGER DEFAULT 0 NOT NULL,
                response   TEXT DEFAULT '' NOT NULL,
                error      TEXT DEFAULT '' NOT NULL,
                created    INTEGER NOT NULL
            );
            CREATE INDEX _vb_webhook_deliveries_hook ON _vb_webhook_deliveries (webhook, id);";

/// True when `table` exists in the main database.
fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)", [table], |r| r.get(0))
}

/// True when PocketBase made this database: its own ledger records its init migration.
pub fn is_pocketbase(conn: &Connection) -> rusqlite::Result<bool> {
    if !has_table(conn, "_migrations")? {
        return Ok(false);
    }
    conn.query_row("SELECT EXISTS(SELECT 1 FROM _migrations WHERE file = ?1)", [POCKETBASE_INIT_MIGRATION], |r| r.get(0))
}

/// Field types a PocketBase (0.23–0.40) collection may hold.
const POCKETBASE_FIELD_TYPES: &[&str] =
    &["text", "number", "bool", "email", "url", "editor", "date", "autodate", "select", "file", "relation", "json", "geoPoint", "password"];

/// On a PocketBase data dir, checks every `_collections` row before anything is written:
/// the first damaged one as a message naming the collection and what is wrong, or None.
/// Read-only, so a refused dir is left exactly as it was.
pub fn damaged_collection(conn: &Connection) -> rusqlite::Result<Option<String>> {
    if !is_pocketbase(conn)? {
        return Ok(None);
    }
    let mut stmt = conn.prepare(
        "SELECT id, name, type, CAST(fields AS TEXT), CAST(indexes AS TEXT), CAST(options AS TEXT) FROM _collections ORDER BY rowid",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (id, name, kind): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let (fields, indexes, options): (Option<String>, Option<String>, Option<String>) = (row.get(3)?, row.get(4)?, row.get(5)?);
        if let Some(problem) = collection_problem(&kind, fields.as_deref(), indexes.as_deref(), options.as_deref()) {
            return Ok(Some(format!("collection {name:?} (id {id:?}) in _collections is damaged: {problem}")));
        }
    }
    Ok(None)
}

fn collection_problem(kind: &str, fields: Option<&str>, indexes: Option<&str>, options: Option<&str>) -> Option<String> {
    use serde_json::Value;
    if !matches!(kind, "base" | "auth" | "view") {
        return Some(format!("unknown type {kind:?}"));
    }
    let parse = |column: &str, text: Option<&str>| -> Result<Value, String> {
        serde_json::from_str(text.unwrap_or("")).map_err(|e| format!("{column} is not valid JSON ({e})"))
    };
    let fields = match parse("fields", fields) {
        Ok(Value::Array(a)) => a,
        Ok(_) => return Some("fields is not a JSON array".into()),
        Err(e) => return Some(e),
    };
    for (i, f) in fields.iter().enumerate() {
        let Some(name) = f.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            return Some(format!("field #{i} has no name"));
        };
        match f.get("type").and_then(Value::as_str) {
            Some(t) if POCKETBASE_FIELD_TYPES.contains(&t) => {}
            Some(t) => return Some(format!("field {name:?} has unknown type {t:?}")),
            None => return Some(format!("field {name:?} has no type")),
        }
    }
    match parse("indexes", indexes) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Ok(_) => return Some("indexes is not a JSON array of strings".into()),
        Err(e) => return Some(e),
    }
    match parse("options", options) {
        Ok(Value::Object(_)) => None,
        Ok(_) => Some("options is not a JSON object".into()),
        Err(e) => Some(e),
    }
}

/// The name PocketBase (≥ 0.23) records for the migration that creates its system tables.
pub const POCKETBASE_INIT_MIGRATION: &str = "1640988000_init.go";

/// PocketBase 0.40.6's system tables and indexes, as its first start creates them in `data.db`
/// (its own DDL, double-quoted defaults written single-quoted, which SQLite reads the same).
const POCKETBASE_INIT_SQL: &str = include_str!("system/pocketbase_init.sql");
/// PocketBase 0.40.6's system collections as its `_collections` rows (`_mfas`, `_otps`,
/// `_externalAuths`, `_authOrigins`, `_superusers` and the default `users`), with the token
/// secrets left empty: each data dir gets its own (see [`fill_token_secrets`]).
const POCKETBASE_COLLECTIONS_JSON: &str = include_str!("system/pocketbase_collections.json");
/// PocketBase 0.40.6's ledger after its first start: the migrations whose work the two files
/// above hold (`1640988000_aux_init.go` is `auxiliary.db`'s `_logs`, which the log writer
/// creates in PocketBase's layout).
pub const POCKETBASE_SYSTEM_MIGRATIONS: &[&str] = &[
    "1640988000_aux_init.go",
    POCKETBASE_INIT_MIGRATION,
    "1717233556_v0.23_migrate.go",
    "1717233557_v0.23_migrate2.go",
    "1717233558_v0.23_migrate3.go",
    "1717233559_v0.23_migrate4.go",
    "1763020353_update_default_auth_alert_templates.go",
    "1778828400_normalize_indexes.go",
];
/// The auth options that hold a token-signing secret (PocketBase's keys).
const TOKEN_OPTION_KEYS: [&str; 5] = ["authToken", "passwordResetToken", "emailChangeToken", "verificationToken", "fileToken"];
/// Characters of a generated token secret (PocketBase makes 50 alphanumerics).
const TOKEN_SECRET_CHARS: usize = 50;

/// A random alphanumeric string of `len` characters (rejection-sampled, so unbiased).
fn random_alphanumeric(len: usize) -> rusqlite::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // The largest multiple of the alphabet's size that fits a byte: bytes above it are redrawn.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::getrandom(&mut buf).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        for &b in buf.iter().filter(|&&b| b < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Gives every empty token secret of an auth collection's `options` a new random one.
fn fill_token_secrets(options: &mut serde_json::Value) -> rusqlite::Result<()> {
    for key in TOKEN_OPTION_KEYS {
        if let Some(serde_json::Value::Object(token)) = options.get_mut(key) {
            let empty = token.get("secret").and_then(serde_json::Value::as_str).is_none_or(str::is_empty);
            if empty {
                token.insert("secret".into(), serde_json::Value::String(random_alphanumeric(TOKEN_SECRET_CHARS)?));
            }
        }
    }
    Ok(())
}

/// A new data dir in PocketBase 0.40.6's layout: its system tables, its six system collections
/// (same ids, fields, rules and indexes; fresh token secrets) and its ledger, as PocketBase's
/// own first start leaves them. Done only when the database has no table but vaultbase's
/// ledger; anything else is an existing dir, left as it is. The dir is then recognised by
/// [`is_pocketbase`], so everything PocketBase must still be able to read afterwards
/// (password hashes, token secrets, settings) is written the way PocketBase writes it.
fn create_pocketbase_layout(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let tables: i64 = tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN ('_vb_migrations', 'sqlite_sequence')",
        [],
        |r| r.get(0),
    )?;
    if tables > 0 {
        return Ok(());
    }
    tx.execute_batch(POCKETBASE_INIT_SQL)?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(POCKETBASE_COLLECTIONS_JSON)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let mut insert = tx.prepare(
        "INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule, options)
         SELECT j->>'$.id', j->>'$.system', j->>'$.type', j->>'$.name', j->'$.fields', j->'$.indexes',
                j->>'$.listRule', j->>'$.viewRule', j->>'$.createRule', j->>'$.updateRule', j->>'$.deleteRule', j->'$.options'
         FROM (SELECT json(?1) AS j)",
    )?;
    for mut row in rows {
        if let Some(options) = row.get_mut("options") {
            fill_token_secrets(options)?;
        }
        insert.execute([row.to_string()])?;
    }
    // PocketBase stamps its ledger in microseconds.
    let mut ledger = tx.prepare(
        "INSERT INTO _migrations (file, applied) VALUES (?1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))",
    )?;
    for name in POCKETBASE_SYSTEM_MIGRATIONS {
        ledger.execute([name])?;
    }
    Ok(())
}

fn create_accounts(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    if !has_table(tx, "_otps")? {
        tx.execute_batch(ACCOUNTS_SQL)?;
    }
    tx.execute_batch(ACCOUNTS_VB_SQL)
}

/// Runs the `indexes` statements of a system collection's JSON definition.
fn create_indexes(tx: &rusqlite::Transaction<'_>, definition: &str) -> rusqlite::Result<()> {
    let indexes: Vec<String> = serde_json::from_str::<serde_json::Value>(definition)
        .ok()
        .and_then(|v| v.get("indexes").and_then(|i| serde_json::from_value(i.clone()).ok()))
        .unwrap_or_default();
    for idx in &indexes {
        tx.execute_batch(idx)?;
    }
    Ok(())
}

fn create_superusers(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    if has_table(tx, "_superusers")? {
        return Ok(());
    }
    tx.execute_batch(SUPERUSERS_DDL)?;
    create_indexes(tx, SUPERUSERS_JSON)?;
    tx.execute(
        "INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule, options)
         SELECT j->>'$.id', 1, j->>'$.type', j->>'$.name', j->'$.fields', j->'$.indexes', NULL, NULL, NULL, NULL, NULL, j->'$.options'
         FROM (SELECT json(?1) AS j)",
        [SUPERUSERS_JSON],
    )?;
    Ok(())
}

/// Creates the default `users` collection, once, on a fresh data dir (as PocketBase's first
/// start does). A data dir from before this migration that already holds collections of its
/// own is left as its operator shaped it (they may have chosen not to have `users`), and one
/// with a `users` table or the id is never failed on or overwritten. Bumps the collections
/// version so caches reload.
fn create_users(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM _collections WHERE system = 0 OR lower(name) = 'users' OR id = '_pb_users_auth_')
             OR EXISTS(SELECT 1 FROM sqlite_master WHERE lower(name) = 'users')",
        [],
        |r| r.get(0),
    )?;
    if taken {
        return Ok(());
    }
    tx.execute_batch(USERS_DDL)?;
    create_indexes(tx, USERS_JSON)?;
    tx.execute(
        "INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, updateRule, deleteRule, options)
         SELECT j->>'$.id', 0, j->>'$.type', j->>'$.name', j->'$.fields', j->'$.indexes',
                j->>'$.listRule', j->>'$.viewRule', j->>'$.createRule', j->>'$.updateRule', j->>'$.deleteRule', j->'$.options'
         FROM (SELECT json(?1) AS j)",
        [USERS_JSON],
    )?;
    tx.execute("UPDATE _vb_versions SET version = version + 1 WHERE name = 'collections'", [])?;
    Ok(())
}

const CREATE_LEDGER: &str =
    "CREATE TABLE IF NOT EXISTS _vb_migrations (file TEXT PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)";

/// Creates `_vb_migrations` and moves into it the rows earlier vaultbase versions wrote into
/// `_migrations` (only names from [`MIGRATIONS`]; anything else there is PocketBase's or a JS
/// migration's and stays).
fn open_ledger(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(CREATE_LEDGER)?;
    if has_table(&tx, "_migrations")? {
        for m in MIGRATIONS {
            let moved = tx.execute(
                "INSERT OR IGNORE INTO _vb_migrations (file, applied) SELECT file, applied FROM _migrations WHERE file = ?1",
                [m.name],
            )?;
            if moved > 0 {
                tx.execute("DELETE FROM _migrations WHERE file = ?1", [m.name])?;
            }
        }
    }
    tx.commit()
}

/// Applies every pending migration, each in its own `BEGIN IMMEDIATE` transaction. Returns the
/// names applied.
pub fn run(conn: &mut Connection) -> rusqlite::Result<Vec<&'static str>> {
    open_ledger(conn)?;
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM _vb_migrations WHERE file = ?1)", [m.name], |r| r.get(0))?;
        if !done {
            match m.apply {
                Apply::Sql(sql) => tx.execute_batch(sql)?,
                Apply::Fn(f) => f(&tx)?,
            }
            tx.execute(
                "INSERT INTO _vb_migrations (file, applied) VALUES (?1, CAST(strftime('%s','now') AS INTEGER) * 1000000)",
                [m.name],
            )?;
            applied.push(m.name);
        }
        tx.commit()?;
    }
    Ok(applied)
}

/// The migrations not yet applied to this database.
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<&'static str>> {
    if !has_table(conn, "_vb_migrations")? {
        return Ok(MIGRATIONS.iter().map(|m| m.name).collect());
    }
    let mut stmt = conn.prepare("SELECT EXISTS(SELECT 1 FROM _vb_migrations WHERE file = ?1)")?;
    let mut out = Vec::new();
    for m in MIGRATIONS {
        if !stmt.query_row([m.name], |r| r.get::<_, bool>(0))? {
            out.push(m.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as vaultbase made it before fresh dirs took PocketBase's layout: the layout
    /// step counts as done, so the steps after it build vaultbase's own.
    fn older_vaultbase_db(path: &std::path::Path) -> Connection {
        let conn = crate::shared::db::open::open(path, crate::shared::db::open::Role::Writer).expect("open");
        conn.execute_batch(CREATE_LEDGER).expect("ledger");
        conn.execute("INSERT INTO _vb_migrations (file, applied) VALUES ('1763769599_pocketbase_layout', 0)", []).expect("mark");
        conn
    }

    #[test]
    fn a_new_database_gets_pocketbases_layout_and_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer)
            .expect("open");
        run(&mut conn).expect("run");
        assert!(is_pocketbase(&conn).expect("is_pocketbase"));
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM _collections ORDER BY rowid").expect("prepare")
            .query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
        assert_eq!(ids, ["pbc_2279338944", "pbc_1638494021", "pbc_2281828961", "pbc_4275539003", "pbc_3142635823", "_pb_users_auth_", "pbc_3546803237"]);
        let ledger: Vec<String> = conn
            .prepare("SELECT file FROM _migrations ORDER BY file").expect("prepare")
            .query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
        assert_eq!(ledger, POCKETBASE_SYSTEM_MIGRATIONS, "exactly PocketBase's ledger, nothing of vaultbase's");
        let secrets: Vec<String> = conn
            .prepare("SELECT j.value->>'$.secret' FROM _collections, json_each(_collections.options) j WHERE _collections.type = 'auth' AND j.key LIKE '%Token'")
            .expect("prepare")
            .query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
        assert_eq!(secrets.len(), 10, "five token kinds in each of the two auth collections");
        assert!(secrets.iter().all(|s| s.len() == TOKEN_SECRET_CHARS && s.chars().all(|c| c.is_ascii_alphanumeric())), "{secrets:?}");
        let distinct: std::collections::HashSet<&String> = secrets.iter().collect();
        assert_eq!(distinct.len(), secrets.len(), "every secret is its own");
        // The rest of vaultbase's steps find PocketBase's tables and only add their own.
        let otp_columns: i64 =
            conn.query_row("SELECT count(*) FROM pragma_table_info('_otps') WHERE name = 'expires'", [], |r| r.get(0)).expect("query");
        assert_eq!(otp_columns, 0, "_otps is PocketBase's");
        assert!(has_table(&conn, "_vb_jobs").expect("has_table"), "positive control: vaultbase's own tables are there");
    }

    #[test]
    fn an_older_vaultbase_database_does_not_get_pocketbases_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = older_vaultbase_db(&dir.path().join("d.db"));
        run(&mut conn).expect("run");
        conn.execute("DELETE FROM _vb_migrations WHERE file = '1763769599_pocketbase_layout'", []).expect("unmark");
        assert_eq!(run(&mut conn).expect("rerun"), ["1763769599_pocketbase_layout"], "positive control: the step runs");
        assert!(!is_pocketbase(&conn).expect("is_pocketbase"), "but leaves a database with tables alone");
        assert!(!has_table(&conn, "_migrations").expect("has_table"));
    }

    #[test]
    fn runs_once_and_then_nothing_is_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer)
            .expect("open");
        assert_eq!(pending(&conn).expect("pending").len(), MIGRATIONS.len());
        assert_eq!(run(&mut conn).expect("run").len(), MIGRATIONS.len());
        assert!(pending(&conn).expect("pending").is_empty());
        assert!(run(&mut conn).expect("rerun").is_empty(), "a second run applies nothing");
    }

    #[test]
    fn an_older_data_dir_has_its_rows_moved_out_of_pocketbases_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = older_vaultbase_db(&dir.path().join("d.db"));
        run(&mut conn).expect("run");
        // As vaultbase before `_vb_migrations` left it, plus a JS migration's row.
        conn.execute_batch(
            "CREATE TABLE _migrations (file VARCHAR(255) PRIMARY KEY NOT NULL, applied INTEGER NOT NULL);
             INSERT INTO _migrations SELECT file, applied FROM _vb_migrations;
             INSERT INTO _migrations VALUES ('1700000000_js.js', 1);
             DROP TABLE _vb_migrations;",
        )
        .expect("rewind");
        assert_eq!(pending(&conn).expect("pending").len(), MIGRATIONS.len(), "positive control: nothing recorded where it is looked for");
        assert!(run(&mut conn).expect("run").is_empty(), "nothing is applied twice");
        let rows: Vec<String> =
            conn.prepare("SELECT file FROM _migrations").expect("prepare").query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
        assert_eq!(rows, ["1700000000_js.js"], "only the JS migration's row stays in _migrations");
        assert!(pending(&conn).expect("pending").is_empty());
        assert!(!is_pocketbase(&conn).expect("is_pocketbase"), "a vaultbase dir is not taken for PocketBase's");
    }

    #[test]
    fn the_default_users_collection_is_only_made_on_a_data_dir_without_collections_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = older_vaultbase_db(&dir.path().join("d.db"));
        run(&mut conn).expect("run");
        let users = |conn: &Connection| -> bool {
            conn.query_row("SELECT EXISTS(SELECT 1 FROM _collections WHERE id = '_pb_users_auth_')", [], |r| r.get(0)).expect("query")
        };
        assert!(users(&conn), "a fresh data dir gets it");
        // An older data dir, upgraded: its own collection and no `users`.
        let older = "DROP TABLE users; DELETE FROM _collections WHERE id = '_pb_users_auth_';
                     DELETE FROM _vb_migrations WHERE file = '1763769606_default_users';";
        conn.execute_batch(older).expect("rewind");
        conn.execute_batch("INSERT INTO _collections (id, name) VALUES ('pbc_1', 'posts')").expect("own collection");
        assert_eq!(run(&mut conn).expect("run"), ["1763769606_default_users"]);
        assert!(!users(&conn), "an upgraded data dir is left as it was");
        conn.execute_batch("DELETE FROM _collections WHERE id = 'pbc_1'; DELETE FROM _vb_migrations WHERE file = '1763769606_default_users';")
            .expect("rewind");
        run(&mut conn).expect("run");
        assert!(users(&conn), "positive control: without collections of its own, it is made");
    }

    #[test]
    fn webhooks_move_into_the_system_collection_with_their_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        run(&mut conn).expect("run");
        assert!(has_table(&conn, "_webhooks").expect("has_table") && !has_table(&conn, "_vb_webhooks").expect("has_table"), "a new dir");
        // A data dir from before the step, with a webhook defined the old way.
        conn.execute_batch(
            "DROP TABLE _webhooks; DELETE FROM _collections WHERE name = '_webhooks';
             DELETE FROM _vb_migrations WHERE file = '1763769640_webhooks_collection';",
        )
        .expect("rewind");
        let old = JOBS_SQL.split("CREATE TABLE _vb_webhooks ").nth(1).and_then(|t| t.split("CREATE TABLE").next()).expect("the old table");
        conn.execute_batch(&format!("CREATE TABLE _vb_webhooks {old}")).expect("old table");
        conn.execute(
            "INSERT INTO _vb_webhooks (id, name, url, events, secret, headers, active, failures, paused_reason)
             VALUES ('wh0123456789abcd', 'old', 'https://example.com/h', '[\"posts.*\"]', 'the old secret 0123', '{\"X-A\":\"b\"}', 0, 10, 'paused')",
            [],
        )
        .expect("old row");
        let version = |c: &Connection| -> i64 { c.query_row("SELECT version FROM _vb_versions WHERE name = 'collections'", [], |r| r.get(0)).expect("version") };
        let before = version(&conn);
        assert_eq!(run(&mut conn).expect("run"), ["1763769640_webhooks_collection"]);
        let row: (String, String, String, String, i64, i64, String) = conn
            .query_row("SELECT name, url, CAST(events AS TEXT), secret, active, failures, pausedReason FROM _webhooks WHERE id = 'wh0123456789abcd'", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .expect("moved row");
        assert_eq!(row, ("old".into(), "https://example.com/h".into(), "[\"posts.*\"]".into(), "the old secret 0123".into(), 0, 10, "paused".into()));
        assert!(!has_table(&conn, "_vb_webhooks").expect("has_table"), "the old table is gone");
        assert_eq!(version(&conn), before + 1, "collection caches reload");
        let system: bool = conn.query_row("SELECT system FROM _collections WHERE name = '_webhooks'", [], |r| r.get(0)).expect("collection");
        assert!(system);
    }
}
