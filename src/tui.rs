//! The full-screen event loop: one `select!` over the terminal's events and the
//! network's, feeding [`app::update`] and drawing only when something changed.
//!
//! Every way out of here restores the terminal: the normal return, an error, and a panic
//! (through the hook installed in [`Terminal::enter`]).

use std::io::{Write, stdout};
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, MouseEventKind,
};
use crossterm::execute;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::app::{self, App, Effect, Msg};
use crate::client::{Command, NetEvent};
use crate::text;
use crate::ui;

/// Save and restore the window title (XTWINOPS 22 and 23).
const TITLE_PUSH: &[u8] = b"\x1b[22;0t";
const TITLE_POP: &[u8] = b"\x1b[23;0t";

/// The least time between two frames (about 60 a second).
const FRAME: Duration = Duration::from_millis(16);

/// How many queued network events are folded into one frame at most, so that a burst
/// costs a few frames and keys still get their turn.
const BATCH: usize = 512;

/// The terminal in full-screen mode; leaving it (drop) puts the terminal back.
struct Terminal {
    inner: ratatui::DefaultTerminal,
    /// The mouse is ours (`mouse = true`): the wheel scrolls. Otherwise the terminal
    /// keeps it, so that text can be selected and copied as anywhere else.
    mouse: bool,
}

impl Terminal {
    fn enter(mouse: bool) -> std::io::Result<Self> {
        // `ratatui::init` enters raw mode and the alternate screen and installs a panic
        // hook that restores both; ours wraps it to also turn paste and mouse reports off.
        // NO_COLOR is honoured by the view (which then draws no colour, but keeps bold
        // and reverse video); crossterm's own handling of it would write a bare SGR
        // reset for every colour change, and take bold and reverse away with it.
        crossterm::style::force_color_output(true);
        let inner = ratatui::try_init()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(stdout(), DisableBracketedPaste, DisableMouseCapture);
            previous(info);
        }));
        let term = Terminal { inner, mouse };
        // Before anything reads keys: learn how this terminal draws emoji sequences.
        // It waits on the terminal (a fraction of a second at most): off the async
        // workers' hands.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let measure = if multi {
            tokio::task::block_in_place(measure_terminal)
        } else {
            measure_terminal()
        };
        text::set_measure(measure);
        // Keep the window's title, to give it back on leaving (xterm's title stack;
        // terminals without one ignore it).
        stdout().write_all(TITLE_PUSH)?;
        term.take_input_modes()?;
        Ok(term)
    }

    /// Bracketed paste, focus reports, and the mouse if it is ours.
    fn take_input_modes(&self) -> std::io::Result<()> {
        execute!(
            stdout(),
            EnableBracketedPaste,
            crossterm::event::EnableFocusChange
        )?;
        if self.mouse {
            execute!(stdout(), EnableMouseCapture)?;
        }
        Ok(())
    }
}

impl Terminal {
    /// Give the terminal back as it was (cooked, the main screen, no reports).
    fn leave() {
        let _ = execute!(
            stdout(),
            DisableBracketedPaste,
            DisableMouseCapture,
            crossterm::event::DisableFocusChange
        );
        // Give the window its own title back (saved on entering).
        let _ = stdout().write_all(TITLE_POP);
        ratatui::restore();
        let _ = stdout().flush();
    }

    /// Take the terminal again after [`Terminal::leave`] (back from a suspension), and
    /// have the next frame drawn whole.
    fn resume(&mut self) -> std::io::Result<()> {
        crossterm::terminal::enable_raw_mode()?;
        execute!(stdout(), crossterm::terminal::EnterAlternateScreen)?;
        self.take_input_modes()?;
        self.repaint()
    }

    /// Have the next frame drawn whole, on a cleared screen. (Not ratatui's `clear`,
    /// which asks the terminal where its cursor is first, and fails where no answer
    /// comes: a slow link, a terminal that does not answer.)
    fn repaint(&mut self) -> std::io::Result<()> {
        execute!(
            stdout(),
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
        )?;
        // A new terminal's last frame is blank, so the next draw writes every cell that
        // is not.
        self.inner = ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(stdout()))?;
        Ok(())
    }

    /// Stop the program (as Ctrl-Z or SIGTSTP asks) with the terminal given back, and
    /// take it again when the shell continues it (`fg`).
    fn suspend(&mut self) -> std::io::Result<()> {
        Terminal::leave();
        // SIGTSTP is caught (to get here), so stop with the signal nothing can catch;
        // this returns once the process is continued.
        signal_hook::low_level::raise(signal_hook::consts::SIGSTOP)?;
        self.resume()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        Terminal::leave();
    }
}

