//! tchat: a full-screen terminal chat. One person hosts (`tchat --host`) and takes part;
//! others join (`tchat --join ADDR`, or plain `nc ADDR 7878`).
//!
//! # Layout
//!
//! The pure parts decide; the I/O parts only carry bytes and events between them.
//!
//! | module | pure? | what it does |
//! |---|---|---|
//! | [`protocol`] | yes | line framing (a never-failing codec), the plain and structured dialects |
//! | [`sanitize`] | yes | what from the network may reach a terminal |
//! | [`text`] | yes | display width and wrapping (CJK and emoji are two columns) |
//! | [`complete`] | yes | Tab completion of names and commands in the input box |
//! | [`recent`] | yes | a map keeping its newest entries within a count and a size |
//! | [`server::room`] | yes | the room's rules: members, names, who is told what |
//! | [`app`] | yes | one person's screen state and [`app::update`], the only place it changes |
//! | [`app::layout`] | yes | where things go on screen and how many rows they take (the app and the view both ask it) |
//! | [`ui`] | yes | [`ui::render`] draws an [`app::App`] and changes nothing |
//! | [`server`] | I/O | accept loop, a task per connection, a task owning the room |
//! | [`client`] | I/O | a joiner's connection task: commands in, events out |
//! | [`net`] | I/O | reading lines (with the pause rule) and batched writing, for both sides |
//! | [`tls`] | – | the host's key and fingerprint, TLS 1.3 configurations, `known_hosts` |
//! | [`invite`] | yes | the invitation: one word with the room's addresses, the host key and a private room's code |
//! | [`code`] | yes | a private room's code (a number and two words) |
//! | [`pake`] | yes | proving a private room's code with SPAKE2, bound to the TLS session |
//! | [`link`] | I/O | a joiner's connection: TLS to a tchat host (key checked), plain only to a far side without TLS |
//! | [`tui`] | I/O | the full-screen loop: terminal and network events in one `select!` |
//! | [`lineio`] | I/O | line mode for scripts: stdin in, plain text out |
//! | [`addrs`] | I/O | the addresses a host tells people to join |
//! | [`cli`] | – | the command line |
//!
//! Where a change goes: a new key or screen behaviour is a [`app::Msg`] case or a key in
//! `App::on_key`, drawn in [`ui`]; a new room rule is a method on [`server::room::Room`]
//! returning [`server::room::Action`]s; a new kind of message is a case of
//! [`protocol::ServerMsg`] or [`protocol::ClientMsg`] (documented in `docs/PROTOCOL.md`)
//! with its plain rendering in [`protocol::ServerMsg::to_plain`].
//!
//! The host binds, spawns the room ([`server::Server`]), and joins it through the same
//! client path as everyone else, over an in-memory pipe: the host is an ordinary
//! participant.

// One call into the C library needs `unsafe` (`memory::release_free`); nothing else may.
#![deny(unsafe_code)]

/// Write a line to stderr, and nothing more if no one reads it any longer: `eprintln!`
/// panics when stderr is a closed pipe, and neither a host nor a joiner may stop over
/// a line of its log.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod addrs;
pub mod app;
pub mod cli;
pub mod client;
pub mod code;
pub mod complete;
pub mod config;
pub mod invite;
pub mod lineio;
pub mod link;
pub mod log;
pub mod memory;
pub mod names;
pub mod net;
pub mod pake;
pub mod protocol;
pub mod recent;
pub mod records;
pub mod sanitize;
pub mod server;
pub mod text;
pub mod tls;
pub mod tui;
pub mod ui;
