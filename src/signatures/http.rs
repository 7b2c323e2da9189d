//! FastTrack HTTP transfers (cleartext, any port, either direction).

use std::net::SocketAddr;

/// Which HTTP tell matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpTell {
    /// Request line `GET /.hash=<40 hex> HTTP/1.x`.
    HashRequest,
    /// A header line whose name starts with `X-Kazaa-` (case-insensitive).
    KazaaHeader,
    /// `X-KazaaTag:` header.
    KazaaTag,
    /// `UserAgent: KazaaClient ...` (real Kazaa's header has no hyphen).
    KazaaClientAgent,
    /// `Server: KazaaClient ...`.
    KazaaClientServer,
    /// `User-Agent: PeerEnabler/...` (Altnet, bundled with Kazaa).
    PeerEnabler,
}

/// A FastTrack HTTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpMatch {
    /// The first tell found.
    pub tell: HttpTell,
    /// `X-Kazaa-IP` value (`ip:port` of the sender), if present among the complete lines seen.
    pub sender_addr: Option<SocketAddr>,
    /// `X-Kazaa-SupernodeIP` value, if present among the complete lines seen.
    pub supernode_addr: Option<SocketAddr>,
}

/// Result of scanning the first bytes of one direction of a TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpScan {
    /// The stream does not start like an HTTP request or status line: stop looking.
    NotHttp,
    /// Looks like HTTP so far, header block not complete, no tell yet: more bytes may tell.
    Incomplete,
    /// A complete header block without any tell.
    Clean,
    /// FastTrack HTTP.
    Kazaa(HttpMatch),
}

/// Scans `stream_prefix`, the first bytes of one direction of a TCP stream (at most ~2 KiB).
pub fn scan(stream_prefix: &[u8]) -> HttpScan {
    let _ = stream_prefix;
    unimplemented!()
}
