//! Recursive-descent parser: pulls tokens from the lexer and builds an [`Expr`], splitting
//! each raw identifier into a field path, `@request.*`, `@collection.*`, macro or keyword and
//! checking function-call signatures. It owns the syntax rules and the input limits; it must
//! not resolve names against a schema, look at request data or produce SQL.
//!
//! Recursion happens only through parentheses and nested calls, and both are capped
//! ([`MAX_GROUP_DEPTH`], [`MAX_CALL_DEPTH`]) before recursing, so hostile input cannot blow the
//! stack.

use super::ast::{Call, Expr, Function, Macro, Modifier, Operand, Path, RequestSource};
use super::lexer::{Lexer, Token, TokenKind};
use super::{FilterError, FilterErrorKind, Limits, MAX_CALL_DEPTH, MAX_GROUP_DEPTH};

/// `geoDistance(lonA, latA, lonB, latB)`.
const GEO_DISTANCE_ARG_COUNT: usize = 4;
/// PocketBase caps strftime's arguments "to prevent abuse".
const STRFTIME_MAX_ARG_COUNT: usize = 10;

/// Parses a filter or rule with PocketBase's client-filter limits ([`Limits::CLIENT_FILTER`]).
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    parse_with_limits(input, Limits::CLIENT_FILTER)
}

/// Parses a filter or rule. An input that is empty or holds only whitespace and comments is an
/// error, as in PocketBase (an empty *rule* means something, but the caller decides that before
/// parsing).
pub fn parse_with_limits(input: &str, limits: Limits) -> Result<Expr, FilterError> {
    if input.len() > limits.max_len_bytes {
        // Point at the first byte past the limit, backed off to a character start so the
        // offset can always be used to slice the input.
        let offset = (0..=limits.max_len_bytes).rev().find(|&i| input.is_char_boundary(i)).unwrap_or(0);
        let kind = FilterErrorKind::TooLong { len_bytes: input.len(), max_bytes: limits.max_len_bytes };
        return Err(FilterError::new(offset, kind));
    }
    let mut parser = Parser { lexer: Lexer::new(input), peeked: None, limits, group_depth: 0, comparisons: 0 };
    if parser.peek()?.kind == TokenKind::Eof {
        return Err(FilterError::new(0, FilterErrorKind::Empty));
    }
    let expr = parser.or_expr()?;
    let end = parser.next()?;
    match end.kind {
        TokenKind::Eof => Ok(expr),
        TokenKind::RParen => Err(FilterError::new(end.offset, FilterErrorKind::UnmatchedParen)),
        other => Err(unexpected("\"&&\", \"||\" or end of input", &other, end.offset)),
    }
}

fn unexpected(expected: &'static str, found: &TokenKind<'_>, offset: usize) -> FilterError {
    FilterError::new(offset, FilterErrorKind::Unexpected { expected, found: found.describe() })
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    limits: Limits,
    group_depth: usize,
    comparisons: usize,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token<'a>, FilterError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token<'a>, FilterError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let first = self.and_expr()?;
        if self.peek()?.kind != TokenKind::Or {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek()?.kind == TokenKind::Or {
            self.next()?;
            items.push(self.and_expr()?);
        }
        Ok(Expr::Or(items))
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let first = self.primary()?;
        if self.peek()?.kind != TokenKind::And {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek()?.kind == TokenKind::And {
            self.next()?;
            items.push(self.primary()?);
        }
        Ok(Expr::And(items))
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::LParen => self.group(token.offset),
            TokenKind::Ident(_) | TokenKind::CallStart(_) | TokenKind::Text(_) | TokenKind::Number(_) => {
                self.comparison(token)
            }
            other => Err(unexpected("an expression", &other, token.offset)),
        }
    }

    fn group(&mut self, open: usize) -> Result<Expr, FilterError> {
        if self.group_depth >= MAX_GROUP_DEPTH {
            return Err(FilterError::new(open, FilterErrorKind::TooDeep { max: MAX_GROUP_DEPTH }));
        }
        if self.peek()?.kind == TokenKind::RParen {
            return Err(FilterError::new(open, FilterErrorKind::EmptyGroup));
        }
        self.group_depth += 1;
        let inner = self.or_expr()?;
        self.group_depth -= 1;
        let close = self.next()?;
        match close.kind {
            TokenKind::RParen => Ok(Expr::Group(Box::new(inner))),
            TokenKind::Eof => Err(FilterError::new(open, FilterErrorKind::UnclosedGroup)),
            other => Err(unexpected("\"&&\", \"||\" or \")\"", &other, close.offset)),
        }
    }

    fn comparison(&mut self, first: Token<'a>) -> Result<Expr, FilterError> {
        self.comparisons += 1;
        if self.comparisons > self.limits.max_comparisons {
            let max = self.limits.max_comparisons;
            return Err(FilterError::new(first.offset, FilterErrorKind::TooManyComparisons { max }));
        }
        let left = self.operand(first, 0, "an operand")?;
        let op_token = self.next()?;
        let op = match op_token.kind {
            TokenKind::Sign(op) => op,
            other => return Err(unexpected("a comparison operator", &other, op_token.offset)),
        };
        let right_token = self.next()?;
        let right = self.operand(right_token, 0, "an operand")?;
        Ok(Expr::Compare { left, op, right })
    }

    /// `call_depth` is how many calls enclose this operand.
    fn operand(&mut self, token: Token<'a>, call_depth: usize, expected: &'static str) -> Result<Operand, FilterError> {
        match token.kind {
            TokenKind::Ident(raw) => classify(raw, token.offset),
            TokenKind::CallStart(name) => self.call(name, token.offset, call_depth + 1).map(Operand::Call),
            TokenKind::Text(text) => Ok(Operand::Text(text)),
            TokenKind::Number(n) => Ok(Operand::Number(n)),
            other => Err(unexpected(expected, &other, token.offset)),
        }
    }

    /// Parses the arguments after `name(`; `depth` counts this call (1 = outermost).
    fn call(&mut self, name: &str, offset: usize, depth: usize) -> Result<Call, FilterError> {
        if depth > MAX_CALL_DEPTH {
            return Err(FilterError::new(offset, FilterErrorKind::CallTooDeep { max: MAX_CALL_DEPTH }));
        }
        let function = Function::from_name(name)
            .ok_or_else(|| FilterError::new(offset, FilterErrorKind::UnknownFunction(name.to_string())))?;
        let unclosed = || FilterError::new(offset, FilterErrorKind::UnclosedCall(name.to_string()));
        let mut args: Vec<(usize, Operand)> = Vec::new();
        loop {
            let token = self.next()?;
            match token.kind {
                // Either `f()` or a trailing comma, which fexpr allows.
                TokenKind::RParen => break,
                TokenKind::Eof => return Err(unclosed()),
                _ => {}
            }
            let arg_offset = token.offset;
            args.push((arg_offset, self.operand(token, depth, "a function argument")?));
            let separator = self.next()?;
            match separator.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => break,
                TokenKind::Eof => return Err(unclosed()),
                other => return Err(unexpected("\",\" or \")\"", &other, separator.offset)),
            }
        }
        check_signature(function, offset, &args)?;
        Ok(Call { function, args: args.into_iter().map(|(_, arg)| arg).collect() })
    }
}

