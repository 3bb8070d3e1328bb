//! CPU time and resident memory of the server process, read from /proc.

use anyhow::Context;

/// CPU time (user + system) and resident set size of one process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub cpu_us: u64,
    pub rss_kib: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`. CPU time has the kernel's clock-tick
/// resolution (10 ms at the usual 100 Hz), so a measurement should span seconds.
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(Sample {
        cpu_us: parse_cpu_us(&stat, ticks_per_second())
            .with_context(|| format!("unexpected /proc/{pid}/stat format"))?,
        rss_kib: parse_rss_kib(&status).unwrap_or(0),
    })
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Returns utime + stime in microseconds. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_cpu_us(stat: &str, ticks: u64) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Fields 3.. follow the name; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_stat_line() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 200";
        assert_eq!(parse_cpu_us(stat, 100), Some(3_000_000));
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tconfab\nVmPeak:\t 9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_rss_kib(status), Some(12345));
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
    }
}
