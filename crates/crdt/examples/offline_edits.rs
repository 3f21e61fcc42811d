//! The phone-and-laptop story with the CRDT library alone: two devices edit a shopping list, a
//! counter and a title offline, then exchange their full states and converge.
//!
//! `cargo run -p haze-crdt --example offline_edits`

#![allow(clippy::print_stdout)] // an example prints

use haze_crdt::{ActorId, Crdt, Hlc, LwwRegister, ManualClock, OrSet, PnCounter, Value};

/// One device's replica: its own actor id and clock, and its copies of the values.
#[derive(Debug, Clone)]
struct Device {
    name: &'static str,
    actor: ActorId,
    hlc: Hlc,
    list: OrSet<String>,
    budget: PnCounter,
    title: LwwRegister<String>,
}

impl Device {
    fn new(name: &'static str, actor: u64) -> Self {
        Device {
            name,
            actor: ActorId::new(actor),
            hlc: Hlc::new(),
            list: OrSet::new(),
            budget: PnCounter::new(),
            title: LwwRegister::new(),
        }
    }

    /// Merges another device's full state (what a sync through Haze does).
    fn merge_from(&mut self, other: &Device) {
        self.list.merge_from(other.list.clone());
        self.budget.merge_from(other.budget.clone());
        self.title.merge_from(other.title.clone());
    }

    fn show(&self) {
        let items: Vec<&str> = self.list.iter().map(String::as_str).collect();
        println!(
            "  {:<7} title={:?} list={:?} budget={}",
            self.name,
            self.title.get().map(String::as_str).unwrap_or(""),
            items,
            self.budget.value()
        );
    }
}

fn main() -> Result<(), haze_crdt::Error> {
    // Each device picks 64 random bits as its actor id when its replica file is created.
    let mut phone = Device::new("phone", 0x9f1c_2e07_b3a5_0d41);
    let mut laptop = Device::new("laptop", 0x4ab2_91f0_6c3d_e852);
    let (phone_clock, laptop_clock) = (
        ManualClock::new(1_764_133_200_000),
        ManualClock::new(1_764_133_140_000),
    );

    println!("Both devices start from the same synced state:");
    phone.list.insert(phone.actor, "milk".into());
    phone.list.insert(phone.actor, "coffee".into());
    phone.budget.increment(phone.actor, 50)?;
    phone.title.set(
        phone.actor,
        "Groceries".into(),
        &mut phone.hlc,
        &phone_clock,
    );
    laptop.merge_from(&phone);
    phone.show();
    laptop.show();

    println!("\nOffline, each edits its own copy (the laptop's clock runs a minute behind):");
    phone.list.remove(&"milk".to_string()); // bought it
    phone.list.insert(phone.actor, "bread".into());
    phone.budget.decrement(phone.actor, 12)?;
    laptop.list.insert(laptop.actor, "milk".into()); // concurrently: we need more milk
    laptop.list.insert(laptop.actor, "eggs".into());
    laptop.budget.increment(laptop.actor, 20)?;
    laptop.title.set(
        laptop.actor,
        "Groceries (Saturday)".into(),
        &mut laptop.hlc,
        &laptop_clock,
    );
    phone.show();
    laptop.show();

    println!("\nBoth sync (each merges the other's full state), in either order:");
    let phone_before = phone.clone();
    phone.merge_from(&laptop);
    laptop.merge_from(&phone_before);
    phone.show();
    laptop.show();
    assert_eq!(phone.list, laptop.list);
    assert_eq!(phone.budget, laptop.budget);
    assert_eq!(phone.title, laptop.title);

    println!("\nThe milk stays (an add concurrent with a remove wins); the laptop's title wins");
    println!("because it was written after seeing the phone's, whatever the clocks said.");
    let stored = Value::from(phone.list.clone());
    println!(
        "\nWhat Haze stores for the list: {} bytes, and as JSON:\n{}",
        stored.encode().len(),
        serde_json::to_string(&stored).expect("a value serialises")
    );
    Ok(())
}