/// The signals the screen answers: SIGTERM and SIGHUP end it the way Esc does (the
/// terminal restored, goodbye said); SIGTSTP suspends it as Ctrl-Z does; SIGCONT (after
/// any stop) takes the terminal again and redraws.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    tstp: tokio::signal::unix::Signal,
    cont: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            tstp: signal(SignalKind::from_raw(libc::SIGTSTP))?,
            cont: signal(SignalKind::from_raw(libc::SIGCONT))?,
        })
    }

    async fn next(&mut self) -> Signaled {
        tokio::select! {
            _ = self.term.recv() => Signaled::End,
            _ = self.hup.recv() => Signaled::End,
            _ = self.tstp.recv() => Signaled::Stop,
            _ = self.cont.recv() => Signaled::Continued,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Signaled {
        std::future::pending().await
    }
}

enum Signaled {
    End,
    Stop,
    Continued,
}

/// Run the screen until the person leaves. `net` reports the connection; `commands`
/// reaches it.
pub async fn run(
    mut app: App,
    mouse: bool,
    commands: mpsc::UnboundedSender<Command>,
    mut net: mpsc::Receiver<NetEvent>,
) -> std::io::Result<()> {
    let mut term = Terminal::enter(mouse)?;
    let size = term.inner.size()?;
    let start = chrono::Utc::now().timestamp_millis();
    app::update(&mut app, Msg::Resize(size.width, size.height), start);
    let mut keys = EventStream::new();
    let mut net_open = true;
    let mut signals = Signals::new()?;
    draw(&mut term, &mut app)?;
    let mut title = String::new();
    set_title(&mut title, &app)?;
    // A frame at most every FRAME: a burst of keys or lines is taken in at the speed
    // it comes and drawn a few times, not once per key. The timer runs only while a
    // frame is owed, so an idle screen never wakes.
    let mut drawn_at = tokio::time::Instant::now();
    let mut owed = false;
    let frame_due = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(frame_due);
    // A second's tick, only while a countdown is on screen (offline): an idle screen
    // that is connected never wakes.
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            _ = ticks.tick(), if app.ticking() => Some(Msg::Tick),
            () = &mut frame_due, if owed => {
                owed = false;
                drawn_at = tokio::time::Instant::now();
                draw(&mut term, &mut app)?;
                continue;
            }
            signaled = signals.next() => match signaled {
                Signaled::End => return Ok(()),
                Signaled::Stop => {
                    term.suspend()?;
                    draw(&mut term, &mut app)?;
                    continue;
                }
                // Stopped by something we could not catch (SIGSTOP): the shell may have
                // put the terminal back in cooked mode meanwhile.
                Signaled::Continued => {
                    term.resume()?;
                    draw(&mut term, &mut app)?;
                    continue;
                }
            },
            ev = keys.next() => match ev {
                Some(Ok(ev)) => terminal_msg(ev),
                Some(Err(e)) => return Err(e),
                None => Some(Msg::Key(crossterm::event::KeyCode::Esc.into())),
            },
            ev = net.recv(), if net_open => match ev {
                Some(ev) => Some(Msg::Net(net_msg(ev))),
                None => {
                    net_open = false;
                    Some(Msg::Net(app::Net::Closed { reason: "the connection ended".into() }))
                }
            },
        };
        let mut msgs: Vec<Msg> = first.into_iter().collect();
        // Fold whatever else is already waiting into the same frame.
        while msgs.len() < BATCH {
            match net.try_recv() {
                Ok(ev) => msgs.push(Msg::Net(net_msg(ev))),
                Err(_) => break,
            }
        }
        let dirty = !msgs.is_empty();
        let mut clear = false;
        let mut ring = false;
        // One clock reading for the batch: it arrived at one moment.
        let now = chrono::Utc::now().timestamp_millis();
        for msg in msgs {
            for effect in app::update(&mut app, msg, now) {
                match effect {
                    Effect::Send { text, cid } => {
                        let _ = commands.send(Command::Say { text, cid });
                    }
                    Effect::Quit => return Ok(()),
                    Effect::Reconnect => {
                        let _ = commands.send(Command::RetryNow);
                    }
                    Effect::Notify { how, title, body } => notify(how, &title, &body)?,
                    Effect::Redraw => clear = true,
                    Effect::Bell => ring = true,
                    Effect::Suspend => {
                        term.suspend()?;
                        clear = true;
                    }
                }
            }
        }
        if clear {
            term.repaint()?;
            owed = false;
            drawn_at = tokio::time::Instant::now();
            draw(&mut term, &mut app)?;
        } else if dirty && !owed {
            if drawn_at.elapsed() >= FRAME {
                drawn_at = tokio::time::Instant::now();
                draw(&mut term, &mut app)?;
            } else {
                owed = true;
                frame_due.as_mut().reset(drawn_at + FRAME);
            }
        }
        set_title(&mut title, &app)?;
        if ring {
            // BEL: the terminal decides how to ring (sound, flash, urgency hint).
            let mut out = stdout();
            out.write_all(b"\x07")?;
            out.flush()?;
        }
    }
}

