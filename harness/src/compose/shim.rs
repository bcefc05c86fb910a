//! The `docker` a runbook's lines meet in a drill that imported a compose
//! file: `docker exec wss_postgres psql ...`, `docker compose -f
//! docker-compose.db.yml stop redis`, `docker volume rm
//! wallstreetsim_redis_data` run unchanged, on the drill's own servers.
//!
//! The shim is a small bash script first on the step's PATH (`docker` and
//! `docker-compose`). It sends its arguments to the drill over a loopback
//! socket with a per-drill token (bash's `/dev/tcp`), and the drill answers
//! with what to run (`docker exec` into the drill's container, or the
//! server's own tool natively) or with what it did itself (stop, start,
//! restart, rm, up, down, volume rm/create, ps, logs: these change servers
//! the drill owns, so the drill does them through its backend and keeps
//! knowing where they are).
//!
//! This file only decides: [`parse`] turns arguments into an [`Action`] or
//! a refusal. Any container, service, volume or compose file that is not
//! the drill's is refused with a message that lists the drill's own, so a
//! runbook line can never reach a server the drill did not start.

use std::path::{Path, PathBuf};

use super::Imported;
use crate::vocab::ServiceKind;

/// One of the drill's services under its compose names.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub kind: ServiceKind,
    pub container: String,
    pub service: String,
    /// The volume holding its data: the one the drill's volume stands for.
    pub data_volume: Option<String>,
    /// Its other named volumes, which the drill does not have.
    pub other_volumes: Vec<String>,
}

/// The compose names that stand for the drill's services.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    /// The compose file, as imported (made absolute when it can be).
    pub file: PathBuf,
    pub project: String,
    pub services: Vec<Named>,
    /// Compose services the drill does not run (the application).
    pub not_drilled: Vec<String>,
}

impl Names {
    pub(crate) fn of(imported: &Imported) -> Names {
        Names {
            file: imported
                .file
                .canonicalize()
                .unwrap_or_else(|_| imported.file.clone()),
            project: imported.project.clone(),
            services: imported
                .services
                .iter()
                .map(|s| Named {
                    kind: s.kind,
                    container: s.container.clone(),
                    service: s.service.clone(),
                    data_volume: s.data_volume.clone(),
                    other_volumes: s
                        .volumes
                        .iter()
                        .filter(|v| Some(*v) != s.data_volume.as_ref())
                        .cloned()
                        .collect(),
                })
                .collect(),
            not_drilled: imported.not_drilled.clone(),
        }
    }

    /// The service of `kind`.
    pub(crate) fn get(&self, kind: ServiceKind) -> &Named {
        self.services
            .iter()
            .find(|s| s.kind == kind)
            .expect("actions name the drill's services only")
    }

