//! The syntax tree of a parsed filter or API rule. It owns the *shape* of an expression and its
//! canonical text form ([`std::fmt::Display`]); it must not know about collections, columns,
//! SQL or request data — deciding what `author.name` or `@request.auth.id` means is the
//! compiler's job.
//!
//! Everything here is plain data with public fields so a compiler can pattern-match on it.
//! A parsed tree re-prints (via `Display`) to text that parses back to an equal tree.

use std::fmt;

/// A boolean expression.
///
/// `And`/`Or` are n-ary and always hold at least two items: a run of the same join at one
/// nesting level (`a && b && c`) becomes one node. `&&` binds tighter than `||`, as in SQL,
/// so `a || b && c` is `Or[a, And[b, c]]`. `Group` records explicit parentheses; it changes
/// nothing semantically (the tree already encodes precedence) but keeps the source shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Compare { left: Operand, op: Op, right: Operand },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Group(Box<Expr>),
}

/// The comparison family, without the "any" flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `~` (SQL `LIKE`, "contains" unless the literal carries its own `%`)
    Like,
    /// `!~` (SQL `NOT LIKE`)
    NotLike,
}

/// A comparison operator. `any` is the `?` prefix: with it a multi-valued operand matches when
/// at least one value satisfies the comparison; without it every value must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Op {
    pub kind: OpKind,
    pub any: bool,
}

impl Op {
    pub const fn all(kind: OpKind) -> Op {
        Op { kind, any: false }
    }

    pub const fn any(kind: OpKind) -> Op {
        Op { kind, any: true }
    }

    /// Parses one of the 16 operator spellings (`=`, `?!~`, …); anything else is `None`.
    pub fn from_symbol(symbol: &str) -> Option<Op> {
        let (any, base) = match symbol.strip_prefix('?') {
            Some(rest) => (true, rest),
            None => (false, symbol),
        };
        let kind = match base {
            "=" => OpKind::Eq,
            "!=" => OpKind::Neq,
            ">" => OpKind::Gt,
            ">=" => OpKind::Gte,
            "<" => OpKind::Lt,
            "<=" => OpKind::Lte,
            "~" => OpKind::Like,
            "!~" => OpKind::NotLike,
            _ => return None,
        };
        Some(Op { kind, any })
    }

    pub fn symbol(self) -> &'static str {
        match (self.any, self.kind) {
            (false, OpKind::Eq) => "=",
            (false, OpKind::Neq) => "!=",
            (false, OpKind::Gt) => ">",
            (false, OpKind::Gte) => ">=",
            (false, OpKind::Lt) => "<",
            (false, OpKind::Lte) => "<=",
            (false, OpKind::Like) => "~",
            (false, OpKind::NotLike) => "!~",
            (true, OpKind::Eq) => "?=",
            (true, OpKind::Neq) => "?!=",
            (true, OpKind::Gt) => "?>",
            (true, OpKind::Gte) => "?>=",
            (true, OpKind::Lt) => "?<",
            (true, OpKind::Lte) => "?<=",
            (true, OpKind::Like) => "?~",
            (true, OpKind::NotLike) => "?!~",
        }
    }
}

/// One side of a comparison, or a function argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field of the collection being queried: `title`, `author.name`, `data.a.0`,
    /// `comments_via_post.message`, `tags:each`.
    Field(Path),
    /// `@request.<source>[.path][:modifier]`. For `Context` and `Method` the path is empty.
    Request { source: RequestSource, path: Path },
    /// `@collection.<nameOrId>[:alias].<path>`: an unconstrained join on another collection.
    /// Different aliases are independent joins.
    Collection { collection: String, alias: Option<String>, path: Path },
    /// A datetime macro such as `@now`.
    Macro(Macro),
    /// Quoted text with the quote escapes already removed. Other backslashes are kept: they
    /// mean something to `LIKE`.
    Text(String),
    /// A number literal. PocketBase binds every number as a float64, so this does too.
    Number(f64),
    /// `true` / `false`, any letter case. PocketBase lets a field that is literally named
    /// `true`/`false`/`null` shadow these keywords; a compiler that wants that quirk checks
    /// the schema for the lower-case name when it meets `Bool`/`Null`.
    Bool(bool),
    /// `null`, any letter case.
    Null,
    Call(Call),
}

