//! Random values from a text field's `autogeneratePattern` (the record `id`'s `[a-z0-9]{15}`,
//! `tokenKey`'s `[a-zA-Z0-9]{50}`, and user-defined ones).
//!
//! Only a small, predictable subset of regex syntax is generated from: literal characters,
//! escaped metacharacters, `\d`, `\w`, character classes of single characters and ranges, each
//! with an optional `{n}` or `{n,m}`; `^`/`$` at the ends are allowed and ignored. Anything else
//! (alternation, groups, `*`, `+`, `?`, `.`, negated classes) is refused by
//! [`check_autogenerate_pattern`], which collection definitions call, so a stored pattern never
//! fails at write time. Randomness comes from the OS (`getrandom`), drawn without modulo bias.

use crate::worker::records::schema::field::TextOptions;
use crate::worker::records::schema::Invalid;

/// Longest value a pattern may generate, in characters (PocketBase's default text maximum).
pub const MAX_AUTOGENERATE_CHARS: usize = 5000;
/// Samples generated when checking a definition against its own min/max/pattern.
const DEFINITION_SAMPLES: usize = 10;
/// Random bytes fetched from the OS per refill.
const RANDOM_CHUNK_BYTES: usize = 256;

/// Why a pattern cannot be generated from, or generation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutogenError {
    #[error("unsupported autogenerate pattern: {0}")]
    Unsupported(String),
    #[error("the autogenerate pattern can produce more than {MAX_AUTOGENERATE_CHARS} characters")]
    TooLong,
    #[error("the system random source failed")]
    Random,
}

/// One generated position: a set of characters repeated between `min` and `max` times.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    chars: Vec<char>,
    min: usize,
    max: usize,
}

/// A parsed generator pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    parts: Vec<Part>,
}

const DIGITS: &str = "0123456789";
const WORD: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const METACHARS: &str = "\\.+*?()|[]{}^$-/";

fn class_escape(c: char) -> Option<Vec<char>> {
    match c {
        'd' => Some(DIGITS.chars().collect()),
        'w' => Some(WORD.chars().collect()),
        c if METACHARS.contains(c) => Some(vec![c]),
        _ => None,
    }
}

impl Generator {
    pub fn parse(pattern: &str) -> Result<Generator, AutogenError> {
        let unsupported = |why: &str| AutogenError::Unsupported(why.to_owned());
        let mut chars: Vec<char> = pattern.chars().collect();
        if chars.first() == Some(&'^') {
            chars.remove(0);
        }
        if chars.last() == Some(&'$') && !(chars.len() >= 2 && chars.get(chars.len() - 2) == Some(&'\\')) {
            chars.pop();
        }
        let mut parts = Vec::new();
        let mut total_max: usize = 0;
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            let set = match c {
                '[' => {
                    if chars.get(i) == Some(&'^') {
                        return Err(unsupported("negated character classes"));
                    }
                    let mut set = Vec::new();
                    loop {
                        let c = *chars.get(i).ok_or_else(|| unsupported("unclosed character class"))?;
                        i += 1;
                        if c == ']' {
                            break;
                        }
                        let lo = if c == '\\' {
                            let e = *chars.get(i).ok_or_else(|| unsupported("dangling escape"))?;
                            i += 1;
                            let escaped = class_escape(e).ok_or_else(|| unsupported("unknown escape in a class"))?;
                            if escaped.len() > 1 {
                                set.extend(escaped);
                                continue;
                            }
                            escaped.first().copied().unwrap_or(e)
                        } else {
                            c
                        };
                        // A range `a-z`, unless the `-` is the last character of the class.
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|n| *n != ']') {
                            let hi = *chars.get(i + 1).ok_or_else(|| unsupported("unclosed range"))?;
                            if hi == '\\' || hi == '[' {
                                return Err(unsupported("escapes as range ends"));
                            }
                            i += 2;
                            if hi < lo {
                                return Err(unsupported("reversed range"));
                            }
                            let span = (hi as u32 - lo as u32) as usize;
                            if span > MAX_CLASS_SIZE {
                                return Err(unsupported("character range too large"));
                            }
                            set.extend((lo as u32..=hi as u32).filter_map(char::from_u32));
                        } else {
                            set.push(lo);
                        }
                    }
                    set.sort_unstable();
                    set.dedup();
                    if set.is_empty() {
                        return Err(unsupported("empty character class"));
                    }
                    set
                }
                '\\' => {
                    let e = *chars.get(i).ok_or_else(|| unsupported("dangling escape"))?;
                    i += 1;
                    class_escape(e).ok_or_else(|| unsupported("unknown escape"))?
                }
                '.' | '*' | '+' | '?' | '(' | ')' | '|' | '{' | '}' | ']' | '^' | '$' => {
                    return Err(AutogenError::Unsupported(format!("'{c}' is not supported")));
                }
                c => vec![c],
            };
            let (min, max) = if chars.get(i) == Some(&'{') {
                let close = chars
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|c| *c == '}'))
                    .ok_or_else(|| unsupported("unclosed quantifier"))?
                    + i;
                let body: String = chars.get(i + 1..close).map(|s| s.iter().collect()).unwrap_or_default();
                i = close + 1;
                parse_quantifier(&body).ok_or_else(|| unsupported("quantifiers must be {n} or {n,m}"))?
            } else {
                (1, 1)
            };
            if matches!(chars.get(i), Some('*' | '+' | '?' | '{')) {
                return Err(unsupported("repeated quantifiers"));
            }
            total_max = total_max.saturating_add(max);
            if total_max > MAX_AUTOGENERATE_CHARS {
                return Err(AutogenError::TooLong);
            }
            parts.push(Part { chars: set, min, max });
        }
        if total_max == 0 {
            return Err(unsupported("the pattern generates nothing"));
        }
        Ok(Generator { parts })
    }

    /// A new random value.
    pub fn generate(&self) -> Result<String, AutogenError> {
        let mut rng = OsRandom::default();
        let mut out = String::new();
        for part in &self.parts {
            let count = if part.max > part.min { part.min + rng.below(part.max - part.min + 1)? } else { part.min };
            for _ in 0..count {
                let idx = rng.below(part.chars.len())?;
                if let Some(c) = part.chars.get(idx) {
                    out.push(*c);
                }
            }
        }
        Ok(out)
    }
}