    fn list(&self, f: impl Fn(&Named) -> Option<&str>) -> String {
        self.services
            .iter()
            .filter_map(f)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn container(&self, name: &str) -> Result<ServiceKind, Refused> {
        // Docker also takes a container's id prefix; the drill's have none
        // the runbook could know, so names only.
        self.services
            .iter()
            .find(|s| s.container == name)
            .map(|s| s.kind)
            .ok_or_else(|| {
                Refused(format!(
                    "`{name}` is not one of this drill's containers ({}); the drill touches only the servers it started",
                    self.list(|s| Some(&s.container))
                ))
            })
    }

    fn service(&self, name: &str) -> Result<Option<ServiceKind>, Refused> {
        if self.not_drilled.iter().any(|n| n == name) {
            return Ok(None);
        }
        self.services
            .iter()
            .find(|s| s.service == name)
            .map(|s| Some(s.kind))
            .ok_or_else(|| {
                Refused(format!(
                    "`{name}` is not a service of {} ({})",
                    self.file.display(),
                    self.list(|s| Some(&s.service))
                ))
            })
    }

    fn volume(&self, name: &str) -> Result<ServiceKind, Refused> {
        if let Some(s) = self
            .services
            .iter()
            .find(|s| s.other_volumes.iter().any(|v| v == name))
        {
            return Err(Refused(format!(
                "`{name}` is a volume of {} that the drill does not have: only its data volume ({}) stands for the drill's",
                s.container,
                s.data_volume.as_deref().unwrap_or("none")
            )));
        }
        self.services
            .iter()
            .find(|s| s.data_volume.as_deref() == Some(name))
            .map(|s| s.kind)
            .ok_or_else(|| {
                Refused(format!(
                    "`{name}` is not one of this drill's volumes ({}); the drill touches only the volumes it made",
                    self.list(|s| s.data_volume.as_deref())
                ))
            })
    }

    fn all(&self) -> Vec<ServiceKind> {
        self.services.iter().map(|s| s.kind).collect()
    }
}

/// Why a line is refused, for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a `docker` command line asks of the drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `docker exec [opts] CONTAINER CMD...`: `opts` rewritten in long form
    /// (`--env=K=V`), so docker reads them as the shim did.
    Exec {
        kind: ServiceKind,
        opts: Vec<String>,
        /// `-e K=V` from `opts`, for the native backend (a bare `-e K`
        /// adds nothing: the command inherits the script's variables).
        env: Vec<(String, String)>,
        cmd: Vec<String>,
    },
    Stop(Vec<ServiceKind>),
    Start(Vec<ServiceKind>),
    Restart(Vec<ServiceKind>),
    Kill(Vec<ServiceKind>),
    /// `docker rm [-f]`: the container goes (its volume stays).
    Rm {
        kinds: Vec<ServiceKind>,
        force: bool,
    },
    /// The data volume of each goes.
    VolumeRm(Vec<ServiceKind>),
    /// Nothing to create (the drill makes the volume when the server
    /// starts); the names are echoed as docker does.
    VolumeCreate(Vec<String>),
    VolumeLs {
        quiet: bool,
    },
    /// `compose up`: create what is missing, start what is stopped.
    Up(Vec<ServiceKind>),
    /// `compose down [-v]`.
    Down {
        volumes: bool,
    },
    /// `docker ps` and `compose ps`.
    Ps {
        all: bool,
        quiet: bool,
    },
    Logs(ServiceKind),
    /// Nothing to do but say so (a service the drill does not run).
    Note(String),
}

/// The options one command takes: those with a value, and switches.
struct Spec {
    values: &'static [&'static str],
    switches: &'static [&'static str],
}

const EXEC: Spec = Spec {
    values: &[
        "-e",
        "--env",
        "-u",
        "--user",
        "-w",
        "--workdir",
        "--env-file",
        "--detach-keys",
    ],
    switches: &[
        "-i",
        "--interactive",
        "-t",
        "--tty",
        "-d",
        "--detach",
        "--privileged",
    ],
};
const COMPOSE_EXEC: Spec = Spec {
    values: &["-e", "--env", "-u", "--user", "-w", "--workdir", "--index"],
    switches: &[
        "-i",
        "--interactive",
        "-t",
        "--tty",
        "-T",
        "--no-TTY",
        "-d",
        "--detach",
        "--privileged",
    ],
};

/// An option as read: its name as written (`-e`, `--env`) and its value.
type Opt = (String, Option<String>);

