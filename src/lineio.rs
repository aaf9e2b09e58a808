//! Line mode (`--plain`, or stdin/stdout not a terminal): lines from stdin are sent,
//! what the room says is printed one line at a time, end of stdin leaves. For scripts,
//! bots and logs: nothing but sanitised text reaches stdout.

use std::collections::HashSet;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::client::{Command, NetEvent};
use crate::protocol::ServerMsg;
use crate::sanitize;

/// How a line-mode session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Stdin ended, or the line `exit` (or `/quit`) was read.
    Left,
    /// The far side closed, saying why.
    Closed(String),
}

/// Run line mode until stdin ends or the connection does.
pub async fn run(
    commands: mpsc::UnboundedSender<Command>,
    mut net: mpsc::Receiver<NetEvent>,
) -> std::io::Result<End> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut ours: HashSet<String> = HashSet::new();
    let mut next_cid = 0u64;
    let cid_prefix = format!("{:08x}", rand::random::<u32>());
    let mut room: Option<String> = None;
    let reader_gone = stdout_reader_gone();
    tokio::pin!(reader_gone);
    loop {
        tokio::select! {
            // Whoever read our output has stopped (`| head`): nothing more can be shown.
            () = &mut reader_gone => return Err(std::io::ErrorKind::BrokenPipe.into()),
            line = stdin.next_line() => match line? {
                // `/quit` leaves here too: sent to the host, it would close the
                // connection, and the client would take that for a lost one and rejoin.
                Some(line) if line.trim() == "exit" || is_quit(&line) => return Ok(End::Left),
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    next_cid += 1;
                    let cid = format!("{cid_prefix}-{next_cid}");
                    ours.insert(cid.clone());
                    let _ = commands.send(Command::Say { text: line, cid });
                }
                None => return Ok(End::Left),
            },
            ev = net.recv() => {
                let Some(ev) = ev else { return Ok(End::Closed("connection lost".into())) };
                let text = match ev {
                    NetEvent::Plain => None,
                    NetEvent::Text { text, .. } => Some(format!("{text}\n")),
                    NetEvent::Server(ServerMsg::Msg { cid: Some(cid), .. }) if ours.remove(&cid) => None,
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
