//! The command line.
//!
//! [`parse`] reads it, [`command`] is clap's definition (also for the completions and
//! the man page), and [`Cli::with_config`] lets the config file fill in what the flags
//! leave out.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};

use crate::app::Bell;
use crate::config::{self, Config};
use crate::protocol::{DEFAULT_MAX_LINE, DEFAULT_PORT};
use crate::server::room::{DEFAULT_RESEND_MEMORY, DEFAULT_RESEND_MEMORY_SECS};
use crate::server::session::HELLO_WAIT;
use crate::server::{DEFAULT_JOINS_PER_MINUTE, DEFAULT_MAX_BACKLOG, DEFAULT_MAX_PER_ADDRESS};

/// The end of `--help`: keys, reconnecting, examples. The config file's place follows.
const AFTER_HELP: &str = "\
Keys: Enter sends · Esc, Ctrl-C or the line \"exit\" leaves · PgUp/PgDn or the wheel \
scroll, End returns to live · Up/Down recall sent lines · Ctrl-A/E/U/K/W edit.

A joiner that loses the host says so, retries (1 s doubling to 30 s) and rejoins by \
itself, catching up on what it missed; lines typed meanwhile are sent once it is back.

Examples:
  tchat --host                    host a room on port 7878
  tchat --join 192.168.1.5        join it from another machine
  nc 192.168.1.5 7878             join it with no tchat installed";

/// The default for `--log-keep`.
pub const DEFAULT_LOG_KEEP: u64 = 100_000;

/// A full-screen terminal chat. Host a room with `tchat --host`; join it with
/// `tchat --join ADDR`. Anyone can also join with `nc ADDR 7878`.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
#[command(group(ArgGroup::new("mode").required(true).args(["host", "join"])))]
pub struct Cli {
    /// Host a room (and take part in it).
    #[arg(long)]
    pub host: bool,

    /// Join the room at ADDR: HOST, HOST:PORT or [IPV6]:PORT.
    #[arg(long, value_name = "ADDR")]
    pub join: Option<String>,

    /// Port to host on (0 picks a free one) [default: the config file's port, else 7878].
    #[arg(long, conflicts_with = "join")]
    pub port: Option<u16>,

    /// Address to host on: `::` is every address, IPv6 and IPv4 (IPv4 alone where the
    /// system has no IPv6); `0.0.0.0` every IPv4 address; `127.0.0.1` this machine only.
    #[arg(long, default_value = "::", value_name = "IP", conflicts_with = "join")]
    pub bind: IpAddr,

    /// Your name in the room [default: $USER, else host / guest].
    #[arg(long)]
    pub name: Option<String>,

    /// Line mode: no full screen; stdin lines are sent, messages printed to stdout.
    /// Chosen by itself when stdin or stdout is not a terminal.
    #[arg(long)]
    pub plain: bool,

    /// Host a private room: only those who know its code get in (the invitation holds
    /// it); plain peers are told the room is private and closed. With --keep FILE, the
    /// code is kept beside FILE (FILE.code), so a restarted room keeps it.
    #[arg(long, conflicts_with = "join")]
    pub private: bool,

    /// A private room's code (NUMBER-WORD-WORD), when the invitation did not hold it.
    /// Better in the TCHAT_CODE environment variable, where `ps` does not show it.
    #[arg(long, value_name = "CODE", conflicts_with = "host")]
    pub code: Option<String>,

    /// Take the key the host shows now, in place of the one remembered for it in
    /// `known_hosts` (after the host made a new key on purpose: ask its owner first).
    #[arg(long, conflicts_with = "host")]
    pub accept_new_key: bool,

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

    /// Most lines in one message; a message with more is refused and the sender told
    /// (0: no limit). Runs of blank lines are always collapsed to one.
    #[arg(long, default_value_t = 100, value_name = "N", conflicts_with = "join")]
    pub max_lines: usize,

    /// Flood limit for one address (all its connections together, and across its
    /// reconnects): lines in a burst before --addr-rate applies (0: no limit per address).
    #[arg(long, default_value_t = 40, value_name = "N", conflicts_with = "join")]
    pub addr_burst: u32,

    /// Flood limit for one address: lines per second all its connections together may
    /// keep sending (0: no limit per address).
    #[arg(long, default_value_t = 10, value_name = "N", conflicts_with = "join")]
    pub addr_rate: u32,

    /// Most connections at once from one address; one more is told so and closed
    /// (0: no limit).
    #[arg(long, default_value_t = DEFAULT_MAX_PER_ADDRESS, value_name = "N", conflicts_with = "join")]
    pub max_per_address: usize,

    /// New connections one address may open in a minute; more are told to wait and
    /// closed (0: no limit).
    #[arg(long, default_value_t = DEFAULT_JOINS_PER_MINUTE, value_name = "N", conflicts_with = "join")]
    pub joins_per_minute: u32,