/// Options as pflag reads them (`--name=v`, `--name v`, `-xv`, `-x v`,
/// clusters of switches `-fv`); stops at the first operand when `first`
/// (exec: what follows is the command). (options as (name, value),
/// operands, index after the options).
fn options<'a>(
    args: &[&'a str],
    spec: &Spec,
    first: bool,
    what: &str,
) -> Result<(Vec<Opt>, Vec<&'a str>), Refused> {
    let unknown = |o: &str| {
        Refused(format!(
            "`{what} {o}`: an option drill's docker shim does not know (it takes {})",
            spec.values
                .iter()
                .chain(spec.switches)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        ))
    };
    let (mut opts, mut operands) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if a == "--" {
            operands.extend(&args[i..]);
            break;
        }
        if !a.starts_with('-') || a == "-" {
            operands.push(a);
            if first {
                operands.extend(&args[i..]);
                break;
            }
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (a.to_string(), None),
            };
            if spec.values.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => next_value(args, &mut i, what, &name)?,
                };
                opts.push((name, Some(v)));
            } else if spec.switches.contains(&name.as_str()) && inline.is_none() {
                opts.push((name, None));
            } else {
                return Err(unknown(a));
            }
            continue;
        }
        // `-abc`: switches, until one takes a value (the rest of the
        // token, or the next argument).
        let chars: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let name = format!("-{}", chars[k]);
            k += 1;
            if spec.values.contains(&name.as_str()) {
                let rest: String = chars[k..].iter().collect();
                let v = if !rest.is_empty() {
                    rest.strip_prefix('=').unwrap_or(&rest).to_string()
                } else {
                    next_value(args, &mut i, what, &name)?
                };
                opts.push((name, Some(v)));
                break;
            } else if spec.switches.contains(&name.as_str()) {
                opts.push((name, None));
            } else {
                return Err(unknown(&name));
            }
        }
    }
    Ok((opts, operands))
}

/// The argument after an option that takes one (`-e VALUE`).
fn next_value(args: &[&str], i: &mut usize, what: &str, name: &str) -> Result<String, Refused> {
    let v = args
        .get(*i)
        .ok_or_else(|| Refused(format!("`{what} {name}` needs a value")))?;
    *i += 1;
    Ok(v.to_string())
}

fn has(opts: &[Opt], names: &[&str]) -> bool {
    opts.iter().any(|(n, _)| names.contains(&n.as_str()))
}

