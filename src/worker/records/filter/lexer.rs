//! Tokenizer for the filter language: turns the input into tokens one at a time, on demand, so
//! that the first error in source order is the one reported. It owns the lexical rules
//! (identifiers, numbers, quoted text, operator runs, comments); it must not decide what an
//! identifier means or whether tokens form a valid expression — that is the parser's job.
//!
//! Every significant character is ASCII, so the lexer walks bytes; non-ASCII input can only
//! appear inside text literals and comments (where it is copied whole) or as an error. Byte
//! positions therefore always sit on UTF-8 boundaries, and all slicing goes through `get` so a
//! mistake would surface as an error, not a panic.

use super::ast::Op;
use super::{FilterError, FilterErrorKind};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind<'a> {
    /// A raw identifier such as `author.name:lower` or `@request.auth.id`, already checked
    /// for the lexical rules but not yet classified.
    Ident(&'a str),
    /// A function name immediately followed by `(`; the `(` is consumed with it.
    CallStart(&'a str),
    /// Quoted text with its quote escapes removed.
    Text(String),
    Number(f64),
    Sign(Op),
    And,
    Or,
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'a> {
    pub kind: TokenKind<'a>,
    /// Byte offset of the token's first character.
    pub offset: usize,
}

impl TokenKind<'_> {
    /// How the token is named in "expected …, found …" messages.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("identifier {name:?}"),
            TokenKind::CallStart(name) => format!("call to {name}()"),
            TokenKind::Text(_) => "a text literal".to_string(),
            TokenKind::Number(n) => format!("number {n}"),
            TokenKind::Sign(op) => format!("operator \"{}\"", op.symbol()),
            TokenKind::And => "\"&&\"".to_string(),
            TokenKind::Or => "\"||\"".to_string(),
            TokenKind::LParen => "\"(\"".to_string(),
            TokenKind::RParen => "\")\"".to_string(),
            TokenKind::Comma => "\",\"".to_string(),
            TokenKind::Eof => "end of input".to_string(),
        }
    }
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || matches!(b, b'_' | b'@' | b'#')
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':')
}

fn is_sign_char(b: u8) -> bool {
    matches!(b, b'=' | b'?' | b'!' | b'>' | b'<' | b'~')
}

fn is_join_char(b: u8) -> bool {
    matches!(b, b'&' | b'|')
}

