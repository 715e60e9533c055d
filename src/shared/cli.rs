//! The command line: argv → [`Command`]. Pure; the binary prints and exits.
//!
//! Hand-written rather than a parser crate: the surface is four subcommands and two flags, and
//! we want exact control over the exit code (2) and over a hidden `worker` role that `--help`
//! does not advertise.

use super::config::{Flags, ENV_VARS};

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One worker in this process with the in-process bus (also the default).
    Serve(Flags),
    /// A supervisor with `VAULTBASE_WORKERS` worker processes.
    Cluster(Flags),
    /// Hidden: a worker spawned by the supervisor.
    Worker { id: u32, flags: Flags },
    /// `superuser upsert EMAIL PASSWORD` / `superuser delete EMAIL`, as PocketBase.
    Superuser { action: SuperuserAction, flags: Flags },
    /// `encryption rotate [--dir DIR] [--batch-rows N]`: re-encrypt under
    /// `VAULTBASE_ENCRYPTION_NEW_KEY`, N rows per write transaction.
    EncryptionRotate { flags: Flags, batch_rows: Option<usize> },
    /// `logs [--dir DIR] [--since T] [--until T] [--filter EXPR]`: search the JSONL archive.
    Logs(LogsArgs),
    /// `backup --to PATH|s3://…|r2://… [--gzip] [--quiet]`: an online snapshot of `data.db`.
    Backup { to: String, gzip: bool, quiet: bool, flags: Flags },
    /// `restore FILE`: offline, swaps a backup in.
    Restore { file: String, flags: Flags },
    /// `migrate up | down [N] | create NAME | collections | history-sync`, as PocketBase.
    Migrate { action: MigrateAction, flags: Flags },
    Version,
    Help,
}

/// What `vaultbase superuser …` should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuperuserAction {
    Upsert { email: String, password: String },
    /// PocketBase's `superuser create`: fails when the email is taken.
    Create { email: String, password: String },
    /// PocketBase's `superuser update`: fails when there is no such superuser.
    Update { email: String, password: String },
    Delete { email: String },
    /// PocketBase's `superuser otp`: refused with a message (not supported yet).
    Otp { email: String },
}

/// What `vaultbase logs` searches: the archive of the data dir `flags.dir` (or the
/// environment's), between two times, with a filter in PocketBase's language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsArgs {
    pub flags: Flags,
    pub since: Option<String>,
    pub until: Option<String>,
    pub filter: String,
}

/// What `vaultbase migrate …` should do with the JS migrations (`pb_migrations/*.js`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrateAction {
    /// Apply every pending migration, in file name order.
    Up,
    /// Revert the last N applied JS migrations (default 1).
    Down(usize),
    /// Write a blank migration `<unix seconds>_<name>.js`.
    Create(String),
    /// Write a migration holding a snapshot of every collection.
    Collections,
    /// Forget applied JS migrations whose file no longer exists.
    HistorySync,
}

/// A command line that cannot be understood; printed with the usage, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, UsageError> {
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("superuser") {
        args.next();
        return parse_superuser(args.collect());
    }
    if args.peek().map(String::as_str) == Some("encryption") {
        args.next();
        return parse_encryption(args.collect());
    }
    if args.peek().map(String::as_str) == Some("logs") {
        args.next();
        return parse_logs(args.collect());
    }
    if matches!(args.peek().map(String::as_str), Some("backup") | Some("restore")) {
        let sub = args.next().unwrap_or_default();
        return parse_backup(&sub, args.collect());
    }
    if args.peek().map(String::as_str) == Some("migrate") {
        args.next();
        return parse_migrate(args.collect());
    }
    let sub = match args.peek().map(String::as_str) {
        Some("serve") | Some("cluster") | Some("worker") => args.next(),
        Some("--version") | Some("-v") | Some("version") => return Ok(Command::Version),
        Some("--help") | Some("-h") | Some("help") => return Ok(Command::Help),
        _ => None,
    };
    let mut flags = Flags::default();
    let mut id: Option<u32> = None;
    while let Some(arg) = args.next() {
        let (name, inline) = split_flag(&arg);
        let mut value = |name: &str| -> Result<String, UsageError> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => Err(UsageError(format!("{name} needs a value"))),
            }
        };
        match name.as_str() {
            "--http" => flags.http = Some(value("--http")?),
            "--dir" => flags.dir = Some(value("--dir")?),
            "--migrationsDir" => flags.migrations_dir = Some(value("--migrationsDir")?),
            // Accepted for PocketBase command lines; vaultbase never writes migration files itself.
            "--automigrate" => match inline.as_deref() {
                None | Some("true") | Some("false") | Some("1") | Some("0") => {}
                Some(other) => return Err(UsageError(format!("--automigrate={other:?}: expected true or false"))),
            },
            "--hooksDir" => flags.hooks.dir = Some(value("--hooksDir")?),
            // A bare `--hooksWatch` means true, as Go's boolean flags.
            "--hooksWatch" => flags.hooks.watch = Some(inline.clone().unwrap_or_else(|| "true".into())),
            "--hooksPool" => flags.hooks.pool = Some(value("--hooksPool")?),
            "--publicDir" => flags.public_dir = Some(value("--publicDir")?),
            "--origins" => flags.origins = Some(value("--origins")?),
            "--encryptionEnv" => flags.encryption_env = Some(value("--encryptionEnv")?),
            // A bare `--indexFallback` means true, as Go's boolean flags do.
            "--indexFallback" => flags.index_fallback = Some(inline.clone().unwrap_or_else(|| "true".into())),
            "--id" if sub.as_deref() == Some("worker") => {
                let v = value("--id")?;
                id = Some(v.parse().map_err(|_| UsageError(format!("--id {v:?}: expected a worker number")))?);
            }
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-v" => return Ok(Command::Version),
            other => return Err(UsageError(format!("unknown argument {other:?}"))),
        }
    }
    Ok(match sub.as_deref() {
        None | Some("serve") => Command::Serve(flags),
        Some("cluster") => Command::Cluster(flags),
        _ => Command::Worker { id: id.ok_or_else(|| UsageError("worker needs --id N".into()))?, flags },
    })
}

