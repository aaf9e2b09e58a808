//! The room's rules, with no I/O: who is in, under what name, and who is told what.
//!
//! [`Room`] is driven by the connection layer (the server's room task) with what happened — a
//! connection was seated (its handshake is over, see [`super::session`]), a line
//! arrived, a connection closed — and answers with [`Action`]s: lines to send and
//! connections to close. Time comes in as an argument, so every rule can be tested
//! without a socket or a clock: `now` is a monotonic clock, which every limit and timer
//! runs on, and [`Room::set_wall_offset`] turns it into the times people see.
//!
//! What a seat may see is decided by the seat: its session (bound here, when it said
//! hello) and the name the room gave it, never by a name a client asks for.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use crate::names;
use crate::protocol::{self, ClientMsg, Command, Frame, Hello, PROTOCOL_VERSION, ServerMsg};
use crate::recent::Recent;
use crate::sanitize;

/// A connection, numbered by the server.
pub type PeerId = u64;

pub use crate::names::MAX_NAME_CHARS;

/// How many recent messages someone who just came in is shown: a tchat screen, and a
/// plain peer (whose screen is a terminal scrolling by). Messages said while it was
/// connecting come on top of these.
pub const HISTORY_FOR_TCHAT: usize = 100;
pub const HISTORY_FOR_PLAIN: usize = 20;

/// The name a peer gets when it did not ask for one (netcat) or asked for nothing usable.
pub const GUEST_NAME: &str = "guest";

/// Joins and leaves announced one by one before a crowd is told as one line: this many
/// at once, then [`ANNOUNCE_PER_SEC`] a second. A class arriving together, or a script
/// opening a hundred connections, then costs the conversation a line every two seconds.
pub const ANNOUNCE_BURST: u32 = 10;
pub const ANNOUNCE_PER_SEC: u32 = 1;
/// How long joins and leaves are gathered before the crowd is told.
pub const CROWD_AFTER_MS: i64 = 2_000;

/// The default for [`Rules::resend_memory`]: far more lines than a client can have
/// waiting for their echo (about 100 bytes each, so at most ~10 MB).
pub const DEFAULT_RESEND_MEMORY: usize = 100_000;
/// The default for [`Rules::resend_memory_ms`], in seconds: a day.
pub const DEFAULT_RESEND_MEMORY_SECS: i64 = 24 * 60 * 60;

/// The least time between two answers to one client's pings.
const PONG_EVERY_MS: i64 = 1_000;

/// Which dialect a connection speaks (see [`crate::protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Plain,
    Structured,
}

/// What goes out on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A line of text sent as is to any peer.
    Raw(String),
    /// An event, shown to each peer in its own dialect.
    Event(ServerMsg),
}

/// Who a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    One(PeerId),
    /// One peer, and part of what the host chose to send it on coming in (history, a
    /// catch-up): it does not count against the slow-reader bound while it drains, so
    /// that a newcomer is never cut for what the room sent it unasked.
    Backfill(PeerId),
    /// Everyone in the room.
    Room,
    /// Everyone in the room but this one.
    RoomExcept(PeerId),
    /// A clustered room whose log is out of reach: a line shown at once (see
    /// [`ServerMsg::held`]) to everyone seated before `mark` but `except`.
    Held {
        except: Option<PeerId>,
        mark: u64,
    },
    /// The numbered copy of such a line: everyone but `except`, save the plain peers
    /// seated before `mark`. They were shown it held, and text cannot tell them it is
    /// the same line again.
    Settled {
        except: Option<PeerId>,
        mark: u64,
    },
    /// A connection the room has already let go of, told one last thing before it is
    /// closed (why it was cut off).
    Last(PeerId, Dialect),
}

/// What the room asks the connection layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Target, Outgoing),
    /// Close this connection once what was sent to it is written.
    Close(PeerId),
    /// A clustered room: put this on the room's log (see [`Log`]); every host's room
    /// applies it when the log hands it back, numbered.
    Publish(Box<Entry>),
}

/// Where a room's events are put in order and numbered.
///
/// Every event of the room's story (a message, a join, a leave, a rename, a topic) is
/// first *proposed*: the room checks the request (limits, names, commands) and makes
/// the event, unnumbered, as an [`Entry`]. The log orders the entries; each is then
/// *applied* ([`Room::apply`]): numbered, kept for catching up, and sent to this
/// host's people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Log {
    /// One host: the room is its own log, and applies what it proposes at once, with
    /// its own numbers.
    Local,
    /// Several hosts share the room through a log outside it (NATS JetStream, see
    /// [`super::cluster`]): what is proposed goes out as [`Action::Publish`], and comes
    /// back numbered by the log, in the log's order, as it does to every other host.
    Shared {
        /// This host's name on the log, so that it knows its own entries.
        host: Arc<str>,
    },
}

/// An event before the log has numbered it: what a room proposes, and what the log
/// hands back to every host's room in one order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The event, its `id` set when it is applied.
    pub event: ServerMsg,
    /// The host that proposed it (empty for a single host).
    #[serde(default)]
    pub host: String,
    /// The seat on that host whose doing it is, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerId>,
    pub reach: Reach,
    /// `(session, cid)` of the line it relays: for recognising a resend, and for the
    /// sender's echo on a catch-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// For a join or a leave, the session it was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    /// For a crowd, the session of each it says joined, in the same order (`None`: a
    /// plain peer), so that one of them whose host dies keeps its name on another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined_sessions: Vec<Option<String>>,
    /// Shown on its own host before the log numbered it (the log was out of reach):
    /// its numbered copy carries the held key ([`Entry::held_key`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The proposing host's own number for it (1, 2, …): with `host`, what the log
    /// recognises it by when it is put there again, for an entry that is no one's line.
    #[serde(default)]
    pub n: u64,
    /// What the log recognises it by, when several hosts may put the same entry (the
    /// people of a host that is gone, told gone by every host that noticed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A private message's words, which never go on the log (the entry's own `text`
    /// is empty): for the host that puts it there, never written out.
    #[serde(skip)]
    pub sealed: Option<Sealed>,
}

/// The words of a private message in a clustered room, on their way: they go straight
/// to the host that seats the one it is for, if that is another, before the entry
/// (without them) goes on the log; each of the two hosts fills them in when the log
/// hands the entry back (see [`Room::apply_private`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The other host the words go to, if the one it is for is not seated here.
    pub to_host: Option<String>,
    pub text: String,
}

impl Entry {
    /// What the log recognises this entry by if it is put there again: a line by its
    /// sender's session and `cid` (whichever host puts it), anything else by its host
    /// and that host's number for it.
    pub fn log_id(&self) -> String {
        // Each kind its own prefix, and a session's length before it: no client's
        // session and cid can spell another entry's id.
        match (&self.key, &self.origin) {
            (Some(key), _) => format!("key:{key}"),
            (None, Some((session, cid))) => format!("line:{}:{session}{cid}", session.len()),
            (None, None) => format!("entry:{}:{}", self.host, self.n),
        }
    }

    /// A leave told for a member of a host that is gone (see [`Room::presence`]).
    pub fn is_gone_announcement(&self) -> bool {
        self.key.as_deref().is_some_and(|k| k.starts_with(GONE_KEY))
    }

    /// What a line shown before the log numbered it is known by, on every host: its
    /// host and that host's number for it (neither says anything of its sender).
    pub fn held_key(&self) -> String {
        held_key(&self.host, self.n)
    }

    /// An event for everyone, no one's own doing.
    fn to_room(event: ServerMsg) -> Entry {
        Entry {
            event,
            host: String::new(),
            peer: None,
            reach: Reach::Room,
            origin: None,
            about: None,
            joined_sessions: Vec::new(),
            held: false,
            n: 0,
            key: None,
            sealed: None,
        }
    }

    /// An event `peer` caused: everyone is told, and `peer`'s own copy carries its
    /// `cid`, so that it knows the room has it.
    fn echoed(event: ServerMsg, peer: PeerId, cid: Option<String>) -> Entry {
        Entry {
            peer: Some(peer),
            reach: Reach::Echo { cid },
            ..Entry::to_room(event)
        }
    }
}

/// Who is seated on one host of a clustered room, as of its log position `at` (the
/// number of the last event it had applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    pub at: u64,
    pub names: Vec<String>,
    /// Where joiners reach that host (filled in by the host's side of the cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<String>,
    /// The fingerprint of that host's key (filled in likewise): a host with another
    /// key than this one's is left out of this one's invitation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// A member seated on another host of a clustered room.
#[derive(Debug, Clone)]
struct Remote {
    name: String,
    host: String,
    /// The member's session, where the log said it (a join): the same session coming
    /// back on another host (its host died) takes its name with it.
    session: Option<String>,
}

/// How the log's key of a member told gone with its host begins (`gone:HOST:NAME`).
const GONE_KEY: &str = "gone:";

/// Listings in a row a host must be missing from before it is taken to be gone.
const GONE_AFTER: u32 = 2;

/// The most names one host's presence is taken to list.
const MAX_NAMES_PER_HOST: usize = 10_000;

/// The most names of members on other hosts a clustered room remembers.
const MAX_REMOTE_NAMES: usize = 100_000;

/// Who an entry is sent to, on the host of the seat it came from; on any other host it
/// goes to everyone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Everyone.
    Room,
    /// Everyone but the seat.
    Others,
    /// Everyone but the seat, which gets its own copy carrying its `cid`: that is how a
    /// client knows the room has it.
    Echo { cid: Option<String> },
}

impl Reach {
    /// The `cid` the seat's own copy carries, if any.
    pub fn cid(self) -> Option<String> {
        match self {
            Reach::Echo { cid } => cid,
            Reach::Room | Reach::Others => None,
        }
    }
}

/// The room's limits; each is a flag of `tchat --host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The longest message text, in bytes, that is relayed.
    pub max_line: usize,
    /// The most lines one message may have (0: no limit).
    pub max_lines: usize,
    /// Lines a peer may send in a burst before `rate` applies (0: no flood limit).
    pub burst: u32,
    /// Lines per second a peer may keep sending (0: no flood limit).
    pub rate: u32,
    /// The same for all connections from one address together, and across its
    /// reconnects (0: no limit per address).
    pub addr_burst: u32,
    pub addr_rate: u32,
    /// Events kept for catching up clients that rejoin.
    pub history: usize,
    /// Bytes of history and catch-up sent to one peer as it comes in (older events
    /// beyond it are counted as lost rather than sent).
    pub max_catchup: usize,
    /// Lines relayed whose `(session, cid)` is remembered, so that a client that sends
    /// one again after a rejoin does not have it relayed twice; independent of
    /// `history` (0: none remembered beyond the history).
    pub resend_memory: usize,
    /// How long (ms, on the room's clock) each is remembered.
    pub resend_memory_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_line: protocol::DEFAULT_MAX_LINE,
            max_lines: 100,
            burst: 20,
            rate: 5,
            addr_burst: 40,
            addr_rate: 10,
            history: 1000,
            max_catchup: 1024 * 1024,
            resend_memory: DEFAULT_RESEND_MEMORY,
            resend_memory_ms: DEFAULT_RESEND_MEMORY_SECS * 1000,
        }
    }
}

/// A token bucket in thousandths of a token, refilled by the room's clock.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: i64,
}

/// A bucket's size and refill: `burst` tokens, then `per_sec` a second (either 0: no
/// limit).
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: u32,
    per_sec: u32,
}

impl Rate {
    fn unlimited(self) -> bool {
        self.burst == 0 || self.per_sec == 0
    }

    /// How long an emptied bucket takes to be full again, in ms.
    fn refill_ms(self) -> i64 {
        if self.unlimited() {
            return 0;
        }
        i64::from(self.burst) * 1000 / i64::from(self.per_sec)
    }
}

impl Bucket {
    fn full(rate: Rate, now: i64) -> Self {
        Bucket {
            milli: u64::from(rate.burst) * 1000,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: i64) {
        // A clock that steps back refills nothing (and is not trusted to step forward
        // from the earlier reading either).
        let elapsed = u64::try_from(now.saturating_sub(self.at)).unwrap_or(0);
        self.at = self.at.max(now);
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(rate.per_sec)))
            .min(u64::from(rate.burst) * 1000);
    }

    /// Is there a whole token (after refilling to `now`)?
    fn has(&mut self, rate: Rate, now: i64) -> bool {
        if rate.unlimited() {
            return true;
        }
        self.refill(rate, now);
        self.milli >= 1000
    }

    fn spend(&mut self, rate: Rate) {
        if !rate.unlimited() {
            self.milli = self.milli.saturating_sub(1000);
        }
    }
}

#[derive(Debug)]
struct Peer {
    dialect: Dialect,
    name: String,
    /// A tchat client's own id, the same across its reconnects: what this seat is.
    session: Option<Arc<str>>,
    /// Where it connected from (`None`: the host's own seat).
    addr: Option<IpAddr>,
    bucket: Bucket,
    /// A ping went out and nothing has come back since.
    pinged: bool,
    /// A plain peer over the flood limit has been told; it is not told again for every
    /// line until one gets through.
    warned: bool,
    /// `/away`: what someone who writes to it privately is told.
    away: Option<String>,
    /// When it took its seat (the room's clock; a rejoin keeps the first).
    since: i64,
    /// When its last `ping` was answered (the room's clock).
    ponged_at: i64,
    /// Its place in the order seats were taken on this host (see [`Target::Held`]).
    seated: u64,
    /// Its share of answers to lines the room did not relay (see `Room::may_answer`).
    answers: Bucket,
}

/// What the room remembers of an address while connections from it come and go: its
/// share of the flood limit, so that reconnecting does not start it afresh.
#[derive(Debug)]
struct Address {
    bucket: Bucket,
    /// Seats from it now.
    seats: u32,
    /// When its last seat went (it is forgotten once its bucket would be full again).
    idle_since: i64,
}

/// A message kept for catching up: who sent it, and for a private one, who may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: u64,
    pub event: ServerMsg,
    /// `(session, cid)` of the line, for echoing it to its sender on a catch-up.
    pub origin: Option<Origin>,
    /// For a join or a leave, the session it was about: a rejoiner is not shown its
    /// own coming and going.
    pub about: Option<Arc<str>>,
    /// A private message is shown again only to the seats it was between: their
    /// sessions (a plain peer has none, and is never sent a replay).
    pub audience: Option<[Option<Arc<str>>; 2]>,
    /// About what it costs to send (for bounding a catch-up in bytes).
    size: usize,
}

impl Kept {
    /// An event as kept, with `origin`, `about` and `audience` to be filled in.
    pub fn new(id: u64, event: ServerMsg) -> Kept {
        Kept {
            id,
            size: size_of_event(&event),
            event,
            origin: None,
            about: None,
            audience: None,
        }
    }
}

/// What a durable room must write down after a turn of the room (see
/// [`super::store`]): how many events it kept and lines it relayed (the newest, read
/// with [`Room::newly_kept`] and [`Room::newly_relayed`]), and where its numbering and
/// its history now stand.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Journal {
    pub kept: usize,
    pub relayed: usize,
    /// The topic, when it changed (`Some("")`: cleared).
    pub topic: Option<String>,
    pub next_event: u64,
}

/// A room as a durable room left it (see [`super::store`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Saved {
    pub epoch: String,
    pub next_event: u64,
    /// Its history, oldest first.
    pub kept: Vec<Kept>,
    /// The lines it relayed, oldest first.
    pub relayed: Vec<(Origin, u64)>,
    /// Its topic (empty or `None`: none).
    pub topic: Option<String>,
}

/// Joins and leaves gathered to be told as one event.
#[derive(Debug, Default)]
struct Crowd {
    joined: Vec<String>,
    /// Where each name is in `joined`, so that one who leaves again is taken out with
    /// a look-up: a crowd can be the whole room.
    joined_at: HashMap<String, usize>,
    left: Vec<String>,
    due: i64,
}

impl Crowd {
    fn join(&mut self, name: String) {
        self.joined_at.insert(name.clone(), self.joined.len());
        self.joined.push(name);
    }

    /// `name` left: if it came with this crowd, nobody was told it came, so it is
    /// simply taken out; otherwise it is one who left.
    fn leave(&mut self, name: String) {
        let Some(i) = self.joined_at.remove(&name) else {
            self.left.push(name);
            return;
        };
        self.joined.swap_remove(i);
        if let Some(moved) = self.joined.get(i) {
            self.joined_at.insert(moved.clone(), i);
        }
    }
}

/// How a connection comes into the room, as its handshake settled it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrival {
    /// A tchat client's hello; `None` for a plain peer.
    pub hello: Option<Hello>,
    /// Where it connected from (`None`: the host's own seat, which no address limit
    /// applies to).
    pub addr: Option<IpAddr>,
    /// The room's next event id when the connection opened ([`Room::next_event`]): a
    /// newcomer is sent everything said since, as well as the recent history.
    pub mark: u64,
}

/// The room: its members, their names, the numbering of its events, and its recent
/// history.
#[derive(Debug)]
pub struct Room {
    /// Tells this room (and this run of it) apart from others; see `docs/PROTOCOL.md`.
    epoch: String,
    rules: Rules,
    /// Keyed by the host's own connection numbers (no one else picks them), so a fast
    /// hash serves: it is taken once per recipient of every line.
    peers: HashMap<PeerId, Peer, foldhash::fast::RandomState>,
    /// Every member by the key its name clashes under ([`names::fold`]): a join, a
    /// rename and a `/msg` look a name up here rather than among all members.
    by_name: HashMap<String, PeerId>,
    /// Every seat that said hello with a session, by that session: a rejoin finds the
    /// seat it takes over with a look-up, not a search.
    by_session: HashMap<Arc<str>, PeerId>,
    /// The members' names in the order `/who` and `welcome` list them.
    sorted: BTreeSet<(String, String)>,
    /// For each name a crowd asked for (folded), the suffix to try first next time, so
    /// that the hundredth `guest` does not try `guest2` … `guest99` first.
    suffix_hint: HashMap<String, u64>,
    addrs: HashMap<IpAddr, Address>,
    /// Addresses that lost their last seat, oldest first, to forget once their share
    /// of the flood limit is full again.
    idle_addrs: VecDeque<(i64, IpAddr)>,
    announce: Bucket,
    crowd: Option<Crowd>,
    /// Wall time minus the room's clock, in ms: the room's rules and timers run on a
    /// monotonic clock (`now` in every call), and this turns it into the time people
    /// see (`ts`). Set by the host as the wall clock goes; 0 in tests.
    wall_offset: i64,
    next_event: u64,
    history: VecDeque<Kept>,
    /// The lines relayed, by `(session, cid)`, for recognising a resend.
    relayed: Relayed,
    /// What changed since it was last taken, for a durable room (`None`: not kept).
    journal: Option<Journal>,
    /// The room's topic (`/topic`), if one is set.
    topic: Option<String>,
    log: Log,
    /// Entries this room has proposed to a shared log.
    proposed: u64,
    /// A clustered room: the other hosts whose listing has been heard (see
    /// [`Room::presence`]), and for how many listings in a row each known host has
    /// been missing.
    heard: std::collections::HashSet<String>,
    missing: HashMap<String, u32>,
    /// A clustered room: the names (folded) of members here whose claim the log has
    /// applied (see [`Room::settle_claims`]).
    claimed: std::collections::HashSet<String>,
    /// A clustered room: the members seated on other hosts, by the key their names
    /// clash under, with their names as shown (see [`Room::apply`]).
    remote: HashMap<String, Remote>,
    /// A clustered room whose log cannot be reached now: lines said here are shown
    /// here at once, held (see [`ServerMsg::held`]).
    log_down: bool,
    /// Seats taken so far on this host (see [`Target::Held`]).
    seats_made: u64,
    /// This host's held lines not yet back from the log, by this host's number for
    /// each (at most [`MAX_HELD_LINES`]), and the number of each by its sender's
    /// `(session, cid)`.
    held: BTreeMap<u64, HeldLine>,
    held_by_origin: HashMap<Origin, u64>,
    /// The words of private messages said here, not yet back from the log, by this
    /// host's number for each (at most [`MAX_WORDS`] and [`MAX_WORDS_BYTES`]).
    own_words: Recent<u64, String>,
    /// The words of private messages sent here by other hosts for someone seated
    /// here, by key (`HOST.N`), oldest first; at most [`MAX_WORDS`].
    words: Recent<String, String>,
}

/// Private messages' words a room keeps, waiting for their entries (its own, and
/// those other hosts sent), at most, in count and in bytes.
const MAX_WORDS: usize = 4096;
const MAX_WORDS_BYTES: usize = 16 * 1024 * 1024;

/// The longest name a host of a clustered room goes by on its log.
const MAX_HOST_NAME: usize = 32;

/// A host's name on a clustered room's log: 1 to [`MAX_HOST_NAME`] ASCII letters and
/// digits.
fn is_host_name(host: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&host.len()) && host.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What host `host`'s entry number `n` is known by off the log: a held line's key, a
/// private message's words (`HOST.N`).
fn held_key(host: &str, n: u64) -> String {
    format!("{host}.{n}")
}

/// Whether `key` is one [`held_key`] makes.
fn is_held_key(key: &str) -> bool {
    key.split_once('.')
        .is_some_and(|(host, n)| is_host_name(host) && n.parse::<u64>().is_ok())
}

/// The longest `key` a host gives an entry (`gone:HOST:NAME`).
const MAX_KEY_BYTES: usize = 256;

