//! The HTTP edge of a worker: the route table ([`router`]), the one error type that becomes a
//! response ([`error`]), and body helpers ([`body`]). Everything HTTP-shaped stays here and in
//! `api/`; the domain below never sees a hyper type.

pub mod body;
pub mod error;
pub mod request;
pub mod router;
