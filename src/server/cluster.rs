//! A room across several hosts: NATS JetStream as the room's log (see [`Log::Shared`]).
//!
//! Each room is one stream, `TCHAT_<ROOM>`, on one subject, `tchat.<ROOM>.log`. A
//! host publishes what its room proposes ([`Entry`], as JSON) and applies what the
//! stream delivers, in the stream's order, numbered by the stream's sequence: every
//! host applies the same entries in the same order under the same numbers, so a
//! joiner sees one story whichever host it is on, and can move to another host and
//! catch up from where it was. The stream's creation time names the room's epoch.
//!
//! A line a client sent is published with a message id made of its session and its
//! `cid` (`Nats-Msg-Id`): the stream takes it once within its duplicate window, and
//! each room also recognises a line it has already applied, so a resend after a cut,
//! to any host, appears once.
//!
//! Every host also says who is on it, every [`HEARTBEAT`], on its own subject of a
//! second stream, `TCHAT_<ROOM>_hosts`; a host that stops saying so is gone, and its
//! people with it (see [`super::room::Room::presence`]).
//!
//! A private message goes on the log without its words, which go straight to the host
//! that seats the one it is for, on `tchat.<ROOM>.words.<HOST>` (see
//! [`super::room::Sealed`]).
//!
//! When NATS cannot be reached, what the room proposes waits in order (bounded) and is
//! published once it can be; meanwhile the host shows its own people's lines to each
//! other at once, held (see [`crate::protocol::ServerMsg::held`]).
//!
//! [`Log::Shared`]: super::room::Log::Shared

use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Event;
use super::room::{Entry, Sealed};
use crate::protocol::ServerMsg;

/// The largest entry or listing the room's streams take (a line of the longest
/// `--max-line` there is, as JSON, fits many times over).
const MAX_ENTRY_BYTES: i32 = 1 << 20;
/// The most `--max-line` a clustered room allows: an entry holding such a line fits in
/// [`MAX_ENTRY_BYTES`], whatever its escaping.
pub const MAX_LINE: usize = 128 * 1024;
const TOO_BIG: &str = "larger than the room's log takes";
/// The most hosts a room's hosts stream holds, and a host reads.
const MAX_HOSTS: usize = 256;

/// The most addresses taken from one host's listing.
const MAX_ADDRS: usize = 16;

/// How long a host waits for NATS before it gives up starting.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How long the stream recognises a message id it has taken.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Entries waiting to be published before the room's proposals are dropped (each is a
/// line someone was allowed to send; the flood limits keep this far from full).
pub const PUBLISH_QUEUE: usize = 4096;

/// A room's place on NATS, and where its log stood when this host joined it.
pub struct Joined {
    /// The room's epoch: the same on every host of the room, new if the stream is
    /// made anew.
    pub epoch: String,
    /// This host's name on the log (random, new for every run).
    pub host: Arc<str>,
    /// The log's recent past, oldest first, numbered: read before anyone is seated.
    pub past: Vec<(u64, Entry)>,
    /// The first number to read live.
    next: u64,
    subject: String,
    room: String,
    /// Where joiners reach this host: told to the other hosts with who is on it.
    pub addrs: Vec<String>,
    /// This host's key's fingerprint, told with who is on it.
    pub key: String,
    /// Where joiners reach the room's other hosts, as they last said, with the
    /// fingerprint of each one's key (empty where it did not say).
    pub others: Vec<(String, String)>,
    stream: stream::Stream,
    js: jetstream::Context,
    /// Whether the connection to NATS is up now.
    linked: watch::Receiver<bool>,
}

/// How long to wait before the `attempts`th try to reach NATS again: at once, then a
/// little longer each time, never more than [`RECONNECT_MOST`], so that a room whose
/// NATS restarts is whole again within about that.
fn reconnect_wait(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => {
            let exp = u32::try_from(n - 2).unwrap_or(u32::MAX).min(16);
            (Duration::from_millis(50) * 2u32.pow(exp)).min(RECONNECT_MOST)
        }
    }
}

/// The longest wait between tries to reach NATS again.
const RECONNECT_MOST: Duration = Duration::from_secs(1);

/// Where a host finds a NATS password it is not given in `--cluster`'s URL (so that it
/// need not appear in `ps`).
pub const PASSWORD_ENV: &str = "TCHAT_NATS_PASSWORD";

