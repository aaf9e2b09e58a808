//! The host's side: accepting connections and running the room.
//!
//! * [`room`] holds the rules (pure).
//! * [`limits`] keeps the per-address limits at the door (pure).
//! * [`session`] settles each connection (greeting, dialect) before the room hears of it.
//! * One task per connection reads lines and writes a bounded queue of outgoing bytes
//!   ([`serve_peer`], generic over any stream, so tests and the host's own seat can use
//!   an in-memory pipe).
//! * One room task owns the [`room::Room`] and the queues; it is the only place room state
//!   changes. It never waits on a peer: a full queue means the peer is not reading, and
//!   it is dropped rather than slowing everyone else down.

pub mod cluster;
pub mod limits;
pub mod room;
pub mod session;
pub mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::{LineReader, Outbox, Read, Refused, write_outbox};
use crate::protocol::{self, Frame, ServerMsg};
use limits::PerAddress;
use room::{Action, Arrival, Dialect, Outgoing, PeerId, Room, Rules, Target};

/// How the host runs its room.
#[derive(Debug, Clone)]
pub struct Config {
    /// The room's limits: longest line, flood limit, history kept.
    pub rules: Rules,
    /// Connections at once (the host's own seat not counted); one more is told the room
    /// is full and closed.
    pub max_peers: usize,
    /// Connections at once from one address (0: no limit); one more is told so and
    /// closed.
    pub max_per_address: usize,
    /// New connections one address may open in a minute (0: no limit).
    pub joins_per_minute: u32,
    /// Bytes a connection may send without a newline before it is closed. At least one
    /// whole line of `rules.max_line` is always allowed.
    pub max_unterminated: usize,
    /// How long a tchat client may say nothing before it is pinged; if it stays silent
    /// that long again, it is gone (a half-open connection) and is removed.
    pub ping_after: Duration,
    /// How long a new connection may stay silent before it joins as a plain peer
    /// (see [`session::HELLO_WAIT`]).
    pub hello_wait: Duration,
    /// Bytes queued for one peer (not yet written to its socket) before it counts as
    /// not reading and is dropped. Bounds the host's memory per peer.
    pub max_backlog: usize,
    /// Unsent bytes the host's own seat may fall behind before it skips ahead (the
    /// larger of this and `max_backlog` applies; see [`OWN_SEAT_BACKLOG`]).
    pub own_seat_backlog: usize,
    /// Log joins and leaves to stderr (the headless host).
    pub log: bool,
    /// What the greeting calls the room's address.
    pub address: String,
    /// Keep the room in this file (a durable room, see [`store`]): a host restarted
    /// with it goes on with the same room.
    pub keep: Option<std::path::PathBuf>,
    /// TLS with the host's key ([`crate::tls`]): a connection that starts a TLS
    /// handshake is encrypted; others are plain, as ever. `None`: plain only.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A private room's code: a joiner must prove it knows it (inside TLS, see
    /// [`crate::pake`]); plain peers are told the room is private and closed.
    pub code: Option<crate::code::Code>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: Rules::default(),
            max_peers: 1000,
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
            joins_per_minute: DEFAULT_JOINS_PER_MINUTE,
            max_unterminated: 64 * 1024,
            ping_after: Duration::from_secs(20),
            hello_wait: session::HELLO_WAIT,
            max_backlog: DEFAULT_MAX_BACKLOG,
            own_seat_backlog: OWN_SEAT_BACKLOG,
            log: false,
            address: String::new(),
            keep: None,
            tls: None,
            code: None,
        }
    }
}

/// The default for [`Config::max_per_address`]: a household or an office behind one
/// address fits; one machine cannot fill the room.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 16;

/// The default for [`Config::joins_per_minute`]: far above what reconnecting with
/// backoff needs, far below a reconnect flood.
pub const DEFAULT_JOINS_PER_MINUTE: u32 = 30;

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
        let kept = open_kept(&config)?;
        Server::start(listener, config, kept)
    }

    /// Start serving a room that several hosts share through its log on NATS (see
    /// [`cluster`]), which this host has joined.
    pub fn spawn_clustered(
        listener: TcpListener,
        config: Config,
        joined: cluster::Joined,
    ) -> std::io::Result<Server> {
        let mut room = Room::clustered(
            joined.epoch.clone(),
            config.rules.clone(),
            joined.host.clone(),
        );
        let mut joined = joined;
        for (id, entry) in std::mem::take(&mut joined.past) {
            room.apply(id, entry, false, 0);
        }
        let start = Start {
            room,
            store: None,
            cluster: Some(joined),
            publish: None,
        };
        Server::start(listener, config, start)
    }

    fn start(listener: TcpListener, config: Config, kept: Start) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let (local, local_rx) = mpsc::channel(4);
        let done = tokio::spawn(run_inner(listener, local_rx, config, kept, stop.clone()));
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

    /// A way to open the host's own seat again, for a host whose seat was cut (it then
    /// rejoins like any joiner: [`crate::client::start_rejoining`]).
    pub fn local_connector(
        &self,
    ) -> impl FnMut() -> futures::future::BoxFuture<'static, Result<DuplexStream, String>> + Send + 'static
    {
        let local = self.local.clone();
        move || {
            let local = local.clone();
            Box::pin(async move {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                local
                    .send(theirs)
                    .await
                    .map_err(|_| "the room has stopped".to_owned())?;
                Ok(ours)
            })
        }
    }

    /// Tell everyone the host is leaving, close every connection, and wait (briefly) for
    /// the goodbyes to be written.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }
}