/// Whether an entry from the log is one a host could have made: its host's name as
/// hosts name themselves (see `cluster::join`), and the sessions, `cid` and key it
/// carries no longer than a host takes or makes them. What a room keeps of an entry
/// (remote members, history, lines remembered) stays as small as its own.
fn could_be_a_hosts(entry: &Entry) -> bool {
    let id = |s: &str| s.len() <= protocol::MAX_ID_BYTES;
    is_host_name(&entry.host)
        && entry.about.as_deref().is_none_or(id)
        && entry.joined_sessions.len() <= MAX_NAMES_PER_HOST
        && entry
            .joined_sessions
            .iter()
            .all(|s| s.as_deref().is_none_or(id))
        && entry
            .origin
            .as_ref()
            .is_none_or(|(session, cid)| id(session) && id(cid))
        && entry.key.as_ref().is_none_or(|k| k.len() <= MAX_KEY_BYTES)
}

/// A line shown held here and not yet back from the log.
#[derive(Debug)]
struct HeldLine {
    /// Seats taken when it was shown: those before were shown it.
    mark: u64,
    /// Its sender's `(session, cid)`.
    origin: Option<Origin>,
}

/// Held lines (see [`Room::held`]) remembered at most: more than a host's log queue
/// holds while the log is out of reach.
const MAX_HELD_LINES: usize = 8192;

/// `(session, cid)`: a line as its sender names it.
pub type Origin = (Arc<str>, Box<str>);

/// The lines relayed, remembered by their sender's `(session, cid)` for as long as the
/// sender may send one again (bounded in count and age, oldest forgotten first), so
/// that exactly-once does not depend on how much history is kept.
#[derive(Debug, Default)]
struct Relayed {
    ids: HashMap<Origin, u64>,
    /// Oldest first, with when each was relayed (the room's clock) and its id.
    order: VecDeque<(i64, Origin, u64)>,
}

impl Relayed {
    fn remember(&mut self, origin: Origin, id: u64, now: i64, rules: &Rules) {
        if rules.resend_memory == 0 {
            return;
        }
        self.ids.insert(origin.clone(), id);
        self.order.push_back((now, origin, id));
        self.forget(now, rules);
    }

    /// Forget beyond the count, and what is older than the age.
    fn forget(&mut self, now: i64, rules: &Rules) {
        while let Some((at, _, _)) = self.order.front() {
            let too_many = self.order.len() > rules.resend_memory;
            if !too_many && now < at.saturating_add(rules.resend_memory_ms) {
                break;
            }
            if let Some((_, origin, _)) = self.order.pop_front() {
                self.ids.remove(&origin);
            }
        }
    }

    fn get(&self, session: &Arc<str>, cid: &str) -> Option<u64> {
        // A borrowed key would need a second map type; the key is a few bytes.
        self.ids.get(&(session.clone(), Box::from(cid))).copied()
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

impl Room {
    /// Lines remembered for recognising a resend (for tests: it stays bounded).
    pub fn resends_remembered(&self) -> usize {
        self.relayed.len()
    }
}

/// The budget for announcing joins and leaves one by one.
const ANNOUNCE: Rate = Rate {
    burst: ANNOUNCE_BURST,
    per_sec: ANNOUNCE_PER_SEC,
};

impl Room {
    /// An empty room. `epoch` should differ between runs of the host.
    pub fn new(epoch: String, rules: Rules) -> Self {
        Room {
            epoch,
            rules,
            peers: HashMap::default(),
            by_name: HashMap::new(),
            by_session: HashMap::new(),
            sorted: BTreeSet::new(),
            suffix_hint: HashMap::new(),
            addrs: HashMap::new(),
            idle_addrs: VecDeque::new(),
            announce: Bucket::full(ANNOUNCE, 0),
            crowd: None,
            wall_offset: 0,
            next_event: 1,
            history: VecDeque::new(),
            relayed: Relayed::default(),
            journal: None,
            topic: None,
            log: Log::Local,
            proposed: 0,
            heard: std::collections::HashSet::new(),
            missing: HashMap::new(),
            claimed: std::collections::HashSet::new(),
            remote: HashMap::new(),
            log_down: false,
            seats_made: 0,
            held: BTreeMap::new(),
            held_by_origin: HashMap::new(),
            own_words: Recent::new(MAX_WORDS, MAX_WORDS_BYTES, String::len),
            words: Recent::new(MAX_WORDS, MAX_WORDS_BYTES, String::len),
        }
    }

    /// A room whose events several hosts put in one order through a log they share
    /// ([`Log::Shared`]); `epoch` is the log's own identity, the same on every host.
    pub fn clustered(epoch: String, rules: Rules, host: Arc<str>) -> Self {
        Room {
            log: Log::Shared { host },
            ..Room::new(epoch, rules)
        }
    }

    /// Propose an event: a single host applies it at once; a clustered room puts it on
    /// the log, and applies it when the log hands it back.
    fn propose(&mut self, entry: Entry, now: i64, out: &mut Vec<Action>) {
        match &self.log {
            Log::Local => {
                let id = self.next_id();
                self.apply_entry(id, entry, true, now, out);
            }
            Log::Shared { host } => {
                self.proposed += 1;
                // While the log is out of reach, a line is shown to the people here at
                // once, held, so that they can go on talking (see `Room::held_copy`).
                let held = self.log_down
                    && matches!(entry.event, ServerMsg::Msg { .. } | ServerMsg::Me { .. });
                let entry = Entry {
                    host: host.to_string(),
                    n: self.proposed,
                    held,
                    ..entry
                };
                if held {
                    let origin = entry.origin.clone();
                    if let Some(origin) = &origin {
                        self.held_by_origin.insert(origin.clone(), entry.n);
                    }
                    let line = HeldLine {
                        mark: self.seats_made,
                        origin,
                    };
                    self.held.insert(entry.n, line);
                    if self.held.len() > MAX_HELD_LINES
                        && let Some((n, _)) = self.held.first_key_value()
                    {
                        let n = *n;
                        self.take_held(n);
                    }
                }
                if let Some(sealed) = &entry.sealed {
                    self.own_words.keep(entry.n, sealed.text.clone());
                }
                out.push(Action::Publish(Box::new(entry)));
            }
        }
    }

    /// Apply an entry of a clustered room's log, numbered `id` by the log: kept for
    /// catching up and, when `live`, sent to this host's people. `live` is false while
    /// a starting host reads the log's past: nobody is here to tell, and those it names
    /// are not taken to be in the room now. An entry older than the room's numbering
    /// (the log handing one over again) or a line already relayed (a resend the log
    /// no longer recognised) is not applied twice.
    pub fn apply(&mut self, id: u64, entry: Entry, live: bool, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if id < self.next_event {
            return out;
        }
        self.next_event = id + 1;
        // An entry a host could not have made is none of theirs.
        if !could_be_a_hosts(&entry) {
            return out;
        }
        // Whoever put it on the log, it is held to what this room would send.
        let mut entry = entry;
        if !self.hold(&mut entry.event) {
            return out;
        }
        // A line shown held on its host: every copy carries its key, kept ones too.
        if entry.held {
            let key = entry.held_key();
            entry.event.set_held(Some(key));
        }
        if let Some((session, cid)) = &entry.origin
            && self.relayed.get(session, cid).is_some()
        {
            return out;
        }
        let own = match &self.log {
            Log::Local => true,
            Log::Shared { host } => **host == *entry.host,
        };
        if own && entry.is_gone_announcement() {
            // Another host took this one for gone (it was slow to say it is here): its
            // people are here all the same.
            return out;
        }
        if !own && live {
            self.track_remote(&entry);
        }
        if live {
            // A join, a leave, a crowd or a rename of this host's claims names.
            let claims = (own && matches!(self.log, Log::Shared { .. }))
                .then_some(&entry.event)
                .filter(|e| {
                    matches!(
                        e,
                        ServerMsg::Join { .. }
                            | ServerMsg::Leave { .. }
                            | ServerMsg::Crowd { .. }
                            | ServerMsg::Nick { .. }
                    )
                })
                .cloned();
            self.apply_entry(id, entry, own, now, &mut out);
            if let Some(event) = claims {
                self.settle_claims(&event, now, &mut out);
            }
        } else if !matches!(entry.event, ServerMsg::Private { .. }) {
            // A private message of the past is no one's here now: not kept.
            self.apply_state(&entry.event);
            self.keep_entry(id, entry, now);
        }
        out
    }

    /// Apply an entry numbered `id`: what it changes, what is kept of it, and who is
    /// sent it (on its own host, by its reach; elsewhere, everyone).
    fn apply_entry(&mut self, id: u64, entry: Entry, own: bool, now: i64, out: &mut Vec<Action>) {
        if matches!(entry.event, ServerMsg::Private { .. }) {
            self.apply_private(id, entry, own, now, out);
            return;
        }
        // A held line's own host showed it already to those seated then: this entry,
        // or another host's of the same line (its sender moved there and sent it
        // again), which settles it here under this host's key.
        let mut entry = entry;
        let shown = if entry.held && own {
            self.take_held(entry.n)
        } else if let (Log::Shared { host }, Some(origin)) = (&self.log, &entry.origin)
            && let Some(n) = self.held_by_origin.get(origin).copied()
        {
            entry.event.set_held(Some(held_key(host, n)));
            self.take_held(n)
        } else {
            None
        };
        let event = entry.event.clone().with_id(id);
        self.apply_state(&event);
        let seat = entry.peer.filter(|p| own && self.peers.contains_key(p));
        let mut reach = std::mem::replace(&mut entry.reach, Reach::Room);
        // A line whose sender is seated here though another host (or another seat)
        // put it on the log (it moved, and sent it again): its echo, with its `cid`,
        // is what tells it the line is in.
        let moved = seat.is_none().then_some(()).and_then(|()| {
            let (session, cid) = entry.origin.as_ref()?;
            let seat = self.by_session.get(session).copied()?;
            reach = Reach::Echo {
                cid: Some(cid.to_string()),
            };
            Some(seat)
        });
        let seat = seat.or(moved);
        self.keep_entry(id, entry, now);
        let others = |except: Option<PeerId>| match (shown, except) {
            (Some(mark), except) => Target::Settled { except, mark },
            (None, Some(seat)) => Target::RoomExcept(seat),
            (None, None) => Target::Room,
        };
        match (seat, reach) {
            (Some(seat), Reach::Others) => {
                out.push(Action::Send(others(Some(seat)), Outgoing::Event(event)));
            }
            (Some(seat), Reach::Echo { cid }) => {
                out.push(Action::Send(
                    Target::One(seat),
                    Outgoing::Event(event.clone().with_cid(cid)),
                ));
                out.push(Action::Send(others(Some(seat)), Outgoing::Event(event)));
            }
            _ => out.push(Action::Send(others(None), Outgoing::Event(event))),
        }
    }

    /// Forget held line `n` (back from the log, or one too many): its mark.
    fn take_held(&mut self, n: u64) -> Option<u64> {
        let line = self.held.remove(&n)?;
        if let Some(origin) = &line.origin {
            self.held_by_origin.remove(origin);
        }
        Some(line.mark)
    }

    /// A clustered room's log can no longer (`true`), or can again (`false`), be
    /// reached.
    pub fn set_log_down(&mut self, down: bool) {
        self.log_down = down;
    }

    /// An entry this room proposed was not put on the log (no room in its queue): it
    /// is forgotten as a held line and as a private message's words.
    pub fn refused(&mut self, entry: &Entry) {
        if entry.held {
            self.take_held(entry.n);
        }
        if entry.sealed.is_some() {
            self.own_words.take(&entry.n);
        }
    }

    /// Whether the room takes its log to be out of reach.
    pub fn log_down(&self) -> bool {
        self.log_down
    }

    /// The copy of a held line (see [`ServerMsg::held`]) that its host shows at once,
    /// once the line is on its way to the log: to everyone here but its sender, who
    /// sees its own line waiting for the room. `None` for an entry not held.
    pub fn held_copy(&self, entry: &Entry) -> Option<Action> {
        if !entry.held {
            return None;
        }
        let mark = self.held.get(&entry.n)?.mark;
        let event = entry
            .event
            .clone()
            .with_id(0)
            .with_held(Some(entry.held_key()));
        let target = Target::Held {
            except: entry.peer,
            mark,
        };
        Some(Action::Send(target, Outgoing::Event(event)))
    }

    /// Hold an event from a shared log to what this room would have made, in place:
    /// only the kinds a room proposes (`false` for anything else), its names and texts
    /// sanitised and within the room's bounds. The log is the hosts', but anyone who
    /// can publish on its subject can put something there.
    fn hold(&self, event: &mut ServerMsg) -> bool {
        // A name is one a room would give ([`names::check`]), or the event is none of
        // a host's.
        let name = |n: &mut String| match names::check(n) {
            Ok(held) => {
                *n = held;
                true
            }
            Err(_) => false,
        };
        let text = |t: &mut String| self.hold_text(t);
        let line = |t: &mut String| {
            text(t);
            *t = sanitize::line(t);
        };
        match event {
            ServerMsg::Msg {
                from,
                text: t,
                held,
                ..
            }
            | ServerMsg::Me {
                from,
                text: t,
                held,
                ..
            } => {
                text(t);
                // The room gives a held line its key (from the entry's host and
                // number), never the event itself.
                *held = None;
                name(from)
            }
            ServerMsg::Private {
                from, to, text: t, ..
            } => {
                text(t);
                name(from) && name(to)
            }
            ServerMsg::Topic { by, text: t, .. } => {
                line(t);
                name(by)
            }
            ServerMsg::Nick { old, new, .. } => name(old) && name(new),
            ServerMsg::Join { name: n, .. } => name(n),
            ServerMsg::Leave {
                name: n, reason, ..
            } => {
                if let Some(r) = reason {
                    line(r);
                }
                name(n)
            }
            ServerMsg::Crowd { joined, left, .. } => [joined, left].into_iter().all(|list| {
                list.truncate(MAX_NAMES_PER_HOST);
                list.iter_mut().all(name)
            }),
            _ => false,
        }
    }

    /// Hold a message's text from another host to what this room would send, in place:
    /// sanitised, blank lines collapsed, no longer than the room's longest line.
    fn hold_text(&self, t: &mut String) {
        let max = self.rules.max_line;
        let mut held = collapse_blank_lines(&sanitize::text(t));
        if held.len() > max {
            let mut cut = max;
            while !held.is_char_boundary(cut) {
                cut -= 1;
            }
            held.truncate(cut);
        }
        *t = held;
    }

    /// What an event changes of the room itself, wherever it was proposed.
    fn apply_state(&mut self, event: &ServerMsg) {
        if let ServerMsg::Topic { text, .. } = event {
            self.topic = (!text.is_empty()).then(|| text.clone());
            if let Some(j) = &mut self.journal {
                j.topic = Some(text.clone());
            }
        }
    }

    /// Keep an applied entry for catching up (and its line, for recognising a resend).
    fn keep_entry(&mut self, id: u64, entry: Entry, now: i64) {
        let event = entry.event.with_id(id);
        let origin = entry.origin;
        let about: Option<Arc<str>> = entry.about.map(Arc::from);
        if origin.is_some() {
            self.keep_line(id, event, origin, None, now);
        } else {
            self.keep_about(id, event, about);
        }
    }

    /// This host's own join, crowd or rename, back from a shared log: the names it
    /// claims are this host's now, unless another host's claim to one came first in
    /// the log's order, which every host sees alike. Then the member here gives way:
    /// it takes another name, is told why, and the room is told of the rename.
    fn settle_claims(&mut self, event: &ServerMsg, now: i64, out: &mut Vec<Action>) {
        let (claims, releases): (Vec<&String>, Vec<&String>) = match event {
            ServerMsg::Join { name, .. } => (vec![name], vec![]),
            ServerMsg::Leave { name, .. } => (vec![], vec![name]),
            ServerMsg::Crowd { joined, left, .. } => {
                (joined.iter().collect(), left.iter().collect())
            }
            ServerMsg::Nick { old, new, .. } => (vec![new], vec![old]),
            _ => return,
        };
        for name in releases {
            self.claimed.remove(&names::fold(name));
        }
        for name in claims {
            let key = names::fold(name);
            if !self.remote.contains_key(&key) {
                self.claimed.insert(key);
                continue;
            }
            let Some(&holder) = self.by_name.get(&key) else {
                continue;
            };
            let Some(old) = self.peers.get(&holder).map(|p| p.name.clone()) else {
                continue;
            };
            let new = self.unique_name(&old);
            self.rename_seat(holder, &old, &new);
            let text = format!(
                "someone on another host of this room took the name {old} a moment before you; you are {new}"
            );
            self.notice(holder, &text, None, now, out);
            let event = ServerMsg::Nick {
                id: 0,
                ts: self.ts(now),
                old,
                new,
                cid: None,
            };
            let entry = Entry {
                peer: Some(holder),
                ..Entry::to_room(event)
            };
            self.propose(entry, now, out);
        }
    }

    /// Who came, went or took another name on another host, from its events (the most
    /// remembered is bounded: a host that died never says its people left). A name
    /// this host holds by an earlier claim stays its own: the other host's member gives
    /// way (see [`Room::settle_claims`]).
    /// A name claimed on another host after an earlier claim (on a third host) is not
    /// taken from that one: its holder gives way the same way.
    fn track_remote(&mut self, entry: &Entry) {
        let (host, event, about) = (entry.host.as_str(), &entry.event, entry.about.as_deref());
        let add = |room: &mut Room, name: &String, session: Option<&str>| {
            let key = names::fold(name);
            if let Some(held) = room.remote.get_mut(&key)
                && session.is_some()
                && held.session.as_deref() == session
            {
                // The same member, seated now on another host (theirs died).
                held.host = host.to_owned();
                return;
            }
            if room.remote.len() < MAX_REMOTE_NAMES
                && !room.claimed.contains(&key)
                && !room.remote.contains_key(&key)
            {
                let held = Remote {
                    name: name.clone(),
                    host: host.to_owned(),
                    session: session.map(str::to_owned),
                };
                room.remote.insert(key, held);
            }
        };
        let remove = |room: &mut Room, name: &String| {
            let key = names::fold(name);
            if room.remote.get(&key).is_some_and(|r| r.host == host) {
                room.remote.remove(&key);
            }
        };
        match event {
            ServerMsg::Join { name, .. } => add(self, name, about),
            ServerMsg::Leave { name, .. } => remove(self, name),
            ServerMsg::Crowd { joined, left, .. } => {
                for name in left {
                    remove(self, name);
                }
                for (i, name) in joined.iter().enumerate() {
                    let session = entry.joined_sessions.get(i).and_then(Option::as_deref);
                    add(self, name, session);
                }
            }
            ServerMsg::Nick { old, new, .. } => {
                let session = self
                    .remote
                    .get(&names::fold(old))
                    .filter(|r| r.host == host)
                    .and_then(|r| r.session.clone());
                remove(self, old);
                add(self, new, session.as_deref());
            }
            _ => {}
        }
    }

    /// Who is seated on this host, as of the last event applied: what a clustered
    /// room's host tells the others.
    pub fn listing(&self) -> Listing {
        Listing {
            at: self.next_event.saturating_sub(1),
            names: self.sorted.iter().map(|(_, n)| n.clone()).collect(),
            ..Listing::default()
        }
    }

    /// What the hosts of a clustered room last said of themselves: who is on each
    /// (this host not among them). The members a listing names are taken to be in the
    /// room when it is as new as what this room has applied of the log (a host
    /// starting up learns who is there; an older listing does not bring back someone
    /// the log since said left). A host missing from [`GONE_AFTER`] listings in a row is gone
    /// with its members, and the room is told so, once (every host that notices puts
    /// the same entries on the log, which takes each once).
    pub fn presence(&mut self, hosts: &HashMap<String, Listing>, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let Log::Shared { host: me } = &self.log else {
            return out;
        };
        let me = me.clone();
        let applied = self.next_event.saturating_sub(1);
        for (host, listing) in hosts {
            self.missing.remove(host);
            self.heard.insert(host.clone());
            if listing.at < applied {
                continue;
            }
            for name in listing.names.iter().take(MAX_NAMES_PER_HOST) {
                // A name a room would give, as a join's is: another host's word is
                // not trusted raw.
                let Ok(name) = names::check(name) else {
                    continue;
                };
                let name = &name;
                let key = names::fold(name);
                if self.remote.len() < MAX_REMOTE_NAMES
                    && !self.by_name.contains_key(&key)
                    && !self.claimed.contains(&key)
                    && !self.remote.contains_key(&key)
                {
                    let held = Remote {
                        name: name.clone(),
                        host: host.clone(),
                        session: None,
                    };
                    self.remote.insert(key, held);
                }
            }
        }
        // Hosts known (by their listing or their members) and not among them now.
        let mut silent: Vec<String> = self
            .heard
            .iter()
            .chain(self.remote.values().map(|r| &r.host))
            .filter(|h| !hosts.contains_key(*h) && ***h != *me)
            .cloned()
            .collect();
        silent.sort();
        silent.dedup();
        for host in silent {
            let count = self.missing.entry(host.clone()).or_insert(0);
            *count += 1;
            if *count < GONE_AFTER {
                continue;
            }
            self.missing.remove(&host);
            self.heard.remove(&host);
            let gone: Vec<(String, Remote)> = self
                .remote
                .iter()
                .filter(|(_, r)| r.host == host)
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            for (key, r) in gone {
                self.remote.remove(&key);
                let event = ServerMsg::Leave {
                    id: 0,
                    ts: self.ts(now),
                    name: r.name.clone(),
                    reason: Some("their host is gone".into()),
                };
                let entry = Entry {
                    host: r.host.clone(),
                    key: Some(format!("{GONE_KEY}{}:{}", r.host, r.name)),
                    ..Entry::to_room(event)
                };
                out.push(Action::Publish(Box::new(entry)));
            }
        }
        out
    }

    /// Whether a name (folded) is a member's, here or on another host.
    fn name_taken(&self, key: &str) -> bool {
        self.by_name.contains_key(key) || self.remote.contains_key(key)
    }

    /// A room as a durable room left it: the same epoch, its numbering going on from
    /// where it stopped, its history and the lines it relayed. Nobody is in it.
    pub fn restore(saved: Saved, rules: Rules) -> Self {
        let mut room = Room::new(saved.epoch, rules);
        room.next_event = saved.next_event.max(1);
        for kept in saved.kept {
            room.keep_kept(kept);
        }
        for (origin, id) in saved.relayed {
            room.relayed.remember(origin, id, 0, &room.rules);
        }
        room.topic = saved.topic.filter(|t| !t.is_empty());
        room
    }

    /// Start noting what a durable room must write down (see [`Room::take_journal`]).
    pub fn keep_journal(&mut self) {
        self.journal = Some(Journal::default());
    }

    /// What changed since the last call (the events kept, the lines relayed), and
    /// where the numbering and history stand; `None` when nothing did or no journal is
    /// kept.
    pub fn take_journal(&mut self) -> Option<Journal> {
        let j = self.journal.as_mut()?;
        if j.kept == 0 && j.relayed == 0 && j.topic.is_none() && j.next_event == self.next_event {
            return None;
        }
        let taken = Journal {
            topic: j.topic.take(),
            // What the bounds let go of within the turn is not to be written.
            kept: j.kept.min(self.history.len()),
            relayed: j.relayed.min(self.relayed.order.len()),
            next_event: self.next_event,
        };
        *j = Journal {
            next_event: self.next_event,
            ..Journal::default()
        };
        Some(taken)
    }

    /// The last `n` events kept, oldest first (see [`Journal::kept`]).
    pub fn newly_kept(&self, n: usize) -> impl Iterator<Item = &Kept> {
        self.history.range(self.history.len().saturating_sub(n)..)
    }

    /// The last `n` lines relayed, oldest first (see [`Journal::relayed`]).
    pub fn newly_relayed(&self, n: usize) -> impl Iterator<Item = (&Origin, u64)> {
        let order = &self.relayed.order;
        order
            .range(order.len().saturating_sub(n)..)
            .map(|(_, origin, id)| (origin, *id))
    }

    /// The room's topic, if one is set.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// Tell the room how far the wall clock is from the clock it is driven by (see
    /// `wall_offset`): a wall clock that steps (NTP, a VM resumed) moves the times
    /// people see, never a limit or a timer.
    pub fn set_wall_offset(&mut self, wall_minus_now_ms: i64) {
        self.wall_offset = wall_minus_now_ms;
    }

    /// The time people are shown for an event at `now`.
    fn ts(&self, now: i64) -> i64 {
        now.saturating_add(self.wall_offset)
    }

    /// How many are in the room.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The names of those in the room (on every host of a clustered room), sorted.
    pub fn names(&self) -> Vec<String> {
        if self.remote.is_empty() {
            return self.sorted.iter().map(|(_, n)| n.clone()).collect();
        }
        let mut all: Vec<(String, String)> = self.sorted.iter().cloned().collect();
        all.extend(
            self.remote
                .iter()
                .filter(|(key, _)| !self.by_name.contains_key(*key))
                .map(|(_, r)| (r.name.to_lowercase(), r.name.clone())),
        );
        all.sort();
        all.into_iter().map(|(_, n)| n).collect()
    }

    /// The dialect of a connection, if it is in the room.
    pub fn dialect(&self, peer: PeerId) -> Option<Dialect> {
        self.peers.get(&peer).map(|p| p.dialect)
    }

    /// How many events are kept for catching up.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The id the next event will get: where a connection opening now starts.
    pub fn next_event(&self) -> u64 {
        self.next_event
    }

    /// When [`Room::tick`] has something to do (a crowd to tell), if ever.
    pub fn next_tick(&self) -> Option<i64> {
        self.crowd.as_ref().map(|c| c.due)
    }

    /// Addresses remembered (for tests and the hostile-peer suite: it stays bounded).
    pub fn addresses_kept(&self) -> usize {
        self.addrs.len()
    }

    /// The peers a target names, with their dialects. An iterator, not a list: the
    /// room walks it once per event, for every event it relays.
    pub fn recipients(&self, target: Target) -> impl Iterator<Item = (PeerId, Dialect)> + '_ {
        let (one, room) = match target {
            Target::One(id) | Target::Backfill(id) => {
                (self.peers.get(&id).map(|p| (id, p.dialect)), None)
            }
            Target::Last(id, dialect) => (Some((id, dialect)), None),
            Target::Room | Target::RoomExcept(_) | Target::Held { .. } | Target::Settled { .. } => {
                (None, Some(self.peers.iter()))
            }
        };
        let joined = room
            .into_iter()
            .flatten()
            .filter(move |(id, p)| match target {
                Target::RoomExcept(except) => **id != except,
                Target::Held { except, mark } => Some(**id) != except && p.seated < mark,
                Target::Settled { except, mark } => {
                    Some(**id) != except && !(p.dialect == Dialect::Plain && p.seated < mark)
                }
                _ => true,
            })
            .map(|(id, p)| (*id, p.dialect));
        one.into_iter().chain(joined)
    }

    /// A connection has finished its handshake: give it a seat. A tchat client gets the
    /// name it asked for (or one like it), a plain peer `guest`; either is welcomed,
    /// shown what it missed, and announced.
    pub fn seat(&mut self, peer: PeerId, arrival: Arrival, now: i64) -> Vec<Action> {
        self.expire(now);
        let mut out = Vec::new();
        let Arrival { hello, addr, mark } = arrival;
        match hello {
            Some(hello) => self.hello(peer, hello, addr, mark, now, &mut out),
            None => {
                let name = self.seat_as(peer, Dialect::Plain, None, None, addr, now, &mut out);
                self.recent(peer, Dialect::Plain, mark, &mut out);
                self.announce(peer, name, now, &mut out);
            }
        }
        out
    }

    /// Time passed: tell a crowd that came or went, once it is due.
    pub fn tick(&mut self, now: i64) -> Vec<Action> {
        self.expire(now);
        let mut out = Vec::new();
        if self.crowd.as_ref().is_some_and(|c| c.due <= now) {
            self.tell_crowd(now, &mut out);
        }
        out
    }

    /// A connection has sent nothing for a while. A tchat client is pinged; if it is
    /// still silent the next time, it is gone without having said so (a half-open
    /// connection) and is removed. A plain peer may stay silent for ever: TCP keepalive
    /// finds it if it vanishes.
    pub fn quiet(&mut self, peer: PeerId, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(&peer) else {
            return out;
        };
        if p.dialect != Dialect::Structured {
            return out;
        }
        if p.pinged {
            self.leave(peer, Some("timed out: no answer to a ping"), now, &mut out);
        } else {
            p.pinged = true;
            out.push(Action::Send(
                Target::One(peer),
                Outgoing::Event(ServerMsg::Ping),
            ));
        }
        out
    }

    /// Close a connection for misbehaving: tell it why (`tell`), tell the room (`reason`).
    pub fn cut(&mut self, peer: PeerId, tell: &str, reason: &str, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(dialect) = self.dialect(peer) else {
            return out;
        };
        out.extend(self.disconnect(peer, Some(reason), now));
        // Told after the room has let go of it, before the close.
        let notice = ServerMsg::Notice {
            ts: self.ts(now),
            text: sanitize::line(tell),
            cid: None,
        };
        out.push(Action::Send(
            Target::Last(peer, dialect),
            Outgoing::Event(notice),
        ));
        out.push(Action::Close(peer));
        out
    }

    /// A line (or an over-long line) arrived from a seated connection.
    pub fn receive(&mut self, peer: PeerId, frame: Frame, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(&peer) else {
            return out;
        };
        p.pinged = false;
        let dialect = p.dialect;
        let line = match frame {
            Frame::TooLong => {
                if self.may_answer(peer, now) {
                    self.too_long(peer, None, now, &mut out);
                }
                return out;
            }
            Frame::Line(line) => line,
        };
        match dialect {
            Dialect::Plain => {
                if line.trim() == "exit" {
                    self.leave(peer, None, now, &mut out);
                } else if line.len() > self.rules.max_line {
                    if self.may_answer(peer, now) {
                        self.too_long(peer, None, now, &mut out);
                    }
                } else if ClientMsg::parse_hello(&line).is_some() {
                    // Never relayed: a hello carries the session, which takes a seat
                    // over. Too late here: this connection joined as plain text.
                    let text = "that was a tchat hello, but this connection already joined as plain text; it was not sent";
                    self.answer(peer, text, None, now, &mut out);
                } else {
                    self.typed(peer, &line, None, now, &mut out);
                }
            }
            Dialect::Structured => match ClientMsg::decode(&line) {
                Ok(ClientMsg::Say { cid: Some(cid), .. }) if cid.len() > protocol::MAX_ID_BYTES => {
                    let text = format!(
                        "your line was not sent: its id is longer than {} bytes",
                        protocol::MAX_ID_BYTES
                    );
                    self.answer(peer, &text, None, now, &mut out);
                }
                Ok(ClientMsg::Say { text, cid }) => {
                    if self.resent(peer, cid.as_deref(), now, &mut out) {
                    } else if text.len() > self.rules.max_line {
                        if self.may_answer(peer, now) {
                            self.too_long(peer, cid, now, &mut out);
                        }
                    } else {
                        self.typed(peer, &text, cid, now, &mut out);
                    }
                }
                Ok(ClientMsg::Bye) => self.leave(peer, None, now, &mut out),
                Ok(ClientMsg::Pong) => {}
                // Answered at most once a second: a client asks every 15 s, so a flood
                // of pings costs the host one small line a second, not one per ping.
                Ok(ClientMsg::Ping) => {
                    if let Some(p) = self.peers.get_mut(&peer)
                        && now >= p.ponged_at.saturating_add(PONG_EVERY_MS)
                    {
                        p.ponged_at = now;
                        out.push(Action::Send(
                            Target::One(peer),
                            Outgoing::Event(ServerMsg::Pong),
                        ));
                    }
                }
                Ok(ClientMsg::Hello { .. }) => {
                    self.answer(peer, "you are already in", None, now, &mut out)
                }
                Err(e) => self.answer(peer, &format!("ignored a line: {e}"), None, now, &mut out),
            },
        }
        out
    }

    /// A connection closed (or was dropped by the server, with a reason).
    pub fn disconnect(&mut self, peer: PeerId, reason: Option<&str>, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(gone) = self.unseat(peer, now) {
            self.tell_leave(gone, reason, now, &mut out);
        }
        out
    }

    /// The host is going away: tell everyone, then close every connection. The room
    /// keeps its peers so that the goodbyes can still be addressed; it is not used after.
    pub fn shutdown(&mut self, reason: &str, now: i64) -> Vec<Action> {
        let mut ids: Vec<PeerId> = self.peers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len() * 2);
        for &id in &ids {
            out.push(Action::Send(
                Target::One(id),
                Outgoing::Event(ServerMsg::Closing {
                    ts: self.ts(now),
                    reason: reason.to_owned(),
                }),
            ));
        }
        out.extend(ids.into_iter().map(Action::Close));
        out
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_event;
        self.next_event += 1;
        id
    }

