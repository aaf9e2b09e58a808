//! The host's side: accepting connections and running the room.
//!
//! * [`room`] holds the rules (pure).
//! * One task per connection reads lines and writes a bounded queue of outgoing bytes
//!   ([`serve_peer`], generic over any stream, so tests and the host's own seat can use
//!   an in-memory pipe).
//! * One room task owns the [`room::Room`] and the queues; it is the only place room state
//!   changes. It never waits on a peer: a full queue means the peer is not reading, and
//!   it is dropped rather than slowing everyone else down.

pub mod room;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::{LineReader, Outbox, Read, Refused, write_outbox};
use crate::protocol::{self, Frame, ServerMsg};
use room::{Action, Dialect, Outgoing, PeerId, Room, Rules, Target};

/// How the host runs its room.
#[derive(Debug, Clone)]
pub struct Config {
    /// The room's limits: longest line, flood limit, history kept.
    pub rules: Rules,
    /// Connections at once (the host's own seat not counted); one more is told the room
    /// is full and closed.
    pub max_peers: usize,
    /// Bytes a connection may send without a newline before it is closed. At least one
    /// whole line of `rules.max_line` is always allowed.
    pub max_unterminated: usize,
    /// How long a tchat client may say nothing before it is pinged; if it stays silent
    /// that long again, it is gone (a half-open connection) and is removed.
    pub ping_after: Duration,
    /// How long a new connection may stay silent before it joins as a plain peer.
    pub settle_after: Duration,
    /// Bytes queued for one peer (not yet written to its socket) before it counts as
    /// not reading and is dropped. Bounds the host's memory per peer.
    pub max_backlog: usize,
    /// Log joins and leaves to stderr (the headless host).
    pub log: bool,
    /// What the greeting calls the room's address.
    pub address: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: Rules::default(),
            max_peers: 1000,
            max_unterminated: 64 * 1024,
            ping_after: Duration::from_secs(20),
            settle_after: Duration::from_millis(700),
            max_backlog: DEFAULT_MAX_BACKLOG,
            log: false,
            address: String::new(),
        }
    }
}

/// The default bound on one peer's unsent bytes.
pub const DEFAULT_MAX_BACKLOG: usize = 1024 * 1024;

/// The bound on the host's own seat's unsent bytes (when `max_backlog` is lower). A
/// pause of the host's screen (Ctrl-S, a slow ssh link) while the room is busy must not
/// throw the host out of its own room; a screen stopped for good must still not take
/// all the memory there is.
pub const OWN_SEAT_BACKLOG: usize = 64 * 1024 * 1024;

impl Config {
    /// Bytes without a newline after which a connection is closed.
    pub fn unterminated_cap(&self) -> usize {
        self.max_unterminated
            .max(protocol::frame_limit(self.rules.max_line).saturating_add(1))
    }
}

/// A running room. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    local: mpsc::Sender<DuplexStream>,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Start serving the room on `listener`.
    pub fn spawn(listener: TcpListener, config: Config) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let (local, local_rx) = mpsc::channel(4);
        let done = tokio::spawn(run_inner(listener, local_rx, config, stop.clone()));
        Ok(Server {
            addr,
            local,
            stop,
            done,
        })
    }

    /// The address the room listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connection to the room that does not go through the network: the host's own
    /// seat, which then joins like anyone else.
    pub async fn connect_local(&self) -> std::io::Result<DuplexStream> {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        self.local
            .send(theirs)
            .await
            .map_err(|_| std::io::Error::other("the room has stopped"))?;
        Ok(ours)
    }

    /// Tell everyone the host is leaving, close every connection, and wait (briefly) for
    /// the goodbyes to be written.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }
}

/// Serve the room on `listener` until `shutdown` completes; then say goodbye to everyone.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) {
    let stop = CancellationToken::new();
    let (_local, local_rx) = mpsc::channel(1);
    let task = tokio::spawn(run_inner(listener, local_rx, config, stop.clone()));
    shutdown.await;
    stop.cancel();
    let _ = task.await;
}

/// What connection tasks tell the room task.
enum Event {
    Open {
        id: PeerId,
        out: Arc<Outbox>,
        kill: CancellationToken,
        /// The host's own seat (see [`OWN_SEAT_BACKLOG`]).
        own_seat: bool,
    },
    Frame(PeerId, Frame),
    /// Nothing arrived for a while.
    Quiet(PeerId),
    /// Too much arrived without a newline.
    Overrun(PeerId),
    Closed(PeerId, Option<String>),
}