/// Reads a `docker` (or `docker-compose`, as `compose ...`) command line
/// run in `cwd`. Err: why it is refused.
pub(crate) fn parse(args: &[String], cwd: &Path, names: &Names) -> Result<Action, Refused> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(at) = args.iter().position(|a| !a.starts_with('-')) else {
        return Err(Refused("docker with no command".into()));
    };
    // Global options: any that would aim docker elsewhere is refused.
    for a in &args[..at] {
        if !matches!(*a, "--debug" | "-D") {
            return Err(Refused(format!(
                "`docker {a}`: in a drill, docker is the drill's own (no -H, --context, --config)"
            )));
        }
    }
    let (cmd, rest) = (args[at], &args[at + 1..]);
    let simple = |values: &'static [&'static str], switches: &'static [&'static str]| {
        let (opts, targets) = options(
            rest,
            &Spec { values, switches },
            false,
            &format!("docker {cmd}"),
        )?;
        if targets.is_empty() {
            return Err(Refused(format!("`docker {cmd}` needs a container name")));
        }
        let kinds = targets
            .iter()
            .map(|t| names.container(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((opts, kinds))
    };
    match cmd {
        "exec" => exec(rest, &EXEC, "docker exec", None, names),
        "stop" | "restart" => {
            let (_, k) = simple(&["-t", "--time", "--timeout", "-s", "--signal"], &[])?;
            Ok(if cmd == "stop" {
                Action::Stop(k)
            } else {
                Action::Restart(k)
            })
        }
        "start" => Ok(Action::Start(
            simple(&[], &["-a", "--attach", "-i", "--interactive"])?.1,
        )),
        "kill" => Ok(Action::Kill(simple(&["-s", "--signal"], &[])?.1)),
        "rm" => {
            let (opts, kinds) = simple(&[], &["-f", "--force", "-v", "--volumes", "-l", "--link"])?;
            Ok(Action::Rm {
                kinds,
                force: has(&opts, &["-f", "--force"]),
            })
        }
        "logs" => {
            let (_, kinds) = simple(
                &["-n", "--tail", "--since", "--until"],
                &["-f", "--follow", "-t", "--timestamps", "--details"],
            )?;
            Ok(Action::Logs(kinds[0]))
        }
        "ps" => {
            let (opts, _) = options(
                rest,
                &Spec {
                    values: &[],
                    switches: &[
                        "-a",
                        "--all",
                        "-q",
                        "--quiet",
                        "--no-trunc",
                        "-s",
                        "--size",
                        "-l",
                        "--latest",
                    ],
                },
                false,
                "docker ps",
            )?;
            Ok(Action::Ps {
                all: has(&opts, &["-a", "--all"]),
                quiet: has(&opts, &["-q", "--quiet"]),
            })
        }
        "volume" => volume(rest, names),
        "compose" => compose(rest, cwd, names),
        "run" | "create" | "cp" | "build" | "pull" | "push" | "network" | "system" | "image"
        | "images" | "rmi" | "commit" | "export" | "import" | "load" | "save" | "login"
        | "container" | "update" | "rename" | "pause" | "unpause" | "inspect" => {
            Err(Refused(format!(
                "`docker {cmd}` is not run in a drill: the shim does what a runbook does to the drill's own servers \
             (exec, stop, start, restart, kill, rm, logs, ps, volume rm, compose up/down/...); \
             for the rest use a drill step (redis-restore-rdb, clickhouse-restore, data-shell)"
            )))
        }
        other => Err(Refused(format!(
            "`docker {other}` is not supported by drill's docker shim"
        ))),
    }
}

fn volume(args: &[&str], names: &Names) -> Result<Action, Refused> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Refused("`docker volume` needs a command".into()));
    };
    let what = format!("docker volume {sub}");
    match *sub {
        "rm" | "remove" => {
            let (_, vols) = options(
                rest,
                &Spec {
                    values: &[],
                    switches: &["-f", "--force"],
                },
                false,
                &what,
            )?;
            Ok(Action::VolumeRm(
                vols.iter()
                    .map(|v| names.volume(v))
                    .collect::<Result<_, _>>()?,
            ))
        }
        "create" => {
            let (_, vols) = options(
                rest,
                &Spec {
                    values: &["-d", "--driver", "--label", "--name", "-o", "--opt"],
                    switches: &[],
                },
                false,
                &what,
            )?;
            for v in &vols {
                names.volume(v)?;
            }
            Ok(Action::VolumeCreate(
                vols.iter().map(|v| v.to_string()).collect(),
            ))
        }
        "ls" | "list" => {
            let (opts, _) = options(
                rest,
                &Spec {
                    values: &[],
                    switches: &["-q", "--quiet"],
                },
                false,
                &what,
            )?;
            Ok(Action::VolumeLs {
                quiet: has(&opts, &["-q", "--quiet"]),
            })
        }
        other => Err(Refused(format!(
            "`docker volume {other}` is not something a drill's runbook can do"
        ))),
    }
}