    fn addr_rate(&self) -> Rate {
        Rate {
            burst: self.rules.addr_burst,
            per_sec: self.rules.addr_rate,
        }
    }

    fn peer_rate(&self) -> Rate {
        Rate {
            burst: self.rules.burst,
            per_sec: self.rules.rate,
        }
    }

    /// Forget the addresses whose share of the flood limit is full again: a reconnect
    /// from one of them would start no better off. Each is looked at once per time it
    /// lost its last seat, so this costs O(1) per seat over time. Called where the table
    /// grows (a seat) and on every tick, not per line.
    fn expire(&mut self, now: i64) {
        self.relayed.forget(now, &self.rules);
        let keep_for = self.addr_rate().refill_ms();
        while let Some(&(since, ip)) = self.idle_addrs.front() {
            if now < since.saturating_add(keep_for) {
                break;
            }
            self.idle_addrs.pop_front();
            if let Some(a) = self.addrs.get(&ip)
                && a.seats == 0
                && now >= a.idle_since.saturating_add(keep_for)
            {
                self.addrs.remove(&ip);
            }
        }
    }

    /// Remember a line someone sent: for catching up, and (by its origin) for
    /// recognising it if its sender sends it again.
    fn keep_line(
        &mut self,
        id: u64,
        event: ServerMsg,
        origin: Option<Origin>,
        audience: Option<[Option<Arc<str>>; 2]>,
        now: i64,
    ) {
        if let Some(o) = &origin {
            self.relayed.remember(o.clone(), id, now, &self.rules);
            if let Some(j) = &mut self.journal
                && self.rules.resend_memory > 0
            {
                j.relayed += 1;
            }
        }
        self.keep_kept(Kept {
            origin,
            audience,
            ..Kept::new(id, event)
        });
    }

    /// Remember a join or a leave, and whose.
    fn keep_about(&mut self, id: u64, event: ServerMsg, about: Option<Arc<str>>) {
        self.keep_kept(Kept {
            about,
            ..Kept::new(id, event)
        });
    }

    fn keep_kept(&mut self, kept: Kept) {
        if self.rules.history == 0 {
            return;
        }
        if let Some(j) = &mut self.journal {
            j.kept += 1;
        }
        self.history.push_back(kept);
        while self.history.len() > self.rules.history {
            self.history.pop_front();
        }
    }

