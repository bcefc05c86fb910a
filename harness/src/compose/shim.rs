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

use super::Imported;
use crate::vocab::ServiceKind;

/// The compose names that stand for the drill's services.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    pub file: String,
    pub project: String,
    /// (container name, compose service, volumes, kind)
    pub services: Vec<(String, String, Vec<String>, ServiceKind)>,
    /// Compose services the drill does not run (the application).
    pub not_drilled: Vec<String>,
}

impl Names {
    pub(crate) fn of(imported: &Imported) -> Names {
        Names {
            file: imported
                .file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            project: imported.project.clone(),
            services: imported
                .services
                .iter()
                .map(|s| {
                    (
                        s.container.clone(),
                        s.service.clone(),
                        s.volumes.clone(),
                        s.kind,
                    )
                })
                .collect(),
            not_drilled: imported.not_drilled.clone(),
        }
    }

    fn container(&self, name: &str) -> Result<ServiceKind, Refused> {
        // Docker also takes a container's id prefix; the drill's have none
        // the runbook could know, so names only.
        self.services
            .iter()
            .find(|(c, _, _, _)| c == name)
            .map(|s| s.3)
            .ok_or_else(|| Refused({
                format!(
                    "`{name}` is not one of this drill's containers ({}); the drill touches only the servers it started",
                    self.services.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", ")
                )
            }))
    }

    fn service(&self, name: &str) -> Result<Option<ServiceKind>, Refused> {
        if self.not_drilled.iter().any(|n| n == name) {
            return Ok(None);
        }
        self.services
            .iter()
            .find(|(_, s, _, _)| s == name)
            .map(|s| Some(s.3))
            .ok_or_else(|| {
                Refused({
                    format!(
                        "`{name}` is not a service of {} ({})",
                        self.file,
                        self.services
                            .iter()
                            .map(|s| s.1.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
    }

    fn volume(&self, name: &str) -> Result<ServiceKind, Refused> {
        self.services
            .iter()
            .find(|(_, _, v, _)| v.iter().any(|v| v == name))
            .map(|s| s.3)
            .ok_or_else(|| Refused({
                format!(
                    "`{name}` is not one of this drill's volumes ({}); the drill touches only the volumes it made",
                    self.services.iter().flat_map(|s| s.2.iter().map(String::as_str)).collect::<Vec<_>>().join(", ")
                )
            }))
    }

    fn all(&self) -> Vec<ServiceKind> {
        self.services.iter().map(|s| s.3).collect()
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
    /// `docker exec [opts] CONTAINER CMD...`: `opts` as given.
    Exec {
        kind: ServiceKind,
        opts: Vec<String>,
        /// `-e K=V` from `opts`, for the native backend.
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
    VolumeRm(Vec<ServiceKind>),
    VolumeCreate(Vec<String>),
    /// `compose up`: create what is missing, start what is stopped.
    Up(Vec<ServiceKind>),
    /// `compose down [-v]`.
    Down {
        volumes: bool,
    },
    /// `docker ps [-a]` and `compose ps`.
    Ps {
        all: bool,
    },
    Logs(ServiceKind),
    /// Nothing to do but say so (a service the drill does not run).
    Note(String),
}

/// Reads a `docker` (or `docker-compose`, as `compose ...`) command line.
/// Err: why it is refused.
pub(crate) fn parse(args: &[String], names: &Names) -> Result<Action, Refused> {
    let mut it = args.iter().map(String::as_str).peekable();
    // Global flags that would aim docker elsewhere are refused.
    while let Some(a) = it.peek() {
        match *a {
            "-H" | "--host" | "--context" | "-c" | "--config" => {
                return Err(Refused(format!(
                    "`docker {a}` aims at another engine; in a drill, docker is the drill's own"
                )));
            }
            "--debug" | "-D" => {
                it.next();
            }
            _ => break,
        }
    }
    let Some(cmd) = it.next() else {
        return Err(Refused("docker with no command".into()));
    };
    let rest: Vec<&str> = it.collect();
    match cmd {
        "exec" => exec(&rest, names),
        "stop" | "start" | "restart" | "kill" | "rm" | "logs" | "inspect" => {
            let (flags, targets) =
                split_flags(&rest, &["-t", "--time", "-s", "--signal", "-n", "--tail"]);
            if targets.is_empty() {
                return Err(Refused(format!("`docker {cmd}` needs a container name")));
            }
            let kinds: Vec<ServiceKind> = targets
                .iter()
                .map(|t| names.container(t))
                .collect::<Result<_, _>>()?;
            Ok(match cmd {
                "stop" => Action::Stop(kinds),
                "start" => Action::Start(kinds),
                "restart" => Action::Restart(kinds),
                "kill" => Action::Kill(kinds),
                "logs" | "inspect" => Action::Logs(kinds[0]),
                _ => Action::Rm {
                    kinds,
                    force: flags.iter().any(|f| matches!(*f, "-f" | "--force")),
                },
            })
        }
        "ps" | "container" if cmd == "ps" || rest.first() == Some(&"ls") => Ok(Action::Ps {
            all: rest.iter().any(|a| matches!(*a, "-a" | "--all")),
        }),
        "volume" => {
            let Some((sub, vols)) = rest.split_first() else {
                return Err(Refused("`docker volume` needs a command".into()));
            };
            let (_, vols) = split_flags(
                vols,
                &["--driver", "-d", "--label", "--name", "-o", "--opt"],
            );
            match *sub {
                "rm" | "remove" => Ok(Action::VolumeRm(
                    vols.iter()
                        .map(|v| names.volume(v))
                        .collect::<Result<_, _>>()?,
                )),
                "create" => {
                    for v in &vols {
                        names.volume(v)?;
                    }
                    Ok(Action::VolumeCreate(
                        vols.iter().map(|v| v.to_string()).collect(),
                    ))
                }
                "ls" | "inspect" => Ok(Action::Ps { all: true }),
                other => Err(Refused(format!(
                    "`docker volume {other}` is not something a drill's runbook can do"
                ))),
            }
        }
        "compose" => compose(&rest, names),
        "run" | "create" | "cp" | "build" | "pull" | "push" | "network" | "system" | "image"
        | "images" | "rmi" | "commit" | "export" | "import" | "load" | "save" | "login" => {
            Err(Refused(format!(
                "`docker {cmd}` is not run in a drill: it would start or change something the drill does not own; \
             use a drill step instead (redis-restore-rdb, clickhouse-restore, data-shell)"
            )))
        }
        other => Err(Refused(format!(
            "`docker {other}` is not supported by drill's docker shim"
        ))),
    }
}

/// Flags (with the values of those in `with_value`) apart from the rest.
fn split_flags<'a>(args: &[&'a str], with_value: &[&str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let (mut flags, mut rest) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a.starts_with('-') {
            flags.push(a);
            if with_value.contains(&a) {
                i += 1;
                if let Some(v) = args.get(i) {
                    flags.push(v);
                }
            }
        } else {
            rest.push(a);
        }
        i += 1;
    }
    (flags, rest)
}

fn exec(args: &[&str], names: &Names) -> Result<Action, Refused> {
    let mut opts = Vec::new();
    let mut env = Vec::new();
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let a = args[i];
        opts.push(a.to_string());
        let takes_value = matches!(
            a,
            "-e" | "--env" | "-u" | "--user" | "-w" | "--workdir" | "--env-file" | "--detach-keys"
        );
        if takes_value {
            i += 1;
            let v = args
                .get(i)
                .ok_or_else(|| Refused(format!("`docker exec {a}` needs a value")))?;
            opts.push(v.to_string());
            if matches!(a, "-e" | "--env") {
                let (k, val) = match v.split_once('=') {
                    Some((k, val)) => (k.to_string(), val.to_string()),
                    None => (v.to_string(), std::env::var(v).unwrap_or_default()),
                };
                env.push((k, val));
            }
        } else if let Some((k, val)) = a
            .strip_prefix("--env=")
            .or_else(|| a.strip_prefix("-e="))
            .and_then(|kv| kv.split_once('='))
        {
            env.push((k.to_string(), val.to_string()));
        }
        i += 1;
    }
    let Some(container) = args.get(i) else {
        return Err(Refused(
            "`docker exec` needs a container and a command".into(),
        ));
    };
    let kind = names.container(container)?;
    let cmd: Vec<String> = args[i + 1..].iter().map(|s| s.to_string()).collect();
    if cmd.is_empty() {
        return Err(Refused(format!(
            "`docker exec {container}` needs a command"
        )));
    }
    Ok(Action::Exec {
        kind,
        opts,
        env,
        cmd,
    })
}

fn compose(args: &[&str], names: &Names) -> Result<Action, Refused> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let a = args[i];
        let value = || args.get(i + 1).copied().unwrap_or("");
        match a {
            "-f" | "--file" => {
                let f = value();
                let base = f.rsplit('/').next().unwrap_or(f);
                if base != names.file {
                    return Err(Refused(format!(
                        "`docker compose -f {f}`: the drill imported {}, not {base}",
                        names.file
                    )));
                }
                i += 1;
            }
            "-p" | "--project-name" => {
                if value() != names.project {
                    return Err(Refused(format!(
                        "`docker compose -p {}`: the drill's project is {}",
                        value(),
                        names.project
                    )));
                }
                i += 1;
            }
            "--env-file" | "--profile" | "--project-directory" | "--ansi" | "--progress" => i += 1,
            _ => {}
        }
        i += 1;
    }
    let Some(sub) = args.get(i) else {
        return Err(Refused("`docker compose` needs a command".into()));
    };
    if *sub == "exec" {
        // `compose exec SERVICE CMD`: the first word after the flags is
        // the service, the rest its command.
        let args = &args[i + 1..];
        let at = args
            .iter()
            .position(|a| !a.starts_with('-'))
            .ok_or_else(|| Refused("`compose exec` needs a service".into()))?;
        let kind = names
            .service(args[at])?
            .ok_or_else(|| Refused(format!("`{}` is not drilled", args[at])))?;
        let container = names
            .services
            .iter()
            .find(|s| s.3 == kind)
            .map(|s| s.0.clone())
            .unwrap_or_default();
        let mut exec_args: Vec<&str> = args[..at].iter().copied().filter(|a| *a != "-T").collect();
        exec_args.push(&container);
        exec_args.extend(&args[at + 1..]);
        return exec(&exec_args, names);
    }
    let (flags, targets) = split_flags(
        &args[i + 1..],
        &["-t", "--timeout", "--scale", "-n", "--tail"],
    );
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
    let note = || {
        Action::Note(format!(
            "{} not drilled: the drill runs {}",
            skipped.join(", "),
            names
                .services
                .iter()
                .map(|s| s.1.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    if kinds.is_empty() && !skipped.is_empty() {
        return Ok(note());
    }
    let has = |f: &str| flags.contains(&f);
    match *sub {
        "up" | "create" => Ok(Action::Up(kinds)),
        "start" => Ok(Action::Start(kinds)),
        "stop" => Ok(Action::Stop(kinds)),
        "restart" => Ok(Action::Restart(kinds)),
        "kill" => Ok(Action::Kill(kinds)),
        "rm" => Ok(Action::Rm {
            kinds,
            force: has("-f") || has("--force") || has("-s") || has("--stop"),
        }),
        "down" => Ok(Action::Down {
            volumes: has("-v") || has("--volumes"),
        }),
        "ps" => Ok(Action::Ps {
            all: has("-a") || has("--all"),
        }),
        "logs" => Ok(Action::Logs(kinds[0])),
        other => Err(Refused(format!(
            "`docker compose {other}` is not supported by drill's docker shim"
        ))),
    }
}

/// The `docker` program for a step's PATH: asks the drill on 127.0.0.1:
/// `port` with `token`, then runs what it is told or prints what the drill
/// did. `docker-compose` is the same with `compose` first.
pub(crate) fn script(port: u16, token: &str, compose_v1: bool) -> String {
    let prefix = if compose_v1 { " compose" } else { "" };
    format!(
        r#"#!/usr/bin/env bash
# drill's docker shim: the compose file's names mean the drill's own servers.
exec 3<>/dev/tcp/127.0.0.1/{port} || {{ echo "drill's docker shim: the drill is not listening (a step that outlived its drill?)" >&2; exit 125; }}
set -- {prefix} "$@"
{{ printf '%s\0' {token} "$#"; printf '%s\0' "$@"; }} >&3
IFS= read -r -d '' kind <&3 || {{ echo "drill's docker shim: no answer" >&2; exit 125; }}
if [ "$kind" = EXEC ]; then
  mapfile -d '' -t argv <&3
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
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names() -> Names {
        Names {
            file: "docker-compose.db.yml".into(),
            project: "wallstreetsim".into(),
            services: vec![
                (
                    "wss_postgres".into(),
                    "postgres".into(),
                    vec!["wallstreetsim_postgres_data".into()],
                    ServiceKind::Postgres,
                ),
                (
                    "wss_redis".into(),
                    "redis".into(),
                    vec!["wallstreetsim_redis_data".into()],
                    ServiceKind::Redis,
                ),
            ],
            not_drilled: vec!["api".into()],
        }
    }

    fn p(line: &str) -> Result<Action, Refused> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&words, &names())
    }

    #[test]
    fn seed_003s_lines_mean_the_drills_servers() {
        use ServiceKind::*;
        assert_eq!(
            p("compose -f docker-compose.db.yml stop redis"),
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
            p("volume rm wallstreetsim_redis_data"),
            Ok(Action::VolumeRm(vec![Redis]))
        );
        assert_eq!(
            p("compose -f docker-compose.db.yml up -d redis"),
            Ok(Action::Up(vec![Redis]))
        );
        assert_eq!(
            p("compose -f docker-compose.db.yml restart redis"),
            Ok(Action::Restart(vec![Redis]))
        );
        assert_eq!(
            p("compose -f docker-compose.db.yml up -d"),
            Ok(Action::Up(vec![Postgres, Redis]))
        );
        assert_eq!(p("ps"), Ok(Action::Ps { all: false }));
        assert_eq!(p("logs wss_postgres"), Ok(Action::Logs(Postgres)));
        assert_eq!(
            p("exec -i wss_postgres psql -U wss_user -d wallstreetsim"),
            Ok(Action::Exec {
                kind: Postgres,
                opts: vec!["-i".into()],
                env: vec![],
                cmd: ["psql", "-U", "wss_user", "-d", "wallstreetsim"]
                    .map(String::from)
                    .to_vec(),
            })
        );
        assert_eq!(
            p("compose -f docker-compose.db.yml exec -T redis redis-cli PING"),
            Ok(Action::Exec {
                kind: Redis,
                opts: vec![],
                env: vec![],
                cmd: vec!["redis-cli".into(), "PING".into()]
            })
        );
        assert!(matches!(
            p("compose -f docker-compose.db.yml up -d api"),
            Ok(Action::Note(_))
        ));
    }

    #[test]
    fn anything_not_the_drills_is_refused_with_the_drills_names() {
        for (line, needle) in [
            ("exec prod_postgres psql", "wss_postgres, wss_redis"),
            (
                "volume rm wallstreetsim_clickhouse_data",
                "wallstreetsim_postgres_data",
            ),
            ("rm -f other", "not one of this drill's containers"),
            (
                "compose -f docker-compose.prod.yml stop redis",
                "imported docker-compose.db.yml",
            ),
            ("compose -p prod stop redis", "project is wallstreetsim"),
            (
                "compose -f docker-compose.db.yml stop cache",
                "not a service",
            ),
            (
                "run --rm -v wallstreetsim_redis_data:/data alpine cp /backup/dump.rdb /data/",
                "drill step",
            ),
            ("-H tcp://prod:2375 ps", "another engine"),
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
            prop_assert_eq!(vol.is_ok(), name.ends_with("_data") && name.starts_with("wallstreetsim_") && ["wallstreetsim_postgres_data", "wallstreetsim_redis_data"].contains(&name.as_str()));
        }
    }
}
