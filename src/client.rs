//! The joiner's connection: one task that owns the socket and talks to the rest of the
//! program only through channels: [`Command`]s in, [`NetEvent`]s out.
//!
//! On connect it listens briefly for a tchat host's greeting. If one comes, it answers
//! `hello` and speaks the structured dialect; if not (a plain socket program, `nc -l`),
//! it falls back to plain text: what you type goes out as a line, whatever arrives is
//! shown, with or without a newline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::net::{LineReader, Read, write_queued};
use crate::protocol::{self, ClientMsg, Frame, PROTOCOL_VERSION, ServerMsg};

/// How long to wait for a tchat greeting before treating the far side as plain. Long
/// enough for a slow link; what a person types meanwhile waits, and is not lost.
pub const GREETING_WAIT: Duration = Duration::from_secs(1);

/// How long to try to reach a host before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the program asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a message. `cid` lets the room's echo be matched to the pending line.
    Say { text: String, cid: String },
    /// Leave: say goodbye and close.
    Leave,
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The far side is a plain socket program, not a tchat host.
    Plain,
    /// An event from a tchat host (the first is always a `Welcome`).
    Server(ServerMsg),
    /// Text from a plain far side, one line of it, stamped on arrival.
    Text { ts: i64, text: String },
    /// The connection is over.
    Closed { reason: String },
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

/// Start the connection task on `stream`, joining as `name`.
pub fn start<S>(stream: S, name: String) -> Handle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (commands, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, events) = mpsc::channel(1024);
    let task = tokio::spawn(run(stream, name, cmd_rx, ev_tx));
    Handle {
        commands,
        events,
        task,
    }
}

async fn run<S>(
    stream: S,
    name: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<NetEvent>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    // A host's limit applies to text; anything larger than this is not a line of chat.
    let mut lines = LineReader::new(r, protocol::frame_limit(1024 * 1024));
    let (out, out_rx) = mpsc::channel::<Bytes>(256);
    let mut writer = tokio::spawn(write_queued(w, out_rx, None));

    // The greeting decides the dialect.
    let structured = match lines.next(Some(GREETING_WAIT)).await {
        Read::Frame(Frame::Line(line)) if protocol::parse_banner(&line).is_some() => true,
        Read::Frame(Frame::Line(line)) => {
            let _ = events.send(NetEvent::Plain).await;
            let _ = events.send(text(line)).await;
            false
        }
        Read::Frame(Frame::TooLong) | Read::Quiet => {
            let _ = events.send(NetEvent::Plain).await;
            false
        }
        Read::Closed(reason) => {
            let reason = reason.unwrap_or_else(|| "the other side closed the connection".into());
            let _ = events.send(NetEvent::Closed { reason }).await;
            return;
        }
    };
    if structured {
        let hello = ClientMsg::Hello {
            v: PROTOCOL_VERSION,
            name,
            client: Some(format!("tchat {}", env!("CARGO_PKG_VERSION"))),
        };
        let _ = out.send(Bytes::from(hello.encode())).await;
    }

    let mut closing_reason: Option<String> = None;
    let reason = loop {
        tokio::select! {
            read = lines.next(None) => match read {
                Read::Frame(Frame::Line(line)) => {
                    let event = if structured {
                        match ServerMsg::decode(&line) {
                            Ok(ServerMsg::Closing { ts, reason }) => {
                                closing_reason = Some(reason.clone());
                                NetEvent::Server(ServerMsg::Closing { ts, reason })
                            }
                            Ok(msg) => NetEvent::Server(msg),
                            // Not for us to understand (a newer host?): show it as text.
                            Err(_) => text(line),
                        }
                    } else {
                        text(line)
                    };
                    // Nobody listening any more means the program is leaving: keep
                    // going until its `Leave` arrives, so nothing it sent is lost.
                    let _ = events.send(event).await;
                }
                Read::Frame(Frame::TooLong) => {}
                Read::Quiet => {}
                Read::Closed(reason) => break Some(
                    closing_reason
                        .clone()
                        .or(reason.map(|r| format!("connection lost: {r}")))
                        .unwrap_or_else(|| "the other side closed the connection".into()),
                ),
            },
            cmd = commands.recv() => match cmd {
                Some(Command::Say { text, cid }) => {
                    let bytes = if structured {
                        ClientMsg::Say { text, cid: Some(cid) }.encode()
                    } else {
                        plain_lines(&text)
                    };
                    if out.send(Bytes::from(bytes)).await.is_err() {
                        break Some("connection lost".into());
                    }
                }
                Some(Command::Leave) | None => {
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
                    return;
                }
            },
            _ = &mut writer => break Some("connection lost".into()),
        }
    };
    if let Some(reason) = reason {
        let _ = events.send(NetEvent::Closed { reason }).await;
    }
    // Keep answering `Leave` so the program can finish the same way in every case.
    while let Some(cmd) = commands.recv().await {
        if cmd == Command::Leave {
            break;
        }
    }
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
    fn multi_line_text_goes_out_as_lines() {
        assert_eq!(plain_lines("a\nb"), "a\nb\n");
        assert_eq!(plain_lines("one"), "one\n");
    }
}