fn parse_superuser(args: Vec<String>) -> Result<Command, UsageError> {
    let mut flags = Flags::default();
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.split_once('=') {
            Some(("--dir", v)) => flags.dir = Some(v.to_owned()),
            Some(("--http", v)) => flags.http = Some(v.to_owned()),
            _ if arg == "--dir" => flags.dir = Some(it.next().ok_or_else(|| UsageError("--dir needs a value".into()))?),
            _ if arg == "--http" => flags.http = Some(it.next().ok_or_else(|| UsageError("--http needs a value".into()))?),
            _ if arg.starts_with("--") => return Err(UsageError(format!("unknown argument {arg:?}"))),
            _ => positional.push(arg),
        }
    }
    let action = match positional.as_slice() {
        [verb, email, password] if verb == "upsert" => SuperuserAction::Upsert { email: email.clone(), password: password.clone() },
        [verb, email, password] if verb == "create" => SuperuserAction::Create { email: email.clone(), password: password.clone() },
        [verb, email, password] if verb == "update" => SuperuserAction::Update { email: email.clone(), password: password.clone() },
        [verb, email] if verb == "delete" => SuperuserAction::Delete { email: email.clone() },
        [verb, email] if verb == "otp" => SuperuserAction::Otp { email: email.clone() },
        _ => {
            return Err(UsageError(
                "usage: vaultbase superuser create|update|upsert EMAIL PASSWORD | superuser delete|otp EMAIL [--dir DIR]".into(),
            ))
        }
    };
    Ok(Command::Superuser { action, flags })
}

fn parse_encryption(args: Vec<String>) -> Result<Command, UsageError> {
    let usage = || UsageError("usage: vaultbase encryption rotate [--dir DIR] [--batch-rows N]".into());
    let mut it = args.into_iter();
    if it.next().as_deref() != Some("rotate") {
        return Err(usage());
    }
    let mut flags = Flags::default();
    let mut batch_rows = None;
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next()).ok_or_else(|| UsageError(format!("{name} needs a value")));
        match name.as_str() {
            "--dir" => flags.dir = Some(value()?),
            "--batch-rows" => {
                let v = value()?;
                batch_rows = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| UsageError(format!("--batch-rows {v:?}: expected a whole number of rows, 1 or more")))?);
            }
            _ => return Err(usage()),
        }
    }
    Ok(Command::EncryptionRotate { flags, batch_rows })
}

fn parse_logs(args: Vec<String>) -> Result<Command, UsageError> {
    let mut out = LogsArgs::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_flag(&arg);
        let mut value = || inline.clone().or_else(|| it.next()).ok_or_else(|| UsageError(format!("{name} needs a value")));
        match name.as_str() {
            "--dir" => out.flags.dir = Some(value()?),
            "--since" => out.since = Some(value()?),
            "--until" => out.until = Some(value()?),
            "--filter" => out.filter = value()?,
            _ => return Err(UsageError(format!("unknown argument {arg:?} (usage: vaultbase logs [--dir DIR] [--since T] [--until T] [--filter EXPR])"))),
        }
    }
    Ok(Command::Logs(out))
}

