//! The scrollback: the entries kept, where the pane is scrolled to, and what arrived
//! below while it was held. Pure; rows are counted by [`layout`](super::layout), for
//! the pane size it is given.

use std::collections::VecDeque;

use super::layout;
use super::{Entry, Scroll};

/// The most entries kept in the scrollback; older ones are dropped.
pub const SCROLLBACK: usize = 100_000;

/// The entries and the scroll position over them.
#[derive(Debug)]
pub struct Scrollback {
    /// `first_seq` numbers the front entry; numbers keep counting as old entries are
    /// dropped, so a held scroll position stays put.
    entries: VecDeque<Entry>,
    first_seq: u64,
    scroll: Scroll,
    /// Messages that arrived below while scrolled back, and how many of them mention you.
    unseen: usize,
    unseen_mentions: usize,
    /// What [`Scrollback::settle`] last laid out for: the pane, the scroll position and
    /// the newest entry. `None` once an entry may have changed.
    settled: Option<(usize, usize, Scroll, u64)>,
}

impl Default for Scrollback {
    fn default() -> Self {
        Scrollback {
            entries: VecDeque::new(),
            first_seq: 0,
            scroll: Scroll::Live,
            unseen: 0,
            unseen_mentions: 0,
            settled: None,
        }
    }
}

