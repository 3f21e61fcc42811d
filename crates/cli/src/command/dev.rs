//! `haze dev`: a controller and a few nodes in one process, formed into a cluster.

use anyhow::Context;
use clap::{Args, Parser};
use haze_controller::ControllerClient;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use crate::command::cluster::open_controller;
use crate::command::profile::{self, Profile};
use crate::command::serve::{
    AckArg, Joining, RunningNode, ServeArgs, init_logging, join, start_node, wait_for_signal,
};
use haze_tls::IdentityKind;
use haze_tls::generate;

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// How many nodes (1 to 16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
    /// The folder that holds the controller's and every node's data.
    #[arg(long, default_value = "./haze-dev")]
    data: PathBuf,
    /// The controller listens on BASE-100, node i on BASE+i, its HTTP API on BASE+80+i and its
    /// Redis protocol on BASE+90+i; 0 picks free ports.
    #[arg(long, default_value_t = 7700, value_parser = clap::value_parser!(u16).range(0..=65000))]
    base_port: u16,
    /// Replicas of each partition, for a new cluster.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Partitions of the ring, for a new cluster: a power of two up to 4096.
    #[arg(long, default_value_t = 256)]
    partitions: u32,
    #[command(flatten)]
    limits: crate::command::cluster::LimitArgs,
    /// How many replicas must hold a write before it is acknowledged (as `haze serve --ack`).
    #[arg(long, value_enum, default_value = "quorum")]
    ack: AckArg,
    /// Plaintext and no tokens (by default `haze dev` runs as a real cluster should: TLS
    /// against a CA of its own in DATA/certs, an admin token, and a client profile `dev` the
    /// other commands find by themselves).
    #[arg(long)]
    insecure: bool,
    /// Serve a web app's folder from every node's HTTP port (`haze serve --web`), which then
    /// speaks plain HTTP on loopback so that a browser can open it; prints the address to open,
    /// with a device token (read and write, kept in DATA/web-token) in its `#token=` fragment.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
}

/// The certificates and token of a secure `haze dev`.
struct Secure {
    /// `DATA/certs`, absolute: the CA and every certificate it issued.
    certs: PathBuf,
}

impl Secure {
    /// Makes the CA and the certificates of the controller and nodes 1..=`nodes` that do not
    /// exist yet (a second `haze dev` on the same folder keeps them).
    fn prepare(data: &std::path::Path, nodes: u16) -> anyhow::Result<Secure> {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        let certs = data
            .canonicalize()
            .with_context(|| format!("reading {}", data.display()))?
            .join("certs");
        let now = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(haze_crdt::PhysicalClock::now_millis(
                &crate::clock::SystemClock,
            ));
        if !certs.join(generate::CA_CERT).exists() {
            generate::init_ca(&certs, now).context("making the dev cluster's CA")?;
        }
        let local = ["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let names =
            std::iter::once("controller".to_string()).chain((1..=nodes).map(|i| format!("n{i}")));
        for name in names {
            if !certs.join(format!("{name}.pem")).exists() {
                generate::issue(
                    &certs,
                    IdentityKind::Node,
                    &name,
                    &local,
                    generate::LEAF_DAYS,
                    now,
                )
                .with_context(|| format!("issuing {name}'s certificate"))?;
            }
        }
        Ok(Secure { certs })
    }

    fn ca(&self) -> PathBuf {
        self.certs.join(generate::CA_CERT)
    }

    fn cert(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.certs.join(format!("{name}.pem")),
            self.certs.join(format!("{name}.key")),
        )
    }

    /// A client of the controller with `name`'s certificate.
    fn as_node(&self, addr: &str, name: &str) -> anyhow::Result<ControllerClient> {
        let (cert, key) = self.cert(name);
        let tls = haze_tls::client_config(Some(&self.ca()), Some((&cert, &key)))?;
        Ok(ControllerClient::new(addr).with_tls(tls))
    }
}

/// `haze serve`'s arguments, parsed the way the command line would be, so `haze dev`'s nodes get
/// exactly `haze serve`'s defaults.
#[derive(Debug, Parser)]
struct ServeLine {
    #[command(flatten)]
    args: ServeArgs,
}

/// The admin token the controller in `dir` wrote at its first secure start (it writes it
/// before it serves: waits a little for it).
async fn read_admin_token(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join(haze_controller::ADMIN_TOKEN_FILE);
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let token = text.trim();
            if !token.is_empty() {
                return Ok(token.to_string());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "the controller wrote no admin token to {} within 10 s (if every admin token was \
         revoked, remove the file and start again)",
        path.display()
    )
}

