//! Line mode (`--plain`, or stdin/stdout not a terminal): lines from stdin are sent,
//! what the room says is printed one line at a time, end of stdin leaves. For scripts,
//! bots and logs: nothing but sanitised text reaches stdout.

use std::collections::HashMap;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::client::{Command, NetEvent};
use crate::protocol::ServerMsg;
use crate::sanitize;

/// How a line-mode session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Stdin ended, or the line `exit` (or `/quit`) was read, and every line sent was
    /// taken by the room.
    Left,
    /// The far side closed, saying why.
    Closed(String),
    /// The room refused `count` of the lines sent (too long, the flood limit, …):
    /// `reason` is what it said of the first.
    Refused { count: usize, reason: String },
    /// When leaving, `count` lines sent had not been confirmed by the room within
    /// [`CONFIRM_WAIT`].
    Unconfirmed { count: usize },
}

/// How long line mode, once its input has ended, waits for the room to confirm the
/// lines it sent (showing what arrives meanwhile) before it gives up on them.
pub const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Run line mode until stdin ends or the connection does. Once stdin ends (or `exit`),
/// it waits, at most [`CONFIRM_WAIT`], until the room has taken or refused every line
/// it sent, printing what arrives meanwhile: `echo hi | tchat --join … | cat` shows the
/// room's answer, and a refused line is an error, not silence.
pub async fn run(
    commands: mpsc::UnboundedSender<Command>,
    mut net: mpsc::Receiver<NetEvent>,
) -> std::io::Result<End> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    // Lines sent and not yet taken or refused by the room, by cid; whether each is a
    // command (a notice with its cid is then its answer, not a refusal).
    let mut ours: HashMap<String, bool> = HashMap::new();
    let mut refused: Vec<String> = Vec::new();
    // The far side is plain text: it confirms nothing.
    let mut plain = false;
    let mut next_cid = 0u64;
    let cid_prefix = format!("{:08x}", rand::random::<u32>());
    let mut room: Option<String> = None;
    let reader_gone = stdout_reader_gone();
    tokio::pin!(reader_gone);
    // Set once the input is over: the time to stop waiting for confirmations.
    let mut leaving: Option<tokio::time::Instant> = None;
    let done = |ours: &HashMap<String, bool>, refused: &Vec<String>| match refused.first() {
        Some(reason) => End::Refused {
            count: refused.len(),
            reason: reason.clone(),
        },
        None if ours.is_empty() => End::Left,
        None => End::Unconfirmed { count: ours.len() },
    };
    let mut held = crate::recent::Recent::<String, ()>::counted(crate::protocol::HELD_SHOWN);
    loop {
        if leaving.is_some() && ours.is_empty() {
            return Ok(done(&ours, &refused));
        }
        let give_up = leaving.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            // Whoever read our output has stopped (`| head`): nothing more can be shown.
            () = &mut reader_gone => return Err(std::io::ErrorKind::BrokenPipe.into()),
            () = tokio::time::sleep_until(give_up), if leaving.is_some() => {
                return Ok(done(&ours, &refused));
            }
            line = stdin.next_line(), if leaving.is_none() => match line? {
                // `/quit` leaves here too: sent to the host, it would close the
                // connection, and the client would take that for a lost one and rejoin.
                Some(line) if line.trim() == "exit" || is_quit(&line) => {
                    leaving = Some(tokio::time::Instant::now() + CONFIRM_WAIT);
                }
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    next_cid += 1;
                    let cid = format!("{cid_prefix}-{next_cid}");
                    if !plain {
                        let command = !matches!(
                            crate::protocol::parse_command(&line),
                            crate::protocol::Command::Say(_)
                        );
                        ours.insert(cid.clone(), command);
                    }
                    let _ = commands.send(Command::Say { text: line, cid });
                }
                None => leaving = Some(tokio::time::Instant::now() + CONFIRM_WAIT),
            },
            ev = net.recv() => {
                let Some(ev) = ev else { return Ok(End::Closed("connection lost".into())) };
                // The room took a line of ours (its echo, what its command made or
                // said, an ack of a resend), or refused a message (a notice about it).
                if let NetEvent::Server(msg) = &ev
                    && let Some(cid) = msg.cid()
                    && let Some(command) = ours.remove(cid)
                    && let ServerMsg::Notice { text, .. } = msg
                    && !command
                {
                    // A host's words, bound for stderr: safe for a terminal first.
                    refused.push(crate::sanitize::line(text));
                }
                let text = match ev {
                    // A plain far side confirms nothing: what was written was sent.
                    NetEvent::Plain => {
                        plain = true;
                        ours.clear();
                        None
                    }
                    NetEvent::Text { text, .. } => Some(format!("{text}\n")),
                    // Our own line, as we typed it: not shown again.
                    NetEvent::Server(ServerMsg::Msg { cid: Some(_), .. }) => None,
                    NetEvent::Server(ServerMsg::Closing { reason, .. }) => {
                        write(&format!("{}{reason}\n", crate::protocol::NOTICE_PREFIX))?;
                        return Ok(End::Closed(reason));
                    }
                    NetEvent::Lost { reason, retry_in } => Some(format!(
                        "* {reason}; trying again in {} s\n",
                        retry_in.as_secs_f64().ceil()
                    )),
                    NetEvent::Reconnecting { .. } => None,
                    NetEvent::Server(ServerMsg::Welcome { room: ref epoch, .. }) if room.as_ref() != Some(epoch) => {
                        let restarted = room.replace(epoch.clone()).is_some();
                        let NetEvent::Server(msg) = ev else { continue };
                        let mut text = msg.to_plain();
                        if restarted {
                            text = format!("* the host restarted the room: history starts again\n{text}");
                        }
                        Some(text)
                    }
                    // A line shown held (the host's log was away), and its numbered
                    // copy later: written once.
                    NetEvent::Server(msg) if msg.held().is_some() => {
                        let key = msg.held().unwrap_or_default().to_owned();
                        if msg.is_held_copy() {
                            held.keep(key, ());
                            Some(msg.to_plain())
                        } else if held.take(&key).is_some() {
                            None
                        } else {
                            Some(msg.to_plain())
                        }
                    }
                    NetEvent::Server(msg) => Some(msg.to_plain()),
                    NetEvent::Closed { reason } => return Ok(End::Closed(reason)),
                };
                if let Some(text) = text {
                    write(&text)?;
                }
            }
        }
    }
}

