//! Random identifiers in PocketBase's formats: record ids (15 × `[a-z0-9]`) and auth-record
//! `tokenKey`s (50 × `[a-zA-Z0-9]`), drawn from the operating system's CSPRNG.
//!
//! It owns only the drawing of characters. It must not decide where the strings are stored or
//! whether an id is free (a colliding insert fails on the primary key and the caller retries),
//! and it must never fall back to a weaker generator: a predictable tokenKey would let anyone
//! forge tokens, so running out of OS randomness is an error, not a degraded mode.

/// Length of a record id, in characters (PocketBase's `id` field: min = max = 15).
pub const ID_LENGTH: usize = 15;
/// The characters of a record id (PocketBase's autogenerate pattern `[a-z0-9]{15}`).
pub const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Length of an auth record's `tokenKey`, in characters (autogenerate `[a-zA-Z0-9]{50}`).
pub const TOKEN_KEY_LENGTH: usize = 50;
/// The characters of a `tokenKey`.
pub const TOKEN_KEY_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Random bytes fetched per `getrandom` call: one call covers an id or a tokenKey nearly always
/// (rejection discards at most 1.6 % of bytes for these alphabets).
const RANDOM_BATCH_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum RandomError {
    #[error("reading randomness from the operating system: {0}")]
    Os(getrandom::Error),
    #[error("a random-string alphabet must hold 1 to 256 ASCII characters, got {len} bytes")]
    Alphabet { len: usize },
}

/// A new record id: 15 characters of `[a-z0-9]`.
pub fn new_id() -> Result<String, RandomError> {
    random_string(ID_ALPHABET, ID_LENGTH)
}

/// A new `tokenKey`: 50 characters of `[a-zA-Z0-9]`. Replacing a record's tokenKey revokes
/// every token issued to it (see `jwt`).
pub fn new_token_key() -> Result<String, RandomError> {
    random_string(TOKEN_KEY_ALPHABET, TOKEN_KEY_LENGTH)
}

/// `len` characters, each drawn uniformly from `alphabet` (1 to 256 ASCII bytes).
///
/// Uniform by rejection sampling: a byte is used only if it falls below the largest multiple of
/// the alphabet size that fits in 256, so `byte % size` favours no character. (Plain
/// `byte % 36` would make `a`–`d` appear 8/7 as often as the rest.)
pub fn random_string(alphabet: &[u8], len: usize) -> Result<String, RandomError> {
    let size = alphabet.len();
    // ASCII only, so every byte is one `char` and the output is valid UTF-8 by construction.
    if size == 0 || size > 256 || !alphabet.is_ascii() {
        return Err(RandomError::Alphabet { len: size });
    }
    // Bytes at or above `limit` are rejected. For size 256 the limit is 256: nothing is rejected.
    let limit = 256 - (256 % size);
    let mut out = String::with_capacity(len);
    let mut batch = [0u8; RANDOM_BATCH_BYTES];
    while out.len() < len {
        getrandom::getrandom(&mut batch).map_err(RandomError::Os)?;
        for &byte in &batch {
            let byte = usize::from(byte);
            if byte >= limit {
                continue;
            }
            // `get` rather than indexing: the bound is proved above, but no panic path at all.
            if let Some(&c) = alphabet.get(byte % size) {
                out.push(char::from(c));
            }
            if out.len() == len {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_pocketbase_length_and_alphabet() {
        for _ in 0..200 {
            let id = new_id().expect("id");
            assert_eq!(id.len(), ID_LENGTH);
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
        }
    }

    #[test]
    fn token_keys_have_the_pocketbase_length_and_alphabet() {
        for _ in 0..200 {
            let key = new_token_key().expect("tokenKey");
            assert_eq!(key.len(), TOKEN_KEY_LENGTH);
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
        }
    }

    #[test]
    fn draws_differ() {
        assert_ne!(new_id().expect("a"), new_id().expect("b"));
        assert_ne!(new_token_key().expect("a"), new_token_key().expect("b"));
    }

    /// Bounds of `mean ± 6σ` for a binomial count of `n` draws with probability `p` each.
    fn six_sigma(n: f64, p: f64) -> (f64, f64) {
        let (mean, sd) = (n * p, (n * p * (1.0 - p)).sqrt());
        (mean - 6.0 * sd, mean + 6.0 * sd)
    }

    #[test]
    fn every_character_of_the_alphabet_appears_and_none_dominates() {
        // The failure this guards against is `byte % 36` without rejection: 256 = 7 × 36 + 4,
        // so a–d come up with probability 8/256 each and the rest 7/256. Per character that
        // shift (2.8 % → 3.1 %) is too small to tell apart at a sample size a unit test can
        // afford, but the four together take 12.5 % instead of 11.1 %. With 200 000 draws
        // the uniform count of a–d is 22 222 ± 141 (1σ) and the biased one 25 000 ± 148, so
        // their ±6σ ranges are ~1 000 apart: a correct generator fails about once in 10^9
        // runs and a biased one never passes.
        const DRAWS: usize = 200_000;
        let n = DRAWS as f64;
        let size = ID_ALPHABET.len() as f64;
        let s = random_string(ID_ALPHABET, DRAWS).expect("draw");
        assert_eq!(s.len(), DRAWS);
        let mut counts = [0usize; 256];
        for b in s.bytes() {
            counts[usize::from(b)] += 1;
        }
        // The ranges really are apart (a guard on the arithmetic above).
        let favoured = (256 % ID_ALPHABET.len()) as f64;
        let (uniform_low, uniform_high) = six_sigma(n, favoured / size);
        let (biased_low, _) = six_sigma(n, favoured * (256.0 / size).ceil() / 256.0);
        assert!(uniform_high < biased_low, "sample too small: {uniform_high} >= {biased_low}");

        let head: usize = ID_ALPHABET[..favoured as usize].iter().map(|&c| counts[usize::from(c)]).sum();
        assert!(
            (uniform_low..=uniform_high).contains(&(head as f64)),
            "the first {favoured} characters were drawn {head} times; uniform is {uniform_low:.0}..={uniform_high:.0}, modulo bias ≥ {biased_low:.0}"
        );
        let (low, high) = six_sigma(n, 1.0 / size);
        for &c in ID_ALPHABET {
            let k = counts[usize::from(c)] as f64;
            assert!((low..=high).contains(&k), "{} drawn {k} times, expected {low:.0}..={high:.0}", char::from(c));
        }
    }

    #[test]
    fn bad_alphabets_are_errors_not_panics() {
        assert!(matches!(random_string(b"", 5), Err(RandomError::Alphabet { len: 0 })));
        assert!(random_string(&[b'a'; 257], 5).is_err());
        assert!(random_string("é".as_bytes(), 5).is_err());
        assert_eq!(random_string(b"x", 4).expect("one letter"), "xxxx");
        assert_eq!(random_string(ID_ALPHABET, 0).expect("empty"), "");
        let all: Vec<u8> = (0u8..128).chain(0u8..128).collect();
        assert_eq!(random_string(&all, 10).expect("256 symbols").len(), 10);
    }
}
