//! Validation tables: one per field type, each case asserting the stored value on success or
//! `data.<field>.code` on failure, plus the auth form rules and update semantics.

use super::*;
use crate::worker::records::schema::field::*;
use crate::worker::records::schema::{Collection, CollectionType, Field, FieldKind};
use serde_json::json;

/// 2024-01-02 03:04:05.678Z in Unix milliseconds.
const NOW: i64 = 1_704_164_645_678;

fn base_with(field: Field) -> Collection {
    let mut c = Collection::scaffold(CollectionType::Base, "things");
    c.fields.push(field);
    c
}

fn opts(existing: Option<&Map<String, Value>>) -> WriteOptions<'_> {
    WriteOptions { existing, access: Access::Default, now_millis: NOW, new_files: &[] }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Expected outcome of one case.
enum Want {
    Ok(SqlValue),
    Err(&'static str),
}
use Want::{Err as E, Ok as O};

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// Runs `cases` as creates of a record holding only `field` (absent when the input is `None`).
fn run(field: Field, cases: Vec<(Option<Value>, Want)>) -> usize {
    let c = base_with(field.clone());
    let n = cases.len();
    for (input, want) in cases {
        let mut body = Map::new();
        if let Some(v) = &input {
            body.insert(field.name.clone(), v.clone());
        }
        let got = validate_record(&c, &body, &opts(None));
        match (want, got) {
            (O(sql), Ok(v)) => {
                let col = v.columns.iter().find(|(k, _)| *k == field.name).map(|(_, v)| v.clone());
                assert_eq!(col, Some(sql), "{} {input:?}", field.name);
            }
            (E(code), Err(e)) => {
                let data = Value::Object(e.to_data());
                assert_eq!(data[&field.name]["code"], json!(code), "{} {input:?}: {data}", field.name);
                assert!(data[&field.name]["message"].as_str().is_some_and(|m| m.ends_with('.')), "sentenized");
            }
            (O(sql), Err(e)) => panic!("{} {input:?}: wanted {sql:?}, got {e:?}", field.name),
            (E(code), Ok(v)) => panic!("{} {input:?}: wanted {code}, got {v:?}", field.name),
        }
    }
    n
}

/// Marks how many cases a table ran (keeps `run`'s count visible at the call site).
fn count(n: usize) {
    assert!(n > 0);
}

#[test]
fn text_table() {
    let f = Field::new("title", FieldKind::Text(TextOptions { required: true, min: 2, max: 5, pattern: "^[a-zé ]+$".into(), ..Default::default() }));
    count(run(
        f,
        vec![
            (Some(json!("abc")), O(text("abc"))),
            (Some(json!("éé")), O(text("éé"))),
            (Some(json!("ééééé")), O(text("ééééé"))),
            (None, E("validation_required")),
            (Some(json!("")), E("validation_required")),
            (Some(json!(null)), E("validation_required")),
            (Some(json!("a")), E("validation_min_text_constraint")),
            (Some(json!("abcdef")), E("validation_max_text_constraint")),
            (Some(json!("ABC")), E("validation_invalid_format")),
            (Some(json!(["ab"])), E("validation_invalid_value")),
            (Some(json!({"a": 1})), E("validation_invalid_value")),
        ],
    ));
    let plain = Field::new("note", FieldKind::Text(TextOptions::default()));
    count(run(
        plain,
        vec![
            (None, O(text(""))),
            (Some(json!(12.5)), O(text("12.5"))),
            (Some(json!(true)), O(text("true"))),
            (Some(json!("x".repeat(5000))), O(text(&"x".repeat(5000)))),
            (Some(json!("x".repeat(5001))), E("validation_max_text_constraint")),
        ],
    ));
    let broken_pattern = Field::new("code", FieldKind::Text(TextOptions { pattern: "([".into(), ..Default::default() }));
    count(run(broken_pattern, vec![(Some(json!("x")), E("validation_invalid_format")), (Some(json!("")), O(text("")))]));
}

#[test]
fn id_and_autogenerate() {
    let c = Collection::scaffold(CollectionType::Base, "things");
    let v = validate_record(&c, &Map::new(), &opts(None)).expect("generated id");
    let id = match v.columns.first() {
        Some((k, SqlValue::Text(id))) if k == "id" => id.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(id.len(), 15);
    let cases = vec![
        (json!("abcdefghij12345"), None),
        (json!("short"), Some("validation_min_text_constraint")),
        (json!("ABCDEFGHIJ12345"), Some("validation_invalid_format")),
    ];
    for (given, want) in cases {
        let got = validate_record(&c, &obj(json!({"id": given})), &opts(None));
        assert_eq!(got.err().map(|e| e.to_data()["id"]["code"].clone()), want.map(|c| json!(c)), "{given}");
    }
    // A custom id pattern gets PocketBase's filesystem-safety checks.
    let mut custom = Collection::scaffold(CollectionType::Base, "things");
    if let Some(FieldKind::Text(o)) = custom.fields.first_mut().map(|f| &mut f.kind) {
        o.pattern = String::new();
        o.min = 1;
    }
    for (given, code) in [("a.b", "validation_forbidden_pk_character"), ("a b", "validation_forbidden_pk_character"), ("con", "validation_reserved_pk")] {
        let e = validate_record(&custom, &obj(json!({"id": given})), &opts(None)).expect_err(given);
        assert_eq!(e.to_data()["id"]["code"], json!(code), "{given}");
    }
    count(6);
}

#[test]
fn number_table() {
    let f = Field::new("n", FieldKind::Number(NumberOptions { min: Some(-10.0), max: Some(100.0), ..Default::default() }));
    count(run(
        f,
        vec![
            (None, O(SqlValue::Integer(0))),
            (Some(json!(5)), O(SqlValue::Integer(5))),
            (Some(json!(5.0)), O(SqlValue::Integer(5))),
            (Some(json!(2.5)), O(SqlValue::Real(2.5))),
            (Some(json!("42")), O(SqlValue::Integer(42))),
            (Some(json!("")), O(SqlValue::Integer(0))),
            (Some(json!(-10)), O(SqlValue::Integer(-10))),
            (Some(json!(-10.5)), E("validation_min_number_constraint")),
            (Some(json!(100.01)), E("validation_max_number_constraint")),
            (Some(json!("abc")), E("validation_not_a_number")),
            (Some(json!("inf")), E("validation_not_a_number")),
            (Some(json!("NaN")), E("validation_not_a_number")),
            (Some(json!([1])), E("validation_not_a_number")),
        ],
    ));
    let f = Field::new("n", FieldKind::Number(NumberOptions { required: true, only_int: true, ..Default::default() }));
    count(run(
        f,
        vec![
            (Some(json!(0)), E("validation_required")),
            (None, E("validation_required")),
            (Some(json!(1.5)), E("validation_only_int_constraint")),
            (Some(json!(1e300)), E("validation_only_int_constraint")),
            (Some(json!(3)), O(SqlValue::Integer(3))),
            (Some(json!(1e17)), O(SqlValue::Real(1e17))),
        ],
    ));
    let e = validate_record(
        &base_with(Field::new("n", FieldKind::Number(NumberOptions { min: Some(5.0), ..Default::default() }))),
        &obj(json!({"n": 1})),
        &opts(None),
    )
    .expect_err("below min");
    assert_eq!(e.to_data()["n"]["message"], json!("Must be larger than 5.000000."), "Go's %f");
}

#[test]
fn bool_table() {
    let f = Field::new("b", FieldKind::Bool(BoolOptions::default()));
    count(run(
        f,
        vec![
            (None, O(SqlValue::Integer(0))),
            (Some(json!(true)), O(SqlValue::Integer(1))),
            (Some(json!("true")), O(SqlValue::Integer(1))),
            (Some(json!("1")), O(SqlValue::Integer(1))),
            (Some(json!(0)), O(SqlValue::Integer(0))),
            (Some(json!("")), O(SqlValue::Integer(0))),
            (Some(json!("yes")), E("validation_invalid_value")),
        ],
    ));
    let f = Field::new("agree", FieldKind::Bool(BoolOptions { required: true, ..Default::default() }));
    count(run(f, vec![(Some(json!(false)), E("validation_required")), (None, E("validation_required")), (Some(json!(true)), O(SqlValue::Integer(1)))]));
}

#[test]
fn email_table() {
    let f = Field::new("mail", FieldKind::Email(DomainOptions { only_domains: vec!["example.com".into()], ..Default::default() }));
    count(run(
        f,
        vec![
            (None, O(text(""))),
            (Some(json!("a@example.com")), O(text("a@example.com"))),
            (Some(json!("not-an-email")), E("validation_is_email")),
            (Some(json!("a@other.com")), E("validation_email_domain_not_allowed")),
            (Some(json!(["a@example.com"])), E("validation_invalid_value")),
        ],
    ));
    let f = Field::new("mail", FieldKind::Email(DomainOptions { required: true, except_domains: vec!["spam.io".into()], ..Default::default() }));
    count(run(f, vec![(Some(json!("")), E("validation_required")), (Some(json!("x@spam.io")), E("validation_email_domain_not_allowed")), (Some(json!("x@ok.io")), O(text("x@ok.io")))]));
}

#[test]
fn url_table() {
    let f = Field::new("site", FieldKind::Url(DomainOptions { except_domains: vec!["bad.com".into()], ..Default::default() }));
    count(run(
        f,
        vec![
            (None, O(text(""))),
            (Some(json!("https://example.com/a?b=1")), O(text("https://example.com/a?b=1"))),
            (Some(json!("example.com")), E("validation_invalid_url")),
            (Some(json!("https://")), E("validation_invalid_url")),
            (Some(json!("https://bad.com/x")), E("validation_url_domain_not_allowed")),
        ],
    ));
    let f = Field::new("site", FieldKind::Url(DomainOptions { required: true, only_domains: vec!["good.com".into()], ..Default::default() }));
    count(run(f, vec![(None, E("validation_required")), (Some(json!("http://good.com")), O(text("http://good.com"))), (Some(json!("http://evil.com")), E("validation_url_domain_not_allowed"))]));
}

#[test]
fn editor_table() {
    let f = Field::new("body", FieldKind::Editor(EditorOptions { required: true, max_size: 10, ..Default::default() }));
    count(run(
        f,
        vec![
            (Some(json!("<p>hi</p>")), O(text("<p>hi</p>"))),
            (Some(json!("<p>hello</p>")), E("validation_content_size_limit")),
            (Some(json!("éééééé")), E("validation_content_size_limit")),
            (Some(json!("")), E("validation_required")),
        ],
    ));
}

#[test]
fn date_table() {
    let f = Field::new("when", FieldKind::Date(DateOptions { min: "2020-01-01 00:00:00.000Z".into(), max: "2030-01-01".into(), ..Default::default() }));
    count(run(
        f,
        vec![
            (None, O(text(""))),
            (Some(json!("")), O(text(""))),
            (Some(json!("2024-01-02T15:04:05.123Z")), O(text("2024-01-02 15:04:05.123Z"))),
            (Some(json!("2024-01-02T15:04:05+02:00")), O(text("2024-01-02 13:04:05.000Z"))),
            (Some(json!("2024-01-02")), O(text("2024-01-02 00:00:00.000Z"))),
            (Some(json!("2024-01-02 15:04:05Z")), O(text("2024-01-02 15:04:05.000Z"))),
            (Some(json!("2019-12-31 23:59:59.999Z")), E("validation_min_greater_equal_than_required")),
            (Some(json!("2030-01-01 00:00:00.001Z")), E("validation_max_less_equal_than_required")),
            (Some(json!("not a date")), E("validation_date_invalid")),
            (Some(json!(1_704_164_645)), E("validation_date_invalid")),
        ],
    ));
    let f = Field::new("when", FieldKind::Date(DateOptions { required: true, ..Default::default() }));
    count(run(f, vec![(None, E("validation_required")), (Some(json!(null)), E("validation_required"))]));
}

#[test]
fn autodate_is_server_set() {
    let mut c = Collection::scaffold(CollectionType::Base, "things").with_timestamps();
    c.fields.push(Field::new("touched", FieldKind::Autodate(AutodateOptions { on_update: true, ..Default::default() })));
    let body = obj(json!({"created": "1999-01-01 00:00:00.000Z"}));
    let v = validate_record(&c, &body, &opts(None)).expect("create");
    let col = |v: &Validated, k: &str| v.columns.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(col(&v, "created"), Some(text("2024-01-02 03:04:05.678Z")), "client value ignored");
    assert_eq!(col(&v, "updated"), Some(text("2024-01-02 03:04:05.678Z")));
    assert_eq!(col(&v, "touched"), Some(text("")), "onUpdate only: empty on create");
    let stored = obj(json!({"id": "abcdefghij12345", "created": "2000-01-01 00:00:00.000Z", "updated": "2000-01-01 00:00:00.000Z", "touched": ""}));
    let v = validate_record(&c, &Map::new(), &opts(Some(&stored))).expect("update");
    assert_eq!(col(&v, "created"), None);
    assert_eq!(col(&v, "updated"), Some(text("2024-01-02 03:04:05.678Z")));
    assert_eq!(col(&v, "touched"), Some(text("2024-01-02 03:04:05.678Z")));
    count(6);
}

#[test]
fn select_table() {
    let values = vec!["a".to_string(), "b".to_string(), "c".to_string(), "1".to_string()];
    let single = Field::new("pick", FieldKind::Select(SelectOptions { values: values.clone(), max_select: 1, ..Default::default() }));
    count(run(
        single,
        vec![
            (None, O(text(""))),
            (Some(json!("a")), O(text("a"))),
            (Some(json!(["a", "b"])), O(text("b"))),
            (Some(json!(1)), O(text("1"))),
            (Some(json!("z")), E("validation_invalid_value")),
        ],
    ));
    let multi = Field::new("tags", FieldKind::Select(SelectOptions { values, max_select: 2, required: true, ..Default::default() }));
    count(run(
        multi,
        vec![
            (Some(json!(["a", "b", "a"])), O(text("[\"a\",\"b\"]"))),
            (Some(json!("c")), O(text("[\"c\"]"))),
            (Some(json!("[\"b\",\"c\"]")), O(text("[\"b\",\"c\"]"))),
            (Some(json!(["a", "b", "c"])), E("validation_too_many_values")),
            (Some(json!([])), E("validation_required")),
            (Some(json!(["a", "zz"])), E("validation_invalid_value")),
        ],
    ));
}

#[test]
fn relation_table_and_ids_to_check() {
    let f = Field::new("refs", FieldKind::Relation(RelationOptions { collection_id: "pbc_9".into(), min_select: 2, max_select: 3, required: true, ..Default::default() }));
    count(run(
        f.clone(),
        vec![
            (Some(json!(["r1", "r2"])), O(text("[\"r1\",\"r2\"]"))),
            (Some(json!(["r1"])), E("validation_not_enough_values")),
            (Some(json!(["r1", "r2", "r3", "r4"])), E("validation_too_many_values")),
            (Some(json!("")), E("validation_required")),
            (Some(json!(["r1", "r1"])), E("validation_not_enough_values")),
        ],
    ));
    let single = Field::new("owner", FieldKind::Relation(RelationOptions { collection_id: "pbc_9".into(), max_select: 1, ..Default::default() }));
    count(run(single, vec![(None, O(text(""))), (Some(json!(["u1", "u2"])), O(text("u2")))]));
    let v = validate_record(&base_with(f), &obj(json!({"refs": ["r1", "r2"]})), &opts(None)).expect("valid");
    assert_eq!(v.relations, vec![RelationRefs { field: "refs".into(), collection_id: "pbc_9".into(), ids: vec!["r1".into(), "r2".into()] }]);
}

#[test]
fn file_table() {
    let f = Field::new("docs", FieldKind::File(FileOptions { max_select: 2, ..Default::default() }));
    let c = base_with(f.clone());
    let stored = obj(json!({"id": "abcdefghij12345", "docs": ["a_1.png", "b_2.png", "c_3.png"]}));
    let cases = vec![
        (json!(["a_1.png"]), Ok(text("[\"a_1.png\"]"))),
        (json!([]), Ok(text("[]"))),
        (json!(["a_1.png", "x.png"]), Err("validation_invalid_file")),
        (json!(["a_1.png", "b_2.png", "c_3.png"]), Err("validation_too_many_files")),
    ];
    for (input, want) in cases {
        let got = validate_record(&c, &obj(json!({"docs": input})), &opts(Some(&stored)));
        match (want, got) {
            (Ok(sql), Ok(v)) => assert_eq!(v.columns, vec![("docs".to_string(), sql)], "{input}"),
            (Err(code), Err(e)) => assert_eq!(e.to_data()["docs"]["code"], json!(code), "{input}"),
            (w, g) => panic!("{input}: {w:?} vs {g:?}"),
        }
    }
    // On create no name is known yet: names can only come from uploads.
    count(run(f, vec![(None, O(text("[]"))), (Some(json!(["x.png"])), E("validation_invalid_file"))]) + 4);
    let required = Field::new("avatar", FieldKind::File(FileOptions { required: true, ..Default::default() }));
    count(run(required, vec![(Some(json!("")), E("validation_required"))]));
}

#[test]
fn json_table() {
    let f = Field::new("meta", FieldKind::Json(JsonOptions { max_size: 20, ..Default::default() }));
    count(run(
        f,
        vec![
            (None, O(SqlValue::Null)),
            (Some(json!(null)), O(SqlValue::Null)),
            (Some(json!({"a": [1, 2]})), O(text("{\"a\":[1,2]}"))),
            (Some(json!("[1,2]")), O(text("[1,2]"))),
            (Some(json!("[1,2")), O(text("\"[1,2\""))),
            (Some(json!("hello")), O(text("\"hello\""))),
            (Some(json!("")), O(text("\"\""))),
            (Some(json!("true")), O(text("true"))),
            (Some(json!("12")), O(text("12"))),
            (Some(json!(12.5)), O(text("12.5"))),
            (Some(json!({"long": "xxxxxxxxxxxxxxxxxxxx"})), E("validation_json_size_limit")),
        ],
    ));
    let f = Field::new("meta", FieldKind::Json(JsonOptions { required: true, ..Default::default() }));
    count(run(
        f,
        vec![
            (None, E("validation_required")),
            (Some(json!([])), E("validation_required")),
            (Some(json!({})), E("validation_required")),
            (Some(json!("")), E("validation_required")),
            (Some(json!(0)), O(text("0"))),
        ],
    ));
}

#[test]
fn geo_point_table() {
    let f = Field::new("at", FieldKind::GeoPoint(GeoPointOptions::default()));
    count(run(
        f,
        vec![
            (None, O(text("{\"lon\":0,\"lat\":0}"))),
            (Some(json!({"lon": 23.5, "lat": -42})), O(text("{\"lon\":23.5,\"lat\":-42}"))),
            (Some(json!("{\"lon\":1,\"lat\":2}")), O(text("{\"lon\":1,\"lat\":2}"))),
            (Some(json!({"lon": "180", "lat": "90"})), O(text("{\"lon\":180,\"lat\":90}"))),
            (Some(json!({"lon": 181, "lat": 0})), E("validation_invalid_longitude")),
            (Some(json!({"lon": 0, "lat": -90.5})), E("validation_invalid_latitude")),
            (Some(json!({"lon": 0, "lat": "x"})), E("validation_invalid_value")),
            (Some(json!([1, 2])), E("validation_invalid_value")),
        ],
    ));
    let f = Field::new("at", FieldKind::GeoPoint(GeoPointOptions { required: true, ..Default::default() }));
    count(run(f, vec![(Some(json!({"lon": 0, "lat": 0})), E("validation_required")), (Some(json!({"lon": 0.1})), O(text("{\"lon\":0.1,\"lat\":0}")))]));
}

#[test]
fn password_field_table() {
    let f = Field::new("pin", FieldKind::Password(PasswordOptions { min: 4, max: 6, pattern: "^[0-9]+$".into(), ..Default::default() }));
    let c = base_with(f);
    let cases = vec![
        (json!("1234"), None),
        (json!("123"), Some("validation_min_text_constraint")),
        (json!("1234567"), Some("validation_max_text_constraint")),
        (json!("12a4"), Some("validation_invalid_format")),
        (json!(["1234"]), Some("validation_invalid_value")),
    ];
    for (input, want) in cases {
        let got = validate_record(&c, &obj(json!({"pin": input})), &opts(None));
        match want {
            None => {
                let v = got.expect("valid");
                assert_eq!(v.passwords, vec![("pin".to_string(), PasswordInput::Plain("1234".into()))]);
                assert!(v.columns.iter().all(|(k, _)| k != "pin"), "the caller writes the hash");
                assert_eq!(format!("{:?}", v.passwords), "[(\"pin\", PasswordInput::Plain(<redacted>))]");
            }
            Some(code) => assert_eq!(got.expect_err("invalid").to_data()["pin"]["code"], json!(code), "{input}"),
        }
    }
    count(5);
}

fn users() -> Collection {
    Collection::scaffold(CollectionType::Auth, "users").with_timestamps()
}

fn stored_user() -> Map<String, Value> {
    obj(json!({"id": "abcdefghij12345", "email": "old@example.com", "emailVisibility": false, "verified": false,
        "created": "2000-01-01 00:00:00.000Z", "updated": "2000-01-01 00:00:00.000Z"}))
}

fn codes(e: &SchemaErrors) -> Vec<(String, &'static str)> {
    e.0.iter().map(|(k, v)| (k.clone(), v.code)).collect()
}

#[test]
fn auth_create_rules() {
    let c = users();
    let ok = obj(json!({"email": "a@example.com", "password": "12345678", "passwordConfirm": "12345678"}));
    let v = validate_record(&c, &ok, &opts(None)).expect("valid");
    let token = v.columns.iter().find(|(k, _)| k == "tokenKey").map(|(_, v)| v.clone());
    assert!(matches!(token, Some(SqlValue::Text(ref t)) if t.len() == 50), "{token:?}");
    assert_eq!(v.passwords, vec![("password".to_string(), PasswordInput::Plain("12345678".into()))]);
    assert_eq!(v.old_password, None);

    let cases: Vec<(Value, Access, Vec<(&str, &str)>)> = vec![
        (json!({"email": "a@example.com"}), Access::Default, vec![("password", "validation_required"), ("passwordConfirm", "validation_required")]),
        (json!({"email": "a@example.com", "password": "12345678", "passwordConfirm": "12345679"}), Access::Default, vec![("passwordConfirm", "validation_values_mismatch")]),
        (json!({"email": "a@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true}), Access::Default, vec![("verified", "validation_values_mismatch")]),
        (json!({"email": "a@example.com", "password": "1234567", "passwordConfirm": "1234567"}), Access::Default, vec![("password", "validation_min_text_constraint")]),
        (json!({"email": "", "password": "12345678", "passwordConfirm": "12345678"}), Access::Default, vec![("email", "validation_required")]),
        (json!({"email": "nope", "password": "12345678", "passwordConfirm": "12345678"}), Access::Default, vec![("email", "validation_is_email")]),
    ];
    for (body, access, want) in cases {
        let e = validate_record(&c, &obj(body.clone()), &WriteOptions { existing: None, access, now_millis: NOW, new_files: &[] }).expect_err("invalid");
        let want: Vec<(String, &str)> = want.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
        assert_eq!(codes(&e), want, "{body}");
    }
    let managed = obj(json!({"email": "a@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true}));
    assert!(validate_record(&c, &managed, &WriteOptions { existing: None, access: Access::Manager, now_millis: NOW, new_files: &[] }).is_ok());
    count(8);
}

#[test]
fn auth_update_rules() {
    let c = users();
    let stored = stored_user();
    let user = |body: Value| validate_record(&c, &obj(body), &opts(Some(&stored)));
    let manager = |body: Value| validate_record(&c, &obj(body), &WriteOptions { existing: Some(&stored), access: Access::Manager, now_millis: NOW, new_files: &[] });

    let v = user(json!({"emailVisibility": true})).expect("plain update");
    let names: Vec<&str> = v.columns.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["emailVisibility", "updated"], "only the body's fields and server-set ones");

    let e = user(json!({"email": "new@example.com"})).expect_err("email is fixed");
    assert_eq!(codes(&e), vec![("email".to_string(), "validation_values_mismatch")]);
    assert!(user(json!({"email": "old@example.com"})).is_ok(), "unchanged is fine");

    let e = user(json!({"password": "newpass123", "passwordConfirm": "newpass123"})).expect_err("needs oldPassword");
    assert_eq!(codes(&e), vec![("oldPassword".to_string(), "validation_required")]);
    let e = user(json!({"oldPassword": "x"})).expect_err("old alone");
    assert_eq!(codes(&e), vec![("password".to_string(), "validation_required"), ("passwordConfirm".to_string(), "validation_required")]);

    let v = user(json!({"password": "newpass123", "passwordConfirm": "newpass123", "oldPassword": "oldpass123"})).expect("change");
    assert_eq!(v.old_password, Some(PasswordInput::Plain("oldpass123".into())), "the caller verifies it");
    assert!(v.columns.iter().any(|(k, _)| k == "tokenKey"), "a new password renews the token key");

    let v = manager(json!({"email": "new@example.com", "verified": true})).expect("manager");
    let names: Vec<&str> = v.columns.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["tokenKey", "email", "verified", "updated"]);
    assert_eq!(v.old_password, None);

    let e = user(json!({"id": "zzzzzzzzzzzzzzz"})).expect_err("pk change");
    assert_eq!(codes(&e), vec![("id".to_string(), "validation_pk_change")]);
    assert!(user(json!({"id": "abcdefghij12345"})).is_ok_and(|v| v.columns.iter().all(|(k, _)| k != "id")));
    count(9);
}

#[test]
fn update_validates_the_merged_record() {
    let c = base_with(Field::new("title", FieldKind::Text(TextOptions { required: true, ..Default::default() })));
    let stored = obj(json!({"id": "abcdefghij12345", "title": "kept"}));
    let v = validate_record(&c, &Map::new(), &opts(Some(&stored))).expect("nothing to change");
    assert!(v.columns.is_empty());
    let e = validate_record(&c, &obj(json!({"title": ""})), &opts(Some(&stored))).expect_err("cleared");
    assert_eq!(codes(&e), vec![("title".to_string(), "validation_required")]);
    count(2);
}

#[test]
fn many_errors_at_once_are_keyed_by_field() {
    let mut c = Collection::scaffold(CollectionType::Base, "things");
    c.fields.push(Field::new("n", FieldKind::Number(NumberOptions { required: true, ..Default::default() })));
    c.fields.push(Field::new("b", FieldKind::Bool(BoolOptions { required: true, ..Default::default() })));
    let e = validate_record(&c, &obj(json!({"ignored": 1})), &opts(None)).expect_err("two");
    assert_eq!(codes(&e), vec![("b".to_string(), "validation_required"), ("n".to_string(), "validation_required")]);
}


#[test]
fn echoed_file_names_are_cut_on_character_boundaries() {
    assert_eq!(truncate_at_char("ééé", 3), "é");
    assert_eq!(truncate_at_char("abc", 10), "abc");
    let c = base_with(Field::new("docs", FieldKind::File(FileOptions::default())));
    let long = "é".repeat(300);
    let e = validate_record(&c, &obj(json!({"docs": long})), &opts(None)).expect_err("unknown name");
    let msg = e.to_data()["docs"]["message"].as_str().map(str::len).unwrap_or(0);
    assert!(msg < 300, "{msg}");
}
