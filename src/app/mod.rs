//! The state of one person's screen and the only place it changes: [`update`].
//!
//! No I/O and no clock here: keys, pastes, network events and the time arrive as
//! arguments ([`Msg`], `now`), and what should happen in the world comes back as
//! [`Effect`]s for the event loop (`tui`) to carry out. That is what lets every rule of
//! the UI be tested without a terminal or a socket.
//!
//! To add a key or a command: extend [`Msg`] or the key match in [`App::on_key`], change
//! state there, and, if the world must hear of it, return an [`Effect`].

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

use crate::protocol::{self, Command, ServerMsg};
use crate::sanitize;
use crate::text;

mod composer;
pub mod layout;
mod scrollback;

pub use composer::Composer;
pub use scrollback::{SCROLLBACK, Scrollback};

pub use layout::INPUT_MAX_ROWS;

/// How many rows one turn of the mouse wheel scrolls.
const WHEEL_ROWS: usize = 3;

/// Everything that can happen to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    Mouse(MouseEvent),
    /// The terminal is now this many columns and rows.
    Resize(u16, u16),
    Net(Net),
    /// A second passed (sent only while [`App::ticking`]: a countdown is shown).
    Tick,
    /// The terminal gained (`true`) or lost focus.
    Focus(bool),
}

/// What the connection to the room reports, as the screen takes it in. The connection
/// task (`client`) has a type of its own; the event loop turns one into the other, so
/// that this state knows nothing of sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// The far side is a plain socket program, not a tchat host.
    Plain,
    /// An event from a tchat host (a `Welcome` first, and after every rejoin).
    Server(ServerMsg),
    /// Text from a plain far side, one line of it, stamped on arrival.
    Text { ts: i64, text: String },
    /// The connection to the host is lost; the next try is in `retry_in`.
    Lost {
        reason: String,
        retry_in: std::time::Duration,
    },
    /// Trying to reach the host again (the first retry is attempt 1).
    Reconnecting { attempt: u32 },
    /// The connection is over for good.
    Closed { reason: String },
}

/// What the app asks the world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a line to the room; `cid` comes back with the room's echo.
    Send { text: String, cid: String },
    /// Leave the room and end the program.
    Quit,
    /// Try to reach the host now rather than when the wait is over.
    Reconnect,
    /// Repaint the whole terminal (Ctrl-L).
    Redraw,
    /// Ring the terminal bell.
    Bell,
    /// Give the terminal back and stop (Ctrl-Z), until the shell resumes the program.
    Suspend,
    /// Ask the terminal for a desktop notification (`notify` in the config): a line
    /// naming you came while its window had no focus. Both are sanitised, one line.
    Notify {
        how: Notify,
        title: String,
        body: String,
    },
}

/// Desktop notifications through the terminal, on a mention while the window has no
/// focus: off, or by the escape sequence the terminal knows (`OSC 9`: iTerm2, Windows
/// Terminal, ConEmu, WezTerm; `OSC 777`: foot, urxvt, Ghostty, Konsole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Notify {
    #[default]
    Off,
    Osc9,
    Osc777,
}

/// When the terminal bell rings for an arriving message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bell {
    /// Never.
    Never,
    /// When a message mentions your name (or is sent to you privately).
    #[default]
    Mention,
    /// For every message from someone else.
    All,
}

/// How a screen rings, notifies and colours: chosen at start (flags, the config file,
/// the environment) and fixed after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// When to ring the bell (`--bell`).
    pub bell: Bell,
    /// Desktop notifications on a mention while unfocused (`notify` in the config).
    pub notify: Notify,
    /// Draw in colour (off with `NO_COLOR`); bold, italic and reverse stay.
    pub color: bool,
    /// The terminal has 256 colours: names are drawn from a wider set.
    pub many_colors: bool,
    /// Make web links in messages clickable (OSC 8) where the terminal knows how.
    pub links: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bell: Bell::default(),
            notify: Notify::default(),
            color: true,
            many_colors: false,
            links: true,
        }
    }
}

/// Whether what this seat says crosses the network encrypted, as the status line tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Lock {
    /// Not said (tests, the host's own seat before it knows).
    #[default]
    Unknown,
    /// TLS; the host's key, short (see [`crate::tls::short`]).
    Encrypted(String),
    /// In clear: the far side does not speak TLS.
    Plain,
}

/// Whether this seat hosts the room or joined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Hosting: the addresses people can join, best first, each with the port.
    Host { addresses: Vec<String> },
    /// Joined the room at this address.
    Joiner { address: String },
}

/// The state of the connection, as the status line tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    /// Connected, waiting for the room's welcome (or to learn the far side is plain).
    Connecting,
    /// In a tchat room.
    InRoom,
    /// Talking plain text to something that is not a tchat host.
    Plain,
    /// Lost the host; rejoining by itself. `attempt` counts the tries so far;
    /// `retry_in` is the wait (in seconds) before the next, `None` while trying.
    Reconnecting { attempt: u32, retry_in: Option<u64> },
    /// The connection is over, for this reason.
    Closed(String),
}

