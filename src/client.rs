//! The joiner's connection: one task that owns the socket and talks to the rest of the
//! program only through channels: [`Command`]s in, [`NetEvent`]s out.
//!
//! On connect it listens briefly for a tchat host's greeting. If one comes, it answers
//! `hello` and speaks the structured dialect; if not (a plain socket program, `nc -l`),
//! it falls back to plain text: what you type goes out as a line, whatever arrives is
//! shown, with or without a newline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::net::{LineReader, Read, write_queued};
use crate::protocol::{self, ClientMsg, Frame, PROTOCOL_VERSION, ServerMsg, Since};

/// How long to wait for a tchat greeting before treating the far side as plain. Long
/// enough for a slow link (a host greets at once, so this is one trip across it);
/// what a person types meanwhile waits, and is not lost. A host waits longer for the
/// answer ([`crate::server::session::HELLO_WAIT`], more than twice this), so a client
/// that got the greeting in time is never taken for a plain peer.
pub const GREETING_WAIT: Duration = Duration::from_secs(2);

/// How long to try to reach a host before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a tchat host may send nothing at all before the connection counts as lost.
/// Only what arrives counts, whatever the joiner sends meanwhile. A client that has
/// heard nothing for [`PING_AFTER`] pings the host (and a host pings a quiet client
/// every 20 s), so this only passes when the host or the path to it is gone without a
/// word (a half-open connection, a frozen host).
pub const HOST_SILENCE: Duration = Duration::from_secs(45);

/// How long a joiner hears nothing from a tchat host before it asks whether it is there.
pub const PING_AFTER: Duration = Duration::from_secs(15);

/// What the program asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a message. `cid` lets the room's echo be matched to the pending line.
    Say { text: String, cid: String },
    /// Leave: say goodbye and close.
    Leave,
    /// Offline and waiting to try again: try now (nothing otherwise).
    RetryNow,
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The far side is a plain socket program, not a tchat host.
    Plain,
    /// An event from a tchat host (the first is always a `Welcome`, and a `Welcome`
    /// follows every rejoin). Each event with an id comes once, even across rejoins.
    Server(ServerMsg),
    /// Text from a plain far side, one line of it, stamped on arrival.
    Text { ts: i64, text: String },
    /// The connection to the host is lost; the next try is in `retry_in`. Lines sent
    /// meanwhile are kept and go out after the rejoin.
    Lost { reason: String, retry_in: Duration },
    /// Trying to reach the host again (the first retry is attempt 1).
    Reconnecting { attempt: u32 },
    /// The connection is over for good.
    Closed { reason: String },
}

/// How a joiner rejoins a host it lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The wait before the first try; it doubles after each failed try, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Also rejoin after the host closed the room on purpose: it may come back.
    pub after_closing: bool,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            after_closing: true,
        }
    }
}

/// Waits between tries: `first`, doubling each time, never more than `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            next: first.min(max),
            first,
            max,
        }
    }

    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// A try worked: start again from the first wait.
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

/// The parts of a `HOST`, `HOST:PORT` or `[IPV6]:PORT` address.
pub fn parse_addr(addr: &str, default_port: u16) -> Result<(String, u16), String> {
    let addr = addr.trim();
    let bad_port = |p: &str| format!("'{p}' is not a port number (1-65535)");
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{addr}': missing ']' after the IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("'{addr}': expected ':PORT' after ']'")),
        };
        return Ok((host.to_owned(), port));
    }
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((addr.to_owned(), default_port));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| bad_port(port))?;
            if host.is_empty() {
                return Err(format!("'{addr}': no host before the port"));
            }
            Ok((host.to_owned(), port))
        }
        None if addr.is_empty() => Err("no address given".to_owned()),
        None => Ok((addr.to_owned(), default_port)),
    }
}

