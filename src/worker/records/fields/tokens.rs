//! PocketBase's `tools/tokenizer`: splits text at separator characters, except inside quotes
//! (`'`, `"`, `` ` ``) or — unless told to ignore them — parentheses, so that
//! `title,content:excerpt(200,true)` is two tokens. A run of separators counts as one;
//! a backslash keeps the next quote or parenthesis from counting. Unbalanced groups are an
//! error, as in PocketBase.

use super::FieldsError;

/// Whitespace that the tokenizer skips before a token.
fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n')
}

fn is_quote(c: char) -> bool {
    matches!(c, '\'' | '"' | '`')
}

/// All tokens of `text` (each without its separators).
pub(super) fn scan(text: &str, separators: &[char], ignore_parens: bool) -> Result<Vec<String>, FieldsError> {
    let chars: Vec<char> = text.chars().collect();
    let is_sep = |c: char| separators.contains(&c);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        // PocketBase skips a leading whitespace run; any other separator starts an empty token.
        if is_whitespace(c) {
            i += 1;
            while chars.get(i).is_some_and(|&c| is_sep(c)) {
                i += 1;
            }
            if i >= chars.len() {
                // Its reader still yields the token it was about to read: an empty one.
                tokens.push(String::new());
                break;
            }
        }
        let mut token = String::new();
        let mut parens = 0usize;
        let mut quote: Option<char> = None;
        let mut prev: Option<char> = None;
        while let Some(&c) = chars.get(i) {
            i += 1;
            if prev != Some('\\') {
                if c == '(' && quote.is_none() && !ignore_parens {
                    parens += 1;
                } else if c == ')' && parens > 0 && quote.is_none() && !ignore_parens {
                    parens -= 1;
                } else if is_quote(c) {
                    if quote == Some(c) {
                        quote = None;
                    } else if quote.is_none() {
                        quote = Some(c);
                    }
                }
            }
            if is_sep(c) && parens == 0 && quote.is_none() {
                break;
            }
            prev = Some(c);
            token.push(c);
        }
        if parens > 0 || quote.is_some() {
            return Err(FieldsError::Unbalanced(token));
        }
        while chars.get(i).is_some_and(|&c| is_sep(c)) {
            i += 1;
        }
        tokens.push(token);
    }
    Ok(tokens)
}