/// Ask the terminal for a desktop notification. `title` and `body` are sanitised text
/// (no control characters, so nothing can end the sequence early); `;` separates OSC
/// 777's fields, so it is left out of them.
fn notify(how: app::Notify, title: &str, body: &str) -> std::io::Result<()> {
    let field = |s: &str| s.replace(';', ",");
    let seq = match how {
        app::Notify::Off => return Ok(()),
        app::Notify::Osc9 => format!("\x1b]9;{}: {}\x07", field(title), field(body)),
        app::Notify::Osc777 => {
            format!("\x1b]777;notify;{};{}\x07", field(title), field(body))
        }
    };
    let mut out = stdout();
    out.write_all(seq.as_bytes())?;
    out.flush()
}

/// Set the window title to the app's, when it changed (`shown`: what it is now).
fn set_title(shown: &mut String, app: &App) -> std::io::Result<()> {
    let title = app.title();
    if *shown != title {
        execute!(stdout(), crossterm::terminal::SetTitle(&title))?;
        *shown = title;
    }
    Ok(())
}

/// Lay out what the screen shows (kept in the app for the next frames), then draw it.
fn draw(term: &mut Terminal, app: &mut App) -> std::io::Result<()> {
    app.settle();
    term.inner.draw(|f| ui::render(app, f))?;
    Ok(())
}

/// What the connection task reports, as the screen's own message.
fn net_msg(ev: NetEvent) -> app::Net {
    match ev {
        NetEvent::Plain => app::Net::Plain,
        NetEvent::Server(msg) => app::Net::Server(msg),
        NetEvent::Text { ts, text } => app::Net::Text { ts, text },
        NetEvent::Lost { reason, retry_in } => app::Net::Lost { reason, retry_in },
        NetEvent::Reconnecting { attempt } => app::Net::Reconnecting { attempt },
        NetEvent::Closed { reason } => app::Net::Closed { reason },
    }
}

fn terminal_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) => Some(Msg::Key(k)),
        Event::Paste(s) => Some(Msg::Paste(s)),
        // Only the wheel matters; motion reports would only cost redraws.
        Event::Mouse(m) => matches!(
            m.kind,
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown
        )
        .then_some(Msg::Mouse(m)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        Event::FocusGained => Some(Msg::Focus(true)),
        Event::FocusLost => Some(Msg::Focus(false)),
    }
}

/// How long the terminal has to answer where its cursor went after the probes. Every
/// terminal worth the name answers at once (it is a VT100 report); one that does not
/// costs this once, at start.
const PROBE_WAIT: Duration = Duration::from_millis(300);