/// Resolve and connect, trying each address the name has. The error is one line a person
/// can act on.
pub async fn connect(addr: &str) -> Result<(TcpStream, SocketAddr), String> {
    let (host, port) = parse_addr(addr, protocol::DEFAULT_PORT)?;
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| {
                let why = plain_io_error(&e);
                // The resolver's own words lead with a phrase that adds nothing.
                let why = why.trim_start_matches("failed to lookup address information: ");
                format!("cannot find host '{host}': {}", why.to_lowercase())
            })?
            .collect();
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok((s, *a)),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => format!("cannot connect to {shown}: {}", plain_io_error(&e)),
            None => format!("cannot find host '{host}'"),
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok((stream, a))) => {
            let _ = stream.set_nodelay(true);
            crate::net::keepalive(&stream);
            Ok((stream, a))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "cannot connect to {shown}: no answer after {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// An I/O error as a short lower-case phrase ("connection refused"), without the
/// "(os error 111)" tail.
pub fn plain_io_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// The program's end of a connection task.
pub struct Handle {
    /// Commands in. Unbounded so that typing never waits on the network; people type
    /// far slower than any network drains.
    pub commands: mpsc::UnboundedSender<Command>,
    /// Events out.
    pub events: mpsc::Receiver<NetEvent>,
    /// Finishes once the task has said goodbye (after [`Command::Leave`]) or the
    /// connection is over and the program has asked to leave.
    pub task: tokio::task::JoinHandle<()>,
}

/// A way to open a new connection to the same host.
type Connector<S> = Box<dyn FnMut() -> BoxFuture<'static, Result<S, String>> + Send>;

/// Start the connection task on `stream`, joining as `name`. It does not rejoin: when
/// the connection ends, it is over (the host's own seat, tests).
pub fn start<S>(stream: S, name: String) -> Handle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    spawn(stream, name, None)
}

/// Start the connection task on `stream`, joining as `name`; when the connection to a
/// tchat host is lost, reconnect with `connect`, as `retry` says, and catch up.
pub fn start_rejoining<S, C, F>(stream: S, name: String, retry: Retry, mut connect: C) -> Handle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    C: FnMut() -> F + Send + 'static,
    F: Future<Output = Result<S, String>> + Send + 'static,
{
    let connector: Connector<S> = Box::new(move || Box::pin(connect()));
    spawn(stream, name, Some((retry, connector)))
}

/// [`start_rejoining`] for a joiner that reached the room over `stream`; a rejoin tries
/// `addrs` in order (an invitation may list several) and reaches the first that answers
/// as `trust` says (a host that spoke TLS is only ever spoken to in TLS, with the same
/// key).
pub fn join(
    stream: crate::link::Link,
    addrs: Vec<String>,
    name: String,
    retry: Retry,
    trust: crate::link::Trust,
) -> Handle {
    start_rejoining(stream, name, retry, move || {
        let (addrs, trust) = (addrs.clone(), trust.clone());
        async move { crate::link::reach(&addrs, &trust).await.map(|(s, _, _)| s) }
    })
}

fn spawn<S>(stream: S, name: String, retry: Option<(Retry, Connector<S>)>) -> Handle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (commands, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, events) = mpsc::channel(1024);
    let session = Session {
        name,
        id: format!("{:016x}", rand::random::<u64>()),
        epoch: None,
        last_id: 0,
        unacked: VecDeque::new(),
        pacer: None,
        welcomed: false,
        commands: cmd_rx,
        events: ev_tx,
    };
    let task = tokio::spawn(session.run(stream, retry));
    Handle {
        commands,
        events,
        task,
    }
}

/// How one connection ended.
enum End {
    /// The program asked to leave, and did.
    Left,
    /// The connection broke (or never got going); worth trying again.
    Lost(String),
    /// The host closed the room, saying why.
    Closing(String),
    /// Over, and not worth trying again (a plain far side closed).
    Over(String),
}

/// A line the room has not confirmed yet.
struct Unacked {
    cid: String,
    text: String,
    /// Sent on the current connection.
    sent: bool,
}

/// What lives across the connections of one joiner.
struct Session {
    /// The name to ask for: as given at first, then as the room gave it.
    name: String,
    /// Our own random id, the same on every connection, so the host can recognise a
    /// rejoin and a resent line.
    id: String,
    /// The room we were in, and the last event id we have passed on from it.
    epoch: Option<String>,
    last_id: u64,
    /// Lines for a tchat host not yet echoed, oldest first. Those not yet sent on the
    /// current connection go out after its welcome; the host drops any it already
    /// relayed on an earlier one.
    unacked: VecDeque<Unacked>,
    /// The room's flood limit, as the last welcome told it: lines go out no faster.
    pacer: Option<Pacer>,
    /// The current connection got as far as a welcome.
    welcomed: bool,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<NetEvent>,
}

