//! Front end of PocketBase's filter/rule language ("fexpr"): text in, [`Expr`] tree or a
//! positioned [`FilterError`] out. It owns the grammar, the input limits and the error type.
//! It must stay pure — no schema lookups, no SQL, no request data, no I/O — so the same tree
//! can serve list filters, API rules and realtime subscription filters, and so any byte string
//! (however hostile) yields `Ok` or `Err`, never a panic or unbounded recursion.
//!
//! Grammar (whitespace is space, tab and newline only; `//` starts a comment to end of line):
//!
//! ```text
//! filter     = or_expr EOF
//! or_expr    = and_expr { "||" and_expr }          (&& binds tighter than ||, as in SQL)
//! and_expr   = primary { "&&" primary }
//! primary    = "(" or_expr ")" | comparison
//! comparison = operand OP operand                   OP: = != > >= < <= ~ !~ and ?-prefixed
//! operand    = identifier | number | text | call
//! call       = name "(" [ operand { "," operand } [","] ] ")"   (no space before "(")
//! ```
//!
//! Associativity does not matter for meaning (AND and OR are associative, also under SQL's
//! three-valued logic), so a run of one join at one level becomes a single n-ary node in
//! source order. See [`ast`] for how identifiers are split into fields, `@request.*`,
//! `@collection.*`, macros and literals.

pub mod ast;
mod lexer;
mod parser;

pub use ast::{Call, Expr, Function, Macro, Modifier, Op, OpKind, Operand, Path, RequestSource};
pub use parser::{parse, parse_with_limits};

/// PocketBase refuses client filters longer than this (`MaxFilterLength`, measured with Go's
/// `len`, i.e. in bytes).
pub const MAX_FILTER_LEN_BYTES: usize = 3500;
/// PocketBase refuses a filter or rule with more comparisons than this
/// (`DefaultFilterExprLimit`).
pub const MAX_COMPARISONS_PER_FILTER: usize = 200;
/// Parenthesis nesting allowed before we give up. PocketBase has no such limit; ours bounds
/// the parser's recursion, and no real filter comes near it.
pub const MAX_GROUP_DEPTH: usize = 64;
/// A call may hold calls as arguments, but only this many calls deep in total (fexpr's
/// function-depth rule: arguments nest two levels below the outer call).
pub const MAX_CALL_DEPTH: usize = 3;

/// The tunable input limits. Group and call depth are not tunable: they protect the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_len_bytes: usize,
    pub max_comparisons: usize,
}

impl Limits {
    /// What PocketBase enforces on a `?filter=` query parameter. (It checks only the
    /// comparison count on API rules; a caller parsing stored rules may raise the length.)
    pub const CLIENT_FILTER: Limits =
        Limits { max_len_bytes: MAX_FILTER_LEN_BYTES, max_comparisons: MAX_COMPARISONS_PER_FILTER };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::CLIENT_FILTER
    }
}

/// A syntax error, with the byte offset into the input where the offending token starts
/// (for an error at the end of input, the input's length). Displays as
/// `"<message> at byte <offset>"`, e.g. `unterminated text literal at byte 8`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct FilterError {
    pub offset: usize,
    pub kind: FilterErrorKind,
}

impl FilterError {
    pub(crate) fn new(offset: usize, kind: FilterErrorKind) -> FilterError {
        FilterError { offset, kind }
    }
}

/// What went wrong. The `Display` text is the human message (without the position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterErrorKind {
    #[error("the filter is {len_bytes} bytes long; at most {max_bytes} are allowed")]
    TooLong { len_bytes: usize, max_bytes: usize },
    #[error("empty filter expression")]
    Empty,
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("unterminated text literal")]
    UnterminatedText,
    #[error("invalid number {0:?}")]
    InvalidNumber(String),
    #[error("number {0:?} is out of range")]
    NumberOutOfRange(String),
    #[error("invalid operator {0:?}")]
    InvalidOperator(String),
    #[error("invalid join operator {0:?} (expected \"&&\" or \"||\")")]
    InvalidJoin(String),
    #[error("a comment must start with \"//\"")]
    InvalidComment,
    #[error("invalid identifier {ident:?}: {reason}")]
    InvalidIdentifier { ident: String, reason: String },
    #[error("unknown macro {0:?}")]
    UnknownMacro(String),
    #[error("unknown modifier {0:?}")]
    UnknownModifier(String),
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    #[error("{function}(): {reason}")]
    InvalidArguments { function: &'static str, reason: String },
    #[error("unclosed call to {0}(): expected ')'")]
    UnclosedCall(String),
    #[error("function calls nest at most {max} deep")]
    CallTooDeep { max: usize },
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: &'static str, found: String },
    #[error("unclosed '(': expected ')'")]
    UnclosedGroup,
    #[error("unmatched ')'")]
    UnmatchedParen,
    #[error("empty group \"()\"")]
    EmptyGroup,
    #[error("parentheses nest at most {max} deep")]
    TooDeep { max: usize },
    #[error("more than {max} comparisons")]
    TooManyComparisons { max: usize },
}
