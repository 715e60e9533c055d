//! Authentication primitives of the domain: record tokens ([`jwt`]), password hashing
//! ([`password`]) and PocketBase-format random ids and tokenKeys ([`random`]).
//!
//! It owns the cryptography and its parameters. It must not import hyper or know routes,
//! status codes or the error envelope (the `api/` layer maps these errors to PocketBase's
//! answers), and it must not touch the database: callers load records and pass in the
//! `tokenKey`s and hashes they hold. [`oauth2`] is the one part that talks to the network: to
//! OAuth2 providers, never to clients.

pub mod jwt;
pub mod oauth2;
pub mod password;
pub mod random;