impl Session {
    async fn run<S>(mut self, stream: S, mut retry: Option<(Retry, Connector<S>)>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let mut backoff = retry
            .as_ref()
            .map(|(r, _)| Backoff::new(r.first_delay, r.max_delay));
        let mut stream = Some(stream);
        let mut attempt = 0u32;
        while let Some(s) = stream.take() {
            let mut reason = match self.converse(s).await {
                End::Left => return,
                End::Lost(r) if retry.is_some() && self.epoch.is_some() => r,
                End::Closing(r)
                    if self.epoch.is_some()
                        && retry.as_ref().is_some_and(|(r, _)| r.after_closing) =>
                {
                    r
                }
                End::Lost(r) | End::Closing(r) | End::Over(r) => {
                    self.close(r).await;
                    return;
                }
            };
            if self.welcomed {
                attempt = 0;
                if let Some(b) = &mut backoff {
                    b.reset();
                }
            }
            let (Some((_, connect)), Some(backoff)) = (&mut retry, &mut backoff) else {
                return;
            };
            while stream.is_none() {
                let retry_in = backoff.next_delay();
                let lost = NetEvent::Lost {
                    reason: reason.clone(),
                    retry_in,
                };
                self.emit(lost).await;
                if !self.wait_to_retry(retry_in).await {
                    return;
                }
                attempt += 1;
                self.emit(NetEvent::Reconnecting { attempt }).await;
                match self.wait_for(connect()).await {
                    None => return,
                    Some(Ok(s)) => stream = Some(s),
                    Some(Err(e)) => reason = e,
                }
            }
        }
    }

    async fn emit(&self, event: NetEvent) {
        // Nobody listening any more means the program is leaving: keep going until its
        // `Leave` arrives, so nothing it sent is lost.
        let _ = self.events.send(event).await;
    }

    /// Report the end, then keep answering until the program's `Leave`, so it can
    /// finish the same way in every case.
    async fn close(&mut self, reason: String) {
        self.emit(NetEvent::Closed { reason }).await;
        while let Some(cmd) = self.commands.recv().await {
            if cmd == Command::Leave {
                break;
            }
        }
    }

