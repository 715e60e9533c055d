//! The body of an SSE response: an `http_body::Body` that, each time it is polled, hands
//! hyper everything the client's outbox holds as one data frame (so a burst of events costs
//! one socket write), and ends on drain, overflow, the idle timeout (reset by each delivery)
//! or the maximum stream lifetime — PocketBase's 5 and 30 minutes unless the test suite
//! shortens them (`Config::realtime_*`). Dropping it (the connection closed) unregisters the
//! client. It must not format events or decide who receives them.

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

pub struct SseBody {
    client: Arc<Client>,
    realtime: Realtime,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    max: Pin<Box<Sleep>>,
    done: bool,
}

impl SseBody {
    /// A stream closed after `idle_timeout` without a delivery or `max_lifetime` in all.
    pub fn new(client: Arc<Client>, realtime: Realtime, idle_timeout: Duration, max_lifetime: Duration) -> SseBody {
        SseBody {
            client,
            realtime,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            max: Box::pin(tokio::time::sleep(max_lifetime)),
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
                let next = Instant::now() + self.idle_timeout;
                self.idle.as_mut().reset(next);
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            // An SSE client's outbox never holds WS messages; treat one as the end.
            Poll::Ready(Taken::End(_) | Taken::Messages(_)) => {
                self.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let why = if self.max.as_mut().poll(cx).is_ready() {
            Some("max_lifetime")
        } else if self.idle.as_mut().poll(cx).is_ready() {
            Some("idle")
        } else {
            None
        };
        if let Some(why) = why {
            tracing::debug!(client_id = %self.client.id, reason = why, "realtime stream closed");
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
