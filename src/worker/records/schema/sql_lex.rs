//! A small lexer for SQLite statement text: words and identifiers in every quoting SQLite
//! accepts (bare, `"x"`, `` `x` ``, `[x]`), string and blob literals, comments, whitespace and
//! punctuation, each with its exact source text. Schema code uses it to find column and table
//! names in index statements and view queries without mistaking a quoted name or a literal for
//! something else.
//!
//! It must not judge whether SQL is valid or safe, nor execute anything: SQLite does that. An
//! unterminated quote simply runs to the end of the text.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare word (keyword, identifier or number) or a quoted identifier.
    Ident,
    /// A `'…'` string or `x'…'` blob literal.
    Literal,
    /// Spaces, tabs and newlines.
    Space,
    /// `-- …` to the end of the line, or `/* … */`.
    Comment,
    /// Any other single character: `(`, `)`, `,`, `.`, operators.
    Punct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    /// The token exactly as written.
    pub text: &'a str,
}

impl Token<'_> {
    /// Whether this is an identifier written in one of SQLite's quotings.
    pub fn is_quoted(&self) -> bool {
        self.kind == Kind::Ident && self.text.starts_with(['"', '`', '['])
    }

    /// The name an identifier token stands for, quotes removed and doubled quotes undone.
    pub fn name(&self) -> String {
        let t = self.text;
        let inner = |open: char, close: char| -> String {
            let body = t.strip_prefix(open).unwrap_or(t);
            let body = body.strip_suffix(close).unwrap_or(body);
            if open == '[' {
                body.to_owned()
            } else {
                body.replace(&format!("{close}{close}"), &close.to_string())
            }
        };
        match t.chars().next() {
            Some('"') => inner('"', '"'),
            Some('`') => inner('`', '`'),
            Some('[') => inner('[', ']'),
            _ => t.to_owned(),
        }
    }

    /// Whether this is the bare keyword `word` (ASCII case-insensitive). A quoted
    /// identifier is never a keyword.
    pub fn is_keyword(&self, word: &str) -> bool {
        self.kind == Kind::Ident && !self.is_quoted() && self.text.eq_ignore_ascii_case(word)
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.starts_with(c)
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Byte length of a quoted run starting at `s[0]` and closed by `close`, where a doubled
/// `close` (when `doubling`) stands for one character; the whole rest when unterminated.
fn quoted_len(s: &str, close: char, doubling: bool) -> usize {
    let mut iter = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = iter.next() {
        if c == close {
            if doubling && iter.peek().map(|&(_, n)| n) == Some(close) {
                iter.next();
                continue;
            }
            return i + c.len_utf8();
        }
    }
    s.len()
}

/// Splits `sql` into tokens; concatenating their texts gives `sql` back.
pub fn tokens(sql: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let (kind, len) = if c.is_whitespace() {
            (Kind::Space, rest.find(|x: char| !x.is_whitespace()).unwrap_or(rest.len()))
        } else if rest.starts_with("--") {
            (Kind::Comment, rest.find('\n').unwrap_or(rest.len()))
        } else if let Some(body) = rest.strip_prefix("/*") {
            (Kind::Comment, body.find("*/").map(|e| e + 4).unwrap_or(rest.len()))
        } else if c == '\'' {
            (Kind::Literal, quoted_len(rest, '\'', true))
        } else if (c == 'x' || c == 'X') && rest[1..].starts_with('\'') {
            (Kind::Literal, 1 + quoted_len(&rest[1..], '\'', true))
        } else if c == '"' || c == '`' {
            (Kind::Ident, quoted_len(rest, c, true))
        } else if c == '[' {
            (Kind::Ident, quoted_len(rest, ']', false))
        } else if is_word_char(c) {
            (Kind::Ident, rest.find(|x: char| !is_word_char(x)).unwrap_or(rest.len()))
        } else {
            (Kind::Punct, c.len_utf8())
        };
        let (text, tail) = rest.split_at(len.max(1).min(rest.len()));
        out.push(Token { kind, text });
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quoting_is_one_identifier_and_text_round_trips() {
        let sql = "SELECT \"a\"\"b\", `c``d`, [e f], g_1, 'it''s' -- note\n/* x */ FROM t";
        let toks = tokens(sql);
        assert_eq!(toks.iter().map(|t| t.text).collect::<String>(), sql);
        let names: Vec<String> = toks.iter().filter(|t| t.kind == Kind::Ident).map(|t| t.name()).collect();
        assert_eq!(names, ["SELECT", "a\"b", "c`d", "e f", "g_1", "FROM", "t"]);
        assert!(toks.iter().any(|t| t.kind == Kind::Literal && t.text == "'it''s'"));
        assert_eq!(toks.iter().filter(|t| t.kind == Kind::Comment).count(), 2);
    }

    #[test]
    fn unterminated_quotes_run_to_the_end() {
        let toks = tokens("a \"b");
        assert_eq!(toks.last().map(|t| (t.kind, t.text)), Some((Kind::Ident, "\"b")));
    }
}