/// The device token a `haze dev --web` page uses: made once (read and write on every key) and
/// kept in DATA/web-token (0600), so that a second start prints the same address.
async fn web_token(client: &ControllerClient, data: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join("web-token");
    if let Ok(text) = std::fs::read_to_string(&path)
        && haze_controller::tokens::well_formed(text.trim())
    {
        return Ok(text.trim().to_string());
    }
    let request = haze_controller::api::CreateTokenRequest {
        prefixes: Vec::new(),
        rights: vec![
            haze_controller::tokens::Right::Read,
            haze_controller::tokens::Right::Write,
        ],
        expires_in_ms: None,
        expires_at_ms: None,
        description: "haze dev --web: the example app's devices".into(),
    };
    let created = client
        .create_token(&request)
        .await
        .context("making the web app's device token")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{}", created.token).with_context(|| format!("writing {}", path.display()))?;
    Ok(created.token)
}

fn port(base: u16, offset: i32) -> String {
    if base == 0 {
        "127.0.0.1:0".to_string()
    } else {
        format!("127.0.0.1:{}", i32::from(base) + offset)
    }
}

pub(crate) fn run(args: DevArgs) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(dev(args))
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let secure = if args.insecure {
        None
    } else {
        Some(Secure::prepare(&args.data, args.nodes)?)
    };
    let controller_dir = args.data.join("controller");
    let controller = open_controller(&controller_dir, args.partitions, args.replicas)?;
    let listen = port(args.base_port, -100);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let controller_addr = listener.local_addr()?.to_string();
    let mut options = haze_controller::ServeOptions::new(args.limits.limits());
    if let Some(secure) = &secure {
        let (cert, key) = secure.cert("controller");
        let tls = haze_tls::server_config(
            &cert,
            &key,
            Some(&secure.ca()),
            haze_tls::ClientAuth::Optional,
        )?;
        options = options.with_tls(tls).with_auth(true);
    }
    let controller_task = tokio::spawn(haze_controller::serve_with(
        controller,
        options,
        listener,
        shutdown.clone(),
    ));
    // The admin token: the one the controller wrote at its first secure start.
    let admin_token = match &secure {
        Some(_) => Some(read_admin_token(&controller_dir).await?),
        None => None,
    };

    // Every node serves the same folder, named absolutely (the nodes' paths are their own).
    let web = match &args.web {
        Some(web) => {
            let web = web
                .canonicalize()
                .with_context(|| format!("--web {}", web.display()))?;
            Some(
                web.to_str()
                    .context("the web folder's path is not UTF-8")?
                    .to_string(),
            )
        }
        None => None,
    };
    let mut nodes: Vec<RunningNode> = Vec::new();
    for i in 1..=args.nodes {
        let data = args.data.join(format!("node{i}"));
        let mut line = vec![
            "serve".to_string(),
            "--data".into(),
            data.to_str()
                .context("the data folder's path is not UTF-8")?
                .into(),
            "--listen".into(),
            port(args.base_port, i32::from(i)),
            "--http".into(),
            port(args.base_port, 80 + i32::from(i)),
            "--resp".into(),
            port(args.base_port, 90 + i32::from(i)),
            "--ack".into(),
            clap::ValueEnum::to_possible_value(&args.ack)
                .context("every --ack value has a name")?
                .get_name()
                .into(),
            // Joined below, in order: this only says the node is a cluster's.
            "--controller".into(),
            controller_addr.clone(),
        ];
        if let Some(web) = &web {
            line.push("--web".into());
            line.push(web.clone());
            if secure.is_some() {
                line.push("--http-plaintext".into());
            }
        }
        if let Some(secure) = &secure {
            let (cert, key) = secure.cert(&format!("n{i}"));
            for (flag, path) in [
                ("--tls-cert", cert),
                ("--tls-key", key),
                ("--tls-ca", secure.ca()),
            ] {
                line.push(flag.into());
                line.push(
                    path.to_str()
                        .context("the certs' path is not UTF-8")?
                        .into(),
                );
            }
        }
        let line = ServeLine::try_parse_from(line)?;
        nodes.push(start_node(&line.args, shutdown.clone(), false).await?);
    }

    // Register the nodes in order (so node i is n<i> in a new cluster), then give them
    // partitions; a second `haze dev` on the same folder finds them active already.
    let mut client = ControllerClient::new(&controller_addr);
    if let Some(secure) = &secure {
        client = client.with_tls(haze_tls::client_config(Some(&secure.ca()), None)?);
    }
    if let Some(token) = &admin_token {
        client = client.with_token(token.clone());
    }
    let mut ids = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let registrar = match &secure {
            Some(secure) => secure.as_node(&controller_addr, &format!("n{}", i + 1))?,
            None => ControllerClient::new(&controller_addr),
        };
        ids.push(registrar.register(&node.addr.to_string()).await?.node);
    }
    // Registered in order: now each node may join (its own registration finds its id).
    for (i, node) in nodes.iter().enumerate() {
        let tls = match &secure {
            Some(secure) => {
                let (cert, key) = secure.cert(&format!("n{}", i + 1));
                Some(haze_tls::client_config(
                    Some(&secure.ca()),
                    Some((&cert, &key)),
                )?)
            }
            None => None,
        };
        let joining = Joining {
            controller: controller_addr.clone(),
            advertise: node.addr.to_string(),
            data: args.data.join(format!("node{}", i + 1)),
            tls,
        };
        join(joining, &node.node);
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let status = client.status().await?;
    let standby: Vec<String> = status
        .members
        .iter()
        .filter(|m| addrs.contains(&m.addr) && m.state == haze_controller::MemberState::Standby)
        .map(|m| m.addr.clone())
        .collect();
    let status = if standby.is_empty() {
        status
    } else {
        client.add(&standby).await.context(
            "forming the cluster (a folder of an earlier `haze dev` keeps its node count)",
        )?
    };

    // Ready when every node has the table (they poll the controller).
    for _ in 0..100 {
        if nodes.iter().all(|n| n.node.view().is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if let Some(i) = nodes.iter().position(|n| n.node.view().is_none()) {
        anyhow::bail!(
            "node {} did not receive the partition table within 10 s",
            i + 1
        );
    }

    let web_token = match (&args.web, &admin_token) {
        (Some(_), Some(_)) => Some(web_token(&client, &args.data).await?),
        _ => None,
    };

    #[allow(clippy::print_stdout)]
    {
        println!(
            "haze dev: a {}-node cluster in {} (Ctrl-C stops it)",
            nodes.len(),
            args.data.display()
        );
        println!(
            "controller {controller_addr} (cluster {}, epoch {})",
            status.cluster,
            status.epoch.unwrap_or(0)
        );
        for (node, id) in nodes.iter().zip(&ids) {
            match node.resp {
                Some(resp) => println!("{id} {} http {} resp {resp}", node.addr, node.http),
                None => println!("{id} {} http {}", node.addr, node.http),
            }
        }
        let next = nodes.len() + 1;
        let next_data = args.data.join(format!("node{next}"));
        match (&secure, &admin_token) {
            (Some(secure), Some(token)) => {
                let mut addresses = addrs.clone();
                addresses.extend(nodes.iter().map(|n| n.http.to_string()));
                addresses.push(controller_addr.clone());
                let saved = profile::save(
                    "dev",
                    &Profile {
                        ca: Some(secure.ca()),
                        tls: false,
                        token: Some(token.clone()),
                        addresses,
                    },
                )?;
                println!(
                    "tls: CA {} (curl --cacert it); admin token in {}",
                    secure.ca().display(),
                    controller_dir
                        .join(haze_controller::ADMIN_TOKEN_FILE)
                        .display()
                );
                println!(
                    "profile: {} (the haze commands below find it by the address they connect to)",
                    saved.display()
                );
                let certs = secure.certs.display();
                println!(
                    "grow: haze certs issue node n{next} --dir {certs}, then haze serve \
                     --controller {controller_addr} --data {} --listen 127.0.0.1:PORT --http \
                     127.0.0.1:HTTP_PORT --tls-cert {certs}/n{next}.pem --tls-key \
                     {certs}/n{next}.key --tls-ca {certs}/ca.pem, then haze cluster add \
                     127.0.0.1:PORT --wait --controller {controller_addr}",
                    next_data.display(),
                );
            }
            _ => println!(
                "grow: haze serve --controller {controller_addr} --data {} --listen \
                 127.0.0.1:PORT --http 127.0.0.1:HTTP_PORT, then haze cluster add \
                 127.0.0.1:PORT --wait --controller {controller_addr}",
                next_data.display(),
            ),
        }
        println!(
            "try: haze counter incr visits --addr {}   |   haze cluster status --controller {controller_addr}",
            nodes[0].addr
        );
        if args.web.is_some() {
            let fragment = web_token.map_or_else(String::new, |t| format!("#token={t}"));
            for node in &nodes {
                println!("web: open http://{}/{fragment}", node.http);
            }
        }
    }

    wait_for_signal().await;
    shutdown.cancel();
    for node in nodes {
        node.serving.await.context("a node's task failed")??;
    }
    controller_task
        .await
        .context("the controller's task failed")?
        .context("serving the controller")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
