//! The HTTP edge of a worker: the route table ([`router`]), the one error type that becomes a
//! response ([`error`]), body helpers ([`body`]), and who the client is ([`client_ip`]).
//! Everything HTTP-shaped stays here and in `api/`; the domain below never sees a hyper type.

pub mod access;
pub mod body;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod request;
pub mod router;
