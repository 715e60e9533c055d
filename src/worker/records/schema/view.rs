//! The fields of a view collection, inferred from its SELECT as PocketBase 0.40 infers them:
//! a column taken straight from a collection's field (`title`, `p.image AS pic`) becomes a copy
//! of that field (type and options) under the column's name; a collection's `id` selected under
//! another name becomes a single relation to that collection; `count(…)`/`total(…)` and casts to
//! a numeric type are numbers, casts to text are text, casts to bool are bools; the `id` column
//! is the view's text primary key; anything else is a `json` field.
//!
//! Pure: it reads the query text (through [`super::sql_lex`]) and the stored collections, never
//! the database, and it does not decide whether the query is valid (SQLite did that before, and
//! its column names are the ones given here). A part of the query it cannot follow only makes
//! those columns `json`.

use std::collections::HashMap;

use super::field::{BoolOptions, JsonOptions, NumberOptions, RelationOptions, TextOptions};
use super::names::default_field_id;
use super::sql_lex::{tokens, Kind, Token};
use super::{Collection, Field, FieldKind};

/// One top-level piece of a statement: a token, or a parenthesised group (its inner tokens).
#[derive(Debug)]
enum Atom<'a> {
    Tok(Token<'a>),
    Group(Vec<Token<'a>>),
}

impl Atom<'_> {
    fn keyword(&self, word: &str) -> bool {
        matches!(self, Atom::Tok(t) if t.is_keyword(word))
    }
    fn punct(&self, c: char) -> bool {
        matches!(self, Atom::Tok(t) if t.is_punct(c))
    }
    fn ident(&self) -> Option<String> {
        match self {
            Atom::Tok(t) if t.kind == Kind::Ident => Some(t.name()),
            _ => None,
        }
    }
}

/// The statement's solid tokens at parenthesis depth 0, with every group folded into one atom.
fn atoms(query: &str) -> Vec<Atom<'_>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut group = Vec::new();
    for t in tokens(query).into_iter().filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment)) {
        if depth == 0 {
            if t.is_punct('(') {
                depth = 1;
            } else {
                out.push(Atom::Tok(t));
            }
            continue;
        }
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
            if depth == 0 {
                out.push(Atom::Group(std::mem::take(&mut group)));
                continue;
            }
        }
        group.push(t);
    }
    if depth > 0 {
        out.push(Atom::Group(group));
    }
    out
}