/// `exec [opts] CONTAINER CMD...` (`container` given: compose's, whose
/// first operand was the service).
fn exec(
    args: &[&str],
    spec: &Spec,
    what: &str,
    service: Option<(&str, ServiceKind)>,
    names: &Names,
) -> Result<Action, Refused> {
    let (opts, operands) = options(args, spec, true, what)?;
    let (kind, cmd): (ServiceKind, &[&str]) = match service {
        Some((_, k)) => (k, &operands[..]),
        None => {
            let Some((container, cmd)) = operands.split_first() else {
                return Err(Refused(format!("`{what}` needs a container and a command")));
            };
            (names.container(container)?, cmd)
        }
    };
    if cmd.is_empty() {
        return Err(Refused(format!("`{what}` needs a command")));
    }
    let mut long = Vec::new();
    let mut env = Vec::new();
    // compose exec attaches stdin unless -T.
    let compose = service.is_some();
    let mut interactive = compose && !has(&opts, &["-T", "--no-TTY"]);
    for (name, value) in &opts {
        match (name.as_str(), value) {
            ("-e" | "--env", Some(v)) => {
                long.push(format!("--env={v}"));
                if let Some((k, val)) = v.split_once('=') {
                    env.push((k.to_string(), val.to_string()));
                }
            }
            ("-u" | "--user", Some(v)) => long.push(format!("--user={v}")),
            ("-w" | "--workdir", Some(v)) => long.push(format!("--workdir={v}")),
            ("--env-file", Some(v)) => long.push(format!("--env-file={v}")),
            ("--detach-keys", Some(v)) => long.push(format!("--detach-keys={v}")),
            ("--index", Some(v)) if v == "1" => {}
            ("--index", Some(v)) => {
                return Err(Refused(format!(
                    "`{what} --index {v}`: the drill runs one of each service"
                )));
            }
            ("-i" | "--interactive", None) => interactive = true,
            ("-t" | "--tty", None) if !compose => long.push("--tty".into()),
            ("-d" | "--detach", None) => long.push("--detach".into()),
            ("--privileged", None) => long.push("--privileged".into()),
            _ => {}
        }
    }
    if interactive {
        long.insert(0, "--interactive".into());
    }
    Ok(Action::Exec {
        kind,
        opts: long,
        env,
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
    })
}

const COMPOSE_GLOBAL: Spec = Spec {
    values: &[
        "-f",
        "--file",
        "-p",
        "--project-name",
        "--env-file",
        "--profile",
        "--project-directory",
        "--ansi",
        "--progress",
        "--parallel",
    ],
    switches: &["--dry-run", "--compatibility", "--all-resources"],
};