/// `--name=value` → ("--name", Some("value")); anything else (including `-x=y` and a bare
/// value containing `=`) is the argument itself with no inline value.
fn split_flag(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
        _ => (arg.to_owned(), None),
    }
}

/// `backup …` / `restore …`: `--to` and `--dir` also as `--x=v`; `--quiet` also `-q`.
fn parse_backup(sub: &str, args: Vec<String>) -> Result<Command, UsageError> {
    let mut flags = Flags::default();
    let (mut to, mut gzip, mut quiet, mut positional) = (None, false, false, Vec::new());
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_flag(&arg);
        let mut value = |name: &str| inline.clone().or_else(|| it.next()).ok_or_else(|| UsageError(format!("{name} needs a value")));
        match name.as_str() {
            "--dir" => flags.dir = Some(value("--dir")?),
            "--to" if sub == "backup" => to = Some(value("--to")?),
            "--gzip" if sub == "backup" && inline.is_none() => gzip = true,
            "--quiet" | "-q" if sub == "backup" && inline.is_none() => quiet = true,
            other if other.starts_with('-') => return Err(UsageError(format!("unknown argument {other:?}"))),
            _ => positional.push(arg),
        }
    }
    match (sub, positional.as_slice()) {
        ("backup", []) => match to {
            Some(to) => Ok(Command::Backup { to, gzip, quiet, flags }),
            None => Err(UsageError("usage: vaultbase backup --to PATH|s3://BUCKET/KEY|r2://BUCKET/KEY [--gzip] [--quiet] [--dir DIR]".into())),
        },
        ("restore", [file]) => Ok(Command::Restore { file: file.clone(), flags }),
        _ => Err(UsageError(format!("usage: vaultbase {}", if sub == "backup" { "backup --to DEST [--gzip] [--quiet] [--dir DIR]" } else { "restore FILE [--dir DIR]" }))),
    }
}

fn parse_migrate(args: Vec<String>) -> Result<Command, UsageError> {
    let mut flags = Flags::default();
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_flag(&arg);
        let mut value = |name: &str| inline.clone().or_else(|| it.next()).ok_or_else(|| UsageError(format!("{name} needs a value")));
        match name.as_str() {
            "--dir" => flags.dir = Some(value("--dir")?),
            "--migrationsDir" => flags.migrations_dir = Some(value("--migrationsDir")?),
            "--automigrate" => {}
            _ if name.starts_with("--") => return Err(UsageError(format!("unknown argument {arg:?}"))),
            _ => positional.push(arg),
        }
    }
    let usage = || UsageError("usage: vaultbase migrate up | down [N] | create NAME | collections | history-sync [--dir DIR] [--migrationsDir DIR]".into());
    let action = match positional.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["up"] => MigrateAction::Up,
        ["down"] => MigrateAction::Down(1),
        ["down", n] => match n.parse::<usize>() {
            Ok(n) if n >= 1 => MigrateAction::Down(n),
            _ => return Err(UsageError(format!("migrate down {n:?}: expected a positive number of migrations"))),
        },
        ["create", name] if !name.trim().is_empty() => MigrateAction::Create((*name).to_owned()),
        ["collections"] => MigrateAction::Collections,
        ["history-sync"] => MigrateAction::HistorySync,
        _ => return Err(usage()),
    };
    Ok(Command::Migrate { action, flags })
}