/// fexpr's whitespace set. A carriage return is *not* in it: PocketBase rejects it, and so
/// do we, so a rule accepted here also works there.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    fn byte_at(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or_default()
    }

    /// Advances while `pred` holds and returns where it stopped.
    fn scan_while(&self, mut at: usize, pred: impl Fn(u8) -> bool) -> usize {
        while self.byte_at(at).is_some_and(&pred) {
            at += 1;
        }
        at
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(b) = self.byte_at(start) else {
            return Ok(Token { kind: TokenKind::Eof, offset: start });
        };
        let kind = match b {
            b'(' => self.single(TokenKind::LParen),
            b')' => self.single(TokenKind::RParen),
            b',' => self.single(TokenKind::Comma),
            b'\'' | b'"' => self.text(b)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ if is_ident_start(b) => self.identifier()?,
            _ if is_sign_char(b) => self.sign()?,
            _ if is_join_char(b) => self.join()?,
            _ => {
                let ch = self.src.get(start..).and_then(|rest| rest.chars().next()).unwrap_or('\u{FFFD}');
                return Err(FilterError::new(start, FilterErrorKind::UnexpectedChar(ch)));
            }
        };
        Ok(Token { kind, offset: start })
    }

    fn single(&mut self, kind: TokenKind<'a>) -> TokenKind<'a> {
        self.pos += 1;
        kind
    }

    /// Skips whitespace and `//` comments. A lone `/` has no other meaning, so it is an error
    /// here rather than an "unexpected character" later.
    fn skip_trivia(&mut self) -> Result<(), FilterError> {
        loop {
            self.pos = self.scan_while(self.pos, is_space);
            if self.byte_at(self.pos) != Some(b'/') {
                return Ok(());
            }
            if self.byte_at(self.pos + 1) != Some(b'/') {
                return Err(FilterError::new(self.pos, FilterErrorKind::InvalidComment));
            }
            self.pos = self.scan_while(self.pos + 2, |b| b != b'\n');
        }
    }

    /// Text ends at the first quote of the opening kind that is not directly preceded by a
    /// backslash. That backslash is the only escape and is removed; every other backslash is
    /// kept because `LIKE` patterns use it. (So `'a\\'` is unterminated: the last quote counts
    /// as escaped. This is fexpr's rule and we keep it for compatibility.)
    fn text(&mut self, quote: u8) -> Result<TokenKind<'a>, FilterError> {
        let start = self.pos;
        let mut at = start + 1;
        let mut prev = 0u8;
        loop {
            match self.byte_at(at) {
                None => return Err(FilterError::new(start, FilterErrorKind::UnterminatedText)),
                Some(b) if b == quote && prev != b'\\' => break,
                Some(b) => {
                    prev = b;
                    at += 1;
                }
            }
        }
        let raw = self.slice(start + 1, at);
        self.pos = at + 1;
        let value = if quote == b'\'' { raw.replace("\\'", "'") } else { raw.replace("\\\"", "\"") };
        Ok(TokenKind::Text(value))
    }

    /// An optional `-`, then digits with at most one `.`, not ending in `.`; no exponent.
    /// A leading `.` after the sign (`-.5`) is accepted because fexpr accepts it.
    fn number(&mut self) -> Result<TokenKind<'a>, FilterError> {
        let start = self.pos;
        let body = if self.byte_at(start) == Some(b'-') { start + 1 } else { start };
        let end = self.scan_while(body, |b| b.is_ascii_digit() || b == b'.');
        self.pos = end;
        let raw = self.slice(start, end);
        let digits = self.slice(body, end);
        let dots = digits.bytes().filter(|&b| b == b'.').count();
        if !digits.bytes().any(|b| b.is_ascii_digit()) || dots > 1 || digits.ends_with('.') {
            return Err(FilterError::new(start, FilterErrorKind::InvalidNumber(raw.to_string())));
        }
        match raw.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Number(value)),
            Ok(_) => Err(FilterError::new(start, FilterErrorKind::NumberOutOfRange(raw.to_string()))),
            Err(_) => Err(FilterError::new(start, FilterErrorKind::InvalidNumber(raw.to_string()))),
        }
    }

    fn identifier(&mut self) -> Result<TokenKind<'a>, FilterError> {
        let start = self.pos;
        let end = self.scan_while(start + 1, is_ident_continue);
        self.pos = end;
        let raw = self.slice(start, end);
        let invalid = |reason: &str| {
            FilterError::new(
                start,
                FilterErrorKind::InvalidIdentifier { ident: raw.to_string(), reason: reason.to_string() },
            )
        };
        if raw.ends_with(['.', ':']) {
            return Err(invalid("an identifier cannot end with '.' or ':'"));
        }
        if matches!(raw, "@" | "_" | "#") {
            return Err(invalid("an identifier needs more than its first character"));
        }
        // A call is recognised only when "(" follows with no space, as in fexpr; with a space
        // the "(" is a group and the parser reports the misplaced parenthesis.
        if self.byte_at(end) == Some(b'(') {
            self.pos = end + 1;
            return Ok(TokenKind::CallStart(raw));
        }
        Ok(TokenKind::Ident(raw))
    }

    /// Takes the longest run of operator characters, then insists it is one operator: `=!=`
    /// is an error, not `=` followed by `!=`.
    fn sign(&mut self) -> Result<TokenKind<'a>, FilterError> {
        let start = self.pos;
        let end = self.scan_while(start, is_sign_char);
        self.pos = end;
        let raw = self.slice(start, end);
        Op::from_symbol(raw)
            .map(TokenKind::Sign)
            .ok_or_else(|| FilterError::new(start, FilterErrorKind::InvalidOperator(raw.to_string())))
    }

    fn join(&mut self) -> Result<TokenKind<'a>, FilterError> {
        let start = self.pos;
        let end = self.scan_while(start, is_join_char);
        self.pos = end;
        match self.slice(start, end) {
            "&&" => Ok(TokenKind::And),
            "||" => Ok(TokenKind::Or),
            raw => Err(FilterError::new(start, FilterErrorKind::InvalidJoin(raw.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ast::OpKind;
    use super::*;

    fn lex_all(src: &str) -> Result<Vec<TokenKind<'_>>, FilterError> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token()?;
            if token.kind == TokenKind::Eof {
                return Ok(out);
            }
            out.push(token.kind);
        }
    }

    fn kind_of(src: &str) -> FilterErrorKind {
        match lex_all(src) {
            Ok(tokens) => panic!("{src:?} lexed to {tokens:?}, expected an error"),
            Err(e) => e.kind,
        }
    }

    #[test]
    fn every_operator_spelling_lexes() {
        let src = "= != > >= < <= ~ !~ ?= ?!= ?> ?>= ?< ?<= ?~ ?!~";
        let kinds = [OpKind::Eq, OpKind::Neq, OpKind::Gt, OpKind::Gte, OpKind::Lt, OpKind::Lte, OpKind::Like];
        let mut expected: Vec<TokenKind> = Vec::new();
        for any in [false, true] {
            for kind in kinds.iter().copied().chain([OpKind::NotLike]) {
                expected.push(TokenKind::Sign(Op { kind, any }));
            }
        }
        assert_eq!(lex_all(src).expect("lexes"), expected);
        for op in &expected {
            if let TokenKind::Sign(op) = op {
                assert_eq!(Op::from_symbol(op.symbol()), Some(*op));
            }
        }
    }

    #[test]
    fn text_escapes_only_the_opening_quote() {
        assert_eq!(lex_all(r"'te\'st'").expect("lexes"), vec![TokenKind::Text("te'st".into())]);
        assert_eq!(lex_all(r#""te\"st""#).expect("lexes"), vec![TokenKind::Text("te\"st".into())]);
        assert_eq!(lex_all(r#""te\'st""#).expect("lexes"), vec![TokenKind::Text(r"te\'st".into())]);
        assert_eq!(lex_all(r"'a\%b\\c'").expect("lexes"), vec![TokenKind::Text(r"a\%b\\c".into())]);
        assert_eq!(lex_all("\"x' OR 1=1 --\"").expect("lexes"), vec![TokenKind::Text("x' OR 1=1 --".into())]);
        assert_eq!(lex_all("'ÄБЦ € 😀'").expect("lexes"), vec![TokenKind::Text("ÄБЦ € 😀".into())]);
        assert_eq!(kind_of(r"'a\'"), FilterErrorKind::UnterminatedText);
        assert_eq!(kind_of(r"'a\\'"), FilterErrorKind::UnterminatedText);
    }

    #[test]
    fn numbers() {
        assert_eq!(lex_all("12 -3 4.5 -0.25 007 -.5").expect("lexes"), vec![
            TokenKind::Number(12.0),
            TokenKind::Number(-3.0),
            TokenKind::Number(4.5),
            TokenKind::Number(-0.25),
            TokenKind::Number(7.0),
            TokenKind::Number(-0.5),
        ]);
        // "12-3" is two numbers; the parser rejects the juxtaposition.
        assert_eq!(lex_all("12-3").expect("lexes"), vec![TokenKind::Number(12.0), TokenKind::Number(-3.0)]);
        for bad in ["-", "- 1", "1.", "1.2.3", "-.", "1..2"] {
            assert!(matches!(kind_of(bad), FilterErrorKind::InvalidNumber(_)), "{bad}");
        }
        let huge = format!("1{}", "0".repeat(400));
        assert!(matches!(kind_of(&huge), FilterErrorKind::NumberOutOfRange(_)));
        assert!(matches!(kind_of(".5"), FilterErrorKind::UnexpectedChar('.')));
    }

    #[test]
    fn identifiers_and_calls() {
        assert_eq!(lex_all("a.b:c @request.auth.id _x #h f(").expect("lexes"), vec![
            TokenKind::Ident("a.b:c"),
            TokenKind::Ident("@request.auth.id"),
            TokenKind::Ident("_x"),
            TokenKind::Ident("#h"),
            TokenKind::CallStart("f"),
        ]);
        assert_eq!(lex_all("f (").expect("lexes"), vec![TokenKind::Ident("f"), TokenKind::LParen]);
        for bad in ["a.", "a:", "@", "_", "#", "@."] {
            assert!(matches!(kind_of(bad), FilterErrorKind::InvalidIdentifier { .. }), "{bad}");
        }
    }

    #[test]
    fn joins_comments_and_whitespace() {
        assert_eq!(lex_all("&& || // x && y\n\t( ) ,").expect("lexes"), vec![
            TokenKind::And,
            TokenKind::Or,
            TokenKind::LParen,
            TokenKind::RParen,
            TokenKind::Comma,
        ]);
        assert_eq!(lex_all("// only a comment").expect("lexes"), vec![]);
        assert_eq!(kind_of("&&||"), FilterErrorKind::InvalidJoin("&&||".into()));
        assert_eq!(kind_of("&"), FilterErrorKind::InvalidJoin("&".into()));
        assert_eq!(kind_of("=!="), FilterErrorKind::InvalidOperator("=!=".into()));
        assert_eq!(kind_of("/ x"), FilterErrorKind::InvalidComment);
        assert_eq!(kind_of("a\r\n"), FilterErrorKind::UnexpectedChar('\r'));
        assert_eq!(kind_of("é"), FilterErrorKind::UnexpectedChar('é'));
    }

    #[test]
    fn offsets_point_at_token_starts() {
        let mut lexer = Lexer::new("  ab >= 'x'");
        let offsets: Vec<usize> = std::iter::from_fn(|| {
            let t = lexer.next_token().ok()?;
            (t.kind != TokenKind::Eof).then_some(t.offset)
        })
        .collect();
        assert_eq!(offsets, vec![2, 5, 8]);
        let err = lex_all("a = 'x").expect_err("must fail");
        assert_eq!((err.offset, err.to_string()), (4, "unterminated text literal at byte 4".to_string()));
    }
}