async fn run_inner(
    listener: TcpListener,
    mut local: mpsc::Receiver<DuplexStream>,
    config: Config,
    stop: CancellationToken,
) {
    // Shared by every connection task rather than copied into each.
    let config = Arc::new(config);
    let tracker = TaskTracker::new();
    let (events_tx, events) = mpsc::channel::<Event>(1024);
    let room_task = tokio::spawn(room_task(events, config.clone(), stop.clone()));
    let seats = Arc::new(Semaphore::new(config.max_peers));
    let mut next_id: PeerId = 0;
    loop {
        next_id += 1;
        let id = next_id;
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    crate::net::keepalive(&stream);
                    match seats.clone().try_acquire_owned() {
                        Ok(seat) => {
                            let (events, peer_config) = (events_tx.clone(), config.clone());
                            // The connection's future is made inside the task, not moved
                            // into it: a future captured and then awaited is stored twice,
                            // and this one is what every idle peer costs.
                            tracker.spawn(async move {
                                serve_peer(id, stream, events, peer_config, false).await;
                                drop(seat);
                            });
                        }
                        Err(_) => {
                            tracker.spawn(turn_away(stream, config.max_peers));
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    if config.log {
                        eprintln!("{} accept failed: {e}", clock());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(stream) = local.recv() => {
                let peer = serve_peer(id, stream, events_tx.clone(), config.clone(), true);
                tracker.spawn(peer);
            }
        }
    }
    drop(listener);
    drop(events_tx);
    // The room task says goodbye and drops every queue; the writers then finish.
    let _ = room_task.await;
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
}

/// Tell a connection the room is full, and close it once it has read that (or after a
/// second).
async fn turn_away(mut stream: tokio::net::TcpStream, max_peers: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let line = protocol::room_full_line(max_peers);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await?;
        // Read until the far side closes: closing with unread input would reset the
        // connection, and the far side could lose the line before reading it.
        let mut sink = [0u8; 512];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// One connection: greet, read lines for the room, write what the room queues.
async fn serve_peer<S>(
    id: PeerId,
    stream: S,
    events: mpsc::Sender<Event>,
    config: Arc<Config>,
    own_seat: bool,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let out = Outbox::new();
    let kill = CancellationToken::new();
    let open = Event::Open {
        id,
        out: out.clone(),
        kill: kill.clone(),
        own_seat,
    };
    if events.send(open).await.is_err() {
        return;
    }
    let (r, w) = tokio::io::split(stream);
    let reading = read_peer(id, r, &events, &config);
    let writing = write_outbox(w, out);
    tokio::pin!(reading, writing);
    tokio::select! {
        reason = &mut reading => {
            let _ = events.send(Event::Closed(id, reason)).await;
            // Let the room's last words (if any) go out, but not forever.
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(2), &mut writing) => {}
                _ = kill.cancelled() => {}
            }
        }
        result = &mut writing => {
            let reason = result.err().map(|e| e.to_string());
            let _ = events.send(Event::Closed(id, reason)).await;
        }
        _ = kill.cancelled() => {}
    }
}

/// Read lines until the peer closes; returns why, when it was not a clean close.
async fn read_peer<R: AsyncRead + Unpin>(
    id: PeerId,
    reader: R,
    events: &mpsc::Sender<Event>,
    config: &Config,
) -> Option<String> {
    let mut lines = LineReader::new(reader, protocol::frame_limit(config.rules.max_line))
        .with_cap(config.unterminated_cap());
    // Until the first line (or a silence) settles how the peer talks, wait to settle;
    // after it, only a tchat client is pinged when it goes quiet, so a plain peer's
    // reader waits on its socket alone and an idle one never wakes the host.
    let mut quiet_after = Some(config.settle_after);
    let mut settled = false;
    loop {
        let (event, last) = match lines.next(quiet_after).await {
            Read::Frame(frame) => {
                if !settled {
                    let tchat = matches!(&frame, Frame::Line(line)
                        if protocol::ClientMsg::parse_hello(line).is_some());
                    quiet_after = tchat.then_some(config.ping_after);
                }
                (Event::Frame(id, frame), false)
            }
            Read::Quiet => {
                if !settled {
                    quiet_after = None;
                }
                (Event::Quiet(id), false)
            }
            Read::Overrun => (Event::Overrun(id), true),
            Read::Closed(reason) => return reason,
        };
        settled = true;
        if events.send(event).await.is_err() {
            return None;
        }
        if last {
            lines.drain(Duration::from_secs(1)).await;
            return None;
        }
    }
}

/// The room task's connections, by the host's own connection numbers (a fast hash, as
/// in the room: one look-up per recipient of every line).
type Conns = HashMap<PeerId, Conn, foldhash::fast::RandomState>;

struct Conn {
    out: Arc<Outbox>,
    kill: CancellationToken,
    /// Unsent bytes past which it counts as not reading and is dropped.
    backlog: usize,
}

impl Drop for Conn {
    /// The room is done with this connection: its writer sends what is queued (the
    /// last words, if any), then closes.
    fn drop(&mut self) {
        self.out.close();
    }
}

async fn room_task(
    mut events: mpsc::Receiver<Event>,
    config: Arc<Config>,
    stop: CancellationToken,
) {
    let epoch = format!("{:016x}", rand::random::<u64>());
    let mut room = Room::new(epoch, config.address.clone(), config.rules.clone());
    let mut conns = Conns::default();
    // After a burst (a crowd joining, a flood), once a whole TIDY_AFTER has passed with
    // no event, hand the memory the burst freed back to the system. The timer is armed
    // by the first event after a quiet spell and looked at once per TIDY_AFTER, so an
    // event costs a counter, not a clock read, and an idle room wakes for nothing.
    let tidy = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(tidy);
    let mut armed = false;
    let (mut handled, mut handled_at_arming) = (0u64, 0u64);
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            () = &mut tidy, if armed => {
                if handled == handled_at_arming {
                    armed = false;
                    tokio::task::spawn_blocking(crate::memory::release_free);
                } else {
                    handled_at_arming = handled;
                    tidy.as_mut().reset(tokio::time::Instant::now() + TIDY_AFTER);
                }
                continue;
            }
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        handled += 1;
        if !armed {
            armed = true;
            handled_at_arming = handled;
            tidy.as_mut()
                .reset(tokio::time::Instant::now() + TIDY_AFTER);
        }
        let now = now_ms();
        let actions = match event {
            Event::Open {
                id,
                out,
                kill,
                own_seat,
            } => {
                let backlog = if own_seat {
                    config.max_backlog.max(OWN_SEAT_BACKLOG)
                } else {
                    config.max_backlog
                };
                conns.insert(id, Conn { out, kill, backlog });
                room.connect(id, now)
            }
            Event::Frame(id, frame) => room.receive(id, frame, now),
            Event::Quiet(id) => room.quiet(id, now),
            Event::Overrun(id) => {
                let cap = config.unterminated_cap();
                let tell = format!(
                    "closing this connection: more than {cap} bytes arrived without a newline"
                );
                room.cut(id, &tell, "sent too much without a newline", now)
            }
            Event::Closed(id, reason) => {
                conns.remove(&id);
                let reason = reason.map(|_| "connection lost");
                room.disconnect(id, reason, now)
            }
        };
        apply(&mut room, &mut conns, actions, &config);
    }
    let actions = room.shutdown("the host left; the room is closed", now_ms());
    apply(&mut room, &mut conns, actions, &config);
    // Dropping the queues lets each writer flush the goodbye and close.
    conns.clear();
}

