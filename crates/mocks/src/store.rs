//! Optional SQLite persistence: one row per app holding its state as JSON, written
//! after every change, read at start. Enough for a mock to survive a restart.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::Result;

/// A SQLite file shared by all mocks of one process.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (or creates) the file and its table.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS mock_state (app TEXT PRIMARY KEY, json TEXT NOT NULL);",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The saved state of an app, if any.
    pub fn load(&self, app: &str) -> Result<Option<String>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT json FROM mock_state WHERE app = ?1",
                params![app],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Replaces the saved state of an app.
    pub fn save(&self, app: &str, json: &str) -> Result<()> {
        self.lock().execute(
            "INSERT INTO mock_state (app, json) VALUES (?1, ?2)
             ON CONFLICT(app) DO UPDATE SET json = excluded.json",
            params![app, json],
        )?;
        Ok(())
    }
}
