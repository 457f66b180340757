//! Static TURN users from the signalling database: the `turn_users` table
//! that sotto-signald's migrations create and `sotto-signald turn-user add`
//! fills (SQLite or PostgreSQL, by URL). The relay reads the rows of its
//! realm whole into the in-memory [`Credentials`] at start and on SIGHUP,
//! read-only; no request ever waits on the database.

use std::time::Duration;

use futures_util::TryStreamExt as _;
use sqlx::any::install_default_drivers;
use sqlx::{AnyConnection, Connection as _, Row as _};

use crate::auth::{Credentials, Key, PasswordAlgorithm};

/// How long a load may take before it fails (and a reload keeps the old
/// credentials): a database that does not answer must not hang SIGHUP.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors loading users from the database.
#[derive(Debug, thiserror::Error)]
pub enum UserDbError {
    /// Not a `sqlite:` or `postgres:` URL.
    #[error("auth_database must be a sqlite: or postgres: URL")]
    Scheme,
    /// Connecting or querying failed (a missing `turn_users` table means
    /// signald's migrations have not run on this database).
    #[error("auth_database: {0}")]
    Db(sqlx::Error),
    /// The database did not answer in time.
    #[error("auth_database: no answer within {0:?}")]
    Timeout(Duration),
    /// A row holds a key that is not hex of the right length.
    #[error("auth_database: user {0:?} has a malformed key")]
    BadKey(String),
}

/// Not `#[from]`: the text carries the cause, which is not also reported
/// as `source()` (`{:#}` would print it twice).
impl From<sqlx::Error> for UserDbError {
    fn from(e: sqlx::Error) -> Self {
        UserDbError::Db(e)
    }
}

/// A database URL whose `Debug` hides a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Checks the scheme of `url`.
    pub fn parse(url: &str) -> Result<Self, UserDbError> {
        let ok = ["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|s| url.starts_with(s));
        ok.then(|| DatabaseUrl(url.to_owned()))
            .ok_or(UserDbError::Scheme)
    }

    /// The URL the relay connects with: SQLite files are opened read-only
    /// (the relay never creates or writes signald's database).
    fn connect_url(&self) -> String {
        if self.0.starts_with("sqlite:") && !self.0.contains('?') {
            format!("{}?mode=ro", self.0)
        } else {
            self.0.clone()
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `postgres://user:password@host/db` shows as `postgres://…@host/db`.
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(i), Some(j)) if j > i => write!(f, "{}://…{}", &self.0[..i], &self.0[j..]),
            _ => f.write_str(&self.0),
        }
    }
}

/// Adds the users of `realm` from the database at `url` to `into`;
/// returns how many. Either all rows load or none do.
pub async fn load(
    url: &DatabaseUrl,
    realm: &str,
    into: &mut Credentials,
) -> Result<usize, UserDbError> {
    tokio::time::timeout(LOAD_TIMEOUT, load_rows(url, realm, into))
        .await
        .map_err(|_| UserDbError::Timeout(LOAD_TIMEOUT))?
}

async fn load_rows(
    url: &DatabaseUrl,
    realm: &str,
    into: &mut Credentials,
) -> Result<usize, UserDbError> {
    install_default_drivers();
    let mut conn = AnyConnection::connect(&url.connect_url()).await?;
    let result = read_users(&mut conn, realm).await;
    conn.close().await?;
    let users = result?;
    let n = users.len();
    for (username, md5, sha256) in users {
        into.add_user_keys(&username, Some(md5), sha256);
    }
    Ok(n)
}

type UserRow = (String, Key, Option<Key>);

/// The users of `realm`, rows streamed one at a time (100k users would
/// otherwise hold every row's buffers at once).
async fn read_users(conn: &mut AnyConnection, realm: &str) -> Result<Vec<UserRow>, UserDbError> {
    let mut rows = sqlx::query(
        "SELECT username, key_md5, key_sha256 FROM turn_users WHERE realm = $1 ORDER BY username",
    )
    .bind(realm)
    .fetch(conn);
    let mut users = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let username: String = row.try_get(0)?;
        let md5: String = row.try_get(1)?;
        let sha256: Option<String> = row.try_get(2)?;
        let md5 = Key::from_hex(PasswordAlgorithm::Md5, &md5);
        let sha256 = sha256.map(|h| Key::from_hex(PasswordAlgorithm::Sha256, &h));
        match (md5, sha256) {
            (Some(md5), None) => users.push((username, md5, None)),
            (Some(md5), Some(Some(sha256))) => users.push((username, md5, Some(sha256))),
            _ => return Err(UserDbError::BadKey(username)),
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_hidden() {
        assert!(matches!(
            DatabaseUrl::parse("mysql://x"),
            Err(UserDbError::Scheme)
        ));
        let pg = DatabaseUrl::parse("postgres://relay:hunter2@db.example:5432/sotto").unwrap();
        let shown = format!("{pg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("@db.example:5432/sotto"), "{shown}");
        let lite = DatabaseUrl::parse("sqlite:///var/lib/sotto/signald.db").unwrap();
        assert_eq!(
            lite.connect_url(),
            "sqlite:///var/lib/sotto/signald.db?mode=ro"
        );
        assert_eq!(
            pg.connect_url(),
            "postgres://relay:hunter2@db.example:5432/sotto"
        );
    }

    #[tokio::test]
    async fn missing_database_or_table_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
        let mut c = Credentials::new();
        assert!(load(&url, "r", &mut c).await.is_err());
        assert!(!path.exists(), "read-only: the relay must not create it");
        // A database without signald's migrations: no table.
        std::fs::File::create(&path).unwrap();
        let err = load(&url, "r", &mut c).await.unwrap_err();
        assert!(err.to_string().contains("turn_users"), "{err}");
    }
}
