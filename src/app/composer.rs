//! The input box: the text being written, its line editing (by grapheme, Emacs keys,
//! a kill ring), the lines sent before (Up/Down) and Tab completion. Pure.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui_textarea::{CursorMove, TextArea, WrapMode};

use crate::complete;
use crate::sanitize;
use crate::text;

/// Kills remembered for Ctrl-Y and Alt-Y.
const KILL_RING: usize = 16;

/// What is being written, and what helps write it.
pub struct Composer {
    input: TextArea<'static>,
    /// Lines sent before, oldest first; `recall` indexes it while browsing with Up/Down,
    /// and `draft` keeps what was being written when browsing began.
    sent: Vec<String>,
    recall: Option<usize>,
    draft: String,
    /// What was killed (Ctrl-U/K/W, Alt-D), newest first, for Ctrl-Y and Alt-Y.
    kills: VecDeque<String>,
    /// The last key yanked: which kill, and how many chars of it are in the box.
    yanked: Option<(usize, usize)>,
    /// The completion Tab made last, for the next Tab to cycle from.
    completion: Option<complete::Completion>,
}

impl Default for Composer {
    fn default() -> Self {
        Composer {
            input: new_input(),
            sent: Vec::new(),
            recall: None,
            draft: String::new(),
            kills: VecDeque::new(),
            yanked: None,
            completion: None,
        }
    }
}

impl Composer {
    /// The text in the box, its lines joined by `\n`.
    pub fn text(&self) -> String {
        self.input.lines().join("\n")
    }

    /// The box's lines.
    pub fn lines(&self) -> &[String] {
        self.input.lines()
    }

    /// The cursor: (line, char offset in it).
    pub fn cursor(&self) -> (usize, usize) {
        let c = self.input.cursor();
        (c.0, c.1)
    }

    /// Empty the box (the line was sent or answered here).
    pub(super) fn clear(&mut self) {
        self.input = new_input();
    }

    /// Put `text` in the box, the cursor at its end.
    fn set(&mut self, text: &str) {
        self.input = new_input();
        self.input.insert_str(text);
    }

    /// A key other than Alt-Y came: a later Alt-Y has no yank to swap.
    pub(super) fn end_yank(&mut self) {
        self.yanked = None;
    }

    /// A key other than Tab came: a later Tab starts a new completion.
    pub(super) fn end_completion(&mut self) {
        self.completion = None;
    }

    /// Insert a line break (Alt-Enter).
    pub(super) fn newline(&mut self) {
        self.input.insert_newline();
    }

    /// Whether the cursor is on the first line (Up recalls) or the last (Down does).
    pub(super) fn on_first_line(&self) -> bool {
        self.input.cursor().0 == 0
    }

    pub(super) fn on_last_line(&self) -> bool {
        self.input.cursor().0 + 1 >= self.input.lines().len()
    }

    /// Pasted text, as a terminal sends it: line breaks as CR are made line breaks, tabs
    /// spaces, and nothing that could drive a terminal is kept.
    pub(super) fn paste(&mut self, pasted: &str) {
        let normal = pasted.replace("\r\n", "\n").replace('\r', "\n");
        let clean: String = normal
            .chars()
            .filter_map(|c| match c {
                '\n' => Some('\n'),
                '\t' => Some(' '),
                c if sanitize::is_forbidden(c) => None,
                c => Some(c),
            })
            .collect();
        self.input.insert_str(clean);
    }

    /// A line was sent: remember it for Up, and stop browsing.
    pub(super) fn remember(&mut self, line: &str) {
        if self.sent.last().map(String::as_str) != Some(line) {
            self.sent.push(line.to_owned());
        }
        self.recall = None;
        self.draft.clear();
    }

    /// Up on the first line: the line sent before the one shown.
    pub(super) fn recall_older(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        let i = match self.recall {
            None => {
                self.draft = self.text();
                self.sent.len() - 1
            }
            Some(0) => 0,
            Some(i) => i - 1,
        };
        self.recall = Some(i);
        self.set(&self.sent[i].clone());
    }

    /// Down on the last line: the line sent after the one shown, and after the newest,
    /// what was being written.
    pub(super) fn recall_newer(&mut self) {
        let Some(i) = self.recall else { return };
        if i + 1 < self.sent.len() {
            self.recall = Some(i + 1);
            self.set(&self.sent[i + 1].clone());
        } else {
            self.recall = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(&draft);
        }
    }