fn is_quit(line: &str) -> bool {
    crate::protocol::parse_command(line) == crate::protocol::Command::Quit
}

/// Write to stdout at once, and hear at once if no one reads it any more (`| head`):
/// tokio's stdout reports a failed write only with the next one, which may never come.
/// A line is a few bytes; a reader that stops reading holds up this task alone.
fn write(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let text = sanitize::text(text);
    tokio::task::block_in_place(|| {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    })
}

/// Resolves when stdout is a pipe whose reader has gone (the kernel flags the pipe's
/// write end with an error), so that `tchat … | head -1` ends once `head` has its line,
/// not at the next line the room happens to send. Never, for a terminal or a file.
///
/// A thread of its own waits in `poll` for nothing but that error; it is not joined
/// (a program that ends takes it along).
async fn stdout_reader_gone() {
    #[cfg(unix)]
    {
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("stdout-watch".into())
                .spawn(move || {
                    use rustix::event::{PollFd, PollFlags, poll};
                    let stdout = std::io::stdout();
                    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
                    // Only POLLERR / POLLHUP can wake it: the reader has gone.
                    while poll(&mut fds, None).is_err() {}
                    let _ = tx.send(());
                });
            if spawned.is_ok() && rx.await.is_ok() {
                return;
            }
        }
    }
    std::future::pending::<()>().await
}