/// The `--help` text, listing every environment variable with its default.
pub fn help_text() -> String {
    let mut out = String::from(
        "vaultbase: a self-hosted backend in one binary (PocketBase-compatible API)\n\n\
         USAGE:\n  vaultbase [serve] [--http HOST:PORT] [--dir DIR]   one process (the default)\n  \
         vaultbase cluster [--http HOST:PORT] [--dir DIR]   supervisor + VAULTBASE_WORKERS workers on one port\n  \
         vaultbase superuser upsert EMAIL PASSWORD [--dir DIR]   create or update a superuser (also: create, update)\n  \
         vaultbase superuser delete EMAIL [--dir DIR]\n  \
         vaultbase encryption rotate [--dir DIR] [--batch-rows N]   re-encrypt under VAULTBASE_ENCRYPTION_NEW_KEY, online\n  \
         vaultbase logs [--dir DIR] [--since T] [--until T] [--filter EXPR]   search the JSONL log archive\n  \
         vaultbase backup --to PATH|s3://B/K|r2://B/K [--gzip] [--quiet] [--dir DIR]   online snapshot of data.db\n  \
         vaultbase restore FILE [--dir DIR]   offline: swap in a backup (.zip, .db or .db.gz)\n  \
         vaultbase migrate up | down [N] | create NAME | collections | history-sync [--dir DIR] [--migrationsDir DIR]\n  \
         vaultbase --version\n  vaultbase --help\n\n\
         FLAGS (override the environment):\n  --http HOST:PORT   address to listen on (VAULTBASE_HOST, VAULTBASE_PORT)\n  \
         --dir DIR          data directory (VAULTBASE_DATA_DIR)\n  \
         --migrationsDir DIR  JS migrations directory (VAULTBASE_MIGRATIONS_DIR)\n  \
         --hooksDir DIR     pb_hooks directory (VAULTBASE_HOOKS_DIR)\n  \
         --hooksWatch=BOOL  reload hooks on change (VAULTBASE_HOOKS_WATCH)\n  \
         --hooksPool N      prewarmed JS threads (VAULTBASE_HOOKS_POOL)\n  \
         --publicDir DIR    static files served at / (VAULTBASE_PUBLIC_DIR) [pb_public beside the data dir]\n  \
         --indexFallback[=BOOL]   missing public paths answer index.html (VAULTBASE_INDEX_FALLBACK) [true]\n  \
         --origins A,B      CORS allowed origins (VAULTBASE_ORIGINS) [*]\n  \
         --encryptionEnv NAME   variable holding PocketBase's settings key (VAULTBASE_ENCRYPTION_ENV)\n\nENVIRONMENT (default in brackets):\n",
    );
    for var in ENV_VARS {
        out.push_str(&format!("  {:<26} {} [{}]\n", var.name, var.help, var.default));
    }
    out.push_str(
        "\nSIGNALS:\n  SIGTERM, SIGINT   drain: stop accepting, finish in-flight requests, exit 0\n  \
         a second signal   exit at once\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn no_arguments_means_serve() {
        assert_eq!(p(&[]), Ok(Command::Serve(Flags::default())));
    }

    #[test]
    fn flags_in_both_spellings() {
        let want = Flags { http: Some("127.0.0.1:1".into()), dir: Some("d".into()), ..Default::default() };
        assert_eq!(p(&["cluster", "--http", "127.0.0.1:1", "--dir", "d"]), Ok(Command::Cluster(want.clone())));
        assert_eq!(p(&["--http=127.0.0.1:1", "--dir=d"]), Ok(Command::Serve(want)));
    }

    #[test]
    fn pocketbase_hook_flags() {
        let Ok(Command::Serve(flags)) = p(&["serve", "--hooksDir", "h", "--hooksWatch=false", "--hooksPool=4"]) else { panic!("serve") };
        assert_eq!(flags.hooks, crate::shared::config::HookFlags { dir: Some("h".into()), watch: Some("false".into()), pool: Some("4".into()) });
        let Ok(Command::Cluster(flags)) = p(&["cluster", "--hooksWatch"]) else { panic!("cluster") };
        assert_eq!(flags.hooks.watch.as_deref(), Some("true"), "a bare boolean flag is true, as Go's");
    }

    #[test]
    fn worker_needs_an_id() {
        assert_eq!(p(&["worker", "--id", "3"]), Ok(Command::Worker { id: 3, flags: Flags::default() }));
        assert!(p(&["worker"]).is_err());
        assert!(p(&["worker", "--id", "x"]).is_err());
        assert!(p(&["serve", "--id", "1"]).is_err(), "--id belongs to the hidden worker role only");
    }

    #[test]
    fn superuser_commands() {
        assert_eq!(
            p(&["superuser", "upsert", "a@b.c", "pw", "--dir", "d"]),
            Ok(Command::Superuser {
                action: SuperuserAction::Upsert { email: "a@b.c".into(), password: "pw".into() },
                flags: Flags { http: None, dir: Some("d".into()), ..Default::default() }
            })
        );
        assert_eq!(
            p(&["superuser", "delete", "a@b.c"]),
            Ok(Command::Superuser { action: SuperuserAction::Delete { email: "a@b.c".into() }, flags: Flags::default() })
        );
        assert_eq!(
            p(&["superuser", "create", "a@b.c", "pw"]),
            Ok(Command::Superuser { action: SuperuserAction::Create { email: "a@b.c".into(), password: "pw".into() }, flags: Flags::default() })
        );
        assert_eq!(
            p(&["superuser", "update", "a@b.c", "pw"]),
            Ok(Command::Superuser { action: SuperuserAction::Update { email: "a@b.c".into(), password: "pw".into() }, flags: Flags::default() })
        );
        assert!(p(&["superuser", "upsert", "a@b.c"]).is_err());
        assert!(p(&["superuser", "nuke"]).is_err());
    }

    #[test]
    fn encryption_rotate() {
        let flags = Flags { dir: Some("d".into()), ..Flags::default() };
        assert_eq!(p(&["encryption", "rotate", "--dir", "d"]), Ok(Command::EncryptionRotate { flags: flags.clone(), batch_rows: None }));
        assert_eq!(p(&["encryption", "rotate", "--dir=d", "--batch-rows", "5"]), Ok(Command::EncryptionRotate { flags, batch_rows: Some(5) }));
        assert!(p(&["encryption", "rotate", "--batch-rows", "0"]).is_err());
        assert!(p(&["encryption"]).is_err());
        assert!(p(&["encryption", "rotate", "--http", "x"]).is_err());
    }

    #[test]
    fn logs_command() {
        assert_eq!(
            p(&["logs", "--since", "2024-01-01", "--filter=data.status >= 500", "--dir", "d"]),
            Ok(Command::Logs(LogsArgs {
                flags: Flags { dir: Some("d".into()), ..Flags::default() },
                since: Some("2024-01-01".into()),
                until: None,
                filter: "data.status >= 500".into()
            }))
        );
        assert_eq!(p(&["logs"]), Ok(Command::Logs(LogsArgs::default())));
        assert!(p(&["logs", "--filter"]).is_err());
        assert!(p(&["logs", "--nope"]).is_err());
    }

    #[test]
    fn backup_and_restore_commands() {
        assert_eq!(
            p(&["backup", "--to", "s3://b/k.db", "--gzip", "-q", "--dir=d"]),
            Ok(Command::Backup { to: "s3://b/k.db".into(), gzip: true, quiet: true, flags: Flags { dir: Some("d".into()), ..Flags::default() } })
        );
        assert_eq!(p(&["backup", "--to=/x.db"]), Ok(Command::Backup { to: "/x.db".into(), gzip: false, quiet: false, flags: Flags::default() }));
        assert!(p(&["backup"]).is_err(), "--to is required");
        assert!(p(&["backup", "--to", "x", "--nope"]).is_err());
        assert_eq!(p(&["restore", "f.zip", "--dir", "d"]), Ok(Command::Restore { file: "f.zip".into(), flags: Flags { dir: Some("d".into()), ..Flags::default() } }));
        assert!(p(&["restore"]).is_err());
        assert!(p(&["restore", "a", "b"]).is_err());
        assert!(p(&["restore", "a", "--gzip"]).is_err());
    }

    #[test]
    fn migrate_commands() {
        let dir = |d: &str| Flags { dir: Some(d.into()), ..Flags::default() };
        assert_eq!(p(&["migrate", "up", "--dir", "d"]), Ok(Command::Migrate { action: MigrateAction::Up, flags: dir("d") }));
        assert_eq!(p(&["migrate", "down"]), Ok(Command::Migrate { action: MigrateAction::Down(1), flags: Flags::default() }));
        assert_eq!(p(&["migrate", "down", "3"]), Ok(Command::Migrate { action: MigrateAction::Down(3), flags: Flags::default() }));
        assert_eq!(
            p(&["migrate", "create", "add posts", "--migrationsDir=m"]),
            Ok(Command::Migrate {
                action: MigrateAction::Create("add posts".into()),
                flags: Flags { migrations_dir: Some("m".into()), ..Flags::default() }
            })
        );
        assert!(p(&["migrate", "down", "0"]).is_err());
        assert!(p(&["migrate", "sideways"]).is_err());
        assert!(p(&["migrate"]).is_err());
        assert_eq!(
            p(&["serve", "--migrationsDir", "m", "--automigrate=false"]),
            Ok(Command::Serve(Flags { migrations_dir: Some("m".into()), ..Flags::default() }))
        );
        assert!(p(&["serve", "--automigrate=maybe"]).is_err());
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert!(p(&["--nope"]).is_err());
        let public = Flags { public_dir: Some("www".into()), index_fallback: Some("false".into()), ..Flags::default() };
        assert_eq!(p(&["serve", "--publicDir", "www", "--indexFallback=false"]), Ok(Command::Serve(public)));
        assert_eq!(p(&["--indexFallback"]), Ok(Command::Serve(Flags { index_fallback: Some("true".into()), ..Flags::default() })));
        assert!(p(&["serve", "--http"]).is_err());
    }

    #[test]
    fn help_lists_every_variable() {
        let help = help_text();
        for var in ENV_VARS {
            assert!(help.contains(var.name));
        }
        assert!(!help.contains("worker --id"), "the worker role is hidden");
    }
}
