//! Bus framing: a 4-byte big-endian length, then one kind byte, then the message as JSON.
//!
//! The length is checked against [`MAX_FRAME_BYTES`] before anything is allocated, so a
//! corrupt or hostile peer cannot make us reserve gigabytes. The kind byte lets the hub forward
//! `Publish`/`Invalidate` frames byte-for-byte without decoding them.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::BusMsg;

/// Largest frame body (kind byte + JSON) we accept or produce.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Bytes before the body: the big-endian u32 length.
pub const HEADER_BYTES: usize = 4;

pub const KIND_HELLO: u8 = 1;
pub const KIND_WELCOME: u8 = 2;
pub const KIND_READY: u8 = 3;
pub const KIND_PUBLISH: u8 = 4;
pub const KIND_INVALIDATE: u8 = 5;
pub const KIND_DRAIN: u8 = 6;
pub const KIND_DIRECT: u8 = 7;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("frame kind {kind} does not match its message")]
    KindMismatch { kind: u8 },
    #[error("decoding a bus message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reading from the bus: {0}")]
    Io(#[from] std::io::Error),
}

/// A whole frame as it travels, header included; cheap to clone and forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    pub fn kind(&self) -> u8 {
        self.0[HEADER_BYTES]
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn decode(&self) -> Result<BusMsg, CodecError> {
        let msg: BusMsg = serde_json::from_slice(&self.0[HEADER_BYTES + 1..])?;
        if msg.kind() != self.kind() {
            return Err(CodecError::KindMismatch { kind: self.kind() });
        }
        Ok(msg)
    }
}

/// Encodes `msg` into a frame.
pub fn encode(msg: &BusMsg) -> Result<Frame, CodecError> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u32(0);
    buf.put_u8(msg.kind());
    serde_json::to_writer((&mut buf).writer(), msg)?;
    let body = buf.len() - HEADER_BYTES;
    if body > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(body));
    }
    // The length fits: it is at most MAX_FRAME_BYTES, far below u32::MAX.
    buf[..HEADER_BYTES].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(Frame(buf.freeze()))
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, CodecError> {
    let mut header = [0u8; HEADER_BYTES];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(len));
    }
    if len == 0 {
        return Err(CodecError::Empty);
    }
    let mut buf = BytesMut::with_capacity(HEADER_BYTES + len);
    buf.put_slice(&header);
    buf.resize(HEADER_BYTES + len, 0);
    r.read_exact(&mut buf[HEADER_BYTES..]).await?;
    Ok(Some(Frame(buf.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_every_message() {
        let msgs = vec![
            BusMsg::Hello { worker_id: 3, pid: 42, version: "0.1.0".into(), proto: 1 },
            BusMsg::Welcome { cron_leader: true },
            BusMsg::Ready { worker_id: 3 },
            BusMsg::Publish { origin: 1, seq: 9, topic: "posts".into(), payload: serde_json::json!({"a": [1, 2]}) },
            BusMsg::Invalidate { origin: 2, what: "collections".into() },
            BusMsg::Drain { deadline_ms: 30_000 },
            BusMsg::Direct { to: 2, from: 1, topic: "realtime.subscribe".into(), payload: serde_json::json!({"id": 7}) },
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend_from_slice(encode(m).expect("encode").as_bytes());
        }
        let mut r = wire.as_slice();
        for m in &msgs {
            let f = read_frame(&mut r).await.expect("read").expect("frame");
            assert_eq!(f.kind(), m.kind());
            assert_eq!(&f.decode().expect("decode"), m);
        }
        assert!(read_frame(&mut r).await.expect("eof").is_none());
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_allocating() {
        // Claims 4 GiB - 1 with no body behind it: must fail on the length alone.
        let wire = [0xff, 0xff, 0xff, 0xff];
        let err = read_frame(&mut &wire[..]).await.expect_err("too large");
        assert!(matches!(err, CodecError::TooLarge(_)));
    }

    #[tokio::test]
    async fn truncated_body_is_an_error_not_a_clean_end() {
        let f = encode(&BusMsg::Ready { worker_id: 1 }).expect("encode");
        let bytes = f.as_bytes();
        let cut = &bytes[..bytes.len() - 2];
        assert!(read_frame(&mut &cut[..]).await.is_err());
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let big = "x".repeat(MAX_FRAME_BYTES + 1);
        let msg = BusMsg::Publish { origin: 0, seq: 0, topic: "t".into(), payload: serde_json::Value::String(big) };
        assert!(matches!(encode(&msg), Err(CodecError::TooLarge(_))));
    }

    #[test]
    fn kind_byte_must_match_the_message() {
        let f = encode(&BusMsg::Ready { worker_id: 1 }).expect("encode");
        let mut raw = f.as_bytes().to_vec();
        raw[HEADER_BYTES] = KIND_PUBLISH;
        assert!(Frame(Bytes::from(raw)).decode().is_err());
    }
}