impl Scrollback {
    /// The entries, oldest first, with sequence numbers.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = (u64, &Entry)> + ExactSizeIterator {
        let first = self.first_seq;
        self.entries
            .iter()
            .enumerate()
            .map(move |(i, e)| (first + i as u64, e))
    }

    /// The entry with sequence number `seq`, if it is still kept.
    pub fn entry(&self, seq: u64) -> Option<&Entry> {
        let i = seq.checked_sub(self.first_seq)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    pub(super) fn entry_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        self.settled = None;
        let i = seq.checked_sub(self.first_seq)?;
        self.entries.get_mut(usize::try_from(i).ok()?)
    }

    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.settled = None;
        self.entries.iter_mut()
    }

    /// Sequence number of the newest entry, if any.
    pub fn last_seq(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first_seq + self.entries.len() as u64 - 1)
    }

    /// Sequence number of the oldest entry kept.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Where the pane is scrolled to.
    pub fn scroll(&self) -> Scroll {
        self.scroll
    }

    /// Whether the pane follows new entries.
    pub fn is_live(&self) -> bool {
        self.scroll == Scroll::Live
    }

    /// Messages from others that arrived below while scrolled back.
    pub fn unseen(&self) -> usize {
        self.unseen
    }

    /// How many of those name you.
    pub fn unseen_mentions(&self) -> usize {
        self.unseen_mentions
    }

    /// Add an entry at the bottom. `new`: a line from someone else, counted as unseen
    /// while scrolled back (`mention`: one naming you).
    pub(super) fn push(&mut self, entry: Entry, new: bool, mention: bool) {
        self.entries.push_back(entry);
        if self.entries.len() > SCROLLBACK {
            self.entries.pop_front();
            self.first_seq += 1;
            if let Scroll::Back { bottom, skip } = &mut self.scroll
                && *bottom < self.first_seq
            {
                *bottom = self.first_seq;
                *skip = 0;
            }
        }
        if new && !self.is_live() {
            self.unseen += 1;
            if mention {
                self.unseen_mentions += 1;
            }
        }
    }

    /// Everything scrolled away (`/clear`); numbering goes on, so that lines still
    /// waiting for their echo are not confused with new ones.
    pub(super) fn clear(&mut self) {
        self.first_seq += self.entries.len() as u64;
        self.entries.clear();
        self.go_live();
    }

    /// Follow new entries again.
    pub(super) fn go_live(&mut self) {
        self.scroll = Scroll::Live;
        self.unseen = 0;
        self.unseen_mentions = 0;
    }

    /// Keep the rows of every entry the pane (`width`×`height`) shows, as it is
    /// scrolled now, so that drawing it lays out nothing. Costs only the entries on
    /// screen, and nothing for those kept already.
    pub(super) fn settle(&mut self, width: usize, height: usize) {
        let Some(last) = self.last_seq() else {
            return;
        };
        // Most updates are one more line at the bottom of a live pane: then only the
        // new lines need laying out (the rest were, and fewer of them show now).
        let from = match self.settled {
            Some(s) if s == (width, height, self.scroll, last) => return,
            Some((w, h, Scroll::Live, before))
                if (w, h) == (width, height) && self.scroll == Scroll::Live && before < last =>
            {
                Some(before)
            }
            _ => None,
        };
        self.settled = Some((width, height, self.scroll, last));
        let (bottom, skip) = match self.scroll {
            Scroll::Live => (last, 0),
            Scroll::Back { bottom, skip } => (bottom.clamp(self.first_seq, last), skip),
        };
        let first = self.first_seq;
        let mut shown = 0;
        let mut seq = bottom;
        loop {
            // Not through `entry_mut`, which takes an entry as changed.
            let at = usize::try_from(seq - first).unwrap_or(usize::MAX);
            if let Some(e) = self.entries.get_mut(at) {
                let widths = layout::columns(&e.kind, width).widths();
                let rows = e.wrapped.settle(&e.text, widths);
                shown += if seq == bottom {
                    rows.saturating_sub(skip)
                } else {
                    rows
                };
            }
            if shown >= height || seq == first || Some(seq - 1) == from {
                return;
            }
            seq -= 1;
        }
    }

    /// Rows entry `seq` takes in a pane `width` columns wide.
    fn rows_of(&self, seq: u64, width: usize) -> usize {
        self.entry(seq).map_or(1, |e| layout::entry_rows(e, width))
    }

    /// Scroll `n` rows back in a pane `width`×`height`. Whether that is the live end
    /// after all (everything fits): the caller then goes live.
    pub(super) fn scroll_up(&mut self, mut n: usize, width: usize, height: usize) -> bool {
        let Some(last) = self.last_seq() else {
            return false;
        };
        let (mut bottom, mut skip) = self.held(width).unwrap_or((last, 0));
        while n > 0 {
            let rows = self.rows_of(bottom, width);
            if skip + 1 < rows {
                let d = (rows - 1 - skip).min(n);
                skip += d;
                n -= d;
            } else if bottom > self.first_seq {
                bottom -= 1;
                skip = 0;
                n -= 1;
            } else {
                break;
            }
        }
        self.scroll = Scroll::Back { bottom, skip };
        if self.clamp_top(width, height) {
            return true;
        }
        self.scroll
            == Scroll::Back {
                bottom: last,
                skip: 0,
            }
    }

    /// Scroll `n` rows forward in a pane `width` wide. Whether that reached the live
    /// end: the caller then goes live.
    pub(super) fn scroll_down(&mut self, mut n: usize, width: usize) -> bool {
        let Some((mut bottom, mut skip)) = self.held(width) else {
            return false;
        };
        let last = self.last_seq().unwrap_or(0);
        while n > 0 {
            if skip > 0 {
                let d = skip.min(n);
                skip -= d;
                n -= d;
            } else if bottom < last {
                bottom += 1;
                skip = self.rows_of(bottom, width) - 1;
                n -= 1;
            } else {
                break;
            }
        }
        if bottom >= last && skip == 0 {
            return true;
        }
        self.scroll = Scroll::Back { bottom, skip };
        false
    }

    /// The held scroll position, made valid for the current width: a resize can leave
    /// fewer rows in the bottom entry than were skipped.
    fn held(&self, width: usize) -> Option<(u64, usize)> {
        match self.scroll {
            Scroll::Live => None,
            Scroll::Back { bottom, skip } => {
                let bottom = bottom.max(self.first_seq);
                let rows = self.rows_of(bottom, width);
                Some((bottom, skip.min(rows.saturating_sub(1))))
            }
        }
    }

    /// Don't scroll past the oldest line: when everything above the held position
    /// fits in the pane, hold the position that shows the oldest line at the top.
    /// Whether that is the live end after all.
    fn clamp_top(&mut self, width: usize, height: usize) -> bool {
        let Some((bottom, skip)) = self.held(width) else {
            return false;
        };
        let mut above = self.rows_of(bottom, width) - skip;
        let mut seq = bottom;
        while above < height && seq > self.first_seq {
            seq -= 1;
            above += self.rows_of(seq, width);
        }
        if above >= height {
            return false;
        }
        self.scroll_to_top(width, height)
    }

    /// Show the oldest entry at the top of a pane `width`×`height`. Whether that is
    /// the live end (everything fits): the caller then goes live.
    pub(super) fn scroll_to_top(&mut self, width: usize, height: usize) -> bool {
        let Some(last) = self.last_seq() else {
            return false;
        };
        let mut rows = 0;
        let mut seq = self.first_seq;
        loop {
            let r = self.rows_of(seq, width);
            if rows + r >= height || seq == last {
                let skip = (rows + r).saturating_sub(height);
                if seq == last && skip == 0 {
                    return true;
                }
                self.scroll = Scroll::Back { bottom: seq, skip };
                return false;
            }
            rows += r;
            seq += 1;
        }
    }
}