fn compose(args: &[&str], cwd: &Path, names: &Names) -> Result<Action, Refused> {
    let (global, operands) = options(args, &COMPOSE_GLOBAL, true, "docker compose")?;
    for (name, value) in &global {
        let v = value.as_deref().unwrap_or("");
        match name.as_str() {
            "-f" | "--file" => {
                let named = cwd.join(v);
                let same = named
                    .canonicalize()
                    .map(|p| p == names.file)
                    .unwrap_or(false);
                if !same {
                    return Err(Refused(format!(
                        "`docker compose -f {v}`: the drill imported {}, not {}",
                        names.file.display(),
                        named.display()
                    )));
                }
            }
            "-p" | "--project-name" if v != names.project => {
                return Err(Refused(format!(
                    "`docker compose -p {v}`: the drill's project is {}",
                    names.project
                )));
            }
            "--project-directory" | "--env-file" => {
                return Err(Refused(format!(
                    "`docker compose {name}`: the drill read its compose file's own"
                )));
            }
            _ => {}
        }
    }
    let Some((sub, rest)) = operands.split_first() else {
        return Err(Refused("`docker compose` needs a command".into()));
    };
    let what = format!("docker compose {sub}");
    if *sub == "exec" {
        // `compose exec [opts] SERVICE CMD...`.
        let (_, after) = options(rest, &COMPOSE_EXEC, true, &what)?;
        let Some(service) = after.first() else {
            return Err(Refused(format!("`{what}` needs a service")));
        };
        let kind = names.service(service)?.ok_or_else(|| {
            Refused(format!(
                "`{service}` is not drilled: the drill runs {}",
                names.list(|s| Some(&s.service))
            ))
        })?;
        let cut = rest.len() - after.len();
        let mut again: Vec<&str> = rest[..cut].to_vec();
        again.extend(&after[1..]);
        return exec(&again, &COMPOSE_EXEC, &what, Some((service, kind)), names);
    }
    let spec = match *sub {
        "up" | "create" => Spec {
            values: &["-t", "--timeout", "--scale", "--wait-timeout", "--pull"],
            switches: &[
                "-d",
                "--detach",
                "--build",
                "--no-build",
                "--force-recreate",
                "--no-recreate",
                "--remove-orphans",
                "--wait",
                "--no-deps",
                "-V",
                "--renew-anon-volumes",
                "--quiet-pull",
                "--no-start",
                "--no-color",
            ],
        },
        "stop" | "restart" => Spec {
            values: &["-t", "--timeout"],
            switches: &["--no-deps"],
        },
        "start" => Spec {
            values: &[],
            switches: &["--wait"],
        },
        "kill" => Spec {
            values: &["-s", "--signal"],
            switches: &["--remove-orphans"],
        },
        "rm" => Spec {
            values: &[],
            switches: &["-f", "--force", "-s", "--stop", "-v", "--volumes"],
        },
        "down" => Spec {
            values: &["-t", "--timeout", "--rmi"],
            switches: &["-v", "--volumes", "--remove-orphans"],
        },
        "ps" => Spec {
            values: &["--status"],
            switches: &["-a", "--all", "-q", "--quiet", "--services"],
        },
        "logs" => Spec {
            values: &["-n", "--tail", "--since", "--until"],
            switches: &[
                "-f",
                "--follow",
                "-t",
                "--timestamps",
                "--no-color",
                "--no-log-prefix",
            ],
        },
        other => {
            return Err(Refused(format!(
                "`docker compose {other}` is not supported by drill's docker shim"
            )));
        }
    };
    let (opts, targets) = options(rest, &spec, false, &what)?;
    let mut kinds = Vec::new();
    let mut skipped = Vec::new();
    for t in &targets {
        match names.service(t)? {
            Some(k) => kinds.push(k),
            None => skipped.push(t.to_string()),
        }
    }
    if targets.is_empty() {
        kinds = names.all();
    }
    if kinds.is_empty() {
        return Ok(Action::Note(format!(
            "{} not drilled: the drill runs {}",
            skipped.join(", "),
            names.list(|s| Some(&s.service))
        )));
    }
    Ok(match *sub {
        "up" | "create" => Action::Up(kinds),
        "start" => Action::Start(kinds),
        "stop" => Action::Stop(kinds),
        "restart" => Action::Restart(kinds),
        "kill" => Action::Kill(kinds),
        "rm" => Action::Rm {
            kinds,
            force: has(&opts, &["-f", "--force", "-s", "--stop"]),
        },
        "down" => Action::Down {
            volumes: has(&opts, &["-v", "--volumes"]),
        },
        "ps" => Action::Ps {
            all: has(&opts, &["-a", "--all"]),
            quiet: has(&opts, &["-q", "--quiet"]),
        },
        _ => Action::Logs(kinds[0]),
    })
}

/// The `docker` program for a step's PATH: asks the drill on 127.0.0.1:
/// `port` with `token`, then runs what it is told or prints what the drill
/// did. `docker-compose` is the same with `compose` first. Plain bash
/// (3.2 and later): `read -d ''` for the NUL-separated answer.
pub(crate) fn script(port: u16, token: &str, compose_v1: bool) -> String {
    let prefix = if compose_v1 { "compose " } else { "" };
    format!(
        r#"#!/usr/bin/env bash
# drill's docker shim: the compose file's names mean the drill's own servers.
exec 3<>/dev/tcp/127.0.0.1/{port} || {{ echo "drill's docker shim: the drill is not listening (a step that outlived its drill?)" >&2; exit 125; }}
set -- {prefix}"$@"
{{ printf '%s\0' {token} "$PWD" "$#"; printf '%s\0' "$@"; }} >&3
IFS= read -r -d '' kind <&3 || {{ echo "drill's docker shim: no answer" >&2; exit 125; }}
if [ "$kind" = EXEC ]; then
  argv=()
  while IFS= read -r -d '' a <&3; do argv+=("$a"); done
  exec 3<&-
  exec "${{argv[@]}}"
fi
IFS= read -r -d '' out <&3
IFS= read -r -d '' err <&3
exec 3<&-
[ -n "$out" ] && printf '%s\n' "$out"
[ -n "$err" ] && printf '%s\n' "$err" >&2
exit "${{kind#DONE:}}"
"#
    )
}

