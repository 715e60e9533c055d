//! `fields` parsing, key picking and the excerpt modifier.

use super::*;
use serde_json::json;

fn pick(raw: &str) -> Fields {
    match Projection::parse(raw).expect("parses") {
        Projection::Pick(f) => f,
        Projection::All => panic!("expected a projection for {raw:?}"),
    }
}

fn excerpt(max: usize, ellipsis: bool) -> Excerpt {
    Excerpt { max_chars: max, with_ellipsis: ellipsis }
}

#[test]
fn empty_means_everything() {
    assert_eq!(Projection::parse("").expect("ok"), Projection::All);
    assert_eq!(Projection::All.key("anything"), KeyPick::Keep(None));
}

#[test]
fn plain_paths_keep_exactly_what_they_name() {
    let f = pick("id,title");
    assert_eq!(f.key("id"), KeyPick::Keep(None));
    assert_eq!(f.key("title"), KeyPick::Keep(None));
    assert_eq!(f.key("views"), KeyPick::Drop);
    assert_eq!(f.key("expand"), KeyPick::Drop);
    // Whitespace separates too, and runs of separators count once.
    let f = pick(" id , ,title\tviews");
    for k in ["id", "title", "views"] {
        assert_eq!(f.key(k), KeyPick::Keep(None), "{k}");
    }
}

#[test]
fn nested_paths_and_the_wildcard() {
    let f = pick("*,expand.author.name");
    assert_eq!(f.key("title"), KeyPick::Keep(None), "* keeps keys no path starts with");
    let KeyPick::Nested(expand) = f.key("expand") else { panic!("expand is projected") };
    let KeyPick::Nested(author) = expand.key("author") else { panic!("author is projected") };
    assert_eq!(author.key("name"), KeyPick::Keep(None));
    assert_eq!(author.key("id"), KeyPick::Drop);
    assert_eq!(expand.key("tags"), KeyPick::Drop);

    let f = pick("expand.*");
    let KeyPick::Nested(expand) = f.key("expand") else { panic!("nested") };
    assert_eq!(expand.key("whatever"), KeyPick::Keep(None));
    // An exact path wins over a longer one: the whole value stays.
    assert_eq!(pick("expand,expand.author.name").key("expand"), KeyPick::Keep(None));
    // A trailing dot names the key itself; a prefix that is not a whole key does not match.
    assert_eq!(pick("title.").key("title"), KeyPick::Keep(None));
    assert_eq!(pick("tit").key("title"), KeyPick::Drop);
    assert_eq!(pick("titles").key("title"), KeyPick::Drop);
}

#[test]
fn modifiers_parse_like_pocketbase() {
    let f = pick("title,content:excerpt(200,true)");
    assert_eq!(f.key("content"), KeyPick::Keep(Some(excerpt(200, true))));
    assert_eq!(f.key("title"), KeyPick::Keep(None));
    assert_eq!(pick("c:excerpt(5)").key("c"), KeyPick::Keep(Some(excerpt(5, false))));
    assert_eq!(pick("c:excerpt(5, 1)").key("c"), KeyPick::Keep(Some(excerpt(5, true))));
    assert_eq!(pick("c:excerpt(5,nope)").key("c"), KeyPick::Keep(Some(excerpt(5, false))));
    assert_eq!(pick("c:excerpt(5.0,t)").key("c"), KeyPick::Keep(Some(excerpt(5, true))));
    assert_eq!(pick("*:excerpt(3)").key("any"), KeyPick::Keep(Some(excerpt(3, false))));
    assert_eq!(pick("a:excerpt(3),a").key("a"), KeyPick::Keep(None), "a repeated path replaces the earlier one");
}