/// A dotted path with an optional modifier on its last segment. Segments are non-empty and
/// made of ASCII letters, digits and `_` (they may be all digits: JSON array indexes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path {
    pub segments: Vec<String>,
    pub modifier: Option<Modifier>,
}

impl Path {
    /// Splits a back-relation segment `<collection>_via_<field>` into its two names. Whether
    /// the segment really is a back-relation depends on the schema (a plain field may contain
    /// `_via_`), so the parser leaves segments as text and offers this helper.
    pub fn back_relation(segment: &str) -> Option<(&str, &str)> {
        let (collection, field) = segment.split_once("_via_")?;
        if collection.is_empty() || field.is_empty() {
            return None;
        }
        Some((collection, field))
    }
}

/// The part of the request an `@request.*` operand reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestSource {
    Context,
    Method,
    Auth,
    Body,
    Query,
    Headers,
}

impl RequestSource {
    pub fn from_name(name: &str) -> Option<RequestSource> {
        Some(match name {
            "context" => RequestSource::Context,
            "method" => RequestSource::Method,
            "auth" => RequestSource::Auth,
            "body" => RequestSource::Body,
            "query" => RequestSource::Query,
            "headers" => RequestSource::Headers,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RequestSource::Context => "context",
            RequestSource::Method => "method",
            RequestSource::Auth => "auth",
            RequestSource::Body => "body",
            RequestSource::Query => "query",
            RequestSource::Headers => "headers",
        }
    }

    /// `context` and `method` are single values; the others are maps addressed by a path.
    pub fn takes_path(self) -> bool {
        !matches!(self, RequestSource::Context | RequestSource::Method)
    }
}

/// A `:name` suffix on the last path segment. Which operands accept which modifier (e.g.
/// `:changed` only on `@request.body.*`) is a semantic rule left to the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    Isset,
    Changed,
    Length,
    Each,
    Lower,
}

impl Modifier {
    pub fn from_name(name: &str) -> Option<Modifier> {
        Some(match name {
            "isset" => Modifier::Isset,
            "changed" => Modifier::Changed,
            "length" => Modifier::Length,
            "each" => Modifier::Each,
            "lower" => Modifier::Lower,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Modifier::Isset => "isset",
            Modifier::Changed => "changed",
            Modifier::Length => "length",
            Modifier::Each => "each",
            Modifier::Lower => "lower",
        }
    }
}

/// The datetime macros. All evaluate in UTC at query time; the first nine are datetime
/// strings, the rest integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Macro {
    Now,
    Yesterday,
    Tomorrow,
    TodayStart,
    TodayEnd,
    MonthStart,
    MonthEnd,
    YearStart,
    YearEnd,
    Second,
    Minute,
    Hour,
    Day,
    /// 1–12.
    Month,
    /// 0 = Sunday.
    Weekday,
    Year,
}

impl Macro {
    pub const ALL: [Macro; 16] = [
        Macro::Now,
        Macro::Yesterday,
        Macro::Tomorrow,
        Macro::TodayStart,
        Macro::TodayEnd,
        Macro::MonthStart,
        Macro::MonthEnd,
        Macro::YearStart,
        Macro::YearEnd,
        Macro::Second,
        Macro::Minute,
        Macro::Hour,
        Macro::Day,
        Macro::Month,
        Macro::Weekday,
        Macro::Year,
    ];

