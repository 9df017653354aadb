//! `portico serve --schedule "sweep-expired=5m,warm-cache=1m"`: calls the
//! app's maintenance endpoints on timers, as a Spin cron trigger or a
//! Kubernetes CronJob would, over HTTP with the `maintenance_token`
//! variable. Each run follows the answer's `next` cursor until the task is
//! done (at most 100 calls), so large stores are swept in bounded steps.

use std::time::Duration;

use anyhow::{Result, bail};

/// The tasks the gateway knows.
pub const TASKS: [&str; 3] = ["sweep-expired", "warm-cache", "compact-assets"];
/// Calls per run, following cursors.
const MAX_CALLS_PER_RUN: usize = 100;

/// One scheduled task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub task: String,
    pub every: Duration,
}

fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Parses `task=interval,...` (intervals like `30s`, `5m`, `1h`).
pub fn parse(spec: &str) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((task, every)) = item.split_once('=') else {
            bail!("--schedule: {item:?} is not task=interval (e.g. sweep-expired=5m)");
        };
        let task = task.trim();
        if !TASKS.contains(&task) {
            bail!(
                "--schedule: unknown task {task:?}; tasks: {}",
                TASKS.join(", ")
            );
        }
        let Some(every) = duration(every) else {
            bail!("--schedule: {every:?} is not an interval such as 30s, 5m or 1h");
        };
        jobs.push(Job {
            task: task.to_string(),
            every,
        });
    }
    Ok(jobs)
}

/// Runs one task to completion (following cursors); returns what the
/// calls answered, one JSON document per call.
pub fn run_once(base: &str, token: &str, task: &str) -> Result<Vec<serde_json::Value>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut reports = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_CALLS_PER_RUN {
        let mut url = format!("{base}/admin/maintenance/{task}");
        if let Some(cursor) = &cursor {
            url.push_str("?cursor=");
            url.push_str(&form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>());
        }
        let mut response = agent
            .post(&url)
            .header("authorization", format!("Bearer {token}"))
            .send_empty()?;
        let status = response.status();
        let body = response.body_mut().read_to_string()?;
        if !status.is_success() {
            bail!("{task}: {status}: {body}");
        }
        let report: serde_json::Value = serde_json::from_str(&body)?;
        cursor = report["next"].as_str().map(str::to_string);
        reports.push(report);
        if cursor.is_none() {
            break;
        }
    }
    Ok(reports)
}

/// Starts one timer per job against the server at `base`.
pub fn spawn(base: String, token: String, jobs: Vec<Job>) {
    for job in jobs {
        let (base, token) = (base.clone(), token.clone());
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(job.every);
            // The first tick is immediate; the first run waits one interval.
            timer.tick().await;
            loop {
                timer.tick().await;
                let (base, token, task) = (base.clone(), token.clone(), job.task.clone());
                let outcome =
                    tokio::task::spawn_blocking(move || run_once(&base, &token, &task)).await;
                match outcome {
                    Ok(Ok(reports)) => {
                        for report in reports {
                            eprintln!("portico: maintenance {}: {report}", job.task);
                        }
                    }
                    Ok(Err(err)) => eprintln!("portico: maintenance {} failed: {err:#}", job.task),
                    Err(err) => eprintln!("portico: maintenance {} failed: {err}", job.task),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_mistakes_are_named() {
        let jobs = parse("sweep-expired=5m, warm-cache=30s,compact-assets=1h").unwrap();
        assert_eq!(jobs[0].every, Duration::from_secs(300));
        assert_eq!(jobs[1].every, Duration::from_secs(30));
        assert_eq!(jobs[2].every, Duration::from_secs(3600));
        for (bad, needle) in [
            ("sweep=5m", "unknown task"),
            ("sweep-expired", "task=interval"),
            ("sweep-expired=5", "interval"),
            ("sweep-expired=0s", "interval"),
            ("warm-cache=1d", "interval"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
