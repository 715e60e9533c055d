//! Password hashing: argon2id in PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! run on tokio's blocking pool behind a semaphore, with a dummy verification for unknown users.
//!
//! It owns the hash format, its cost parameters and how much hashing may run at once. It must
//! not run argon2 on an async runtime thread (tens of milliseconds of memory-hard work would
//! stall every connection on that thread), must not let a login flood queue unbounded work on
//! the blocking pool, and must not make the time of a failed login depend on whether the
//! account exists. Length and pattern rules of a collection's `password` field belong to the
//! caller; the constants below are PocketBase's defaults and limits for it.
//!
//! PocketBase stores bcrypt hashes (`$2a$10$…`). Both formats are verified, whichever a row
//! holds; new hashes are written in the pool's [`HashScheme`]: bcrypt on a data dir PocketBase
//! made (so PocketBase, opening the dir again, can still verify every password), argon2id on
//! one vaultbase made. The worker sets the scheme once at start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// argon2id memory cost, in KiB (19 MiB: OWASP's minimum recommendation for argon2id).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// argon2id passes over memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2id lanes. One: the crate computes lanes sequentially anyway, and parallelism comes
/// from running several logins at once, bounded by the pool.
pub const ARGON2_LANES: u32 = 1;
/// Length of the stored hash output, in bytes.
pub const ARGON2_OUTPUT_BYTES: usize = 32;
/// Length of the random salt, in bytes (the PHC recommendation).
pub const SALT_BYTES: usize = 16;

/// PocketBase's default minimum length of an auth collection's password, in characters.
pub const PASSWORD_MIN_CHARS_DEFAULT: usize = 8;
/// PocketBase's upper bound for a password field's `max` (and the value `max: 0` stands for),
/// in characters. It comes from bcrypt's 72-byte input limit; argon2 has none, but keeping it
/// keeps vaultbase's validation answers identical to PocketBase's.
pub const PASSWORD_MAX_CHARS_LIMIT: usize = 71;
/// Longest password input hashed or verified, in bytes: 71 characters of up to 4 UTF-8 bytes.
/// Longer input is refused before it costs anything.
pub const MAX_PASSWORD_BYTES: usize = PASSWORD_MAX_CHARS_LIMIT * 4;

/// The costliest stored hash that will be verified: memory in KiB and passes. Far above what
/// this module writes; the bound stops one corrupt or hostile row from allocating gigabytes.
const MAX_STORED_MEMORY_KIB: u32 = 256 * 1024;
const MAX_STORED_ITERATIONS: u32 = 16;

/// What an unknown user's login is checked against, so it costs one argon2 verification like a
/// known user's. Same parameters as [`hash`] writes (a test holds them equal); its password was
/// random and discarded, and its result is ignored anyway.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$EWND0cVWnq4kg6hF5NftCQ$LlkEgOQnE5YqFn2bDZznQ/LQwXBEVhYiMqgDUy1TvO8";

/// bcrypt cost written on a PocketBase data dir: PocketBase's own (it hashes with cost 10).
pub const BCRYPT_COST: u32 = 10;

/// The costliest stored bcrypt hash verified (PocketBase writes 10; each step doubles the work).
const MAX_STORED_BCRYPT_COST: u32 = 14;

/// bcrypt's dummy for unknown users, made once (cost [`BCRYPT_COST`], random password).
static BCRYPT_DUMMY_HASH: std::sync::LazyLock<Option<String>> = std::sync::LazyLock::new(|| {
    let mut pw = [0u8; 32];
    getrandom::getrandom(&mut pw).ok()?;
    bcrypt::hash_with_result(pw, BCRYPT_COST).ok().map(|h| h.format_for_version(bcrypt::Version::TwoA))
});