    /// Looks a macro up by its name without the `@`. Case-sensitive, like PocketBase.
    pub fn from_name(name: &str) -> Option<Macro> {
        Macro::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Macro::Now => "now",
            Macro::Yesterday => "yesterday",
            Macro::Tomorrow => "tomorrow",
            Macro::TodayStart => "todayStart",
            Macro::TodayEnd => "todayEnd",
            Macro::MonthStart => "monthStart",
            Macro::MonthEnd => "monthEnd",
            Macro::YearStart => "yearStart",
            Macro::YearEnd => "yearEnd",
            Macro::Second => "second",
            Macro::Minute => "minute",
            Macro::Hour => "hour",
            Macro::Day => "day",
            Macro::Month => "month",
            Macro::Weekday => "weekday",
            Macro::Year => "year",
        }
    }

    /// True for the integer macros (`@second` … `@year`), false for the datetime ones.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Macro::Second | Macro::Minute | Macro::Hour | Macro::Day | Macro::Month | Macro::Weekday | Macro::Year
        )
    }
}

/// A function call. The parser has already checked the argument count and kinds against the
/// function's signature, so a compiler can index `args` by position for the fixed ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub function: Function,
    pub args: Vec<Operand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `geoDistance(lonA, latA, lonB, latB)`: great-circle distance in km. Exactly four
    /// arguments, each an identifier (field, `@request.*`, macro, `null`, …) or a number.
    GeoDistance,
    /// `strftime(format[, timeValue[, modifier…]])`: SQLite's strftime, 1 to 10 arguments.
    /// The format and the modifiers are text; the time value is text, a number or an
    /// identifier.
    Strftime,
}

impl Function {
    /// Case-sensitive, like PocketBase's function table.
    pub fn from_name(name: &str) -> Option<Function> {
        match name {
            "geoDistance" => Some(Function::GeoDistance),
            "strftime" => Some(Function::Strftime),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::GeoDistance => "geoDistance",
            Function::Strftime => "strftime",
        }
    }
}

impl Operand {
    /// Whether PocketBase would have scanned this as an identifier token (as opposed to text,
    /// a number or a call). Function signatures are written in those terms.
    pub fn is_identifier(&self) -> bool {
        matches!(
            self,
            Operand::Field(_)
                | Operand::Request { .. }
                | Operand::Collection { .. }
                | Operand::Macro(_)
                | Operand::Bool(_)
                | Operand::Null
        )
    }
}

// --- canonical text form -------------------------------------------------------------------

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Compare { left, op, right } => write!(f, "{left} {} {right}", op.symbol()),
            Expr::And(items) => join(f, items, " && ", true),
            Expr::Or(items) => join(f, items, " || ", false),
            Expr::Group(inner) => write!(f, "({inner})"),
        }
    }
}

/// An `Or` directly inside an `And` only exists in hand-built trees (the parser always wraps
/// it in a `Group`), but printing it bare would change its meaning, so it gets parentheses.
fn join(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, is_and: bool) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if is_and && matches!(item, Expr::Or(_)) {
            write!(f, "({item})")?;
        } else {
            write!(f, "{item}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))?;
        if let Some(m) = self.modifier {
            write!(f, ":{}", m.name())?;
        }
        Ok(())
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(path) => write!(f, "{path}"),
            Operand::Request { source, path } => {
                write!(f, "@request.{}", source.name())?;
                if !path.segments.is_empty() {
                    f.write_str(".")?;
                }
                write!(f, "{path}")
            }
            Operand::Collection { collection, alias, path } => {
                write!(f, "@collection.{collection}")?;
                if let Some(alias) = alias {
                    write!(f, ":{alias}")?;
                }
                write!(f, ".{path}")
            }
            Operand::Macro(m) => write!(f, "@{}", m.name()),
            // The language has no way to write text ending in a backslash (the closing quote
            // would count as escaped); parsed text never ends in one, so this round-trips.
            Operand::Text(text) => write!(f, "'{}'", text.replace('\'', "\\'")),
            // Rust prints floats without an exponent, which is the only form fexpr accepts.
            Operand::Number(n) => write!(f, "{n}"),
            Operand::Bool(b) => write!(f, "{b}"),
            Operand::Null => f.write_str("null"),
            Operand::Call(call) => {
                write!(f, "{}(", call.function.name())?;
                for (i, arg) in call.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
        }
    }
}