/// What kind of line an entry is; the view styles each differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Someone's message.
    Message {
        from: String,
        /// Written by this seat.
        own: bool,
        /// Own line not yet confirmed by the room.
        state: Delivery,
    },
    /// Someone's `/me`: `* alice waves`. `held`: shown before the room's log had it
    /// (see [`ServerMsg::held`]), grey until it does.
    Action { from: String, own: bool, held: bool },
    /// A private message (`/msg`) between `from` and `to`.
    Private { from: String, to: String, own: bool },
    /// Text from a plain far side (not tchat), labelled with where it came from.
    Text { from: String },
    /// A room notice: joins, leaves, renames.
    Notice,
    /// Something went wrong.
    Error,
}

/// Whether an own line has reached the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Confirmed by the room's echo (and every line that is not our own).
    Delivered,
    /// Sent, no echo yet.
    Pending,
    /// The connection ended before the room confirmed it.
    NotSent,
}

/// One line of the scrollback (a message may hold several lines of text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub kind: Kind,
    /// Already sanitised: safe to draw.
    pub text: String,
    /// Someone else's line that names you (or is private to you): highlighted.
    pub mention: bool,
    /// `text` laid out in rows, as last drawn.
    pub wrapped: text::Wrapped,
}

/// Where the message pane is scrolled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scroll {
    /// Following new messages.
    Live,
    /// Held: `bottom` is the sequence number of the entry at the bottom of the pane and
    /// `skip` how many of its rows are below the pane.
    Back { bottom: u64, skip: usize },
}

/// One person's chat screen.
pub struct App {
    role: Role,
    /// Our name: as asked at first, then as the room gave it.
    me: String,
    conn: Conn,
    /// Who is in the room (when the far side tells).
    members: Vec<String>,
    /// The entries and where the pane is scrolled to.
    scrollback: Scrollback,
    /// Lines naming you that came while you were not looking (the terminal without
    /// focus, or scrolled back): the window title counts them.
    unread_mentions: usize,
    /// The terminal has focus (as far as it says: one that never does is taken to).
    focused: bool,
    /// The list of who is in the room is shown beside the messages (F2).
    nick_list: bool,
    /// You looked away (focus lost, or scrolled back) and nothing new has come since:
    /// the next line from someone else is preceded by [`READ_MARKER`].
    marker_due: bool,
    /// The input box.
    composer: Composer,
    /// Terminal size.
    width: u16,
    height: u16,
    /// Local time zone, seconds east of UTC (the clock is read at the edge).
    utc_offset: i32,
    /// The room's longest message, in bytes, once known.
    max_line: Option<usize>,
    /// The time of the latest update, for lines made here.
    now: i64,
    cid_prefix: String,
    next_cid: u64,
    /// Own lines waiting for the room's echo: cid → sequence number.
    pending: HashMap<String, u64>,
    /// Others' lines shown held (see [`ServerMsg::held`]) until their numbered copy
    /// comes, by held key, with their sequence numbers.
    held: crate::recent::Recent<String, u64>,
    /// When the next try to reach the host is due (ms, on the clock `update` is given).
    retry_at: Option<i64>,
    /// The room's topic, as the room last said it (sanitised).
    topic: Option<String>,
    /// Names whose messages this screen does not show (`/ignore`), lowercased.
    ignored: std::collections::BTreeSet<String>,
    /// Esc was pressed once where leaving costs something (see [`App::leave_costs`]):
    /// a second Esc leaves, any other key stays.
    confirm_leave: bool,
    /// The room (epoch) we were welcomed into, to tell a rejoin from a restarted host.
    epoch: Option<String>,
    /// How this screen rings, notifies and colours.
    settings: Settings,
    /// Whether the connection is encrypted.
    lock: Lock,
    /// The host's invitation, `tchat --join TOKEN` (see [`crate::invite`]).
    invitation: Option<String>,
    /// A notification to ask for, made by the last update.
    notification: Option<(String, String)>,
    /// A line arrived that rings the bell (taken by `update`).
    ring: bool,
    /// Messages still to come of the room's history shown on joining.
    history_left: u64,
}

impl App {
    /// A fresh screen for `me` in `role`, `width`×`height` cells.
    pub fn new(role: Role, me: String, width: u16, height: u16, utc_offset: i32) -> Self {
        App {
            role,
            me,
            conn: Conn::Connecting,
            members: Vec::new(),
            scrollback: Scrollback::default(),
            unread_mentions: 0,
            focused: true,
            nick_list: false,
            marker_due: false,
            composer: Composer::default(),
            width,
            height,
            utc_offset,
            max_line: None,
            now: 0,
            cid_prefix: format!("{:08x}", rand::random::<u32>()),
            next_cid: 0,
            pending: HashMap::new(),
            held: crate::recent::Recent::counted(protocol::HELD_SHOWN),
            confirm_leave: false,
            retry_at: None,
            ignored: std::collections::BTreeSet::new(),
            topic: None,
            epoch: None,
            settings: Settings::default(),
            lock: Lock::Unknown,
            invitation: None,
            notification: None,
            ring: false,
            history_left: 0,
        }
    }

