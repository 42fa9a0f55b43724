//! Percentiles and process readings (CPU seconds, peak RSS) from `/proc`.

use std::time::Duration;

use serde::Serialize;

/// Latency percentiles of one run, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples` (sorted here); zeros when there are none.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = (q * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        Self {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of `values` (the lower middle for an even count); 0 when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// What `/proc` says of a process: CPU time so far and its peak resident set.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct ProcessReading {
    /// User plus system CPU seconds.
    pub cpu_s: f64,
    /// Peak resident set (`VmHWM`), in MiB.
    pub peak_rss_mib: f64,
    /// Resident set now (`VmRSS`), in MiB.
    #[serde(default)]
    pub rss_mib: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux's mainstream ports).
const USER_HZ: f64 = 100.0;

/// Reads `/proc/<pid>` (`"self"` for this process); `None` where there is no `/proc`.
pub fn read_process(pid: &str) -> Option<ProcessReading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Some(ProcessReading {
        cpu_s: ticks / USER_HZ,
        peak_rss_mib: hwm_kib / 1024.0,
        rss_mib: rss_kib / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples);
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(vec![Duration::from_millis(7)]).p99_ms, 7.0);
        assert_eq!(Latency::of(Vec::new()).p50_ms, 0.0);
    }

    #[test]
    fn median_takes_the_lower_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn this_process_can_be_read() {
        let r = read_process("self").expect("/proc/self on Linux");
        assert!(r.peak_rss_mib > 0.0, "{r:?}");
    }
}
