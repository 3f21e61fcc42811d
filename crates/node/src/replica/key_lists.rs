//! The key lists devices named for sync, remembered so that a repeated sync sends only ids.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Remembered key lists, by id, oldest evicted first beyond a byte budget. Forgetting a list
/// costs the device one round trip (it resends the keys), never correctness.
#[derive(Debug)]
pub(crate) struct KeyLists {
    lists: HashMap<u64, Arc<Vec<Vec<u8>>>>,
    order: VecDeque<u64>,
    bytes: usize,
    max_bytes: usize,
}

impl KeyLists {
    pub(crate) fn new(max_bytes: usize) -> Self {
        KeyLists {
            lists: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Vec<Vec<u8>>>> {
        self.lists.get(&id).cloned()
    }

    pub(crate) fn insert(&mut self, id: u64, keys: Arc<Vec<Vec<u8>>>) {
        let size = keys.iter().map(|k| k.len() + 24).sum::<usize>();
        if size > self.max_bytes || self.lists.contains_key(&id) {
            return;
        }
        while self.bytes + size > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.lists.remove(&oldest) {
                self.bytes -= evicted.iter().map(|k| k.len() + 24).sum::<usize>();
            }
        }
        self.lists.insert(id, keys);
        self.order.push_back(id);
        self.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_lists_go_first_when_the_budget_is_spent() {
        let mut lists = KeyLists::new(100);
        let list = |n: usize| Arc::new(vec![vec![0u8; n]]);
        lists.insert(1, list(40)); // 64 bytes counted
        lists.insert(2, list(10)); // 34
        assert!(lists.get(1).is_some() && lists.get(2).is_some());
        lists.insert(3, list(30)); // 54: evicts 1
        assert!(lists.get(1).is_none() && lists.get(2).is_some() && lists.get(3).is_some());
        lists.insert(4, list(500)); // larger than the budget: not kept
        assert!(lists.get(4).is_none());
    }
}