    /// Bytes of history and catch-up sent to someone coming in; what is older is
    /// counted, not sent. It never counts against --max-backlog.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES", conflicts_with = "join")]
    pub max_catchup: usize,

    /// How long a new connection may stay silent before it joins as a plain peer
    /// (`nc`), in milliseconds; a tchat client's hello is awaited this long. A plain
    /// peer gets everything said since it connected, so nothing is lost by waiting.
    #[arg(long, default_value_t = HELLO_WAIT.as_millis() as u64, value_name = "MS", conflicts_with = "join",
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub hello_wait: u64,

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

    /// Keep the room in FILE (an SQLite database, made if missing): its history, its
    /// numbering and the lines it relayed. A host restarted with the same FILE goes on
    /// with the same room, and those who rejoin catch up exactly once.
    #[arg(long, value_name = "FILE", conflicts_with = "join")]
    pub keep: Option<PathBuf>,

    /// Serve one room with other hosts through NATS JetStream at URL
    /// (`nats://HOST:PORT`, a server started with `-js`): every host's people see one
    /// story, and a joiner can move from one host to another. See --room.
    #[arg(long, value_name = "URL", conflicts_with_all = ["join", "keep"])]
    pub cluster: Option<String>,

    /// Trust the NATS server's certificate (a `tls://` URL) when the authority in FILE
    /// (PEM) signed it, rather than the system's trusted authorities.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_ca: Option<PathBuf>,

    /// The room's name on the cluster: hosts with the same --cluster and --room serve
    /// the same room (1 to 32 letters, digits, - or _).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "tchat",
        requires = "cluster"
    )]
    pub room: String,

    /// The most events the cluster's log keeps for the room (the oldest go first); the
    /// first host to make the room's log sets it.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LOG_KEEP, requires = "cluster",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub log_keep: u64,

    /// Lines relayed that the host remembers by their sender's id, so that a line sent
    /// again after a rejoin is never shown twice, however long ago the history let go
    /// of it (about 100 bytes each; 0: only what is in the history).
    #[arg(long, default_value_t = DEFAULT_RESEND_MEMORY, value_name = "N", conflicts_with = "join")]
    pub resend_memory: usize,

    /// How long each of those is remembered, in seconds.
    #[arg(long, default_value_t = DEFAULT_RESEND_MEMORY_SECS as u64, value_name = "SECS", conflicts_with = "join",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub resend_memory_secs: u64,

    /// When the terminal bell rings for an arriving message [default: the config
    /// file's, else mention].
    #[arg(long, value_enum, value_name = "WHEN")]
    pub bell: Option<Bell>,

    /// Append the conversation to FILE as plain text: one timestamped line per message
    /// or notice. For people in the room, so not with --headless (whose joins and leaves
    /// go to stderr).
    #[arg(long, value_name = "FILE", conflicts_with = "headless")]
    pub log: Option<PathBuf>,

    /// Read settings from FILE instead of the usual config file (also: $TCHAT_CONFIG).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print a completion script for SHELL to stdout, and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the manual page (roff) to stdout, and exit.
    #[arg(long, exclusive = true)]
    pub man: bool,
}

impl Cli {
    /// The name to join under: `--name`, else the config file's, else the login name,
    /// else `fallback`. (The config file's name is in `name` after [`Cli::with_config`].)
    pub fn name_or(&self, fallback: &str) -> String {
        self.name
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    }

    /// Fill in what the flags leave out from the config file: flags win.
    pub fn with_config(mut self, config: &Config) -> Self {
        if self.name.is_none() {
            self.name.clone_from(&config.name);
        }
        self.port = self.port.or(config.port);
        self.bell = self.bell.or(config.bell);
        self
    }

    /// The port to host on, and the one to join when the address names none.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// When the bell rings.
    pub fn bell(&self) -> Bell {
        self.bell.unwrap_or_default()
    }

    /// The addresses `--join A,B,…` names (the hosts of one room, tried in order),
    /// each with [`Cli::port`] added where it names none (`HOST` → `HOST:PORT`, `IPV6`
    /// or `[IPV6]` → `[IPV6]:PORT`). An address that does not parse is left as it is,
    /// for the connection to report.
    pub fn join_addresses(&self) -> Vec<String> {
        let Some(list) = self.join.as_deref() else {
            return Vec::new();
        };
        list.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| self.with_default_port(a))
            .collect()
    }

    fn with_default_port(&self, addr: &str) -> String {
        let port = self.port();
        if port == DEFAULT_PORT {
            return addr.to_owned();
        }
        // An address without a port takes whichever default it is given.
        let (Ok((host, a)), Ok((_, b))) = (
            crate::client::parse_addr(addr, 1),
            crate::client::parse_addr(addr, 2),
        ) else {
            return addr.to_owned();
        };
        match (a, b) {
            (1, 2) if host.contains(':') => format!("[{host}]:{port}"),
            (1, 2) => format!("{host}:{port}"),
            _ => addr.to_owned(),
        }
    }
}

