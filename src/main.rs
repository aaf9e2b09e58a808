//! The `tchat` program: parse the command line, start the right mode, and turn any
//! failure into one line on stderr and a non-zero status.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use tchat::app::{App, Bell, Lock, Role, Settings};
use tchat::cli::{self, Cli};
use tchat::client::{self, Command, NetEvent, plain_io_error};
use tchat::config;
use tchat::invite::Invitation;
use tchat::link;
use tchat::log::Log;
use tchat::server::room::Rules;
use tchat::server::{self, Server};
use tchat::{addrs, lineio, tui};

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            tchat::note!(
                "tchat: {} (tchat --help shows usage)",
                one_line(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    if let Some(shell) = cli.completions {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cli::command(), "tchat", &mut script);
        return print(&script);
    }
    if cli.man {
        let mut page = Vec::new();
        if let Err(e) = clap_mangen::Man::new(cli::command()).render(&mut page) {
            tchat::note!("tchat: cannot make the manual page: {e}");
            return ExitCode::FAILURE;
        }
        return print(&page);
    }
    // A bad config file is a bad start, like bad arguments.
    let env = std::env::var_os(config::ENV);
    let config = match config::load(cli.config.as_deref(), env.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tchat::note!("tchat: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = cli.with_config(&config);
    let look = Look {
        bell: cli.bell(),
        color: config::color_enabled(std::env::var_os("NO_COLOR").as_deref(), config.color),
        mouse: config.mouse.unwrap_or(false),
        notify: config.notify.unwrap_or_default(),
        links: config.links.unwrap_or(true),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tchat::note!("tchat: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli, look));
    // Don't wait for tasks still blocked on a peer: the conversation is over.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tchat::note!("tchat: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Write `bytes` to stdout: a completion script or the manual page. A reader that
/// stopped early (`| head`) is no failure.
fn print(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            tchat::note!("tchat: {}", plain_io_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// How the screen behaves, from the flags, the config file and the environment.
#[derive(Debug, Clone, Copy)]
struct Look {
    bell: Bell,
    color: bool,
    /// Take the mouse from the terminal (see [`config::Config::mouse`]).
    mouse: bool,
    notify: tchat::app::Notify,
    /// Web links as hyperlinks (see [`config::Config::links`]).
    links: bool,
}

/// How this person takes part: screen or lines, how the screen looks, and a log.
struct Part {
    line_mode: bool,
    look: Look,
    log: Option<Log>,
}

async fn run(cli: Cli, look: Look) -> Result<(), String> {
    // A terminal that cannot place a cursor (TERM=dumb: an editor's shell buffer, some
    // CI logs) gets lines too.
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    let line_mode =
        cli.plain || dumb || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    // Before anything starts, so that a log that cannot be written stops nothing midway.
    let log = cli.log.as_deref().map(Log::open).transpose()?;
    let part = Part {
        line_mode,
        look,
        log,
    };
    if cli.host {
        host(cli, part).await
    } else {
        join(cli, part).await
    }
}

async fn host(cli: Cli, part: Part) -> Result<(), String> {
    let line_mode = part.line_mode;
    let bind = SocketAddr::new(cli.bind, cli.port());
    let listener = tchat::net::listen(bind).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another program has it; try another --port, or --port 0 for any free one)"
        } else {
            ""
        };
        format!(
            "cannot host on {}: {}{hint}",
            addrs::with_port(cli.bind, cli.port()),
            plain_io_error(&e)
        )
    })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let port = bound.port();
    // What it is bound to (`::` falls back to 0.0.0.0 without IPv6).
    let addresses = addrs::room_addresses(bound.ip(), port);
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let max_peers = fit_peers_to_files(as_usize(cli.max_peers));
    let key_dir = tchat::tls::default_dir()
        .ok_or("no config directory to keep the host key in (set HOME or XDG_CONFIG_HOME)")?;
    let key = tchat::tls::HostKey::load_or_make(&key_dir)?;
    let fingerprint = key.fingerprint();
    let code = if cli.private {
        Some(room_code(cli.keep.as_deref())?)
    } else {
        None
    };
    // Others cannot reach this machine's loopback: leave it out where there is more.
    let reachable: Vec<String> = addresses
        .iter()
        .filter(|a| !addrs::is_loopback(a))
        .cloned()
        .collect();
    let shared = if reachable.is_empty() {
        &addresses
    } else {
        &reachable
    };
    // A clustered room: joined first, so that the invitation lists the room's other
    // hosts too (tried after this one), as they last said where they are.
    if cli.cluster.is_some() && cli.max_line > server::cluster::MAX_LINE as u64 {
        return Err(format!(
            "--max-line {} is more than a clustered room's log takes (at most {})",
            cli.max_line,
            server::cluster::MAX_LINE
        ));
    }
    let mut joined = match &cli.cluster {
        Some(url) => Some(
            server::cluster::join(
                url,
                cli.cluster_ca.as_deref(),
                &cli.room,
                cli.history,
                cli.log_keep,
            )
            .await?,
        ),
        None => None,
    };
    let mut listed = shared.clone();
    if let Some(joined) = &mut joined {
        joined.addrs = shared.clone();
        joined.key = fingerprint.clone();
        for (addr, key) in joined.others.iter().filter(|(a, _)| !shared.contains(a)) {
            // A joiner holds every host to the one key its invitation names: a host
            // with another could not take it, so it is not listed.
            if key.is_empty() || *key == fingerprint {
                listed.push(addr.clone());
            } else if cli.headless || line_mode {
                tchat::note!(
                    "tchat: the room's host at {addr} holds another host key, so it is not in the invitation (copy host.key from one host to the others)"
                );
            }
        }
    }
    let invitation =
        Invitation::new(&listed, &fingerprint, code.as_ref().map(|c| c.as_str())).token();
    let config = server::Config {
        rules: Rules {
            max_line: as_usize(cli.max_line),
            max_lines: cli.max_lines,
            burst: cli.burst,
            rate: cli.rate,
            addr_burst: cli.addr_burst,
            addr_rate: cli.addr_rate,
            history: cli.history,
            max_catchup: cli.max_catchup,
            resend_memory: cli.resend_memory,
            resend_memory_ms: (cli.resend_memory_secs as i64).saturating_mul(1000),
        },
        max_backlog: as_usize(cli.max_backlog),
        max_peers,
        max_per_address: cli.max_per_address,
        joins_per_minute: cli.joins_per_minute,
        hello_wait: std::time::Duration::from_millis(cli.hello_wait),
        log: cli.headless,
        address: addresses.first().cloned().unwrap_or_default(),
        keep: cli.keep.clone(),
        tls: Some(tchat::tls::server_config(&key)?),
        code,
        ..server::Config::default()
    };
    let server = match (joined, &cli.cluster) {
        (None, _) | (_, None) => Server::spawn(listener, config),
        (Some(joined), Some(url)) => {
            let url = server::cluster::shown_url(url);
            if cli.headless || line_mode {
                tchat::note!(
                    "tchat: room {} on the cluster at {url} ({} events of its log read)",
                    cli.room,
                    joined.past.len()
                );
            }
            Server::spawn_clustered(listener, config, joined)
        }
    }
    .map_err(|e| e.to_string())?;
    if cli.headless || line_mode {
        tchat::note!("tchat: hosting a room at {}", addresses.join(", "));
        tchat::note!(
            "tchat: tchat peers are encrypted; the host key is {}",
            tchat::tls::short(&fingerprint)
        );
        tchat::note!("tchat: others join with: tchat --join {invitation}");
    }
    if cli.headless {
        stop_signal().await;
        server.shutdown().await;
        return Ok(());
    }
    let seat = server.connect_local().await.map_err(|e| e.to_string())?;
    let name = cli.name_or("host");
    // The host's own seat is never dropped for falling behind (it skips ahead); should
    // it be cut all the same, it rejoins its room at once, like any joiner would.
    let retry = client::Retry {
        first_delay: std::time::Duration::from_millis(100),
        max_delay: std::time::Duration::from_secs(1),
        after_closing: false,
    };
    let conn = client::start_rejoining(seat, name.clone(), retry, server.local_connector());
    let role = Role::Host { addresses };
    let lock = Lock::Encrypted(tchat::tls::short(&fingerprint));
    let who = Who {
        role,
        lock,
        invitation: Some(invitation),
    };
    take_part(conn, who, name, part, Some(server)).await
}

/// Whether the terminal says it has 256 colours (or more).
fn many_colors() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default().to_lowercase();
    let colorterm = var("COLORTERM");
    colorterm == "truecolor" || colorterm == "24bit" || var("TERM").contains("256color")
}

/// Each connection is a file descriptor: raise this process's soft limit on them to
/// the hard one, and if `--max-peers` still cannot fit, lower it and say so (one line)
/// rather than fail to accept later with the room half full.
fn fit_peers_to_files(max_peers: usize) -> usize {
    // Descriptors the program needs besides its peers: the terminal, the listener,
    // a log, the runtime's own.
    const SPARE: u64 = 64;
    let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX) else {
        return max_peers;
    };
    let fits = usize::try_from(limit.saturating_sub(SPARE))
        .unwrap_or(usize::MAX)
        .max(1);
    if max_peers > fits {
        tchat::note!(
            "tchat: --max-peers lowered from {max_peers} to {fits}: this system allows {limit} open files (raise it with ulimit -n)"
        );
        return fits;
    }
    max_peers
}

async fn join(cli: Cli, mut part: Part) -> Result<(), String> {
    let line_mode = part.line_mode;
    // With the config file's port when the address names none.
    let arg = cli.join.clone().unwrap_or_default();
    // An invitation names the addresses to try, in order, the host's key, and a private
    // room's code.
    let (addrs, invited, invited_code) = if Invitation::looks_like(&arg) {
        let inv = Invitation::parse(&arg)?;
        (inv.addrs, Some(inv.key), inv.code)
    } else {
        (cli.join_addresses(), None, None)
    };
    let typed = cli
        .code
        .clone()
        .or_else(|| std::env::var("TCHAT_CODE").ok().filter(|c| !c.is_empty()))
        .or(invited_code);
    let code = match typed {
        Some(c) => Some(tchat::code::Code::parse(&c).ok_or_else(|| {
            "that is not a room code: a number and two words, as 4821-tiger-piano".to_owned()
        })?),
        None => None,
    };
    let mut trust = link::Trust::new(
        tchat::tls::KnownHosts::default_path(),
        invited,
        cli.accept_new_key,
    );
    trust.code = code;
    let (stream, security, addr) = link::reach(&addrs, &trust).await?;
    part.log = part.log.map(|l| l.far_side(&addr));
    let lock = match &security {
        link::Security::Encrypted { fingerprint } => {
            Lock::Encrypted(tchat::tls::short(fingerprint))
        }
        link::Security::Plain => Lock::Plain,
    };
    let name = cli.name_or("guest");
    // The full screen waits for a host that closed its room to come back; a script in
    // line mode ends there instead.
    let retry = client::Retry {
        after_closing: !line_mode,
        ..client::Retry::default()
    };
    // Rejoining tries the address that answered first, then the others.
    let mut rejoin = vec![addr.clone()];
    rejoin.extend(addrs.iter().filter(|a| **a != addr).cloned());
    let conn = client::join(stream, rejoin, name.clone(), retry, trust);
    let who = Who {
        role: Role::Joiner { address: addr },
        lock,
        invitation: None,
    };
    take_part(conn, who, name, part, None).await
}

/// A private room's code: kept beside the room's file (`FILE.code`, 0600) when there is
/// one, so that a restarted room keeps it; new otherwise.
fn room_code(keep: Option<&std::path::Path>) -> Result<tchat::code::Code, String> {
    use tchat::code::Code;
    let Some(keep) = keep else {
        return Ok(Code::generate());
    };
    let path = std::path::PathBuf::from(format!("{}.code", keep.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => Code::parse(&text)
            .ok_or_else(|| format!("{} does not hold a room code", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let code = Code::generate();
            tchat::tls::write_private(&path, format!("{code}\n").as_bytes())
                .map_err(|e| format!("cannot keep the room's code in {}: {e}", path.display()))?;
            Ok(code)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Who this seat is: host or joiner, how its link is secured, and the invitation it
/// can give.
struct Who {
    role: Role,
    lock: Lock,
    invitation: Option<String>,
}

/// Be in the room until the person leaves, then say goodbye. A host closes its room
/// first, so that everyone hears "the host left; the room is closed" and nothing else.
async fn take_part(
    conn: client::Handle,
    who: Who,
    name: String,
    part: Part,
    room: Option<Server>,
) -> Result<(), String> {
    let client::Handle {
        commands,
        events,
        task,
    } = conn;
    let (events, logger) = match part.log {
        Some(log) => {
            let (events, logger) = logged(events, log);
            (events, Some(logger))
        }
        None => (events, None),
    };
    let result = if part.line_mode {
        if who.lock == Lock::Plain {
            tchat::note!(
                "tchat: the far side does not speak TLS: talking in clear (not encrypted)"
            );
        }
        match lineio::run(commands.clone(), events).await {
            Ok(lineio::End::Left) => Ok(()),
            Ok(lineio::End::Closed(reason)) => {
                tchat::note!("tchat: {reason}");
                Ok(())
            }
            Ok(lineio::End::Refused { count, reason }) => {
                // The room's words are addressed to the person: "your line was not
                // sent: it is longer than …".
                let why = reason
                    .strip_prefix("your line was not sent: ")
                    .unwrap_or(&reason);
                let what = if count == 1 {
                    "a line".to_owned()
                } else {
                    format!("{count} lines")
                };
                Err(format!("the room refused {what}: {why}"))
            }
            Ok(lineio::End::Unconfirmed { count }) => Err(format!(
                "{count} line(s) sent were not confirmed by the room within {} s",
                lineio::CONFIRM_WAIT.as_secs()
            )),
            // Whoever read our output has stopped (`| head`): leave quietly, as
            // other tools do.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(format!("line mode: {e}")),
        }
    } else {
        let offset = chrono::Local::now().offset().local_minus_utc();
        let app = App::new(who.role, name, 80, 24, offset)
            .with(Settings {
                bell: part.look.bell,
                notify: part.look.notify,
                links: part.look.links,
                color: part.look.color,
                many_colors: many_colors(),
            })
            .secured(who.lock);
        let app = match who.invitation {
            Some(token) => app.invite(token),
            None => app,
        };
        tui::run(app, part.look.mouse, commands.clone(), events)
            .await
            .map_err(|e| format!("terminal: {e}"))
    };
    if let Some(room) = room {
        room.shutdown().await;
    }
    let _ = commands.send(Command::Leave);
    let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    if let Some(logger) = logger {
        // The connection has ended, and with it the events: the log is complete.
        if let Ok(Ok(log)) = tokio::time::timeout(Duration::from_secs(1), logger).await {
            if let Some(e) = log.error() {
                return result.and(Err(format!("log: cannot write: {e}")));
            }
        }
    }
    result
}

/// Pass the connection's events on unchanged, writing each down in `log`. Once the screen (or line mode) is gone, what still arrives until the
/// connection ends is logged all the same: the echo of a last line, the room closing.
/// Gives the log back at the end.
fn logged(
    mut events: mpsc::Receiver<NetEvent>,
    mut log: Log,
) -> (mpsc::Receiver<NetEvent>, JoinHandle<Log>) {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Some(ev) = events.recv().await {
            log.record(chrono::Utc::now().timestamp_millis(), &ev);
            if let Some(to) = &tx {
                if to.send(ev).await.is_err() {
                    tx = None;
                }
            }
        }
        log
    });
    (rx, task)
}

/// clap's message for a bad command line, as one line: its first paragraph, without
/// the `error:` label, the tips, or the usage that follows.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tchat::note!("tchat: stopping; telling everyone the room is closed");
}