/// `--cluster`'s URL as it may be shown: without its password.
pub fn shown_url(url: &str) -> String {
    NatsUrl::parse(url, None).shown
}

/// `--cluster`'s URL taken apart: `nats://USER:PASS@HOST:PORT` (or `nats://USER@…` with
/// the password in [`PASSWORD_ENV`]).
#[derive(Debug, PartialEq, Eq)]
struct NatsUrl {
    /// The URL without its user and password, to connect to.
    server: String,
    login: Option<(String, String)>,
    /// What to show of it: the server, and the user.
    shown: String,
}

impl NatsUrl {
    fn parse(url: &str, env_pass: Option<String>) -> NatsUrl {
        let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
        let Some((userinfo, host)) = rest.rsplit_once('@') else {
            return NatsUrl {
                server: url.to_owned(),
                login: None,
                shown: url.to_owned(),
            };
        };
        let (user, pass) = match userinfo.split_once(':') {
            Some((user, pass)) => (user.to_owned(), pass.to_owned()),
            None => (userinfo.to_owned(), env_pass.unwrap_or_default()),
        };
        NatsUrl {
            server: format!("{scheme}://{host}"),
            shown: format!("{scheme}://{user}@{host}"),
            login: Some((user, pass)),
        }
    }
}

/// Whether `name` can name a room: 1 to 32 ASCII letters, digits, `-` or `_` (it is
/// part of a stream's name and a subject).
pub fn valid_room(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Connect to NATS at `url`, make (or find) the room's stream, and read its last
/// `history` entries. `keep`: the most entries the stream holds (the oldest go first).
/// `ca`: the authority that signed the NATS server's certificate, for a `tls://` URL
/// with a certificate of its own (else the system's trusted authorities).
pub async fn join(
    url: &str,
    ca: Option<&std::path::Path>,
    room: &str,
    history: usize,
    keep: u64,
) -> Result<Joined, String> {
    if !valid_room(room) {
        return Err(format!(
            "--room {room:?}: a room's name is 1 to 32 letters, digits, - or _"
        ));
    }
    let nats = NatsUrl::parse(url, std::env::var(PASSWORD_ENV).ok());
    // What is shown of the URL never holds the password.
    let url = nats.shown.as_str();
    let mut options = async_nats::ConnectOptions::new()
        .name("tchat host")
        .connection_timeout(CONNECT_WAIT);
    if let Some((user, pass)) = nats.login {
        options = options.user_and_password(user, pass);
    }
    if let Some(ca) = ca {
        // Read here, so that a wrong path is said as such, not as a failed handshake.
        std::fs::metadata(ca).map_err(|e| {
            format!(
                "--cluster-ca {}: {}",
                ca.display(),
                crate::client::plain_io_error(&e)
            )
        })?;
        options = options
            .add_root_certificates(ca.to_path_buf())
            .require_tls(true);
    }
    // The connection's state as it changes, so that losing NATS is known at once (not
    // when an acknowledgment fails to come, seconds later) and what waits is put on
    // the log as soon as it is back.
    let (link, linked) = watch::channel(true);
    let link = Arc::new(link);
    options = options
        .event_callback(move |event| {
            let link = link.clone();
            async move {
                match event {
                    async_nats::Event::Connected => link.send_replace(true),
                    async_nats::Event::Disconnected => link.send_replace(false),
                    _ => true,
                };
            }
        })
        .reconnect_delay_callback(reconnect_wait);
    let client = tokio::time::timeout(CONNECT_WAIT, options.connect(nats.server.as_str()))
        .await
        .map_err(|_| format!("cannot reach NATS at {url}: no answer in 5 s"))?
        .map_err(|e| {
            let e = e.to_string();
            // A server whose certificate no authority here vouches for.
            let hint = if e.contains("certificate") && ca.is_none() {
                " (if its certificate is signed by an authority of your own, give it with --cluster-ca FILE)"
            } else {
                ""
            };
            format!("cannot reach NATS at {url}: {e}{hint}")
        })?;
    let js = jetstream::new(client);
    let subject = format!("tchat.{room}.log");
    let config = stream::Config {
        name: format!("TCHAT_{room}"),
        subjects: vec![subject.clone()],
        max_messages: i64::try_from(keep).unwrap_or(i64::MAX),
        max_message_size: MAX_ENTRY_BYTES,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    let mut stream = js.get_or_create_stream(config).await.map_err(|e| {
        format!("NATS at {url} has no JetStream for the room (start it with -js): {e}")
    })?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("NATS at {url}: {e}"))?
        .clone();
    let epoch = format!("{room}.{}", info.created.unix_timestamp_nanos());
    let last = info.state.last_sequence;
    let first = info.state.first_sequence.max(1);
    let from = last
        .saturating_sub(u64::try_from(history).unwrap_or(u64::MAX))
        .saturating_add(1)
        .max(first);
    let mut past = Vec::new();
    if info.state.messages > 0 && from <= last {
        let reader = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| format!("NATS at {url}: cannot read the room's log: {e}"))?;
        let mut messages = reader
            .messages()
            .await
            .map_err(|e| format!("NATS at {url}: cannot read the room's log: {e}"))?;
        let read = async {
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| e.to_string())?;
                let seq = message.info().map_err(|e| e.to_string())?.stream_sequence;
                if seq > last {
                    // Said since the log's end was read: followed live instead.
                    break;
                }
                if let Some(entry) = decode(&message.payload) {
                    past.push((seq, entry));
                }
                if seq == last {
                    break;
                }
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .map_err(|_| format!("NATS at {url}: reading the room's log took over 30 s"))?
            .map_err(|e| format!("NATS at {url}: cannot read the room's log: {e}"))?;
    }
    // Where the room's other hosts are, from what they last said (if any have).
    let prefix = format!("tchat.{room}.hosts.");
    let mut others = Vec::new();
    if let Ok(hosts) = js.get_stream(format!("TCHAT_{room}_hosts")).await
        && let Ok(Some(found)) = tokio::time::timeout(CONNECT_WAIT, listings(&hosts, &prefix)).await
    {
        let mut found: Vec<_> = found.into_values().collect();
        found.sort_by_key(|l| l.at);
        for listing in found {
            // Only `IP:PORT`: these go into a line people paste into a shell.
            for addr in listing.addrs.into_iter().take(MAX_ADDRS) {
                if addr.parse::<std::net::SocketAddr>().is_ok()
                    && !others.iter().any(|(a, _)| *a == addr)
                {
                    others.push((addr, listing.key.clone()));
                }
            }
        }
    }
    Ok(Joined {
        linked,
        epoch,
        host: Arc::from(format!("{:08x}", rand::random::<u32>())),
        past,
        next: last + 1,
        subject,
        room: room.to_owned(),
        addrs: Vec::new(),
        key: String::new(),
        others,
        stream,
        js,
    })
}

