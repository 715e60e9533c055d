//! The worker's application services that sit between the HTTP layer and the record store:
//! the one record write pipeline ([`pipeline`]) and the observers it tells about writes
//! ([`observe`]). Like every domain module it knows no HTTP; unlike `records`, it may await
//! (password hashing, storage, observers) and so it owns the ordering of a write's stages.

pub mod data;
pub mod observe;
pub mod pipeline;
