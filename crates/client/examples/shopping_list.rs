//! A shopping list and a visit counter through a running node.
//!
//! Start a node (`cargo run --release -- serve`), then:
//! `cargo run -p haze-client --example shopping_list [ADDR]`

#![allow(clippy::print_stdout)] // an example prints

use haze_client::{Client, Scalar};
use haze_crdt::{ActorId, OrSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), haze_client::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7700".to_string());
    let client = Client::connect(&addr).await?;

    let visits = client.counter_add("example:visits", 1).await?;
    println!("visits: {}", visits.value());

    client
        .set_add(
            "example:list",
            [Scalar::from("milk"), Scalar::from("bread")],
        )
        .await?;
    // A device merges its own offline edits as a full state: the node merges, never overwrites.
    let mut offline = OrSet::new();
    offline.insert(ActorId::new(0x9f1c_2e07_b3a5_0d41), "eggs".to_string());
    let list: OrSet<String> = client.merge_typed("example:list", offline).await?;
    println!("list: {:?}", list.iter().collect::<Vec<_>>());
    Ok(())
}