/// What puts entries on a room's log.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    subject: String,
    room: String,
}

impl Publisher {
    /// Put `entry` on the log, once it is acknowledged: its number there, and whether
    /// the log already had it (a line with the same session and `cid` within the
    /// duplicate window), in which case the number is the one it had.
    pub async fn put(&self, entry: &Entry) -> Result<(u64, bool), String> {
        let ack = self.send(entry).await.map_err(|e| e.to_string())?;
        let ack = ack.await.map_err(|e| e.to_string())?;
        Ok((ack.sequence, ack.duplicate))
    }

    /// Hand the words of the private message `entry` to the host that seats the one it
    /// is for (`to_host`), straight, not through the log; once that host has them.
    async fn hand_words(&self, to_host: &str, entry: &Entry, text: &str) -> Result<(), String> {
        let to = match &entry.event {
            ServerMsg::Private { to, .. } => to.clone(),
            _ => String::new(),
        };
        let words = Words {
            key: entry.held_key(),
            to,
            text: text.to_owned(),
        };
        let payload = serde_json::to_vec(&words).map_err(|e| e.to_string())?;
        let subject = words_subject(&self.room, to_host);
        let client = self.js.client();
        let asked = client.request(subject, payload.into());
        match tokio::time::timeout(WORDS_WAIT, asked).await {
            Ok(Ok(answer)) if *answer.payload == *WORDS_TAKEN => Ok(()),
            Ok(Ok(_)) => {
                Err("they are no longer on the host they were on; send it again".to_owned())
            }
            Ok(Err(_)) | Err(_) => Err("their host does not answer; send it again".to_owned()),
        }
    }

    /// Whether the room's log answers now (JetStream serves its stream).
    async fn answers(&self) -> bool {
        let asked = self.js.get_stream(format!("TCHAT_{}", self.room));
        matches!(tokio::time::timeout(WORDS_WAIT, asked).await, Ok(Ok(_)))
    }