/// How long the room stays quiet before it returns a burst's freed memory (between once
/// and twice this after the last event).
const TIDY_AFTER: Duration = Duration::from_secs(1);

/// Carry out the room's actions. Each event is encoded at most once per dialect and the
/// same bytes are queued for every recipient.
fn apply(room: &mut Room, conns: &mut Conns, actions: Vec<Action>, config: &Config) {
    let mut work: VecDeque<Action> = actions.into();
    while let Some(action) = work.pop_front() {
        match action {
            Action::Send(target, out) => {
                if config.log {
                    log_event(target, &out);
                }
                let mut plain: Option<Bytes> = None;
                let mut structured: Option<Bytes> = None;
                let mut too_slow = Vec::new();
                for (id, dialect) in room.recipients(target) {
                    let bytes = match (&out, dialect) {
                        (Outgoing::Raw(line), _) => Bytes::from(format!("{line}\n")),
                        (Outgoing::Event(msg), Dialect::Plain) => plain
                            .get_or_insert_with(|| Bytes::from(msg.to_plain()))
                            .clone(),
                        (Outgoing::Event(msg), Dialect::Structured) => structured
                            .get_or_insert_with(|| Bytes::from(msg.encode()))
                            .clone(),
                    };
                    let Some(conn) = conns.get(&id) else { continue };
                    // A closed outbox is a connection already on its way out; it
                    // reports its own close.
                    if conn.out.push(bytes, conn.backlog) == Err(Refused::Full) {
                        too_slow.push(id);
                    }
                }
                for id in too_slow {
                    if let Some(conn) = conns.remove(&id) {
                        conn.kill.cancel();
                    }
                    work.extend(room.disconnect(id, Some("too slow to keep up"), now_ms()));
                }
            }
            Action::Close(id) => {
                // The writer sends what is queued, then closes.
                conns.remove(&id);
            }
        }
    }
}

fn log_event(target: Target, out: &Outgoing) {
    if !matches!(target, Target::Room | Target::RoomExcept(_)) {
        return;
    }
    if let Outgoing::Event(msg @ (ServerMsg::Join { .. } | ServerMsg::Leave { .. })) = out {
        eprint!("{} {}", clock(), msg.to_plain());
    }
}

/// Milliseconds since the Unix epoch, the room's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}
