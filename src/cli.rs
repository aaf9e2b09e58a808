//! The command line.

use std::net::IpAddr;

use clap::{ArgGroup, Parser};

use crate::protocol::{DEFAULT_MAX_LINE, DEFAULT_PORT};
use crate::server::DEFAULT_MAX_BACKLOG;

/// A full-screen terminal chat. Host a room with `tchat --host`; join it with
/// `tchat --join ADDR`. Anyone can also join with `nc ADDR 7878`.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
#[command(group(ArgGroup::new("mode").required(true).args(["host", "join"])))]
#[command(after_help = "\
Keys: Enter sends · Esc, Ctrl-C or the line \"exit\" leaves · PgUp/PgDn or the wheel \
scroll, End returns to live · Up/Down recall sent lines · Ctrl-A/E/U/K/W edit.

A joiner that loses the host says so, retries (1 s doubling to 30 s) and rejoins by \
itself, catching up on what it missed; lines typed meanwhile are sent once it is back.

Examples:
  tchat --host                    host a room on port 7878
  tchat --join 192.168.1.5        join it from another machine
  nc 192.168.1.5 7878             join it with no tchat installed")]
pub struct Cli {
    /// Host a room (and take part in it).
    #[arg(long)]
    pub host: bool,

    /// Join the room at ADDR: HOST, HOST:PORT or [IPV6]:PORT.
    #[arg(long, value_name = "ADDR")]
    pub join: Option<String>,

    /// Port to host on (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT, conflicts_with = "join")]
    pub port: u16,

    /// Address to host on.
    #[arg(
        long,
        default_value = "0.0.0.0",
        value_name = "IP",
        conflicts_with = "join"
    )]
    pub bind: IpAddr,

    /// Your name in the room [default: $USER, else host / guest].
    #[arg(long)]
    pub name: Option<String>,

    /// Line mode: no full screen; stdin lines are sent, messages printed to stdout.
    /// Chosen by itself when stdin or stdout is not a terminal.
    #[arg(long)]
    pub plain: bool,

    /// Serve the room without taking part: no screen; joins and leaves are logged to
    /// stderr; stops on Ctrl-C (SIGINT) or SIGTERM.
    #[arg(long, conflicts_with = "join")]
    pub headless: bool,

    /// Longest message relayed, in bytes; longer ones are refused and the sender told.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE as u64, value_name = "BYTES", conflicts_with = "join",
          value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_line: u64,

    /// Flood limit: lines one person may send in a burst before --rate applies
    /// (0 turns the flood limit off).
    #[arg(long, default_value_t = 20, value_name = "N", conflicts_with = "join")]
    pub burst: u32,

    /// Flood limit: lines per second one person may keep sending; above it their lines
    /// are refused and they are told (0 turns the flood limit off).
    #[arg(long, default_value_t = 5, value_name = "N", conflicts_with = "join")]
    pub rate: u32,

    /// A peer whose unsent output passes this many bytes is not reading, and is
    /// disconnected so that it slows nobody else down.
    #[arg(long, default_value_t = DEFAULT_MAX_BACKLOG as u64, value_name = "BYTES", conflicts_with = "join",
          value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_backlog: u64,

    /// Most connections at once; one more is told the room is full and closed.
    #[arg(long, default_value_t = 1000, value_name = "N", conflicts_with = "join",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_peers: u64,

    /// Recent events the host keeps, so that someone who lost the connection catches
    /// up on what they missed when they rejoin.
    #[arg(
        long,
        default_value_t = 1000,
        value_name = "N",
        conflicts_with = "join"
    )]
    pub history: usize,
}

impl Cli {
    /// The name to join under: `--name`, else the login name, else `fallback`.
    pub fn name_or(&self, fallback: &str) -> String {
        self.name
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    }
}