#[test]
fn malformed_expressions_are_errors() {
    for bad in ["c:excerpt(5", "c:excerpt()", "c:excerpt(0)", "c:excerpt(-1)", "c:excerpt(x)", "c:excerpt(1,2,3)", "c:upper", "c:", "c:excerpt(\"5\")", "'open"] {
        assert!(Projection::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn tokenizer_groups_parentheses_and_quotes() {
    assert_eq!(tokens::scan("a, b, (c, d)", PATH_SEPARATORS, false).expect("ok"), ["a", "b", "(c, d)"]);
    assert_eq!(tokens::scan("a 'b c' d", PATH_SEPARATORS, false).expect("ok"), ["a", "'b c'", "d"]);
    assert_eq!(tokens::scan("excerpt(200, true)", MODIFIER_SEPARATORS, true).expect("ok"), ["excerpt", "200", "true"]);
    assert_eq!(tokens::scan(" ", PATH_SEPARATORS, false).expect("ok"), [""]);
    assert!(tokens::scan("a(b", PATH_SEPARATORS, false).is_err());
    assert!(tokens::scan("a\\(b", PATH_SEPARATORS, false).is_ok(), "an escaped parenthesis does not open a group");
}

#[test]
fn value_projection_reaches_into_json() {
    let mut v = json!({"a": 1, "b": {"c": 2, "d": "<p>hello world</p>"}, "list": [{"x": 1, "y": 2}, {"x": 3}], "tags": ["p", "q"]});
    pick("b.d:excerpt(5,true),list.x,tags.x").pick_value(&mut v);
    assert_eq!(v, json!({"b": {"d": "hello..."}, "list": [{"x": 1}, {"x": 3}], "tags": ["p", "q"]}));
}

#[test]
fn excerpt_strips_markup_and_cuts_by_characters() {
    let e = excerpt(5, true);
    assert_eq!(e.apply("<p>Hello <b>world</b></p>"), "Hello...");
    assert_eq!(excerpt(11, false).apply("<p>Hello <b>world</b></p>"), "Hello world");
    assert_eq!(excerpt(100, false).apply("<p>Hello <b>world</b></p>"), "Hello world");
    assert_eq!(excerpt(100, true).apply("short"), "short", "no ellipsis when nothing was cut");
    // Blocks become spaces, inline elements do not; whitespace collapses.
    assert_eq!(excerpt(100, false).apply("<h1>Title</h1><p>one\n\n  two</p><div>x<span>y</span>z</div>"), "Title one two xyz");
    assert_eq!(excerpt(100, false).apply("a<br>b"), "ab", "br is inline in PocketBase's list");
    // Excluded elements lose their content, raw-text elements are never parsed as markup.
    assert_eq!(excerpt(100, false).apply("a<script>if (x < y) { alert('</p>') }</script>b<style>p{}</style>c"), "abc");
    assert_eq!(excerpt(100, false).apply("<form><p>in form</p><input value='x'></form>after<img src='a>b.png'>"), "after");
    assert_eq!(excerpt(100, false).apply("x<svg><svg></svg><text>t</text></svg>y"), "xy");
    assert_eq!(excerpt(100, false).apply("<!-- note -->fish &amp; chips &lt;3 &#65;&#x42; &bogus;"), "fish & chips <3 AB &bogus;");
    assert_eq!(excerpt(100, false).apply("1 < 2 and a</div>b"), "1 < 2 and ab", "stray end tags add nothing");
    // Cut at characters, then trimmed before the ellipsis.
    assert_eq!(excerpt(3, true).apply("héllo"), "hél...");
    assert_eq!(excerpt(6, true).apply("<p>Hello</p><p>world</p>"), "Hello...");
    assert_eq!(excerpt(4, false).apply("日本語のテキスト"), "日本語の");
}

#[test]
fn excerpt_never_panics_on_broken_markup() {
    for s in ["<", "<<", "</", "<a", "<a href='", "<!--", "<!", "&#", "&#x;", "&#99999999999;", "<script>", "<p", "</p", "é<é>é", "<b>\u{0}</b>"] {
        let _ = excerpt(3, true).apply(s);
    }
}

#[test]
fn long_path_lists_are_refused_and_repeats_do_not_count() {
    // 200,000 distinct paths: refused at the limit instead of compared pairwise (the old
    // dedupe looked every path up in the whole list, on an async thread).
    let raw: String = (0..200_000).map(|i| format!("f{i},")).collect();
    assert_eq!(Projection::parse(&raw), Err(FieldsError::TooManyPaths { max: MAX_FIELDS_PATHS }));
    // Up to the limit is fine, and a repeated path is one path (the last modifier wins).
    let at_limit: String = (0..MAX_FIELDS_PATHS).map(|i| format!("f{i},")).collect();
    assert!(Projection::parse(&at_limit).is_ok());
    let repeated = format!("{at_limit}{}", "f0:excerpt(2),".repeat(10_000));
    let Ok(Projection::Pick(fields)) = Projection::parse(&repeated) else { panic!("repeats are not new paths") };
    assert_eq!(fields.key("f0"), KeyPick::Keep(Some(Excerpt { max_chars: 2, with_ellipsis: false })));
}