    /// Send `entry` on its way to the log; the stream's acknowledgment is awaited
    /// apart, so that many can be on their way at once (in order: one connection).
    async fn send(&self, entry: &Entry) -> Result<PublishAckFuture, Failed> {
        let payload = serde_json::to_vec(entry).map_err(|e| Failed::Log(e.to_string()))?;
        if payload.len() > MAX_ENTRY_BYTES as usize {
            return Err(Failed::TooBig);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", entry.log_id().as_str());
        self.js
            .publish_with_headers(self.subject.clone(), headers, payload.into())
            .await
            .map_err(|e| Failed::Log(e.to_string()))
    }
}

fn decode(payload: &[u8]) -> Option<Entry> {
    serde_json::from_slice(payload).ok()
}

impl Joined {
    /// What puts entries on this room's log.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            js: self.js.clone(),
            subject: self.subject.clone(),
            room: self.room.clone(),
        }
    }

    /// Run the log's two sides until `stop`: what the room proposes (sent to the
    /// returned queue) is published; what the stream delivers from where the past
    /// ended goes to the room's task, in order.
    pub(super) fn run(self, events: mpsc::Sender<Event>, stop: CancellationToken) -> LogQueue {
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let down = Arc::new(AtomicBool::new(false));
        tokio::spawn(publish(
            self.publisher(),
            rx,
            Link {
                down: down.clone(),
                linked: self.linked.clone(),
                events: events.clone(),
            },
            stop.clone(),
        ));
        tokio::spawn(presence(
            self.js.clone(),
            self.room.clone(),
            self.host.clone(),
            (self.addrs.clone(), self.key.clone()),
            events.clone(),
            stop.clone(),
        ));
        tokio::spawn(take_words(
            self.js.client(),
            words_subject(&self.room, &self.host),
            events.clone(),
            stop.clone(),
        ));
        tokio::spawn(follow(self.stream, self.next, self.linked, events, stop));
        LogQueue { tx, down }
    }
}

/// Where a clustered room's proposals wait to be published.
pub(super) struct LogQueue {
    pub tx: mpsc::Sender<Entry>,
    /// The log cannot be reached now (what waits is put there once it can).
    pub down: Arc<AtomicBool>,
}

/// Entries on their way to the log at once, awaiting its acknowledgment.
const IN_FLIGHT: usize = 512;

type Acked = std::pin::Pin<Box<dyn Future<Output = (Entry, Result<(), Failed>)> + Send>>;

/// The words of a private message, as one host hands them to another.
#[derive(serde::Serialize, serde::Deserialize)]
struct Words {
    /// `HOST.N` of the entry they belong to.
    key: String,
    /// The one it is for (empty from a host that did not say: taken to be there).
    #[serde(default)]
    to: String,
    text: String,
}

/// A host's answer when it has taken a private message's words for someone seated on
/// it (anything else: they are not there).
const WORDS_TAKEN: &[u8] = b"ok";

/// Where a host of `room` is handed private messages' words.
fn words_subject(room: &str, host: &str) -> String {
    format!("tchat.{room}.words.{host}")
}

/// How long a host waits for another to take a private message's words.
const WORDS_WAIT: Duration = Duration::from_secs(2);

/// Take the private messages' words other hosts hand to this one, for the room, and
/// say each is taken once the room has it in its queue (ahead of the entry it belongs
/// to, which its host puts on the log only then).
async fn take_words(
    client: async_nats::Client,
    subject: String,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let mut wait = RETRY_FIRST;
    loop {
        match client.subscribe(subject.clone()).await {
            Ok(mut inbox) => loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => return,
                    message = inbox.next() => message,
                };
                let Some(message) = message else { break };
                wait = RETRY_FIRST;
                let Ok(words) = serde_json::from_slice::<Words>(&message.payload) else {
                    continue;
                };
                let (seated, answer) = tokio::sync::oneshot::channel();
                let taken = Event::PrivateWords {
                    key: words.key,
                    to: words.to,
                    text: words.text,
                    seated,
                };
                if events.send(taken).await.is_err() {
                    return;
                }
                let said: &'static [u8] = match answer.await {
                    Ok(true) => WORDS_TAKEN,
                    _ => b"not here",
                };
                if let Some(reply) = message.reply {
                    let _ = client.publish(reply, said.into()).await;
                }
            },
            Err(e) => {
                let trouble =
                    format!("cannot take private messages from other hosts: {e}; trying again");
                if events.send(Event::Trouble(trouble)).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RETRY_MOST);
    }
}