    /// Tab: complete the command or name before the cursor from `names` and
    /// `commands`; Tab again, the next one.
    pub(super) fn complete(&mut self, names: &[String], commands: &[&str], me: &str) {
        let text = self.text();
        let at = self.input.cursor();
        let cursor = complete::flat_cursor(self.input.lines(), at.0, at.1);
        let done = complete::complete(&text, cursor, self.completion.as_ref(), names, commands, me);
        let Some(done) = done else {
            self.completion = None;
            return;
        };
        self.set(&done.text);
        let (row, col) = complete::row_col(&done.text, done.cursor);
        jump(&mut self.input, row, col);
        self.completion = Some(done.state);
    }

    /// Killing and yanking, with a ring of what was killed: Ctrl-U/K/W, Alt-D and
    /// Alt-Backspace kill; Ctrl-Y yanks the last kill, and Alt-Y right after a yank
    /// swaps it for the kill before. Whether `key` was one of these.
    fn kill_or_yank(&mut self, key: KeyEvent, ctrl: bool, alt: bool) -> bool {
        let t = &mut self.input;
        let kill: fn(&mut TextArea<'static>) -> bool = match key.code {
            KeyCode::Char('u') if ctrl => TextArea::delete_line_by_head,
            KeyCode::Char('k') if ctrl => TextArea::delete_line_by_end,
            KeyCode::Char('w') if ctrl => TextArea::delete_word,
            KeyCode::Char('d') if alt => TextArea::delete_next_word,
            KeyCode::Backspace if alt || ctrl => TextArea::delete_word,
            KeyCode::Char('y') if ctrl => {
                if let Some(last) = self.kills.front() {
                    t.insert_str(last);
                    self.yanked = Some((0, last.chars().count()));
                }
                return true;
            }
            KeyCode::Char('y') if alt => {
                // Only right after a yank: replace it with the kill before it.
                if let Some((i, n)) = self.yanked
                    && self.kills.len() > 1
                {
                    for _ in 0..n {
                        t.move_cursor(CursorMove::Back);
                    }
                    t.delete_str(n);
                    let i = (i + 1) % self.kills.len();
                    let text = &self.kills[i];
                    t.insert_str(text);
                    self.yanked = Some((i, text.chars().count()));
                }
                return true;
            }
            _ => return false,
        };
        // The widget keeps what a delete took as its yank text, but not every delete
        // sets it (one that takes only a line break): start each kill from none.
        t.set_yank_text("");
        if kill(t) {
            let killed = t.yank_text();
            if !killed.is_empty() {
                self.kills.push_front(killed);
                self.kills.truncate(KILL_RING);
            }
        }
        true
    }

    /// Line editing: the keys people have in their fingers from shells (Emacs style).
    pub(super) fn edit(&mut self, key: KeyEvent, ctrl: bool, alt: bool) {
        if self.kill_or_yank(key, ctrl, alt) {
            return;
        }
        let t = &mut self.input;
        match key.code {
            KeyCode::Char('a') if ctrl => t.move_cursor(CursorMove::Head),
            KeyCode::Char('e') if ctrl => t.move_cursor(CursorMove::End),
            KeyCode::Char('b') if ctrl => grapheme_back(t),
            KeyCode::Char('f') if ctrl => grapheme_forward(t),
            KeyCode::Char('b') if alt => move_by_chars(t, CursorMove::WordBack),
            KeyCode::Char('f') if alt => move_by_chars(t, CursorMove::WordForward),
            KeyCode::Char('d') if ctrl => delete_grapheme_after(t),
            KeyCode::Char('t') if ctrl => transpose(t),
            KeyCode::Char('h') if ctrl => delete_grapheme_before(t),
            KeyCode::Char(c) if !ctrl && !alt => t.insert_char(c),
            KeyCode::Backspace => delete_grapheme_before(t),
            KeyCode::Delete => delete_grapheme_after(t),
            KeyCode::Left if ctrl || alt => move_by_chars(t, CursorMove::WordBack),
            KeyCode::Right if ctrl || alt => move_by_chars(t, CursorMove::WordForward),
            KeyCode::Left => grapheme_back(t),
            KeyCode::Right => grapheme_forward(t),
            KeyCode::Up => move_by_chars(t, CursorMove::Up),
            KeyCode::Down => move_by_chars(t, CursorMove::Down),
            KeyCode::Home => t.move_cursor(CursorMove::Head),
            KeyCode::End => t.move_cursor(CursorMove::End),
            _ => {}
        }
    }
}

