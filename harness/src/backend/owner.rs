//! Who owns a drill's containers, volumes, networks and temp dirs: the
//! harness process, named so that no other process can be taken for it.
//! A pid alone is not enough: two CI jobs in two containers on one host
//! share a Docker engine, may share a hostname, and each can be pid 7 in
//! its own PID namespace; after a reboot a pid names anything. So an owner
//! is the kernel's boot id, the PID namespace, the pid and the process's
//! start time (and the hostname, for people).
//!
//! [`Owner::state`] says what this process can know about an owner: this
//! process, alive, gone, or not knowable from here (another boot, another
//! PID namespace: another machine or container). `clean` removes only what
//! belongs to owners that are gone; it never touches what it cannot check.

use std::sync::OnceLock;

/// A harness process, for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub boot: String,
    /// The PID namespace (`/proc/self/ns/pid`'s inode).
    pub pidns: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start: u64,
    pub host: String,
}

/// What this process can tell about an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// This very process.
    Mine,
    /// A live harness this process can see.
    Alive,
    /// It has ended (or its pid now names another process).
    Gone,
    /// Another boot, or another PID namespace (another machine or
    /// container on a shared engine): nothing here can tell; leave it.
    Unknowable,
}

impl Owner {
    /// This process.
    pub(crate) fn me() -> &'static Owner {
        static ME: OnceLock<Owner> = OnceLock::new();
        ME.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                boot: boot_id(),
                pidns: pid_namespace(),
                pid,
                start: start_time(pid as i32).unwrap_or(0),
                host: nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }
        })
    }

    /// As written into a label or a marker file.
    pub(crate) fn label(&self) -> String {
        format!(
            "v1 {} {} {} {} {}",
            self.boot, self.pidns, self.pid, self.start, self.host
        )
    }

    /// Reads [`Owner::label`]'s form.
    pub(crate) fn parse(s: &str) -> Option<Owner> {
        let mut w = s.split_whitespace();
        if w.next()? != "v1" {
            return None;
        }
        Some(Owner {
            boot: w.next()?.to_string(),
            pidns: w.next()?.to_string(),
            pid: w.next()?.parse().ok()?,
            start: w.next()?.parse().ok()?,
            host: w.next().unwrap_or("").to_string(),
        })
    }

    pub(crate) fn state(&self) -> State {
        let me = Owner::me();
        if self == me {
            return State::Mine;
        }
        if self.boot != me.boot || self.pidns != me.pidns {
            return State::Unknowable;
        }
        if start_time(self.pid as i32) == Some(self.start) {
            State::Alive
        } else {
            State::Gone
        }
    }
}

/// Whose leftovers a sweep removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whose {
    /// This process's (Ctrl-C).
    Mine,
    /// Those of harnesses known to have ended; with `foreign_older_than`,
    /// also those whose owner cannot be checked from here (another boot of
    /// this machine, another machine or container on a shared engine or
    /// /tmp) once they are at least that old.
    Dead {
        foreign_older_than: Option<std::time::Duration>,
    },
}

/// What a sweep does with one leftover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Take,
    /// Left, and listed with the reason (what `clean` prints).
    Leave(String),
    /// Not this sweep's business (another live process's, in a Ctrl-C
    /// sweep), and not worth listing.
    Skip,
}

impl Whose {
    /// The decision for a leftover of `owner` (in `state`), `age` old
    /// (None when the engine does not say).
    pub(crate) fn decide(
        self,
        owner: &str,
        state: State,
        age: Option<std::time::Duration>,
    ) -> Decision {
        match (self, state) {
            (Whose::Mine, State::Mine) => Decision::Take,
            (Whose::Mine, _) => Decision::Skip,
            (Whose::Dead { .. }, State::Gone) => Decision::Take,
            (Whose::Dead { .. }, State::Mine) => Decision::Skip,
            (Whose::Dead { .. }, State::Alive) => {
                Decision::Leave(format!("in use by a live drill ({owner})"))
            }
            (Whose::Dead { foreign_older_than }, State::Unknowable) => {
                let old = age.map_or("of unknown age".to_string(), |a| {
                    format!("{} old", humantime::format_duration(round_secs(a)))
                });
                match (foreign_older_than, age) {
                    (Some(min), Some(a)) if a >= min => Decision::Take,
                    (Some(min), _) => Decision::Leave(format!(
                        "its owner ({owner}) cannot be checked from here, and it is {old}, younger than --older-than {}",
                        humantime::format_duration(min)
                    )),
                    (None, _) => Decision::Leave(format!(
                        "its owner ({owner}) cannot be checked from here; {old}; `clean --older-than 24h` removes such leftovers once they are that old"
                    )),
                }
            }
        }
    }
}

fn round_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

impl Owner {
    /// For people: `pid 7 on ci-runner-b, another boot`.
    pub(crate) fn describe(&self) -> String {
        let me = Owner::me();
        let whence = if self.boot != me.boot {
            ", another boot or machine"
        } else if self.pidns != me.pidns {
            ", another PID namespace"
        } else {
            ""
        };
        format!(
            "pid {} on {}{whence}",
            self.pid,
            if self.host.is_empty() {
                "an unnamed host"
            } else {
                &self.host
            }
        )
    }
}

/// The state of an owner recorded before owners were written in full (a
/// pid and a hostname): the pid's liveness on this host, as before.
pub(crate) fn legacy_state(pid: i32, host: Option<&str>) -> State {
    let me = Owner::me();
    if host.is_some_and(|h| h != me.host) {
        return State::Unknowable;
    }
    if pid as u32 == me.pid {
        return State::Mine;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => State::Alive,
        Err(_) => State::Gone,
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-boot".into())
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| {
            p.to_string_lossy()
                .trim_start_matches("pid:[")
                .trim_end_matches(']')
                .to_string()
        })
        .unwrap_or_else(|_| "unknown-pidns".into())
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`
/// field 22): with the pid, it names one process for good.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_known_only_where_it_can_be_checked() {
        let me = Owner::me().clone();
        assert_eq!(Owner::parse(&me.label()), Some(me.clone()));
        assert_eq!(me.state(), State::Mine);

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let live = Owner {
            pid,
            start: start_time(pid as i32).unwrap(),
            ..me.clone()
        };
        assert_eq!(live.state(), State::Alive);
        // The same pid with another start time: the pid was reused.
        let reused = Owner {
            start: live.start + 1,
            ..live.clone()
        };
        assert_eq!(reused.state(), State::Gone);
        // Pid 7 of another container on this host, or of another machine:
        // nothing here can tell whether it lives.
        let other_container = Owner {
            pidns: "4026530000".into(),
            ..reused.clone()
        };
        assert_eq!(other_container.state(), State::Unknowable);
        let other_machine = Owner {
            boot: "another-boot".into(),
            ..reused.clone()
        };
        assert_eq!(other_machine.state(), State::Unknowable);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(live.state(), State::Gone);

        assert_eq!(Owner::parse("12345"), None);
        assert_eq!(legacy_state(me.pid as i32, Some(&me.host)), State::Mine);
        assert_eq!(legacy_state(1, Some("elsewhere")), State::Unknowable);
    }
}