/// The command line's definition, with the config file's place at the end of `--help`.
pub fn command() -> clap::Command {
    let usual = config::default_path();
    let usual_shown = usual
        .as_deref()
        .map(config::shown)
        .unwrap_or_else(|| "none here (no home directory)".to_owned());
    let file = match std::env::var_os(config::ENV).filter(|v| !v.is_empty()) {
        Some(p) => format!(
            "{} (from ${}; the usual one is {usual_shown})",
            config::shown(std::path::Path::new(&p)),
            config::ENV
        ),
        None => format!("{usual_shown} (need not exist)"),
    };
    Cli::command().after_help(format!(
        "{AFTER_HELP}\n\n\
Config file: {file}\n\
TOML; flags override it. Keys: name = \"alice\", bell = \"never\" | \
\"mention\" | \"all\", color = false, port = 7878 (to host on, and to join when the \
address has none). NO_COLOR set (no-color.org) also turns colour off."
    ))
}

/// Parse the process's command line.
pub fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os())
}

/// Parse `args` (the program's name first). `--completions` and `--man` stand alone and
/// need neither `--host` nor `--join`; anything else without one of them is the same
/// error as ever.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let strict = command().try_get_matches_from(&args);
    match strict {
        Ok(m) => Cli::from_arg_matches(&m),
        Err(e) if e.kind() == ErrorKind::MissingRequiredArgument => {
            let relaxed = command()
                .mut_group("mode", |g| g.required(false))
                .try_get_matches_from(&args)
                .and_then(|m| Cli::from_arg_matches(&m));
            match relaxed {
                Ok(cli) if cli.completions.is_some() || cli.man => Ok(cli),
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        parse_from(std::iter::once("tchat").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn file() -> Config {
        Config {
            name: Some("zoe".into()),
            bell: Some(Bell::All),
            color: Some(false),
            port: Some(9000),
            mouse: None,
            notify: None,
            links: None,
        }
    }

    #[test]
    fn the_definition_is_sound() {
        command().debug_assert();
    }

    #[test]
    fn the_config_file_fills_in_and_flags_win() {
        let c = cli(&["--host"]).with_config(&file());
        assert_eq!(c.name.as_deref(), Some("zoe"));
        assert_eq!(c.port(), 9000);
        assert_eq!(c.bell(), Bell::All);

        let c = cli(&["--host", "--name", "yan", "--port", "0", "--bell", "never"])
            .with_config(&file());
        assert_eq!(c.name.as_deref(), Some("yan"));
        assert_eq!(c.port(), 0);
        assert_eq!(c.bell(), Bell::Never);

        let c = cli(&["--host"]).with_config(&Config::default());
        assert_eq!(c.port(), DEFAULT_PORT);
        assert_eq!(c.bell(), Bell::Mention);
        assert_eq!(c.name, None);
    }

    #[test]
    fn a_join_address_without_a_port_takes_the_config_files() {
        let join = |addr: &str| {
            cli(&["--join", addr])
                .with_config(&file())
                .join_addresses()
                .into_iter()
                .next()
                .unwrap_or_default()
        };
        assert_eq!(join("example.org"), "example.org:9000");
        assert_eq!(join("example.org:80"), "example.org:80");
        assert_eq!(join("10.0.0.2"), "10.0.0.2:9000");
        assert_eq!(join("::1"), "[::1]:9000");
        assert_eq!(join("[::1]"), "[::1]:9000");
        assert_eq!(join("[::1]:80"), "[::1]:80");
        assert_eq!(join("fe80::1"), "[fe80::1]:9000");
        assert_eq!(join("host:99999"), "host:99999");
        assert_eq!(join("[::1"), "[::1");
        let plain = cli(&["--join", "example.org"]).with_config(&Config::default());
        assert_eq!(plain.join_addresses(), ["example.org"]);
    }

    #[test]
    fn completions_and_man_need_no_mode_and_stand_alone() {
        let c = cli(&["--completions", "bash"]);
        assert_eq!(c.completions, Some(clap_complete::Shell::Bash));
        assert!(cli(&["--man"]).man);
        for args in [
            &["tchat"][..],
            &["tchat", "--name", "x"],
            &["tchat", "--host", "--man"],
            &["tchat", "--join", "x", "--completions", "zsh"],
            &["tchat", "--completions", "tcsh"],
        ] {
            assert!(parse_from(args).is_err(), "{args:?}");
        }
        let e = parse_from(["tchat"]).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
    }
}
