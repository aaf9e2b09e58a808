//! A durable room (`tchat --host --keep FILE`): the room's epoch, its event numbering,
//! its history and the lines it relayed, kept in an SQLite database, so that a host
//! restarted with the same file goes on with the same room.
//!
//! The room task writes what each of its turns changed ([`Journal`]) in one
//! transaction before anything of that turn is sent, so that no one is ever shown an
//! event the file does not have: after a crash, ids go on from where the file stops and
//! never name two different events. The database is in WAL mode with `synchronous =
//! NORMAL`: a commit is a write to the log, not a wait for the disk, and survives the
//! process being killed at any point; a power cut may lose the last moments' commits
//! (see `docs/PROTOCOL.md`).

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::room::{Journal, Kept, Rules, Saved};
use crate::protocol::ServerMsg;

/// An open durable room.
pub struct Store {
    db: Connection,
    /// Relayed lines to keep (the rest are forgotten, oldest first).
    keep_relayed: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The layout's version, for a later one to recognise (and convert) this one.
const SCHEMA: i64 = 1;

impl Store {
    /// Open (or create) the room kept in `path`. A new file gets `new_epoch`; a file
    /// that holds a room gives it back as it was left, to `rules`' bounds.
    pub fn open(path: &Path, new_epoch: &str, rules: &Rules) -> Result<(Store, Saved), String> {
        let fresh = !path.exists();
        let db = Connection::open(path).map_err(|e| e.to_string())?;
        if fresh {
            // It holds what people said, and the session ids that take seats over.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
        let mut store = Store {
            db,
            keep_relayed: rules.resend_memory,
        };
        let saved = store.init(new_epoch, rules).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                "it is not a tchat room file (not an SQLite database)".to_owned()
            }
            e => e.to_string(),
        })?;
        Ok((store, saved))
    }

    fn init(&mut self, new_epoch: &str, rules: &Rules) -> rusqlite::Result<Saved> {
        // WAL: readers never wait on the writer, and a commit is one append.
        self.db.pragma_update(None, "journal_mode", "WAL")?;
        self.db.pragma_update(None, "synchronous", "NORMAL")?;
        self.db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY,
                 event TEXT NOT NULL,
                 origin_session TEXT, origin_cid TEXT,
                 about TEXT,
                 private INTEGER NOT NULL DEFAULT 0, seat_a TEXT, seat_b TEXT);
             CREATE TABLE IF NOT EXISTS relayed (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 session TEXT NOT NULL, cid TEXT NOT NULL, id INTEGER NOT NULL);",
        )?;
        let meta = |db: &Connection, key: &str| -> rusqlite::Result<Option<String>> {
            db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        if let Some(v) = meta(&self.db, "schema")?
            && v.parse::<i64>().ok() != Some(SCHEMA)
        {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "it was written by another version of tchat (layout {v})"
            )));
        }
        let epoch = match meta(&self.db, "epoch")? {
            Some(epoch) => epoch,
            None => {
                let tx = self.db.transaction()?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('epoch', ?2), ('next_event', '1')",
                    params![SCHEMA.to_string(), new_epoch],
                )?;
                tx.commit()?;
                new_epoch.to_owned()
            }
        };
        let next_event = meta(&self.db, "next_event")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut kept = Vec::new();
        {
            let mut q = self.db.prepare(
                "SELECT id, event, origin_session, origin_cid, about, private, seat_a, seat_b
                 FROM (SELECT * FROM events ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )?;
            let limit = i64::try_from(rules.history).unwrap_or(i64::MAX);
            let rows = q.query_map([limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?;
            for row in rows {
                let (id, event, session, cid, about, private, a, b) = row?;
                // A row this version cannot read is left out, not fatal.
                let Ok(event) = ServerMsg::decode(&event) else {
                    continue;
                };
                let mut k = Kept::new(id as u64, event);
                k.origin = session.zip(cid).map(|(s, c)| (Arc::from(s), c.into()));
                k.about = about.map(Arc::from);
                if private {
                    k.audience = Some([a.map(Arc::from), b.map(Arc::from)]);
                }
                kept.push(k);
            }
        }
        let mut relayed = Vec::new();
        {
            let mut q = self.db.prepare(
                "SELECT session, cid, id FROM
                 (SELECT * FROM relayed ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
            )?;
            let limit = i64::try_from(rules.resend_memory).unwrap_or(i64::MAX);
            let rows = q.query_map([limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (s, c, id) = row?;
                relayed.push(((Arc::from(s), c.into()), id as u64));
            }
        }
        Ok(Saved {
            epoch,
            next_event,
            kept,
            relayed,
        })
    }

    /// Write down one turn of the room, in one transaction.
    pub fn write(&mut self, j: &Journal) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut add = tx.prepare_cached(
                "INSERT OR REPLACE INTO events
                 (id, event, origin_session, origin_cid, about, private, seat_a, seat_b)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for k in &j.kept {
                let event = k.event.encode();
                let (session, cid) = match &k.origin {
                    Some((s, c)) => (Some(&**s), Some(&**c)),
                    None => (None, None),
                };
                let (a, b) = match &k.audience {
                    Some([a, b]) => (a.as_deref(), b.as_deref()),
                    None => (None, None),
                };
                add.execute(params![
                    k.id as i64,
                    event.trim_end(),
                    session,
                    cid,
                    k.about.as_deref(),
                    k.audience.is_some(),
                    a,
                    b
                ])?;
            }
            let mut relay =
                tx.prepare_cached("INSERT INTO relayed (session, cid, id) VALUES (?1, ?2, ?3)")?;
            for ((session, cid), id) in &j.relayed {
                relay.execute(params![&**session, &**cid, *id as i64])?;
            }
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'next_event'")?
                .execute([j.next_event.to_string()])?;
            tx.prepare_cached("DELETE FROM events WHERE id < ?1")?
                .execute([j.first_kept as i64])?;
            if !j.relayed.is_empty() {
                let keep = i64::try_from(self.keep_relayed).unwrap_or(i64::MAX);
                tx.prepare_cached(
                    "DELETE FROM relayed WHERE seq <= (SELECT MAX(seq) FROM relayed) - ?1",
                )?
                .execute([keep])?;
            }
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64, text: &str) -> ServerMsg {
        ServerMsg::Msg {
            id,
            ts: 1,
            from: "alice".into(),
            text: text.into(),
            cid: None,
        }
    }

    #[test]
    fn a_room_written_down_comes_back_as_it_was_left() {
        let dir = tempdir();
        let path = dir.join("room.db");
        let rules = Rules {
            history: 3,
            resend_memory: 2,
            ..Rules::default()
        };
        let (mut store, saved) = Store::open(&path, "e1", &rules).unwrap();
        assert_eq!(saved.epoch, "e1");
        assert_eq!(saved.next_event, 1);
        assert!(saved.kept.is_empty());
        let origin = (Arc::<str>::from("s-a"), Box::<str>::from("c1"));
        let mut private = Kept::new(3, msg(3, "psst"));
        private.audience = Some([Some("s-a".into()), None]);
        let mut mine = Kept::new(4, msg(4, "mine"));
        mine.origin = Some(origin.clone());
        let journal = Journal {
            kept: vec![
                Kept::new(1, msg(1, "one")),
                Kept::new(2, msg(2, "two")),
                private.clone(),
                mine.clone(),
            ],
            relayed: vec![
                ((Arc::from("s-a"), Box::from("c0")), 2),
                (origin.clone(), 4),
                ((Arc::from("s-b"), Box::from("c9")), 1),
            ],
            first_kept: 2,
            next_event: 5,
        };
        store.write(&journal).unwrap();
        drop(store);
        // Another run, another epoch offered: the file's room wins.
        let (_, saved) = Store::open(&path, "e2", &rules).unwrap();
        assert_eq!(saved.epoch, "e1");
        assert_eq!(saved.next_event, 5);
        let ids: Vec<u64> = saved.kept.iter().map(|k| k.id).collect();
        assert_eq!(ids, [2, 3, 4], "what the history let go of is gone");
        assert_eq!(saved.kept[1], private);
        assert_eq!(saved.kept[2], mine);
        assert_eq!(saved.relayed.len(), 2, "the memory's bound holds");
        assert_eq!(saved.relayed[0], (origin, 4));
    }

    #[test]
    fn a_file_that_is_not_a_room_is_refused_with_a_reason() {
        let dir = tempdir();
        let path = dir.join("notes.txt");
        std::fs::write(
            &path,
            "these are my notes, not a database, and quite long enough",
        )
        .unwrap();
        let err = Store::open(&path, "e1", &Rules::default()).unwrap_err();
        assert!(err.contains("not a tchat room file"), "{err}");
    }

    /// A fresh directory under the system's temporary one.
    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tchat-store-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
