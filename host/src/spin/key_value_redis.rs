//! The `default` key-value store on Redis (`[key_value_store.default]`
//! `type = "redis"` in the runtime configuration), as Spin's
//! `spin-key-value-redis` keeps it: each key as a Redis string of the same
//! name, values as bytes. What the store holds is what `platform-spin`
//! writes (its TTL envelope, the asset chunk layout), so every semantic the
//! adapter builds on holds here as on SQLite.
//!
//! As in Spin, the host sends one command at a time (Spin keeps its one
//! connection under a mutex), so what a request costs here is what it costs
//! on a Spin node. Two choices differ from Spin's, both for a store shared
//! by many instances: the key listing walks `SCAN` (never `KEYS`, which
//! blocks the server for every client while it runs) and sorts the result
//! by bytes, as the SQLite store lists; and the connection is a
//! `ConnectionManager`, so a Redis restart costs the calls made while it is
//! down (each fails within the timeouts below, which the app answers as
//! storage errors) and the host reconnects by itself.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Mutex, OnceCell};

/// A call waits this long for a connection, then fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// And this long for an answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

pub struct RedisStore {
    client: redis::Client,
    /// Connected at the first call (as Spin does), so a host starts while
    /// Redis is still coming up; a failed connect is tried again next call.
    connection: OnceCell<ConnectionManager>,
    /// Held for each command: one at a time, as Spin's store does.
    turn: Mutex<()>,
}

impl RedisStore {
    pub fn new(url: &str) -> Result<RedisStore> {
        let client =
            redis::Client::open(url).with_context(|| format!("Redis URL {url:?} is not valid"))?;
        Ok(RedisStore {
            client,
            connection: OnceCell::new(),
            turn: Mutex::new(()),
        })
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await
            .cloned()
    }

    /// Runs one command. Every command here is idempotent, so one that
    /// met a broken connection (Redis restarted since the last call) is
    /// sent once more, on the connection the manager has made anew.
    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        let _turn = self.turn.lock().await;
        let mut connection = self.connection().await?;
        match command.query_async(&mut connection).await {
            Err(err) if err.is_io_error() || err.is_connection_dropped() => {
                command.query_async(&mut connection).await
            }
            done => done,
        }
    }

    pub async fn get(&self, key: &str) -> redis::RedisResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> redis::RedisResult<()> {
        self.query(redis::cmd("SET").arg(key).arg(value)).await
    }

    pub async fn delete(&self, key: &str) -> redis::RedisResult<()> {
        self.query::<i64>(redis::cmd("DEL").arg(key))
            .await
            .map(drop)
    }

    pub async fn exists(&self, key: &str) -> redis::RedisResult<bool> {
        self.query(redis::cmd("EXISTS").arg(key)).await
    }

    /// Every key, in byte order. `SCAN` may return a key twice (when the
    /// table is resized under it); the sort puts twins side by side.
    pub async fn keys(&self) -> redis::RedisResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT))
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
}
