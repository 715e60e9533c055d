//! The body of an SSE response: an `http_body::Body` that, each time it is polled, hands
//! hyper everything the client's outbox holds as one data frame (so a burst of events costs
//! one socket write), and ends on drain, overflow, PocketBase's idle timeout (reset by each
//! delivery) or its maximum stream lifetime. Dropping it (the connection closed) unregisters
//! the client. It must not format events or decide who receives them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};

use super::client::{Client, Taken};
use super::Realtime;

/// A stream with nothing delivered for this long is closed (PocketBase: 5 minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// A stream is closed after this long whatever happens (PocketBase: 30 minutes); the SDK
/// reconnects and re-subscribes.
pub const MAX_STREAM_LIFETIME: Duration = Duration::from_secs(30 * 60);

pub struct SseBody {
    client: Arc<Client>,
    realtime: Realtime,
    idle: Pin<Box<Sleep>>,
    max: Pin<Box<Sleep>>,
    done: bool,
}

impl SseBody {
    pub fn new(client: Arc<Client>, realtime: Realtime) -> SseBody {
        SseBody {
            client,
            realtime,
            idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
            max: Box::pin(tokio::time::sleep(MAX_STREAM_LIFETIME)),
            done: false,
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.client.poll_take(cx) {
            Poll::Ready(Taken::Data(bytes)) => {
                self.idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            // An SSE client's outbox never holds WS messages; treat one as the end.
            Poll::Ready(Taken::End(_) | Taken::Messages(_)) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if self.idle.as_mut().poll(cx).is_ready() || self.max.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.realtime.registry.remove(&self.client.id);
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.realtime.registry.remove(&self.client.id);
    }
}
