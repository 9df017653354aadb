//! What one request may take: wall-clock time, guest CPU time and memory.
//!
//! Workers states such limits and enforces them; so does the host. Time is
//! enforced with wasmtime's epoch interruption: an engine-wide epoch ticks
//! every [`TICK`], and a running guest reaches its deadline at the next tick,
//! where it yields to the async executor (so a guest in a loop cannot keep a
//! worker thread from other requests) and is charged one tick of CPU. A
//! request past its wall-clock deadline is dropped at that point (or at
//! once, when it is waiting on I/O), which frees its instance slot.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use wasmtime::{ResourceLimiter, UpdateDeadline};

/// How often the epoch ticks: the granularity of the CPU budget and of
/// stopping a spinning guest (Spin ticks every 10 ms too).
pub const TICK: Duration = Duration::from_millis(10);

/// The limits, with the defaults `portico serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// From the request's arrival until the response head: past it the
    /// client gets `503 #request-timeout`.
    pub timeout: Duration,
    /// From the response head on: writing the body and any work after it
    /// (e.g. revalidating a cache entry). Past it the instance is stopped
    /// (and a body still being written is cut).
    pub after_response: Duration,
    /// Guest CPU time: ticks in which the guest was found running. `None`:
    /// not limited.
    pub cpu: Option<Duration>,
    /// All of the request's linear memories together.
    pub memory_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            timeout: Duration::from_secs(30),
            after_response: Duration::from_secs(300),
            cpu: None,
            memory_bytes: 128 << 20,
        }
    }
}

/// Parses a size flag: `128MiB`, `64KiB`, `1GiB` or plain bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 128MiB, 64KiB, 1GiB)"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("{other:?}: sizes are in B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A limit a request hit; the error its guest is stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Timeout,
    Cpu,
    Memory,
}

impl LimitHit {
    /// The problem type fragment and title the client gets.
    pub fn problem(self) -> (&'static str, &'static str) {
        match self {
            LimitHit::Timeout => ("request-timeout", "Request took too long"),
            LimitHit::Cpu => ("cpu-limit", "Request used too much CPU time"),
            LimitHit::Memory => ("memory-limit", "Request used too much memory"),
        }
    }
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitHit::Timeout => "the request ran past its time limit (--request-timeout)",
            LimitHit::Cpu => "the request used more CPU time than --request-cpu allows",
            LimitHit::Memory => "the request's memories grew past --request-memory",
        })
    }
}

impl std::error::Error for LimitHit {}

/// The limit `err` reports, if it is one.
pub fn limit_hit(err: &anyhow::Error) -> Option<LimitHit> {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<LimitHit>().copied())
}

/// A request's share of memory and CPU, kept in its store.
pub struct Budget {
    memory_left: usize,
    memory_limit: usize,
    cpu_ticks_left: Option<u64>,
}

impl Budget {
    pub fn new(limits: &RequestLimits) -> Budget {
        Budget {
            memory_left: limits.memory_bytes,
            memory_limit: limits.memory_bytes,
            cpu_ticks_left: limits
                .cpu
                .map(|cpu| (cpu.as_millis() / TICK.as_millis()).max(1) as u64),
        }
    }

    /// At each epoch tick the guest is found running: charges it, and
    /// yields to the executor (where an expired deadline drops the request).
    pub fn on_tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        if let Some(left) = &mut self.cpu_ticks_left {
            if *left == 0 {
                return Err(LimitHit::Cpu.into());
            }
            *left -= 1;
        }
        Ok(UpdateDeadline::Yield(1))
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        if growth > self.memory_left {
            tracing::debug!(
                limit = self.memory_limit,
                "a request's memories would grow past the limit"
            );
            return Err(LimitHit::Memory.into());
        }
        self.memory_left -= growth;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Ticks `engine`'s epoch every [`TICK`], for as long as the process runs.
pub fn start_ticker(engine: wasmtime::Engine) {
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawn the epoch ticker");
}

/// Runs `call` until it ends or the deadline in `deadline` passes; the
/// deadline may be moved while it runs (the response head moves it on).
pub async fn within_deadline<F>(
    call: F,
    mut deadline: watch::Receiver<Instant>,
) -> anyhow::Result<()>
where
    F: Future<Output = wasmtime::Result<()>>,
{
    tokio::pin!(call);
    let mut movable = true;
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            result = &mut call => return result.map_err(anyhow::Error::from),
            () = tokio::time::sleep_until(at) => {
                if *deadline.borrow() <= Instant::now() {
                    return Err(LimitHit::Timeout.into());
                }
            }
            changed = deadline.changed(), if movable => {
                // The sender is gone once the response is out: the last
                // deadline it set stands.
                movable = changed.is_ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_counted_across_all_memories_of_a_request() {
        let mut budget = Budget::new(&RequestLimits {
            memory_bytes: 10 << 20,
            ..RequestLimits::default()
        });
        assert!(budget.memory_growing(0, 4 << 20, None).unwrap());
        assert!(budget.memory_growing(0, 4 << 20, None).unwrap());
        assert!(budget.memory_growing(4 << 20, 6 << 20, None).unwrap());
        let err = budget
            .memory_growing(6 << 20, 6 << 20 | 1, None)
            .unwrap_err();
        assert_eq!(limit_hit(&anyhow::Error::from(err)), Some(LimitHit::Memory));
    }

    #[test]
    fn cpu_ticks_run_out_only_when_limited() {
        let mut unlimited = Budget::new(&RequestLimits::default());
        for _ in 0..10_000 {
            assert!(matches!(unlimited.on_tick(), Ok(UpdateDeadline::Yield(1))));
        }
        let mut limited = Budget::new(&RequestLimits {
            cpu: Some(Duration::from_millis(30)),
            ..RequestLimits::default()
        });
        for _ in 0..3 {
            assert!(limited.on_tick().is_ok());
        }
        let err = limited.on_tick().err().expect("out of CPU");
        assert_eq!(limit_hit(&anyhow::Error::from(err)), Some(LimitHit::Cpu));
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12MB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_deadline_is_kept_after_the_sender_is_gone() {
        let (tx, rx) = watch::channel(Instant::now() + Duration::from_secs(1));
        let call = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let running = tokio::spawn(within_deadline(call, rx));
        tokio::time::advance(Duration::from_millis(500)).await;
        tx.send(Instant::now() + Duration::from_secs(10)).unwrap();
        drop(tx);
        assert!(
            running.await.unwrap().is_ok(),
            "finished within the moved deadline"
        );

        let (_tx, rx) = watch::channel(Instant::now() + Duration::from_secs(1));
        let call = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let err = within_deadline(call, rx).await.unwrap_err();
        assert_eq!(limit_hit(&err), Some(LimitHit::Timeout));
    }
}