    /// The same screen with `settings`.
    pub fn with(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The same screen, its connection `lock`ed so.
    pub fn secured(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self
    }

    /// The same screen, hosting a room people join with `token`.
    pub fn invite(mut self, token: String) -> Self {
        self.invitation = Some(token);
        self
    }

    /// Whether the connection is encrypted.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// How this screen rings, notifies and colours.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether this seat hosts the room or joined it.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Our name: as asked at first, then as the room gave it.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The state of the connection.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Who is in the room (when the far side tells), sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The room's topic, if it has one.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The terminal's size: (columns, rows).
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// Local time zone, seconds east of UTC.
    pub fn utc_offset(&self) -> i32 {
        self.utc_offset
    }

    /// The scrollback, and where it is scrolled to.
    pub fn scrollback(&self) -> &Scrollback {
        &self.scrollback
    }

    /// The scrollback, oldest first, with sequence numbers.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = (u64, &Entry)> + ExactSizeIterator {
        self.scrollback.entries()
    }

    /// The entry with sequence number `seq`, if it is still kept.
    pub fn entry(&self, seq: u64) -> Option<&Entry> {
        self.scrollback.entry(seq)
    }

    /// Sequence number of the newest entry, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.scrollback.last_seq()
    }

    /// Where the message pane is scrolled to.
    pub fn scroll(&self) -> Scroll {
        self.scrollback.scroll()
    }

    /// The input box.
    pub fn composer(&self) -> &Composer {
        &self.composer
    }

    /// The text in the input box.
    pub fn input_text(&self) -> String {
        self.composer.text()
    }

    /// Add a line to the scrollback (used for start-up notices too).
    pub fn push(&mut self, ts: i64, kind: Kind, text: &str) {
        if !self.ignored.is_empty()
            && let Kind::Message {
                from, own: false, ..
            }
            | Kind::Action {
                from, own: false, ..
            }
            | Kind::Private {
                from, own: false, ..
            } = &kind
            && self.ignored.contains(&from.to_lowercase())
        {
            return;
        }
        let from_others = matches!(
            kind,
            Kind::Message { own: false, .. }
                | Kind::Action { own: false, .. }
                | Kind::Private { own: false, .. }
                | Kind::Text { .. }
        );
        let live = self.history_left == 0;
        if from_others && live && self.marker_due {
            // Where what came while you were away begins (if you are away still).
            self.marker_due = false;
            if !self.scrollback.is_live() || !self.focused {
                self.push(ts, Kind::Notice, READ_MARKER);
            }
        }
        let text = sanitize::text(text);
        let mention =
            from_others && (matches!(kind, Kind::Private { .. }) || mentions(&text, &self.me));
        if from_others && live {
            self.ring |= match self.settings.bell {
                Bell::Never => false,
                Bell::Mention => mention,
                Bell::All => true,
            };
        }
        if mention && live && !self.focused && self.settings.notify != Notify::Off {
            let who = match &kind {
                Kind::Message { from, .. }
                | Kind::Action { from, .. }
                | Kind::Private { from, .. }
                | Kind::Text { from } => from.clone(),
                _ => String::new(),
            };
            let first = text.lines().next().unwrap_or_default();
            let body: String = first.chars().take(200).collect();
            self.notification = Some((format!("tchat: {}", sanitize::line(&who)), body));
        }
        let counts_as_new = from_others && live;
        let entry = Entry {
            ts,
            kind,
            text,
            mention,
            wrapped: text::Wrapped::default(),
        };
        self.scrollback.push(entry, counts_as_new, mention);
        if counts_as_new && mention && (!self.focused || !self.scrollback.is_live()) {
            self.unread_mentions += 1;
        }
    }

    /// The window title: `(2) tchat` while two lines naming you are unread.
    pub fn title(&self) -> String {
        match self.unread_mentions {
            0 => "tchat".to_owned(),
            n => format!("({n}) tchat"),
        }
    }

    /// The terminal gained or lost focus.
    fn on_focus(&mut self, focused: bool) {
        if !focused {
            self.look_away();
        }
        self.focused = focused;
        if focused && self.scrollback.is_live() {
            self.unread_mentions = 0;
            // Back, and nothing came meanwhile: no marker for what comes next.
            self.marker_due = false;
        }
    }

    /// About to stop looking at the live end (called before focus or scroll change):
    /// if you were looking, mark where new lines begin, once one comes. Looking away a
    /// second way while away already is the same absence.
    fn look_away(&mut self) {
        if self.focused && self.scrollback.is_live() {
            self.marker_due = true;
        }
    }

    /// Esc: back to live while scrolled back; else leave, asking first where leaving
    /// costs something (`confirming`: this is the second Esc).
    fn escape(&mut self, confirming: bool) -> Vec<Effect> {
        if !self.scrollback.is_live() {
            self.go_live();
            return vec![];
        }
        if confirming {
            return vec![Effect::Quit];
        }
        let Some(cost) = self.leave_costs() else {
            return vec![Effect::Quit];
        };
        self.confirm_leave = true;
        let now = self.now;
        self.push(now, Kind::Notice, &format!("{cost} (any other key stays)"));
        vec![]
    }

    /// What leaving now would cost, if anything: the room, for a host with others in
    /// it; lines typed and not yet sent.
    fn leave_costs(&self) -> Option<String> {
        let others = self.members.iter().filter(|m| **m != self.me).count();
        if matches!(self.role, Role::Host { .. }) && others > 0 {
            let people = if others == 1 { "person" } else { "people" };
            return Some(format!(
                "Esc again closes the room for the {others} {people} in it"
            ));
        }
        match self.pending.len() {
            0 => None,
            1 => Some("Esc again leaves: 1 line you typed is not sent yet".to_owned()),
            n => Some(format!(
                "Esc again leaves: {n} lines you typed are not sent yet"
            )),
        }
    }

    /// Ctrl-Z. A stopped program stops the room it hosts too: a host with others in
    /// its room is told so instead (Esc closes the room; `--headless` hosts without a
    /// screen).
    fn suspend(&mut self) -> Vec<Effect> {
        let others = self.members.iter().filter(|m| **m != self.me).count();
        if matches!(self.role, Role::Host { .. }) && others > 0 {
            let people = if others == 1 { "person" } else { "people" };
            let text = format!(
                "not suspended: this screen hosts the room, and stopping it would freeze the room for the {others} {people} in it (Esc closes the room; tchat --host --headless hosts without a screen)"
            );
            let now = self.now;
            self.push(now, Kind::Notice, &text);
            return vec![];
        }
        vec![Effect::Suspend]
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return vec![];
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if key.code == KeyCode::Tab && !ctrl && !alt {
            self.complete();
            return vec![];
        }
        // Any other key ends a run of Tabs, and a question Esc asked.
        self.composer.end_completion();
        let confirming = std::mem::take(&mut self.confirm_leave);
        match key.code {
            KeyCode::Esc => return self.escape(confirming),
            KeyCode::Char('c') if ctrl => return vec![Effect::Quit],
            KeyCode::Char('l') if ctrl => return vec![Effect::Redraw],
            // The rows are laid out anew for the narrower pane (the kept rows follow
            // the width they are asked for).
            KeyCode::F(2) => self.nick_list = !self.nick_list,
            KeyCode::Char('z') if ctrl => return self.suspend(),
            KeyCode::Enter if alt => self.composer.newline(),
            KeyCode::Enter => return self.submit(),
            KeyCode::PageUp => self.scroll_up(self.page()),
            KeyCode::PageDown => self.scroll_down(self.page()),
            KeyCode::Home if ctrl => self.scroll_to_top(),
            KeyCode::End if ctrl => self.go_live(),
            KeyCode::End if !self.scrollback.is_live() => self.go_live(),
            KeyCode::Up if self.composer.on_first_line() => self.composer.recall_older(),
            KeyCode::Down if self.composer.on_last_line() => self.composer.recall_newer(),
            _ => self.composer.edit(key, ctrl, alt),
        }
        vec![]
    }

    /// The commands that are this screen's business alone (never sent): `/clear`,
    /// `/ignore [NAME]`, `/unignore NAME`. Whether `line` was one.
    fn local_command(&mut self, line: &str) -> bool {
        let (word, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let arg = arg.trim();
        let now = self.now;
        match word.to_lowercase().as_str() {
            "/clear" => {
                self.scrollback.clear();
                self.go_live();
            }
            "/invite" => {
                let text = match (&self.role, &self.invitation) {
                    (Role::Host { .. }, Some(token)) => format!(
                        "to invite someone, have them run: tchat --join {token}  (it holds the room's addresses and the host key, so what they join is this room and no other)"
                    ),
                    _ => "/invite is for the host: ask the host for the invitation".to_owned(),
                };
                self.push(now, Kind::Notice, &text);
            }
            "/ignore" if arg.is_empty() => {
                let text = if self.ignored.is_empty() {
                    "nobody is ignored (/ignore NAME hides NAME's messages on this screen)"
                        .to_owned()
                } else {
                    let names: Vec<&str> = self.ignored.iter().map(String::as_str).collect();
                    format!("ignored here: {}", names.join(", "))
                };
                self.push(now, Kind::Notice, &text);
            }
            "/ignore" => {
                let name = sanitize::line(arg);
                self.ignored.insert(name.to_lowercase());
                let text = format!(
                    "{name}'s messages are not shown here from now on (/unignore {name} shows them again; nobody else is told)"
                );
                self.push(now, Kind::Notice, &text);
            }
            "/unignore" if !arg.is_empty() => {
                let name = sanitize::line(arg);
                let text = if self.ignored.remove(&name.to_lowercase()) {
                    format!("{name}'s messages are shown again")
                } else {
                    format!("{name} was not ignored")
                };
                self.push(now, Kind::Notice, &text);
            }
            _ => return false,
        }
        true
    }

    /// Whether a countdown is on screen (the wait before the next try to reach the
    /// host), so that the screen needs a [`Msg::Tick`] each second; only then.
    pub fn ticking(&self) -> bool {
        matches!(
            self.conn,
            Conn::Reconnecting {
                retry_in: Some(_),
                ..
            }
        )
    }

    /// A second passed: the countdown to the next try goes on.
    fn count_down(&mut self) {
        if let (Conn::Reconnecting { retry_in, .. }, Some(at)) = (&mut self.conn, self.retry_at) {
            let left_ms = at.saturating_sub(self.now).max(0);
            *retry_in = Some((left_ms as u64).div_ceil(1000));
        }
    }

    /// Offline: try again now (Enter on an empty line, or `/reconnect`).
    fn reconnect_now(&mut self) -> Vec<Effect> {
        if !self.ticking() {
            let text = match self.conn {
                Conn::Reconnecting { .. } => "already trying to reach the host",
                _ => "/reconnect is for when the host is lost: this connection is up",
            };
            let now = self.now;
            self.push(now, Kind::Notice, text);
            return vec![];
        }
        self.retry_at = None;
        if let Conn::Reconnecting { retry_in, .. } = &mut self.conn {
            *retry_in = None;
        }
        vec![Effect::Reconnect]
    }

    fn submit(&mut self) -> Vec<Effect> {
        let text = self.input_text();
        let body = text.trim_end();
        if body.trim().is_empty() {
            // Offline, Enter on an empty line tries again at once.
            if self.ticking() {
                return self.reconnect_now();
            }
            return vec![];
        }
        if body.trim() == "/reconnect" {
            self.composer.clear();
            return self.reconnect_now();
        }
        if self.local_command(body.trim()) {
            self.composer.clear();
            return vec![];
        }
        if body.trim() == "exit" {
            return vec![Effect::Quit];
        }
        if let Some(max) = self.max_line
            && body.len() > max
        {
            let note = format!(
                "not sent: the message is {} bytes and the room takes at most {max}",
                body.len()
            );
            self.push(self.now, Kind::Error, &note);
            return vec![];
        }
        let body = body.to_owned();
        self.composer.clear();
        self.composer.remember(&body);
        self.go_live();
        let command = protocol::parse_command(&body);
        match command {
            Command::Quit => return vec![Effect::Quit],
            Command::Help => {
                self.push(self.now, Kind::Notice, &help_text());
                return vec![];
            }
            _ => {}
        }
        if let Conn::Closed(_) = self.conn {
            self.push(
                self.now,
                Kind::Error,
                "not sent: the connection is closed (Esc leaves)",
            );
            return vec![];
        }
        self.next_cid += 1;
        let cid = format!("{}-{}", self.cid_prefix, self.next_cid);
        if !matches!(command, Command::Say(_)) && self.conn != Conn::Plain {
            // A command for the room: its answer (or the event it makes) is what shows.
            return vec![Effect::Send { text: body, cid }];
        }
        // Shown at once; in a tchat room it is marked pending until the room echoes it.
        let state = match self.conn {
            Conn::Plain => Delivery::Delivered,
            _ => Delivery::Pending,
        };
        let me = self.me.clone();
        self.push(
            self.now,
            Kind::Message {
                from: me,
                own: true,
                state,
            },
            &body,
        );
        if state == Delivery::Pending
            && let Some(seq) = self.last_seq()
        {
            self.pending.insert(cid.clone(), seq);
        }
        vec![Effect::Send { text: body, cid }]
    }

    /// Tab: complete the command or name before the cursor; Tab again, the next one.
    fn complete(&mut self) {
        // Commands mean something only to a tchat room.
        let commands: Vec<&str> = if self.conn == Conn::Plain {
            Vec::new()
        } else {
            let mut all: Vec<&str> = protocol::COMMANDS.to_vec();
            all.extend(LOCAL_COMMANDS);
            all.sort_unstable();
            all
        };
        self.composer.complete(&self.members, &commands, &self.me);
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.scroll_down(WHEEL_ROWS),
            _ => {}
        }
    }

    fn on_net(&mut self, ev: Net, now: i64) {
        match ev {
            Net::Plain => {
                self.conn = Conn::Plain;
                for e in self.scrollback.entries_mut() {
                    if let Kind::Message { state, .. } = &mut e.kind
                        && *state == Delivery::Pending
                    {
                        *state = Delivery::Delivered;
                    }
                }
                self.pending.clear();
                self.push(
                    now,
                    Kind::Notice,
                    "this is not a tchat host: talking plain text (each line you send is one line to them)",
                );
            }
            Net::Text { ts, text } => {
                let from = match &self.role {
                    Role::Joiner { address } => address.clone(),
                    Role::Host { .. } => "peer".to_owned(),
                };
                self.push(ts, Kind::Text { from }, &text);
            }
            Net::Server(msg) => self.on_server(msg),
            Net::Lost { reason, retry_in } => {
                let retry_in = Some(retry_in.as_secs_f64().ceil() as u64);
                let attempt = match self.conn {
                    Conn::Reconnecting { attempt, .. } => attempt,
                    Conn::Closed(_) => {
                        // The host closed the room; it may come back.
                        self.push(
                            now,
                            Kind::Notice,
                            "will rejoin by itself if the host comes back (Esc leaves)",
                        );
                        0
                    }
                    _ => {
                        let reason = sanitize::line(&reason);
                        self.push(
                            now,
                            Kind::Error,
                            &format!(
                                "{reason}. Rejoining by itself; what you type meanwhile is kept and sent once back in (Esc leaves)."
                            ),
                        );
                        0
                    }
                };
                self.retry_at = retry_in.map(|s| {
                    now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
                });
                self.conn = Conn::Reconnecting { attempt, retry_in };
            }
            Net::Reconnecting { attempt } => {
                self.conn = Conn::Reconnecting {
                    attempt,
                    retry_in: None,
                };
            }
            Net::Closed { reason } => {
                let reason = sanitize::line(&reason);
                if !matches!(self.conn, Conn::Closed(_)) {
                    self.push(now, Kind::Error, &format!("{reason}. Press Esc to leave."));
                }
                self.conn = Conn::Closed(reason);
                for e in self.scrollback.entries_mut() {
                    if let Kind::Message { state, .. } = &mut e.kind
                        && *state == Delivery::Pending
                    {
                        *state = Delivery::NotSent;
                    }
                }
            }
        }
    }

    fn on_server(&mut self, msg: ServerMsg) {
        let held_copy = msg.is_held_copy();
        match msg {
            ServerMsg::Welcome {
                room,
                name,
                asked,
                members,
                max_line,
                topic,
                ..
            } => {
                self.topic = topic.map(|t| sanitize::line(&t)).filter(|t| !t.is_empty());
                self.me = sanitize::line(&name);
                self.members = members.iter().map(|m| sanitize::line(m)).collect();
                self.max_line = Some(max_line);
                self.conn = Conn::InRoom;
                let now = self.now;
                if let Some(asked) = asked {
                    self.push(now, Kind::Notice, &protocol::rename_note(&asked, &name));
                }
                match self.epoch.replace(room.clone()) {
                    // Back in the same room: the catch-up that follows says what was missed.
                    Some(old) if old == room => return,
                    Some(_) => self.push(
                        now,
                        Kind::Notice,
                        "the host restarted the room: history starts again (what was said before is not in it)",
                    ),
                    None => {}
                }
                let others: Vec<&str> = self
                    .members
                    .iter()
                    .map(String::as_str)
                    .filter(|m| *m != self.me)
                    .collect();
                let here = if others.is_empty() {
                    "nobody else is here yet".to_owned()
                } else {
                    format!("here: {}", others.join(", "))
                };
                let text = match &self.role {
                    Role::Host { addresses } => {
                        let addr = addresses.first().map(String::as_str).unwrap_or("HOST");
                        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let join = self.invitation.as_deref().unwrap_or(addr);
                        let private =
                            crate::invite::Invitation::parse(join).is_ok_and(|i| i.code.is_some());
                        let nc = if private {
                            // `nc` is told the room is private, and nothing more.
                            "a private room: only the invitation gets in".to_owned()
                        } else {
                            format!("or: nc {host} {port}")
                        };
                        format!(
                            "you are hosting as {}; {here}. Others join with: tchat --join {join}  ({nc})",
                            self.me
                        )
                    }
                    Role::Joiner { .. } => format!("you joined as {}; {here}", self.me),
                };
                self.push(now, Kind::Notice, &text);
            }
            ServerMsg::Msg {
                id,
                ts,
                from,
                text,
                cid,
                held,
            } => {
                let from = sanitize::line(&from);
                if let Some(seq) = cid.and_then(|cid| self.pending.remove(&cid)) {
                    // Our own line came back from the room: it is delivered.
                    self.settle_line(seq, ts, &from, &text);
                    return;
                }
                if self.settle_held(held.as_deref(), held_copy, ts, &from, &text) {
                    return;
                }
                let own = from == self.me;
                // Shown before the room has it in its order: grey, as an own line is.
                let state = if held_copy {
                    Delivery::Pending
                } else {
                    Delivery::Delivered
                };
                let kind = Kind::Message { from, own, state };
                let before = self.scrollback.last_seq();
                self.push(ts, kind, &text);
                self.note_held(held, id, before);
                self.history_done();
            }
            ServerMsg::Me {
                id,
                ts,
                from,
                text,
                held,
                ..
            } => {
                let from = sanitize::line(&from);
                if self.settle_held(held.as_deref(), held_copy, ts, &from, &text) {
                    return;
                }
                let own = from == self.me;
                let before = self.scrollback.last_seq();
                let kind = Kind::Action {
                    from,
                    own,
                    held: held_copy,
                };
                self.push(ts, kind, &text);
                self.note_held(held, id, before);
                self.history_done();
            }
            ServerMsg::Private {
                ts, from, to, text, ..
            } => {
                let from = sanitize::line(&from);
                let to = sanitize::line(&to);
                let own = from == self.me;
                self.push(ts, Kind::Private { from, to, own }, &text);
            }
            ServerMsg::Nick { ts, old, new, .. } => {
                let old = sanitize::line(&old);
                let new = sanitize::line(&new);
                let text = if old == self.me {
                    self.me = new.clone();
                    format!("you are now known as {new}")
                } else {
                    format!("{old} is now known as {new}")
                };
                self.push(ts, Kind::Notice, &text);
                self.members.retain(|m| *m != old);
                if !self.members.contains(&new) {
                    self.members.push(new);
                    self.members.sort_by_key(|n| n.to_lowercase());
                }
            }
            ServerMsg::History { count } => {
                let text = match count {
                    1 => "the last message before you came:".to_owned(),
                    n => format!("the last {n} messages before you came:"),
                };
                self.push(self.now, Kind::Notice, &text);
                self.history_left = count;
            }
            ServerMsg::Join { ts, name, .. } => {
                let name = sanitize::line(&name);
                self.push(ts, Kind::Notice, &format!("{name} joined"));
                if !self.members.contains(&name) {
                    self.members.push(name);
                    self.members.sort_by_key(|n| n.to_lowercase());
                }
            }
            ServerMsg::Leave {
                ts, name, reason, ..
            } => {
                let name = sanitize::line(&name);
                let text = match reason {
                    Some(r) => format!("{name} left ({})", sanitize::line(&r)),
                    None => format!("{name} left"),
                };
                self.push(ts, Kind::Notice, &text);
                self.members.retain(|m| *m != name);
            }
            ServerMsg::Crowd {
                ts, joined, left, ..
            } => {
                let left: Vec<String> = left.iter().map(|n| sanitize::line(n)).collect();
                let joined: Vec<String> = joined.iter().map(|n| sanitize::line(n)).collect();
                for (names, did) in [(&left, "left"), (&joined, "joined")] {
                    if !names.is_empty() {
                        self.push(ts, Kind::Notice, &protocol::crowd_note(names, did));
                    }
                }
                // A crowd can be the whole room: sets, not a search per name.
                let left: std::collections::HashSet<String> = left.into_iter().collect();
                self.members.retain(|m| !left.contains(m));
                let mut here: std::collections::HashSet<String> =
                    self.members.iter().cloned().collect();
                for name in joined {
                    if here.insert(name.clone()) {
                        self.members.push(name);
                    }
                }
                self.members.sort_by_key(|n| n.to_lowercase());
            }
            ServerMsg::Notice { ts, text, cid } => {
                let text = sanitize::text(&text);
                // About a line of ours that the room refused: it was not sent.
                if let Some(seq) = cid.and_then(|cid| self.pending.remove(&cid))
                    && let Some(e) = self.scrollback.entry_mut(seq)
                    && let Kind::Message { state, .. } = &mut e.kind
                {
                    *state = Delivery::NotSent;
                }
                self.push(ts, Kind::Notice, &text);
            }
            ServerMsg::Catchup { count, lost } => {
                self.push(self.now, Kind::Notice, &protocol::catchup_note(count, lost));
            }
            ServerMsg::Ack { cid, .. } => {
                // A line of ours the room had relayed before a rejoin: delivered.
                if let Some(seq) = self.pending.remove(&cid)
                    && let Some(e) = self.scrollback.entry_mut(seq)
                    && let Kind::Message { state, .. } = &mut e.kind
                {
                    *state = Delivery::Delivered;
                }
            }
            ServerMsg::Topic { ts, by, text, .. } => {
                let (by, text) = (sanitize::line(&by), sanitize::line(&text));
                self.push(ts, Kind::Notice, &protocol::topic_note(&by, &text));
                self.topic = (!text.is_empty()).then_some(text);
            }
            ServerMsg::Ping | ServerMsg::Pong => {}
            ServerMsg::Closing { ts, reason } => {
                let reason = sanitize::line(&reason);
                self.push(ts, Kind::Error, &format!("{reason}. Press Esc to leave."));
                self.conn = Conn::Closed(reason);
            }
        }
    }

    /// A held line's first copy (numbered 0, see [`ServerMsg::held`]) was just shown:
    /// remember where, for its numbered copy to settle. `before`: the last entry
    /// before it (a line not shown, from someone ignored, adds none).
    fn note_held(&mut self, held: Option<String>, id: u64, before: Option<u64>) {
        let (Some(key), 0, Some(seq)) = (held, id, self.scrollback.last_seq()) else {
            return;
        };
        if Some(seq) == before {
            return;
        }
        self.held.keep(key, seq);
    }

    /// The numbered copy of a line shown held: it is that line, now in the room's order
    /// (see [`App::settle_line`]), not a new one. `false` if no such line is shown here.
    fn settle_held(
        &mut self,
        held: Option<&str>,
        held_copy: bool,
        ts: i64,
        from: &str,
        text: &str,
    ) -> bool {
        let Some(seq) = held.filter(|_| !held_copy).and_then(|k| self.held.take(k)) else {
            return false;
        };
        self.settle_line(seq, ts, from, text);
        true
    }

    /// A line shown before the room had it (our own, or one held) is in the room now:
    /// at the room's time, in the room's words (`//x` was sent as `/x`), under the name
    /// the room knows its sender by, no longer grey.
    fn settle_line(&mut self, seq: u64, ts: i64, from: &str, text: &str) {
        let Some(e) = self.scrollback.entry_mut(seq) else {
            return;
        };
        e.ts = ts;
        e.text = sanitize::text(text);
        e.wrapped.forget();
        match &mut e.kind {
            Kind::Message { state, from: f, .. } => {
                *state = Delivery::Delivered;
                *f = from.to_owned();
            }
            Kind::Action {
                from: f, held: h, ..
            } => {
                *f = from.to_owned();
                *h = false;
            }
            _ => {}
        }
    }

    /// One more message of the history shown on joining has come; after the last, say
    /// that what follows is live.
    fn history_done(&mut self) {
        if self.history_left > 0 {
            self.history_left -= 1;
            if self.history_left == 0 {
                self.push(self.now, Kind::Notice, "end of history; now live");
            }
        }
    }

    /// Where each part of the screen goes, as the view draws it.
    pub fn areas(&self) -> layout::Areas {
        layout::areas(
            self.width,
            self.height,
            self.input_rows(),
            self.nick_list_width(),
        )
    }

    /// Lay out what the message pane shows now and keep it, so that drawing lays out
    /// nothing: the event loop calls this before each frame (not after each update, as
    /// most of a burst of lines has scrolled away before the frame that would show it).
    /// Drawing only reads; what was not laid out here it lays out again on each frame.
    pub fn settle(&mut self) {
        let (width, height) = self.pane();
        self.scrollback.settle(width, height);
    }

    /// Columns and rows of the message pane.
    fn pane(&self) -> (usize, usize) {
        let m = self.areas().messages;
        (usize::from(m.width), usize::from(m.height))
    }

    /// Columns the list of names takes beside the messages (0: hidden).
    pub fn nick_list_width(&self) -> u16 {
        let names = self.members.iter().map(String::as_str);
        layout::nick_list_width(self.nick_list, self.width, names)
    }

    /// Rows the input box's text takes (the box adds its border).
    pub fn input_rows(&self) -> u16 {
        let c = &self.composer;
        layout::input_rows(c.lines(), c.cursor(), self.width)
    }

    /// Rows one PgUp/PgDn moves.
    fn page(&self) -> usize {
        layout::page(self.pane().1)
    }

    fn scroll_up(&mut self, n: usize) {
        if self.scrollback.last_seq().is_none() {
            return;
        }
        self.look_away();
        let (width, height) = self.pane();
        if self.scrollback.scroll_up(n, width, height) {
            self.go_live();
        }
    }

    fn scroll_down(&mut self, n: usize) {
        let width = self.pane().0;
        if self.scrollback.scroll_down(n, width) {
            self.go_live();
        }
    }

    fn scroll_to_top(&mut self) {
        if self.scrollback.last_seq().is_none() {
            return;
        }
        self.look_away();
        let (width, height) = self.pane();
        if self.scrollback.scroll_to_top(width, height) {
            self.go_live();
        }
    }

    fn go_live(&mut self) {
        self.scrollback.go_live();
        if self.focused {
            self.unread_mentions = 0;
            self.marker_due = false;
        }
    }
}

