//! The worker's listening socket, built with socket2 so options are set before `bind`.
//!
//! In a cluster every worker binds the same port with SO_REUSEPORT and the kernel balances new
//! connections across them; SO_REUSEADDR lets a restarted worker bind while old connections
//! sit in TIME_WAIT. `serve` skips SO_REUSEPORT: a lone process has nobody to share with, and
//! without it no stranger can join its port group.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The kernel's accept queue length; the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds and listens on `addr`, returning a non-blocking listener ready for tokio.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // `::` then also accepts IPv4, as people expect from "all interfaces".
        let _ = socket.set_only_v6(false);
    }
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // tokio requires a non-blocking socket; a blocking one would stall a runtime thread.
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}
