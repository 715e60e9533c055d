//! systemd readiness notification (`Type=notify`): one datagram to `$NOTIFY_SOCKET`.
//!
//! Written here rather than pulled in as a crate because it is one `sendto`. Without
//! `NOTIFY_SOCKET` (not under systemd) every call is a no-op. Only the main process notifies:
//! the supervisor removes the variable from its workers' environment.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1"`) to systemd if we run under it. Errors are logged, never
/// fatal: a missing notification shows up as a start timeout in systemd, with our log beside it.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let result = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, state, "sd_notify failed");
    }
}
