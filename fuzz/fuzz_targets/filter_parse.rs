//! Fuzzes the filter/rule language: any byte string must parse to `Ok` or `Err`, never panic,
//! and whatever parses must also compile to SQL against a small schema without panicking.
//! Run by `bench/fuzz.sh` (10 minutes), not by CI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultbase::worker::records::filter;
use vaultbase::worker::records::query::{QueryBuilder, RequestContext};
use vaultbase::worker::records::schema::field::{RelationOptions, SelectOptions, TextOptions};
use vaultbase::worker::records::schema::{Collection, CollectionType, Field, FieldKind};

fn schema() -> Vec<Collection> {
    let users = Collection::scaffold(CollectionType::Auth, "users");
    let mut posts = Collection::scaffold(CollectionType::Base, "posts");
    posts.fields.push(Field::new("title", FieldKind::Text(TextOptions::default())));
    posts.fields.push(Field::new("tags", FieldKind::Select(SelectOptions { values: vec!["a".into(), "b".into()], max_select: 2, ..Default::default() })));
    posts.fields.push(Field::new("author", FieldKind::Relation(RelationOptions { collection_id: users.id.clone(), max_select: 1, ..Default::default() })));
    vec![users, posts]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(expr) = filter::parse(text) else { return };
    let schema = schema();
    let ctx = RequestContext::new(std::time::UNIX_EPOCH);
    if let Ok(qb) = QueryBuilder::new(&schema[1], &schema, &ctx, "posts") {
        if let Ok(qb) = qb.filter(&expr, false) {
            let _ = qb.finish().standalone_where();
        }
    }
});
