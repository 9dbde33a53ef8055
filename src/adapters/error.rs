//! How an adapter that reaches the platform (tenant database, repo, VPS) failed. One type for
//! all of them: every caller asks the same question of a failure (retry it, show it as it is,
//! or log it), and the message names the adapter. `steps::StepError` converts from it kind for
//! kind. (The read-only probes, `dns`, `http` and `tls`, return `anyhow`: their callers treat
//! every failure alike.)

/// An adapter's failure, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Worth retrying: a connection refused or lost, a timeout, a server restarting.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// The outside world is in a state a person must fix (a standby where the primary was
    /// expected, a checkout with uncommitted changes); the message says what and is shown as
    /// it is.
    #[error("{0}")]
    Refused(String),
    /// Anything else; the full chain goes to the log.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl Error {
    pub fn refused(msg: impl Into<String>) -> Self {
        Self::Refused(msg.into())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::WorkerCrashed => {
                Error::Transient(e.into())
            }
            // 57P01 admin_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions,
            // 40001/40P01 serialisation failures: a retry can succeed.
            E::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01"
                }) =>
            {
                Error::Transient(e.into())
            }
            _ => Error::Internal(e.into()),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sql) => sql.into(),
            Err(other) => Error::Internal(other),
        }
    }
}