/// Largest number of characters one class range may span (keeps a `[\u{0}-\u{10FFFF}]` from
/// allocating millions of entries).
const MAX_CLASS_SIZE: usize = 65_536;

fn parse_quantifier(body: &str) -> Option<(usize, usize)> {
    let parse = |s: &str| -> Option<usize> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match body.split_once(',') {
        None => parse(body).map(|n| (n, n)),
        Some((lo, hi)) => {
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            (lo <= hi).then_some((lo, hi))
        }
    }
}

/// Draws unbiased random indexes from OS randomness, refilling a small buffer as needed.
#[derive(Default)]
struct OsRandom {
    buf: Vec<u8>,
}

impl OsRandom {
    fn next_u32(&mut self) -> Result<u32, AutogenError> {
        if self.buf.len() < 4 {
            let mut chunk = [0u8; RANDOM_CHUNK_BYTES];
            getrandom::getrandom(&mut chunk).map_err(|_| AutogenError::Random)?;
            self.buf.extend_from_slice(&chunk);
        }
        let tail = self.buf.split_off(self.buf.len() - 4);
        let bytes: [u8; 4] = tail.try_into().map_err(|_| AutogenError::Random)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// A uniform index in `0..n` (n ≥ 1), by rejecting the top slice of the u32 range that
    /// would favour small results.
    fn below(&mut self, n: usize) -> Result<usize, AutogenError> {
        let n = u32::try_from(n).map_err(|_| AutogenError::TooLong)?;
        if n <= 1 {
            return Ok(0);
        }
        let zone = u32::MAX - (u32::MAX % n);
        loop {
            let r = self.next_u32()?;
            if r < zone {
                return Ok((r % n) as usize);
            }
        }
    }
}

/// One random value from `pattern`.
pub fn generate(pattern: &str) -> Result<String, AutogenError> {
    Generator::parse(pattern)?.generate()
}

/// The definition-time check of a pattern alone: PocketBase's
/// `validation_invalid_autogenerate_pattern`.
pub fn check_autogenerate_pattern(pattern: &str) -> Result<(), Invalid> {
    if pattern.is_empty() {
        return Ok(()); // no pattern: nothing is generated
    }
    Generator::parse(pattern).map(|_| ()).map_err(|e| Invalid::new("validation_invalid_autogenerate_pattern", sentence(&e.to_string())))
}

/// The full definition-time check of a text field's `autogeneratePattern`: the pattern is
/// supported, and sample values pass the field's own min/max/pattern (PocketBase runs ten).
pub fn check_text_autogenerate(opts: &TextOptions) -> Result<(), Invalid> {
    if opts.autogenerate_pattern.is_empty() {
        return Ok(());
    }
    let gen = Generator::parse(&opts.autogenerate_pattern)
        .map_err(|e| Invalid::new("validation_invalid_autogenerate_pattern", sentence(&e.to_string())))?;
    for _ in 0..DEFINITION_SAMPLES {
        let sample = gen.generate().map_err(|e| Invalid::new("validation_invalid_autogenerate_pattern", sentence(&e.to_string())))?;
        if super::validate::check_text(opts, &sample).is_err() {
            return Err(Invalid::new(
                "validation_invalid_autogenerate_pattern_value",
                format!("The provided autogenerate pattern could produce invalid field values, ex.: {sample:?}."),
            ));
        }
    }
    Ok(())
}

/// PocketBase's "sentenize": capital first letter, final full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_patterns_generate_matching_values() {
        let id = generate("[a-z0-9]{15}").expect("id");
        assert_eq!(id.len(), 15);
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
        let key = generate("[a-zA-Z0-9]{50}").expect("tokenKey");
        assert_eq!(key.len(), 50);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
        assert_ne!(generate("[a-z0-9]{15}").expect("id"), id, "random, not fixed");
    }

    #[test]
    fn supported_subset() {
        let cases = [
            ("^[a-z]{5}$", 5, 5),
            ("abc-[0-9]{3}", 7, 7),
            (r"\d{4}", 4, 4),
            (r"[\w]{8}", 8, 8),
            (r"[a-c_\-]{2,6}", 2, 6),
            (r"x\.y", 3, 3),
            ("[é-ë]{3}", 3, 3),
        ];
        for (pattern, min, max) in cases {
            for _ in 0..5 {
                let v = generate(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
                let n = v.chars().count();
                assert!((min..=max).contains(&n), "{pattern} -> {v}");
                let re = regex::Regex::new(&format!("^(?:{})$", pattern.trim_start_matches('^').trim_end_matches('$'))).expect("regex");
                assert!(re.is_match(&v), "{pattern} -> {v}");
            }
        }
    }

    #[test]
    fn unsupported_patterns_are_definition_errors() {
        for bad in [
            "^$", "[a-z]+", "[a-z]*", "a?", "(ab){2}", "a|b", ".{5}", "[^a]{3}", "[a-z", "[]",
            "[z-a]{2}", "a{2,1}", "a{,3}", "a{3,}", "a{x}", r"\s{3}", "a{2}{3}", "\\", "a{99999999999999999999}",
            "[a-z]{5001}", "[\u{0}-\u{10FFFF}]",
        ] {
            let err = check_autogenerate_pattern(bad).expect_err(bad);
            assert_eq!(err.code, "validation_invalid_autogenerate_pattern", "{bad}");
            assert!(err.message.ends_with('.'));
        }
        assert!(check_autogenerate_pattern("[a-z0-9]{15}").is_ok());
        assert!(check_autogenerate_pattern("").is_ok(), "empty means no autogenerate");
    }

    #[test]
    fn field_definitions_are_checked_against_their_own_rules() {
        let ok = TextOptions { min: 15, max: 15, pattern: "^[a-z0-9]+$".into(), autogenerate_pattern: "[a-z0-9]{15}".into(), ..Default::default() };
        assert!(check_text_autogenerate(&ok).is_ok());
        let too_short = TextOptions { min: 20, autogenerate_pattern: "[a-z]{5}".into(), ..Default::default() };
        assert_eq!(check_text_autogenerate(&too_short).map_err(|e| e.code), Err("validation_invalid_autogenerate_pattern_value"));
        let wrong_chars = TextOptions { pattern: "^[0-9]+$".into(), autogenerate_pattern: "[a-z]{5}".into(), ..Default::default() };
        assert!(check_text_autogenerate(&wrong_chars).is_err());
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut rng = OsRandom::default();
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let i = rng.below(3).expect("random");
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}