/// Checks argument count and kinds the way PocketBase's function table does, so a compiler
/// can take them for granted. Kinds are syntactic ("identifier", "text"), not types.
fn check_signature(function: Function, call_offset: usize, args: &[(usize, Operand)]) -> Result<(), FilterError> {
    let bad = |offset: usize, reason: String| {
        FilterError::new(offset, FilterErrorKind::InvalidArguments { function: function.name(), reason })
    };
    match function {
        Function::GeoDistance => {
            if args.len() != GEO_DISTANCE_ARG_COUNT {
                let reason = format!("expected {GEO_DISTANCE_ARG_COUNT} arguments, got {}", args.len());
                return Err(bad(call_offset, reason));
            }
            for (i, (offset, arg)) in args.iter().enumerate() {
                if !(arg.is_identifier() || matches!(arg, Operand::Number(_))) {
                    return Err(bad(*offset, format!("argument {} must be an identifier or a number", i + 1)));
                }
            }
        }
        Function::Strftime => {
            if args.is_empty() {
                return Err(bad(call_offset, "expected at least 1 argument (the format), got 0".to_string()));
            }
            if args.len() > STRFTIME_MAX_ARG_COUNT {
                let reason = format!("at most {STRFTIME_MAX_ARG_COUNT} arguments are allowed, got {}", args.len());
                return Err(bad(call_offset, reason));
            }
            for (i, (offset, arg)) in args.iter().enumerate() {
                let is_text = matches!(arg, Operand::Text(_));
                let (ok, reason) = match i {
                    0 => (is_text, "the first argument (the format) must be text".to_string()),
                    1 => (
                        is_text || arg.is_identifier() || matches!(arg, Operand::Number(_)),
                        "the second argument (the time value) must be text, a number or an identifier".to_string(),
                    ),
                    _ => (is_text, format!("argument {} (a modifier) must be text", i + 1)),
                };
                if !ok {
                    return Err(bad(*offset, reason));
                }
            }
        }
    }
    Ok(())
}

/// Turns a lexically valid identifier into an operand. The lexer guarantees the characters
/// are ASCII letters, digits, `_`, `.`, `:` after a first letter, `_`, `@` or `#`, and that the
/// identifier does not end in `.` or `:`.
fn classify(raw: &str, offset: usize) -> Result<Operand, FilterError> {
    let invalid = |reason: &str| invalid_identifier(raw, offset, reason);
    // Keywords are recognised case-insensitively, as PocketBase does.
    if raw.eq_ignore_ascii_case("true") {
        return Ok(Operand::Bool(true));
    }
    if raw.eq_ignore_ascii_case("false") {
        return Ok(Operand::Bool(false));
    }
    if raw.eq_ignore_ascii_case("null") {
        return Ok(Operand::Null);
    }
    if raw.starts_with('#') {
        return Err(invalid("identifiers starting with '#' are not supported"));
    }
    let Some(rest) = raw.strip_prefix('@') else {
        return parse_path(raw, raw, offset).map(Operand::Field);
    };
    let (head, tail) = match rest.split_once('.') {
        Some((head, tail)) => (head, Some(tail)),
        None => (rest, None),
    };
    let (head_name, head_modifier) = match head.split_once(':') {
        Some((name, modifier)) => (name, Some(modifier)),
        None => (head, None),
    };
    match head_name {
        "" => Err(invalid("empty path segment")),
        "request" | "collection" if head_modifier.is_some() => {
            Err(invalid("a modifier can only follow the last path segment"))
        }
        "request" => classify_request(raw, tail, offset),
        "collection" => classify_collection(raw, tail, offset),
        _ => match Macro::from_name(head_name) {
            Some(m) if tail.is_none() && head_modifier.is_none() => Ok(Operand::Macro(m)),
            Some(_) => Err(invalid("a macro takes no path or modifier")),
            None => Err(FilterError::new(offset, FilterErrorKind::UnknownMacro(format!("@{head_name}")))),
        },
    }
}

