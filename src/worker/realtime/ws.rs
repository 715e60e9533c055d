//! A WebSocket realtime session at `/realtime`, speaking the TypeScript original's small JSON
//! protocol over an already-upgraded connection (the handler in `api::realtime` does the HTTP
//! upgrade):
//!
//! - server → client on connect: `{"type":"connected","clientId":…}`;
//! - `{"type":"auth","token":…}` → `{"type":"authenticated","collectionName":…,"id":…}`, or
//!   `{"type":"error","code":"invalid_token"}` (the session is then a guest); an empty or
//!   missing token logs out;
//! - `{"type":"subscribe","topics":[…]}` (alias `collections`) → `{"type":"subscribed",
//!   "topics":[accepted]}`; topics are PocketBase's (`posts`, `posts/*`, `posts/ID`, with
//!   `?options=`);
//! - `{"type":"unsubscribe","topics":[…]}` (no topics: all) → `{"type":"unsubscribed",…}`;
//! - `{"type":"list-subs"}` → `{"type":"subs","topics":[…]}`; `{"type":"ping"}` → `pong`;
//! - events: `{"type":"create"|"update"|"delete","action":…,"collection":…,"topic":…,
//!   "record":{…}}`, under the same rules as SSE;
//! - on drain: `{"type":"draining"}` then a close frame with code 1012 (service restart);
//! - after the idle timeout with no frame either way (PocketBase's SSE 5 minutes, shortened
//!   only by the test suite): a close frame with code 1000 and reason `idle`. Any client
//!   message, `ping` included, keeps the session open;
//! - at the maximum lifetime (the SSE one: 30 minutes) a close frame with code 1000 and reason
//!   `max_lifetime`, however busy the session is;
//! - when the token it authenticated with expires, the session becomes a guest's and is told
//!   `{"type":"authenticated","collectionName":null,"id":null,"reason":"token_expired"}`; a
//!   new `auth` message with a fresh token restores it. A tokenKey change or a deleted auth
//!   record makes it a guest as for SSE (the dispatcher does that for both).
//!
//! It owns the session loop only; rules and rendering are the dispatcher's.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::client::{Client, End, Taken, Transport};
use super::subscribe::dedup;
use super::topic::{option_sets, Topic, MAX_OPTION_SETS_PER_CLIENT, MAX_SUBSCRIPTIONS, MAX_TOPIC_CHARS};
use crate::worker::actor::Actor;
use crate::worker::auth::jwt;
use super::Host;

/// Largest client message the session reads, in bytes (a subscribe with many long topics).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Serves one upgraded connection until either side closes or the worker drains.
pub async fn run<S>(state: impl Host, mut ws: WebSocketStream<S>, ip: Option<std::net::IpAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client = match state.realtime().connect(Transport::Ws, ip) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no randomness for a realtime client id");
            let _ = ws.close(None).await;
            return;
        }
    };
    let hello = json!({"type": "connected", "clientId": client.id}).to_string();
    if ws.send(Message::Text(hello)).await.is_ok() {
        session(&state, &client, &mut ws).await;
    }
    state.realtime().registry.remove(&client.id);
}

async fn session<S>(state: &impl Host, client: &Arc<Client>, ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle_timeout = state.idle_timeout();
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let max_lifetime = tokio::time::sleep(state.max_lifetime());
    tokio::pin!(max_lifetime);
    // The token the session is authenticated with and when it expires.
    let mut expiry = token_expiry(client);
    let expires = tokio::time::sleep_until(expiry.as_ref().map_or_else(tokio::time::Instant::now, |(_, at)| *at));
    tokio::pin!(expires);
    loop {
        tokio::select! {
            () = &mut idle => {
                tracing::debug!(client_id = %client.id, reason = "idle", "realtime stream closed");
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "idle".into() })).await;
                return;
            }
            () = &mut max_lifetime => {
                tracing::debug!(client_id = %client.id, reason = "max_lifetime", "realtime stream closed");
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "max_lifetime".into() })).await;
                return;
            }
            () = &mut expires, if expiry.is_some() => {
                let expired_token = expiry.take().map(|(token, _)| token);
                let downgraded = {
                    let mut st = client.state();
                    let same = st.actor.auth().map(|a| a.token.as_str()) == expired_token.as_deref();
                    if same {
                        st.actor = Actor::Guest;
                    }
                    same
                };
                if downgraded {
                    tracing::debug!(client_id = %client.id, "realtime session token expired; now a guest");
                    let note = json!({"type": "authenticated", "collectionName": null, "id": null, "reason": "token_expired"});
                    if ws.send(Message::Text(note.to_string())).await.is_err() {
                        return;
                    }
                }
                expiry = token_expiry(client);
                if let Some((_, at)) = &expiry {
                    expires.as_mut().reset(*at);
                }
            }
            incoming = ws.next() => {
                idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                let reply = match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let reply = handle(state, client, &text).await;
                        // An `auth` message may have changed the token.
                        let now = token_expiry(client);
                        if now.as_ref().map(|(t, _)| t) != expiry.as_ref().map(|(t, _)| t) {
                            expiry = now;
                            if let Some((_, at)) = &expiry {
                                expires.as_mut().reset(*at);
                            }
                        }
                        reply
                    }
                    Some(Ok(Message::Binary(_))) => Some(json!({"type": "error", "code": "binary_not_supported"})),
                    // tungstenite answers pings itself (on the next write or flush).
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => None,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                };
                let sent = match reply {
                    Some(r) => ws.send(Message::Text(r.to_string())).await,
                    None => ws.flush().await,
                };
                if sent.is_err() {
                    return;
                }
            }
            taken = std::future::poll_fn(|cx| client.poll_take(cx)) => match taken {
                Taken::Messages(msgs) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    for m in msgs {
                        let text = String::from_utf8_lossy(&m).into_owned();
                        if ws.feed(Message::Text(text)).await.is_err() {
                            return;
                        }
                    }
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
                Taken::Data(_) => {}
                Taken::End(why) => {
                    let (code, reason) = match why {
                        End::Drain => (CloseCode::Restart, "server draining; reconnect"),
                        End::Overflow => (CloseCode::Again, "too many pending events; reconnect"),
                    };
                    let _ = ws.close(Some(CloseFrame { code, reason: reason.into() })).await;
                    return;
                }
            },
        }
    }
}