/// Whether an action changes a server (the tool shims are written again).
pub(crate) fn changes_servers(a: &Action) -> bool {
    !matches!(
        a,
        Action::Exec { .. }
            | Action::Ps { .. }
            | Action::Logs(_)
            | Action::Note(_)
            | Action::VolumeCreate(_)
            | Action::VolumeLs { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Names as seed 003's stack gives them; the compose file is this
    /// source file (it exists, so `-f` can be resolved).
    fn names() -> Names {
        let named = |kind, c: &str, s: &str, v: &str| Named {
            kind,
            container: c.into(),
            service: s.into(),
            data_volume: Some(v.into()),
            other_volumes: vec![],
        };
        Names {
            file: PathBuf::from(file!()).canonicalize().unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("src/compose/shim.rs")
            }),
            project: "wallstreetsim".into(),
            services: vec![
                Named {
                    other_volumes: vec!["wallstreetsim_pg_backups".into()],
                    ..named(
                        ServiceKind::Postgres,
                        "wss_postgres",
                        "postgres",
                        "wallstreetsim_postgres_data",
                    )
                },
                named(
                    ServiceKind::Redis,
                    "wss_redis",
                    "redis",
                    "wallstreetsim_redis_data",
                ),
            ],
            not_drilled: vec!["api".into()],
        }
    }

    fn p(line: &str) -> Result<Action, Refused> {
        let n = names();
        let words: Vec<String> = line
            .replace("FILE", &n.file.display().to_string())
            .split_whitespace()
            .map(String::from)
            .collect();
        parse(&words, Path::new("/"), &n)
    }

    fn exec(kind: ServiceKind, opts: &[&str], env: &[(&str, &str)], cmd: &[&str]) -> Action {
        Action::Exec {
            kind,
            opts: opts.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn seed_003s_lines_mean_the_drills_servers() {
        use ServiceKind::*;
        assert_eq!(
            p("compose -f FILE stop redis"),
            Ok(Action::Stop(vec![Redis]))
        );
        assert_eq!(
            p("rm wss_redis"),
            Ok(Action::Rm {
                kinds: vec![Redis],
                force: false
            })
        );
        assert_eq!(
            p("rm -fv wss_redis"),
            Ok(Action::Rm {
                kinds: vec![Redis],
                force: true
            })
        );
        assert_eq!(
            p("volume rm wallstreetsim_redis_data"),
            Ok(Action::VolumeRm(vec![Redis]))
        );
        assert_eq!(
            p("compose -f FILE up -d redis"),
            Ok(Action::Up(vec![Redis]))
        );
        assert_eq!(
            p("compose --file=FILE restart redis"),
            Ok(Action::Restart(vec![Redis]))
        );
        assert_eq!(
            p("compose -f FILE up -d"),
            Ok(Action::Up(vec![Postgres, Redis]))
        );
        assert_eq!(
            p("ps"),
            Ok(Action::Ps {
                all: false,
                quiet: false
            })
        );
        assert_eq!(p("logs -t wss_postgres"), Ok(Action::Logs(Postgres)));
        assert_eq!(p("logs --tail 50 wss_redis"), Ok(Action::Logs(Redis)));
        assert_eq!(
            p("exec -i wss_postgres psql -U wss_user -d wallstreetsim"),
            Ok(exec(
                Postgres,
                &["--interactive"],
                &[],
                &["psql", "-U", "wss_user", "-d", "wallstreetsim"]
            ))
        );
        assert_eq!(
            p("exec -it -e A=1 -u postgres wss_postgres env"),
            Ok(exec(
                Postgres,
                &["--interactive", "--tty", "--env=A=1", "--user=postgres"],
                &[("A", "1")],
                &["env"]
            ))
        );
        // compose exec attaches stdin unless -T, and its options may come
        // before the service.
        assert_eq!(
            p("compose -f FILE exec -T redis redis-cli PING"),
            Ok(exec(Redis, &[], &[], &["redis-cli", "PING"]))
        );
        assert_eq!(
            p("compose -f FILE exec -u postgres postgres psql -c SELECT"),
            Ok(exec(
                Postgres,
                &["--interactive", "--user=postgres"],
                &[],
                &["psql", "-c", "SELECT"]
            ))
        );
        assert!(matches!(
            p("compose -f FILE up -d api"),
            Ok(Action::Note(_))
        ));
    }

    #[test]
    fn anything_not_the_drills_is_refused_with_the_drills_names() {
        for (line, needle) in [
            ("exec prod_postgres psql", "wss_postgres, wss_redis"),
            // A value option in a cluster takes the next word: `-ie X`
            // is `-i -e X`, so the container is what comes after.
            (
                "exec -ie wss_postgres prod_db psql",
                "`prod_db` is not one of this drill's containers",
            ),
            ("exec --bogus wss_postgres psql", "does not know"),
            (
                "volume rm wallstreetsim_clickhouse_data",
                "wallstreetsim_postgres_data",
            ),
            ("volume rm wallstreetsim_pg_backups", "only its data volume"),
            ("rm -f other", "not one of this drill's containers"),
            (
                "compose -f docker-compose.prod.yml stop redis",
                "the drill imported",
            ),
            (
                "compose -fdocker-compose.prod.yml stop redis",
                "the drill imported",
            ),
            ("compose -p prod stop redis", "project is wallstreetsim"),
            (
                "compose --project-name=prod stop redis",
                "project is wallstreetsim",
            ),
            ("compose -f FILE stop cache", "not a service"),
            (
                "run --rm -v wallstreetsim_redis_data:/data alpine cp /backup/dump.rdb /data/",
                "drill step",
            ),
            ("-H tcp://prod:2375 ps", "drill's own"),
            ("--context prod ps", "drill's own"),
            ("inspect wss_postgres", "not run in a drill"),
            ("network rm bridge", "not run in a drill"),
        ] {
            let e = p(line).unwrap_err();
            assert!(e.0.contains(needle), "{line}: {e}");
        }
    }

    proptest! {
        /// Whatever name a line aims at, it reaches a drill's server only
        /// when it is one of the drill's names.
        #[test]
        fn only_the_drills_names_reach_a_server(name in "[a-z_][a-z0-9_.-]{0,20}", verb in prop::sample::select(vec!["exec", "stop", "start", "restart", "rm", "kill", "logs"])) {
            let line = if verb == "exec" { format!("exec {name} ls") } else { format!("{verb} {name}") };
            let ours = ["wss_postgres", "wss_redis"].contains(&name.as_str());
            prop_assert_eq!(p(&line).is_ok(), ours, "{}", line);
            let vol = p(&format!("volume rm {name}"));
            prop_assert_eq!(vol.is_ok(), ["wallstreetsim_postgres_data", "wallstreetsim_redis_data"].contains(&name.as_str()));
        }

        /// Whatever options come before it, an exec runs in a drill's
        /// container only when the container docker will read is the
        /// drill's: the options are given back in long form, so docker
        /// reads them as the shim did.
        #[test]
        fn exec_options_cannot_smuggle_a_container(opts in prop::collection::vec(prop::sample::select(vec!["-i", "-t", "-d", "-it", "-e", "-ie", "-u", "-w", "--env", "--user=x", "-eA=1"]), 0..4), target in prop::sample::select(vec!["wss_postgres", "prod_db"])) {
            let line = format!("exec {} {target} psql", opts.join(" "));
            if let Ok(Action::Exec { opts, .. }) = p(&line) {
                prop_assert!(opts.iter().all(|o| o.starts_with("--")), "{:?}", opts);
            }
        }
    }
}