/// What the publisher knows of the link to NATS, and tells the room of it.
struct Link {
    /// Shared with the room's task: the log cannot be reached now.
    down: Arc<AtomicBool>,
    /// The connection's state as NATS's client tells it.
    linked: watch::Receiver<bool>,
    events: mpsc::Sender<Event>,
}

impl Link {
    /// Told lost, and not yet told back.
    fn failing(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// The log cannot be reached (`why`): tell the room, once.
    fn lost(&mut self, why: &str) {
        if self.failing() {
            return;
        }
        self.down.store(true, Ordering::Relaxed);
        // Told without waiting: the room may itself be waiting on this task's queue.
        let why = format!(
            "cannot put events on the room's log ({why}); they wait and are put there once it can be reached"
        );
        let _ = self.events.try_send(Event::LinkDown { why });
    }

    /// The log takes entries again: tell the room, once.
    fn back(&mut self) {
        if !self.failing() {
            return;
        }
        self.down.store(false, Ordering::Relaxed);
        let why = "the room's log is reachable again".to_owned();
        let _ = self.events.try_send(Event::LinkDown { why });
    }

    /// The connection went down or came up: whether it is up now.
    fn changed(&mut self) -> bool {
        let up = *self.linked.borrow_and_update();
        if !up {
            self.lost("the connection to NATS is lost");
        }
        up
    }
}

/// Publish the room's proposals in the order they were made, many on their way at once.
/// One that the log did not take (NATS unreachable) is put again, in order, once those
/// on their way have settled, with a growing wait, or at once when the connection
/// comes back; the log recognises any it already had ([`Entry::log_id`]), so nothing is
/// taken twice. A private message for someone on another host goes on the log once
/// its words are with that host (see [`Sealed`]), so it may come after entries
/// proposed after it.
async fn publish(
    log: Publisher,
    mut rx: mpsc::Receiver<Entry>,
    mut link: Link,
    stop: CancellationToken,
) {
    let mut on_way: FuturesOrdered<Acked> = FuturesOrdered::new();
    let mut again: VecDeque<Entry> = VecDeque::new();
    let mut wait = RETRY_FIRST;
    let mut open = true;
    // The connection came back since the last failure: what failed is put again at
    // once.
    let mut reconnected = false;
    loop {
        if !open && on_way.is_empty() && again.is_empty() {
            return;
        }
        if !again.is_empty() && on_way.is_empty() {
            // Everything on its way has settled: put the failed ones again, in order,
            // after a wait, or as soon as the connection is back.
            if std::mem::take(&mut reconnected) {
                wait = RETRY_FIRST;
            } else {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                    Ok(()) = link.linked.changed() => {
                        if !link.changed() {
                            continue;
                        }
                        wait = RETRY_FIRST;
                    }
                }
            }
            wait = (wait * 2).min(RETRY_MOST);
            for entry in std::mem::take(&mut again) {
                launch(&log, entry, &mut on_way).await;
            }
            continue;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            Ok(()) = link.linked.changed() => {
                reconnected = link.changed();
                // Back, with nothing waiting: the log takes entries again once it
                // answers (a NATS server just started may not serve it yet).
                if reconnected && again.is_empty() && on_way.is_empty() && log.answers().await {
                    link.back();
                }
            }
            // Connected, nothing waiting, and the log did not answer yet: ask again.
            () = tokio::time::sleep(RETRY_MOST), if link.failing()
                && again.is_empty()
                && on_way.is_empty()
                && *link.linked.borrow() =>
            {
                if log.answers().await {
                    link.back();
                }
            }
            Some((entry, result)) = on_way.next(), if !on_way.is_empty() => match result {
                Ok(()) => {
                    // An acknowledgment that was on its way as the connection went
                    // says nothing of now.
                    if again.is_empty() && *link.linked.borrow() {
                        wait = RETRY_FIRST;
                        link.back();
                    }
                }
                Err(Failed::TooBig) => {
                    // Never to be taken: not tried again (it would hold up the rest).
                    let trouble = format!("an event was not put on the room's log: {}", Failed::TooBig);
                    let _ = link.events.try_send(Event::Trouble(trouble));
                }
                Err(Failed::Undelivered(why)) => {
                    // Told without holding up the log: the room may be waiting on
                    // this task's queue.
                    let events = link.events.clone();
                    tokio::spawn(async move {
                        let _ = events.send(Event::Undelivered(Box::new(entry), why)).await;
                    });
                }
                Err(Failed::Log(e)) => {
                    again.push_back(entry);
                    reconnected = false;
                    link.lost(&e);
                }
            },
            entry = rx.recv(), if open && again.is_empty() && on_way.len() < IN_FLIGHT => match entry {
                Some(entry) => launch(&log, entry, &mut on_way).await,
                None => open = false,
            },
        }
    }
}