fn classify_request(raw: &str, tail: Option<&str>, offset: usize) -> Result<Operand, FilterError> {
    let invalid = |reason: &str| invalid_identifier(raw, offset, reason);
    const EXPECTED_SOURCES: &str = "expected @request.context, .method, .auth.*, .body.*, .query.* or .headers.*";
    let Some(tail) = tail else {
        return Err(invalid(EXPECTED_SOURCES));
    };
    let (source_segment, rest) = match tail.split_once('.') {
        Some((segment, rest)) => (segment, Some(rest)),
        None => (tail, None),
    };
    let (source_name, source_modifier) = match source_segment.split_once(':') {
        Some((name, modifier)) => (name, Some(modifier)),
        None => (source_segment, None),
    };
    let Some(source) = RequestSource::from_name(source_name) else {
        if source_name == "data" {
            return Err(invalid("@request.data was removed from PocketBase; use @request.body"));
        }
        return Err(invalid(EXPECTED_SOURCES));
    };
    if !source.takes_path() {
        if rest.is_some() {
            return Err(invalid(&format!("@request.{source_name} has no sub-fields")));
        }
        let modifier = source_modifier.map(|m| parse_modifier(m, raw, offset)).transpose()?;
        return Ok(Operand::Request { source, path: Path { segments: Vec::new(), modifier } });
    }
    let Some(rest) = rest else {
        return Err(invalid(&format!("expected a field after @request.{source_name}")));
    };
    if source_modifier.is_some() {
        return Err(invalid("a modifier can only follow the last path segment"));
    }
    Ok(Operand::Request { source, path: parse_path(rest, raw, offset)? })
}

fn classify_collection(raw: &str, tail: Option<&str>, offset: usize) -> Result<Operand, FilterError> {
    let invalid = |reason: &str| invalid_identifier(raw, offset, reason);
    let Some(tail) = tail else {
        return Err(invalid("expected @collection.<name>.<field>"));
    };
    let Some((collection_segment, rest)) = tail.split_once('.') else {
        return Err(invalid("expected a field after @collection.<name>"));
    };
    let (collection, alias) = match collection_segment.split_once(':') {
        Some((name, alias)) => (name, Some(alias)),
        None => (collection_segment, None),
    };
    if collection.is_empty() {
        return Err(invalid("empty collection name"));
    }
    if let Some(alias) = alias {
        if alias.is_empty() || alias.contains(':') {
            return Err(invalid("an alias is a single name after the collection name and ':'"));
        }
    }
    Ok(Operand::Collection {
        collection: collection.to_string(),
        alias: alias.map(str::to_string),
        path: parse_path(rest, raw, offset)?,
    })
}

/// Splits `a.b.c[:modifier]`. `raw` is the whole identifier, for messages.
fn parse_path(text: &str, raw: &str, offset: usize) -> Result<Path, FilterError> {
    let invalid = |reason: &str| invalid_identifier(raw, offset, reason);
    let mut segments = Vec::new();
    let mut modifier = None;
    let mut parts = text.split('.').peekable();
    while let Some(part) = parts.next() {
        let is_last = parts.peek().is_none();
        let name = match part.split_once(':') {
            None => part,
            Some(_) if !is_last => return Err(invalid("a modifier can only follow the last path segment")),
            Some((name, m)) => {
                modifier = Some(parse_modifier(m, raw, offset)?);
                name
            }
        };
        if name.is_empty() {
            return Err(invalid("empty path segment"));
        }
        segments.push(name.to_string());
    }
    Ok(Path { segments, modifier })
}

fn parse_modifier(name: &str, raw: &str, offset: usize) -> Result<Modifier, FilterError> {
    if name.contains(':') {
        return Err(invalid_identifier(raw, offset, "only one modifier is allowed"));
    }
    Modifier::from_name(name)
        .ok_or_else(|| FilterError::new(offset, FilterErrorKind::UnknownModifier(format!(":{name}"))))
}

fn invalid_identifier(raw: &str, offset: usize, reason: &str) -> FilterError {
    FilterError::new(
        offset,
        FilterErrorKind::InvalidIdentifier { ident: raw.to_string(), reason: reason.to_string() },
    )
}

#[cfg(test)]
mod tests {
    use super::super::ast::{Op, OpKind};
    use super::*;

    // --- builders --------------------------------------------------------------------------

    fn path(segments: &[&str], modifier: Option<Modifier>) -> Path {
        Path { segments: segments.iter().map(|s| s.to_string()).collect(), modifier }
    }

    fn field(dotted: &str) -> Operand {
        Operand::Field(path(&dotted.split('.').collect::<Vec<_>>(), None))
    }

    fn field_mod(dotted: &str, modifier: Modifier) -> Operand {
        Operand::Field(path(&dotted.split('.').collect::<Vec<_>>(), Some(modifier)))
    }

    fn req(source: RequestSource, dotted: &str, modifier: Option<Modifier>) -> Operand {
        let segments: Vec<&str> = if dotted.is_empty() { Vec::new() } else { dotted.split('.').collect() };
        Operand::Request { source, path: path(&segments, modifier) }
    }

    fn coll(collection: &str, alias: Option<&str>, dotted: &str, modifier: Option<Modifier>) -> Operand {
        Operand::Collection {
            collection: collection.to_string(),
            alias: alias.map(str::to_string),
            path: path(&dotted.split('.').collect::<Vec<_>>(), modifier),
        }
    }

    fn text(s: &str) -> Operand {
        Operand::Text(s.to_string())
    }

    fn num(n: f64) -> Operand {
        Operand::Number(n)
    }

    fn call(function: Function, args: Vec<Operand>) -> Operand {
        Operand::Call(Call { function, args })
    }

    fn cmp(left: Operand, op: &str, right: Operand) -> Expr {
        Expr::Compare { left, op: Op::from_symbol(op).expect("a valid operator in the test table"), right }
    }

    fn group(inner: Expr) -> Expr {
        Expr::Group(Box::new(inner))
    }