/// Which format new password hashes are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// vaultbase's own: argon2id, PHC string.
    Argon2id,
    /// PocketBase's: bcrypt `$2a$`, cost [`BCRYPT_COST`].
    Bcrypt,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("bcrypt: {0}")]
    Bcrypt(bcrypt::BcryptError),
    #[error("the stored bcrypt hash has cost {cost}, over the limit")]
    StoredBcryptTooCostly { cost: u32 },
    #[error("the password is empty")]
    Empty,
    #[error("the password is {len} bytes, over the {MAX_PASSWORD_BYTES}-byte limit")]
    TooLong { len: usize },
    #[error("gathering randomness for the salt: {0}")]
    Salt(getrandom::Error),
    #[error("building argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("hashing the password: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the stored password hash is malformed or not argon2: {0}")]
    StoredHash(argon2::password_hash::Error),
    #[error("the stored password hash asks for {memory_kib} KiB and {iterations} passes, over the limit")]
    StoredHashTooCostly { memory_kib: u32, iterations: u32 },
    #[error("password hashing needs a tokio runtime")]
    NoRuntime,
    #[error("the password pool is closed")]
    Closed,
    #[error("the password hashing task failed: {0}")]
    Task(tokio::task::JoinError),
}

/// Whether `password` fits a password field with `min_chars` and `max_chars` (PocketBase's
/// `min`/`max` options; `max_chars` 0 or above 71 means 71), counting characters as
/// PocketBase does, not bytes.
pub fn length_ok(password: &str, min_chars: usize, max_chars: usize) -> bool {
    let max = if max_chars == 0 { PASSWORD_MAX_CHARS_LIMIT } else { max_chars.min(PASSWORD_MAX_CHARS_LIMIT) };
    let n = password.chars().count();
    n >= min_chars.max(1) && n <= max
}

/// Runs password hashing for one process: at most `permits` hashes or verifications at once,
/// each on tokio's blocking pool. Cheap to clone; clones share the bound.
#[derive(Clone)]
pub struct PasswordPool {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    size: usize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    /// argon2 computations started since the pool was made (hashes and verifications).
    started: AtomicUsize,
    /// True when new hashes are bcrypt ([`HashScheme::Bcrypt`]).
    bcrypt: std::sync::atomic::AtomicBool,
}

impl PasswordPool {
    /// A pool that runs at most `permits` (at least 1) argon2 computations at once.
    pub fn new(permits: usize) -> PasswordPool {
        let size = permits.clamp(1, Semaphore::MAX_PERMITS);
        PasswordPool {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(size)),
                size,
                in_flight: AtomicUsize::new(0),
                peak_in_flight: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                bcrypt: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Sets the format new hashes are written in (verification accepts both regardless).
    pub fn set_scheme(&self, scheme: HashScheme) {
        self.inner.bcrypt.store(scheme == HashScheme::Bcrypt, Ordering::Relaxed);
    }

    /// The format new hashes are written in.
    pub fn scheme(&self) -> HashScheme {
        if self.inner.bcrypt.load(Ordering::Relaxed) {
            HashScheme::Bcrypt
        } else {
            HashScheme::Argon2id
        }
    }

    /// One permit per CPU: a flood of logins then saturates the cores it can use and waits in
    /// line for the rest, instead of filling the blocking pool (512 threads by default, each
    /// with 19 MiB of argon2 memory) and starving everything else of CPU.
    pub fn sized_to_cpus() -> PasswordPool {
        PasswordPool::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    /// How many computations may run at once.
    pub fn permits(&self) -> usize {
        self.inner.size
    }

    /// Computations running now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// The most computations ever seen running at once (never above [`Self::permits`]).
    pub fn peak_in_flight(&self) -> usize {
        self.inner.peak_in_flight.load(Ordering::Relaxed)
    }

    /// argon2 computations started so far; lets tests prove that a refused request paid none.
    pub fn started(&self) -> usize {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// A new PHC-format argon2id hash of `password`, with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_input(password)?;
        let password = password.to_owned();
        match self.scheme() {
            HashScheme::Argon2id => self.run(move || hash_blocking(password.as_bytes())).await?,
            HashScheme::Bcrypt => self.run(move || bcrypt_hash_blocking(password.as_bytes())).await?,
        }
    }

    /// Whether `password` matches the stored `hash`. `Ok(false)` for a wrong, empty or
    /// over-long password; `Err` when the stored hash itself is unusable. The comparison is
    /// argon2's constant-time one.
    pub async fn verify(&self, hash: String, password: &str) -> Result<bool, PasswordError> {
        if check_input(password).is_err() {
            return Ok(false);
        }
        let password = password.to_owned();
        self.run(move || verify_blocking(&hash, password.as_bytes())).await?
    }

    /// The login check: `hash` is the stored hash of the account found by the identity, or
    /// None when there is no such account. Always costs exactly one argon2 verification with
    /// the current parameters (the dummy's when there is no account, or when the stored hash is
    /// unusable), so the response time does not tell which emails exist. True only for an
    /// existing account and the right password.
    pub async fn verify_or_dummy(&self, hash: Option<String>, password: &str) -> bool {
        // Refused on the input alone, before any lookup-dependent work: same for every account.
        if check_input(password).is_err() {
            return false;
        }
        let exists = hash.is_some();
        let dummy = match self.scheme() {
            HashScheme::Bcrypt => BCRYPT_DUMMY_HASH.as_deref().unwrap_or(DUMMY_HASH),
            HashScheme::Argon2id => DUMMY_HASH,
        };
        let stored = hash.unwrap_or_else(|| dummy.to_owned());
        let password = password.to_owned();
        let outcome = self
            .run(move || match verify_blocking(&stored, password.as_bytes()) {
                Ok(matched) => Ok(matched),
                Err(e) => {
                    // An unusable stored hash fails fast; spend the time a real check would.
                    let _ = verify_blocking(dummy, password.as_bytes());
                    Err(e)
                }
            })
            .await;
        match outcome {
            Ok(Ok(matched)) => exists && matched,
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(error = %e, account_exists = exists, "password check failed");
                false
            }
        }
    }

    /// Runs `job` on the blocking pool once a permit is free.
    async fn run<T, F>(&self, job: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PasswordError::NoRuntime)?;
        let permit = Arc::clone(&self.inner.permits).acquire_owned().await.map_err(|_| PasswordError::Closed)?;
        let inner = Arc::clone(&self.inner);
        inner.started.fetch_add(1, Ordering::Relaxed);
        runtime
            .spawn_blocking(move || {
                // Moved in, not held by the caller: if the request is dropped mid-hash the CPU
                // stays busy until the job ends, so the permit must stay taken until then too.
                let _permit = permit;
                let _gauge = InFlight::enter(&inner);
                job()
            })
            .await
            .map_err(PasswordError::Task)
    }
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("permits", &self.permits())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Counts a running job in the gauges; the count drops when the job ends, even by panic.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> InFlight<'a> {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn check_input(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong { len: password.len() });
    }
    Ok(())
}

