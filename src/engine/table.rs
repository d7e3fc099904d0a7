//! The connection table: a slab indexed by the low half of a [`ConnId`], with a generation in the
//! high half so a stale id never reaches a newer connection in the same slot. O(1) lookups on the
//! hot path (every read and write names its connection), where a tree cost ~100 instructions.

use alloc::vec::Vec;

use super::types::ConnId;

pub struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

fn split(id: ConnId) -> (usize, u32) {
    ((id.0 & 0xffff_ffff) as usize, (id.0 >> 32) as u32)
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Table<T> {
    /// Bytes one slot takes (the value is stored inline).
    pub fn slot_size() -> usize {
        core::mem::size_of::<Slot<T>>()
    }

    /// Reserves a fresh id (its slot stays empty until `insert`).
    pub fn next_id(&mut self) -> ConnId {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                s
            }
        };
        let generation = self.slots.get(slot as usize).map_or(0, |s| s.generation);
        ConnId((u64::from(generation) << 32) | u64::from(slot))
    }

    pub fn insert(&mut self, id: ConnId, value: T) {
        let (slot, generation) = split(id);
        if let Some(s) = self.slots.get_mut(slot) {
            if s.generation == generation && s.value.is_none() {
                s.value = Some(value);
                self.len = self.len.saturating_add(1);
            }
        }
    }

    pub fn get(&self, id: &ConnId) -> Option<&T> {
        let (slot, generation) = split(*id);
        self.slots
            .get(slot)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.as_ref())
    }

    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut T> {
        let (slot, generation) = split(*id);
        self.slots
            .get_mut(slot)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.as_mut())
    }

    /// Removes the value and retires the id (the slot's next id has a new generation).
    pub fn remove(&mut self, id: &ConnId) -> Option<T> {
        let (slot, generation) = split(*id);
        let s = self
            .slots
            .get_mut(slot)
            .filter(|s| s.generation == generation)?;
        let v = s.value.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot as u32);
        self.len = self.len.saturating_sub(1);
        Some(v)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.value.as_ref())
    }

    pub fn keys(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| ConnId((u64::from(s.generation) << 32) | i as u64))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stale_ids_never_reach_a_reused_slot() {
        let mut t: Table<u8> = Table::default();
        let a = t.next_id();
        t.insert(a, 1);
        assert_eq!(t.remove(&a), Some(1));
        let b = t.next_id();
        t.insert(b, 2);
        assert_ne!(a, b);
        assert_eq!(t.get(&a), None);
        assert_eq!(t.get(&b), Some(&2));
        assert_eq!(t.keys().collect::<Vec<_>>(), vec![b]);
        assert!(!t.is_empty());
    }
}