/// The room as it starts: from its file (`--keep`), from its cluster's log, or new.
struct Start {
    room: Room,
    store: Option<store::Store>,
    /// A clustered room's log, to be run once the room's task is there to hear it.
    cluster: Option<cluster::Joined>,
    /// Where a clustered room's proposals go (set when its log is run).
    publish: Option<cluster::LogQueue>,
}

fn open_kept(config: &Config) -> std::io::Result<Start> {
    let epoch = format!("{:016x}", rand::random::<u64>());
    let Some(path) = &config.keep else {
        return Ok(Start {
            room: Room::new(epoch, config.rules.clone()),
            store: None,
            cluster: None,
            publish: None,
        });
    };
    let (store, saved) = store::Store::open(path, &epoch, &config.rules).map_err(|e| {
        std::io::Error::other(format!("cannot keep the room in {}: {e}", path.display()))
    })?;
    let mut room = Room::restore(saved, config.rules.clone());
    room.keep_journal();
    Ok(Start {
        room,
        store: Some(store),
        cluster: None,
        publish: None,
    })
}

/// What connection tasks tell the room task.
enum Event {
    /// A connection finished its handshake and takes a seat.
    Open {
        id: PeerId,
        out: Arc<Outbox>,
        kill: CancellationToken,
        /// The host's own seat (see [`OWN_SEAT_BACKLOG`]).
        own_seat: bool,
        arrival: Arrival,
        /// A plain peer's first line, which came with its handshake.
        first: Option<Frame>,
    },
    Frame(PeerId, Frame),
    /// Nothing arrived for a while.
    Quiet(PeerId),
    /// Too much arrived without a newline.
    Overrun(PeerId),
    Closed(PeerId, Option<String>),
    /// Something the host should know that is no one's message (wrong codes tried).
    Tell(String),
    /// A clustered room's log handed over this entry, numbered.
    Logged(u64, Box<room::Entry>),
    /// Another host of a clustered room handed over a private message's words for
    /// someone it takes to be here: whether they are.
    PrivateWords {
        key: String,
        to: String,
        text: String,
        seated: tokio::sync::oneshot::Sender<bool>,
    },
    /// A private message's words could not be handed to the other host (why).
    Undelivered(Box<room::Entry>, String),
    /// A clustered room's log is in trouble (for the host's own seat and log).
    Trouble(String),
    /// A clustered room's log can no longer, or can again, be reached (the publisher's
    /// flag says which; everyone here is told as the room's next turn reads it): a
    /// headless host's log says `why`, and the turn comes at once.
    LinkDown {
        why: String,
    },
    /// A clustered room's heartbeat: who is on this host?
    Beat(tokio::sync::oneshot::Sender<room::Listing>),
    /// What the other hosts of a clustered room last said of who is on them.
    Presence(std::collections::HashMap<String, room::Listing>),
}

/// What every connection task shares.
struct Shared {
    config: Config,
    /// The room's next event id, published by the room task after every event: where
    /// a connection opening now starts (see [`Arrival::mark`]).
    next_event: AtomicU64,
    door: std::sync::Mutex<PerAddress>,
    /// Wrong codes tried at a private room, by address.
    codes: std::sync::Mutex<limits::WrongCodes>,
}

