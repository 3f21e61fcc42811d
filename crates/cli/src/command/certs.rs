//! `haze certs init|issue`: a cluster CA and the certificates it issues (haze-tls's
//! `generate`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use haze_crdt::PhysicalClock;
use haze_tls::IdentityKind;
use haze_tls::generate::{self, CA_DAYS, LEAF_DAYS, MAX_DAYS};

use crate::clock::SystemClock;

#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create a cluster CA in --dir: ca.pem, to give to every node and client, and ca.key, to
    /// keep secret (whoever holds it can issue any identity).
    Init {
        /// The folder of the CA and the certificates it issues (created if missing).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a certificate signed by the CA in --dir, as NAME.pem and NAME.key there.
    #[command(subcommand)]
    Issue(IssueCommand),
}

#[derive(Debug, Subcommand)]
enum IssueCommand {
    /// A node's certificate: it serves clients and peers, and dials peers and the controller.
    Node(NodeArgs),
    /// A client's certificate.
    Client(ClientArgs),
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The node's name in the cluster (`n1`).
    name: String,
    /// A DNS name the node is reached by (repeat for several; `*.` wildcards allowed).
    /// Without --name or --ip: localhost, 127.0.0.1 and ::1.
    #[arg(long = "name", value_name = "HOST")]
    hosts: Vec<String>,
    /// An IP address the node is reached at (repeat for several).
    #[arg(long = "ip", value_name = "ADDR")]
    ips: Vec<IpAddr>,
    #[command(flatten)]
    common: IssueArgs,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// The client's name (`admin`, `alice`).
    name: String,
    #[command(flatten)]
    common: IssueArgs,
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The folder of the CA (`haze certs init`); the certificate is written there.
    #[arg(long)]
    dir: PathBuf,
    /// How many days the certificate is valid.
    #[arg(long, default_value_t = LEAF_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    days: u32,
}

/// Where a node is reached when no --name or --ip says: this machine.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

pub(crate) fn run(args: CertsArgs) -> anyhow::Result<()> {
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(SystemClock.now_millis());
    match args.command {
        CertsCommand::Init { dir } => {
            let written = generate::init_ca(&dir, now)?;
            println!(
                "wrote {}: the cluster CA's certificate, valid {CA_DAYS} days; give it to every \
                 node and client",
                written.cert.display()
            );
            println!(
                "wrote {}: the CA's private key (mode 0600); keep it secret: it issues every \
                 certificate",
                written.key.display()
            );
        }
        CertsCommand::Issue(IssueCommand::Node(node)) => {
            let mut names: Vec<String> = node.hosts;
            names.extend(node.ips.iter().map(ToString::to_string));
            if names.is_empty() {
                names = LOCAL_NAMES.map(String::from).to_vec();
            }
            issue(IdentityKind::Node, &node.name, &names, &node.common, now)?;
        }
        CertsCommand::Issue(IssueCommand::Client(client)) => {
            issue(IdentityKind::Client, &client.name, &[], &client.common, now)?;
        }
    }
    Ok(())
}

fn issue(
    kind: IdentityKind,
    name: &str,
    names: &[String],
    args: &IssueArgs,
    now: SystemTime,
) -> anyhow::Result<()> {
    if !args.dir.join(generate::CA_CERT).exists() {
        anyhow::bail!(
            "no CA in {}: create one with `haze certs init --dir {}`",
            args.dir.display(),
            args.dir.display()
        );
    }
    let written = generate::issue(&args.dir, kind, name, names, args.days, now)?;
    let reached = if names.is_empty() {
        String::new()
    } else {
        format!(", for {}", names.join(", "))
    };
    println!(
        "wrote {}: {kind} {name} (haze://{kind}/{name}){reached}; valid {} days",
        written.cert.display(),
        args.days
    );
    println!(
        "wrote {}: its private key (mode 0600); keep it with {kind} {name} only",
        written.key.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(line: &[&str]) -> Result<CertsCommand, clap::Error> {
        let cli = crate::Cli::try_parse_from(["haze", "certs"].iter().chain(line))?;
        match cli.command {
            crate::Command::Certs(args) => Ok(args.command),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_commands_parse_as_documented() {
        let Ok(CertsCommand::Init { dir }) = parse(&["init", "--dir", "d"]) else {
            panic!("init");
        };
        assert_eq!(dir, PathBuf::from("d"));

        let line = [
            "issue",
            "node",
            "n1",
            "--dir",
            "d",
            "--name",
            "n1.example",
            "--ip",
            "10.0.0.1",
            "--name",
            "*.nodes.example",
            "--ip",
            "fd00::1",
            "--days",
            "30",
        ];
        let Ok(CertsCommand::Issue(IssueCommand::Node(node))) = parse(&line) else {
            panic!("issue node");
        };
        assert_eq!(node.name, "n1");
        assert_eq!(node.hosts, ["n1.example", "*.nodes.example"]);
        let ips: Vec<IpAddr> = ["10.0.0.1", "fd00::1"].map(|ip| ip.parse().unwrap()).into();
        assert_eq!(node.ips, ips);
        assert_eq!((node.common.dir, node.common.days), ("d".into(), 30));

        let Ok(CertsCommand::Issue(IssueCommand::Client(client))) =
            parse(&["issue", "client", "alice", "--dir", "d"])
        else {
            panic!("issue client");
        };
        assert_eq!(client.name, "alice");
        assert_eq!(client.common.days, LEAF_DAYS);

        for bad in [
            &["init"][..],
            &["issue", "node", "n1"],
            &["issue", "node", "--dir", "d"],
            &["issue", "node", "n1", "--dir", "d", "--ip", "n1.example"],
            &["issue", "node", "n1", "--dir", "d", "--days", "0"],
            &[
                "issue",
                "client",
                "alice",
                "--dir",
                "d",
                "--name",
                "a.example",
            ],
            &["issue", "admin", "root", "--dir", "d"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn init_then_issue_writes_the_files() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = dir.path().join("ca");
        let ca_arg = ca.to_str().expect("a UTF-8 path");
        let run_line = |line: &[&str]| {
            let Ok(command) = parse(line) else {
                panic!("{line:?} parses");
            };
            run(CertsArgs { command })
        };
        run_line(&["init", "--dir", ca_arg]).expect("init");
        run_line(&["issue", "node", "n1", "--dir", ca_arg]).expect("a node");
        run_line(&["issue", "client", "alice", "--dir", ca_arg]).expect("a client");
        for file in [
            "ca.pem",
            "ca.key",
            "n1.pem",
            "n1.key",
            "alice.pem",
            "alice.key",
        ] {
            assert!(ca.join(file).is_file(), "{file}");
        }
        let again = run_line(&["init", "--dir", ca_arg]).expect_err("a second CA");
        assert!(again.to_string().contains("exists"), "{again}");
    }
}