/// Whether `text` names `name` as a word of its own, ignoring case: "Alice: hi" and
/// "thanks @alice!" do, "malice" does not.
pub fn mentions(text: &str, name: &str) -> bool {
    let lower = |s: &str| -> Vec<char> { s.chars().flat_map(char::to_lowercase).collect() };
    let (t, n) = (lower(text), lower(name));
    if n.is_empty() || n.len() > t.len() {
        return false;
    }
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    (0..=t.len() - n.len()).any(|i| {
        t[i..i + n.len()] == n[..]
            && !word(i.checked_sub(1).and_then(|j| t.get(j)))
            && !word(t.get(i + n.len()))
    })
}

/// The line put before what came while you were not looking.
pub const READ_MARKER: &str = "— new since you looked —";

/// Commands this screen answers itself; never sent to the room.
const LOCAL_COMMANDS: [&str; 5] = ["/clear", "/ignore", "/invite", "/reconnect", "/unignore"];

/// What `/help` shows: the room's commands and the keys.
fn help_text() -> String {
    format!(
        "commands:\n{}\non this screen only:\n\
         /clear            clear the scrollback\n\
         /ignore [NAME]    hide NAME's messages here (alone: who is hidden)\n\
         /unignore NAME    show them again\n\
         /invite           the host: show the line others join with again\n\
         /reconnect        offline: try to reach the host now\nkeys: Enter sends · Alt-Enter new line · Tab completes names and commands · \
         PgUp/PgDn or the wheel scroll · Ctrl-End live · Ctrl-Home oldest · Up/Down earlier lines · \
         Ctrl-A/E/B/F/D/K/U/W/T/Y and Alt-B/F/D/Y edit · F2 who is in · Ctrl-L redraws · \
         Ctrl-Z suspends · Esc or Ctrl-C leaves",
        protocol::COMMAND_HELP
    )
}

/// The one place state changes: apply `msg`, at time `now` (ms since the Unix epoch),
/// and return what the world should do.
pub fn update(app: &mut App, msg: Msg, now: i64) -> Vec<Effect> {
    app.now = now;
    // Alt-Y swaps only what the key just before it yanked: anything else ends that.
    let alt_y = matches!(&msg, Msg::Key(k) if k.code == KeyCode::Char('y')
        && k.modifiers.contains(KeyModifiers::ALT));
    if !alt_y {
        app.composer.end_yank();
    }
    let mut effects = Vec::new();
    match msg {
        Msg::Key(key) => effects = app.on_key(key),
        Msg::Paste(text) => app.composer.paste(&text),
        Msg::Mouse(m) => app.on_mouse(m),
        Msg::Resize(w, h) => {
            app.width = w;
            app.height = h;
        }
        Msg::Net(ev) => app.on_net(ev, now),
        Msg::Tick => app.count_down(),
        Msg::Focus(focused) => app.on_focus(focused),
    }
    if std::mem::take(&mut app.ring) {
        effects.push(Effect::Bell);
    }
    if let Some((title, body)) = app.notification.take() {
        effects.push(Effect::Notify {
            how: app.settings.notify,
            title,
            body,
        });
    }
    effects
}
