//! `routing`: see what the routing library will do with a configuration before
//! shipping it, and (feature `xdp`) serve a configuration's TCP services with the XDP
//! program.
//!
//! * `routing check|explain|simulate|convert FILE…` — reads native, Gateway API,
//!   Istio and ALB routing config and shows what the library will do with it (see
//!   [`route`]).
//! * `routing run --iface IF --config FILE [--mode skb|drv]` — attaches the XDP
//!   program, programs the config's `tcp_services`, prints per-target stats every
//!   second, reloads the file when it changes, detaches on Ctrl-C (see [`run`]).
//!   Needs the `xdp` feature (`cargo install --path routing-cli --features xdp`),
//!   whose build compiles the program with nightly and bpf-linker.
//!
//! Install with `cargo install --path routing-cli`, or run from a checkout with
//! `cargo run -p routing-cli -- …`.

mod route;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

/// The usage text, printed by `help` and after every usage error.
const USAGE: &str = "\
Usage: routing <COMMAND> [ARGS...]

Commands:
  check FILE...     Parse, import and validate a route table: native, or Gateway
                    API HTTPRoute, Istio VirtualService/DestinationRule and AWS ALB
                    describe-rules JSON (detected per document). Exit 1 on error.
  explain FILE... --request R
                    Which rule R matches and why, the rules that lost, the backend
                    split and where a sticky key sends R.
  simulate FILE... [--requests N] [--sticky-keys K] [--weights-change FILE]...
                    The per-backend split of N picks per rule, and the sticky keys
                    a weight change moves.
  convert FILE... --to native
                    Print the native YAML.
  run --iface IF --config FILE [--mode skb|drv]
                    Attach the XDP program to IF (root), program FILE's
                    tcp_services, print per-target stats every second, reload FILE
                    when it changes (an invalid file is reported and the old config
                    stays live), detach on Ctrl-C. Mode: drv (native, default) or
                    skb (generic; use it on a veth whose peer has no XDP program).
                    Needs a build with the `xdp` feature.
  help              Print this message (`routing check --help`: the route
                    commands' options).";

/// A command to run, parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    /// `check|explain|simulate|convert …`.
    Route(route::Options),
    /// `check|explain|simulate|convert --help`.
    RouteHelp,
    /// `run`: attach the program and program a config file's TCP services.
    Run(run::Options),
    /// `help`, `--help`, `-h`.
    Help,
    /// `--version`, `-V`.
    Version,
}

/// Parses the arguments that follow `routing`; a usage error's message otherwise.
fn parse(args: &[String]) -> Result<Task, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("no command given".to_owned());
    };
    match command.as_str() {
        "check" | "explain" | "simulate" | "convert" => {
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                Ok(Task::RouteHelp)
            } else {
                route::parse(args).map(Task::Route)
            }
        }
        "run" => parse_run(rest),
        "help" | "--help" | "-h" => Ok(Task::Help),
        "--version" | "-V" => Ok(Task::Version),
        c => Err(format!("unknown command `{c}`")),
    }
}

/// Splits `--flag=value` into `("--flag", Some("value"))`, anything else into
/// `(arg, None)`.
fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
        _ => (arg, None),
    }
}

/// The value of a flag: the part after `=`, or the next argument.
fn flag_value<'a>(
    flag: &str,
    inline: Option<&'a str>,
    it: &mut std::slice::Iter<'a, String>,
) -> Result<&'a str, String> {
    inline
        .or_else(|| it.next().map(String::as_str))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("`{flag}` of `run` needs a value"))
}

/// Parses `run --iface IF --config FILE [--mode skb|drv]`.
fn parse_run(args: &[String]) -> Result<Task, String> {
    let (mut iface, mut config, mut mode) = (None, None, run::Mode::Driver);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = split_flag(arg);
        match flag {
            "--help" | "-h" => return Ok(Task::Help),
            "--iface" => iface = Some(flag_value(flag, inline, &mut it)?.to_owned()),
            "--config" => config = Some(PathBuf::from(flag_value(flag, inline, &mut it)?)),
            "--mode" => {
                mode = match flag_value(flag, inline, &mut it)? {
                    "skb" => run::Mode::Skb,
                    "drv" => run::Mode::Driver,
                    m => return Err(format!("`--mode` is `skb` or `drv`, not `{m}`")),
                }
            }
            a => return Err(format!("unexpected argument `{a}` for `run`")),
        }
    }
    let iface = iface.ok_or("`run` needs `--iface IF`")?;
    let config = config.ok_or("`run` needs `--config FILE`")?;
    Ok(Task::Run(run::Options {
        iface,
        config,
        mode,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = match parse(&args) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match task {
        Task::Route(opts) => match route::run(&opts) {
            Ok((out, ok)) => {
                print!("{out}");
                if !ok {
                    return ExitCode::FAILURE;
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
        Task::RouteHelp => {
            println!("{}", route::USAGE);
            Ok(())
        }
        Task::Run(opts) => run::run(&opts),
        Task::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Task::Version => {
            println!("routing {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|&a| a.to_owned()).collect()
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(&args(&["--help"])), Ok(Task::Help));
        assert_eq!(parse(&args(&["help"])), Ok(Task::Help));
        assert_eq!(parse(&args(&["-V"])), Ok(Task::Version));
        assert_eq!(parse(&args(&["check", "--help"])), Ok(Task::RouteHelp));
        assert_eq!(
            parse(&args(&["check", "a.yaml"])),
            route::parse(&args(&["check", "a.yaml"])).map(Task::Route),
            "the route commands take the same arguments as before, command first"
        );
        assert!(parse(&[]).is_err(), "no command is a usage error");
        assert!(
            parse(&args(&["route"])).is_err(),
            "`route` is not a command"
        );
        assert!(parse(&args(&["check"])).is_err(), "check needs a FILE");
    }

    #[test]
    fn parses_run() {
        let expect = |mode| {
            Ok(Task::Run(run::Options {
                iface: "veth0".into(),
                config: PathBuf::from("l4.yaml"),
                mode,
            }))
        };
        assert_eq!(
            parse(&args(&["run", "--iface", "veth0", "--config", "l4.yaml"])),
            expect(run::Mode::Driver),
            "the mode defaults to native (drv)"
        );
        assert_eq!(
            parse(&args(&[
                "run",
                "--config=l4.yaml",
                "--mode",
                "skb",
                "--iface=veth0"
            ])),
            expect(run::Mode::Skb)
        );
        assert_eq!(
            parse(&args(&[
                "run",
                "--iface",
                "veth0",
                "--config",
                "l4.yaml",
                "--mode=drv"
            ])),
            expect(run::Mode::Driver)
        );
        for bad in [
            &["run"][..],
            &["run", "--iface", "veth0"],
            &["run", "--config", "l4.yaml"],
            &["run", "--iface"],
            &["run", "--iface=", "--config", "x"],
            &["run", "--iface", "a", "--config", "b", "--mode", "xdp"],
            &["run", "--iface", "a", "--config", "b", "extra"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} must be a usage error");
        }
    }
}