/// The configured hasher. Explicit parameters, not the crate's defaults, so an upgrade of the
/// crate cannot change what is written.
fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, Some(ARGON2_OUTPUT_BYTES))
        .map_err(PasswordError::Params)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The hash, computed on the calling thread: only for callers already off the async runtime
/// (a migration run before any worker exists).
pub(crate) fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::getrandom(&mut salt).map_err(PasswordError::Salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    let hash = hasher()?.hash_password(password, &salt).map_err(PasswordError::Hash)?;
    Ok(hash.to_string())
}

fn bcrypt_hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let parts = bcrypt::hash_with_result(password, BCRYPT_COST).map_err(PasswordError::Bcrypt)?;
    // `$2a$`, the prefix PocketBase (Go's x/crypto/bcrypt) writes.
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

fn verify_blocking(stored: &str, password: &[u8]) -> Result<bool, PasswordError> {
    if stored.starts_with("$2") {
        // `$2a$NN$…`: bound the cost before paying 2^NN rounds for one corrupt or hostile row.
        let cost = stored.get(4..6).and_then(|c| c.parse::<u32>().ok()).unwrap_or(0);
        if cost > MAX_STORED_BCRYPT_COST {
            return Err(PasswordError::StoredBcryptTooCostly { cost });
        }
        return bcrypt::verify(password, stored).map_err(PasswordError::Bcrypt);
    }
    let parsed = PasswordHash::new(stored).map_err(PasswordError::StoredHash)?;
    // Verification uses the parameters written in the stored hash, so bound them first.
    let params = Params::try_from(&parsed).map_err(PasswordError::StoredHash)?;
    if params.m_cost() > MAX_STORED_MEMORY_KIB || params.t_cost() > MAX_STORED_ITERATIONS {
        return Err(PasswordError::StoredHashTooCostly { memory_kib: params.m_cost(), iterations: params.t_cost() });
    }
    match hasher()?.verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::StoredHash(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Generous: argon2 in a debug build on a busy 2-core machine.
    const TEST_DEADLINE: Duration = Duration::from_secs(120);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_then_verify_round_trip_and_wrong_password() {
        let pool = PasswordPool::new(2);
        let hash = pool.hash("correct horse").await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(pool.verify(hash.clone(), "correct horse").await.expect("verify"));
        assert!(!pool.verify(hash.clone(), "correct horsE").await.expect("verify"));
        assert!(!pool.verify(hash.clone(), "").await.expect("empty"));
        assert!(!pool.verify(hash.clone(), &"x".repeat(MAX_PASSWORD_BYTES + 1)).await.expect("long"));
        // A fresh salt each time.
        assert_ne!(hash, pool.hash("correct horse").await.expect("hash"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_or_dummy_is_true_only_for_an_account_and_its_password() {
        let pool = PasswordPool::new(2);
        let hash = pool.hash("hunter22").await.expect("hash");
        assert!(pool.verify_or_dummy(Some(hash.clone()), "hunter22").await);
        assert!(!pool.verify_or_dummy(Some(hash), "hunter23").await);
        assert!(!pool.verify_or_dummy(None, "hunter22").await);
        assert!(!pool.verify_or_dummy(None, "").await);
        // Malformed, bcrypt of another password and absurdly costly stored hashes: false, no panic.
        for stored in [
            "",
            "not a hash",
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=99999,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
        ] {
            assert!(!pool.verify_or_dummy(Some(stored.to_owned()), "hunter22").await, "{stored}");
        }
        assert!(matches!(
            pool.verify("$2a$10$abc".to_owned(), "hunter22").await,
            Err(PasswordError::Bcrypt(_))
        ));
        assert!(matches!(
            pool.verify("$2a$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".to_owned(), "hunter22").await,
            Err(PasswordError::StoredBcryptTooCostly { cost: 31 })
        ));
    }

    #[test]
    fn dummy_hash_uses_the_parameters_real_hashes_use() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("dummy parses");
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(parsed.version, Some(Version::V0x13.into()));
        let params = Params::try_from(&parsed).expect("params");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost(), params.output_len()),
            (ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, Some(ARGON2_OUTPUT_BYTES)),
            "regenerate DUMMY_HASH after changing the argon2 parameters"
        );
        let salt = parsed.salt.expect("salt");
        let mut buf = [0u8; 64];
        assert_eq!(salt.decode_b64(&mut buf).expect("salt b64").len(), SALT_BYTES);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_refuses_empty_and_over_long_passwords() {
        let pool = PasswordPool::new(1);
        assert!(matches!(pool.hash("").await, Err(PasswordError::Empty)));
        // The byte cap is a backstop; 72 characters are the caller's to refuse (`length_ok`).
        let long = "😀".repeat(PASSWORD_MAX_CHARS_LIMIT + 1);
        assert!(matches!(pool.hash(&long).await, Err(PasswordError::TooLong { .. })));
        // The longest valid password (71 four-byte characters) is accepted.
        let widest = "😀".repeat(PASSWORD_MAX_CHARS_LIMIT);
        assert_eq!(widest.len(), MAX_PASSWORD_BYTES);
        let hash = pool.hash(&widest).await.expect("hash");
        assert!(pool.verify(hash, &widest).await.expect("verify"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bcrypt_hashes_verify_and_the_bcrypt_scheme_writes_them() {
        let pool = PasswordPool::new(1);
        // Written by PocketBase 0.40.6 for "Passw0rd!1".
        let pb = "$2a$10$p8swqQi1RTs/gKaSpbHZC.d8kwY/LqgALHSc4iE9mTAMV4mxZzyNW".to_owned();
        assert!(pool.verify(pb.clone(), "Passw0rd!1").await.expect("verify"));
        assert!(!pool.verify(pb.clone(), "Passw0rd!2").await.expect("verify"));
        assert!(pool.verify_or_dummy(Some(pb), "Passw0rd!1").await);
        assert!(pool.hash("x1234567").await.expect("hash").starts_with("$argon2id$"), "default scheme");
        pool.set_scheme(HashScheme::Bcrypt);
        let h = pool.hash("x1234567").await.expect("hash");
        assert!(h.starts_with("$2a$10$"), "{h}");
        assert!(pool.verify(h, "x1234567").await.expect("verify"));
        assert!(!pool.verify_or_dummy(None, "x1234567").await, "unknown user under the bcrypt dummy");
    }

    #[test]
    fn length_rules_follow_pocketbase() {
        assert!(length_ok("12345678", PASSWORD_MIN_CHARS_DEFAULT, 0));
        assert!(!length_ok("1234567", PASSWORD_MIN_CHARS_DEFAULT, 0));
        assert!(length_ok(&"a".repeat(71), PASSWORD_MIN_CHARS_DEFAULT, 0));
        assert!(!length_ok(&"a".repeat(72), PASSWORD_MIN_CHARS_DEFAULT, 0));
        assert!(!length_ok(&"a".repeat(72), PASSWORD_MIN_CHARS_DEFAULT, 500));
        assert!(!length_ok(&"a".repeat(11), PASSWORD_MIN_CHARS_DEFAULT, 10));
        // Characters, not bytes.
        assert!(length_ok(&"é".repeat(8), PASSWORD_MIN_CHARS_DEFAULT, 8));
        assert!(!length_ok("", 0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_semaphore_bounds_real_verifications() {
        let pool = PasswordPool::new(2);
        let hash = pool.hash("password1").await.expect("hash");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..10 {
            let (pool, hash) = (pool.clone(), hash.clone());
            tasks.spawn(async move {
                match i % 3 {
                    0 => pool.verify_or_dummy(Some(hash), "password1").await,
                    1 => !pool.verify_or_dummy(Some(hash), "password2").await,
                    _ => !pool.verify_or_dummy(None, "password1").await,
                }
            });
        }
        let all = tokio::time::timeout(TEST_DEADLINE, async {
            let mut ok = 0;
            while let Some(r) = tasks.join_next().await {
                ok += usize::from(r.expect("task"));
            }
            ok
        })
        .await
        .expect("verifications finished");
        assert_eq!(all, 10, "every verification gave the expected answer");
        assert!(pool.peak_in_flight() <= pool.permits(), "peak {}", pool.peak_in_flight());
        assert!(pool.peak_in_flight() >= 1);
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_semaphore_admits_exactly_its_permit_count() {
        // Each job waits at a barrier for a partner: two must run at once (or this would time
        // out) and the semaphore must keep it at two, so the peak is exactly 2.
        const PERMITS: usize = 2;
        const JOBS: usize = 16;
        let pool = PasswordPool::new(PERMITS);
        let barrier = Arc::new(std::sync::Barrier::new(PERMITS));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..JOBS {
            let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
            tasks.spawn(async move {
                pool.run(move || {
                    barrier.wait();
                    // Linger so that a third job, were it admitted, would overlap.
                    std::thread::sleep(Duration::from_millis(10));
                })
                .await
            });
        }
        tokio::time::timeout(TEST_DEADLINE, async {
            while let Some(r) = tasks.join_next().await {
                r.expect("task").expect("job");
            }
        })
        .await
        .expect("jobs finished");
        assert_eq!(pool.peak_in_flight(), PERMITS);
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_caller_keeps_the_permit_until_the_job_ends() {
        let pool = PasswordPool::new(1);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let runner = pool.clone();
        let first = tokio::spawn(async move {
            runner
                .run(move || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv_timeout(TEST_DEADLINE);
                })
                .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv_timeout(TEST_DEADLINE))
            .await
            .expect("join")
            .expect("first job started");
        first.abort();
        let _ = first.await;
        // The aborted caller's job still runs, so no permit is free.
        assert_eq!(pool.inner.permits.available_permits(), 0);
        assert_eq!(pool.in_flight(), 1);
        release_tx.send(()).expect("release");
        let second = tokio::time::timeout(TEST_DEADLINE, pool.run(|| 7)).await.expect("second ran");
        assert_eq!(second.expect("job"), 7);
    }

    #[test]
    fn pool_sizes() {
        assert_eq!(PasswordPool::new(0).permits(), 1);
        assert_eq!(PasswordPool::new(3).permits(), 3);
        assert!(PasswordPool::sized_to_cpus().permits() >= 1);
    }

    #[test]
    fn no_runtime_is_an_error_not_a_panic() {
        let pool = PasswordPool::new(1);
        let outside = poll_to_completion(pool.run(|| ()));
        assert!(matches!(outside, Err(PasswordError::NoRuntime)));
    }

    /// Polls a future to completion without a tokio runtime (only for futures that finish
    /// without waking, like the `NoRuntime` path).
    fn poll_to_completion<F: std::future::Future>(fut: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