/// Keywords that end the FROM clause.
const AFTER_FROM: &[&str] = &["WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "WINDOW", "UNION", "EXCEPT", "INTERSECT"];
/// Words that qualify a JOIN; dropped when splitting the FROM clause into tables.
const JOIN_WORDS: &[&str] = &["NATURAL", "LEFT", "RIGHT", "FULL", "INNER", "OUTER", "CROSS"];

fn split_at<'x, 'a>(atoms: &'x [Atom<'a>], is_sep: impl Fn(&Atom<'a>) -> bool) -> Vec<&'x [Atom<'a>]> {
    atoms.split(is_sep).filter(|part| !part.is_empty()).collect()
}

/// A column reference `name`, `t.name` or `schema.t.name` (`*` for a wildcard): (qualifier, name).
fn column_ref(expr: &[Atom<'_>]) -> Option<(Option<String>, String)> {
    let last = match expr.last()? {
        a if a.punct('*') => "*".to_owned(),
        a => a.ident()?,
    };
    match expr.len() {
        1 => Some((None, last)),
        3 | 5 if expr[expr.len() - 2].punct('.') => Some((Some(expr[expr.len() - 3].ident()?), last)),
        _ => None,
    }
}

/// The field a non-column expression gives, when PocketBase gives it a type other than json.
fn expression_kind(expr: &[Atom<'_>]) -> Option<FieldKind> {
    let [Atom::Tok(func), Atom::Group(args)] = expr else { return None };
    if func.is_keyword("count") || func.is_keyword("total") {
        return Some(FieldKind::Number(NumberOptions::default()));
    }
    if !func.is_keyword("cast") {
        return None;
    }
    let mut depth = 0i32;
    let mut target = None;
    for (i, t) in args.iter().enumerate() {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
        } else if depth == 0 && t.is_keyword("AS") {
            target = args.get(i + 1);
        }
    }
    let target = target.filter(|t| t.kind == Kind::Ident)?.name().to_ascii_lowercase();
    match target.as_str() {
        "real" | "integer" | "int" | "decimal" | "numeric" => Some(FieldKind::Number(NumberOptions::default())),
        "text" => Some(FieldKind::Text(TextOptions::default())),
        "bool" | "boolean" => Some(FieldKind::Bool(BoolOptions::default())),
        _ => None,
    }
}

/// The view's `id` field: PocketBase's text primary key.
pub fn view_id_field() -> Field {
    let mut f = Field::new(
        "id",
        FieldKind::Text(TextOptions { required: true, primary_key: true, pattern: "^[a-z0-9]+$".into(), ..Default::default() }),
    );
    f.system = true;
    f
}

/// What a column is when nothing better is known.
fn default_field(name: &str) -> Field {
    Field::new(name, FieldKind::Json(JsonOptions::default()))
}

/// `field` of `source` as the view's column `alias`.
fn from_source(source: &Collection, field: &Field, alias: &str) -> Field {
    if field.name == "id" {
        let rel = RelationOptions { collection_id: source.id.clone(), max_select: 1, ..Default::default() };
        return Field::new(alias, FieldKind::Relation(rel));
    }
    let mut copy = field.clone();
    copy.name = alias.to_owned();
    copy.id = default_field_id(copy.kind.type_name(), alias);
    // A view's column is never one of the view's own system fields.
    copy.system = false;
    copy
}

/// The fields of a view whose SELECT is `query` and whose columns SQLite names `columns` (in
/// order), given the stored `collections`.
pub fn infer_fields(query: &str, columns: &[String], collections: &[Collection]) -> Vec<Field> {
    let atoms = atoms(query);
    let select_at = atoms.iter().position(|a| a.keyword("SELECT"));
    let from_at = atoms.iter().position(|a| a.keyword("FROM"));
    let mut inferred: HashMap<String, Field> = HashMap::new();
    if let Some(select_at) = select_at {
        let from_at = from_at.filter(|&f| f > select_at).unwrap_or(atoms.len());
        let end = atoms[from_at..].iter().position(|a| AFTER_FROM.iter().any(|k| a.keyword(k))).map_or(atoms.len(), |p| p + from_at);
        // Tables by alias (lowercase); the first is the one bare column names come from.
        let mut tables: Vec<(String, Option<&Collection>)> = Vec::new();
        let from_part = if from_at < end { &atoms[from_at + 1..end] } else { &[][..] };
        for part in split_at(from_part, |a| a.punct(',') || a.keyword("JOIN")) {
            let part: Vec<&Atom<'_>> = part.iter().filter(|a| !JOIN_WORDS.iter().any(|k| a.keyword(k))).collect();
            let stop = part.iter().position(|a| a.keyword("ON") || a.keyword("USING")).unwrap_or(part.len());
            let part = &part[..stop];
            let Some(first) = part.first() else { continue };
            let (name, rest) = match part.get(1) {
                Some(dot) if dot.punct('.') => (part.get(2).and_then(|a| a.ident()), &part[3.min(part.len())..]),
                _ => (first.ident(), &part[1..]),
            };
            let alias = match rest {
                [as_kw, alias] if as_kw.keyword("AS") => alias.ident(),
                [alias] => alias.ident(),
                _ => None,
            };
            let collection = name.as_ref().and_then(|n| collections.iter().find(|c| c.name.eq_ignore_ascii_case(n)));
            if let Some(key) = alias.or(name) {
                tables.push((key.to_ascii_lowercase(), collection));
            }
        }
        let table = |qualifier: &Option<String>| -> Option<&Collection> {
            match qualifier {
                Some(q) => tables.iter().find(|(a, _)| a.eq_ignore_ascii_case(q)).and_then(|(_, c)| *c),
                None => tables.first().and_then(|(_, c)| *c),
            }
        };
        let mut select_from = select_at + 1;
        while atoms.get(select_from).is_some_and(|a| a.keyword("DISTINCT") || a.keyword("ALL")) {
            select_from += 1;
        }
        let select_list = if select_from < from_at { &atoms[select_from..from_at] } else { &[][..] };
        for item in split_at(select_list, |a| a.punct(',')) {
            let n = item.len();
            // `expr AS alias`, or `expr alias` right after a name or a parenthesised group.
            let (expr, alias) = if n >= 3 && item[n - 2].keyword("AS") {
                (&item[..n - 2], item[n - 1].ident())
            } else if n >= 2 && item[n - 1].ident().is_some() && (matches!(item[n - 2], Atom::Group(_)) || item[n - 2].ident().is_some()) {
                (&item[..n - 1], item[n - 1].ident())
            } else {
                (item, None)
            };
            let reference = column_ref(expr);
            if let Some((qualifier, name)) = &reference {
                if name == "*" {
                    let sources: Vec<&Collection> = match qualifier {
                        Some(_) => table(qualifier).into_iter().collect(),
                        None => tables.iter().filter_map(|(_, c)| *c).collect(),
                    };
                    for source in sources {
                        for f in &source.fields {
                            inferred.entry(f.name.clone()).or_insert_with(|| from_source(source, f, &f.name));
                        }
                    }
                    continue;
                }
                let alias = alias.unwrap_or_else(|| name.clone());
                if let Some(source) = table(qualifier) {
                    if let Some(f) = source.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)) {
                        inferred.insert(alias.clone(), from_source(source, f, &alias));
                    }
                }
                continue;
            }
            if let (Some(alias), Some(kind)) = (alias, expression_kind(expr)) {
                inferred.insert(alias.clone(), Field::new(&alias, kind));
            }
        }
    }
    columns
        .iter()
        .map(|name| {
            if name == "id" {
                view_id_field()
            } else {
                inferred.remove(name).unwrap_or_else(|| default_field(name))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::records::schema::field::{FileOptions, SelectOptions};
    use crate::worker::records::schema::CollectionType;

    fn posts() -> Vec<Collection> {
        let mut tags = Collection::scaffold(CollectionType::Base, "tags");
        tags.id = "tags_id".into();
        tags.fields.push(Field::new("label", FieldKind::Text(TextOptions::default())));
        let mut posts = Collection::scaffold(CollectionType::Base, "posts");
        posts.fields.push(Field::new("title", FieldKind::Text(TextOptions { max: 50, ..Default::default() })));
        let image = FileOptions { max_select: 3, max_size: 1000, mime_types: vec!["image/png".into()], ..Default::default() };
        posts.fields.push(Field::new("image", FieldKind::File(image)));
        let rel = RelationOptions { collection_id: "tags_id".into(), max_select: 1, ..Default::default() };
        posts.fields.push(Field::new("tag", FieldKind::Relation(rel)));
        posts.fields.push(Field::new("kind", FieldKind::Select(SelectOptions { values: vec!["a".into()], max_select: 1, ..Default::default() })));
        posts.fields.push(Field::new("n", FieldKind::Number(NumberOptions::default())));
        vec![tags, posts]
    }

    fn shape(query: &str, columns: &[&str]) -> Vec<(String, &'static str)> {
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        infer_fields(query, &columns, &posts()).into_iter().map(|f| (f.name.clone(), f.kind.type_name())).collect()
    }

    fn names(pairs: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        pairs.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect()
    }

    #[test]
    fn columns_taken_from_a_field_copy_it_with_its_options() {
        let columns = ["id", "title", "image"];
        let fields = infer_fields("SELECT id, title, image FROM posts", &columns.map(String::from), &posts());
        assert_eq!(fields[0], view_id_field());
        let FieldKind::File(o) = &fields[2].kind else { panic!("image is {:?}", fields[2].kind) };
        assert_eq!((o.max_select, o.max_size, o.mime_types.clone()), (3, 1000, vec!["image/png".to_owned()]));
        assert_eq!(fields[2].name, "image");
        let FieldKind::Text(o) = &fields[1].kind else { panic!("title is {:?}", fields[1].kind) };
        assert_eq!(o.max, 50);
    }

    #[test]
    fn aliases_joins_quotes_and_expressions_follow_pocketbase() {
        let q = "SELECT DISTINCT p.id, p.title AS headline, p.tag tg, t.id AS tagref, `t`.\"label\", [kind] k, \
                 count(p.id) AS c, total(p.n) tt, CAST(p.n AS INTEGER) ci, cast(p.n as text) ct, cast(p.n as boolean) cb, \
                 sum(p.n) s, (1 + 2) e, p.nosuch ns, q.x qx, p.n + 1 AS plus \
                 FROM posts AS p LEFT OUTER JOIN tags t ON t.id = p.tag, other q WHERE p.n > 0 GROUP BY p.id";
        let columns = ["id", "headline", "tg", "tagref", "label", "k", "c", "tt", "ci", "ct", "cb", "s", "e", "ns", "qx", "plus"];
        let want = [
            ("id", "text"), ("headline", "text"), ("tg", "relation"), ("tagref", "relation"), ("label", "text"),
            ("k", "select"), ("c", "number"), ("tt", "number"), ("ci", "number"), ("ct", "text"), ("cb", "bool"),
            ("s", "json"), ("e", "json"), ("ns", "json"), ("qx", "json"), ("plus", "json"),
        ];
        assert_eq!(shape(q, &columns), names(&want));
        let fields = infer_fields(q, &columns.map(String::from), &posts());
        let FieldKind::Relation(r) = &fields[3].kind else { panic!() };
        assert_eq!((r.collection_id.as_str(), r.max_select), ("tags_id", 1), "an id is a relation to its collection");
    }

    #[test]
    fn names_match_case_insensitively_and_wildcards_expand() {
        assert_eq!(shape("select ID, TITLE from POSTS", &["id", "TITLE"]), names(&[("id", "text"), ("TITLE", "text")]));
        assert_eq!(shape("SELECT * FROM posts", &["id", "title", "n"]), names(&[("id", "text"), ("title", "text"), ("n", "number")]));
        // Not from a collection at all: json, as PocketBase answers.
        assert_eq!(shape("SELECT id, name FROM _params", &["id", "name"]), names(&[("id", "text"), ("name", "json")]));
    }
}
