//! The client IP of a request, as PocketBase's `RealIP`: the TCP peer, unless the settings'
//! `trustedProxy.headers` name a header the proxy in front sets (`X-Forwarded-For`,
//! `X-Real-IP`, `CF-Connecting-IP`, …). Then the first of those headers present gives the IP:
//! its last occurrence (the one the proxy appended), read right to left for the first valid
//! address, or left to right with `useLeftmostIP`.
//!
//! Everything that keys on "the client" (the per-IP abuse limits, the login-alert fingerprint,
//! the superuser health answer) reads it here, so behind a proxy the clients are told apart
//! instead of all sharing the proxy's address. It must stay a pure function of the peer, the
//! headers and the settings: no I/O beyond reading the cached settings.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use hyper::body::Incoming;
use hyper::{HeaderMap, Request};

use crate::worker::server::PeerAddr;
use crate::worker::settings::TrustedProxy;
use crate::worker::state::AppState;

/// The client IP of `req` under the current settings. The future does not borrow `req`: it
/// takes the peer and a copy of the headers first, then reads the settings.
pub fn of_request(state: &AppState, req: &Request<Incoming>) -> impl Future<Output = String> + Send + 'static {
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let headers = req.headers().clone();
    let state = state.clone();
    async move {
        let proxy = match state.settings.fresh(&state.db).await {
            Ok(loaded) => loaded.settings.trusted_proxy.clone(),
            Err(e) => {
                // The peer is still a client key (all behind a proxy share it): degraded, not wrong.
                tracing::warn!(error = %e, "reading trustedProxy failed; using the peer address");
                TrustedProxy::default()
            }
        };
        real_ip(peer, &headers, &proxy)
    }
}

/// The client IP from the peer, the headers and the `trustedProxy` settings (empty when there
/// is no peer and no usable header).
pub fn real_ip(peer: Option<SocketAddr>, headers: &HeaderMap, proxy: &TrustedProxy) -> String {
    real_ip_addr(peer, headers, proxy).map(|ip| ip.to_string()).unwrap_or_default()
}

/// [`real_ip`] as an address, for callers that key on it per request and should not format
/// a string to do so (the rate-limit check). An IPv4 client seen through a dual-stack socket
/// is its IPv4 address.
pub fn real_ip_addr(peer: Option<SocketAddr>, headers: &HeaderMap, proxy: &TrustedProxy) -> Option<IpAddr> {
    for name in &proxy.headers {
        // The last occurrence is the one the nearest proxy set or appended to.
        let Some(value) = headers.get_all(name.as_str()).iter().next_back().and_then(|v| v.to_str().ok()) else { continue };
        let mut parsed = value.split(',').filter_map(|part| part.trim().parse::<IpAddr>().ok());
        let found = if proxy.use_leftmost_ip { parsed.next() } else { parsed.next_back() };
        if let Some(ip) = found {
            return Some(canonical(ip));
        }
    }
    peer.map(|p| canonical(p.ip()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn the_peer_unless_a_trusted_header_names_the_client() {
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 4000)));
        let xff = headers(&[("x-forwarded-for", "spoofed, 1.1.1.1"), ("x-forwarded-for", "9.9.9.9, 2.2.2.2")]);
        assert_eq!(real_ip(peer, &xff, &TrustedProxy::default()), "10.0.0.1", "headers are ignored unless trusted");
        let trusted = TrustedProxy { headers: vec!["X-Forwarded-For".into()], use_leftmost_ip: false };
        assert_eq!(real_ip(peer, &xff, &trusted), "2.2.2.2", "the last header, its rightmost address");
        let leftmost = TrustedProxy { headers: vec!["X-Forwarded-For".into()], use_leftmost_ip: true };
        assert_eq!(real_ip(peer, &xff, &leftmost), "9.9.9.9");
        let garbage = headers(&[("x-real-ip", "not an ip")]);
        let real = TrustedProxy { headers: vec!["X-Real-IP".into()], use_leftmost_ip: false };
        assert_eq!(real_ip(peer, &garbage, &real), "10.0.0.1", "no valid address: the peer");
        let mapped = Some(SocketAddr::from((std::net::Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]), 1)));
        assert_eq!(real_ip(mapped, &HeaderMap::new(), &real), "1.2.3.4");
    }
}