/// The editor's cursor as (row, char offset) and its line. The widget moves and
/// deletes by `char`; these move and delete by what a person sees as one character (a
/// grapheme cluster: `é` as e + accent, a flag, a family emoji).
fn cursor_line<'t>(t: &'t TextArea<'static>) -> (usize, usize, &'t str) {
    let (row, col) = (t.cursor().0, t.cursor().1);
    let line = t.lines().get(row).map_or("", String::as_str);
    (row, col, line)
}

fn jump(t: &mut TextArea<'static>, row: usize, col: usize) {
    let clamp = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    t.move_cursor(CursorMove::Jump(clamp(row), clamp(col)));
}

fn grapheme_back(t: &mut TextArea<'static>) {
    let (row, col, line) = cursor_line(t);
    if col == 0 {
        t.move_cursor(CursorMove::Back);
    } else {
        let to = text::prev_boundary(line, col);
        jump(t, row, to);
    }
}

fn grapheme_forward(t: &mut TextArea<'static>) {
    let (row, col, line) = cursor_line(t);
    if col >= line.chars().count() {
        t.move_cursor(CursorMove::Forward);
    } else {
        let to = text::next_boundary(line, col);
        jump(t, row, to);
    }
}

fn delete_grapheme_before(t: &mut TextArea<'static>) {
    let (row, col, line) = cursor_line(t);
    if col == 0 {
        t.delete_char();
        return;
    }
    let from = text::prev_boundary(line, col);
    jump(t, row, from);
    t.delete_str(col - from);
}

fn delete_grapheme_after(t: &mut TextArea<'static>) {
    let (_, col, line) = cursor_line(t);
    if col >= line.chars().count() {
        t.delete_next_char();
        return;
    }
    let n = text::next_boundary(line, col) - col;
    t.delete_str(n);
}

/// Ctrl-T: swap the character before the cursor with the one under it and step past
/// both (at the end of a line, swap the last two), as shells do; by grapheme.
fn transpose(t: &mut TextArea<'static>) {
    use unicode_segmentation::UnicodeSegmentation;
    let (row, col, line) = cursor_line(t);
    let line = line.to_owned();
    let graphemes: Vec<&str> = line.graphemes(true).collect();
    let mut before = 0;
    let mut at = 0;
    while before < graphemes.len() && at < col {
        at += graphemes[before].chars().count();
        before += 1;
    }
    let (a, b) = match before {
        0 => return,
        n if n >= graphemes.len() && graphemes.len() >= 2 => (n - 2, n - 1),
        n if n >= graphemes.len() => return,
        n => (n - 1, n),
    };
    let start: usize = graphemes[..a].iter().map(|g| g.chars().count()).sum();
    let len = graphemes[a].chars().count() + graphemes[b].chars().count();
    jump(t, row, start);
    t.delete_str(len);
    t.insert_str(format!("{}{}", graphemes[b], graphemes[a]));
}

/// A move the widget counts in chars (by row, by word), then back to the start of the
/// cluster it may have landed in.
fn move_by_chars(t: &mut TextArea<'static>, m: CursorMove) {
    t.move_cursor(m);
    let (row, col, line) = cursor_line(t);
    let snapped = text::snap_to_boundary(line, col);
    if snapped != col {
        jump(t, row, snapped);
    }
}

fn new_input() -> TextArea<'static> {
    let mut t = TextArea::default();
    // Wrapping at any character keeps the box's height predictable (`input_rows`).
    // The terminal's own cursor marks the place (see `ui`), which is also where input
    // methods for CJK draw their compositions; the widget draws none of its own.
    t.set_cursor_style(ratatui::style::Style::default());
    t.set_cursor_line_style(ratatui::style::Style::default());
    t.set_wrap_mode(WrapMode::Glyph);
    t
}