    /// A tchat client says hello. If its session is still in the room on an older
    /// connection (one that broke without the host noticing yet), the new connection
    /// takes that seat over quietly: same name, nobody told of a leave and a join.
    fn hello(
        &mut self,
        peer: PeerId,
        hello: Hello,
        addr: Option<IpAddr>,
        mark: u64,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let session: Option<Arc<str>> = hello
            .session
            .filter(|s| !s.is_empty() && s.len() <= protocol::MAX_ID_BYTES)
            .map(Arc::from);
        let stale = session
            .as_ref()
            .and_then(|s| self.by_session.get(s).copied())
            .filter(|old| *old != peer);
        // What was missed is worked out before this join, which is not part of it.
        let mut missed = Vec::new();
        if let Some(since) = &hello.since {
            self.replay(peer, since, session.as_ref(), &mut missed);
        }
        match stale {
            Some(old) => {
                let (name, bucket, away, since) = match self.peers.get(&old) {
                    Some(p) => (p.name.clone(), p.bucket, p.away.clone(), p.since),
                    None => return,
                };
                self.unseat(old, now);
                out.push(Action::Close(old));
                self.place(peer, Dialect::Structured, name.clone(), session, addr, now);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.bucket = bucket;
                    p.away = away;
                    p.since = since;
                }
                self.welcome(peer, &name, None, now, out);
                out.extend(missed);
            }
            None => {
                // Back on this host of a clustered room from another (which died, or
                // which it left): its name is still its own.
                if let Some(s) = &session {
                    let key = names::fold(&hello.name);
                    if self
                        .remote
                        .get(&key)
                        .is_some_and(|r| r.session.as_deref() == Some(&**s))
                    {
                        self.remote.remove(&key);
                    }
                }
                let asked = Some(hello.name.as_str());
                let name = self.seat_as(peer, Dialect::Structured, asked, session, addr, now, out);
                out.extend(missed);
                // Someone new, or back from another run of the room (a host restarted
                // without its file): shown what this run has said, as a newcomer is.
                let this_run = hello.since.as_ref().is_some_and(|s| s.room == self.epoch);
                if !this_run {
                    self.recent(peer, Dialect::Structured, mark, out);
                }
                self.announce(peer, name, now, out);
            }
        }
    }

    /// Send a rejoining client what it missed since `since`, if it was in this room:
    /// the newest events that fit in the catch-up's bytes, the rest counted as lost.
    fn replay(
        &self,
        peer: PeerId,
        since: &protocol::Since,
        session: Option<&Arc<str>>,
        out: &mut Vec<Action>,
    ) {
        if since.room != self.epoch || since.id >= self.next_event {
            // Another room, or another run of this one: the client says so itself.
            return;
        }
        let first_kept = self.history.front().map_or(self.next_event, |k| k.id);
        let mut lost = first_kept.saturating_sub(since.id.saturating_add(1));
        // A private message only for the two seats it was between; and not the
        // rejoiner's own leaving and coming back.
        let visible = |k: &Kept| {
            let own = k.about.is_some() && k.about.as_ref() == session;
            let allowed = match &k.audience {
                Some(seats) => session.is_some_and(|me| seats.iter().flatten().any(|s| s == me)),
                None => true,
            };
            allowed && !own
        };
        let mut budget = self.rules.max_catchup;
        let mut missed: Vec<&Kept> = Vec::new();
        for k in self.history.iter().rev().take_while(|k| k.id > since.id) {
            if !visible(k) {
                continue;
            }
            if k.size > budget {
                // Everything older than this is not sent either: count it.
                lost += self
                    .history
                    .iter()
                    .take_while(|o| o.id <= k.id)
                    .filter(|o| o.id > since.id && visible(o))
                    .count() as u64;
                break;
            }
            budget -= k.size;
            missed.push(k);
        }
        missed.reverse();
        let to = Target::Backfill(peer);
        out.push(Action::Send(
            to,
            Outgoing::Event(ServerMsg::Catchup {
                count: missed.len() as u64,
                lost,
            }),
        ));
        for k in missed {
            out.push(Action::Send(to, Outgoing::Event(own_echo(k, session))));
        }
    }

    /// A line this session sent before (and the room relayed) came again after a
    /// reconnect: do not relay it twice; echo the original (or, once the history has
    /// let go of it, acknowledge it) so the sender marks it delivered.
    fn resent(&mut self, peer: PeerId, cid: Option<&str>, now: i64, out: &mut Vec<Action>) -> bool {
        let (Some(cid), Some(session)) =
            (cid, self.peers.get(&peer).and_then(|p| p.session.as_ref()))
        else {
            return false;
        };
        let Some(id) = self.relayed.get(session, cid) else {
            // Shown held here and waiting for the log (which is away): not proposed
            // again; its echo comes when the log hands it back.
            return self
                .held_by_origin
                .contains_key(&(session.clone(), Box::from(cid)));
        };
        // By id, not by place: a history read back from a file may have gaps.
        let kept = self
            .history
            .binary_search_by_key(&id, |k| k.id)
            .ok()
            .and_then(|i| self.history.get(i));
        let answer = match kept {
            Some(kept) => own_echo(kept, Some(session)),
            // No longer in the history: say it was delivered.
            None => ServerMsg::Ack {
                cid: cid.to_owned(),
                id,
            },
        };
        if self.may_answer(peer, now) {
            out.push(Action::Send(Target::One(peer), Outgoing::Event(answer)));
        }
        true
    }

    /// May the room answer a line it did not relay (a resend, a line it cannot read, an
    /// over-long one)? Such lines cost the sender nothing against the flood limit, so
    /// their answers are held to it on their own account: otherwise one line in could
    /// draw a notice, or a whole echoed line, out, without end.
    fn may_answer(&mut self, peer: PeerId, now: i64) -> bool {
        let rate = self.peer_rate();
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        if rate.unlimited() {
            return true;
        }
        if !p.answers.has(rate, now) {
            return false;
        }
        p.answers.spend(rate);
        true
    }

    /// [`Room::notice`], if the room may answer (see [`Room::may_answer`]).
    fn answer(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        if self.may_answer(peer, now) {
            self.notice(peer, text, cid, now, out);
        }
    }

    /// The flood limit: may this peer send a line now? Its own share and its address's
    /// must both allow it. If not, tell it.
    fn admit(&mut self, peer: PeerId, cid: Option<&str>, now: i64, out: &mut Vec<Action>) -> bool {
        let (peer_rate, addr_rate) = (self.peer_rate(), self.addr_rate());
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let address = p.addr.and_then(|ip| self.addrs.get_mut(&ip));
        let addr_ok = match address {
            Some(a) => a.bucket.has(addr_rate, now),
            None => true,
        };
        let peer_ok = p.bucket.has(peer_rate, now);
        if peer_ok && addr_ok {
            p.bucket.spend(peer_rate);
            if let Some(a) = p.addr.and_then(|ip| self.addrs.get_mut(&ip)) {
                a.bucket.spend(addr_rate);
            }
            p.warned = false;
            return true;
        }
        let limit = if peer_ok {
            format!(
                "over the flood limit for your address ({} lines at once, then {} a second, for all its connections together)",
                addr_rate.burst, addr_rate.per_sec
            )
        } else {
            format!(
                "over the flood limit ({} lines at once, then {} a second)",
                peer_rate.burst, peer_rate.per_sec
            )
        };
        match p.dialect {
            // A tchat client shows each refused line as not sent, so it hears of each.
            Dialect::Structured => {
                let text = format!("slow down: that line was not sent, {limit}");
                self.notice(peer, &text, cid.map(str::to_owned), now, out);
            }
            Dialect::Plain if !p.warned => {
                p.warned = true;
                let text = format!("slow down: {limit}; your lines are dropped until you do");
                self.notice(peer, &text, None, now, out);
            }
            Dialect::Plain => {}
        }
        false
    }

    /// Put a connection in the room under `name` (which must be free).
    fn place(
        &mut self,
        peer: PeerId,
        dialect: Dialect,
        name: String,
        session: Option<Arc<str>>,
        addr: Option<IpAddr>,
        now: i64,
    ) {
        let addr_rate = self.addr_rate();
        let addr = addr.filter(|_| !addr_rate.unlimited());
        if let Some(ip) = addr {
            let a = self.addrs.entry(ip).or_insert_with(|| Address {
                bucket: Bucket::full(addr_rate, now),
                seats: 0,
                idle_since: now,
            });
            a.seats += 1;
        }
        self.by_name.insert(names::fold(&name), peer);
        self.sorted.insert((name.to_lowercase(), name.clone()));
        if let Some(s) = &session {
            self.by_session.insert(s.clone(), peer);
        }
        let bucket = Bucket::full(self.peer_rate(), now);
        self.peers.insert(
            peer,
            Peer {
                dialect,
                name,
                session,
                addr,
                bucket,
                pinged: false,
                warned: false,
                away: None,
                since: now,
                ponged_at: i64::MIN,
                answers: bucket,
                seated: self.seats_made,
            },
        );
        self.seats_made += 1;
    }

    /// A member's name is now `new`.
    fn rename_seat(&mut self, peer: PeerId, old: &str, new: &str) {
        self.by_name.remove(&names::fold(old));
        self.sorted.remove(&(old.to_lowercase(), old.to_owned()));
        self.by_name.insert(names::fold(new), peer);
        self.sorted.insert((new.to_lowercase(), new.to_owned()));
        if let Some(p) = self.peers.get_mut(&peer) {
            p.name = new.to_owned();
        }
    }

    /// Take a connection out of the room; its name and session, if it was in.
    fn unseat(&mut self, peer: PeerId, now: i64) -> Option<(String, Option<Arc<str>>)> {
        let p = self.peers.remove(&peer)?;
        self.by_name.remove(&names::fold(&p.name));
        if let Some(s) = &p.session
            && self.by_session.get(s) == Some(&peer)
        {
            self.by_session.remove(s);
        }
        self.sorted.remove(&(p.name.to_lowercase(), p.name.clone()));
        if let Some(ip) = p.addr
            && let Some(a) = self.addrs.get_mut(&ip)
        {
            a.seats = a.seats.saturating_sub(1);
            if a.seats == 0 {
                a.idle_since = now;
                self.idle_addrs.push_back((now, ip));
            }
        }
        Some((p.name, p.session))
    }

    /// Give a connection its name in the room and welcome it; the name.
    #[allow(clippy::too_many_arguments)]
    fn seat_as(
        &mut self,
        peer: PeerId,
        dialect: Dialect,
        asked: Option<&str>,
        session: Option<Arc<str>>,
        addr: Option<IpAddr>,
        now: i64,
        out: &mut Vec<Action>,
    ) -> String {
        let base = asked.and_then(|a| names::check(a).ok());
        let name = self.unique_name(base.as_deref().unwrap_or(GUEST_NAME));
        // Tell the person when they did not get the name they asked for (as it reads
        // once normalised: a stray space or a decomposed accent is the same name).
        let renamed = asked
            .filter(|_| base.as_deref() != Some(name.as_str()))
            .map(sanitize::line);
        self.place(peer, dialect, name.clone(), session, addr, now);
        self.welcome(peer, &name, renamed, now, out);
        name
    }

    /// Tell everyone else that `name` came in: at once, or with a crowd.
    fn announce(&mut self, peer: PeerId, name: String, now: i64, out: &mut Vec<Action>) {
        if !self.told_alone(now) {
            self.crowd(now).join(name);
            return;
        }
        let event = ServerMsg::Join {
            id: 0,
            ts: self.ts(now),
            name,
        };
        let about = self.peers.get(&peer).and_then(|p| p.session.clone());
        let entry = Entry {
            peer: Some(peer),
            reach: Reach::Others,
            about: about.map(|s| s.to_string()),
            ..Entry::to_room(event)
        };
        self.propose(entry, now, out);
    }

    /// Tell everyone that `name` left: at once, or with a crowd.
    fn tell_leave(
        &mut self,
        (name, session): (String, Option<Arc<str>>),
        reason: Option<&str>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        if !self.told_alone(now) {
            self.crowd(now).leave(name);
            return;
        }
        let event = ServerMsg::Leave {
            id: 0,
            ts: self.ts(now),
            name,
            reason: reason.map(str::to_owned),
        };
        let entry = Entry {
            about: session.map(|s| s.to_string()),
            ..Entry::to_room(event)
        };
        self.propose(entry, now, out);
    }

    /// May a join or a leave be told on its own now? It may while no crowd is being
    /// gathered and the budget allows (which it then spends); else it goes with a crowd.
    fn told_alone(&mut self, now: i64) -> bool {
        if self.crowd.is_some() || !self.announce.has(ANNOUNCE, now) {
            return false;
        }
        self.announce.spend(ANNOUNCE);
        true
    }

    /// The crowd being gathered, begun now if there is none.
    fn crowd(&mut self, now: i64) -> &mut Crowd {
        self.crowd.get_or_insert_with(|| Crowd {
            due: now.saturating_add(CROWD_AFTER_MS),
            ..Crowd::default()
        })
    }

    fn tell_crowd(&mut self, now: i64, out: &mut Vec<Action>) {
        let Some(c) = self.crowd.take() else { return };
        if c.joined.is_empty() && c.left.is_empty() {
            return;
        }
        // Other hosts of a clustered room are told whose sessions the names are.
        let joined_sessions = match self.log {
            Log::Local => Vec::new(),
            Log::Shared { .. } => c
                .joined
                .iter()
                .map(|name| {
                    let peer = self.by_name.get(&names::fold(name))?;
                    Some(self.peers.get(peer)?.session.as_deref()?.to_owned())
                })
                .collect(),
        };
        let event = ServerMsg::Crowd {
            id: 0,
            ts: self.ts(now),
            joined: c.joined,
            left: c.left,
        };
        let entry = Entry {
            joined_sessions,
            ..Entry::to_room(event)
        };
        self.propose(entry, now, out);
    }

    fn welcome(
        &self,
        peer: PeerId,
        name: &str,
        asked: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Welcome {
                v: PROTOCOL_VERSION,
                room: self.epoch.clone(),
                name: name.to_owned(),
                asked,
                members: self.names(),
                max_line: self.rules.max_line,
                pace: (!self.peer_rate().unlimited()).then_some(protocol::Pace {
                    burst: self.rules.burst,
                    rate: self.rules.rate,
                }),
                ts: Some(self.ts(now)),
                topic: self.topic.clone(),
            }),
        ));
    }

    /// A line a person typed: a message, or a `/command`.
    fn typed(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        if text.trim().is_empty() {
            return;
        }
        let command = protocol::parse_command(text);
        if command == Command::Quit {
            self.leave(peer, None, now, out);
            return;
        }
        let lines = text.split('\n').count();
        if self.rules.max_lines > 0 && lines > self.rules.max_lines {
            let text = format!(
                "your message was not sent: it has {lines} lines, and the most is {}",
                self.rules.max_lines
            );
            self.notice(peer, &text, cid, now, out);
            return;
        }
        if !self.admit(peer, cid.as_deref(), now, out) {
            return;
        }
        // Every answer to a command carries its `cid`, so that the client knows the
        // room has it (and does not send it again after a rejoin).
        let mut tell = |room: &mut Room, text: &str| room.notice(peer, text, cid.clone(), now, out);
        match command {
            Command::Say(text) => self.relay(peer, text, cid, now, out, |id, ts, from, text| {
                ServerMsg::Msg {
                    id,
                    ts,
                    from,
                    text,
                    cid: None,
                    held: None,
                }
            }),
            Command::Me("") => tell(
                self,
                "say what you do: /me waves (shows as \"* alice waves\" when you are alice)",
            ),
            Command::Me(action) => self.relay(peer, action, cid, now, out, |id, ts, from, text| {
                ServerMsg::Me {
                    id,
                    ts,
                    from,
                    text,
                    cid: None,
                    held: None,
                }
            }),
            Command::Msg { to, text } if to.is_empty() || text.trim().is_empty() => {
                tell(self, "send a private message with: /msg NAME TEXT")
            }
            Command::Msg { to, text } => self.private(peer, to, text, cid, now, out),
            Command::Nick(asked) => self.nick(peer, asked, cid, now, out),
            Command::Who => {
                let names: Vec<String> = self
                    .names()
                    .iter()
                    .map(|n| {
                        let away = self
                            .by_name
                            .get(&names::fold(n))
                            .and_then(|id| self.peers.get(id))
                            .is_some_and(|p| p.away.is_some());
                        if away {
                            format!("{n} (away)")
                        } else {
                            n.clone()
                        }
                    })
                    .collect();
                tell(
                    self,
                    &format!("in the room ({}): {}", names.len(), names.join(", ")),
                )
            }
            Command::Help => tell(self, &format!("commands:\n{}", protocol::COMMAND_HELP)),
            Command::Topic("") => {
                let text = match &self.topic {
                    Some(topic) => format!("the topic is: {topic}"),
                    None => "there is no topic: /topic TEXT sets one".to_owned(),
                };
                tell(self, &text)
            }
            Command::Topic(text) => self.set_topic(peer, text, cid, now, out),
            Command::Away(message) => {
                let message = sanitize::line(message);
                let text = if message.is_empty() {
                    "you are back (no longer marked away)".to_owned()
                } else {
                    format!(
                        "you are marked away: \"{message}\" is told to whoever writes to you (/away alone: back)"
                    )
                };
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.away = (!message.is_empty()).then_some(message);
                }
                tell(self, &text)
            }
            Command::Whois("") => tell(self, "whois whom? /whois NAME"),
            Command::Whois(name) => {
                let text = self.whois(name, now);
                tell(self, &text)
            }
            Command::Unknown(word) => tell(
                self,
                &format!(
                    "there is no command /{word}: /help lists them (start a line with // to send it as it is)"
                ),
            ),
            Command::Quit => {}
        }
    }

    /// Relay a message (made by `make` from its id, time, sender and text) to everyone:
    /// the sender's own copy comes back with its `cid`.
    fn relay(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
        make: impl Fn(u64, i64, String, String) -> ServerMsg,
    ) {
        let text = collapse_blank_lines(&sanitize::text(text.trim_end()));
        if text.trim().is_empty() {
            return;
        }
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let (from, dialect) = (p.name.clone(), p.dialect);
        let origin = p.session.clone().zip(cid.as_deref().map(Box::from));
        let relayed = make(0, self.ts(now), from, text);
        // A structured sender gets its own line back, with the room's id and time and its
        // own `cid`: that is how it knows the line was delivered. The `cid` is the
        // sender's business only. A plain sender already sees what it typed.
        let reach = match dialect {
            Dialect::Structured => Reach::Echo { cid },
            Dialect::Plain => Reach::Others,
        };
        let entry = Entry {
            peer: Some(peer),
            reach,
            origin,
            ..Entry::to_room(relayed)
        };
        self.propose(entry, now, out);
    }

    /// `/msg NAME TEXT`: to that one person, and back to the sender, proposed like
    /// every event so that it has the room's number (clients take an event numbered no
    /// higher than one they have seen for one they have); shown and kept only where
    /// the two it is between are seated (see [`Room::apply_private`]). In a clustered
    /// room its words do not go on the log: they go straight to the host that seats the
    /// one it is for, if another (see [`Sealed`]).
    fn private(
        &mut self,
        peer: PeerId,
        to: &str,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let key = names::fold(to);
        let here = self
            .by_name
            .get(&key)
            .and_then(|id| self.peers.get(id))
            .map(|p| (p.name.clone(), None));
        let far = || match self.log {
            Log::Local => None,
            Log::Shared { .. } => {
                let r = self.remote.get(&key)?;
                Some((r.name.clone(), Some(r.host.clone())))
            }
        };
        let Some((to, to_host)) = here.or_else(far) else {
            let to = sanitize::line(to);
            let text = format!("nobody called {to} is here (/who lists who is)");
            self.notice(peer, &text, cid, now, out);
            return;
        };
        let text = collapse_blank_lines(&sanitize::text(text.trim_end()));
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let from = p.name.clone();
        let origin = p.session.clone().zip(cid.as_deref().map(Box::from));
        let (text, sealed) = match self.log {
            Log::Local => (text, None),
            Log::Shared { .. } => (String::new(), Some(Sealed { to_host, text })),
        };
        let event = ServerMsg::Private {
            id: 0,
            ts: self.ts(now),
            from,
            to,
            text,
            cid: None,
        };
        let entry = Entry {
            origin,
            sealed,
            ..Entry::echoed(event, peer, cid)
        };
        self.propose(entry, now, out);
    }

    /// Another host sent the words of a private message (`key`: `HOST.N` of its entry)
    /// for `to`: kept until the log hands over the entry, if `to` is seated here.
    /// Whether they are (the other host tells its sender when not).
    pub fn private_words(&mut self, key: String, to: &str, text: String) -> bool {
        // (A host that does not say whom they are for: taken to be for someone here.)
        if !is_held_key(&key) || (!to.is_empty() && !self.by_name.contains_key(&names::fold(to))) {
            return false;
        }
        // Held to what this room would send, as everything from the other hosts is.
        let mut text = text;
        self.hold_text(&mut text);
        self.words.keep(key, text);
        true
    }

    /// A private message's words could not be sent to the host of the one it is for
    /// (`why`): its sender is told, and it does not go on the log.
    pub fn undelivered(&mut self, entry: Entry, why: &str, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        self.own_words.take(&entry.n);
        let (Some(peer), ServerMsg::Private { to, .. }) = (entry.peer, &entry.event) else {
            return out;
        };
        let cid = entry.reach.cid();
        let text = format!("not sent to {to}: {why}");
        self.notice(peer, &text, cid, now, &mut out);
        out
    }

    /// A private message back from a clustered room's log: to its sender, if seated
    /// here (with its `cid`), and to the one it is for, if seated here; kept for those
    /// two alone, and not at all on a host where neither is.
    fn apply_private(&mut self, id: u64, entry: Entry, own: bool, now: i64, out: &mut Vec<Action>) {
        let mut event = entry.event.clone().with_id(id);
        let ServerMsg::Private { from, to, text, .. } = &mut event else {
            return;
        };
        if text.is_empty() {
            // Its words are not on the log: this host has them if it is the sender's,
            // or was sent them as the host of the one it is for.
            let words = if own {
                self.own_words.take(&entry.n)
            } else {
                self.words.take(&entry.held_key())
            };
            match words {
                Some(words) => *text = words,
                None => {
                    // The one it is for came here after its words went to the host
                    // they were on: they are told, rather than never know.
                    if let Some(target) = self.by_name.get(&names::fold(to)).copied() {
                        let note = format!(
                            "{from} sent you a private message as you moved to this host, and it did not reach you: ask them to send it again"
                        );
                        self.notice(target, &note, None, now, out);
                    }
                    return;
                }
            }
        }
        let to = to.clone();
        let seat = entry.peer.filter(|p| own && self.peers.contains_key(p));
        let target = self.by_name.get(&names::fold(&to)).copied();
        let from_session = seat
            .and_then(|s| self.peers.get(&s))
            .and_then(|p| p.session.clone());
        let to_session = target
            .and_then(|t| self.peers.get(&t))
            .and_then(|p| p.session.clone());
        if seat.is_none() && target.is_none() {
            return;
        }
        let origin = entry.origin.clone();
        self.keep_line(
            id,
            event.clone(),
            origin,
            Some([from_session, to_session]),
            now,
        );
        if let Some(target) = target.filter(|t| Some(*t) != seat) {
            out.push(Action::Send(
                Target::One(target),
                Outgoing::Event(event.clone()),
            ));
        }
        if let Some(seat) = seat {
            let cid = entry.reach.cid();
            out.push(Action::Send(
                Target::One(seat),
                Outgoing::Event(event.with_cid(cid)),
            ));
            // The one it is for is seated here too, and away: the sender is told.
            if let Some(target) = target.filter(|t| *t != seat)
                && let Some(p) = self.peers.get(&target)
                && let Some(away) = &p.away
            {
                let note = format!("{} is away: {away}", p.name);
                self.notice(seat, &note, None, now, out);
            }
        }
    }

    /// What `/whois NAME` tells: how long they have been in, how they joined, whether
    /// away. Never where from, nor their session: that is theirs.
    fn whois(&self, name: &str, now: i64) -> String {
        let found = self
            .by_name
            .get(&names::fold(name))
            .and_then(|id| self.peers.get(id));
        let Some(p) = found else {
            let name = sanitize::line(name);
            return format!("nobody called {name} is here (/who lists who is)");
        };
        let minutes = now.saturating_sub(p.since).max(0) / 60_000;
        let for_how_long = match minutes {
            0 => "under a minute".to_owned(),
            1 => "1 minute".to_owned(),
            m if m < 120 => format!("{m} minutes"),
            m => format!("{} hours", m / 60),
        };
        let how = match p.dialect {
            Dialect::Structured => "with tchat",
            Dialect::Plain => "as plain text (nc, a script)",
        };
        let away = match &p.away {
            Some(a) => format!("; away: {a}"),
            None => String::new(),
        };
        format!("{}: in the room for {for_how_long}, {how}{away}", p.name)
    }

    /// `/nick NAME`: a name that is not usable, or clashes with a member's, is refused
    /// with the reason; nothing is ever quietly rewritten.
    fn nick(
        &mut self,
        peer: PeerId,
        asked: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let Some(old) = self.peers.get(&peer).map(|p| p.name.clone()) else {
            return;
        };
        let refuse = |room: &mut Room, text: String, out: &mut Vec<Action>| {
            room.notice(peer, &text, cid.clone(), now, out)
        };
        if asked.is_empty() {
            return refuse(
                self,
                format!("take another name with: /nick NAME (you are {old})"),
                out,
            );
        }
        let new = match names::check(asked) {
            Ok(new) => new,
            Err(why) => {
                let text = format!(
                    "\"{}\" is not a usable name: {why}; you are still {old}",
                    sanitize::line(asked)
                );
                return refuse(self, text, out);
            }
        };
        if new == old {
            return refuse(self, format!("you are already {old}"), out);
        }
        let holder = self.by_name.get(&names::fold(&new)).copied();
        if holder.is_none() && self.remote.contains_key(&names::fold(&new)) {
            return refuse(
                self,
                format!("the name {new} is taken; you are still {old}"),
                out,
            );
        }
        if let Some(holder) = holder.filter(|h| *h != peer) {
            let member = self
                .peers
                .get(&holder)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let text = if member.to_lowercase() == new.to_lowercase() {
                format!("the name {new} is taken; you are still {old}")
            } else {
                format!("the name {new} is too like {member}'s; you are still {old}")
            };
            return refuse(self, text, out);
        }
        self.rename_seat(peer, &old, &new);
        let event = ServerMsg::Nick {
            id: 0,
            ts: self.ts(now),
            old,
            new,
            cid: None,
        };
        self.propose(Entry::echoed(event, peer, cid), now, out);
    }

    /// `/topic TEXT`: the room's topic, shown to everyone and to whoever comes in. `-`
    /// alone clears it.
    fn set_topic(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let Some(by) = self.peers.get(&peer).map(|p| p.name.clone()) else {
            return;
        };
        let text = if text.trim() == "-" {
            String::new()
        } else {
            sanitize::line(text.trim())
        };
        let event = ServerMsg::Topic {
            id: 0,
            ts: self.ts(now),
            by,
            text,
            cid: None,
        };
        self.propose(Entry::echoed(event, peer, cid), now, out);
    }

    /// The room's messages for someone who just came in (not for a rejoin, which
    /// catches up instead): the last few from before it connected, and every one said
    /// since (`mark`), within the catch-up's bytes.
    fn recent(&self, peer: PeerId, dialect: Dialect, mark: u64, out: &mut Vec<Action>) {
        let limit = match dialect {
            Dialect::Structured => HISTORY_FOR_TCHAT,
            Dialect::Plain => HISTORY_FOR_PLAIN,
        };
        let mut before = 0;
        let mut budget = self.rules.max_catchup;
        let mut shown: Vec<&Kept> = Vec::new();
        for k in self.history.iter().rev() {
            if !matches!(k.event, ServerMsg::Msg { .. } | ServerMsg::Me { .. }) {
                continue;
            }
            if k.id < mark {
                if before == limit {
                    break;
                }
                before += 1;
            }
            if k.size > budget {
                break;
            }
            budget -= k.size;
            shown.push(k);
        }
        if shown.is_empty() {
            return;
        }
        shown.reverse();
        let to = Target::Backfill(peer);
        let count = shown.len() as u64;
        out.push(Action::Send(
            to,
            Outgoing::Event(ServerMsg::History { count }),
        ));
        for k in shown {
            out.push(Action::Send(to, Outgoing::Event(k.event.clone())));
        }
        if dialect == Dialect::Plain {
            let end = format!("{}end of history", protocol::NOTICE_PREFIX);
            out.push(Action::Send(to, Outgoing::Raw(end)));
        }
    }

    fn leave(&mut self, peer: PeerId, reason: Option<&str>, now: i64, out: &mut Vec<Action>) {
        out.extend(self.disconnect(peer, reason, now));
        out.push(Action::Close(peer));
    }

    fn too_long(&mut self, peer: PeerId, cid: Option<String>, now: i64, out: &mut Vec<Action>) {
        let text = format!(
            "your line was not sent: it is longer than {} bytes",
            self.rules.max_line
        );
        self.notice(peer, &text, cid, now, out);
    }

    fn notice(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Notice {
                ts: self.ts(now),
                // Parse errors may quote what the peer sent. A notice of several
                // lines (`/help`) keeps them: a plain peer gets one line each.
                text: sanitize::text(text),
                cid,
            }),
        ));
    }

    /// `base` if no member's name clashes with it, else `base2`, `base3`, … (within the
    /// length limit). A look-up per try, and the tries for a name many ask for start
    /// where the last one ended: joining costs O(1), not O(members).
    fn unique_name(&mut self, base: &str) -> String {
        let key = names::fold(base);
        if !self.name_taken(&key) {
            return base.to_owned();
        }
        let start = self.suffix_hint.get(&key).copied().unwrap_or(2);
        for i in start.. {
            let suffix = i.to_string();
            let keep = MAX_NAME_CHARS.saturating_sub(suffix.len());
            let stem: String = base.chars().take(keep).collect();
            let candidate = stem + &suffix;
            if !self.name_taken(&names::fold(&candidate)) {
                // A crowd of one name stops being remembered once it has gone.
                if self.suffix_hint.len() > 4096 {
                    self.suffix_hint.clear();
                }
                self.suffix_hint.insert(key, i + 1);
                return candidate;
            }
        }
        GUEST_NAME.to_owned()
    }
}