/// Why an entry did not go on the log.
#[derive(Debug, thiserror::Error)]
enum Failed {
    /// The log did not take it (NATS unreachable, slow): it is put again.
    #[error("{0}")]
    Log(String),
    /// Larger than the log takes: never put again.
    #[error("{TOO_BIG}")]
    TooBig,
    /// A private message whose words the other host did not take (why): its sender
    /// is told, and it is not put on the log.
    #[error("{0}")]
    Undelivered(String),
}

/// Hand `entry` to the connection and await the log's acknowledgment beside the
/// others on their way. Entries are handed over one after another, so that they reach
/// the stream in the order proposed; a private message for someone on another host is
/// handed over only once that host has its words, without holding up the rest.
async fn launch(log: &Publisher, entry: Entry, on_way: &mut FuturesOrdered<Acked>) {
    let put = |sent: Result<PublishAckFuture, Failed>| async move {
        sent?
            .await
            .map(|_| ())
            .map_err(|e| Failed::Log(e.to_string()))
    };
    if let Some(Sealed {
        to_host: Some(to_host),
        text,
    }) = entry.sealed.clone()
    {
        let log = log.clone();
        on_way.push_back(Box::pin(async move {
            if let Err(why) = log.hand_words(&to_host, &entry, &text).await {
                return (entry, Err(Failed::Undelivered(why)));
            }
            let result = put(log.send(&entry).await).await;
            (entry, result)
        }));
        return;
    }
    let sent = log.send(&entry).await;
    on_way.push_back(Box::pin(async move {
        let result = put(sent).await;
        (entry, result)
    }));
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);

/// How often a host tells the others who is on it.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a beat waits for the room to say who is on this host before it says
/// again what it said last.
const ROOM_ANSWER: Duration = Duration::from_millis(500);
/// A host not heard from for this long is gone, and its people with it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(6);

/// Every host's last listing in the stream `hosts` (subjects `prefix` + host), by host;
/// `None` if one cannot be read (a host left out would count as silent).
async fn listings(
    hosts: &stream::Stream,
    prefix: &str,
) -> Option<std::collections::HashMap<String, super::room::Listing>> {
    let subjects: Vec<String> = hosts
        .info_with_subjects(format!("{prefix}*"))
        .await
        .ok()?
        .filter_map(|s| async { s.ok().map(|(subject, _)| subject) })
        .take(MAX_HOSTS)
        .collect()
        .await;
    let mut found = std::collections::HashMap::new();
    for subject in subjects {
        let Some(host) = subject.strip_prefix(prefix) else {
            continue;
        };
        let last = hosts.get_last_raw_message_by_subject(&subject).await.ok()?;
        let listing =
            serde_json::from_slice::<super::room::Listing>(&last.payload).unwrap_or_default();
        found.insert(host.to_owned(), listing);
    }
    Some(found)
}

