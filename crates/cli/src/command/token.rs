//! `haze token create|list|revoke`: client tokens, through the controller (docs/cluster.md).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use haze_controller::api::{CreateTokenRequest, TokenInfo};
use haze_controller::tokens::{Right, TokenId};
use haze_crdt::PhysicalClock;

use crate::clock::SystemClock;

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The controller's address.
    #[arg(long, global = true, default_value = "127.0.0.1:7600")]
    controller: String,
    #[command(flatten)]
    credentials: crate::command::profile::Credentials,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it, this once, alone on stdout (its id and scope go to stderr).
    Create {
        /// A key prefix it may touch: a byte prefix, so `user:42/` covers `user:42/x` but not
        /// `user:420`. Repeat for several; none: every key.
        #[arg(long = "prefix", value_name = "PREFIX")]
        prefixes: Vec<String>,
        /// Read keys inside its prefixes.
        #[arg(long)]
        read: bool,
        /// Write keys inside its prefixes.
        #[arg(long)]
        write: bool,
        /// Read and write inside its prefixes, list keys, and administer the cluster and its
        /// tokens (including making tokens of any scope: for administrators only).
        #[arg(long)]
        admin: bool,
        /// How long it works: a number and a unit, s, m, h, d or w (`30d`). Without: until it
        /// is revoked.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
        expires: Option<u64>,
        /// What it is for, for people (`haze token list` shows it).
        #[arg(long, default_value = "")]
        description: String,
        /// Print the answer as JSON, the token included.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens: ids, rights, prefixes, expiries and descriptions (never the tokens).
    List {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id (`t3`): every node refuses it from its next poll of the controller.
    Revoke {
        /// The token's id, as `haze token list` shows it.
        id: String,
    },
}

/// Parses a duration (`90s`, `15m`, `12h`, `30d`, `2w`) into milliseconds.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30d, 12h or 15m"))?;
    let second = 1_000;
    let scale: u64 = match unit.trim() {
        "s" => second,
        "m" | "min" => 60 * second,
        "h" => 3_600 * second,
        "d" => 86_400 * second,
        "w" => 7 * 86_400 * second,
        "" => return Err(format!("{text:?} needs a unit: s, m, h, d or w")),
        other => return Err(format!("unknown unit {other:?}: use s, m, h, d or w")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err("a token must work for some time: give more than 0".to_string()),
        Some(ms) => Ok(ms),
        None => Err(format!("{text:?} is too long")),
    }
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let client = args.credentials.controller(&args.controller)?;
    match args.command {
        TokenCommand::Create {
            prefixes,
            read,
            write,
            admin,
            expires,
            description,
            json,
        } => {
            let rights: Vec<Right> = [(read, Right::Read), (write, Right::Write)]
                .into_iter()
                .chain([(admin, Right::Admin)])
                .filter_map(|(given, right)| given.then_some(right))
                .collect();
            if rights.is_empty() {
                bail!("give the token at least one right: --read, --write or --admin");
            }
            let request = CreateTokenRequest {
                prefixes,
                rights,
                expires_in_ms: expires,
                expires_at_ms: None,
                description,
            };
            let created = runtime.block_on(client.create_token(&request))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("{}", created.token);
                eprintln!(
                    "token {}: {}; shown this once, keep it",
                    created.info.id,
                    scope(&created.info, SystemClock.now_millis())
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = runtime.block_on(client.list_tokens())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                print_list(&tokens, SystemClock.now_millis());
            }
        }
        TokenCommand::Revoke { id } => {
            // Parsed here, not by clap, whose refusal would quote a token pasted by mistake.
            let id: TokenId = id.parse()?;
            let token = runtime.block_on(client.revoke_token(id))?;
            println!(
                "revoked {}: {}",
                token.id,
                scope(&token, SystemClock.now_millis())
            );
        }
    }
    Ok(())
}

fn rights(token: &TokenInfo) -> String {
    let names: Vec<String> = token.rights.iter().map(ToString::to_string).collect();
    names.join(",")
}

/// Its prefixes, escaped (they may hold any character), or `every key`.
fn prefixes(token: &TokenInfo) -> String {
    if token.prefixes.is_empty() {
        return "every key".to_string();
    }
    let shown: Vec<String> = token.prefixes.iter().map(|p| printable(p)).collect();
    shown.join(" ")
}

/// Text from the controller with its control characters escaped, so it cannot steer the
/// terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn expiry(token: &TokenInfo, now_ms: u64) -> String {
    match token.expires_at_ms {
        None => "never".to_string(),
        Some(_) if token.expired => "expired".to_string(),
        Some(at) if at <= now_ms => "expired".to_string(),
        Some(at) => format!("in {}", span(at - now_ms)),
    }
}

/// One line: rights, prefixes, expiry and description.
fn scope(token: &TokenInfo, now_ms: u64) -> String {
    let expires = match expiry(token, now_ms).as_str() {
        "never" => "no expiry".to_string(),
        "expired" => "expired".to_string(),
        other => format!("expires {other}"),
    };
    let mut line = format!("{} on {}, {expires}", rights(token), prefixes(token));
    if !token.description.is_empty() {
        line.push_str(&format!(" ({})", printable(&token.description)));
    }
    line
}

/// A duration for people: `45 s`, `12 min`, `5.5 h`, `29.9 d`.
fn span(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 60.0 {
        format!("{s:.0} s")
    } else if s < 3_600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3_600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

fn print_list(tokens: &[TokenInfo], now_ms: u64) {
    if tokens.is_empty() {
        println!("no tokens (haze token create makes one)");
        return;
    }
    println!(
        "{:<6} {:<16} {:<24} {:<12} {:<12} description",
        "id", "rights", "prefixes", "expires", "created"
    );
    for t in tokens {
        let created = format!("{} ago", span(now_ms.saturating_sub(t.created_ms)));
        println!(
            "{:<6} {:<16} {:<24} {:<12} {:<12} {}",
            t.id.to_string(),
            rights(t),
            prefixes(t),
            expiry(t, now_ms),
            created,
            printable(&t.description)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration_ms("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration_ms("15m"), Ok(15 * 60_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("2w"), Ok(14 * 86_400_000));
        for bad in ["30", "0d", "d", "3 parsecs", "-1d", "99999999999999999w"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
