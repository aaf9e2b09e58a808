//! The `tchat` program: parse the command line, start the right mode, and turn any
//! failure into one line on stderr and a non-zero status.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

use tchat::app::{App, Role};
use tchat::cli::Cli;
use tchat::client::{self, Command, plain_io_error};
use tchat::server::room::Rules;
use tchat::server::{self, Server};
use tchat::{addrs, lineio, tui};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!(
                "tchat: {} (tchat --help shows usage)",
                one_line(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tchat: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for tasks still blocked on a peer: the conversation is over.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tchat: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let line_mode =
        cli.plain || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    if cli.host {
        host(cli, line_mode).await
    } else {
        join(cli, line_mode).await
    }
}

async fn host(cli: Cli, line_mode: bool) -> Result<(), String> {
    let bind = SocketAddr::new(cli.bind, cli.port);
    let listener = TcpListener::bind(bind).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another program has it; try another --port, or --port 0 for any free one)"
        } else {
            ""
        };
        format!(
            "cannot host on {}: {}{hint}",
            addrs::with_port(cli.bind, cli.port),
            plain_io_error(&e)
        )
    })?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let addresses = addrs::room_addresses(cli.bind, port);
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let config = server::Config {
        rules: Rules {
            max_line: as_usize(cli.max_line),
            burst: cli.burst,
            rate: cli.rate,
            history: cli.history,
        },
        max_backlog: as_usize(cli.max_backlog),
        max_peers: as_usize(cli.max_peers),
        log: cli.headless,
        address: addresses.first().cloned().unwrap_or_default(),
        ..server::Config::default()
    };
    if cli.headless || line_mode {
        eprintln!("tchat: hosting a room at {}", addresses.join(", "));
    }
    if cli.headless {
        server::run(listener, config, stop_signal()).await;
        return Ok(());
    }
    let server = Server::spawn(listener, config).map_err(|e| e.to_string())?;
    let seat = server.connect_local().await.map_err(|e| e.to_string())?;
    let name = cli.name_or("host");
    let conn = client::start(seat, name.clone());
    let role = Role::Host { addresses };
    take_part(conn, role, name, line_mode, Some(server)).await
}

async fn join(cli: Cli, line_mode: bool) -> Result<(), String> {
    let addr = cli.join.clone().unwrap_or_default();
    let (stream, _) = client::connect(&addr).await?;
    let name = cli.name_or("guest");
    // The full screen waits for a host that closed its room to come back; a script in
    // line mode ends there instead.
    let retry = client::Retry {
        after_closing: !line_mode,
        ..client::Retry::default()
    };
    let conn = client::join(stream, addr.clone(), name.clone(), retry);
    let role = Role::Joiner { address: addr };
    take_part(conn, role, name, line_mode, None).await
}

/// Be in the room until the person leaves, then say goodbye. A host closes its room
/// first, so that everyone hears "the host left; the room is closed" and nothing else.
async fn take_part(
    conn: client::Handle,
    role: Role,
    name: String,
    line_mode: bool,
    room: Option<Server>,
) -> Result<(), String> {
    let client::Handle {
        commands,
        events,
        task,
    } = conn;
    let result = if line_mode {
        match lineio::run(commands.clone(), events).await {
            Ok(lineio::End::Left) => Ok(()),
            Ok(lineio::End::Closed(reason)) => {
                eprintln!("tchat: {reason}");
                Ok(())
            }
            Err(e) => Err(format!("line mode: {e}")),
        }
    } else {
        let offset = chrono::Local::now().offset().local_minus_utc();
        let app = App::new(role, name, 80, 24, offset);
        tui::run(app, commands.clone(), events)
            .await
            .map_err(|e| format!("terminal: {e}"))
    };
    if let Some(room) = room {
        room.shutdown().await;
    }
    let _ = commands.send(Command::Leave);
    let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    result
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
    eprintln!("tchat: stopping; telling everyone the room is closed");
}
