//! Names of collections and fields: what PocketBase accepts, and the derived default ids.
//!
//! A name becomes a SQL identifier (table or column), so this is the gate that keeps request
//! text out of SQL: only `^\w+$` (ASCII letters, digits, underscore) passes.
//!
//! Collection names are stricter than PocketBase's (which allows 255 characters and a leading
//! digit): the record queries use the collection name as its own bare table alias, which
//! SQLite reads only when it does not start with a digit, and the query compiler caps aliases
//! at 64 characters. A name the queries could not use is refused here rather than accepted
//! and left unqueryable. (SQL keywords are refused by the store, which asks SQLite.)

/// Longest collection name (the query compiler's alias cap, `query::MAX_ALIAS_CHARS`).
pub const MAX_COLLECTION_NAME_CHARS: usize = 64;
/// Longest field name.
pub const MAX_FIELD_NAME_CHARS: usize = 100;

/// Field names no collection may use: they collide with record JSON keys or SQL.
pub const RESERVED_FIELD_NAMES: &[&str] = &["null", "true", "false", "_rowid_", "collectionId", "collectionName", "expand"];
/// Further names reserved in auth collections (request-only keys).
pub const RESERVED_AUTH_FIELD_NAMES: &[&str] = &["passwordConfirm", "oldPassword"];

fn is_word(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The rules both kinds of name share: present, at most `max_chars`, `^\w+$`, no `_via_`
/// (which the filter language reads as a back-relation).
fn check_word_name(name: &str, max_chars: usize) -> Result<(), super::Invalid> {
    use super::Invalid;
    if name.is_empty() {
        return Err(Invalid::new("validation_required", "Cannot be blank."));
    }
    if name.chars().count() > max_chars {
        return Err(Invalid::new("validation_length_too_long", format!("The length must be no more than {max_chars}.")));
    }
    if !is_word(name) {
        return Err(Invalid::new("validation_invalid_name", "Must contain only letters, digits and underscores."));
    }
    if name.contains("_via_") {
        return Err(Invalid::new("validation_invalid_name", "The name cannot contain \"_via_\"."));
    }
    Ok(())
}

/// Why a collection name is refused, as PocketBase's validation code and message.
pub fn check_collection_name(name: &str) -> Result<(), super::Invalid> {
    use super::Invalid;
    let chars = name.chars().count();
    if chars > MAX_COLLECTION_NAME_CHARS {
        return Err(Invalid::new(
            "validation_length_out_of_range",
            format!("The length must be between 1 and {MAX_COLLECTION_NAME_CHARS}."),
        ));
    }
    check_word_name(name, MAX_COLLECTION_NAME_CHARS)?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Invalid::new("validation_invalid_name", "Collection names cannot start with a digit."));
    }
    Ok(())
}

/// Checks a field name; `auth` adds the auth-only reserved names.
pub fn check_field_name(name: &str, auth: bool) -> Result<(), super::Invalid> {
    check_word_name(name, MAX_FIELD_NAME_CHARS)?;
    let reserved = RESERVED_FIELD_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name))
        || (auth && RESERVED_AUTH_FIELD_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)));
    if reserved {
        return Err(super::Invalid::new("validation_not_in_invalid", "The name is reserved."));
    }
    Ok(())
}

/// The default id of a new collection: `pbc_<crc32(type + name)>`.
pub fn default_collection_id(kind: &str, name: &str) -> String {
    format!("pbc_{}", crc32(&[kind, name]))
}

/// The default id of a new field: `<type><crc32(name)>`.
pub fn default_field_id(kind: &str, name: &str) -> String {
    format!("{kind}{}", crc32(&[name]))
}

fn crc32(parts: &[&str]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        for ok in ["posts", "Posts_2", "_x", "a"] {
            assert!(check_collection_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "my posts", "posts;drop", "p\"x", "a_via_b", "ünïcode", &"x".repeat(256), "1abc", "9", &"x".repeat(65)] {
            assert!(check_collection_name(bad).is_err(), "{bad}");
        }
        assert!(check_collection_name(&"x".repeat(64)).is_ok(), "64 characters is the limit");
        assert_eq!(check_collection_name("1abc").map_err(|e| e.code), Err("validation_invalid_name"));
        assert_eq!(check_collection_name(&"x".repeat(65)).map_err(|e| e.code), Err("validation_length_out_of_range"));
    }

    #[test]
    fn field_names() {
        assert!(check_field_name("title", false).is_ok());
        for bad in ["expand", "collectionId", "NULL", "_rowid_", "a-b", "", "x_via_y"] {
            assert!(check_field_name(bad, false).is_err(), "{bad}");
        }
        assert!(check_field_name("passwordConfirm", false).is_ok());
        assert!(check_field_name("passwordConfirm", true).is_err());
    }

    #[test]
    fn default_ids_follow_pocketbase() {
        // crc32("geoPoint"+…) style: type prefix then the decimal checksum of the name.
        let id = default_field_id("text", "title");
        assert!(id.starts_with("text") && id[4..].parse::<u32>().is_ok(), "{id}");
        assert_eq!(default_field_id("text", "title"), default_field_id("text", "title"));
        assert_ne!(default_collection_id("base", "a"), default_collection_id("auth", "a"));
        assert_eq!(default_collection_id("base", "posts"), format!("pbc_{}", crc32fast::hash(b"baseposts")));
    }
}
