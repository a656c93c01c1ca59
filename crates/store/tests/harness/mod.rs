//! Fresh databases for the conformance suite, and a raw connection to look behind the trait
//! (counts, the stored bytes of credentials).

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use mirrorhub_store::{connect, SecretKey, Store};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

pub const POSTGRES_URL_VAR: &str = "MIRRORHUB_TEST_POSTGRES_URL";

/// Runs every listed scenario as `sqlite::NAME` and as `postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::harness::run_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::harness::run_postgres(super::$name).await;
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One fresh database: the store under test, plus what is needed to open it again and to
/// read it directly.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub key: SecretKey,
    pub backend: Backend,
    raw: Raw,
}

impl TestDb {
    /// Another store on the same database, with its own connection pool.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        connect(&self.url, self.key.clone())
            .await
            .expect("reopen the test database")
    }

    async fn scalar(&self, sql: &str) -> i64 {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// (claimed, pending) jobs of one repository.
    pub async fn count_jobs(&self, repo_id: i64) -> (i64, i64) {
        let claimed = self.scalar(&format!("SELECT COUNT(*) FROM sync_jobs WHERE repo_id = {repo_id} AND claimed_by IS NOT NULL")).await;
        let pending = self
            .scalar(&format!(
                "SELECT COUNT(*) FROM sync_jobs WHERE repo_id = {repo_id} AND claimed_by IS NULL"
            ))
            .await;
        (claimed, pending)
    }

    /// The bytes stored in the repository's credentials column.
    pub async fn raw_credentials(&self, repo_id: i64) -> Option<Vec<u8>> {
        let sql = format!("SELECT credentials FROM repos WHERE id = {repo_id}");
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The bytes stored in the SSH key's private_key column.
    pub async fn raw_ssh_private_key(&self, key_id: i64) -> Vec<u8> {
        let sql = format!("SELECT private_key FROM ssh_keys WHERE id = {key_id}");
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The `concurrent_at_start` record of each run, in the order given.
    pub async fn concurrent_at_start(&self, runs: &[i64]) -> Vec<i64> {
        let mut out = Vec::new();
        for run in runs {
            out.push(
                self.scalar(&format!(
                    "SELECT CAST(concurrent_at_start AS BIGINT) FROM sync_runs WHERE id = {run}"
                ))
                .await,
            );
        }
        out
    }

    pub async fn exec(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Runs a scenario against a new SQLite file in a temporary directory.
pub async fn run_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet would not be created; the file is.
    let url = format!("sqlite:{}", dir.path().join("hub.db").display());
    let key = SecretKey::generate();
    let store = connect(&url, key.clone())
        .await
        .expect("open a fresh SQLite store");
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .busy_timeout(Duration::from_secs(10));
    let raw = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    scenario(TestDb {
        store,
        url,
        key,
        backend: Backend::Sqlite,
        raw: Raw::Sqlite(raw),
    })
    .await;
}

/// Runs a scenario against a new PostgreSQL database, dropped afterwards (also when the
/// scenario fails). Passes with a note when `MIRRORHUB_TEST_POSTGRES_URL` is unset; fails
/// when it is set and the server cannot be used.
pub async fn run_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(TestDb) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("note: {POSTGRES_URL_VAR} is not set: this PostgreSQL test ran nothing");
        return;
    };
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("{POSTGRES_URL_VAR} is set but PostgreSQL cannot be reached: {e}")
        });
    let name = format!("mirrorhub_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create the test database");

    let mut url = url::Url::parse(&admin_url).expect("a postgres:// URL");
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let key = SecretKey::generate();

    let run = {
        let (url, key) = (url.clone(), key.clone());
        async move {
            let store = connect(&url, key.clone())
                .await
                .expect("open a fresh PostgreSQL store");
            let raw = PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .unwrap();
            let db = TestDb {
                store,
                url: url.clone(),
                key: key.clone(),
                backend: Backend::Postgres,
                raw: Raw::Postgres(raw),
            };
            // On a task of its own, so that a failing scenario still lets the database be dropped.
            tokio::spawn(scenario(db)).await
        }
    };
    let outcome = tokio::spawn(run).await;

    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) | Err(e) => panic!("the scenario did not finish: {e}"),
    }
    dropped.expect("drop the test database");
}