    /// Wait `delay` before trying to reach the host again, or less if the program asks
    /// to try now. `false` when it asked to leave instead.
    async fn wait_to_retry(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Say { text, cid }) => self.unacked.push_back(Unacked {
                        cid,
                        text,
                        sent: false,
                    }),
                    Some(Command::RetryNow) => return true,
                    Some(Command::Leave) | None => return false,
                },
            }
        }
    }

    async fn wait_for<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                v = &mut fut => return Some(v),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Say { text, cid }) => self.unacked.push_back(Unacked {
                        cid,
                        text,
                        sent: false,
                    }),
                    Some(Command::RetryNow) => {}
                    Some(Command::Leave) | None => return None,
                },
            }
        }
    }

    /// One connection, from its greeting to its end.
    async fn converse<S>(&mut self, stream: S) -> End
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let rejoin = self.epoch.is_some();
        self.welcomed = false;
        for u in &mut self.unacked {
            u.sent = false;
        }
        let (r, w) = tokio::io::split(stream);
        // A host's limit applies to text; anything larger than this is not a line of chat.
        let mut lines = LineReader::new(r, protocol::frame_limit(1024 * 1024));
        let (out, out_rx) = mpsc::channel::<Bytes>(256);
        let mut writer = tokio::spawn(write_queued(w, out_rx));

        // The greeting decides the dialect. One split by a stall is waited for whole.
        lines.set_hold(Some(looks_like_banner));
        let first = lines.next(Some(GREETING_WAIT)).await;
        lines.set_hold(None);
        let structured = match first {
            Read::Frame(Frame::Line(line)) if protocol::parse_refusal(&line).is_some() => {
                let why = protocol::parse_refusal(&line).unwrap_or_default();
                return End::Lost(why);
            }
            Read::Frame(Frame::Line(line)) if protocol::parse_banner(&line).is_some() => true,
            Read::Closed(reason) => {
                return End::Lost(
                    reason.unwrap_or_else(|| "the other side closed the connection".into()),
                );
            }
            _ if rejoin => return End::Lost("the host did not greet as a tchat host".into()),
            Read::Frame(Frame::Line(line)) => {
                self.emit(NetEvent::Plain).await;
                self.emit(text(line)).await;
                false
            }
            Read::Frame(Frame::TooLong) | Read::Quiet | Read::Overrun => {
                self.emit(NetEvent::Plain).await;
                false
            }
        };
        if structured {
            // From here on a line ends at its newline, however long the path stalls.
            lines.set_strict();
            let hello = ClientMsg::Hello {
                v: PROTOCOL_VERSION,
                name: self.name.clone(),
                client: Some(format!("tchat {}", env!("CARGO_PKG_VERSION"))),
                session: Some(self.id.clone()),
                since: self.epoch.clone().map(|room| Since {
                    room,
                    id: self.last_id,
                }),
            };
            let _ = out.send(Bytes::from(hello.encode())).await;
        }
        let silence = structured.then_some(HOST_SILENCE);

        let mut closing: Option<String> = None;
        // The arrival our last ping asked about: one ping per quiet spell.
        let mut pinged: Option<tokio::time::Instant> = None;
        loop {
            let heard = lines.last_arrival();
            let ping_at = heard + PING_AFTER;
            // Lines waiting for the room's flood limit to allow them.
            let waiting = self.unacked.back().is_some_and(|u| !u.sent);
            let paced_at = self.pacer.as_ref().map(Pacer::next_at);
            tokio::select! {
                () = sleep_until_some(paced_at), if structured && waiting && self.welcomed => {
                    for line in self.due() {
                        if out.send(line).await.is_err() {
                            return End::Lost("connection lost".into());
                        }
                    }
                }
                () = tokio::time::sleep_until(ping_at), if structured && pinged != Some(heard) => {
                    pinged = Some(heard);
                    if out.send(Bytes::from(ClientMsg::Ping.encode())).await.is_err() {
                        return End::Lost("connection lost".into());
                    }
                }
                read = lines.next(silence) => match read {
                    Read::Frame(Frame::Line(line)) if structured => {
                        let Ok(msg) = ServerMsg::decode(&line) else {
                            // An event this version does not know (a newer host) is
                            // protocol, never shown; a line of text is.
                            if !looks_like_json(&line) {
                                self.emit(text(line)).await;
                            }
                            continue;
                        };
                        if let ServerMsg::Closing { reason, .. } = &msg {
                            closing = Some(reason.clone());
                        }
                        for reply in self.on_server(&msg) {
                            if out.send(reply).await.is_err() {
                                return End::Lost("connection lost".into());
                            }
                        }
                        if !matches!(msg, ServerMsg::Ping | ServerMsg::Pong) && !self.is_repeat(&msg) {
                            self.note_id(&msg);
                            self.emit(NetEvent::Server(msg)).await;
                        }
                    }
                    Read::Frame(Frame::Line(line)) => self.emit(text(line)).await,
                    Read::Frame(Frame::TooLong) | Read::Overrun => {}
                    Read::Quiet => {
                        return End::Lost(format!(
                            "no word from the host in {} s",
                            HOST_SILENCE.as_secs()
                        ));
                    }
                    Read::Closed(reason) => {
                        return match (closing, structured) {
                            (Some(c), _) => End::Closing(c),
                            (None, true) => End::Lost(match reason {
                                Some(r) => format!("connection lost: {r}"),
                                None => "lost the host: the connection closed without a goodbye".into(),
                            }),
                            (None, false) => End::Over(
                                reason
                                    .map(|r| format!("connection lost: {r}"))
                                    .unwrap_or_else(|| "the other side closed the connection".into()),
                            ),
                        };
                    }
                },
                cmd = self.commands.recv() => match cmd {
                    // Connected: nothing to try again.
                    Some(Command::RetryNow) => {}
                    Some(Command::Say { text, cid }) => {
                        if structured {
                            // Behind any line still waiting (from before this
                            // connection, or for the flood limit), so that all go out
                            // in the order they were typed.
                            self.unacked.push_back(Unacked { cid, text, sent: false });
                            // Until the welcome (it sends all that waits), nothing.
                            if !self.welcomed {
                                continue;
                            }
                            for line in self.due() {
                                if out.send(line).await.is_err() {
                                    return End::Lost("connection lost".into());
                                }
                            }
                        } else if out.send(Bytes::from(plain_lines(&text))).await.is_err() {
                            return End::Lost("connection lost".into());
                        }
                    }
                    Some(Command::Leave) | None => {
                        // Whatever is still waiting goes first: the host reads in order
                        // and drops any line it already has.
                        if structured {
                            for u in self.unacked.iter_mut().filter(|u| !u.sent) {
                                u.sent = true;
                                let say = ClientMsg::Say { text: u.text.clone(), cid: Some(u.cid.clone()) };
                                let _ = out.send(Bytes::from(say.encode())).await;
                            }
                        }
                        // The classic chat ends with the word `exit`; a tchat host gets `bye`.
                        let bye = if structured { ClientMsg::Bye.encode() } else { "exit\n".into() };
                        let _ = out.send(Bytes::from(bye)).await;
                        drop(out);
                        // Close gracefully: our side is done writing; read what the room
                        // still sends until it closes its side. Closing with unread data
                        // would reset the connection and could cost the room our last lines.
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            let _ = (&mut writer).await;
                            while !matches!(lines.next(None).await, Read::Closed(_)) {}
                        })
                        .await;
                        return End::Left;
                    }
                },
                _ = &mut writer => return End::Lost("connection lost".into()),
            }
        }
    }

    /// Keep the session's state up to date with a host's message; what to send back.
    fn on_server(&mut self, msg: &ServerMsg) -> Vec<Bytes> {
        match msg {
            ServerMsg::Welcome {
                room, name, pace, ..
            } => {
                if self.epoch.as_ref() != Some(room) {
                    // A new room (or the host restarted): its ids start again.
                    self.epoch = Some(room.clone());
                    self.last_id = 0;
                }
                self.name = name.clone();
                self.welcomed = true;
                self.pacer = match (pace, self.pacer.take()) {
                    (None, _) => None,
                    // The same limit as before: what was spent is still spent.
                    (Some(p), Some(old)) if old.pace == *p => Some(old),
                    (Some(p), _) => Some(Pacer::new(*p, tokio::time::Instant::now())),
                };
                // Lines the room may not have: again, in order, as fast as the room
                // takes them. Any it already relayed, it recognises by `cid` and does
                // not relay twice.
                self.due()
            }
            ServerMsg::Nick { old, new, .. } if *old == self.name => {
                // Renamed (`/nick`): a rejoin asks for the new name.
                self.name = new.clone();
                self.confirm(msg);
                vec![]
            }
            ServerMsg::Ping => vec![Bytes::from(ClientMsg::Pong.encode())],
            _ => {
                self.confirm(msg);
                vec![]
            }
        }
    }

    /// A line of ours answered by `msg` (its echo, what its command made, a notice about
    /// it, an ack): delivered or refused, either way never to be sent again.
    fn confirm(&mut self, msg: &ServerMsg) {
        if let Some(c) = msg.cid() {
            self.unacked.retain(|u| u.cid != c);
        }
    }

    /// The lines not yet sent on this connection that the flood limit allows now, in
    /// order (marked sent).
    fn due(&mut self) -> Vec<Bytes> {
        let now = tokio::time::Instant::now();
        let mut lines = Vec::new();
        for u in self.unacked.iter_mut().skip_while(|u| u.sent) {
            if let Some(p) = &mut self.pacer
                && !p.take(now)
            {
                break;
            }
            u.sent = true;
            let say = ClientMsg::Say {
                text: u.text.clone(),
                cid: Some(u.cid.clone()),
            };
            lines.push(Bytes::from(say.encode()));
        }
        lines
    }

    /// An event already passed on (replayed again after a rejoin, or a resend's echo).
    fn is_repeat(&self, msg: &ServerMsg) -> bool {
        msg.id().is_some_and(|id| id <= self.last_id)
    }

    fn note_id(&mut self, msg: &ServerMsg) {
        if let Some(id) = msg.id() {
            self.last_id = id;
        }
    }
}