/// Print each kind of emoji sequence terminals disagree on at the top left of the
/// (still empty) screen, ask where the cursor went after each (`CSI 6n`), and clear the
/// screen again: what this terminal answers is how it draws them. Unanswered (no
/// terminal on the other side, or one that does not report), widths are as Unicode
/// says.
fn measure_terminal() -> text::Measure {
    let mut ask = String::new();
    for (_, probe) in text::Sequence::PROBES {
        ask.push_str("\x1b[1;1H");
        ask.push_str(probe);
        ask.push_str("\x1b[6n");
    }
    ask.push_str("\x1b[1;1H\x1b[2J");
    let mut out = stdout();
    if out
        .write_all(ask.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return text::Measure::default();
    }
    let columns = read_cursor_reports(text::Sequence::PROBES.len(), PROBE_WAIT);
    let moved: Vec<(text::Sequence, Option<usize>)> = text::Sequence::PROBES
        .iter()
        .enumerate()
        .map(|(i, (kind, _))| (*kind, columns.get(i).map(|c| c.saturating_sub(1))))
        .collect();
    text::Measure::from_probes(&moved)
}

/// Read up to `n` cursor position reports from the terminal, for at most `wait`; the
/// column of each (1 is the left edge). Anything else read meanwhile (a key pressed
/// during the first split second) is dropped.
#[cfg(unix)]
fn read_cursor_reports(n: usize, wait: Duration) -> Vec<usize> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use std::io::Read;
    // Where crossterm reads keys from (`use-dev-tty`): the terminal itself.
    let Ok(mut tty) = std::fs::File::open("/dev/tty") else {
        return Vec::new();
    };
    let mut deadline = std::time::Instant::now() + wait;
    let mut extended = false;
    let mut got = Vec::new();
    loop {
        let reports = cursor_reports(&got);
        if reports.len() >= n {
            return reports;
        }
        let mut left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() && !extended && report_begun(&got) {
            // A report cut off by the deadline: its end would reach the input box as
            // keys. Wait a little for it.
            extended = true;
            deadline += REPORT_END_WAIT;
            left = REPORT_END_WAIT;
        }
        if left.is_zero() {
            return reports;
        }
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&tty, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return reports,
            Ok(_) => {
                let mut buf = [0u8; 256];
                match tty.read(&mut buf) {
                    Ok(0) | Err(_) => return reports,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return reports,
        }
    }
}

#[cfg(not(unix))]
fn read_cursor_reports(_n: usize, _wait: Duration) -> Vec<usize> {
    Vec::new()
}

/// How much longer to wait for the end of a report that had begun at the deadline.
const REPORT_END_WAIT: Duration = Duration::from_millis(100);

/// Whether `bytes` end inside a cursor position report (`ESC [` and digits or `;`).
fn report_begun(bytes: &[u8]) -> bool {
    let tail_start = bytes
        .iter()
        .rposition(|b| !(b.is_ascii_digit() || *b == b';'))
        .map_or(0, |i| i + 1);
    bytes[..tail_start].ends_with(b"\x1b[")
}

/// The columns of the cursor position reports (`ESC [ row ; col R`) in `bytes`, in
/// order. Written here because crossterm reads these only one at a time, with a fixed
/// two-second wait, and keeps its parser to itself.
fn cursor_reports(bytes: &[u8]) -> Vec<usize> {
    let mut cols = Vec::new();
    let mut rest = bytes;
    while let Some(at) = rest.windows(2).position(|w| w == b"\x1b[") {
        rest = &rest[at + 2..];
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b';'))
            .unwrap_or(rest.len());
        if rest.get(end) == Some(&b'R')
            && let Ok(params) = std::str::from_utf8(&rest[..end])
            && let Some((row, col)) = params.split_once(';')
            && row.parse::<u16>().is_ok()
            && let Ok(col) = col.parse::<usize>()
        {
            cols.push(col);
        }
        rest = &rest[end.min(rest.len())..];
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_reports_are_read_among_other_bytes() {
        let bytes = b"\x1b[1;5Rx\x1b[1;7R\x1b[A\x1b[12;3R\x1b[1;";
        assert_eq!(cursor_reports(bytes), [5, 7, 3]);
        assert_eq!(cursor_reports(b""), Vec::<usize>::new());
        let bad: &[u8] = b"\x1b[;R\x1b[1;R\x1b[1;99999999999999999999999R";
        assert_eq!(cursor_reports(bad), Vec::<usize>::new());
        assert!(report_begun(b"\x1b[1;5R\x1b[1;"));
        assert!(report_begun(b"\x1b["));
        assert!(!report_begun(b"\x1b[1;5R"));
        assert!(!report_begun(b"12;3"));
    }
}