    /// No length or comparison limit, for re-parsing printed trees (printing can lengthen
    /// numbers) and for the depth tests.
    const UNLIMITED: Limits = Limits { max_len_bytes: usize::MAX, max_comparisons: usize::MAX };

    // --- valid input -----------------------------------------------------------------------

    fn valid_cases() -> Vec<(&'static str, Expr)> {
        use Function::{GeoDistance, Strftime};
        use Modifier::{Changed, Each, Isset, Length, Lower};
        use RequestSource::{Auth, Body, Context, Headers, Method, Query};
        vec![
            // every operator
            ("a = 1", cmp(field("a"), "=", num(1.0))),
            ("a != 1", cmp(field("a"), "!=", num(1.0))),
            ("a > 1.5", cmp(field("a"), ">", num(1.5))),
            ("a >= -2", cmp(field("a"), ">=", num(-2.0))),
            ("a < -0.25", cmp(field("a"), "<", num(-0.25))),
            ("a <= 0", cmp(field("a"), "<=", num(0.0))),
            ("a ~ 'abc%'", cmp(field("a"), "~", text("abc%"))),
            ("a !~ 'x'", cmp(field("a"), "!~", text("x"))),
            ("tags ?= 'a'", cmp(field("tags"), "?=", text("a"))),
            ("tags ?!= 'a'", cmp(field("tags"), "?!=", text("a"))),
            ("n ?> 1", cmp(field("n"), "?>", num(1.0))),
            ("n ?>= 1", cmp(field("n"), "?>=", num(1.0))),
            ("n ?< 1", cmp(field("n"), "?<", num(1.0))),
            ("n ?<= 1", cmp(field("n"), "?<=", num(1.0))),
            ("t ?~ 'x'", cmp(field("t"), "?~", text("x"))),
            ("t ?!~ 'x'", cmp(field("t"), "?!~", text("x"))),
            ("a=-1", cmp(field("a"), "=", num(-1.0))),
            ("1=12", cmp(num(1.0), "=", num(12.0))),
            ("   'x'    =    title   ", cmp(text("x"), "=", field("title"))),
            // quotes and escapes
            ("title = \"x\"", cmp(field("title"), "=", text("x"))),
            (r"demo = 'te\'st'", cmp(field("demo"), "=", text("te'st"))),
            (r#"demo = "te\"st""#, cmp(field("demo"), "=", text("te\"st"))),
            (r#"demo = "te\'st""#, cmp(field("demo"), "=", text(r"te\'st"))),
            (r"demo ~ 'a\%b'", cmp(field("demo"), "~", text(r"a\%b"))),
            ("title = \"x' OR 1=1 --\"", cmp(field("title"), "=", text("x' OR 1=1 --"))),
            ("title = 'a \"b\" c'", cmp(field("title"), "=", text("a \"b\" c"))),
            ("title = ''", cmp(field("title"), "=", text(""))),
            ("title = 'ÄБЦ 😀 (&&) //'", cmp(field("title"), "=", text("ÄБЦ 😀 (&&) //"))),
            // keywords
            ("verified = true", cmp(field("verified"), "=", Operand::Bool(true))),
            ("verified != FALSE", cmp(field("verified"), "!=", Operand::Bool(false))),
            ("x = Null", cmp(field("x"), "=", Operand::Null)),
            // macros
            ("created >= @now", cmp(field("created"), ">=", Operand::Macro(Macro::Now))),
            ("created < @todayStart", cmp(field("created"), "<", Operand::Macro(Macro::TodayStart))),
            ("@yearEnd > @yesterday", cmp(Operand::Macro(Macro::YearEnd), ">", Operand::Macro(Macro::Yesterday))),
            ("@weekday = 0", cmp(Operand::Macro(Macro::Weekday), "=", num(0.0))),
            // @request.*
            ("@request.auth.id != ''", cmp(req(Auth, "id", None), "!=", text(""))),
            ("@request.auth.team.name = 'x'", cmp(req(Auth, "team.name", None), "=", text("x"))),
            ("@request.body.title:isset = true", cmp(req(Body, "title", Some(Isset)), "=", Operand::Bool(true))),
            ("@request.body.status:changed = false", cmp(req(Body, "status", Some(Changed)), "=", Operand::Bool(false))),
            ("@request.body.tags:each ?= 'a'", cmp(req(Body, "tags", Some(Each)), "?=", text("a"))),
            ("@request.query.page = '2'", cmp(req(Query, "page", None), "=", text("2"))),
            ("@request.headers.x_token = 'abc'", cmp(req(Headers, "x_token", None), "=", text("abc"))),
            ("@request.method = 'GET'", cmp(req(Method, "", None), "=", text("GET"))),
            ("@request.method:lower = 'get'", cmp(req(Method, "", Some(Lower)), "=", text("get"))),
            ("@request.context != 'oauth2'", cmp(req(Context, "", None), "!=", text("oauth2"))),
            // @collection.*
            (
                "@collection.posts:p.author = @request.auth.id",
                cmp(coll("posts", Some("p"), "author", None), "=", req(Auth, "id", None)),
            ),
            (
                "@collection.users.profile.email:lower ~ 'x'",
                cmp(coll("users", None, "profile.email", Some(Lower)), "~", text("x")),
            ),
            // field paths and modifiers
            ("tags:length > 2", cmp(field_mod("tags", Length), ">", num(2.0))),
            ("tags:each = 'a'", cmp(field_mod("tags", Each), "=", text("a"))),
            ("author.name:lower = 'bob'", cmp(field_mod("author.name", Lower), "=", text("bob"))),
            ("comments_via_post.message ~ 'hi'", cmp(field("comments_via_post.message"), "~", text("hi"))),
            ("data.a.b.0 = 1", cmp(field("data.a.b.0"), "=", num(1.0))),
            ("_under = 1", cmp(field("_under"), "=", num(1.0))),
            // functions
            (
                "geoDistance(point.lon, point.lat, 23.3, 42.7) < 25",
                cmp(
                    call(GeoDistance, vec![field("point.lon"), field("point.lat"), num(23.3), num(42.7)]),
                    "<",
                    num(25.0),
                ),
            ),
            (
                "geoDistance(@request.query.lon, -1, null, @second) <= 10.0",
                cmp(
                    call(GeoDistance, vec![req(Query, "lon", None), num(-1.0), Operand::Null, Operand::Macro(Macro::Second)]),
                    "<=",
                    num(10.0),
                ),
            ),
            (
                "strftime('%Y', created) = '2024'",
                cmp(call(Strftime, vec![text("%Y"), field("created")]), "=", text("2024")),
            ),
            (
                "strftime('%Y-%m' , @now, 'start of month', \"+1 day\",) != ''",
                cmp(
                    call(Strftime, vec![text("%Y-%m"), Operand::Macro(Macro::Now), text("start of month"), text("+1 day")]),
                    "!=",
                    text(""),
                ),
            ),
            ("strftime('%s') > 0", cmp(call(Strftime, vec![text("%s")]), ">", num(0.0))),
            (
                "strftime('%d', 1700000000, 'unixepoch') = strftime('%d', '2024-01-02')",
                cmp(
                    call(Strftime, vec![text("%d"), num(1_700_000_000.0), text("unixepoch")]),
                    "=",
                    call(Strftime, vec![text("%d"), text("2024-01-02")]),
                ),
            ),
            // precedence, flattening and groups
            (
                "a = 1 && b = 2 || c = 3",
                Expr::Or(vec![
                    Expr::And(vec![cmp(field("a"), "=", num(1.0)), cmp(field("b"), "=", num(2.0))]),
                    cmp(field("c"), "=", num(3.0)),
                ]),
            ),
            (
                "a = 1 || b = 2 && c = 3",
                Expr::Or(vec![
                    cmp(field("a"), "=", num(1.0)),
                    Expr::And(vec![cmp(field("b"), "=", num(2.0)), cmp(field("c"), "=", num(3.0))]),
                ]),
            ),
            (
                "(a = 1 || b = 2) && c = 3",
                Expr::And(vec![
                    group(Expr::Or(vec![cmp(field("a"), "=", num(1.0)), cmp(field("b"), "=", num(2.0))])),
                    cmp(field("c"), "=", num(3.0)),
                ]),
            ),
            (
                "a=1&&b=2&&c=3||d=4||e=5",
                Expr::Or(vec![
                    Expr::And(vec![
                        cmp(field("a"), "=", num(1.0)),
                        cmp(field("b"), "=", num(2.0)),
                        cmp(field("c"), "=", num(3.0)),
                    ]),
                    cmp(field("d"), "=", num(4.0)),
                    cmp(field("e"), "=", num(5.0)),
                ]),
            ),
            ("((a = 1))", group(group(cmp(field("a"), "=", num(1.0))))),
            ("(a=\"test)\")", group(cmp(field("a"), "=", text("test)")))),
            (
                "((a=1 || a=2) && (c=1))",
                group(Expr::And(vec![
                    group(Expr::Or(vec![cmp(field("a"), "=", num(1.0)), cmp(field("a"), "=", num(2.0))])),
                    group(cmp(field("c"), "=", num(1.0))),
                ])),
            ),
            // comments and whitespace
            (
                "// leading comment\na = 1 // first\n\t&& b = 2 // trailing, no newline",
                Expr::And(vec![cmp(field("a"), "=", num(1.0)), cmp(field("b"), "=", num(2.0))]),
            ),
            (
                "strftime(\n  '%Y', // the format\n  created\n) = '2024'",
                cmp(call(Strftime, vec![text("%Y"), field("created")]), "=", text("2024")),
            ),
        ]
    }

    #[test]
    fn valid_expressions_parse_to_the_expected_tree() {
        let cases = valid_cases();
        assert!(cases.len() >= 30);
        for (input, expected) in cases {
            match parse(input) {
                Ok(actual) => assert_eq!(actual, expected, "input: {input:?}"),
                Err(e) => panic!("{input:?} failed: {e}"),
            }
        }
    }

    #[test]
    fn printed_trees_parse_back_to_the_same_tree() {
        for (input, expected) in valid_cases() {
            let printed = expected.to_string();
            assert_eq!(parse(&printed), Ok(expected), "input {input:?} printed as {printed:?}");
        }
    }

    // --- invalid input ---------------------------------------------------------------------

    type KindCheck = fn(&FilterErrorKind) -> bool;

    fn case(input: &'static str, offset: usize, check: KindCheck) -> (&'static str, usize, KindCheck) {
        (input, offset, check)
    }

    fn invalid_cases() -> Vec<(&'static str, usize, KindCheck)> {
        use FilterErrorKind as K;
        vec![
            case("", 0, |k| *k == K::Empty),
            case("  \n // only a comment", 0, |k| *k == K::Empty),
            // text
            case("a = 'x", 4, |k| *k == K::UnterminatedText),
            case("a = \"x'", 4, |k| *k == K::UnterminatedText),
            case(r"a = 'x\'", 4, |k| *k == K::UnterminatedText),
            case("title = ''demo''", 10, |k| matches!(k, K::Unexpected { .. })),
            case("a = `x`", 4, |k| *k == K::UnexpectedChar('`')),
            // dangling / bare operators and joins
            case("a =", 3, |k| matches!(k, K::Unexpected { expected: "an operand", found } if found == "end of input")),
            case("a = 1 &&", 8, |k| matches!(k, K::Unexpected { expected: "an expression", .. })),
            case("a = 1 || ", 9, |k| matches!(k, K::Unexpected { expected: "an expression", .. })),
            case("&& a = 1", 0, |k| matches!(k, K::Unexpected { expected: "an expression", .. })),
            case("&&", 0, |k| matches!(k, K::Unexpected { .. })),
            case("a = 1 && || b = 2", 9, |k| matches!(k, K::Unexpected { .. })),
            case("= 1", 0, |k| matches!(k, K::Unexpected { expected: "an expression", .. })),
            case("a = = 1", 4, |k| matches!(k, K::Unexpected { expected: "an operand", .. })),
            case("a", 1, |k| matches!(k, K::Unexpected { expected: "a comparison operator", .. })),
            case("a && b", 2, |k| matches!(k, K::Unexpected { expected: "a comparison operator", .. })),
            case("a == 1", 2, |k| *k == K::InvalidOperator("==".into())),
            case("a =! 1", 2, |k| *k == K::InvalidOperator("=!".into())),
            case("a ?? 1", 2, |k| *k == K::InvalidOperator("??".into())),
            case("a = 1 & b = 2", 6, |k| *k == K::InvalidJoin("&".into())),
            case("a = 1 ||| b = 2", 6, |k| *k == K::InvalidJoin("|||".into())),
            // groups
            case("()", 0, |k| *k == K::EmptyGroup),
            case("a = 1 && ()", 9, |k| *k == K::EmptyGroup),
            case("(a = 1", 0, |k| *k == K::UnclosedGroup),
            case("((a = 1)", 0, |k| *k == K::UnclosedGroup),
            case("a = 1)", 5, |k| *k == K::UnmatchedParen),
            case("(a = 1))", 7, |k| *k == K::UnmatchedParen),
            case("(a = 1 b = 2)", 7, |k| matches!(k, K::Unexpected { expected: "\"&&\", \"||\" or \")\"", .. })),
            case("{a = 1}", 0, |k| *k == K::UnexpectedChar('{')),
            case("a = [1]", 4, |k| *k == K::UnexpectedChar('[')),
            // trailing junk
            case("a = 1 b = 2", 6, |k| matches!(k, K::Unexpected { expected: "\"&&\", \"||\" or end of input", .. })),
            case("a = 1 'x'", 6, |k| matches!(k, K::Unexpected { .. })),
            case("a = 1@test", 5, |k| matches!(k, K::Unexpected { .. })),
            case("a = 1 / b", 6, |k| *k == K::InvalidComment),
            case("a = 1\r\n", 5, |k| *k == K::UnexpectedChar('\r')),
            // numbers
            case("a = 1.", 4, |k| *k == K::InvalidNumber("1.".into())),
            case("a = 1.2.3", 4, |k| *k == K::InvalidNumber("1.2.3".into())),
            case("a = - 1", 4, |k| *k == K::InvalidNumber("-".into())),
            case("a = .5", 4, |k| *k == K::UnexpectedChar('.')),
            case("a = 12-3", 6, |k| matches!(k, K::Unexpected { .. })),
            // identifiers, macros, modifiers
            case("a. = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("a..b = 1", 0, |k| matches!(k, K::InvalidIdentifier { reason, .. } if reason == "empty path segment")),
            case("#a = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("created > @nowish", 10, |k| *k == K::UnknownMacro("@nowish".into())),
            case("@foo.bar = 1", 0, |k| *k == K::UnknownMacro("@foo".into())),
            case("@Now = 1", 0, |k| *k == K::UnknownMacro("@Now".into())),
            case("@now:lower = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@now.x = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("a:upper = 1", 0, |k| *k == K::UnknownModifier(":upper".into())),
            case("a:each.b = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("a:each:lower = 1", 0, |k| matches!(k, K::InvalidIdentifier { reason, .. } if reason.contains("one modifier"))),
            case("@request = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@request.foo = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@request.data.x = 1", 0, |k| matches!(k, K::InvalidIdentifier { reason, .. } if reason.contains("@request.body"))),
            case("@request.auth = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@request.body:isset = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@request.method.x = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@request.body.x:nope = 1", 0, |k| *k == K::UnknownModifier(":nope".into())),
            case("@collection = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@collection.posts = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            case("@collection.posts:.x = 1", 0, |k| matches!(k, K::InvalidIdentifier { .. })),
            // functions
            case("foo(1) = 1", 0, |k| *k == K::UnknownFunction("foo".into())),
            case("GeoDistance(1,2,3,4) = 1", 0, |k| *k == K::UnknownFunction("GeoDistance".into())),
            case("geoDistance (1, 2, 3, 4) < 1", 12, |k| matches!(k, K::Unexpected { expected: "a comparison operator", .. })),
            case("geoDistance(1, 2, 3) < 1", 0, |k| matches!(k, K::InvalidArguments { function: "geoDistance", .. })),
            case("geoDistance(1, 2, 3, 'x') < 1", 21, |k| matches!(k, K::InvalidArguments { .. })),
            case("strftime() = ''", 0, |k| matches!(k, K::InvalidArguments { function: "strftime", .. })),
            case("a = strftime(created)", 13, |k| matches!(k, K::InvalidArguments { .. })),
            case("strftime('%Y', created, 5) = ''", 24, |k| matches!(k, K::InvalidArguments { .. })),
            case("strftime('%Y', strftime('%Y')) = ''", 15, |k| matches!(k, K::InvalidArguments { .. })),
            case(
                "strftime('%Y', a, 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j') = ''",
                0,
                |k| matches!(k, K::InvalidArguments { reason, .. } if reason.contains("at most 10")),
            ),
            case("strftime('%Y' created) = ''", 14, |k| matches!(k, K::Unexpected { expected: "\",\" or \")\"", .. })),
            case("strftime('%Y'", 0, |k| *k == K::UnclosedCall("strftime".into())),
            case("strftime('%Y',", 0, |k| *k == K::UnclosedCall("strftime".into())),
            case("strftime(,) = ''", 9, |k| matches!(k, K::Unexpected { expected: "a function argument", .. })),
            case("strftime('%Y',,) = ''", 14, |k| matches!(k, K::Unexpected { .. })),
            case("strftime((1)) = ''", 9, |k| matches!(k, K::Unexpected { .. })),
            case(
                "strftime('%Y', strftime('%Y', strftime('%Y', strftime('%Y')))) = ''",
                45,
                |k| *k == K::CallTooDeep { max: MAX_CALL_DEPTH },
            ),
            case("a = 1, b = 2", 5, |k| matches!(k, K::Unexpected { .. })),
        ]
    }

    #[test]
    fn invalid_expressions_fail_with_the_expected_error_and_offset() {
        let cases = invalid_cases();
        for (input, offset, check) in cases {
            match parse(input) {
                Ok(tree) => panic!("{input:?} parsed as {tree:?}, expected an error"),
                Err(e) => {
                    assert!(check(&e.kind), "{input:?}: unexpected error kind {:?}", e.kind);
                    assert_eq!(e.offset, offset, "{input:?}: wrong offset for {e}");
                }
            }
        }
    }

    #[test]
    fn error_messages_name_the_problem_and_the_position() {
        let message = |input: &str| parse(input).map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert_eq!(message("a = 'x"), "unterminated text literal at byte 4");
        assert_eq!(message("a = 1 &&"), "expected an expression, found end of input at byte 8");
        assert_eq!(message("a = 1 b = 2"), "expected \"&&\", \"||\" or end of input, found identifier \"b\" at byte 6");
        assert_eq!(message("created > @nowish"), "unknown macro \"@nowish\" at byte 10");
        assert_eq!(message("()"), "empty group \"()\" at byte 0");
        assert_eq!(
            message("geoDistance(1, 2, 3) < 1"),
            "geoDistance(): expected 4 arguments, got 3 at byte 0"
        );
    }

    // --- limits ----------------------------------------------------------------------------

    #[test]
    fn input_length_limit_is_in_bytes() {
        let at_limit = format!("a = '{}'", "x".repeat(crate::worker::records::filter::MAX_FILTER_LEN_BYTES - 6));
        assert_eq!(at_limit.len(), crate::worker::records::filter::MAX_FILTER_LEN_BYTES);
        assert!(parse(&at_limit).is_ok());
        let over = format!("{at_limit} ");
        let err = parse(&over).expect_err("one byte over the limit");
        assert!(matches!(err.kind, FilterErrorKind::TooLong { len_bytes: 3501, max_bytes: 3500 }));
        assert_eq!(err.offset, 3500);
        // Multi-byte characters count by bytes, as Go's len() does; the offset stays on a
        // character boundary ("€" is 3 bytes; here they start at 6, 9, …, 3498, 3501).
        let wide = format!("a = 'x{}'", "€".repeat(1200));
        let err = parse(&wide).expect_err("1200 × 3 bytes");
        assert!(matches!(err.kind, FilterErrorKind::TooLong { len_bytes: 3607, max_bytes: 3500 }));
        assert_eq!(err.offset, 3498);
    }

    #[test]
    fn comparison_count_is_limited() {
        let at_limit = vec!["a=1"; 200].join("&&");
        assert!(parse(&at_limit).is_ok());
        let over = vec!["a=1"; 201].join("||");
        let err = parse(&over).expect_err("201 comparisons");
        assert_eq!(err.kind, FilterErrorKind::TooManyComparisons { max: 200 });
        assert_eq!(err.offset, 200 * 5);
    }

    #[test]
    fn group_depth_is_limited_without_overflowing_the_stack() {
        let nest = |depth: usize| format!("{}a=1{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nest(MAX_GROUP_DEPTH)).is_ok());
        let err = parse(&nest(MAX_GROUP_DEPTH + 1)).expect_err("one level too deep");
        assert_eq!((err.offset, err.kind), (MAX_GROUP_DEPTH, FilterErrorKind::TooDeep { max: MAX_GROUP_DEPTH }));
        let huge = "(".repeat(1_000_000);
        let err = parse_with_limits(&huge, UNLIMITED).expect_err("absurd nesting");
        assert_eq!(err.kind, FilterErrorKind::TooDeep { max: MAX_GROUP_DEPTH });
        let calls = "strftime(".repeat(100_000);
        let err = parse_with_limits(&calls, UNLIMITED).expect_err("absurd call nesting");
        assert_eq!(err.kind, FilterErrorKind::CallTooDeep { max: MAX_CALL_DEPTH });
    }

    #[test]
    fn back_relation_segments_split() {
        assert_eq!(Path::back_relation("comments_via_post"), Some(("comments", "post")));
        assert_eq!(Path::back_relation("comments"), None);
        assert_eq!(Path::back_relation("_via_post"), None);
    }

    #[test]
    fn op_kinds_cover_the_any_flag() {
        assert_eq!(Op::from_symbol("?!~"), Some(Op::any(OpKind::NotLike)));
        assert_eq!(Op::from_symbol("!~"), Some(Op::all(OpKind::NotLike)));
        assert_eq!(Op::from_symbol("?"), None);
        assert_eq!(Op::from_symbol("??="), None);
    }

    // --- no-panic fuzzing ------------------------------------------------------------------

    /// xorshift64*: deterministic, dependency-free, good enough to shake a parser.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }

        fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
            items.get(self.below(items.len())).copied().unwrap_or("")
        }
    }

    /// Pieces that hit the interesting lexer and parser states when glued together.
    const FRAGMENTS: &[&str] = &[
        "a", "b.c", "x_via_y.z", "tags:each", ":length", ":lower", ":", ".", "@request.auth.id",
        "@request.body.f:isset", "@request.method", "@collection.p:q.r", "@now", "@second", "@", "#", "_",
        "'t'", "\"u\"", "'", "\"", "\\", "\\'", "1", "-2.5", "-", "0.", "=", "!=", "?=", "?!~", ">=", "~", "!", "?",
        "&&", "||", "&", "|", "(", ")", ",", " ", "\n", "\t", "\r", "//c\n", "/", "geoDistance(", "strftime(",
        "strftime('%Y', created)", "true", "NULL", "é", "€", "😀", "\u{0}",
    ];

    /// Parses and checks the invariants that must hold for *any* input.
    fn check_any(input: &str) {
        match parse(input) {
            Ok(tree) => {
                let printed = tree.to_string();
                assert_eq!(parse_with_limits(&printed, UNLIMITED), Ok(tree), "{input:?} printed as {printed:?}");
            }
            Err(e) => {
                assert!(e.offset <= input.len(), "{input:?}: offset {} out of range", e.offset);
                assert!(input.is_char_boundary(e.offset), "{input:?}: offset {} splits a char", e.offset);
                assert!(!e.to_string().is_empty());
            }
        }
    }

    const GEN_OPERANDS: &[&str] = &[
        "a", "b.c:lower", "x_via_y.z", "tags:each", "@request.auth.id", "@request.body.x:isset", "@request.method",
        "@collection.p:q.r", "@now", "@weekday", r"'t\'x'", r#""u\"v""#, "'%'", "1", "-2.5", "0.125", "true",
        "NULL", "geoDistance(a.lon, a.lat, 1, -2)", "strftime('%Y', created, 'utc',)", "strftime('%s')",
    ];
    const GEN_OPS: &[&str] = &["=", "!=", ">", ">=", "<", "<=", "~", "!~", "?=", "?!=", "?>", "?>=", "?<", "?<=", "?~", "?!~"];
    const GEN_SPACE: &[&str] = &[" ", "", "\n", "\t", " // note\n"];

    /// Builds a random *valid* expression, exercising precedence, grouping and trivia.
    fn gen_expr(rng: &mut Rng, depth: usize) -> String {
        let choice = if depth >= 4 { 0 } else { rng.below(3) };
        let sp = |rng: &mut Rng| rng.pick(GEN_SPACE).to_string();
        match choice {
            0 => {
                let (l, op, r) = (rng.pick(GEN_OPERANDS), rng.pick(GEN_OPS), rng.pick(GEN_OPERANDS));
                format!("{l}{}{op}{}{r}", sp(rng), sp(rng))
            }
            1 => format!("({}{}{})", sp(rng), gen_expr(rng, depth + 1), sp(rng)),
            _ => {
                let mut out = gen_expr(rng, depth + 1);
                for _ in 0..1 + rng.below(3) {
                    let join = if rng.below(2) == 0 { "&&" } else { "||" };
                    out = format!("{out}{}{join}{}{}", sp(rng), sp(rng), gen_expr(rng, depth + 1));
                }
                out
            }
        }
    }

    #[test]
    fn random_valid_expressions_parse_and_round_trip() {
        let mut rng = Rng(0x5851_F42D_4C95_7F2D);
        for _ in 0..3000 {
            let input = gen_expr(&mut rng, 0);
            let tree = parse_with_limits(&input, UNLIMITED).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let printed = tree.to_string();
            assert_eq!(parse_with_limits(&printed, UNLIMITED), Ok(tree), "{input:?} printed as {printed:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..4000 {
            let len = rng.below(80);
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() >> 24) as u8).collect();
            check_any(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn random_fragment_soup_never_panics() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut parsed_ok = 0;
        for _ in 0..6000 {
            let pieces = 1 + rng.below(12);
            let input: String = (0..pieces).map(|_| rng.pick(FRAGMENTS)).collect();
            check_any(&input);
            parsed_ok += usize::from(parse(&input).is_ok());
        }
        // Guards against a generator so broken it never reaches the parser's happy path.
        assert!(parsed_ok > 0);
    }

    #[test]
    fn mutated_valid_expressions_never_panic() {
        let seeds: Vec<&str> = valid_cases().into_iter().map(|(input, _)| input).collect();
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let mut parsed_ok = 0;
        for _ in 0..6000 {
            let seed = seeds.get(rng.below(seeds.len())).copied().unwrap_or("a = 1");
            let mut chars: Vec<char> = seed.chars().collect();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(chars.len() + 1);
                match rng.below(6) {
                    0 if !chars.is_empty() => {
                        let end = (at + 1 + rng.below(4)).min(chars.len());
                        chars.drain(at.min(end)..end);
                    }
                    1 => {
                        let insert: Vec<char> = rng.pick(FRAGMENTS).chars().collect();
                        chars.splice(at..at, insert);
                    }
                    2 if at < chars.len() => {
                        let replacement = rng.pick(FRAGMENTS).chars().next().unwrap_or(' ');
                        if let Some(c) = chars.get_mut(at) {
                            *c = replacement;
                        }
                    }
                    3 => chars.truncate(at),
                    4 if !chars.is_empty() => {
                        let other = rng.below(chars.len());
                        let at = at.min(chars.len() - 1);
                        chars.swap(at, other);
                    }
                    _ => {
                        let copy: Vec<char> = chars.iter().skip(at).take(1 + rng.below(8)).copied().collect();
                        chars.splice(at..at, copy);
                    }
                }
            }
            let input: String = chars.into_iter().collect();
            check_any(&input);
            parsed_ok += usize::from(parse(&input).is_ok());
        }
        // Many mutations (e.g. duplicating whitespace) keep the input valid; if none did, the
        // round-trip check in `check_any` would never run.
        assert!(parsed_ok > 0);
    }
}