/// The room's flood limit as a joiner keeps to it: a token bucket like the host's, with
/// a margin of [`PACE_MARGIN`] lines, so that lines sent evenly and bunched up on the way
/// (jitter) are still within the limit when they arrive.
#[derive(Debug, Clone)]
struct Pacer {
    pace: protocol::Pace,
    tokens: f64,
    at: tokio::time::Instant,
}

/// Lines of the host's burst a joiner leaves unused.
const PACE_MARGIN: u32 = 2;

impl Pacer {
    fn new(pace: protocol::Pace, now: tokio::time::Instant) -> Self {
        let mut p = Pacer {
            pace,
            tokens: 0.0,
            at: now,
        };
        p.tokens = p.cap();
        p
    }

    fn cap(&self) -> f64 {
        f64::from(self.pace.burst.saturating_sub(PACE_MARGIN).max(1))
    }

    fn refill(&mut self, now: tokio::time::Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * f64::from(self.pace.rate)).min(self.cap());
        self.at = now;
    }

    /// Spend a line's worth, if there is one.
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        self.refill(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// When the next line's worth is there.
    fn next_at(&self) -> tokio::time::Instant {
        let short = (1.0 - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64(short / f64::from(self.pace.rate.max(1)))
    }
}

/// Sleep until `at`; for ever when there is no `at`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The start of a tchat host's greeting (or all of one).
fn looks_like_banner(buffered: &[u8]) -> bool {
    let prefix = protocol::BANNER_PREFIX.as_bytes();
    let n = buffered.len().min(prefix.len());
    buffered[..n] == prefix[..n]
}

/// A structured message (every host event is a JSON object), as opposed to text.
fn looks_like_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

fn text(line: String) -> NetEvent {
    NetEvent::Text {
        ts: chrono::Utc::now().timestamp_millis(),
        text: line,
    }
}

/// A message as plain lines, each ending in `\n`.
fn plain_lines(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 1);
    for line in text.split('\n') {
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("example.org", 7878),
            Ok(("example.org".into(), 7878))
        );
        assert_eq!(
            parse_addr("10.0.0.2:9000", 7878),
            Ok(("10.0.0.2".into(), 9000))
        );
        assert_eq!(parse_addr("[::1]:9000", 7878), Ok(("::1".into(), 9000)));
        assert_eq!(parse_addr("[::1]", 7878), Ok(("::1".into(), 7878)));
        assert_eq!(parse_addr("::1", 7878), Ok(("::1".into(), 7878)));
        assert_eq!(parse_addr("fe80::1", 7878), Ok(("fe80::1".into(), 7878)));
        assert!(parse_addr("host:99999", 7878).is_err());
        assert!(parse_addr("host:", 7878).is_err());
        assert!(parse_addr(":80", 7878).is_err());
        assert!(parse_addr("[::1", 7878).is_err());
        assert!(parse_addr("", 7878).is_err());
    }

    #[test]
    fn io_errors_read_plainly() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(plain_io_error(&e), "connection refused");
        let e = std::io::Error::from_raw_os_error(111);
        assert!(!plain_io_error(&e).contains("os error"));
    }

    #[test]
    fn the_pacer_keeps_a_margin_below_the_hosts_burst_then_goes_at_its_rate() {
        let t0 = tokio::time::Instant::now();
        let mut p = Pacer::new(protocol::Pace { burst: 5, rate: 2 }, t0);
        assert!(
            (0..3).all(|_| p.take(t0)),
            "5 at once, less the margin of 2"
        );
        assert!(!p.take(t0));
        assert_eq!(p.next_at(), t0 + Duration::from_millis(500));
        assert!(!p.take(t0 + Duration::from_millis(499)));
        assert!(p.take(t0 + Duration::from_millis(500)));
        // A long wait fills it to the capped burst again, no more.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| p.take(later)));
        assert!(!p.take(later));
    }

    #[test]
    fn multi_line_text_goes_out_as_lines() {
        assert_eq!(plain_lines("a\nb"), "a\nb\n");
        assert_eq!(plain_lines("one"), "one\n");
    }
}