/// The session's auth token and the instant it expires, if it is authenticated.
fn token_expiry(client: &Client) -> Option<(String, tokio::time::Instant)> {
    let token = client.state().actor.auth().map(|a| a.token.clone())?;
    let exp_secs = jwt::peek(&token).ok()?.exp;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let exp = Duration::from_secs(u64::try_from(exp_secs).unwrap_or(0));
    Some((token, tokio::time::Instant::now() + exp.saturating_sub(now)))
}

fn topics_of(msg: &Value) -> Option<Vec<String>> {
    let list = msg.get("topics").or_else(|| msg.get("collections"))?.as_array()?;
    Some(list.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
}

/// One client message; the reply to send, if any.
async fn handle(state: &impl Host, client: &Arc<Client>, text: &str) -> Option<Value> {
    if text.len() > MAX_CLIENT_MESSAGE_BYTES {
        return Some(json!({"type": "error", "code": "message_too_large"}));
    }
    let Ok(msg) = serde_json::from_str::<Value>(text) else { return Some(json!({"type": "error", "code": "invalid_json"})) };
    match msg.get("type").and_then(Value::as_str).unwrap_or_default() {
        "auth" => {
            let token = msg.get("token").and_then(Value::as_str).unwrap_or_default();
            let actor = if token.is_empty() { Actor::Guest } else { state.resolve_actor(Some(token.as_bytes())).await };
            let reply = match actor.auth() {
                Some(a) => json!({"type": "authenticated", "collectionName": a.collection.name, "id": a.id()}),
                None if token.is_empty() => json!({"type": "authenticated", "collectionName": null, "id": null}),
                None => json!({"type": "error", "code": "invalid_token"}),
            };
            client.state().actor = actor;
            Some(reply)
        }
        "subscribe" => {
            let Some(topics) = topics_of(&msg) else { return Some(json!({"type": "error", "code": "invalid_topics"})) };
            let (good, bad): (Vec<String>, Vec<String>) =
                dedup(topics).into_iter().partition(|t| !t.is_empty() && t.chars().count() <= MAX_TOPIC_CHARS && !t.contains(['\n', '\r']));
            if !bad.is_empty() {
                return Some(json!({"type": "error", "code": "invalid_topics", "topics": bad}));
            }
            let mut st = client.state();
            let options = option_sets(st.subs.iter().map(|s| s.raw.as_str()).chain(good.iter().map(String::as_str)));
            if options > MAX_OPTION_SETS_PER_CLIENT {
                // Nothing of this message is applied; the shape is PocketBase's error envelope.
                let message = format!("At most {MAX_OPTION_SETS_PER_CLIENT} different subscription options per client.");
                return Some(json!({"type": "error", "code": "too_many_options", "status": 400, "message": message, "data": {}}));
            }
            let mut accepted = Vec::new();
            for t in good {
                if st.subs.len() >= MAX_SUBSCRIPTIONS {
                    let message = format!("At most {MAX_SUBSCRIPTIONS} subscriptions per client.");
                    return Some(json!({"type": "error", "code": "too_many_subscriptions", "topics": accepted, "status": 400, "message": message, "data": {}}));
                }
                if !st.subs.iter().any(|s| s.raw == t) {
                    st.subs.push(Arc::new(Topic::parse(&t)));
                }
                accepted.push(t);
            }
            Some(json!({"type": "subscribed", "topics": accepted}))
        }
        "unsubscribe" => {
            let mut st = client.state();
            let removed: Vec<String> = match topics_of(&msg) {
                Some(topics) => {
                    let before: Vec<String> = st.subs.iter().map(|s| s.raw.clone()).collect();
                    st.subs.retain(|s| !topics.contains(&s.raw));
                    before.into_iter().filter(|t| topics.contains(t)).collect()
                }
                None => st.subs.drain(..).map(|s| s.raw.clone()).collect(),
            };
            Some(json!({"type": "unsubscribed", "topics": removed}))
        }
        "list-subs" => {
            let topics: Vec<String> = client.state().subs.iter().map(|s| s.raw.clone()).collect();
            Some(json!({"type": "subs", "topics": topics}))
        }
        "ping" => Some(json!({"type": "pong"})),
        _ => Some(json!({"type": "error", "code": "unknown_type"})),
    }
}