/// Runs of blank lines become one, and blank lines at either end go: a message of 8,000
/// newlines must not become 8,000 lines on every screen.
pub fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = false;
    for line in text.trim_matches('\n').split('\n') {
        let blank = line.trim().is_empty();
        if blank && blank_run {
            continue;
        }
        blank_run = blank;
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(if blank { "" } else { line });
    }
    out
}

/// About how many bytes an event takes on the wire (its texts plus the JSON around
/// them): enough to bound a catch-up, without encoding it.
fn size_of_event(event: &ServerMsg) -> usize {
    let texts = match event {
        ServerMsg::Msg { from, text, .. } | ServerMsg::Me { from, text, .. } => {
            from.len() + text.len()
        }
        ServerMsg::Private { from, to, text, .. } => from.len() + to.len() + text.len(),
        ServerMsg::Nick { old, new, .. } => old.len() + new.len(),
        ServerMsg::Join { name, .. } | ServerMsg::Leave { name, .. } => name.len(),
        ServerMsg::Crowd { joined, left, .. } => {
            joined.iter().chain(left).map(|n| n.len() + 3).sum()
        }
        _ => 0,
    };
    texts + 80
}

/// A kept event as a given session should see it again: its own lines carry their
/// `cid`, so that it can mark them delivered.
fn own_echo(kept: &Kept, session: Option<&Arc<str>>) -> ServerMsg {
    match (&kept.origin, session) {
        (Some((s, cid)), Some(me)) if s == me => kept.event.clone().with_cid(Some(cid.to_string())),
        _ => kept.event.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &str) -> Frame {
        Frame::Line(
            ClientMsg::Hello {
                v: 1,
                name: name.into(),
                client: None,
                session: None,
                since: None,
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn say(text: &str) -> Frame {
        Frame::Line(
            ClientMsg::Say {
                text: text.into(),
                cid: Some("c1".into()),
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn room() -> Room {
        Room::new(
            "e1".into(),
            Rules {
                max_line: 100,
                ..Rules::default()
            },
        )
    }

    fn joined(room: &mut Room, peer: PeerId, name: &str) -> Vec<Action> {
        let arrival = Arrival {
            mark: room.next_event(),
            ..arrive(hello(name))
        };
        room.seat(peer, arrival, 0)
    }

    /// A tchat client's arrival with `session`, connected just now.
    fn arrival(room: &Room, name: &str, session: &str) -> Arrival {
        Arrival {
            mark: room.next_event(),
            ..arrive(hello_again(name, session, None))
        }
    }

    /// A plain peer's arrival, connected just now.
    fn fresh(room: &Room) -> Arrival {
        Arrival {
            mark: room.next_event(),
            ..Arrival::default()
        }
    }

    /// How the handshake hands the room a connection whose first line was `frame`.
    fn arrive(frame: Frame) -> Arrival {
        match super::super::session::greeted(Some(frame)) {
            super::super::session::Greeted::Tchat(hello) => Arrival {
                hello: Some(hello),
                ..Arrival::default()
            },
            other => panic!("not a hello: {other:?}"),
        }
    }

    /// A plain peer whose first line was `frame`: seated, then the line.
    fn plain_first(room: &mut Room, peer: PeerId, frame: Frame, now: i64) -> Vec<Action> {
        let mut a = room.seat(peer, fresh(room), now);
        a.extend(room.receive(peer, frame, now));
        a
    }

    fn welcome_name(actions: &[Action]) -> (String, Option<String>) {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Send(_, Outgoing::Event(ServerMsg::Welcome { name, asked, .. })) => {
                    Some((name.clone(), asked.clone()))
                }
                _ => None,
            })
            .expect("a welcome")
    }

    #[test]
    fn hello_joins_under_the_asked_name_and_others_are_told() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = joined(&mut r, 2, "bob");
        assert_eq!(welcome_name(&a), ("bob".into(), None));
        assert!(a.contains(&Action::Send(
            Target::RoomExcept(2),
            Outgoing::Event(ServerMsg::Join {
                id: 2,
                ts: 0,
                name: "bob".into()
            })
        )));
        assert_eq!(r.names(), vec!["alice", "bob"]);
        assert_eq!(
            r.recipients(Target::RoomExcept(2)).collect::<Vec<_>>(),
            vec![(1, Dialect::Structured)]
        );
    }

    #[test]
    fn a_taken_name_gets_a_suffix_and_the_person_is_told() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = joined(&mut r, 2, "Alice");
        assert_eq!(welcome_name(&a), ("Alice2".into(), Some("Alice".into())));
        let a = joined(&mut r, 3, "alice");
        assert_eq!(welcome_name(&a).0, "alice3");
    }

    #[test]
    fn suffixed_names_stay_within_the_limit() {
        let mut r = room();
        let long = "x".repeat(MAX_NAME_CHARS);
        joined(&mut r, 1, &long);
        let a = joined(&mut r, 2, &long);
        let name = welcome_name(&a).0;
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(name.ends_with('2'));
    }

    #[test]
    fn a_look_alike_or_invisible_name_is_not_given_next_to_a_member() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        // Cyrillic а, a capital I for the l: the same name to a reader.
        for (peer, asked) in [(2, "\u{430}lice"), (3, "aIice"), (4, "ALICE")] {
            let (name, told) = welcome_name(&joined(&mut r, peer, asked));
            assert_ne!(name, asked, "{asked:?} was given as it was");
            assert!(name.ends_with(char::is_numeric), "{name:?}");
            assert_eq!(told.as_deref(), Some(asked));
        }
        // Invisible or format characters: not a usable name at all.
        for (peer, asked) in [
            (5, "al\u{200B}ice"),
            (6, "alice\u{FEFF}"),
            (7, "a\u{AD}lice"),
            (8, "\u{3164}"),
            (9, "\u{200B}"),
        ] {
            let (name, told) = welcome_name(&joined(&mut r, peer, asked));
            assert!(name.starts_with(GUEST_NAME), "{asked:?} became {name:?}");
            assert!(told.is_some());
        }
        assert_eq!(r.names().iter().filter(|n| n.starts_with("al")).count(), 1);
    }

    #[test]
    fn nick_refuses_a_bad_or_look_alike_name_with_the_reason_and_rewrites_nothing() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        let nick = |r: &mut Room, to: &str| notices(&r.receive(2, say(&format!("/nick {to}")), 0));
        let n = nick(&mut r, "has space");
        assert!(
            n[0].0.contains("not a usable name") && n[0].0.contains("space"),
            "{n:?}"
        );
        let n = nick(&mut r, "\u{430}lice");
        assert!(n[0].0.contains("too like alice"), "{n:?}");
        let n = nick(&mut r, "b\u{200B}ob2");
        assert!(n[0].0.contains("not a usable name"), "{n:?}");
        assert_eq!(r.names(), vec!["alice", "bob"]);
    }

    #[test]
    fn ten_thousand_joins_cost_a_look_up_each() {
        let mut r = Room::new("e1".into(), Rules::default());
        for peer in 0..10_000 {
            r.seat(peer, fresh(&r), 0);
        }
        assert_eq!(r.len(), 10_000);
        let names = r.names();
        assert!(names.contains(&"guest".to_owned()) && names.contains(&"guest10000".to_owned()));
        // Names freed in the middle are taken again without trying every suffix.
        r.disconnect(5, None, 0);
        let a = r.seat(10_000, fresh(&r), 0);
        assert_eq!(welcome_name(&a).0, "guest10001");
    }

    #[test]
    fn a_plain_peer_joins_as_guest_on_its_first_line_and_is_not_echoed() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = plain_first(&mut r, 2, Frame::Line("hi there".into()), 5);
        assert_eq!(welcome_name(&a).0, "guest");
        let msg = a
            .iter()
            .find(|x| matches!(x, Action::Send(_, Outgoing::Event(ServerMsg::Msg { .. }))))
            .unwrap();
        assert_eq!(
            msg,
            &Action::Send(
                Target::RoomExcept(2),
                Outgoing::Event(ServerMsg::Msg {
                    id: 3,
                    ts: 5,
                    from: "guest".into(),
                    text: "hi there".into(),
                    cid: None,
                    held: None,
                })
            )
        );
    }

    #[test]
    fn a_quiet_plain_peer_is_seated_as_guest() {
        let mut r = room();
        let a = r.seat(2, fresh(&r), 0);
        assert_eq!(welcome_name(&a).0, "guest");
        assert_eq!(r.len(), 1);
        assert_eq!(r.dialect(2), Some(Dialect::Plain));
    }

    #[test]
    fn structured_say_is_echoed_to_the_sender_alone_with_its_cid() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = r.receive(1, say("hello"), 9);
        let msg = |cid: Option<&str>| ServerMsg::Msg {
            id: 2,
            ts: 9,
            from: "alice".into(),
            text: "hello".into(),
            cid: cid.map(str::to_owned),
            held: None,
        };
        assert_eq!(
            a,
            vec![
                Action::Send(Target::One(1), Outgoing::Event(msg(Some("c1")))),
                Action::Send(Target::RoomExcept(1), Outgoing::Event(msg(None))),
            ]
        );
    }

    #[test]
    fn hostile_text_is_sanitised_before_relay() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = plain_first(
            &mut r,
            2,
            Frame::Line("\u{1b}]0;owned\u{7}x\u{202E}y".into()),
            0,
        );
        let text = a
            .iter()
            .find_map(|x| match x {
                Action::Send(_, Outgoing::Event(ServerMsg::Msg { text, .. })) => Some(text.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(text, "␛]0;owned␇xy");
    }

    #[test]
    fn blank_lines_are_not_relayed() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        assert!(r.receive(1, say("   "), 0).is_empty());
    }

    #[test]
    fn too_long_is_told_to_the_sender_only_and_the_connection_stays() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = r.receive(1, Frame::TooLong, 0);
        assert_eq!(a.len(), 1);
        assert!(
            matches!(&a[0], Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Notice { text, .. })) if text.contains("100 bytes"))
        );
        let a = r.receive(1, say(&"x".repeat(101)), 0);
        assert!(matches!(
            &a[0],
            Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Notice { .. }))
        ));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn exit_from_a_plain_peer_leaves_and_closes() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.seat(2, fresh(&r), 0);
        let a = r.receive(2, Frame::Line("exit\r".trim_end().into()), 0);
        assert_eq!(
            a,
            vec![
                Action::Send(
                    Target::Room,
                    Outgoing::Event(ServerMsg::Leave {
                        id: 3,
                        ts: 0,
                        name: "guest".into(),
                        reason: None
                    })
                ),
                Action::Close(2)
            ]
        );
        assert_eq!(r.names(), vec!["alice"]);
    }

    #[test]
    fn bye_leaves_and_a_dropped_connection_is_announced() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        let a = r.receive(2, Frame::Line(ClientMsg::Bye.encode().trim_end().into()), 0);
        assert!(a.contains(&Action::Close(2)));
        let a = r.disconnect(1, Some("connection lost"), 0);
        assert!(
            matches!(&a[0], Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { name, reason: Some(_), .. })) if name == "alice")
        );
        assert!(r.is_empty());
        assert!(
            r.disconnect(1, None, 0).is_empty(),
            "a second close says nothing"
        );
    }

    #[test]
    fn shutdown_tells_everyone_then_closes_all() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.seat(2, fresh(&r), 0);
        let a = r.shutdown("the host left", 0);
        assert_eq!(a.len(), 4);
        assert!(a.contains(&Action::Close(1)) && a.contains(&Action::Close(2)));
        assert!(matches!(
            &a[0],
            Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Closing { .. }))
        ));
        assert_eq!(
            r.recipients(Target::One(2)).count(),
            1,
            "goodbyes can still be addressed"
        );
    }

    #[test]
    fn event_ids_increase() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let ids: Vec<u64> = (0..3)
            .flat_map(|_| r.receive(1, say("x"), 0))
            .filter_map(|a| match a {
                Action::Send(Target::One(_), Outgoing::Event(ServerMsg::Msg { id, .. })) => {
                    Some(id)
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![2, 3, 4]);
    }

    fn hello_again(name: &str, session: &str, since: Option<(&str, u64)>) -> Frame {
        Frame::Line(
            ClientMsg::Hello {
                v: 1,
                name: name.into(),
                client: None,
                session: Some(session.into()),
                since: since.map(|(room, id)| protocol::Since {
                    room: room.into(),
                    id,
                }),
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn say_cid(text: &str, cid: &str) -> Frame {
        Frame::Line(
            ClientMsg::Say {
                text: text.into(),
                cid: Some(cid.into()),
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn relayed(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(
                    Target::RoomExcept(_),
                    Outgoing::Event(ServerMsg::Msg { text, .. }),
                ) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn notices(actions: &[Action]) -> Vec<(String, Option<String>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(_, Outgoing::Event(ServerMsg::Notice { text, cid, .. })) => {
                    Some((text.clone(), cid.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn limited(burst: u32, rate: u32) -> Room {
        Room::new(
            "e1".into(),
            Rules {
                burst,
                rate,
                ..Rules::default()
            },
        )
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_the_sender_is_told() {
        let mut r = limited(3, 2);
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        for i in 0..3 {
            assert_eq!(
                relayed(&r.receive(1, say_cid("x", &format!("c{i}")), 0)).len(),
                1
            );
        }
        let a = r.receive(1, say_cid("too many", "c3"), 0);
        assert!(relayed(&a).is_empty());
        let n = notices(&a);
        assert!(
            n[0].0.contains("flood limit") && n[0].0.contains("3 lines at once, then 2 a second")
        );
        assert_eq!(n[0].1.as_deref(), Some("c3"), "the refusal names the line");
        // Two lines a second: one more after half a second, not before.
        assert!(relayed(&r.receive(1, say_cid("x", "c4"), 499)).is_empty());
        assert_eq!(relayed(&r.receive(1, say_cid("x", "c5"), 500)).len(), 1);
        // Others are not slowed.
        assert_eq!(relayed(&r.receive(2, say_cid("bob", "b1"), 500)).len(), 1);
    }

    #[test]
    fn a_flooding_plain_peer_is_told_once_per_spell() {
        let mut r = limited(2, 1);
        r.seat(1, fresh(&r), 0);
        let mut told = 0;
        let mut sent = 0;
        for _ in 0..10 {
            let a = r.receive(1, Frame::Line("spam".into()), 0);
            told += notices(&a).len();
            sent += relayed(&a).len();
        }
        assert_eq!((sent, told), (2, 1));
        // After a pause the peer may talk again, and a new spell is told again.
        assert_eq!(
            relayed(&r.receive(1, Frame::Line("ok".into()), 1000)).len(),
            1
        );
        let a = r.receive(1, Frame::Line("spam".into()), 1000);
        assert_eq!(notices(&a).len(), 1);
    }

    #[test]
    fn no_flood_limit_when_turned_off() {
        let mut r = limited(0, 5);
        joined(&mut r, 1, "alice");
        let n: usize = (0..1000)
            .map(|i| relayed(&r.receive(1, say_cid("x", &i.to_string()), 0)).len())
            .sum();
        assert_eq!(n, 1000);
    }

    #[test]
    fn a_resend_is_answered_with_its_own_event_even_across_a_gap_in_the_history() {
        // A file read back without one event (a line this version could not read):
        // ids 1, 2, 4, 5, where 5 is private between two others.
        let msg = |id, from: &str, text: &str| ServerMsg::Msg {
            id,
            ts: 0,
            from: from.into(),
            text: text.into(),
            cid: None,
            held: None,
        };
        let mut private = Kept::new(
            5,
            ServerMsg::Private {
                id: 5,
                ts: 0,
                from: "xena".into(),
                to: "yuri".into(),
                text: "secret".into(),
                cid: None,
            },
        );
        private.audience = Some([Some("s-x".into()), Some("s-y".into())]);
        let mut mine = Kept::new(4, msg(4, "alice", "mine"));
        mine.origin = Some(("s-a".into(), "c1".into()));
        let saved = Saved {
            epoch: "e1".into(),
            next_event: 6,
            kept: vec![
                Kept::new(1, msg(1, "bob", "one")),
                Kept::new(2, msg(2, "bob", "two")),
                mine,
                private,
            ],
            relayed: vec![(("s-a".into(), "c1".into()), 4)],
            topic: None,
        };
        let mut r = Room::restore(saved, Rules::default());
        r.seat(1, arrive(hello_again("alice", "s-a", Some(("e1", 5)))), 0);
        let again = r.receive(1, say_cid("mine", "c1"), 0);
        assert_eq!(
            again,
            vec![Action::Send(
                Target::One(1),
                Outgoing::Event(ServerMsg::Msg {
                    id: 4,
                    ts: 0,
                    from: "alice".into(),
                    text: "mine".into(),
                    cid: Some("c1".into()),
                    held: None,
                })
            )]
        );
    }

    #[test]
    fn answers_to_lines_the_room_did_not_relay_are_held_to_the_flood_limit() {
        let mut r = room(); // the default limit: 20 at once, then 5 a second
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        r.receive(1, say_cid("mine", "c1"), 0);
        // Resending a known line a thousand times: each would echo the whole line.
        let echoes: usize = (0..1000)
            .map(|_| r.receive(1, say_cid("mine", "c1"), 10).len())
            .sum();
        assert!(echoes <= 20, "{echoes} echoes of one resend");
        // Nor can lines the host cannot read, hellos or over-long lines draw a notice each.
        let mut r = room();
        r.seat(2, arrive(hello_again("bob", "s-b", None)), 0);
        let junk = [
            Frame::Line("{not json".into()),
            hello_again("bob", "s-b", None),
            Frame::TooLong,
        ];
        let answers: usize = (0..1000)
            .map(|i| r.receive(2, junk[i % 3].clone(), 10).len())
            .sum();
        assert!(answers <= 20, "{answers} answers to 1,000 unreadable lines");
        // The budget refills as the flood limit does.
        let later = r.receive(2, Frame::Line("{not json".into()), 10_000);
        assert_eq!(later.len(), 1);
    }

    #[test]
    fn a_ping_flood_gets_one_pong_a_second() {
        let mut r = room();
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        let ping = Frame::Line(ClientMsg::Ping.encode().trim_end().to_owned());
        let pongs = |actions: &[Action]| {
            actions
                .iter()
                .filter(|a| matches!(a, Action::Send(_, Outgoing::Event(ServerMsg::Pong))))
                .count()
        };
        let burst: usize = (0..1000)
            .map(|_| pongs(&r.receive(1, ping.clone(), 10)))
            .sum();
        assert_eq!(burst, 1, "a thousand pings at once: one answer");
        assert_eq!(pongs(&r.receive(1, ping.clone(), 1_009)), 0);
        assert_eq!(
            pongs(&r.receive(1, ping.clone(), 1_010)),
            1,
            "a second later, again"
        );
    }

    #[test]
    fn a_silent_tchat_peer_is_pinged_then_dropped_but_a_plain_one_may_idle() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        r.seat(3, fresh(&r), 0);
        let a = r.quiet(1, 0);
        assert_eq!(
            a,
            vec![Action::Send(
                Target::One(1),
                Outgoing::Event(ServerMsg::Ping)
            )]
        );
        // An answer (anything) clears it.
        r.receive(
            1,
            Frame::Line(ClientMsg::Pong.encode().trim_end().into()),
            0,
        );
        assert_eq!(r.quiet(1, 0).len(), 1, "pinged again, not dropped");
        let a = r.quiet(1, 0);
        assert!(a.contains(&Action::Close(1)));
        assert!(
            matches!(&a[0], Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { reason: Some(r), .. })) if r.contains("timed out"))
        );
        assert!(r.quiet(3, 0).is_empty() && r.quiet(3, 0).is_empty());
        assert_eq!(r.names(), vec!["bob", "guest"]);
    }

    #[test]
    fn a_cut_peer_is_told_why_after_the_room_lets_go() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.seat(2, fresh(&r), 0);
        let a = r.cut(2, "too much", "flooding", 0);
        assert_eq!(a.len(), 3);
        assert!(matches!(
            &a[0],
            Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { .. }))
        ));
        assert!(
            matches!(&a[1], Action::Send(Target::Last(2, Dialect::Plain), Outgoing::Event(ServerMsg::Notice { text, .. })) if text == "too much")
        );
        assert_eq!(a[2], Action::Close(2));
        assert_eq!(r.recipients(Target::Last(2, Dialect::Plain)).count(), 1);
    }

    /// Events a peer is sent, by id, in order.
    fn ids_to(actions: &[Action], peer: PeerId) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(
                    Target::One(p) | Target::Backfill(p),
                    Outgoing::Event(
                        ServerMsg::Msg { id, .. }
                        | ServerMsg::Join { id, .. }
                        | ServerMsg::Leave { id, .. },
                    ),
                ) if *p == peer => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rejoin_catches_up_on_exactly_what_was_missed() {
        let mut r = room();
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0); // join: id 1
        joined(&mut r, 2, "bob"); // id 2
        r.receive(1, say_cid("seen", "a1"), 0); // id 3
        r.disconnect(1, Some("connection lost"), 0); // id 4
        r.receive(2, say_cid("missed one", "b1"), 0); // id 5
        r.receive(2, say_cid("missed two", "b2"), 0); // id 6
        let a = r.seat(3, arrive(hello_again("alice", "s-a", Some(("e1", 3)))), 0);
        assert_eq!(welcome_name(&a).0, "alice");
        // Its own leaving (4) is not news to it.
        assert!(a.contains(&Action::Send(
            Target::Backfill(3),
            Outgoing::Event(ServerMsg::Catchup { count: 2, lost: 0 })
        )));
        assert_eq!(ids_to(&a, 3), vec![5, 6]);
        // From another run of the room: no catch-up (the client sees the new epoch), but
        // what this run said, as a newcomer gets it.
        let a = r.seat(4, arrive(hello_again("carol", "s-c", Some(("old", 3)))), 0);
        assert!(!a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::Catchup { .. }))
        )));
        assert!(a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::History { .. }))
        )));
        assert!(ids_to(&a, 4).contains(&6), "{a:?}");
    }

    #[test]
    fn a_gap_larger_than_the_history_is_counted() {
        let mut r = Room::new(
            "e1".into(),
            Rules {
                history: 5,
                burst: 0,
                ..Rules::default()
            },
        );
        joined(&mut r, 1, "bob"); // id 1
        for i in 0..10 {
            r.receive(1, say_cid("x", &i.to_string()), 0); // ids 2..=11
        }
        assert_eq!(r.history_len(), 5);
        let a = r.seat(2, arrive(hello_again("alice", "s", Some(("e1", 2)))), 0);
        assert!(a.contains(&Action::Send(
            Target::Backfill(2),
            Outgoing::Event(ServerMsg::Catchup { count: 5, lost: 4 })
        )));
        assert_eq!(ids_to(&a, 2), vec![7, 8, 9, 10, 11]);
    }

    #[test]
    fn a_resent_line_is_relayed_once_and_its_echo_repeated() {
        let mut r = room();
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        joined(&mut r, 2, "bob");
        let first = r.receive(1, say_cid("only once", "a1"), 0);
        assert_eq!(relayed(&first), vec!["only once"]);
        // The connection broke before the echo arrived; the client rejoins and resends.
        r.disconnect(1, None, 0);
        let a = r.seat(3, arrive(hello_again("alice", "s-a", Some(("e1", 2)))), 0);
        // The catch-up carries the line with its cid, so the client marks it delivered…
        assert!(a.iter().any(|x| matches!(x, Action::Send(Target::Backfill(3), Outgoing::Event(ServerMsg::Msg { cid: Some(c), .. })) if c == "a1")));
        // …and the resend is not relayed again.
        let again = r.receive(3, say_cid("only once", "a1"), 0);
        assert!(relayed(&again).is_empty());
        assert!(
            matches!(&again[..], [Action::Send(Target::One(3), Outgoing::Event(ServerMsg::Msg { cid: Some(c), id: 3, .. }))] if c == "a1")
        );
        // The same cid from another session is another line.
        r.seat(4, arrive(hello_again("carol", "s-c", None)), 0);
        assert_eq!(
            relayed(&r.receive(4, say_cid("mine", "a1"), 0)),
            vec!["mine"]
        );
    }

    #[test]
    fn a_resend_is_recognised_after_the_history_let_go_of_it() {
        let mut r = Room::new(
            "e1".into(),
            Rules {
                history: 5,
                burst: 0,
                rate: 0,
                ..Rules::default()
            },
        );
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        joined(&mut r, 2, "bob");
        let first = r.receive(1, say_cid("only once", "a1"), 0);
        let id = ids_to(&first, 1)[0];
        r.disconnect(1, None, 0);
        for i in 0..20 {
            r.receive(2, say_cid("busy", &format!("b{i}")), 0);
        }
        let back = r.seat(
            3,
            arrive(hello_again("alice", "s-a", Some(("e1", id - 1)))),
            0,
        );
        assert!(back.iter().any(|a| matches!(a, Action::Send(_, Outgoing::Event(ServerMsg::Catchup { lost, .. })) if *lost > 0)));
        // The resend: not relayed again, and acknowledged so the client stops waiting.
        let again = r.receive(3, say_cid("only once", "a1"), 0);
        assert!(relayed(&again).is_empty(), "{again:?}");
        assert_eq!(
            again,
            vec![Action::Send(
                Target::One(3),
                Outgoing::Event(ServerMsg::Ack {
                    cid: "a1".into(),
                    id
                })
            )]
        );
    }

    #[test]
    fn the_memory_of_relayed_lines_is_bounded_by_count_and_age() {
        let mut r = Room::new(
            "e1".into(),
            Rules {
                burst: 0,
                rate: 0,
                resend_memory: 3,
                resend_memory_ms: 60_000,
                ..Rules::default()
            },
        );
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        for i in 0..5 {
            r.receive(1, say_cid("x", &format!("a{i}")), 0);
        }
        assert_eq!(r.resends_remembered(), 3);
        // The oldest went first: a0 is a new line again, a4 is not.
        assert_eq!(relayed(&r.receive(1, say_cid("x", "a0"), 1)).len(), 1);
        assert!(relayed(&r.receive(1, say_cid("x", "a4"), 1)).is_empty());
        // Past the age, all are forgotten (looked at when the room next seats someone).
        joined(&mut r, 2, "bob");
        r.seat(3, fresh(&r), 60_002);
        assert_eq!(r.resends_remembered(), 0);
    }

    #[test]
    fn a_rejoiner_is_not_shown_its_own_leaving() {
        let mut r = room();
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        joined(&mut r, 2, "bob");
        let gone = r.disconnect(1, Some("connection lost"), 0);
        assert!(gone.iter().any(|a| matches!(
            a,
            Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { .. }))
        )));
        r.receive(2, say_cid("while you were away", "b1"), 0);
        let since = r.next_event() - 3;
        let back = r.seat(
            3,
            arrive(hello_again("alice", "s-a", Some(("e1", since)))),
            0,
        );
        let replayed: Vec<&ServerMsg> = back
            .iter()
            .filter_map(|a| match a {
                Action::Send(Target::Backfill(3), Outgoing::Event(m)) => Some(m),
                _ => None,
            })
            .collect();
        assert!(
            !replayed
                .iter()
                .any(|m| matches!(m, ServerMsg::Leave { name, .. } if name == "alice")),
            "{replayed:?}"
        );
        assert!(
            replayed
                .iter()
                .any(|m| matches!(m, ServerMsg::Msg { text, .. } if text == "while you were away"))
        );
        // Someone else who missed it is still told alice left.
        let bob_back = r.seat(4, arrive(hello_again("bob", "s-b", Some(("e1", since)))), 0);
        assert!(bob_back.iter().any(|a| matches!(a, Action::Send(Target::Backfill(4), Outgoing::Event(ServerMsg::Leave { name, .. })) if name == "alice")));
    }

    #[test]
    fn the_topic_is_told_to_all_given_to_newcomers_and_can_be_cleared() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        let set = r.receive(1, say_cid("/topic  release on Friday ", "t1"), 0);
        assert!(set.iter().any(|a| matches!(a, Action::Send(Target::RoomExcept(1), Outgoing::Event(ServerMsg::Topic { by, text, cid: None, .. })) if by == "alice" && text == "release on Friday")));
        assert!(set.iter().any(|a| matches!(a, Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Topic { cid: Some(c), .. })) if c == "t1")));
        assert_eq!(r.topic(), Some("release on Friday"));
        // Someone new is welcomed with it.
        let carol = joined(&mut r, 3, "carol");
        assert!(carol.iter().any(|a| matches!(a, Action::Send(Target::One(3), Outgoing::Event(ServerMsg::Welcome { topic: Some(t), .. })) if t == "release on Friday")));
        // Asked, it is told; `-` clears it.
        let asked = notices(&r.receive(2, say_cid("/topic", "b1"), 0));
        assert_eq!(asked[0].0, "the topic is: release on Friday");
        r.receive(2, say_cid("/topic -", "b2"), 0);
        assert_eq!(r.topic(), None);
        let asked = notices(&r.receive(2, say_cid("/topic", "b3"), 0));
        assert!(asked[0].0.starts_with("there is no topic"), "{asked:?}");
        // A topic cannot carry a line break or an escape onto everyone's status line.
        r.receive(1, say_cid("/topic a\u{1b}[2Jb", "t2"), 0);
        assert!(!r.topic().unwrap().contains('\u{1b}'));
    }

    #[test]
    fn away_answers_private_messages_and_whois_says_what_the_room_knows() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        let said = notices(&r.receive(2, say_cid("/away lunch, back at 2", "b1"), 0));
        assert!(said[0].0.starts_with("you are marked away"), "{said:?}");
        // A private message still arrives, and its sender is told bob is away.
        let sent = r.receive(1, say_cid("/msg bob are you there?", "a1"), 1_000);
        assert!(sent.iter().any(|a| matches!(
            a,
            Action::Send(Target::One(2), Outgoing::Event(ServerMsg::Private { .. }))
        )));
        let told = notices(&sent);
        assert!(
            told.iter()
                .any(|(t, _)| t == "bob is away: lunch, back at 2"),
            "{told:?}"
        );
        // /who marks him; /whois says how long and how, never where from.
        let who = notices(&r.receive(1, say_cid("/who", "a2"), 1_000));
        assert!(who[0].0.contains("bob (away)"), "{who:?}");
        let whois = notices(&r.receive(1, say_cid("/whois BOB", "a3"), 3 * 60_000));
        assert_eq!(
            whois[0].0,
            "bob: in the room for 3 minutes, with tchat; away: lunch, back at 2"
        );
        let nobody = notices(&r.receive(1, say_cid("/whois zed", "a4"), 0));
        assert!(nobody[0].0.starts_with("nobody called zed"), "{nobody:?}");
        // Back: no more answer.
        r.receive(2, say_cid("/away", "b2"), 0);
        let sent = r.receive(1, say_cid("/msg bob hi", "a5"), 0);
        assert!(!notices(&sent).iter().any(|(t, _)| t.contains("away")));
    }

    #[test]
    fn a_rejoin_over_a_stale_connection_takes_the_seat_quietly() {
        let mut r = room();
        r.seat(1, arrive(hello_again("alice", "s-a", None)), 0);
        joined(&mut r, 2, "bob");
        // The old connection is half-open: the host has not noticed it is gone.
        let a = r.seat(3, arrive(hello_again("alice", "s-a", Some(("e1", 2)))), 0);
        assert!(a.contains(&Action::Close(1)));
        assert_eq!(
            welcome_name(&a),
            ("alice".into(), None),
            "the same name, not alice2"
        );
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::Send(Target::Room | Target::RoomExcept(_), _))),
            "nobody is told of a leave and a join: {a:?}"
        );
        assert_eq!(r.names(), vec!["alice", "bob"]);
        assert!(
            r.disconnect(1, None, 0).is_empty(),
            "the old connection's close says nothing"
        );
        // The seat moved: taken over again, it is the newest connection that closes.
        let a = r.seat(4, arrive(hello_again("alice", "s-a", Some(("e1", 2)))), 0);
        assert!(a.contains(&Action::Close(3)) && !a.contains(&Action::Close(1)));
        // Gone for good, the session takes over nothing: it joins like anyone.
        r.disconnect(4, None, 0);
        let a = r.seat(5, arrive(hello_again("alice", "s-a", None)), 0);
        assert!(!a.iter().any(|x| matches!(x, Action::Close(_))), "{a:?}");
        assert_eq!(r.names(), vec!["alice", "bob"]);
    }

    fn plain_joined(r: &mut Room, peer: PeerId) {
        r.seat(peer, fresh(r), 0);
    }

    fn plain_line(r: &mut Room, peer: PeerId, line: &str) -> Vec<Action> {
        r.receive(peer, Frame::Line(line.into()), 0)
    }

    /// Everything sent to `peer` as a plain peer would read it.
    fn plain_text(r: &Room, actions: &[Action], peer: PeerId) -> String {
        let mut out = String::new();
        for a in actions {
            if let Action::Send(t, o) = a {
                let to_peer = match t {
                    Target::One(p) | Target::Backfill(p) | Target::Last(p, _) => *p == peer,
                    Target::Room => true,
                    Target::RoomExcept(p) => *p != peer,
                    Target::Held { .. } | Target::Settled { .. } => {
                        r.recipients(*t).any(|(p, _)| p == peer)
                    }
                };
                if !to_peer {
                    continue;
                }
                match o {
                    Outgoing::Raw(l) => out.push_str(&format!("{l}\n")),
                    Outgoing::Event(m) => out.push_str(&m.to_plain()),
                }
            }
        }
        out
    }

    #[test]
    fn nick_renames_and_everyone_is_told_but_a_taken_name_is_refused() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        plain_joined(&mut r, 2);
        let a = plain_line(&mut r, 2, "/nick bob");
        assert!(plain_text(&r, &a, 1).contains("* guest is now known as bob"));
        assert!(plain_text(&r, &a, 2).contains("* guest is now known as bob"));
        assert_eq!(r.names(), vec!["alice", "bob"]);
        let a = r.receive(1, say_cid("/nick BOB", "n1"), 0);
        assert_eq!(
            notices(&a),
            vec![(
                "the name BOB is taken; you are still alice".into(),
                Some("n1".into())
            )]
        );
        let a = plain_line(&mut r, 2, "/nick \u{7}\u{7}");
        assert!(notices(&a)[0].0.contains("is not a usable name"), "{a:?}");
        assert!(notices(&a)[0].0.contains("you are still bob"), "{a:?}");
        let a = plain_line(&mut r, 2, "/nick");
        assert!(notices(&a)[0].0.contains("/nick NAME"));
        // The renamed person's own copy carries its cid.
        let a = r.receive(1, say_cid("/nick alicia", "n2"), 0);
        assert!(a.iter().any(|x| matches!(x, Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Nick { cid: Some(c), new, .. })) if c == "n2" && new == "alicia")));
    }

    #[test]
    fn who_me_help_and_unknown_commands_from_any_peer() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        plain_joined(&mut r, 2);
        let a = plain_line(&mut r, 2, "/who");
        assert_eq!(plain_text(&r, &a, 2), "*** in the room (2): alice, guest\n");
        assert!(plain_text(&r, &a, 1).is_empty(), "only the asker is told");
        let a = plain_line(&mut r, 2, "/me waves");
        assert_eq!(plain_text(&r, &a, 1), "* guest waves\n");
        let a = r.receive(1, say_cid("/me waves back", "m1"), 0);
        assert!(a.contains(&Action::Send(
            Target::One(1),
            Outgoing::Event(ServerMsg::Me {
                id: 4,
                ts: 0,
                from: "alice".into(),
                text: "waves back".into(),
                cid: Some("m1".into()),
                held: None,
            })
        )));
        let a = plain_line(&mut r, 2, "/help");
        let help = plain_text(&r, &a, 2);
        assert!(
            help.contains("/nick NAME") && help.contains("/msg NAME TEXT"),
            "{help}"
        );
        assert!(help.lines().all(|l| l.starts_with("*** ")), "{help}");
        assert!(help.lines().count() > 5, "one line a command: {help}");
        let a = plain_line(&mut r, 2, "/frob");
        assert!(relayed(&a).is_empty());
        assert!(plain_text(&r, &a, 2).contains("there is no command /frob"));
        assert!(plain_text(&r, &a, 1).is_empty(), "never relayed");
        let a = plain_line(&mut r, 2, "//frob is a path");
        assert_eq!(relayed(&a), vec!["/frob is a path"]);
        let a = plain_line(&mut r, 2, "/quit");
        assert!(a.contains(&Action::Close(2)));
        assert_eq!(r.names(), vec!["alice"]);
    }

    #[test]
    fn a_private_message_reaches_only_the_two() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        plain_joined(&mut r, 3);
        let a = r.receive(1, say_cid("/msg BOB psst", "p1"), 0);
        let to: Vec<PeerId> = a
            .iter()
            .filter_map(|x| match x {
                Action::Send(Target::One(p), Outgoing::Event(ServerMsg::Private { .. })) => {
                    Some(*p)
                }
                Action::Send(t, _) => panic!("sent to {t:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(to, vec![2, 1]);
        assert!(plain_text(&r, &a, 3).is_empty());
        let a = plain_line(&mut r, 3, "/msg alice hi from nc");
        assert!(plain_text(&r, &a, 1).contains("[private] guest → alice: hi from nc"));
        assert!(
            plain_text(&r, &a, 3).contains("[private] guest → alice: hi from nc"),
            "a receipt"
        );
        assert!(plain_text(&r, &a, 2).is_empty());
        let a = plain_line(&mut r, 3, "/msg carol hello");
        assert!(plain_text(&r, &a, 3).contains("nobody called carol is here"));
        let a = plain_line(&mut r, 3, "/msg alice");
        assert!(plain_text(&r, &a, 3).contains("/msg NAME TEXT"));
        // A third person catching up never sees it.
        let a = r.seat(4, arrive(hello_again("dave", "s-d", Some(("e1", 0)))), 0);
        assert!(!a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::Private { .. }))
        )));
    }

    #[test]
    fn someone_who_joins_late_sees_recent_messages_marked_as_history() {
        let mut r = limited(0, 0);
        joined(&mut r, 1, "alice");
        for i in 0..150 {
            r.receive(1, say_cid(&format!("m{i}"), &format!("c{i}")), 0);
        }
        r.receive(1, say_cid("/me is done", "me"), 0);
        // A tchat peer: the last 100, in order, after its welcome.
        let a = joined(&mut r, 2, "bob");
        let i = a
            .iter()
            .position(|x| {
                matches!(
                    x,
                    Action::Send(_, Outgoing::Event(ServerMsg::History { count: 100 }))
                )
            })
            .expect("a history marker");
        assert!(matches!(
            a[0],
            Action::Send(_, Outgoing::Event(ServerMsg::Welcome { .. }))
        ));
        let texts: Vec<String> = a[i + 1..]
            .iter()
            .filter_map(|x| match x {
                Action::Send(
                    Target::Backfill(2),
                    Outgoing::Event(ServerMsg::Msg { text, .. } | ServerMsg::Me { text, .. }),
                ) => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 100);
        assert_eq!(texts[0], "m51");
        assert_eq!(texts[99], "is done");
        // A plain peer: the last 20, between two marker lines.
        let a = r.seat(3, fresh(&r), 0);
        let shown = plain_text(&r, &a, 3);
        assert!(
            shown.contains("*** the last 20 messages before you came:\nalice: m131\n"),
            "{shown}"
        );
        assert!(
            shown.ends_with("* alice is done\n*** end of history\n"),
            "{shown}"
        );
        // A rejoin catches up instead.
        let a = r.seat(4, arrive(hello_again("carol", "s-c", Some(("e1", 150)))), 0);
        assert!(!a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::History { .. }))
        )));
        // An empty room has no history to show.
        let mut empty = room();
        let a = joined(&mut empty, 1, "alice");
        assert_eq!(a.len(), 2, "{a:?}");
    }

    // ---- Attacks: each of these worked against the room before it had seats,
    // addresses and bounds (see docs/PROTOCOL.md, "Bad input and limits").

    fn seat_session(r: &mut Room, peer: PeerId, name: &str, session: &str) -> Vec<Action> {
        r.seat(peer, arrival(r, name, session), 0)
    }

    fn privates(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send(_, Outgoing::Event(ServerMsg::Private { .. }))
                )
            })
            .count()
    }

    #[test]
    fn attack_a_hello_asking_for_a_name_never_replays_that_names_private_messages() {
        let mut r = room();
        seat_session(&mut r, 1, "alice", "s-alice");
        seat_session(&mut r, 2, "bob", "s-bob");
        r.receive(1, say_cid("/msg bob the code is 1234", "p1"), 0);
        // Mallory asks to be bob, from the start of this room's history.
        let a = r.seat(
            3,
            arrive(hello_again("bob", "s-mallory", Some(("e1", 0)))),
            0,
        );
        assert_eq!(welcome_name(&a).0, "bob2");
        assert_eq!(privates(&a), 0, "{a:?}");
        // Even with bob gone and his name free, the seat is not bob's.
        r.disconnect(2, None, 0);
        let a = r.seat(
            4,
            arrive(hello_again("bob", "s-mallory2", Some(("e1", 0)))),
            0,
        );
        assert_eq!(welcome_name(&a).0, "bob");
        assert_eq!(privates(&a), 0, "{a:?}");
        // Bob's own session, coming back, gets it.
        r.disconnect(4, None, 0);
        let a = r.seat(5, arrive(hello_again("bob", "s-bob", Some(("e1", 0)))), 0);
        assert_eq!(privates(&a), 1, "{a:?}");
    }

    #[test]
    fn attack_reconnecting_does_not_refill_the_flood_limit_of_an_address() {
        let mut r = Room::new("e1".into(), Rules::default());
        seat_session(&mut r, 1000, "watcher", "s-w");
        let ip: IpAddr = [10, 0, 0, 9].into();
        let mut relayed_lines = 0;
        for cycle in 0..100u64 {
            let arrival = Arrival {
                addr: Some(ip),
                mark: r.next_event(),
                ..Arrival::default()
            };
            r.seat(cycle, arrival, 0);
            for i in 0..20 {
                let a = r.receive(cycle, Frame::Line(format!("spam {cycle} {i}")), 0);
                relayed_lines += relayed(&a).len();
            }
            r.disconnect(cycle, None, 0);
        }
        assert_eq!(relayed_lines, Rules::default().addr_burst as usize);
        // Another address is not affected.
        let other = Arrival {
            addr: Some([10, 0, 0, 10].into()),
            mark: r.next_event(),
            ..Arrival::default()
        };
        r.seat(500, other, 0);
        assert_eq!(
            relayed(&r.receive(500, Frame::Line("hi".into()), 0)).len(),
            1
        );
        // The address is forgotten once its share would be whole again, not before.
        r.disconnect(500, None, 0);
        assert_eq!(r.addresses_kept(), 2);
        r.tick(60_000);
        assert_eq!(r.addresses_kept(), 0);
    }

    #[test]
    fn attack_a_crowd_joining_and_leaving_is_told_as_one_line_not_one_each() {
        let mut r = Room::new("e1".into(), Rules::default());
        seat_session(&mut r, 1000, "watcher", "s-w");
        let mut told = Vec::new();
        for peer in 0..200 {
            let arrival = fresh(&r);
            told.extend(r.seat(peer, arrival, 0));
        }
        for peer in 0..150 {
            told.extend(r.disconnect(peer, None, 0));
        }
        let one_by_one = told
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send(
                        _,
                        Outgoing::Event(ServerMsg::Join { .. } | ServerMsg::Leave { .. })
                    )
                )
            })
            .count();
        assert!(
            one_by_one <= ANNOUNCE_BURST as usize,
            "{one_by_one} told one by one"
        );
        let due = r.next_tick().expect("a crowd to tell");
        assert!(r.tick(due - 1).is_empty());
        let a = r.tick(due);
        let Some(Action::Send(
            Target::Room,
            Outgoing::Event(ServerMsg::Crowd { joined, left, .. }),
        )) = a.first()
        else {
            panic!("{a:?}")
        };
        // Those who came and went within the crowd are in neither list.
        assert_eq!(
            joined.len() + left.len(),
            200 - 150 + (ANNOUNCE_BURST as usize - 1)
        );
        assert!(r.next_tick().is_none());
        let plain = a[0].clone();
        let Action::Send(_, Outgoing::Event(msg)) = plain else {
            unreachable!()
        };
        assert!(msg.to_plain().lines().count() <= 2, "{}", msg.to_plain());
    }

    #[test]
    fn attack_newlines_do_not_amplify() {
        let mut r = room();
        seat_session(&mut r, 1, "alice", "s-a");
        seat_session(&mut r, 2, "bob", "s-b");
        // 99 newlines (within max_line 100): collapsed to nothing.
        let a = r.receive(1, say_cid(&"\n".repeat(99), "n1"), 0);
        assert!(relayed(&a).is_empty());
        // Blank runs inside a message become one blank line.
        let a = r.receive(1, say_cid("a\n\n\n\n\nb\n\n", "n2"), 0);
        assert_eq!(relayed(&a), vec!["a\n\nb"]);
        // More lines than --max-lines: refused with the reason.
        let mut r = Room::new(
            "e1".into(),
            Rules {
                max_lines: 5,
                ..Rules::default()
            },
        );
        seat_session(&mut r, 1, "alice", "s-a");
        let a = r.receive(1, say_cid("1\n2\n3\n4\n5\n6", "n3"), 0);
        assert!(relayed(&a).is_empty());
        let n = notices(&a);
        assert!(
            n[0].0.contains("6 lines") && n[0].0.contains("most is 5"),
            "{n:?}"
        );
        assert_eq!(n[0].1.as_deref(), Some("n3"));
    }

    #[test]
    fn attack_a_long_cid_is_refused_and_never_kept() {
        let mut r = room();
        seat_session(&mut r, 1, "alice", "s-a");
        let long = "c".repeat(40_000);
        let a = r.receive(1, say_cid("hi", &long), 0);
        assert!(relayed(&a).is_empty());
        let n = notices(&a);
        assert!(n[0].0.contains("64 bytes") && n[0].1.is_none(), "{n:?}");
        assert_eq!(r.history_len(), 1, "only alice's join is kept");
        let ok = "c".repeat(64);
        assert_eq!(relayed(&r.receive(1, say_cid("hi", &ok), 0)).len(), 1);
    }

    #[test]
    fn attack_a_pretend_notice_reads_differently_from_a_real_one_on_a_plain_screen() {
        let mut r = room();
        seat_session(&mut r, 1, "bob", "s-b");
        let watcher = 2;
        let mut a = r.seat(watcher, fresh(&r), 0);
        a.extend(r.receive(1, say_cid("/me joined", "m1"), 0));
        a.extend(seat_session(&mut r, 3, "carol", "s-c"));
        let shown = plain_text(&r, &a, watcher);
        assert!(shown.contains("\n* bob joined\n"), "{shown}");
        assert!(shown.contains("\n*** carol joined\n"), "{shown}");
        // Nobody's own words can start with the room's prefix.
        for line in shown.lines().filter(|l| l.starts_with("*** ")) {
            assert!(!line.contains("bob joined"), "{line}");
        }
    }

    #[test]
    fn attack_a_plain_peer_gets_what_was_said_while_it_connected() {
        let mut r = limited(0, 0);
        seat_session(&mut r, 1, "alice", "s-a");
        for i in 0..30 {
            r.receive(1, say_cid(&format!("before {i}"), &format!("b{i}")), 0);
        }
        let mark = r.next_event();
        // Its handshake lasts; meanwhile 30 more lines.
        for i in 0..30 {
            r.receive(1, say_cid(&format!("during {i}"), &format!("d{i}")), 0);
        }
        let a = r.seat(
            2,
            Arrival {
                mark,
                ..Arrival::default()
            },
            0,
        );
        let shown = plain_text(&r, &a, 2);
        assert!(
            shown.contains("alice: during 0\n") && shown.contains("alice: during 29\n"),
            "{shown}"
        );
        // And the usual few from before it came.
        assert!(
            shown.contains("alice: before 29\n") && !shown.contains("alice: before 9\n"),
            "{shown}"
        );
    }

    #[test]
    fn attack_a_big_history_is_bounded_in_bytes_and_sent_as_backfill() {
        let mut r = Room::new(
            "e1".into(),
            Rules {
                max_catchup: 10_000,
                burst: 0,
                ..Rules::default()
            },
        );
        seat_session(&mut r, 1, "alice", "s-a");
        let big = "x".repeat(4000);
        for i in 0..50 {
            r.receive(1, say_cid(&big, &format!("c{i}")), 0);
        }
        let a = joined(&mut r, 2, "bob");
        let backfill: usize = a
            .iter()
            .filter_map(|x| match x {
                Action::Send(Target::Backfill(2), Outgoing::Event(m)) => Some(m.encode().len()),
                Action::Send(Target::One(2), Outgoing::Event(ServerMsg::Msg { .. })) => {
                    panic!("history counted against the backlog: {x:?}")
                }
                _ => None,
            })
            .sum();
        assert!(backfill > 4000 && backfill <= 10_000, "{backfill}");
        // A catch-up the same way: what does not fit is counted as lost.
        let a = r.seat(3, arrive(hello_again("carol", "s-c", Some(("e1", 1)))), 0);
        let Some(ServerMsg::Catchup { count, lost }) = a.iter().find_map(|x| match x {
            Action::Send(Target::Backfill(3), Outgoing::Event(m @ ServerMsg::Catchup { .. })) => {
                Some(m.clone())
            }
            _ => None,
        }) else {
            panic!("{a:?}")
        };
        assert_eq!(count + lost, 51, "50 messages and bob's join");
        assert!(count >= 2 && lost > 40, "{count} {lost}");
    }

    #[test]
    fn a_wall_clock_stepped_back_refuses_no_one_and_moves_only_the_times_shown() {
        let mut r = limited(2, 1);
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        assert_eq!(relayed(&r.receive(1, say_cid("a", "c1"), 0)).len(), 1);
        assert_eq!(relayed(&r.receive(1, say_cid("b", "c2"), 0)).len(), 1);
        // The wall clock steps back an hour (NTP, a VM resumed); the room's own clock,
        // which its limits run on, goes on.
        let hour = 3_600_000;
        r.set_wall_offset(-hour);
        let a = r.receive(1, say_cid("c", "c3"), 1_000);
        assert_eq!(relayed(&a), vec!["c"], "one line a second, a second later");
        let shown = a.iter().find_map(|x| match x {
            Action::Send(Target::RoomExcept(1), Outgoing::Event(m)) => m.ts(),
            _ => None,
        });
        assert_eq!(
            shown,
            Some(1_000 - hour),
            "people see the wall clock's time"
        );
        // And a crowd is told when the room's clock says, whatever the wall says.
        for peer in 10..30 {
            let arrival = fresh(&r);
            r.seat(peer, arrival, 1_000);
        }
        let due = r.next_tick().expect("a crowd");
        assert!(due > 1_000 && due <= 1_000 + CROWD_AFTER_MS, "{due}");
    }

    #[test]
    fn a_name_given_as_asked_once_normalised_is_not_called_taken() {
        let mut r = room();
        // Typed with a stray space, or with the accent as a separate character: the
        // name is the same one, and nobody has it.
        assert_eq!(
            welcome_name(&joined(&mut r, 1, " alice ")),
            ("alice".into(), None)
        );
        let a = joined(&mut r, 2, "jose\u{301}");
        assert_eq!(welcome_name(&a), ("jos\u{e9}".into(), None));
    }

    /// A clustered room whose log hands each entry straight back, numbered in turn:
    /// the actions, with each `Publish` replaced by what applying it does.
    fn through_log(room: &mut Room, actions: Vec<Action>, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        for action in actions {
            match action {
                Action::Publish(entry) => {
                    let id = room.next_event();
                    out.extend(room.apply(id, *entry, true, now));
                }
                other => out.push(other),
            }
        }
        out
    }

    fn clustered(host: &str) -> Room {
        Room::clustered(
            "e1".into(),
            Rules {
                max_line: 100,
                ..Rules::default()
            },
            Arc::from(host),
        )
    }

    /// One step of a room's life, for comparing a single host with a clustered one.
    #[derive(Debug, Clone)]
    enum Step {
        Join(PeerId, &'static str),
        Say(PeerId, String),
        Leave(PeerId),
        Wait(i64),
    }

    fn run_step(room: &mut Room, step: &Step, now: i64) -> Vec<Action> {
        match step {
            Step::Join(peer, name) => {
                let arrival = Arrival {
                    mark: room.next_event(),
                    ..arrive(hello(name))
                };
                room.seat(*peer, arrival, now)
            }
            Step::Say(peer, text) => room.receive(*peer, say_cid(text, "c"), now),
            Step::Leave(peer) => room.disconnect(*peer, None, now),
            Step::Wait(_) => room.tick(now),
        }
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let text = prop_oneof![
            Just("hello".to_owned()),
            Just("/me waves".to_owned()),
            Just("/nick ana".to_owned()),
            Just("/nick bo".to_owned()),
            Just("/topic plans".to_owned()),
            Just("/topic -".to_owned()),
            Just("/who".to_owned()),
            Just("/msg ana hi".to_owned()),
            Just("/msg nobody hi".to_owned()),
            Just("/away brb".to_owned()),
            Just("/away".to_owned()),
            "[a-z ]{0,12}",
        ];
        prop_oneof![
            (0u64..4, prop_oneof![Just("ana"), Just("bo"), Just("cy")])
                .prop_map(|(p, n)| Step::Join(p, n)),
            (0u64..4, text).prop_map(|(p, t)| Step::Say(p, t)),
            (0u64..4).prop_map(Step::Leave),
            (0i64..3_000).prop_map(Step::Wait),
        ]
    }

    proptest::proptest! {
        /// The room split into proposing and applying: a clustered room whose log hands
        /// everything straight back behaves exactly as a single host's room.
        #[test]
        fn a_clustered_room_with_an_immediate_log_is_a_single_hosts_room(
            steps in proptest::collection::vec(step(), 0..60)
        ) {
            let mut single = room();
            let mut shared = clustered("h1");
            let mut now = 0;
            for step in &steps {
                if let Step::Wait(ms) = step {
                    now += ms;
                }
                let one = run_step(&mut single, step, now);
                let proposed = run_step(&mut shared, step, now);
                let two = through_log(&mut shared, proposed, now);
                proptest::prop_assert_eq!(one, two, "after {:?}", step);
            }
            proptest::prop_assert_eq!(single.names(), shared.names());
            proptest::prop_assert_eq!(single.topic(), shared.topic());
            proptest::prop_assert_eq!(single.next_event(), shared.next_event());
        }
    }

    #[test]
    fn an_entry_with_ids_longer_than_any_host_makes_is_not_taken_from_the_log() {
        // Anyone who can publish on the log's subject could make every remote member,
        // every kept event and every remembered line hold a megabyte of "session".
        let mut r = clustered("h1");
        let long = "s".repeat(protocol::MAX_ID_BYTES + 1);
        let join = |about: &str| Entry {
            host: "h2".into(),
            about: Some(about.to_owned()),
            ..Entry::to_room(ServerMsg::Join {
                id: 0,
                ts: 0,
                name: "bo".into(),
            })
        };
        let said = |session: &str, cid: &str| Entry {
            host: "h2".into(),
            origin: Some((session.into(), cid.into())),
            ..Entry::to_room(ServerMsg::Msg {
                id: 0,
                ts: 0,
                from: "bo".into(),
                text: "hi".into(),
                cid: None,
                held: None,
            })
        };
        let a = joined(&mut r, 1, "ana");
        through_log(&mut r, a, 0);
        let id = r.next_event();
        assert!(r.apply(id, join(&long), true, 0).is_empty());
        assert!(r.apply(id + 1, said(&long, "c1"), true, 0).is_empty());
        assert!(r.apply(id + 2, said("s-bo", &long), true, 0).is_empty());
        let key = Entry {
            key: Some("k".repeat(MAX_KEY_BYTES + 1)),
            ..said("s-bo", "c2")
        };
        assert!(r.apply(id + 3, key, true, 0).is_empty());
        assert_eq!(r.remote.len(), 0);
        // What a host makes is taken.
        assert!(!r.apply(id + 4, join("s-bo"), true, 0).is_empty());
        assert!(!r.apply(id + 5, said("s-bo", "c1"), true, 0).is_empty());
    }

    #[test]
    fn a_clustered_room_proposes_and_applies_only_what_the_log_hands_back() {
        let mut room = clustered("h1");
        room.seat(1, arrival(&room, "ana", "s-ana"), 0);
        let before = room.next_event();
        let actions = room.receive(1, say_cid("hello", "c7"), 0);
        let [Action::Publish(entry)] = actions.as_slice() else {
            panic!("one entry proposed, nothing sent: {actions:?}")
        };
        assert_eq!(room.next_event(), before, "nothing numbered before the log");
        assert_eq!(entry.host, "h1");
        assert_eq!(entry.peer, Some(1));
        // The log numbers it 40: that is its id, and the sender's echo carries its cid.
        let applied = room.apply(40, (**entry).clone(), true, 0);
        assert_eq!(room.next_event(), 41);
        let echo = applied.iter().find_map(|a| match a {
            Action::Send(Target::One(1), Outgoing::Event(e)) => Some(e.clone()),
            _ => None,
        });
        let Some(ServerMsg::Msg { id, cid, text, .. }) = echo else {
            panic!("an echo: {applied:?}")
        };
        assert_eq!(
            (id, cid.as_deref(), text.as_str()),
            (40, Some("c7"), "hello")
        );
        // Handed over again (the log redelivering), it is not applied twice.
        assert!(room.apply(40, (**entry).clone(), true, 0).is_empty());
        // Sent again after a rejoin and numbered anew by a log that no longer knew it:
        // still once.
        assert!(room.apply(41, (**entry).clone(), true, 0).is_empty());
    }

    #[test]
    fn another_hosts_events_reach_everyone_here_and_its_people_count_as_members() {
        let mut room = clustered("h1");
        joined(&mut room, 1, "ana");
        let far = |event: ServerMsg| Entry {
            event,
            host: "h2".into(),
            peer: Some(1),
            reach: Reach::Echo {
                cid: Some("x".into()),
            },
            origin: None,
            about: None,
            n: 1,
            key: None,
            held: false,
            joined_sessions: Vec::new(),
            sealed: None,
        };
        let join = far(ServerMsg::Join {
            id: 0,
            ts: 0,
            name: "bo".into(),
        });
        let actions = room.apply(5, join, true, 0);
        // Seat 1 here is not the seat 1 of the other host: everyone here is told.
        assert!(
            matches!(
                actions.as_slice(),
                [Action::Send(
                    Target::Room,
                    Outgoing::Event(ServerMsg::Join { id: 5, .. })
                )]
            ),
            "{actions:?}"
        );
        assert_eq!(room.names(), vec!["ana", "bo"]);
        // A newcomer here who asks for that name gets another.
        let welcomed = joined(&mut room, 2, "bo");
        let name = welcomed.iter().find_map(|a| match a {
            Action::Send(_, Outgoing::Event(ServerMsg::Welcome { name, .. })) => Some(name.clone()),
            _ => None,
        });
        assert_eq!(name.as_deref(), Some("bo2"));
        // Nor can anyone here rename to it.
        let refused = room.receive(1, say_cid("/nick bo", "n1"), 0);
        assert!(format!("{refused:?}").contains("taken"), "{refused:?}");
        room.apply(
            9,
            far(ServerMsg::Leave {
                id: 0,
                ts: 0,
                name: "bo".into(),
                reason: None,
            }),
            true,
            0,
        );
        assert!(!room.names().contains(&"bo".to_owned()));
    }

    #[test]
    fn a_starting_host_keeps_the_logs_past_but_takes_no_one_in_it_to_be_here() {
        let mut room = clustered("h1");
        let said = Entry {
            event: ServerMsg::Msg {
                id: 0,
                ts: 0,
                from: "bo".into(),
                text: "before you came".into(),
                cid: None,
                held: None,
            },
            host: "h0".into(),
            peer: None,
            reach: Reach::Others,
            origin: Some(("s-bo".into(), "c1".into())),
            about: None,
            n: 1,
            key: None,
            held: false,
            joined_sessions: Vec::new(),
            sealed: None,
        };
        let join = Entry {
            event: ServerMsg::Join {
                id: 0,
                ts: 0,
                name: "bo".into(),
            },
            host: "h0".into(),
            ..Entry::to_room(ServerMsg::History { count: 0 })
        };
        let topic = Entry {
            host: "h0".into(),
            ..Entry::to_room(ServerMsg::Topic {
                id: 0,
                ts: 0,
                by: "bo".into(),
                text: "plans".into(),
                cid: None,
            })
        };
        assert!(room.apply(3, join, false, 0).is_empty());
        assert!(room.apply(4, said.clone(), false, 0).is_empty());
        assert!(room.apply(5, topic, false, 0).is_empty());
        assert_eq!(room.next_event(), 6);
        assert_eq!(room.topic(), Some("plans"));
        assert!(room.names().is_empty(), "{:?}", room.names());
        // A newcomer is shown the past.
        let actions = joined(&mut room, 1, "ana");
        assert!(
            format!("{actions:?}").contains("before you came"),
            "{actions:?}"
        );
        // And that line, sent again, is recognised.
        assert!(room.apply(6, said, true, 0).is_empty());
    }

    /// Hosts sharing one log: what each proposes is appended, and every entry is
    /// applied by every host in the log's order, until nothing new is proposed. What
    /// each host sent, in order.
    /// A private message's words go straight to the host named `to_host` (as the
    /// publisher hands them over) before the entry goes on the log.
    fn run_log(hosts: &mut [&mut Room], proposed: Vec<Entry>, now: i64) -> Vec<Vec<Action>> {
        fn hand_words(hosts: &mut [&mut Room], entry: &Entry) {
            let Some(Sealed {
                to_host: Some(to_host),
                text,
            }) = &entry.sealed
            else {
                return;
            };
            for host in hosts.iter_mut() {
                if matches!(&host.log, Log::Shared { host } if **host == **to_host)
                    && let ServerMsg::Private { to, .. } = &entry.event
                {
                    host.private_words(entry.held_key(), to, text.clone());
                }
            }
        }
        let mut log: VecDeque<Entry> = VecDeque::new();
        for entry in proposed {
            hand_words(hosts, &entry);
            log.push_back(entry);
        }
        let mut sent = vec![Vec::new(); hosts.len()];
        let mut id = hosts.iter().map(|h| h.next_event()).max().unwrap_or(1);
        while let Some(entry) = log.pop_front() {
            for i in 0..hosts.len() {
                for action in hosts[i].apply(id, entry.clone(), true, now) {
                    match action {
                        Action::Publish(e) => {
                            hand_words(hosts, &e);
                            log.push_back(*e);
                        }
                        other => sent[i].push(other),
                    }
                }
            }
            id += 1;
        }
        sent
    }

    fn published(actions: Vec<Action>) -> Vec<Entry> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Publish(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    /// A peer a send reaches, with the event's `id`, held key and `cid`.
    type Reached = (PeerId, Option<u64>, Option<String>, Option<String>);

    /// Who a send reaches, and what it carries (`id`, held key, `cid`), per peer.
    fn reached(r: &Room, actions: &[Action]) -> Vec<Reached> {
        let mut out = Vec::new();
        for a in actions {
            if let Action::Send(t, Outgoing::Event(m)) = a {
                for (p, _) in r.recipients(*t) {
                    let held = m.held().map(str::to_owned);
                    out.push((p, m.id(), held, m.cid().map(str::to_owned)));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn while_the_log_is_away_a_line_is_shown_here_at_once_and_then_once_in_order() {
        let mut r = clustered("h1");
        let a = joined(&mut r, 1, "ana");
        through_log(&mut r, a, 0);
        let a = r.seat(2, fresh(&r), 0);
        through_log(&mut r, a, 0);
        let a = joined(&mut r, 3, "cy");
        through_log(&mut r, a, 0);
        // The log is reachable: a line waits for it, as ever.
        let said = published(r.receive(1, say_cid("before", "c0"), 0));
        assert!(!said[0].held);
        assert_eq!(r.held_copy(&said[0]), None);
        through_log(
            &mut r,
            said.into_iter()
                .map(|e| Action::Publish(Box::new(e)))
                .collect(),
            0,
        );

        r.set_log_down(true);
        let said = published(r.receive(1, say_cid("hello", "c1"), 0));
        let [entry] = said.as_slice() else {
            panic!("one entry: {said:?}")
        };
        assert!(entry.held);
        // Someone who comes after it was said (plain, so it cannot tell copies apart).
        let a = r.seat(4, fresh(&r), 0);
        through_log(&mut r, a, 0);
        let shown = r.held_copy(entry).expect("a held copy");
        let key = entry.held_key();
        // Shown at once to those here then, with no number yet (0 on the wire),
        // carrying its key; not to its sender (its own line waits for the room) nor to
        // one who came after.
        assert_eq!(
            reached(&r, std::slice::from_ref(&shown)),
            vec![
                (2, None, Some(key.clone()), None),
                (3, None, Some(key.clone()), None)
            ]
        );
        // A join is never shown held.
        let join = Entry::to_room(ServerMsg::Join {
            id: 0,
            ts: 0,
            name: "x".into(),
        });
        assert_eq!(r.held_copy(&join), None);

        // The log is back and hands the line over, numbered: its sender's echo; the
        // tchat peer that was shown it held gets it with the same key; the plain peer
        // that was shown it is not sent it again; the one who came after gets it.
        r.set_log_down(false);
        let id = r.next_event();
        let out = r.apply(id, entry.clone(), true, 0);
        assert_eq!(
            reached(&r, &out),
            vec![
                (1, Some(id), Some(key.clone()), Some("c1".into())),
                (3, Some(id), Some(key.clone()), None),
                (4, Some(id), Some(key.clone()), None)
            ]
        );
        // Kept with its key: a catch-up settles it on a screen that was shown it held.
        assert_eq!(
            r.history.back().and_then(|k| k.event.held()),
            Some(key.as_str())
        );
    }

    #[test]
    fn a_held_line_sent_again_is_shown_once_whichever_host_puts_it() {
        let mut one = clustered("h1");
        let mut two = clustered("h2");
        let mut proposed = published(one.seat(1, arrival(&one, "ana", "s-ana"), 0));
        proposed.extend(published(one.seat(2, fresh(&one), 0)));
        run_log(&mut [&mut one, &mut two], proposed, 0);
        one.set_log_down(true);
        let said = published(one.receive(1, say_cid("hello", "c1"), 0));
        let key = said[0].held_key();
        // ana's link stutters: she is back on the same host and sends the line again.
        one.disconnect(1, Some("connection lost"), 0);
        one.seat(3, arrival(&one, "ana", "s-ana"), 0);
        let again = one.receive(3, say_cid("hello", "c1"), 0);
        assert!(published(again).is_empty(), "not proposed twice");
        // Meanwhile she moved on to host two and sent it there too, and the log took
        // host two's first: on host one it settles the line shown held, under host
        // one's key; the plain peer that was shown it is not sent it again.
        let there = published(two.seat(1, arrival(&two, "ana", "s-ana"), 0));
        run_log(&mut [&mut one, &mut two], there, 0);
        let moved = published(two.receive(1, say_cid("hello", "c1"), 0));
        let sent = run_log(&mut [&mut one, &mut two], moved, 0);
        let on_one = reached(&one, &sent[0]);
        assert!(on_one.iter().all(|(p, ..)| *p != 2), "{on_one:?}");
        assert!(
            on_one
                .iter()
                .all(|(_, _, held, _)| held.as_deref() == Some(key.as_str())),
            "{on_one:?}"
        );
        // Its own entry, when the log hands it over later, is not applied again.
        let id = one.next_event();
        let late = one.apply(id, said[0].clone(), true, 0);
        assert!(reached(&one, &late).is_empty(), "{late:?}");
    }

    #[test]
    fn a_held_line_the_log_queue_refused_is_a_new_line_when_sent_again() {
        let mut r = clustered("h1");
        let a = joined(&mut r, 1, "ana");
        through_log(&mut r, a, 0);
        r.set_log_down(true);
        let said = published(r.receive(1, say_cid("hello", "c1"), 0));
        // No room in the log's queue: ana is told it was not sent (a notice she may
        // miss, if her link drops), and it is not on its way.
        r.refused(&said[0]);
        assert_eq!(r.held_copy(&said[0]), None, "not shown held");
        // Sent again: a new line, not one waiting for the log.
        let again = published(r.receive(1, say_cid("hello", "c1"), 0));
        assert_eq!(again.len(), 1, "proposed again");
    }

    #[test]
    fn a_host_reading_the_logs_past_keeps_a_held_lines_key() {
        // A client shown the line held, which comes to this host later, is sent it with
        // its key on catching up, and settles it rather than showing it twice.
        let mut one = clustered("h1");
        let a = joined(&mut one, 1, "ana");
        through_log(&mut one, a, 0);
        one.set_log_down(true);
        let said = published(one.receive(1, say_cid("hello", "c1"), 0));
        let key = said[0].held_key();
        let mut later = clustered("h2");
        assert!(later.apply(1, said[0].clone(), false, 0).is_empty());
        assert_eq!(
            later.history.back().and_then(|k| k.event.held()),
            Some(key.as_str())
        );
    }

    #[test]
    fn a_line_held_on_one_host_reaches_everyone_on_another_once_numbered() {
        let mut one = clustered("h1");
        let mut two = clustered("h2");
        let a = joined(&mut one, 1, "ana");
        let b = joined(&mut two, 1, "bo");
        let c = two.seat(2, fresh(&two), 0);
        let claims: Vec<Entry> = published(a)
            .into_iter()
            .chain(published(b))
            .chain(published(c))
            .collect();
        run_log(&mut [&mut one, &mut two], claims, 0);
        one.set_log_down(true);
        let said = published(one.receive(1, say_cid("hello", "c1"), 0));
        assert!(said[0].held);
        let key = said[0].held_key();
        let sent = run_log(&mut [&mut one, &mut two], said, 0);
        // The other host showed nothing held: everyone there, plain or not, gets it once.
        let id = two.next_event() - 1;
        assert_eq!(
            reached(&two, &sent[1]),
            vec![
                (1, Some(id), Some(key.clone()), None),
                (2, Some(id), Some(key), None)
            ]
        );
    }

    #[test]
    fn two_hosts_giving_one_name_at_once_settle_it_by_the_logs_order() {
        let mut one = clustered("h1");
        let mut two = clustered("h2");
        // Each seats an "ana" before either has heard of the other's.
        let first = published(joined(&mut one, 1, "ana"));
        let second = published(joined(&mut two, 1, "ana"));
        assert_eq!(one.names(), vec!["ana"]);
        assert_eq!(two.names(), vec!["ana"]);
        // The log took host one's join first.
        let proposed: Vec<Entry> = first.into_iter().chain(second).collect();
        let sent = run_log(&mut [&mut one, &mut two], proposed, 0);
        assert_eq!(one.names(), vec!["ana", "ana2"]);
        assert_eq!(two.names(), vec!["ana", "ana2"]);
        // Host two's ana was told, by name, and everyone saw the rename.
        let told = notices(&sent[1]);
        assert!(
            told.iter()
                .any(|(t, _)| t.contains("took the name ana") && t.contains("ana2")),
            "{told:?}"
        );
        for (i, s) in sent.iter().enumerate() {
            assert!(
                s.iter().any(|a| matches!(a, Action::Send(_, Outgoing::Event(ServerMsg::Nick { old, new, .. })) if old == "ana" && new == "ana2")),
                "host {i} told the rename: {s:?}"
            );
        }
        // Each host's own member keeps or has its name, and a third "ana" anywhere is
        // refused as taken.
        let again = joined(&mut one, 2, "ana");
        assert_eq!(welcome_name(&again).0, "ana3");
    }

    #[test]
    fn what_hosts_say_of_themselves_seats_their_people_and_their_silence_sends_them_away() {
        let mut room = clustered("h1");
        joined(&mut room, 1, "ana");
        let listing = |at: u64, names: &[&str]| Listing {
            at,
            names: names.iter().map(|n| n.to_string()).collect(),
            ..Listing::default()
        };
        let mut hosts = HashMap::new();
        hosts.insert("h2".to_owned(), listing(0, &["bo", "ana", "cy"]));
        assert!(room.presence(&hosts, 0).is_empty());
        // bo and cy are on h2; "ana" is this host's member's, whatever h2 says.
        assert_eq!(room.names(), vec!["ana", "bo", "cy"]);
        assert_eq!(welcome_name(&joined(&mut room, 2, "bo")).0, "bo2");
        // cy leaves (the log says so); h2's listing, older, still names cy: cy stays gone,
        // and a newer one does not name cy.
        let left = Entry {
            host: "h2".into(),
            ..Entry::to_room(ServerMsg::Leave {
                id: 0,
                ts: 0,
                name: "cy".into(),
                reason: None,
            })
        };
        let id = room.next_event();
        room.apply(id, left, true, 0);
        assert!(room.presence(&hosts, 0).is_empty());
        assert_eq!(room.names(), vec!["ana", "bo", "bo2"]);
        hosts.insert("h2".to_owned(), listing(id, &["bo"]));
        assert!(room.presence(&hosts, 0).is_empty());
        assert_eq!(room.names(), vec!["ana", "bo", "bo2"]);
        // h2 is missing from one listing: not yet gone (it may be slow).
        assert!(room.presence(&HashMap::new(), 0).is_empty());
        assert!(room.presence(&hosts, 0).is_empty(), "back in time");
        // Missing twice in a row: bo is told gone, as h2's, under one id for every host.
        assert!(room.presence(&HashMap::new(), 0).is_empty());
        let actions = room.presence(&HashMap::new(), 0);
        let [Action::Publish(entry)] = actions.as_slice() else {
            panic!("one leave: {actions:?}")
        };
        assert!(
            matches!(&entry.event, ServerMsg::Leave { name, reason: Some(_), .. } if name == "bo")
        );
        assert_eq!(entry.host, "h2");
        assert_eq!(entry.log_id(), "key:gone:h2:bo");
        assert_eq!(room.names(), vec!["ana", "bo2"]);
        assert!(room.presence(&HashMap::new(), 0).is_empty(), "told once");
    }

    #[test]
    fn a_host_told_gone_while_it_is_here_keeps_its_people() {
        let mut room = clustered("h1");
        joined(&mut room, 1, "ana");
        let gone = Entry {
            host: "h1".into(),
            key: Some("gone:h1:ana".into()),
            ..Entry::to_room(ServerMsg::Leave {
                id: 0,
                ts: 0,
                name: "ana".into(),
                reason: Some("their host is gone".into()),
            })
        };
        let id = room.next_event();
        assert!(room.apply(id, gone, true, 0).is_empty());
        assert_eq!(room.names(), vec!["ana"]);
    }

    #[test]
    fn no_session_and_cid_spell_another_entrys_log_id() {
        let line = |session: &str, cid: &str| Entry {
            origin: Some((session.into(), cid.into())),
            ..Entry::to_room(ServerMsg::History { count: 0 })
        };
        assert_ne!(line("a/b", "c").log_id(), line("a", "b/c").log_id());
        assert_ne!(line("ab", "c").log_id(), line("a", "bc").log_id());
        let gone = Entry {
            key: Some("gone:h2:bo".into()),
            ..Entry::to_room(ServerMsg::History { count: 0 })
        };
        assert_ne!(line("key", ":gone:h2:bo").log_id(), gone.log_id());
        assert_ne!(line("gone", ":h2:bo").log_id(), gone.log_id());
    }

    #[test]
    fn a_private_message_in_a_clustered_room_is_numbered_by_the_log_and_seen_by_two() {
        let mut one = clustered("h1");
        let mut two = clustered("h2");
        let mut three = clustered("h3");
        let mut proposed = Vec::new();
        proposed.extend(published(one.seat(1, arrival(&one, "ana", "s-ana"), 0)));
        proposed.extend(published(two.seat(1, arrival(&two, "bo", "s-bo"), 0)));
        proposed.extend(published(three.seat(1, arrival(&three, "cy", "s-cy"), 0)));
        run_log(&mut [&mut one, &mut two, &mut three], proposed, 0);
        let before = one.next_event();
        let said = one.receive(1, say_cid("/msg bo psst", "p1"), 0);
        let proposed = published(said);
        assert_eq!(proposed.len(), 1, "on the log");
        // … without its words, which go straight to bo's host.
        let logged = serde_json::to_string(&proposed[0]).unwrap();
        assert!(!logged.contains("psst"), "{logged}");
        assert_eq!(
            proposed[0].sealed,
            Some(Sealed {
                to_host: Some("h2".into()),
                text: "psst".into()
            })
        );
        let sent = run_log(&mut [&mut one, &mut two, &mut three], proposed, 0);
        let privates = |s: &[Action]| -> Vec<(PeerId, u64, Option<String>)> {
            s.iter()
                .filter_map(|a| match a {
                    Action::Send(
                        Target::One(p),
                        Outgoing::Event(ServerMsg::Private { id, cid, .. }),
                    ) => Some((*p, *id, cid.clone())),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            privates(&sent[0]),
            vec![(1, before, Some("p1".into()))],
            "the sender, with its cid"
        );
        assert_eq!(
            privates(&sent[1]),
            vec![(1, before, None)],
            "the one it is for, on another host"
        );
        assert!(privates(&sent[2]).is_empty(), "no one else");
        assert!(sent[2].is_empty(), "{:?}", sent[2]);
        // Kept where the two are, for them; a third host keeps nothing of it.
        let welcome = three.seat(2, arrival(&three, "dee", "s-dee"), 0);
        assert!(!format!("{welcome:?}").contains("psst"));
    }

    #[test]
    fn one_who_came_in_with_a_crowd_keeps_its_name_on_another_host() {
        let mut one = clustered("h1");
        let mut two = clustered("h2");
        // More come to host one at once than are announced one by one: the rest are
        // told as a crowd.
        let mut proposed = Vec::new();
        let n = ANNOUNCE_BURST as u64 + 5;
        for i in 0..n {
            let name = format!("p{i}");
            proposed.extend(published(one.seat(
                i,
                arrival(&one, &name, &format!("s-{name}")),
                0,
            )));
        }
        proposed.extend(published(one.tick(60_000)));
        let crowds = proposed
            .iter()
            .filter(|e| matches!(e.event, ServerMsg::Crowd { .. }))
            .count();
        assert_eq!(crowds, 1, "{proposed:?}");
        run_log(&mut [&mut one, &mut two], proposed, 60_000);
        let last = format!("p{}", n - 1);
        assert!(two.names().contains(&last), "{:?}", two.names());
        // Host one dies; its last member, told in the crowd, comes to host two with
        // its session before host two has told it gone: the name is still its own.
        let welcome = two.seat(100, arrival(&two, &last, &format!("s-{last}")), 60_000);
        assert_eq!(welcome_name(&welcome), (last.clone(), None));
        // Someone else asking for that name there is given another.
        let other = two.seat(
            101,
            arrival(&two, &format!("p{}", n - 2), "s-someone-else"),
            60_000,
        );
        assert_ne!(welcome_name(&other).0, format!("p{}", n - 2));
    }

    #[test]
    fn a_private_message_whose_words_cannot_reach_the_other_host_is_not_sent() {
        let mut one = clustered("h1");
        let mut two = clustered("h2");
        let mut proposed = published(one.seat(1, arrival(&one, "ana", "s-ana"), 0));
        proposed.extend(published(two.seat(1, arrival(&two, "bo", "s-bo"), 0)));
        run_log(&mut [&mut one, &mut two], proposed, 0);
        let [entry] = published(one.receive(1, say_cid("/msg bo psst", "p1"), 0))
            .try_into()
            .unwrap();
        // Host two did not answer: ana is told, about her line, and nothing is kept.
        let told = one.undelivered(entry, "their host does not answer", 0);
        let [Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Notice { text, cid, .. }))] =
            told.as_slice()
        else {
            panic!("{told:?}")
        };
        assert!(text.contains("not sent to bo"), "{text}");
        assert_eq!(cid.as_deref(), Some("p1"));
        assert!(one.own_words.is_empty());
        // Words handed over under a key no host makes are not taken; the rest are kept
        // up to their bound, the oldest let go first.
        assert!(!two.private_words("h1.\u{1b}".into(), "bo", "x".into()));
        assert!(!two.private_words("nohost".into(), "bo", "x".into()));
        // Nor words for someone not seated here (they moved on): its sender is told.
        assert!(!two.private_words("h1.1".into(), "cy", "x".into()));
        assert!(two.words.is_empty());
        for n in 0..(MAX_WORDS as u64 + 10) {
            assert!(two.private_words(format!("h1.{n}"), "bo", "x".into()));
        }
        assert_eq!(two.words.len(), MAX_WORDS);
        assert!(!two.words.contains_key(&"h1.0".to_owned()));
        assert!(two.words.contains_key(&format!("h1.{}", MAX_WORDS + 9)));
    }

    #[test]
    fn one_who_moved_as_a_private_message_was_on_its_way_is_told_it_missed_it() {
        let mut here = clustered("h2");
        let a = joined(&mut here, 1, "bo");
        through_log(&mut here, a, 0);
        // ana on host h1 wrote to bo while bo was on another host, which took the words.
        let private = Entry {
            host: "h1".into(),
            n: 4,
            ..Entry::to_room(ServerMsg::Private {
                id: 0,
                ts: 0,
                from: "ana".into(),
                to: "bo".into(),
                text: String::new(),
                cid: None,
            })
        };
        let id = here.next_event();
        let out = here.apply(id, private, true, 0);
        let [Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Notice { text, .. }))] =
            out.as_slice()
        else {
            panic!("{out:?}")
        };
        assert!(text.contains("ana sent you a private message"), "{text}");
    }

    #[test]
    fn private_messages_words_waiting_for_the_log_are_bounded_in_bytes() {
        // The longest lines a clustered room takes, sent privately while the log takes
        // nothing (its queue refused them, or a stranger on NATS sent words for entries
        // that never come): what waits stays within its bound, not 4096 long lines.
        let big = Rules {
            max_line: 128 * 1024,
            burst: 0,
            rate: 0,
            addr_burst: 0,
            addr_rate: 0,
            ..Rules::default()
        };
        let mut r = Room::clustered("e1".into(), big, Arc::from("h1"));
        let a = joined(&mut r, 1, "ana");
        through_log(&mut r, a, 0);
        let b = joined(&mut r, 2, "bo");
        through_log(&mut r, b, 0);
        let long = "w".repeat(100_000);
        for i in 0..400 {
            let said = r.receive(1, say_cid(&format!("/msg bo {long}"), &format!("p{i}")), 0);
            assert_eq!(published(said).len(), 1);
        }
        for n in 0..400 {
            r.private_words(format!("h2.{n}"), "bo", long.clone());
        }
        assert!(
            r.own_words.bytes() <= MAX_WORDS_BYTES,
            "{}",
            r.own_words.bytes()
        );
        assert!(r.words.bytes() <= MAX_WORDS_BYTES, "{}", r.words.bytes());
        // The newest are kept.
        assert!(r.words.take(&"h2.399".to_owned()).is_some());
    }

    #[test]
    fn a_line_put_on_the_log_by_another_host_is_echoed_to_its_sender_here() {
        let mut room = clustered("h1");
        room.seat(1, arrival(&room, "ana", "s-ana"), 0);
        joined(&mut room, 2, "bo");
        // ana's host died after putting her line on the log; she is here now.
        let line = Entry {
            event: ServerMsg::Msg {
                id: 0,
                ts: 0,
                from: "ana".into(),
                text: "made it".into(),
                cid: None,
                held: None,
            },
            host: "h0".into(),
            peer: Some(7),
            reach: Reach::Echo {
                cid: Some("c1".into()),
            },
            origin: Some(("s-ana".into(), "c1".into())),
            about: None,
            n: 1,
            key: None,
            held: false,
            joined_sessions: Vec::new(),
            sealed: None,
        };
        let id = room.next_event();
        let sent = room.apply(id, line, true, 0);
        assert!(
            sent.iter().any(|a| matches!(a, Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Msg { cid: Some(c), .. })) if c == "c1")),
            "{sent:?}"
        );
        assert!(
            sent.iter()
                .any(|a| matches!(a, Action::Send(Target::RoomExcept(1), _))),
            "{sent:?}"
        );
    }

    #[test]
    fn names_another_host_lists_are_shown_only_sanitised() {
        let mut room = clustered("h1");
        let mut hosts = HashMap::new();
        hosts.insert(
            "h2".to_owned(),
            Listing {
                at: 0,
                names: vec![
                    "\u{1b}[31mred\u{202e}".to_owned(),
                    "x".repeat(500),
                    "*** ana".to_owned(),
                    "bo".to_owned(),
                ],
                ..Listing::default()
            },
        );
        room.presence(&hosts, 0);
        for name in room.names() {
            assert!(
                !name.contains('\u{1b}') && !name.contains('\u{202e}'),
                "{name:?}"
            );
            assert!(name.chars().count() <= MAX_NAME_CHARS, "{name:?}");
        }
        // Only a name a room would give is taken: not an escape, an overlong name, or
        // one that reads as the room's own line.
        assert_eq!(room.names(), vec!["bo"]);
    }
}
