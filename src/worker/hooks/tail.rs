//! [`ends_with_next`]: whether a handler's source calls `e.next()` as its very last act — the
//! last statement of its body, at the top level of that body, and the only mention of
//! `e.next` in it — so that nothing the handler does can follow the rest of its chain.
//!
//! A record request chain made only of such handlers may run its default action (the write)
//! after the JS dispatch has returned, on the async side, instead of inside `e.next()` with
//! its JS thread blocked on the database: nothing the handlers could observe differs. A
//! thread blocked per in-flight write was most of what a hooked create cost.
//!
//! This is a conservative reading of the source, not a parser: it tokenizes (strings,
//! template literals, comments and regular expressions are skipped as units) and accepts
//! only the plain shapes — `(e) => e.next()`, `(e) => { …; e.next() }`, `function (e) { …;
//! return e.next(); }`. Anything it cannot read with certainty answers false, which only
//! costs speed: the chain then runs as before.

/// One token of handler source. Only what the checks below need is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(&'static str),
    /// A string, number, template or regular expression literal.
    Literal,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    /// A line break (or a comment holding one) comes between this token and the previous.
    newline_before: bool,
}

/// Punctuators longest first, so the first match is the longest.
const PUNCTUATORS: &[&str] = &[
    ">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=", "=>", "==", "!=", "<=", ">=", "&&", "||",
    "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "**", "<<", ">>", "{", "}", "(", ")", "[",
    "]", ";", ",", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "?", ":", "=", ".", "@", "#",
];

/// Keywords after which a `/` starts a regular expression rather than a division.
const EXPRESSION_KEYWORDS: &[&str] = &["return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else", "yield", "await"];

/// Keywords that make an expression continue onto the next line: `e.next()` after one is an
/// operand, not a statement of its own.
const OPERATOR_KEYWORDS: &[&str] = &["new", "typeof", "delete", "in", "of", "instanceof", "case", "throw", "await", "yield"];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// Whether a `/` after `prev` starts a regular expression. None: it cannot be told apart
/// without a parser (after `}`), so the caller gives up.
fn regex_allowed(prev: Option<&Tok>) -> Option<bool> {
    match prev {
        None => Some(true),
        Some(Tok::Literal) => Some(false),
        Some(Tok::Ident(w)) => Some(EXPRESSION_KEYWORDS.contains(&w.as_str())),
        Some(Tok::Punct("}")) => None,
        Some(Tok::Punct(p)) => Some(!matches!(*p, ")" | "]" | "++" | "--")),
    }
}

/// Skips a quoted string starting at `i` (the quote); the index after its closing quote.
fn skip_string(s: &[char], mut i: usize) -> Option<usize> {
    let quote = s[i];
    i += 1;
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '\n' => return None,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Skips a template literal starting at `i` (the backquote). Substitutions are skipped by
/// brace depth; one holding a `/` (a regular expression or a comment we would misread) or a
/// nested template is given up on.
fn skip_template(s: &[char], mut i: usize) -> Option<usize> {
    i += 1;
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '`' => return Some(i + 1),
            '$' if s.get(i + 1) == Some(&'{') => {
                i += 2;
                let mut depth = 1usize;
                while depth > 0 {
                    match *s.get(i)? {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        '\'' | '"' => {
                            i = skip_string(s, i)?;
                            continue;
                        }
                        '`' | '/' => return None,
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Skips a regular expression literal starting at `i` (the slash), flags included.
fn skip_regex(s: &[char], mut i: usize) -> Option<usize> {
    i += 1;
    let mut class = false;
    loop {
        match *s.get(i)? {
            '\\' => i += 2,
            '\n' => return None,
            '[' => {
                class = true;
                i += 1;
            }
            ']' => {
                class = false;
                i += 1;
            }
            '/' if !class => break,
            _ => i += 1,
        }
    }
    i += 1;
    while s.get(i).is_some_and(|c| is_ident_char(*c)) {
        i += 1;
    }
    Some(i)
}

/// The tokens of `src`, or None where it cannot be read with certainty.
fn tokenize(src: &str) -> Option<Vec<Token>> {
    let s: Vec<char> = src.chars().collect();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut newline = false;
    while i < s.len() {
        let c = s[i];
        if c == '\n' || c == '\r' || c == '\u{2028}' || c == '\u{2029}' {
            newline = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && s.get(i + 1) == Some(&'*') {
            let end = (i + 2..s.len().saturating_sub(1)).find(|&j| s[j] == '*' && s[j + 1] == '/')?;
            newline |= s[i..end].contains(&'\n');
            i = end + 2;
            continue;
        }
        let start = i;
        let tok = if c == '\'' || c == '"' {
            i = skip_string(&s, i)?;
            Tok::Literal
        } else if c == '`' {
            i = skip_template(&s, i)?;
            Tok::Literal
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < s.len() && (is_ident_char(s[i]) || s[i] == '.') {
                i += 1;
            }
            Tok::Literal
        } else if is_ident_start(c) {
            while i < s.len() && is_ident_char(s[i]) {
                i += 1;
            }
            Tok::Ident(s[start..i].iter().collect())
        } else if c == '/' && regex_allowed(out.last().map(|t| &t.tok))? {
            i = skip_regex(&s, i)?;
            Tok::Literal
        } else {
            let p = PUNCTUATORS.iter().find(|p| p.chars().enumerate().all(|(k, pc)| s.get(i + k) == Some(&pc)))?;
            i += p.chars().count();
            Tok::Punct(p)
        };
        out.push(Token { tok, newline_before: newline });
        newline = false;
    }
    Some(out)
}

fn ident(t: &Token, name: &str) -> bool {
    matches!(&t.tok, Tok::Ident(w) if w == name)
}

fn punct(t: &Token, p: &str) -> bool {
    matches!(t.tok, Tok::Punct(q) if q == p)
}

/// Whether the `)` at `close` ends the head of an `if`, `while`, `for` or `with` (or its
/// opening parenthesis cannot be found).
fn heads_a_statement(body: &[Token], close: usize) -> bool {
    let mut depth = 0i32;
    for k in (0..=close).rev() {
        match body[k].tok {
            Tok::Punct(")") => depth += 1,
            Tok::Punct("(") => {
                depth -= 1;
                if depth == 0 {
                    return k == 0 || matches!(&body[k - 1].tok, Tok::Ident(w) if matches!(w.as_str(), "if" | "while" | "for" | "with"));
                }
            }
            _ => {}
        }
    }
    true
}

/// Whether `src`, the source of a handler function, calls `e.next()` (whatever its one
/// parameter is named) as its last act and nowhere else. See the module docs.
pub fn ends_with_next(src: &str) -> bool {
    let Some(toks) = tokenize(src) else { return false };
    // The parameter and where the body starts.
    let (param, body_at) = match toks.as_slice() {
        [a, b, c, d, ..] if ident(a, "function") && punct(b, "(") && punct(d, ")") => (c, 4),
        [a, _, b, c, d, ..] if ident(a, "function") && matches!(toks[1].tok, Tok::Ident(_)) && punct(b, "(") && punct(d, ")") => (c, 5),
        [a, b, c, d, ..] if punct(a, "(") && punct(c, ")") && punct(d, "=>") => (b, 4),
        [a, b, ..] if punct(b, "=>") => (a, 2),
        _ => return false,
    };
    let Tok::Ident(p) = &param.tok else { return false };
    if p == "async" || p == "function" {
        return false;
    }
    let rest = &toks[body_at..];
    let next_call = |t: &[Token]| t.len() == 5 && ident(&t[0], p) && punct(&t[1], ".") && ident(&t[2], "next") && punct(&t[3], "(") && punct(&t[4], ")");
    let is_arrow = !ident(&toks[0], "function");
    if is_arrow && !rest.first().is_some_and(|t| punct(t, "{")) {
        // An expression body: exactly `e.next()`.
        return next_call(rest);
    }
    // A block body: `{` … `}` closing at the very end, brackets balanced.
    if rest.len() < 2 || !punct(&rest[0], "{") || !punct(&rest[rest.len() - 1], "}") {
        return false;
    }
    let body = &rest[1..rest.len() - 1];
    let mut depth = 0i32;
    let mut depths = Vec::with_capacity(body.len());
    for t in body {
        match t.tok {
            Tok::Punct("(" | "[" | "{") => depth += 1,
            Tok::Punct(")" | "]" | "}") => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
        depths.push(depth);
    }
    if depth != 0 {
        return false;
    }
    // The parameter is used only as `e.next()` once, or read otherwise: never reassigned,
    // never `e.next` anywhere but the end, and `arguments` (another way to reach it) unused.
    let mut nexts = 0;
    for (k, t) in body.iter().enumerate() {
        if ident(t, "arguments") {
            return false;
        }
        if ident(t, p) {
            let after = body.get(k + 1);
            if after.is_some_and(|a| matches!(a.tok, Tok::Punct("=" | "++" | "--" | "+=" | "-=" | "&&=" | "||=" | "??="))) {
                return false;
            }
            if after.is_some_and(|a| matches!(a.tok, Tok::Punct("." | "?." | "["))) && body.get(k + 2).is_none_or(|n| !matches!(&n.tok, Tok::Ident(w) if w != "next")) {
                // `e.next`, `e?.next`, `e[...]` (could be "next") all count as reaching next.
                nexts += 1;
            }
        }
    }
    if nexts != 1 {
        return false;
    }
    let mut end = body.len();
    while end > 0 && punct(&body[end - 1], ";") {
        end -= 1;
    }
    if end < 5 || !next_call(&body[end - 5..end]) || depths[end - 5] != 0 {
        return false;
    }
    let mut at = end - 5;
    if at > 0 && ident(&body[at - 1], "return") && !body[at].newline_before {
        at -= 1;
    }
    if at == 0 {
        return true;
    }
    // What comes before must end a statement of its own at the top level.
    let prev = &body[at - 1];
    let fresh_line = body[at].newline_before;
    match &prev.tok {
        Tok::Punct(";" | "}") => true,
        // A call or group ending the line before (`e.record.set(…)`), not the head of an
        // `if (…)` or a loop whose body the call would be.
        Tok::Punct(")") => fresh_line && !heads_a_statement(body, at - 1),
        Tok::Punct("]") => fresh_line,
        Tok::Literal => fresh_line,
        Tok::Ident(w) => fresh_line && !OPERATOR_KEYWORDS.contains(&w.as_str()),
        Tok::Punct(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::ends_with_next;

    #[test]
    fn plain_tail_calls_are_recognised() {
        for src in [
            "(e) => e.next()",
            "e => e.next()",
            "(e) => { e.next() }",
            "(e) => { e.next(); }",
            "(e) => {\n  e.next();\n}",
            "function (e) { e.next() }",
            "function(e) { return e.next(); }",
            "function handler(ev) { ev.next() }",
            "(e) => { return e.next() }",
            "(e) => {\n  if (e.record.get('title') === '') {\n    throw new BadRequestError('title required')\n  }\n  e.next()\n}",
            "(e) => {\n  const x = `a ${e.record.get(\"n\")} b`\n  e.record.set('title', x)\n  e.next()\n}",
            "(e) => { const re = /[}{]\\//g; e.record.set('t', 'x'.replace(re, '')); e.next() }",
            "(e) => {\n  // e.next() in a comment does not count\n  /* nor e.next() here */\n  e.next()\n}",
            "(e) => {\n  e.record.set(\"t\", \"e.next()\")\n  e.next()\n}",
            "(e) => {\n  let n = 1\n  e.next()\n}",
            "(e) => {\n  foo[0]\n  e.next()\n}",
            "(e) => {\n  if (a) foo()\n  e.next()\n}",
        ] {
            assert!(ends_with_next(src), "should be a tail call: {src}");
        }
    }

    #[test]
    fn anything_after_or_around_next_is_refused() {
        for src in [
            // Code after next, or next not at the top level of the body.
            "(e) => { e.next(); console.log(e.record.id) }",
            "(e) => { try { e.next() } catch (err) { console.log(err) } }",
            "(e) => { if (x) { e.next() } }",
            "(e) => { while (x) e.next() }",
            "(e) => { if (x) e.next() }",
            "(e) => {\n  if (x)\n    e.next()\n}",
            "(e) => {\n  for (const a of b)\n    e.next()\n}",
            "(e) => { for (;;) { e.next(); break } }",
            "(e) => { $app.runInTransaction(() => { e.next() }) }",
            // Next reached twice, or another way.
            "(e) => { if (a) return e.next(); e.next() }",
            "(e) => { const n = e.next; n() }",
            "(e) => { e['next'](); e.next() }",
            "(e) => { e = other; e.next() }",
            "(e) => { arguments[0].next(); e.next() }",
            "(e) => { e?.next() }",
            // The value of next used in an expression.
            "(e) => { a +\n e.next() }",
            "(e) => { x = e.next() }",
            "(e) => { await\n e.next() }",
            "(e) => e.next() || 1",
            // Shapes this reading does not take.
            "async (e) => { e.next() }",
            "(e, x) => { e.next() }",
            "({ next }) => { next() }",
            "function* (e) { e.next() }",
            "(e) => { }",
            "(e) => { const s = 'unterminated; e.next() }",
            "(e) => { `${`nested`}`; e.next() }",
            "(e) => { foo() }\n/ 2; e.next()",
        ] {
            assert!(!ends_with_next(src), "should be refused: {src}");
        }
    }
}