/// Tell the other hosts who is on this one, every [`HEARTBEAT`], and tell the room what
/// every other host last said, so that it learns who is on them and notices a host that
/// stopped saying. What each host says is the last message on its own subject of the
/// stream `TCHAT_<ROOM>_hosts` (one kept per subject, each for [`PRESENCE_TTL`]): the
/// key-value store made by hand, which the NATS servers in Debian's stable release take.
async fn presence(
    js: jetstream::Context,
    room: String,
    host: Arc<str>,
    (addrs, key): (Vec<String>, String),
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let prefix = format!("tchat.{room}.hosts.");
    let config = stream::Config {
        name: format!("TCHAT_{room}_hosts"),
        subjects: vec![format!("{prefix}*")],
        max_messages_per_subject: 1,
        max_messages: MAX_HOSTS as i64,
        max_message_size: MAX_ENTRY_BYTES,
        max_age: PRESENCE_TTL,
        storage: stream::StorageType::Memory,
        ..Default::default()
    };
    let mine = format!("{prefix}{host}");
    let mut hosts_stream = None;
    // What this host last said of who is on it.
    let mut last: Option<super::room::Listing> = None;
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = beat.tick() => {}
        }
        if hosts_stream.is_none() {
            hosts_stream = js.get_or_create_stream(config.clone()).await.ok();
        }
        let Some(hosts_stream) = &hosts_stream else {
            continue;
        };
        let asked = async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            events.send(Event::Beat(tx)).await.ok()?;
            rx.await.ok()
        };
        let mut listing = match tokio::time::timeout(ROOM_ANSWER, asked).await {
            Ok(Some(listing)) => listing,
            // The room is gone.
            Ok(None) => return,
            // The room is busy (waiting for room in the log's queue, up to 5 s): this
            // host is here all the same, and says again who was on it, lest the
            // others take it, and its people, for gone.
            Err(_) => match &last {
                Some(listing) => listing.clone(),
                None => continue,
            },
        };
        listing.addrs = addrs.clone();
        listing.key = key.clone();
        last = Some(listing.clone());
        let Ok(said) = serde_json::to_vec(&listing) else {
            continue;
        };
        let heard = async {
            js.publish(mine.clone(), said.into())
                .await
                .ok()?
                .await
                .ok()?;
            let mut hosts = listings(hosts_stream, &prefix).await?;
            hosts.remove(&*host);
            Some(hosts)
        };
        // A beat that cannot hear every host (NATS unreachable, slow) tells nothing:
        // no one is taken to be gone for it.
        let Ok(Some(hosts)) = tokio::time::timeout(HEARTBEAT, heard).await else {
            continue;
        };
        if events.send(Event::Presence(hosts)).await.is_err() {
            return;
        }
    }
}

/// Follow the stream from `next` on, handing each entry over in order. When the
/// connection to NATS comes back, following starts again at once from where it was (a
/// NATS server that restarted has forgotten the reader, and would only say so when a
/// read times out, seconds later).
async fn follow(
    stream: stream::Stream,
    next: u64,
    mut linked: watch::Receiver<bool>,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let mut next = next;
    let mut wait = RETRY_FIRST;
    loop {
        let reader = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..Default::default()
            })
            .await;
        let messages = match reader {
            Ok(reader) => reader.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => return,
                    Ok(()) = linked.changed() => {
                        if *linked.borrow_and_update() {
                            wait = Duration::ZERO;
                            break;
                        }
                        continue;
                    }
                    message = messages.next() => message,
                };
                let Some(Ok(message)) = message else {
                    break;
                };
                wait = RETRY_FIRST;
                let Ok(info) = message.info() else {
                    continue;
                };
                let seq = info.stream_sequence;
                if seq < next {
                    continue;
                }
                next = seq + 1;
                if let Some(entry) = decode(&message.payload)
                    && events
                        .send(Event::Logged(seq, Box::new(entry)))
                        .await
                        .is_err()
                {
                    return;
                }
            },
            Err(e) => {
                let trouble = format!("cannot follow the room's log: {e}; trying again");
                if events.send(Event::Trouble(trouble)).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).clamp(RETRY_FIRST, RETRY_MOST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_url_gives_its_login_apart_and_never_shows_the_password() {
        let url = NatsUrl::parse("nats://tchat:s3cret@10.0.0.9:4222", None);
        assert_eq!(url.server, "nats://10.0.0.9:4222");
        assert_eq!(url.login, Some(("tchat".into(), "s3cret".into())));
        assert_eq!(url.shown, "nats://tchat@10.0.0.9:4222");
        let url = NatsUrl::parse("nats://tchat@10.0.0.9:4222", Some("fromenv".into()));
        assert_eq!(url.login, Some(("tchat".into(), "fromenv".into())));
        assert!(!url.shown.contains("fromenv"));
        let plain = NatsUrl::parse("nats://10.0.0.9:4222", Some("unused".into()));
        assert_eq!(plain.login, None);
        assert_eq!(plain.server, "nats://10.0.0.9:4222");
    }

    #[test]
    fn a_rooms_name_is_short_and_plain() {
        assert!(valid_room("lobby"));
        assert!(valid_room("team-7_x"));
        assert!(!valid_room(""));
        assert!(!valid_room("a.b"));
        assert!(!valid_room("a b"));
        assert!(!valid_room("a*"));
        assert!(!valid_room(&"x".repeat(33)));
        assert!(!valid_room("ünï"));
    }
}