impl Shared {
    fn codes(&self) -> std::sync::MutexGuard<'_, limits::WrongCodes> {
        self.codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn door(&self) -> std::sync::MutexGuard<'_, PerAddress> {
        // Nothing panics while holding it; if something did, the table is still sound.
        self.door
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection counted against its address until it is dropped.
struct AddrSeat {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for AddrSeat {
    fn drop(&mut self) {
        self.shared.door().close(self.ip, std::time::Instant::now());
    }
}

async fn run_inner(
    listener: TcpListener,
    mut local: mpsc::Receiver<DuplexStream>,
    config: Config,
    start: Start,
    stop: CancellationToken,
) {
    // Shared by every connection task rather than copied into each.
    let shared = Arc::new(Shared {
        door: std::sync::Mutex::new(PerAddress::new(
            config.max_per_address,
            config.joins_per_minute,
        )),
        next_event: AtomicU64::new(start.room.next_event()),
        codes: std::sync::Mutex::new(limits::WrongCodes::new(WRONG_CODE_ADDRESSES)),
        config,
    });
    let config = &shared.config;
    let tracker = TaskTracker::new();
    let (events_tx, events) = mpsc::channel::<Event>(1024);
    let mut start = start;
    if let Some(joined) = start.cluster.take() {
        start.publish = Some(joined.run(events_tx.clone(), stop.clone()));
    }
    let room_task = tokio::spawn(room_task(events, shared.clone(), start, stop.clone()));
    let seats = Arc::new(Semaphore::new(config.max_peers));
    let turning_away = Arc::new(Semaphore::new(TURN_AWAY_AT_ONCE));
    let mut next_id: PeerId = 0;
    loop {
        next_id += 1;
        let id = next_id;
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    crate::net::keepalive(&stream);
                    let ip = limits::address_key(from.ip());
                    let at_door = shared.door().open(ip, std::time::Instant::now());
                    if let Err(refusal) = at_door {
                        let line = protocol::refusal_line(&refusal.text());
                        turn_away(&tracker, &turning_away, stream, line);
                        continue;
                    }
                    let addr_seat = AddrSeat { shared: shared.clone(), ip };
                    match seats.clone().try_acquire_owned() {
                        Ok(seat) => {
                            let (events, peer_shared) = (events_tx.clone(), shared.clone());
                            // The connection's future is made inside the task, not moved
                            // into it: a future captured and then awaited is stored twice,
                            // and this one is what every idle peer costs.
                            tracker.spawn(async move {
                                serve_tcp(id, stream, events, peer_shared, ip).await;
                                drop((seat, addr_seat));
                            });
                        }
                        Err(_) => {
                            drop(addr_seat);
                            let line = protocol::room_full_line(config.max_peers);
                            turn_away(&tracker, &turning_away, stream, line);
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    if config.log {
                        crate::note!("{} accept failed: {e}", clock());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(stream) = local.recv() => {
                let (greet, mark) = (Greet::Now, shared.next_event.load(Ordering::Relaxed));
                let peer = serve_peer(id, tokio::io::split(stream), events_tx.clone(), shared.clone(), None, greet, mark);
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

/// Connections being turned away that the host waits on (up to a second each, for them
/// to read why). A flood of refused connections beyond this is told as best it can be
/// and closed at once, so that it cannot hold the host's files open.
const TURN_AWAY_AT_ONCE: usize = 64;

/// Tell a connection why it is turned away (`line`) and close it: gracefully while few
/// are being turned away, at once in a flood.
fn turn_away(
    tracker: &TaskTracker,
    at_once: &Arc<Semaphore>,
    stream: tokio::net::TcpStream,
    line: String,
) {
    match at_once.clone().try_acquire_owned() {
        Ok(permit) => {
            tracker.spawn(async move {
                say_and_close(stream, line).await;
                drop(permit);
            });
        }
        // The line fits a fresh socket's buffer; whether it is read before the close
        // is the flood's business.
        Err(_) => {
            let _ = stream.try_write(line.as_bytes());
        }
    }
}

/// Tell a connection `line`, and close it once it has read that (or after a second).
async fn say_and_close(mut stream: tokio::net::TcpStream, line: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Addresses whose wrong codes a private room remembers at once.
const WRONG_CODE_ADDRESSES: usize = 4096;

/// What a plain peer at a private room is told, in clear, before it is closed.
fn private_line() -> String {
    format!(
        "{}{} {} private: this room is private; join with the invitation its host gave you (tchat --join …); nothing of it is sent in clear\n",
        protocol::BANNER_PREFIX,
        protocol::PROTOCOL_VERSION,
        protocol::BANNER_TLS
    )
}

/// Whether a connection has been greeted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greet {
    /// Greet it, then wait for its first line up to the configured wait.
    Now,
    /// It was greeted in clear and has been waited on already: its first line is read
    /// with this much of the wait left.
    Done { left: Duration },
}

/// A TCP connection: TLS if it starts a TLS handshake (at once, or right after a
/// greeting in clear, when a slow path held its start back), plain otherwise; then
/// [`serve_peer`] on what it turned out to be.
async fn serve_tcp(
    id: PeerId,
    stream: tokio::net::TcpStream,
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    ip: IpAddr,
) {
    // Where this connection starts in the room's story: it is sent what is said from
    // now on, however long its handshake (and the look for TLS before it) lasts.
    let mark = shared.next_event.load(Ordering::Relaxed);
    let config = &shared.config;
    let (stream, greet) = match &config.tls {
        None => (stream, Some(Greet::Now)),
        Some(_) => match tls_or_plain(stream, config).await {
            Some(decided) => decided,
            None => return,
        },
    };
    // Each path its own allocation: a plain peer does not carry a TLS stream's room.
    match (greet, config.tls.clone()) {
        (Some(greet), _) => {
            let peer = serve_peer(
                id,
                tokio::io::split(stream),
                events,
                shared,
                Some(ip),
                greet,
                mark,
            );
            Box::pin(peer).await;
        }
        (None, Some(tls)) => Box::pin(serve_tls(id, stream, tls, events, shared, ip, mark)).await,
        (None, None) => {}
    }
}

/// Whether a connection to a host that takes TLS is a TLS client (`None` in the
/// second place) or a plain peer (how it has been greeted); `None` when it is over
/// (it closed, or it was a plain peer at a private room, told so).
async fn tls_or_plain(
    stream: tokio::net::TcpStream,
    config: &Config,
) -> Option<(tokio::net::TcpStream, Option<Greet>)> {
    use tokio::io::AsyncWriteExt;
    let private = config.code.is_some();
    match session::sniff(&stream, session::SNIFF_WAIT).await {
        session::Sniffed::Tls => return Some((stream, None)),
        session::Sniffed::Closed => return None,
        session::Sniffed::Plain if private => {
            say_and_close(stream, private_line()).await;
            return None;
        }
        session::Sniffed::Plain => return Some((stream, Some(Greet::Now))),
        session::Sniffed::Quiet => {}
    }
    // Silent: a plain peer waiting to be greeted (`nc`), or a TLS client whose start is
    // slow to arrive. Greet it in clear (a private room only says it is private) and
    // look again.
    let banner = match config.code {
        Some(_) => private_line(),
        None => format!("{}\n", protocol::banner_with_tls(&config.address)),
    };
    let mut stream = stream;
    let wrote =
        tokio::time::timeout(Duration::from_secs(5), stream.write_all(banner.as_bytes())).await;
    if !matches!(wrote, Ok(Ok(()))) {
        return None;
    }
    let started = tokio::time::Instant::now();
    match session::sniff(&stream, config.hello_wait).await {
        session::Sniffed::Tls => Some((stream, None)),
        session::Sniffed::Closed => None,
        session::Sniffed::Plain | session::Sniffed::Quiet if private => {
            // Told already; nothing of the room for it.
            say_and_close(stream, String::new()).await;
            None
        }
        session::Sniffed::Plain | session::Sniffed::Quiet => {
            let left = config.hello_wait.saturating_sub(started.elapsed());
            Some((stream, Some(Greet::Done { left })))
        }
    }
}

/// The TLS handshake, bounded in time; then the connection is served inside it, greeted
/// afresh.
async fn serve_tls(
    id: PeerId,
    stream: tokio::net::TcpStream,
    tls: Arc<rustls::ServerConfig>,
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    ip: IpAddr,
    mark: u64,
) {
    // The handshake (and a private room's code) on the heap, and gone once it is over:
    // an established peer's state machine keeps room only for what it needs.
    let Some(records) = Box::pin(secure(stream, tls, &events, &shared, ip)).await else {
        return;
    };
    // Split here, so that the keys are held once (in the halves), not also in the
    // state machine's copy of its argument.
    let halves = tokio::io::split(records);
    serve_peer(id, halves, events, shared, Some(ip), Greet::Now, mark).await
}

/// An encrypted connection, once TLS and a private room's code are through; its records
/// are then sealed and opened with the keys alone (see [`crate::records`]): an idle peer
/// keeps nothing of rustls.
async fn secure(
    stream: tokio::net::TcpStream,
    tls: Arc<rustls::ServerConfig>,
    events: &mpsc::Sender<Event>,
    shared: &Shared,
    ip: IpAddr,
) -> Option<crate::records::Records<tokio::net::TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let accept = acceptor.accept(crate::records::WholeRecords::new(stream));
    let mut secured = match tokio::time::timeout(session::TLS_WAIT, accept).await {
        Ok(Ok(secured)) => secured,
        Ok(Err(e)) => {
            if shared.config.log {
                crate::note!("{} TLS handshake from {ip} failed: {e}", clock());
            }
            return None;
        }
        Err(_) => return None,
    };
    if let Some(code) = shared.config.code.clone()
        && !prove_code(&mut secured, &code, shared, events, ip).await
    {
        return None;
    }
    let (io, conn) = secured.into_inner();
    match crate::records::Records::take_over(io, conn) {
        Ok(records) => Some(records),
        Err(e) => {
            if shared.config.log {
                crate::note!("{} TLS from {ip}: {e}", clock());
            }
            None
        }
    }
}

/// A private room's door, inside TLS: the joiner proves it knows the code (see
/// [`crate::pake`]), bound to this TLS session. Whether it did. A wrong code, or an
/// exchange not finished, counts against the address; after a few, the address waits
/// longer and longer and is told so; the host is told of each.
async fn prove_code(
    stream: &mut tokio_rustls::server::TlsStream<
        crate::records::WholeRecords<tokio::net::TcpStream>,
    >,
    code: &crate::code::Code,
    shared: &Shared,
    events: &mpsc::Sender<Event>,
    ip: IpAddr,
) -> bool {
    use crate::pake::{self, Exchange, Line};
    let prefix = format!("{}{}", protocol::BANNER_PREFIX, protocol::PROTOCOL_VERSION);
    let too_many = |wait: Duration| {
        format!(
            "{prefix} private: too many wrong codes from your address; try again in {} s\n",
            wait.as_secs().max(1)
        )
    };
    let allowed = shared.codes().check(ip, std::time::Instant::now());
    if let Err(wait) = allowed {
        session::say_last(stream, &too_many(wait)).await;
        return false;
    }
    let mut binding = [0u8; pake::BINDING_LEN];
    if stream
        .get_ref()
        .1
        .export_keying_material(&mut binding, pake::EXPORTER_LABEL, None)
        .is_err()
    {
        return false;
    }
    // `None`: over before a guess (a joiner without the code, or not tchat: nothing to
    // count), or the connection failed; else how the guess went.
    let exchange = async {
        use tokio::io::AsyncWriteExt;
        let greeting = format!(
            "{} (tchat does this for you with the invitation or --code)\n",
            pake::PROMPT
        );
        stream.write_all(greeting.as_bytes()).await.ok()?;
        let Some(Line::Pake {
            message,
            confirm: None,
        }) = read_exchange_line(stream).await
        else {
            return None;
        };
        // The guess is made: it counts now, whatever the guesser does next.
        let counted = shared.codes().guess(ip, std::time::Instant::now());
        let (tries, wait) = match counted {
            Ok(counted) => counted,
            Err(wait) => return Some(Guess::Waiting(wait)),
        };
        let wrong = Guess::Wrong { tries, wait };
        let ours = Exchange::start(code, &binding);
        let reply_message = ours.message.clone();
        let Some(key) = ours.finish(&message) else {
            return Some(wrong);
        };
        let reply = Line::Pake {
            message: reply_message,
            confirm: Some(key.confirm("host")),
        };
        stream.write_all(reply.render().as_bytes()).await.ok()?;
        match read_exchange_line(stream).await {
            Some(Line::Confirm(proof)) if key.verify("joiner", &proof) => Some(Guess::Right),
            _ => Some(wrong),
        }
    };
    let outcome = tokio::time::timeout(session::TLS_WAIT, exchange).await;
    let (tries, wait) = match outcome.ok().flatten() {
        None => return false,
        Some(Guess::Right) => {
            shared.codes().succeeded(ip);
            return true;
        }
        Some(Guess::Waiting(wait)) => {
            session::say_last(stream, &too_many(wait)).await;
            return false;
        }
        Some(Guess::Wrong { tries, wait }) => (tries, wait),
    };
    let line = if wait.is_zero() {
        format!("{prefix} private: wrong code\n")
    } else {
        format!(
            "{prefix} private: wrong code ({tries} from your address); the next try may come in {} s\n",
            wait.as_secs()
        )
    };
    session::say_last(stream, &line).await;
    let tell = format!("a wrong code was tried from {ip} ({tries} from that address)");
    if shared.config.log {
        crate::note!("{} {tell}", clock());
    }
    let _ = events.try_send(Event::Tell(tell));
    false
}

/// How a guess at a private room's code went.
enum Guess {
    Right,
    /// Wrong (or not seen through): the guesses so far from its address, and the wait
    /// now due.
    Wrong {
        tries: u32,
        wait: Duration,
    },
    /// Its address must still wait this long: not counted, not answered.
    Waiting(Duration),
}

/// One line of the code exchange (bounded; anything else is no line).
async fn read_exchange_line<R: AsyncRead + Unpin>(r: &mut R) -> Option<crate::pake::Line> {
    let line = crate::net::read_one_line(r, crate::pake::MAX_LINE)
        .await
        .ok()?;
    let text = std::str::from_utf8(line.strip_suffix(b"\n")?).ok()?;
    crate::pake::Line::parse(text)
}

/// One connection: its handshake, then lines for the room, and what the room queues
/// written back.
async fn serve_peer<S>(
    id: PeerId,
    (r, mut w): (ReadHalf<S>, WriteHalf<S>),
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    addr: Option<IpAddr>,
    greet: Greet,
    mark: u64,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let config = &shared.config;
    let own_seat = addr.is_none();
    let cap = config.unterminated_cap();
    let mut lines = LineReader::new(r, protocol::frame_limit(config.rules.max_line)).with_cap(cap);
    let banner = if config.tls.is_some() {
        protocol::banner_with_tls(&config.address)
    } else {
        protocol::banner(&config.address)
    };
    let (banner, wait) = match greet {
        Greet::Now => (Some(banner.as_str()), config.hello_wait),
        Greet::Done { left } => (None, left),
    };
    let Some(session::Decided { hello, first }) =
        session::handshake(&mut lines, &mut w, banner, wait, cap).await
    else {
        lines.drain(Duration::from_secs(1)).await;
        return;
    };
    let structured = hello.is_some();
    let out = Outbox::new();
    let kill = CancellationToken::new();
    let open = Event::Open {
        id,
        out: out.clone(),
        kill: kill.clone(),
        own_seat,
        arrival: Arrival { hello, addr, mark },
        first,
    };
    if events.send(open).await.is_err() {
        return;
    }
    let reading = read_peer(id, lines, &events, config, structured);
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

/// Read lines until the peer closes; returns why, when it was not a clean close. Only
/// a tchat client is pinged when it goes quiet, so a plain peer's reader waits on its
/// socket alone and an idle one never wakes the host.
async fn read_peer<R: AsyncRead + Unpin>(
    id: PeerId,
    mut lines: LineReader<R>,
    events: &mpsc::Sender<Event>,
    config: &Config,
    structured: bool,
) -> Option<String> {
    // Counted from the last byte that came: after a ping, the wait for its answer is
    // one more `ping_after`.
    let mut spells = 1;
    loop {
        let quiet_after = structured.then(|| config.ping_after.saturating_mul(spells));
        let (event, last) = match lines.next(quiet_after).await {
            Read::Frame(frame) => {
                spells = 1;
                (Event::Frame(id, frame), false)
            }
            Read::Quiet => {
                spells += 1;
                (Event::Quiet(id), false)
            }
            Read::Overrun => (Event::Overrun(id), true),
            Read::Closed(reason) => return reason,
        };
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
    /// The host's own seat: never dropped for falling behind; it skips ahead instead.
    own_seat: bool,
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
    shared: Arc<Shared>,
    start: Start,
    stop: CancellationToken,
) {
    let config = &shared.config;
    let Start {
        mut room,
        store,
        publish,
        ..
    } = start;
    let mut turn = Turn {
        steps: Vec::new(),
        store,
        publish,
        proposals: Vec::new(),
        held: std::collections::VecDeque::new(),
        sent: Vec::new(),
    };
    let clock = RoomClock::start();
    let mut conns = Conns::default();
    // After a burst (a crowd joining, a flood), once a whole TIDY_AFTER has passed with
    // no event, hand the memory the burst freed back to the system. The timer is armed
    // by the first event after a quiet spell and looked at once per TIDY_AFTER, so an
    // event costs a counter, not a clock read, and an idle room wakes for nothing.
    let tidy = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(tidy);
    let mut armed = false;
    let (mut handled, mut handled_at_arming) = (0u64, 0u64);
    // When the room has a crowd to tell (see `Room::tick`).
    let crowd = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(crowd);
    let mut crowd_due: Option<i64> = None;
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
            () = &mut crowd, if crowd_due.is_some() => {
                let now = clock.now(&mut room);
                let actions = room.tick(now);
                turn.settle(&mut room, &mut conns, actions, config, now);
                let told = turn.hand_to_log(&mut room, config.log).await;
                turn.settle(&mut room, &mut conns, told, config, now);
                crowd_due = None;
                rearm(&room, now, &mut crowd_due, crowd.as_mut());
                continue;
            }
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        if !armed {
            armed = true;
            handled_at_arming = handled;
            tidy.as_mut()
                .reset(tokio::time::Instant::now() + TIDY_AFTER);
        }
        // One turn: this event and those already waiting behind it (a few, so that a
        // busy room's turns stay short), then one write to the room's file if it is
        // kept, then what they send goes out.
        let now = clock.now(&mut room);
        // Whether the log can be reached, as the publisher last found: read here each
        // turn (its event may not have found room in a busy room's queue), and told
        // to everyone when it changed.
        if let Some(queue) = &turn.publish {
            let down = queue.down.load(Ordering::Relaxed);
            if down != room.log_down() {
                room.set_log_down(down);
                turn.resolve(&room, &conns, vec![link_notice(down)], config);
            }
        }
        let mut next = Some(event);
        let mut taken = 0;
        while let Some(event) = next.take() {
            handled += 1;
            taken += 1;
            let actions = on_event(&mut room, &mut conns, event, config, now);
            turn.resolve(&room, &conns, actions, config);
            shared
                .next_event
                .store(room.next_event(), Ordering::Relaxed);
            if taken < TURN_EVENTS && turn.steps.len() < TURN_STEPS {
                next = events.try_recv().ok();
            }
        }
        turn.finish(&mut room, &mut conns, config, now);
        if !turn.proposals.is_empty() || !turn.held.is_empty() {
            let told = turn.hand_to_log(&mut room, config.log).await;
            if !told.is_empty() {
                turn.settle(&mut room, &mut conns, told, config, now);
            }
        }
        rearm(&room, now, &mut crowd_due, crowd.as_mut());
    }
    let now = clock.now(&mut room);
    let actions = room.shutdown("the host left; the room is closed", now);
    turn.settle(&mut room, &mut conns, actions, config, now);
    // Dropping the queues lets each writer flush the goodbye and close.
    conns.clear();
}

/// Events (not lines) held back while a clustered room's log is behind, at most.
const MAX_HELD: usize = 65_536;

/// The longest a clustered room's turn waits for room in its log's queue while the
/// log is reachable (NATS's own wait for an acknowledgment is 5 s).
const LOG_WAIT: Duration = Duration::from_secs(5);

/// The most events, and the most sends they make, taken in one turn of the room. A
/// durable room writes a turn in one transaction: the larger the turn, the less each
/// event costs to keep; 256 events are well under a millisecond of the room's work.
const TURN_EVENTS: usize = 256;
const TURN_STEPS: usize = 16 * 1024;

/// What the room makes of one event.
fn on_event(
    room: &mut Room,
    conns: &mut Conns,
    event: Event,
    config: &Config,
    now: i64,
) -> Vec<Action> {
    match event {
        Event::Open {
            id,
            out,
            kill,
            own_seat,
            arrival,
            first,
        } => {
            let backlog = if own_seat {
                config.max_backlog.max(config.own_seat_backlog)
            } else {
                config.max_backlog
            };
            conns.insert(
                id,
                Conn {
                    out,
                    kill,
                    backlog,
                    own_seat,
                },
            );
            let mut actions = room.seat(id, arrival, now);
            if let Some(frame) = first {
                actions.extend(room.receive(id, frame, now));
            }
            actions
        }
        Event::Frame(id, frame) => room.receive(id, frame, now),
        Event::Quiet(id) => room.quiet(id, now),
        Event::Overrun(id) => {
            let cap = config.unterminated_cap();
            let tell =
                format!("closing this connection: more than {cap} bytes arrived without a newline");
            room.cut(id, &tell, "sent too much without a newline", now)
        }
        Event::Closed(id, reason) => {
            conns.remove(&id);
            let reason = reason.map(|_| "connection lost");
            room.disconnect(id, reason, now)
        }
        Event::Logged(id, entry) => room.apply(id, *entry, true, now),
        Event::PrivateWords {
            key,
            to,
            text,
            seated,
        } => {
            let _ = seated.send(room.private_words(key, &to, text));
            Vec::new()
        }
        Event::Undelivered(entry, why) => room.undelivered(*entry, &why, now),
        Event::Beat(answer) => {
            let _ = answer.send(room.listing());
            Vec::new()
        }
        Event::Presence(hosts) => room.presence(&hosts, now),
        Event::Trouble(text) => {
            if config.log {
                crate::note!("{} {text}", clock());
            }
            tell_own_seat(conns, text);
            Vec::new()
        }
        // Everyone is told at the start of the turn (see `room_task`); the host's log
        // says why.
        Event::LinkDown { why } => {
            if config.log {
                crate::note!("{} {why}", clock());
            }
            Vec::new()
        }
        Event::Tell(text) => {
            tell_own_seat(conns, text);
            Vec::new()
        }
    }
}

/// What everyone on a clustered host is told when its log can no longer (`down`), or
/// can again, be reached.
fn link_notice(down: bool) -> Action {
    let text = if down {
        "the link to the room's other hosts is down: people on this host still see what is said here (in grey until it reaches everyone, once the link is back)"
    } else {
        "the link to the room's other hosts is back"
    };
    let notice = ServerMsg::Notice {
        ts: now_ms(),
        text: text.to_owned(),
        cid: None,
    };
    Action::Send(Target::Room, Outgoing::Event(notice))
}

/// Tell the host's own seat something that is no one's message.
fn tell_own_seat(conns: &Conns, text: String) {
    if let Some(own) = conns.values().find(|c| c.own_seat) {
        let notice = ServerMsg::Notice {
            ts: now_ms(),
            text,
            cid: None,
        };
        push_to_own_seat(own, Dialect::Structured, Bytes::from(notice.encode()));
    }
}

/// Point the crowd timer at the room's next tick (on the room's clock, where it is now
/// `now`), when that changed.
fn rearm(
    room: &Room,
    now: i64,
    due: &mut Option<i64>,
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
) {
    let next = room.next_tick();
    if next == *due {
        return;
    }
    *due = next;
    if let Some(at) = next {
        let wait = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
        timer.reset(tokio::time::Instant::now() + Duration::from_millis(wait));
    }
}

/// The clock the room's rules run on: milliseconds since the room began, on the
/// monotonic clock, so that a wall clock that steps (NTP, a VM resumed) moves no limit
/// and no timer. The room is told the wall clock's offset at every reading, for the
/// times people see.
struct RoomClock {
    started: tokio::time::Instant,
}

impl RoomClock {
    fn start() -> Self {
        RoomClock {
            started: tokio::time::Instant::now(),
        }
    }

    fn now(&self, room: &mut Room) -> i64 {
        let now = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        room.set_wall_offset(now_ms().saturating_sub(now));
        now
    }
}

/// How long the room stays quiet before it returns a burst's freed memory (between once
/// and twice this after the last event).
const TIDY_AFTER: Duration = Duration::from_secs(1);

/// One turn of the room: what its events send, resolved to connections as each event
/// happened, held until the turn is written down (a durable room) and then queued.
struct Turn {
    steps: Vec<Step>,
    store: Option<store::Store>,
    /// A clustered room: where its proposals go to be put on the log.
    publish: Option<cluster::LogQueue>,
    /// This turn's proposals, handed to the log once the turn is over.
    proposals: Vec<room::Entry>,
    /// Proposals that found no room in the log's queue and are not someone's line to
    /// refuse: tried again first at the next turn.
    held: std::collections::VecDeque<room::Entry>,
    /// For a durable room: the structured line made for each event sent to the room
    /// this turn, by id, for the file to keep without encoding it again.
    sent: Vec<(u64, Bytes)>,
}

/// One thing to do on a connection.
enum Step {
    Push {
        id: PeerId,
        dialect: Dialect,
        bytes: Bytes,
        /// Part of what the host chose to send it on coming in (see [`Target::Backfill`]).
        backfill: bool,
    },
    /// Close once what was queued is written.
    Close(PeerId),
}

impl Turn {
    /// Resolve the room's actions to the connections they name now. Each event is
    /// encoded at most once per dialect and the same bytes go to every recipient.
    fn resolve(&mut self, room: &Room, conns: &Conns, actions: Vec<Action>, config: &Config) {
        for action in actions {
            match action {
                Action::Send(target, out) => {
                    if config.log {
                        log_event(target, &out);
                    }
                    let mut plain: Option<Bytes> = None;
                    let mut structured: Option<Bytes> = None;
                    let backfill = matches!(target, Target::Backfill(_));
                    for (id, dialect) in room.recipients(target) {
                        if !conns.contains_key(&id) {
                            continue;
                        }
                        let bytes = match (&out, dialect) {
                            (Outgoing::Raw(line), _) => Bytes::from(format!("{line}\n")),
                            (Outgoing::Event(msg), Dialect::Plain) => plain
                                .get_or_insert_with(|| Bytes::from(msg.to_plain()))
                                .clone(),
                            (Outgoing::Event(msg), Dialect::Structured) => structured
                                .get_or_insert_with(|| Bytes::from(msg.encode()))
                                .clone(),
                        };
                        self.steps.push(Step::Push {
                            id,
                            dialect,
                            bytes,
                            backfill,
                        });
                    }
                    // What is sent to the room is what a durable room keeps.
                    if self.store.is_some()
                        && matches!(
                            target,
                            Target::Room | Target::RoomExcept(_) | Target::Settled { .. }
                        )
                        && let Outgoing::Event(msg) = &out
                        && let Some(id) = msg.id()
                    {
                        let line = structured.get_or_insert_with(|| Bytes::from(msg.encode()));
                        self.sent.push((id, line.clone()));
                    }
                }
                Action::Close(id) => self.steps.push(Step::Close(id)),
                Action::Publish(entry) => {
                    if self.publish.is_some() {
                        self.proposals.push(*entry);
                    }
                }
            }
        }
    }

    /// End the turn: write down what it changed (a durable room), then queue what it
    /// sends. Peers found too slow on the way are let go of, which the room tells in
    /// another such round.
    fn finish(&mut self, room: &mut Room, conns: &mut Conns, config: &Config, now: i64) {
        loop {
            self.write_down(room, config);
            let actions = self.deliver(room, conns, now);
            if actions.is_empty() {
                return;
            }
            self.resolve(room, conns, actions, config);
        }
    }

    /// Hand this turn's proposals to the log. While more wait for the log than its
    /// queue holds and the log is taking them, the room waits (up to [`LOG_WAIT`] a
    /// turn), so that the people sending are slowed down as a single host slows them.
    /// What finds no room (the log cannot be reached, or takes nothing for that long)
    /// is not sent, and whoever typed it is told. What to send: those refusals, and
    /// the held lines (see [`Room::held_copy`]) now on their way.
    async fn hand_to_log(&mut self, room: &mut Room, config_log: bool) -> Vec<Action> {
        let Some(queue) = &self.publish else {
            return Vec::new();
        };
        let log = queue.tx.clone();
        let wait = if queue.down.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            LOG_WAIT
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut told = Vec::new();
        // What was held back before goes first, in order.
        let pending: Vec<room::Entry> = self
            .held
            .drain(..)
            .chain(self.proposals.drain(..))
            .collect();
        let mut stuck = false;
        for entry in pending {
            let entry = if stuck {
                entry
            } else {
                // A line said while the log is out of reach is shown here once it is
                // on its way to the log (not if it is refused).
                let shown = room.held_copy(&entry);
                let taken = match log.try_send(entry) {
                    Ok(()) => None,
                    Err(mpsc::error::TrySendError::Full(entry)) => {
                        match tokio::time::timeout_at(deadline, log.reserve()).await {
                            Ok(Ok(slot)) => {
                                slot.send(entry);
                                None
                            }
                            _ => Some(entry),
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(entry)) => Some(entry),
                };
                match taken {
                    None => {
                        told.extend(shown);
                        continue;
                    }
                    Some(entry) => entry,
                }
            };
            // Nothing more is tried this turn: what follows keeps its place.
            stuck = true;
            // A line someone typed is refused, and they are told; anything else (a
            // join, a leave, a rename this host has already made) is held for the
            // next turn, within a bound.
            let typed = matches!(
                entry.event,
                ServerMsg::Msg { .. }
                    | ServerMsg::Me { .. }
                    | ServerMsg::Private { .. }
                    | ServerMsg::Topic { .. }
            );
            if !typed {
                if self.held.len() < MAX_HELD {
                    self.held.push_back(entry);
                } else if config_log {
                    crate::note!(
                        "{} the room's log is far behind: an event was not sent",
                        clock()
                    );
                }
                continue;
            }
            // Not on its way: not shown held, and a resend of it is a new line.
            room.refused(&entry);
            let Some(peer) = entry.peer.filter(|p| room.dialect(*p).is_some()) else {
                continue;
            };
            let cid = entry.reach.cid();
            told.push(Action::Send(
                Target::One(peer),
                Outgoing::Event(ServerMsg::Notice {
                    ts: now_ms(),
                    text:
                        "not sent: more is waiting for the room's log than it takes; send it again"
                            .into(),
                    cid,
                }),
            ));
        }
        told
    }

    /// Resolve `actions` and finish the turn with them.
    fn settle(
        &mut self,
        room: &mut Room,
        conns: &mut Conns,
        actions: Vec<Action>,
        config: &Config,
        now: i64,
    ) {
        self.resolve(room, conns, actions, config);
        self.finish(room, conns, config, now);
    }

    /// Write what the room changed to its file before anyone is sent any of it: no one
    /// is ever shown an event the file does not have.
    fn write_down(&mut self, room: &mut Room, config: &Config) {
        let Some(store) = &mut self.store else { return };
        let journal = room.take_journal();
        let sent = std::mem::take(&mut self.sent);
        let Some(journal) = journal else { return };
        if let Err(e) = store.write(&journal, room, &sent) {
            // The room goes on; it is no longer kept.
            let path = config.keep.as_deref().unwrap_or(std::path::Path::new("?"));
            crate::note!(
                "{} tchat: cannot write the room to {}: {e}; it goes on, but is no longer kept",
                clock(),
                path.display()
            );
            self.store = None;
        }
    }

    /// Queue every step; the room's actions for the peers that turned out too slow.
    fn deliver(&mut self, room: &mut Room, conns: &mut Conns, now: i64) -> Vec<Action> {
        let mut too_slow = Vec::new();
        for step in self.steps.drain(..) {
            match step {
                Step::Push {
                    id,
                    dialect,
                    bytes,
                    backfill,
                } => {
                    let Some(conn) = conns.get(&id) else { continue };
                    if backfill {
                        conn.out.push_exempt(bytes);
                    } else if conn.own_seat {
                        push_to_own_seat(conn, dialect, bytes);
                    // A closed outbox is a connection already on its way out; it
                    // reports its own close.
                    } else if conn.out.push(bytes, conn.backlog) == Err(Refused::Full) {
                        if let Some(conn) = conns.remove(&id) {
                            conn.kill.cancel();
                        }
                        too_slow.push(id);
                    }
                }
                // The writer sends what is queued, then closes.
                Step::Close(id) => {
                    conns.remove(&id);
                }
            }
        }
        if self.steps.capacity() > TURN_STEPS {
            self.steps = Vec::new();
        }
        let mut actions = Vec::new();
        for id in too_slow {
            actions.extend(room.disconnect(id, Some("too slow to keep up"), now));
        }
        actions
    }
}

/// Queue `line` for the host's own screen. If it has fallen `backlog` bytes behind
/// (paused, or swamped), rather than leave its own room it drops what it has not yet
/// been sent, is told how much, and goes on from `line`.
fn push_to_own_seat(conn: &Conn, dialect: Dialect, line: Bytes) {
    if conn.out.push(line.clone(), conn.backlog) != Err(Refused::Full) {
        return;
    }
    let skipped = conn.out.skip();
    let notice = ServerMsg::Notice {
        ts: now_ms(),
        text: format!(
            "your screen fell behind the room: {skipped} lines were skipped (the others in the room got them)"
        ),
        cid: None,
    };
    let notice = match dialect {
        Dialect::Structured => notice.encode(),
        Dialect::Plain => notice.to_plain(),
    };
    conn.out.push_exempt(Bytes::from(notice));
    conn.out.push_exempt(line);
}

fn log_event(target: Target, out: &Outgoing) {
    if !matches!(
        target,
        Target::Room | Target::RoomExcept(_) | Target::Settled { .. }
    ) {
        return;
    }
    if let Outgoing::Event(
        msg @ (ServerMsg::Join { .. } | ServerMsg::Leave { .. } | ServerMsg::Crowd { .. }),
    ) = out
    {
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), "{} {}", clock(), msg.to_plain());
    }
}

/// Milliseconds since the Unix epoch: the wall clock, for the times people see (never
/// for a limit or a timer; see `RoomClock`).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}
